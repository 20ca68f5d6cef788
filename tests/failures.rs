//! Failures: a failing primary becomes 502 or 504 with a short plain-text body (or a closed
//! connection once the response has started); a failing secondary or candidate never touches
//! the client, and its block line names the failure.

mod support;

use std::time::{Duration, Instant};

use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// A gateway error body: short, plain text, and saying something.
fn assert_short_plain_text(resp: &ClientResponse) {
    if let Some(ct) = resp.header("Content-Type") {
        assert!(
            ct.to_ascii_lowercase().starts_with("text/plain"),
            "Content-Type {ct:?}"
        );
    }
    assert!(!resp.body.is_empty(), "empty {} body", resp.status);
    assert!(resp.body.len() <= 512, "long body: {}", resp.body_text());
    let text = std::str::from_utf8(&resp.body).expect("UTF-8 body");
    assert!(
        text.chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\r'),
        "not plain text: {text:?}"
    );
}

#[test]
fn primary_refused_gives_502_with_a_short_plain_text_body() {
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_addrs(refused_addr(), s.addr(), c.addr(), &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/down"));
    assert_eq!(resp.status, 502, "{}", resp.body_text());
    assert_short_plain_text(&resp);
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].primary().error(),
        "connection refused",
        "{}",
        blocks[0].text
    );
    assert_eq!(
        blocks[0].secondary().response().0,
        200,
        "{}",
        blocks[0].text
    );
    assert_eq!(
        blocks[0].candidate().response().0,
        200,
        "{}",
        blocks[0].text
    );
}

#[test]
fn primary_hung_gives_504_after_the_timeout() {
    let primary = Upstream::hung();
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &["--timeout", "1000"]);
    let mut client = trident.client();
    let started = Instant::now();
    let resp = client.exchange(&get("/slow"));
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.body_text());
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_secs(3),
        "504 after {elapsed:?} with --timeout 1000"
    );
    assert_short_plain_text(&resp);
    primary.wait_requests(1, WAIT);
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].primary().error(),
        "timeout after 1000ms",
        "{}",
        blocks[0].text
    );
}

#[test]
fn primary_answering_garbage_gives_502() {
    let primary = Upstream::start(|_| Reply::garbage("SSH-2.0-OpenSSH_9.6\r\n\r\n"));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &[]);
    let resp = trident.client().exchange(&get("/garbage"));
    assert_eq!(resp.status, 502, "{}", resp.body_text());
    assert_short_plain_text(&resp);
    let blocks = trident.wait_blocks(1, WAIT);
    assert!(
        blocks[0]
            .primary()
            .error()
            .starts_with("malformed response"),
        "{}",
        blocks[0].text
    );
}

#[test]
fn primary_closing_mid_body_closes_the_client_connection() {
    let primary = Upstream::start(|_| Reply::ok(pattern(10_000, 3)).truncate_body(1000));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &[]);
    let mut client = trident.client();
    client.send(&get("/cut"));
    // The head may or may not have been sent (a 502 is fine if nothing had gone out), but the
    // client must not get a complete 200 with a made-up body, and must not hang.
    match client.try_read_response(false) {
        Ok(resp) => {
            assert_ne!(resp.status, 200, "a truncated body passed for a whole one");
            assert_eq!(resp.status, 502);
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "expected the connection closed mid-body, got: {e}"
        ),
    }
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].primary().error(),
        "closed before response complete",
        "{}",
        blocks[0].text
    );
}

