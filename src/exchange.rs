//! One request fanned out to three legs. The request is framed once; each leg gets its own
//! small head and writes the shared body from one buffer at its own offset. The primary's
//! response is relayed to the client as it arrives; the secondary's and candidate's are read
//! and measured, and can never hold up the client or the primary.
//!
//! Memory per exchange is bounded: the shared request buffer holds at most
//! `REQUEST_BUFFER_CAP` bytes (a shadow leg that falls that far behind the primary is cut
//! with `error: overflow`), each leg's read buffer at most one response head, and the client
//! output at most `client::OUTPUT_CAP` plus one read.

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::Interest;

use crate::buffer::ReadOutcome;
use crate::client::{self, connection_field, write_own_response, ClientPhase};
use crate::failure::LegError;
use crate::http::{self, body, BodyDecoder, BodyLength, Framing, LegHead, RequestHead, Version};
use crate::reactor::{Conn, Core};
use crate::report::{CapturedBody, ExchangeRecord, Interim, LegOutcome};
use crate::targets::{self, HostField, Role, Target, Targets};
use crate::timer::{Alarm, Deadline};
use crate::transport::Transport;
use crate::upstream::{self, PoolKey, Upstream, UpstreamState};

/// Most framed request-body bytes held for the legs that have not written them yet.
pub const REQUEST_BUFFER_CAP: usize = 256 * 1024;
/// A request body up to this size (payload), received whole, is kept until its exchange ends
/// when the request may be repeated (RFC 9110 §9.2.2), so that a leg whose pooled connection
/// turns out stale can send it again; larger ones stream through the buffer, and are not
/// retried.
const RETRY_BODY_KEPT: usize = 64 * 1024;
/// How long shadows still waiting on an upload the client will not finish (the primary
/// failed, and the client was answered and let go of) are given to fail on their own.
const UPLOAD_CUT_GRACE: Duration = Duration::from_millis(200);

/// At most this often is running out of descriptors for upstream connections logged.
const DESCRIPTORS_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How long a shadow leg may hold the primary back (the shared buffer full, the primary
/// waiting for it) without writing a byte before it is cut.
pub const SHADOW_STALL_GRACE: Duration = Duration::from_millis(100);
/// How long shadow legs may hold the primary back in all, in one exchange, even while they
/// make progress: a slow shadow is cut rather than slowing the primary to its pace.
pub const SHADOW_STALL_BUDGET: Duration = Duration::from_millis(1000);
/// Legs in flight per role and upstream (`target_key`), for `max_inflight=`. A reload that
/// replaces a role's target gives the new one its own bound at once, rather than waiting
/// for legs to a target no longer in use (a hung candidate's, up to `--timeout`); one that
/// keeps it (a changed option, or a target back after another) keeps its count: a
/// reload per second gave a hung candidate a fresh bound each time (hunt 78: 63 legs at
/// `max_inflight=3`). Every leg of a role counts against the descriptor room until it ends.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    /// Each role's current target, as `target_key` has it.
    target: [u64; 3],
    /// Legs in flight per role, by target: the current one's, and those of targets replaced
    /// whose legs have not ended (a few at most, so a short list).
    legs: [Vec<(u64, usize)>; 3],
    /// All of a role's legs in flight.
    total: [usize; 3],
}

impl Inflight {
    /// The roles' legs from now on go to `targets`.
    pub(crate) fn set_targets(&mut self, targets: &Targets) {
        for target in targets.iter() {
            self.set_target(target.role, target_key(target));
        }
    }

    /// `role`'s legs from now on go to the upstream `key` (`target_key`).
    fn set_target(&mut self, role: Role, key: u64) {
        let i = role.index();
        self.target[i] = key;
        self.legs[i].retain(|&(k, n)| n > 0 || k == key);
    }

    /// Counts a leg in, unless `room` (its target's `max_inflight`, then the descriptor room
    /// for all of the role's legs) is full; returns the target key to release it under.
    pub(crate) fn admit(&mut self, role: Role, room: Option<(usize, usize)>) -> Option<u64> {
        let i = role.index();
        let key = self.target[i];
        let legs = &mut self.legs[i];
        let at = match legs.iter().position(|&(k, _)| k == key) {
            Some(at) => at,
            None => {
                legs.push((key, 0));
                legs.len() - 1
            }
        };
        if let Some((target_room, descriptor_room)) = room {
            if legs[at].1 >= target_room || self.total[i] >= descriptor_room {
                return None;
            }
        }
        legs[at].1 += 1;
        self.total[i] += 1;
        Some(key)
    }

    /// A leg counted in under target `key` is over.
    pub(crate) fn release(&mut self, role: Role, key: u64) {
        let i = role.index();
        let legs = &mut self.legs[i];
        if let Some(at) = legs.iter().position(|&(k, _)| k == key) {
            legs[at].1 -= 1;
            if legs[at].1 == 0 && key != self.target[i] {
                legs.swap_remove(at);
            }
            self.total[i] -= 1;
        }
    }
}

/// A target's key for `Inflight`: the upstream it reaches (scheme, host, port), hashed. What
/// is sent to it (`host=`, the Host field's spelling) does not make it another upstream
/// (hunt 81: a `host=` change gave a hung candidate a fresh bound).
fn target_key(target: &Target) -> u64 {
    use std::hash::{Hash, Hasher};
    let (tls, host, port, _) = target.identity();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (tls, host, port).hash(&mut hasher);
    hasher.finish()
}

/// How far a shadow's body may run when the primary's was compressed, before it is cut: the
/// comparison decodes that much (`report::compare`), and a shadow sending the same content
/// uncompressed is the same answer.
const ENCODED_SHADOW_ROOM: u64 = 64 * 1024 * 1024;

/// Rounds of `drive_exchange` per turn of the event loop.
const TURNS_PER_DRIVE: usize = 16;
/// Reads of one upstream per turn of the event loop.
const READS_PER_TURN: usize = 16;
/// Bytes read from an upstream per read call.
const UPSTREAM_READ_STEP: usize = 16 * 1024;
/// More than one call of `receive` takes in: what its input may hold and its reads.
const TURN_READ_BYTES: u64 = 2 * (READS_PER_TURN as u64 + 1) * UPSTREAM_READ_STEP as u64;
/// Most addresses of a host name one leg tries. A name with more is a pool behind DNS, not
/// a choice between address families; each try has its own connect deadline.
const MAX_CONNECT_ATTEMPTS: usize = 8;

/// The request as the client sent it, framed once for all legs.
#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    /// Decodes the client's body; it is re-framed into `buf`.
    pub decoder: BodyDecoder,
    /// Framed body bytes not yet written by every leg still sending.
    pub buf: Vec<u8>,
    /// Stream offset of `buf[0]`: bytes already dropped because every leg wrote them.
    pub base: u64,
    /// Payload bytes received from the client.
    pub body_bytes: u64,
}

impl Request {
    /// The whole body has been received from the client.
    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Stream offset just past the last framed byte.
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }
}

/// Where the primary's response to the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientResponse {
    /// Nothing sent yet.
    Pending,
    /// The head is out; the body is being relayed with this framing.
    Streaming(Framing),
    /// The whole response is in the client's output.
    Done,
    /// The client is gone: responses are read and dropped.
    Abandoned,
}

/// How far a leg's response has come.
#[derive(Debug)]
pub enum LegResponse {
    /// Waiting for the (final) head.
    Head,
    /// Reading the body of a final response.
    Body {
        status: u16,
        reason: String,
        keep_alive: bool,
        /// End-to-end fields, kept for the comparison.
        fields: Vec<u8>,
        decoder: BodyDecoder,
        bytes: u64,
        /// The start of the body (up to `--max-compare-bytes`) and a hash of all of it.
        capture: CapturedBody,
    },
}

/// One of the three legs of an exchange.
#[derive(Debug)]
pub struct Leg {
    pub role: Role,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Most exchanges this leg's target may have in flight before it is skipped.
    pub max_inflight: usize,
    /// The target the leg was counted under (`Inflight`).
    pub target_key: u64,
    /// When the whole leg must be over.
    pub deadline: Instant,
    /// When its TCP connect must be done, while it is connecting.
    pub connect_deadline: Option<Instant>,
    /// The upstream connection (slab key) while the leg holds one.
    pub conn: Option<usize>,
    /// This leg's request head (its own Host and framing fields) and how much went out.
    pub head: Vec<u8>,
    pub head_sent: usize,
    /// Stream offset of the request body written so far.
    pub body_sent: u64,
    pub response: LegResponse,
    /// A stale pooled connection was already replaced once.
    pub retried: bool,
    /// Connections that failed before their handshake completed, each followed by one to
    /// the target's next address.
    pub failed_connects: u8,
    /// The address of the connection that carried the leg, or last tried to (`$upstream_addr`
    /// in nginx's logs): which of a name's addresses answered.
    pub upstream: Option<SocketAddr>,
    /// The last interim (1xx) response the upstream sent before its final one, but a 100
    /// (never relayed, so never compared).
    pub interim: Option<Interim>,
    /// How many interim responses came, 100s included (`Core::progress`). A connection that
    /// sent one was not stale, whatever happens next.
    pub interims: u32,
    /// Set once the leg is over; the exchange reports when all three are.
    pub outcome: Option<LegOutcome>,
    /// Its waits on the client: the client's time, not the upstream's.
    pub waits: ClientWaits,
}

