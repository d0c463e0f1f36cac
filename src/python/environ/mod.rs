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

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

/// Keys interned at startup: nginx's `uwsgi_params`, the common request headers, and the keys the
/// server sets itself. Order is irrelevant; each key's index is its slot.
const KNOWN_KEYS: &[&str] = &[
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "PATH_INFO",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_NAME",
    "SCRIPT_NAME",
    "REMOTE_USER",
    "UWSGI_SCHEME",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_ORIGIN",
    "HTTP_AUTHORIZATION",
    "HTTP_CACHE_CONTROL",
    "HTTP_PRAGMA",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUESTED_WITH",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_USER",
    "HTTP_DNT",
    "HTTP_TRANSFER_ENCODING",
];

/// Index of a key in [`KNOWN_KEYS`] that the builder treats specially; a name missing from the
/// table fails the build.
const fn slot(name: &str) -> usize {
    let mut i = 0;
    while i < KNOWN_KEYS.len() {
        if const_eq(KNOWN_KEYS[i].as_bytes(), name.as_bytes()) {
            return i;
        }
        i += 1;
    }
    panic!("slot() of a key missing from KNOWN_KEYS")
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Entries of the known-key hash table: a power of two, about three times the keys, so a lookup
/// (even of an unknown key, which ends at an empty entry) rarely probes twice.
const KEY_TABLE_SIZE: usize = 128;

/// The known-key table: each key at its hash, or at the next free entry after it.
fn key_table() -> [u8; KEY_TABLE_SIZE] {
    let mut table = [0u8; KEY_TABLE_SIZE];
    for (i, k) in KNOWN_KEYS.iter().enumerate() {
        let mut at = key_hash(k.as_bytes());
        while table[at] != 0 {
            at = (at + 1) % KEY_TABLE_SIZE;
        }
        table[at] = u8::try_from(i + 1).expect("KNOWN_KEYS fits a u8");
    }
    table
}

/// A key's slot in [`KNOWN_KEYS`]: one hash, and nearly always one comparison. The table always
/// has empty entries, so a search for an unknown key ends.
#[inline]
fn find_known(table: &[u8; KEY_TABLE_SIZE], key: &[u8]) -> Option<usize> {
    let mut at = key_hash(key);
    loop {
        let slot = usize::from(table[at].checked_sub(1)?);
        if same_bytes(KNOWN_KEYS[slot].as_bytes(), key) {
            return Some(slot);
        }
        at = (at + 1) % KEY_TABLE_SIZE;
    }
}

/// Where a key's search starts in the known-key table: its last eight bytes (the part where
/// `HTTP_*` names differ) and its length, multiplied by a Fibonacci constant.
#[inline]
fn key_hash(key: &[u8]) -> usize {
    let word = match key.last_chunk::<8>() {
        Some(tail) => u64::from_le_bytes(*tail),
        None => key
            .iter()
            .fold(0u64, |word, &byte| (word << 8) | u64::from(byte)),
    };
    let mixed = (word ^ key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // The top bits of the product are the best mixed; KEY_TABLE_SIZE is 2^7.
    (mixed >> (64 - KEY_TABLE_SIZE.trailing_zeros())) as usize
}

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
    /// The known keys by [`key_hash`], open addressing: `slot + 1`, or 0 for an empty entry.
    by_hash: [u8; KEY_TABLE_SIZE],
    https: Py<PyString>,
    url_scheme: Py<PyString>,
    script_name: Py<PyString>,
    path_info: Py<PyString>,
    input: Py<PyString>,
    trust_forwarded: bool,
    routes: Routes,
}

/// How a request finds its app: by mountpoint (`--mount`), as uWSGI does.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Each app's mountpoint, by app index (`''` for the default app).
    mountpoints: Vec<Vec<u8>>,
    /// The app mounted at `''`.
    default: Option<usize>,
    /// `--manage-script-name`: pick by the longest mountpoint PATH_INFO starts with.
    manage_script_name: bool,
}

impl Routes {
    /// Routes for apps mounted at `mountpoints` (by app index; `''` is the default app).
    pub fn new(mountpoints: impl Iterator<Item = Vec<u8>>, manage_script_name: bool) -> Routes {
        let mountpoints: Vec<Vec<u8>> = mountpoints.collect();
        let default = mountpoints.iter().position(|m| m.is_empty());
        Routes {
            mountpoints,
            default,
            manage_script_name,
        }
    }

