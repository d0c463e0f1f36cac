//! The read side of one HTTP connection as a state machine: a head, its body, then (keep-alive)
//! the next head, so pipelined requests come out in order. The caller owns the buffer: it offers
//! the unconsumed bytes, and drops from the front what [`Reader::poll`] says was consumed.

use super::chunked::{Chunk, ChunkedDecoder};
use super::error::HttpError;
use super::head::{parse_head, BodyKind, Field, Head, Limits};

/// What the bytes offered to [`Reader::poll`] held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request head (its fields: [`Reader::fields`]); its body follows.
    Head(Head),
    /// Body bytes of the current request, de-chunked, borrowed from the input.
    Body(&'a [u8]),
    /// The current request's body is complete.
    End,
    /// More bytes are needed.
    NeedMore,
    /// The connection carries no more requests (the last one was not keep-alive, or an error
    /// was returned): the rest of the stream is ignored.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a head.
    Head,
    /// Inside a body with this framing; `keep_alive` is the request's.
    Length { left: u64, keep_alive: bool },
    Chunked {
        decoder: ChunkedDecoder,
        keep_alive: bool,
    },
    /// No more requests on this connection.
    Closed,
}

/// The request reader of one connection.
#[derive(Debug, Clone)]
pub struct Reader {
    limits: Limits,
    fields: Vec<Field>,
    state: State,
}

impl Reader {
    /// A reader for a new connection.
    pub fn new(limits: Limits) -> Self {
        Reader {
            limits,
            fields: Vec::with_capacity(16),
            state: State::Head,
        }
    }

    /// The header fields of the last head returned, as spans of the buffer it came from.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Whether the reader waits for a new request (no request is half read).
    pub fn between_requests(&self) -> bool {
        self.state == State::Head
    }

    /// Decode from `buf`, the bytes not consumed yet: how many bytes are consumed now, and what
    /// they held. An error leaves the reader closed.
    pub fn poll<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, Event<'a>), HttpError> {
        let got = self.step(buf);
        if got.is_err() {
            self.state = State::Closed;
        }
        got
    }

    fn step<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, Event<'a>), HttpError> {
        match &mut self.state {
            State::Closed => Ok((0, Event::Closed)),
            State::Head => {
                let Some(head) = parse_head(buf, &self.limits, &mut self.fields)? else {
                    return Ok((0, Event::NeedMore));
                };
                let keep_alive = head.keep_alive;
                self.state = match head.body {
                    BodyKind::Empty => State::Length {
                        left: 0,
                        keep_alive,
                    },
                    BodyKind::Length(left) => State::Length { left, keep_alive },
                    BodyKind::Chunked => State::Chunked {
                        decoder: ChunkedDecoder::new(
                            self.limits.limit_post,
                            self.limits.buffer_size,
                        ),
                        keep_alive,
                    },
                };
                Ok((head.len, Event::Head(head)))
            }
            State::Length {
                left: 0,
                keep_alive,
            } => {
                let keep_alive = *keep_alive;
                Ok((0, self.end(keep_alive)))
            }
            State::Length { left, .. } => {
                if buf.is_empty() {
                    return Ok((0, Event::NeedMore));
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                Ok((n, Event::Body(&buf[..n])))
            }
            State::Chunked {
                decoder,
                keep_alive,
            } => {
                let keep_alive = *keep_alive;
                let (n, chunk) = decoder.decode(buf)?;
                Ok(match chunk {
                    Chunk::Data(d) => (n, Event::Body(d)),
                    Chunk::NeedMore => (n, Event::NeedMore),
                    Chunk::End => (n, self.end(keep_alive)),
                })
            }
        }
    }

    /// The current request's body is complete.
    fn end(&mut self, keep_alive: bool) -> Event<'static> {
        self.state = if keep_alive {
            State::Head
        } else {
            State::Closed
        };
        Event::End
    }

    /// The peer closed the stream with `buffered` bytes unconsumed: an error if that cut a
    /// request short, `None` for a clean close between requests.
    pub fn eof(&self, buffered: usize) -> Option<HttpError> {
        match self.state {
            State::Head if buffered == 0 => None,
            State::Closed => None,
            _ => Some(HttpError::Truncated),
        }
    }
}

/// One step of a [`transcript`], with owned data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A head and its fields' (name, value) bytes.
    Head(Head, Vec<(Vec<u8>, Vec<u8>)>),
    /// All body bytes between a head and its end, joined.
    Body(Vec<u8>),
    /// The body of the request (or its absence) is complete: a new head may follow.
    End,
    /// The reader will take no more bytes: the connection must close after this request.
    Closed,
    /// The bytes broke the protocol; nothing more is read.
    Error(HttpError),
    /// The stream ended; an error if that cut a request short.
    Eof(Option<HttpError>),
}

/// What a stream means to a [`Reader`], read as `chunks` (each drained of what was consumed
/// before the next poll, as the server does): the same for any split of the same bytes. For the
/// property tests and the fuzzer.
pub fn transcript<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Step> {
    let mut reader = Reader::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let (n, event) = match reader.poll(&buf) {
                Ok(got) => got,
                Err(e) => {
                    out.push(Step::Error(e));
                    return out;
                }
            };
            match event {
                Event::Head(h) => {
                    let fields = reader
                        .fields()
                        .iter()
                        .map(|f| (f.name.get(&buf).to_vec(), f.value.get(&buf).to_vec()))
                        .collect();
                    out.push(Step::Head(h, fields));
                }
                Event::Body(d) => match out.last_mut() {
                    Some(Step::Body(b)) => b.extend_from_slice(d),
                    _ => out.push(Step::Body(d.to_vec())),
                },
                Event::End => out.push(Step::End),
                Event::NeedMore => {
                    buf.drain(..n);
                    break;
                }
                Event::Closed => {
                    out.push(Step::Closed);
                    return out;
                }
            }
            buf.drain(..n);
        }
    }
    out.push(Step::Eof(reader.eof(buf.len())));
    out
}
