//! `--log-format`: uWSGI's request log templates, `%(name)` variables in literal text, parsed once
//! at startup into chunks that each request renders into one buffer.
//!
//! As in uWSGI (`core/logging.c`): a variable that renders empty prints `-`; `%(var.NAME)` is the
//! request var NAME; a name uWSGI does not know is a "logvar" an app would set with
//! `uwsgi.set_logvar()`, which rwsgi apps cannot, so it prints `-` (and startup warns about it);
//! `%(metric.NAME)` prints 0, what uWSGI prints for a metric never registered. Note uWSGI's sizes:
//! `%(rsize)` is the body, `%(size)` the body plus the response head.

use super::{ctime, RequestLine};
use crate::protocol::vars::Vars;
use std::io::Write;
use std::time::SystemTime;

/// A parsed `--log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    chunks: Vec<Chunk>,
    /// The format is a JSON object (`{...}`): values are escaped so every line parses.
    json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Text(Vec<u8>),
    Field(Field),
    /// `%(var.NAME)`: a request var, looked up only when the line is written.
    Var(Vec<u8>),
    /// `%(metric.NAME)`.
    Metric(String),
    /// Any other name.
    Unknown(String),
}

/// The variables uWSGI registers (`uwsgi_register_logchunks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Uri,
    Method,
    User,
    Addr,
    Host,
    Proto,
    Uagent,
    Referer,
    Status,
    Rsize,
    Hsize,
    Size,
    Cl,
    Micros,
    Msecs,
    Secs,
    Tmsecs,
    Tmicros,
    Time,
    Ltime,
    Ftime,
    Ctime,
    Epoch,
    Pid,
    Wid,
    Switches,
    Vars,
    Core,
    Vsz,
    Rss,
    VszM,
    RssM,
    Pktsize,
    Modifier1,
    Modifier2,
    Headers,
    Werr,
    Rerr,
    Ioerr,
}

const FIELDS: &[(&str, Field)] = &[
    ("uri", Field::Uri),
    ("method", Field::Method),
    ("user", Field::User),
    ("addr", Field::Addr),
    ("host", Field::Host),
    ("proto", Field::Proto),
    ("uagent", Field::Uagent),
    ("referer", Field::Referer),
    ("status", Field::Status),
    ("rsize", Field::Rsize),
    ("hsize", Field::Hsize),
    ("size", Field::Size),
    ("cl", Field::Cl),
    ("micros", Field::Micros),
    ("msecs", Field::Msecs),
    ("secs", Field::Secs),
    ("tmsecs", Field::Tmsecs),
    ("tmicros", Field::Tmicros),
    ("time", Field::Time),
    ("ltime", Field::Ltime),
    ("ftime", Field::Ftime),
    ("ctime", Field::Ctime),
    ("epoch", Field::Epoch),
    ("pid", Field::Pid),
    ("wid", Field::Wid),
    ("switches", Field::Switches),
    ("vars", Field::Vars),
    ("core", Field::Core),
    ("vsz", Field::Vsz),
    ("rss", Field::Rss),
    ("vszM", Field::VszM),
    ("rssM", Field::RssM),
    ("pktsize", Field::Pktsize),
    ("modifier1", Field::Modifier1),
    ("modifier2", Field::Modifier2),
    ("headers", Field::Headers),
    ("werr", Field::Werr),
    ("rerr", Field::Rerr),
    ("ioerr", Field::Ioerr),
];

impl LogFormat {
    /// Split `format` into text and variables. A `%(` without a closing `)` is text; when a
    /// variable's name holds another `%(`, the last one opens the variable, as in uWSGI.
    pub fn parse(format: &str) -> LogFormat {
        let mut chunks = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(open) = rest.find("%(") {
            let Some(len) = rest[open + 2..].find(')') else {
                break;
            };
            let inner = &rest[open + 2..open + 2 + len];
            let (lead, name) = match inner.rfind("%(") {
                Some(i) => (&rest[..open + 2 + i + 2], &inner[i + 2..]),
                None => (&rest[..open + 2], inner),
            };
            if name.is_empty() {
                text.push_str(&rest[..open + 2 + len + 1]);
            } else {
                text.push_str(&lead[..lead.len() - 2]);
                if !text.is_empty() {
                    chunks.push(Chunk::Text(std::mem::take(&mut text).into_bytes()));
                }
                chunks.push(variable(name));
            }
            rest = &rest[open + 2 + len + 1..];
        }
        text.push_str(rest);
        text.push('\n');
        chunks.push(Chunk::Text(text.into_bytes()));
        let trimmed = format.trim();
        let json = trimmed.starts_with('{') && trimmed.ends_with('}');
        LogFormat { chunks, json }
    }

