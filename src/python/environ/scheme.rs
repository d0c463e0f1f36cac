//! `wsgi.url_scheme`: whether a request came over TLS, from what the proxy says.
//!
//! `UWSGI_SCHEME` first (verbatim), then `HTTPS` (`on`/`1`), then nginx's `REQUEST_SCHEME`;
//! `X-Forwarded-Proto`/`-Ssl` before `HTTPS` only with `--trust-forwarded-headers`, since any
//! client can send them.

use super::Seen;

/// Whether the request came over TLS (a verbatim `UWSGI_SCHEME` other than https is applied by
/// the caller).
pub(super) fn is_https(seen: &Seen<'_>, trust_forwarded: bool) -> bool {
    if !seen.uwsgi_scheme.is_empty() {
        return seen.uwsgi_scheme.eq_ignore_ascii_case(b"https");
    }
    if trust_forwarded {
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

/// `on`, `1` (any case) as uWSGI reads `HTTPS` and `X-Forwarded-Ssl`.
fn is_on(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"on") || value == b"1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_var_present_decides() {
        let plain = Seen::default();
        assert!(!is_https(&plain, true));
        let nginx = Seen {
            request_scheme: b"https",
            ..Seen::default()
        };
        assert!(is_https(&nginx, false));
        let off = Seen {
            https: b"off",
            ..nginx
        };
        assert!(!is_https(&off, false), "HTTPS comes before REQUEST_SCHEME");
        let forced = Seen {
            uwsgi_scheme: b"HTTPS",
            https: b"off",
            ..Seen::default()
        };
        assert!(
            is_https(&forced, false),
            "UWSGI_SCHEME comes first, any case"
        );
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let proto = Seen {
            forwarded_proto: b"https",
            https: b"off",
            ..Seen::default()
        };
        assert!(!is_https(&proto, false));
        assert!(is_https(&proto, true));
        let ssl = Seen {
            forwarded_ssl: b"On",
            ..Seen::default()
        };
        assert!(!is_https(&ssl, false));
        assert!(is_https(&ssl, true));
    }
}
