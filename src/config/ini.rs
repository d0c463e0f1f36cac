//! `--ini FILE[:section]`: uWSGI's ini files, expanded in place into long flags, so flags after
//! `--ini` on the command line override the file (clap keeps the last value).
//!
//! uWSGI's order, which users' files rely on: magic variables (`%d`, `%n`, ...) are substituted in
//! each file as it is read, and `ini = other.ini` lines are loaded where they stand. Once every file
//! is read, values get `$(ENV)`, then `@(file)`, then `%(placeholder)` substituted. A key that is not
//! an option is a placeholder, as is each `set-ph`/`set-placeholder = name=value`; `%(name)` finds
//! the first option or placeholder of that name anywhere in the assembled configuration.

mod formats;
mod logic;
mod magic;
mod substitute;

use super::ConfigError;
use logic::{Line, Sink};
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
    "shared-socket", 
    "plugin-dir", "harakiri-graceful-timeout", "harakiri-graceful-signal",
    "reload-on-as", "evil-reload-on-rss", "evil-reload-on-as", "safe-pidfile", "pidfile2",
    "daemonize", "max-vars", "wsgi-env-behavior",
    "wsgi-env-behaviour", "close-on-exec", "catch-exceptions",
    "wsgi-disable-file-wrapper", "py-autoreload", "python-autoreload", "py-tracebacker",
    "cheaper",
    "cheaper-algo", "cheaper-initial", "offload-threads",
    "master-fifo", "hook-master-start", "no-orphans", "reuse-port", "so-keepalive", "cpu-affinity",
    "limit-as", "unenv", "import", "pyimport", "shared-import", "spooler", "mule", "cron",
    "attach-daemon", "smart-attach-daemon", "touch-chain-reload", "route",
    "route-run", "enable-proxy-protocol", "max-fd", "xml",
    "include", "inherit", "if-reload", "if-not-reload", "if-plugin", "if-not-plugin",
    "if-hostname-match", "if-not-hostname-match",
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
    /// A key of a file that is no option: a placeholder, and unknown to `strict`.
    Custom,
}

/// An expanded command line, and the keys of files that are no option (for `strict`).
pub struct Expanded {
    /// The command line, each `--ini` (and `--yaml`, `--json`) replaced by its entries.
    pub argv: Vec<OsString>,
    /// Keys of the files that are no option (placeholders only), for `--strict` to name.
    pub custom: Vec<String>,
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
) -> Result<Expanded, ConfigError> {
    let lone_ini = lone_ini(&argv);
    let mut loader = Loader {
        command,
        warnings,
        last_file: None,
        first: None,
        depth: 0,
    };
    let mut pieces = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter().peekable();
    let mut i = 0;
    while let Some(arg) = iter.next() {
        i += 1;
        let text = arg.to_string_lossy().into_owned();
        let mut value_of = |flag: &str| {
            if text == format!("--{flag}") {
                iter.next().map(|v| v.to_string_lossy().into_owned())
            } else {
                text.strip_prefix(&format!("--{flag}=")).map(str::to_string)
            }
        };
        let lone = (i == 2).then_some(lone_ini).flatten();
        let file = FORMATS.iter().find_map(|&(flag, format)| {
            let spec = value_of(flag).or_else(|| (lone == Some(flag)).then(|| text.clone()))?;
            Some((format, spec))
        });
        if let Some((format, spec)) = file {
            loader.load(format, &spec, &mut pieces)?;
        } else if let Some(v) = value_of("set-ph").or_else(|| value_of("set-placeholder")) {
            pieces.extend(set_placeholder(&v, loader.warnings).map(Piece::Entry));
        } else if cli_key(&text).is_some_and(logic::opens) {
            let lines = cli_block(arg, &mut iter, command);
            let mut logic_warnings = Vec::new();
            let mut sink = LoadSink {
                loader: &mut loader,
                out: &mut pieces,
                unknown: Kind::Foreign,
            };
            logic::run(lines, &mut sink, &mut logic_warnings)?;
            loader.warnings.extend(logic_warnings);
        } else {
            pieces.push(Piece::Arg(arg));
        }
    }
    substitute_all(&mut pieces, warnings)?;
    let mut custom = Vec::new();
    let argv = pieces
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Arg(arg) => Some(arg),
            Piece::Entry(e) if e.kind == Kind::Custom => {
                custom.push(e.key);
                None
            }
            Piece::Entry(e) if e.kind == Kind::Placeholder => None,
            Piece::Entry(e) => to_flag(&e, command),
        })
        .collect();
    Ok(Expanded { argv, custom })
}

