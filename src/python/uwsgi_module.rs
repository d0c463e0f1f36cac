//! The built-in `uwsgi` module (and rwsgi's own `uwsgidecorators`): what apps and libraries that
//! check `import uwsgi` find under uWSGI, with uWSGI's names and meanings for what rwsgi has.
//!
//! [`install`] is the one registration call: every start-up path makes it after the interpreter
//! starts and before the app is imported. The module lives in `sys.modules`, so it survives the
//! fork and is the same object in every worker. [`set_worker_id`], [`worker_started`] and
//! [`worker_stopping`] are the worker's life-cycle hooks (post-fork hooks, the signal thread,
//! `uwsgi.atexit`).
//!
//! What uWSGI has and rwsgi lacks (spooler, mules, caches, sharedarea, RPC, queues) is absent: the
//! module's `__getattr__` raises an `AttributeError` naming the feature, so `hasattr()` probes
//! say no and a call says why.

use crate::config::{AppSpec, Config};
use crate::scoreboard::Scoreboard;
use crate::usignal::{self, Schedule, Target};
use pyo3::exceptions::{PyAttributeError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The uWSGI release whose module this follows (libraries compare `version_info`).
const UWSGI_VERSION: (u32, u32, u32) = (2, 0, 30);

/// rwsgi's `uwsgidecorators`, compiled in so the standalone binary and a pip install both have it.
const DECORATORS: &str = include_str!("uwsgidecorators.py");

/// Makes the compiled-in Python modules importable (first on `sys.meta_path`, so rwsgi's
/// `uwsgidecorators` wins over uWSGI's copy in a venv that has uWSGI installed), loaded only when
/// imported, with their source in `linecache` for tracebacks.
const IMPORTER: &str = r#"
import sys
from importlib.machinery import ModuleSpec

# No importlib.abc/util: they import much of the standard library (C extensions included) into
# every process, even one whose app never imports uwsgidecorators.
class RwsgiModules:
    def __init__(self):
        self.sources = {}

    def find_spec(self, name, path=None, target=None):
        if name in self.sources:
            return ModuleSpec(name, self, origin=self.filename(name))

    def filename(self, name):
        return "<rwsgi>/%s.py" % name

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import linecache
        name = module.__name__
        filename = self.filename(name)
        source = self.sources[name]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)

_finder = RwsgiModules()

def install(name, source):
    _finder.sources[name] = source
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
"#;

/// How long a worker waits for `uwsgi.atexit` before exiting anyway.
const ATEXIT_WAIT: Duration = Duration::from_secs(5);

struct State {
    board: Arc<Scoreboard>,
    master: bool,
    master_pid: i32,
    module: Py<PyModule>,
}

static STATE: OnceLock<State> = OnceLock::new();
/// This process's worker id; 0 in the master (and before a worker knows its id).
static WORKER_ID: AtomicUsize = AtomicUsize::new(0);
/// Set once the worker stops: its signal thread runs no more handlers.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Signal handlers registered in this process (inherited by forked workers).
static HANDLERS: Mutex<Vec<(u8, Py<PyAny>)>> = Mutex::new(Vec::new());

thread_local! {
    /// The core (Python thread index) this thread serves, for `request_id()`.
    static CORE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn state() -> PyResult<&'static State> {
    STATE
        .get()
        .ok_or_else(|| PyRuntimeError::new_err("the uwsgi module is not initialised"))
}

