//! The request seam: what passes between the server (connections, front protocols, threads) and
//! the Python layer (environ, app call, response). Neither side knows the other's internals:
//! `python` names only this module, and `server` implements [`Source`] for it.
//!
//! A request crosses the seam as a [`Request`]: the decoded head (CGI-style vars as byte slices,
//! in uwsgi's key/value encoding, borrowed from the receive buffer), a [`Body`] reader, a
//! [`Response`] writer that knows the framing the front protocol needs, and the connection's
//! accept time. When the response is done the Python thread hands a [`Finished`] back through
//! [`Source::finish`]: the connection and how the response ended. The server then decides what
//! happens to the connection: close it (uwsgi), or keep it for the next request.
//!
//! # How a second protocol plugs in
//! HTTP/1.1 (`--http-socket`) is the second one, and changes nothing in `python`:
//! 1. `server/http.rs` reads the head (parsed by `protocol::http`), then writes the request's CGI
//!    vars into the buffer in uwsgi's key/value encoding (`protocol::http::environ`):
//!    [`Head::vars`] and [`Head::body_start`] point into it, as for a uwsgi packet. A chunked body
//!    is not read there: [`Head::chunked`] carries its decoder, and [`Body`] de-chunks it as the
//!    app reads (answering `Expect: 100-continue` at the first read that waits for it).
//! 2. The request gets [`Framing::Http`] (the request's version, `HEAD`, whether the client
//!    allows keep-alive, `--add-header`): the [`Response`] writer then decides the framing when
//!    the head goes out (the app's `Content-Length`, else chunked or close-delimited), drops the
//!    app's hop-by-hop headers, frames each body write and ends a chunked body.
//! 3. [`Finished::reusable`] says whether the connection may carry the next request (a complete
//!    response whose framing showed its end), [`Unread::drain`] finds the body's end; the server's
//!    [`Source::finish`] then keeps it, serves a pipelined request already in its buffer next,
//!    or hands it to the event loop to wait idle, holding no thread.
//!
//! A third protocol does the same: a parser in `protocol`, a reader in `server` that produces a
//! [`Request`], and a [`Framing`] variant if its responses are delimited differently.

mod body;
mod conn;
mod response;

pub use body::{Body, ChunkedRest, Refused, Unread};
pub use conn::Conn;
pub use response::{
    check_header, check_status, http_date, push_header, push_status_line, status_protocol,
    AppFields, ChunkLine, Framing, HttpDate, Response,
};

use crate::protocol::http::ChunkedDecoder;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A decoded request head, protocol-neutral: offsets into the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The CGI vars, in uwsgi's key/value encoding.
    pub vars: Range<usize>,
    /// Number of key/value pairs in `vars`.
    pub var_count: usize,
    /// Where the body bytes that arrived with the head start.
    pub body_start: usize,
    /// The body's declared length (0 without one, and for a chunked body).
    pub content_length: u64,
    /// A chunked body: its decoder (limits set); the bytes from `body_start` on are its raw
    /// framing, and maybe the start of the next pipelined request.
    pub chunked: Option<ChunkedDecoder>,
    /// uwsgi's packet modifiers (0 for other protocols), for the log.
    pub modifier1: u8,
    /// See `modifier1`.
    pub modifier2: u8,
}

/// One request, from the moment its head is complete.
pub struct Request {
    /// The connection: the body is read from it and the response written to it.
    pub conn: Arc<Conn>,
    /// The bytes received: the head, then the body bytes that came with it.
    pub buf: Vec<u8>,
    /// What the head says.
    pub head: Head,
    /// How the response is framed on this connection.
    pub framing: Framing,
    /// When the connection was accepted (the log line's "in N msecs" counts from here).
    pub accepted: Instant,
    /// Each wait for the peer is bounded by this (`--socket-timeout`).
    pub timeout: Duration,
}