#[test]
fn candidate_refused_does_not_delay_the_client() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let trident = Trident::with_addrs(p.addr(), s.addr(), refused_addr(), &["--timeout", "3000"]);
    let mut client = trident.client();
    let started = Instant::now();
    let resp = client.exchange(&get("/fine"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /fine");
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].candidate().error(),
        "connection refused",
        "{}",
        blocks[0].text
    );
    assert_eq!(blocks[0].primary().response().0, 200);
    // The next request on the same connection is just as quick.
    let started = Instant::now();
    assert_eq!(client.exchange(&get("/again")).status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn candidate_hung_does_not_delay_the_client() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let candidate = Upstream::hung();
    let trident = Trident::with_upstreams(&p, &s, &candidate, &["--timeout", "3000"]);
    let mut client = trident.client();
    let started = Instant::now();
    let resp = client.exchange(&get("/fine"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.body_text(), "primary GET /fine");
    // The connection keeps serving while the candidate's leg waits for its deadline.
    let started = Instant::now();
    assert_eq!(
        client.exchange(&get("/again")).body_text(),
        "primary GET /again"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    candidate.wait_requests(1, WAIT);
    let mut blocks = trident.wait_blocks(2, Duration::from_secs(8));
    blocks.sort_by_key(|b| b.id);
    assert_eq!(
        blocks[0].candidate().error(),
        "timeout after 3000ms",
        "{}",
        blocks[0].text
    );
    assert_eq!(blocks[0].primary().response().0, 200);
    assert_eq!(blocks[0].secondary().response().0, 200);
}

#[test]
fn misbehaving_shadows_never_touch_the_client() {
    let primary = Upstream::start(|req| {
        Reply::new(201, "Created")
            .header("X-From", "primary")
            .body(format!("made {}", req.target))
    });
    let secondary = Upstream::start(|_| Reply::garbage("not http at all\r\n\r\n"));
    let candidate = Upstream::start(|_| Reply::ok(pattern(5000, 4)).truncate_body(10));
    let trident = Trident::with_upstreams(&primary, &secondary, &candidate, &[]);
    let mut client = trident.client();
    for i in 1..=3 {
        let target = format!("/thing/{i}");
        let resp = client.exchange(&request("POST", &target, &[("Host", "t")], b"x"));
        assert_eq!((resp.status, resp.reason.as_str()), (201, "Created"));
        assert_eq!(resp.header("X-From"), Some("primary"));
        assert_eq!(resp.body_text(), format!("made {target}"));
    }
    let blocks = trident.wait_blocks(3, WAIT);
    for block in &blocks {
        assert_eq!(block.primary().response(), (201, 13), "{}", block.text);
        assert!(
            block.secondary().error().starts_with("malformed response"),
            "{}",
            block.text
        );
        assert_eq!(
            block.candidate().error(),
            "closed before response complete",
            "{}",
            block.text
        );
    }
}

#[test]
fn a_shadow_that_stops_reading_is_cut_with_overflow_without_holding_the_client() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let candidate = Upstream::stalled();
    let trident = Trident::with_upstreams(&p, &s, &candidate, &["--timeout", "5000"]);
    let body = pattern(10 * 1024 * 1024, 6);
    let mut client = trident.client();
    let started = Instant::now();
    let resp = client.exchange(&request("POST", "/big", &[("Host", "test.local")], &body));
    // Well before the candidate's 5 s deadline: the stalled leg did not pace the upload.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.body_text(), "primary POST /big");
    assert_same_bytes(
        "body at the primary",
        &body,
        &p.wait_requests(1, WAIT)[0].body,
    );
    assert_same_bytes(
        "body at the secondary",
        &body,
        &s.wait_requests(1, WAIT)[0].body,
    );
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].candidate().error(),
        "overflow",
        "{}",
        blocks[0].text
    );
    assert_eq!(blocks[0].primary().response().0, 200, "{}", blocks[0].text);
}

#[test]
fn a_stalled_stderr_reader_holds_up_neither_the_proxy_nor_the_log() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let refusing = support::hostile::Refusing::new();
    let (primary, secondary) = (p.url(), s.url());
    let candidate = format!("http://{}", refusing.addr());
    let mut trident = Trident::spawn_at_log_level(
        "debug",
        &[
            "--primary",
            &primary,
            "--secondary",
            &secondary,
            "--candidate",
            &candidate,
        ],
    );
    // At debug level each exchange logs its refused candidate: 2000 lines are a few times
    // what the stderr pipe holds, and a reactor that wrote them itself would stop there.
    trident.pause_stderr();
    let mut client = trident.client();
    for i in 0..2000 {
        let resp = client.exchange(&get(&format!("/{i}")));
        assert_eq!(resp.status, 200, "request {i}");
    }
    trident.wait_blocks(2000, WAIT);
    // Nothing was lost: the log comes out whole once it is read again.
    trident.resume_stderr();
    let failed = trident.wait_stderr_count("candidate failed: connection refused", 2000, WAIT);
    assert_eq!(failed.len(), 2000);
    trident.signal("TERM");
    trident.exits_0(WAIT);
}

/// The primary fails while the client is still uploading: the client gets its 502 and is let
/// go of, and the shadows, which can never get the rest of the body, fail soon after (a
/// moment's grace lets one fail on its own first). They waited for `--send-timeout` as if the
/// client were still feeding them, then read as timed out, and held a shutdown as long.
#[test]
fn shadows_waiting_on_an_upload_the_failed_primary_cut_fail_at_once() {
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_urls(
        NOWHERE,
        &s.url(),
        &c.url(),
        &["--shadow-methods", "all", "--send-timeout", "20000"],
    );
    let mut client = trident.client();
    let head = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n";
    client.send(&[head.as_bytes(), &pattern(1000, 3)].concat());
    let resp = client.read_response(false);
    assert_eq!(resp.status, 502);
    let started = Instant::now();
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        block.primary().error(),
        "connection refused",
        "{}",
        block.text
    );
    for leg in [block.secondary(), block.candidate()] {
        assert_eq!(
            leg.error(),
            "upload cut: the primary failed before it ended",
            "{}",
            block.text
        );
    }
}
