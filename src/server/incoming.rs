//! A connection whose request head has not been read yet, and the non-blocking read that either
//! completes it, answers it (ping, bad request), or says "wait for more".
//!
//! Both the Python threads (which read a connection right after accepting it) and the event loop
//! (which keeps the connections whose packet arrived in pieces) use it.

use crate::protocol::response::simple_response;
use crate::protocol::{
    DecodeError, Limits, Packet, Progress, Reply, RequestHead, RequestReader, PONG,
};
use crate::request::Conn;
use std::io;
use std::time::{Duration, Instant};

/// Bytes discarded from a connection that got an error answer, so closing it does not reset the
/// peer before it has read the answer.
const ERROR_DRAIN_LIMIT: u64 = 1 << 20;

/// How long a connection may take over its request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence allowed between two reads (`--socket-timeout`).
    pub idle: Duration,
    /// The whole head, from accept, however it trickles in (`--headers-timeout`): a client that
    /// sends a byte at a time moves the idle deadline forever, never this one.
    pub head: Duration,
}

/// A connection still being read.
#[derive(Debug)]
pub struct Incoming {
    /// The accepted connection.
    pub conn: Conn,
    /// What is being read.
    pub state: State,
    /// When it is closed if nothing more arrives (`--socket-timeout` after the last byte), or
    /// the head deadline if that comes first while the head is incomplete.
    pub deadline: Instant,
    /// When the connection was accepted (the log line's "in N msecs" counts from here).
    pub accepted: Instant,
    /// When a uwsgi request head must be complete (`None` for HTTP, whose deadline already is
    /// one for the head).
    head_deadline: Option<Instant>,
}

#[derive(Debug)]
/// What an [`Incoming`] connection is being read for.
pub enum State {
    /// Waiting for the rest of the request head (and the preread body).
    Reading(RequestReader),
    /// An error answer went out; discard what the peer still sends until it closes.
    Draining {
        /// Bytes still to discard before the connection is closed anyway.
        left: u64,
    },
    /// An HTTP connection: idle between requests, or reading a head.
    Http(Box<super::http::HttpRead>),
    /// An HTTP request read whole: its packet and HTTP side, for [`Incoming::into_job`].
    HttpReady(Vec<u8>, Box<super::http::HttpJob>),
}

/// An idle HTTP connection's parts: the connection, its settings, its peer if looked up.
pub type IdleHttp = (
    Conn,
    std::sync::Arc<super::http::HttpSettings>,
    Option<std::sync::Arc<super::http::Peer>>,
);

/// What reading a connection led to.
pub enum Outcome {
    /// Nothing more to read now: wait for the socket.
    Pending,
    /// The request head is complete.
    Ready(RequestHead),
    /// Done with it (answered, or the peer went away): drop it.
    Close,
}

impl Incoming {
    /// A connection accepted just now.
    pub fn new(conn: Conn, limits: Limits, timeouts: Timeouts) -> Incoming {
        let now = Instant::now();
        let head_deadline = now + timeouts.head;
        Incoming {
            conn,
            state: State::Reading(RequestReader::new(limits)),
            deadline: (now + timeouts.idle).min(head_deadline),
            accepted: now,
            head_deadline: Some(head_deadline),
        }
    }

    /// An HTTP connection just accepted, or kept alive after a response with `leftover` bytes of
    /// the next request; it is closed at `deadline` if no head has started by then.
    pub fn http(
        conn: Conn,
        settings: std::sync::Arc<super::http::HttpSettings>,
        leftover: Vec<u8>,
        peer: Option<std::sync::Arc<super::http::Peer>>,
        deadline: Instant,
    ) -> Incoming {
        Incoming {
            conn,
            state: State::Http(Box::new(super::http::HttpRead::new(
                settings, leftover, peer,
            ))),
            deadline,
            accepted: Instant::now(),
            head_deadline: None,
        }
    }

    /// Read an HTTP connection: its deadline is the header timeout, not moved by each byte.
    fn read_http(&mut self) -> Outcome {
        use super::http::HttpProgress;
        let State::Http(http) = &mut self.state else {
            return Outcome::Close;
        };
        match http.read(&self.conn, &mut self.deadline) {
            HttpProgress::Closed => Outcome::Close,
            HttpProgress::Pending => Outcome::Pending,
            HttpProgress::Ready(packet, head, job) => {
                self.state = State::HttpReady(packet, Box::new(job));
                Outcome::Ready(head)
            }
            HttpProgress::Refuse(e) => match super::http::refusal(&e) {
                None => Outcome::Close,
                Some(answer) => {
                    let _ = self.conn.write_now(&answer);
                    self.conn.shutdown_write();
                    self.state = State::Draining {
                        left: ERROR_DRAIN_LIMIT,
                    };
                    Outcome::Pending
                }
            },
        }
    }

