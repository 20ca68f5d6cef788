//! Deadlines without a runtime: a binary heap of `(Instant, Deadline)`. The poll timeout is
//! the nearest deadline. Entries are never searched for and removed: each names what it
//! guards with a serial number, and a stale one (its owner gone or moved on) is skipped when
//! it fires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::targets::Role;

/// What a deadline guards. Serials make a fired entry for a reused slab slot harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// A leg's whole exchange (`--timeout`).
    Leg {
        exchange: usize,
        id: u64,
        role: Role,
    },
    /// A leg's TCP connect (`--connect-timeout`).
    Connect {
        exchange: usize,
        id: u64,
        role: Role,
    },
    /// A client connection's head or idle deadline; `epoch` names the phase it was set in.
    Client {
        conn: usize,
        serial: u64,
        epoch: u64,
    },
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

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
