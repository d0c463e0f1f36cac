//! Static files (uWSGI's `--static-map` family) as logic over the file system: which file a
//! request path names, whether the client's copy is fresh (304), which byte range it wants (206),
//! and the response fields. Sending (`sendfile`, without the GIL) is the server's.
//!
//! Never a file outside a mapped directory: the path is percent-decoded once, a NUL or a `..`
//! segment is refused (403), and the resolved file (symlinks followed) must still lie under the
//! directory's own resolved path (403 otherwise). A path that names no file falls through to the
//! app, as in uWSGI.

pub mod httpdate;
pub mod mime;

use mime::MimeTable;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One `--static-map`/`--static-map2`/`--check-static` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// URL prefix without a trailing slash; empty for `--check-static` (every path).
    pub prefix: String,
    /// The directory files are looked up in.
    pub dir: PathBuf,
    /// `--static-map2`/`--check-static`: the prefix stays part of the file's path.
    pub keep_prefix: bool,
}

/// An `Expires`/`Cache-Control` rule.
#[derive(Debug, Clone)]
pub enum ExpiresRule {
    /// `--static-expires-type TYPE=SECS`.
    Type(String, u64),
    /// `--static-expires-uri REGEX=SECS`, matched against the decoded path.
    Uri(regex::Regex, u64),
}

/// Why the rules could not be built.
#[derive(Debug)]
pub struct RulesError(String);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RulesError {}

/// All static-file rules of a server.
#[derive(Debug, Clone, Default)]
pub struct StaticRules {
    /// Each map with its directory resolved once at start.
    maps: Vec<(StaticMap, PathBuf)>,
    index: Vec<String>,
    mime: Option<MimeTable>,
    expires: Vec<ExpiresRule>,
    gzip_all: bool,
}

/// A file to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFile {
    /// The resolved path (the `.gz` sibling when `gzip` is set).
    pub path: PathBuf,
    /// Size in bytes.
    pub len: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime: u64,
    /// The type of the file asked for (not of its `.gz`).
    pub content_type: String,
    /// The `.gz` sibling is sent, with `Content-Encoding: gzip`.
    pub gzip: bool,
    /// Seconds for `Expires`/`Cache-Control: max-age`.
    pub expires: Option<u64>,
}

/// What the rules say about a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No rule serves it: the app does.
    NotMapped,
    /// Serve this file.
    File(StaticFile),
    /// Refused: the status and, for the log line, why.
    Refused {
        /// The error status to answer with: 400 for a NUL in the path, 403 for a path that
        /// leaves the mapped directory.
        status: u16,
        /// Why, for the log line.
        why: String,
    },
}

impl StaticRules {
    /// Rules from the flags; each directory is resolved now (a missing one is an error).
    pub fn new(
        maps: Vec<StaticMap>,
        index: Vec<String>,
        mimefiles: &[PathBuf],
        expires: Vec<ExpiresRule>,
        gzip_all: bool,
    ) -> Result<StaticRules, RulesError> {
        if maps.is_empty() {
            return Ok(StaticRules::default());
        }
        let maps = maps
            .into_iter()
            .map(|m| {
                let real = fs::canonicalize(&m.dir).map_err(|e| {
                    RulesError(format!("static directory {}: {e}", m.dir.display()))
                })?;
                Ok((m, real))
            })
            .collect::<Result<_, RulesError>>()?;
        let mime = MimeTable::load(mimefiles).map_err(|e| RulesError(e.to_string()))?;
        Ok(StaticRules {
            maps,
            index,
            mime: Some(mime),
            expires,
            gzip_all,
        })
    }

    /// No static rules at all: every request goes to the app.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Resolve `raw_path` (the request path as sent, percent-encoded, without the query).
    pub fn resolve(&self, raw_path: &[u8], accepts_gzip: bool) -> Resolution {
        if self.maps.is_empty() {
            return Resolution::NotMapped;
        }
        match percent_decode(raw_path) {
            Some(path) => self.resolve_decoded(&path, accepts_gzip),
            None => refused(400, "NUL in the path"),
        }
    }

