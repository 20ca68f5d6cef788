//! The fuzz corpora as ordinary tests: every checked-in input under `fuzz/corpus/<target>/`
//! (the `seed-*` files and the `find-*` files kept from fuzzing runs) goes through the same
//! check function its cargo-fuzz target calls, on the stable toolchain, so a crash once found
//! and fixed stays fixed. The inputs libFuzzer adds under SHA-1 names in a local run are not
//! replayed (they are not checked in, and there may be thousands).
//!
//! `cargo test --test fuzz_corpus -- --ignored` rewrites the seeds written here;
//! `tests/smuggling.rs` writes the seeds made of its own rows the same way.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use trident::http::stream::FuzzInput;
use trident::http::stream::{check_chunked, check_request_stream, check_response_stream};
use trident::report::{check_report, encode_report_input};

#[path = "../fuzz/targets_check.rs"]
mod targets_check;

/// A fuzz target's check: panics on a broken invariant.
type Check = fn(&[u8]);

/// Each fuzz target and the check it runs.
const TARGETS: [(&str, Check); 5] = [
    ("request_stream", check_request_stream),
    ("response_stream", check_response_stream),
    ("chunked", check_chunked),
    ("targets_file", targets_check::check_targets_file),
    ("report", check_report),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The checked-in inputs of one target's corpus, sorted by name.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("seed-") || name.starts_with("find-")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_has_a_check_and_a_corpus() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut declared: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| {
            let line = bin.lines().find(|l| l.trim_start().starts_with("name"))?;
            line.split('"').nth(1)
        })
        .collect();
    declared.sort_unstable();
    let mut known: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    known.sort_unstable();
    assert_eq!(declared, known, "fuzz/Cargo.toml targets vs this file's");
    for (target, _) in TARGETS {
        assert!(
            corpus(target).len() >= 8,
            "fuzz/corpus/{target} has fewer than 8 seeds"
        );
    }
}

#[test]
fn every_checked_in_corpus_input_passes_its_check() {
    for (target, check) in TARGETS {
        for path in corpus(target) {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A panic names the file: `cargo +nightly fuzz run TARGET PATH` reproduces it.
            eprintln!("{target}: {}", path.display());
            check(&data);
        }
    }
}

/// Every prefix of each seed is an input too: the inputs the network cuts short.
#[test]
fn every_prefix_of_the_framing_seeds_passes_its_check() {
    for (target, check) in &TARGETS[..3] {
        for path in corpus(target) {
            let data = fs::read(&path).expect("seed");
            if data.len() > 600 {
                continue;
            }
            for end in 1..data.len() {
                check(&data[..end]);
            }
        }
    }
}

#[test]
fn the_targets_file_check_resolves_names_offline() {
    let good = "primary = http://127.0.0.1:9001\nsecondary = http://[::1]:9002\n";
    let named = format!("{good}candidate = http://backend.internal:9003\n");
    let targets =
        trident::targets::Targets::parse_with(&named, "t.conf", &targets_check::offline_resolve)
            .expect("a name resolves");
    let addrs: Vec<Vec<SocketAddr>> = targets.iter().map(|t| t.addrs.clone()).collect();
    let at = |text: &str| vec![text.parse::<SocketAddr>().unwrap()];
    assert_eq!(
        addrs,
        [at("127.0.0.1:9001"), at("[::1]:9002"), at("192.0.2.1:9003")]
    );
    let two = format!("{good}candidate = http://backend.test:9003\n");
    let targets =
        trident::targets::Targets::parse_with(&two, "t.conf", &targets_check::offline_resolve)
            .expect("a .test name resolves");
    let candidate = targets.get(trident::targets::Role::Candidate);
    assert_eq!(candidate.addrs[1..], at("192.0.2.2:9003"));
    targets_check::check_targets_file(two.as_bytes());
    // A .invalid name does not resolve: the candidate starts unresolved, the primary cannot.
    let unresolvable = format!("{good}candidate = http://gone.INVALID:9003\n");
    let targets = trident::targets::Targets::parse_with(
        &unresolvable,
        "t.conf",
        &targets_check::offline_resolve,
    )
    .expect("a shadow may start unresolved");
    assert!(targets
        .get(trident::targets::Role::Candidate)
        .is_unresolved());
    let no_primary = "primary = http://gone.invalid:9001\nsecondary = http://[::1]:9002\n\
                      candidate = http://backend.test:9003\n";
    let err = trident::targets::Targets::parse_with(
        no_primary,
        "t.conf",
        &targets_check::offline_resolve,
    )
    .expect_err("the primary must resolve");
    assert!(
        err.to_string().starts_with("t.conf:1: cannot resolve"),
        "{err}"
    );
    targets_check::check_targets_file(named.as_bytes());
    targets_check::check_targets_file(unresolvable.as_bytes());
    targets_check::check_targets_file(no_primary.as_bytes());
}

