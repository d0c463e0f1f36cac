//! Logging: `tracing` (filtered by `RUST_LOG`, default `info`) for the server's own messages, and the
//! request log line in uWSGI's format (or the `--log-format` one), written whole with one `write` so
//! threads never interleave.

mod format;
pub mod logvars;
pub mod master;
pub mod procname;
mod settings;

pub use format::LogFormat;
pub use settings::{configure, escape_json, Encoder, Options};
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

/// Set up `tracing` to stderr (through the log process with `--log-master`).
pub fn init() {
    if let Some(options) = &settings::options().master {
        if let Err(e) = master::start(options) {
            eprintln!("rwsgi: --log-master: {e}: every process writes the log itself");
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| settings::ServerWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .init();
}

/// The fields of one request log line (uWSGI's `uwsgi_logit_simple` layout, plus what
/// `--log-format` variables need). Borrowed, so filling it costs no allocation.
pub struct RequestLine<'a> {
    /// The app's index (`None`, printed as -1 as uWSGI does, when no app took the request).
    pub app: Option<usize>,
    /// Requests this worker process has finished, this one included (`req: N/...`).
    pub worker_requests: u64,
    /// Requests every worker has finished, this one included (`req: .../N`).
    pub total_requests: u64,
    /// `REMOTE_ADDR` as the peer sent it (empty when absent).
    pub remote_addr: &'a [u8],
    /// Keys plus values in the vars block.
    pub var_count: usize,
    /// Size of the vars block in bytes (`%(pktsize)`).
    pub vars_bytes: usize,
    /// Wall-clock time of the accept, printed in `ctime(3)` form.
    pub started: SystemTime,
    /// `REQUEST_METHOD`.
    pub method: &'a [u8],
    /// `REQUEST_URI`, or `PATH_INFO?QUERY_STRING` when the peer sent no `REQUEST_URI`.
    pub uri: &'a [u8],
    /// Response body bytes sent (the head not counted).
    pub body_bytes: u64,
    /// Time from accept to the end of the response.
    pub micros: u128,
    /// The body went out with `sendfile(2)` (`wsgi.file_wrapper` on a real file).
    pub sendfile: bool,
    /// `SERVER_PROTOCOL` (empty when absent).
    pub protocol: &'a [u8],
    /// The response status; 0 when no response was started.
    pub status: u16,
    /// Header lines in the response head.
    pub header_count: usize,
    /// Bytes of the response head, status line included.
    pub head_bytes: usize,
    /// Writes of body chunks: uWSGI's "switches" counter.
    pub switches: u64,
    /// The Python thread (uWSGI's "core") of this worker that served the request.
    pub core: usize,
    /// Address space and RSS in bytes, with `--memory-report`.
    pub memory: Option<(u64, u64)>,
    /// The worker's id (1-based), for `%(wid)`.
    pub worker_id: usize,
    /// The request packet's `modifier1`.
    pub modifier1: u8,
    /// The request packet's `modifier2`.
    pub modifier2: u8,
    /// The request's `CONTENT_LENGTH` (0 when absent), for `%(cl)`.
    pub content_length: u64,
    /// The request's raw vars block, searched only when a `--log-format` variable needs a var.
    pub vars_block: &'a [u8],
    /// Writing the response failed (the client went away); reading the body failed.
    pub write_error: bool,
    /// Reading the request body failed (the client went away or was too slow).
    pub read_error: bool,
}

/// This process's address space and resident set, in bytes (from `/proc/self/statm`).
pub fn memory_usage() -> Option<(u64, u64)> {
    statm(std::process::id() as i32)
}

/// A process's address space and resident set, in bytes.
pub fn statm(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let page = crate::sys::host::page_size()?;
    let vsz = fields.next()??;
    let rss = fields.next()??;
    Some((vsz * page, rss * page))
}

/// `ctime(3)` without the newline: `Fri Nov 27 10:29:38 2026`.
pub fn ctime(t: SystemTime) -> String {
    crate::sys::host::ctime(t)
}

/// `t` in local time as `strftime(3)` formats it.
pub fn strftime(format: &str, t: SystemTime) -> String {
    crate::sys::host::strftime(format, t)
}

impl<'a> RequestLine<'a> {
    /// The client's address: X-Forwarded-For instead when `--log-x-forwarded-for` is on and the
    /// request has it.
    pub fn addr(&self) -> &'a [u8] {
        if settings::options().x_forwarded_for {
            let xff = format::request_var(self.vars_block, b"HTTP_X_FORWARDED_FOR");
            if !xff.is_empty() {
                return xff;
            }
        }
        self.remote_addr
    }
}

impl RequestLine<'_> {
    /// Format the line.
    pub fn format(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if let Some((vsz, rss)) = self.memory {
            let _ = write!(
                out,
                "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
                vsz >> 20,
                rss >> 20
            );
        }
        let app = self.app.map_or(-1, |i| i as i64);
        let _ = write!(
            out,
            "[pid: {}|app: {app}|req: {}/{}] ",
            std::process::id(),
            self.worker_requests,
            self.total_requests
        );
        out.extend_from_slice(self.addr());
        let _ = write!(
            out,
            " () {{{} vars in {} bytes}} [{}] ",
            self.var_count,
            self.vars_bytes,
            ctime(self.started)
        );
        out.extend_from_slice(self.method);
        out.push(b' ');
        out.extend_from_slice(self.uri);
        let _ = write!(
            out,
            " => generated {} bytes in {} msecs",
            self.body_bytes,
            self.micros / 1000
        );
        if self.sendfile {
            out.extend_from_slice(b" via sendfile()");
        }
        out.extend_from_slice(b" (");
        out.extend_from_slice(self.protocol);
        let _ = writeln!(
            out,
            " {}) {} headers in {} bytes ({} switches on core {})",
            self.status, self.header_count, self.head_bytes, self.switches, self.core
        );
        out
    }

    /// Write the line to stderr: uWSGI's default layout, or `format`.
    pub fn write(&self, format: Option<&LogFormat>) {
        let line = match format {
            Some(format) => format.render(self),
            None => self.format(),
        };
        settings::write_request_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The reference's example line (also the base of the `--log-format` tests).
    pub(crate) fn sample(vars_block: &[u8]) -> RequestLine<'_> {
        RequestLine {
            app: Some(0),
            worker_requests: 1,
            total_requests: 2,
            remote_addr: b"127.0.0.1",
            var_count: 28,
            vars_bytes: 305,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_775_370),
            method: b"GET",
            uri: b"/hello",
            body_bytes: 12,
            micros: 345,
            sendfile: false,
            protocol: b"HTTP/1.1",
            status: 200,
            header_count: 3,
            head_bytes: 69,
            switches: 1,
            core: 0,
            memory: None,
            worker_id: 3,
            modifier1: 0,
            modifier2: 0,
            content_length: 0,
            vars_block,
            write_error: false,
            read_error: false,
        }
    }

    #[test]
    fn line_matches_uwsgi_layout() {
        let line = sample(b"");
        let text = String::from_utf8(line.format()).unwrap();
        let pid = std::process::id();
        let expected_tail = "GET /hello => generated 12 bytes in 0 msecs (HTTP/1.1 200) 3 headers in 69 bytes (1 switches on core 0)\n";
        assert!(
            text.starts_with(&format!(
                "[pid: {pid}|app: 0|req: 1/2] 127.0.0.1 () {{28 vars in 305 bytes}} ["
            )),
            "{text}"
        );
        assert!(text.ends_with(expected_tail), "{text}");
        assert_eq!(ctime(line.started).len(), 24);
    }
}