/// The config file formats, by the flag (or key) that loads one.
const FORMATS: &[(&str, Format)] = &[
    ("ini", Format::Ini),
    ("yaml", Format::Yaml),
    ("yml", Format::Yaml),
    ("json", Format::Json),
    ("js", Format::Json),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ini,
    Yaml,
    Json,
}

impl Format {
    fn flag(self) -> &'static str {
        match self {
            Format::Ini => "--ini",
            Format::Yaml => "--yaml",
            Format::Json => "--json",
        }
    }
}

/// `rwsgi app.ini` (or `app.yaml`, `app.yml`, `app.json`): a lone argument naming a config file
/// means `--ini app.ini` (`--yaml`, `--json`), as in uWSGI. The flag's name, when it does.
pub fn lone_ini(argv: &[OsString]) -> Option<&'static str> {
    let arg = argv.get(1).filter(|_| argv.len() == 2)?.to_str()?;
    if arg.starts_with('-') {
        return None;
    }
    let file = arg
        .rsplit_once(':')
        .map_or(arg, |(f, s)| if s.contains('/') { arg } else { f });
    [
        ("ini", ".ini"),
        ("yaml", ".yaml"),
        ("yml", ".yml"),
        ("json", ".json"),
    ]
    .into_iter()
    .find_map(|(flag, ext)| file.ends_with(ext).then_some(flag))
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
    fn load(
        &mut self,
        format: Format,
        spec: &str,
        out: &mut Vec<Piece>,
    ) -> Result<(), ConfigError> {
        let (path, section) = match spec.rsplit_once(':') {
            Some((p, s)) if !s.contains('/') => (p, if s.is_empty() { "uwsgi" } else { s }),
            _ => (spec, "uwsgi"),
        };
        let path = match (path, &self.last_file) {
            ("", Some(last)) => last.clone(),
            ("", None) => {
                let flag = format.flag();
                return Err(ConfigError(format!("{flag} {spec}: no file read yet")));
            }
            (path, _) => path.to_string(),
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError(format!(
                "{} {path}: config files nested too deep",
                format.flag()
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("{} {path}: {e}", format.flag())))?;
        self.last_file = Some(path.clone());
        let file = FileInfo::new(&path, section);
        let first = self.first.get_or_insert_with(|| file.clone()).clone();
        let text = magic::expand(text.trim_start_matches('\u{feff}'), &file, &first);
        let pairs = match format {
            Format::Ini => parse(&text, section),
            Format::Yaml => formats::yaml(&text, section),
            Format::Json => formats::json(&text, section, &path)?,
        };
        let Some(pairs) = pairs else {
            self.warnings.push(format!(
                "can't find section \"{section}\" in {} configuration file {path}",
                &format.flag()[2..]
            ));
            return Ok(());
        };
        let lines = pairs
            .into_iter()
            .map(|(number, key, value)| Line {
                key,
                value,
                at: format!("{path}:{number}"),
            })
            .collect();
        let mut logic_warnings = Vec::new();
        let mut sink = LoadSink {
            loader: self,
            out,
            unknown: Kind::Custom,
        };
        logic::run(lines, &mut sink, &mut logic_warnings)?;
        self.warnings.extend(logic_warnings);
        Ok(())
    }

    /// One applied `key = value`: `ini` loads a file there, `set-ph` defines a placeholder, the
    /// rest are entries (a key rwsgi does not know is `unknown`).
    fn apply(
        &mut self,
        line: Line,
        out: &mut Vec<Piece>,
        unknown: Kind,
    ) -> Result<(), ConfigError> {
        let Line { key, value, .. } = line;
        if let Some(&(_, format)) = FORMATS.iter().find(|(flag, _)| *flag == key) {
            self.depth += 1;
            let included = substitute(&value, '$', |name| Ok(Some(env_value(name))))?;
            let loaded = self.load(format, &included, out);
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
                unknown
            };
            out.push(Piece::Entry(Entry { key, value, kind }));
        }
        Ok(())
    }
}

/// The logic's view of the configuration being assembled.
struct LoadSink<'l, 'a, 'o> {
    loader: &'l mut Loader<'a>,
    out: &'o mut Vec<Piece>,
    /// What a key that is no option becomes: a placeholder in a file, a warning on the command line.
    unknown: Kind,
}

