//! Connection reuse: many requests on one client connection ride a few pooled upstream
//! connections; pipelined requests are answered in order; an upstream closing an idle pooled
//! connection is never the client's problem; `Connection: close` is honoured.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(5);

fn echo_target(req: &RecordedRequest) -> Reply {
    Reply::ok(format!("answer to {}", req.target))
}

#[test]
fn hundred_requests_on_one_connection_reuse_pooled_upstream_connections() {
    let (p, s, c) = three_serving(echo_target);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    for i in 1..=100 {
        let target = format!("/req/{i}");
        let resp = client.exchange(&get(&target));
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(
            resp.body_text(),
            format!("answer to {target}"),
            "request {i}"
        );
        // Every leg of this exchange is over (its connection back in the pool) before the
        // next request, so a new upstream connection can only mean the pool was not used.
        trident.wait_blocks(i, WAIT);
    }
    for (name, up) in [("primary", &p), ("secondary", &s), ("candidate", &c)] {
        assert_eq!(up.wait_requests(100, WAIT).len(), 100, "{name}");
        assert!(
            up.connections() <= 3,
            "{name}: {} upstream connections for 100 keep-alive requests",
            up.connections()
        );
    }
    let mut blocks = trident.wait_blocks(100, WAIT);
    blocks.sort_by_key(|b| b.id);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block.id, i as u64 + 1);
        assert_eq!(block.target, format!("/req/{}", i + 1), "{}", block.text);
    }
}

#[test]
fn hundred_back_to_back_requests_open_only_a_few_upstream_connections() {
    let (p, s, c) = three_serving(echo_target);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    for i in 1..=100 {
        let target = format!("/req/{i}");
        assert_eq!(
            client.exchange(&get(&target)).body_text(),
            format!("answer to {target}")
        );
    }
    trident.wait_blocks(100, WAIT);
    // The primary's connection is free again before the client has its answer. A shadow's
    // may still be busy when the next request starts, which costs a connection; how often
    // depends on how the machine schedules the shadows' threads, so the next test pins
    // shadow reuse down by waiting for each exchange's block before the next request.
    assert!(
        p.connections() <= 3,
        "primary: {} connections",
        p.connections()
    );
    for (name, up) in [("secondary", &s), ("candidate", &c)] {
        assert_eq!(up.wait_requests(100, WAIT).len(), 100, "{name}");
    }
}