    /// The names that are no uWSGI variable rwsgi knows, each once, in order.
    pub fn unknown_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for chunk in &self.chunks {
            if let Chunk::Unknown(name) = chunk {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The `%(metric.NAME)` variables, which rwsgi cannot fill.
    pub fn metric_names(&self) -> Vec<&str> {
        self.chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::Metric(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The whole line, newline included.
    pub fn render(&self, line: &RequestLine<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        for chunk in &self.chunks {
            let start = out.len();
            match chunk {
                Chunk::Text(text) => {
                    out.extend_from_slice(text);
                    continue;
                }
                Chunk::Field(field) => render_field(&mut out, *field, line),
                Chunk::Var(name) => out.extend_from_slice(request_var(line.vars_block, name)),
                Chunk::Metric(_) => out.push(b'0'),
                Chunk::Unknown(name) => super::logvars::render(&mut out, name.as_bytes()),
            }
            if out.len() == start {
                out.push(b'-');
            } else if self.json {
                let raw = out.split_off(start);
                super::escape_json(&mut out, &raw);
            }
        }
        out
    }
}

fn variable(name: &str) -> Chunk {
    if let Some(&(_, field)) = FIELDS.iter().find(|(n, _)| *n == name) {
        Chunk::Field(field)
    } else if let Some(var) = name.strip_prefix("var.") {
        Chunk::Var(var.as_bytes().to_vec())
    } else if let Some(metric) = name.strip_prefix("metric.") {
        Chunk::Metric(metric.into())
    } else {
        Chunk::Unknown(name.into())
    }
}

/// The first value of `name` in the request's vars block (empty when absent).
pub(super) fn request_var<'a>(block: &'a [u8], name: &[u8]) -> &'a [u8] {
    Vars::new(block)
        .find(|(key, _)| *key == name)
        .map_or(&[][..], |(_, value)| value)
}

fn unix_micros(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn render_field(out: &mut Vec<u8>, field: Field, line: &RequestLine<'_>) {
    let (vsz, rss) = line.memory.unwrap_or((0, 0));
    let started_us = unix_micros(line.started);
    let _ = match field {
        Field::Uri => out.write_all(line.uri),
        Field::Method => out.write_all(line.method),
        Field::User => out.write_all(request_var(line.vars_block, b"REMOTE_USER")),
        Field::Addr => out.write_all(line.addr()),
        Field::Host => out.write_all(request_var(line.vars_block, b"HTTP_HOST")),
        Field::Proto => out.write_all(line.protocol),
        Field::Uagent => out.write_all(request_var(line.vars_block, b"HTTP_USER_AGENT")),
        Field::Referer => out.write_all(request_var(line.vars_block, b"HTTP_REFERER")),
        Field::Status => write!(out, "{}", line.status),
        Field::Rsize => write!(out, "{}", line.body_bytes),
        Field::Hsize => write!(out, "{}", line.head_bytes),
        Field::Size => write!(out, "{}", line.body_bytes + line.head_bytes as u64),
        Field::Cl => write!(out, "{}", line.content_length),
        Field::Micros => write!(out, "{}", line.micros),
        Field::Msecs => write!(out, "{}", line.micros / 1000),
        Field::Secs => {
            // C's "%f" in uWSGI's 11-byte buffer: six decimals, at most ten characters.
            let mut s = format!("{:.6}", line.micros as f64 / 1e6);
            s.truncate(10);
            out.write_all(s.as_bytes())
        }
        Field::Tmsecs => write!(out, "{}", started_us / 1000),
        Field::Tmicros => write!(out, "{started_us}"),
        Field::Time => write!(out, "{}", started_us / 1_000_000),
        // uWSGI's ftime is ltime unless --logformat-strftime and a --log-date format are given.
        Field::Ftime if super::settings::options().ftime.is_some() => {
            let format = super::settings::options()
                .ftime
                .as_deref()
                .unwrap_or_default();
            out.write_all(super::strftime(format, line.started).as_bytes())
        }
        Field::Ltime | Field::Ftime => {
            apache_time(out, line.started);
            Ok(())
        }
        Field::Ctime => out.write_all(ctime(line.started).as_bytes()),
        Field::Epoch => write!(out, "{}", unix_micros(SystemTime::now()) / 1_000_000),
        Field::Pid => write!(out, "{}", std::process::id()),
        Field::Wid => write!(out, "{}", line.worker_id),
        Field::Switches => write!(out, "{}", line.switches),
        Field::Vars => write!(out, "{}", line.var_count),
        Field::Core => write!(out, "{}", line.core),
        Field::Vsz => write!(out, "{vsz}"),
        Field::Rss => write!(out, "{rss}"),
        Field::VszM => write!(out, "{}", vsz >> 20),
        Field::RssM => write!(out, "{}", rss >> 20),
        Field::Pktsize => write!(out, "{}", line.vars_bytes),
        Field::Modifier1 => write!(out, "{}", line.modifier1),
        Field::Modifier2 => write!(out, "{}", line.modifier2),
        Field::Headers => write!(out, "{}", line.header_count),
        Field::Werr => write!(out, "{}", u8::from(line.write_error)),
        Field::Rerr => write!(out, "{}", u8::from(line.read_error)),
        Field::Ioerr => write!(
            out,
            "{}",
            u8::from(line.write_error) + u8::from(line.read_error)
        ),
    };
}

/// Local time as Apache's common log has it, `27/Nov/2026:15:31:34 +0000` (`%d/%b/%Y:%H:%M:%S
/// %z`); nothing when the time cannot be converted.
fn apache_time(out: &mut Vec<u8>, t: SystemTime) {
    if let Some(tm) = crate::sys::host::local_time(t) {
        write_apache_time(out, &tm);
    }
}

fn write_apache_time(out: &mut Vec<u8>, tm: &libc::tm) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = usize::try_from(tm.tm_mon).map_or("???", |m| MONTHS.get(m).unwrap_or(&"???"));
    let offset = tm.tm_gmtoff / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    let _ = write!(
        out,
        "{:02}/{month}/{}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        tm.tm_mday,
        i64::from(tm.tm_year) + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset.abs() / 60,
        offset.abs() % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::vars::encode_var;
    use std::time::Duration;

    fn block(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            encode_var(&mut out, k.as_bytes(), v.as_bytes()).unwrap();
        }
        out
    }

    fn render(format: &str, line: &RequestLine<'_>) -> String {
        String::from_utf8(LogFormat::parse(format).render(line)).unwrap()
    }

    #[test]
    fn every_variable_renders_as_uwsgi_does() {
        let vars = block(&[
            ("REQUEST_METHOD", "POST"),
            ("REMOTE_USER", "alice"),
            ("HTTP_HOST", "example.org"),
            ("HTTP_USER_AGENT", "curl/8.5"),
            ("HTTP_REFERER", "http://r.example/"),
            ("HTTP_X_Y", "trace-1"),
            ("HTTP_EMPTY", ""),
        ]);
        let line = RequestLine {
            remote_addr: b"10.0.0.7",
            method: b"POST",
            uri: b"/a?b=c",
            protocol: b"HTTP/1.0",
            status: 201,
            body_bytes: 12,
            head_bytes: 69,
            header_count: 3,
            content_length: 5,
            micros: 1_234_567,
            started: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_775_370_250),
            worker_id: 3,
            switches: 4,
            var_count: 28,
            vars_bytes: 305,
            core: 2,
            memory: Some(((5 << 20) + 1, (7 << 20) + 2)),
            modifier1: 30,
            modifier2: 1,
            write_error: true,
            read_error: false,
            ..crate::log::tests::sample(&vars)
        };
        let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        let extra = [
            "var.HTTP_X_Y",
            "var.HTTP_EMPTY",
            "var.MISSING",
            "metric.foo",
            "nope",
        ];
        let format: Vec<String> = names
            .iter()
            .chain(&extra)
            .map(|n| format!("%({n})"))
            .collect();
        let before = SystemTime::now();
        let text = render(&format.join("|"), &line);
        let after = SystemTime::now();
        let text = text
            .strip_suffix('\n')
            .expect("the line ends with a newline");
        let got: Vec<&str> = text.split('|').collect();
        assert_eq!(got.len(), names.len() + extra.len(), "{text}");
        let value = |name: &str| {
            let i = names.iter().chain(&extra).position(|n| *n == name).unwrap();
            got[i]
        };
        let ltime = {
            let mut out = Vec::new();
            apache_time(&mut out, line.started);
            String::from_utf8(out).unwrap()
        };
        let pid = std::process::id().to_string();
        let ctime = ctime(line.started);
        let expected = [
            ("uri", "/a?b=c"),
            ("method", "POST"),
            ("user", "alice"),
            ("addr", "10.0.0.7"),
            ("host", "example.org"),
            ("proto", "HTTP/1.0"),
            ("uagent", "curl/8.5"),
            ("referer", "http://r.example/"),
            ("status", "201"),
            ("rsize", "12"),
            ("hsize", "69"),
            ("size", "81"),
            ("cl", "5"),
            ("micros", "1234567"),
            ("msecs", "1234"),
            ("secs", "1.234567"),
            ("tmsecs", "1795775370250"),
            ("tmicros", "1795775370250000"),
            ("time", "1795775370"),
            ("ltime", &ltime),
            ("ftime", &ltime),
            ("ctime", &ctime),
            ("pid", &pid),
            ("wid", "3"),
            ("switches", "4"),
            ("vars", "28"),
            ("core", "2"),
            ("vsz", "5242881"),
            ("rss", "7340034"),
            ("vszM", "5"),
            ("rssM", "7"),
            ("pktsize", "305"),
            ("modifier1", "30"),
            ("modifier2", "1"),
            ("headers", "3"),
            ("werr", "1"),
            ("rerr", "0"),
            ("ioerr", "1"),
            ("var.HTTP_X_Y", "trace-1"),
            ("var.HTTP_EMPTY", "-"),
            ("var.MISSING", "-"),
            ("metric.foo", "0"),
            ("nope", "-"),
        ];
        for (name, want) in expected {
            assert_eq!(value(name), want, "%({name}) in {text}");
        }
        // Everything but epoch (the time of writing, not of the request) is checked above.
        assert_eq!(expected.len() + 1, names.len() + extra.len());
        let epoch: u64 = value("epoch").parse().unwrap();
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert!((secs(before)..=secs(after)).contains(&epoch), "{epoch}");
        // 27/Nov/2026:15:31:34 +0000
        assert_eq!(ltime.len(), 26, "{ltime}");
        assert_eq!(&ltime[2..3], "/");
        assert!(ltime.contains("/Nov/2026:"), "{ltime}");
        assert_eq!(ctime.len(), 24);
    }

    #[test]
    fn a_json_shaped_format_escapes_its_values() {
        let vars = block(&[("HTTP_USER_AGENT", "a \"quoted\" \\ agent\t")]);
        let mut line = crate::log::tests::sample(&vars);
        line.uri = b"/x\"y";
        let out = render(
            r#"{"uri":"%(uri)","ua":"%(uagent)","status":%(status),"ref":"%(referer)"}"#,
            &line,
        );
        assert_eq!(
            out,
            "{\"uri\":\"/x\\\"y\",\"ua\":\"a \\\"quoted\\\" \\\\ agent\\t\",\"status\":200,\"ref\":\"-\"}\n"
        );
        let plain = render(r#"uri=%(uri)"#, &line);
        assert_eq!(
            plain, "uri=/x\"y\n",
            "other formats are written as they are"
        );
    }

    #[test]
    fn empty_values_print_a_dash_and_text_stays() {
        let line = RequestLine {
            method: b"",
            memory: None,
            ..crate::log::tests::sample(b"")
        };
        assert_eq!(
            render(
                r#"%(addr) - %(user) "%(method) %(uri)" 100% %(referer) %(rss) [%(uagent)]"#,
                &line
            ),
            "127.0.0.1 - - \"- /hello\" 100% - 0 [-]\n"
        );
        assert_eq!(render("plain text", &line), "plain text\n");
        assert_eq!(render("", &line), "\n");
    }

    #[test]
    fn unknown_names_and_odd_syntax() {
        let format = LogFormat::parse("%(nope) %(status) %(nope) %(other) %(metric.m) %(var.X)");
        assert_eq!(format.unknown_names(), ["nope", "other"]);
        assert_eq!(format.metric_names(), ["m"]);
        let line = crate::log::tests::sample(b"");
        assert_eq!(
            String::from_utf8(format.render(&line)).unwrap(),
            "- 200 - - 0 -\n"
        );
        // Unclosed, empty, and a second `%(` inside a name (the last one opens the variable).
        assert_eq!(render("a %(status", &line), "a %(status\n");
        assert_eq!(render("%() %(status)", &line), "%() 200\n");
        assert_eq!(render("%(x%(status)!", &line), "%(x200!\n");
        assert_eq!(render("%%(status)%(", &line), "%200%(\n");
        assert!(LogFormat::parse("%(status) %(var.A)")
            .unknown_names()
            .is_empty());
    }

    #[test]
    fn apache_time_layout_and_zone_offsets() {
        let mut tm = crate::sys::host::zero_tm();
        tm.tm_mday = 7;
        tm.tm_mon = 10;
        tm.tm_year = 126;
        tm.tm_hour = 5;
        tm.tm_min = 1;
        tm.tm_sec = 9;
        let text = |tm: &libc::tm| {
            let mut out = Vec::new();
            write_apache_time(&mut out, tm);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(&tm), "07/Nov/2026:05:01:09 +0000");
        tm.tm_gmtoff = -(3 * 3600 + 30 * 60);
        assert_eq!(text(&tm), "07/Nov/2026:05:01:09 -0330");
        tm.tm_gmtoff = 5 * 3600 + 45 * 60;
        tm.tm_mon = 0;
        assert_eq!(text(&tm), "07/Jan/2026:05:01:09 +0545");
    }
}
