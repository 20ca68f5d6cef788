//! A misbehaving upstream that any test can put in any role, one behaviour per request (a
//! plan picks it from each request's arrival), plus the addresses that fail before HTTP
//! starts (nothing listening, a connect that never completes), a client that keeps the raw
//! bytes it received, and the process probes (file descriptors, resident memory) that tell
//! whether trident shrugged a failure off or kept something of it.
//!
//! The server peeks at each request head before acting, so a behaviour can leave the whole
//! request unread (a close with unread data is a reset, RFC 1122 §4.2.2.13: that is how
//! `ResetMidResponse`, `RejectBeforeBody` and `StaleKeepAlive` send an RST without
//! `SO_LINGER`, which std does not offer on stable). `hold`/`release` and `send_stray` let a
//! test line a misbehaviour up with something else. Every thread it starts ends within a few
//! tens of milliseconds of `drop` or of trident closing the connection, and never blocks the
//! test process's exit.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::trident::Trident;
use super::upstream::Upstream;
use super::wire::{self, Field, Wire};

/// The body of every healthy answer.
pub const HEALTHY_BODY: &[u8] = b"hostile says hello";
/// The body length announced by the mid-body behaviours (never sent in full).
pub const BIG_BODY: usize = 1024 * 1024;
/// Where `CloseMidBodyLength` and `CloseMidBodyChunked` stop sending.
pub const CUT_AT: usize = 256 * 1024;
/// Body bytes `ResetMidResponse` sends before its reset.
pub const RESET_AT: usize = 16 * 1024;
/// What `RejectBeforeBody` answers.
pub const REJECTION: &[u8] =
    b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big\n";
/// What `Garbage` answers.
/// An SSH server's banner, as a target on the wrong port sends: one line, no blank line to
/// end a head, and then it waits for the client's own banner.
pub const GARBAGE: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n";
/// What `TrailingBytes` sends right after a complete answer: a whole second response, so
/// that a proxy reusing the connection would hand it to the next request.
pub const TRAILING: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwrong";
/// `LengthOverstated` announces this many body bytes ...
pub const OVERSTATED_LENGTH: usize = 100;
/// ... and sends only these.
pub const UNDERSENT_BODY: &[u8] = b"only twenty bytes!!!";
/// `LateHeadBody` writes the body a HEAD must not have this long after the head.
const LATE_BODY_AFTER: Duration = Duration::from_millis(150);
/// `Trickle` sends one byte per this interval.
pub const TRICKLE_EVERY: Duration = Duration::from_millis(100);
/// `ResetMidResponse` waits this long between its partial response and the reset, so the
/// bytes are on their way before the reset discards what the kernel still holds.
const RESET_PAUSE: Duration = Duration::from_millis(30);
/// How often a blocked read or a wait looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// The longest `AcceptNoRead` holds a connection when nobody stops it.
const MAX_HOLD: Duration = Duration::from_secs(30);
/// A chunk of the endless body, and the pause after every few of them (about 60 MB/s:
/// plenty to show a leak, not enough to starve the other tests of CPU).
const ENDLESS_CHUNK: usize = 16 * 1024;
const ENDLESS_BURST: usize = 4;
const ENDLESS_PAUSE: Duration = Duration::from_millis(1);
/// What `IdleTimeout408` answers a request on a reused connection.
pub const IDLE_TIMEOUT_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo late";
/// The largest request head the server waits for.
const MAX_REQUEST_HEAD: usize = 256 * 1024;