    /// Read until the packet is complete or the socket has nothing more.
    pub fn read(&mut self, timeout: Duration) -> Outcome {
        if matches!(self.state, State::Http(_)) {
            return self.read_http();
        }
        // The deadline moves with each read that brought bytes, but the clock is read only when
        // the connection is left waiting (a packet that arrives whole never reads it).
        let mut progressed = false;
        let outcome = self.read_inner(&mut progressed);
        if progressed && matches!(outcome, Outcome::Pending) {
            self.deadline = Instant::now() + timeout;
            if let Some(head) = self.head_deadline.filter(|_| !self.head_complete()) {
                self.deadline = self.deadline.min(head);
            }
        }
        outcome
    }

    /// Whether the uwsgi request head is all there (what may still be missing is body).
    fn head_complete(&self) -> bool {
        match &self.state {
            State::Reading(reader) => reader.head_complete(),
            State::Draining { .. } | State::Http(_) | State::HttpReady(..) => true,
        }
    }

    /// Whether the head deadline has passed with the head incomplete (not mere silence).
    pub fn head_overdue(&self, now: Instant) -> bool {
        self.head_deadline.is_some_and(|t| now >= t) && !self.head_complete()
    }

    fn read_inner(&mut self, progressed: &mut bool) -> Outcome {
        loop {
            let result = match &mut self.state {
                State::Reading(reader) => reader.read_from(&self.conn),
                State::Draining { left } => {
                    let mut scratch = [0u8; 8192];
                    let r = self.conn.read_now(&mut scratch);
                    if let Ok(n) = r {
                        *left = left.saturating_sub(n as u64);
                        if *left == 0 {
                            return Outcome::Close;
                        }
                    }
                    r
                }
                State::Http(_) | State::HttpReady(..) => return Outcome::Close,
            };
            match result {
                Ok(0) => {
                    if let State::Reading(reader) = &self.state {
                        if let Some(e) = reader.eof() {
                            tracing::warn!("{e}");
                        }
                    }
                    return Outcome::Close;
                }
                Ok(_) => *progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                Err(e) => {
                    tracing::debug!("read from a new connection failed: {e}");
                    return Outcome::Close;
                }
            }
            let State::Reading(reader) = &mut self.state else {
                continue;
            };
            match reader.poll() {
                Ok(Progress::NeedMore) => {}
                Ok(Progress::Ready(Packet::Ping)) => {
                    let _ = self.conn.write_now(&PONG);
                    return Outcome::Close;
                }
                Ok(Progress::Ready(Packet::Request(head))) => return Outcome::Ready(head),
                Err(e) => return self.reject(&e),
            }
        }
    }

    /// Log a bad request once and answer it when the error has an answer.
    fn reject(&mut self, e: &DecodeError) -> Outcome {
        tracing::warn!("{e}");
        match e.reply() {
            Reply::Close => Outcome::Close,
            Reply::Status(status) => {
                let body = format!("{e}\n");
                let response = simple_response(b"HTTP/1.0", status, &body);
                let _ = self.conn.write_now(&response);
                self.conn.shutdown_write();
                self.state = State::Draining {
                    left: ERROR_DRAIN_LIMIT,
                };
                Outcome::Pending
            }
        }
    }

    /// An HTTP connection waiting between requests with nothing of the next one: at shutdown it
    /// is closed at once (the client reopens elsewhere), unlike a request already on its way.
    pub fn idle_http(&self) -> bool {
        matches!(&self.state, State::Http(h) if h.received() == 0)
    }

    /// An [idle](Incoming::idle_http) HTTP connection taken apart to wait again: the connection,
    /// its settings and its peer (if looked up); `None` for any other state.
    pub fn into_idle_http(self) -> Option<IdleHttp> {
        match self.state {
            State::Http(h) if h.received() == 0 => {
                let (settings, peer) = h.into_parts();
                Some((self.conn, settings, peer))
            }
            _ => None,
        }
    }

    /// The bytes read so far, when still reading the head.
    pub fn received(&self) -> usize {
        match &self.state {
            State::Reading(reader) => reader.buffer().len(),
            State::Http(http) => http.received(),
            State::Draining { .. } | State::HttpReady(..) => 0,
        }
    }

    /// Turn a connection whose head is complete into a job.
    pub fn into_job(self, head: RequestHead) -> super::dispatch::Job {
        let (buf, http) = match self.state {
            State::Reading(reader) => (reader.into_buffer(), None),
            State::HttpReady(packet, http) => (packet, Some(http)),
            _ => unreachable!("only a reading connection becomes ready"),
        };
        super::dispatch::Job {
            conn: self.conn,
            buf,
            head,
            accepted: self.accepted,
            http,
        }
    }
}
