//! HTTP connections on the server side: reading a request head off the socket without a Python
//! thread, and turning it into the same request the uwsgi path makes.
//!
//! The head is translated once into the vars block nginx would have sent
//! ([`crate::protocol::http::environ`]), so the job a Python thread runs is the same whichever
//! protocol the listener speaks: one environ builder, one response path, one log line. What
//! HTTP adds travels beside it in [`HttpJob`]: the framing of the response and whether the
//! connection stays open for the next request.
//!
//! A chunked body is not read here: the app reads it through `wsgi.input`, de-chunked as it goes
//! (`crate::request::Body`), with no `CONTENT_LENGTH`. Its framing in the bytes that came with the
//! head is checked here, so a request whose first chunk is already bad or over `--limit-post` is
//! refused before the app runs. `Expect: 100-continue` is answered when the app first reads the
//! body, not here: an app that answers without reading never makes the client send it.

use crate::protocol::header::HEADER_LEN;
use crate::protocol::http::environ::{encode_vars, ConnInfo};
use crate::protocol::http::response::{error_page, Exchange};
use crate::protocol::http::{parse_head, BodyKind, ChunkedDecoder, Field, Head, HttpError};
use crate::protocol::http::{Chunk, Limits as HttpLimits};
use crate::protocol::RequestHead;
use crate::request::Conn;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes offered to one read of a request head.
const READ_CHUNK: usize = 16 * 1024;

/// The HTTP settings of a worker.
#[derive(Debug)]
pub struct HttpSettings {
    /// Listeners from this index on speak HTTP (the `--http-socket`s follow the `--socket`s).
    pub first_listener: usize,
    /// The head and body limits (`--buffer-size`, `--limit-post`).
    pub limits: HttpLimits,
    /// `--http-timeout`: a whole head must arrive within it (slow senders are cut).
    pub header_timeout: Duration,
    /// `--http-keepalive`: how long an idle connection is kept; `None` closes after a response.
    pub keepalive: Option<Duration>,
    /// `--add-header` (shared with each response's framing, so no copy per request).
    pub add_headers: Arc<[(Vec<u8>, Vec<u8>)]>,
}

/// The HTTP settings from the configuration, when any listener speaks HTTP.
pub fn settings(config: &crate::config::Config) -> Option<Arc<HttpSettings>> {
    let h = &config.http;
    (!h.sockets.is_empty()).then(|| {
        Arc::new(HttpSettings {
            first_listener: h.first,
            limits: HttpLimits {
                buffer_size: config.limits.buffer_size,
                limit_post: config.limits.limit_post,
            },
            header_timeout: h.timeout,
            keepalive: h.keepalive,
            add_headers: h.add_headers.clone().into(),
        })
    })
}

/// What the response to an HTTP request needs to know, carried in its job.
#[derive(Debug)]
pub struct HttpJob {
    /// The request facts the response framing depends on (version, `HEAD`, keep-alive).
    pub exchange: Exchange,
    /// The decoder of a chunked request body, which the app's reads drive.
    pub chunked: Option<ChunkedDecoder>,
    /// Bytes that arrived after this request: the start of the next, pipelined one.
    pub leftover: Vec<u8>,
    /// The listener's HTTP settings.
    pub settings: Arc<HttpSettings>,
    /// The connection's addresses as environ values.
    pub peer: Arc<Peer>,
}

/// A connection whose response is complete and that may carry the next request.
#[derive(Debug)]
pub struct KeepAlive {
    /// The connection, to wait on for the next request.
    pub conn: Conn,
    /// Bytes of the next request already read.
    pub leftover: Vec<u8>,
    /// The listener's HTTP settings.
    pub settings: Arc<HttpSettings>,
    /// The connection's addresses, kept for the next request.
    pub peer: Arc<Peer>,
}

/// The addresses of a connection as environ values, looked up once per connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    remote_addr: String,
    remote_port: String,
    server_name: String,
    server_port: String,
}

impl Peer {
    fn of(conn: &Conn) -> Peer {
        let (peer, local) = (conn.peer_addr(), conn.local_addr());
        Peer {
            remote_addr: peer.map(|a| a.ip().to_string()).unwrap_or_default(),
            remote_port: peer.map(|a| a.port().to_string()).unwrap_or_default(),
            server_name: local.map_or_else(|| "localhost".into(), |a| a.ip().to_string()),
            server_port: local.map(|a| a.port().to_string()).unwrap_or_default(),
        }
    }
}

/// An HTTP connection between requests or inside a head.
#[derive(Debug)]
pub struct HttpRead {
    settings: Arc<HttpSettings>,
    /// Looked up with the first request.
    peer: Option<Arc<Peer>>,
    buf: Vec<u8>,
    fields: Vec<Field>,
    /// The first byte of the current head has arrived (the header timeout runs).
    started: bool,
}

/// What one look at the bytes decided.
pub enum HttpProgress {
    /// Nothing decided: wait for the socket.
    Pending,
    /// The peer closed or the socket failed.
    Closed,
    /// A whole request: the uwsgi-form packet, its head, and the HTTP side.
    Ready(Vec<u8>, RequestHead, HttpJob),
    /// Refused: the answer to send before closing.
    Refuse(HttpError),
}

impl HttpRead {
    /// A connection, with the bytes already read for it (pipelined after a previous request).
    pub fn new(settings: Arc<HttpSettings>, buf: Vec<u8>, peer: Option<Arc<Peer>>) -> HttpRead {
        HttpRead {
            settings,
            peer,
            started: !buf.is_empty(),
            buf,
            fields: Vec::with_capacity(16),
        }
    }

