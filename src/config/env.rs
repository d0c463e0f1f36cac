//! Options from the environment: `UWSGI_<OPTION>` as uWSGI reads them (`UWSGI_SOCKET=:3031`,
//! `UWSGI_PROCESSES=4`, `UWSGI_INI=/etc/app.ini`), and `RWSGI_<OPTION>`, rwsgi's own spelling.
//!
//! They go in front of the command line, so a flag or an ini key given there wins over a single-value
//! option, and list options (`socket`, `env`) add up, as in uWSGI (which reads the environment
//! first). `RWSGI_` comes after `UWSGI_`, so it wins when both name one option. A name that is no
//! rwsgi option becomes a placeholder, as uWSGI makes it one (and `strict` does not count it:
//! environments carry many unrelated `UWSGI_`/`RWSGI_` variables).

use super::ini::find_arg;
use std::ffi::OsString;

/// Variables uWSGI (and rwsgi's reload) set for their own use: never options.
const INTERNAL: &[&str] = &[
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
    "RWSGI_LISTEN_FDS",
    "RWSGI_LOG_PIPE",
];

/// The flags `vars` give, in order: every `UWSGI_` one, then every `RWSGI_` one.
pub(super) fn options(
    vars: impl Iterator<Item = (OsString, OsString)>,
    command: &clap::Command,
) -> Vec<OsString> {
    let vars: Vec<(String, String)> = vars
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !INTERNAL.contains(&k.as_str()))
        .collect();
    let mut flags = Vec::new();
    for prefix in ["UWSGI_", "RWSGI_"] {
        for (key, value) in &vars {
            let Some(name) = key.strip_prefix(prefix).filter(|n| !n.is_empty()) else {
                continue;
            };
            let name = name.to_ascii_lowercase().replace('_', "-");
            flags.extend(flag(&name, value, command));
        }
    }
    flags
}

/// One variable as a flag: a boolean only when true, a name rwsgi does not know as a placeholder.
fn flag(name: &str, value: &str, command: &clap::Command) -> Option<OsString> {
    let text = match find_arg(command, name) {
        Some(arg) if !arg.get_action().takes_values() => {
            let on = value.is_empty() || super::args::parse_bool(value).unwrap_or(true);
            on.then(|| format!("--{name}"))?
        }
        Some(_) => format!("--{name}={value}"),
        None if name == "ini" => format!("--ini={value}"),
        None => format!("--set-ph={name}={value}"),
    };
    Some(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use clap::CommandFactory;

    fn vars(pairs: &[(&str, &str)]) -> Vec<String> {
        let it = pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        options(it, &Args::command())
            .into_iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn names_values_and_order() {
        let flags = vars(&[
            ("RWSGI_PROCESSES", "3"),
            ("UWSGI_SOCKET", ":3031"),
            ("UWSGI_PROCESSES", "2"),
            ("UWSGI_MASTER", "true"),
            ("UWSGI_VACUUM", "false"),
            ("UWSGI_MAX_REQUESTS", "100"),
            ("UWSGI_ENV", "K=V"),
            ("UWSGI_BASE", "/srv"),
            ("UWSGI_RELOADS", "1"),
            ("RWSGI_LISTEN_FDS", "3"),
            ("PATH", "/bin"),
            ("UWSGI_", "x"),
        ]);
        assert_eq!(
            flags,
            [
                "--socket=:3031",
                "--processes=2",
                "--master",
                "--max-requests=100",
                "--env=K=V",
                "--set-ph=base=/srv",
                "--processes=3"
            ]
        );
    }
}
