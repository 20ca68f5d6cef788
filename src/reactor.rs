//! The mio event loop: one thread, one `Poll`, a slab of connections (clients and upstreams;
//! a token is a slab key), a slab of exchanges, a heap of deadlines, and signals. It
//! dispatches readiness to the connection state machines and never parses, prints or blocks:
//! target files are re-read and host names looked up again on a helper thread, and finished
//! exchanges go to the reporting thread over a bounded channel.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, error, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::buffer::{Scratch, Spares};
use crate::cli::{Config, TargetSource};
use crate::client::{Client, ClientPhase};
use crate::exchange::{ClientResponse, Exchange, Inflight, CAPTURE_BUDGET};
use crate::http::{Framing, Limits};
use crate::report::ReportSender;
use crate::targets::{self, Role, Target, Targets};
use crate::timer::{Deadline, Timers};
use crate::tls;
use crate::transport::Transport;
use crate::upstream::{Pool, Upstream, UpstreamState};
use crate::Counted;

const LISTENER: Token = Token(usize::MAX - 1);
/// How often reaching `--max-clients` is logged, at most.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);
const SIGNALS: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);
/// How often a drain looks whether what is still in flight is bounded by a deadline.
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// Timing and size settings the reactor runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Each leg's deadline for its whole exchange.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// A request head must be complete this long after its first byte (slowloris).
    pub head_timeout: Duration,
    /// A keep-alive client connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// A client that takes none of its pending output for this long is dropped.
    pub send_timeout: Duration,
    /// A pooled upstream connection unused for this long is closed.
    pub pool_idle_timeout: Duration,
    /// How often the targets' host names are looked up again; `None`: only at loads.
    pub dns_refresh: Option<Duration>,
    /// How long a shutdown waits for transfers still moving; `None`: as long as they move.
    pub drain_timeout: Option<Duration>,
    /// Most client connections at once; beyond it trident stops accepting for a while.
    pub max_clients: usize,
    /// Most exchanges a shadow leg may have in flight, whatever its `max_inflight=`: what
    /// the open-file limit leaves beside the clients (`descriptors::shadow_legs_per_reactor`).
    pub shadow_room: usize,
    /// Response body bytes captured per leg for the comparison.
    pub max_compare_bytes: usize,
    /// Response body bytes all of this reactor's exchanges in flight may keep for the
    /// comparison: its share of `exchange::CAPTURE_BUDGET`.
    pub capture_budget: usize,
    pub limits: Limits,
    /// Which requests go to the secondary and the candidate.
    pub shadow: ShadowPolicy,
    /// The field telling each leg its role (`X-Trident-Role`); `None`: not sent.
    pub role_header: Option<String>,
    /// Append the client's address to `X-Forwarded-For` and `Forwarded`.
    pub forward_client_ip: bool,
    /// Close client and upstream connections after each exchange.
    pub close_connections: bool,
}

/// Which requests are shadowed.
#[derive(Debug, Clone)]
pub struct ShadowPolicy {
    pub methods: ShadowMethods,
    /// The sampled share as a threshold on a 64-bit draw (`u64::MAX`: everything).
    pub share: u64,
    /// Sample by a hash of this request field's value instead of at random.
    pub sample_key: Option<String>,
}

impl ShadowPolicy {
    /// `percent` (0 to 100) of requests shadowed.
    pub fn share_of(percent: f64) -> u64 {
        if percent >= 100.0 {
            u64::MAX
        } else if percent <= 0.0 {
            0
        } else {
            // 2^64 * percent / 100, computed in f64 (53 bits of precision are plenty).
            (percent / 100.0 * 18_446_744_073_709_551_616.0) as u64
        }
    }
}

/// The request methods the shadow legs receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowMethods {
    All,
    /// Upper-case method names.
    Only(Vec<String>),
}

impl ShadowMethods {
    /// GET, HEAD and OPTIONS: requests that are safe to send three times.
    pub fn safe() -> ShadowMethods {
        ShadowMethods::Only(vec!["GET".into(), "HEAD".into(), "OPTIONS".into()])
    }

    pub fn allows(&self, method: &str) -> bool {
        match self {
            ShadowMethods::All => true,
            ShadowMethods::Only(methods) => methods.iter().any(|m| m == method),
        }
    }
}

/// A small, fast generator for sampling draws (xorshift64*); not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Settings {
    fn from_config(config: &Config) -> Settings {
        Settings {
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            head_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            send_timeout: config.send_timeout,
            pool_idle_timeout: Duration::from_secs(30),
            dns_refresh: config.dns_refresh,
            drain_timeout: config.drain_timeout,
            max_clients: config.max_clients,
            shadow_room: config.shadow_room.unwrap_or(usize::MAX),
            max_compare_bytes: config.report.max_compare_bytes,
            // One exchange's three bodies always fit: split between many reactors, or with a
            // large `--max-compare-bytes`, a lone exchange was cut short and left uncompared.
            capture_budget: (CAPTURE_BUDGET / config.reactors.max(1))
                .max(config.report.max_compare_bytes.saturating_mul(3)),
            limits: Limits {
                max_request_line: config.max_request_line,
                max_head: config.max_header_bytes,
                max_headers: config.max_headers,
                ..Limits::default()
            },
            shadow: ShadowPolicy {
                methods: match &config.shadow_methods {
                    None => ShadowMethods::All,
                    Some(methods) => ShadowMethods::Only(methods.clone()),
                },
                share: ShadowPolicy::share_of(config.shadow_percent),
                sample_key: config.sample_key.clone(),
            },
            role_header: config.role_header.clone(),
            forward_client_ip: config.forward_client_ip,
            close_connections: config.close_connections,
        }
    }
}

/// A connection in the slab.
#[derive(Debug)]
pub enum Conn {
    Client(Client),
    Upstream(Upstream),
}

impl Conn {
    fn readiness(&mut self, event: &Event) {
        let (readable, writable, hup) = match self {
            Conn::Client(c) => {
                // EPOLLERR or EPOLLHUP while trident still sends: the client reset.
                c.reset |= event.is_error() || event.is_write_closed();
                (&mut c.readable, &mut c.writable, &mut c.hup)
            }
            Conn::Upstream(u) => (&mut u.readable, &mut u.writable, &mut u.hup),
        };
        if event.is_read_closed() || event.is_error() {
            *hup = true;
        }
        // Errors and hang-ups surface through the next read or write.
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            *readable = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            *writable = true;
        }
    }
}

/// Requests from other threads and from signal handlers; the reactor acts on them when woken.
struct Shared {
    reload: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// A second SIGTERM/SIGINT: stop draining, abandon what is in flight, and go on to the
    /// summary (a third exits at once).
    hurry: Arc<AtomicBool>,
    waker: Waker,
    /// This reactor has drained and returned from `run` (its leader waits for that).
    stopped: AtomicBool,
}

/// Asks a running proxy, from any thread, to reload its targets or to stop.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// Re-read the targets file, as SIGHUP does.
    pub fn reload(&self) {
        self.shared.reload.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
    }

    /// Stop accepting, finish in-flight exchanges, return from `run`, as SIGTERM does.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
    }
}

