//! The HTTP front end's flags (`--http-socket` and friends) and the static-file flags
//! (`--static-map` and friends), flattened into [`super::Args`] and validated into [`HttpConfig`].

use super::{ConfigError, SocketSpec};
use crate::statics::{ExpiresRule, StaticMap, StaticRules};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Idle keep-alive timeout when `--http-keepalive` is given without a value, or not at all.
pub const DEFAULT_KEEPALIVE_SECS: u64 = 15;
/// Request-head timeout (`--http-timeout`): nginx's `client_header_timeout`.
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 60;

/// The HTTP and static-file flags.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// Bind an HTTP/1.1 socket (repeatable): HOST:PORT, :PORT, a unix path or @abstract. The
    /// workers speak HTTP on it directly, with keep-alive (uWSGI's --http11-socket).
    #[arg(
        long,
        visible_alias = "http11-socket",
        value_name = "ADDR",
        help_heading = "HTTP"
    )]
    pub http_socket: Vec<String>,

    /// uWSGI's router spelling: rwsgi has no separate router process, so this is --http-socket.
    #[arg(long, value_name = "ADDR", help_heading = "HTTP")]
    pub http: Vec<String>,

    /// Seconds an idle keep-alive HTTP connection is kept (15 without a value; 0: close after
    /// every response).
    #[arg(long, num_args = 0..=1, default_missing_value = "15", value_name = "SECS",
          help_heading = "HTTP")]
    pub http_keepalive: Option<u64>,

    /// Seconds a client has to send a whole HTTP request head (slow clients are cut).
    #[arg(long, default_value_t = DEFAULT_HTTP_TIMEOUT_SECS, value_name = "SECS", help_heading = "HTTP")]
    pub http_timeout: u64,

    /// Add a header to every HTTP response: "Name: value" (repeatable).
    #[arg(long, value_name = "HEADER", help_heading = "HTTP")]
    pub add_header: Vec<String>,

    /// Serve files under DIR for URLs under PREFIX, the prefix stripped: /PREFIX=DIR (repeatable).
    #[arg(long, value_name = "PREFIX=DIR", help_heading = "Static files")]
    pub static_map: Vec<String>,

    /// Like --static-map, the prefix kept: /static=/srv serves /srv/static/x for /static/x.
    #[arg(long, value_name = "PREFIX=DIR", help_heading = "Static files")]
    pub static_map2: Vec<String>,

    /// Look every request path up under DIR first (uWSGI's document-root check).
    #[arg(long, value_name = "DIR", help_heading = "Static files")]
    pub check_static: Vec<PathBuf>,

    /// File served for a directory (repeatable, tried in order), e.g. index.html.
    #[arg(long, value_name = "NAME", help_heading = "Static files")]
    pub static_index: Vec<String>,

    /// A mime.types file for Content-Type by extension (repeatable; /etc/mime.types is read when
    /// present, on top of a built-in table).
    #[arg(long, value_name = "FILE", help_heading = "Static files")]
    pub mimefile: Vec<PathBuf>,

    /// Expires/Cache-Control for a Content-Type: TYPE=SECS (repeatable).
    #[arg(long, value_name = "TYPE=SECS", help_heading = "Static files")]
    pub static_expires_type: Vec<String>,

    /// Expires/Cache-Control for paths matching a regex: REGEX=SECS (repeatable).
    #[arg(long, value_name = "REGEX=SECS", help_heading = "Static files")]
    pub static_expires_uri: Vec<String>,

    /// Serve FILE.gz instead of FILE to clients that accept gzip, when it exists.
    #[arg(long, help_heading = "Static files")]
    pub static_gzip_all: bool,
}

/// The validated HTTP front-end settings.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// `--http-socket`, `--http11-socket` and `--http`.
    pub sockets: Vec<SocketSpec>,
    /// Index of the first HTTP socket in [`super::Config::sockets`] (they follow the uwsgi ones).
    pub first: usize,
    /// Idle keep-alive timeout; `None`: close after every response.
    pub keepalive: Option<Duration>,
    /// Time allowed for a whole request head.
    pub timeout: Duration,
    /// `--add-header`, split into name and value.
    pub add_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The static-file rules (also used on uwsgi sockets).
    pub statics: StaticRules,
    /// Lines for the start-up log.
    pub notes: Vec<String>,
}

/// Split `KEY=VALUE` for `flag`.
fn pair<'a>(flag: &str, spec: &'a str) -> Result<(&'a str, &'a str), ConfigError> {
    spec.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| ConfigError(format!("{flag} {spec:?}: expected KEY=VALUE")))
}

fn seconds(flag: &str, spec: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError(format!("{flag} {spec:?}: {v:?} is not a number of seconds")))
}

