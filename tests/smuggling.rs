//! Request smuggling and strict framing, in the style of HAProxy's reg-tests: raw request
//! bytes in; the status the client gets, and exactly what each upstream received, out. Every
//! framing rule of RFC 9112 §5-§7 that trident enforces has a row, and so do the well-known
//! smuggling payloads (TE obfuscations, CL variants, chunk-size tricks). A request refused from
//! its head reaches no upstream at all (not even a connection); one refused in its chunked
//! body reaches none as a whole request. Both close the client connection. The same
//! strictness on responses: a bad primary response is a 502, a bad shadow response an
//! `error: malformed response: ...` in its block.
//!
//! One trident serves all the request rows, each on its own connection, so the table stays
//! fast. `cargo test --test smuggling -- --ignored` rewrites the fuzz seeds from these rows.

mod support;

use std::time::Duration;

use ::trident::http::stream::FuzzInput;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// What trident must do with a row's request.
#[derive(Debug, Clone)]
enum Expect {
    /// Refused from its head with this status; the connection closes; no upstream gets even
    /// a connection for it.
    Refused(u16),
    /// Refused in its (chunked) body with this status; the connection closes; no upstream
    /// gets the request whole, and every upstream connection that carried part of it closes.
    RefusedInBody(u16),
    /// Forwarded: the client gets the primary's 200 and every upstream gets this.
    Forwarded(Forwarded),
}

/// What each upstream must have received for an accepted row.
#[derive(Debug, Clone)]
struct Forwarded {
    method: &'static str,
    target: &'static str,
    body: Vec<u8>,
    /// Every Content-Length field value, in order (none for a chunked or bodiless request).
    content_length: &'static [&'static str],
    chunked: bool,
    /// Fields that must arrive with exactly this value (once).
    fields: &'static [(&'static str, &'static str)],
    /// Fields that must not arrive at all.
    absent: &'static [&'static str],
}

