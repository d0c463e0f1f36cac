//! Starting the embedded interpreter: environment, working directory, `sys.path` and the virtualenv,
//! before any app code runs; and finalizing it at exit so the app's `atexit` hooks run.

use crate::config::Config;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::Path;

/// Initialize Python and prepare `sys.path`. The calling thread ends up detached.
pub fn initialize(config: &Config) -> Result<(), String> {
    for (key, value) in &config.env {
        // Single-threaded here: nothing else reads the environment concurrently.
        std::env::set_var(key, value);
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| format!("--chdir {}: {e}", dir.display()))?;
    }
    start(config.virtualenv.as_deref())?;
    Python::attach(|py| prepare(py, config)).map_err(|e| {
        Python::attach(|py| e.display(py));
        "cannot prepare the Python interpreter".to_string()
    })
}

/// The interpreter a virtualenv runs: its `bin/python`, when it has one and a `pyvenv.cfg`.
fn venv_python(venv: &Path) -> Option<std::path::PathBuf> {
    if !venv.join("pyvenv.cfg").is_file() {
        return None;
    }
    ["python", "python3"]
        .iter()
        .map(|name| venv.join("bin").join(name))
        .find(|p| p.exists())
}

/// Start the interpreter as `Py_InitializeEx(0)` would (no Python signal handlers: signals belong
/// to rwsgi), but for a virtualenv with a `pyvenv.cfg` as that venv's own `bin/python` starts:
/// `sys.prefix` is the venv, and the base interpreter's site-packages (and the `.pth` files there)
/// are left out unless `include-system-site-packages = true`. Leaves the thread detached.
fn start(virtualenv: Option<&Path>) -> Result<(), String> {
    use pyo3::ffi;
    let program = virtualenv.and_then(venv_python);
    let program = match program
        .as_deref()
        .map(|p| std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())))
    {
        Some(Ok(path)) => Some(path),
        Some(Err(_)) => return Err("--virtualenv: the path holds a NUL byte".into()),
        None => None,
    };
    let fail = |status: ffi::PyStatus| {
        // SAFETY: `err_msg` is null or a static C string set by CPython.
        let msg = unsafe { status.err_msg.as_ref() }.map(|m| {
            // SAFETY: as above: a NUL-terminated static string.
            unsafe { std::ffi::CStr::from_ptr(m) }
                .to_string_lossy()
                .into_owned()
        });
        format!(
            "cannot start the Python interpreter: {}",
            msg.unwrap_or_else(|| "unknown error".into())
        )
    };
    // SAFETY: the config is initialised by CPython before any field is touched, cleared after
    // use, and the interpreter is started once, from the main thread, before any other Python
    // call; the thread state is then released as pyo3 expects of an interpreter it did not start.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.assume_init_mut();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        if let Some(program) = &program {
            let status =
                ffi::PyConfig_SetBytesString(config, &mut config.program_name, program.as_ptr());
            if ffi::PyStatus_Exception(status) != 0 {
                ffi::PyConfig_Clear(config);
                return Err(fail(status));
            }
        }
        let status = ffi::Py_InitializeFromConfig(config);
        ffi::PyConfig_Clear(config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(fail(status));
        }
        ffi::PyEval_SaveThread();
    }
    Python::initialize();
    Ok(())
}

fn prepare(py: Python<'_>, config: &Config) -> PyResult<()> {
    let sys = py.import("sys")?;
    let version: String = sys.getattr("version")?.extract()?;
    tracing::info!("Python version: {}", version.replace('\n', " "));
    sys.setattr("argv", vec!["rwsgi"])?;
    // Imported from the main thread so `threading.main_thread()` is this one.
    py.import("threading")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    if let Some(venv) = &config.virtualenv {
        add_virtualenv(py, &sys, &path, venv)?;
    }
    for dir in config.pythonpath.iter().rev() {
        path.insert(0, dir.to_string_lossy().as_ref())?;
    }
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.insert(0, cwd)?;
    Ok(())
}

