//! Networking: listeners, the acceptor each Python thread takes its next request from, the mio event
//! loop that finishes reading slow packets, and the connection type. The only module that names mio.

pub mod acceptor;
pub mod conn;
pub mod dispatch;
pub mod event_loop;
pub mod fd_limit;
pub mod http;
pub mod incoming;
pub mod listener;
pub mod statics;

pub use acceptor::Acceptor;
pub use conn::Conn;
pub use event_loop::{EventLoop, Release, Stop};
pub use listener::Listener;
