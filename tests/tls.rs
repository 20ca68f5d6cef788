//! TLS: a TLS listener (`--tls-cert`, `--tls-key`) in front of plain upstreams, `https://`
//! targets verified against `--ca-file` (or not, with `tls_verify=off`), a refused upstream
//! certificate reported on its own leg while the client is still answered, and the mixes.
//! Every certificate is made for the test with rcgen.

mod support;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use support::tls::{
    client_config, self_signed, self_signed_ca, CloseDelimited, PemFile, TestCa, TlsClient,
    TlsUpstream,
};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// A CA trusted by the test (its certificate written to a file for `--ca-file`).
struct Trusted {
    ca: TestCa,
    file: PemFile,
}

impl Trusted {
    fn new() -> Trusted {
        let ca = TestCa::new("trident test CA");
        let file = PemFile::new("ca", &ca.pem());
        Trusted { ca, file }
    }
}

/// A TLS client of `trident` trusting `ca`, for the name `localhost`.
fn tls_client(trident: &Trident, ca: &TestCa) -> TlsClient {
    TlsClient::connect(trident.addr(), client_config(ca.der()), "localhost")
        .unwrap_or_else(|e| panic!("TLS handshake with trident: {e}\n{}", trident.output()))
}

/// A plain upstream answering `"{name} {METHOD} {target} {body length}"`, or `big` bytes of
/// pattern for `/big`.
fn upstream(name: &'static str, big: usize) -> Upstream {
    Upstream::start(move |req| {
        if req.target == "/big" {
            Reply::ok(pattern(big, 7))
        } else {
            Reply::ok(format!(
                "{name} {} {} {}",
                req.method,
                req.target,
                req.body.len()
            ))
        }
    })
}

/// trident serving TLS (a certificate `trusted` issued for localhost, plus `extra`) in front
/// of three plain `upstream`s; the certificate's files live as long as the caller keeps them.
fn tls_listener(trusted: &Trusted, extra: &[&str]) -> (Trident, [Upstream; 3], [PemFile; 2]) {
    let (cert, key) = trusted.ca.issue(&["localhost"]).files();
    let (p, s, c) = (
        upstream("primary", 0),
        upstream("secondary", 0),
        upstream("candidate", 0),
    );
    let mut args = vec!["--tls-cert", cert.arg(), "--tls-key", key.arg()];
    args.extend_from_slice(extra);
    let trident = Trident::with_upstreams(&p, &s, &c, &args);
    (trident, [p, s, c], [cert, key])
}

/// The leg's error text, which must be a refused certificate.
fn assert_certificate_refused(leg: &support::Leg) -> String {
    let text = leg.error().to_string();
    assert!(
        text.starts_with("tls: certificate refused: "),
        "{} leg: {text:?}",
        leg.role
    );
    text
}