    /// The app for a request, and the part of `path_info` that is its mountpoint when
    /// `--manage-script-name` moves it to `SCRIPT_NAME`.
    fn route(&self, path_info: &[u8], script_name: &[u8]) -> (Option<usize>, usize) {
        if self.mountpoints.len() <= 1 {
            return (self.default, 0);
        }
        if self.manage_script_name {
            let longest = self
                .mountpoints
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.is_empty() && path_info.starts_with(m))
                .filter(|(_, m)| matches!(path_info.get(m.len()), None | Some(b'/')))
                .max_by_key(|(_, m)| m.len());
            if let Some((i, m)) = longest {
                return (Some(i), m.len());
            }
        }
        // Without it, nginx picks: `uwsgi_param SCRIPT_NAME /app` names the mountpoint.
        let script = trim_trailing_slashes(script_name);
        let named = (!script.is_empty())
            .then(|| self.mountpoints.iter().position(|m| m.as_slice() == script))
            .flatten();
        (named.or(self.default), 0)
    }
}

/// Entries an environ has room for without growing: the template's, nginx's `uwsgi_params`, and a
/// browser's usual headers. A dict copy keeps the size of the original's table, so presizing the
/// template spares every request the resize (a new table, every entry re-indexed) that a dict of
/// 10 entries needs to take 25 more.
const ENVIRON_ENTRIES: ffi::Py_ssize_t = 42;

extern "C" {
    /// CPython's presizing dict constructor: not in pyo3-ffi (private API), but exported by
    /// libpython in every version pyo3 supports, with this signature.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// An empty dict with room for `entries` entries.
fn presized_dict(py: Python<'_>, entries: ffi::Py_ssize_t) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: the GIL is held; the call returns a new reference to a dict, or null with an
    // exception set.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(entries))?.cast_into_unchecked())
    }
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

/// Longest value kept in the per-thread cache.
const CACHED_VALUE_MAX: usize = 128;

/// Misses in a row after which a key's value is taken to change per request and is not cached.
const VOLATILE_AFTER: u8 = 4;

/// The last value seen for one known key on this thread.
#[derive(Default)]
struct CachedValue {
    bytes: Vec<u8>,
    string: Option<Py<PyString>>,
    misses: u8,
}

thread_local! {
    /// Per Python thread: most vars repeat request after request (`GET`, `HTTP/1.1`, the host, the
    /// document root, the user agent...), and reusing the `str` made for the same bytes last time
    /// skips a decode and an allocation.
    static VALUES: std::cell::RefCell<Vec<CachedValue>> = std::cell::RefCell::new(
        (0..KNOWN_KEYS.len()).map(|_| CachedValue::default()).collect()
    );
}

/// The `str` for a known key's value, from this thread's cache (`values`) when the bytes repeat.
#[inline]
fn cached_value<'py>(
    py: Python<'py>,
    values: &mut [CachedValue],
    slot: usize,
    value: &[u8],
) -> PyResult<Bound<'py, PyString>> {
    let cached = &mut values[slot];
    if let Some(string) = cached.string.as_ref() {
        if same_bytes(&cached.bytes, value) {
            cached.misses = 0;
            return Ok(string.bind(py).clone());
        }
    }
    let string = latin1(py, value)?;
    if cached.misses < VOLATILE_AFTER && value.len() <= CACHED_VALUE_MAX {
        cached.misses += u8::from(cached.string.is_some());
        cached.bytes.clear();
        cached.bytes.extend_from_slice(value);
        cached.string = Some(string.clone().unbind());
    }
    Ok(string)
}

/// Byte-slice equality for the short keys and values compared per request, inline: `==` on
/// slices calls libc's `memcmp`, which showed up at 6% of a hello request. Up to 16 bytes it is two
/// (possibly overlapping) loads per side; longer slices go eight bytes at a time.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let u64_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap_or([0; 4]));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => {
            let heads_equal = a
                .chunks_exact(8)
                .zip(b.chunks_exact(8))
                .all(|(x, y)| u64_at(x, 0) == u64_at(y, 0));
            heads_equal && u64_at(a, n - 8) == u64_at(b, n - 8)
        }
    }
}

