//! A connection whose request head has not been read yet, and the non-blocking read that either
//! completes it, answers it (ping, bad request), or says "wait for more".
//!
//! Both the Python threads (which read a connection right after accepting it) and the event loop
//! (which keeps the connections whose packet arrived in pieces) use it.

use super::conn::Conn;
use crate::protocol::response::simple_response;
use crate::protocol::{
    DecodeError, Limits, Packet, Progress, Reply, RequestHead, RequestReader, PONG,
};
use std::io;
use std::time::{Duration, Instant};

/// Bytes discarded from a connection that got an error answer, so closing it does not reset the
/// peer before it has read the answer.
const ERROR_DRAIN_LIMIT: u64 = 1 << 20;

/// A connection still being read.
#[derive(Debug)]
pub struct Incoming {
    pub conn: Conn,
    pub state: State,
    /// When it is closed if nothing more arrives (`--socket-timeout` after the last byte).
    pub deadline: Instant,
    pub accepted: Instant,
}

#[derive(Debug)]
pub enum State {
    /// Waiting for the rest of the request head (and the preread body).
    Reading(RequestReader),
    /// An error answer went out; discard what the peer still sends until it closes.
    Draining { left: u64 },
}

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
    pub fn new(conn: Conn, limits: Limits, timeout: Duration) -> Incoming {
        let now = Instant::now();
        Incoming {
            conn,
            state: State::Reading(RequestReader::new(limits)),
            deadline: now + timeout,
            accepted: now,
        }
    }

    /// Read until the packet is complete or the socket has nothing more.
    pub fn read(&mut self, timeout: Duration) -> Outcome {
        // The deadline moves with each read that brought bytes, but the clock is read only when
        // the connection is left waiting (a packet that arrives whole never reads it).
        let mut progressed = false;
        let outcome = self.read_inner(&mut progressed);
        if progressed && matches!(outcome, Outcome::Pending) {
            self.deadline = Instant::now() + timeout;
        }
        outcome
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

    /// The bytes read so far, when still reading the head.
    pub fn received(&self) -> usize {
        match &self.state {
            State::Reading(reader) => reader.buffer().len(),
            State::Draining { .. } => 0,
        }
    }

    /// Turn a connection whose head is complete into a job.
    pub fn into_job(self, head: RequestHead) -> super::dispatch::Job {
        let State::Reading(reader) = self.state else {
            unreachable!("only a reading connection becomes ready");
        };
        super::dispatch::Job {
            conn: self.conn,
            buf: reader.into_buffer(),
            head,
            accepted: self.accepted,
        }
    }
}
