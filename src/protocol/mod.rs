//! The uwsgi wire protocol, with neither sockets nor Python: bytes in, typed values or a
//! [`DecodeError`] out, and the encoder for the raw HTTP response head that goes back.
//!
//! This is the layer the property tests and fuzzers drive.

pub mod decoder;
pub mod encode;
pub mod error;
pub mod header;
pub mod http;
pub mod request;
pub mod response;
pub mod vars;

pub use decoder::{decode, Limits, Packet, Progress, Recv, RequestReader, PONG};
pub use error::{DecodeError, Reply};
pub use request::RequestHead;
