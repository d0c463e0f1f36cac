//! The logging options, set once at start-up and read by every log write: `--log-date`,
//! `--log-x-forwarded-for`, `--logformat-strftime`, the `--log-encoder`/`--log-req-encoder` chains
//! (uWSGI's `format` and `json` encoders, and `nl`), and `--req-logger file:PATH`.
//!
//! Process-wide like the `tracing` subscriber they shape: the request path reads them with one
//! atomic load, and nothing has to carry them through the layers.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

/// What the logging options ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--log-date`: prefix the server's own lines with the date (`ctime` layout, or this strftime
    /// format), then ` - `.
    pub date: Option<Option<String>>,
    /// `--log-x-forwarded-for`: the request line's address is X-Forwarded-For when the request has it.
    pub x_forwarded_for: bool,
    /// `--logformat-strftime` with a `--log-date` format: `%(ftime)` in that format.
    pub ftime: Option<String>,
    /// `--log-encoder`: applied to the server's lines, and to request lines without a req-logger.
    pub encoders: Vec<Encoder>,
    /// `--log-req-encoder`: applied to request lines written to a req-logger.
    pub req_encoders: Vec<Encoder>,
    /// `--req-logger file:PATH`: where request lines go instead of stderr.
    pub req_file: Option<PathBuf>,
    /// `--log-master`: every process's output through one log process.
    pub master: Option<super::master::LogMaster>,
    /// `--auto-procname` and the other naming options.
    pub procname: Option<super::procname::Procname>,
}

/// The options, and the files they name, open.
#[derive(Debug, Default)]
struct Settings {
    options: Options,
    req_file: Option<File>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Set the options for the life of the process (the first call wins), opening the req-logger file.
pub fn configure(options: &Options) -> std::io::Result<()> {
    let req_file = match &options.req_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("--req-logger file:{}: {e}", path.display()),
                    )
                })?,
        ),
        None => None,
    };
    let _ = SETTINGS.set(Settings {
        options: options.clone(),
        req_file,
    });
    Ok(())
}

/// The options, or the defaults when none were set.
pub(crate) fn options() -> &'static Options {
    &settings().options
}

fn settings() -> &'static Settings {
    static DEFAULT: OnceLock<Settings> = OnceLock::new();
    SETTINGS
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(Settings::default))
}

/// Write a request line (newline included) where `--req-logger` says, through the encoders that
/// apply to it.
pub(crate) fn write_request_line(line: Vec<u8>) {
    let s = settings();
    let encoders = if s.req_file.is_some() {
        &s.options.req_encoders
    } else {
        &s.options.encoders
    };
    let line = if encoders.is_empty() {
        line
    } else {
        encode(&line, encoders)
    };
    let _ = match &s.req_file {
        Some(file) => (&*file).write_all(&line),
        None => std::io::stderr().lock().write_all(&line),
    };
}

/// One step of an encoder chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoder {
    /// `format TEMPLATE`: the template with `${msg}`, `${msgnl}`, `${unix}`, `${micros}`,
    /// `${millis}`, `${strftime:FMT}` filled in.
    Format(Vec<Piece>),
    /// `json TEMPLATE`: the same, values escaped for a JSON string.
    Json(Vec<Piece>),
    /// `nl`: a newline after the line.
    Nl,
}

/// A part of an encoder's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Msg,
    MsgNl,
    Unix,
    Micros,
    Millis,
    Strftime(String),
}

impl Encoder {
    /// `format ...`, `json ...` or `nl`, as uWSGI's `log-encoder` takes them.
    pub fn parse(spec: &str) -> Result<Encoder, String> {
        let (name, template) = spec.split_once(' ').unwrap_or((spec, ""));
        match name {
            "format" => Ok(Encoder::Format(template_pieces(template))),
            "json" => Ok(Encoder::Json(template_pieces(template))),
            "nl" => Ok(Encoder::Nl),
            other => Err(format!(
                "log encoder {other:?}: rwsgi has format, json and nl"
            )),
        }
    }

