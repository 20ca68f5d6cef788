//! `trident --demo`: trident proxying real traffic with nothing installed. Three small
//! HTTP/1.1 upstreams start inside the process on ephemeral 127.0.0.1 ports, the proxy starts
//! in front of them, and a built-in blocking client drives about a hundred requests through
//! it (GETs, POSTs with Content-Length bodies, one chunked POST); the reporting thread prints
//! a block per exchange on stdout, as in normal operation, and the summary with the verdict
//! at the end.
//!
//! Every upstream stamps its responses with noise a shadow comparison must see through: an
//! `X-Served-At: <unix nanos>` header, and `served_at` (a timestamp) and `request_id` (a
//! random id) fields in its JSON objects. The candidate has one real regression: it answers
//! `/users/{id}` with the email as an object instead of a string, which the verdict flags.
//!
//! The upstreams and the client are plain blocking `std::net` code, a thread per upstream
//! connection, written by hand and deliberately independent of `crate::http`: the demo should
//! not share the proxy's parser, or it would share its mistakes. Each upstream's accept thread
//! is stopped at the end; a connection thread ends when the proxy closes that pooled
//! connection, and any still blocked at that point end with the process.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::Config;
use crate::reactor::Proxy;
use crate::report;
use crate::targets::{Role, Targets};

/// Longest start line, header line or chunk-size line the demo reads.
const MAX_LINE: u64 = 8 * 1024;
/// Most header fields in one head.
const MAX_HEADERS: usize = 100;
/// Largest body the demo reads; its own bodies are a few hundred bytes.
const MAX_BODY: usize = 1024 * 1024;

/// Runs the demo: three built-in upstreams, the proxy, a built-in client; prints the blocks
/// and the summary, and returns the candidate's verdict.
pub fn run(config: &Config) -> io::Result<report::Verdict> {
    let summary_signal = report::SummarySignal::register()?;
    let upstreams = [
        Upstream::start(Role::Primary)?,
        Upstream::start(Role::Secondary)?,
        Upstream::start(Role::Candidate)?,
    ];
    let url = |role: Role| format!("http://{}", upstreams[role.index()].addr);
    let (primary, secondary, candidate) = (
        url(Role::Primary),
        url(Role::Secondary),
        url(Role::Candidate),
    );
    let targets = Targets::from_urls(&primary, &secondary, &candidate)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("demo: {e}")))?;

    // The demo's own upstreams, an ephemeral port; the timeouts stay the user's.
    let demo_config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..config.clone()
    };
    let mut proxy = Proxy::bind(&demo_config, targets)
        .map_err(|e| io::Error::new(e.kind(), format!("demo: cannot start the proxy: {e}")))?;
    proxy.handle_signals()?;
    let proxy_addr = proxy.local_addr();
    log::info!("listening on {proxy_addr}");
    let control = proxy.control();
    let settings = config.report.clone();
    let (report_tx, reporter) = report::spawn(Box::new(io::stdout()), settings, summary_signal)?;
    let proxy_thread = thread::Builder::new()
        .name("trident-demo-proxy".into())
        .spawn(move || proxy.run(report_tx))?;

    log::info!(
        "demo: upstreams on {primary} (primary), {secondary} (secondary), {candidate} (candidate); proxy on {proxy_addr}"
    );

    // A client deadline well past the proxy's own, so a stuck proxy ends the demo with an
    // error instead of a hang.
    let client_timeout = config
        .timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(5));
    let script = script();
    let driven = drive(proxy_addr, client_timeout, &script);

    // Whatever the client saw, stop the proxy and let it drain, so every block is written.
    control.shutdown();
    let proxied = proxy_thread
        .join()
        .map_err(|_| io::Error::other("demo: the proxy thread panicked"))?;
    let finished = reporter
        .join()
        .map_err(|_| io::Error::other("demo: the reporting thread panicked"))?;
    for upstream in upstreams {
        upstream.stop();
    }

    proxied.map_err(|e| io::Error::new(e.kind(), format!("demo: proxy: {e}")))?;
    driven?;
    if finished.report_failed {
        return Err(io::Error::other(
            "demo: the report file could not be written",
        ));
    }
    log::info!("demo: {} requests sent, all answered", script.len());
    let posts_shadowed = match &config.shadow_methods {
        None => true,
        Some(methods) => methods.iter().any(|m| m.eq_ignore_ascii_case("POST")),
    };
    log::info!(
        "demo: how to read the summary: 'candidate differs 100% (0% beyond noise)' is noise, \
         the secondary differs as often; a REGRESSION line is a difference the secondary does \
         not show{}. More in docs/comparison.md",
        if posts_shadowed {
            ""
        } else {
            "; the POSTs are not shadowed (--shadow-methods)"
        }
    );
    Ok(finished.verdict)
}