/// Make `import uwsgi` and `import uwsgidecorators` work (the latter loads when imported: it
/// needs the master, as uWSGI's does). Call once per process, after the
/// interpreter starts and before the app is imported.
pub fn install(config: &Config, board: &Arc<Scoreboard>) -> Result<(), String> {
    super::stacks::set_verbose(config.harakiri_verbose);
    Python::attach(|py| -> PyResult<()> {
        let module = build(py, config)?;
        let modules = py.import("sys")?.getattr("modules")?;
        modules.set_item("uwsgi", &module)?;
        // With --lazy-apps a forked worker installs the module itself: its parent is the master.
        let master_pid = match (config.master, WORKER_ID.load(Ordering::Relaxed)) {
            (false, _) => 0,
            (true, 0) => std::process::id() as i32,
            (true, _) => std::os::unix::process::parent_id() as i32,
        };
        let _ = STATE.set(State {
            board: board.clone(),
            master: config.master,
            master_pid,
            module: module.clone().unbind(),
        });
        let importer = PyModule::from_code(
            py,
            &std::ffi::CString::new(IMPORTER)?,
            c"<rwsgi-importer>",
            c"_rwsgi_importer",
        )?;
        importer.call_method1("install", ("uwsgidecorators", DECORATORS))?;
        Ok(())
    })
    .or_else(|e| {
        // Not fatal: only an app that imports uwsgi needs it, and that import says so.
        Python::attach(|py| e.display(py));
        tracing::error!(
            "cannot install the uwsgi module (traceback above): `import uwsgi` will fail"
        );
        Ok(())
    })
}

fn build<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyModule>> {
    let m = PyModule::new(py, "uwsgi")?;
    let (a, b, c) = UWSGI_VERSION;
    m.add(
        "version",
        PyBytes::new(py, format!("{a}.{b}.{c}").as_bytes()),
    )?;
    m.add("version_info", (a, b, c, 0, "rwsgi"))?;
    m.add("rwsgi_version", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "hostname",
        PyBytes::new(py, crate::sys::host::hostname().as_bytes()),
    )?;
    m.add("numproc", config.processes)?;
    m.add("cores", config.threads)?;
    m.add("buffer_size", config.limits.buffer_size)?;
    m.add("started_on", crate::scoreboard::now_micros() / 1_000_000)?;
    m.add("opt", options(py, config)?)?;
    m.add("magic_table", PyDict::new(py))?;
    m.add("post_fork_hook", py.None())?;
    m.add("atexit", py.None())?;
    m.add("SPOOL_OK", -2)?;
    m.add("SPOOL_RETRY", -1)?;
    m.add("SPOOL_IGNORE", 0)?;
    m.add_function(wrap_pyfunction!(worker_id, &m)?)?;
    m.add_function(wrap_pyfunction!(masterpid, &m)?)?;
    m.add_function(wrap_pyfunction!(mule_id, &m)?)?;
    m.add_function(wrap_pyfunction!(i_am_the_spooler, &m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, &m)?)?;
    m.add_function(wrap_pyfunction!(request_id, &m)?)?;
    m.add_function(wrap_pyfunction!(workers, &m)?)?;
    m.add_function(wrap_pyfunction!(reload, &m)?)?;
    m.add_function(wrap_pyfunction!(stop, &m)?)?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add_function(wrap_pyfunction!(set_logvar, &m)?)?;
    m.add_function(wrap_pyfunction!(get_logvar, &m)?)?;
    m.add_function(wrap_pyfunction!(setprocname, &m)?)?;
    m.add_function(wrap_pyfunction!(lock, &m)?)?;
    m.add_function(wrap_pyfunction!(unlock, &m)?)?;
    m.add_function(wrap_pyfunction!(is_locked, &m)?)?;
    m.add_function(wrap_pyfunction!(accepting, &m)?)?;
    m.add_function(wrap_pyfunction!(register_signal, &m)?)?;
    m.add_function(wrap_pyfunction!(signal_registered, &m)?)?;
    m.add_function(wrap_pyfunction!(signal, &m)?)?;
    m.add_function(wrap_pyfunction!(add_timer, &m)?)?;
    m.add_function(wrap_pyfunction!(add_rb_timer, &m)?)?;
    m.add_function(wrap_pyfunction!(add_cron, &m)?)?;
    m.add_function(wrap_pyfunction!(add_file_monitor, &m)?)?;
    m.add_function(wrap_pyfunction!(set_user_harakiri, &m)?)?;
    m.add_function(wrap_pyfunction!(module_getattr, &m)?)?;
    Ok(m)
}