/// Everything the event handlers change. Handlers live beside the state they own:
/// `client.rs` (client connections) and `exchange.rs` (legs and upstream connections).
pub(crate) struct Core {
    pub(crate) registry: Registry,
    pub(crate) conns: Slab<Conn>,
    pub(crate) exchanges: Slab<Exchange>,
    pub(crate) pool: Pool,
    pub(crate) timers: Timers,
    pub(crate) targets: Arc<Targets>,
    /// Bumped by each successful reload; reports never mix numbers across it.
    pub(crate) targets_epoch: u64,
    pub(crate) settings: Settings,
    pub(crate) report: Option<ReportSender>,
    /// Exchange ids, shared by every reactor of the process so that no two blocks share one.
    pub(crate) ids: Arc<AtomicU64>,
    /// Exchanges this reactor started.
    pub(crate) started: u64,
    pub(crate) next_serial: u64,
    /// Shutting down: no new requests; connections close once their exchange is done.
    pub(crate) draining: bool,
    /// Response body bytes the exchanges in flight keep for the comparison
    /// (`Settings::capture_budget` bounds it).
    pub(crate) captured: usize,
    /// Legs in flight per role, for `max_inflight=`.
    pub(crate) inflight: Inflight,
    /// Per role, the address new connections try first when it is one of the target's: set
    /// when a connection is made to another address after the first choice failed, so that
    /// one refusal (`localhost` as `::1` for a service on `127.0.0.1`) is not paid per
    /// connection. Kept across reloads while the target still has the address.
    pub(crate) preferred: [Option<SocketAddr>; 3],
    pub(crate) rng: Rng,
    pub(crate) tls: tls::Setup,
    /// Read-buffer storage lent to busy connections.
    pub(crate) spares: Spares,
    /// Storage of finished exchanges' leg heads and idle clients' output, for the next ones.
    pub(crate) scratch: Scratch,
    /// Connections to close at the end of this loop iteration (mio #219: a later event of
    /// the same batch may name a freed token).
    pub(crate) closing: Vec<usize>,
    /// Exchanges (key, id) that stopped moving to give others a turn: driven again next turn.
    pub(crate) again: Vec<(usize, u64)>,
    clients: usize,
    /// Of `clients`, those closed this turn and not yet reaped: a client that left this turn
    /// is not counted both as a client and as a gone client's answer.
    clients_closing: usize,
    /// Exchanges whose client went away while their primary leg still runs (read to its end
    /// for the comparison): each holds the descriptor its client's budget had for it, so it
    /// counts against `--max-clients` until that leg ends. Uncounted, clients that left
    /// mid-answer made room for new ones whose legs then found no descriptor (502s).
    pub(crate) orphans: usize,
    /// A client left mid-answer this turn: a connection waiting at `--max-clients` may take
    /// its place (`make_room`).
    pub(crate) new_orphan: bool,
    /// When running out of descriptors for an upstream connection was last logged.
    pub(crate) descriptors_logged: Option<Instant>,
    /// When the current turn of the loop began (its poll returned): a clock for what needs
    /// no finer one, read once a turn instead of once an event.
    pub(crate) turn: Instant,
}

impl Core {
    /// Marks connection `key` for closing at the end of this loop iteration.
    pub(crate) fn close_conn(&mut self, key: usize) {
        match self.conns.get_mut(key) {
            Some(Conn::Client(c)) if c.phase != ClientPhase::Closed => {
                c.phase = ClientPhase::Closed;
                self.closing.push(key);
                self.clients_closing += 1;
                // Closed with output unsent (dropped, or cut at shutdown): a reset says the
                // answer is cut short, where a FIN would pass for the end of a body that ends
                // at the close. Its exchange's block says the client left.
                let unsent = c.owes_output();
                c.cut_short |= unsent;
                if let Some(answer) = c.answering.take() {
                    self.release_answer(answer, unsent);
                }
            }
            Some(Conn::Upstream(u)) if u.state != UpstreamState::Closed => {
                if matches!(u.state, UpstreamState::Idle { .. }) {
                    self.pool.remove(&u.key, key);
                }
                u.state = UpstreamState::Closed;
                self.closing.push(key);
            }
            _ => {}
        }
    }