/// What the hostile upstream does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Reads the request, answers `200` with `HEALTHY_BODY`, keeps the connection.
    Healthy,
    /// The same answer with `Connection: close`, then closes.
    HealthyClose,
    /// Never reads a byte of the request (it piles up in the kernel), never answers.
    AcceptNoRead,
    /// Reads the whole request, never answers.
    ReadNoAnswer,
    /// Reads the request, closes without a byte.
    CloseBeforeStatus,
    /// Sends half a head, closes.
    CloseMidHeaders,
    /// Announces `BIG_BODY` bytes, sends `CUT_AT`, closes.
    CloseMidBodyLength,
    /// Chunked: `CUT_AT` bytes in whole chunks, then half a chunk, closes.
    CloseMidBodyChunked,
    /// Announces `BIG_BODY`, sends `RESET_AT` bytes, resets the connection.
    ResetMidResponse,
    /// Answers `GARBAGE`, then waits for trident to close.
    Garbage,
    /// Chunked: one good chunk, then the chunk size `zz`.
    BadChunkSize,
    /// Announces `OVERSTATED_LENGTH` body bytes, sends `UNDERSENT_BODY`, closes.
    LengthOverstated,
    /// A 1 MiB header block.
    HugeHead,
    /// `Content-Length: 5` and `Content-Length: 6`.
    ConflictingLengths,
    /// The healthy answer, one byte every `TRICKLE_EVERY`.
    Trickle,
    /// A head announcing 100 body bytes, then nothing.
    HeadersThenStall,
    /// A chunked body that never ends (paced at about 60 MB/s).
    EndlessChunked,
    /// A chunked body that never ends, written as fast as the connection takes it.
    EndlessFlood,
    /// `103 Early Hints` heads, one after another as fast as the connection takes them, and
    /// never a final response.
    EndlessInterim,
    /// The healthy answer as soon as the head is in, then reads the body.
    AnswerBeforeBody,
    /// `413` with `Connection: close` as soon as the head is in, then a close without
    /// reading the body (a reset, since the body is left unread): a size limit's answer.
    RejectBeforeBody,
    /// `100 Continue`, reads the body, then the healthy answer.
    ContinueThenFinal,
    /// The healthy answer immediately followed by `TRAILING`.
    TrailingBytes,
    /// The healthy answer, keeping the connection; later (when `send_stray` says so) while
    /// the connection is idle, `TRAILING`, once.
    StrayWhileIdle,
    /// The healthy answer, keeping the connection; later (when `send_stray` says so) while
    /// the connection is idle, a close, as an upstream's idle timeout would.
    CloseWhileIdle,
    /// The healthy answer, keeping the connection; to HEAD, its head, then `LATE_BODY_AFTER`
    /// later the body anyway, as a server answering HEAD like GET in two writes would.
    LateHeadBody,
    /// The first request of a connection is answered healthily and the connection kept;
    /// a later one is met with a close (a reset: it is left unread) the moment it arrives,
    /// as an upstream's idle timeout racing a proxy's reuse would.
    StaleKeepAlive,
    /// Like `StaleKeepAlive`, but a later request is met with `408 Request Timeout` and a
    /// close, as a server that announces its idle timeout this way (Chromium retries these).
    IdleTimeout408,
}

impl Behaviour {
    /// Every behaviour, healthy ones first.
    pub const ALL: [Behaviour; 28] = [
        Behaviour::Healthy,
        Behaviour::HealthyClose,
        Behaviour::AcceptNoRead,
        Behaviour::ReadNoAnswer,
        Behaviour::CloseBeforeStatus,
        Behaviour::CloseMidHeaders,
        Behaviour::CloseMidBodyLength,
        Behaviour::CloseMidBodyChunked,
        Behaviour::ResetMidResponse,
        Behaviour::Garbage,
        Behaviour::BadChunkSize,
        Behaviour::LengthOverstated,
        Behaviour::HugeHead,
        Behaviour::ConflictingLengths,
        Behaviour::Trickle,
        Behaviour::HeadersThenStall,
        Behaviour::EndlessChunked,
        Behaviour::EndlessFlood,
        Behaviour::EndlessInterim,
        Behaviour::AnswerBeforeBody,
        Behaviour::RejectBeforeBody,
        Behaviour::ContinueThenFinal,
        Behaviour::TrailingBytes,
        Behaviour::StrayWhileIdle,
        Behaviour::CloseWhileIdle,
        Behaviour::StaleKeepAlive,
        Behaviour::IdleTimeout408,
        Behaviour::LateHeadBody,
    ];

    /// A short name, usable in a request target (`/soak/3/reset-mid-response`).
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::HealthyClose => "healthy-close",
            Behaviour::AcceptNoRead => "accept-no-read",
            Behaviour::ReadNoAnswer => "read-no-answer",
            Behaviour::CloseBeforeStatus => "close-before-status",
            Behaviour::CloseMidHeaders => "close-mid-headers",
            Behaviour::CloseMidBodyLength => "close-mid-body-length",
            Behaviour::CloseMidBodyChunked => "close-mid-body-chunked",
            Behaviour::ResetMidResponse => "reset-mid-response",
            Behaviour::Garbage => "garbage",
            Behaviour::BadChunkSize => "bad-chunk-size",
            Behaviour::LengthOverstated => "length-overstated",
            Behaviour::HugeHead => "huge-head",
            Behaviour::ConflictingLengths => "conflicting-lengths",
            Behaviour::Trickle => "trickle",
            Behaviour::HeadersThenStall => "headers-then-stall",
            Behaviour::EndlessChunked => "endless-chunked",
            Behaviour::EndlessFlood => "endless-flood",
            Behaviour::EndlessInterim => "endless-interim",
            Behaviour::AnswerBeforeBody => "answer-before-body",
            Behaviour::RejectBeforeBody => "reject-before-body",
            Behaviour::ContinueThenFinal => "continue-then-final",
            Behaviour::TrailingBytes => "trailing-bytes",
            Behaviour::StrayWhileIdle => "stray-while-idle",
            Behaviour::CloseWhileIdle => "close-while-idle",
            Behaviour::StaleKeepAlive => "stale-keep-alive",
            Behaviour::IdleTimeout408 => "idle-timeout-408",
            Behaviour::LateHeadBody => "late-head-body",
        }
    }

    /// The behaviour called `name`.
    pub fn from_name(name: &str) -> Option<Behaviour> {
        Behaviour::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One request head as the hostile upstream saw it arrive, before acting on it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// 0, 1, 2 ... over the server's lifetime, in arrival order.
    pub index: usize,
    /// Which accepted connection (0, 1, 2 ... in accept order).
    pub connection: usize,
    /// 0 for the first request on its connection, 1 for the next ...
    pub on_connection: usize,
    pub method: String,
    pub target: String,
}

