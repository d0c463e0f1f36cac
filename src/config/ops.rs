//! Operations flags (issue 15): the master FIFO, chain reloads, Prometheus metrics, adaptive
//! workers and attached daemons. Kept in their own struct, flattened into [`super::Args`], so the
//! main flag list and `Config::from_args` stay short.

use super::ConfigError;
use clap::Args;
use std::path::PathBuf;

/// The raw flags.
#[derive(Debug, Clone, Default, Args)]
pub struct OpsArgs {
    /// Create this FIFO and read one-letter commands from it: r reload, c chain reload, q graceful
    /// stop, Q fast stop, w/W reload the workers, R brutal reload, s stats to the log.
    #[arg(long, value_name = "PATH", help_heading = "Processes")]
    pub master_fifo: Vec<PathBuf>,

    /// Chain-reload (replace the workers one at a time) when this file's modification time changes.
    #[arg(long, value_name = "FILE", help_heading = "Processes")]
    pub touch_chain_reload: Vec<PathBuf>,

    /// Serve Prometheus metrics over HTTP on ADDR (HOST:PORT or a unix path): /metrics, and the
    /// /health and /ready probes.
    #[arg(long, value_name = "ADDR", help_heading = "Monitoring")]
    pub metrics: Option<String>,
}

/// The validated operations settings.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    /// `--master-fifo`: uWSGI reads the first one; rwsgi too.
    pub master_fifo: Option<PathBuf>,
    pub touch_chain_reload: Vec<PathBuf>,
    /// `--metrics ADDR`.
    pub metrics: Option<String>,
}

impl OpsArgs {
    /// Whether these flags need the master process.
    pub fn need_master(&self) -> bool {
        !self.master_fifo.is_empty()
            || !self.touch_chain_reload.is_empty()
            || self.metrics.is_some()
    }

    /// Validate into [`Ops`].
    pub fn validate(&self) -> Result<Ops, ConfigError> {
        Ok(Ops {
            master_fifo: self.master_fifo.first().cloned(),
            touch_chain_reload: self.touch_chain_reload.clone(),
            metrics: self.metrics.clone(),
        })
    }
}