impl Head {
    /// The vars: `(key, value)` byte slices borrowed from `buf`, the request's buffer.
    pub fn vars<'a>(&self, buf: &'a [u8]) -> crate::protocol::vars::Vars<'a> {
        crate::protocol::vars::Vars::new(self.vars_block(buf))
    }

    /// The raw vars block (for `--log-format` variables that name a var).
    pub fn vars_block<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.vars.clone()]
    }

    /// The body bytes that arrived with the head, never more than the declared length.
    pub fn body_prefix<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let arrived = &buf[self.body_start..];
        let len =
            usize::try_from(self.content_length).map_or(arrived.len(), |cl| cl.min(arrived.len()));
        &arrived[..len]
    }

    /// Body bytes still on the wire after the ones in `buf`.
    pub fn body_unread(&self, buf: &[u8]) -> u64 {
        self.content_length - self.body_prefix(buf).len() as u64
    }

    /// The body reader of this request and the body bytes that came with the head (for a chunked
    /// body the reader holds those, still framed).
    pub fn body(&self, conn: Arc<Conn>, buf: &[u8], timeout: Duration) -> (Body, Vec<u8>) {
        match &self.chunked {
            Some(decoder) => {
                let raw = buf[self.body_start..].to_vec();
                (
                    Body::chunked(conn, decoder.clone(), raw, timeout),
                    Vec::new(),
                )
            }
            None => {
                let unread = self.body_unread(buf);
                let body = Body::new(conn, unread, self.content_length, timeout);
                (body, self.body_prefix(buf).to_vec())
            }
        }
    }

    /// What is left on the wire of a body nobody read.
    pub fn unread(&self, buf: &[u8]) -> Unread {
        match self.chunked {
            Some(_) => Unread::Broken,
            None => Unread::Length(self.body_unread(buf)),
        }
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The app's response went out whole.
    Complete,
    /// The app failed before its head went out and the server answered with an error page: the
    /// page is complete, but the connection is not kept.
    Answered,
    /// Cut short after part of it was sent (the app failed, or the client went away). With a
    /// declared length the peer sees the short body when the connection closes normally; without
    /// one only a reset tells it the body is incomplete.
    Cut {
        /// The response head declared a `Content-Length`.
        length_declared: bool,
    },
}

/// A request the Python thread is done with: the connection goes back to the server.
pub struct Finished {
    /// The connection (other references may remain if the app kept its environ).
    pub conn: Arc<Conn>,
    /// How the response ended.
    pub end: End,
    /// What is left of the body on the wire.
    pub body: Unread,
    /// The response's framing lets the connection carry another request ([`Response::keep_alive`]).
    pub keep_alive: bool,
}

impl Finished {
    /// Whether finishing has to wait on the peer (an unread body to drain): the Python thread lets
    /// the GIL go around it only then.
    pub fn waits(&self) -> bool {
        self.body.waits() && !matches!(self.end, End::Cut { .. })
    }

    /// Whether the connection may carry another request once the unread body (if any) is
    /// drained: a complete response whose framing allows it.
    pub fn reusable(&self) -> bool {
        self.end == End::Complete && self.keep_alive
    }
}

/// What [`Source::try_next`] found.
pub enum Next {
    /// A request to serve now.
    Request(Request),
    /// Nothing now: call [`Source::wait`] (detached from Python).
    Wait,
    /// The worker is stopping and every request has been taken.
    Done,
}

/// Where a Python thread takes its requests from and gives the connections back: the server's
/// side of the seam, one per thread.
pub trait Source: Send {
    /// The next request if one can be had without waiting. Called with the GIL held, so under
    /// load a thread goes from one request to the next without letting it go.
    fn try_next(&mut self) -> Next;

    /// Wait until a request may be there (then [`Source::try_next`] again), or return one.
    /// Blocks: called with the GIL released.
    fn wait(&mut self) -> Option<Request>;

    /// The response is done: the server closes the connection or keeps it. Blocks only when
    /// [`Finished::waits`].
    fn finish(&mut self, finished: Finished);

    /// Stop taking requests so this worker can be replaced; true the first time it is asked.
    fn retire(&self) -> bool;
}

/// Logs the Python stack of a request the harakiri watchdog gives up on (set by the Python layer, called by the server's watchdog).
type StuckReporter = Box<dyn Fn(usize) + Send + Sync>;
static STUCK_REPORTER: std::sync::OnceLock<StuckReporter> = std::sync::OnceLock::new();

/// Say how to report a stuck request's thread (once per process).
pub fn set_stuck_reporter(report: StuckReporter) {
    let _ = STUCK_REPORTER.set(report);
}

/// Report the thread of core `core`, whose request ran past `--harakiri` (waits briefly).
pub fn report_stuck(core: usize) {
    if let Some(report) = STUCK_REPORTER.get() {
        report(core);
    }
}