impl Sink for LoadSink<'_, '_, '_> {
    fn apply(&mut self, line: Line) -> Result<(), ConfigError> {
        self.loader.apply(line, self.out, self.unknown)
    }

    /// The first value given to `name` so far, as uWSGI's `if-opt` finds it.
    fn option(&self, name: &str) -> Option<String> {
        let mut args = self.out.iter().peekable();
        while let Some(piece) = args.next() {
            match piece {
                Piece::Entry(e) if e.key == name => return Some(e.value.clone()),
                Piece::Arg(a) => {
                    let text = a.to_string_lossy();
                    let Some(long) = text.strip_prefix("--") else {
                        continue;
                    };
                    if let Some((k, v)) = long.split_once('=').filter(|(k, _)| *k == name) {
                        return Some(v.to_string()).filter(|_| k == name);
                    }
                    if long == name {
                        let next = match args.peek() {
                            Some(Piece::Arg(n)) if !n.to_string_lossy().starts_with('-') => {
                                n.to_string_lossy().into_owned()
                            }
                            _ => "true".into(),
                        };
                        return Some(next);
                    }
                }
                Piece::Entry(_) => {}
            }
        }
        None
    }
}

/// The option name of a long flag (`--name` or `--name=value`).
fn cli_key(arg: &str) -> Option<&str> {
    let long = arg.strip_prefix("--")?;
    Some(long.split_once('=').map_or(long, |(k, _)| k))
}

/// A logic block given on the command line (`--if-env X --socket :1 --endif`), from its opening
/// flag to the flag that closes it, as `key = value` lines.
fn cli_block(
    first: OsString,
    rest: &mut std::iter::Peekable<impl Iterator<Item = OsString>>,
    command: &clap::Command,
) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut depth = 0usize;
    let mut arg = Some(first);
    while let Some(a) = arg.take() {
        let (key, value) = cli_pair(&a, rest, command);
        if logic::opens(&key) {
            depth += 1;
        } else if logic::closes(&key) {
            depth = depth.saturating_sub(1);
        }
        lines.push(Line {
            key,
            value,
            at: "command line".into(),
        });
        if depth == 0 {
            break;
        }
        arg = rest.next();
    }
    lines
}

/// One command-line option as `key = value`. A flag takes the next argument as its value when
/// clap says it takes one (an optional one, or an option clap does not know, only when the next
/// is not a flag); a short flag is named by its long name.
pub(in crate::config) fn cli_pair(
    arg: &OsString,
    rest: &mut std::iter::Peekable<impl Iterator<Item = OsString>>,
    command: &clap::Command,
) -> (String, String) {
    let text = arg.to_string_lossy().into_owned();
    let next_is_value = rest
        .peek()
        .is_some_and(|n| !n.to_string_lossy().starts_with('-'));
    let mut next = || {
        rest.next()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(long) = text.strip_prefix("--") {
        if let Some((k, v)) = long.split_once('=') {
            return (k.to_string(), v.to_string());
        }
        let take = match find_arg(command, long) {
            _ if logic::opens(long) => true,
            Some(a) => {
                let optional = a.get_num_args().is_some_and(|n| n.min_values() == 0);
                a.get_action().takes_values() && (next_is_value || !optional)
            }
            None => !logic::closes(long) && next_is_value,
        };
        let value = if take { next() } else { String::new() };
        return (long.to_string(), value);
    }
    let Some(short) = text.strip_prefix('-').and_then(|s| s.chars().next()) else {
        return (text, String::new());
    };
    let found = command
        .get_arguments()
        .find(|a| a.get_short() == Some(short));
    let key = found
        .and_then(|a| a.get_long())
        .unwrap_or(&text[1..])
        .to_string();
    let inline = &text[1 + short.len_utf8()..];
    let value = if !inline.is_empty() {
        inline.trim_start_matches('=').to_string()
    } else if found.is_some_and(|a| a.get_action().takes_values()) && next_is_value {
        next()
    } else {
        String::new()
    };
    (key, value)
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

/// The `key = value` pairs of `section`, in order, with their line numbers; `None` when the
/// section has no keys.
fn parse(text: &str, section: &str) -> Option<Vec<(usize, String, String)>> {
    const BLANKS: &[char] = &[' ', '\t', '\r'];
    let mut current = "";
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
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
                number + 1,
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
pub(in crate::config) fn find_arg<'c>(
    command: &'c clap::Command,
    key: &str,
) -> Option<&'c clap::Arg> {
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