type Plan = Arc<dyn Fn(&Arrival) -> Behaviour + Send + Sync>;

struct Shared {
    arrivals: Mutex<Vec<(Arrival, Behaviour)>>,
    accepted: AtomicUsize,
    ended: AtomicUsize,
    /// Bytes `EndlessChunked` and `EndlessInterim` managed to send, in all.
    streamed: AtomicU64,
    /// While set, requests are recorded on arrival but not acted on.
    held: AtomicBool,
    /// Stray bytes `StrayWhileIdle` connections are asked to send, and have sent.
    stray_asked: AtomicBool,
    strays_sent: AtomicUsize,
    stop: AtomicBool,
}

/// A running hostile upstream; stopped on drop.
pub struct Hostile {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Hostile {
    /// Every request gets `behaviour`, except targets starting with `/healthy`, which get
    /// `HealthyClose` (a test's reference request: the same trident, before the trouble).
    pub fn start(behaviour: Behaviour) -> Hostile {
        Hostile::with_plan(move |arrival| {
            if arrival.target.starts_with("/healthy") {
                Behaviour::HealthyClose
            } else {
                behaviour
            }
        })
    }

    /// Every request gets `behaviour`, whatever its target.
    pub fn always(behaviour: Behaviour) -> Hostile {
        Hostile::with_plan(move |_| behaviour)
    }

    /// Requests for `target` get `behaviour`, every other one `Healthy`.
    pub fn for_target(target: &'static str, behaviour: Behaviour) -> Hostile {
        Hostile::with_plan(move |a| {
            if a.target == target {
                behaviour
            } else {
                Behaviour::Healthy
            }
        })
    }

