//! Flags that keep slow or idle clients from using up a worker (issue 16): the deadline for a
//! whole request head, and the open-file limit. Flattened into [`super::Args`], so the main flag
//! list and `Config::from_args` grow by a line each.

use clap::Args;

/// `--headers-timeout` when not given: far beyond anything nginx takes (it sends the whole head
/// right after connecting), short enough that a client dripping a byte a second is cut.
pub const DEFAULT_HEADERS_TIMEOUT_SECS: u64 = 30;

/// The raw flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnLimitArgs {
    /// Seconds a connection on a --socket has to send its whole request head (the uwsgi vars
    /// block), from accept, however it trickles in: unlike --socket-timeout it does not move with
    /// each byte. A client past it is cut and logged. nginx sends the head at once.
    #[arg(long, default_value_t = DEFAULT_HEADERS_TIMEOUT_SECS, value_name = "SECS",
          help_heading = "Sockets")]
    pub headers_timeout: u64,

    /// Set the open-file limit (RLIMIT_NOFILE, soft and hard) to N; raising the hard limit needs
    /// root. Without it the soft limit is raised to the hard one. Logged at start-up either way.
    #[arg(long, value_name = "N", help_heading = "Processes")]
    pub max_fd: Option<u64>,
}
