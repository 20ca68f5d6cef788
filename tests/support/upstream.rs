//! Test upstreams: a real HTTP/1.1 server on 127.0.0.1:0 (a thread per connection,
//! keep-alive, Content-Length and chunked request bodies parsed by hand) that records every
//! request exactly as it arrived and answers with whatever its handler says, including the
//! misbehaviours trident must survive (1xx heads, close-delimited bodies, delays, truncation,
//! garbage, never answering).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::wire::{self, Field, Wire};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`, as on the wire.
    pub version: String,
    /// In arrival order, case kept, repeats kept.
    pub headers: Vec<Field>,
    /// Decoded (de-chunked) body.
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
    /// Every byte of the request as it arrived.
    pub raw: Vec<u8>,
    /// Which accepted connection it came on (0, 1, 2 ... in accept order).
    pub connection: usize,
}

impl RecordedRequest {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::field(&self.headers, name)
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        wire::fields_named(&self.headers, name)
    }

    /// Whether any header is called `name` (case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// The request for `target` among `requests`; panics if there is none. (Requests that went
/// out on different upstream connections have no defined arrival order: look them up.)
pub fn find<'a>(requests: &'a [RecordedRequest], target: &str) -> &'a RecordedRequest {
    requests
        .iter()
        .find(|r| r.target == target)
        .unwrap_or_else(|| {
            let seen: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
            panic!("no request for {target} among {seen:?}")
        })
}

/// The targets of `requests`, sorted.
pub fn sorted_targets(requests: &[RecordedRequest]) -> Vec<String> {
    let mut targets: Vec<String> = requests.iter().map(|r| r.target.clone()).collect();
    targets.sort();
    targets
}

/// How a reply's body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    ContentLength,
    /// Chunk sizes, used in turn (cycled) until the body is out; zero sizes are skipped.
    Chunked(Vec<usize>),
    /// No length: the body ends when the upstream closes.
    CloseDelimited,
}

/// What a test upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Field>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Interim heads sent before the final one: (status, reason, fields).
    pub interim: Vec<(u16, String, Vec<Field>)>,
    /// Waited before the final head (after the interim ones).
    pub delay: Duration,
    /// Close the connection after this reply, without saying so.
    pub close_after: bool,
    /// Send only this many body bytes, then close.
    pub truncate_body: Option<usize>,
    /// Send these bytes instead of a response, then close.
    pub raw: Option<Vec<u8>>,
}

impl Reply {
    /// A final response with an empty body and Content-Length framing.
    pub fn new(status: u16, reason: &str) -> Reply {
        Reply {
            status,
            reason: reason.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::ContentLength,
            interim: Vec::new(),
            delay: Duration::ZERO,
            close_after: false,
            truncate_body: None,
            raw: None,
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200, "OK").body(body)
    }

    /// Bytes that are not an HTTP response, followed by a close.
    pub fn garbage(bytes: impl Into<Vec<u8>>) -> Reply {
        let mut r = Reply::new(0, "");
        r.raw = Some(bytes.into());
        r
    }

    /// Adds a header field (order and case kept; repeats allowed).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// Chunked framing with these chunk sizes.
    pub fn chunked(mut self, sizes: &[usize]) -> Reply {
        self.framing = Framing::Chunked(sizes.to_vec());
        self
    }

    /// No length; the body ends at close.
    pub fn close_delimited(mut self) -> Reply {
        self.framing = Framing::CloseDelimited;
        self
    }

    /// An interim head (`100 Continue`, `103 Early Hints`) before the final one.
    pub fn interim(mut self, status: u16, reason: &str, headers: &[(&str, &str)]) -> Reply {
        let fields = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.interim.push((status, reason.to_string(), fields));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Closes the connection after the reply, without a `Connection: close`.
    pub fn close_after(mut self) -> Reply {
        self.close_after = true;
        self
    }

    /// Sends only `n` body bytes (the head still announces them all), then closes.
    pub fn truncate_body(mut self, n: usize) -> Reply {
        self.truncate_body = Some(n);
        self
    }
}

type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// How a test upstream treats its connections.
#[derive(Clone)]
enum Mode {
    /// Reads requests and answers with the handler's reply.
    Serve(Handler),
    /// Reads and records requests, never answers.
    Hung,
    /// Accepts, then never reads a byte (its receive window fills up).
    Stalled,
}

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    accepted: AtomicUsize,
    closed: AtomicUsize,
    stop: Arc<AtomicBool>,
}

