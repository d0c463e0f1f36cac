//! The server's side of the request seam: a Python thread's [`Acceptor`] is its
//! [`Source`] of requests. A request is handed out as a [`Request`] (registered with the harakiri
//! watchdog when `--harakiri` is set) and its connection comes back in [`Source::finish`], where
//! the server drains an unread body and closes: a FIN for a complete response, or for a cut one
//! whose length was declared (the peer sees the short body); a reset for a cut one without a
//! declared length, where only the reset says "incomplete".

use super::acceptor::{Acceptor, Taken};
use super::dispatch::{Job, Running};
use super::http::{HttpJob, KeepAlive};
use super::statics::{self, Served};
use crate::request::{Conn, End, Finished, Framing, Head, Next, Request, Source};
use std::sync::Arc;

/// Most unread body bytes discarded after a response before the connection is closed anyway.
const DRAIN_LIMIT: u64 = 256 << 20;

impl Source for Acceptor {
    fn try_next(&mut self) -> Next {
        let job = match self.pipelined.take() {
            Some(job) => job,
            None => match self.take() {
                Taken::Job(job) => job,
                Taken::Wait => return Next::Wait,
                Taken::Done => return Next::Done,
            },
        };
        if self.source().statics.is_some() {
            // It may be a static file, which is sent without the GIL: the thread looks at it in
            // `wait`, detached.
            self.held = Some(job);
            return Next::Wait;
        }
        Next::Request(self.hand_out(job))
    }

    fn wait(&mut self) -> Option<Request> {
        let job = match self.held.take() {
            Some(job) => job,
            None => self.wait_for_job()?,
        };
        let job = self.serve_static(job)?;
        Some(self.hand_out(job))
    }

    fn finish(&mut self, finished: Finished) {
        let reusable = finished.reusable();
        let Finished {
            conn, end, body, ..
        } = finished;
        // The bytes read past the body (the next request's start) once it is drained.
        let next = match end {
            End::Cut { .. } => None,
            _ => body.drain(&conn, DRAIN_LIMIT, self.source().timeouts.idle),
        };
        if let Some(inflight) = &self.source().inflight {
            inflight.finish(self.id());
        }
        let http = self.serving.take();
        match (http, next) {
            (Some(mut http), Some(mut next)) if reusable => {
                // Only a chunked body hands bytes back; the usual empty case keeps the buffer.
                if !next.is_empty() {
                    next.extend_from_slice(&http.leftover);
                    http.leftover = next;
                }
                self.pipelined = self.reuse(conn, *http);
            }
            _ => close(conn, end),
        }
    }

    fn retire(&self) -> bool {
        self.source().request_retire()
    }
}

impl Acceptor {
    /// Turn a job into the request a Python thread serves.
    fn hand_out(&mut self, job: Job) -> Request {
        let Job {
            conn,
            buf,
            head,
            accepted,
            http,
        } = job;
        let conn = Arc::new(conn);
        if let Some(inflight) = &self.source().inflight {
            let running = Running {
                conn: conn.clone(),
                started: accepted,
                what: describe(&head, &buf),
            };
            inflight.start(self.id(), running);
        }
        let body_start = head.body_start();
        let request = Request {
            conn,
            head: Head {
                vars: body_start - head.vars_len..body_start,
                var_count: head.var_count,
                body_start,
                content_length: head.content_length,
                chunked: http.as_ref().and_then(|h| h.chunked.clone()),
                modifier1: head.modifier1,
                modifier2: head.modifier2,
            },
            buf,
            framing: match &http {
                Some(h) => Framing::Http {
                    exchange: h.exchange,
                    add_headers: h.settings.add_headers.clone(),
                },
                None => Framing::Close,
            },
            accepted,
            timeout: self.source().timeouts.idle,
        };
        self.serving = http;
        request
    }

    /// Send a static file (`--static-map` and friends) if the request asks for one; the job back
    /// when it is for the app. Blocks: called detached.
    fn serve_static(&mut self, job: Job) -> Option<Job> {
        let Some(rules) = self.source().statics.clone() else {
            return Some(job);
        };
        match statics::serve(&rules, job, self.source()) {
            Served::NotStatic(job) => Some(job),
            Served::Done(kept) => {
                self.pipelined = kept.and_then(|k| self.keep_alive(k));
                None
            }
        }
    }

    /// Keep an HTTP connection whose response is complete for its next request: served next by
    /// this thread when it is already here (pipelined), else left to the event loop. If the app
    /// kept a reference to its environ the connection cannot be reused and is closed.
    fn reuse(&mut self, conn: Arc<Conn>, http: HttpJob) -> Option<Job> {
        match Arc::try_unwrap(conn) {
            Ok(conn) => {
                conn.unclaim();
                self.keep_alive(KeepAlive {
                    conn,
                    leftover: http.leftover,
                    settings: http.settings,
                    peer: http.peer,
                })
            }
            Err(shared) => {
                shared.shutdown_both();
                None
            }
        }
    }
}

/// Method and URI of a request, for the harakiri log line.
fn describe(head: &crate::protocol::RequestHead, buf: &[u8]) -> String {
    let (mut method, mut uri, mut path) = (&b""[..], &b""[..], &b""[..]);
    for (key, value) in head.vars(buf) {
        match key {
            b"REQUEST_METHOD" => method = value,
            b"REQUEST_URI" => uri = value,
            b"PATH_INFO" => path = value,
            _ => {}
        }
    }
    let uri = if uri.is_empty() { path } else { uri };
    format!(
        "{} {}",
        String::from_utf8_lossy(method),
        String::from_utf8_lossy(uri)
    )
}

/// Whether a response that ended so must be closed with a reset: only a cut one whose length was
/// not declared. With a declared length the peer sees the short body at a normal close (nginx
/// passes the bytes sent on and cuts the client's response); a reset would make it throw them
/// away. Without one a normal close looks like the end of the body, and only a reset says "cut".
fn must_reset(end: End) -> bool {
    matches!(
        end,
        End::Cut {
            length_declared: false
        }
    )
}

/// Close the connection: a FIN normally, a reset when [`must_reset`]. If the app kept a reference
/// to its environ, the descriptor stays open until Python frees it, but the peer is answered now.
fn close(conn: Arc<Conn>, end: End) {
    match Arc::try_unwrap(conn) {
        Ok(conn) if must_reset(end) => conn.abort(),
        Ok(conn) => drop(conn),
        Err(shared) => shared.shutdown_both(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cut_body_of_unknown_length_is_reset() {
        assert!(!must_reset(End::Complete));
        assert!(!must_reset(End::Answered));
        assert!(!must_reset(End::Cut {
            length_declared: true
        }));
        assert!(must_reset(End::Cut {
            length_declared: false
        }));
    }
}
