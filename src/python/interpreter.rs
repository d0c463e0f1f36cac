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
    Python::initialize();
    Python::attach(|py| prepare(py, config)).map_err(|e| {
        Python::attach(|py| e.display(py));
        "cannot prepare the Python interpreter".to_string()
    })
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

/// Run `Py_FinalizeEx` (atexit hooks, `threading._shutdown`). Every other thread that used Python
/// must have exited.
pub fn finalize() {
    // SAFETY: called once, from the main thread, after all Python threads were joined; pyo3's own
    // guards are not used afterwards.
    unsafe {
        pyo3::ffi::PyGILState_Ensure();
        pyo3::ffi::Py_FinalizeEx();
    }
}