    /// Each request gets whatever `plan` says for its arrival.
    pub fn with_plan<F>(plan: F) -> Hostile
    where
        F: Fn(&Arrival) -> Behaviour + Send + Sync + 'static,
    {
        let plan: Plan = Arc::new(plan);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a hostile upstream");
        let addr = listener.local_addr().expect("hostile address");
        let shared = Arc::new(Shared {
            arrivals: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            streamed: AtomicU64::new(0),
            held: AtomicBool::new(false),
            stray_asked: AtomicBool::new(false),
            strays_sent: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let connection = shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let shared = Arc::clone(&shared);
                    let plan = Arc::clone(&plan);
                    thread::spawn(move || {
                        serve(stream, connection, &shared, &plan);
                        shared.ended.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Hostile {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head seen so far with the behaviour it got, in arrival order.
    pub fn arrivals(&self) -> Vec<(Arrival, Behaviour)> {
        self.shared.arrivals.lock().unwrap().clone()
    }

    /// The connections the requests for `target` came on, in arrival order (a retry shows
    /// as a second one).
    pub fn connections_of(&self, target: &str) -> Vec<usize> {
        self.arrivals()
            .iter()
            .filter(|(a, _)| a.target == target)
            .map(|(a, _)| a.connection)
            .collect()
    }

    /// The targets of the requests seen so far, in arrival order.
    pub fn targets(&self) -> Vec<String> {
        self.arrivals().into_iter().map(|(a, _)| a.target).collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose thread has ended so far.
    pub fn ended_connections(&self) -> usize {
        self.shared.ended.load(Ordering::SeqCst)
    }

    /// Endless-body bytes sent so far.
    pub fn streamed(&self) -> u64 {
        self.shared.streamed.load(Ordering::SeqCst)
    }

    /// From now on, requests are recorded as they arrive but wait for `release` before
    /// their behaviour is played (to line the misbehaviour up with something else).
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Lets held and later requests be played.
    pub fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
    }

    /// Asks one idle `StrayWhileIdle` connection to send `TRAILING` (a `CloseWhileIdle` one
    /// to close), and waits until it has.
    pub fn send_stray(&self, timeout: Duration) {
        let target = self.shared.strays_sent.load(Ordering::SeqCst) + 1;
        self.shared.stray_asked.store(true, Ordering::SeqCst);
        let ok = super::wait_until(timeout, || {
            self.shared.strays_sent.load(Ordering::SeqCst) >= target
        });
        assert!(
            ok,
            "no idle stray-while-idle connection sent its bytes within {timeout:?}"
        );
    }

    /// Waits until `n` connections have ended on this side; panics on timeout.
    pub fn wait_ended(&self, n: usize, timeout: Duration) {
        let ok = super::wait_until(timeout, || self.ended_connections() >= n);
        assert!(
            ok,
            "hostile upstream {}: {} of {n} connections ended within {timeout:?}",
            self.addr,
            self.ended_connections()
        );
    }

    /// Waits until `n` request heads have arrived; panics with what did on timeout.
    pub fn wait_arrivals(&self, n: usize, timeout: Duration) -> Vec<(Arrival, Behaviour)> {
        let ok = super::wait_until(timeout, || self.arrivals().len() >= n);
        let arrivals = self.arrivals();
        assert!(
            ok,
            "hostile upstream {} saw {} of {} requests within {:?}: {:?}",
            self.addr,
            arrivals.len(),
            n,
            timeout,
            arrivals
        );
        arrivals
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake accept(); should the wake-up fail, the acceptor is left rather than joined
        // forever.
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woken {
                let _ = acceptor.join();
            }
        }
    }
}

/// A request head, peeked at.
struct Head {
    len: usize,
    method: String,
    target: String,
    content_length: usize,
    chunked: bool,
}

/// What to do once a behaviour is played.
enum Next {
    /// Wait for the next request on this connection.
    KeepServing,
    /// Drop the connection: a FIN if the request was read, a reset if it was not.
    Close,
}

/// One accepted connection.
struct Conn<'a> {
    stream: TcpStream,
    shared: &'a Shared,
}

fn serve(stream: TcpStream, connection: usize, shared: &Shared, plan: &Plan) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_nodelay(true);
    let mut conn = Conn { stream, shared };
    for on_connection in 0.. {
        let head = match conn.peek_head() {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        let behaviour = {
            let mut arrivals = shared.arrivals.lock().unwrap();
            let arrival = Arrival {
                index: arrivals.len(),
                connection,
                on_connection,
                method: head.method.clone(),
                target: head.target.clone(),
            };
            let behaviour = plan(&arrival);
            arrivals.push((arrival, behaviour));
            behaviour
        };
        while shared.held.load(Ordering::SeqCst) {
            if !conn.pause(POLL) {
                return;
            }
        }
        match conn.play(behaviour, &head, on_connection) {
            Ok(Next::KeepServing) => {}
            Ok(Next::Close) | Err(_) => return,
        }
    }
}

impl Conn<'_> {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Plays `behaviour` on the request whose head was peeked.
    fn play(
        &mut self,
        behaviour: Behaviour,
        head: &Head,
        on_connection: usize,
    ) -> io::Result<Next> {
        use Behaviour::*;
        match behaviour {
            Healthy => {
                self.read_request(head)?;
                self.send(&healthy_response(false))?;
                Ok(Next::KeepServing)
            }
            HealthyClose => {
                self.read_request(head)?;
                self.send(&healthy_response(true))?;
                Ok(Next::Close)
            }
            LateHeadBody => {
                self.read_request(head)?;
                let response = healthy_response(false);
                if head.method == "HEAD" {
                    let split = response.len() - HEALTHY_BODY.len();
                    self.send(&response[..split])?;
                    if !self.pause(LATE_BODY_AFTER) {
                        return Ok(Next::Close);
                    }
                    self.send(&response[split..])?;
                } else {
                    self.send(&response)?;
                }
                Ok(Next::KeepServing)
            }
            AcceptNoRead => {
                let until = Instant::now() + MAX_HOLD;
                while Instant::now() < until && self.pause(POLL) {}
                Ok(Next::Close)
            }
            ReadNoAnswer => {
                self.read_request(head)?;
                self.drain();
                Ok(Next::Close)
            }
            CloseBeforeStatus => {
                self.read_request(head)?;
                Ok(Next::Close)
            }
            CloseMidHeaders => {
                self.read_request(head)?;
                self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")?;
                Ok(Next::Close)
            }
            CloseMidBodyLength => {
                self.read_request(head)?;
                let mut out = length_head(BIG_BODY);
                out.extend_from_slice(&big_body()[..CUT_AT]);
                self.send(&out)?;
                Ok(Next::Close)
            }
            CloseMidBodyChunked => {
                self.read_request(head)?;
                let body = big_body();
                let mut out = chunked_head();
                for chunk in body[..CUT_AT].chunks(16 * 1024) {
                    push_chunk(&mut out, chunk);
                }
                // Half a chunk: 0x4000 announced, 100 sent.
                out.extend_from_slice(b"4000\r\n");
                out.extend_from_slice(&body[CUT_AT..CUT_AT + 100]);
                self.send(&out)?;
                Ok(Next::Close)
            }
            ResetMidResponse => {
                // The request stays unread, so the close below is a reset.
                let mut out = length_head(BIG_BODY);
                out.extend_from_slice(&big_body()[..RESET_AT]);
                self.send(&out)?;
                self.pause(RESET_PAUSE);
                Ok(Next::Close)
            }
            Garbage => {
                self.read_request(head)?;
                self.send(GARBAGE)?;
                self.drain();
                Ok(Next::Close)
            }
            BadChunkSize => {
                self.read_request(head)?;
                let mut out = chunked_head();
                out.extend_from_slice(b"5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n");
                self.send(&out)?;
                self.drain();
                Ok(Next::Close)
            }
            LengthOverstated => {
                self.read_request(head)?;
                let mut out = length_head(OVERSTATED_LENGTH);
                out.extend_from_slice(UNDERSENT_BODY);
                self.send(&out)?;
                Ok(Next::Close)
            }
            HugeHead => {
                self.read_request(head)?;
                let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
                let filler = "a".repeat(64 * 1024 - 20);
                for i in 0..16 {
                    out.extend_from_slice(format!("X-Filler-{i:02}: {filler}\r\n").as_bytes());
                }
                out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                // Trident gives up long before the end: the write may fail.
                let _ = self.send(&out);
                self.drain();
                Ok(Next::Close)
            }
            ConflictingLengths => {
                self.read_request(head)?;
                self.send(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                )?;
                self.drain();
                Ok(Next::Close)
            }
            Trickle => {
                self.read_request(head)?;
                for (i, byte) in healthy_response(false).iter().enumerate() {
                    if i > 0 && !self.pause(TRICKLE_EVERY) {
                        return Ok(Next::Close);
                    }
                    self.send(&[*byte])?;
                }
                Ok(Next::KeepServing)
            }
            HeadersThenStall => {
                self.read_request(head)?;
                self.send(&length_head(100))?;
                self.drain();
                Ok(Next::Close)
            }
            EndlessChunked | EndlessFlood => {
                self.read_request(head)?;
                self.send(&chunked_head())?;
                let mut chunk = Vec::with_capacity(ENDLESS_CHUNK + 16);
                push_chunk(&mut chunk, &super::pattern(ENDLESS_CHUNK, 0xE4D1E55));
                let paced = behaviour == EndlessChunked;
                for sent in 1.. {
                    if self.stopped() {
                        break;
                    }
                    self.send(&chunk)?;
                    self.shared
                        .streamed
                        .fetch_add(ENDLESS_CHUNK as u64, Ordering::SeqCst);
                    if paced && sent % ENDLESS_BURST == 0 && !self.pause(ENDLESS_PAUSE) {
                        break;
                    }
                }
                Ok(Next::Close)
            }
            EndlessInterim => {
                self.read_request(head)?;
                let hint: &[u8] =
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
                let burst = hint.repeat(ENDLESS_CHUNK / hint.len());
                while !self.stopped() {
                    self.send(&burst)?;
                    self.shared
                        .streamed
                        .fetch_add(burst.len() as u64, Ordering::SeqCst);
                }
                Ok(Next::Close)
            }
            AnswerBeforeBody => {
                self.consume(head.len)?;
                self.send(&healthy_response(false))?;
                self.read_body(head)?;
                Ok(Next::KeepServing)
            }
            RejectBeforeBody => {
                self.consume(head.len)?;
                self.send(REJECTION)?;
                self.pause(RESET_PAUSE);
                Ok(Next::Close)
            }
            ContinueThenFinal => {
                self.consume(head.len)?;
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                self.read_body(head)?;
                self.send(&healthy_response(false))?;
                Ok(Next::KeepServing)
            }
            TrailingBytes => {
                self.read_request(head)?;
                let mut out = healthy_response(false);
                out.extend_from_slice(TRAILING);
                self.send(&out)?;
                Ok(Next::KeepServing)
            }
            StrayWhileIdle | CloseWhileIdle => {
                self.read_request(head)?;
                self.send(&healthy_response(false))?;
                // Idle now: wait for the word, or for the next request (no strays then).
                loop {
                    if self.shared.stray_asked.swap(false, Ordering::SeqCst) {
                        if behaviour == CloseWhileIdle {
                            // Nothing is unread: a FIN.
                            let _ = self.stream.shutdown(std::net::Shutdown::Both);
                            self.shared.strays_sent.fetch_add(1, Ordering::SeqCst);
                            return Ok(Next::Close);
                        }
                        self.send(TRAILING)?;
                        self.shared.strays_sent.fetch_add(1, Ordering::SeqCst);
                        return Ok(Next::KeepServing);
                    }
                    let mut probe = [0u8; 1];
                    match self.stream.peek(&mut probe) {
                        Ok(0) => return Ok(Next::Close),
                        Ok(_) => return Ok(Next::KeepServing),
                        Err(e) if is_retry(&e) => {}
                        Err(e) => return Err(e),
                    }
                    if self.stopped() {
                        return Ok(Next::Close);
                    }
                }
            }
            StaleKeepAlive if on_connection == 0 => {
                self.read_request(head)?;
                self.send(&healthy_response(false))?;
                Ok(Next::KeepServing)
            }
            // Left unread: the close is a reset, as soon as the request is in.
            StaleKeepAlive => Ok(Next::Close),
            IdleTimeout408 if on_connection == 0 => {
                self.read_request(head)?;
                self.send(&healthy_response(false))?;
                Ok(Next::KeepServing)
            }
            // Read first, so that the close is clean and the 408 surely arrives.
            IdleTimeout408 => {
                self.read_request(head)?;
                self.send(IDLE_TIMEOUT_408)?;
                Ok(Next::Close)
            }
        }
    }

    /// Waits for a whole request head without consuming it; `None` at EOF or stop.
    fn peek_head(&mut self) -> io::Result<Option<Head>> {
        let mut buf = vec![0u8; MAX_REQUEST_HEAD];
        let mut seen = 0;
        loop {
            if self.stopped() {
                return Ok(None);
            }
            match self.stream.peek(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
                        return parse_head(&buf[..end + 4]).map(Some);
                    }
                    if n == buf.len() {
                        return Err(invalid("request head too large"));
                    }
                    if n == seen {
                        // peek returns at once while bytes wait: do not spin.
                        thread::sleep(Duration::from_millis(1));
                    }
                    seen = n;
                }
                Err(e) if is_retry(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads (and drops) the head and body of the request.
    fn read_request(&mut self, head: &Head) -> io::Result<()> {
        self.consume(head.len)?;
        self.read_body(head)
    }

    fn read_body(&mut self, head: &Head) -> io::Result<()> {
        if head.chunked {
            loop {
                let line = self.read_line()?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| invalid("bad chunk size in the request"))?;
                if size == 0 {
                    while !self.read_line()?.is_empty() {}
                    return Ok(());
                }
                self.consume(size + 2)?;
            }
        }
        self.consume(head.content_length)
    }

    /// Reads exactly `n` bytes and drops them.
    fn consume(&mut self, mut n: usize) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        while n > 0 {
            let want = n.min(buf.len());
            let got = self.read_some(&mut buf[..want])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n -= got;
        }
        Ok(())
    }

    /// One CRLF-terminated line, a byte at a time (so nothing past it is consumed).
    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if self.read_some(&mut byte)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            line.push(byte[0]);
            if line.len() > 4096 {
                return Err(invalid("request line too long"));
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// A read that waits out read timeouts until data, EOF, an error or the stop flag.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if is_retry(&e) => {
                    if self.stopped() {
                        return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and drops whatever comes until trident closes (or the server stops).
    fn drain(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = self.read_some(&mut buf) {
            if n == 0 {
                return;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sleeps `d` in short steps; false if the server was stopped meanwhile.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            thread::sleep((until - now).min(Duration::from_millis(5)));
        }
    }
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("");
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let fields: Vec<Field> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let content_length = match wire::field(&fields, "content-length") {
        Some(v) => v.parse().map_err(|_| invalid("bad Content-Length"))?,
        None => 0,
    };
    Ok(Head {
        len: bytes.len(),
        method,
        target,
        content_length,
        chunked: wire::is_chunked(&fields),
    })
}

/// The healthy answer, byte for byte.
pub fn healthy_response(close: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nX-Hostile: healthy\r\nContent-Length: {}\r\n",
        HEALTHY_BODY.len()
    );
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(HEALTHY_BODY);
    out
}

/// The body the mid-body behaviours announce (and cut).
pub fn big_body() -> Vec<u8> {
    super::pattern(BIG_BODY, 0xB16B0D1)
}

fn length_head(len: usize) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

fn chunked_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
}

fn push_chunk(out: &mut Vec<u8>, chunk: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
    out.extend_from_slice(chunk);
    out.extend_from_slice(b"\r\n");
}

/// An address where nothing listens and nothing will while it is held: the local end of a
/// connection this process keeps open (no listener can take that port), so a connect to it
/// is refused, without the race of "bind, note the port, release it".
pub struct Refusing {
    _listener: TcpListener,
    _holder: TcpStream,
    addr: SocketAddr,
}

impl Refusing {
    pub fn new() -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let holder = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let addr = holder.local_addr().expect("local address");
        Refusing {
            _listener: listener,
            _holder: holder,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for Refusing {
    fn default() -> Refusing {
        Refusing::new()
    }
}

/// An address where a TCP connect never completes: a listener that never accepts, its
/// accept queue filled by this process, so the kernel drops every further SYN.
pub struct Blackhole {
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
    addr: SocketAddr,
}

impl Blackhole {
    pub fn new() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut fillers = Vec::new();
        // Connect until one attempt hangs: the queue is full from then on.
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(s) => fillers.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) => panic!("filling the accept queue of {addr}: {e}"),
            }
            assert!(
                fillers.len() < 10_000,
                "the accept queue of {addr} never fills"
            );
        }
        Blackhole {
            _listener: listener,
            _fillers: fillers,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for Blackhole {
    fn default() -> Blackhole {
        Blackhole::new()
    }
}

/// One response as the client received it: every byte, and what they mean.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The head and body exactly as they came off the wire.
    pub raw: Vec<u8>,
    pub status: u16,
    pub headers: Vec<Field>,
    /// Decoded body.
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::field(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a connection ended when a test read it to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Eof,
    Reset,
}

/// A client that keeps the raw bytes of what it receives (for byte-identical comparisons)
/// and can read a cut-short response to its end. Reads and writes time out after 5 s.
pub struct RawClient {
    wire: Wire,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to trident at {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = stream.set_nodelay(true);
        RawClient {
            wire: Wire::new(stream, None),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.wire
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("sending {} bytes to trident: {e}", bytes.len()));
    }

    /// Leaves with a reset (SO_LINGER 0), as a client that gives up does, not a FIN.
    pub fn reset(mut self) {
        socket2::SockRef::from(&*self.wire.stream())
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }

    /// Changes how long a read may wait.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.wire
            .stream()
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// Writes all of `bytes`, or says why it could not (trident may close a connection whose
    /// upload it will not read).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.write_all(bytes)
    }

    /// One final response (a GET's or a POST's: not a HEAD's); panics if there is none.
    pub fn response(&mut self) -> RawResponse {
        self.try_response()
            .unwrap_or_else(|e| panic!("reading a response from trident: {e}"))
    }

    /// Sends `request` and reads its response.
    pub fn exchange(&mut self, request: &[u8]) -> RawResponse {
        self.send(request);
        self.response()
    }

    /// One final response, skipping interim ones, or why there is none.
    pub fn try_response(&mut self) -> io::Result<RawResponse> {
        loop {
            let (status, headers) = self.head()?;
            if (100..200).contains(&status) {
                self.wire.take_raw();
                continue;
            }
            let body = if status == 204 || status == 304 {
                Vec::new()
            } else if wire::is_chunked(&headers) {
                self.wire.read_chunked()?.0
            } else if let Some(cl) = wire::field(&headers, "content-length") {
                let n = cl.parse().map_err(|_| invalid("bad Content-Length"))?;
                self.wire.read_exact_vec(n)?
            } else {
                self.wire.read_to_eof()?
            };
            return Ok(RawResponse {
                raw: self.wire.take_raw(),
                status,
                headers,
                body,
            });
        }
    }

    /// A status line and header fields, nothing after them.
    pub fn head(&mut self) -> io::Result<(u16, Vec<Field>)> {
        let (start, headers) = self.wire.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| invalid("bad status line"))?;
        Ok((status, headers))
    }

    /// Every byte until the connection ends (a cut-short body, raw), and how it ended.
    pub fn rest_until_closed(&mut self) -> (Vec<u8>, End) {
        let pending = self.wire.buffered().len();
        let mut out = self
            .wire
            .read_exact_vec(pending)
            .expect("buffered bytes are there");
        let mut buf = [0u8; 64 * 1024];
        loop {
            match self.wire.stream().read(&mut buf) {
                Ok(0) => return (out, End::Eof),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, End::Reset),
                Err(e) => panic!(
                    "reading a cut-short response to its end: {e} (after {} bytes)",
                    out.len()
                ),
            }
        }
    }

    /// Like `rest_until_closed`, but only counts the bytes: a reader that keeps gigabytes
    /// falls behind a flood, and trident then holds the flood for it (the client's time).
    pub fn count_until_closed(&mut self) -> (u64, End) {
        let mut count = self.wire.buffered().len() as u64;
        let mut buf = [0u8; 256 * 1024];
        loop {
            match self.wire.stream().read(&mut buf) {
                Ok(0) => return (count, End::Eof),
                Ok(n) => count += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (count, End::Reset),
                Err(e) => panic!("reading a flood to its end: {e} (after {count} bytes)"),
            }
        }
    }

    /// Asserts the server closed the connection without sending anything more.
    pub fn expect_closed(&mut self) {
        let (rest, _) = self.rest_until_closed();
        assert!(
            rest.is_empty(),
            "expected the connection closed, got {:?}",
            wire::preview(&rest)
        );
    }
}

/// Decodes as much of a chunked body as is there: (data, whether the last chunk came).
pub fn decode_partial_chunked(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(eol) = find(raw, b"\r\n") else {
            return (data, false);
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (data, false);
        };
        raw = &raw[eol + 2..];
        if size == 0 {
            return (data, true);
        }
        let take = size.min(raw.len());
        data.extend_from_slice(&raw[..take]);
        if take < size || raw.len() < size + 2 {
            return (data, false);
        }
        raw = &raw[size + 2..];
    }
}

/// trident's open file descriptors, and which of them are TCP connections.
#[derive(Debug, Clone)]
pub struct FdCensus {
    pub total: usize,
    /// `local -> remote STATE` for each fd that is a TCP socket not listening.
    pub connections: Vec<String>,
    /// `fd -> target` for every fd.
    pub listing: Vec<String>,
}

impl FdCensus {
    /// Descriptors that are not TCP connections (the listener, the poll, pipes, stdio).
    pub fn resident(&self) -> usize {
        self.total - self.connections.len()
    }
}

/// Reads /proc/PID/fd and the TCP tables of PID's network namespace.
pub fn fd_census(pid: u32) -> FdCensus {
    let mut listing = Vec::new();
    let mut sockets = HashSet::new();
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/fd: {e}"));
    for entry in dir.flatten() {
        let target = std::fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".to_string());
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            sockets.insert(inode.to_string());
        }
        listing.push(format!(
            "{} -> {target}",
            entry.file_name().to_string_lossy()
        ));
    }
    let mut connections = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || !sockets.contains(cols[9]) || cols[3] == "0A" {
                continue;
            }
            connections.push(format!(
                "{} -> {} {}",
                tcp_addr(cols[1]),
                tcp_addr(cols[2]),
                tcp_state(cols[3])
            ));
        }
    }
    FdCensus {
        total: listing.len(),
        connections,
        listing,
    }
}

