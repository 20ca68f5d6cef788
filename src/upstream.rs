//! One upstream connection, and the per-target pool of idle ones. Upstream connections are
//! kept alive and reused; a pooled connection the upstream closed while idle is noticed by
//! its readiness event and dropped before anyone takes it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::buffer::Buffer;
use crate::targets::{Role, Target};
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
    /// The target it was opened for, as far as reuse goes.
    pub key: PoolKey,
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
    /// Bytes of `input` already looked through for the end of a response head: a head
    /// trickled in short lines is scanned once, not again from its start at every read.
    pub head_scanned: usize,
    pub state: UpstreamState,
    /// How long the upstream said it keeps the connection idle, on its last response
    /// (`Keep-Alive: timeout=N`).
    pub idle_timeout: Option<Duration>,
    /// When the current answer's head came (the start of the loop turn that read it): the
    /// upstream had not finished writing it much before then (by the network's latency,
    /// which the pool's margin covers).
    pub answer_at: Instant,
    /// trident stopped reading the current answer for a while (its client's output was
    /// full): its end may have waited in the socket buffers, with the upstream's idle clock
    /// running, since any time after `answer_at`.
    pub held_back: bool,
    /// Expiry while pooled.
    pub alarm: Alarm,
}

impl Upstream {
    /// A connection just started for `exchange`'s `role` leg.
    pub fn connecting(
        serial: u64,
        stream: Transport,
        key: PoolKey,
        exchange: usize,
        role: Role,
    ) -> Upstream {
        Upstream {
            serial,
            stream,
            key,
            readable: false,
            writable: false,
            hup: false,
            connected: false,
            served: 0,
            input: Buffer::new(),
            head_scanned: 0,
            state: UpstreamState::Busy { exchange, role },
            idle_timeout: None,
            answer_at: Instant::now(),
            held_back: false,
            alarm: Alarm::default(),
        }
    }

    /// It came from the pool, so the upstream may have closed it meanwhile.
    pub fn is_reused(&self) -> bool {
        self.served > 0
    }
}

/// How long a connection may wait in the pool: `most`, or less when the upstream `announced`
/// a shorter idle timeout. Then it leaves the pool well before the upstream closes it (a
/// second early, or half the time for a timeout of 2 s or less), so that a request sent on it
/// is not crossed by the close (Node.js closes after 5 s; a POST caught by the close cannot
/// be sent again). None: it is not to be pooled (`timeout=0`).
pub fn pool_time(announced: Option<Duration>, most: Duration) -> Option<Duration> {
    let Some(announced) = announced else {
        return Some(most);
    };
    let margin = (announced / 2).min(Duration::from_secs(1));
    Some(most.min(announced - margin)).filter(|time| !time.is_zero())
}

/// What a connection must have been opened for to carry a target's request: one of its
/// addresses, and for an https target the TLS server name and whether the certificate was
/// verified. A session is bound to the name it was opened for, so two https targets on one
/// address (an ingress routing by SNI, or a leg with `tls_verify=off` beside one with it on)
/// never take each other's connections; plain targets on one address share theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub addr: SocketAddr,
    /// `(server name, verified)` for TLS.
    pub tls: Option<(String, bool)>,
}

impl PoolKey {
    /// The key of connections opened for `target` to `addr` (one of its addresses).
    pub fn of(target: &Target, addr: SocketAddr) -> PoolKey {
        PoolKey {
            addr,
            tls: target
                .tls
                .then(|| (target.host.clone(), target.verifies_tls())),
        }
    }

    /// A connection with this key may carry `target`'s requests (compared in place: no key
    /// is built per request).
    pub fn fits(&self, target: &Target) -> bool {
        target.has_address(self.addr)
            && match &self.tls {
                None => !target.tls,
                Some((name, verified)) => {
                    target.tls && *name == target.host && *verified == target.verifies_tls()
                }
            }
    }
}

/// Idle connections per pool key, most recently used last (reused first: warm).
///
/// A list, not a hash map: there are three targets (a few more for a moment after a reload),
/// and comparing a few keys costs less than hashing one on every request.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Vec<(PoolKey, Vec<usize>)>,
}

impl Pool {
    /// Most idle connections kept per target; more are closed.
    pub const MAX_IDLE_PER_TARGET: usize = 256;

    pub fn new() -> Pool {
        Pool::default()
    }

    /// Takes an idle connection that fits `target`, if there is one.
    pub fn take(&mut self, target: &Target) -> Option<usize> {
        // A host name with several addresses has a list per address it connected to.
        self.idle
            .iter_mut()
            .filter(|(key, _)| key.fits(target))
            .find_map(|(_, list)| list.pop())
    }

