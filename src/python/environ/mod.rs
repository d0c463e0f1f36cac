//! The WSGI environ (PEP 3333), built per request as a copy of a template dict.
//!
//! The template holds every constant entry; keys nginx sends on every request are interned once at
//! startup and found by their bytes without hashing; values are decoded as latin-1 straight from
//! the packet buffer. Rules:
//! - every var becomes a latin-1 `str`; `SCRIPT_NAME` is always present, and a `SCRIPT_NAME` the
//!   proxy sends is stripped from the front of `PATH_INFO` (what modifier1 30 asks for);
//! - a request header (`HTTP_*`) sent twice is joined as a proxy joins repeated headers: `", "`, or
//!   `"; "` for cookies (nginx before 1.23 sends each repeated header as its own var; uWSGI kept only
//!   the last); any other var sent twice comes from the proxy's config (a `uwsgi_param` beside
//!   `uwsgi_params`), and the last one wins, as in uWSGI;
//! - nginx's `HTTP_CONTENT_TYPE`/`HTTP_CONTENT_LENGTH` copies are dropped (PEP 3333 forbids them),
//!   and vars named `wsgi.*` cannot replace the server's own entries;
//! - `wsgi.url_scheme`: `UWSGI_SCHEME`, then `HTTPS` (`on`/`1`), then nginx's `REQUEST_SCHEME`;
//!   `X-Forwarded-Proto`/`-Ssl` only with `--trust-forwarded-headers`, since any client can send them;
//! - the `UWSGI_*` vars with which uWSGI let a request load code or change the process (`UWSGI_FILE`,
//!   `UWSGI_SETENV`, ...) are plain environ entries here: a request never changes the server.
//!
//! This file is the builder; each of its helpers has a file: `keys` (the known keys and their hash
//! table), `cache` (the per-thread value cache), `routes` (which mounted app), `scheme`
//! (`wsgi.url_scheme`) and `bytes` (short-slice equality).

mod bytes;
mod cache;
mod keys;
mod routes;
mod scheme;

use keys::{KeyTable, KNOWN_KEYS, SLOT};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use routes::trim_trailing_slashes;
pub use routes::Routes;

/// The vars the server itself reads from a request, borrowed from the packet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen<'a> {
    /// `REQUEST_METHOD`.
    pub method: &'a [u8],
    /// `REQUEST_URI` (empty when the peer sent none).
    pub uri: &'a [u8],
    /// `PATH_INFO` as the peer sent it, before mount routing.
    pub path_info: &'a [u8],
    /// `QUERY_STRING`.
    pub query_string: &'a [u8],
    /// `SERVER_PROTOCOL`, when present.
    pub protocol: Option<&'a [u8]>,
    /// `REMOTE_ADDR`.
    pub remote_addr: &'a [u8],
    /// The app the request goes to (an index into the worker's apps); `None` when no mountpoint
    /// matches and there is no default app.
    pub app: Option<usize>,
    script_name: &'a [u8],
    https: &'a [u8],
    uwsgi_scheme: &'a [u8],
    request_scheme: &'a [u8],
    forwarded_proto: &'a [u8],
    forwarded_ssl: &'a [u8],
}

/// The parts of every environ built once per process.
pub struct EnvironTemplate {
    template: Py<PyDict>,
    keys: Vec<Py<PyString>>,
    /// Finds a var's slot among the known keys.
    key_table: KeyTable,
    https: Py<PyString>,
    url_scheme: Py<PyString>,
    script_name: Py<PyString>,
    path_info: Py<PyString>,
    input: Py<PyString>,
    trust_forwarded: bool,
    routes: Routes,
}

/// Entries an environ has room for without growing: the template's, nginx's `uwsgi_params`, and a
/// browser's usual headers. A dict copy keeps the size of the original's table, so presizing the
/// template spares every request the resize (a new table, every entry re-indexed) that a dict of
/// 10 entries needs to take 25 more.
const ENVIRON_ENTRIES: ffi::Py_ssize_t = 42;