/// `uwsgi.opt`: the effective options under uWSGI's names. Values are bytes as uWSGI gives them
/// (`True` for a flag), a repeated option is a list. Truthful: `enable-threads` is set because
/// rwsgi always runs Python threads.
fn options<'py>(py: Python<'py>, c: &Config) -> PyResult<Bound<'py, PyDict>> {
    let opt = PyDict::new(py);
    let bytes = |s: &str| PyBytes::new(py, s.as_bytes());
    let set_list = |key: &str, values: Vec<String>| -> PyResult<()> {
        match values.len() {
            0 => Ok(()),
            1 => opt.set_item(key, bytes(&values[0])),
            _ => opt.set_item(key, PyList::new(py, values.iter().map(|v| bytes(v)))?),
        }
    };
    set_list("socket", c.sockets.iter().map(|s| s.to_string()).collect())?;
    match &c.app {
        Some(AppSpec::File { path, .. }) => {
            opt.set_item("wsgi-file", bytes(&path.display().to_string()))?
        }
        Some(AppSpec::Module { module, .. }) => opt.set_item("module", bytes(module))?,
        None => {}
    }
    opt.set_item("processes", bytes(&c.processes.to_string()))?;
    opt.set_item("workers", bytes(&c.processes.to_string()))?;
    opt.set_item("threads", bytes(&c.threads.to_string()))?;
    opt.set_item("enable-threads", true)?;
    opt.set_item("buffer-size", bytes(&c.limits.buffer_size.to_string()))?;
    opt.set_item("listen", bytes(&c.listen.to_string()))?;
    for (key, on) in [
        ("master", c.master),
        ("lazy-apps", c.lazy_apps),
        ("vacuum", c.vacuum),
        ("memory-report", c.memory_report),
        ("manage-script-name", c.manage_script_name),
    ] {
        if on {
            opt.set_item(key, true)?;
        }
    }
    if let Some(h) = c.harakiri {
        opt.set_item("harakiri", bytes(&h.as_secs().to_string()))?;
    }
    if c.max_requests > 0 {
        opt.set_item("max-requests", bytes(&c.max_requests.to_string()))?;
    }
    if let Some(dir) = &c.chdir {
        opt.set_item("chdir", bytes(&dir.display().to_string()))?;
    }
    if let Some(venv) = &c.virtualenv {
        opt.set_item("virtualenv", bytes(&venv.display().to_string()))?;
    }
    set_list(
        "pythonpath",
        c.pythonpath
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    )?;
    set_list(
        "env",
        c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )?;
    set_list(
        "mount",
        c.mounts
            .iter()
            .map(|(point, spec)| match spec {
                AppSpec::File { path, .. } => format!("{point}={}", path.display()),
                AppSpec::Module { module, .. } => format!("{point}={module}"),
            })
            .collect(),
    )?;
    if let Some(stats) = &c.stats {
        opt.set_item("stats", bytes(stats))?;
    }
    if let Some(pidfile) = &c.pidfile {
        opt.set_item("pidfile", bytes(&pidfile.display().to_string()))?;
    }
    Ok(opt)
}

/// What an absent uWSGI feature is called, for the error.
fn absent_feature(name: &str) -> Option<&'static str> {
    const FEATURES: &[(&str, &str)] = &[
        ("spool", "spooler"),
        ("spooler", "spooler"),
        ("mule", "mules"),
        ("farm", "mule farms"),
        ("cache", "caches"),
        ("sharedarea", "sharedareas"),
        ("queue", "queues"),
        ("rpc", "RPC"),
        ("register_rpc", "RPC"),
        ("call", "RPC"),
        ("alarm", "alarms"),
        ("snmp", "SNMP"),
        ("websocket", "websockets"),
        ("async", "async loop engines"),
        ("green", "async loop engines"),
        ("suspend", "async loop engines"),
        ("chunked", "chunked input"),
        ("offload", "offload threads"),
        ("route", "the internal router"),
        ("metric", "metrics"),
        ("send_to_spooler", "spooler"),
        ("in_farm", "mule farms"),
        ("sendfile", "uwsgi.sendfile (use wsgi.file_wrapper)"),
    ];
    FEATURES
        .iter()
        .find(|(prefix, _)| name == *prefix || name.starts_with(&format!("{prefix}_")))
        .map(|(_, what)| *what)
}