#[test]
fn tls_client_through_trident_to_plain_upstreams() {
    let trusted = Trusted::new();
    let (cert, key) = trusted.ca.issue(&["localhost"]).files();
    let big = 1024 * 1024;
    let (p, s, c) = (
        upstream("primary", big),
        upstream("secondary", big),
        upstream("candidate", big),
    );
    let trident = Trident::with_upstreams(
        &p,
        &s,
        &c,
        &["--tls-cert", cert.arg(), "--tls-key", key.arg()],
    );
    let mut client = tls_client(&trident, &trusted.ca);
    let resp = client.exchange(&get("/a"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /a 0");
    // A request body bigger than a TLS record and a socket buffer, on the same connection.
    let body = pattern(300 * 1024, 3);
    let resp = client.exchange(&request(
        "POST",
        "/upload",
        &[("Host", "test.local")],
        &body,
    ));
    assert_eq!(
        resp.body_text(),
        format!("primary POST /upload {}", body.len())
    );
    // A response bigger than what TLS can hand the socket at once.
    let resp = client.exchange(&get("/big"));
    assert_eq!(resp.status, 200);
    assert_same_bytes("TLS client's /big", &pattern(big, 7), &resp.body);
    for up in [&p, &s, &c] {
        let got = up.wait_requests(3, WAIT);
        assert_same_bytes("upstream's /upload", &body, &find(&got, "/upload").body);
        assert_eq!(find(&got, "/a").header("Host"), Some("test.local"));
    }
    for block in trident.wait_blocks(3, WAIT) {
        for leg in &block.legs {
            assert_eq!(leg.response().0, 200, "{}", block.text);
        }
    }
}

/// At a SIGTERM, a TLS client taken in from the backlog (at `--max-clients`) with only its
/// ClientHello sent is let go mid-handshake: the log does not count it among the clients
/// still taking their last answers, as it did, since it was never answered (hunt 73).
#[test]
fn a_client_mid_handshake_at_sigterm_is_not_counted_as_taking_an_answer() {
    let trusted = Trusted::new();
    let (mut trident, _upstreams, _files) = tls_listener(&trusted, &["--max-clients", "1"]);
    let mut holder = tls_client(&trident, &trusted.ca);
    assert_eq!(holder.exchange(&get("/held")).status, 200);
    trident.wait_blocks(1, WAIT);
    // A ClientHello, and no more: trident's answer to it is never read.
    let mut waiting = std::net::TcpStream::connect(trident.addr()).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    let mut hello = rustls::ClientConnection::new(client_config(trusted.ca.der()), name)
        .expect("a TLS session");
    hello.write_tls(&mut waiting).expect("send the ClientHello");
    // The holder's kernel acknowledges its answer's last bytes late (a delayed ACK, up to
    // 40 ms, more on a loaded machine); until then the holder is rightly counted as still
    // taking its answer, which is not what this test is about. trident shows no sign of it
    // to wait on.
    std::thread::sleep(std::time::Duration::from_millis(300));
    trident.signal("TERM");
    trident.wait_stderr("shutting down", WAIT);
    drop(holder);
    drop(waiting);
    trident.exits_0(WAIT);
    let stderr = trident.stderr();
    let line = stderr
        .lines()
        .find(|line| line.contains("shutting down"))
        .expect("the shutting-down line");
    assert!(
        line.ends_with("shutting down: 0 exchanges in flight"),
        "{line}"
    );
}

#[test]
fn a_client_that_fails_the_handshake_does_not_disturb_the_next_one() {
    let trusted = Trusted::new();
    let (trident, [p, _, _], _files) = tls_listener(&trusted, &[]);
    // A client that trusts another CA refuses trident's certificate.
    let stranger = TestCa::new("some other CA");
    let refused = TlsClient::connect(trident.addr(), client_config(stranger.der()), "localhost");
    assert!(
        refused.is_err(),
        "a client trusting another CA completed the handshake"
    );
    // A client that speaks plain HTTP to the TLS listener is told so in plain HTTP (a TLS
    // alert is 7 bytes it cannot read), and its request goes nowhere.
    // So is one whose request begins with an empty line, or a method in lower case (hunt
    // 79: they got the alert).
    for request in [
        [&b"\r\n"[..], &get("/after-crlf")].concat(),
        [&b"get"[..], &get("/lower")[3..]].concat(),
    ] {
        let mut plain = trident.client();
        plain.send(&request);
        let answer = plain.read_until_closed().unwrap_or_default();
        assert!(
            answer.ends_with(
                b"\r\n\r\ntrident: this port speaks TLS: send the request with https://\n"
            ),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let mut plain = trident.client();
    plain.send(&get("/plain"));
    let answer = plain.read_until_closed().unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert!(
        answer.ends_with("\r\n\r\ntrident: this port speaks TLS: send the request with https://\n"),
        "{answer:?}"
    );
    // Framed by its Content-Length, which the constant states by hand.
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{answer:?}"
    );
    // An SSLv2-style hello (older Java and OpenSSL clients: its first byte is 0x80) is a TLS
    // client's: it gets TLS's alert, not the plain answer telling it to use TLS.
    let mut old_hello = trident.client();
    old_hello.send(&[
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ]);
    let answer = old_hello.read_until_closed().unwrap_or_default();
    assert!(
        !answer.starts_with(b"HTTP/") && answer.first() == Some(&0x15),
        "{answer:?}"
    );
    // The next good client is served.
    let resp = tls_client(&trident, &trusted.ca).exchange(&get("/after"));
    assert_eq!(resp.body_text(), "primary GET /after 0");
    assert_eq!(sorted_targets(&p.wait_requests(1, WAIT)), ["/after"]);
}

#[test]
fn https_targets_verified_with_ca_file() {
    let trusted = Trusted::new();
    let leaf = trusted.ca.issue(&["localhost"]);
    let big = 1024 * 1024;
    let body_for = move |name: &'static str| {
        move |req: &support::tls::TlsRequest| {
            if req.target == "/big" {
                (200, pattern(big, 9))
            } else {
                let text = format!("{name} {} {} {}", req.method, req.target, req.body.len());
                (200, text.into_bytes())
            }
        }
    };
    let p = TlsUpstream::start(&leaf, body_for("primary"));
    let s = TlsUpstream::start(&leaf, body_for("secondary"));
    let c = TlsUpstream::start(&leaf, body_for("candidate"));
    let (pu, su, cu) = (p.url(), s.url(), c.url());
    let trident = Trident::with_urls(&pu, &su, &cu, &["--ca-file", trusted.file.arg()]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/a"));
    assert_eq!(
        (resp.status, resp.body_text().as_str()),
        (200, "primary GET /a 0")
    );
    let body = pattern(200 * 1024, 5);
    let resp = client.exchange(&chunked_request(
        "POST",
        "/upload",
        &[("Host", "test.local")],
        &body,
        &[7000, 13],
    ));
    assert_eq!(
        resp.body_text(),
        format!("primary POST /upload {}", body.len())
    );
    let resp = client.exchange(&get("/big"));
    assert_same_bytes(
        "client's /big from a TLS primary",
        &pattern(big, 9),
        &resp.body,
    );
    // Sequential requests reuse pooled TLS connections. Each waits for the one before to
    // be printed, which is when its shadows' connections are back in the pool.
    trident.wait_blocks(3, WAIT);
    for i in 0..10 {
        assert_eq!(client.exchange(&get(&format!("/seq{i}"))).status, 200);
        trident.wait_blocks(4 + i, WAIT);
    }
    for up in [&p, &s, &c] {
        let got = up.wait_requests(13, WAIT);
        let upload = got.iter().find(|r| r.target == "/upload").unwrap();
        assert_same_bytes("TLS upstream's /upload", &body, &upload.body);
        let a = got.iter().find(|r| r.target == "/a").unwrap();
        assert_eq!(a.header("Host"), Some("test.local"), "host=keep by default");
    }
    // None may be dropped as "closed by the upstream" while it is open (a TLS session
    // ticket is not a close). The first three requests may each find a shadow still busy.
    for (up, most) in [(&p, 2), (&s, 3), (&c, 3)] {
        assert!(
            up.connections() <= most,
            "{}: {} TLS connections for 13 sequential requests (at most {most} expected)",
            up.url(),
            up.connections()
        );
    }
    for block in trident.wait_blocks(13, WAIT) {
        for leg in &block.legs {
            assert_eq!(leg.response().0, 200, "{}", block.text);
        }
    }
}

#[test]
fn tls_verify_off_accepts_a_self_signed_upstream_and_verification_refuses_it() {
    let trusted = Trusted::new();
    let mine = self_signed(&["localhost"]);
    let p = Upstream::named("primary");
    let s = TlsUpstream::named("secondary", &mine);
    let c = TlsUpstream::named("candidate", &mine);
    let file = TargetsFile::new(&format!(
        "primary = {}\nsecondary = {} tls_verify=off\ncandidate = {} tls_verify=on\n",
        p.url(),
        s.url(),
        c.url()
    ));
    let trident = Trident::spawn(&["--targets", file.arg(), "--ca-file", trusted.file.arg()]);
    let resp = trident.client().exchange(&get("/self"));
    assert_eq!(resp.body_text(), "primary GET /self");
    let block = &trident.wait_blocks(1, WAIT)[0];
    assert_eq!(block.primary().response().0, 200);
    assert_eq!(block.secondary().response().0, 200, "{}", block.text);
    assert_certificate_refused(block.candidate());
    assert_eq!(s.wait_requests(1, WAIT)[0].target, "/self");
    assert!(c.requests().is_empty());
}

/// A self-signed service certificate (plain, or a CA's as `openssl req -x509` makes them)
/// listed in `--ca-file` is trusted for the names it holds, as `curl --cacert` takes it; not
/// for another name, and a certificate not listed is refused in words.
#[test]
fn a_self_signed_certificate_listed_in_ca_file_is_trusted_for_its_names() {
    for mine in [self_signed(&["localhost"]), self_signed_ca(&["localhost"])] {
        let listed = PemFile::new("self", &mine.cert_pem);
        let p = TlsUpstream::named("primary", &mine);
        let s = TlsUpstream::named("secondary", &mine);
        let other = self_signed_ca(&["localhost"]);
        let c = TlsUpstream::named("candidate", &other);
        // The secondary by an address its certificate does not name.
        let secondary = format!("https://127.0.0.1:{}", s.addr().port());
        let trident =
            Trident::with_urls(&p.url(), &secondary, &c.url(), &["--ca-file", listed.arg()]);
        let resp = trident.client().exchange(&get("/self"));
        assert_eq!(resp.body_text(), "primary GET /self");
        let block = &trident.wait_blocks(1, WAIT)[0];
        assert_eq!(
            assert_certificate_refused(block.secondary()),
            "tls: certificate refused: not valid for the target's host name (its \
             subjectAltName must name it: the common name is not read; openssl -addext \
             subjectAltName=DNS:HOST)"
        );
        assert_eq!(
            assert_certificate_refused(block.candidate()),
            "tls: certificate refused: a CA certificate used as the server's own, as a \
             self-signed `openssl req -x509` one is (--ca-file takes its CA, or the \
             certificate itself; tls_verify=off accepts any)"
        );
    }
}

/// One TLS upstream behind two legs, unverified for the secondary and verified for the
/// candidate: the secondary's pooled sessions never carry the candidate's requests.
#[test]
fn a_session_opened_without_verification_is_never_reused_by_a_verifying_leg() {
    let trusted = Trusted::new();
    let mine = self_signed(&["localhost"]);
    let p = Upstream::named("primary");
    // The two `/overlap/` requests are answered only once both have arrived, so the
    // secondary opens (and then pools) two sessions.
    let arrived = Arc::new((Mutex::new(0), Condvar::new()));
    let shared = TlsUpstream::start(&mine, move |req| {
        if req.target.starts_with("/overlap/") {
            let (count, both) = &*arrived;
            let mut count = count.lock().unwrap();
            *count += 1;
            both.notify_all();
            let (count, _) = both.wait_timeout_while(count, WAIT, |n| *n < 2).unwrap();
            assert_eq!(*count, 2, "the second /overlap/ request never came");
        }
        (200, format!("shared {}", req.target).into_bytes())
    });
    let file = TargetsFile::new(&format!(
        "primary = {}\nsecondary = {} tls_verify=off\ncandidate = {}\n",
        p.url(),
        shared.url(),
        shared.url()
    ));
    let trident = Trident::spawn(&["--targets", file.arg(), "--ca-file", trusted.file.arg()]);
    let addr = trident.addr();
    let overlapping: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                Client::connect(addr).exchange(&get(&format!("/overlap/{i}")))
            })
        })
        .collect();
    for client in overlapping {
        assert_eq!(client.join().expect("client").status, 200);
    }
    // Each exchange ends (its sessions pooled) before the next starts.
    trident.wait_blocks(2, WAIT);
    let mut client = trident.client();
    for i in 0..3 {
        assert_eq!(client.exchange(&get(&format!("/after/{i}"))).status, 200);
        trident.wait_blocks(3 + i, WAIT);
    }
    let blocks = trident.wait_blocks(5, WAIT);
    for block in &blocks {
        assert_eq!(block.secondary().response().0, 200, "{}", block.text);
        assert_certificate_refused(block.candidate());
    }
    let requests = shared.requests();
    assert_eq!(
        requests.len(),
        5,
        "only the secondary's requests: {requests:?}"
    );
    let sessions: std::collections::HashSet<usize> =
        requests.iter().map(|r| r.connection).collect();
    assert_eq!(
        sessions.len(),
        2,
        "the secondary reused its sessions: {requests:?}"
    );
}

