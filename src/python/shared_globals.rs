//! `--py-warn-shared-globals`: the seed's pitfall caught at run time. Module globals are shared by
//! every thread of a worker (and each worker has its own copy), so request code that rebinds one
//! (`global COUNT; COUNT = COUNT * 2`) or mutates a module-level dict races with its sibling
//! threads and disagrees with the other workers. With the flag, CPython 3.12's dict watchers watch
//! the `__dict__` of the app's own modules (not the standard library's or site-packages') and the
//! dicts they hold at module level; the first time a request thread changes one, the log names the
//! module, the global, and the file and line of the request code, once per global.
//!
//! Meant for development and staging: every change to a watched dict pays a callback (see the
//! flag's help for the measured cost). On Python 3.11 and older the flag only says so.

use pyo3::prelude::*;

/// Watch the app's modules, after the app is imported (in the master, or in each worker with
/// `--lazy-apps`); `threads` is how many request threads share each worker's globals.
pub fn watch_app_modules(threads: usize) {
    Python::attach(|py| {
        let version = py.version_info();
        if (version.major, version.minor) < (3, 12) || !imp::AVAILABLE {
            tracing::warn!(
                "--py-warn-shared-globals needs CPython 3.12 or later (dict watchers); this is \
                 Python {}.{}.{}: no warnings will be given",
                version.major,
                version.minor,
                version.patch
            );
            return;
        }
        match app_dicts(py) {
            Ok(dicts) => imp::watch(py, dicts, threads),
            Err(e) => {
                tracing::warn!("--py-warn-shared-globals: cannot list the app's modules: {e}")
            }
        }
    });
}

/// One watched dict: a module's globals, or a dict bound to one of its globals.
#[cfg_attr(not(Py_3_12), allow(dead_code))]
pub struct Watched {
    dict: Py<PyAny>,
    module: String,
    /// `None` for the module's own `__dict__`, else the global holding the dict.
    global: Option<String>,
}

/// The app's modules: imported from a file outside the standard library and site-packages.
const FIND_APP_DICTS: &str = r#"
import sys, sysconfig, os

