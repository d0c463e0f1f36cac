//! uWSGI options accepted silently because rwsgi already behaves as they ask, or they have no
//! meaning here (listed in the README). Without them, each would print a warning on every start.

use clap::Args;

/// The accepted no-op flags.
#[derive(Debug, Clone, Args)]
pub struct CompatArgs {
    /// Accepted for uWSGI configs: Python is built in (python, python3, python311, ...); any other
    /// plugin named is warned about (comma-separated list, repeatable).
    #[arg(long, visible_aliases = ["plugins", "need-plugin", "need-plugins"], value_name = "NAMES",
          help_heading = "Compatibility")]
    pub plugin: Vec<String>,

    /// Accepted for uWSGI configs: rwsgi sends with MSG_NOSIGNAL, so no SIGPIPE ever arrives.
    #[arg(long, help_heading = "Compatibility")]
    pub ignore_sigpipe: bool,

    /// Accepted for uWSGI configs: a client that goes away mid-response is counted in the stats
    /// and in %(werr), never logged as a server error.
    #[arg(long, help_heading = "Compatibility")]
    pub ignore_write_errors: bool,

    /// Accepted for uWSGI configs: a response body whose client went away is dropped without
    /// raising in the app (the legacy write() callable still raises OSError).
    #[arg(long, help_heading = "Compatibility")]
    pub disable_write_exception: bool,

    /// Accepted for uWSGI configs: CPython's after-fork hooks always run in a new worker.
    #[arg(long, help_heading = "Compatibility")]
    pub py_call_osafterfork: bool,
}