// ---------------------------------------------------------------------------------------------
// The client side: what the demo sends and how it checks the answers.

/// How a demo request carries its body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Payload {
    None,
    /// Framed by Content-Length.
    Length(Vec<u8>),
    /// Framed by Transfer-Encoding: chunked, one chunk per element.
    Chunked(Vec<Vec<u8>>),
}

/// One request of the demo script and the status the primary answers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DemoRequest {
    method: &'static str,
    path: String,
    payload: Payload,
    expect: u16,
}

impl DemoRequest {
    fn get(path: impl Into<String>, expect: u16) -> DemoRequest {
        DemoRequest {
            method: "GET",
            path: path.into(),
            payload: Payload::None,
            expect,
        }
    }

    fn post(path: &str, payload: Payload, expect: u16) -> DemoRequest {
        DemoRequest {
            method: "POST",
            path: path.into(),
            payload,
            expect,
        }
    }

    /// The request's bytes: head, then the body in its framing.
    fn encode(&self, host: &str) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: trident-demo\r\nAccept: application/json\r\n",
            self.method, self.path
        );
        match &self.payload {
            Payload::None => {}
            Payload::Length(body) => {
                let _ = write!(
                    head,
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                );
            }
            Payload::Chunked(_) => {
                head.push_str("Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n")
            }
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        match &self.payload {
            Payload::None => {}
            Payload::Length(body) => bytes.extend_from_slice(body),
            Payload::Chunked(chunks) => {
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
        }
        bytes
    }
}

/// How many rounds of `/users/{id}`, `/items` and `/health` the demo sends: enough for the
/// verdict's test (30 samples per endpoint by default), few enough to read.
const ROUNDS: u32 = 36;

/// The requests the demo sends, in order: about a hundred, touching every endpoint.
fn script() -> Vec<DemoRequest> {
    let mut script = Vec::new();
    for round in 1..=ROUNDS {
        script.push(DemoRequest::get(format!("/users/{round}"), 200));
        script.push(DemoRequest::get(
            format!("/items?page={}", round % 4 + 1),
            200,
        ));
        script.push(DemoRequest::get("/health", 200));
        if round % 12 == 0 {
            let body = format!("{{\"item\":\"widget\",\"quantity\":{round}}}");
            script.push(DemoRequest::post(
                "/orders",
                Payload::Length(body.into_bytes()),
                201,
            ));
        }
        if round == ROUNDS / 2 {
            script.push(DemoRequest::get("/events", 200));
            let lines = (1..=5)
                .map(|n| format!("log line {n}\n").into_bytes())
                .collect();
            script.push(DemoRequest::post("/upload", Payload::Chunked(lines), 200));
        }
    }
    script.push(DemoRequest::get("/events", 200));
    script.push(DemoRequest::get("/no-such-page", 404));
    script
}

/// Sends the script through `addr` on keep-alive connections, checking each status.
fn drive(addr: SocketAddr, timeout: Duration, script: &[DemoRequest]) -> io::Result<()> {
    let mut client = Client::new(addr, timeout);
    for request in script {
        let what = format!("{} {}", request.method, request.path);
        let status = client
            .send(request)
            .map_err(|e| io::Error::new(e.kind(), format!("demo: {what}: {e}")))?;
        if status != request.expect {
            return Err(io::Error::other(format!(
                "demo: {what} answered {status}, expected {}",
                request.expect
            )));
        }
    }
    Ok(())
}

/// A blocking HTTP/1.1 client that keeps its connection alive between requests.
struct Client {
    addr: SocketAddr,
    timeout: Duration,
    /// `None` before the first request and after a response that ended the connection.
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Client {
    fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            conn: None,
        }
    }

    /// Sends `request`, reads the whole response, and returns its status.
    fn send(&mut self, request: &DemoRequest) -> io::Result<u16> {
        let (reader, writer) = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                stream.set_nodelay(true)?;
                let reader = BufReader::new(stream.try_clone()?);
                self.conn.insert((reader, stream))
            }
        };
        writer.write_all(&request.encode(&self.addr.to_string()))?;

        // Interim 1xx responses (RFC 9110 §15.2) precede the final one; skip them.
        let (status, head) = loop {
            let head = read_head(reader)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )
            })?;
            let status = head.status()?;
            if !(100..200).contains(&status) {
                break (status, head);
            }
        };
        let framing = head.response_framing(status)?;
        read_body(reader, framing)?;
        if framing == Framing::UntilClose || head.asks_close() {
            self.conn = None;
        }
        Ok(status)
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream side: a tiny JSON service, in three flavours.