/// A leg's waits on its client: for request body bytes the client has not sent yet (any
/// leg), or for room for the response it is reading slowly (the primary). That time is the
/// client's, not the upstream's: it moves the leg's deadline on, up to `--send-timeout` of
/// one wait (a client that stalls is not waited on forever), and is left out of its latency
/// (a slow reader's download made the primary look slow).
#[derive(Debug, Default)]
pub struct ClientWaits {
    /// The current wait, since then.
    since: Option<Instant>,
    /// Of the current wait, what the deadline was already moved on by when it came first.
    credited: Duration,
    /// The waits that are over.
    over: Duration,
    /// The response head came before the client's upload ended, with this much waiting
    /// behind it: the upstream answered without the rest, so those waits were its own time
    /// too (a slow early 403 read as 0.1 ms). The later ones (a slow reader of its answer)
    /// are the client's, as for any leg.
    before_early_answer: Option<Duration>,
}

impl ClientWaits {
    /// A wait begins now, unless one goes on.
    fn begin(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn waiting(&self) -> bool {
        self.since.is_some()
    }

    /// The wait, if any, is over at `now`: returns by how much more the deadline moves on.
    fn end(&mut self, now: Instant) -> Duration {
        let Some(since) = self.since.take() else {
            return Duration::ZERO;
        };
        let waited = now.saturating_duration_since(since);
        self.over += waited;
        waited.saturating_sub(std::mem::take(&mut self.credited))
    }

    /// The deadline came during a wait: by how much more it moves on, the wait so far, unless
    /// the client has been stalled for `patience` (then it stands, and the leg times out).
    fn credit(&mut self, now: Instant, patience: Duration) -> Duration {
        let Some(since) = self.since else {
            return Duration::ZERO;
        };
        let waited = now.saturating_duration_since(since);
        if waited >= patience {
            return Duration::ZERO;
        }
        waited.saturating_sub(std::mem::replace(&mut self.credited, waited))
    }

    /// The response head came at `now`, before the client's upload ended: the wait for it
    /// ends here (what follows is no longer for the body; left running, the rest of it was
    /// taken for the client's time: hunt 81), and the waits so far count as the upstream's.
    /// Returns by how much more the deadline moves on.
    fn answered_early(&mut self, now: Instant) -> Duration {
        if self.before_early_answer.is_some() {
            return Duration::ZERO;
        }
        let credit = self.end(now);
        self.before_early_answer = Some(self.over);
        credit
    }

    /// Of `elapsed` up to `now`, the upstream's own time: less the waits, the current one
    /// too, but those before an early answer.
    fn own_time(&self, elapsed: Duration, now: Instant) -> Duration {
        let current = self
            .since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let own = self.before_early_answer.unwrap_or(Duration::ZERO);
        elapsed.saturating_sub((self.over + current).saturating_sub(own))
    }
}

impl Leg {
    /// Body bytes its response keeps for the comparison so far.
    fn captured_len(&self) -> usize {
        match &self.response {
            LegResponse::Body { capture, .. } => capture.bytes.len(),
            LegResponse::Head => 0,
        }
    }

    fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// Its request may be sent again on a new connection if this one proves stale: nothing
    /// of the response came yet, the request is safe to repeat (RFC 9110 §9.2.2), its body is
    /// still whole in the buffer, and it was not sent again already.
    fn may_resend(&self, request: &Request) -> bool {
        !self.retried
            && self.interims == 0
            && matches!(self.response, LegResponse::Head)
            && request.base == 0
            && request.head.is_idempotent()
    }

    /// The wait on the client, if any, is over at `now`: the deadline moves on by its length.
    fn release(&mut self, now: Instant) {
        self.deadline += self.waits.end(now);
    }

    /// Its time from `started` (its exchange's start) to `now`, the upstream's own.
    fn latency(&self, started: Instant, now: Instant) -> Duration {
        self.waits
            .own_time(now.saturating_duration_since(started), now)
    }

    /// The deadline came during a wait on the client (`ClientWaits::credit`).
    fn credit_wait(&mut self, now: Instant, patience: Duration) {
        self.deadline += self.waits.credit(now, patience);
    }

    /// Still has request bytes to write (so it pins the shared buffer).
    fn is_sending(&self, request_end: u64, request_done: bool) -> bool {
        !self.is_finished()
            && (self.head_sent < self.head.len() || self.body_sent < request_end || !request_done)
    }
}

/// One client request and its three legs.
#[derive(Debug)]
pub struct Exchange {
    /// 1, 2, 3 ... in arrival order; also names this exchange in deadlines.
    pub id: u64,
    /// The targets generation it started on.
    pub epoch: u64,
    pub started: Instant,
    /// The targets this exchange started with (a reload does not move it).
    pub targets: Arc<Targets>,
    /// The client connection (slab key) while it still reads or waits on this exchange.
    pub client: Option<usize>,
    pub request: Request,
    pub response: ClientResponse,
    pub legs: [Leg; 3],
    /// The nearest leg, connect or stall deadline.
    pub alarm: Alarm,
    /// Since when the primary has been waiting for shadow legs to drain the buffer, and the
    /// buffer's low-water mark then (progress restarts the grace).
    pub shadow_stall: Option<(Instant, u64)>,
    /// Time the primary already spent waiting on shadow legs in this exchange.
    pub stall_spent: Duration,
    /// When the current stall runs out of budget.
    pub stall_deadline: Option<Instant>,
    /// The client was let go of with its upload unfinished (the primary failed): the legs
    /// still waiting on the rest fail with this, once the events of the turn are handled.
    pub upload_cut: Option<(Instant, LegError)>,
    /// Counted in `Core::orphans`: its client left while the primary leg still ran.
    pub orphan: bool,
    /// The client went away before its whole answer was out (`ExchangeRecord::client_left`).
    pub client_left: bool,
    /// Its answer is queued in the client's output, not yet all out (`Client::answering`).
    pub awaiting_flush: bool,
    /// In `Core::again`, to be driven next turn (so it is put there once).
    pub queued_again: bool,
    /// Response body bytes its legs keep for the comparison, counted in `Core::captured`.
    pub captured: usize,
}

impl Exchange {
    /// The nearest deadline of a leg still running.
    fn next_deadline(&self) -> Option<Instant> {
        self.legs
            .iter()
            .filter(|leg| !leg.is_finished())
            .map(|leg| {
                leg.connect_deadline
                    .map_or(leg.deadline, |c| c.min(leg.deadline))
            })
            .chain(self.stall_deadline)
            .chain(self.upload_cut.as_ref().map(|(at, _)| *at))
            .min()
    }

    fn all_legs_finished(&self) -> bool {
        self.legs.iter().all(Leg::is_finished)
    }

    /// The lowest body offset a leg still sending needs; everything before can go.
    fn low_water(&self) -> u64 {
        let (end, done) = (self.request.end(), self.request.is_done());
        self.legs
            .iter()
            .filter(|leg| leg.is_sending(end, done))
            .map(|leg| leg.body_sent)
            .min()
            .unwrap_or(end)
    }