// Why the private constructor: without a presized template, a hello request costs about 1,600
// more user-space instructions (release builds, `bench/instructions.sh hello 3000 rwsgi`, three
// runs each: 14908 14955 14854 with it, 16559 16569 16405 with `PyDict_New`), 11% more: every
// request's environ copy then starts from a table sized for the template's 10 entries and is
// resized as the vars go in. CPython has no public presizing constructor. `_PyDict_NewPresized` is
// declared in `cpython/dictobject.h` and exported by libpython 3.6 to 3.13 (checked with `nm -D`);
// later versions, where private functions keep moving to the internal headers, take `PyDict_New`
// until someone checks them.
#[cfg(not(Py_3_14))]
extern "C" {
    /// CPython's presizing dict constructor: not in pyo3-ffi (private API), with this signature in
    /// every version it is used with here.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// An empty dict with room for `entries` entries.
#[cfg(not(Py_3_14))]
fn presized_dict(py: Python<'_>, entries: ffi::Py_ssize_t) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: the GIL is held; the call returns a new reference to a dict, or null with an
    // exception set.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(entries))?.cast_into_unchecked())
    }
}

/// An empty dict (on CPythons whose private presizing constructor has not been checked).
#[cfg(Py_3_14)]
fn presized_dict(py: Python<'_>, _entries: ffi::Py_ssize_t) -> PyResult<Bound<'_, PyDict>> {
    Ok(PyDict::new(py))
}

/// `PyUnicode_DecodeLatin1` of a byte slice.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len()).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: the pointer and length describe a live slice; a null error handler means strict.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

impl EnvironTemplate {
    /// Build the template: the constant `wsgi.*` entries and the interned keys.
    pub fn new(
        py: Python<'_>,
        multithread: bool,
        multiprocess: bool,
        trust_forwarded: bool,
        file_wrapper: Bound<'_, PyAny>,
        routes: Routes,
    ) -> PyResult<EnvironTemplate> {
        let keys: Vec<Py<PyString>> = KNOWN_KEYS
            .iter()
            .map(|k| PyString::intern(py, k).unbind())
            .collect();
        let sys = py.import("sys")?;
        let template = presized_dict(py, ENVIRON_ENTRIES)?;
        template.set_item(
            PyString::intern(py, "wsgi.version"),
            PyTuple::new(py, [1, 0])?,
        )?;
        template.set_item(
            PyString::intern(py, "wsgi.url_scheme"),
            PyString::intern(py, "http"),
        )?;
        template.set_item(PyString::intern(py, "wsgi.errors"), sys.getattr("stderr")?)?;
        template.set_item(PyString::intern(py, "wsgi.multithread"), multithread)?;
        template.set_item(PyString::intern(py, "wsgi.multiprocess"), multiprocess)?;
        template.set_item(PyString::intern(py, "wsgi.run_once"), false)?;
        template.set_item(PyString::intern(py, "wsgi.input_terminated"), true)?;
        template.set_item(PyString::intern(py, "wsgi.file_wrapper"), file_wrapper)?;
        template.set_item(
            PyString::intern(py, "SCRIPT_NAME"),
            PyString::intern(py, ""),
        )?;
        template.set_item(
            PyString::intern(py, "rwsgi.version"),
            env!("CARGO_PKG_VERSION"),
        )?;
        Ok(EnvironTemplate {
            template: template.unbind(),
            keys,
            key_table: KeyTable::new(),
            https: PyString::intern(py, "https").unbind(),
            url_scheme: PyString::intern(py, "wsgi.url_scheme").unbind(),
            script_name: PyString::intern(py, "SCRIPT_NAME").unbind(),
            path_info: PyString::intern(py, "PATH_INFO").unbind(),
            input: PyString::intern(py, "wsgi.input").unbind(),
            trust_forwarded,
            routes,
        })
    }

    /// The slot of a known key.
    #[inline]
    fn known(&self, key: &[u8]) -> Option<usize> {
        self.key_table.find(key)
    }

    /// Build one request's environ from its vars; `input` becomes `wsgi.input`.
    pub fn build<'py, 'a>(
        &self,
        py: Python<'py>,
        vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        input: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyDict>, Seen<'a>)> {
        let environ = self.template.bind(py).copy()?;
        let mut seen = Seen::default();
        let mut set = 0u64;
        // One borrow of the value cache per request, not one per var.
        cache::with_values(|values| -> PyResult<()> {
            for (key, value) in vars {
                match self.known(key) {
                    Some(i) => {
                        self.note(&mut seen, i, value);
                        if i == SLOT.script_name || i == SLOT.path_info {
                            continue; // Set below, once SCRIPT_NAME is known.
                        }
                        let k = self.keys[i].bind(py);
                        if set & (1 << i) != 0 && key.starts_with(b"HTTP_") {
                            join(py, &environ, k, value, i == SLOT.cookie)?;
                        } else {
                            environ.set_item(k, cache::cached_value(py, values, i, value)?)?;
                            set |= 1 << i;
                        }
                    }
                    None => {
                        if key.starts_with(b"wsgi.")
                            || key == b"HTTP_CONTENT_TYPE"
                            || key == b"HTTP_CONTENT_LENGTH"
                        {
                            continue;
                        }
                        let k = latin1(py, key)?;
                        if key.starts_with(b"HTTP_") && environ.contains(&k)? {
                            join(py, &environ, &k, value, false)?;
                        } else {
                            environ.set_item(k, latin1(py, value)?)?;
                        }
                    }
                }
            }
            Ok(())
        })?;
        self.set_paths(py, &environ, &mut seen)?;
        if scheme::is_https(&seen, self.trust_forwarded) {
            environ.set_item(self.url_scheme.bind(py), self.https.bind(py))?;
        } else if !seen.uwsgi_scheme.is_empty() {
            environ.set_item(self.url_scheme.bind(py), latin1(py, seen.uwsgi_scheme)?)?;
        }
        environ.set_item(self.input.bind(py), input)?;
        Ok((environ, seen))
    }

    /// Keep, in `seen`, a var the server itself reads.
    #[inline]
    fn note<'a>(&self, seen: &mut Seen<'a>, slot: usize, value: &'a [u8]) {
        // Constant patterns, so the match is one jump table.
        const METHOD: usize = SLOT.method;
        const URI: usize = SLOT.uri;
        const PATH_INFO: usize = SLOT.path_info;
        const QUERY_STRING: usize = SLOT.query_string;
        const PROTOCOL: usize = SLOT.protocol;
        const REMOTE_ADDR: usize = SLOT.remote_addr;
        const SCRIPT_NAME: usize = SLOT.script_name;
        const HTTPS: usize = SLOT.https;
        const UWSGI_SCHEME: usize = SLOT.uwsgi_scheme;
        const REQUEST_SCHEME: usize = SLOT.request_scheme;
        const FORWARDED_PROTO: usize = SLOT.forwarded_proto;
        const FORWARDED_SSL: usize = SLOT.forwarded_ssl;
        match slot {
            METHOD => seen.method = value,
            URI => seen.uri = value,
            PATH_INFO => seen.path_info = value,
            QUERY_STRING => seen.query_string = value,
            PROTOCOL => seen.protocol = Some(value),
            REMOTE_ADDR => seen.remote_addr = value,
            SCRIPT_NAME => seen.script_name = value,
            HTTPS => seen.https = value,
            UWSGI_SCHEME => seen.uwsgi_scheme = value,
            REQUEST_SCHEME => seen.request_scheme = value,
            FORWARDED_PROTO => seen.forwarded_proto = value,
            FORWARDED_SSL => seen.forwarded_ssl = value,
            _ => {}
        }
    }

    /// Pick the app; then `SCRIPT_NAME` without a trailing slash, and `PATH_INFO` without the
    /// `SCRIPT_NAME` prefix (with `--manage-script-name`, the matched mountpoint is the prefix).
    fn set_paths(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyDict>,
        seen: &mut Seen<'_>,
    ) -> PyResult<()> {
        let (app, mounted) = self.routes.route(seen.path_info, seen.script_name);
        seen.app = app;
        let script = if mounted > 0 {
            &seen.path_info[..mounted]
        } else {
            trim_trailing_slashes(seen.script_name)
        };
        let mut path = seen.path_info;
        if !script.is_empty() {
            if let Some(rest) = path.strip_prefix(script) {
                if rest.is_empty() || rest.starts_with(b"/") {
                    path = rest;
                }
            }
            environ.set_item(self.script_name.bind(py), latin1(py, script)?)?;
        }
        environ.set_item(self.path_info.bind(py), latin1(py, path)?)?;
        Ok(())
    }
}

/// Append a repeated var's value to the one already set.
fn join(
    py: Python<'_>,
    environ: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &[u8],
    cookie: bool,
) -> PyResult<()> {
    let Some(old) = environ.get_item(key)? else {
        return environ.set_item(key, latin1(py, value)?);
    };
    let old = old.cast_into::<PyString>()?;
    // SAFETY: `old` is a str; the result is a new bytes object or an error.
    let old_bytes = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_AsLatin1String(old.as_ptr()))?
            .cast_into_unchecked::<pyo3::types::PyBytes>()
    };
    let mut joined = old_bytes.as_bytes().to_vec();
    joined.extend_from_slice(if cookie { b"; " } else { b", " });
    joined.extend_from_slice(value);
    environ.set_item(key, latin1(py, &joined)?)
}
