//! The known keys: the vars nearly every request carries, interned once at startup and found by
//! their bytes with one hash and nearly always one comparison, so the builder never hashes a key
//! through Python. A key's index in [`KNOWN_KEYS`] is its slot everywhere (interned `str`, value
//! cache, duplicate bitset).

use super::bytes::same_bytes;

/// Keys interned at startup: nginx's `uwsgi_params`, the common request headers, and the keys the
/// server sets itself. Order is irrelevant; each key's index is its slot.
pub(super) const KNOWN_KEYS: &[&str] = &[
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

/// Slots of the keys the builder reads.
pub(super) struct Slots {
    pub method: usize,
    pub uri: usize,
    pub path_info: usize,
    pub query_string: usize,
    pub protocol: usize,
    pub remote_addr: usize,
    pub script_name: usize,
    pub https: usize,
    pub uwsgi_scheme: usize,
    pub request_scheme: usize,
    pub forwarded_proto: usize,
    pub forwarded_ssl: usize,
    pub cookie: usize,
}

/// The slots, worked out at compile time.
pub(super) const SLOT: Slots = Slots {
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

/// Entries of the known-key hash table: a power of two, about three times the keys, so a lookup
/// (even of an unknown key, which ends at an empty entry) rarely probes twice.
const KEY_TABLE_SIZE: usize = 128;

/// The known keys by [`key_hash`], open addressing: each entry is `slot + 1`, or 0 when empty.
pub(super) struct KeyTable([u8; KEY_TABLE_SIZE]);

impl KeyTable {
    /// Each key at its hash, or at the next free entry after it.
    pub fn new() -> KeyTable {
        let mut table = [0u8; KEY_TABLE_SIZE];
        for (i, k) in KNOWN_KEYS.iter().enumerate() {
            let mut at = key_hash(k.as_bytes());
            while table[at] != 0 {
                at = (at + 1) % KEY_TABLE_SIZE;
            }
            table[at] = u8::try_from(i + 1).expect("KNOWN_KEYS fits a u8");
        }
        KeyTable(table)
    }

    /// A key's slot in [`KNOWN_KEYS`]: one hash, and nearly always one comparison. The table
    /// always has empty entries, so a search for an unknown key ends.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let mut at = key_hash(key);
        loop {
            let slot = usize::from(self.0[at].checked_sub(1)?);
            if same_bytes(KNOWN_KEYS[slot].as_bytes(), key) {
                return Some(slot);
            }
            at = (at + 1) % KEY_TABLE_SIZE;
        }
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
        let table = KeyTable::new();
        for (i, k) in KNOWN_KEYS.iter().enumerate() {
            assert_eq!(table.find(k.as_bytes()), Some(i), "{k}");
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
            assert_eq!(table.find(unknown), None, "{unknown:?}");
        }
        // nginx's uwsgi_params and the headers every browser sends: found on the first probe.
        for k in [
            "REQUEST_METHOD",
            "QUERY_STRING",
            "PATH_INFO",
            "HTTP_HOST",
            "REMOTE_ADDR",
        ] {
            let first = table.0[key_hash(k.as_bytes())];
            assert_eq!(KNOWN_KEYS[usize::from(first) - 1], k);
        }
    }
}