/// Writes the seeds that are not rows of `tests/smuggling.rs`
/// (`cargo test --test fuzz_corpus -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    };
    let whole = |payload: &[u8]| FuzzInput::encode(false, false, false, &[], payload);
    let small = |payload: &[u8]| FuzzInput::encode(true, false, false, &[], payload);
    let split =
        |splits: &[u16], payload: &[u8]| FuzzInput::encode(false, false, false, splits, payload);

    // Requests: keep-alive sequences, persistence, fields trident rewrites, the limits.
    let requests: [(&str, Vec<u8>); 10] = [
        (
            "pipelined-keep-alive",
            split(
                &[5, 40, 71],
                b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcPUT /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n",
            ),
        ),
        (
            "http10-keep-alive",
            whole(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: h\r\n\r\nGET /c HTTP/1.0\r\n\r\n"),
        ),
        (
            "expect-continue",
            split(&[60], b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody"),
        ),
        (
            "hop-by-hop",
            whole(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: x\r\nTrailer: T\r\nX-Kept: k\r\n\r\n"),
        ),
        (
            "forwarded-for-rewrite",
            FuzzInput::encode(
                false,
                true,
                false,
                &[],
                b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nhost: a\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-For:\r\nX-Trident-Role: spoofed\r\n\r\n",
            ),
        ),
        (
            "small-long-line",
            small(b"GET /0123456789012345678901234 HTTP/1.1\r\nHost: a\r\n\r\n"),
        ),
        (
            "small-many-fields",
            small(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n"),
        ),
        (
            "small-chunk-ext",
            small(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;abcdefgh\r\nx\r\n0\r\n\r\n"),
        ),
        (
            "long-line-then-bare-cr",
            small(b"GET /0123456789012345678901234567890123456789\rX"),
        ),
        (
            "compact-fields",
            whole(b"POST /c HTTP/1.1\r\nhost:a\r\ncontent-length:2\r\nx:\t y \t\r\n\r\nhi"),
        ),
    ];
    for (name, bytes) in &requests {
        write("request_stream", name, bytes);
    }

    // Responses, for GET and HEAD, for HTTP/1.1 and HTTP/1.0 clients.
    let response = |head: bool, http10: bool, splits: &[u16], payload: &[u8]| {
        FuzzInput::encode(false, head, http10, splits, payload)
    };
    let responses: [(&str, Vec<u8>); 12] = [
        ("length", response(false, false, &[], b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: d\r\n\r\nhello")),
        ("chunked-trailer", response(false, false, &[20, 50], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")),
        ("chunked-to-http10", response(false, true, &[], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("until-close", response(false, false, &[], b"HTTP/1.1 200 OK\r\nServer: s\r\n\r\nall of it until the close")),
        ("until-close-http10", response(false, true, &[], b"HTTP/1.0 200 OK\r\n\r\nbody")),
        ("interim-then-final", response(false, false, &[10], b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")),
        ("head-with-length", response(true, false, &[], b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")),
        ("head-with-chunked", response(true, false, &[], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")),
        ("not-modified", response(false, false, &[], b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n")),
        ("no-content", response(false, false, &[], b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc")),
        ("truncated", response(false, false, &[], b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")),
        ("trailing-bytes", response(false, false, &[], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Hop\r\nX-Hop: h\r\n\r\nhiHTTP/1.1 200 OK\r\n\r\n")),
    ];
    for (name, bytes) in &responses {
        write("response_stream", name, bytes);
    }

    // Chunked bodies: RFC 9112 §7.1 row by row, valid and not.
    let chunked: [(&str, &[u8]); 16] = [
        (
            "two-chunks",
            b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
        ),
        (
            "extensions",
            b"5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n",
        ),
        ("bws-before-ext", b"5 ;a=b\r\nhello\r\n0\t;c\r\n\r\n"),
        (
            "trailers",
            b"2\r\nhi\r\n0\r\nX-Sum: 1\r\nY: \t2\r\n\r\nnext",
        ),
        ("leading-zeros", b"0000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("size-17-digits", b"00000000000000005\r\nhello\r\n"),
        ("size-bare-lf", b"5\nhello\r\n0\r\n\r\n"),
        ("data-bare-lf", b"5\r\nhello\n0\r\n\r\n"),
        ("data-too-long", b"2\r\nhi\r\n3\r\nabc0\r\n\r\n"),
        ("ext-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ("ext-ctl", b"5;a\x7f\r\nhello\r\n"),
        ("trailer-bare-cr", b"0\r\nX: 1\rY: 2\r\n\r\n"),
        ("trailer-ctl", b"0\r\nX: \x01\r\n\r\n"),
        ("huge-size", b"ffffffffffffffff\r\nabc"),
    ];
    for (name, bytes) in chunked {
        write("chunked", name, &split(&[1, 7], bytes));
    }
    write(
        "chunked",
        "small-ext-cap",
        &FuzzInput::encode(true, false, false, &[], b"1;abcdefgh\r\nx\r\n0\r\n\r\n"),
    );
    write(
        "chunked",
        "small-trailer-cap",
        &FuzzInput::encode(
            true,
            false,
            false,
            &[],
            b"0\r\nX: 0123456789012345678901234567890123456789\r\n\r\n",
        ),
    );

    // Targets files, valid and not; names resolve offline (see fuzz/targets_check.rs).
    let good = "primary = http://127.0.0.1:9001\nsecondary = http://127.0.0.1:9002\n";
    let targets: [(&str, String); 17] = [
        ("valid", format!("{good}candidate = http://127.0.0.1:9003\n")),
        (
            "valid-options",
            "# the three\r\n\r\n  candidate=http://[::1]:9003/  timeout=1500 connect_timeout=200 max_inflight=8 host=target # new\r\n\tsecondary =http://127.0.0.1/\r\nprimary= HTTP://127.0.0.1:9001 # stable\r\n".to_string(),
        ),
        ("bom", format!("\u{feff}{good}candidate = http://127.0.0.1:9003")),
        ("duplicate-role", format!("{good}primary = http://127.0.0.1:9003\n")),
        ("missing-role", good.to_string()),
        ("unknown-role", format!("{good}canidate = http://127.0.0.1:9003\n")),
        ("unknown-option", format!("{good}candidate = http://127.0.0.1:9003 retries=3\n")),
        ("bad-timeout", format!("{good}candidate = http://127.0.0.1:9003 timeout=-5\n")),
        ("path", format!("{good}candidate = http://127.0.0.1:9003/api\n")),
        ("userinfo", format!("{good}candidate = http://u@127.0.0.1:9003\n")),
        ("bad-port", format!("{good}candidate = http://127.0.0.1:99999\n")),
        ("ipv6-unbracketed", format!("{good}candidate = http://::1:9003\n")),
        ("named", format!("{good}candidate = https://backend.internal host=target\n")),
        ("unresolvable", format!("{good}candidate = http://gone.invalid:9003\n")),
        (
            "unresolvable-primary",
            "primary = http://gone.invalid:9001\nsecondary = http://127.0.0.1:9002\ncandidate = http://127.0.0.1:9003\n".to_string(),
        ),
        (
            "field-rules",
            format!("{good}candidate = http://127.0.0.1:9003 set_header=\"Authorization: Bearer \\\"a #b\\\"\" drop_header=Cookie # c\n"),
        ),
        (
            "field-rule-injection",
            format!("{good}candidate = http://127.0.0.1:9003 \"set_header=X-A: 1\rX-B: 2\" timeout=\"5\n"),
        ),
    ];
    for (name, text) in &targets {
        write("targets_file", name, text.as_bytes());
    }

    // Exchanges for the reporting thread: a request head, then three raw responses.
    for (name, bytes) in report_seeds() {
        write("report", name, &bytes);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The report seeds: what the comparison must survive from an upstream.
fn report_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let get = b"GET /users/42?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let json = |body: &str| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{body}").into_bytes()
    };
    let with_body = |head: &str, body: &[u8]| [head.as_bytes(), body].concat();
    let zipped = with_body(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n\r\n",
        &gzip(br#"{"user":{"name":"ada","ts":1}}"#),
    );
    let mut corrupt = zipped.clone();
    let end = corrupt.len() - 12;
    corrupt[end] ^= 0x55;
    let bomb = with_body(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
        &gzip(&vec![b'a'; 200_000]),
    );
    let deep = |depth: usize, leaf: &str| {
        json(&format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth)))
    };
    let plain = |body: &str| format!("HTTP/1.1 200 OK\r\n\r\n{body}").into_bytes();
    let seed =
        |small: bool, request: &[u8], legs: [&[u8]; 3]| encode_report_input(small, request, legs);
    vec![
        (
            "json-regression",
            seed(
                false,
                get,
                [
                    &json(r#"{"id":42,"email":"a@x","meta":{"ts":1},"tags":[1,2]}"#),
                    &json(r#"{"id":42,"email":"a@x","meta":{"ts":2},"tags":[1,2]}"#),
                    &json(r#"{"id":"42","email":{"local":"a"},"tags":[1]}"#),
                ],
            ),
        ),
        ("gzip-against-plain", seed(false, get, [&json(r#"{"user":{"name":"ada","ts":1}}"#), &zipped, &zipped])),
        ("gzip-corrupt", seed(false, get, [&zipped, &zipped, &corrupt])),
        ("gzip-bomb-small-cap", seed(true, get, [&plain("a"), &bomb, &bomb])),
        (
            "failed-and-skipped",
            seed(false, get, [b"!\x03", b"-", b"!\x09no route to host"]),
        ),
        (
            "interim",
            seed(
                false,
                get,
                [
                    &plain("page"),
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\npage",
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n\r\npage",
                ],
            ),
        ),
        (
            "json-keys-with-control-characters",
            seed(
                false,
                get,
                [
                    &json(r#"{"a\nb":1,"c\r\nRESPONSE 9":[1],"\u0000":"x"}"#),
                    &json(r#"{"a\nb":1,"c\r\nRESPONSE 9":[1],"\u0000":"x"}"#),
                    &json(r#"{"a\nb":2,"c\r\nRESPONSE 9":{},"\u0000":"y","\t":1}"#),
                ],
            ),
        ),
        (
            "obs-text-headers",
            seed(
                false,
                get,
                [
                    b"HTTP/1.1 200 \xc3\xa9t\xe9\r\nX-Name: caf\xe9\r\nX-Gone: 1\r\n\r\nbody",
                    b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n\r\nbody",
                    b"HTTP/1.1 200 OK\r\nx-name: \xff\xfe\r\nX-New: \x80\r\n\r\nb\xffdy",
                ],
            ),
        ),
        ("json-deep", seed(false, get, [&deep(120, "1"), &deep(120, "1"), &deep(127, "2")])),
        (
            "body-beyond-small-cap",
            seed(
                true,
                get,
                [
                    &plain(&"x".repeat(100)),
                    &plain(&"x".repeat(100)),
                    &plain(&format!("{}y", "x".repeat(99))),
                ],
            ),
        ),
        (
            "statuses",
            seed(
                false,
                b"POST /orders HTTP/1.0\r\n\r\n",
                [
                    b"HTTP/1.1 599 \r\n\r\n",
                    b"HTTP/1.0 204 No Content\r\n\r\n",
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<p>gone</p>",
                ],
            ),
        ),
        (
            "malformed-legs",
            seed(
                false,
                b"GET /%0A/\"q\" HTTP/1.1\r\nHost: \xff\r\n\r\n",
                [
                    &plain("ok"),
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nX: 1",
                ],
            ),
        ),
    ]
}
