//! Everything that calls into Python: the interpreter, the app, and the Python threads that serve
//! requests. The only module that names pyo3.
//!
//! Each Python thread attaches to the interpreter once for its whole life and detaches only to wait
//! for a job or for the socket, so a request costs no thread-state setup and the GIL is free
//! whenever the thread is not running Python.

pub mod environ;
#[cfg(feature = "extension")]
pub mod extension;
pub mod file_wrapper;
pub mod input;
pub mod interpreter;
pub mod loader;
pub mod respond;
pub mod shared_globals;
pub mod stacks;
pub mod start_response;
pub mod uwsgi_module;

use crate::config::Config;
use crate::scoreboard::Scoreboard;
use crate::server::acceptor::{Acceptor, Next};
use crate::server::dispatch::InFlight;
use pyo3::prelude::*;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// What a Python thread needs to serve requests.
pub struct App {
    /// The loaded apps, `(mountpoint, callable)`: the default app (mountpoint `''`) first, then
    /// the `--mount`ed ones. The index is the log line's `app: N`. Empty only with
    /// `--need-app=false` after every import failed: requests get 500.
    pub apps: Vec<(String, Py<PyAny>)>,
    pub environ: environ::EnvironTemplate,
    pub timeout: Duration,
    pub logging: crate::config::LogRules,
    /// `--log-format`, parsed at startup; `None` writes uWSGI's default line.
    pub log_format: Option<crate::log::LogFormat>,
    /// Requests served by this process.
    pub requests: AtomicU64,
    /// Counters shared with the master.
    pub board: Arc<Scoreboard>,
    /// This process's worker id (1-based), set after fork.
    pub worker_id: usize,
    /// Running requests, for the harakiri watchdog (`None` without `--harakiri`).
    pub inflight: Option<Arc<InFlight>>,
    pub memory_report: bool,
    pub recycle: Recycle,
    /// `--static-map` and friends: files the server sends before any Python runs.
    pub statics: crate::statics::StaticRules,
}

/// When a worker retires itself, checked after each request (as uWSGI does), so a limit is never
/// overshot by more than the requests already in flight.
#[derive(Debug, Clone)]
pub struct Recycle {
    /// `--max-requests`, 0 for none (`--max-requests-delta` × worker id is added after fork).
    pub max_requests: u64,
    pub max_requests_delta: u64,
    /// `--reload-on-rss` in bytes, 0 for none.
    pub max_rss: u64,
    pub min_lifetime: Duration,
    /// When this worker started serving.
    pub since: std::time::Instant,
}

impl Recycle {
    fn from_config(config: &Config) -> Recycle {
        Recycle {
            max_requests: config.max_requests,
            max_requests_delta: config.max_requests_delta,
            max_rss: config.reload_on_rss_mb << 20,
            min_lifetime: config.min_worker_lifetime,
            since: std::time::Instant::now(),
        }
    }

    /// Why a worker that has served `served` requests should retire now, if it should.
    fn due(&self, worker_id: usize, served: u64) -> Option<String> {
        if self.max_requests == 0 && self.max_rss == 0 {
            return None;
        }
        if self.since.elapsed() < self.min_lifetime {
            return None;
        }
        let limit = self.max_requests + self.max_requests_delta * worker_id as u64;
        if self.max_requests > 0 && served >= limit {
            return Some(format!("max-requests reached: {served} of {limit}"));
        }
        if self.max_rss > 0 {
            let rss = crate::log::memory_usage().map_or(0, |(_, rss)| rss);
            if rss > self.max_rss {
                return Some(format!(
                    "rss {}MB over reload-on-rss {}MB",
                    rss >> 20,
                    self.max_rss >> 20
                ));
            }
        }
        None
    }
}

/// Import the apps (logging the traceback once for each that fails): the default app
/// (`--wsgi-file`/`--module`, mountpoint `''`), then each `--mount`.
pub fn load_app(config: &Config) -> Result<Vec<(String, Py<PyAny>)>, String> {
    let specs = config.app.iter().map(|spec| (String::new(), spec)).chain(
        config
            .mounts
            .iter()
            .map(|(point, spec)| (point.clone(), spec)),
    );
    let mut apps = Vec::new();
    for (mountpoint, spec) in specs {
        let loaded = Python::attach(|py| match loader::load(py, spec) {
            Ok(app) => Ok(app),
            Err(e) => {
                e.display(py);
                Err(())
            }
        });
        match loaded {
            Ok(callable) => {
                tracing::info!(
                    "WSGI app {} (mountpoint='{mountpoint}') ready (pid: {})",
                    apps.len(),
                    std::process::id()
                );
                apps.push((mountpoint, callable));
            }
            Err(()) => {
                let what = match spec {
                    crate::config::AppSpec::File { path, .. } => path.display().to_string(),
                    crate::config::AppSpec::Module { module, .. } => module.clone(),
                };
                if config.need_app {
                    return Err(format!("cannot load the app from {what} (traceback above)"));
                }
                tracing::error!(
                    "cannot load the app from {what} (mountpoint='{mountpoint}'): its requests \
                     get an error until it is fixed (--need-app=false)"
                );
            }
        }
    }
    if config.py_warn_shared_globals {
        shared_globals::watch_app_modules(config.threads);
    }
    Ok(apps)
}