/// `0100007F:1F90` -> `127.0.0.1:8080` (IPv4); IPv6 addresses are left in hex.
fn tcp_addr(text: &str) -> String {
    let Some((ip, port)) = text.split_once(':') else {
        return text.to_string();
    };
    let port = u16::from_str_radix(port, 16).unwrap_or(0);
    match u32::from_str_radix(ip, 16) {
        Ok(ip) if text.len() == 13 => {
            let b = ip.to_le_bytes();
            format!("{}.{}.{}.{}:{port}", b[0], b[1], b[2], b[3])
        }
        _ => format!("[{ip}]:{port}"),
    }
}

fn tcp_state(code: &str) -> &'static str {
    match code {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0B" => "CLOSING",
        _ => "?",
    }
}

/// The number of descriptors trident holds besides its TCP connections, read while it is
/// quiet (no request in flight): two censuses that agree, so that a connection closing
/// between the two reads of one census does not count as resident.
pub fn resident_fds(pid: u32) -> usize {
    let mut last = fd_census(pid).resident();
    for _ in 0..50 {
        let now = fd_census(pid).resident();
        if now == last {
            return now;
        }
        last = now;
        thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "the fd count of {pid} does not settle: {:?}",
        fd_census(pid)
    )
}

/// Waits until trident holds exactly `resident` descriptors and no TCP connection (call it
/// once every client and upstream is gone); panics with what it still holds.
pub fn wait_fds_settle(trident: &Trident, resident: usize, timeout: Duration) {
    let pid = trident.pid();
    let ok = super::wait_until(timeout, || {
        let census = fd_census(pid);
        census.connections.is_empty() && census.total == resident
    });
    if !ok {
        let census = fd_census(pid);
        panic!(
            "trident holds {} fds ({} TCP connections: {:?}) {:?} after everything closed; \
             {resident} expected\nfds: {:#?}",
            census.total,
            census.connections.len(),
            census.connections,
            timeout,
            census.listing
        );
    }
}

