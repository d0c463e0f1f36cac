//! rwsgi: a uwsgi-protocol application server for Python WSGI apps.
//!
//! # Layers
//! `config` turns uWSGI-spelled flags into a [`config::Config`]; `server` (the only module naming
//! mio) accepts connections and reads request heads; `protocol` (no IO, no Python) decodes them;
//! `dispatch` hands each complete request to a Python thread; `python` (the only module naming
//! pyo3) builds the environ, calls the app and writes the response.
//!
//! # The path of one request
//! 1. The event loop accepts until `WouldBlock` and reads each new connection at once: nginx writes
//!    the whole packet right after connecting, so most requests never touch epoll registration.
//! 2. [`protocol::RequestReader`] answers "need more", a head, or an error; `--buffer-size` is checked
//!    from the 4-byte header before the vars block is awaited.
//! 3. A complete head (and the first 64 KiB of body) becomes a [`dispatch::Job`] that owns the
//!    socket; the loop forgets the connection.
//! 4. A Python thread, attached to the interpreter for its whole life, builds the environ from a
//!    template, calls the app, and writes the response itself with the GIL released: one hand-off
//!    per request.
//! 5. It drains any body the app left unread, closes, and writes the log line.

pub mod config;
pub mod dispatch;
pub mod log;
pub mod master;
pub mod protocol;
pub mod python;
pub mod scoreboard;
pub mod server;
pub mod sigmask;
pub mod stats;
pub mod worker;
