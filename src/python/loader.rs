//! Import the WSGI callable named by `--wsgi-file` or `--module`.

use crate::config::AppSpec;
use pyo3::exceptions::{PyFileNotFoundError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The module name a `--wsgi-file` runs as (uWSGI's convention: `uwsgi_file_` + the path).
fn file_module_name(path: &std::path::Path) -> String {
    let mangled: String = path
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("uwsgi_file_{mangled}")
}

/// Import the app and return its callable.
pub fn load(py: Python<'_>, spec: &AppSpec) -> PyResult<Py<PyAny>> {
    let (module, callable) = match spec {
        AppSpec::File { path, callable } => {
            if !path.is_file() {
                return Err(PyFileNotFoundError::new_err(format!(
                    "--wsgi-file {}: no such file",
                    path.display()
                )));
            }
            // Compiled from the source each time, as uWSGI does: a cached .pyc could serve old code
            // after a reload when the file was rewritten within the same second at the same size.
            let name = file_module_name(path);
            let source = std::fs::read(path).map_err(|e| {
                PyFileNotFoundError::new_err(format!("--wsgi-file {}: {e}", path.display()))
            })?;
            let filename = path.to_string_lossy();
            let module = PyModule::new(py, &name)?;
            module.setattr("__file__", filename.as_ref())?;
            py.import("sys")?
                .getattr("modules")?
                .set_item(&name, &module)?;
            let builtins = py.import("builtins")?;
            let code = builtins.getattr("compile")?.call1((
                PyBytes::new(py, &source),
                filename.as_ref(),
                "exec",
            ))?;
            builtins.getattr("exec")?.call1((code, module.dict()))?;
            let module = module.into_any();
            (module, callable)
        }
        AppSpec::Module { module, callable } => (py.import(module.as_str())?.into_any(), callable),
    };
    let app = match module.getattr(callable.as_str()) {
        Ok(app) => app,
        Err(e) if callable == "application" && module.hasattr("app")? => {
            tracing::info!("no `application` in the module: using its `app` ({e})");
            module.getattr("app")?
        }
        Err(e) => return Err(e),
    };
    if !app.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "the WSGI callable `{callable}` is not callable"
        )));
    }
    Ok(app.unbind())
}
