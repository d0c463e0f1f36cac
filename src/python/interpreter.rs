//! The interpreter, in either start-up mode: started here (the standalone binary embeds libpython)
//! or adopted (the pip-installed extension runs inside the Python that imported it, see
//! [`adopt`]). Then, the same for both: environment, working directory, `sys.path` and the
//! virtualenv before any app code runs, and at exit the app's `atexit` hooks.

use crate::config::Config;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the running interpreter was adopted rather than started by rwsgi.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Whether rwsgi runs inside an interpreter it did not start (the pip-installed entry).
pub fn adopted() -> bool {
    ADOPTED.load(Ordering::Relaxed)
}

/// Adopt the interpreter that imported the extension module. On the main thread, attached, before
/// the caller detaches and runs the shared start-up. Signals become rwsgi's: Python's SIGINT
/// handler (`KeyboardInterrupt`, which would run on whatever Python code the main thread executes
/// next) and its SIG_IGN for SIGXFSZ go back to the defaults the standalone binary starts with,
/// where `install_signal_handlers = 0` leaves them (SIGPIPE stays ignored in both).
pub fn adopt(py: Python<'_>) -> Result<(), String> {
    refuse_free_threaded(py)?;
    let reset = || -> PyResult<()> {
        let signal = py.import("signal")?;
        let default = signal.getattr("SIG_DFL")?;
        for name in ["SIGINT", "SIGXFSZ"] {
            signal.call_method1("signal", (signal.getattr(name)?, &default))?;
        }
        Ok(())
    };
    reset().map_err(|e| format!("cannot take over signal handling from Python: {e}"))?;
    ADOPTED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Free-threaded CPython (3.13t and later) is not supported yet: rwsgi's threads rely on the GIL
/// serialising the app's Python code exactly as a GIL build does.
fn refuse_free_threaded(py: Python<'_>) -> Result<(), String> {
    let disabled = py
        .import("sysconfig")
        .and_then(|s| s.call_method1("get_config_var", ("Py_GIL_DISABLED",)))
        .and_then(|v| v.is_truthy())
        .unwrap_or(false);
    if disabled {
        return Err(
            "free-threaded CPython (a 3.13t-style build, Py_GIL_DISABLED) is not supported: run \
             rwsgi under a CPython built with the GIL"
                .into(),
        );
    }
    Ok(())
}

/// Checks before anything is bound: an adopted interpreter is the environment it was installed
/// into, so `--virtualenv` may only name that one.
pub fn preflight(config: &Config) -> Result<(), String> {
    let (true, Some(venv)) = (adopted(), &config.virtualenv) else {
        return Ok(());
    };
    let (prefix, executable) = Python::attach(|py| -> PyResult<(std::path::PathBuf, String)> {
        let sys = py.import("sys")?;
        Ok((
            sys.getattr("prefix")?.extract()?,
            sys.getattr("executable")?.extract()?,
        ))
    })
    .map_err(|e| format!("cannot read sys.prefix: {e}"))?;
    if prefix.canonicalize().ok() == venv.canonicalize().ok() {
        return Ok(());
    }
    Err(format!(
        "--virtualenv {}: this rwsgi was installed with pip and runs inside the Python of {} ({}), \
         which cannot switch to another environment. Install rwsgi into that one and run its \
         bin/rwsgi ({}/bin/pip install rwsgi), or drop --virtualenv, or use the standalone binary \
         (cargo build --release), which takes --virtualenv",
        venv.display(),
        prefix.display(),
        executable,
        venv.display()
    ))
}

/// Start Python (unless adopted) and prepare `sys.path`. The calling thread ends up detached.
pub fn initialize(config: &Config) -> Result<(), String> {
    for (key, value) in &config.env {
        // Single-threaded here: nothing else reads the environment concurrently.
        std::env::set_var(key, value);
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).map_err(|e| format!("--chdir {}: {e}", dir.display()))?;
    }
    if !adopted() {
        start(config.virtualenv.as_deref())?;
    }
    Python::attach(refuse_free_threaded)?;
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
    if adopted() {
        // `os.environ` was read when the interpreter started, before `--env` was applied.
        let environ = py.import("os")?.getattr("environ")?;
        for (key, value) in &config.env {
            environ.set_item(key, value)?;
        }
    }
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
    builtin_modules(py, config)
}

/// The one place, in both start-up modes, for modules rwsgi provides to the app (such as uWSGI's
/// built-in `uwsgi`): it runs after `sys.path` is final and before the app is imported.
fn builtin_modules(_py: Python<'_>, _config: &Config) -> PyResult<()> {
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
    if adopted() {
        // Not ours to finalize (the caller that imported rwsgi is still running Python code): the
        // same hooks run explicitly, and the streams are flushed.
        Python::attach(|py| {
            let steps = [("threading", "_shutdown"), ("atexit", "_run_exitfuncs")];
            for (module, function) in steps {
                if let Err(e) = py.import(module).and_then(|m| m.call_method0(function)) {
                    e.display(py);
                }
            }
            for stream in ["stdout", "stderr"] {
                let _ = py
                    .import("sys")
                    .and_then(|sys| sys.getattr(stream))
                    .and_then(|s| s.call_method0("flush"));
            }
        });
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