    /// Resolve an already decoded path (`PATH_INFO`). Decoding is never done twice here, and a
    /// `..` that a second decoding would make is refused like any other.
    pub fn resolve_decoded(&self, path: &[u8], accepts_gzip: bool) -> Resolution {
        if path.contains(&0) {
            return refused(400, "NUL in the path");
        }
        for (map, real) in &self.maps {
            let rest = match path.strip_prefix(map.prefix.as_bytes()) {
                Some(r) if r.is_empty() || r[0] == b'/' || map.prefix.is_empty() => r,
                _ => continue,
            };
            let rel = if map.keep_prefix { path } else { rest };
            match self.lookup(real, rel, path, accepts_gzip) {
                Resolution::NotMapped => continue,
                other => return other,
            }
        }
        Resolution::NotMapped
    }

    /// The file `rel` names under `real`, an index file for a directory, or nothing.
    fn lookup(&self, real: &Path, rel: &[u8], path: &[u8], accepts_gzip: bool) -> Resolution {
        let mut candidate = real.to_path_buf();
        for seg in rel.split(|&b| b == b'/') {
            match seg {
                b"" | b"." => {}
                b".." => return refused(403, "'..' in the path"),
                _ => candidate.push(std::ffi::OsStr::from_bytes(seg)),
            }
        }
        let file = match resolve_file(real, &candidate) {
            Ok(Some((p, meta))) if meta.is_dir() => {
                let found = self
                    .index
                    .iter()
                    .find_map(|i| match resolve_file(real, &p.join(i)) {
                        Ok(Some((f, m))) if m.is_file() => Some(Ok((f, m))),
                        Err(e) => Some(Err(e)),
                        _ => None,
                    });
                match found {
                    Some(Ok(f)) => f,
                    Some(Err(why)) => return refused(403, &why),
                    None => return Resolution::NotMapped,
                }
            }
            Ok(Some((p, meta))) if meta.is_file() => (p, meta),
            Ok(_) => return Resolution::NotMapped,
            Err(why) => return refused(403, &why),
        };
        Resolution::File(self.describe(real, file, path, accepts_gzip))
    }

    /// Type, expiry and the gzip sibling of a resolved file.
    fn describe(
        &self,
        real: &Path,
        (path, meta): (PathBuf, fs::Metadata),
        url_path: &[u8],
        accepts_gzip: bool,
    ) -> StaticFile {
        let ty = self
            .mime
            .as_ref()
            .map_or(mime::DEFAULT_TYPE, |m| m.content_type(&path))
            .to_string();
        let expires = self.expires.iter().find_map(|r| match r {
            ExpiresRule::Type(t, s) if *t == ty => Some(*s),
            ExpiresRule::Uri(re, s) if re.is_match(&String::from_utf8_lossy(url_path)) => Some(*s),
            _ => None,
        });
        let mut file = StaticFile {
            len: meta.len(),
            mtime: mtime_secs(&meta),
            path,
            content_type: ty,
            gzip: false,
            expires,
        };
        if self.gzip_all && accepts_gzip {
            let mut gz = file.path.clone().into_os_string();
            gz.push(".gz");
            if let Ok(Some((p, m))) = resolve_file(real, Path::new(&gz)) {
                if m.is_file() {
                    (file.path, file.len, file.mtime, file.gzip) =
                        (p, m.len(), mtime_secs(&m), true);
                }
            }
        }
        file
    }
}

fn refused(status: u16, why: &str) -> Resolution {
    Resolution::Refused {
        status,
        why: why.to_string(),
    }
}

fn mtime_secs(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// `candidate` with symlinks resolved, if it exists; an error (the reason) if it resolves outside
/// `real`.
fn resolve_file(real: &Path, candidate: &Path) -> Result<Option<(PathBuf, fs::Metadata)>, String> {
    let resolved = match fs::canonicalize(candidate) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(format!("{}: permission denied", candidate.display()))
        }
        Err(_) => return Ok(None),
    };
    if !resolved.starts_with(real) {
        return Err(format!(
            "{} resolves to {}, outside {}",
            candidate.display(),
            resolved.display(),
            real.display()
        ));
    }
    Ok(fs::metadata(&resolved).ok().map(|m| (resolved, m)))
}

/// Decode `%XX` once; `None` when the result holds a NUL. Invalid escapes stay as sent.
pub fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
        match (raw[i], hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    (!out.contains(&0)).then_some(out)
}