#[test]
fn a_bad_upstream_certificate_is_refused_on_that_leg_and_the_client_still_answered() {
    let trusted = Trusted::new();
    let unknown = TestCa::new("unknown CA").issue(&["localhost"]);
    let wrong_name = trusted.ca.issue(&["other.example"]);
    let p = Upstream::named("primary");
    let s = TlsUpstream::named("secondary", &unknown);
    let c = TlsUpstream::named("candidate", &wrong_name);
    let (pu, su, cu) = (p.url(), s.url(), c.url());
    let trident = Trident::with_urls(&pu, &su, &cu, &["--ca-file", trusted.file.arg()]);
    let mut client = trident.client();
    for i in 0..2 {
        let resp = client.exchange(&get(&format!("/bad{i}")));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_text(), format!("primary GET /bad{i}"));
    }
    for block in trident.wait_blocks(2, WAIT) {
        assert_eq!(block.primary().response().0, 200);
        let unknown = assert_certificate_refused(block.secondary());
        assert!(
            unknown.contains("not issued by a trusted CA"),
            "{unknown:?}"
        );
        let wrong = assert_certificate_refused(block.candidate());
        assert!(
            wrong.to_lowercase().contains("name"),
            "a wrong-name refusal should say so: {wrong:?}"
        );
    }
    assert!(s.requests().is_empty() && c.requests().is_empty());
    assert!(s.handshake_failures() >= 1 && c.handshake_failures() >= 1);
}