    fn record(self) -> ExchangeRecord {
        let head = self.request.head;
        let upstreams = [0, 1, 2].map(|i| self.legs[i].upstream);
        let [p, s, c] = self
            .legs
            .map(|leg| leg.outcome.unwrap_or(LegOutcome::Skipped("unfinished")));
        ExchangeRecord {
            id: self.id,
            method: head.method,
            target: head.target,
            version: head.version,
            host: head.host,
            request_body_bytes: self.request.body_bytes,
            epoch: self.epoch,
            legs: [p, s, c],
            upstreams,
            client_left: self.client_left,
        }
    }
}

/// What reading a leg's response came to this time.
enum Step {
    /// Waiting for the upstream (or for the client to drain).
    Blocked,
    /// Read its share for this turn; more is waiting (come back without a new event).
    Yield,
    /// The response is complete.
    Complete,
    Failed(LegError),
}

impl Core {
    /// Starts the exchange for a request just read from client `client_key`.
    pub(crate) fn start_exchange(&mut self, client_key: usize, head: RequestHead) {
        let id = self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.started += 1;
        let now = Instant::now();
        let targets = Arc::clone(&self.targets);
        let client_ip = match self.conns.get(client_key) {
            // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: sent as a.b.c.d.
            Some(Conn::Client(client)) if self.settings.forward_client_ip => {
                Some(client.peer.ip().to_canonical())
            }
            _ => None,
        };
        let shadow_skip = self.shadow_skip(&head);
        let settings = &self.settings;
        let scratch = &mut self.scratch;
        let legs = Role::ALL.map(|role| {
            let target = targets.get(role);
            let timeout = target.options.timeout.unwrap_or(settings.timeout);
            let host = match &target.options.host {
                // An HTTP/1.0 request may lack Host; HTTP/1.1 upstreams need one (RFC 9112 §3.2).
                None | Some(HostField::Keep) => {
                    head.host.is_none().then_some(target.authority.as_str())
                }
                Some(HostField::Target) => Some(target.authority.as_str()),
                Some(HostField::Literal(name)) => Some(name.as_str()),
            };
            let mut extra = [("", ""); 2];
            let mut extras = 0;
            if let Some(name) = settings.role_header.as_deref() {
                extra[extras] = (name, role.name());
                extras += 1;
            }
            if settings.close_connections {
                extra[extras] = ("Connection", "close");
                extras += 1;
            }
            let mut leg_head = scratch.take();
            head.write_leg_head(
                &LegHead {
                    host,
                    client_ip,
                    extra: &extra[..extras],
                    rules: &target.options.fields,
                },
                &mut leg_head,
            );
            Leg {
                role,
                timeout,
                connect_timeout: target
                    .options
                    .connect_timeout
                    .unwrap_or(settings.connect_timeout),
                max_inflight: target
                    .options
                    .max_inflight
                    .unwrap_or(targets::DEFAULT_MAX_INFLIGHT),
                target_key: 0,
                deadline: now + timeout,
                connect_deadline: None,
                conn: None,
                head: leg_head,
                head_sent: 0,
                body_sent: 0,
                response: LegResponse::Head,
                retried: false,
                failed_connects: 0,
                upstream: None,
                interim: None,
                interims: 0,
                outcome: match (role, shadow_skip) {
                    (Role::Primary, _) | (_, None) => None,
                    (_, Some(reason)) => Some(LegOutcome::Skipped(reason)),
                },
                waits: ClientWaits::default(),
            }
        });
        let decoder = BodyDecoder::new(head.body, &self.settings.limits);
        let expect_continue =
            head.expect_continue && head.version == Version::Http11 && !decoder.is_done();
        let keep_alive = head.keep_alive;
        let exchange = Exchange {
            id,
            epoch: self.targets_epoch,
            started: now,
            targets,
            client: Some(client_key),
            request: Request {
                head,
                decoder,
                buf: Vec::new(),
                base: 0,
                body_bytes: 0,
            },
            response: ClientResponse::Pending,
            legs,
            alarm: Alarm::default(),
            shadow_stall: None,
            stall_spent: Duration::ZERO,
            stall_deadline: None,
            upload_cut: None,
            orphan: false,
            awaiting_flush: false,
            client_left: false,
            queued_again: false,
            captured: 0,
        };
        let key = self.exchanges.insert(exchange);
        if let Some(Conn::Client(client)) = self.conns.get_mut(client_key) {
            client.phase = ClientPhase::Busy { exchange: key };
            client.alarm.clear();
            client.upload_mark = None;
            if client.out.capacity() == 0 {
                client.out = self.scratch.take();
            }
            client.close_after = !keep_alive || self.settings.close_connections;
            if expect_continue {
                // Three legs cannot share one interim response: trident answers it itself.
                client
                    .out
                    .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        for role in Role::ALL {
            let leg = &mut self.exchanges[key].legs[role.index()];
            if leg.is_finished() {
                continue;
            }
            let room = match role {
                Role::Primary => None,
                _ => Some((leg.max_inflight, self.settings.shadow_room)),
            };
            let Some(target_key) = self.inflight.admit(role, room) else {
                // A saturated shadow leg is skipped, never queued: the primary is never
                // skipped and never waits.
                leg.outcome = Some(LegOutcome::Skipped("saturated"));
                continue;
            };
            leg.target_key = target_key;
            self.attach_upstream(key, role);
        }
        self.arm_exchange(key);
    }

    /// Why this request's shadow legs are not sent, if they are not: an unsafe method
    /// (writes would happen three times) or sampling.
    fn shadow_skip(&mut self, head: &RequestHead) -> Option<&'static str> {
        let shadow = &self.settings.shadow;
        if !shadow.methods.allows(&head.method) {
            return Some("method");
        }
        let share = shadow.share;
        if share == u64::MAX {
            return None;
        }
        let draw = match shadow
            .sample_key
            .as_deref()
            .and_then(|name| key_hash(&head.fields, name))
        {
            // One key's requests are all shadowed or none are.
            Some(hash) => mix(hash),
            None => self.rng.next(),
        };
        (draw >= share).then_some("sampling")
    }

    /// Points the exchange's alarm at its nearest deadline.
    fn arm_exchange(&mut self, key: usize) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        if let Some(at) = ex.next_deadline() {
            let deadline = Deadline::Exchange {
                exchange: key,
                id: ex.id,
            };
            self.timers.set_alarm(&mut ex.alarm, at, deadline);
        }
    }

    /// Gives leg `role` a connection: a pooled one, else a new one.
    fn attach_upstream(&mut self, key: usize, role: Role) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let target = ex.targets.get(role);
        while let Some(conn) = self.pool.take(target) {
            if let Some(Conn::Upstream(up)) = self.conns.get_mut(conn) {
                if !quiet_since_pooled(up) {
                    up.state = UpstreamState::Closed;
                    self.closing.push(conn);
                    continue;
                }
                if matches!(up.state, UpstreamState::Idle { .. }) {
                    up.state = UpstreamState::Busy {
                        exchange: key,
                        role,
                    };
                    up.alarm.clear();
                    up.held_back = false;
                    let leg = &mut ex.legs[role.index()];
                    leg.conn = Some(conn);
                    leg.upstream = Some(up.key.addr);
                    return;
                }
            }
        }
        match first_address(self.preferred[role.index()], target) {
            Some(addr) => self.connect_leg(key, role, addr),
            None => self.fail_leg(key, role, LegError::Unresolved),
        }
    }

    /// Gives leg `role` a new connection to `addr`, going on through the target's next
    /// addresses while connecting fails at once (no route to an IPv6 address, say); the last
    /// failure fails the leg.
    fn connect_leg(&mut self, key: usize, role: Role, mut addr: SocketAddr) {
        loop {
            let Some(ex) = self.exchanges.get_mut(key) else {
                return;
            };
            ex.legs[role.index()].upstream = Some(addr);
            let pool_key = PoolKey::of(ex.targets.get(role), addr);
            let error = match self.connect(pool_key, key, role) {
                Ok(conn) => {
                    ex_leg(&mut self.exchanges, key, role).conn = Some(conn);
                    return;
                }
                Err(e) => LegError::from_io(&e),
            };
            match self.next_address(key, role, addr, &error) {
                Some(next) => addr = next,
                None => return self.fail_leg(key, role, error),
            }
        }
    }

    /// The address leg `role` tries after a connection to `failed` failed with `error`
    /// before its handshake completed: the target's next one, while the leg has one left.
    fn next_address(
        &mut self,
        key: usize,
        role: Role,
        failed: SocketAddr,
        error: &LegError,
    ) -> Option<SocketAddr> {
        let ex = self.exchanges.get_mut(key)?;
        let target = ex.targets.get(role);
        let leg = &mut ex.legs[role.index()];
        let attempts = target.address_count().min(MAX_CONNECT_ATTEMPTS);
        if !error.is_connect_failure() || usize::from(leg.failed_connects) + 1 >= attempts {
            return None;
        }
        leg.failed_connects += 1;
        let next = target.address_after(failed);
        debug!(
            "exchange {}: {role}: {failed}: {error}; trying {next}",
            ex.id
        );
        Some(next)
    }

