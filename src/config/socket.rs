//! The `--socket` address forms: `HOST:PORT`, `:PORT`, `[IPV6]:PORT`, a unix path, `@abstract`.

use super::ConfigError;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSpec {
    /// `HOST:PORT`, `:PORT` (every IPv4 interface) or `[IPV6]:PORT`, resolved at parse time.
    Tcp(SocketAddr),
    /// A unix socket path on the filesystem.
    Unix(PathBuf),
    /// A Linux abstract-namespace unix socket (`@name`).
    Abstract(String),
}

impl SocketSpec {
    /// Parse as uWSGI does: a `:` means TCP (`:3031` is every IPv4 interface), `@` abstract, else a path.
    pub fn parse(s: &str) -> Result<SocketSpec, ConfigError> {
        if let Some(name) = s.strip_prefix('@') {
            return Ok(SocketSpec::Abstract(name.to_string()));
        }
        if !s.contains(':') || s.starts_with('/') || s.starts_with('.') {
            return Ok(SocketSpec::Unix(PathBuf::from(s)));
        }
        let full = if s.starts_with(':') {
            format!("0.0.0.0{s}")
        } else {
            s.to_string()
        };
        let addr = full
            .to_socket_addrs()
            .map_err(|e| ConfigError(format!("--socket {s:?}: {e}")))?
            .next()
            .ok_or_else(|| ConfigError(format!("--socket {s:?} resolves to no address")))?;
        Ok(SocketSpec::Tcp(addr))
    }
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketSpec::Tcp(a) => write!(f, "{a}"),
            SocketSpec::Unix(p) => write!(f, "{}", p.display()),
            SocketSpec::Abstract(n) => write!(f, "@{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            SocketSpec::parse("127.0.0.1:3031").unwrap(),
            SocketSpec::Tcp("127.0.0.1:3031".parse().unwrap())
        );
        assert_eq!(
            SocketSpec::parse(":3031").unwrap(),
            SocketSpec::Tcp("0.0.0.0:3031".parse().unwrap())
        );
        assert_eq!(
            SocketSpec::parse("[::1]:3031").unwrap(),
            SocketSpec::Tcp("[::1]:3031".parse().unwrap())
        );
        assert_eq!(
            SocketSpec::parse("/run/app.sock").unwrap(),
            SocketSpec::Unix("/run/app.sock".into())
        );
        assert_eq!(
            SocketSpec::parse("app.sock").unwrap(),
            SocketSpec::Unix("app.sock".into())
        );
        assert_eq!(
            SocketSpec::parse("@rwsgi").unwrap(),
            SocketSpec::Abstract("rwsgi".into())
        );
        assert!(SocketSpec::parse("127.0.0.1:notaport").is_err());
    }
}
