//! Chain reload (`c` on the master FIFO, `--touch-chain-reload`): the workers are replaced one at a
//! time, and the next only once the previous one's successor accepts, so the instance never serves
//! with fewer accepting workers than one short of its count, and (with `--lazy-apps`) every worker
//! ends up running the new code.

/// What the chain wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Replace this worker id now.
    Replace(usize),
    /// The last replaced worker's successor does not accept yet.
    Wait,
    /// Every worker has been replaced and its successor accepts.
    Done,
}

/// A chain reload in progress.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The next worker id to replace (1-based).
    next: usize,
    /// Worker ids in the instance.
    workers: usize,
    /// The id whose successor we wait for.
    waiting: Option<usize>,
}

impl Chain {
    /// A chain over worker ids `1..=workers`.
    pub fn new(workers: usize) -> Chain {
        Chain {
            next: 1,
            workers,
            waiting: None,
        }
    }

    /// Advance: `running(id)` says whether worker id has a process (cheap slots are skipped);
    /// `ready(id)` whether that process accepts.
    pub fn step(&mut self, running: impl Fn(usize) -> bool, ready: impl Fn(usize) -> bool) -> Step {
        if let Some(id) = self.waiting {
            if running(id) && !ready(id) {
                return Step::Wait;
            }
            self.waiting = None;
        }
        while self.next <= self.workers {
            let id = self.next;
            self.next += 1;
            if running(id) {
                self.waiting = Some(id);
                return Step::Replace(id);
            }
        }
        Step::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_skipping_cheap_slots() {
        let mut chain = Chain::new(3);
        let running = |id: usize| id != 2;
        assert_eq!(chain.step(running, |_| true), Step::Replace(1));
        assert_eq!(chain.step(running, |_| false), Step::Wait);
        assert_eq!(chain.step(running, |_| true), Step::Replace(3));
        assert_eq!(chain.step(running, |_| true), Step::Done);
    }
}
