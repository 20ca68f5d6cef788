//! Fidelity: what the client sends reaches all three upstreams as sent (method, target,
//! end-to-end headers in order and case, body), and what the primary answers reaches the
//! client as answered (status, reason, headers, body); hop-by-hop fields cross in neither
//! direction.

mod support;

use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// The fields of `fields` whose names are among `names` (case-insensitive), in order.
fn only<'a>(fields: &'a [(String, String)], names: &[&str]) -> Vec<(&'a str, &'a str)> {
    fields
        .iter()
        .filter(|(n, _)| names.iter().any(|m| m.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[test]
fn get_reaches_all_three_upstreams_and_the_client_gets_the_primarys_answer() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&request(
        "GET",
        "/hello?x=1&y=%20",
        &[
            ("Host", "test.local"),
            ("X-Custom", "abc"),
            ("Accept", "*/*"),
        ],
        b"",
    ));
    assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
    assert_eq!(resp.body_text(), "primary GET /hello?x=1&y=%20");
    assert_eq!(resp.header("X-Upstream"), Some("primary"));
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(got.method, "GET");
        assert_eq!(got.target, "/hello?x=1&y=%20");
        assert_eq!(got.version, "HTTP/1.1");
        assert_eq!(got.header("Host"), Some("test.local"));
        assert_eq!(got.header("X-Custom"), Some("abc"));
        assert_eq!(got.header("Accept"), Some("*/*"));
        assert!(got.body.is_empty());
    }
}

/// RFC 9112 §3.2.2: an absolute-form target's authority is the Host (the client's Host is
/// ignored), and the upstreams, origin servers, get the origin form.
#[test]
fn an_absolute_form_target_reaches_the_upstreams_in_origin_form_with_its_host() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&request(
        "GET",
        "http://public.example/admin?x=1",
        &[("Host", "other.example"), ("X-Custom", "abc")],
        b"",
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /admin?x=1");
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(got.target, "/admin?x=1");
        assert_eq!(got.headers_named("Host"), ["public.example"]);
        assert_eq!(got.header("X-Custom"), Some("abc"));
    }
    let block = &trident.wait_blocks(1, WAIT)[0];
    assert!(
        block
            .text
            .contains("GET /admin?x=1 HTTP/1.1 (host=public.example"),
        "{}",
        block.text
    );
}

#[test]
fn head_gets_no_body_back_and_the_connection_stays_in_step() {
    let handler = |req: &RecordedRequest| Reply::ok(format!("body of {}", req.target));
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let head = client.exchange(&request("HEAD", "/h", &[("Host", "test.local")], b""));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // Had trident forwarded body bytes after the HEAD response, this would read them.
    let next = client.exchange(&get("/after-head"));
    assert_eq!(next.status, 200);
    assert_eq!(next.body_text(), "body of /after-head");
    for up in [&p, &s, &c] {
        assert_eq!(find(&up.wait_requests(2, WAIT), "/h").method, "HEAD");
    }
    let blocks = trident.wait_blocks(2, WAIT);
    let block = blocks.iter().find(|b| b.id == 1).expect("block 1");
    assert_eq!(block.method, "HEAD");
    for leg in &block.legs {
        assert_eq!(leg.response(), (200, 0), "{}", block.text);
    }
}

#[test]
fn post_with_content_length_body_arrives_intact_at_all_three_upstreams() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let body = pattern(70_000, 1);
    let mut client = trident.client();
    let resp = client.exchange(&request(
        "POST",
        "/upload",
        &[
            ("Host", "test.local"),
            ("Content-Type", "application/octet-stream"),
        ],
        &body,
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary POST /upload");
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(got.method, "POST");
        assert_eq!(got.header("Content-Type"), Some("application/octet-stream"));
        assert_same_bytes("body at upstream", &body, &got.body);
    }
}

#[test]
fn post_with_chunked_body_arrives_intact_at_all_three_upstreams() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let body = pattern(20_000, 2);
    let mut client = trident.client();
    let resp = client.exchange(&chunked_request(
        "POST",
        "/chunked",
        &[("Host", "test.local")],
        &body,
        &[1, 7, 1000, 4096],
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary POST /chunked");
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_same_bytes("chunked body at upstream", &body, &got.body);
        let framings = usize::from(got.chunked) + usize::from(got.has_header("Content-Length"));
        assert_eq!(
            framings, 1,
            "exactly one framing header upstream: {:?}",
            got.headers
        );
    }
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(blocks[0].body, body.len() as u64, "{}", blocks[0].text);
}

#[test]
fn put_and_delete_are_forwarded_with_method_target_and_body() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let put = client.exchange(&request(
        "PUT",
        "/items/7",
        &[("Host", "test.local")],
        b"{\"name\":\"seven\"}",
    ));
    assert_eq!(put.body_text(), "primary PUT /items/7");
    let delete = client.exchange(&request(
        "DELETE",
        "/items/7",
        &[("Host", "test.local")],
        b"",
    ));
    assert_eq!(delete.body_text(), "primary DELETE /items/7");
    for up in [&p, &s, &c] {
        let got = up.wait_requests(2, WAIT);
        let put = got.iter().find(|r| r.method == "PUT").expect("the PUT");
        assert_eq!(put.target, "/items/7");
        assert_eq!(put.body, b"{\"name\":\"seven\"}");
        let delete = got
            .iter()
            .find(|r| r.method == "DELETE")
            .expect("the DELETE");
        assert_eq!(delete.target, "/items/7");
        assert!(delete.body.is_empty());
    }
}

