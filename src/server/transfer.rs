//! A static file's response on its way out: the head, then a range of the file by `sendfile(2)`,
//! never waiting on the socket.
//!
//! The Python thread that resolved the file (holding no GIL) sends what the socket takes at once,
//! which for most files is all of it. When the client reads slower than that, or the file is
//! bigger than [`THREAD_TURN`], the rest goes to the event loop ([`Transfers`]), which sends more
//! each time the socket is writable and cuts a client that takes nothing for `--socket-timeout`.
//! A slow reader of a big file therefore holds a descriptor and a few bytes of state, never a
//! Python thread. Once the last byte is out the loop closes the connection, or, for a kept-alive
//! HTTP connection, waits for its next request as for any idle one.

use super::http::{HttpJob, KeepAlive};
use crate::request::Conn;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Most bytes the Python thread sends of one file before it hands the rest to the loop, even to a
/// client that keeps up: a huge file must not keep the thread from the next request.
pub const THREAD_TURN: u64 = 8 << 20;

/// Most bytes the loop sends to one client before it looks at the others.
pub const LOOP_TURN: u64 = 4 << 20;

/// Largest count given to one `sendfile(2)` (the kernel caps it near 2 GiB anyway).
const SENDFILE_MAX: u64 = 1 << 30;

/// What one round of sending ended with.
#[derive(Debug)]
pub enum Pump {
    /// Everything is out.
    Done,
    /// The socket takes nothing more now.
    Blocked,
    /// The turn's budget is spent and the socket may take more.
    Turn,
    /// The file ended before the promised length (it shrank while being sent): the response is
    /// short and the connection must close.
    Truncated,
    /// The socket failed (the client went away).
    Failed(io::Error),
}

/// What the log line of a transfer says, kept once it leaves the thread that started it.
#[derive(Debug)]
pub struct Line {
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// The request's path, as the client sent it (decoded).
    pub path: String,
    /// The response status.
    pub status: u16,
    /// The file sent.
    pub file: PathBuf,
    /// The file is the `.gz` sibling of the one asked for.
    pub gzip: bool,
}

/// A static response being sent.
#[derive(Debug)]
pub struct Transfer {
    conn: Conn,
    file: File,
    head: Vec<u8>,
    head_sent: usize,
    offset: u64,
    left: u64,
    /// Body bytes sent.
    sent: u64,
    /// How long the client may take nothing before it is cut (`--socket-timeout`).
    timeout: Duration,
    /// When bytes last went out (or the transfer began).
    progressed: Instant,
    /// The HTTP side of a connection that stays open after the response.
    keep: Option<Box<HttpJob>>,
    line: Option<Box<Line>>,
}

impl Transfer {
    /// `head`, then `len` bytes of `file` from `offset`; `keep` when the connection is kept alive.
    pub fn new(
        conn: Conn,
        file: File,
        head: Vec<u8>,
        (offset, len): (u64, u64),
        timeout: Duration,
        keep: Option<Box<HttpJob>>,
    ) -> Transfer {
        Transfer {
            conn,
            file,
            head,
            head_sent: 0,
            offset,
            left: len,
            sent: 0,
            timeout,
            progressed: Instant::now(),
            keep,
            line: None,
        }
    }

    /// Body bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Keep what the log line needs (before the transfer leaves the request's thread).
    pub fn describe(&mut self, line: Line) {
        self.line = Some(Box::new(line));
    }

