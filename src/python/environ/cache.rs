//! The per-thread value cache: most vars repeat request after request (`GET`, `HTTP/1.1`, the
//! host, the document root, the user agent...), and reusing the `str` made for the same bytes last
//! time skips a decode and an allocation. A key whose value keeps changing stops being cached.

use super::bytes::same_bytes;
use super::keys::KNOWN_KEYS;
use super::latin1;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Longest value kept in the per-thread cache.
const CACHED_VALUE_MAX: usize = 128;

/// Misses in a row after which a key's value is taken to change per request and is not cached.
const VOLATILE_AFTER: u8 = 4;

/// The last value seen for one known key on this thread.
#[derive(Default)]
pub(super) struct CachedValue {
    bytes: Vec<u8>,
    string: Option<Py<PyString>>,
    misses: u8,
}

thread_local! {
    /// Per Python thread, one entry per known key (by slot).
    static VALUES: std::cell::RefCell<Vec<CachedValue>> = std::cell::RefCell::new(
        (0..KNOWN_KEYS.len()).map(|_| CachedValue::default()).collect()
    );
}

/// Run `f` with this thread's cache: one borrow per request, not one per var.
#[inline]
pub(super) fn with_values<R>(f: impl FnOnce(&mut [CachedValue]) -> R) -> R {
    VALUES.with_borrow_mut(|values| f(values))
}

/// The `str` for a known key's value, from this thread's cache (`values`) when the bytes repeat.
#[inline]
pub(super) fn cached_value<'py>(
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