/// The candidate's error when it is an `https://` target that reads the ClientHello and
/// answers `reply` (nothing: it closes).
fn candidate_error_for_a_hello_answered_with(reply: &'static [u8]) -> String {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let candidate = format!("https://127.0.0.1:{}", target.local_addr().unwrap().port());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut conn, _)) = target.accept() {
            let _ = conn.read(&mut [0u8; 4096]);
            let _ = conn.write_all(reply);
        }
    });
    let trident = Trident::with_urls(&p.url(), &s.url(), &candidate, &[]);
    let resp = trident.client().exchange(&get("/x"));
    assert_eq!(resp.body_text(), "primary GET /x");
    trident.wait_blocks(1, WAIT)[0]
        .candidate()
        .error()
        .to_string()
}

/// An `https://` target that is a plain HTTP server answers the ClientHello in plain text:
/// the leg says so, not rustls' `received corrupt message of type InvalidContentType`.
#[test]
fn an_https_target_that_speaks_plain_http_is_named_so() {
    // A plain server answering bytes that are no request, as nginx and Go's do at once.
    assert_eq!(
        candidate_error_for_a_hello_answered_with(
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
        ),
        "tls: the target does not speak TLS (a plain HTTP server answers this way: is its URL \
         meant to be http://?)"
    );
}