    /// Opens a non-blocking connection to `pool_key`'s address for leg `role` of exchange
    /// `key`.
    fn connect(&mut self, pool_key: PoolKey, key: usize, role: Role) -> io::Result<usize> {
        let stream = TcpStream::connect(pool_key.addr).inspect_err(|e| {
            // EMFILE, ENFILE: the process (or the system) has no descriptor left. The legs
            // say so on their lines; the log says it once a minute, as for accept.
            if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                let quiet = self
                    .descriptors_logged
                    .is_some_and(|at| at.elapsed() < DESCRIPTORS_LOG_INTERVAL);
                if !quiet {
                    self.descriptors_logged = Some(Instant::now());
                    warn!(
                        "no descriptor left to connect to an upstream ({e}): legs fail until some \
                         close (said at most once a minute; see --max-clients)"
                    );
                }
            }
        })?;
        // Heads and bodies go out as separate writes; Nagle would hold the second one.
        stream.set_nodelay(true)?;
        let stream = self.upstream_transport(stream, key, role)?;
        self.next_serial += 1;
        let serial = self.next_serial;
        let entry = self.conns.vacant_entry();
        let conn = entry.key();
        let mut up = Upstream::connecting(serial, stream, pool_key, key, role);
        self.registry.register(
            up.stream.tcp_mut(),
            mio::Token(conn),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn::Upstream(up));
        if let Some(ex) = self.exchanges.get_mut(key) {
            let leg = &mut ex.legs[role.index()];
            leg.connect_deadline = Some(Instant::now() + leg.connect_timeout);
        }
        Ok(conn)
    }

    /// Plain TCP, or a TLS client session for an `https://` target (verified unless the
    /// leg says `tls_verify=off`).
    fn upstream_transport(
        &self,
        stream: TcpStream,
        key: usize,
        role: Role,
    ) -> io::Result<Transport> {
        let Some(ex) = self.exchanges.get(key) else {
            return Ok(Transport::Plain(stream));
        };
        let target = ex.targets.get(role);
        if !target.tls {
            return Ok(Transport::Plain(stream));
        }
        let config = if target.verifies_tls() {
            &self.tls.clients.verified
        } else {
            &self.tls.clients.unverified
        };
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let name = crate::tls::server_name(&target.host).map_err(|e| invalid(e.to_string()))?;
        let session = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Transport::tls(stream, session.into()))
    }

    /// Readiness on upstream connection `key`.
    pub(crate) fn upstream_ready(&mut self, key: usize) {
        let Some(Conn::Upstream(up)) = self.conns.get_mut(key) else {
            return;
        };
        match up.state {
            UpstreamState::Closed => {}
            UpstreamState::Idle { .. } => {
                // An idle upstream has nothing to say: this is its close (or garbage),
                // unless it was only TLS talking (a session ticket, a key update) or a
                // readable flag left from the last response.
                if up.readable {
                    if up.stream.is_quiet() {
                        up.readable = false;
                        return;
                    }
                    debug!(
                        "pooled connection to {} closed by the upstream",
                        up.key.addr
                    );
                    // Takes it out of the pool too.
                    self.close_conn(key);
                }
            }
            UpstreamState::Busy { exchange, role } => {
                if !up.connected {
                    match connect_result(up.stream.tcp()) {
                        Ok(true) => {
                            up.connected = true;
                            let addr = up.key.addr;
                            self.leg_connected(exchange, role, addr);
                        }
                        Ok(false) => return,
                        Err(e) => {
                            self.fail_leg(exchange, role, LegError::from_io(&e));
                            self.after_leg_event(exchange);
                            return;
                        }
                    }
                }
                self.after_leg_event(exchange);
            }
        }
    }

    /// Leg `role` of `exchange` completed its handshake with `addr`: its connect deadline is
    /// off, and when `addr` is not where new connections go first, it becomes that (the
    /// one before failed, or this leg would not have come here).
    fn leg_connected(&mut self, exchange: usize, role: Role, addr: SocketAddr) {
        let Some(ex) = self.exchanges.get_mut(exchange) else {
            return;
        };
        ex.legs[role.index()].connect_deadline = None;
        let target = ex.targets.get(role);
        // (A connected leg's target has addresses.)
        let Some(first) = first_address(self.preferred[role.index()], target) else {
            return;
        };
        if addr != first {
            info!(
                "{role}: connected to {} at {addr} after {first} failed; new connections go \
                 to {addr} first",
                target.host
            );
            self.preferred[role.index()] = Some(addr);
        }
    }

    /// Something happened on a leg of `exchange`: drive the client if it is attached (it
    /// drives the exchange), else the exchange alone.
    pub(crate) fn after_leg_event(&mut self, exchange: usize) {
        let client = self.exchanges.get(exchange).and_then(|ex| ex.client);
        match client {
            Some(client) => self.drive_client(client),
            None => self.drive_exchange(exchange),
        }
    }

    /// Moves exchange `key` forward: request bytes from the client to the legs, responses
    /// from the legs (the primary's to the client).
    ///
    /// Runs until nothing moves: room made by one side (legs draining the shared buffer, the
    /// client draining its output) is used by the other at once, since readiness that was
    /// already reported will not be reported again.
    pub(crate) fn drive_exchange(&mut self, key: usize) {
        for _ in 0..TURNS_PER_DRIVE {
            let before = self.progress(key);
            self.pump_request(key);
            self.drive_leg(key, Role::Primary);
            // The client is sent the primary's bytes before the shadows' answers are parsed.
            if let Some(client) = self.exchanges.get(key).and_then(|ex| ex.client) {
                if matches!(self.conns.get(client), Some(Conn::Client(c)) if c.pending_output() > 0)
                {
                    self.flush_client(client);
                }
            }
            self.drive_leg(key, Role::Secondary);
            self.drive_leg(key, Role::Candidate);
            self.release_request_bytes(key);
            match self.exchanges.get(key).and_then(|ex| ex.client) {
                Some(client) => {
                    self.flush_client(client);
                }
                None => {
                    self.finish_exchange_if_done(key);
                    return;
                }
            }
            if self.progress(key) == before {
                return;
            }
        }
        // Still moving: give every other socket and deadline a turn, then come back.
        self.drive_later(key);
    }

    /// Exchange `key` stopped to give others a turn: drive it again next turn, once however
    /// often it yielded. (An entry per yield grew the list by one every turn for as long as a
    /// shadow kept sending, each entry another round of its reads: one endless body made
    /// the reactor read thousands of times a turn, and every other client wait.)
    pub(crate) fn drive_later(&mut self, key: usize) {
        if let Some(ex) = self.exchanges.get_mut(key) {
            if !ex.queued_again {
                ex.queued_again = true;
                self.again.push((key, ex.id));
            }
        }
    }

    /// A fingerprint of how far exchange `key` and its client have come; equal fingerprints
    /// mean nothing moved.
    fn progress(&self, key: usize) -> Option<(u64, u64, (u32, u64), usize)> {
        let ex = self.exchanges.get(key)?;
        let sent: u64 = ex
            .legs
            .iter()
            .map(|leg| leg.head_sent as u64 + leg.body_sent + u64::from(leg.is_finished()))
            .sum();
        // Interim heads count too: relayed and written out within one round, they leave the
        // client's output as it was, and the round would look idle while more wait.
        let primary = &ex.legs[Role::Primary.index()];
        let relayed = match &primary.response {
            LegResponse::Body { bytes, .. } => (primary.interims, *bytes + 1),
            LegResponse::Head => (primary.interims, 0),
        };
        let output = match ex.client.and_then(|c| self.conns.get(c)) {
            Some(Conn::Client(client)) => client.out_pos + client.out.len(),
            _ => 0,
        };
        Some((ex.request.end(), sent, relayed, output))
    }

    /// Reads the client's request body into the shared buffer, as far as the cap allows.
    fn pump_request(&mut self, key: usize) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let Some(client_key) = ex.client else {
            return;
        };
        let Some(Conn::Client(client)) = self.conns.get_mut(client_key) else {
            return;
        };
        let request = &mut ex.request;
        let chunked = request.head.body == BodyLength::Chunked;
        let mut failure = None;
        while !request.is_done() && request.buf.len() < REQUEST_BUFFER_CAP {
            if client.input.is_empty() {
                self.spares.lend(&mut client.input);
                match client.fill(client::READ_STEP) {
                    Ok(true) => continue,
                    Ok(false) => {
                        if client.eof {
                            failure = Some(None);
                        }
                        break;
                    }
                    Err(e) => {
                        debug!("client {}: read failed: {e}", client.peer);
                        failure = Some(None);
                        break;
                    }
                }
            }
            match request.decoder.decode(client.input.data()) {
                Ok(decoded) => {
                    let payload = &client.input.data()[decoded.data.clone()];
                    if !payload.is_empty() {
                        request.body_bytes += payload.len() as u64;
                        if chunked {
                            body::write_chunk_head(payload.len(), &mut request.buf);
                            request.buf.extend_from_slice(payload);
                            request.buf.extend_from_slice(body::CHUNK_TAIL);
                        } else {
                            request.buf.extend_from_slice(payload);
                        }
                    }
                    client.input.consume(decoded.consumed);
                    if request.is_done() && chunked {
                        request.buf.extend_from_slice(body::LAST_CHUNK);
                    }
                }
                Err(e) => {
                    debug!("client {}: bad request body: {e}", client.peer);
                    failure = Some(Some(e));
                    break;
                }
            }
        }
        if let Some(Conn::Client(client)) = self.conns.get_mut(client_key) {
            self.spares.reclaim(&mut client.input);
        }
        match failure {
            None => {}
            Some(None) => {
                // The client went away mid-body: the request can never be completed.
                self.abort_request(key, LegError::ClientClosed);
                self.client_gone(client_key);
            }
            Some(Some(e)) => {
                if let Some(Conn::Client(client)) = self.conns.get_mut(client_key) {
                    client.close_after = true;
                    client.input.clear();
                }
                // The client hears why first; failing the legs after cannot turn it into a 502.
                self.respond_to_client_with_error(
                    key,
                    e.status(),
                    &format!("trident: bad request body: {e}"),
                );
                self.abort_request(key, LegError::ClientClosed);
                if let Some(ex) = self.exchanges.get_mut(key) {
                    ex.client = None;
                }
                if let Some(Conn::Client(client)) = self.conns.get_mut(client_key) {
                    client.phase = ClientPhase::Closing;
                }
                // Already answered (an early answer, whole), nothing above drove it: it would
                // hold its place for good (hunt 87).
                self.drive_client(client_key);
            }
        }
    }

    /// Every leg still waiting on the request for its answer fails with `error`: the request
    /// will never be complete (the client went away, sent a bad body, stopped sending it, or
    /// the primary failed mid-upload). A leg whose upstream answered without the rest (early)
    /// reads on, to its end or its deadline: its line says what its upstream sent, and it is
    /// compared (hunts 85 and 86: every leg read `client closed before request complete`, the
    /// primary's 200 lost).
    pub(crate) fn abort_request(&mut self, key: usize, error: LegError) {
        for role in Role::ALL {
            let unanswered = self.exchanges.get(key).is_some_and(|ex| {
                let leg = &ex.legs[role.index()];
                !leg.is_finished() && matches!(leg.response, LegResponse::Head)
            });
            if unanswered {
                self.fail_leg(key, role, error.clone());
            }
        }
    }

    /// Drops request bytes every sending leg has written; cuts shadow legs that fell a whole
    /// buffer behind a primary that has caught up.
    fn release_request_bytes(&mut self, key: usize) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let end = ex.request.end();
        let primary = &ex.legs[Role::Primary.index()];
        let primary_waits = ex.request.buf.len() >= REQUEST_BUFFER_CAP
            && (primary.is_finished() || primary.body_sent == end);
        let held_back = primary_waits
            && ex.legs[1..]
                .iter()
                .any(|leg| !leg.is_finished() && leg.body_sent < end);
        if held_back {
            let now = Instant::now();
            // A shadow leg that is merely descheduled for a moment is waited for; one that
            // makes no progress for SHADOW_STALL_GRACE, or that has held the primary back for
            // SHADOW_STALL_BUDGET in all, is cut.
            let low = ex.low_water();
            let (since, low_then) = *ex.shadow_stall.get_or_insert((now, low));
            let (since, stall) = if low > low_then {
                ex.stall_spent += now.saturating_duration_since(since);
                ex.shadow_stall = Some((now, low));
                (now, Duration::ZERO)
            } else {
                (since, now.saturating_duration_since(since))
            };
            let budget_left = SHADOW_STALL_BUDGET.saturating_sub(ex.stall_spent + stall);
            if stall < SHADOW_STALL_GRACE && !budget_left.is_zero() {
                ex.stall_deadline = Some((since + SHADOW_STALL_GRACE).min(now + budget_left));
                self.arm_exchange(key);
            } else {
                ex.stall_deadline = None;
                ex.shadow_stall = None;
                ex.stall_spent += stall;
                // Only the legs far behind are holding the buffer (the lowest is a whole
                // buffer behind); a shadow a few KiB behind is healthy.
                let far_behind = end - (REQUEST_BUFFER_CAP / 2) as u64;
                let laggards: Vec<Role> = ex.legs[1..]
                    .iter()
                    .filter(|leg| !leg.is_finished() && leg.body_sent < far_behind)
                    .map(|leg| leg.role)
                    .collect();
                let id = ex.id;
                for role in laggards {
                    warn!("exchange {id}: {role} fell behind the primary, cut");
                    self.fail_leg(key, role, LegError::Overflow);
                }
            }
        } else if let Some((since, _)) = ex.shadow_stall.take() {
            ex.stall_spent += since.elapsed();
            ex.stall_deadline = None;
        }
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        // A small body of a request that may be sent again is kept whole, from its first byte
        // to the exchange's end, so that a stale pooled connection can be replaced for it
        // too: also while it arrives, in as many reads as the network makes of it (dropped
        // once it grows past the bound). (The payload is what counts: a chunked body's
        // framing can be several times it.)
        let request = &ex.request;
        if request.base == 0
            && request.body_bytes <= RETRY_BODY_KEPT as u64
            // Below the cap, where the client is still read (`pump_request`): a kept buffer
            // at the cap stopped the upload until the deadline.
            && request.buf.len() < REQUEST_BUFFER_CAP
            && request.head.is_idempotent()
        {
            return;
        }
        let low = ex.low_water();
        let drop = (low - ex.request.base) as usize;
        if drop > 0 {
            ex.request.buf.drain(..drop);
            ex.request.base = low;
        }
    }

    /// Writes leg `role`'s request bytes and reads its response as far as it can go.
    fn drive_leg(&mut self, key: usize, role: Role) {
        let limits = self.settings.limits;
        let Core {
            conns,
            exchanges,
            spares,
            captured,
            ..
        } = self;
        let Some(ex) = exchanges.get_mut(key) else {
            return;
        };
        // A shadow's body that ran past the primary's whole one by more than the compare cap
        // differs whatever follows; reading on would only spend the reactor (a candidate
        // streaming without end, up to its deadline, on every request).
        let max_body = match (role, &ex.legs[Role::Primary.index()].outcome) {
            (Role::Primary, _) => None,
            (
                _,
                Some(LegOutcome::Response {
                    body_bytes, fields, ..
                }),
            ) => {
                let past = body_bytes + self.settings.max_compare_bytes as u64;
                // A compressed primary's content may be many times its size as sent. Its
                // fields are looked at only once this shadow comes within a turn's reading
                // of the bound: most bodies never do.
                let near = match &ex.legs[role.index()].response {
                    LegResponse::Body { bytes, .. } => bytes + TURN_READ_BYTES >= past,
                    LegResponse::Head => TURN_READ_BYTES >= past,
                };
                Some(
                    if near && http::request::find_field(fields, "Content-Encoding").is_some() {
                        past.max(ENCODED_SHADOW_ROOM)
                    } else {
                        past
                    },
                )
            }
            _ => None,
        };
        let leg = &mut ex.legs[role.index()];
        let Some(conn) = leg.conn else {
            return;
        };
        if leg.is_finished() {
            return;
        }
        let client_key = match (role, ex.response) {
            (Role::Primary, ClientResponse::Pending | ClientResponse::Streaming(_)) => ex.client,
            _ => None,
        };
        let (up, client) = match client_key {
            Some(client_key) => match conns.get2_mut(conn, client_key) {
                Some((Conn::Upstream(up), Conn::Client(client))) => (up, Some(client)),
                _ => return,
            },
            None => match conns.get_mut(conn) {
                Some(Conn::Upstream(up)) => (up, None),
                _ => return,
            },
        };
        if !up.connected {
            return;
        }
        spares.lend(&mut up.input);
        let request = &ex.request;
        // A write can fail because the upstream answered early and closed (RFC 9112 §9.5):
        // its answer is still in the socket, so read before giving up.
        let body_sent_before = leg.body_sent;
        let write_error = send_request(leg, up, request).err();
        // All of the body the client has sent is out: the rest is the client's to send. Any
        // leg, shadows too: their deadlines are theirs, not the uploading client's.
        let awaiting_body = !request.is_done()
            && matches!(leg.response, LegResponse::Head)
            && leg.head_sent == leg.head.len()
            && leg.body_sent == request.end();
        // A wait is over once the client sent more, or when it is no longer for the body (a
        // slow reader's starts again in `receive` if it goes on); driven meanwhile for other
        // reasons, the same wait goes on.
        if leg.waits.waiting() && (leg.body_sent > body_sent_before || !awaiting_body) {
            leg.release(Instant::now());
        }
        if awaiting_body {
            leg.waits.begin();
        }
        if write_error.is_some() {
            // Whatever the upstream sent before it closed is readable now, event or not.
            up.readable = true;
            up.hup = true;
        }
        let client_version = request.head.version;
        let kept_before = leg.captured_len();
        // What this capture may keep: `--max-compare-bytes`, as far as the budget of all the
        // exchanges in flight leaves room (past it, bodies are compared by hash).
        let compare_cap = self
            .settings
            .max_compare_bytes
            .min(kept_before + self.settings.capture_budget.saturating_sub(*captured));
        let awaiting_head = matches!(leg.response, LegResponse::Head);
        let step = receive(
            leg,
            up,
            &limits,
            request,
            client.map(|c| (c, &mut ex.response, client_version)),
            self.draining,
            BodyBounds {
                compare_cap,
                max_body,
            },
        );
        if awaiting_head && !matches!(leg.response, LegResponse::Head) {
            // The final head came this turn.
            up.answer_at = self.turn;
        }
        let kept = leg.captured_len().saturating_sub(kept_before);
        ex.captured += kept;
        *captured += kept;
        // Storage is held only while it holds bytes: under load most connections are
        // between reads, and memory follows the bytes in flight, not the connections.
        spares.reclaim(&mut up.input);
        match (step, write_error) {
            (Step::Complete, _) => self.complete_leg(key, role),
            // No whole answer after all: the failed write is the cause.
            (_, Some(e)) => self.fail_leg(key, role, LegError::from_io(&e)),
            (Step::Failed(error), None) => self.fail_leg(key, role, error),
            (Step::Blocked, None) => {}
            (Step::Yield, None) => self.drive_later(key),
        }
    }

    /// Leg `role` has its whole response: report it and return the connection to the pool.
    fn complete_leg(&mut self, key: usize, role: Role) {
        let draining = self.draining;
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let now = Instant::now();
        let started = ex.started;
        let request_sent = {
            let leg = &ex.legs[role.index()];
            ex.request.is_done()
                && leg.head_sent == leg.head.len()
                && leg.body_sent == ex.request.end()
        };
        let leg = &mut ex.legs[role.index()];
        let LegResponse::Body {
            status,
            reason,
            keep_alive,
            fields,
            bytes,
            capture,
            ..
        } = std::mem::replace(&mut leg.response, LegResponse::Head)
        else {
            return;
        };
        self.inflight.release(role, leg.target_key);
        if role == Role::Primary && std::mem::take(&mut ex.orphan) {
            self.orphans -= 1;
        }
        leg.outcome = Some(LegOutcome::Response {
            status,
            reason,
            body_bytes: bytes,
            elapsed: leg.latency(started, now),
            interim: leg.interim.take(),
            fields,
            body: capture,
        });
        let conn = leg.conn.take();
        if role == Role::Primary && ex.response != ClientResponse::Abandoned {
            ex.response = ClientResponse::Done;
        }
        let Some(conn) = conn else {
            return;
        };
        // A reload may have dropped this target: its connections are not pooled again.
        let still_a_target = match self.conns.get(conn) {
            Some(Conn::Upstream(up)) => self.targets.iter().any(|t| up.key.fits(t)),
            _ => false,
        };
        let reusable = keep_alive
            && request_sent
            && !draining
            && still_a_target
            && !self.settings.close_connections;
        self.release_upstream(conn, reusable);
    }

    /// Parks a finished leg's connection in the pool, or closes it.
    fn release_upstream(&mut self, conn: usize, reusable: bool) {
        let Some(Conn::Upstream(up)) = self.conns.get_mut(conn) else {
            return;
        };
        let now = Instant::now();
        // Counted from when the upstream finished writing, which is about now for an answer
        // read as it came. One held back for a slow client waited in the socket buffers,
        // the upstream's idle clock running, since some time after its head came (hunt 54: a
        // POST crossed the close of a connection pooled seconds too long; hunt 57: counted
        // from the request, a slow upstream's connection was never pooled).
        let expiry = upstream::pool_time(up.idle_timeout, self.settings.pool_idle_timeout)
            .filter(|_| reusable && up.input.is_empty() && !up.hup)
            .map(|pool_time| if up.held_back { up.answer_at } else { now } + pool_time)
            .filter(|&expiry| expiry > now);
        if let Some(expiry) = expiry {
            up.served += 1;
            up.state = UpstreamState::Idle { since: now };
            self.spares.reclaim(&mut up.input);
            if self.pool.put(&up.key, conn) {
                let deadline = Deadline::PooledIdle {
                    conn,
                    serial: up.serial,
                };
                self.timers.set_alarm(&mut up.alarm, expiry, deadline);
                return;
            }
        }
        self.close_conn(conn);
    }

    /// Leg `role` failed. A stale pooled connection is replaced once when the request can be
    /// sent again; otherwise the failure is final (for the primary: 502/504 to the client).
    pub(crate) fn fail_leg(&mut self, key: usize, role: Role, error: LegError) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let leg = &mut ex.legs[role.index()];
        if leg.is_finished() {
            return;
        }
        if let Some(conn) = leg.conn.take() {
            // A connection whose handshake never completed carried nothing of the request.
            let unconnected = match self.conns.get(conn) {
                Some(Conn::Upstream(up)) if !up.connected => Some(up.key.addr),
                _ => None,
            };
            // Stale: a reused connection on which nothing came back for this request, not a
            // byte and not an interim response (an upstream that sent a 103 was alive), or
            // only the 408 of its idle timeout (`receive`, which dropped it).
            let stale = matches!(self.conns.get(conn), Some(Conn::Upstream(up)) if up.is_reused() && up.input.is_empty());
            let retryable = stale
                && leg.may_resend(&ex.request)
                && matches!(
                    error,
                    LegError::ClosedEarly | LegError::ConnectionReset | LegError::IdleTimeout
                );
            let id = ex.id;
            if retryable {
                leg.retried = true;
                leg.head_sent = 0;
                leg.body_sent = 0;
            }
            self.close_conn(conn);
            // (A stale connection was connected, so at most one of the two applies.)
            let again = if let Some(failed) = unconnected {
                self.next_address(key, role, failed, &error)
            } else if retryable {
                debug!("exchange {id}: {role}: stale pooled connection, retrying");
                let Some(ex) = self.exchanges.get(key) else {
                    return;
                };
                first_address(self.preferred[role.index()], ex.targets.get(role))
            } else {
                None
            };
            if let Some(addr) = again {
                self.connect_leg(key, role, addr);
                self.arm_exchange(key);
                return;
            }
        }
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let (now, started) = (Instant::now(), ex.started);
        debug!("exchange {}: {role} failed: {error}", ex.id);
        let status = error.gateway_status();
        let text = match error {
            LegError::ClientClosed => {
                "trident: the request ended before its body did (the client closed its side)"
                    .to_string()
            }
            LegError::ClientStalled(d) => format!(
                "trident: the client sent none of the rest of its request body for {}ms",
                d.as_millis()
            ),
            _ => format!("trident: primary {error}"),
        };
        // What the shadows read if the client is let go of with its upload unfinished: the
        // client's own doing, or the primary's failure.
        let cut = match &error {
            own @ (LegError::ClientStalled(_) | LegError::ClientClosed) => own.clone(),
            _ => LegError::UploadCut,
        };
        let leg = &mut ex.legs[role.index()];
        let elapsed = leg.latency(started, now);
        leg.outcome = Some(LegOutcome::Failed { error, elapsed });
        self.inflight.release(role, leg.target_key);
        if role == Role::Primary && std::mem::take(&mut ex.orphan) {
            self.orphans -= 1;
        }
        if role == Role::Primary {
            self.respond_to_client_with_error(key, status, &text);
            let let_go_mid_upload =
                |ex: &&mut Exchange| ex.client.is_none() && !ex.request.is_done();
            if let Some(ex) = self.exchanges.get_mut(key).filter(let_go_mid_upload) {
                // The rest of the upload is read only to be dropped (the client lingers):
                // the shadows waiting on it fail soon, not at --send-timeout as if slow.
                // After a moment's grace: a shadow whose own upstream fails as the primary's
                // did (they got the same request) reads its own failure, not the cut.
                ex.upload_cut = Some((Instant::now() + UPLOAD_CUT_GRACE, cut));
                self.arm_exchange(key);
            }
        }
    }

    /// The primary failed (or the request was bad): the client gets an error response if
    /// nothing was sent yet, else its connection is closed after what was sent.
    fn respond_to_client_with_error(&mut self, key: usize, status: u16, text: &str) {
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let Some(client_key) = ex.client else {
            return;
        };
        let Some(Conn::Client(client)) = self.conns.get_mut(client_key) else {
            return;
        };
        match ex.response {
            ClientResponse::Pending => {
                let keep_alive = !client.close_after && ex.request.is_done() && !self.draining;
                write_own_response(
                    status,
                    text,
                    ex.request.head.version,
                    keep_alive,
                    ex.request.head.method == "HEAD",
                    &mut client.out,
                );
                if !keep_alive {
                    client.close_after = true;
                }
                ex.response = ClientResponse::Done;
                if !ex.request.is_done() {
                    // The rest of the body will never be read: close after the answer.
                    ex.client = None;
                    client.phase = ClientPhase::Closing;
                }
            }
            ClientResponse::Streaming(framing) => {
                // Part of the response is out: the client must see a truncated message,
                // never a wrong one; a body that ends at the close needs a reset to say so.
                client.cut_short = framing == Framing::Close;
                ex.response = ClientResponse::Abandoned;
                // Its block says so, as for any client let go of before its whole answer
                // (hunt 88: a bad chunk cutting an early answer read as a whole 200).
                ex.client_left = true;
                ex.client = None;
                client.phase = ClientPhase::Closing;
            }
            ClientResponse::Done | ClientResponse::Abandoned => {}
        }
        // A client let go of here is driven by nobody else: send what it is owed.
        if self
            .exchanges
            .get(key)
            .is_some_and(|ex| ex.client.is_none())
        {
            self.drive_client(client_key);
        }
    }

    /// At `--max-clients`, with a new client accepted: the oldest answer still read for a
    /// client that left gives way (its comparison is lost; the summary counts it among the
    /// primary's errors, `made-room`), so the new client is served now, not after that leg's
    /// deadline. False if there is none.
    pub(crate) fn make_room(&mut self) -> bool {
        let oldest = self
            .exchanges
            .iter()
            .filter(|(_, ex)| ex.orphan)
            .min_by_key(|(_, ex)| ex.id)
            .map(|(key, _)| key);
        let Some(key) = oldest else {
            return false;
        };
        self.fail_leg(key, Role::Primary, LegError::MadeRoom);
        self.finish_exchange_if_done(key);
        true
    }

    /// The client of exchange `key` is gone: nothing more is sent to it.
    pub(crate) fn abandon_client(&mut self, key: usize) {
        let request_done = match self.exchanges.get_mut(key) {
            Some(ex) => {
                ex.client = None;
                if ex.response != ClientResponse::Done {
                    ex.response = ClientResponse::Abandoned;
                    ex.client_left = true;
                }
                if !ex.legs[Role::Primary.index()].is_finished() && !ex.orphan {
                    ex.orphan = true;
                    self.orphans += 1;
                    self.new_orphan = true;
                }
                ex.request.is_done()
            }
            None => return,
        };
        if !request_done {
            self.abort_request(key, LegError::ClientClosed);
        }
        // A primary held back by the client's full output can go on now (its readiness was
        // used up while it waited): read to the end, or to the deadline.
        self.drive_exchange(key);
        self.finish_exchange_if_done(key);
    }

    /// The exchange's alarm fired: fail the legs whose connect or whole deadline passed.
    pub(crate) fn exchange_deadline(&mut self, key: usize, id: u64) {
        let now = Instant::now();
        let send_timeout = self.settings.send_timeout;
        let Some(ex) = self.exchanges.get_mut(key) else {
            return;
        };
        let deadline = Deadline::Exchange { exchange: key, id };
        if ex.id != id || !self.timers.fire_alarm(&mut ex.alarm, now, deadline) {
            return;
        }
        if let Some((_, cut)) = ex.upload_cut.take() {
            self.abort_request(key, cut);
        }
        // With the upload buffer full, trident reads nothing of the client: a leg that sent
        // all of it waits on the leg that pins it (the primary, whose own deadline bounds
        // that), not on a stalled client, so `--send-timeout` does not cut its credit.
        let patience = match self.exchanges.get(key) {
            Some(ex) if ex.request.buf.len() >= REQUEST_BUFFER_CAP => Duration::MAX,
            _ => send_timeout,
        };
        for role in Role::ALL {
            let Some(ex) = self.exchanges.get_mut(key) else {
                return;
            };
            let leg = &mut ex.legs[role.index()];
            if leg.is_finished() {
                continue;
            }
            if leg.deadline <= now {
                // Still waiting on the client: that time is not the upstream's.
                leg.credit_wait(now, patience);
            }
            let (timeout, connect_timeout) = (leg.timeout, leg.connect_timeout);
            if leg.deadline <= now {
                self.fail_leg(key, role, LegError::Timeout(timeout));
            } else if leg.connect_deadline.is_some_and(|at| at <= now) {
                self.fail_leg(key, role, LegError::ConnectTimeout(connect_timeout));
            }
        }
        self.arm_exchange(key);
        self.after_leg_event(key);
    }

    /// Reports and frees exchange `key` once all legs are over and the client let go of it.
    pub(crate) fn finish_exchange_if_done(&mut self, key: usize) {
        let done = self
            .exchanges
            .get(key)
            .is_some_and(|ex| ex.client.is_none() && !ex.awaiting_flush && ex.all_legs_finished());
        if !done {
            return;
        }
        let mut ex = self.exchanges.remove(key);
        // Its primary leg ended first, and was counted out then (`complete_leg`, `fail_leg`).
        debug_assert!(
            !ex.orphan,
            "exchange {} freed while counted as an orphan",
            ex.id
        );
        self.captured -= ex.captured;
        for leg in &mut ex.legs {
            self.scratch.give(std::mem::take(&mut leg.head));
        }
        // Counted out after its record is in (or dropped): a reporting thread that sees none
        // in flight has it already.
        let older = ex.epoch < self.targets_epoch;
        let record = ex.record();
        if let Some(report) = &self.report {
            let offered = report.offer(record);
            if older {
                report.older_finished();
            }
            if let Err(dropped) = offered {
                // Counted over all the reactors, as the summary's `not compared` is.
                if dropped.is_power_of_two() {
                    warn!("reporting thread behind: {dropped} exchange blocks dropped so far");
                }
            }
        }
    }
}