    fn reap_closed(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            if let Some(conn) = self.conns.try_remove(key) {
                let result = match conn {
                    Conn::Client(mut c) => {
                        self.clients -= 1;
                        self.clients_closing -= 1;
                        c.input.clear();
                        self.spares.reclaim(&mut c.input);
                        if c.cut_short {
                            c.stream.reset_on_close();
                        } else {
                            c.stream.close_notify();
                        }
                        self.registry.deregister(c.stream.tcp_mut())
                    }
                    Conn::Upstream(mut u) => {
                        u.input.clear();
                        self.spares.reclaim(&mut u.input);
                        self.registry.deregister(u.stream.tcp_mut())
                    }
                };
                if let Err(e) = result {
                    debug!("deregister failed: {e}");
                }
            }
        }
    }

    fn is_idle_upstream(&self, token: Token) -> bool {
        matches!(
            self.conns.get(token.0),
            Some(Conn::Upstream(up)) if matches!(up.state, UpstreamState::Idle { .. })
        )
    }

    /// Notes what `event` says about its connection, without acting on it yet.
    fn mark_ready(&mut self, event: &Event) {
        if let Some(conn) = self.conns.get_mut(event.token().0) {
            conn.readiness(event);
        }
    }

    /// Acts on the readiness already marked for connection `token`.
    fn on_ready(&mut self, token: Token) {
        match self.conns.get(token.0) {
            Some(Conn::Client(_)) => self.drive_client(token.0),
            Some(Conn::Upstream(_)) => self.upstream_ready(token.0),
            None => {}
        }
    }

    fn on_deadline(&mut self, deadline: Deadline) {
        match deadline {
            Deadline::Exchange { exchange, id } => self.exchange_deadline(exchange, id),
            Deadline::Client { conn, serial } => self.client_deadline(conn, serial),
            Deadline::ClientSend { conn, serial } => self.client_send_deadline(conn, serial),
            Deadline::PooledIdle { conn, serial } => {
                if let Some(Conn::Upstream(up)) = self.conns.get_mut(conn) {
                    let expired = up.serial == serial
                        && self
                            .timers
                            .fire_alarm(&mut up.alarm, Instant::now(), deadline)
                        && matches!(up.state, UpstreamState::Idle { .. });
                    if expired {
                        self.close_conn(conn);
                    }
                }
            }
            Deadline::Accept | Deadline::Drain => {}
        }
    }

    /// New targets take effect for new exchanges; idle connections to addresses that are no
    /// longer a target's close. A reload that changes a target starts a new epoch (the
    /// report counts it apart); new addresses for the same targets do not, and neither does
    /// a reload of an unchanged file (the same candidate: its counts go on).
    fn install(&mut self, install: Install, log: bool) {
        let (targets, reload) = match install {
            Install::Reload(targets) => (targets, true),
            Install::Addresses(targets) => (targets, false),
        };
        for conn in self
            .pool
            .drain_unless(|key| targets.iter().any(|t| key.fits(t)))
        {
            self.close_conn(conn);
        }
        self.inflight.set_targets(&targets);
        if reload {
            let summary = targets.labels();
            // A target is its scheme, host and port, however the URL spells them (`HTTP://H:80/`
            // is `http://h`), and `timeout=` the default is no `timeout=`: a reload that only
            // writes those out changes nothing.
            let (timeout, connect_timeout) = (self.settings.timeout, self.settings.connect_timeout);
            let config = |t: &Target| {
                let options = t.options.written_out(timeout, connect_timeout);
                (t.role, t.identity(), options)
            };
            if self
                .targets
                .iter()
                .map(config)
                .eq(targets.iter().map(config))
            {
                if log {
                    info!("targets reloaded, unchanged: {summary} (the comparison goes on)");
                }
            } else {
                let ended = self.targets_epoch;
                let in_flight = self
                    .exchanges
                    .iter()
                    .filter(|(_, ex)| ex.epoch == ended)
                    .count();
                self.targets_epoch += 1;
                // Say what changed: a changed option alone leaves the URLs as they were.
                let changed: Vec<Role> = targets
                    .iter()
                    .filter(|t| !self.targets.iter().any(|old| config(old) == config(t)))
                    .map(|t| t.role)
                    .collect();
                let changed: Vec<String> = changed.iter().map(Role::to_string).collect();
                if log {
                    info!(
                        "targets reloaded: {summary} (changed: {}; statistics epoch {} begins)",
                        changed.join(", "),
                        self.targets_epoch
                    );
                }
                if let Some(report) = &self.report {
                    report.announce_epoch(self.targets_epoch, in_flight as u64);
                }
            }
        }
        self.targets = Arc::new(targets);
    }

    fn start_draining(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        for conn in self.pool.drain_all() {
            self.close_conn(conn);
        }
        self.let_idle_clients_go();
    }

    /// Draining: serves what the idle clients already sent, and lets the others go.
    fn let_idle_clients_go(&mut self) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(key, conn)| match conn {
                Conn::Client(c) if matches!(c.phase, ClientPhase::Idle { .. }) => Some(key),
                _ => None,
            })
            .collect();
        for key in idle {
            // Drive once more: a complete request already buffered is still served, and an
            // answer still in the output goes out before the close. Read first whatever
            // came: a request whose readiness this turn has not seen yet would be reset.
            if let Some(Conn::Client(c)) = self.conns.get_mut(key) {
                c.readable = true;
            }
            self.drive_client(key);
            if let Some(Conn::Client(c)) = self.conns.get_mut(key) {
                // A client part-way through a head sent it before the stop: it is waited for
                // (`read_request_head`), up to its head deadline and the drain's.
                if matches!(c.phase, ClientPhase::Idle { head_started: None }) {
                    if c.all_sent() {
                        self.close_idle(key);
                    } else {
                        c.phase = ClientPhase::Closing;
                    }
                }
            }
        }
    }

    /// Keeps the deadline heap near the number of owners: entries of finished exchanges and
    /// closed connections are dropped once they outnumber the live ones.
    fn compact_timers(&mut self) {
        let live = self.exchanges.len() + self.conns.len();
        if self.timers.len() <= 2 * live + 1024 {
            return;
        }
        let (exchanges, conns) = (&self.exchanges, &self.conns);
        let conn_serial = |conn: usize| match conns.get(conn) {
            Some(Conn::Client(c)) => Some(c.serial),
            Some(Conn::Upstream(u)) => Some(u.serial),
            None => None,
        };
        self.timers.compact(|deadline| match *deadline {
            Deadline::Exchange { exchange, id } => {
                exchanges.get(exchange).map_or(true, |ex| ex.id != id)
            }
            Deadline::Client { conn, serial }
            | Deadline::ClientSend { conn, serial }
            | Deadline::PooledIdle { conn, serial } => conn_serial(conn) != Some(serial),
            Deadline::Accept | Deadline::Drain => false,
        });
    }

    fn drained(&self) -> bool {
        self.exchanges.is_empty() && self.clients == 0
    }

    /// The exchanges in flight are given up at shutdown: they count as not compared, so that
    /// the summary shows them. Every client is closed now; one taking a body that ends at
    /// the close, or with output unsent, is reset, not closed: a clean close would make the
    /// cut body look complete. An exchange that waited only for its answer to go out is
    /// reported, its client marked as having left.
    fn abandon_in_flight(&mut self) {
        let cut: Vec<usize> = self
            .exchanges
            .iter()
            .filter_map(|(_, ex)| match (ex.client, &ex.response) {
                (Some(client), ClientResponse::Streaming(Framing::Close)) => Some(client),
                _ => None,
            })
            .collect();
        for key in cut {
            if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
                client.cut_short = true;
            }
        }
        let clients: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(key, conn)| matches!(conn, Conn::Client(_)).then_some(key))
            .collect();
        for key in clients {
            self.close_conn(key);
        }
        if let Some(report) = &self.report {
            for (_, ex) in &self.exchanges {
                report.not_compared(ex.epoch, 1);
            }
        }
        self.reap_closed();
    }

    /// Draining, clients whose answers are all with the kernel: the connections waiting in
    /// the backlog at the stop may take their places, since the listener closes next and
    /// would reset them. Each holds one descriptor and no legs, and the next ones come from
    /// the backlog once only. Not draining: none, as they hold their places until closed.
    fn lingering_at_stop(&self) -> usize {
        if !self.draining {
            return 0;
        }
        self.conns
            .iter()
            .filter(|(_, conn)| {
                matches!(conn, Conn::Client(c) if matches!(c.phase, ClientPhase::Lingering { .. }))
            })
            .count()
    }

    /// `, N clients still taking their last answer` (whose exchanges are over: its output,
    /// or the kernel's, still holds some of it) and `, N clients still sending a request
    /// head` (begun before the stop), or nothing: what else a drain waits for, for the log.
    fn drain_waits_for(&self) -> String {
        let count = |is: &dyn Fn(&Client) -> bool| {
            self.conns
                .iter()
                .filter(|(_, conn)| matches!(conn, Conn::Client(c) if is(c)))
                .count()
        };
        // One still answering is its exchange's, counted as in flight; a TLS client
        // mid-handshake was never answered.
        let taking = count(&|c| {
            c.answering.is_none()
                && match c.phase {
                    ClientPhase::Closing => c.owes_output(),
                    ClientPhase::Lingering { .. } => {
                        !c.stream.mid_handshake()
                            && c.stream.unacknowledged().is_some_and(|left| left > 0)
                    }
                    _ => false,
                }
        });
        let sending = count(&|c| {
            matches!(
                c.phase,
                ClientPhase::Idle {
                    head_started: Some(_)
                }
            )
        });
        still(
            taking,
            "taking its last answer",
            "taking their last answers",
        ) + &still(sending, "sending a request head", "sending request heads")
    }

    /// Whether something in flight is still bounded by a deadline of its own: a leg (its
    /// deadline moves on only while it waits on a client that keeps moving), or a client
    /// taking its response (`--send-timeout`, which counts what the kernel hands it) or
    /// still owing the rest of its upload (`--send-timeout` for each piece).
    fn in_flight_is_live(&self) -> bool {
        let legs = self
            .exchanges
            .iter()
            .any(|(_, ex)| ex.legs.iter().any(|leg| leg.outcome.is_none()));
        legs || self.conns.iter().any(|(_, conn)| {
            matches!(conn, Conn::Client(c) if c.send_alarm.is_set() || c.alarm.is_set())
        })
    }
}

/// `, N clients still DOING`, or nothing for none.
fn still(clients: usize, one: &str, many: &str) -> String {
    match clients {
        0 => String::new(),
        1 => format!(", 1 client still {one}"),
        n => format!(", {n} clients still {many}"),
    }
}

