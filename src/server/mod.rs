//! Connections: listeners, the acceptor each Python thread takes its next request from, the mio
//! event loop that finishes reading slow packets and sending static files to slow readers, the
//! hand-off between them, the harakiri table, and the server's side of the request seam
//! ([`crate::request::Source`]). The only module that names mio.

pub mod acceptor;
pub mod dispatch;
pub mod event_loop;
pub mod fd_limit;
pub mod http;
pub mod incoming;
pub mod listener;
mod parking;
mod seam;
pub mod statics;
pub mod transfer;

pub use acceptor::Acceptor;
pub use event_loop::{EventLoop, Release, Stop};
pub use listener::Listener;
