//! The harness checked against itself, without trident: the raw client talking straight to a
//! test upstream must see exactly what the upstream was told to send. When a proxy test
//! fails, these say whether the harness or the proxy is wrong.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn client_and_upstream_agree_on_every_framing() {
    let up = Upstream::start(|req| match req.target.as_str() {
        "/cl" => Reply::ok("length"),
        "/chunked" => Reply::ok(pattern(10_000, 1)).chunked(&[1, 100, 7]),
        "/interim" => Reply::ok("final").interim(100, "Continue", &[]).interim(
            103,
            "Early Hints",
            &[("Link", "</a>")],
        ),
        "/304" => Reply::new(304, "Not Modified").body("ignored"),
        _ => Reply::ok(pattern(3000, 2)).close_delimited(),
    });
    let mut client = Client::connect(up.addr());
    assert_eq!(client.exchange(&get("/cl")).body_text(), "length");
    let chunked = client.exchange(&get("/chunked"));
    assert_eq!(chunked.framing, BodyFraming::Chunked);
    assert_same_bytes("chunked", &pattern(10_000, 1), &chunked.body);
    let interim = client.exchange(&get("/interim"));
    assert_eq!(interim.interim.len(), 2);
    assert_eq!(interim.body_text(), "final");
    assert_eq!(client.exchange(&get("/304")).status, 304);
    let head = client.exchange(&request("HEAD", "/cl", &[("Host", "h")], b""));
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("6"));
    let close = client.exchange(&get("/close"));
    assert_eq!(close.framing, BodyFraming::CloseDelimited);
    assert_same_bytes("close-delimited", &pattern(3000, 2), &close.body);
    assert_eq!(up.connections(), 1);
    up.wait_closed(1, WAIT);
}

#[test]
fn upstream_records_bodies_headers_and_connections() {
    let up = Upstream::named("u");
    let mut client = Client::connect(up.addr());
    client.exchange(&request(
        "POST",
        "/cl",
        &[("Host", "h"), ("X-A", "1"), ("x-a", "2")],
        b"hello",
    ));
    client.exchange(&chunked_request(
        "PUT",
        "/ch",
        &[("Host", "h")],
        b"0123456789",
        &[3],
    ));
    let mut second = Client::connect(up.addr());
    let mut batch = get("/p1");
    batch.extend(get("/p2"));
    second.send(&batch);
    assert_eq!(second.read_response(false).body_text(), "u GET /p1");
    assert_eq!(second.read_response(false).body_text(), "u GET /p2");
    let got = up.wait_requests(4, WAIT);
    assert_eq!(got[0].body, b"hello");
    assert_eq!(got[0].headers_named("x-a"), ["1", "2"]);
    assert_eq!(got[0].headers[1], ("X-A".to_string(), "1".to_string()));
    assert!(got[0].raw.ends_with(b"\r\n\r\nhello"));
    assert!(got[1].chunked);
    assert_eq!(got[1].body, b"0123456789");
    assert_eq!(
        (got[0].connection, got[1].connection, got[2].connection),
        (0, 0, 1)
    );
    assert_eq!(up.connections(), 2);
}

#[test]
fn truncated_garbage_and_hung_upstreams_misbehave_as_told() {
    let cut = Upstream::start(|_| Reply::ok(pattern(1000, 3)).truncate_body(10));
    let mut client = Client::connect(cut.addr());
    client.send(&get("/"));
    let err = client
        .try_read_response(false)
        .expect_err("a truncated body");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);

    let garbage = Upstream::start(|_| Reply::garbage("nope\r\n\r\n"));
    let mut client = Client::connect(garbage.addr());
    client.send(&get("/"));
    assert!(client.try_read_response(false).is_err());

    let hung = Upstream::hung();
    let mut client = Client::connect(hung.addr());
    client.set_read_timeout(Duration::from_millis(200));
    client.send(&get("/"));
    let err = client.try_read_response(false).expect_err("no answer");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(hung.wait_requests(1, WAIT)[0].target, "/");
}