#[test]
fn every_leg_reuses_its_connection_once_the_exchange_is_done() {
    let (p, s, c) = three_serving(echo_target);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    for i in 1..=30 {
        let target = format!("/req/{i}");
        assert_eq!(
            client.exchange(&get(&target)).body_text(),
            format!("answer to {target}")
        );
        // The block is printed once all three legs are done and back in the pool.
        trident.wait_blocks(i, WAIT);
    }
    for (name, up) in [("primary", &p), ("secondary", &s), ("candidate", &c)] {
        assert_eq!(
            up.connections(),
            1,
            "{name}: one keep-alive connection serves 30 sequential exchanges"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    // The first request is the slowest to answer, so answering in completion order would show.
    let handler = |req: &RecordedRequest| {
        let delay = if req.target == "/p1" { 150 } else { 0 };
        Reply::ok(format!("{} {} {}", req.method, req.target, req.body.len()))
            .delay(Duration::from_millis(delay))
    };
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let host = [("Host", "test.local")];
    let mut batch = Vec::new();
    batch.extend(request("GET", "/p1", &host, b""));
    batch.extend(request("POST", "/p2", &host, b"abc"));
    batch.extend(request("HEAD", "/p3", &host, b""));
    batch.extend(chunked_request("POST", "/p4", &host, b"0123456789", &[4]));
    batch.extend(request("GET", "/p5", &host, b""));
    client.send(&batch);
    let expected = [
        (false, "GET /p1 0"),
        (false, "POST /p2 3"),
        (true, ""),
        (false, "POST /p4 10"),
        (false, "GET /p5 0"),
    ];
    for (i, (head, body)) in expected.iter().enumerate() {
        let resp = client.read_response(*head);
        assert_eq!(resp.status, 200, "response {}", i + 1);
        assert_eq!(resp.body_text(), *body, "response {}", i + 1);
    }
    for up in [&p, &s, &c] {
        // Requests may go out on different upstream connections, so their arrival order
        // at the upstream is not defined; each must arrive once, intact.
        let mut got = up.wait_requests(5, WAIT);
        got.sort_by(|a, b| a.target.cmp(&b.target));
        let targets: Vec<&str> = got.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/p1", "/p2", "/p3", "/p4", "/p5"]);
        assert_eq!(got[1].body, b"abc");
        assert_eq!(got[3].body, b"0123456789");
    }
    let mut blocks = trident.wait_blocks(5, WAIT);
    blocks.sort_by_key(|b| b.id);
    let targets: Vec<&str> = blocks.iter().map(|b| b.target.as_str()).collect();
    assert_eq!(targets, ["/p1", "/p2", "/p3", "/p4", "/p5"]);
}

#[test]
fn upstream_closing_an_idle_pooled_connection_is_not_a_client_error() {
    // Every upstream answers, then closes the connection without announcing it.
    let handler = |req: &RecordedRequest| Reply::ok(format!("fresh {}", req.target)).close_after();
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    for round in 1..=3 {
        let target = format!("/round/{round}");
        let resp = client.exchange(&get(&target));
        assert_eq!(resp.status, 200, "round {round}: {}", resp.body_text());
        assert_eq!(resp.body_text(), format!("fresh {target}"));
        // Wait until each upstream has really closed its side before the next request, so
        // trident's pooled connection is stale when it is next used.
        for up in [&p, &s, &c] {
            up.wait_requests(round, WAIT);
            up.wait_closed(round, WAIT);
        }
    }
    let blocks = trident.wait_blocks(3, WAIT);
    for block in &blocks {
        for leg in &block.legs {
            assert_eq!(leg.response().0, 200, "{}", block.text);
        }
    }
}

/// Node.js closes an idle connection after 5 s and says so (`Keep-Alive: timeout=5`): a
/// pooled connection leaves the pool before that (half the time for 1 s), so a POST, which
/// is never sent twice, is not caught by the close.
#[test]
fn a_pooled_connection_leaves_the_pool_before_the_upstreams_announced_idle_timeout() {
    let announcing = |seconds: &'static str| {
        move |req: &RecordedRequest| {
            Reply::ok(format!("answer to {}", req.target)).header("Keep-Alive", seconds)
        }
    };
    let p = Upstream::start(announcing("timeout=1"));
    let s = Upstream::start(announcing("timeout=1, max=100"));
    let c = Upstream::start(announcing("timeout=5"));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let post = |target: &str| request("POST", target, &[("Host", "test.local")], b"x");
    assert_eq!(client.exchange(&post("/1")).status, 200);
    trident.wait_blocks(1, WAIT);
    // Past 0.5 s (1 s less half), within 5 s less one.
    std::thread::sleep(Duration::from_millis(800));
    let resp = client.exchange(&post("/2"));
    assert_eq!(resp.body_text(), "answer to /2");
    // The hint is hop-by-hop: the client never sees it.
    assert_eq!(resp.header("Keep-Alive"), None);
    trident.wait_blocks(2, WAIT);
    for (name, up, connections) in [
        ("primary", &p, 2),
        ("secondary", &s, 2),
        ("candidate", &c, 1),
    ] {
        assert_eq!(up.wait_requests(2, WAIT).len(), 2, "{name}");
        assert_eq!(up.connections(), connections, "{name}");
    }
}

/// An answer trident reads at a slow client's pace waited in the socket buffers while the
/// upstream's idle clock ran: its connection's time in the pool counts from when the request
/// was asked for, not from when trident read the end, and here is over before the client
/// has it all, so the next request goes out on a new connection. Counted from the end, the
/// connection stayed pooled seconds after the upstream's close (hunt 54: a POST got a 502).
#[test]
fn an_answer_held_back_for_a_slow_client_shortens_its_connections_pool_time() {
    const BIG: usize = 12 << 20;
    let body = pattern(BIG, 3);
    // `timeout=3`: pooled for 2 s.
    let p = Upstream::start(move |req: &RecordedRequest| match req.target.as_str() {
        "/big" => Reply::ok(body.clone()).header("Keep-Alive", "timeout=3"),
        _ => Reply::ok("small").header("Keep-Alive", "timeout=3"),
    });
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(64 << 10).expect("SO_RCVBUF");
    socket
        .connect_timeout(&trident.addr().into(), WAIT)
        .expect("connect");
    let stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut client = Client::from_stream(stream);
    let started = std::time::Instant::now();
    client.send(&get("/big"));
    // About 4 MB/s: some three seconds, the last of it from the kernel's buffers (a
    // second's worth at most) after trident read the end.
    let mut slow = client.writer();
    let mut got = Vec::with_capacity(BIG + 1024);
    let mut buf = vec![0u8; 64 << 10];
    while got.len() < BIG + 64 {
        let n = std::io::Read::read(&mut slow, &mut buf).expect("the big answer");
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        if head_end.is_some_and(|end| got.len() - (end + 4) >= BIG) {
            break;
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    assert!(
        started.elapsed() > Duration::from_millis(2500),
        "read in {:?}: the answer was not held back past its pool time",
        started.elapsed()
    );
    let resp = client.exchange(&get("/next"));
    assert_eq!(resp.body_text(), "small");
    assert_eq!(p.wait_requests(2, WAIT).len(), 2);
    assert_eq!(
        p.connections(),
        2,
        "the primary's connection was reused past its pool time\n{}",
        trident.output()
    );
}

/// Nor is a connection given up for an answer that merely outgrew the client's output for a
/// moment, from a slow upstream: the time counts from the answer's head, not from the
/// request, which was 2.5 s earlier (hunt 57: every such request took a new connection).
#[test]
fn a_slow_upstreams_large_answer_keeps_its_connection_pooled() {
    const BIG: usize = 1 << 20;
    let body = pattern(BIG, 5);
    // `timeout=3`: pooled for 2 s.
    let p = Upstream::start(move |req: &RecordedRequest| match req.target.as_str() {
        "/slow" => Reply::ok(body.clone())
            .header("Keep-Alive", "timeout=3")
            .delay(Duration::from_millis(2500)),
        _ => Reply::ok("small").header("Keep-Alive", "timeout=3"),
    });
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    assert_eq!(client.exchange(&get("/slow")).body.len(), BIG);
    assert_eq!(client.exchange(&get("/next")).body_text(), "small");
    assert_eq!(p.wait_requests(2, WAIT).len(), 2);
    assert_eq!(
        p.connections(),
        1,
        "the primary's connection was not reused\n{}",
        trident.output()
    );
}

#[test]
fn client_connection_close_is_honoured() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&request(
        "GET",
        "/bye",
        &[("Host", "test.local"), ("Connection", "close")],
        b"",
    ));
    assert_eq!(resp.body_text(), "primary GET /bye");
    client.expect_closed();
}

#[test]
fn several_clients_at_once_each_get_their_own_answers() {
    let handler = |req: &RecordedRequest| Reply::ok(format!("for {}", req.target));
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let addr = trident.addr();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..10 {
                    let target = format!("/w{w}/{i}");
                    let resp = client.exchange(&get(&target));
                    assert_eq!(resp.body_text(), format!("for {target}"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread failed");
    }
    trident.wait_blocks(40, WAIT);
}

/// A client that pipelined more than trident reads ahead, on a connection trident closes after
/// the answer, gets the whole answer and then the end of the stream. Closed at once with
/// unread input, the socket sent a reset, and the client's kernel dropped the end of the answer
/// it had not read yet (RFC 9112 §9.6): with `--close-connections`, and for an HTTP/1.0 client
/// whose chunked answer is delimited by the close.
#[test]
fn a_connection_closed_with_unread_pipelined_requests_still_gets_its_whole_answer() {
    use std::io::{Read, Write};
    let body = "x".repeat(300_000);
    let chunked = body.clone();
    for (flags, head, reply) in [
        (
            &["--close-connections"][..],
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
            Reply::ok(body.clone()),
        ),
        (
            &[][..],
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Reply::ok(chunked.clone()).chunked(&[100_000, 200_000]),
        ),
    ] {
        let (p, s, c) = three_serving(move |_| reply.clone());
        let trident = Trident::with_upstreams(&p, &s, &c, flags);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        // A small window: the answer waits in trident's socket when it closes.
        socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
        socket.connect(&trident.addr().into()).expect("connect");
        let mut stream: std::net::TcpStream = socket.into();
        stream
            .write_all(head.repeat(3000).as_bytes())
            .expect("the requests");
        // A slow reader: trident has answered and closed by the time it reads.
        p.wait_requests(1, WAIT);
        std::thread::sleep(Duration::from_millis(500));
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        let end = stream.read_to_end(&mut got).map(|_| ());
        let text = String::from_utf8_lossy(&got);
        assert!(end.is_ok(), "{flags:?}: {end:?} after {} bytes", got.len());
        assert!(
            text.ends_with(&format!("\r\n\r\n{body}")),
            "{flags:?}: {} bytes: {}",
            got.len(),
            &text[..text.len().min(300)]
        );
    }
}
