//! One upstream connection, and the per-target pool of idle ones. Upstream connections are
//! kept alive and reused; a pooled connection the upstream closed while idle is noticed by
//! its readiness event and dropped before anyone takes it.

use std::net::SocketAddr;
use std::time::Instant;

use crate::buffer::Buffer;
use crate::targets::Role;
use crate::timer::Alarm;
use crate::transport::Transport;

/// What an upstream connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// Connecting or carrying one leg of exchange `exchange` (slab key) for `role`.
    Busy { exchange: usize, role: Role },
    /// In the pool, waiting for the next exchange.
    Idle { since: Instant },
    /// Marked for closing at the end of this loop iteration; ignore its events.
    Closed,
}

/// A TCP connection to one target.
#[derive(Debug)]
pub struct Upstream {
    /// Unique over the process lifetime (slab keys are reused).
    pub serial: u64,
    pub stream: Transport,
    /// The target address it is connected to (its pool key).
    pub addr: SocketAddr,
    /// Readiness seen and not yet used up (edge-triggered: cleared on `WouldBlock`).
    pub readable: bool,
    pub writable: bool,
    /// An event reported the peer's close (or an error): read until EOF.
    pub hup: bool,
    /// The TCP handshake completed.
    pub connected: bool,
    /// Responses already completed on this connection (> 0: it came from the pool).
    pub served: u32,
    /// Response bytes read and not yet framed.
    pub input: Buffer,
    pub state: UpstreamState,
    /// Expiry while pooled.
    pub alarm: Alarm,
}

impl Upstream {
    /// A connection just started for `exchange`'s `role` leg.
    pub fn connecting(
        serial: u64,
        stream: Transport,
        addr: SocketAddr,
        exchange: usize,
        role: Role,
    ) -> Upstream {
        Upstream {
            serial,
            stream,
            addr,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            served: 0,
            input: Buffer::new(),
            state: UpstreamState::Busy { exchange, role },
            alarm: Alarm::default(),
        }
    }

    /// It came from the pool, so the upstream may have closed it meanwhile.
    pub fn is_reused(&self) -> bool {
        self.served > 0
    }
}

/// Idle connections per target address, most recently used last (reused first: warm).
///
/// A list, not a hash map: there are three targets (a few more for a moment after a reload),
/// and comparing a few addresses costs less than hashing one on every request.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Vec<(SocketAddr, Vec<usize>)>,
}

impl Pool {
    /// Most idle connections kept per target; more are closed.
    pub const MAX_IDLE_PER_TARGET: usize = 256;

    pub fn new() -> Pool {
        Pool::default()
    }

    /// Takes an idle connection to `addr`, if there is one.
    pub fn take(&mut self, addr: SocketAddr) -> Option<usize> {
        self.list(addr).and_then(Vec::pop)
    }

    /// Parks connection `key`; false when the pool for `addr` is full (close it instead).
    pub fn put(&mut self, addr: SocketAddr, key: usize) -> bool {
        let at = match self.idle.iter().position(|(a, _)| *a == addr) {
            Some(at) => at,
            None => {
                self.idle.push((addr, Vec::new()));
                self.idle.len() - 1
            }
        };
        let list = &mut self.idle[at].1;
        if list.len() >= Self::MAX_IDLE_PER_TARGET {
            return false;
        }
        list.push(key);
        true
    }

    /// Forgets connection `key` (it is being closed).
    pub fn remove(&mut self, addr: SocketAddr, key: usize) {
        if let Some(list) = self.list(addr) {
            list.retain(|&k| k != key);
        }
    }

    fn list(&mut self, addr: SocketAddr) -> Option<&mut Vec<usize>> {
        self.idle
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, list)| list)
    }

    /// Takes every idle connection to an address `keep` rejects (targets dropped by a reload).
    pub fn drain_unless(&mut self, keep: impl Fn(SocketAddr) -> bool) -> Vec<usize> {
        let mut dropped = Vec::new();
        self.idle.retain_mut(|(addr, list)| {
            if keep(*addr) {
                true
            } else {
                dropped.append(list);
                false
            }
        });
        dropped
    }

    /// Every idle connection (shutdown).
    pub fn drain_all(&mut self) -> Vec<usize> {
        self.drain_unless(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_lifo_per_target_and_drops_removed_targets() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut pool = Pool::new();
        assert!(pool.put(a, 1));
        assert!(pool.put(a, 2));
        assert!(pool.put(b, 3));
        assert_eq!(pool.take(a), Some(2));
        pool.remove(a, 1);
        assert_eq!(pool.take(a), None);
        assert_eq!(pool.drain_unless(|addr| addr == a), vec![3]);
        assert_eq!(pool.take(b), None);
    }
}