/// trident's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// What plays one role in a test: a healthy test upstream, a hostile one, or an address
/// that fails before HTTP starts.
pub enum Player {
    Healthy(Upstream),
    Hostile(Hostile),
    Refusing(Refusing),
    Blackhole(Blackhole),
}

impl Player {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Player::Healthy(u) => u.addr(),
            Player::Hostile(h) => h.addr(),
            Player::Refusing(r) => r.addr(),
            Player::Blackhole(b) => b.addr(),
        }
    }

    /// The test upstream playing this role; panics if it is something else.
    pub fn healthy(&self) -> &Upstream {
        match self {
            Player::Healthy(u) => u,
            _ => panic!("this role is not played by a test upstream"),
        }
    }

    /// The hostile upstream playing this role; panics if it is something else.
    pub fn hostile(&self) -> &Hostile {
        match self {
            Player::Hostile(h) => h,
            _ => panic!("this role is not played by a hostile upstream"),
        }
    }
}

/// A trident in front of three players, configured by a targets file (so that each leg can
/// carry options), and the way to check that it let go of everything at the end.
pub struct Stage {
    /// Dropped (killed) first if a test fails, so its output is printed.
    pub trident: Trident,
    /// primary, secondary, candidate.
    pub players: [Player; 3],
    _targets: super::TargetsFile,
}