/// A connection accepted at `--max-clients` that closed or reset while it waited in the
/// backlog (its pending error, then one peek; data or nothing yet both mean it still waits
/// for an answer, and a reset leaves its data to peek).
fn gave_up_waiting(stream: &mio::net::TcpStream) -> bool {
    if !matches!(stream.take_error(), Ok(None)) {
        return true;
    }
    let mut probe = [0u8; 1];
    match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// Whether the listener is being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// Accept whenever the listener is readable.
    Open,
    /// At `--max-clients`: resume when a client closes.
    Full,
    /// Out of file descriptors (or another accept error): resume when `Deadline::Accept` fires.
    BackingOff,
}

/// What a reactor's `Core` starts from, its own or shared with its leader.
struct CoreParts {
    targets: Arc<Targets>,
    targets_epoch: u64,
    settings: Settings,
    tls: tls::Setup,
    ids: Arc<AtomicU64>,
}

/// Signal delivery: handlers write a byte into a socket pair the poll watches and set flags.
struct Signals {
    pipe: UnixStream,
}

/// A bound, not yet running proxy.
pub struct Proxy {
    poll: Poll,
    /// Closed (None) once draining: new connections are refused, not left in the backlog
    /// to be reset at exit.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    signals: Option<Signals>,
    targets_file: Option<PathBuf>,
    core: Core,
    /// Reactors made by `follower`: this one hands them every reload and wakes them to stop.
    followers: Vec<Follower>,
    /// A follower's way in for the targets its leader installed.
    inbox: Option<Receiver<Install>>,
    /// Looks the targets' host names up again (`--dns-refresh`); replaceable for tests.
    resolver: SharedResolver,
    /// A follower's leader, woken if the follower stops first (a failed poll).
    leader: Option<Arc<Shared>>,
    /// When `--max-clients` was last logged as reached: at most once a minute, however often
    /// the load goes over it and back.
    full_logged: Option<Instant>,
    /// When cutting a gone client's answer to serve a new client was last logged.
    room_logged: Option<Instant>,
}

/// What a leader keeps of a follower reactor.
struct Follower {
    targets: Sender<Install>,
    shared: Arc<Shared>,
}

/// Connections the kernel may hold finished but not yet accepted. std's and mio's `bind` ask
/// for 128, which a burst of clients (a fleet reconnecting, a load generator starting)
/// overflows while the reactor is busy: the kernel then drops their SYNs and each waits a
/// 1 s retransmission. nginx asks for 511; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 1024;

/// The listening socket. With `reuse_port`, other reactors bind the same address too and the
/// kernel spreads new connections across them (SO_REUSEPORT).
fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = stream_socket(addr)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Whether `addr` is free for a listener of trident's own: bound without SO_REUSEPORT, then
/// let go of.
fn claimable(addr: SocketAddr) -> io::Result<()> {
    stream_socket(addr)?.bind(&addr.into())
}

/// A TCP socket for `addr`'s family, with SO_REUSEADDR (a restart binds over TIME_WAITs).
fn stream_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

