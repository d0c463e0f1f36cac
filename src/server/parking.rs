//! Kept-alive HTTP connections parked between requests in the epoll set the worker's Python threads
//! already wait on, so the next request wakes a thread directly.
//!
//! A connection is added to that set once, edge-triggered, with a token naming its slot here (the
//! slot is its descriptor number). While it waits for its next request it is parked in the slot;
//! when bytes arrive, the thread that waits on the set moves it to the ready queue, and a thread
//! finishing a request takes the next ready connection before it accepts. Under load one
//! `epoll_wait` reports a round of requests, and each costs a `recv` and the response, with no
//! `epoll_ctl`: handing such a connection to the event loop instead cost two thread wake-ups and
//! about six more system calls per request, and re-arming a one-shot entry one more.
//!
//! Edge-triggered readiness reports new bytes once. So a report that comes while the connection is
//! busy (served by a thread, or with the event loop) is kept as `pending`, and the thread that
//! parks it reads at once instead; and a connection whose last read filled its buffer is read
//! before it is parked ([`crate::request::Conn::maybe_more`]).
//!
//! A parked connection has a deadline (`--http-keepalive`); [`Parking::sweep`] closes those past
//! it. Tokens carry a generation, so a report about a descriptor that has since been closed and
//! reused by another connection is ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The bit that marks a token as a parked connection's (listener tokens are small numbers, the
/// eventfds' are the two largest values, checked before this).
const PARKED: u64 = 1 << 62;

/// Generations wrap within the 30 bits between the descriptor number and [`PARKED`].
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// Where a watched connection is.
#[derive(Debug)]
enum State<T> {
    /// Not watched (never was, or closed).
    Free,
    /// With a thread or the event loop; `pending` once bytes arrived meanwhile.
    Busy { pending: bool },
    /// Waiting for its next request until `deadline`.
    Parked { item: T, deadline: Instant },
}

/// One descriptor's slot.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    state: State<T>,
}

/// What [`Parking::park`] did with a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parked<T> {
    /// It waits for its next request.
    Waiting,
    /// Bytes arrived while it was busy: read it now.
    ReadNow(T),
    /// The worker is stopping: close it.
    Refused(T),
}

/// The parked connections of one worker, by descriptor (`T` is the connection with what its next
/// request needs).
#[derive(Debug)]
pub struct Parking<T> {
    slots: Vec<Slot<T>>,
    /// Connections whose next request has started to arrive, oldest first.
    ready: VecDeque<T>,
    /// Slots in the `Parked` state.
    parked: usize,
    generation: u32,
    /// When [`Parking::sweep`] next has work: no later than the earliest deadline.
    next_sweep: Option<Instant>,
    /// The worker is stopping: nothing more is parked.
    closed: bool,
}

