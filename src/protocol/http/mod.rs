//! HTTP/1.x, the second wire format: bytes in, typed values out, with neither sockets nor Python.
//!
//! - [`head`] parses a request head with `httparse` and makes RFC 9112's framing decisions
//!   (Content-Length or chunked, keep-alive, `Host`, `Expect`), refusing the smuggling shapes;
//! - [`chunked`] decodes a chunked body incrementally, borrowing the data from the input;
//! - [`conn`] is the read side of a connection (head, body, next pipelined head) as one state
//!   machine, what the server, the fuzzer and the property tests drive;
//! - [`environ`] turns a head into the same vars block nginx sends over uwsgi, so the WSGI layer
//!   builds one environ by one set of rules whichever protocol a listener speaks;
//! - [`response`] decides a response's framing and encodes its head.
//!
//! Every parser returns `Result<Option<T>, HttpError>`: `Ok(None)` is "need more bytes", and an
//! error carries the status the peer should get before the connection is closed. Limits are
//! checked before more bytes are waited for.

pub mod chunked;
pub mod conn;
pub mod environ;
pub mod error;
pub mod head;
pub mod response;

pub use chunked::{Chunk, ChunkedDecoder};
pub use conn::{Event, Reader};
pub use error::HttpError;
pub use head::{parse_head, BodyKind, Field, Head, Limits, Span, Version};
