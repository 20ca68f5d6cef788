//! Bodies and framing: large bodies both ways, chunked and close-delimited responses,
//! interim 1xx heads, bodiless statuses, and HTTP/1.0 clients.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(5);
const TEN_MIB: usize = 10 * 1024 * 1024;

#[test]
fn ten_mib_request_body_arrives_intact_at_all_three_upstreams() {
    let (p, s, c) = three_serving(|req| Reply::ok(format!("got {} bytes", req.body.len())));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let body = pattern(TEN_MIB, 10);
    let mut client = trident.client();
    let resp = client.exchange(&request(
        "POST",
        "/big-upload",
        &[("Host", "test.local")],
        &body,
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), format!("got {TEN_MIB} bytes"));
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_same_bytes("10 MiB body at upstream", &body, &got.body);
    }
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(blocks[0].body, TEN_MIB as u64, "{}", blocks[0].text);
    for leg in &blocks[0].legs {
        assert_eq!(leg.response().0, 200, "{}", blocks[0].text);
    }
}

#[test]
fn ten_mib_response_body_reaches_the_client_intact() {
    let (p, s, c) = three_serving(|_| Reply::ok(pattern(TEN_MIB, 11)));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/big-download"));
    assert_eq!(resp.status, 200);
    assert_eq!(checksum(&resp.body), checksum(&pattern(TEN_MIB, 11)));
    assert_same_bytes(
        "10 MiB body at the client",
        &pattern(TEN_MIB, 11),
        &resp.body,
    );
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].primary().response(),
        (200, TEN_MIB as u64),
        "{}",
        blocks[0].text
    );
    // The connection is still in step after the big body.
    let next = client.exchange(&get("/again"));
    assert_eq!(next.body.len(), TEN_MIB);
}

#[test]
fn chunked_response_reaches_the_client_intact() {
    let (p, s, c) = three_serving(|_| Reply::ok(pattern(50_000, 12)).chunked(&[1, 3, 100, 8192]));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/chunked"));
    assert_eq!(resp.status, 200);
    assert_same_bytes(
        "chunked body at the client",
        &pattern(50_000, 12),
        &resp.body,
    );
    assert!(
        resp.headers_named("Transfer-Encoding").len() <= 1,
        "{:?}",
        resp.headers
    );
    let next = client.exchange(&get("/again"));
    assert_eq!(next.body.len(), 50_000);
    let mut blocks = trident.wait_blocks(2, WAIT);
    blocks.sort_by_key(|b| b.id);
    for leg in &blocks[0].legs {
        assert_eq!(leg.response(), (200, 50_000), "{}", blocks[0].text);
    }
}

#[test]
fn one_mib_response_in_odd_chunk_sizes_reaches_the_client_intact() {
    let (p, s, c) =
        three_serving(|_| Reply::ok(pattern(1024 * 1024, 13)).chunked(&[65_536, 1000, 7]));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let resp = trident.client().exchange(&get("/odd-chunks"));
    assert_same_bytes("chunked 1 MiB", &pattern(1024 * 1024, 13), &resp.body);
}

#[test]
fn close_delimited_response_reaches_the_client_intact() {
    let (p, s, c) = three_serving(|_| Reply::ok(pattern(30_000, 14)).close_delimited());
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/until-close"));
    assert_eq!(resp.status, 200);
    assert_same_bytes(
        "close-delimited body at the client",
        &pattern(30_000, 14),
        &resp.body,
    );
    let blocks = trident.wait_blocks(1, WAIT);
    for leg in &blocks[0].legs {
        assert_eq!(leg.response(), (200, 30_000), "{}", blocks[0].text);
    }
    // If trident re-framed the body, the client connection is still usable; if it delimited
    // it by closing, the connection is closed. Either way a second request on a fresh
    // connection works (the upstream connection was not pooled with a half-read body).
    if resp.framing != BodyFraming::CloseDelimited {
        let again = client.exchange(&get("/again"));
        assert_same_bytes(
            "second close-delimited body",
            &pattern(30_000, 14),
            &again.body,
        );
    }
    let again = trident.client().exchange(&get("/fresh"));
    assert_same_bytes(
        "close-delimited on a fresh connection",
        &pattern(30_000, 14),
        &again.body,
    );
}