/// PEP 562 module `__getattr__`: only called for names the module lacks.
#[pyfunction]
#[pyo3(name = "__getattr__")]
fn module_getattr(name: &str) -> PyResult<Py<PyAny>> {
    let why = match absent_feature(name) {
        Some(what) => format!("module 'uwsgi' has no attribute '{name}': rwsgi has no {what}"),
        None => format!(
            "module 'uwsgi' has no attribute '{name}' (rwsgi's uwsgi module offers what rwsgi \
             implements; see its README, \"For libraries: the uwsgi module\")"
        ),
    };
    Err(PyAttributeError::new_err(why))
}

#[pyfunction]
fn worker_id() -> usize {
    WORKER_ID.load(Ordering::Relaxed)
}

/// The master's pid, 0 without a master (as uWSGI).
#[pyfunction]
fn masterpid() -> PyResult<i32> {
    Ok(state()?.master_pid)
}

/// rwsgi has no mules: no process is one.
#[pyfunction]
fn mule_id() -> u32 {
    0
}

/// rwsgi has no spooler: no process is it.
#[pyfunction]
fn i_am_the_spooler() -> bool {
    false
}

#[pyfunction]
fn total_requests() -> PyResult<u64> {
    Ok(state()?.board.totals().requests.load(Ordering::Relaxed))
}

/// The running request's number on its thread (uWSGI's per-core request counter).
#[pyfunction]
fn request_id() -> PyResult<u64> {
    let wid = WORKER_ID.load(Ordering::Relaxed);
    match CORE.with(|c| c.get()) {
        Some(core) if wid > 0 => Ok(state()?
            .board
            .core(wid, core)
            .requests
            .load(Ordering::Relaxed)),
        _ => Err(PyRuntimeError::new_err(
            "uwsgi.request_id() is only meaningful while a request runs",
        )),
    }
}

/// The stats structure: one dict per worker, uWSGI's keys.
#[pyfunction]
fn workers(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let board = &state()?.board;
    let mut out = Vec::with_capacity(board.workers());
    for id in 1..=board.workers() {
        let w = board.worker(id);
        let busy = (0..board.threads())
            .any(|c| board.core(id, c).request_start.load(Ordering::Relaxed) != 0);
        let requests = w.requests.load(Ordering::Relaxed);
        let running = w.running_time.load(Ordering::Relaxed);
        let d = PyDict::new(py);
        d.set_item("id", id)?;
        d.set_item("pid", w.pid.load(Ordering::Relaxed))?;
        d.set_item("requests", requests)?;
        d.set_item("delta_requests", w.delta_requests.load(Ordering::Relaxed))?;
        d.set_item("signals", 0)?;
        d.set_item("exceptions", w.exceptions.load(Ordering::Relaxed))?;
        d.set_item("status", if busy { "busy" } else { "idle" })?;
        d.set_item("rss", w.rss.load(Ordering::Relaxed))?;
        d.set_item("vsz", w.vsz.load(Ordering::Relaxed))?;
        d.set_item("running_time", running)?;
        d.set_item("last_spawn", w.last_spawn.load(Ordering::Relaxed))?;
        d.set_item("respawn_count", w.respawn_count.load(Ordering::Relaxed) + 1)?;
        d.set_item("tx", w.tx.load(Ordering::Relaxed))?;
        d.set_item("avg_rt", running.checked_div(requests).unwrap_or(0))?;
        d.set_item("apps", PyTuple::empty(py))?;
        out.push(d);
    }
    PyTuple::new(py, out)
}

fn signal_master(py: Python<'_>, signal: &str) -> PyResult<bool> {
    let st = state()?;
    let pid = if st.master {
        st.master_pid
    } else {
        std::process::id() as i32
    };
    let signum = py.import("signal")?.getattr(signal)?;
    py.import("os")?.call_method1("kill", (pid, signum))?;
    Ok(true)
}

