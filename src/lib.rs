//! rwsgi: a uwsgi-protocol application server for Python WSGI apps.
//!
//! # Layers
//! `protocol` (no IO, no Python) decodes uwsgi packets and HTTP/1.x heads; `server` (the only
//! module naming mio) owns connections and turns them into [`request::Request`]s; `python` (the
//! only module naming pyo3) serves them through the [`request`] seam and nothing else; `sys` holds
//! the raw system calls. ARCHITECTURE.md has the picture and the path of one request.

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