/// Put the virtualenv's site-packages (and what its `.pth` files add) at the front of `sys.path`.
fn add_virtualenv(
    py: Python<'_>,
    sys: &Bound<'_, PyModule>,
    path: &Bound<'_, PyList>,
    venv: &Path,
) -> PyResult<()> {
    let info = sys.getattr("version_info")?;
    let (major, minor): (u8, u8) = (
        info.getattr("major")?.extract()?,
        info.getattr("minor")?.extract()?,
    );
    let site_packages = venv
        .join("lib")
        .join(format!("python{major}.{minor}"))
        .join("site-packages");
    if !site_packages.is_dir() {
        tracing::warn!(
            "virtualenv {}: no {} (was it made with Python {major}.{minor}?)",
            venv.display(),
            site_packages.display()
        );
        return Ok(());
    }
    let prefix: std::path::PathBuf = sys.getattr("prefix")?.extract()?;
    if prefix.canonicalize().ok() == venv.canonicalize().ok() {
        // Started as the venv's own interpreter: its site-packages are already in place.
        tracing::info!("virtualenv: {}", venv.display());
        return Ok(());
    }
    let before = path.len();
    py.import("site")?
        .call_method1("addsitedir", (site_packages.to_string_lossy().as_ref(),))?;
    let added: Vec<Bound<'_, PyAny>> = (before..path.len())
        .filter_map(|i| path.get_item(i).ok())
        .collect();
    for _ in 0..added.len() {
        path.del_item(before)?;
    }
    for (i, entry) in added.into_iter().enumerate() {
        path.insert(i, entry)?;
    }
    let venv = venv.to_string_lossy();
    sys.setattr("prefix", venv.as_ref())?;
    sys.setattr("exec_prefix", venv.as_ref())?;
    tracing::info!("virtualenv: {venv}");
    Ok(())
}

/// Whether [`finalize`] ran (it may run once).
static FINALIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run `Py_FinalizeEx` (atexit hooks, `threading._shutdown`), once, and only when the calling
/// thread is the process's last: with another thread still running, Python code could be running
/// there, so the interpreter is left as it is (the process is about to exit anyway). After it,
/// pyo3 refuses to attach (it checks `Py_IsInitialized`), so a later Python call panics rather
/// than touching a finalized interpreter.
pub fn finalize() {
    if crate::sys::process::thread_count() != Some(1) {
        tracing::warn!("other threads still run: exiting without finalizing Python");
        return;
    }
    if FINALIZED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    // SAFETY: the only thread of the process, once; it is detached (every caller runs outside
    // `Python::attach`), so it takes the GIL here and the interpreter ends with it.
    unsafe {
        pyo3::ffi::PyGILState_Ensure();
        pyo3::ffi::Py_FinalizeEx();
    }
}

/// `fork(2)` bracketed by CPython's fork hooks, as `os.fork` does, so the interpreter's locks and
/// state are sound in the child.
///
/// Safe to call: the hooks take the interpreter's locks (the import lock, the GIL) before the fork
/// and reset them in the child, and the master, the only caller, holds no Rust lock across it.
/// Threads the app started at import do not exist in the child (it is warned about at start-up),
/// exactly as with `os.fork`.
pub fn fork() -> std::io::Result<crate::sys::process::Forked> {
    use crate::sys::process::{self, Forked};
    Python::attach(|_py| {
        // SAFETY: the GIL is held and the hooks bracket the fork exactly as CPython's own os.fork
        // does, which is what makes the child's interpreter sound (see above).
        unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            let forked = process::fork();
            match forked {
                Ok(Forked::Child) => pyo3::ffi::PyOS_AfterFork_Child(),
                _ => pyo3::ffi::PyOS_AfterFork_Parent(),
            }
            forked
        }
    })
}