struct Row {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn refused(name: &'static str, status: u16, request: impl AsRef<[u8]>) -> Row {
    Row {
        name,
        request: request.as_ref().to_vec(),
        expect: Expect::Refused(status),
    }
}

fn refused_in_body(name: &'static str, request: impl AsRef<[u8]>) -> Row {
    Row {
        name,
        request: request.as_ref().to_vec(),
        expect: Expect::RefusedInBody(400),
    }
}

fn forwarded(name: &'static str, request: impl AsRef<[u8]>, forwarded: Forwarded) -> Row {
    Row {
        name,
        request: request.as_ref().to_vec(),
        expect: Expect::Forwarded(forwarded),
    }
}

/// A GET to `target` with no body and nothing special.
fn plain(target: &'static str) -> Forwarded {
    Forwarded {
        method: "GET",
        target,
        body: Vec::new(),
        content_length: &[],
        chunked: false,
        fields: &[],
        absent: &["Transfer-Encoding", "Content-Length"],
    }
}

/// A POST to `target` whose body `hello` arrives with `Content-Length: 5`.
fn hello_by_length(target: &'static str) -> Forwarded {
    Forwarded {
        method: "POST",
        target,
        body: b"hello".to_vec(),
        content_length: &["5"],
        chunked: false,
        fields: &[],
        absent: &["Transfer-Encoding"],
    }
}

/// A POST to `target` whose body `hello` arrives re-chunked by trident.
fn hello_chunked(target: &'static str) -> Forwarded {
    Forwarded {
        method: "POST",
        target,
        body: b"hello".to_vec(),
        content_length: &[],
        chunked: true,
        fields: &[("Transfer-Encoding", "chunked")],
        absent: &["Content-Length"],
    }
}

/// `POST /t HTTP/1.1`, Host, then `fields` (each line with its CRLF), the empty line, `body`.
fn post(target: &str, fields: &str, body: &str) -> Vec<u8> {
    format!("POST {target} HTTP/1.1\r\nHost: test.local\r\n{fields}\r\n{body}").into_bytes()
}

/// `GET /t HTTP/1.1` with `fields` after Host.
fn get_with(target: &str, fields: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test.local\r\n{fields}\r\n").into_bytes()
}

/// A chunked POST with `chunks` as its body, as written.
fn chunked_post(target: &str, chunks: &str) -> Vec<u8> {
    post(target, "Transfer-Encoding: chunked\r\n", chunks)
}

/// A head with `count` fields in all (Host included).
fn with_field_count(target: &str, count: usize) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: test.local\r\n");
    for n in 1..count {
        head.push_str(&format!("X-Field-{n}: {n}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A head whose request line is exactly `len` bytes (without its CRLF).
fn with_line_length(prefix: &str, len: usize) -> Vec<u8> {
    let fixed = "GET ".len() + prefix.len() + " HTTP/1.1".len();
    let target = format!("{prefix}{}", "a".repeat(len - fixed));
    format!("GET {target} HTTP/1.1\r\nHost: test.local\r\n\r\n").into_bytes()
}

/// A head of about `len` bytes in all, padded with 1000-byte fields.
fn with_head_size(target: &str, len: usize) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: test.local\r\n");
    let mut n = 0;
    while head.len() + 1010 < len {
        head.push_str(&format!("X-Pad-{n:02}: {}\r\n", "p".repeat(1000 - 13)));
        n += 1;
    }
    head.push_str(&format!(
        "X-Last: {}\r\n\r\n",
        "q".repeat(len - head.len() - 12)
    ));
    head.into_bytes()
}

/// Rows refused from their head: RFC 9112 §2-§7 and RFC 9110 §5, §8.6.
fn head_rows() -> Vec<Row> {
    vec![
        // RFC 9112 §6.1: Content-Length with Transfer-Encoding.
        refused(
            "cl-te",
            400,
            post(
                "/cl-te",
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-cl",
            400,
            post(
                "/te-cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "cl-te-zero",
            400,
            post(
                "/cl-te-zero",
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        // RFC 9110 §8.6: Content-Length = 1*DIGIT.
        refused(
            "cl-plus",
            400,
            post("/cl-plus", "Content-Length: +5\r\n", "hello"),
        ),
        refused(
            "cl-minus",
            400,
            post("/cl-minus", "Content-Length: -5\r\n", "hello"),
        ),
        refused("cl-hex", 400, post("/cl-hex", "Content-Length: 0x5\r\n", "hello")),
        refused(
            "cl-space-inside",
            400,
            post("/cl-space", "Content-Length: 1 0\r\n", "0123456789"),
        ),
        refused("cl-empty", 400, post("/cl-empty", "Content-Length:\r\n", "")),
        refused(
            "cl-decimal",
            400,
            post("/cl-decimal", "Content-Length: 5.0\r\n", "hello"),
        ),
        refused(
            "cl-overflow",
            400,
            post("/cl-overflow", "Content-Length: 99999999999999999999\r\n", ""),
        ),
        // RFC 9112 §6.3 item 5: differing lengths, as two fields or a list.
        refused(
            "cl-duplicate-differing",
            400,
            post(
                "/cl-dup",
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                "hello!",
            ),
        ),
        refused(
            "cl-list-differing",
            400,
            post("/cl-list", "Content-Length: 5, 6\r\n", "hello!"),
        ),
        // RFC 9112 §6.1 and §6.3 item 4: chunked must be the final coding, once.
        refused(
            "te-xchunked",
            400,
            post(
                "/te-xchunked",
                "Transfer-Encoding: xchunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
        ),
        refused(
            "te-chunked-then-gzip",
            400,
            post(
                "/te-not-final",
                "Transfer-Encoding: chunked, gzip\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-chunked-twice",
            400,
            post(
                "/te-twice",
                "Transfer-Encoding: chunked, chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-two-fields",
            400,
            post(
                "/te-two-fields",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-empty-element",
            400,
            post(
                "/te-empty-element",
                "Transfer-Encoding: ,chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-quoted",
            400,
            post("/te-quoted", "Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"),
        ),
        refused(
            "te-parameter",
            400,
            post("/te-param", "Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"),
        ),
        refused(
            "te-empty",
            400,
            post("/te-empty", "Transfer-Encoding:\r\n", ""),
        ),
        // RFC 9112 §6.1: a coding trident cannot decode.
        refused(
            "te-gzip-chunked",
            501,
            post(
                "/te-gzip",
                "Transfer-Encoding: gzip, chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        refused(
            "te-in-http10",
            400,
            "POST /te-http10 HTTP/1.0\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        // TE obfuscations (defparam/smuggler): space before the colon, vertical tab, a
        // field line starting with whitespace.
        refused(
            "te-space-before-colon",
            400,
            post(
                "/te-space-colon",
                "Transfer-Encoding : chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-vertical-tab-before",
            400,
            post(
                "/te-vt",
                "Transfer-Encoding:\x0bchunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-vertical-tab-after",
            400,
            post(
                "/te-vt-after",
                "Transfer-Encoding: chunked\x0b\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-leading-tab-line",
            400,
            post(
                "/te-tab-line",
                "X: a\r\n\tTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        refused(
            "te-obs-fold",
            400,
            post(
                "/te-fold",
                "Transfer-Encoding:\r\n chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        // RFC 9112 §5.2: obs-fold; §5.1: whitespace before the colon; a line without one.
        refused("obs-fold", 400, get_with("/obs-fold", "X-A: 1\r\n 2\r\n")),
        refused(
            "space-before-colon",
            400,
            "GET /space-colon HTTP/1.1\r\nHost : test.local\r\n\r\n",
        ),
        refused(
            "field-without-colon",
            400,
            get_with("/no-colon", "NoColonHere\r\n"),
        ),
        refused("empty-field-name", 400, get_with("/empty-name", ": v\r\n")),
        // RFC 9110 §5.5: no NUL, CR or LF in a value.
        refused("nul-in-value", 400, get_with("/nul", "X-A: a\0b\r\n")),
        refused("bare-cr-in-value", 400, get_with("/bare-cr", "X-A: a\rb\r\n")),
        // Refused as soon as the CR is seen, not after --header-timeout: no empty line ends
        // such a head.
        refused(
            "bare-cr-before-the-empty-line",
            400,
            "GET /cr-end HTTP/1.1\r\nHost: test.local\r\n\r\r\n",
        ),
        refused(
            "cr-only-line-ends",
            400,
            "GET /cr-only HTTP/1.1\rHost: test.local\r\r",
        ),
        // RFC 9112 §2.2: CRLF line ends only (trident's policy; bare LF MAY be accepted).
        refused(
            "bare-lf-everywhere",
            400,
            "GET /bare-lf HTTP/1.1\nHost: test.local\n\n",
        ),
        refused(
            "bare-lf-one-line",
            400,
            "GET /bare-lf-one HTTP/1.1\r\nHost: test.local\nX-A: 1\r\n\r\n",
        ),
        refused(
            "bare-lf-end-of-head",
            400,
            "GET /bare-lf-end HTTP/1.1\r\nHost: test.local\r\n\n",
        ),
        // RFC 9112 §3.2: exactly one valid Host in HTTP/1.1.
        refused("host-missing", 400, "GET /no-host HTTP/1.1\r\nX-A: 1\r\n\r\n"),
        refused(
            "host-twice-same",
            400,
            "GET /host-twice HTTP/1.1\r\nHost: test.local\r\nHost: test.local\r\n\r\n",
        ),
        refused(
            "host-twice-differing",
            400,
            "GET /host-differ HTTP/1.1\r\nHost: test.local\r\nHost: evil.example\r\n\r\n",
        ),
        refused(
            "host-userinfo",
            400,
            "GET /host-at HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        ),
        refused(
            "host-with-path",
            400,
            "GET /host-path HTTP/1.1\r\nHost: test.local/x\r\n\r\n",
        ),
        // RFC 9112 §3: method and target.
        refused(
            "bad-method",
            400,
            "G(T /bad-method HTTP/1.1\r\nHost: test.local\r\n\r\n",
        ),
        refused(
            "space-in-target",
            400,
            "GET /a b HTTP/1.1\r\nHost: test.local\r\n\r\n",
        ),
        refused(
            "two-spaces",
            400,
            "GET  /two-spaces HTTP/1.1\r\nHost: test.local\r\n\r\n",
        ),
        refused(
            "tls-hello",
            400,
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        ),
        // RFC 9112 §2.3: only HTTP/1.x.
        refused(
            "http2-version",
            505,
            "GET /h2 HTTP/2.0\r\nHost: test.local\r\n\r\n",
        ),
        refused(
            "http12-version",
            505,
            "GET /h12 HTTP/1.2\r\nHost: test.local\r\n\r\n",
        ),
        // No version at all: a peer reading `01.1` as 1.1 must not be the only one to.
        refused(
            "version-leading-zero",
            400,
            "GET /h011 HTTP/01.1\r\nHost: test.local\r\n\r\n",
        ),
        // Limits: 414 and 431 (and their boundaries are accepted rows below).
        refused("request-line-8193", 414, with_line_length("/long-", 8193)),
        refused("fields-101", 431, with_field_count("/fields-101", 101)),
        refused("head-over-64k", 431, with_head_size("/big-head", 65_537)),
        refused("head-far-over-64k", 431, with_head_size("/huge-head", 200_000)),
    ]
}

/// Rows refused in their chunked body: RFC 9112 §7.1.
fn body_rows() -> Vec<Row> {
    vec![
        refused_in_body(
            "chunk-size-0x",
            chunked_post("/chunk-0x", "0x5\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-size-plus",
            chunked_post("/chunk-plus", "+5\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-size-underscore",
            chunked_post("/chunk-underscore", "5_0\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-size-leading-space",
            chunked_post("/chunk-space", " 5\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-size-overflow",
            chunked_post("/chunk-overflow", "10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-size-bare-lf",
            chunked_post("/chunk-size-lf", "5\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-data-bare-lf",
            chunked_post("/chunk-data-lf", "5\r\nhello\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-data-too-long",
            chunked_post("/chunk-long", "3\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "last-chunk-bare-lf",
            chunked_post("/last-chunk-lf", "5\r\nhello\r\n0\n\r\n"),
        ),
        refused_in_body(
            "chunk-ext-cr",
            chunked_post("/chunk-ext-cr", "5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-ext-nul",
            chunked_post("/chunk-ext-nul", "5;a\0\r\nhello\r\n0\r\n\r\n"),
        ),
        refused_in_body(
            "chunk-ext-too-long",
            chunked_post(
                "/chunk-ext-long",
                &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(2000)),
            ),
        ),
        refused_in_body(
            "trailer-bare-lf",
            chunked_post("/trailer-lf", "5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
        ),
        // A trailer line that is no field line: a peer reading it as the end of the trailers,
        // or folding it into the one before, would frame what follows otherwise.
        refused_in_body(
            "trailer-without-colon",
            chunked_post("/trailer-colon", "5\r\nhello\r\n0\r\nX-T\r\n\r\n"),
        ),
        refused_in_body(
            "trailer-folded",
            chunked_post("/trailer-fold", "5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
        ),
    ]
}

/// Rows forwarded, and what the upstreams must see.
fn accepted_rows() -> Vec<Row> {
    vec![
        // A framing field's look-alike (`_` for `-`) is dropped: a server that reads it as the
        // field itself would frame the request otherwise than trident, and smuggle.
        forwarded(
            "te-underscore-lookalike",
            post(
                "/ok-te-underscore",
                "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n",
                "hello",
            ),
            Forwarded {
                absent: &["Transfer-Encoding", "Transfer_Encoding"],
                ..hello_by_length("/ok-te-underscore")
            },
        ),
        forwarded(
            "cl-underscore-lookalike",
            post(
                "/ok-cl-underscore",
                "Content_Length: 40\r\nContent-Length: 5\r\n",
                "hello",
            ),
            Forwarded {
                absent: &["Transfer-Encoding", "Content_Length"],
                ..hello_by_length("/ok-cl-underscore")
            },
        ),
        // The role header's look-alike too (it would forge the role); other names with `_`
        // are the client's own.
        forwarded(
            "role-underscore-lookalike",
            get_with(
                "/ok-role-underscore",
                "X_Trident_Role: primary\r\nX_Other: kept\r\n",
            ),
            Forwarded {
                fields: &[("X_Other", "kept")],
                absent: &["X_Trident_Role", "Transfer-Encoding", "Content-Length"],
                ..plain("/ok-role-underscore")
            },
        ),
        // RFC 9110 §8.6: identical lengths may be merged; trident sends one.
        forwarded(
            "cl-duplicate-identical",
            post(
                "/ok-cl-dup",
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                "hello",
            ),
            hello_by_length("/ok-cl-dup"),
        ),
        forwarded(
            "cl-list-identical",
            post("/ok-cl-list", "Content-Length: 5, 5\r\n", "hello"),
            hello_by_length("/ok-cl-list"),
        ),
        forwarded(
            "cl-leading-zeros",
            post("/ok-cl-zeros", "Content-Length: 0005\r\n", "hello"),
            hello_by_length("/ok-cl-zeros"),
        ),
        // A tab is optional whitespace (RFC 9110 §5.6.3): this is plain chunked.
        forwarded(
            "te-tab-before",
            post(
                "/ok-te-tab",
                "Transfer-Encoding:\tchunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            hello_chunked("/ok-te-tab"),
        ),
        forwarded(
            "te-case",
            post(
                "/ok-te-case",
                "Transfer-Encoding: ChUnKeD\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            hello_chunked("/ok-te-case"),
        ),
        // Chunk extensions and trailers are not forwarded; the body is re-chunked.
        forwarded(
            "chunk-ext-and-trailer",
            chunked_post(
                "/ok-ext",
                "2;name=\"v\"\r\nhe\r\n3 ; x\r\nllo\r\n0\r\nX-Trailer: t\r\n\r\n",
            ),
            Forwarded {
                absent: &["X-Trailer", "Content-Length"],
                ..hello_chunked("/ok-ext")
            },
        ),
        // A request hidden in a chunk is payload, not a second request.
        forwarded(
            "request-inside-chunk",
            chunked_post(
                "/ok-hidden",
                "23\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
            ),
            Forwarded {
                body: b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                ..hello_chunked("/ok-hidden")
            },
        ),
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        forwarded(
            "leading-empty-lines",
            "\r\n\r\nGET /ok-leading HTTP/1.1\r\nHost: test.local\r\n\r\n",
            plain("/ok-leading"),
        ),
        // HTTP/1.0 without Host: upstreams get HTTP/1.1 and a Host.
        forwarded(
            "http10-no-host",
            "GET /ok-http10 HTTP/1.0\r\nX-A: 1\r\n\r\n",
            Forwarded {
                fields: &[("X-A", "1")],
                ..plain("/ok-http10")
            },
        ),
        // The limits' boundaries are inside.
        forwarded(
            "request-line-8192",
            with_line_length("/ok-line-", 8192),
            plain("/ok-line-"),
        ),
        forwarded(
            "fields-100",
            with_field_count("/ok-fields-100", 100),
            Forwarded {
                fields: &[("X-Field-99", "99")],
                ..plain("/ok-fields-100")
            },
        ),
        forwarded(
            "head-60k",
            with_head_size("/ok-head-60k", 60_000),
            plain("/ok-head-60k"),
        ),
    ]
}

/// The request whose target starts with `prefix`, once `up` has it (a shadow may get it
/// after the client got the primary's answer).
fn wait_for_target(up: &Upstream, prefix: &str) -> RecordedRequest {
    let mut found = None;
    let arrived = wait_until(WAIT, || {
        found = up
            .requests()
            .into_iter()
            .find(|r| r.target.starts_with(prefix));
        found.is_some()
    });
    assert!(arrived, "{} got no request for {prefix}", up.addr());
    found.expect("found")
}

/// Reads the refusal and checks the connection closes after it.
fn expect_refusal(trident: &Trident, row: &Row, status: u16) {
    let mut client = trident.client();
    client.send(&row.request);
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("row {}: no response: {e}", row.name));
    assert_eq!(
        resp.status,
        status,
        "row {}: {}",
        row.name,
        resp.body_text()
    );
    assert_eq!(
        resp.header("Connection"),
        Some("close"),
        "row {}: the refusal must announce the close",
        row.name
    );
    client.expect_closed();
}

#[test]
fn smuggling_payloads_and_framing_rules_are_refused_or_forwarded_exactly() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let ups = [&p, &s, &c];

    // Refused from the head: no upstream ever gets a connection.
    for row in head_rows() {
        let Expect::Refused(status) = row.expect else {
            unreachable!()
        };
        expect_refusal(&trident, &row, status);
    }
    // A good request after them proves trident processed them all, and is all they got.
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/after-refusals")).status, 200);
    for up in ups {
        let got = up.wait_requests(1, WAIT);
        assert_eq!(sorted_targets(&got), ["/after-refusals"]);
        assert_eq!(
            up.connections(),
            1,
            "only the good request opened a connection"
        );
    }
    assert_eq!(trident.wait_blocks(1, WAIT).len(), 1);

    // Refused in the body: the head may have gone out, the request never completes, and
    // every upstream connection that carried part of it is closed.
    let body_rows = body_rows();
    for row in &body_rows {
        let Expect::RefusedInBody(status) = row.expect else {
            unreachable!()
        };
        expect_refusal(&trident, row, status);
    }
    assert_eq!(client.exchange(&get("/after-bodies")).status, 200);
    for up in ups {
        let got = up.wait_requests(2, WAIT);
        assert_eq!(
            sorted_targets(&got),
            ["/after-bodies", "/after-refusals"],
            "no upstream got a refused body whole"
        );
        // All closed but the pooled one the good requests use.
        up.wait_closed(up.connections() - 1, WAIT);
    }
    let blocks = trident.wait_blocks(2 + body_rows.len(), WAIT);
    for block in blocks.iter().filter(|b| !b.target.starts_with("/after-")) {
        for leg in &block.legs {
            assert!(
                matches!(leg.outcome, Outcome::Error(_)),
                "no upstream answered a refused body: {}",
                block.text
            );
        }
    }

    // Accepted: exactly what each upstream received.
    let accepted = accepted_rows();
    for row in &accepted {
        let Expect::Forwarded(want) = &row.expect else {
            unreachable!()
        };
        let mut client = trident.client();
        let resp = client.exchange(&row.request);
        assert_eq!(resp.status, 200, "row {}: {}", row.name, resp.body_text());
        for up in ups {
            let got = wait_for_target(up, want.target);
            let what = format!("row {} at {}", row.name, up.addr());
            assert_eq!(
                (got.method.as_str(), got.version.as_str()),
                (want.method, "HTTP/1.1"),
                "{what}"
            );
            assert_same_bytes(&what, &want.body, &got.body);
            assert_eq!(
                got.headers_named("Content-Length"),
                want.content_length,
                "{what}"
            );
            assert_eq!(got.chunked, want.chunked, "{what}");
            assert_eq!(got.headers_named("Host").len(), 1, "{what}: one Host");
            for (name, value) in want.fields {
                assert_eq!(got.headers_named(name), [*value], "{what}: {name}");
            }
            for name in want.absent {
                assert!(!got.has_header(name), "{what}: {name} forwarded");
            }
        }
    }
}

/// Response rows: (target, what the misbehaving upstream sends, the error in the block).
fn bad_responses() -> Vec<(&'static str, &'static [u8], &'static str)> {
    vec![
        (
            "/r/cl-te",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "invalid Transfer-Encoding",
        ),
        (
            "/r/cl-plus",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
            "invalid Content-Length",
        ),
        (
            "/r/cl-differing",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "invalid Content-Length",
        ),
        (
            "/r/te-twice",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            "invalid Transfer-Encoding",
        ),
        (
            // No TE was sent, so no coding was offered; a `chunked`-only relabel would hand
            // the client gzip bytes as the body.
            "/r/te-gzip-chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "unsupported transfer coding",
        ),
        (
            "/r/te-gzip-until-close",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz",
            "unsupported transfer coding",
        ),
        (
            "/r/bare-lf",
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            "bare LF in head",
        ),
        (
            "/r/obs-fold",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n",
            "invalid header field name",
        ),
        (
            "/r/te-space-colon",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "invalid header field name",
        ),
        (
            "/r/nul",
            b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n",
            "invalid header field value",
        ),
        (
            "/r/switching",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "unexpected 101 Switching Protocols",
        ),
        (
            "/r/http2",
            b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
            "unsupported HTTP version",
        ),
    ]
}

/// An upstream that answers `/{prefix}/...` targets with the bad response of that row, and
/// anything else with `200 {name}`.
fn misbehaving(name: &'static str, prefix: &'static str) -> Upstream {
    Upstream::start(move |req| {
        let Some(rest) = req.target.strip_prefix(prefix) else {
            return Reply::ok(name);
        };
        let target = format!("/r{rest}");
        match bad_responses().into_iter().find(|(t, _, _)| *t == target) {
            Some((_, raw, _)) => Reply::garbage(raw),
            None if target == "/r/bad-chunk" => {
                Reply::garbage(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0x5\r\nhello\r\n0\r\n\r\n"[..])
            }
            None => Reply::ok(name),
        }
    })
}

#[test]
fn malformed_responses_are_502_from_the_primary_and_errors_from_a_shadow() {
    let primary = misbehaving("primary", "/p");
    let secondary = misbehaving("secondary", "/s");
    let candidate = Upstream::named("candidate");
    let trident = Trident::with_upstreams(&primary, &secondary, &candidate, &[]);
    let rows = bad_responses();
    let mut client = trident.client();
    let mut expected = Vec::new();
    for (target, _, error) in &rows {
        // The primary misbehaves: the client gets 502 (and may keep its connection).
        let as_primary = target.replacen("/r/", "/p/", 1);
        let resp = client.exchange(&get(&as_primary));
        assert_eq!(resp.status, 502, "{as_primary}: {}", resp.body_text());
        expected.push((as_primary, 0, *error));
        // The secondary misbehaves: the client never notices.
        let as_secondary = target.replacen("/r/", "/s/", 1);
        let resp = client.exchange(&get(&as_secondary));
        assert_eq!(
            (resp.status, resp.body_text().as_str()),
            (200, "primary"),
            "{as_secondary}"
        );
        expected.push((as_secondary, 1, *error));
    }
    let blocks = trident.wait_blocks(expected.len(), WAIT);
    for (target, leg, error) in &expected {
        let block = blocks
            .iter()
            .find(|b| &b.target == target)
            .unwrap_or_else(|| panic!("no block for {target}"));
        assert_eq!(
            block.legs[*leg].error(),
            format!("malformed response: {error}"),
            "{}",
            block.text
        );
        assert_eq!(block.candidate().response().0, 200, "{}", block.text);
    }

    // A primary whose chunked body turns bad after its head went out: the client gets the
    // message cut short and the connection closed, never a wrong message.
    let mut client = trident.client();
    client.send(&get("/p/bad-chunk"));
    let got = client.read_until_closed().unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut-short body was completed: {text:?}"
    );
    let blocks = trident.wait_blocks(expected.len() + 1, WAIT);
    let block = blocks
        .iter()
        .find(|b| b.target == "/p/bad-chunk")
        .expect("block");
    assert_eq!(
        block.primary().error(),
        "malformed response: invalid chunk: chunk size is not hex"
    );
}

/// Rewrites the request and response fuzz seeds from the rows of this file
/// (`cargo test --test smuggling -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    };
    let rows = head_rows()
        .into_iter()
        .chain(body_rows())
        .chain(accepted_rows());
    for row in rows {
        // Long inputs cost the fuzzer more than they teach it: the limits rows are covered
        // with the small limits instead (see fuzz_corpus.rs).
        if row.request.len() > 4096 {
            continue;
        }
        write(
            "request_stream",
            row.name,
            FuzzInput::encode(false, false, false, &[], &row.request),
        );
    }
    for (target, raw, _) in bad_responses() {
        let name = target.trim_start_matches("/r/");
        write(
            "response_stream",
            name,
            FuzzInput::encode(false, false, false, &[], raw),
        );
    }
}
