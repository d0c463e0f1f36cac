//! `--ini FILE[:section]`: uWSGI's ini files, expanded in place into long flags, so flags after
//! `--ini` on the command line override the file (clap keeps the last value).
//!
//! uWSGI's order, which users' files rely on: magic variables (`%d`, `%n`, ...) are substituted in
//! each file as it is read, and `ini = other.ini` lines are loaded where they stand. Once every file
//! is read, values get `$(ENV)`, then `@(file)`, then `%(placeholder)` substituted. A key that is not
//! an option is a placeholder, as is each `set-ph`/`set-placeholder = name=value`; `%(name)` finds
//! the first option or placeholder of that name anywhere in the assembled configuration.

mod magic;
mod substitute;

use super::ConfigError;
use magic::FileInfo;
use std::ffi::OsString;
use substitute::{env_value, placeholders, read_included, substitute};

/// `ini = file` nesting limit; a file that includes itself stops here with an error.
const MAX_INCLUDE_DEPTH: usize = 16;

/// uWSGI options rwsgi lacks. As ini keys they stay options, so they are reported as ignored like
/// on the command line, instead of silently becoming placeholders.
#[rustfmt::skip]
const UWSGI_ONLY_OPTIONS: &[&str] = &[
    "https", "fastcgi-socket", "protocol", "socket-protocol",
    "shared-socket", "plugin", "plugins", "need-plugin",
    "plugin-dir", "harakiri-verbose", "harakiri-graceful-timeout", "harakiri-graceful-signal",
    "reload-on-as", "evil-reload-on-rss", "evil-reload-on-as", "safe-pidfile", "pidfile2",
    "daemonize", "max-vars", "log-date", "logdate",
    "log-x-forwarded-for", "log-master", "log-maxsize", "log-reopen", "req-logger", "logger", "wsgi-env-behavior",
    "wsgi-env-behaviour", "py-call-osafterfork", "close-on-exec", "catch-exceptions",
    "wsgi-disable-file-wrapper", "py-autoreload", "python-autoreload", "py-tracebacker",
    "ignore-sigpipe", "ignore-write-errors", "disable-write-exception", "strict", "lazy", "cheaper",
    "cheaper-algo", "cheaper-initial", "offload-threads",
    "master-fifo", "hook-master-start", "auto-procname", "procname-prefix",
    "procname-prefix-spaced", "no-orphans", "reuse-port", "so-keepalive", "cpu-affinity",
    "limit-as", "unenv", "import", "pyimport", "shared-import", "spooler", "mule", "cron",
    "attach-daemon", "smart-attach-daemon", "touch-chain-reload", "route",
    "route-run", "enable-proxy-protocol", "max-fd", "xml", "yaml", "json",
    "include", "inherit", "for", "endfor", "end-for", "if-env", "if-not-env", "if-exists",
    "if-not-exists", "if-file", "if-not-file", "if-dir", "if-not-dir", "if-opt", "if-not-opt",
    "endif", "end-if", "end",
];

/// One `key = value` of the assembled configuration.
struct Entry {
    key: String,
    value: String,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// An rwsgi option: becomes a flag.
    Option,
    /// A uWSGI option rwsgi lacks: passed on, so the loader warns that it is ignored.
    Foreign,
    /// Only feeds `%(key)`.
    Placeholder,
}

/// The command line with each `--ini` replaced by the entries of its files.
enum Piece {
    Arg(OsString),
    Entry(Entry),
}

/// Replace every `--ini FILE[:section]` (or `--ini=...`) in `argv` with the flags the file gives,
/// and take `--set-ph`/`--set-placeholder NAME=VALUE` out as placeholders. A lone `app.ini`
/// argument means `--ini app.ini`, as in uWSGI.
pub fn expand(
    argv: Vec<OsString>,
    command: &clap::Command,
    warnings: &mut Vec<String>,
) -> Result<Vec<OsString>, ConfigError> {
    let lone_ini = argv.len() == 2
        && argv[1]
            .to_str()
            .is_some_and(|a| !a.starts_with('-') && (a.ends_with(".ini") || a.contains(".ini:")));
    let mut loader = Loader {
        command,
        warnings,
        last_file: None,
        first: None,
        depth: 0,
    };
    let mut pieces = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter().enumerate();
    while let Some((i, arg)) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        let mut value_of = |flag: &str| {
            if text == format!("--{flag}") {
                iter.next().map(|(_, v)| v.to_string_lossy().into_owned())
            } else {
                text.strip_prefix(&format!("--{flag}=")).map(str::to_string)
            }
        };
        if let Some(spec) = value_of("ini").or_else(|| (lone_ini && i == 1).then(|| text.clone())) {
            loader.load(&spec, &mut pieces)?;
        } else if let Some(v) = value_of("set-ph").or_else(|| value_of("set-placeholder")) {
            pieces.extend(set_placeholder(&v, loader.warnings).map(Piece::Entry));
        } else {
            pieces.push(Piece::Arg(arg));
        }
    }
    substitute_all(&mut pieces, warnings)?;
    Ok(pieces
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Arg(arg) => Some(arg),
            Piece::Entry(e) if e.kind == Kind::Placeholder => None,
            Piece::Entry(e) => to_flag(&e, command),
        })
        .collect())
}