/// An `https://` target that closes the connection during the handshake (one that wants
/// another TLS version, or a client certificate, as some do) is named so: it read as a
/// response cut short (hunt 79's note).
#[test]
fn an_https_target_that_closes_during_the_handshake_is_named_so() {
    assert_eq!(
        candidate_error_for_a_hello_answered_with(b""),
        "tls: the upstream closed during the handshake"
    );
}

#[test]
fn a_certificate_not_meant_for_a_server_is_refused_in_words() {
    let trusted = Trusted::new();
    let for_clients = trusted.ca.issue_for_clients(&["localhost"]);
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let c = TlsUpstream::named("candidate", &for_clients);
    let (pu, su, cu) = (p.url(), s.url(), c.url());
    let trident = Trident::with_urls(&pu, &su, &cu, &["--ca-file", trusted.file.arg()]);
    assert_eq!(trident.client().exchange(&get("/eku")).status, 200);
    let block = &trident.wait_blocks(1, WAIT)[0];
    assert_eq!(
        assert_certificate_refused(block.candidate()),
        "tls: certificate refused: not issued for a server (its extended key usage names \
         other purposes)"
    );
}

#[test]
fn a_primary_with_a_refused_certificate_gets_the_client_a_502() {
    let trusted = Trusted::new();
    let unknown = TestCa::new("unknown CA").issue(&["localhost"]);
    let p = TlsUpstream::named("primary", &unknown);
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let pu = p.url();
    let (su, cu) = (s.url(), c.url());
    let trident = Trident::with_urls(&pu, &su, &cu, &["--ca-file", trusted.file.arg()]);
    let resp = trident.client().exchange(&get("/p"));
    assert_eq!(resp.status, 502);
    let block = &trident.wait_blocks(1, WAIT)[0];
    assert_certificate_refused(block.primary());
    assert_eq!(block.secondary().response().0, 200);
    assert_eq!(block.candidate().response().0, 200);
}