    /// Send what the socket takes, up to `budget` body bytes, without waiting.
    pub fn pump(&mut self, budget: u64) -> Pump {
        // Body bytes sent in this round; the head does not count against the budget.
        let mut moved = 0u64;
        let mut progressed = false;
        let end = loop {
            if self.head_sent < self.head.len() {
                let head = &self.head[self.head_sent..];
                let wrote = if self.left > 0 {
                    self.conn.write_now_more(head)
                } else {
                    self.conn.write_now(head)
                };
                match wrote {
                    Ok(0) => break Pump::Failed(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.head_sent += n;
                        progressed = true;
                        continue;
                    }
                    Err(e) => match e.kind() {
                        io::ErrorKind::WouldBlock => break Pump::Blocked,
                        io::ErrorKind::Interrupted => continue,
                        _ => break Pump::Failed(e),
                    },
                }
            }
            if !self.head.is_empty() {
                // Out: a slow reader's transfer keeps no more than it needs.
                self.head = Vec::new();
                self.head_sent = 0;
            }
            if self.left == 0 {
                break Pump::Done;
            }
            if moved >= budget {
                break Pump::Turn;
            }
            let count = self.left.min(budget - moved).min(SENDFILE_MAX) as usize;
            match self
                .conn
                .sendfile_now(self.file.as_raw_fd(), &mut self.offset, count)
            {
                Ok(0) => break Pump::Truncated,
                Ok(n) => {
                    self.left -= n as u64;
                    self.sent += n as u64;
                    moved += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Pump::Blocked,
                Err(e) => break Pump::Failed(e),
            }
        };
        if progressed || moved > 0 {
            self.progressed = Instant::now();
        }
        end
    }

    /// Finish on this thread, waiting on the socket (at most the timeout between two sends): for a
    /// transfer the stopping loop no longer takes. Called detached from the GIL.
    pub fn finish_here(mut self) -> Option<KeepAlive> {
        loop {
            match self.pump(u64::MAX) {
                Pump::Blocked => {
                    if self
                        .conn
                        .wait_writable(Instant::now() + self.timeout)
                        .is_err()
                    {
                        self.log_stalled();
                        return None;
                    }
                }
                Pump::Turn => {}
                end => return self.end(&end, "its thread: the event loop had stopped"),
            }
        }
    }

    /// Whether the client has taken nothing for longer than the timeout, at `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.progressed) >= self.timeout
    }

    /// Log how a finished round ended (`by`: who sent the last bytes); the connection back when
    /// it stays open for the next request. `end` is not [`Pump::Blocked`] nor [`Pump::Turn`].
    pub fn end(self, end: &Pump, by: &str) -> Option<KeepAlive> {
        match end {
            Pump::Done => self.log(&format!("sent by {by}")),
            Pump::Truncated => {
                tracing::warn!(
                    "static file {} shrank while it was sent: the response was cut after {} bytes",
                    self.file_name(),
                    self.sent
                );
                return None;
            }
            Pump::Failed(e) => {
                self.log(&format!("cut: {e}"));
                return None;
            }
            Pump::Blocked | Pump::Turn => return None,
        }
        self.into_kept()
    }

    /// The connection of a complete response, when it stays open for the next request.
    pub fn into_kept(self) -> Option<KeepAlive> {
        let Transfer { conn, keep, .. } = self;
        keep.map(|h| KeepAlive {
            conn,
            leftover: h.leftover,
            settings: h.settings,
            peer: h.peer,
        })
    }

    /// The log line for a client that took nothing for the timeout.
    pub fn log_stalled(&self) {
        tracing::warn!(
            "static {}: cut after {} of {} bytes: the client took nothing for {}s (--socket-timeout)",
            self.line.as_ref().map_or_else(String::new, |l| format!(
                "{} {} => {}",
                l.method, l.path, l.status
            )),
            self.sent,
            self.sent + self.left,
            self.timeout.as_secs()
        );
    }

    fn file_name(&self) -> String {
        self.line
            .as_ref()
            .map_or_else(String::new, |l| l.file.display().to_string())
    }

    fn log(&self, how: &str) {
        if let Some(l) = &self.line {
            tracing::info!(
                "static {} {} => {}, {} bytes from {}{} ({how})",
                l.method,
                l.path,
                l.status,
                self.sent,
                l.file.display(),
                if l.gzip { " (gzip)" } else { "" }
            );
        }
    }
}

/// The first token of the transfers: far above the event loop's connection keys, below its
/// waker and signal tokens.
const TOKEN_BASE: usize = 1 << (usize::BITS - 2);

/// The transfers the event loop is finishing.
#[derive(Default)]
pub struct Transfers {
    slab: Slab<Transfer>,
    /// Transfers whose last round ended with its turn spent, the socket still writable (an
    /// edge-triggered poll would not report it again): sent to again before the loop sleeps.
    runnable: Vec<usize>,
}