impl<T> Default for Parking<T> {
    fn default() -> Self {
        Parking {
            slots: Vec::new(),
            ready: VecDeque::new(),
            parked: 0,
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

    /// A connection on descriptor `fd` is about to be watched: the token to add it with. Whatever
    /// the slot held belonged to a connection since closed.
    pub fn register(&mut self, fd: usize) -> u64 {
        if self.slots.len() <= fd {
            self.slots.resize_with(fd + 1, || Slot {
                generation: 0,
                state: State::Free,
            });
        }
        self.generation = self.generation.wrapping_add(1) & GENERATION_MASK;
        let slot = &mut self.slots[fd];
        if matches!(slot.state, State::Parked { .. }) {
            self.parked -= 1;
        }
        *slot = Slot {
            generation: self.generation,
            state: State::Busy { pending: false },
        };
        PARKED | (u64::from(self.generation) << 32) | fd as u64
    }

    /// Park the watched connection on `fd` until `deadline`, unless bytes arrived while it was
    /// busy or the worker is stopping.
    pub fn park(&mut self, fd: usize, item: T, deadline: Instant) -> Parked<T> {
        let Some(slot) = self.slots.get_mut(fd).filter(|_| !self.closed) else {
            return Parked::Refused(item);
        };
        if let State::Busy { pending: true } = slot.state {
            slot.state = State::Busy { pending: false };
            return Parked::ReadNow(item);
        }
        slot.state = State::Parked { item, deadline };
        self.parked += 1;
        self.next_sweep = Some(self.next_sweep.map_or(deadline, |t| t.min(deadline)));
        Parked::Waiting
    }

    /// Bytes arrived on the descriptor `token` names: a parked connection goes to the ready
    /// queue, a busy one is marked. A token from before its descriptor was reused is ignored.
    pub fn fire(&mut self, token: u64) {
        let fd = (token & u64::from(u32::MAX)) as usize;
        let generation = ((token >> 32) as u32) & GENERATION_MASK;
        let Some(slot) = self.slots.get_mut(fd) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        match std::mem::replace(&mut slot.state, State::Busy { pending: false }) {
            State::Parked { item, .. } => {
                self.parked -= 1;
                self.ready.push_back(item);
            }
            State::Busy { .. } => slot.state = State::Busy { pending: true },
            State::Free => slot.state = State::Free,
        }
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
        let mut gone = Vec::new();
        let mut next: Option<Instant> = None;
        for slot in &mut self.slots {
            match &slot.state {
                State::Parked { deadline, .. } if *deadline <= now => {
                    if let State::Parked { item, .. } =
                        std::mem::replace(&mut slot.state, State::Free)
                    {
                        gone.push(item);
                    }
                }
                State::Parked { deadline, .. } => {
                    next = Some(next.map_or(*deadline, |t| t.min(*deadline)));
                }
                _ => {}
            }
        }
        self.parked -= gone.len();
        self.next_sweep = next;
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
        self.parked = 0;
        let mut all: Vec<T> = Vec::new();
        for slot in &mut self.slots {
            if let State::Parked { item, .. } = std::mem::replace(&mut slot.state, State::Free) {
                all.push(item);
            }
        }
        all.extend(self.ready.drain(..));
        all
    }

    /// Whether nothing is parked or ready.
    pub fn is_empty(&self) -> bool {
        self.parked == 0 && self.ready.is_empty()
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
    fn bytes_on_a_parked_connection_make_it_ready_once() {
        let mut p = Parking::default();
        let a = p.register(7);
        let b = p.register(9);
        assert!(Parking::<&str>::is_token(a) && Parking::<&str>::is_token(b));
        assert!(!Parking::<&str>::is_token(3), "a listener's token");
        assert_eq!(p.park(7, "a", at(1000)), Parked::Waiting);
        assert_eq!(p.park(9, "b", at(1000)), Parked::Waiting);
        p.fire(b);
        p.fire(b);
        assert_eq!(p.next_ready(), Some("b"));
        assert_eq!(p.next_ready(), None);
        p.fire(a);
        assert_eq!(p.next_ready(), Some("a"));
        assert!(p.is_empty());
    }

    #[test]
    fn bytes_while_busy_are_not_lost() {
        let mut p = Parking::default();
        let t = p.register(5);
        p.fire(t);
        assert!(!p.has_ready(), "busy: not queued");
        assert_eq!(p.park(5, "c", at(1000)), Parked::ReadNow("c"));
        assert_eq!(
            p.park(5, "c", at(1000)),
            Parked::Waiting,
            "once read, it waits"
        );
        p.fire(t);
        assert_eq!(p.next_ready(), Some("c"));
        // Served again, and bytes come while it is busy a second time.
        p.fire(t);
        assert_eq!(p.park(5, "c", at(1000)), Parked::ReadNow("c"));
    }

    #[test]
    fn a_token_from_before_the_descriptor_was_reused_is_ignored() {
        let mut p = Parking::default();
        let old = p.register(4);
        assert_eq!(p.park(4, "old", at(10)), Parked::Waiting);
        assert_eq!(p.sweep(at(10)), vec!["old"]);
        let new = p.register(4);
        assert_ne!(old, new);
        assert_eq!(p.park(4, "new", at(1000)), Parked::Waiting);
        p.fire(old);
        assert!(!p.has_ready());
        p.fire(new);
        assert_eq!(p.next_ready(), Some("new"));
    }

    #[test]
    fn sweep_closes_only_the_expired_and_tracks_the_next_deadline() {
        let mut p = Parking::default();
        assert_eq!(
            p.timeout(at(0)),
            None,
            "nothing parked: sleep without limit"
        );
        p.register(1);
        p.register(2);
        p.park(1, "late", at(300));
        p.park(2, "early", at(100));
        assert_eq!(p.timeout(at(0)), Some(Duration::from_millis(100)));
        assert!(p.sweep(at(99)).is_empty());
        assert_eq!(p.sweep(at(100)), vec!["early"]);
        assert_eq!(p.timeout(at(100)), Some(Duration::from_millis(200)));
        assert_eq!(p.sweep(at(400)), vec!["late"]);
        assert_eq!(p.timeout(at(400)), None);
        assert!(p.is_empty());
    }

    #[test]
    fn a_ready_connection_is_not_swept() {
        let mut p = Parking::default();
        let t = p.register(3);
        p.park(3, "a", at(10));
        p.fire(t);
        assert!(p.sweep(at(20)).is_empty());
        assert_eq!(p.next_ready(), Some("a"));
        assert!(p.is_empty());
    }

    #[test]
    fn closing_takes_everything_and_refuses_more() {
        let mut p = Parking::default();
        let t = p.register(1);
        p.park(1, "ready", at(10));
        p.fire(t);
        p.register(2);
        p.park(2, "parked", at(10));
        let mut all = p.close();
        all.sort();
        assert_eq!(all, vec!["parked", "ready"]);
        p.register(3);
        assert_eq!(p.park(3, "late", at(10)), Parked::Refused("late"));
        assert!(p.is_empty());
        assert_eq!(p.timeout(at(0)), None);
    }
}
