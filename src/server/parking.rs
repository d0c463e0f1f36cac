//! Kept-alive HTTP connections parked between requests in the epoll set the worker's Python threads
//! already wait on, so the next request wakes a thread directly.
//!
//! A connection whose response is done and whose next request has not arrived is armed in that set
//! with `EPOLLONESHOT` and a token naming its slot here. When its next request arrives, the thread
//! that waits on the set moves it to the ready queue and serves it, and a thread finishing a request
//! takes the next ready connection before it accepts: under load one `epoll_wait` reports a round of
//! requests, and each costs a `recv`, the response and one `epoll_ctl` to re-arm, on the thread that
//! serves it. Handing such a connection to the event loop instead cost two thread wake-ups and about
//! six more system calls per request.
//!
//! A parked connection has a deadline (`--http-keepalive`); [`Parking::sweep`] closes those past it.
//! Tokens carry a generation, so a report about a slot that has been swept and reused is ignored.

use slab::Slab;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The bit that marks a token as a parked connection's (listener tokens are small numbers, the
/// eventfds' are the two largest values, checked before this).
const PARKED: u64 = 1 << 62;

/// Slot numbers fit in the low 32 bits of a token; past that many parked connections a new one is
/// closed instead.
const MAX_SLOTS: usize = 1 << 32;

/// Generations wrap within the 30 bits between the slot number and [`PARKED`].
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// One parked connection and when it is closed if nothing arrives.
#[derive(Debug)]
struct Slot<T> {
    item: T,
    deadline: Instant,
    generation: u32,
}

/// The parked connections of one worker (`T` is the connection with what its next request needs).
#[derive(Debug)]
pub struct Parking<T> {
    slots: Slab<Slot<T>>,
    /// Connections whose next request has started to arrive, oldest first.
    ready: VecDeque<T>,
    generation: u32,
    /// When [`Parking::sweep`] next has work: no later than the earliest deadline.
    next_sweep: Option<Instant>,
    /// The worker is stopping: nothing more is parked.
    closed: bool,
}

impl<T> Default for Parking<T> {
    fn default() -> Self {
        Parking {
            slots: Slab::new(),
            ready: VecDeque::new(),
            generation: 0,
            next_sweep: None,
            closed: false,
        }
    }
}

impl<T> Parking<T> {
    /// Whether an epoll token names a parked connection.
    pub fn is_token(token: u64) -> bool {
        token & PARKED != 0
    }

    /// Park `item` until `deadline`: the token to arm its descriptor with, or the item back when
    /// the worker is stopping (or holds 2^32 parked connections).
    pub fn insert(&mut self, item: T, deadline: Instant) -> Result<u64, T> {
        if self.closed || self.slots.vacant_key() >= MAX_SLOTS {
            return Err(item);
        }
        self.generation = self.generation.wrapping_add(1) & GENERATION_MASK;
        let generation = self.generation;
        let key = self.slots.insert(Slot {
            item,
            deadline,
            generation,
        });
        self.next_sweep = Some(self.next_sweep.map_or(deadline, |t| t.min(deadline)));
        Ok(PARKED | (u64::from(generation) << 32) | key as u64)
    }

    /// Take back the item parked under `token` (arming it failed); `None` if it is gone.
    pub fn remove(&mut self, token: u64) -> Option<T> {
        let key = self.slot_of(token)?;
        Some(self.slots.remove(key).item)
    }

    /// The descriptor parked under `token` is readable: queue it for a thread. A token of a
    /// connection already swept (its slot maybe reused) is ignored.
    pub fn fire(&mut self, token: u64) {
        if let Some(key) = self.slot_of(token) {
            let slot = self.slots.remove(key);
            self.ready.push_back(slot.item);
        }
    }

    /// The slot `token` names, if it still holds the connection the token was made for.
    fn slot_of(&self, token: u64) -> Option<usize> {
        let key = (token & u64::from(u32::MAX)) as usize;
        let generation = ((token >> 32) as u32) & GENERATION_MASK;
        self.slots
            .get(key)
            .is_some_and(|s| s.generation == generation)
            .then_some(key)
    }

    /// The next connection whose request has started to arrive.
    pub fn next_ready(&mut self) -> Option<T> {
        self.ready.pop_front()
    }