/// One built-in upstream: its listener's accept thread and how to stop it.
struct Upstream {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

impl Upstream {
    /// Listens on an ephemeral 127.0.0.1 port and serves `role`'s flavour of the service.
    fn start(role: Role) -> io::Result<Upstream> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stopping);
        let acceptor = thread::Builder::new()
            .name(format!("demo-{role}"))
            .spawn(move || accept_loop(listener, role, &stop_flag))?;
        Ok(Upstream {
            addr,
            stopping,
            acceptor,
        })
    }

    /// Stops accepting: raises the flag, then wakes the blocked `accept` with a connection.
    fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        if TcpStream::connect(self.addr).is_ok() {
            let _ = self.acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, role: Role, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("demo {role} upstream: accept: {e}");
                continue;
            }
        };
        let spawned = thread::Builder::new()
            .name(format!("demo-{role}-conn"))
            .spawn(move || {
                if let Err(e) = serve(stream, role) {
                    log::warn!("demo {role} upstream: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("demo {role} upstream: cannot start a connection thread: {e}");
        }
    }
}

/// Serves one connection: request after request until the peer closes or asks to.
fn serve(stream: TcpStream, role: Role) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(head) = read_head(&mut reader)? {
        let (method, target, version) = head.request_line()?;
        let body = read_body(&mut reader, head.request_framing()?)?;
        // HTTP/1.1 is persistent unless it says close; HTTP/1.0 only if it says keep-alive.
        let keep_alive = match version {
            "HTTP/1.1" => !head.asks_close(),
            _ => head.has_token("connection", "keep-alive"),
        };
        let reply = answer(role, method, target, &body);
        writer.write_all(&reply.encode(keep_alive))?;
        if !keep_alive {
            break;
        }
    }
    Ok(())
}

/// A response before it is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    reason: &'static str,
    /// The JSON body; more than one element is sent chunked, one chunk each.
    chunks: Vec<String>,
}

impl Reply {
    fn json(status: u16, reason: &'static str, body: String) -> Reply {
        Reply {
            status,
            reason,
            chunks: vec![body],
        }
    }

