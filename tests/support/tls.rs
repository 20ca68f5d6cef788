//! TLS for the tests: certificates made on the spot with rcgen (a CA and the leaves it signs,
//! self-signed leaves), PEM files for trident's flags, a recording TLS test upstream (rustls
//! `ServerConnection` over a std `TcpStream`, a thread per connection, keep-alive) and a TLS
//! client. HTTP is read here by a small reader over any byte stream, sharing nothing with
//! trident's parser. Every read is bounded in time, as in the plain harness.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

use super::wire::{self, Field};

/// Per read and per write on the client side.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The ring provider, named explicitly: the crate enables no default provider.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new CA whose subject is `CN=name` (distinct names keep issuers apart).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = common_name(name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa { cert, key }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = leaf_params(names)
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign a leaf");
        Leaf::new(&cert, &key)
    }

    /// `issue`, for client authentication only (an extended key usage that leaves out
    /// servers): a certificate a server must not present.
    pub fn issue_for_clients(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = leaf_params(names);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign a leaf");
        Leaf::new(&cert, &key)
    }

    /// The CA certificate in PEM, for `--ca-file`.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate in DER, for a test client's roots.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
}

/// A leaf certificate for `names` that signs itself (no CA vouches for it).
pub fn self_signed(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf_params(names).self_signed(&key).expect("self-sign");
    Leaf::new(&cert, &key)
}

/// A self-signed certificate that is also a CA's (`CA:TRUE`), as `openssl req -x509` makes
/// them, for `names`.
pub fn self_signed_ca(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let mut params = leaf_params(names);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-sign");
    Leaf::new(&cert, &key)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params.distinguished_name = common_name(names.first().map_or("leaf", String::as_str));
    params
}

/// A server certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Leaf {
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("server certificate");
        Arc::new(config)
    }

    /// The certificate and the key written to PEM files, for `--tls-cert`/`--tls-key`.
    pub fn files(&self) -> (PemFile, PemFile) {
        (
            PemFile::new("cert", &self.cert_pem),
            PemFile::new("key", &self.key_pem),
        )
    }
}

/// A file in the temp dir, removed on drop.
pub struct PemFile {
    path: PathBuf,
}

impl PemFile {
    /// A file holding `text`; `tag` shows in its name.
    pub fn new(tag: &str, text: &str) -> PemFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "trident-test-{}-{}-{tag}.pem",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).expect("write a PEM file");
        PemFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a `&str` for the command line.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8 here")
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A TLS client configuration trusting only `root`.
pub fn client_config(root: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root).expect("add the test CA");
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The address `localhost` resolves to first: trident resolves a target's host the same way
/// when it loads its targets, so a test upstream bound here is the one it reaches.
pub fn localhost() -> SocketAddr {
    ("localhost", 0)
        .to_socket_addrs()
        .expect("resolve localhost")
        .next()
        .expect("localhost has an address")
}

/// One request as a TLS test upstream received it.
#[derive(Debug, Clone)]
pub struct TlsRequest {
    pub method: String,
    pub target: String,
    pub version: String,
    /// In arrival order, case kept.
    pub headers: Vec<Field>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// Which accepted connection it came on (0, 1, 2 ... in accept order).
    pub connection: usize,
}

impl TlsRequest {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::field(&self.headers, name)
    }
}

type TlsHandler = Arc<dyn Fn(&TlsRequest) -> (u16, Vec<u8>) + Send + Sync>;

struct Shared {
    requests: Mutex<Vec<TlsRequest>>,
    accepted: AtomicUsize,
    /// Connections this upstream has finished with (closed, or failed).
    ended: AtomicUsize,
    /// Connections whose handshake failed (the peer refused the certificate, or spoke
    /// something else than TLS).
    handshake_failures: AtomicUsize,
    /// Send a TLS KeyUpdate right after each response, as a server rolling its keys before
    /// an idle period does.
    rekey: AtomicBool,
    /// Close each connection (close_notify, then FIN) after its response, unannounced, as
    /// a server whose keep-alive timeout is shorter than a client's gap does.
    close_quietly: AtomicBool,
    /// Frame each response by closing the connection (no Content-Length), ending with a
    /// close_notify or not (`CloseDelimited`).
    close_delimited: Mutex<Option<CloseDelimited>>,
    stop: AtomicBool,
}

/// How a close-delimited response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseDelimited {
    /// close_notify, then FIN: the body is known to be whole.
    WithCloseNotify,
    /// FIN alone, as a crashed server or a cut connection looks.
    BareClose,
}

/// A TLS HTTP/1.1 server on `localhost()`; stopped on drop.
pub struct TlsUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsUpstream {
    /// Answers every request `200 OK` with body `"{name} {METHOD} {target}"` and an
    /// `X-Upstream: {name}` header, presenting `leaf`.
    pub fn named(name: &str, leaf: &Leaf) -> TlsUpstream {
        let name = name.to_string();
        TlsUpstream::start(leaf, move |req| {
            (
                200,
                format!("{name} {} {}", req.method, req.target).into_bytes(),
            )
        })
    }