/// How a static request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the whole file.
    Full,
    /// 304: the client's copy is current.
    NotModified,
    /// 206 with bytes `start..end` (end exclusive).
    Partial {
        /// Offset of the first byte sent.
        start: u64,
        /// Offset one past the last byte sent.
        end: u64,
    },
    /// 416: the range lies past the end.
    Unsatisfiable,
}

/// The request fields a static answer depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`: the entity tags the client holds.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`: the date of the client's copy.
    pub if_modified_since: Option<&'a [u8]>,
    /// `Range`: the bytes asked for.
    pub range: Option<&'a [u8]>,
    /// `If-Range`: serve the range only if the file is still this version.
    pub if_range: Option<&'a [u8]>,
}

impl StaticFile {
    /// The entity tag: modification time and length, as nginx makes it.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime, self.len)
    }

    /// Decide the answer: `If-None-Match` wins over `If-Modified-Since` (RFC 9110 §13.2.2); a
    /// single `bytes=` range gives 206, several ranges or an `If-Range` that does not match give
    /// the whole file.
    pub fn answer(&self, c: &Conditions<'_>) -> Answer {
        let etag = self.etag();
        if let Some(inm) = c.if_none_match {
            let matches = inm.split(|&b| b == b',').any(|t| {
                let t = t.trim_ascii();
                t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag.as_bytes()
            });
            if matches {
                return Answer::NotModified;
            }
        } else if let Some(since) = c.if_modified_since.and_then(httpdate::parse) {
            if self.mtime <= since {
                return Answer::NotModified;
            }
        }
        let Some(range) = c.range else {
            return Answer::Full;
        };
        if let Some(ir) = c.if_range {
            let fresh = ir == etag.as_bytes() || httpdate::parse(ir) == Some(self.mtime);
            if !fresh {
                return Answer::Full;
            }
        }
        parse_range(range, self.len)
    }

    /// Status and fields of the answer (the caller adds the framing and sends the bytes).
    pub fn fields(&self, answer: Answer, now: SystemTime) -> (u16, Vec<(&'static str, String)>) {
        let mut f = vec![
            ("Last-Modified", httpdate::format(self.mtime)),
            ("ETag", self.etag()),
        ];
        let status = match answer {
            Answer::Full => 200,
            Answer::NotModified => 304,
            Answer::Partial { start, end } => {
                f.push((
                    "Content-Range",
                    format!("bytes {start}-{}/{}", end - 1, self.len),
                ));
                206
            }
            Answer::Unsatisfiable => {
                f.push(("Content-Range", format!("bytes */{}", self.len)));
                return (416, f);
            }
        };
        f.push(("Content-Type", mime::header_value(&self.content_type)));
        f.push(("Accept-Ranges", "bytes".into()));
        if self.gzip {
            f.push(("Content-Encoding", "gzip".into()));
            f.push(("Vary", "Accept-Encoding".into()));
        }
        if let Some(secs) = self.expires {
            let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            f.push(("Expires", httpdate::format(now + secs)));
            f.push(("Cache-Control", format!("max-age={secs}")));
        }
        (status, f)
    }
}

/// A `Range` value against a file of `len` bytes: one `bytes=a-b`, `a-` or `-n` range.
fn parse_range(range: &[u8], len: u64) -> Answer {
    let Some(spec) = range.trim_ascii().strip_prefix(b"bytes=") else {
        return Answer::Full;
    };
    if spec.contains(&b',') {
        return Answer::Full;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Answer::Full;
    };
    let num = |s: &[u8]| -> Option<u64> {
        let s = s.trim_ascii();
        (!s.is_empty() && s.len() <= 19 && s.iter().all(u8::is_ascii_digit))
            .then(|| s.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let (a, b) = (&spec[..dash], &spec[dash + 1..]);
    let (start, end) = match (num(a), num(b)) {
        (Some(s), Some(e)) if s <= e => (s, e.saturating_add(1).min(len)),
        (Some(s), None) if b.trim_ascii().is_empty() => (s, len),
        (None, Some(n)) if a.trim_ascii().is_empty() && n > 0 => (len.saturating_sub(n), len),
        (None, Some(0)) if a.trim_ascii().is_empty() => return Answer::Unsatisfiable,
        _ => return Answer::Full,
    };
    if start >= len {
        return Answer::Unsatisfiable;
    }
    Answer::Partial { start, end }
}

#[cfg(test)]
mod tests;
