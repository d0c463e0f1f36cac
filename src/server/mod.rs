//! Networking: listeners, the mio event loop that reads request heads, and the connection type the
//! Python threads write responses to. The only module that names mio.

pub mod conn;
pub mod event_loop;
pub mod listener;

pub use conn::Conn;
pub use event_loop::{EventLoop, Stop};
pub use listener::Listener;