/// Three upstreams (primary, secondary, candidate), each sending `100 Continue`, then
/// `103 Early Hints` with a Link naming itself and a hop-by-hop field, then the final response.
fn three_hinting() -> (Upstream, Upstream, Upstream) {
    (
        hinting("primary"),
        hinting("secondary"),
        hinting("candidate"),
    )
}

fn hinting(name: &'static str) -> Upstream {
    Upstream::start(move |req| {
        Reply::ok(format!("final for {}", req.target))
            .header("X-Final", "yes")
            .interim(100, "Continue", &[])
            .interim(
                103,
                "Early Hints",
                &[
                    ("Link", &format!("</{name}.css>; rel=preload")),
                    ("Keep-Alive", "timeout=5"),
                ],
            )
    })
}

#[test]
fn the_primarys_103_reaches_an_http11_client_and_its_100_does_not() {
    let (p, s, c) = three_hinting();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/hints"));
    assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
    assert_eq!(resp.header("X-Final"), Some("yes"));
    assert_eq!(resp.body_text(), "final for /hints");
    // RFC 9110 §15.2: a proxy forwards 1xx; trident sent no Expect, so the 100 is not the
    // client's; hop-by-hop fields go as in any head.
    assert_eq!(resp.interim.len(), 1, "{:?}", resp.interim);
    let (status, reason, fields) = &resp.interim[0];
    assert_eq!((*status, reason.as_str()), (103, "Early Hints"));
    assert_eq!(
        support::wire::field(fields, "link"),
        Some("</primary.css>; rel=preload")
    );
    assert_eq!(support::wire::field(fields, "keep-alive"), None);
    // Still in step: the next response is the next request's, with its own hint.
    let next = client.exchange(&get("/next"));
    assert_eq!(next.body_text(), "final for /next");
    assert_eq!(next.interim.len(), 1, "{:?}", next.interim);
    let mut blocks = trident.wait_blocks(2, WAIT);
    blocks.sort_by_key(|b| b.id);
    for leg in &blocks[0].legs {
        assert_eq!(leg.response(), (200, 16), "{}", blocks[0].text);
        // Every leg's console line names its last interim status, relayed or not.
        assert_eq!(leg.interim(), Some(103), "{}", blocks[0].text);
    }
}

#[test]
fn a_pooled_connection_that_sent_a_103_and_closed_is_not_retried() {
    // A retry is for a stale connection, one on which nothing came back. One that sent an
    // interim response was alive: sending the GET again would hand the client a second set
    // of hints, and it is an upstream failure like any close mid-response.
    let hinted = std::sync::atomic::AtomicBool::new(false);
    let p = Upstream::start(move |req| {
        if req.target == "/hinted" && !hinted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Reply::garbage(&b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"[..])
        } else {
            Reply::ok("primary").interim(103, "Early Hints", &[("Link", "</b.css>; rel=preload")])
        }
    });
    let (_, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/warm")).status, 200);
    let resp = client.exchange(&get("/hinted"));
    assert_eq!(resp.interim.len(), 1, "{:?}", resp.interim);
    assert_eq!(resp.status, 502, "{}", trident.output());
    let sent: Vec<_> = p.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(sent, ["/warm", "/hinted"], "the GET was sent again");
}

#[test]
fn an_http10_client_gets_no_interim_response() {
    let (p, s, c) = three_hinting();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(b"GET /old HTTP/1.0\r\nHost: test.local\r\n\r\n");
    let resp = client.read_response(false);
    // RFC 9110 §15.2: a server must not send a 1xx to an HTTP/1.0 client.
    assert!(resp.interim.is_empty(), "{:?}", resp.interim);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "final for /old");
}

#[test]
fn no_body_is_read_after_204_and_304() {
    let (p, s, c) = three_serving(|req| match req.target.as_str() {
        "/204" => Reply::new(204, "No Content"),
        // A 304 may announce the length the 200 would have had; no body follows.
        "/304" => Reply::new(304, "Not Modified").body("twelve bytes"),
        other => Reply::ok(format!("after {other}")),
    });
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let r204 = client.exchange(&get("/204"));
    assert_eq!(r204.status, 204);
    assert!(r204.body.is_empty());
    let r304 = client.exchange(&get("/304"));
    assert_eq!(r304.status, 304);
    let after = client.exchange(&get("/x"));
    assert_eq!(after.body_text(), "after /x");
    let mut blocks = trident.wait_blocks(3, WAIT);
    blocks.sort_by_key(|b| b.id);
    assert_eq!(
        blocks[0].primary().response(),
        (204, 0),
        "{}",
        blocks[0].text
    );
    assert_eq!(
        blocks[1].candidate().response(),
        (304, 0),
        "{}",
        blocks[1].text
    );
}

