//! `uwsgi.set_logvar(key, value)`: per-request variables a `--log-format` prints as `%(key)`. They
//! live in the serving thread's own storage, which the request's log line reads, and are cleared
//! when the thread starts its next request, so they never leak into another request's line.

use std::cell::RefCell;

thread_local! {
    static VARS: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Set `key` for the request this thread runs.
pub fn set(key: &[u8], value: &[u8]) {
    VARS.with(|vars| {
        let mut vars = vars.borrow_mut();
        match vars.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_vec(),
            None => vars.push((key.to_vec(), value.to_vec())),
        }
    });
}

/// The value of `key` for the request this thread runs.
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    VARS.with(|vars| {
        vars.borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
}

/// Forget the previous request's variables (cheap when there are none).
pub fn clear() {
    VARS.with(|vars| {
        if let Ok(mut vars) = vars.try_borrow_mut() {
            if !vars.is_empty() {
                vars.clear();
            }
        }
    });
}

/// Append `key`'s value to `out` (nothing when unset).
pub fn render(out: &mut Vec<u8>, key: &[u8]) {
    VARS.with(|vars| {
        if let Some((_, v)) = vars.borrow().iter().find(|(k, _)| k == key) {
            out.extend_from_slice(v);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_get_and_clear() {
        super::set(b"user", b"ann");
        super::set(b"user", b"bob");
        assert_eq!(super::get(b"user").as_deref(), Some(&b"bob"[..]));
        let mut out = Vec::new();
        super::render(&mut out, b"user");
        assert_eq!(out, b"bob");
        super::clear();
        assert_eq!(super::get(b"user"), None);
    }
}