/// splitmix64's finaliser: FNV-1a alone leaves the high bits of similar keys (user-1,
/// user-2, ...) close together, and the draw is compared by its high bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether a pooled connection can be reused: nothing arrived on it since it was parked
/// (the upstream closed it, or sent stray bytes). Its readiness events say so for a
/// connection parked before the last poll; one parked longer than `PEEK_AFTER` is also
/// asked directly (one `MSG_PEEK`, or a TLS read), so a close that raced the poll,
/// typically an upstream's keep-alive timeout, is caught before a request that cannot be
/// retried is sent on it.
/// Connections reused at once under load skip the system call.
fn quiet_since_pooled(up: &mut Upstream) -> bool {
    const PEEK_AFTER: Duration = Duration::from_millis(5);
    let UpstreamState::Idle { since } = up.state else {
        return true;
    };
    if !up.readable && since.elapsed() < PEEK_AFTER {
        return true;
    }
    let quiet = up.stream.is_quiet();
    if quiet {
        // A readable flag left from the last response said nothing new.
        up.readable = false;
    }
    quiet
}

/// FNV-1a (64 bit): a stable hash for sampling keys.
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_on(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_on(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash of `--sample-key`'s field, its lines taken as one (`a` and `b` on two lines are
/// `a, b`, RFC 9110 §5.3): a key that a hop split or joined draws the same. None without it.
fn key_hash(fields: &[u8], name: &str) -> Option<u64> {
    let mut values = http::field_values(fields, name);
    let first = fnv1a(values.next()?);
    Some(values.fold(first, |hash, value| fnv1a_on(fnv1a_on(hash, b", "), value)))
}

fn ex_leg(exchanges: &mut slab::Slab<Exchange>, key: usize, role: Role) -> &mut Leg {
    &mut exchanges[key].legs[role.index()]
}

/// The address a new connection for `target` tries first: the one the reactor learned
/// (`Core::preferred`) while the target still has it, else the one its name resolved to first;
/// none while a shadow's name is unresolved.
fn first_address(preferred: Option<SocketAddr>, target: &Target) -> Option<SocketAddr> {
    match preferred {
        Some(addr) if target.has_address(addr) => Some(addr),
        _ => target.first_address(),
    }
}

/// Whether a non-blocking connect finished: Ok(true) connected, Ok(false) still going.
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        // Connecting to a local port nobody listens on, the kernel may pick that very port
        // as the ephemeral one, and TCP's simultaneous open connects the socket to itself:
        // the request would come back as the response. It is a refusal in disguise.
        Ok(peer) if stream.local_addr()? == peer => Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connected to itself: nothing listens there",
        )),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes what leg `leg` has not yet sent of the request: its head, then the shared body.