#[test]
fn tls_client_with_an_https_primary_and_two_plain_shadows() {
    let trusted = Trusted::new();
    let leaf = trusted.ca.issue(&["localhost"]);
    let (cert, key) = leaf.files();
    let p = TlsUpstream::named("primary", &leaf);
    let (s, c) = (upstream("secondary", 0), upstream("candidate", 0));
    let (pu, su, cu) = (p.url(), s.url(), c.url());
    let trident = Trident::with_urls(
        &pu,
        &su,
        &cu,
        &[
            "--ca-file",
            trusted.file.arg(),
            "--tls-cert",
            cert.arg(),
            "--tls-key",
            key.arg(),
        ],
    );
    let mut client = tls_client(&trident, &trusted.ca);
    assert_eq!(client.exchange(&get("/m1")).body_text(), "primary GET /m1");
    let body = pattern(70_000, 11);
    let resp = client.exchange(&request("PUT", "/m2", &[("Host", "test.local")], &body));
    assert_eq!(resp.body_text(), "primary PUT /m2");
    let got = p.wait_requests(2, WAIT);
    assert_same_bytes("https primary's /m2", &body, &got[1].body);
    for up in [&s, &c] {
        let got = up.wait_requests(2, WAIT);
        assert_same_bytes("plain shadow's /m2", &body, &find(&got, "/m2").body);
    }
    for block in trident.wait_blocks(2, WAIT) {
        for leg in &block.legs {
            assert_eq!(leg.response().0, 200, "{}", block.text);
        }
    }
}

#[test]
fn tls_listener_with_close_connections_sends_the_whole_response_then_closes() {
    let trusted = Trusted::new();
    let (cert, key) = trusted.ca.issue(&["localhost"]).files();
    let big = 512 * 1024;
    let (p, s, c) = (
        upstream("primary", big),
        upstream("secondary", big),
        upstream("candidate", big),
    );
    let trident = Trident::with_upstreams(
        &p,
        &s,
        &c,
        &[
            "--tls-cert",
            cert.arg(),
            "--tls-key",
            key.arg(),
            "--close-connections",
        ],
    );
    for _ in 0..3 {
        let mut client = tls_client(&trident, &trusted.ca);
        let resp = client.exchange(&get("/big"));
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_same_bytes("/big before the close", &pattern(big, 7), &resp.body);
        assert!(client.is_closed(), "the TLS connection stays open");
    }
    trident.wait_blocks(3, WAIT);
    assert_eq!(p.connections(), 3);
}

