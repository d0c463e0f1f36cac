//! The master process: binds, imports the app (unless `--lazy-apps`), forks the workers while still
//! single-threaded, and supervises them: respawn with backoff, recycling (`--max-requests`,
//! `--reload-on-rss`, `--max-worker-lifetime`), graceful and fast shutdown, graceful reload (SIGHUP,
//! `--touch-reload`) that keeps the listening sockets, and the stats server.
//!
//! A worker that is recycled, or that stopped accepting by itself (harakiri), is replaced at once and
//! finishes its in-flight requests beside its successor, so recycling never fails a request.

mod chain;
mod cheaper;
mod daemons;
mod fifo;
mod notify;
pub mod signals;
pub mod sockets;
mod supervisor;

pub use supervisor::run;

/// Environment variable that carries inherited listening descriptors across a reload by re-exec.
pub const LISTEN_FDS_ENV: &str = "RWSGI_LISTEN_FDS";

/// Exit code of a worker whose app failed to import (uWSGI uses the same value).
pub const FAILED_APP_CODE: i32 = 22;