/// Graceful reload, as SIGHUP to the master.
#[pyfunction]
fn reload(py: Python<'_>) -> PyResult<bool> {
    signal_master(py, "SIGHUP")
}

/// Stop the instance, as uWSGI's `stop()` (SIGQUIT to the master: a fast shutdown).
#[pyfunction]
fn stop(py: Python<'_>) -> PyResult<bool> {
    signal_master(py, "SIGQUIT")
}

#[pyfunction]
fn log(message: &str) -> bool {
    tracing::info!("{}", message.trim_end_matches('\n'));
    true
}

fn text_or_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(value.str()?.to_string().into_bytes())
}

/// Set `%(key)` for this request's `--log-format` line.
#[pyfunction]
fn set_logvar(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    crate::log::logvars::set(&text_or_bytes(key)?, &text_or_bytes(value)?);
    Ok(())
}

#[pyfunction]
fn get_logvar<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    Ok(crate::log::logvars::get(&text_or_bytes(key)?).map(|v| PyBytes::new(py, &v)))
}

/// Name this process as `ps` and `top` show it (as `--procname` does).
#[pyfunction]
fn setprocname(name: &str) -> PyResult<()> {
    crate::sys::process::set_title(name)
        .map_err(|e| PyRuntimeError::new_err(format!("setprocname: {e}")))
}

fn user_lock(n: usize) -> PyResult<&'static usignal::UserLock> {
    state()?.board.usignal().user_lock(n).ok_or_else(|| {
        PyValueError::new_err(format!(
            "Invalid lock number {n}: rwsgi has locks 0 to {}",
            usignal::USER_LOCKS - 1
        ))
    })
}

/// Take user lock `n`, shared by every thread of every worker (the GIL is released while waiting).
#[pyfunction]
#[pyo3(signature = (n=0))]
fn lock(py: Python<'_>, n: usize) -> PyResult<()> {
    let l = user_lock(n)?;
    if l.held_here() {
        return Err(PyRuntimeError::new_err(format!(
            "uwsgi.lock({n}): this thread already holds it (the lock is not re-entrant)"
        )));
    }
    py.detach(|| l.lock());
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (n=0))]
fn unlock(n: usize) -> PyResult<()> {
    user_lock(n)?.unlock();
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (n=0))]
fn is_locked(n: usize) -> PyResult<bool> {
    Ok(user_lock(n)?.is_locked())
}

/// uWSGI's readiness flag for chain reloads. An rwsgi worker marks itself accepting when it starts
/// serving, so `accepting()` / `accepting(True)` confirm what is already so; a worker that stops
/// accepting is replaced by the master, so `accepting(False)` is refused rather than ignored.
#[pyfunction]
#[pyo3(signature = (accepting=true))]
fn accepting(accepting: bool) -> PyResult<()> {
    if accepting {
        Ok(())
    } else {
        Err(PyValueError::new_err(
            "uwsgi.accepting(False): rwsgi replaces a worker that stops accepting; not supported",
        ))
    }
}

fn need_master(what: &str) -> PyResult<&'static State> {
    let st = state()?;
    if st.master {
        Ok(st)
    } else {
        Err(PyRuntimeError::new_err(format!(
            "uwsgi.{what} needs the master process (--master)"
        )))
    }
}