def app_dicts():
    skip = {os.path.realpath(p) for p in sysconfig.get_paths().values() if p}
    skip |= {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name in ("uwsgi", "uwsgidecorators", "__main__"):
            continue
        real = os.path.realpath(path)
        if "site-packages" in real or "dist-packages" in real:
            continue
        if any(real.startswith(p + os.sep) for p in skip):
            continue
        out.append((module.__dict__, name, None))
        for key, value in list(vars(module).items()):
            if type(value) is dict and not key.startswith("__"):
                out.append((value, name, key))
    return out
"#;

fn app_dicts(py: Python<'_>) -> PyResult<Vec<Watched>> {
    let helper = PyModule::from_code(
        py,
        &std::ffi::CString::new(FIND_APP_DICTS)?,
        c"<rwsgi-shared-globals>",
        c"_rwsgi_shared_globals",
    )?;
    let found: Vec<(Py<PyAny>, String, Option<String>)> =
        helper.call_method0("app_dicts")?.extract()?;
    Ok(found
        .into_iter()
        .map(|(dict, module, global)| Watched {
            dict,
            module,
            global,
        })
        .collect())
}

#[cfg(Py_3_12)]
mod imp {
    use super::Watched;
    use pyo3::ffi;
    use pyo3::prelude::*;
    use std::collections::{HashMap, HashSet};
    use std::os::raw::c_int;
    use std::sync::Mutex;

    pub const AVAILABLE: bool = true;

    // PyDict_WatchEvent values (Include/cpython/dictobject.h).
    const ADDED: c_int = 0;
    const MODIFIED: c_int = 1;
    const DELETED: c_int = 2;
    const CLONED: c_int = 3;
    const CLEARED: c_int = 4;
    const DEALLOCATED: c_int = 5;

    type Callback = unsafe extern "C" fn(
        c_int,
        *mut ffi::PyObject,
        *mut ffi::PyObject,
        *mut ffi::PyObject,
    ) -> c_int;

    extern "C" {
        // Skipped by pyo3-ffi (it takes a callback type it does not declare).
        fn PyDict_AddWatcher(callback: Callback) -> c_int;
    }

    struct Table {
        dicts: HashMap<usize, Watched>,
        /// (dict, key object) pairs already reported, checked first so a global reported once
        /// costs a lookup and no allocation (global names are interned strings).
        seen: HashSet<(usize, usize)>,
        /// (dict, global name) pairs already reported: each is logged once.
        reported: HashSet<(usize, String)>,
        threads: usize,
    }

    static TABLE: Mutex<Option<Table>> = Mutex::new(None);

    pub fn watch(py: Python<'_>, dicts: Vec<Watched>, threads: usize) {
        // SAFETY: the GIL is held; the callback is a valid `extern "C"` function for the
        // interpreter's whole life.
        let id = unsafe { PyDict_AddWatcher(on_change) };
        if id < 0 {
            if let Some(e) = PyErr::take(py) {
                tracing::warn!("--py-warn-shared-globals: no dict watcher left: {e}");
            }
            return;
        }
        let mut table = HashMap::new();
        for w in dicts {
            let ptr = w.dict.as_ptr();
            // SAFETY: the GIL is held and `ptr` is a live dict (we hold a reference to it).
            if unsafe { ffi::PyDict_Watch(id, ptr) } == 0 {
                table.insert(ptr as usize, w);
            }
        }
        tracing::info!(
            "--py-warn-shared-globals: watching {} module dict(s) of the app",
            table.len()
        );
        *TABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Table {
            dicts: table,
            seen: HashSet::new(),
            reported: HashSet::new(),
            threads,
        });
    }

    /// The dict watcher. Runs with the GIL held, on every change to a watched dict; returns 0
    /// (never raises). Only changes made by a request thread are reported.
    unsafe extern "C" fn on_change(
        event: c_int,
        dict: *mut ffi::PyObject,
        key: *mut ffi::PyObject,
        _new: *mut ffi::PyObject,
    ) -> c_int {
        if event == DEALLOCATED {
            if let Ok(mut table) = TABLE.lock() {
                if let Some(t) = table.as_mut() {
                    t.dicts.remove(&(dict as usize));
                }
            }
            return 0;
        }
        if event == CLONED || !super::super::uwsgi_module::in_request_thread() {
            return 0;
        }
        {
            let Ok(mut guard) = TABLE.lock() else {
                return 0;
            };
            let Some(table) = guard.as_mut() else {
                return 0;
            };
            let Some(watched) = table.dicts.get(&(dict as usize)) else {
                return 0;
            };
            // A mutated module-level dict is reported once whatever the key.
            let id = (
                dict as usize,
                if watched.global.is_some() {
                    0
                } else {
                    key as usize
                },
            );
            if !table.seen.insert(id) {
                return 0;
            }
        }
        // SAFETY: CPython calls the watcher with the GIL held.
        let py = unsafe { Python::assume_attached() };
        let key = if key.is_null() {
            None
        } else {
            // SAFETY: `key` is a live object for the duration of the callback.
            let key = unsafe { Bound::from_borrowed_ptr(py, key) };
            key.str().ok().map(|s| s.to_string())
        };
        report(py, event, dict as usize, key);
        0
    }

    fn report(py: Python<'_>, event: c_int, dict: usize, key: Option<String>) {
        let Ok(mut guard) = TABLE.lock() else { return };
        let Some(table) = guard.as_mut() else { return };
        let Some(watched) = table.dicts.get(&dict) else {
            return;
        };
        let (name, what) = match (&watched.global, event) {
            (None, ADDED | MODIFIED | DELETED) => {
                let Some(key) = key else { return };
                let verb = match event {
                    ADDED => "binds new module global",
                    MODIFIED => "rebinds module global",
                    _ => "deletes module global",
                };
                (key.clone(), format!("{verb} {}.{key}", watched.module))
            }
            (None, CLEARED) => (
                "*".to_string(),
                format!("clears the globals of {}", watched.module),
            ),
            (None, _) => return,
            (Some(global), _) => (
                global.clone(),
                format!("mutates the module-level dict {}.{global}", watched.module),
            ),
        };
        if !table.reported.insert((dict, name)) {
            return;
        }
        let threads = table.threads;
        drop(guard);
        tracing::warn!(
            "shared global: request code {what} at {}; module globals are shared by the {threads} \
             thread(s) of this worker (a race without a lock) and each worker process has its own \
             copy (requests served by another worker see another value)",
            caller(py)
        );
    }

    /// `file:line (in function)` of the Python code running now.
    fn caller(py: Python<'_>) -> String {
        // SAFETY: GIL held; the frame is borrowed for this call only.
        let frame = unsafe { ffi::PyEval_GetFrame() };
        if frame.is_null() {
            return "an unknown place".into();
        }
        // SAFETY: `frame` is a live frame; PyFrame_GetCode returns a new reference we own.
        let (line, code) = unsafe {
            (
                ffi::PyFrame_GetLineNumber(frame),
                Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame).cast()),
            )
        };
        let attr = |name: &str| {
            code.getattr(name)
                .and_then(|v| v.extract::<String>())
                .unwrap_or_default()
        };
        format!("{}:{line} (in {})", attr("co_filename"), attr("co_name"))
    }
}

#[cfg(not(Py_3_12))]
mod imp {
    use super::Watched;
    use pyo3::prelude::*;

    pub const AVAILABLE: bool = false;

    pub fn watch(_py: Python<'_>, _dicts: Vec<Watched>, _threads: usize) {}
}