    /// Encode `msg` (a line without its newline).
    fn apply(&self, msg: &[u8], now: SystemTime) -> Vec<u8> {
        let (pieces, json) = match self {
            Encoder::Nl => return [msg, b"\n"].concat(),
            Encoder::Format(pieces) => (pieces, false),
            Encoder::Json(pieces) => (pieces, true),
        };
        let mut out = Vec::with_capacity(msg.len() + 64);
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let value = |out: &mut Vec<u8>, v: &[u8]| {
            if json {
                escape_json(out, v);
            } else {
                out.extend_from_slice(v);
            }
        };
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Msg => value(&mut out, msg),
                Piece::MsgNl => value(&mut out, &[msg, b"\n"].concat()),
                Piece::Unix => out.extend_from_slice(since.as_secs().to_string().as_bytes()),
                Piece::Micros => out.extend_from_slice(since.as_micros().to_string().as_bytes()),
                Piece::Millis => out.extend_from_slice(since.as_millis().to_string().as_bytes()),
                Piece::Strftime(f) => value(&mut out, super::strftime(f, now).as_bytes()),
            }
        }
        out
    }
}

fn template_pieces(template: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let piece = match name {
            "msg" => Piece::Msg,
            "msgnl" => Piece::MsgNl,
            "unix" => Piece::Unix,
            "micros" => Piece::Micros,
            "millis" => Piece::Millis,
            _ => match name.strip_prefix("strftime:") {
                Some(f) => Piece::Strftime(f.into()),
                None => Piece::Text(rest[start..start + 3 + len].into()),
            },
        };
        pieces.push(Piece::Text(rest[..start].into()));
        pieces.push(piece);
        rest = &rest[start + 3 + len..];
    }
    pieces.push(Piece::Text(rest.into()));
    pieces.retain(|p| !matches!(p, Piece::Text(t) if t.is_empty()));
    pieces
}

/// Run `line` (newline included) through `encoders`. Ends in exactly one newline: uWSGI's lines
/// need an explicit `nl` encoder, which rwsgi accepts, but a line is never left without one.
pub fn encode(line: &[u8], encoders: &[Encoder]) -> Vec<u8> {
    if encoders.is_empty() {
        return line.to_vec();
    }
    let now = SystemTime::now();
    let mut msg = line.strip_suffix(b"\n").unwrap_or(line).to_vec();
    for encoder in encoders {
        msg = encoder.apply(msg.strip_suffix(b"\n").unwrap_or(&msg), now);
    }
    if !msg.ends_with(b"\n") {
        msg.push(b'\n');
    }
    msg
}

/// `v` escaped for the inside of a JSON string (invalid UTF-8 is replaced).
pub fn escape_json(out: &mut Vec<u8>, v: &[u8]) {
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// The server's own lines: `tracing`'s writer, with `--log-date` and `--log-encoder` applied to
/// each whole line, written with one `write`.
pub struct ServerWriter;

impl Write for ServerWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let options = options();
        let mut line = Vec::with_capacity(buf.len() + 32);
        match &options.date {
            Some(None) => {
                line.extend_from_slice(super::ctime(SystemTime::now()).as_bytes());
                line.extend_from_slice(b" - ");
            }
            Some(Some(format)) => {
                line.extend_from_slice(super::strftime(format, SystemTime::now()).as_bytes());
                line.extend_from_slice(b" - ");
            }
            None => {}
        }
        line.extend_from_slice(buf);
        let line = encode(&line, &options.encoders);
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(specs: &[&str], line: &str) -> String {
        let encoders: Vec<Encoder> = specs.iter().map(|s| Encoder::parse(s).unwrap()).collect();
        String::from_utf8(encode(line.as_bytes(), &encoders)).unwrap()
    }

    #[test]
    fn encoders_chain_and_end_in_one_newline() {
        assert_eq!(enc(&[], "a\n"), "a\n");
        assert_eq!(enc(&["format [${msg}]"], "a b\n"), "[a b]\n");
        assert_eq!(enc(&["format [${msg}]", "nl"], "a\n"), "[a]\n");
        assert_eq!(
            enc(
                &[r#"json {"msg":"${msg}","x":"${nope}"}"#],
                "say \"hi\"\\\t\n"
            ),
            "{\"msg\":\"say \\\"hi\\\"\\\\\\t\",\"x\":\"${nope}\"}\n"
        );
        let line = enc(&["json {\"t\":${unix},\"m\":\"${msg}\"}"], "x\n");
        let t: u64 = line[5..line.find(',').unwrap()].parse().unwrap();
        assert!(t > 1_700_000_000, "{line}");
        assert_eq!(enc(&["format ${strftime:%Y}|${msg}"], "m\n")[4..], *"|m\n");
        assert!(Encoder::parse("msgpack x").is_err());
    }
}
