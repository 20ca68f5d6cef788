//! The open-file limit and the clients it leaves room for. A client accepted when no
//! descriptor is left for its upstream connections gets a 502 for every request, while
//! clients that wait in the listen backlog are served once others leave: so the client limit
//! is kept within what the descriptors allow, as HAProxy derives its maxconn from `ulimit -n`.

use std::io;

/// What one client may hold at once: its own connection and one per leg.
pub const PER_CLIENT: u64 = 4;
/// Beyond the descriptors open at start-up: each reactor's listener, poll and waker (counted
/// apart), the reload thread's file and lookups, the report file, a TLS key read again.
const SPARE: u64 = 16;
/// Where the soft limit is raised to when the hard one is unlimited (Linux's default
/// `fs.nr_open`, past which setrlimit fails).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The open-file limit, as start-up left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit before trident raised it.
    pub was: u64,
    /// The soft limit now.
    pub now: u64,
}

/// Raises the soft open-file limit to the hard one, as Go's runtime does for every program:
/// the usual soft default of 1024 dates from select(2), which trident does not use, and the
/// hard limit is what the administrator allows.
pub fn raise_limit() -> io::Result<Limit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let was = limit.rlim_cur;
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        UNLIMITED_TARGET.max(was)
    } else {
        limit.rlim_max
    };
    if target <= was {
        return Ok(Limit { was, now: was });
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        // Not allowed (a container's seccomp, say): the limit stays as it was.
        return Ok(Limit { was, now: was });
    }
    Ok(Limit { was, now: target })
}

/// Descriptors this process has open (`/proc/self/fd`, less the one reading it).
pub fn open_now() -> io::Result<u64> {
    let entries = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    Ok(entries.saturating_sub(1))
}

/// The most clients per reactor that `limit` descriptors leave room for, `open` being in
/// use already and each of `reactors` reactors holding three of its own; 0 when there is no
/// room for one (trident then refuses to start: a client it accepted could only get 502s).
pub fn clients_per_reactor(limit: u64, open: u64, reactors: usize) -> usize {
    let room = per_reactor(limit, open, reactors) / PER_CLIENT;
    usize::try_from(room).unwrap_or(usize::MAX)
}

/// The descriptors each reactor has for clients and upstream connections.
pub fn per_reactor(limit: u64, open: u64, reactors: usize) -> u64 {
    limit.saturating_sub(reserved(open, reactors)) / reactors.max(1) as u64
}

/// The most exchanges each shadow leg may have in flight on a reactor with `per_reactor`
/// descriptors and up to `max_clients` clients, each holding two (its own and its primary
/// leg's): the rest is split between the two shadow targets. A shadow that answers slowly
/// holds a descriptor per exchange until its deadline while the client goes on to its next
/// request; past this bound it is skipped (`saturated`) instead of taking the descriptors new
/// clients and their primary legs need.
pub fn shadow_legs_per_reactor(per_reactor: u64, max_clients: usize) -> usize {
    let room = per_reactor.saturating_sub(2 * max_clients as u64) / 2;
    usize::try_from(room).unwrap_or(usize::MAX)
}

/// The descriptors trident keeps for itself: the `open` ones, three per reactor, and a spare.
pub fn reserved(open: u64, reactors: usize) -> u64 {
    open + 3 * reactors.max(1) as u64 + SPARE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_room_for_itself_and_its_three_legs() {
        // 64 descriptors, 10 open, one reactor: (64 - 10 - 3 - 16) / 4.
        assert_eq!(clients_per_reactor(64, 10, 1), 8);
        // Two reactors share the room: (1024 - 10 - 6 - 16) / 8.
        assert_eq!(clients_per_reactor(1024, 10, 2), 124);
        // No room for one client on each reactor.
        assert_eq!(clients_per_reactor(16, 10, 1), 0);
        assert_eq!(clients_per_reactor(72, 10, 8), 0);
        assert_eq!(clients_per_reactor(1 << 20, 10, 1), 262_136);
    }

    #[test]
    fn shadow_legs_get_what_clients_and_their_primaries_leave() {
        // 128 descriptors, 10 open: 99 for the reactor, 24 clients, 25 exchanges per shadow.
        assert_eq!(per_reactor(128, 10, 1), 99);
        assert_eq!(shadow_legs_per_reactor(99, 24), 25);
        // Fewer clients leave the shadows more.
        assert_eq!(shadow_legs_per_reactor(99, 4), 45);
        assert_eq!(shadow_legs_per_reactor(99, 60), 0);
        // Clients at the room that is left always leave each shadow at least one per client.
        for limit in [40, 64, 100, 1024, 4096] {
            let per = per_reactor(limit, 10, 2);
            let clients = clients_per_reactor(limit, 10, 2);
            assert!(shadow_legs_per_reactor(per, clients) >= clients, "{limit}");
        }
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_limit().unwrap();
        assert!(limit.now >= limit.was);
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise_limit`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, limit.now);
        if now.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(limit.now, now.rlim_max);
        }
    }
}