impl HttpConfig {
    /// Validate the flags.
    pub fn from_args(a: &HttpArgs) -> Result<HttpConfig, ConfigError> {
        let mut sockets = Vec::new();
        for s in a.http_socket.iter().chain(&a.http) {
            sockets.push(SocketSpec::parse(s)?);
        }
        let notes = a
            .http
            .iter()
            .map(|s| {
                format!(
                    "--http {s}: rwsgi has no separate router process; the workers speak HTTP on \
                     this socket themselves (as --http-socket)"
                )
            })
            .collect();
        let add_headers = a
            .add_header
            .iter()
            .map(|h| {
                let (n, v) = h
                    .split_once(':')
                    .filter(|(n, _)| {
                        crate::protocol::response::check_header(n.trim().as_bytes(), b"").is_ok()
                    })
                    .ok_or_else(|| {
                        ConfigError(format!("--add-header {h:?}: expected \"Name: value\""))
                    })?;
                crate::protocol::response::check_header(n.trim().as_bytes(), v.trim().as_bytes())
                    .map_err(|e| ConfigError(format!("--add-header {h:?}: {e}")))?;
                Ok((n.trim().as_bytes().to_vec(), v.trim().as_bytes().to_vec()))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(HttpConfig {
            first: 0,
            sockets,
            keepalive: a
                .http_keepalive
                .or(Some(DEFAULT_KEEPALIVE_SECS))
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
            timeout: Duration::from_secs(a.http_timeout.max(1)),
            add_headers,
            statics: static_rules(a)?,
            notes,
        })
    }
}

/// The static-file flags as rules.
fn static_rules(a: &HttpArgs) -> Result<StaticRules, ConfigError> {
    let mut maps = Vec::new();
    for (flag, specs, keep_prefix) in [
        ("--static-map", &a.static_map, false),
        ("--static-map2", &a.static_map2, true),
    ] {
        for spec in specs {
            let (prefix, dir) = pair(flag, spec)?;
            maps.push(StaticMap {
                prefix: prefix.trim_end_matches('/').to_string(),
                dir: PathBuf::from(dir),
                keep_prefix,
            });
        }
    }
    for dir in &a.check_static {
        maps.push(StaticMap {
            prefix: String::new(),
            dir: dir.clone(),
            keep_prefix: true,
        });
    }
    let mut expires = Vec::new();
    for spec in &a.static_expires_type {
        let (ty, secs) = pair("--static-expires-type", spec)?;
        let secs = seconds("--static-expires-type", spec, secs)?;
        expires.push(ExpiresRule::Type(ty.to_string(), secs));
    }
    for spec in &a.static_expires_uri {
        let (re, secs) = spec.rsplit_once('=').ok_or_else(|| {
            ConfigError(format!(
                "--static-expires-uri {spec:?}: expected REGEX=SECS"
            ))
        })?;
        let secs = seconds("--static-expires-uri", spec, secs)?;
        let re = regex::Regex::new(re)
            .map_err(|e| ConfigError(format!("--static-expires-uri {spec:?}: {e}")))?;
        expires.push(ExpiresRule::Uri(re, secs));
    }
    let mut mimefiles = a.mimefile.clone();
    let system = PathBuf::from("/etc/mime.types");
    if mimefiles.is_empty() && system.exists() {
        mimefiles.push(system);
    }
    StaticRules::new(
        maps,
        a.static_index.clone(),
        &mimefiles,
        expires,
        a.static_gzip_all,
    )
    .map_err(|e| ConfigError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::config::load;
    use std::time::Duration;

    fn http_of(args: &[&str]) -> super::HttpConfig {
        let argv = ["rwsgi", "--module", "app", "--socket", ":3031"]
            .into_iter()
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        load(argv).map(|(c, _)| c.http).unwrap()
    }

    #[test]
    fn http_sockets_and_aliases() {
        let h = http_of(&[
            "--http-socket",
            ":8000",
            "--http11-socket",
            "/tmp/h.sock",
            "--http",
            "127.0.0.1:9",
        ]);
        assert_eq!(h.sockets.len(), 3);
        assert_eq!(h.notes.len(), 1, "one info line for --http");
        assert_eq!(h.first, 1, "the HTTP sockets follow the --socket");
        assert_eq!(h.keepalive, Some(Duration::from_secs(15)));
        assert_eq!(h.timeout, Duration::from_secs(60));
        let h = http_of(&[
            "--http-socket",
            ":8000",
            "--http-keepalive",
            "0",
            "--http-timeout",
            "5",
        ]);
        assert_eq!((h.keepalive, h.timeout), (None, Duration::from_secs(5)));
        let h = http_of(&[
            "--http-socket",
            ":8000",
            "--http-keepalive",
            "--add-header",
            "X-A: b c",
        ]);
        assert_eq!(h.keepalive, Some(Duration::from_secs(15)));
        assert_eq!(h.add_headers, [(b"X-A".to_vec(), b"b c".to_vec())]);
    }

    #[test]
    fn bad_values_are_errors() {
        let load_args = |args: &[&str]| {
            let argv = ["rwsgi", "--module", "app", "--socket", ":3031"]
                .into_iter()
                .chain(args.iter().copied())
                .map(Into::into)
                .collect();
            load(argv).map(|_| ())
        };
        assert!(load_args(&["--http-socket", ":8000", "--add-header", "no colon"]).is_err());
        assert!(load_args(&["--http-socket", ":8000", "--add-header", "X: a\r\nb"]).is_err());
        assert!(load_args(&["--http-socket", ":8000", "--static-map", "/s"]).is_err());
        assert!(load_args(&[
            "--http-socket",
            ":8000",
            "--static-map",
            "/s=/nonexistent-dir-x"
        ])
        .is_err());
        assert!(load_args(&["--http-socket", ":8000", "--static-expires-uri", "(=5"]).is_err());
        assert!(load_args(&["--http-socket", ":8000", "--static-map", "/s=/tmp"]).is_ok());
    }

    #[test]
    fn works_in_ini() {
        let path = std::env::temp_dir().join(format!("rwsgi-http-{}.ini", std::process::id()));
        std::fs::write(
            &path,
            "[uwsgi]\nhttp-socket = :8001\nhttp-keepalive = 3\nstatic-map = /s=/tmp\nadd-header = X-Y: z\n",
        )
        .unwrap();
        let h = http_of(&["--ini", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(&path);
        assert_eq!(h.sockets.len(), 1);
        assert_eq!(h.keepalive, Some(Duration::from_secs(3)));
        assert!(!h.statics.is_empty());
        assert_eq!(h.add_headers.len(), 1);
    }
}