#[test]
fn check_shows_an_https_target_on_port_443_by_default() {
    let trusted = Trusted::new();
    let done = run(
        &[
            "--check",
            "--primary",
            "http://127.0.0.1:9001",
            "--secondary",
            "http://127.0.0.1:9002",
            "--candidate",
            "https://localhost",
            "--ca-file",
            trusted.file.arg(),
        ],
        WAIT,
    );
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(
        done.stdout
            .contains(&format!("ca-file             {}\n", trusted.file.arg())),
        "{}",
        done.stdout
    );
    let candidate = done
        .stdout
        .lines()
        .find(|l| l.starts_with("candidate"))
        .unwrap_or_else(|| panic!("{}", done.stdout));
    assert!(candidate.contains("https://localhost"), "{candidate}");
    assert!(candidate.contains(":443)"), "{candidate}");
}

/// trident in front of an https `primary` (certificate not verified) and two plain shadows.
struct UnverifiedPrimary {
    trident: Trident,
    _file: TargetsFile,
    _shadows: (Upstream, Upstream),
}

impl UnverifiedPrimary {
    fn start(primary: &TlsUpstream) -> UnverifiedPrimary {
        let (s, c) = (upstream("secondary", 0), upstream("candidate", 0));
        let file = TargetsFile::new(&format!(
            "primary = {} tls_verify=off\nsecondary = {}\ncandidate = {}\n",
            primary.url(),
            s.url(),
            c.url()
        ));
        UnverifiedPrimary {
            trident: Trident::spawn(&["--targets", file.arg()]),
            _file: file,
            _shadows: (s, c),
        }
    }
}

#[test]
fn a_pooled_session_is_reused_after_its_upstream_sent_tls_records_without_data() {
    // A key update follows each response. TLS records are read in steps, so for some
    // response lengths the key update's record is still in the socket when the response
    // ends; sweeping lengths across a few steps' edges hits those.
    let leaf = self_signed(&["localhost"]);
    let p = TlsUpstream::start(&leaf, |req| {
        let size = req.target.trim_start_matches('/').parse().unwrap_or(0);
        (200, pattern(size, 3))
    });
    p.rekey_after_responses();
    let scene = UnverifiedPrimary::start(&p);
    let trident = &scene.trident;
    let mut client = trident.client();
    let sizes: Vec<usize> = (4000..4100).chain(16_250..16_350).collect();
    for size in &sizes {
        let resp = client.exchange(&get(&format!("/{size}")));
        assert_eq!(resp.body.len(), *size, "{}", trident.output());
    }
    p.wait_requests(sizes.len(), WAIT);
    assert_eq!(
        p.connections(),
        1,
        "the primary's session was dropped after a key update\n{}",
        trident.output()
    );
}

#[test]
fn a_pooled_session_the_upstream_closed_is_not_reused_for_a_post() {
    // A POST is never retried, so it must not be sent on a session the upstream closed
    // while it was pooled: the TLS close (close_notify, then FIN) has to be noticed.
    let leaf = self_signed(&["localhost"]);
    let p = TlsUpstream::named("primary", &leaf);
    p.close_after_responses();
    let scene = UnverifiedPrimary::start(&p);
    let trident = &scene.trident;
    let mut client = trident.client();
    for i in 0..6 {
        let resp = client.exchange(&request(
            "POST",
            &format!("/p{i}"),
            &[("Host", "test.local")],
            b"x",
        ));
        assert_eq!(resp.status, 200, "POST /p{i}\n{}", trident.output());
        // The close is sent before the next request: one racing the next request is the
        // unavoidable HTTP/1.1 case, which no proxy can tell from a live connection.
        p.wait_ended(i + 1, WAIT);
    }
    assert_eq!(p.connections(), 6, "one session per request");
}

