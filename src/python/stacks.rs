//! "Where did it hang?": the Python stack of a request thread, logged when the harakiri watchdog
//! gives up on its request, and for every busy thread on `kill -USR2 <worker pid>` (uWSGI's "print
//! worker status" signal), without stopping the worker.
//!
//! Each Python thread records its `threading.get_ident()` when it starts; a dump looks the thread
//! up in `sys._current_frames()` and names the request from the WSGI environ found in the stack's
//! outermost frames, so serving a request costs nothing extra.

use crate::scoreboard::{now_micros, Scoreboard};
use pyo3::prelude::*;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long the harakiri watchdog waits for a stack before the worker goes on without it (a thread
/// stuck in C code while holding the GIL lets no dump run).
const STUCK_WAIT: Duration = Duration::from_secs(2);

/// The Python half: find a thread's frame and the request it serves.
const HELPER: &str = r#"
import sys, traceback

def _request_of(frame):
    found = None
    while frame is not None:
        try:
            for value in frame.f_locals.values():
                if isinstance(value, dict) and "REQUEST_METHOD" in value and "wsgi.input" in value:
                    found = value
        except Exception:
            pass
        frame = frame.f_back
    if found is None:
        return None
    uri = found.get("REQUEST_URI") or found.get("PATH_INFO", "")
    return "%s %s" % (found.get("REQUEST_METHOD"), uri)

def stack_of(ident):
    frame = sys._current_frames().get(ident)
    if frame is None:
        return None, None
    return _request_of(frame), "".join(traceback.format_stack(frame))
"#;

/// `--harakiri-verbose`: a harakiri also dumps every other busy thread.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// This worker's board and id, for the verbose dump.
static WORKER: OnceLock<(Arc<Scoreboard>, usize)> = OnceLock::new();

/// Set `--harakiri-verbose`.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// Each core's Python thread ident.
static THREADS: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());
static HELPER_MODULE: OnceLock<Py<PyModule>> = OnceLock::new();

/// Record the calling Python thread as core `core`'s.
pub fn thread_started(py: Python<'_>, core: usize) {
    let ident = py
        .import("threading")
        .and_then(|t| t.call_method0("get_ident"))
        .and_then(|i| i.extract::<u64>());
    if let Ok(ident) = ident {
        let mut threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|(c, _)| *c != core);
        threads.push((core, ident));
    }
}

fn ident_of(core: usize) -> Option<u64> {
    THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(c, _)| *c == core)
        .map(|(_, i)| *i)
}

fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if let Some(m) = HELPER_MODULE.get() {
        return Ok(m.bind(py).clone());
    }
    let m = PyModule::from_code(
        py,
        &std::ffi::CString::new(HELPER)?,
        c"<rwsgi-stacks>",
        c"_rwsgi_stacks",
    )?;
    let _ = HELPER_MODULE.set(m.clone().unbind());
    Ok(m)
}

/// The request core `core` runs (when its stack shows one) and its Python stack.
fn stack(py: Python<'_>, core: usize) -> Option<(Option<String>, String)> {
    let ident = ident_of(core)?;
    let found = helper(py)
        .and_then(|h| h.call_method1("stack_of", (ident,)))
        .and_then(|r| r.extract::<(Option<String>, Option<String>)>());
    match found {
        Ok((request, Some(stack))) => Some((request, stack)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("cannot read the stack of core {core}: {e}");
            None
        }
    }
}

/// Dumps started by the harakiri watchdog that the worker waits for before it exits.
static PENDING: Mutex<Vec<std::sync::mpsc::Receiver<()>>> = Mutex::new(Vec::new());

/// Log core `core`'s stack: the harakiri watchdog gave up on its request. Returns at once (the
/// event loop must go on and stop accepting); the worker waits for the dump before it exits
/// ([`wait_for_reports`]).
pub fn report_stuck(core: usize) {
    if let Some(done) = spawn_report(core) {
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).push(done);
    }
}

/// Log core `core`'s stack and wait for it (at most `STUCK_WAIT`).
pub fn report_stuck_and_wait(core: usize) {
    if let Some(done) = spawn_report(core) {
        let _ = done.recv_timeout(STUCK_WAIT);
    }
}

/// Wait (at most `STUCK_WAIT` in all) for the harakiri dumps still being written.
pub fn wait_for_reports() {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    let deadline = std::time::Instant::now() + STUCK_WAIT;
    for done in pending {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done.recv_timeout(left).is_err() {
            tracing::error!(
                "a harakiri stack dump did not finish within {}s (a thread holds the GIL in C \
                 code?)",
                STUCK_WAIT.as_secs()
            );
            return;
        }
    }
}

fn spawn_report(core: usize) -> Option<std::sync::mpsc::Receiver<()>> {
    let (done, wait) = std::sync::mpsc::channel();
    let dump = move || {
        if let Some((_, stack)) = Python::attach(|py| stack(py, core)) {
            tracing::error!(
                "HARAKIRI core {core} (pid: {}) was here (most recent call last):\n{}",
                std::process::id(),
                stack.trim_end()
            );
        }
        if let (true, Some((board, worker_id))) = (VERBOSE.load(Ordering::Relaxed), WORKER.get()) {
            dump_busy(board, *worker_id, "harakiri (--harakiri-verbose)");
        }
        let _ = done.send(());
    };
    std::thread::Builder::new()
        .name("rwsgi-stack".into())
        .spawn(dump)
        .ok()
        .map(|_| wait)
}

/// Log every busy thread's request and stack.
pub fn dump_busy(board: &Scoreboard, worker_id: usize, why: &str) {
    let now = now_micros();
    let busy: Vec<(usize, u64)> = (0..board.threads())
        .map(|core| {
            (
                core,
                board
                    .core(worker_id, core)
                    .request_start
                    .load(Ordering::Relaxed),
            )
        })
        .filter(|(_, start)| *start != 0)
        .collect();
    let mut out = format!(
        "*** stack dump of worker {worker_id} (pid: {}) on {why}: {} of {} thread(s) busy ***",
        std::process::id(),
        busy.len(),
        board.threads()
    );
    Python::attach(|py| {
        for (core, start) in busy {
            let secs = now.saturating_sub(start) as f64 / 1e6;
            let (request, stack) = stack(py, core).unwrap_or((None, String::new()));
            let request = request.unwrap_or_else(|| "a request".into());
            out.push_str(&format!(
                "\ncore {core}: {request} running for {secs:.1}s (most recent call last):\n{}",
                stack.trim_end()
            ));
        }
    });
    tracing::warn!("{out}");
}

/// Dump the busy threads on each SIGUSR2 this worker gets, from a thread of its own.
pub fn watch_usr2(board: Arc<Scoreboard>, worker_id: usize) {
    let _ = WORKER.set((board.clone(), worker_id));
    let pipe = std::os::unix::net::UnixStream::pair().and_then(|(mut read, write)| {
        signal_hook::low_level::pipe::register(libc::SIGUSR2, write)?;
        std::thread::Builder::new()
            .name("rwsgi-usr2".into())
            .spawn(move || {
                let mut buf = [0u8; 16];
                while matches!(read.read(&mut buf), Ok(n) if n > 0) {
                    dump_busy(&board, worker_id, "SIGUSR2");
                }
            })?;
        Ok(())
    });
    if let Err(e) = pipe {
        tracing::warn!("cannot watch SIGUSR2 for stack dumps: {e}");
    }
    crate::request::set_stuck_reporter(Box::new(report_stuck));
}
