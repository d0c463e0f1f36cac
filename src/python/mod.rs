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
use crate::recycle::{self, Policy};
use crate::request::{Next, Source};
use crate::scoreboard::Scoreboard;
use pyo3::prelude::*;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What a Python thread needs to serve requests.
pub struct App {
    /// The loaded apps, `(mountpoint, callable)`: the default app (mountpoint `''`) first, then
    /// the `--mount`ed ones. The index is the log line's `app: N`. Empty only with
    /// `--need-app=false` after every import failed: requests get 500.
    pub apps: Vec<(String, Py<PyAny>)>,
    /// What every request's environ is built from: the template dict, the interned keys and
    /// the mount routes.
    pub environ: environ::EnvironTemplate,
    /// Which requests get a log line.
    pub logging: crate::config::LogRules,
    /// `--log-format`, parsed at startup; `None` writes uWSGI's default line.
    pub log_format: Option<crate::log::LogFormat>,
    /// Requests served by this process.
    pub requests: AtomicU64,
    /// Counters shared with the master.
    pub board: Arc<Scoreboard>,
    /// This process's worker id (1-based), set after fork.
    pub worker_id: usize,
    /// `--memory-report`: the log line carries RSS and address space.
    pub memory_report: bool,
    /// When this worker retires itself.
    pub recycle: Policy,
    /// When this worker started serving (for `--min-worker-lifetime`).
    pub since: std::time::Instant,
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
                logging: config.logging,
                log_format: config.log_format.clone(),
                requests: AtomicU64::new(0),
                board,
                worker_id: 1,
                memory_report: config.memory_report,
                recycle: Policy::from_config(config),
                since: std::time::Instant::now(),
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

/// The body of a Python thread: attach once, then serve requests from `source` until the worker
/// stops. The thread detaches only when its next request is not already there (it waits for one).
pub fn serve<S: Source>(app: Arc<App>, mut source: S, core: usize) {
    Python::attach(|py| uwsgi_module::thread_started(py, core));
    Python::attach(|py| loop {
        let request = match source.try_next() {
            Next::Request(request) => request,
            Next::Done => break,
            Next::Wait => match py.detach(|| source.wait()) {
                Some(request) => request,
                None => continue,
            },
        };
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            respond::handle(py, &app, request, core, &mut source);
        }));
        if served.is_err() {
            tracing::error!("a request handler panicked on core {core}; the thread goes on");
        }
        if app.recycle.any() {
            retire_if_due(&app, &source);
        }
    });
}

/// Retire this worker when the recycling policy says so (checked after each request).
fn retire_if_due<S: Source>(app: &App, source: &S) {
    let worker = recycle::Worker {
        id: app.worker_id,
        served: app
            .board
            .worker(app.worker_id)
            .delta_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        lived: app.since.elapsed(),
    };
    let rss = || crate::log::memory_usage().map_or(0, |(_, rss)| rss);
    if let Some(reason) = app.recycle.due(worker, rss) {
        if source.retire() {
            tracing::info!(
                "...The work of process {} (pid: {}) is done ({reason}). Seeya!",
                app.worker_id,
                std::process::id()
            );
        }
    }
}
