//! Import the WSGI callable named by `--wsgi-file` or `--module`.

use crate::config::AppSpec;
use pyo3::exceptions::{PyFileNotFoundError, PyTypeError};
use pyo3::prelude::*;

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
            let util = py.import("importlib.util")?;
            let name = file_module_name(path);
            let spec = util.call_method1(
                "spec_from_file_location",
                (&name, path.to_string_lossy().as_ref()),
            )?;
            if spec.is_none() {
                return Err(PyTypeError::new_err(format!(
                    "--wsgi-file {}: not a Python file",
                    path.display()
                )));
            }
            let module = util.call_method1("module_from_spec", (&spec,))?;
            py.import("sys")?
                .getattr("modules")?
                .set_item(&name, &module)?;
            spec.getattr("loader")?
                .call_method1("exec_module", (&module,))?;
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