    /// The response's bytes, with this moment's noise: a timestamp header, and a timestamp
    /// and a random id at the start of a JSON object body.
    fn encode(&self, keep_alive: bool) -> Vec<u8> {
        let chunks: Vec<String> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| match chunk.strip_prefix('{') {
                Some(rest) if i == 0 && rest != "}" => format!(
                    r#"{{"served_at":{},"request_id":"{:016x}",{rest}"#,
                    unix_nanos(),
                    random_id()
                ),
                _ => chunk.clone(),
            })
            .collect();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nX-Served-At: {}\r\n",
            self.status,
            self.reason,
            unix_nanos()
        );
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        let mut body = Vec::new();
        if let [single] = chunks.as_slice() {
            let _ = write!(head, "Content-Length: {}\r\n", single.len());
            body.extend_from_slice(single.as_bytes());
        } else {
            head.push_str("Transfer-Encoding: chunked\r\n");
            for chunk in &chunks {
                body.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
            }
            body.extend_from_slice(b"0\r\n\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// The service itself. All three roles answer alike, except the candidate's `/users/{id}`.
fn answer(role: Role, method: &str, target: &str, body: &[u8]) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let not_found = || Reply::json(404, "Not Found", r#"{"error":"not found"}"#.into());
    match (method, path) {
        ("GET", "/health") => Reply::json(200, "OK", r#"{"status":"ok"}"#.into()),
        ("GET", "/events") => Reply {
            status: 200,
            reason: "OK",
            chunks: ["[", r#"{"event":"start"}"#, r#",{"event":"tick"}"#, "]"]
                .map(String::from)
                .to_vec(),
        },
        ("GET", "/items") => {
            let page: u32 = query
                .strip_prefix("page=")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let items: Vec<String> = (1..=3)
                .map(|n| {
                    format!(
                        r#"{{"id":{0},"name":"item-{0}"}}"#,
                        page.saturating_sub(1) * 3 + n
                    )
                })
                .collect();
            let json = format!(r#"{{"page":{page},"items":[{}]}}"#, items.join(","));
            Reply::json(200, "OK", json)
        }
        ("GET", _) => match path.strip_prefix("/users/").map(str::parse::<u32>) {
            Some(Ok(id)) => {
                let email = if role == Role::Candidate {
                    format!(r#"{{"local":"user{id}","domain":"example.com"}}"#)
                } else {
                    format!(r#""user{id}@example.com""#)
                };
                let json = format!(r#"{{"id":{id},"name":"User {id}","email":{email}}}"#);
                Reply::json(200, "OK", json)
            }
            _ => not_found(),
        },
        ("POST", "/orders") => {
            let json = format!(r#"{{"accepted":true,"bytes":{}}}"#, body.len());
            Reply::json(201, "Created", json)
        }
        ("POST", "/upload") => {
            let lines = body.iter().filter(|&&b| b == b'\n').count();
            let json = format!(r#"{{"bytes":{},"lines":{lines}}}"#, body.len());
            Reply::json(200, "OK", json)
        }
        _ => not_found(),
    }
}

/// A fresh pseudo-random 64-bit id (splitmix64 of the clock and a counter): no crate needed
/// for noise.
fn random_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut x = (unix_nanos() as u64) ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

// ---------------------------------------------------------------------------------------------
// A small blocking HTTP/1.1 reader, shared by the upstreams (requests) and the client
// (responses). Strict enough for the demo's own traffic; not a general-purpose parser.

/// How a body is delimited (RFC 9112 §6.3, the cases the demo meets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// A message head: the start line and the fields, names as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    start: String,
    fields: Vec<(String, String)>,
}

impl Head {
    /// The value of the first field named `name` (case-insensitive).
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated field `name` lists `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn asks_close(&self) -> bool {
        self.has_token("connection", "close")
    }

    /// `(method, target, version)` of a request line.
    fn request_line(&self) -> io::Result<(&str, &str, &str)> {
        let mut parts = self.start.split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v), None) if !m.is_empty() && v.starts_with("HTTP/1.") => {
                Ok((m, t, v))
            }
            _ => Err(invalid(format!("bad request line {:?}", self.start))),
        }
    }

    /// The status code of a status line.
    fn status(&self) -> io::Result<u16> {
        let mut parts = self.start.splitn(3, ' ');
        match (parts.next(), parts.next().map(str::parse::<u16>)) {
            (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") && (100..600).contains(&code) => {
                Ok(code)
            }
            _ => Err(invalid(format!("bad status line {:?}", self.start))),
        }
    }

    /// A request's body framing: chunked, Content-Length, or none at all.
    fn request_framing(&self) -> io::Result<Framing> {
        Ok(self.length_framing()?.unwrap_or(Framing::Length(0)))
    }

    /// A response's body framing; without framing fields the body runs to EOF.
    fn response_framing(&self, status: u16) -> io::Result<Framing> {
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Framing::Length(0));
        }
        Ok(self.length_framing()?.unwrap_or(Framing::UntilClose))
    }

    fn length_framing(&self) -> io::Result<Option<Framing>> {
        if let Some(te) = self.field("transfer-encoding") {
            // RFC 9112 §6.1: chunked must be the only coding, and never with Content-Length.
            if te.trim().eq_ignore_ascii_case("chunked") && self.field("content-length").is_none() {
                return Ok(Some(Framing::Chunked));
            }
            return Err(invalid(format!(
                "unsupported framing: transfer-encoding {te:?}"
            )));
        }
        match self.field("content-length") {
            None => Ok(None),
            Some(cl) => match cl.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY => Ok(Some(Framing::Length(n))),
                _ => Err(invalid(format!("bad or too large content-length {cl:?}"))),
            },
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-message",
    )
}

/// One line without its CRLF (a bare LF is accepted); `None` at EOF before any byte.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    let n = reader.by_ref().take(MAX_LINE).read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') {
        return Err(if n as u64 == MAX_LINE {
            invalid(format!("line longer than {MAX_LINE} bytes"))
        } else {
            truncated()
        });
    }
    line.pop();
    if line.ends_with('\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Reads a head; `None` if the peer closed cleanly before sending one.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    // RFC 9112 §2.2: an empty line before a request line is ignored.
    let start = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(truncated)?;
        if line.is_empty() {
            return Ok(Some(Head { start, fields }));
        }
        if fields.len() == MAX_HEADERS {
            return Err(invalid(format!("more than {MAX_HEADERS} header fields")));
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.ends_with([' ', '\t']) => {
                fields.push((name.to_string(), value.trim().to_string()));
            }
            _ => return Err(invalid(format!("bad header line {line:?}"))),
        }
    }
}

/// Reads a whole body in `framing`.
fn read_body(reader: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::Length(n) => {
            let mut body = vec![0; n];
            reader.read_exact(&mut body)?;
            Ok(body)
        }
        Framing::UntilClose => {
            let mut body = Vec::new();
            reader.take(MAX_BODY as u64 + 1).read_to_end(&mut body)?;
            if body.len() > MAX_BODY {
                return Err(invalid(format!("body larger than {MAX_BODY} bytes")));
            }
            Ok(body)
        }
        Framing::Chunked => read_chunked(reader),
    }
}

/// RFC 9112 §7.1: size line (extensions ignored), data, CRLF; a zero size, trailers, CRLF.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(truncated)?;
        let size_text = line
            .split_once(';')
            .map_or(line.as_str(), |(s, _)| s)
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailer fields, if any, are read and dropped.
            while !read_line(reader)?.ok_or_else(truncated)?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(invalid(format!("body larger than {MAX_BODY} bytes")));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !read_line(reader)?.ok_or_else(truncated)?.is_empty() {
            return Err(invalid("chunk data longer than its size".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one request (head and body) from `bytes`.
    fn read_request(bytes: &[u8]) -> io::Result<Option<(Head, Vec<u8>)>> {
        let mut reader = bytes;
        let Some(head) = read_head(&mut reader)? else {
            return Ok(None);
        };
        let body = read_body(&mut reader, head.request_framing()?)?;
        Ok(Some((head, body)))
    }

    #[test]
    fn request_reader_frames_bodies() {
        let rows: [(&str, &str, &[u8]); 6] = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1", b""),
            ("\r\nGET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1", b""),
            (
                "POST /o HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                "POST /o HTTP/1.1",
                b"hello",
            ),
            (
                "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                "POST /u HTTP/1.1",
                b"abcde",
            ),
            (
                "POST /u HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
                "POST /u HTTP/1.1",
                b"0123456789",
            ),
            (
                "POST /o HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
                "POST /o HTTP/1.0",
                b"",
            ),
        ];
        for (input, start, body) in rows {
            let (head, got) = read_request(input.as_bytes())
                .unwrap_or_else(|e| panic!("{input:?}: {e}"))
                .unwrap_or_else(|| panic!("{input:?}: no request"));
            assert_eq!(head.start, start, "{input:?}");
            assert_eq!(got, body, "{input:?}");
        }
    }

    #[test]
    fn request_reader_rejects_what_it_cannot_frame() {
        let rows: [(&str, io::ErrorKind); 6] = [
            (
                "GET / HTTP/1.1\r\nHost: a\r\n",
                io::ErrorKind::UnexpectedEof,
            ),
            (
                "GET / HTTP/1.1\r\nbad line\r\n\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
                io::ErrorKind::UnexpectedEof,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                io::ErrorKind::InvalidData,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                io::ErrorKind::InvalidData,
            ),
        ];
        for (input, kind) in rows {
            match read_request(input.as_bytes()) {
                Err(e) => assert_eq!(e.kind(), kind, "{input:?}: {e}"),
                Ok(got) => panic!("{input:?}: accepted as {got:?}"),
            }
        }
        assert!(matches!(read_request(b""), Ok(None)));
    }

    #[test]
    fn only_the_candidate_answers_users_differently() {
        let answers =
            |method: &str, target: &str| Role::ALL.map(|role| answer(role, method, target, b"{}"));
        for (method, target) in [
            ("GET", "/health"),
            ("GET", "/items?page=2"),
            ("GET", "/events"),
            ("POST", "/orders"),
            ("GET", "/missing"),
        ] {
            let [p, s, c] = answers(method, target);
            assert!(p == s && s == c, "{method} {target}");
        }
        let [p, s, c] = answers("GET", "/users/7");
        assert_eq!(p, s);
        assert_ne!(p.chunks, c.chunks);
        assert_eq!(p.status, c.status);
    }

    /// The client and an upstream agree on the wire without the proxy in between, so a
    /// failing `make demo` points at the proxy.
    #[test]
    fn client_drives_the_script_against_an_upstream_directly() {
        let upstream = Upstream::start(Role::Primary).expect("bind an upstream");
        let result = drive(upstream.addr, Duration::from_secs(10), &script());
        upstream.stop();
        result.expect("script answered");
    }

    #[test]
    fn script_has_a_few_dozen_requests_including_bodies() {
        let script = script();
        assert!(script.len() >= 24, "{}", script.len());
        assert!(script
            .iter()
            .any(|r| matches!(r.payload, Payload::Chunked(_))));
        assert!(script
            .iter()
            .any(|r| matches!(r.payload, Payload::Length(_))));
    }
}
