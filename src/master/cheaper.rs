//! Adaptive workers, uWSGI's "cheaper" subsystem: `--workers` is the most, `--cheaper` the fewest,
//! `--cheaper-initial` how many start, `--cheaper-step` how many are added at once. Once a second
//! the chosen algorithm looks at the workers and says whether to add some or retire one:
//!
//! - `spare` (uWSGI's default): every running worker busy for `--cheaper-overload` seconds in a row
//!   adds a step; none busy for as long retires one.
//! - `backlog`: more than `--cheaper-overload` connections waiting in the accept queue adds a step;
//!   an empty queue for `--cheaper-overload` seconds... and no busy worker... retires one.
//! - `busyness`: the share of busy Python threads, averaged over `--cheaper-overload` seconds, above
//!   `--cheaper-busyness-max` (%) adds a step; below `--cheaper-busyness-min` for
//!   `--cheaper-busyness-multiplier` such periods retires one.
//!
//! A retired worker stops like a recycled one: it stops accepting, finishes its requests and exits,
//! so the change fails no request.

use crate::config::ops::{CheaperAlgo, CheaperSpec};

/// One second's view of the workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Workers running (not cheap).
    pub running: usize,
    /// Running workers with at least one request in progress.
    pub busy_workers: usize,
    /// Python threads in a request, and threads in all, across the running workers.
    pub busy_threads: usize,
    pub threads: usize,
    /// Connections waiting in the fullest accept queue.
    pub backlog: u32,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Hold,
    /// Start this many more workers (at most the free slots).
    Spawn(usize),
    /// Retire one worker.
    Cheap,
}

/// The algorithm's state.
pub struct Cheaper {
    spec: CheaperSpec,
    overloaded: u64,
    idle: u64,
    /// Busyness: the percentages of the current period, and periods below the minimum.
    period: Vec<u64>,
    low_periods: u64,
}

impl Cheaper {
    pub fn new(spec: CheaperSpec) -> Cheaper {
        Cheaper {
            spec,
            overloaded: 0,
            idle: 0,
            period: Vec::new(),
            low_periods: 0,
        }
    }

    /// The fewest workers.
    pub fn min(&self) -> usize {
        self.spec.min
    }

    /// Workers to start with.
    pub fn initial(&self) -> usize {
        self.spec.initial
    }

    /// Called once a second.
    pub fn decide(&mut self, s: Sample) -> Decision {
        let overload = self.spec.overload.max(1);
        let (grow, shrink) = match self.spec.algo {
            CheaperAlgo::Spare => (
                s.running > 0 && s.busy_workers >= s.running,
                s.busy_workers == 0,
            ),
            CheaperAlgo::Backlog => (
                u64::from(s.backlog) > overload,
                s.backlog == 0 && s.busy_workers < s.running,
            ),
            CheaperAlgo::Busyness => return self.busyness(s),
        };
        self.overloaded = if grow { self.overloaded + 1 } else { 0 };
        self.idle = if shrink { self.idle + 1 } else { 0 };
        let needed = match self.spec.algo {
            // The backlog is its own evidence: act at once.
            CheaperAlgo::Backlog => 1,
            _ => overload,
        };
        if self.overloaded >= needed {
            self.overloaded = 0;
            return Decision::Spawn(self.spec.step.max(1));
        }
        if self.idle >= overload && s.running > self.spec.min {
            self.idle = 0;
            return Decision::Cheap;
        }
        Decision::Hold
    }

    fn busyness(&mut self, s: Sample) -> Decision {
        let pct = (s.busy_threads * 100).checked_div(s.threads).unwrap_or(0) as u64;
        self.period.push(pct);
        if (self.period.len() as u64) < self.spec.overload.max(1) {
            return Decision::Hold;
        }
        let avg = self.period.iter().sum::<u64>() / self.period.len() as u64;
        self.period.clear();
        if avg > self.spec.busyness_max {
            self.low_periods = 0;
            return Decision::Spawn(self.spec.step.max(1));
        }
        if avg < self.spec.busyness_min {
            self.low_periods += 1;
            if self.low_periods >= self.spec.busyness_multiplier.max(1) && s.running > self.spec.min
            {
                self.low_periods = 0;
                return Decision::Cheap;
            }
        } else {
            self.low_periods = 0;
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(algo: CheaperAlgo) -> CheaperSpec {
        CheaperSpec {
            algo,
            min: 1,
            initial: 1,
            step: 2,
            overload: 2,
            busyness_max: 50,
            busyness_min: 25,
            busyness_multiplier: 2,
        }
    }

    fn sample(running: usize, busy: usize, backlog: u32) -> Sample {
        Sample {
            running,
            busy_workers: busy,
            busy_threads: busy,
            threads: running,
            backlog,
        }
    }

    #[test]
    fn spare_grows_when_all_are_busy_for_the_overload_and_shrinks_when_idle() {
        let mut c = Cheaper::new(spec(CheaperAlgo::Spare));
        assert_eq!(c.decide(sample(1, 1, 0)), Decision::Hold);
        assert_eq!(c.decide(sample(1, 1, 0)), Decision::Spawn(2));
        assert_eq!(c.decide(sample(3, 2, 0)), Decision::Hold);
        assert_eq!(c.decide(sample(3, 0, 0)), Decision::Hold);
        assert_eq!(c.decide(sample(3, 0, 0)), Decision::Cheap);
        assert_eq!(c.decide(sample(1, 0, 0)), Decision::Hold);
        assert_eq!(
            c.decide(sample(1, 0, 0)),
            Decision::Hold,
            "never below --cheaper"
        );
    }

    #[test]
    fn backlog_grows_on_a_queue_over_the_overload() {
        let mut c = Cheaper::new(spec(CheaperAlgo::Backlog));
        assert_eq!(c.decide(sample(1, 1, 2)), Decision::Hold);
        assert_eq!(c.decide(sample(1, 1, 3)), Decision::Spawn(2));
    }

    #[test]
    fn busyness_averages_over_the_overload() {
        let mut c = Cheaper::new(spec(CheaperAlgo::Busyness));
        assert_eq!(c.decide(sample(2, 2, 0)), Decision::Hold);
        assert_eq!(c.decide(sample(2, 1, 0)), Decision::Spawn(2), "75% > 50%");
        for _ in 0..3 {
            assert_eq!(c.decide(sample(4, 0, 0)), Decision::Hold);
        }
        assert_eq!(c.decide(sample(4, 0, 0)), Decision::Cheap);
    }
}