impl Stage {
    /// `options[i]` is appended to role i's line (`timeout=1500`); `args` are extra flags.
    pub fn start(players: [Player; 3], options: [&str; 3], args: &[&str]) -> Stage {
        let roles = ["primary", "secondary", "candidate"];
        let mut text = String::from("# hostile test\n");
        for i in 0..3 {
            text.push_str(&format!(
                "{} = http://{} {}\n",
                roles[i],
                players[i].addr(),
                options[i]
            ));
        }
        let targets = super::TargetsFile::new(&text);
        let mut all = vec!["--targets", targets.arg()];
        all.extend_from_slice(args);
        let trident = Trident::spawn(&all);
        Stage {
            trident,
            players,
            _targets: targets,
        }
    }

    pub fn pid(&self) -> u32 {
        self.trident.pid()
    }

    pub fn client(&self) -> RawClient {
        RawClient::connect(self.trident.addr())
    }

    /// The hostile upstream in role `index` (0 primary, 1 secondary, 2 candidate).
    pub fn hostile(&self, index: usize) -> &Hostile {
        self.players[index].hostile()
    }

    /// Stops every player and waits until trident is down to `resident` descriptors with no
    /// TCP connection left (drop the clients first). Pooled connections end when their
    /// upstream goes, so this is exact, not "about as many as before".
    pub fn finish(self, resident: usize) {
        let Stage {
            trident,
            players,
            _targets,
        } = self;
        drop(players);
        wait_fds_settle(&trident, resident, Duration::from_secs(5));
        assert!(
            !trident.stderr().contains("panicked"),
            "trident panicked\n{}",
            trident.output()
        );
    }
}