/// `on`, `1` (any case) as uWSGI reads `HTTPS` and `X-Forwarded-Ssl`.
fn is_on(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"on") || value == b"1"
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
        let by_hash = key_table();
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
            by_hash,
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
        find_known(&self.by_hash, key)
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
        VALUES.with_borrow_mut(|values| -> PyResult<()> {
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
                            environ.set_item(k, cached_value(py, values, i, value)?)?;
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
        if self.scheme_is_https(&seen) {
            environ.set_item(self.url_scheme.bind(py), self.https.bind(py))?;
        } else if !seen.uwsgi_scheme.is_empty() {
            environ.set_item(self.url_scheme.bind(py), latin1(py, seen.uwsgi_scheme)?)?;
        }
        environ.set_item(self.input.bind(py), input)?;
        Ok((environ, seen))
    }

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

    /// Whether the request came over TLS, by the rules in the module docs (a verbatim
    /// `UWSGI_SCHEME` other than https is applied by the caller).
    fn scheme_is_https(&self, seen: &Seen<'_>) -> bool {
        if !seen.uwsgi_scheme.is_empty() {
            return seen.uwsgi_scheme.eq_ignore_ascii_case(b"https");
        }
        if self.trust_forwarded {
            if !seen.forwarded_proto.is_empty() {
                return seen.forwarded_proto.eq_ignore_ascii_case(b"https");
            }
            if !seen.forwarded_ssl.is_empty() {
                return is_on(seen.forwarded_ssl);
            }
        }
        if !seen.https.is_empty() {
            return is_on(seen.https);
        }
        seen.request_scheme.eq_ignore_ascii_case(b"https")
    }
}

fn trim_trailing_slashes(mut s: &[u8]) -> &[u8] {
    while let Some(rest) = s.strip_suffix(b"/") {
        s = rest;
    }
    s
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

/// Slots of the keys the builder reads.
struct Slots {
    method: usize,
    uri: usize,
    path_info: usize,
    query_string: usize,
    protocol: usize,
    remote_addr: usize,
    script_name: usize,
    https: usize,
    uwsgi_scheme: usize,
    request_scheme: usize,
    forwarded_proto: usize,
    forwarded_ssl: usize,
    cookie: usize,
}

const SLOT: Slots = Slots {
    method: slot("REQUEST_METHOD"),
    uri: slot("REQUEST_URI"),
    path_info: slot("PATH_INFO"),
    query_string: slot("QUERY_STRING"),
    protocol: slot("SERVER_PROTOCOL"),
    remote_addr: slot("REMOTE_ADDR"),
    script_name: slot("SCRIPT_NAME"),
    https: slot("HTTPS"),
    uwsgi_scheme: slot("UWSGI_SCHEME"),
    request_scheme: slot("REQUEST_SCHEME"),
    forwarded_proto: slot("HTTP_X_FORWARDED_PROTO"),
    forwarded_ssl: slot("HTTP_X_FORWARDED_SSL"),
    cookie: slot("HTTP_COOKIE"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_fit_the_tables() {
        assert!(
            KNOWN_KEYS.len() <= 64,
            "the duplicate bitset holds 64 slots"
        );
        assert!(
            KNOWN_KEYS.len() * 2 < KEY_TABLE_SIZE,
            "the key table needs room"
        );
        let mut sorted = KNOWN_KEYS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            KNOWN_KEYS.len(),
            "duplicate entry in KNOWN_KEYS"
        );
        assert_eq!(KNOWN_KEYS[SLOT.cookie], "HTTP_COOKIE");
        assert_eq!(KNOWN_KEYS[SLOT.forwarded_ssl], "HTTP_X_FORWARDED_SSL");
    }

    #[test]
    fn known_keys_are_found_and_others_are_not() {
        let table = key_table();
        for (i, k) in KNOWN_KEYS.iter().enumerate() {
            assert_eq!(find_known(&table, k.as_bytes()), Some(i), "{k}");
        }
        for unknown in [
            &b""[..],
            b"X",
            b"HTTPS_",
            b"HTTP_X_CUSTOM_HEADER",
            b"http_host",
            b"HTTP_HOS",
            b"QUERY_STRING\0",
            b"UWSGI_FILE",
        ] {
            assert_eq!(find_known(&table, unknown), None, "{unknown:?}");
        }
        // nginx's uwsgi_params and the headers every browser sends: found on the first probe.
        for k in [
            "REQUEST_METHOD",
            "QUERY_STRING",
            "PATH_INFO",
            "HTTP_HOST",
            "REMOTE_ADDR",
        ] {
            let first = table[key_hash(k.as_bytes())];
            assert_eq!(KNOWN_KEYS[usize::from(first) - 1], k);
        }
    }

    #[test]
    fn same_bytes_agrees_with_eq() {
        let text = b"HTTP_X_FORWARDED_PROTO=https; a longer value than sixteen bytes";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} bytes, differing at {at}");
            }
            assert!(!same_bytes(a, &text[..len + 1]));
        }
    }

    #[test]
    fn slashes_trimmed() {
        assert_eq!(trim_trailing_slashes(b"/app/"), b"/app");
        assert_eq!(trim_trailing_slashes(b"/"), b"");
        assert_eq!(trim_trailing_slashes(b""), b"");
    }
}
