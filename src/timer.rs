//! Deadlines without a runtime: a binary heap of `(Instant, Deadline)`. The poll timeout is
//! the nearest deadline. Entries are never searched for and removed: each names what it
//! guards with a serial number, and a stale one (its owner gone or moved on) is skipped when
//! it fires. An owner whose deadline moves often (a keep-alive client, a pooled connection)
//! keeps an `Alarm`, so it has one entry in the heap at a time, not one per request.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a deadline guards. Serials make a fired entry for a reused slab slot harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// The next leg or connect deadline of exchange `exchange` (whose id is `id`).
    Exchange { exchange: usize, id: u64 },
    /// A client connection's head or idle deadline.
    Client { conn: usize, serial: u64 },
    /// A client connection's send deadline (it reads nothing of its response).
    ClientSend { conn: usize, serial: u64 },
    /// An idle pooled upstream connection expires.
    PooledIdle { conn: usize, serial: u64 },
    /// Retry accepting after the process ran out of file descriptors.
    Accept,
    /// Shutdown gives up waiting for in-flight exchanges.
    Drain,
}

/// The pending deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Deadline)>>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Fires `deadline` at `at` (or at the first poll after it).
    pub fn set(&mut self, at: Instant, deadline: Deadline) {
        self.heap.push(Reverse((at, deadline)));
    }

    /// How long the poll may sleep: until the nearest deadline, or forever without one.
    pub fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// Takes the next deadline that is due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, d))| d),
            _ => None,
        }
    }

    /// Sets `alarm` to `at`, pushing an entry for `deadline` unless an earlier one covers it.
    pub fn set_alarm(&mut self, alarm: &mut Alarm, at: Instant, deadline: Deadline) {
        if let Some(at) = alarm.set(at) {
            self.set(at, deadline);
        }
    }

    /// An entry for `alarm` fired: true when its deadline has passed (and it is now cleared);
    /// a deadline that moved later gets a new entry.
    pub fn fire_alarm(&mut self, alarm: &mut Alarm, now: Instant, deadline: Deadline) -> bool {
        if alarm.armed.is_some_and(|armed| armed <= now) {
            alarm.armed = None;
        }
        match alarm.due {
            Some(due) if due <= now => {
                alarm.due = None;
                true
            }
            Some(due) if alarm.armed.is_none() => {
                alarm.armed = Some(due);
                self.set(due, deadline);
                false
            }
            _ => false,
        }
    }

    /// Drops every entry `stale` rejects (its owner is gone). Entries are never removed one
    /// by one, so the reactor calls this when the heap has grown well past the number of
    /// owners: amortised, it costs O(1) per entry.
    pub fn compact(&mut self, stale: impl Fn(&Deadline) -> bool) {
        self.heap.retain(|Reverse((_, deadline))| !stale(deadline));
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// One owner's deadline, with at most one heap entry armed for it at a time: moving the
/// deadline later pushes nothing; the entry re-arms itself when it fires early.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    due: Option<Instant>,
    armed: Option<Instant>,
}

impl Alarm {
    /// Moves the deadline to `at`; returns when to push a heap entry, if one is needed.
    fn set(&mut self, at: Instant) -> Option<Instant> {
        self.due = Some(at);
        match self.armed {
            Some(armed) if armed <= at => None,
            _ => {
                self.armed = Some(at);
                Some(at)
            }
        }
    }

    /// No deadline for now (entries still in the heap will find nothing due).
    pub fn clear(&mut self) {
        self.due = None;
    }

    /// A deadline is set.
    pub fn is_set(&self) -> bool {
        self.due.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let mut timers = Timers::new();
        let now = Instant::now();
        timers.set(now + Duration::from_millis(20), Deadline::Drain);
        timers.set(now + Duration::from_millis(10), Deadline::Accept);
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.poll_timeout(now), Some(Duration::from_millis(10)));
        let later = now + Duration::from_millis(30);
        assert_eq!(timers.pop_due(later), Some(Deadline::Accept));
        assert_eq!(timers.pop_due(later), Some(Deadline::Drain));
        assert_eq!(timers.pop_due(later), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn an_alarm_moved_later_keeps_one_entry_and_rearms_when_it_fires() {
        let mut timers = Timers::new();
        let mut alarm = Alarm::default();
        let t0 = Instant::now();
        let d = Deadline::Client { conn: 1, serial: 1 };
        timers.set_alarm(&mut alarm, t0 + Duration::from_millis(10), d);
        timers.set_alarm(&mut alarm, t0 + Duration::from_millis(20), d);
        timers.set_alarm(&mut alarm, t0 + Duration::from_millis(30), d);
        assert_eq!(timers.len(), 1);
        let first = t0 + Duration::from_millis(10);
        assert_eq!(timers.pop_due(first), Some(d));
        assert!(!timers.fire_alarm(&mut alarm, first, d));
        assert_eq!(timers.poll_timeout(first), Some(Duration::from_millis(20)));
        let last = t0 + Duration::from_millis(30);
        assert_eq!(timers.pop_due(last), Some(d));
        assert!(timers.fire_alarm(&mut alarm, last, d));
        assert!(timers.is_empty());
    }

    #[test]
    fn an_alarm_moved_earlier_pushes_an_earlier_entry() {
        let mut timers = Timers::new();
        let mut alarm = Alarm::default();
        let t0 = Instant::now();
        let d = Deadline::Client { conn: 1, serial: 1 };
        timers.set_alarm(&mut alarm, t0 + Duration::from_millis(60), d);
        timers.set_alarm(&mut alarm, t0 + Duration::from_millis(10), d);
        assert_eq!(timers.poll_timeout(t0), Some(Duration::from_millis(10)));
        let at = t0 + Duration::from_millis(10);
        assert_eq!(timers.pop_due(at), Some(d));
        assert!(timers.fire_alarm(&mut alarm, at, d));
        // The stale later entry finds nothing due.
        let later = t0 + Duration::from_millis(60);
        assert_eq!(timers.pop_due(later), Some(d));
        assert!(!timers.fire_alarm(&mut alarm, later, d));
    }
}
