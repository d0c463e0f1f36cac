//! rwsgi: a uwsgi-protocol application server for Python WSGI apps.
//!
//! # Layers
//! `config` turns uWSGI-spelled flags into a [`config::Config`]; `server` (the only module naming
//! mio) accepts connections and reads request heads; `protocol` (no IO, no Python) decodes them;
//! `dispatch` hands each complete request to a Python thread; `python` (the only module naming
//! pyo3) builds the environ, calls the app and writes the response.
//!
//! # The path of one request
//! 1. A Python thread that is free waits in its own epoll set on the listeners (`EPOLLEXCLUSIVE`:
//!    one waiter is woken per connection) and accepts one connection; a busy thread accepts nothing,
//!    so the kernel backlog is the queue and busy workers leave connections to free ones.
//! 2. It reads the connection at once: nginx writes the whole packet right after connecting.
//!    [`protocol::RequestReader`] answers "need more", a head, or an error; `--buffer-size` is
//!    checked from the 4-byte header before the vars block is awaited.
//! 3. A packet still incomplete after a short wait goes to the worker's event loop, which finishes
//!    reading it without holding a thread and queues it as a [`server::dispatch::Job`] for the next free
//!    thread. Most requests never cross threads.
//! 4. The thread, attached to the interpreter for its whole life (it detaches only to wait, accept
//!    and read), builds the environ from a template, calls the app, and writes the response.
//! 5. It drains any body the app left unread, closes, and writes the log line.

pub mod config;
pub mod log;
pub mod master;
pub mod privileges;
pub mod protocol;
pub mod python;
pub mod recycle;
pub mod request;
pub mod scoreboard;
pub mod server;
pub mod start;
pub mod statics;
pub mod stats;
pub mod sys;
pub mod usignal;
pub mod worker;

// The pip-installed entry (`maturin build`): the extension module `rwsgi._rwsgi` runs the same
// start-up as `src/main.rs` inside the interpreter that imports it.
#[cfg(feature = "extension")]
extension_module!(crate::start::main);