#[pyfunction]
fn register_signal(signum: u8, target: &str, handler: Bound<'_, PyAny>) -> PyResult<()> {
    let st = need_master("register_signal")?;
    if !handler.is_callable() {
        return Err(PyValueError::new_err("the signal handler must be callable"));
    }
    let target = Target::parse(target).map_err(PyValueError::new_err)?;
    st.board
        .usignal()
        .register(signum, target)
        .map_err(PyValueError::new_err)?;
    let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    handlers.retain(|(s, _)| *s != signum);
    handlers.push((signum, handler.unbind()));
    tracing::info!(
        "[uwsgi-signal] signum {signum} registered (wid: {} target: {target:?})",
        WORKER_ID.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Whether this process has a handler for `signum` (uWSGI keeps a table per worker: with
/// `--lazy-apps` each worker registers its own, and picks the same free numbers).
#[pyfunction]
fn signal_registered(signum: u8) -> bool {
    HANDLERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(s, _)| *s == signum)
}

/// Raise signal `signum` towards its registered target.
#[pyfunction]
#[pyo3(signature = (signum, remote=None))]
fn signal(signum: u8, remote: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    if remote.is_some() {
        return Err(PyValueError::new_err(
            "uwsgi.signal(signum, remote): rwsgi has no remote signals",
        ));
    }
    state()?
        .board
        .raise_signal(signum)
        .map_err(PyValueError::new_err)
}

fn add(what: &str, signum: u8, schedule: Schedule, path: &[u8]) -> PyResult<()> {
    need_master(what)?
        .board
        .usignal()
        .add(signum, schedule, path)
        .map_err(|e| PyValueError::new_err(format!("unable to add {what}: {e}")))
}

#[pyfunction]
fn add_timer(signum: u8, secs: u32) -> PyResult<()> {
    let every = Schedule::Every {
        secs,
        iterations: 0,
    };
    add("timer", signum, every, b"")
}

#[pyfunction]
#[pyo3(signature = (signum, secs, iterations=0))]
fn add_rb_timer(signum: u8, secs: u32, iterations: u32) -> PyResult<()> {
    add(
        "rb_timer",
        signum,
        Schedule::Every { secs, iterations },
        b"",
    )
}

#[pyfunction]
fn add_cron(
    signum: u8,
    minute: i32,
    hour: i32,
    day: i32,
    month: i32,
    weekday: i32,
) -> PyResult<()> {
    let fields = [minute, hour, day, month, weekday];
    add("cron", signum, Schedule::Cron(fields), b"")
}

#[pyfunction]
fn add_file_monitor(signum: u8, path: &str) -> PyResult<()> {
    add(
        "file_monitor",
        signum,
        Schedule::FileMonitor,
        path.as_bytes(),
    )
}

/// Per-core deadlines of `uwsgi.set_user_harakiri` (what `@harakiri` uses).
static USER_HARAKIRI: Mutex<Vec<(usize, std::time::Instant, u32)>> = Mutex::new(Vec::new());
static USER_HARAKIRI_WATCH: std::sync::Once = std::sync::Once::new();

/// `uwsgi.set_user_harakiri(secs)`: kill this worker (the master replaces it) if the running
/// request is still at it after `secs` seconds; 0 cancels. The harakiri log names the request's
/// Python stack, as `--harakiri` does.
#[pyfunction]
fn set_user_harakiri(secs: u32) -> PyResult<()> {
    let Some(core) = CORE.with(|c| c.get()) else {
        return Err(PyRuntimeError::new_err(
            "uwsgi.set_user_harakiri() works in a request thread only",
        ));
    };
    let mut table = USER_HARAKIRI.lock().unwrap_or_else(|e| e.into_inner());
    table.retain(|(c, _, _)| *c != core);
    if secs > 0 {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs.into());
        table.push((core, deadline, secs));
        USER_HARAKIRI_WATCH.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("rwsgi-harakiri".into())
                .spawn(user_harakiri_watch);
        });
    }
    Ok(())
}

fn user_harakiri_watch() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = std::time::Instant::now();
        let expired = USER_HARAKIRI
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, deadline, _)| *deadline <= now)
            .copied();
        if let Some((core, _, secs)) = expired {
            tracing::error!(
                "*** HARAKIRI ON WORKER {} (pid: {}, core {core}): a call ran past its \
                 @harakiri({secs}) ***",
                WORKER_ID.load(Ordering::Relaxed),
                std::process::id()
            );
            super::stacks::report_stuck_and_wait(core);
            let _ = signal_hook::low_level::raise(libc::SIGKILL);
        }
    }
}

/// In a forked worker: record its id (before a `--lazy-apps` import, so the app sees it).
pub fn set_worker_id(id: usize) {
    WORKER_ID.store(id, Ordering::Relaxed);
}

/// Whether the calling thread is a request thread (the shared-globals watcher's test).
pub fn in_request_thread() -> bool {
    CORE.with(|c| c.get().is_some())
}

