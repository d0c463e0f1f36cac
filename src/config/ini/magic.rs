//! uWSGI's magic variables (`%d`, `%n`, `%p`, ...): what they stand for in one ini file, and their
//! substitution in the file's text as it is read.

use std::path::{Path, PathBuf};

/// What the magic variables of one file stand for.
#[derive(Clone)]
pub(super) struct FileInfo {
    /// The path as given.
    given: String,
    /// Absolute, through `realpath` as uWSGI does, unless the file itself is a symlink: then only
    /// made absolute, so `%d` of a linked config is the link's directory.
    abs: PathBuf,
    section: String,
}

impl FileInfo {
    pub(super) fn new(given: &str, section: &str) -> FileInfo {
        let path = Path::new(given);
        let is_link = path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        let abs = (!is_link)
            .then(|| std::fs::canonicalize(path).ok())
            .flatten()
            .or_else(|| std::path::absolute(path).ok())
            .unwrap_or_else(|| path.to_path_buf());
        FileInfo {
            given: given.into(),
            abs,
            section: section.into(),
        }
    }

    fn name(&self) -> String {
        self.abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The directory, with the trailing slash uWSGI's `%d` has (`%dapp.sock` is common).
    fn dir(&self) -> String {
        let dir = self
            .abs
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.ends_with('/') {
            dir
        } else {
            dir + "/"
        }
    }

    /// `%n` and `%e`: the name split at its last dot (`%n` is the whole name when it has none).
    fn stem_and_extension(&self) -> (String, String) {
        let name = self.name();
        match name.rsplit_once('.') {
            Some((stem, ext)) => (stem.into(), ext.into()),
            None => (name, String::new()),
        }
    }
}

/// Substitute `%X` magic variables in a file's text. Like uWSGI: `%%` is `%`, `%(` is left for the
/// placeholder pass, and an unknown letter stands for nothing.
pub(super) fn expand(text: &str, file: &FileInfo, first: &FileInfo) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(m) => out.push_str(&magic(m, file, first)),
            None => out.push('%'),
        }
    }
    out
}

fn magic(m: char, file: &FileInfo, first: &FileInfo) -> String {
    // Upper-case variants name the first file loaded rather than the current one.
    let f = if m.is_ascii_uppercase() { first } else { file };
    let cwd = || std::env::current_dir().map(|d| d.to_string_lossy().into_owned());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let (uid, gid) = crate::sys::process::real_ids();
    let cpus = crate::sys::host::online_cpus();
    match m {
        '%' => "%".into(),
        '(' => "%(".into(),
        '[' => "\x1b".into(),
        'd' | 'D' => f.dir(),
        'p' | 'P' => f.abs.to_string_lossy().into_owned(),
        's' | 'S' => f.name(),
        'n' | 'N' => f.stem_and_extension().0,
        'e' | 'E' => f.stem_and_extension().1,
        'c' | 'C' => f
            .dir()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .into(),
        'o' | 'O' => f.given.clone(),
        'x' | 'X' => format!("{}:{}", f.given, f.section),
        'v' => cwd().unwrap_or_default(),
        'h' => hostname(),
        'k' => cpus.max(1).to_string(),
        // uWSGI falls back to the numbers when it cannot name the user or group; so does rwsgi.
        'u' | 'U' => uid.to_string(),
        'g' | 'G' => gid.to_string(),
        't' => now.map_or(0, |d| d.as_secs()).to_string(),
        'T' => now.map_or(0, |d| d.as_micros()).to_string(),
        'V' => env!("CARGO_PKG_VERSION").into(),
        '0'..='9' => {
            let index = m as usize - '0' as usize;
            f.dir()
                .split('/')
                .filter(|c| !c.is_empty())
                .nth(index)
                .unwrap_or("")
                .into()
        }
        _ => String::new(),
    }
}

pub(super) fn hostname() -> String {
    crate::sys::host::hostname()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str) -> FileInfo {
        FileInfo {
            given: path.into(),
            abs: path.into(),
            section: "uwsgi".into(),
        }
    }

    #[test]
    fn file_variables() {
        let f = info("/srv/sites/app.prod.ini");
        let first = info("/etc/rwsgi/top.ini");
        let out = expand("%d|%p|%s|%n|%e|%c|%x|%0|%1|%D|%N", &f, &first);
        assert_eq!(
            out,
            "/srv/sites/|/srv/sites/app.prod.ini|app.prod.ini|app.prod|ini|sites|\
             /srv/sites/app.prod.ini:uwsgi|srv|sites|/etc/rwsgi/|top"
        );
    }

    #[test]
    fn literal_percent_placeholders_and_unknown_letters() {
        let f = info("/a/b.ini");
        assert_eq!(expand("100%% %(base) %z. 5%", &f, &f), "100% %(base) . 5%");
        assert_eq!(
            expand("%%d", &f, &f),
            "%d",
            "an escaped percent is not re-read"
        );
    }

    #[test]
    fn host_and_process_variables() {
        let f = info("/a/b.ini");
        assert_eq!(expand("%h", &f, &f), hostname());
        assert!(expand("%k", &f, &f).parse::<u32>().unwrap() >= 1);
        assert!(expand("%u:%g", &f, &f)
            .split(':')
            .all(|n| n.parse::<u32>().is_ok()));
        assert_eq!(
            expand("%v", &f, &f),
            std::env::current_dir().unwrap().to_string_lossy()
        );
    }

    #[test]
    fn paths_are_made_absolute() {
        let f = FileInfo::new("relative/app.ini", "uwsgi");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(f.abs, cwd.join("relative/app.ini"));
        assert_eq!(f.dir(), format!("{}/relative/", cwd.display()));
    }
}