impl Proxy {
    /// Binds the listener (`config.listen`, port 0 allowed) and prepares the reactor, loading
    /// the TLS files the command line names (a bad one is an `InvalidInput` error).
    /// The targets file (if `config.targets` names one) is what SIGHUP re-reads.
    pub fn bind(config: &Config, targets: Targets) -> io::Result<Proxy> {
        let tls = tls::Setup::load(config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Proxy::bind_with_tls(config, targets, tls)
    }

    /// `bind`, with the TLS configuration already loaded.
    pub fn bind_with_tls(config: &Config, targets: Targets, tls: tls::Setup) -> io::Result<Proxy> {
        if config.reactors > 1 && config.listen.port() != 0 {
            // SO_REUSEPORT would also join a group another process (another trident) is
            // listening with, and split the clients with it unseen. A plain bind fails
            // on an address anything listens on.
            claimable(config.listen)?;
        }
        let listener = listen(config.listen, config.reactors > 1)?;
        let targets_file = match &config.targets {
            Some(TargetSource::File(path)) => Some(path.clone()),
            _ => None,
        };
        let core = CoreParts {
            targets: Arc::new(targets),
            targets_epoch: 0,
            settings: Settings::from_config(config),
            tls,
            ids: Arc::new(AtomicU64::new(0)),
        };
        let flags = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        Proxy::assemble(listener, flags, core, targets_file, None)
    }

    /// Another reactor on this one's address (bound with `--reactors` above 1). It shares
    /// this one's request ids, targets and stop flag; this one keeps the signals and the
    /// reloads, hands it every reload's targets and wakes it to stop. Run it on its own thread.
    pub fn follower(&mut self) -> io::Result<Proxy> {
        let listener = listen(self.local_addr, true)?;
        let core = CoreParts {
            targets: Arc::clone(&self.core.targets),
            targets_epoch: self.core.targets_epoch,
            settings: self.core.settings.clone(),
            tls: self.core.tls.clone(),
            ids: Arc::clone(&self.core.ids),
        };
        let (sender, inbox) = crossbeam_channel::unbounded();
        let flags = (
            Arc::clone(&self.shared.stop),
            Arc::clone(&self.shared.hurry),
        );
        let mut follower = Proxy::assemble(listener, flags, core, None, Some(inbox))?;
        follower.leader = Some(Arc::clone(&self.shared));
        self.followers.push(Follower {
            targets: sender,
            shared: Arc::clone(&follower.shared),
        });
        Ok(follower)
    }

    fn assemble(
        mut listener: TcpListener,
        (stop, hurry): (Arc<AtomicBool>, Arc<AtomicBool>),
        parts: CoreParts,
        targets_file: Option<PathBuf>,
        inbox: Option<Receiver<Install>>,
    ) -> io::Result<Proxy> {
        let poll = Poll::new()?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            reload: Arc::new(AtomicBool::new(false)),
            stop,
            hurry,
            waker,
            stopped: AtomicBool::new(false),
        });
        let CoreParts {
            targets,
            targets_epoch,
            settings,
            tls,
            ids,
        } = parts;
        let mut inflight = Inflight::default();
        inflight.set_targets(&targets);
        let core = Core {
            registry: poll.registry().try_clone()?,
            conns: Slab::with_capacity(1024),
            exchanges: Slab::with_capacity(256),
            pool: Pool::new(),
            timers: Timers::new(),
            targets,
            targets_epoch,
            settings,
            report: None,
            ids,
            started: 0,
            next_serial: 0,
            draining: false,
            captured: 0,
            inflight,
            preferred: [None; 3],
            rng: Rng::seeded(),
            tls,
            spares: Spares::default(),
            scratch: Scratch::default(),
            closing: Vec::new(),
            again: Vec::new(),
            clients: 0,
            clients_closing: 0,
            orphans: 0,
            new_orphan: false,
            descriptors_logged: None,
            turn: Instant::now(),
        };
        Ok(Proxy {
            poll,
            listener: Some(listener),
            local_addr,
            shared,
            signals: None,
            targets_file,
            core,
            followers: Vec::new(),
            inbox,
            resolver: Arc::new(targets::resolve),
            leader: None,
            full_logged: None,
            room_logged: None,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SIGHUP reloads, SIGTERM/SIGINT drain and stop. A second SIGTERM/SIGINT stops the
    /// draining: what is in flight is abandoned, and the summary and report are written. A
    /// third exits at once, with status `EXIT_TROUBLE` and no summary (the way out when stdout
    /// does not take it).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let (read_end, write_end) = StdUnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        for sig in [SIGTERM, SIGINT] {
            let stop = Arc::clone(&self.shared.stop);
            let hurry = Arc::clone(&self.shared.hurry);
            let action = move || {
                if stop.swap(true, Ordering::SeqCst) && hurry.swap(true, Ordering::SeqCst) {
                    signal_hook::low_level::exit(i32::from(crate::EXIT_TROUBLE));
                }
            };
            // SAFETY: the action is async-signal-safe: it only swaps atomics and calls
            // `_exit` (`low_level::exit`); it neither allocates nor takes a lock.
            unsafe { signal_hook::low_level::register(sig, action) }?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&self.shared.reload))?;
        for sig in [SIGHUP, SIGTERM, SIGINT] {
            signal_hook::low_level::pipe::register(sig, write_end.try_clone()?)?;
        }
        let mut pipe = UnixStream::from_std(read_end);
        self.poll
            .registry()
            .register(&mut pipe, SIGNALS, Interest::READABLE)?;
        self.signals = Some(Signals { pipe });
        Ok(())
    }

    /// Looks host names up with `resolve` instead of the system resolver when `--dns-refresh`
    /// comes round and when SIGHUP re-reads the targets file (for tests, and for an embedder
    /// with a service registry of its own).
    pub fn set_resolver(
        &mut self,
        resolve: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) {
        self.resolver = Arc::new(resolve);
    }

    /// A handle to reload or stop the proxy from another thread.
    pub fn control(&self) -> Control {
        Control {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs until stopped; finished exchanges go to `report`. Returns after draining.
    pub fn run(mut self, report: ReportSender) -> io::Result<()> {
        let result = self.run_until_drained(report);
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.stop_the_others();
        self.wait_for_followers();
        result
    }

    /// A leader drained while other reactors still drain keeps the signals until they stop:
    /// a second SIGTERM/SIGINT must still reach them (their exchanges abandoned at once), and
    /// a SIGHUP still be answered. Nothing else is registered any more.
    fn wait_for_followers(&mut self) {
        let mut events = Events::with_capacity(16);
        let mut hurried = false;
        while !self
            .followers
            .iter()
            .all(|f| f.shared.stopped.load(Ordering::SeqCst))
        {
            if let Err(e) = self.poll.poll(&mut events, Some(DRAIN_CHECK)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    debug!("waiting for the other reactors: {e}");
                    return;
                }
            }
            self.drain_signal_pipe();
            if self.shared.reload.swap(false, Ordering::SeqCst) {
                warn!("reload asked while shutting down: ignored");
            }
            if !hurried && self.shared.hurry.load(Ordering::SeqCst) {
                hurried = true;
                self.stop_the_others();
            }
        }
    }

    /// The leader's reload thread, when there is a targets file to reload or names to look
    /// up again.
    fn spawn_reloader(&self) -> Option<Reloader> {
        if self.inbox.is_some() {
            return None;
        }
        // Targets from the command line never change, so without a name among them there
        // is nothing to look up again; a targets file may bring names at a reload.
        if self.targets_file.is_none() && !self.core.targets.iter().any(Target::is_named) {
            return None;
        }
        let thread = ReloadThread {
            path: self.targets_file.clone(),
            listen: self.local_addr,
            refresh: self.core.settings.dns_refresh,
            resolve: Arc::clone(&self.resolver),
            installed: Arc::new(Mutex::new(Arc::clone(&self.core.targets))),
        };
        Some(Reloader::spawn(thread, &self.shared))
    }

    /// Installs what the reload thread loaded, here and in the followers, and tells the
    /// thread what is installed now.
    fn take_loaded(&mut self, loaded: Loaded, installed: &Mutex<Arc<Targets>>) {
        let install = match loaded {
            Loaded::Reload(Ok(_)) if self.core.draining => {
                warn!("a reload asked before shutting down came too late: not installed");
                return;
            }
            Loaded::Reload(Ok(targets)) => Install::Reload(targets),
            Loaded::Reload(Err(e)) => {
                error!("reload failed, keeping the old targets: {e}");
                return;
            }
            // Looked up on targets a reload has replaced since: the reload's lookup stands.
            Loaded::Addresses { base, .. } if !Arc::ptr_eq(&base, &self.core.targets) => return,
            Loaded::Addresses { targets, .. } => Install::Addresses(targets),
        };
        // The leader first: its log line says the reload happened, and a follower's (in the
        // debug log) that it has them, after it (a test read the follower's first).
        let for_followers = (!self.followers.is_empty()).then(|| install.clone());
        self.core.install(install, true);
        *installed.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&self.core.targets);
        if let Some(install) = for_followers {
            for follower in &self.followers {
                if follower.targets.send(install.clone()).is_ok() {
                    let _ = follower.shared.waker.wake();
                }
            }
        }
    }

    fn run_until_drained(&mut self, report: ReportSender) -> io::Result<()> {
        self.core.report = Some(report);
        let reloader = self.spawn_reloader();
        let mut events = Events::with_capacity(1024);
        let mut accepting = Accepting::Open;
        let mut drain_check = None;
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            let timeout = if self.core.again.is_empty() {
                self.core.timers.poll_timeout(now)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.core.turn = Instant::now();
            // Every readiness of the batch is marked before any is acted on: an exchange
            // driven for its candidate's event then reads the primary's answer first, if it
            // came in the same batch, instead of after the shadows'.
            for event in events.iter() {
                if !matches!(event.token(), LISTENER | SIGNALS | WAKER) {
                    self.core.mark_ready(event);
                }
            }
            // Idle pooled connections first: one the upstream closed (or spoke on) in this
            // batch is dropped before a request of the same batch could take it.
            for event in events.iter() {
                if self.core.is_idle_upstream(event.token()) {
                    self.core.on_ready(event.token());
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => {
                        if accepting == Accepting::Open && !self.core.draining {
                            accepting = self.accept(accepting);
                        }
                    }
                    SIGNALS => self.drain_signal_pipe(),
                    WAKER => {}
                    token => self.core.on_ready(token),
                }
            }
            for (key, id) in std::mem::take(&mut self.core.again) {
                if let Some(ex) = self.core.exchanges.get_mut(key).filter(|ex| ex.id == id) {
                    ex.queued_again = false;
                    self.core.after_leg_event(key);
                }
            }
            // Flags are read after the pipe is drained: a signal during a reload is one more
            // reload, never a lost one.
            if self.shared.reload.swap(false, Ordering::SeqCst) {
                match (&reloader, &self.targets_file) {
                    // New targets could take no request, and their empty epoch would stand
                    // for the run in the final summary.
                    _ if self.core.draining => {
                        warn!("reload asked while shutting down: ignored");
                    }
                    (Some(reloader), Some(_)) => reloader.request(),
                    (Some(reloader), None) => {
                        info!("reload asked: the targets came from the command line; looking their names up again");
                        reloader.request();
                    }
                    (None, _) => warn!("reload asked, but the targets came from the command line"),
                }
            }
            if let Some(reloader) = &reloader {
                while let Ok(loaded) = reloader.results.try_recv() {
                    self.take_loaded(loaded, &reloader.installed);
                }
            }
            if let Some(inbox) = &self.inbox {
                while let Ok(install) = inbox.try_recv() {
                    // The leader has logged it, once for all the reactors.
                    self.core.install(install, false);
                    debug!(
                        "{}: targets installed",
                        thread::current().name().unwrap_or("reactor")
                    );
                }
            }
            if self.shared.stop.load(Ordering::SeqCst) && !self.core.draining {
                // Connections the kernel took before the stop are clients that asked before
                // it: taken in (once the idle clients have made room), their requests
                // already sent are served, not reset with the listener.
                self.core.start_draining();
                self.core.reap_closed();
                accepting = self.accept(accepting);
                self.core.let_idle_clients_go();
                if let Some(mut listener) = self.listener.take() {
                    if let Err(e) = self.poll.registry().deregister(&mut listener) {
                        debug!("deregister listener: {e}");
                    }
                }
                let in_flight = Counted(self.core.exchanges.len(), "exchange");
                // After the idle clients' close: those still taking an answer are waited for.
                info!(
                    "{}shutting down: {in_flight} in flight{}",
                    self.reactor_prefix(),
                    self.core.drain_waits_for()
                );
                self.stop_the_others();
                let now = Instant::now();
                drain_until = self.core.settings.drain_timeout.map(|d| now + d);
                let check =
                    drain_until.map_or(now + DRAIN_CHECK, |until| (now + DRAIN_CHECK).min(until));
                drain_check = Some(check);
                self.core.timers.set(check, Deadline::Drain);
            }
            // The turn's clock: a deadline that passed while the events were handled fires
            // next turn (the poll then waits for nothing), and the turn reads one clock less.
            let now = self.core.turn;
            while let Some(deadline) = self.core.timers.pop_due(now) {
                match deadline {
                    Deadline::Accept => {
                        if accepting == Accepting::BackingOff && !self.core.draining {
                            accepting = self.accept(accepting);
                        }
                    }
                    other => self.core.on_deadline(other),
                }
            }
            self.core.reap_closed();
            let room = self.core.clients + self.core.orphans < self.core.settings.max_clients
                || std::mem::take(&mut self.core.new_orphan);
            if accepting == Accepting::Full && room && !self.core.draining {
                // Connections waiting in the backlog sent no new readiness: accept them now.
                accepting = self.accept(accepting);
            }
            self.core.compact_timers();
            if self.core.draining {
                if self.core.drained() {
                    break;
                }
                if self.shared.hurry.load(Ordering::SeqCst) {
                    // Counted first: an exchange that waited only for its answer to go out is
                    // reported as its client is cut.
                    let in_flight = Counted(self.core.exchanges.len(), "exchange");
                    let taking = self.core.drain_waits_for();
                    self.core.abandon_in_flight();
                    warn!(
                        "{}stopping at once (a second SIGTERM/SIGINT): {in_flight} in \
                         flight{taking} abandoned; the summary follows (a third signal exits \
                         without it)",
                        self.reactor_prefix()
                    );
                    self.stop_the_others();
                    break;
                }
                let now = Instant::now();
                if drain_check.is_some_and(|at| now >= at) {
                    // What is still live ends on its own deadlines, which move on while a
                    // client downloads or uploads steadily: such a transfer is cut only by
                    // --drain-timeout. What nothing bounds any more is given up at once.
                    let live = self.core.in_flight_is_live();
                    let out_of_time = drain_until.is_some_and(|until| now >= until);
                    if live && !out_of_time {
                        let next = match drain_until {
                            Some(until) => (now + DRAIN_CHECK).min(until),
                            None => now + DRAIN_CHECK,
                        };
                        drain_check = Some(next);
                        self.core.timers.set(next, Deadline::Drain);
                        continue;
                    }
                    let in_flight = Counted(self.core.exchanges.len(), "exchange");
                    let taking = self.core.drain_waits_for();
                    self.core.abandon_in_flight();
                    let name = self.reactor_prefix();
                    match self.core.settings.drain_timeout {
                        Some(limit) if live => warn!(
                            "{name}shutdown: {in_flight} still in flight{taking} after \
                             --drain-timeout {}ms, abandoned",
                            limit.as_millis()
                        ),
                        _ => warn!(
                            "{name}shutdown deadline: {in_flight} still in flight{taking}, \
                             abandoned"
                        ),
                    }
                    break;
                }
            }
        }
        let exchanges = Counted(self.core.started as usize, "exchange");
        info!("{}stopped after {exchanges}", self.reactor_prefix());
        Ok(())
    }

    /// `reactor-N: ` with more than one reactor, else nothing: each reactor's shutdown lines
    /// say which they are, or they read as contradicting totals.
    fn reactor_prefix(&self) -> String {
        if self.leader.is_none() && self.followers.is_empty() {
            return String::new();
        }
        match self.leader {
            Some(_) => format!("{}: ", std::thread::current().name().unwrap_or("reactor")),
            None => "reactor-0: ".to_string(),
        }
    }

    /// Whatever ends one reactor ends the others too (they share the stop flag): wakes them
    /// to see it.
    fn stop_the_others(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for follower in &self.followers {
            let _ = follower.shared.waker.wake();
        }
        if let Some(leader) = &self.leader {
            let _ = leader.waker.wake();
        }
    }

    /// Accepts until `WouldBlock`, `--max-clients` or an error; says what comes next.
    fn accept(&mut self, was: Accepting) -> Accepting {
        // Taking clients in changes no client's phase: counted once.
        let lingering = self.core.lingering_at_stop();
        loop {
            let live = self.core.clients - self.core.clients_closing - lingering;
            let full = live + self.core.orphans >= self.core.settings.max_clients;
            // A client that left still holds its place while its primary is read for the
            // comparison: a waiting client takes it (`make_room`, once one is accepted).
            if full && self.core.orphans == 0 {
                let quiet = self
                    .full_logged
                    .is_some_and(|at| at.elapsed() < FULL_LOG_INTERVAL);
                if was != Accepting::Full && !quiet {
                    warn!(
                        "{}{live} client connections: not accepting more until some close (said \
                         at most once a minute)",
                        self.reactor_prefix()
                    );
                    self.full_logged = Some(Instant::now());
                }
                return Accepting::Full;
            }
            let Some(listener) = &self.listener else {
                return was;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    if full && gave_up_waiting(&stream) {
                        // Closed or reset in the backlog: no one to make room for.
                        continue;
                    }
                    if full && self.core.make_room() {
                        let quiet = self
                            .room_logged
                            .is_some_and(|at| at.elapsed() < FULL_LOG_INTERVAL);
                        if !quiet {
                            info!(
                                "{}at --max-clients {}: an answer still read for a client that \
                                 left was cut to serve a new one (not compared; said at most \
                                 once a minute)",
                                self.reactor_prefix(),
                                self.core.settings.max_clients
                            );
                            self.room_logged = Some(Instant::now());
                        }
                    }
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!("set_nodelay: {e}");
                    }
                    let core = &mut self.core;
                    let mut transport = match &core.tls.server {
                        None => Transport::Plain(stream),
                        Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                            Ok(session) => Transport::tls(stream, session.into()),
                            Err(e) => {
                                warn!("TLS session for {peer}: {e}");
                                continue;
                            }
                        },
                    };
                    core.next_serial += 1;
                    let entry = core.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = core.registry.register(
                        transport.tcp_mut(),
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("cannot register client {peer}: {e}");
                        continue;
                    }
                    let mut client = Client::new(core.next_serial, transport, peer);
                    client.arm_idle(key, &mut core.timers, core.settings.idle_timeout);
                    entry.insert(Conn::Client(client));
                    core.clients += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepting::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE/ENFILE and the like: back off instead of spinning on the
                    // listener, which stays readable; one deadline, one log line per episode.
                    if was != Accepting::BackingOff {
                        warn!("accept failed: {e}; retrying every 100ms");
                    }
                    self.core.timers.set(
                        Instant::now() + Duration::from_millis(100),
                        Deadline::Accept,
                    );
                    return Accepting::BackingOff;
                }
            }
        }
    }

    fn drain_signal_pipe(&mut self) {
        if let Some(signals) = &mut self.signals {
            let mut buf = [0u8; 64];
            loop {
                match signals.pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
    }
}

/// What the reload thread's lookups have logged, so that a state that lasts is said once,
/// not every `--dns-refresh`.
#[derive(Default)]
struct Said {
    /// Per role, the host name that could not be looked up last time. The name, not a flag:
    /// after a reload that names another host, the new name's failure is news.
    failing: [Option<String>; 3],
    /// New addresses refused last time because they lead back to trident.
    refused: Option<Targets>,
}

/// Targets a leader hands its followers.
#[derive(Clone)]
enum Install {
    /// A reload's: a new epoch.
    Reload(Targets),
    /// The same targets with their host names' new addresses: the epoch goes on.
    Addresses(Targets),
}

/// What the reload thread hands the leader.
enum Loaded {
    /// The targets file read again (SIGHUP).
    Reload(Result<Targets, targets::Error>),
    /// `base`, the targets installed when the lookup began, with the addresses their host
    /// names have now.
    Addresses {
        base: Arc<Targets>,
        targets: Targets,
    },
}

/// A host name resolver the reload thread can own.
type SharedResolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The leader's end of the reload thread, which reads the targets file when asked and looks
/// the host names up again every `--dns-refresh`: both may block (a slow DNS server), so
/// neither runs on a reactor. Results come back through a channel, waking the poll.
struct Reloader {
    requests: Sender<()>,
    results: Receiver<Loaded>,
    /// The targets the leader runs on, for the next lookup.
    installed: Arc<Mutex<Arc<Targets>>>,
}

/// What the reload thread works with.
struct ReloadThread {
    path: Option<PathBuf>,
    /// trident's own address: targets that lead back to it are refused.
    listen: SocketAddr,
    /// `--dns-refresh`: how often the names are looked up again, if at all.
    refresh: Option<Duration>,
    /// What looks them up: at each refresh, and at SIGHUP for command-line targets.
    resolve: SharedResolver,
    installed: Arc<Mutex<Arc<Targets>>>,
}

impl Reloader {
    fn spawn(work: ReloadThread, shared: &Arc<Shared>) -> Reloader {
        let (requests, request_rx) = crossbeam_channel::unbounded::<()>();
        let (result_tx, results) = crossbeam_channel::unbounded();
        let shared = Arc::clone(shared);
        let installed = Arc::clone(&work.installed);
        let spawned = thread::Builder::new().name("reload".into()).spawn(move || {
            let mut said = Said::default();
            // A deadline, not a timeout per wait: SIGHUPs coming often do not put it off.
            let mut next_lookup = work.refresh.map(|every| Instant::now() + every);
            loop {
                let asked = match next_lookup {
                    Some(at) => request_rx.recv_deadline(at),
                    None => request_rx
                        .recv()
                        .map_err(|_| RecvTimeoutError::Disconnected),
                };
                if let (Err(RecvTimeoutError::Timeout), Some(every)) = (&asked, work.refresh) {
                    next_lookup = Some(Instant::now() + every);
                }
                let loaded = match (asked, &work.path) {
                    (Ok(()), Some(path)) => Loaded::Reload(work.reload(path)),
                    // Command-line targets: a SIGHUP can only look their names up again.
                    (Ok(()), None) | (Err(RecvTimeoutError::Timeout), _) => {
                        match work.look_up_again(&mut said) {
                            Some(loaded) => loaded,
                            None => continue,
                        }
                    }
                    (Err(RecvTimeoutError::Disconnected), _) => break,
                };
                if result_tx.send(loaded).is_err() {
                    break;
                }
                let _ = shared.waker.wake();
            }
        });
        if let Err(e) = spawned {
            error!("cannot start the reload thread: {e}; SIGHUP and --dns-refresh will be ignored");
        }
        Reloader {
            requests,
            results,
            installed,
        }
    }

    fn request(&self) {
        let _ = self.requests.send(());
    }
}

impl ReloadThread {
    /// The targets file read again. A file that names trident itself is refused like a
    /// broken one. A shadow's name that does not resolve this time keeps the addresses it
    /// had, as in `look_up_again`.
    fn reload(&self, path: &Path) -> Result<Targets, targets::Error> {
        let mut targets = Targets::load_with(path, &*self.resolve)?;
        let installed = Arc::clone(
            &self
                .installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let kept = targets.keep_addresses_of(&installed);
        targets.loops_back(self.listen, Some(path))?;
        for (role, why) in kept {
            let target = targets.get(role);
            warn!(
                "{role}: cannot look {} up again ({why}); keeping {}",
                target.host,
                target.address_list()
            );
        }
        targets.log_lookups(self.refresh);
        Ok(targets)
    }

    /// The installed targets with their names looked up again, when an address changed.
    /// Lookups that fail keep the addresses the name had; new addresses that lead back to
    /// trident are refused like a reload that would.
    fn look_up_again(&self, said: &mut Said) -> Option<Loaded> {
        let base = Arc::clone(
            &self
                .installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let (targets, failures) = base.looked_up_again(&*self.resolve);
        for target in base.iter() {
            let failure = failures.iter().find(|(role, _)| *role == target.role);
            let remembered = &mut said.failing[target.role.index()];
            let was_failing = remembered.as_deref() == Some(target.host.as_str());
            match failure {
                Some(_) if !was_failing => *remembered = Some(target.host.clone()),
                None => *remembered = None,
                _ => {}
            }
            match failure {
                // An unresolved name was warned of when it was loaded.
                _ if target.is_unresolved() => {}
                Some((_, why)) if !was_failing => warn!(
                    "{}: cannot look {} up again ({why}); keeping {}",
                    target.role,
                    target.host,
                    target.address_list()
                ),
                None if was_failing => {
                    info!("{}: {} can be looked up again", target.role, target.host)
                }
                _ => {}
            }
        }
        if targets == *base {
            return None;
        }
        if let Err(e) = targets.loops_back(self.listen, self.path.as_deref()) {
            if said.refused.as_ref() != Some(&targets) {
                error!("new addresses refused, keeping the old ones: {e}");
                said.refused = Some(targets);
            }
            return None;
        }
        said.refused = None;
        for (before, after) in base.iter().zip(targets.iter()) {
            if before.is_unresolved() && !after.is_unresolved() {
                info!(
                    "{}: {} now resolves to {}; new exchanges connect there",
                    after.role,
                    after.host,
                    after.address_list()
                );
            } else if before != after {
                info!(
                    "{}: {} now resolves to {} (was {})",
                    after.role,
                    after.host,
                    after.address_list(),
                    before.address_list()
                );
            }
        }
        Some(Loaded::Addresses { base, targets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;

    /// The log lines written on each thread: tests run side by side in one process, and a
    /// test reads its own thread's.
    struct Capture(Mutex<Vec<(ThreadId, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            let line = record.args().to_string();
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.push((thread::current().id(), line));
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    /// Lines logged on this thread so far (the first call installs the capture).
    fn logged_here() -> Vec<String> {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        let here = thread::current().id();
        let lines = CAPTURE.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .filter(|(thread, _)| *thread == here)
            .map(|(_, line)| line.clone())
            .collect()
    }

    #[test]
    fn new_addresses_leading_back_to_trident_are_refused_and_said_once() {
        logged_here();
        let listen = SocketAddr::from(([127, 0, 0, 1], 48123));
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], 48124));
        let answer = Arc::new(Mutex::new(elsewhere));
        let resolve: SharedResolver = {
            let answer = Arc::clone(&answer);
            Arc::new(move |_: &str, _: u16| Ok(vec![*answer.lock().unwrap()]))
        };
        let text = "primary = http://127.0.0.1:1\nsecondary = http://127.0.0.1:2\n\
                    candidate = http://candidate.test:48123\n";
        let targets = Targets::parse_with(text, "t.conf", &*resolve).unwrap();
        let thread = ReloadThread {
            path: None,
            listen,
            refresh: None,
            resolve,
            installed: Arc::new(Mutex::new(Arc::new(targets))),
        };
        let mut said = Said::default();

        // The name moves to trident's own address: refused, every round, said once.
        *answer.lock().unwrap() = listen;
        for _ in 0..3 {
            assert!(thread.look_up_again(&mut said).is_none());
        }
        let refusals = |lines: &[String]| {
            lines
                .iter()
                .filter(|line| line.starts_with("new addresses refused"))
                .count()
        };
        assert_eq!(refusals(&logged_here()), 1, "{:?}", logged_here());

        // Elsewhere again: taken. Back to trident: said again.
        *answer.lock().unwrap() = SocketAddr::from(([127, 0, 0, 1], 48125));
        assert!(matches!(
            thread.look_up_again(&mut said),
            Some(Loaded::Addresses { .. })
        ));
        *answer.lock().unwrap() = listen;
        assert!(thread.look_up_again(&mut said).is_none());
        assert_eq!(refusals(&logged_here()), 2, "{:?}", logged_here());
    }

    /// A resolver answering `answer(port)`, or failing while the flag it comes with is set.
    fn failing_resolver(
        answer: impl Fn(u16) -> SocketAddr + Send + Sync + 'static,
    ) -> (Arc<Mutex<bool>>, SharedResolver) {
        let failing = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&failing);
        let resolve: SharedResolver = Arc::new(move |host: &str, port: u16| {
            if *flag.lock().unwrap() {
                Err(io::Error::other(format!("{host}: no answer")))
            } else {
                Ok(vec![answer(port)])
            }
        });
        (failing, resolve)
    }

    #[test]
    fn a_reload_while_a_shadows_name_does_not_resolve_keeps_its_addresses() {
        logged_here();
        let (failing, resolve) = failing_resolver(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        let path = std::env::temp_dir().join(format!("trident-keep-{}.conf", std::process::id()));
        let write = |candidate: &str| {
            let text = format!(
                "primary = http://127.0.0.1:1\nsecondary = http://127.0.0.1:2\n\
                 candidate = http://{candidate}\n"
            );
            std::fs::write(&path, text).unwrap();
        };
        write("one.test:48143");
        let installed = Targets::load_with(&path, &*resolve).unwrap();
        let thread = ReloadThread {
            path: Some(path.clone()),
            listen: SocketAddr::from(([127, 0, 0, 1], 48142)),
            refresh: None,
            resolve: Arc::clone(&resolve),
            installed: Arc::new(Mutex::new(Arc::new(installed))),
        };

        // The same name, DNS down: the leg keeps its address, and the log says so. A name is
        // the same in any case.
        *failing.lock().unwrap() = true;
        let reloaded = thread.reload(&path);
        write("ONE.test:48143");
        let respelled = thread.reload(&path);
        // Another name, or another port, has no addresses to keep.
        write("two.test:48143");
        let renamed = thread.reload(&path);
        write("one.test:48144");
        let moved = thread.reload(&path);
        let _ = std::fs::remove_file(&path);

        let candidate = |targets: &Targets| targets.get(Role::Candidate).clone();
        let kept = candidate(&reloaded.unwrap());
        assert!(!kept.is_unresolved());
        assert_eq!(kept.addrs, [SocketAddr::from(([127, 0, 0, 1], 48143))]);
        assert_eq!(candidate(&respelled.unwrap()).addrs, kept.addrs);
        assert!(candidate(&renamed.unwrap()).is_unresolved());
        assert!(candidate(&moved.unwrap()).is_unresolved());
        assert!(
            logged_here().iter().any(|line| line
                == "candidate: cannot look one.test up again (one.test: no answer); \
                    keeping 127.0.0.1:48143"),
            "{:?}",
            logged_here()
        );
    }

    #[test]
    fn a_failing_lookup_is_said_once_per_host_name() {
        logged_here();
        let listen = SocketAddr::from(([127, 0, 0, 1], 48133));
        let (failing, resolve) = failing_resolver(|_| SocketAddr::from(([127, 0, 0, 1], 48134)));
        let load = |candidate: &str| {
            let text = format!(
                "primary = http://127.0.0.1:1\nsecondary = http://127.0.0.1:2\n\
                 candidate = http://{candidate}:80\n"
            );
            Arc::new(Targets::parse_with(&text, "t.conf", &*resolve).unwrap())
        };
        let installed = Arc::new(Mutex::new(load("one.test")));
        let thread = ReloadThread {
            path: None,
            listen,
            refresh: None,
            resolve: Arc::clone(&resolve),
            installed: Arc::clone(&installed),
        };
        let mut said = Said::default();
        let lines = |prefix: &str| {
            logged_here()
                .iter()
                .filter(|line| line.starts_with(prefix))
                .count()
        };

        // DNS stops answering: said once, however many rounds it lasts.
        *failing.lock().unwrap() = true;
        for _ in 0..3 {
            assert!(thread.look_up_again(&mut said).is_none());
        }
        assert_eq!(lines("candidate: cannot look one.test up again"), 1);

        // A reload names another host, which fails too: that is news.
        *failing.lock().unwrap() = false;
        *installed.lock().unwrap() = load("two.test");
        *failing.lock().unwrap() = true;
        for _ in 0..2 {
            assert!(thread.look_up_again(&mut said).is_none());
        }
        assert_eq!(lines("candidate: cannot look two.test up again"), 1);

        // It answers again: said once.
        *failing.lock().unwrap() = false;
        for _ in 0..2 {
            assert!(thread.look_up_again(&mut said).is_none());
        }
        assert_eq!(lines("candidate: two.test can be looked up again"), 1);
        assert_eq!(lines("candidate: one.test can be looked up again"), 0);
    }
}