    /// Answers each request with `handler(request)`: (status, body), Content-Length framed.
    pub fn start<F>(leaf: &Leaf, handler: F) -> TlsUpstream
    where
        F: Fn(&TlsRequest) -> (u16, Vec<u8>) + Send + Sync + 'static,
    {
        let handler: TlsHandler = Arc::new(handler);
        let config = leaf.server_config();
        let listener = TcpListener::bind(localhost()).expect("bind a TLS test upstream");
        let addr = listener.local_addr().expect("upstream address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            handshake_failures: AtomicUsize::new(0),
            rekey: AtomicBool::new(false),
            close_quietly: AtomicBool::new(false),
            close_delimited: Mutex::new(None),
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
                    let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let (shared, config, handler) = (
                        Arc::clone(&shared),
                        Arc::clone(&config),
                        Arc::clone(&handler),
                    );
                    thread::spawn(move || {
                        serve(stream, index, config, &shared, &handler);
                        shared.ended.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        };
        TlsUpstream {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, follows each response with a TLS KeyUpdate message in the same write:
    /// TLS bytes that carry no HTTP, on a connection that is about to idle.
    pub fn rekey_after_responses(&self) {
        self.shared.rekey.store(true, Ordering::SeqCst);
    }

    /// From now on, closes each connection after its response without a `Connection:
    /// close` field: the client learns of it only from the TLS close.
    pub fn close_after_responses(&self) {
        self.shared.close_quietly.store(true, Ordering::SeqCst);
    }

    /// From now on, sends each body delimited by the close of its connection, ended as `end`
    /// says.
    pub fn close_delimited(&self, end: CloseDelimited) {
        *self.shared.close_delimited.lock().unwrap() = Some(end);
    }

    /// `https://localhost:PORT`: the name its certificate is for.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<TlsRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Waits until this upstream has closed (or given up on) `n` connections.
    pub fn wait_ended(&self, n: usize, timeout: Duration) {
        let ended = || self.shared.ended.load(Ordering::SeqCst);
        assert!(
            super::wait_until(timeout, || ended() >= n),
            "TLS upstream {}: {} of {n} connections ended within {timeout:?}",
            self.addr,
            ended()
        );
    }

    /// Connections whose TLS handshake failed so far.
    pub fn handshake_failures(&self) -> usize {
        self.shared.handshake_failures.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have arrived; panics with what did arrive on timeout.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<TlsRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = requests
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.target))
                    .collect();
                panic!(
                    "TLS upstream {} got {} of {n} requests within {timeout:?}: {seen:?} \
                     ({} connections, {} failed handshakes)",
                    self.addr,
                    requests.len(),
                    self.connections(),
                    self.handshake_failures()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woken {
                let _ = acceptor.join();
            }
        }
    }
}

/// Serves one TLS connection until the peer closes, a request says `Connection: close`, or
/// the upstream stops.
fn serve(
    tcp: TcpStream,
    index: usize,
    config: Arc<ServerConfig>,
    shared: &Shared,
    handler: &TlsHandler,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.set_nodelay(true);
    let Ok(session) = ServerConnection::new(config) else {
        return;
    };
    let mut stream = StreamOwned::new(session, tcp);
    // Drive the handshake to its end first, so that a refused certificate is counted.
    while stream.conn.is_handshaking() {
        match stream.conn.complete_io(&mut stream.sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) && !shared.stop.load(Ordering::SeqCst) => {}
            Err(_) => {
                shared.handshake_failures.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
    let mut reader = HttpReader::new(stream, Some(&shared.stop));
    loop {
        let Ok(Some((start, headers))) = reader.read_head() else {
            return;
        };
        let Ok(body) = reader.read_body(&headers, false) else {
            return;
        };
        let mut parts = start.splitn(3, ' ');
        let request = TlsRequest {
            method: parts.next().unwrap_or("").to_string(),
            target: parts.next().unwrap_or("").to_string(),
            version: parts.next().unwrap_or("").to_string(),
            headers,
            body,
            connection: index,
        };
        shared.requests.lock().unwrap().push(request.clone());
        let (status, body) = handler(&request);
        let until_close = *shared.close_delimited.lock().unwrap();
        if let Some(end) = until_close {
            let mut out = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
            out.extend_from_slice(&body);
            let _ = reader.stream.write_all(&out);
            if end == CloseDelimited::WithCloseNotify {
                reader.stream.conn.send_close_notify();
            }
            let _ = reader.stream.flush();
            let _ = reader.stream.sock.shutdown(Shutdown::Both);
            return;
        }
        let close = wire::lists_token(&request.headers, "connection", "close");
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n{}\r\n",
            if status == 200 { "OK" } else { "Other" },
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if request.method != "HEAD" {
            out.extend_from_slice(&body);
        }
        let written = if shared.rekey.load(Ordering::SeqCst) {
            // Buffered with the response, so the two leave in one write.
            let conn = &mut reader.stream.conn;
            conn.writer()
                .write_all(&out)
                .and_then(|()| conn.refresh_traffic_keys().map_err(io::Error::other))
        } else {
            reader.stream.write_all(&out)
        };
        let close = close || shared.close_quietly.load(Ordering::SeqCst);
        if written.is_err() || reader.stream.flush().is_err() || close {
            reader.stream.conn.send_close_notify();
            let _ = reader.stream.flush();
            let _ = reader.stream.sock.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One final response as a TLS client read it.
#[derive(Debug, Clone)]
pub struct TlsResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Field>,
    pub body: Vec<u8>,
}

impl TlsResponse {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::field(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TLS client connection (to trident's TLS listener).
pub struct TlsClient {
    reader: HttpReader<'static, StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Connects to `addr` and completes a handshake that verifies `server_name` against
    /// `config`'s roots; `Err` says why the handshake failed.
    pub fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> io::Result<TlsClient> {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        TlsClient::over(tcp, config, server_name)
    }

    /// The same over a connection the caller made (with socket options of its own).
    pub fn over(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> io::Result<TlsClient> {
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let session = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(session, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            reader: HttpReader::new(stream, None),
        })
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        let stream = &mut self.reader.stream;
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .unwrap_or_else(|e| panic!("sending {} bytes over TLS: {e}", bytes.len()));
    }

    /// Reads one final response; panics on error.
    pub fn read_response(&mut self, head_request: bool) -> TlsResponse {
        loop {
            let (start, headers) = self
                .reader
                .read_head()
                .and_then(|head| {
                    head.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response")
                    })
                })
                .unwrap_or_else(|e| panic!("reading a response over TLS: {e}"));
            let mut parts = start.splitn(3, ' ');
            let _version = parts.next();
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {start:?}"));
            let reason = parts.next().unwrap_or("").to_string();
            if (100..200).contains(&status) {
                continue;
            }
            let bodiless = head_request || status == 204 || status == 304;
            let body = self
                .reader
                .read_body(&headers, !bodiless)
                .unwrap_or_else(|e| panic!("reading a response body over TLS: {e}"));
            return TlsResponse {
                status,
                reason,
                headers,
                body,
            };
        }
    }

    /// Sends `request` and reads its response.
    pub fn exchange(&mut self, request: &[u8]) -> TlsResponse {
        self.send(request);
        self.read_response(request.starts_with(b"HEAD "))
    }

    /// Whether the server ended the connection (a close_notify, or the TCP close) without
    /// sending anything more.
    pub fn is_closed(&mut self) -> bool {
        matches!(self.reader.fill(), Ok(0) | Err(_)) && self.reader.buffered() == 0
    }
}

/// Buffered HTTP/1.1 reading over any byte stream: heads, Content-Length, chunked and
/// close-delimited bodies. `stop`: a read timeout means "check the flag and read again"
/// (upstream side); without it a read timeout is an error (client side).
struct HttpReader<'a, S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
    stop: Option<&'a AtomicBool>,
}

impl<'a, S: Read> HttpReader<'a, S> {
    fn new(stream: S, stop: Option<&'a AtomicBool>) -> Self {
        HttpReader {
            stream,
            buf: Vec::new(),
            pos: 0,
            stop,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads more; `Ok(0)` at EOF (a TLS peer that closed without close_notify counts).
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if is_timeout(&e) => match self.stop {
                    Some(stop) if !stop.load(Ordering::SeqCst) => continue,
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// One line without its CRLF; `Ok(None)` on EOF before its first byte.
    fn read_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let line = self.take(i + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(Some(String::from_utf8_lossy(line).into_owned()));
            }
            if self.fill()? == 0 {
                if self.buffered() == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a line",
                ));
            }
        }
    }

    /// A start line and its fields; `Ok(None)` on a clean EOF before the head.
    fn read_head(&mut self) -> io::Result<Option<(String, Vec<Field>)>> {
        let Some(start) = self.read_line()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        loop {
            let line = self
                .read_line()?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a head"))?;
            if line.is_empty() {
                return Ok(Some((start, fields)));
            }
            let (name, value) = line.split_once(':').ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad field {line:?}"))
            })?;
            fields.push((name.to_string(), value.trim().to_string()));
        }
    }

    fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buffered() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {n} body bytes", self.buffered()),
                ));
            }
        }
        Ok(self.take(n))
    }

    /// The body the fields announce; without a length, none for a request and everything
    /// until EOF for a response (`until_close`).
    fn read_body(&mut self, fields: &[Field], until_close: bool) -> io::Result<Vec<u8>> {
        if wire::is_chunked(fields) {
            let mut body = Vec::new();
            loop {
                let line = self.read_line()?.unwrap_or_default();
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {line:?}"))
                })?;
                if size == 0 {
                    while !self.read_line()?.unwrap_or_default().is_empty() {}
                    return Ok(body);
                }
                body.extend_from_slice(&self.read_exact_vec(size)?);
                self.read_exact_vec(2)?;
            }
        }
        if let Some(cl) = wire::field(fields, "content-length") {
            let n: usize = cl.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("Content-Length {cl:?}"))
            })?;
            return self.read_exact_vec(n);
        }
        if !until_close {
            return Ok(Vec::new());
        }
        while self.fill()? > 0 {}
        let n = self.buffered();
        Ok(self.take(n))
    }
}
