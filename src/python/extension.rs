//! The pip-installed entry: the extension module `rwsgi._rwsgi`, whose `run(argv)` the `rwsgi`
//! console script and `python -m rwsgi` call (see `python/rwsgi/__init__.py`). It adopts the
//! interpreter it was imported into (no second initialisation), detaches the main thread, and
//! hands over to the start-up the standalone binary runs. Built with the `extension` feature.

use pyo3::prelude::*;
use std::ffi::OsString;

/// The shared start-up, `(argv, reexec) -> exit code`: `crate::start::main`, which the crate root
/// passes in through [`extension_module!`](crate::extension_module) (this module cannot name it
/// without a cycle: the start-up calls into `python`).
pub type Entry = fn(Vec<OsString>, Vec<OsString>) -> u8;

/// Serve with `argv` (`sys.argv`) in this interpreter. Returns only with an error raised before
/// the server started: once it ran, the process exits with its code right here, as the binary's
/// `main` returns, so the interpreter is not finalized in the master (its `atexit` hooks run in
/// the worker processes, which finalize as in the binary).
pub fn serve(py: Python<'_>, argv: Vec<OsString>, entry: Entry) -> PyResult<u8> {
    let reexec = reexec(py)?;
    super::interpreter::adopt(py).map_err(pyo3::exceptions::PyRuntimeError::new_err)?;
    let code = py.detach(move || entry(argv, reexec));
    for stream in ["stdout", "stderr"] {
        let _ = py
            .import("sys")
            .and_then(|sys| sys.getattr(stream))
            .and_then(|s| s.call_method0("flush"));
    }
    std::process::exit(code.into())
}

/// What a reload executes: this very interpreter (`sys.executable`, the venv's `bin/python`, not
/// the base interpreter `/proc/self/exe` resolves to) with the options and script it was started
/// with (`sys.orig_argv`: `-m rwsgi ...`, or the console script's path and arguments).
fn reexec(py: Python<'_>) -> PyResult<Vec<OsString>> {
    let sys = py.import("sys")?;
    let executable: OsString = sys.getattr("executable")?.extract()?;
    if executable.is_empty() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "sys.executable is empty: rwsgi needs it to re-execute itself on reload",
        ));
    }
    let orig: Vec<OsString> = sys.getattr("orig_argv")?.extract()?;
    Ok(std::iter::once(executable)
        .chain(orig.into_iter().skip(1))
        .collect())
}

/// Define the extension module `_rwsgi` around `entry` (the shared start-up). Invoked once, by the
/// crate root, with the `extension` feature.
#[macro_export]
macro_rules! extension_module {
    ($entry:path) => {
        #[pyo3::pymodule]
        mod _rwsgi {
            use pyo3::prelude::*;

            /// Run rwsgi with `argv` (as `sys.argv`) in this interpreter; returns the exit code.
            #[pyfunction]
            fn run(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> PyResult<u8> {
                $crate::python::extension::serve(py, argv, $entry)
            }

            #[pymodule_init]
            fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
                m.add("__version__", env!("CARGO_PKG_VERSION"))
            }
        }
    };
}