/// Reads ini files, following `ini = ...` lines inside them.
struct Loader<'a> {
    command: &'a clap::Command,
    warnings: &'a mut Vec<String>,
    /// For `ini = :section`: the file read last.
    last_file: Option<String>,
    /// The first file loaded, for the upper-case magic variables.
    first: Option<FileInfo>,
    depth: usize,
}

impl Loader<'_> {
    fn load(&mut self, spec: &str, out: &mut Vec<Piece>) -> Result<(), ConfigError> {
        let (path, section) = match spec.rsplit_once(':') {
            Some((p, s)) if !s.contains('/') => (p, if s.is_empty() { "uwsgi" } else { s }),
            _ => (spec, "uwsgi"),
        };
        let path = match (path, &self.last_file) {
            ("", Some(last)) => last.clone(),
            ("", None) => return Err(ConfigError(format!("--ini {spec}: no ini file read yet"))),
            (path, _) => path.to_string(),
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError(format!(
                "--ini {path}: ini files nested too deep"
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("--ini {path}: {e}")))?;
        self.last_file = Some(path.clone());
        let file = FileInfo::new(&path, section);
        let first = self.first.get_or_insert_with(|| file.clone()).clone();
        let text = magic::expand(text.trim_start_matches('\u{feff}'), &file, &first);
        let Some(pairs) = parse(&text, section) else {
            self.warnings.push(format!(
                "can't find section \"{section}\" in INI configuration file {path}"
            ));
            return Ok(());
        };
        for (key, value) in pairs {
            if key == "ini" {
                self.depth += 1;
                let included = substitute(&value, '$', |name| Ok(Some(env_value(name))))?;
                let loaded = self.load(&included, out);
                self.depth -= 1;
                loaded?;
            } else if key == "set-ph" || key == "set-placeholder" {
                out.extend(set_placeholder(&value, self.warnings).map(Piece::Entry));
            } else {
                let kind = if find_arg(self.command, &key).is_some() {
                    Kind::Option
                } else if UWSGI_ONLY_OPTIONS.contains(&key.as_str()) {
                    Kind::Foreign
                } else {
                    Kind::Placeholder
                };
                out.push(Piece::Entry(Entry { key, value, kind }));
            }
        }
        Ok(())
    }
}

/// `name=value` of a `set-ph` line.
fn set_placeholder(spec: &str, warnings: &mut Vec<String>) -> Option<Entry> {
    let Some((name, value)) = spec.split_once('=') else {
        warnings.push(format!(
            "ignoring set-placeholder {spec:?}: expected NAME=VALUE"
        ));
        return None;
    };
    let (key, value) = (name.trim().to_string(), value.trim().to_string());
    Some(Entry {
        key,
        value,
        kind: Kind::Placeholder,
    })
}

/// The `key = value` pairs of `section`, in order; `None` when the section has no keys.
fn parse(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    const BLANKS: &[char] = &[' ', '\t', '\r'];
    let mut current = "";
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim_matches(BLANKS);
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            current = name.strip_suffix(']').unwrap_or(name).trim_matches(BLANKS);
        } else if current == section {
            // A key without `=` has an empty value: `master` alone means `master = true`.
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            pairs.push((
                key.trim_matches(BLANKS).into(),
                value.trim_matches(BLANKS).into(),
            ));
        }
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// `$(ENV)`, then `@(file)`, then `%(placeholder)` in every entry's value.
fn substitute_all(pieces: &mut [Piece], warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    for piece in pieces.iter_mut() {
        if let Piece::Entry(e) = piece {
            let value = substitute(&e.value, '$', |name| Ok(Some(env_value(name))))?;
            e.value = substitute(&value, '@', |path| read_included(path).map(Some))?;
        }
    }
    let table: Vec<(String, String)> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Entry(e) => Some((e.key.clone(), e.value.clone())),
            Piece::Arg(_) => None,
        })
        .collect();
    for piece in pieces.iter_mut() {
        if let Piece::Entry(e) = piece {
            let expanded = placeholders(&e.value, &table, 0);
            // Only rwsgi's own options, and not `log-format`: its variables are `%(...)` too, left
            // alone unless a placeholder of the same name exists (as in uWSGI).
            if e.kind == Kind::Option && e.key != "log-format" && expanded.contains("%(") {
                warnings.push(format!("ini: {} = {expanded}: unknown placeholder", e.key));
            }
            e.value = expanded;
        }
    }
    Ok(())
}

/// The clap argument a key names (its long name or an alias).
fn find_arg<'c>(command: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    command.get_arguments().find(|a| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|v| v.contains(&key))
    })
}

/// The flag for one option: a boolean flag only when its value is true (any value but uWSGI's
/// false spellings, or none); an optional-value flag bare when the value is empty.
fn to_flag(entry: &Entry, command: &clap::Command) -> Option<OsString> {
    let (key, value) = (&entry.key, &entry.value);
    let Some(arg) = find_arg(command, key).filter(|_| entry.kind == Kind::Option) else {
        return Some(format!("--{key}={value}").into());
    };
    if !arg.get_action().takes_values() {
        let on = value.is_empty() || super::args::parse_bool(value).unwrap_or(true);
        return on.then(|| format!("--{key}").into());
    }
    let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    Some(
        if optional && value.is_empty() {
            format!("--{key}")
        } else {
            format!("--{key}={value}")
        }
        .into(),
    )
}

#[cfg(test)]
mod tests;