#[test]
fn http10_client_gets_its_response_and_the_connection_closed() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(b"GET /old HTTP/1.0\r\nHost: test.local\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /old");
    assert_ne!(
        resp.framing,
        BodyFraming::Chunked,
        "chunked to an HTTP/1.0 client"
    );
    client.expect_closed();
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(blocks[0].version, "HTTP/1.0", "{}", blocks[0].text);
}

#[test]
fn http10_client_gets_a_chunked_upstream_response_unchunked() {
    let (p, s, c) = three_serving(|_| Reply::ok(pattern(10_000, 15)).chunked(&[333]));
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(b"GET /old-chunked HTTP/1.0\r\nHost: test.local\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_ne!(
        resp.framing,
        BodyFraming::Chunked,
        "chunked to an HTTP/1.0 client"
    );
    assert_same_bytes(
        "body for the HTTP/1.0 client",
        &pattern(10_000, 15),
        &resp.body,
    );
    client.expect_closed();
}

#[test]
fn http10_post_body_arrives_intact_at_all_three_upstreams() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let mut req =
        b"POST /old-form HTTP/1.0\r\nHost: test.local\r\nContent-Length: 11\r\n\r\n".to_vec();
    req.extend_from_slice(b"a=1&b=2&c=3");
    client.send(&req);
    let resp = client.read_response(false);
    assert_eq!(resp.body_text(), "primary POST /old-form");
    client.expect_closed();
    for up in [&p, &s, &c] {
        assert_eq!(up.wait_requests(1, WAIT)[0].body, b"a=1&b=2&c=3");
    }
}

#[test]
fn small_close_delimited_response_reaches_the_client_intact() {
    let (p, s, c) = three_serving(|_| Reply::ok("until the upstream closes").close_delimited());
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let resp = trident.client().exchange(&get("/small-until-close"));
    assert_eq!(resp.body_text(), "until the upstream closes");
    let blocks = trident.wait_blocks(1, WAIT);
    for leg in &blocks[0].legs {
        assert_eq!(leg.response(), (200, 25), "{}", blocks[0].text);
    }
}

#[test]
fn expect_100_continue_gets_an_interim_answer_and_the_body_arrives_intact() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(
        b"POST /expect HTTP/1.1\r\nHost: test.local\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    // A client waits for the 100 before sending its body; it must come without the body.
    client.set_read_timeout(Duration::from_secs(2));
    let (status, _, _) = client
        .read_head()
        .expect("an interim response to Expect: 100-continue");
    assert_eq!(status, 100);
    client.send(b"hello");
    let resp = client.read_response(false);
    assert_eq!(resp.body_text(), "primary POST /expect");
    for up in [&p, &s, &c] {
        assert_eq!(up.wait_requests(1, WAIT)[0].body, b"hello");
    }
}

/// A small chunked PUT (kept whole for a retry) whose body, re-framed in 1- and 2-byte chunks,
/// fills the request buffer exactly: the rest of it is still read. At the cap the kept buffer
/// was neither read into nor released, and the upload stopped until the deadline (a 504).
#[test]
fn a_kept_body_that_fills_the_request_buffer_exactly_is_still_read() {
    let (p, s, c) = three_serving(|req| Reply::ok(req.body.len().to_string()));
    let args = ["--timeout", "3000", "--shadow-methods", "all"];
    let trident = Trident::with_upstreams(&p, &s, &c, &args);
    let mut client = trident.client();
    let mut upload =
        b"PUT /exact HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    // Re-framed as sent: 4 × 7 + 43 686 × 6 = 262 144 bytes, the buffer's cap.
    for _ in 0..4 {
        upload.extend_from_slice(b"2\r\nab\r\n");
    }
    for _ in 0..43_686 {
        upload.extend_from_slice(b"1\r\nc\r\n");
    }
    client.send(&upload);
    std::thread::sleep(Duration::from_millis(200));
    client.send(b"1\r\nd\r\n0\r\n\r\n");
    let started = std::time::Instant::now();
    let resp = client.read_response(false);
    assert_eq!((resp.status, resp.body_text()), (200, "43695".to_string()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
}