fn send_request(leg: &mut Leg, up: &mut Upstream, request: &Request) -> io::Result<()> {
    if !matches!(leg.response, LegResponse::Head | LegResponse::Body { .. }) {
        return Ok(());
    }
    while up.writable {
        let head = &leg.head[leg.head_sent..];
        let body = &request.buf[(leg.body_sent - request.base) as usize..];
        if head.is_empty() && body.is_empty() {
            // TLS bytes may still wait for the socket.
            return match up.stream.send_pending() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    up.writable = false;
                    Ok(())
                }
                other => other,
            };
        }
        let asked = head.len() + body.len();
        let written = if head.is_empty() {
            up.stream.write(body)
        } else {
            up.stream
                .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_head = n.min(head.len());
                leg.head_sent += from_head;
                leg.body_sent += (n - from_head) as u64;
                // A short TLS write only means rustls took what it could buffer.
                if n < asked && up.stream.is_plain() {
                    up.writable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => up.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Most response body bytes the exchanges in flight keep for the comparison (each leg up to
/// `--max-compare-bytes`), shared out between the reactors. Exchanges held up by a stalled
/// shadow keep their other legs' bodies until its deadline: 256 of them (`max_inflight`)
/// with 1 MB bodies held 554 MiB. Past the budget, bodies are compared by their hash
/// (`compared by hash`).
pub const CAPTURE_BUDGET: usize = 64 * 1024 * 1024;

/// How much of a leg's response body is kept for the comparison, and read at all.
#[derive(Debug, Clone, Copy)]
struct BodyBounds {
    /// `--max-compare-bytes`: kept; the rest is hashed.
    compare_cap: usize,
    /// A shadow's: past this many bytes it is cut short (`CapturedBody::cut`).
    max_body: Option<u64>,
}

/// Reads and frames leg `leg`'s response. For the primary with a client still waiting,
/// `client` receives the head and body, re-framed, as long as it has output room.
fn receive(
    leg: &mut Leg,
    up: &mut Upstream,
    limits: &http::Limits,
    request: &Request,
    mut client: Option<(&mut client::Client, &mut ClientResponse, Version)>,
    draining: bool,
    bounds: BodyBounds,
) -> Step {
    let mut reads = 0;
    loop {
        match &mut leg.response {
            LegResponse::Head => {
                if !up.input.is_empty() {
                    if let Some((client, _, _)) = client.as_ref() {
                        // An interim head may be relayed: an upstream sending endless 1xx
                        // waits for the client like a body does.
                        // (Not the client's time: a final answer is still owed.)
                        if !client.has_output_room() {
                            up.held_back = true;
                            return Step::Blocked;
                        }
                    }
                    // Parsed at once (a head comes in one read, nearly always), then again
                    // only when new bytes may end it (or make it refused): a head trickled
                    // in short lines is not scanned again from its start at every read.
                    let data = up.input.data();
                    let parsed = if up.head_scanned == 0
                        || http::may_complete_head(data, up.head_scanned)
                        || data.len() > limits.max_head
                    {
                        http::parse_response_head(data, limits, request.head.method == "HEAD")
                    } else {
                        Ok(None)
                    };
                    up.head_scanned = data.len();
                    match parsed {
                        Ok(Some(head)) => {
                            up.input.consume(head.head_len);
                            up.head_scanned = 0;
                            if head.is_interim() {
                                // RFC 9110 §15.2: a proxy forwards 1xx, except one it caused
                                // (trident answers `Expect` itself, so a 100 is not the
                                // client's) and never to an HTTP/1.0 client. Then the final
                                // response follows.
                                if let Some((client, _, Version::Http11)) = client.as_mut() {
                                    if head.status != 100 {
                                        http::write_response_head(
                                            head.status,
                                            &head.reason,
                                            &head.fields,
                                            Framing::None,
                                            http::Connection::Default,
                                            &mut client.out,
                                        );
                                    }
                                }
                                // A 100 is never relayed (above), so no client sees one: it is
                                // not compared either.
                                if head.status != 100 {
                                    leg.interim = Some(Interim {
                                        status: head.status,
                                        fields: head.fields,
                                    });
                                }
                                leg.interims = leg.interims.wrapping_add(1);
                                continue;
                            }
                            if head.status == 408 && up.is_reused() && leg.may_resend(request) {
                                // An upstream that times an idle connection out with a 408
                                // (as Chromium assumes, and retries) sent it before the
                                // request came: stale, like a close. The request goes out
                                // again on a new connection; the 408 was not its answer.
                                up.input.clear();
                                return Step::Failed(LegError::IdleTimeout);
                            }
                            if head.unsent_body {
                                up.stream.reset_on_close();
                            }
                            // Its answer did not wait for the rest of the upload, so neither
                            // does its latency leave out the waits for it.
                            if !request.is_done() {
                                leg.deadline += leg.waits.answered_early(Instant::now());
                            }
                            up.idle_timeout = head.idle_timeout;
                            if let Some((client, response, version)) = client.as_mut() {
                                let framing = head.client_framing(*version);
                                let keep_alive =
                                    !client.close_after && !draining && framing != Framing::Close;
                                if !keep_alive {
                                    client.close_after = true;
                                }
                                http::write_response_head(
                                    head.status,
                                    &head.reason,
                                    &head.fields,
                                    framing,
                                    connection_field(*version, keep_alive),
                                    &mut client.out,
                                );
                                **response = ClientResponse::Streaming(framing);
                            }
                            let mut fields = head.fields;
                            if let (BodyLength::Empty, Some(n)) = (head.body, head.declared_length)
                            {
                                // For the comparison only (the client has its framing):
                                // with no body (HEAD, 304) the length stands for it.
                                fields.extend_from_slice(b"Content-Length: ");
                                http::request::push_decimal(&mut fields, n);
                                fields.extend_from_slice(b"\r\n");
                            }
                            leg.response = LegResponse::Body {
                                status: head.status,
                                reason: head.reason,
                                keep_alive: head.keep_alive,
                                fields,
                                decoder: BodyDecoder::new(head.body, limits),
                                bytes: 0,
                                capture: CapturedBody::new(),
                            };
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => return Step::Failed(LegError::Malformed(e)),
                    }
                }
            }
            LegResponse::Body {
                decoder,
                bytes,
                capture,
                keep_alive,
                ..
            } => {
                if decoder.is_done() {
                    if let Some((client, response, _)) = client.as_mut() {
                        if **response == ClientResponse::Streaming(Framing::Chunked) {
                            client.out.extend_from_slice(body::LAST_CHUNK);
                        }
                    }
                    return Step::Complete;
                }
                if !up.input.is_empty() {
                    if let Some((client, _, _)) = client.as_ref() {
                        if !client.has_output_room() {
                            // The client reads slowly: its time, not the upstream's. What
                            // the upstream sent meanwhile waits in the socket buffers.
                            leg.waits.begin();
                            up.held_back = true;
                            return Step::Blocked;
                        }
                    }
                    let decoded = match decoder.decode(up.input.data()) {
                        Ok(decoded) => decoded,
                        Err(e) => return Step::Failed(LegError::Malformed(e)),
                    };
                    let payload = &up.input.data()[decoded.data.clone()];
                    *bytes += payload.len() as u64;
                    capture.extend(payload, bounds.compare_cap);
                    if bounds.max_body.is_some_and(|max| *bytes > max) {
                        // A response, cut short: it compares as the body it is (longer than
                        // the primary's), as a shadow that finished first would. The rest
                        // of it is never read, so the connection is not kept.
                        capture.cut = true;
                        *keep_alive = false;
                        return Step::Complete;
                    }
                    if let Some((client, response, _)) = client.as_mut() {
                        if !payload.is_empty() {
                            if **response == ClientResponse::Streaming(Framing::Chunked) {
                                body::write_chunk_head(payload.len(), &mut client.out);
                                client.out.extend_from_slice(payload);
                                client.out.extend_from_slice(body::CHUNK_TAIL);
                            } else {
                                client.out.extend_from_slice(payload);
                            }
                        }
                    }
                    up.input.consume(decoded.consumed);
                    continue;
                }
            }
        }
        // Need more bytes from the upstream.
        if !up.readable {
            return Step::Blocked;
        }
        // A fast upstream must not keep the reactor from every other socket and deadline.
        reads += 1;
        if reads > READS_PER_TURN {
            return Step::Yield;
        }
        let limit = match leg.response {
            LegResponse::Head => limits.max_head + 1,
            LegResponse::Body { .. } => UPSTREAM_READ_STEP,
        };
        match up
            .input
            .read_from(&mut up.stream, UPSTREAM_READ_STEP, limit)
        {
            Ok(ReadOutcome::Data { drained }) => {
                // A short read emptied the socket; but a close reported with the data
                // comes with no further event, so it must still be read.
                if drained && !up.hup && up.stream.is_plain() {
                    up.readable = false;
                }
            }
            Ok(ReadOutcome::WouldBlock) => {
                up.readable = false;
                return Step::Blocked;
            }
            Ok(ReadOutcome::Full) => {
                return Step::Failed(LegError::Malformed(http::Error::HeadTooLarge));
            }
            Ok(ReadOutcome::Eof) => {
                up.readable = false;
                return match &mut leg.response {
                    // Named: a close there is the TLS set-up failing (a server that wants
                    // another version, or a client certificate), not a response cut short.
                    LegResponse::Head if up.stream.handshaking() => Step::Failed(LegError::Tls(
                        "the upstream closed during the handshake".to_string(),
                    )),
                    LegResponse::Head => Step::Failed(LegError::ClosedEarly),
                    LegResponse::Body { decoder, .. } => {
                        // RFC 9112 §9.8: over TLS, a body delimited by the close is whole
                        // only if a close_notify ended it; a bare TCP close may be a cut.
                        let cut = matches!(decoder, BodyDecoder::UntilClose)
                            && up.stream.closed_without_notify();
                        match decoder.finish_at_eof() {
                            Ok(()) if !cut => continue_after_eof(leg, client),
                            _ => Step::Failed(LegError::ClosedEarly),
                        }
                    }
                };
            }
            Err(e) => return Step::Failed(LegError::from_io(&e)),
        }
    }
}

/// A read-until-close body ended: close the client's chunked framing and complete.
fn continue_after_eof(
    leg: &mut Leg,
    client: Option<(&mut client::Client, &mut ClientResponse, Version)>,
) -> Step {
    if let (LegResponse::Body { keep_alive, .. }, Some((client, response, _))) =
        (&mut leg.response, client)
    {
        *keep_alive = false;
        if *response == ClientResponse::Streaming(Framing::Chunked) {
            client.out.extend_from_slice(body::LAST_CHUNK);
        }
    }
    Step::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};

    /// A sample key sent on two lines draws as the same key on one line (hunt 64: 26 of 40
    /// keys drew otherwise), and another key or no key draws apart.
    #[test]
    fn a_sample_key_on_several_lines_hashes_as_one() {
        let joined = key_hash(b"X-User: u0, extra\r\n", "x-user");
        let split = key_hash(b"X-User: u0\r\nHost: h\r\nx-user: extra\r\n", "x-user");
        assert_eq!(joined, split);
        assert!(joined.is_some());
        assert_ne!(key_hash(b"X-User: u0\r\n", "x-user"), joined);
        assert_eq!(key_hash(b"Host: h\r\n", "x-user"), None);
    }

    /// A leg's waits on its client move its deadline on and are left out of its latency,
    /// but those before an early answer, whose wait for the upload ends with it (hunt 81).
    #[test]
    fn waits_on_the_client_are_not_the_upstreams_time() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        // A slow reader: 300 ms of 1 s waiting for room.
        let mut waits = ClientWaits {
            since: Some(t0 + ms(200)),
            ..ClientWaits::default()
        };
        assert_eq!(waits.credit(t0 + ms(400), ms(1000)), ms(200));
        assert_eq!(waits.end(t0 + ms(500)), ms(100), "the rest of the wait");
        assert_eq!(waits.own_time(ms(1000), t0 + ms(1000)), ms(700));
        // A wait longer than the patience moves the deadline no further.
        let mut stalled = ClientWaits {
            since: Some(t0),
            ..ClientWaits::default()
        };
        assert_eq!(stalled.credit(t0 + ms(1500), ms(1000)), Duration::ZERO);
        // An early answer at 300 ms, while waiting for the upload since 100 ms: all of its
        // time is its own, though nothing ended the wait after it.
        let mut early = ClientWaits {
            since: Some(t0 + ms(100)),
            ..ClientWaits::default()
        };
        assert_eq!(early.answered_early(t0 + ms(300)), ms(200));
        assert!(!early.waiting());
        assert_eq!(early.own_time(ms(2300), t0 + ms(2300)), ms(2300));
        // A slow read of it afterwards is the client's again.
        early.since = Some(t0 + ms(2300));
        assert_eq!(early.own_time(ms(3300), t0 + ms(3300)), ms(2300));
        // Only the first final head counts.
        assert_eq!(early.answered_early(t0 + ms(3300)), Duration::ZERO);
    }

    /// A replaced target's legs leave its `max_inflight` to the new target, but still count
    /// against the descriptor room until they end; a target kept, or back after another,
    /// keeps its legs' count (hunt 78); the primary is never refused.
    #[test]
    fn inflight_counts_per_target_and_replaced_targets_legs_keep_their_descriptors() {
        let mut inflight = Inflight::default();
        let room = Some((2, 3));
        let (a, b) = (1, 2);
        inflight.set_target(Role::Candidate, a);
        let old: Vec<u64> = (0..2)
            .map(|_| inflight.admit(Role::Candidate, room).expect("room"))
            .collect();
        assert_eq!(inflight.admit(Role::Candidate, room), None, "max_inflight");
        // The same target again (a reload that changed an option): the same bound.
        inflight.set_target(Role::Candidate, a);
        assert_eq!(inflight.admit(Role::Candidate, room), None, "kept");
        inflight.set_target(Role::Candidate, b);
        let new = inflight
            .admit(Role::Candidate, room)
            .expect("a new target's own bound");
        assert_eq!(new, b);
        assert_eq!(
            inflight.admit(Role::Candidate, room),
            None,
            "descriptor room"
        );
        // Back to the first target: its two legs still count.
        inflight.set_target(Role::Candidate, a);
        assert_eq!(inflight.admit(Role::Candidate, room), None, "back");
        inflight.release(Role::Candidate, old[0]);
        let second = inflight
            .admit(Role::Candidate, room)
            .expect("a leg of its own ended");
        assert_eq!(second, a);
        assert_eq!(
            inflight.admit(Role::Candidate, room),
            None,
            "max_inflight again"
        );
        for key in [old[1], new, second] {
            inflight.release(Role::Candidate, key);
        }
        assert_eq!(inflight.total, [0; 3]);
        assert_eq!(inflight.legs[Role::Candidate.index()], [(a, 0)]);
        assert!((0..1000).all(|_| inflight.admit(Role::Primary, None).is_some()));
    }

    #[test]
    fn a_socket_connected_to_itself_is_a_refusal() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let own = socket.local_addr().unwrap();
        // What the kernel does when it picks the target's port as the ephemeral one.
        socket.connect(&own).unwrap();
        let stream = TcpStream::from_std(socket.into());
        let refused = connect_result(&stream).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(LegError::from_io(&refused), LegError::ConnectionRefused);
    }

    #[test]
    fn a_socket_connected_to_a_listener_is_connected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::from_std(
            std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap(),
        );
        assert!(connect_result(&stream).unwrap());
    }
}