    /// Whether a connection is ready for a thread.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether [`Parking::sweep`] has work at `now`.
    pub fn sweep_due(&self, now: Instant) -> bool {
        self.next_sweep.is_some_and(|t| now >= t)
    }

    /// Take out the connections whose deadline has passed (the caller closes them outside the
    /// lock) and note when the next one falls due.
    pub fn sweep(&mut self, now: Instant) -> Vec<T> {
        if !self.sweep_due(now) {
            return Vec::new();
        }
        let expired: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        let gone = expired
            .into_iter()
            .map(|k| self.slots.remove(k).item)
            .collect();
        self.next_sweep = self.slots.iter().map(|(_, s)| s.deadline).min();
        gone
    }

    /// How long a thread waiting for events may sleep before a sweep is due (`None`: no limit).
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.next_sweep.map(|t| t.saturating_duration_since(now))
    }

    /// The worker stops: take out every parked and ready connection (the caller closes them),
    /// and park nothing from now on.
    pub fn close(&mut self) -> Vec<T> {
        self.closed = true;
        self.next_sweep = None;
        let mut all: Vec<T> = self.slots.drain().map(|s| s.item).collect();
        all.extend(self.ready.drain(..));
        all
    }

    /// Connections parked or ready (for tests and the log).
    pub fn len(&self) -> usize {
        self.slots.len() + self.ready.len()
    }

    /// Whether nothing is parked or ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        // One base for every test instant, so they compare.
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn a_fired_token_makes_its_connection_ready_once() {
        let mut p = Parking::default();
        let a = p.insert("a", at(1000)).unwrap();
        let b = p.insert("b", at(1000)).unwrap();
        assert!(Parking::<&str>::is_token(a) && Parking::<&str>::is_token(b));
        assert!(!Parking::<&str>::is_token(3), "a listener's token");
        p.fire(b);
        p.fire(b);
        assert!(p.has_ready());
        assert_eq!(p.next_ready(), Some("b"));
        assert_eq!(p.next_ready(), None);
        p.fire(a);
        assert_eq!(p.next_ready(), Some("a"));
        assert!(p.is_empty());
    }

    #[test]
    fn a_stale_token_does_not_take_the_slots_next_tenant() {
        let mut p = Parking::default();
        let old = p.insert("old", at(10)).unwrap();
        assert_eq!(p.sweep(at(10)), vec!["old"]);
        let new = p.insert("new", at(1000)).unwrap();
        assert_eq!(
            old & u64::from(u32::MAX),
            new & u64::from(u32::MAX),
            "same slot"
        );
        p.fire(old);
        assert!(!p.has_ready());
        assert_eq!(p.remove(old), None);
        assert_eq!(p.remove(new), Some("new"));
    }

    #[test]
    fn sweep_closes_only_the_expired_and_tracks_the_next_deadline() {
        let mut p = Parking::default();
        assert_eq!(
            p.timeout(at(0)),
            None,
            "nothing parked: sleep without limit"
        );
        p.insert("late", at(300)).unwrap();
        p.insert("early", at(100)).unwrap();
        assert_eq!(p.timeout(at(0)), Some(Duration::from_millis(100)));
        assert!(!p.sweep_due(at(99)));
        assert!(p.sweep(at(99)).is_empty());
        assert_eq!(p.sweep(at(100)), vec!["early"]);
        assert_eq!(p.timeout(at(100)), Some(Duration::from_millis(200)));
        assert_eq!(p.sweep(at(400)), vec!["late"]);
        assert_eq!(p.timeout(at(400)), None);
    }

    #[test]
    fn a_ready_connection_is_not_swept() {
        let mut p = Parking::default();
        let t = p.insert("a", at(10)).unwrap();
        p.fire(t);
        assert!(p.sweep(at(20)).is_empty());
        assert_eq!(p.next_ready(), Some("a"));
    }

    #[test]
    fn closing_takes_everything_and_refuses_more() {
        let mut p = Parking::default();
        let t = p.insert("ready", at(10)).unwrap();
        p.fire(t);
        p.insert("parked", at(10)).unwrap();
        let mut all = p.close();
        all.sort();
        assert_eq!(all, vec!["parked", "ready"]);
        assert_eq!(p.insert("late", at(10)), Err("late"));
        assert!(p.is_empty());
        assert_eq!(p.timeout(at(0)), None);
    }
}