/// RFC 9112 §9.8: over TLS, a body delimited by the close is whole only when a close_notify
/// ends it. A bare TCP close may be a cut (a crashed upstream, an attacker's FIN), and is an
/// error on that leg, as a short Content-Length body is.
#[test]
fn a_close_delimited_body_over_tls_needs_a_close_notify() {
    let leaf = self_signed(&["localhost"]);
    let c = TlsUpstream::start(&leaf, |_| (200, b"partial-body".to_vec()));
    let (p, s) = (upstream("primary", 0), upstream("secondary", 0));
    let file = TargetsFile::new(&format!(
        "primary = {}\nsecondary = {}\ncandidate = {} tls_verify=off\n",
        p.url(),
        s.url(),
        c.url()
    ));
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let mut client = trident.client();
    c.close_delimited(CloseDelimited::WithCloseNotify);
    assert_eq!(client.exchange(&get("/notified")).status, 200);
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].candidate().response(),
        (200, 12),
        "{}",
        blocks[0].text
    );
    c.close_delimited(CloseDelimited::BareClose);
    assert_eq!(client.exchange(&get("/bare")).status, 200);
    let blocks = trident.wait_blocks(2, WAIT);
    let bare = blocks.iter().find(|b| b.target == "/bare").expect("/bare");
    assert_eq!(
        bare.candidate().error(),
        "closed before response complete",
        "{}",
        bare.text
    );
}

/// A TLS client that asks for a large answer and reads none of it is let go after
/// `--send-timeout`, also when the answer has all gone into the TLS session and only
/// encrypted bytes wait for the socket. Sizes around where the socket buffers fill put the
/// end of some answers there. Held, such a client would keep its `--max-clients` slot.
#[test]
fn a_tls_client_that_reads_nothing_is_dropped_even_with_only_tls_bytes_waiting() {
    let trusted = Trusted::new();
    let (cert, key) = trusted.ca.issue(&["localhost"]).files();
    let sized = |req: &RecordedRequest| {
        let size = req.target.trim_start_matches("/big").parse().unwrap_or(0);
        Reply::ok(pattern(size, 7))
    };
    let (p, s, c) = (
        Upstream::start(sized),
        Upstream::start(sized),
        Upstream::start(sized),
    );
    let urls = [p.url(), s.url(), c.url()];
    let args = [
        "--primary",
        &urls[0],
        "--secondary",
        &urls[1],
        "--candidate",
        &urls[2],
        "--tls-cert",
        cert.arg(),
        "--tls-key",
        key.arg(),
        "--send-timeout",
        "300",
        "--idle-timeout",
        "60000",
    ];
    let trident = Trident::spawn_at_log_level("debug", &args);
    let sizes: Vec<usize> = (0..11).map(|i| 2_950_000 + i * 10_000).collect();
    let mut clients = Vec::new();
    for size in &sizes {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .connect_timeout(&trident.addr().into(), WAIT)
            .expect("connect");
        let mut client =
            TlsClient::over(socket.into(), client_config(trusted.ca.der()), "localhost")
                .expect("TLS handshake");
        client.send(
            format!("GET /big{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        clients.push(client);
    }
    // Each answer is either dropped for want of a reader, or all in the kernel's buffers and
    // its connection closed by trident (FIN_WAIT1 then, no longer ESTABLISHED): none is held.
    let port = trident.addr().port();
    assert!(
        wait_until(WAIT, || established_from(port) == 0),
        "{} client connections held\n{}",
        established_from(port),
        trident.output()
    );
    drop(clients);
}

/// TCP connections in state ESTABLISHED whose local port (on 127.0.0.1) is `port`, as
/// /proc/net/tcp lists them.
fn established_from(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}