#[test]
fn odd_status_codes_and_reason_phrases_reach_the_client_unchanged() {
    let handler = |req: &RecordedRequest| match req.target.as_str() {
        "/odd" => Reply::new(299, "Odd Thing").body("odd"),
        "/teapot" => Reply::new(418, "I'm a teapot").body("short and stout"),
        // obs-text (RFC 9112 §4), in UTF-8.
        "/echec" => Reply::new(503, "Échec temporaire").body("plus tard"),
        _ => Reply::new(599, "Network Connect Timeout Error"),
    };
    let (p, s, c) = three_serving(handler);
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let odd = client.exchange(&get("/odd"));
    assert_eq!((odd.status, odd.reason.as_str()), (299, "Odd Thing"));
    assert_eq!(odd.body_text(), "odd");
    let teapot = client.exchange(&get("/teapot"));
    assert_eq!(
        (teapot.status, teapot.reason.as_str()),
        (418, "I'm a teapot")
    );
    assert_eq!(teapot.body_text(), "short and stout");
    let echec = client.exchange(&get("/echec"));
    assert_eq!(
        (echec.status, echec.reason.as_str()),
        (503, "Échec temporaire")
    );
    let other = client.exchange(&get("/other"));
    assert_eq!(
        (other.status, other.reason.as_str()),
        (599, "Network Connect Timeout Error")
    );
    let mut blocks = trident.wait_blocks(4, WAIT);
    blocks.sort_by_key(|b| b.id);
    match &blocks[0].primary().outcome {
        Outcome::Response { status, reason, .. } => {
            assert_eq!((*status, reason.as_str()), (299, "Odd Thing"))
        }
        other => panic!("primary: {other:?}"),
    }
    assert_eq!(blocks[1].candidate().response(), (418, 15));
}

#[test]
fn repeated_response_headers_keep_their_order_and_case() {
    let sent: Vec<(&str, &str)> = vec![
        ("Set-Cookie", "a=1; Path=/"),
        ("X-MiXeD-CaSe", "yes"),
        ("Set-Cookie", "b=2; HttpOnly"),
        ("x-lower", "l"),
        ("Set-Cookie", "c=3"),
        ("Cache-Control", "no-cache"),
        ("Cache-Control", "no-store"),
    ];
    let headers = sent.clone();
    let handler = move |_: &RecordedRequest| {
        headers
            .iter()
            .fold(Reply::ok("cookies"), |r, (n, v)| r.header(n, v))
    };
    let primary = Upstream::start(handler);
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &[]);
    let resp = trident.client().exchange(&get("/cookies"));
    assert_eq!(resp.body_text(), "cookies");
    let names = ["Set-Cookie", "X-MiXeD-CaSe", "x-lower", "Cache-Control"];
    assert_eq!(only(&resp.headers, &names), sent, "all: {:?}", resp.headers);
}

#[test]
fn repeated_request_headers_keep_their_order_and_case() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let sent = [
        ("Host", "test.local"),
        ("X-Dup", "1"),
        ("x-MiXed", "m"),
        ("X-Dup", "2"),
        ("Cookie", "a=1"),
        ("Cookie", "b=2"),
        ("ACCEPT-language", "en"),
    ];
    let resp = trident
        .client()
        .exchange(&request("GET", "/dups", &sent, b""));
    assert_eq!(resp.status, 200);
    let names = ["Host", "X-Dup", "x-MiXed", "Cookie", "ACCEPT-language"];
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(only(&got.headers, &names), sent, "all: {:?}", got.headers);
    }
}

#[test]
fn hop_by_hop_request_headers_are_not_forwarded() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let resp = trident.client().exchange(&request(
        "GET",
        "/hop",
        &[
            ("Host", "test.local"),
            ("Connection", "keep-alive, X-Hop-Secret"),
            ("X-Hop-Secret", "do not forward"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Proxy-Connection", "keep-alive"),
            ("X-End-To-End", "forward me"),
        ],
        b"",
    ));
    assert_eq!(resp.status, 200);
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        for name in [
            "X-Hop-Secret",
            "Keep-Alive",
            "TE",
            "Upgrade",
            "Proxy-Connection",
        ] {
            assert!(
                !got.has_header(name),
                "{name} reached an upstream: {:?}",
                got.headers
            );
        }
        for value in got.headers_named("Connection") {
            for token in value.split(',') {
                let token = token.trim().to_ascii_lowercase();
                assert!(
                    token == "keep-alive" || token == "close",
                    "the client's Connection field was forwarded: {value:?}"
                );
            }
        }
        assert_eq!(got.header("X-End-To-End"), Some("forward me"));
    }
}

#[test]
fn hop_by_hop_response_headers_are_not_forwarded() {
    let primary = Upstream::start(|_| {
        Reply::ok("hop")
            .header("Connection", "X-Internal")
            .header("X-Internal", "secret")
            .header("Keep-Alive", "timeout=5, max=100")
            .header("Proxy-Connection", "keep-alive")
            .header("Upgrade", "h2c")
            .header("X-End-To-End", "kept")
    });
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(&get("/hop"));
    assert_eq!(resp.body_text(), "hop");
    for name in ["X-Internal", "Keep-Alive", "Proxy-Connection", "Upgrade"] {
        assert!(
            resp.header(name).is_none(),
            "{name} reached the client: {:?}",
            resp.headers
        );
    }
    for value in resp.headers_named("Connection") {
        for token in value.split(',') {
            let token = token.trim().to_ascii_lowercase();
            assert!(
                token == "keep-alive" || token == "close",
                "the upstream's Connection field was forwarded: {value:?}"
            );
        }
    }
    assert_eq!(resp.header("X-End-To-End"), Some("kept"));
    // The connection is still good for another request.
    assert_eq!(client.exchange(&get("/again")).body_text(), "hop");
}
