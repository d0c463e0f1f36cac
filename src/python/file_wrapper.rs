//! `wsgi.file_wrapper`: wraps a file-like object so the server can send a real file with
//! `sendfile(2)`, and iterates it in blocks otherwise.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// What `environ['wsgi.file_wrapper'](filelike, blksize)` returns.
#[pyclass(module = "rwsgi", name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        let empty = match block.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => block.len().map(|l| l == 0).unwrap_or(true),
        };
        Ok((!empty).then_some(block))
    }

    /// Close the wrapped file (PEP 3333: the server calls this like any iterable's `close`).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr(pyo3::intern!(py, "close"))? {
            f.call_method0(pyo3::intern!(py, "close"))?;
        }
        Ok(())
    }
}

/// The descriptor, offset and length to `sendfile` for a wrapped object, when it is a regular file.
pub fn sendfile_plan(py: Python<'_>, wrapper: &FileWrapper) -> Option<(i32, u64, u64)> {
    let f = wrapper.filelike.bind(py);
    let fd: i32 = f
        .call_method0(pyo3::intern!(py, "fileno"))
        .ok()?
        .extract()
        .ok()?;
    let size = crate::sys::fd::regular_file_size(fd)?;
    let offset = match f.call_method0(pyo3::intern!(py, "tell")) {
        Ok(pos) => pos.extract::<u64>().ok()?,
        Err(_) => crate::sys::fd::file_position(fd)?,
    };
    Some((fd, offset, size.saturating_sub(offset)))
}