/// What the loop does with a connection whose transfer ended.
pub type Ended = Option<KeepAlive>;

impl Transfers {
    /// The key of a transfer's token, when it is one.
    pub fn key(token: Token) -> Option<usize> {
        token.0.checked_sub(TOKEN_BASE).filter(|k| *k < TOKEN_BASE)
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Whether a transfer waits for its next turn (the loop must not sleep).
    pub fn has_runnable(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// Take a transfer a thread started: its socket is watched for writability (epoll reports it
    /// at once if it already is).
    pub fn adopt(&mut self, transfer: Transfer, registry: &Registry) {
        let fd = transfer.conn.fd();
        let entry = self.slab.vacant_entry();
        let token = Token(TOKEN_BASE + entry.key());
        match registry.register(&mut SourceFd(&fd), token, Interest::WRITABLE) {
            Ok(()) => {
                entry.insert(transfer);
            }
            Err(e) => {
                tracing::error!("cannot register a static transfer with epoll: {e}");
                transfer.end(&Pump::Failed(e), "");
            }
        }
    }

    /// Send to the transfer `key` (its socket is writable); the connection when it ended kept
    /// alive.
    pub fn on_writable(&mut self, key: usize, registry: &Registry) -> Ended {
        let t = self.slab.get_mut(key)?;
        match t.pump(LOOP_TURN) {
            Pump::Blocked => None,
            Pump::Turn => {
                if !self.runnable.contains(&key) {
                    self.runnable.push(key);
                }
                None
            }
            end => self.remove(key, registry).end(&end, "the event loop"),
        }
    }

    /// Give every transfer whose turn was spent its next turn; the connections that ended kept
    /// alive.
    pub fn run(&mut self, registry: &Registry) -> Vec<KeepAlive> {
        let keys = std::mem::take(&mut self.runnable);
        keys.into_iter()
            .filter_map(|key| self.on_writable(key, registry))
            .collect()
    }

    /// Cut the transfers whose client took nothing for the timeout; how many.
    pub fn expire(&mut self, now: Instant, registry: &Registry) -> usize {
        let stalled: Vec<usize> = self
            .slab
            .iter()
            .filter(|(_, t)| t.stalled(now))
            .map(|(k, _)| k)
            .collect();
        for &key in &stalled {
            self.remove(key, registry).log_stalled();
        }
        stalled.len()
    }

    /// Cut up to `count` transfers whose client has taken nothing for at least `idle`, the
    /// longest stalled first (the descriptors are needed for new requests); how many.
    pub fn cut_stalled(&mut self, count: usize, idle: Duration, registry: &Registry) -> usize {
        let now = Instant::now();
        let since: Vec<(Instant, usize)> =
            self.slab.iter().map(|(k, t)| (t.progressed, k)).collect();
        let keys = longest_stalled(since, count, now.checked_sub(idle));
        for &key in &keys {
            drop(self.remove(key, registry));
        }
        keys.len()
    }

    /// Cut every transfer still in flight (the worker's stop budget ran out); how many.
    pub fn cut_all(&mut self, registry: &Registry) -> usize {
        let keys: Vec<usize> = self.slab.iter().map(|(k, _)| k).collect();
        for &key in &keys {
            drop(self.remove(key, registry));
        }
        keys.len()
    }

    fn remove(&mut self, key: usize, registry: &Registry) -> Transfer {
        let t = self.slab.remove(key);
        self.runnable.retain(|k| *k != key);
        let _ = registry.deregister(&mut SourceFd(&t.conn.fd()));
        t
    }
}

/// The keys of at most `count` of `since` (when each last progressed, and its key) that have not
/// progressed after `before` (`None`: none qualifies), the earliest first.
fn longest_stalled(
    mut since: Vec<(Instant, usize)>,
    count: usize,
    before: Option<Instant>,
) -> Vec<usize> {
    let Some(before) = before else {
        return Vec::new();
    };
    since.retain(|(t, _)| *t <= before);
    since.sort_unstable();
    since.into_iter().take(count).map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests;