    /// The connection's settings and peer, to keep it waiting again (its buffer is dropped).
    pub fn into_parts(self) -> (Arc<HttpSettings>, Option<Arc<Peer>>) {
        (self.settings, self.peer)
    }

    /// Bytes held.
    pub fn received(&self) -> usize {
        self.buf.len()
    }

    /// Read what the socket has (non-blocking) and decide. `deadline` moves to the header
    /// timeout when a head starts arriving.
    pub fn read(&mut self, conn: &Conn, deadline: &mut Instant) -> HttpProgress {
        loop {
            if let Some(p) = self.poll(conn) {
                return p;
            }
            let old = self.buf.len();
            match crate::protocol::Recv::recv_append(conn, &mut self.buf, READ_CHUNK) {
                Ok(0) => {
                    if old > 0 {
                        tracing::info!("{}", HttpError::Truncated);
                    }
                    return HttpProgress::Closed;
                }
                Ok(_) if !self.started => {
                    self.started = true;
                    *deadline = Instant::now() + self.settings.header_timeout;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return HttpProgress::Pending
                }
                Err(_) => return HttpProgress::Closed,
            }
        }
    }

    /// Decide on the bytes held: a whole head, or need more.
    fn poll(&mut self, conn: &Conn) -> Option<HttpProgress> {
        let head = match parse_head(&self.buf, &self.settings.limits, &mut self.fields) {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            Err(e) => return Some(HttpProgress::Refuse(e)),
        };
        let arrived = &self.buf[head.len..];
        let chunked = match head.body {
            BodyKind::Chunked => {
                let limits = &self.settings.limits;
                let decoder = ChunkedDecoder::new(limits.limit_post, limits.buffer_size);
                if let Err(e) = check_chunked(decoder.clone(), arrived) {
                    return Some(HttpProgress::Refuse(e));
                }
                Some(decoder)
            }
            _ => None,
        };
        // A client that sent body bytes already is not waiting for `100 Continue`.
        let body_expected = head.body != BodyKind::Empty && head.body != BodyKind::Length(0);
        conn.owe_continue(head.expect_continue && body_expected && arrived.is_empty());
        Some(self.ready(head, chunked, conn))
    }

    /// Translate a complete request into a job's packet.
    fn ready(&mut self, head: Head, chunked: Option<ChunkedDecoder>, conn: &Conn) -> HttpProgress {
        let peer = self
            .peer
            .get_or_insert_with(|| Arc::new(Peer::of(conn)))
            .clone();
        let info = ConnInfo {
            remote_addr: peer.remote_addr.as_bytes(),
            remote_port: peer.remote_port.as_bytes(),
            server_name: peer.server_name.as_bytes(),
            server_port: peer.server_port.as_bytes(),
        };
        // A chunked body's raw bytes all go with the request (its reader finds where it ends and
        // hands back what follows); a body of declared length takes its own bytes only.
        let there = &self.buf[head.len..];
        let (body, rest): (&[u8], &[u8]) = match head.body {
            BodyKind::Chunked => (there, &[]),
            BodyKind::Length(n) => {
                there.split_at(usize::try_from(n).unwrap_or(usize::MAX).min(there.len()))
            }
            BodyKind::Empty => (&[], there),
        };
        let mut packet = Vec::with_capacity(HEADER_LEN + head.len + 128 + body.len());
        packet.extend_from_slice(&[0; HEADER_LEN]);
        if let Err(e) = encode_vars(&self.buf, &head, &self.fields, &info, &mut packet) {
            return HttpProgress::Refuse(e);
        }
        let Ok(vars_len) = u16::try_from(packet.len() - HEADER_LEN) else {
            return HttpProgress::Refuse(HttpError::HeadersTooLarge { max: 65535 });
        };
        let var_count = crate::protocol::vars::validate(&packet[HEADER_LEN..]).unwrap_or(0);
        packet[1..3].copy_from_slice(&vars_len.to_le_bytes());
        packet.extend_from_slice(body);
        // The buffer, its capacity kept, carries the next request's bytes: no allocation for the
        // next read on a kept-alive connection.
        let rest_start = self.buf.len() - rest.len();
        self.buf.drain(..rest_start);
        let leftover = std::mem::take(&mut self.buf);
        let content_length = match head.body {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        let job = HttpJob {
            exchange: Exchange {
                version: head.version,
                is_head: head.is_head,
                keep_alive: head.keep_alive && self.settings.keepalive.is_some(),
            },
            chunked,
            leftover,
            settings: self.settings.clone(),
            peer,
        };
        let request = RequestHead {
            modifier1: 0,
            modifier2: 0,
            vars_len: usize::from(vars_len),
            var_count,
            content_length,
        };
        HttpProgress::Ready(packet, request, job)
    }
}

/// Check the framing of the chunked body bytes that came with the head, so that a body already
/// bad (or over `--limit-post`) is refused before the app runs; the rest is checked as the app
/// reads.
fn check_chunked(mut decoder: ChunkedDecoder, mut arrived: &[u8]) -> Result<(), HttpError> {
    loop {
        let (n, chunk) = decoder.decode(arrived)?;
        arrived = &arrived[n..];
        if !matches!(chunk, Chunk::Data(_)) {
            return Ok(());
        }
    }
}

/// The answer to a refused request, logged once.
pub fn refusal(e: &HttpError) -> Option<Vec<u8>> {
    tracing::warn!("{e}");
    let date = crate::request::http_date();
    e.status()
        .map(|status| error_page(status, &format!("{status}\n"), Some(&date)))
}
