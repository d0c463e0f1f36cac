//! `--ini FILE[:section]`: the `[uwsgi]` section's keys become long flags, placed where the `--ini`
//! flag stood, so flags after it on the command line override the file.

use super::ConfigError;
use std::ffi::OsString;
use std::path::Path;

/// Replace every `--ini FILE` (or `--ini=FILE`) in `argv` with the flags the file holds.
pub fn expand(
    argv: Vec<OsString>,
    command: &clap::Command,
    warnings: &mut Vec<String>,
) -> Result<Vec<OsString>, ConfigError> {
    let mut out = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        let file = if text == "--ini" {
            iter.next().map(|f| f.to_string_lossy().into_owned())
        } else {
            text.strip_prefix("--ini=").map(str::to_string)
        };
        match file {
            Some(file) => out.extend(load_file(&file, command, warnings)?),
            None => out.push(arg),
        }
    }
    Ok(out)
}

/// The flags one ini file gives, in file order.
fn load_file(
    spec: &str,
    command: &clap::Command,
    warnings: &mut Vec<String>,
) -> Result<Vec<OsString>, ConfigError> {
    let (path, section) = match spec.rsplit_once(':') {
        Some((p, s)) if !s.contains('/') && !p.is_empty() => (p, s),
        _ => (spec, "uwsgi"),
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError(format!("--ini {path}: {e}")))?;
    let pairs = parse(&text, section);
    if pairs.is_empty() && !text.contains(&format!("[{section}]")) {
        warnings.push(format!("can't find section [{section}] in ini file {path}"));
    }
    Ok(pairs_to_flags(pairs, Path::new(path), command))
}

/// `key = value` pairs of one section, in order, comments and blank lines skipped.
pub fn parse(text: &str, section: &str) -> Vec<(String, String)> {
    let mut in_section = false;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == section;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        } else {
            pairs.push((line.to_string(), "true".to_string()));
        }
    }
    pairs
}

/// Turn pairs into flags: a boolean flag appears when its value is true; others take their value.
fn pairs_to_flags(
    pairs: Vec<(String, String)>,
    _path: &Path,
    command: &clap::Command,
) -> Vec<OsString> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        let arg = command.get_arguments().find(|a| {
            a.get_long() == Some(key.as_str())
                || a.get_all_aliases()
                    .is_some_and(|v| v.contains(&key.as_str()))
        });
        let takes_value = arg.is_none_or(|a| a.get_action().takes_values());
        if takes_value {
            out.push(OsString::from(format!("--{key}={value}")));
        } else if super::args::parse_bool(&value).unwrap_or(true) {
            out.push(OsString::from(format!("--{key}")));
        }
    }
    out
}