    /// Parks connection `conn`, opened for `key`; false when that pool is full (close it
    /// instead).
    pub fn put(&mut self, key: &PoolKey, conn: usize) -> bool {
        let at = match self.idle.iter().position(|(k, _)| k == key) {
            Some(at) => at,
            None => {
                self.idle.push((key.clone(), Vec::new()));
                self.idle.len() - 1
            }
        };
        let list = &mut self.idle[at].1;
        if list.len() >= Self::MAX_IDLE_PER_TARGET {
            return false;
        }
        list.push(conn);
        true
    }

    /// Forgets connection `conn`, opened for `key` (it is being closed).
    pub fn remove(&mut self, key: &PoolKey, conn: usize) {
        if let Some((_, list)) = self.idle.iter_mut().find(|(k, _)| k == key) {
            list.retain(|&c| c != conn);
        }
    }

    /// Takes every idle connection whose key `keep` rejects (targets dropped by a reload).
    pub fn drain_unless(&mut self, keep: impl Fn(&PoolKey) -> bool) -> Vec<usize> {
        let mut dropped = Vec::new();
        self.idle.retain_mut(|(key, list)| {
            if keep(key) {
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
    use crate::targets::LegOptions;

    fn target(port: u16, tls: bool, host: &str, tls_verify: Option<bool>) -> Target {
        Target {
            role: Role::Candidate,
            url: String::new(),
            authority: String::new(),
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            lookup_error: None,
            port,
            tls,
            host: host.to_string(),
            options: LegOptions {
                tls_verify,
                ..LegOptions::default()
            },
        }
    }

    #[test]
    fn pool_time_ends_before_the_upstreams_idle_timeout() {
        let most = Duration::from_secs(30);
        let secs = Duration::from_secs;
        assert_eq!(pool_time(None, most), Some(most));
        assert_eq!(pool_time(Some(secs(75)), most), Some(most));
        assert_eq!(pool_time(Some(secs(5)), most), Some(secs(4)));
        assert_eq!(pool_time(Some(secs(2)), most), Some(secs(1)));
        assert_eq!(
            pool_time(Some(secs(1)), most),
            Some(Duration::from_millis(500))
        );
        assert_eq!(pool_time(Some(secs(0)), most), None);
    }

    #[test]
    fn pool_is_lifo_per_target_and_drops_removed_targets() {
        let (a, b) = (target(1, false, "a", None), target(2, false, "b", None));
        let (ka, kb) = (PoolKey::of(&a, a.addrs[0]), PoolKey::of(&b, b.addrs[0]));
        let mut pool = Pool::new();
        assert!(pool.put(&ka, 1));
        assert!(pool.put(&ka, 2));
        assert!(pool.put(&kb, 3));
        assert_eq!(pool.take(&a), Some(2));
        pool.remove(&ka, 1);
        assert_eq!(pool.take(&a), None);
        assert_eq!(pool.drain_unless(|key| key.fits(&a)), vec![3]);
        assert_eq!(pool.take(&b), None);
    }

    #[test]
    fn a_connection_to_any_of_a_targets_addresses_fits_it() {
        let mut named = target(1, false, "localhost", None);
        named.addrs.push(SocketAddr::from(([127, 0, 0, 2], 1)));
        let to_second = PoolKey::of(&named, named.addrs[1]);
        assert!(to_second.fits(&named));
        // A target reloaded without that address does not take it.
        assert!(!to_second.fits(&target(1, false, "localhost", None)));
        // Taken past the first address's list, once that is empty.
        let to_first = PoolKey::of(&named, named.addrs[0]);
        let mut pool = Pool::new();
        assert!(pool.put(&to_first, 6));
        pool.remove(&to_first, 6);
        assert!(pool.put(&to_second, 7));
        assert_eq!(pool.take(&named), Some(7));
        assert_eq!(pool.take(&named), None);
    }

    /// (a connection opened for, a target): whether the target may reuse it.
    #[test]
    fn tls_connections_fit_only_their_own_name_and_verification() {
        let plain = target(1, false, "a.example", None);
        let https = target(1, true, "a.example", None);
        let rows = [
            // Plain targets on one address share, whatever their names.
            (&plain, target(1, false, "b.example", None), true),
            (&plain, target(2, false, "a.example", None), false),
            // A reload turning the address https does not reuse plain connections.
            (&plain, target(1, true, "a.example", None), false),
            (&https, target(1, false, "a.example", None), false),
            (&https, target(1, true, "a.example", Some(true)), true),
            // Another SNI name behind the same address (an ingress).
            (&https, target(1, true, "b.example", None), false),
            // A session opened without verification never serves a verifying leg.
            (&https, target(1, true, "a.example", Some(false)), false),
        ];
        for (opened_for, other, fits) in rows {
            let key = PoolKey::of(opened_for, opened_for.addrs[0]);
            assert!(key.fits(opened_for), "{key:?}");
            assert_eq!(key.fits(&other), fits, "{key:?} for {other:?}");
        }
    }
}
