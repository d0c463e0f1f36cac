//! The stats as log lines (master FIFO `s`), in the spirit of uWSGI's `*** uWSGI stats ***` dump:
//! one line per worker, readable in `journalctl` without a stats client.

use super::Snapshot;
use std::sync::atomic::Ordering::Relaxed;

/// The lines to log, a header first.
pub fn summary(s: &Snapshot<'_>) -> Vec<String> {
    let board = s.board;
    let queue = s.sockets.iter().map(|sock| sock.queue).max().unwrap_or(0);
    let mut lines = vec![format!(
        "*** rwsgi stats *** master pid {} | total requests {} | listen queue {}",
        s.master_pid,
        board.totals().requests.load(Relaxed),
        queue
    )];
    lines.push("worker\tpid\trequests\texceptions\tstatus\tavg_rt(us)\ttx\trespawns".into());
    for id in 1..=board.workers() {
        let w = board.worker(id);
        let pid = w.pid.load(Relaxed);
        let busy = (0..board.threads()).any(|c| board.core(id, c).request_start.load(Relaxed) != 0);
        let status = match (pid, busy) {
            (0, _) => "cheap",
            (_, true) => "busy",
            _ => "idle",
        };
        let requests = w.requests.load(Relaxed);
        let avg = w
            .running_time
            .load(Relaxed)
            .checked_div(requests)
            .unwrap_or(0);
        lines.push(format!(
            "{id}\t{pid}\t{requests}\t{}\t{status}\t{avg}\t{}\t{}",
            w.exceptions.load(Relaxed),
            w.tx.load(Relaxed),
            w.respawn_count.load(Relaxed)
        ));
    }
    lines.push("*** end of rwsgi stats ***".into());
    lines
}