impl App {
    /// Build the per-process state around the loaded apps.
    pub fn new(
        config: &Config,
        apps: Vec<(String, Py<PyAny>)>,
        board: Arc<Scoreboard>,
    ) -> Result<App, String> {
        Python::attach(|py| {
            let wrapper = py.get_type::<file_wrapper::FileWrapper>().into_any();
            let routes = environ::Routes::new(
                apps.iter().map(|(point, _)| point.as_bytes().to_vec()),
                config.manage_script_name,
            );
            let environ = environ::EnvironTemplate::new(
                py,
                config.threads > 1,
                config.processes > 1,
                config.trust_forwarded,
                wrapper,
                routes,
            )?;
            Ok(App {
                apps,
                environ,
                timeout: config.socket_timeout,
                logging: config.logging,
                log_format: config.log_format.clone(),
                requests: AtomicU64::new(0),
                board,
                worker_id: 1,
                inflight: config
                    .harakiri
                    .map(|_| Arc::new(InFlight::new(config.threads))),
                memory_report: config.memory_report,
                recycle: Recycle::from_config(config),
                statics: config.http.statics.clone(),
            })
        })
        .map_err(|e: PyErr| format!("cannot build the WSGI environ template: {e}"))
    }
}

/// Warn when the app started threads at import: they do not exist in the forked workers.
pub fn warn_about_threads() {
    let count = Python::attach(|py| -> PyResult<usize> {
        py.import("threading")?
            .call_method0("active_count")?
            .extract()
    });
    if let Some(n) = count.ok().filter(|n| *n > 1) {
        tracing::warn!(
            "the app started {} thread(s) at import; they will not run in the forked workers \
             (start them again in a uwsgidecorators.postfork hook, or use --lazy-apps)",
            n - 1
        );
    }
}

/// `gc.freeze()`: every object tracked now goes to the permanent generation, which collections
/// skip. Called in the master before a fork, so a worker's collections never write to the
/// objects the app's import made (a collection writes to each object it visits) and those pages
/// stay shared with the master and the other workers. The import's garbage cycles, if any, stay
/// too: they were made once, in the master. A 2x1 Flask hello tree: 52 -> 38 MB PSS.
pub fn gc_freeze() {
    let frozen = Python::attach(|py| -> PyResult<()> {
        py.import("gc")?.call_method0("freeze")?;
        Ok(())
    });
    if let Err(e) = frozen {
        tracing::warn!("gc.freeze() failed before fork: {e}");
    }
}

pub use interpreter::fork;

/// The body of a Python thread: attach once, then serve requests until the worker stops. The
/// thread detaches only when its next request is not already there (it waits for one).
pub fn serve(app: Arc<App>, mut acceptor: Acceptor, core: usize) {
    Python::attach(|py| uwsgi_module::thread_started(py, core));
    // The next pipelined request on a kept-alive HTTP connection, when it is already here.
    let mut pipelined = None;
    Python::attach(|py| loop {
        let job = match pipelined.take() {
            Some(job) => job,
            None => match acceptor.try_next() {
                Next::Job(job) => job,
                Next::Done => break,
                Next::Wait => match py.detach(|| acceptor.wait()) {
                    Some(job) => job,
                    None => continue,
                },
            },
        };
        // A static file is sent without the GIL, and without running any Python.
        let job = if app.statics.is_empty() {
            job
        } else {
            use crate::server::statics::{serve as serve_static, Served};
            match py.detach(|| serve_static(&app.statics, job, app.timeout)) {
                Served::NotStatic(job) => job,
                Served::Done(kept) => {
                    pipelined = kept.and_then(|k| acceptor.keep_alive(k));
                    continue;
                }
            }
        };
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            respond::handle(py, &app, job, core)
        }));
        match served {
            Ok(Some(kept)) => pipelined = acceptor.keep_alive(kept),
            Ok(None) => {}
            Err(_) => {
                tracing::error!("a request handler panicked on core {core}; the thread goes on")
            }
        }
        let delta = app
            .board
            .worker(app.worker_id)
            .delta_requests
            .load(std::sync::atomic::Ordering::Relaxed);
        if let Some(reason) = app.recycle.due(app.worker_id, delta) {
            let source = acceptor.source();
            if !source.retire_requested() {
                tracing::info!(
                    "...The work of process {} (pid: {}) is done ({reason}). Seeya!",
                    app.worker_id,
                    std::process::id()
                );
            }
            source.request_retire();
        }
    });
}
