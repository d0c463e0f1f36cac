//! The open-file limit: each connection is a descriptor, so it bounds how many a worker holds.
//!
//! At start-up the soft limit goes up to the hard one (as nginx's `worker_rlimit_nofile` lets
//! operators do), or to `--max-fd` as uWSGI spells it, and the value is logged. A worker keeps at
//! most [`half_sent_budget`] connections whose request head is still arriving, so slow clients
//! can never take the descriptors complete requests need.

use crate::sys::process as sys;

/// Descriptors kept free of half-sent connections whatever the limit: the app's own files, the
/// listeners, epoll and event descriptors, requests being served and queued.
const RESERVE: u64 = 64;

/// Most half-sent connections one worker keeps, however high the limit (each holds a read buffer).
pub const MAX_HALF_SENT: usize = 4096;

/// Set the limit at start-up: `max_fd` for soft and hard when given (falling back to the soft
/// limit alone when the hard one cannot be raised), else the soft limit raised to the hard one.
/// Logs the limit in force; returns it.
pub fn apply_at_start(max_fd: Option<u64>) -> Option<u64> {
    let Ok((soft, hard)) = sys::nofile_limit() else {
        tracing::warn!("cannot read the open-file limit");
        return None;
    };
    let result = match max_fd {
        Some(n) => sys::set_nofile_limit(n, n).or_else(|e| {
            tracing::warn!("--max-fd {n}: cannot set the hard limit ({e}): setting the soft one");
            sys::set_nofile_limit(n.min(hard), hard)
        }),
        None if soft < hard => sys::set_nofile_limit(hard, hard),
        None => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!("cannot raise the open-file limit from {soft}: {e}");
    }
    let now = sys::nofile_limit().map(|(soft, _)| soft).ok();
    if let Some(n) = now {
        tracing::info!("detected max file descriptor number: {n}");
    }
    now
}

/// The soft limit in force now (another process may have changed it: `prlimit`).
pub fn soft_limit() -> Option<u64> {
    sys::nofile_limit().map(|(soft, _)| soft).ok()
}

/// How many half-sent connections a worker may keep under an open-file limit of `limit`: all but
/// a reserve of an eighth of the limit plus `RESERVE`, at least 16, at most [`MAX_HALF_SENT`].
pub fn half_sent_budget(limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return MAX_HALF_SENT;
    };
    let reserve = RESERVE + limit / 8;
    let budget = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    budget.clamp(16, MAX_HALF_SENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_a_reserve_and_stays_within_bounds() {
        assert_eq!(half_sent_budget(Some(1024)), 1024 - 64 - 128);
        assert_eq!(half_sent_budget(Some(256)), 256 - 64 - 32);
        assert_eq!(half_sent_budget(Some(40)), 16);
        assert_eq!(half_sent_budget(Some(1 << 20)), MAX_HALF_SENT);
        assert_eq!(half_sent_budget(None), MAX_HALF_SENT);
    }
}