/// Record which core the calling Python thread serves (once per thread, at its start).
pub fn thread_started(py: Python<'_>, core: usize) {
    CORE.with(|c| c.set(Some(core)));
    super::stacks::thread_started(py, core);
}

/// A worker is about to accept: run the post-fork hook (`uwsgi.post_fork_hook`, which
/// `uwsgidecorators.postfork` chains onto), start the signal thread and the stack-dump signal.
pub fn worker_started(worker_id: usize) {
    WORKER_ID.store(worker_id, Ordering::Relaxed);
    let Some(st) = STATE.get() else { return };
    Python::attach(|py| {
        let hook = st.module.bind(py).getattr("post_fork_hook");
        if let Some(hook) = hook.ok().filter(|h| !h.is_none()) {
            if let Err(e) = hook.call0() {
                tracing::error!("uwsgi.post_fork_hook raised in worker {worker_id}:");
                e.display(py);
            }
        }
    });
    if let Some(rx) = st.board.hub().receiver(worker_id) {
        match rx.try_clone() {
            Ok(rx) => {
                let spawned = std::thread::Builder::new()
                    .name("rwsgi-signals".into())
                    .spawn(move || signal_thread(rx, worker_id));
                if let Err(e) = spawned {
                    tracing::error!("cannot start the uwsgi signal thread: {e}");
                }
            }
            Err(e) => tracing::error!("cannot start the uwsgi signal thread: {e}"),
        }
    }
    super::stacks::watch_usr2(st.board.clone(), worker_id);
}

/// Read raised signals and run their handlers, one at a time, beside the request threads.
fn signal_thread(rx: std::os::unix::net::UnixDatagram, worker_id: usize) {
    let mut buf = [0u8; 16];
    while let Ok(n) = rx.recv(&mut buf) {
        if n == 0 || STOPPING.load(Ordering::SeqCst) {
            continue;
        }
        let signum = buf[0];
        Python::attach(|py| {
            let handler = HANDLERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(s, _)| *s == signum)
                .map(|(_, h)| h.clone_ref(py));
            match handler {
                Some(handler) => {
                    if let Err(e) = handler.call1(py, (signum,)) {
                        tracing::error!(
                            "uwsgi signal {signum} handler raised in worker {worker_id}:"
                        );
                        e.display(py);
                    }
                }
                None => tracing::warn!(
                    "worker {worker_id} got uwsgi signal {signum} but has no handler for it"
                ),
            }
        });
    }
}

/// The worker stops: run `uwsgi.atexit` (bounded by `ATEXIT_WAIT`, since a thread stuck in a
/// request may hold the GIL), and run no more signal handlers.
pub fn worker_stopping() {
    super::stacks::wait_for_reports();
    STOPPING.store(true, Ordering::SeqCst);
    let Some(st) = STATE.get() else { return };
    let module = Python::attach(|py| st.module.clone_ref(py));
    let (done, wait) = std::sync::mpsc::channel();
    let run = move || {
        Python::attach(|py| {
            let hook = module.bind(py).getattr("atexit");
            if let Some(hook) = hook.ok().filter(|h| !h.is_none()) {
                if let Err(e) = hook.call0() {
                    tracing::error!("uwsgi.atexit raised:");
                    e.display(py);
                }
            }
        });
        let _ = done.send(());
    };
    if std::thread::Builder::new()
        .name("rwsgi-atexit".into())
        .spawn(run)
        .is_ok()
        && wait.recv_timeout(ATEXIT_WAIT).is_err()
    {
        tracing::warn!(
            "uwsgi.atexit still running after {}s: exiting without it",
            ATEXIT_WAIT.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::absent_feature;

    #[test]
    fn absent_features_are_named() {
        assert_eq!(absent_feature("cache_get"), Some("caches"));
        assert_eq!(absent_feature("spool"), Some("spooler"));
        assert_eq!(absent_feature("mule_msg"), Some("mules"));
        assert_eq!(absent_feature("sharedarea_read"), Some("sharedareas"));
        assert_eq!(absent_feature("cachedir"), None);
    }
}
