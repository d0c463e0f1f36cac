//! When a worker is replaced: the one recycling policy (`--max-requests`, `--max-requests-delta`,
//! `--reload-on-rss`, `--min-worker-lifetime`, `--max-worker-lifetime`). A worker checks it after
//! each request (as uWSGI does, so a limit is never overshot by more than the requests in
//! flight) and retires itself; the master checks it on its tick from the scoreboard and replaces
//! the worker.

use crate::config::Config;
use std::fmt;
use std::time::Duration;

/// The limits, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `--max-requests`, 0 for none (`--max-requests-delta` × worker id is added).
    pub max_requests: u64,
    /// `--max-requests-delta`.
    pub max_requests_delta: u64,
    /// `--reload-on-rss` in bytes, 0 for none.
    pub max_rss: u64,
    /// `--min-worker-lifetime`: no recycling before this.
    pub min_lifetime: Duration,
    /// `--max-worker-lifetime`.
    pub max_lifetime: Option<Duration>,
}

/// What a worker looks like now.
#[derive(Debug, Clone, Copy)]
pub struct Worker {
    /// 1-based worker id.
    pub id: usize,
    /// Requests served since its spawn.
    pub served: u64,
    /// Time since its spawn.
    pub lived: Duration,
}

/// Why a worker is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--max-requests` (plus the delta) reached.
    MaxRequests {
        /// Requests served.
        served: u64,
        /// The limit for this worker.
        limit: u64,
    },
    /// `--reload-on-rss` passed.
    Rss {
        /// The resident set, bytes.
        rss: u64,
        /// The limit, bytes.
        max: u64,
    },
    /// `--max-worker-lifetime` reached.
    Lifetime,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::MaxRequests { served, limit } => {
                write!(f, "max-requests reached: {served} of {limit}")
            }
            Reason::Rss { rss, max } => {
                write!(f, "rss {}MB over reload-on-rss {}MB", rss >> 20, max >> 20)
            }
            Reason::Lifetime => f.write_str("max-worker-lifetime reached"),
        }
    }
}

impl Policy {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Policy {
        Policy {
            max_requests: config.max_requests,
            max_requests_delta: config.max_requests_delta,
            max_rss: config.reload_on_rss_mb << 20,
            min_lifetime: config.min_worker_lifetime,
            max_lifetime: config.max_worker_lifetime,
        }
    }

    /// Whether any limit is set (else [`Policy::due`] is always `None`, with no clock read).
    pub fn any(&self) -> bool {
        self.max_requests > 0 || self.max_rss > 0 || self.max_lifetime.is_some()
    }

    /// Why `worker` should be replaced now, if it should. `rss` is asked only when
    /// `--reload-on-rss` is set.
    pub fn due(&self, worker: Worker, rss: impl FnOnce() -> u64) -> Option<Reason> {
        if worker.lived < self.min_lifetime {
            return None;
        }
        let limit = self.max_requests + self.max_requests_delta * worker.id as u64;
        if self.max_requests > 0 && worker.served >= limit {
            return Some(Reason::MaxRequests {
                served: worker.served,
                limit,
            });
        }
        if self.max_rss > 0 {
            let rss = rss();
            if rss > self.max_rss {
                return Some(Reason::Rss {
                    rss,
                    max: self.max_rss,
                });
            }
        }
        if self.max_lifetime.is_some_and(|max| worker.lived >= max) {
            return Some(Reason::Lifetime);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_requests: 100,
            max_requests_delta: 10,
            max_rss: 0,
            min_lifetime: Duration::from_secs(5),
            max_lifetime: Some(Duration::from_secs(60)),
        }
    }

    fn worker(id: usize, served: u64, lived: u64) -> Worker {
        Worker {
            id,
            served,
            lived: Duration::from_secs(lived),
        }
    }

    #[test]
    fn max_requests_counts_the_delta_per_worker() {
        let p = policy();
        assert_eq!(p.due(worker(2, 119, 10), || 0), None);
        assert_eq!(
            p.due(worker(2, 120, 10), || 0),
            Some(Reason::MaxRequests {
                served: 120,
                limit: 120
            })
        );
    }

    #[test]
    fn nothing_is_due_before_the_minimum_lifetime() {
        assert_eq!(policy().due(worker(1, 1000, 4), || 0), None);
    }

    #[test]
    fn rss_is_read_only_when_limited() {
        let p = policy();
        assert_eq!(
            p.due(worker(1, 0, 10), || panic!("rss read without a limit")),
            None
        );
        let p = Policy {
            max_rss: 100 << 20,
            ..p
        };
        assert_eq!(
            p.due(worker(1, 0, 10), || 200 << 20),
            Some(Reason::Rss {
                rss: 200 << 20,
                max: 100 << 20
            })
        );
    }

    #[test]
    fn lifetime_ends_a_worker() {
        assert_eq!(policy().due(worker(1, 0, 60), || 0), Some(Reason::Lifetime));
        assert_eq!(Reason::Lifetime.to_string(), "max-worker-lifetime reached");
    }
}