/// Primary, secondary and candidate upstreams, each answering with its own name
/// (`Upstream::named`).
pub fn three_named() -> (Upstream, Upstream, Upstream) {
    (
        Upstream::named("primary"),
        Upstream::named("secondary"),
        Upstream::named("candidate"),
    )
}

/// Three upstreams (primary, secondary, candidate) answering every request with `handler`.
pub fn three_serving<F>(handler: F) -> (Upstream, Upstream, Upstream)
where
    F: Fn(&RecordedRequest) -> Reply + Clone + Send + Sync + 'static,
{
    (
        Upstream::start(handler.clone()),
        Upstream::start(handler.clone()),
        Upstream::start(handler),
    )
}

/// A running test upstream; stopped on drop.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts a server answering every request with `handler(request)`.
    pub fn start<F>(handler: F) -> Upstream
    where
        F: Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    {
        Upstream::launch(Mode::Serve(Arc::new(handler)))
    }

    /// A server answering `200 OK` with body `"{name} {METHOD} {target}"` and an
    /// `X-Upstream: {name}` header.
    pub fn named(name: &str) -> Upstream {
        let name = name.to_string();
        Upstream::start(move |req| {
            Reply::ok(format!("{} {} {}", name, req.method, req.target)).header("X-Upstream", &name)
        })
    }

    /// Accepts and reads (and records), never answers.
    pub fn hung() -> Upstream {
        Upstream::launch(Mode::Hung)
    }

    /// Accepts, never reads: whatever is sent to it piles up in the kernel's buffers.
    pub fn stalled() -> Upstream {
        Upstream::launch(Mode::Stalled)
    }

    fn launch(mode: Mode) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test upstream");
        let addr = listener.local_addr().expect("upstream address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let shared = Arc::clone(&shared);
                    let mode = mode.clone();
                    thread::spawn(move || {
                        match mode {
                            Mode::Serve(handler) => serve(stream, index, &shared, Some(&handler)),
                            Mode::Hung => serve(stream, index, &shared, None),
                            Mode::Stalled => {
                                while !shared.stop.load(Ordering::SeqCst) {
                                    thread::sleep(Duration::from_millis(10));
                                }
                                drop(stream);
                            }
                        }
                        shared.closed.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Upstream {
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

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections that ended (either side closed) so far.
    pub fn closed_connections(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived; panics with what did arrive on timeout.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let requests = self.shared.requests.lock().unwrap();
                if requests.len() >= n {
                    return requests.clone();
                }
                if Instant::now() >= deadline {
                    let seen: Vec<String> = requests
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.target))
                        .collect();
                    panic!(
                        "upstream {} got {} of {} requests within {:?}: {:?}",
                        self.addr,
                        requests.len(),
                        n,
                        timeout,
                        seen
                    );
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `n` connections have ended; panics on timeout.
    pub fn wait_closed(&self, n: usize, timeout: Duration) {
        let ok = super::wait_until(timeout, || self.closed_connections() >= n);
        assert!(
            ok,
            "upstream {}: {} of {} connections closed within {:?}",
            self.addr,
            self.closed_connections(),
            n,
            timeout
        );
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Unblock accept(); the acceptor sees the flag and ends. Should the wake-up connection
        // fail, the acceptor is left behind rather than joined forever.
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woken {
                let _ = acceptor.join();
            }
        }
    }
}

/// A 127.0.0.1 address with nothing listening (bound, then released).
pub fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// Serves one connection until the peer closes, the reply closes it, or the upstream stops.
fn serve(stream: TcpStream, index: usize, shared: &Shared, handler: Option<&Handler>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_nodelay(true);
    let mut wire = Wire::new(stream, Some(Arc::clone(&shared.stop)));
    loop {
        let request = match read_request(&mut wire, index) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let wants_close = wants_close(&request);
        let head_request = request.method == "HEAD";
        shared.requests.lock().unwrap().push(request.clone());
        let Some(handler) = handler else {
            // Hung: keep reading (and recording) whatever else comes, never answer.
            continue;
        };
        let reply = handler(&request);
        match write_reply(&mut wire, &reply, head_request, &shared.stop) {
            Ok(keep_open) if keep_open && !wants_close => {}
            _ => {
                let _ = wire.stream().shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

fn wants_close(request: &RecordedRequest) -> bool {
    if wire::lists_token(&request.headers, "connection", "close") {
        return true;
    }
    request.version == "HTTP/1.0"
        && !wire::lists_token(&request.headers, "connection", "keep-alive")
}

fn read_request(wire: &mut Wire, connection: usize) -> std::io::Result<Option<RecordedRequest>> {
    let Some((start, headers)) = wire.read_head()? else {
        return Ok(None);
    };
    let mut parts = start.splitn(3, ' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let version = parts.next().unwrap_or("").to_string();
    let chunked = wire::is_chunked(&headers);
    let body = if chunked {
        wire.read_chunked()?.0
    } else if let Some(cl) = wire::field(&headers, "content-length") {
        let n: usize = cl.parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad Content-Length")
        })?;
        wire.read_exact_vec(n)?
    } else {
        Vec::new()
    };
    Ok(Some(RecordedRequest {
        method,
        target,
        version,
        headers,
        body,
        chunked,
        raw: wire.take_raw(),
        connection,
    }))
}

/// Writes `reply`; `Ok(true)` if the connection may carry another request.
fn write_reply(
    wire: &mut Wire,
    reply: &Reply,
    head_request: bool,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    for (status, reason, fields) in &reply.interim {
        let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
        for (n, v) in fields {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        wire.write_all(head.as_bytes())?;
    }
    let deadline = Instant::now() + reply.delay;
    while Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(5).min(deadline - Instant::now()));
    }
    if let Some(raw) = &reply.raw {
        wire.write_all(raw)?;
        return Ok(false);
    }
    let bodiless_status = reply.status < 200 || reply.status == 204 || reply.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reply.reason);
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    match &reply.framing {
        Framing::ContentLength if reply.status != 204 && reply.status >= 200 => {
            head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        Framing::Chunked(_) if !bodiless_status => {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        _ => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if head_request || bodiless_status {
        wire.write_all(&out)?;
        return Ok(!reply.close_after && reply.framing != Framing::CloseDelimited);
    }
    let body = match reply.truncate_body {
        Some(n) => &reply.body[..n.min(reply.body.len())],
        None => &reply.body[..],
    };
    match &reply.framing {
        Framing::Chunked(sizes) if reply.truncate_body.is_none() => {
            let sizes: Vec<usize> = sizes.iter().copied().filter(|&s| s > 0).collect();
            let mut rest = body;
            let mut i = 0;
            while !rest.is_empty() {
                let size = sizes
                    .get(i % sizes.len().max(1))
                    .copied()
                    .unwrap_or(rest.len());
                let take = size.min(rest.len());
                out.extend_from_slice(format!("{take:x}\r\n").as_bytes());
                out.extend_from_slice(&rest[..take]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[take..];
                i += 1;
                if out.len() > 256 * 1024 {
                    wire.write_all(&out)?;
                    out.clear();
                }
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::Chunked(_) => {
            // Truncated chunked: one chunk announcing the whole body, cut short.
            out.extend_from_slice(format!("{:x}\r\n", reply.body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        _ => out.extend_from_slice(body),
    }
    wire.write_all(&out)?;
    Ok(reply.truncate_body.is_none()
        && !reply.close_after
        && reply.framing != Framing::CloseDelimited)
}
