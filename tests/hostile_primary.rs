//! A misbehaving primary: the client gets `502` (or `504` for a deadline) at the right time
//! when nothing of the response has gone out yet, with a body naming the failure and its
//! connection kept; once part of the response went out, the connection is closed after it,
//! so the client sees a truncated message, never a wrong one. Odd but legal answers (early,
//! after `100 Continue`, followed by stray bytes) reach the client intact; a stale pooled
//! connection is replaced for a GET and reported for a POST.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::hostile::*;
use support::*;

const WAIT: Duration = Duration::from_secs(5);
/// An immediate failure's answer comes within this.
const PROMPT: Duration = Duration::from_millis(500);
/// A deadline's answer comes no later than this after the deadline.
const LATE: Duration = Duration::from_millis(900);

/// A stage with `primary` first, healthy shadows, and `--timeout 4000` (legs that need a
/// shorter deadline carry their own).
fn stage_with(primary: Player, options: &'static str) -> Stage {
    Stage::start(
        [
            primary,
            Player::Healthy(Upstream::named("secondary")),
            Player::Healthy(Upstream::named("candidate")),
        ],
        [options, "", ""],
        &["--timeout", "4000", "--connect-timeout", "4000"],
    )
}

fn hostile(behaviour: Behaviour) -> Player {
    Player::Hostile(Hostile::start(behaviour))
}

/// A started stage after one reference exchange (`GET /healthy`): its client, the
/// reference answer, and trident's resident descriptors.
struct Scene {
    stage: Stage,
    client: RawClient,
    reference: RawResponse,
    resident: usize,
}

fn scene(primary: Player, options: &'static str) -> Scene {
    let stage = stage_with(primary, options);
    let mut client = stage.client();
    let reference = client.exchange(&get("/healthy"));
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());
    Scene {
        stage,
        client,
        reference,
        resident,
    }
}

impl Scene {
    fn finish(self) {
        drop(self.client);
        self.stage.finish(self.resident);
    }

    /// The block of the exchange for `target`.
    fn block(&self, target: &str) -> Block {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(block) = self
                .stage
                .trident
                .blocks()
                .into_iter()
                .find(|b| b.target == target)
            {
                return block;
            }
            assert!(
                Instant::now() < deadline,
                "no block for {target}\n{}",
                self.stage.trident.output()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The block for `target` says the primary failed with `text`; the shadows answered.
    fn assert_primary_error(&self, target: &str, text: &str) {
        let block = self.block(target);
        assert_eq!(block.primary().error(), text, "{}", block.text);
        assert_eq!(block.secondary().response().0, 200, "{}", block.text);
        assert_eq!(block.candidate().response().0, 200, "{}", block.text);
    }
}

/// Nothing had gone out: `status` with a body naming `text`, within `window` of the
/// request; the connection stays open for the next request.
fn gateway_case(
    primary: Player,
    options: &'static str,
    status: u16,
    text: &str,
    window: (Duration, Duration),
) {
    let mut s = scene(primary, options);
    for target in ["/bad", "/bad-again"] {
        let started = Instant::now();
        let resp = s.client.exchange(&get(target));
        let elapsed = started.elapsed();
        assert_eq!(resp.status, status, "{target}: {}", resp.body_text());
        assert_eq!(resp.body_text(), format!("trident: primary {text}\n"));
        assert!(
            elapsed >= window.0 && elapsed <= window.1,
            "{target}: {status} after {elapsed:?}, expected within {window:?}"
        );
        s.assert_primary_error(target, text);
    }
    s.finish();
}

fn prompt_502(behaviour: Behaviour, text: &str) {
    gateway_case(hostile(behaviour), "", 502, text, (Duration::ZERO, PROMPT));
}

/// A 504 at the leg's 600 ms deadline (the command line says 4000).
fn deadline_504(behaviour: Behaviour) {
    let deadline = Duration::from_millis(600);
    gateway_case(
        hostile(behaviour),
        "timeout=600",
        504,
        "timeout after 600ms",
        (deadline, deadline + LATE),
    );
}

/// What a cut-short body must be a prefix of.
enum Expected {
    Prefix(Vec<u8>),
    /// The endless body: one pattern chunk repeated.
    Repeating(Vec<u8>),
}

impl Expected {
    fn check(&self, got: &[u8]) {
        match self {
            Expected::Prefix(whole) => {
                assert!(
                    got.len() < whole.len() || whole.is_empty(),
                    "a whole body passed"
                );
                assert_same_bytes("the truncated body", &whole[..got.len()], got);
            }
            Expected::Repeating(unit) => {
                let bad = got
                    .iter()
                    .enumerate()
                    .position(|(i, &b)| b != unit[i % unit.len()]);
                assert_eq!(bad, None, "the endless body was altered");
            }
        }
    }
}

/// Part of the response went out: the client gets the head, part of the body, then the
/// connection closes (after `at_least`), and the message is visibly incomplete.
fn truncated_case(
    behaviour: Behaviour,
    options: &'static str,
    text: &str,
    expected: Expected,
    at_least: Duration,
) -> Vec<u8> {
    let mut s = scene(hostile(behaviour), options);
    let started = Instant::now();
    s.client.send(&get("/bad"));
    let (status, headers) = s.client.head().expect("the primary's head is relayed");
    assert_eq!(status, 200);
    let (rest, _end) = s.client.rest_until_closed();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= at_least && elapsed <= at_least + LATE,
        "closed after {elapsed:?}, expected from {at_least:?} to {:?}",
        at_least + LATE
    );
    let body = if wire::is_chunked(&headers) {
        let (data, complete) = decode_partial_chunked(&rest);
        assert!(!complete, "a cut-short body was closed with a last chunk");
        data
    } else {
        let declared: usize = wire::field(&headers, "content-length")
            .expect("a length or chunked")
            .parse()
            .expect("a number");
        assert!(
            rest.len() < declared,
            "{} of {declared} bytes: not truncated",
            rest.len()
        );
        rest
    };
    expected.check(&body);
    s.assert_primary_error("/bad", text);
    // The proxy keeps serving, on a new connection.
    let mut next = s.stage.client();
    let again = next.exchange(&get("/healthy-again"));
    assert_same_bytes("the next answer", &s.reference.raw, &again.raw);
    drop(next);
    s.finish();
    body
}

// --- before HTTP starts ---

#[test]
fn primary_refusing_connections_gives_502_at_once() {
    gateway_case(
        Player::Refusing(Refusing::new()),
        "",
        502,
        "connection refused",
        (Duration::ZERO, PROMPT),
    );
}

#[test]
fn primary_whose_connect_never_completes_gives_504_at_its_connect_deadline() {
    let deadline = Duration::from_millis(300);
    gateway_case(
        Player::Blackhole(Blackhole::new()),
        "connect_timeout=300",
        504,
        "connect timeout after 300ms",
        (deadline, deadline + LATE),
    );
}

#[test]
fn primary_accepting_and_never_reading_gives_504_at_its_deadline() {
    deadline_504(Behaviour::AcceptNoRead);
}

#[test]
fn primary_reading_and_never_answering_gives_504_at_its_deadline() {
    deadline_504(Behaviour::ReadNoAnswer);
}

// --- closes and resets ---

#[test]
fn primary_closing_before_the_status_line_gives_502() {
    prompt_502(
        Behaviour::CloseBeforeStatus,
        "closed before response complete",
    );
}

/// trident's own answer to a HEAD request is a head alone, as every HEAD response is (RFC
/// 9110 §9.3.2): a body after it would be read as the start of the next response on the
/// connection, which stays open.
#[test]
fn a_gateway_error_answering_head_has_no_body() {
    let mut s = scene(hostile(Behaviour::CloseBeforeStatus), "");
    let mut pipelined = request("HEAD", "/bad-head", &[("Host", "test.local")], b"");
    pipelined.extend_from_slice(&get("/bad-after"));
    s.client.send(&pipelined);
    let (status, headers) = s.client.head().expect("the HEAD's answer");
    assert_eq!(status, 502);
    assert!(wire::field(&headers, "content-length").is_some());
    assert!(wire::field(&headers, "connection").is_none());
    // The next bytes are the next response's.
    let resp = s.client.response();
    assert_eq!(resp.status, 502);
    assert_eq!(
        resp.body_text(),
        "trident: primary closed before response complete\n"
    );
    s.finish();
}

/// An upstream that answers HEAD like GET, the body in a second write, has its connection
/// closed after the head rather than pooled: the late body would otherwise be read as the
/// answer to the next request sent on it (another client's).
#[test]
fn a_head_answer_announcing_a_body_is_not_followed_by_another_request() {
    let mut s = scene(hostile(Behaviour::LateHeadBody), "");
    s.client
        .send(&request("HEAD", "/late", &[("Host", "test.local")], b""));
    let (status, headers) = s.client.head().expect("the HEAD's answer");
    assert_eq!(status, 200);
    assert_eq!(
        wire::field(&headers, "content-length"),
        Some(HEALTHY_BODY.len().to_string().as_str())
    );
    // At once, before the late body is written.
    let mut other = s.stage.client();
    let resp = other.exchange(&get("/next"));
    assert_eq!((resp.status, resp.body.as_slice()), (200, HEALTHY_BODY));
    let block = s.block("/next");
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    drop(other);
    s.finish();
}

/// trident closes such a connection first, so it resets it: a TIME_WAIT on trident's side
/// for every HEAD would use up its local ports at a few hundred HEADs a second.
#[test]
fn a_connection_not_reused_after_a_head_answer_ends_in_a_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let primary = thread::spawn(move || -> io::Result<usize> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(WAIT))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")?;
        // How the connection ends: Ok(0) for a close, an error for a reset.
        conn.read(&mut buf)
    });
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_addrs(addr, s.addr(), c.addr(), &[]);
    let mut client = trident.client();
    client.send(&request("HEAD", "/h", &[("Host", "test.local")], b""));
    let resp = client.read_response(true);
    assert_eq!(
        (resp.status, resp.header("content-length")),
        (200, Some("5"))
    );
    let end = primary.join().expect("the primary's thread");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset)
    );
}

/// To an HTTP/1.0 client a chunked body goes out delimited by the close, which cannot show
/// that it was cut short: the connection is reset instead, so the client sees an error, not a
/// complete body.
#[test]
fn a_body_cut_short_to_an_http_1_0_client_ends_in_a_reset() {
    let mut s = scene(hostile(Behaviour::CloseMidBodyChunked), "");
    s.client
        .send(b"GET /cut HTTP/1.0\r\nHost: test.local\r\n\r\n");
    let (status, headers) = s.client.head().expect("the head is relayed");
    assert_eq!(status, 200);
    assert!(!wire::is_chunked(&headers));
    assert!(wire::field(&headers, "content-length").is_none());
    let (_, end) = s.client.rest_until_closed();
    assert_eq!(end, End::Reset);
    s.assert_primary_error("/cut", "closed before response complete");
    s.finish();
}

#[test]
fn primary_closing_mid_headers_gives_502() {
    prompt_502(
        Behaviour::CloseMidHeaders,
        "closed before response complete",
    );
}

#[test]
fn primary_closing_mid_body_truncates_the_client_message() {
    let body = truncated_case(
        Behaviour::CloseMidBodyLength,
        "",
        "closed before response complete",
        Expected::Prefix(big_body()),
        Duration::ZERO,
    );
    assert_eq!(body.len(), CUT_AT, "every byte the primary sent is relayed");
}

#[test]
fn primary_closing_mid_chunked_body_truncates_the_client_message() {
    let body = truncated_case(
        Behaviour::CloseMidBodyChunked,
        "",
        "closed before response complete",
        Expected::Prefix(big_body()),
        Duration::ZERO,
    );
    assert!(body.len() >= CUT_AT, "only {} bytes relayed", body.len());
}

#[test]
fn primary_resetting_mid_response_truncates_the_client_message() {
    truncated_case(
        Behaviour::ResetMidResponse,
        "",
        "connection reset",
        Expected::Prefix(big_body()),
        Duration::ZERO,
    );
}

// --- malformed responses ---

#[test]
fn primary_answering_garbage_gives_502() {
    prompt_502(
        Behaviour::Garbage,
        "malformed response: invalid HTTP version",
    );
}

#[test]
fn primary_sending_an_invalid_chunk_size_truncates_the_client_message() {
    let body = truncated_case(
        Behaviour::BadChunkSize,
        "",
        "malformed response: invalid chunk: chunk size is not hex",
        Expected::Prefix(b"hello and more".to_vec()),
        Duration::ZERO,
    );
    assert!(
        body.is_empty() || body == b"hello",
        "{:?}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn primary_overstating_its_content_length_truncates_the_client_message() {
    let mut whole = UNDERSENT_BODY.to_vec();
    whole.resize(OVERSTATED_LENGTH, b'?');
    let body = truncated_case(
        Behaviour::LengthOverstated,
        "",
        "closed before response complete",
        Expected::Prefix(whole),
        Duration::ZERO,
    );
    assert_eq!(body, UNDERSENT_BODY);
}

#[test]
fn primary_sending_a_1_mib_header_block_gives_502() {
    prompt_502(Behaviour::HugeHead, "malformed response: head too large");
}

#[test]
fn primary_sending_two_different_content_lengths_gives_502() {
    prompt_502(
        Behaviour::ConflictingLengths,
        "malformed response: invalid Content-Length",
    );
}

// --- slow ---

#[test]
fn primary_trickling_a_byte_every_100ms_gives_504_at_its_deadline() {
    deadline_504(Behaviour::Trickle);
}

#[test]
fn primary_stalling_after_its_headers_closes_the_client_at_its_deadline() {
    let body = truncated_case(
        Behaviour::HeadersThenStall,
        "timeout=600",
        "timeout after 600ms",
        Expected::Prefix(vec![0; 100]),
        Duration::from_millis(600),
    );
    assert!(body.is_empty());
}

/// The client gets the endless body until the deadline, then a close without a last chunk;
/// trident's memory stays flat meanwhile.
#[test]
fn primary_streaming_an_endless_body_closes_the_client_at_its_deadline() {
    let pid = Arc::new(std::sync::Mutex::new(None::<u32>));
    let stop = Arc::new(AtomicBool::new(false));
    // The scene is built inside truncated_case; sample trident's memory from the side.
    let sampler = {
        let (pid, stop) = (Arc::clone(&pid), Arc::clone(&stop));
        thread::spawn(move || {
            let (mut low, mut high) = (u64::MAX, 0);
            while !stop.load(Ordering::SeqCst) {
                if let Some(pid) = *pid.lock().unwrap() {
                    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                        if text.contains("VmRSS") {
                            let rss = rss_kib(pid);
                            low = low.min(rss);
                            high = high.max(rss);
                        }
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
            (low, high)
        })
    };
    let unit = pattern(16 * 1024, 0xE4D1E55);
    let mut s = scene(hostile(Behaviour::EndlessChunked), "timeout=600");
    *pid.lock().unwrap() = Some(s.stage.pid());
    let started = Instant::now();
    s.client.send(&get("/endless"));
    let (status, headers) = s.client.head().expect("the head is relayed");
    assert_eq!(status, 200);
    assert!(wire::is_chunked(&headers));
    let (rest, _) = s.client.rest_until_closed();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (low, high) = sampler.join().expect("sampler");
    let (data, complete) = decode_partial_chunked(&rest);
    assert!(!complete, "an endless body ended with a last chunk");
    Expected::Repeating(unit).check(&data);
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed <= Duration::from_millis(600) + LATE,
        "closed after {elapsed:?}"
    );
    assert!(
        data.len() >= 1024 * 1024,
        "only {} bytes relayed: the test measured nothing",
        data.len()
    );
    assert!(
        high <= low + 4 * 1024,
        "trident grew from {low} KiB to {high} KiB while relaying {} bytes",
        data.len()
    );
    s.assert_primary_error("/endless", "timeout after 600ms");
    s.finish();
}

/// An endless run of `103 Early Hints` reaches the client only as fast as the client takes
/// it, so trident's memory stays flat; the deadline then ends it with a 504.
#[test]
fn primary_sending_endless_interim_responses_is_held_to_the_clients_pace() {
    let mut s = scene(hostile(Behaviour::EndlessInterim), "timeout=600");
    let pid = s.stage.pid();
    let before = rss_kib(pid);
    let ended = s.stage.hostile(0).ended_connections();
    s.client.send(&get("/hints"));
    // The client reads nothing until the primary's deadline has ended the exchange (trident
    // closed the primary's connection; the block waits for the client to take its answer),
    // while trident's memory is sampled.
    let mut high = before;
    let until = Instant::now() + WAIT;
    while s.stage.hostile(0).ended_connections() == ended {
        assert!(
            Instant::now() < until,
            "the primary's connection for /hints never ended"
        );
        high = high.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(10));
    }
    let mut hints = 0;
    let status = loop {
        let (status, _) = s.client.head().expect("a head");
        if status != 103 {
            break status;
        }
        hints += 1;
    };
    assert_eq!(status, 504, "after {hints} interim responses");
    assert!(hints > 0, "no interim response was relayed");
    assert!(
        high <= before + 4 * 1024,
        "trident grew from {before} KiB to {high} KiB while the client did not read"
    );
    s.assert_primary_error("/hints", "timeout after 600ms");
    s.finish();
}

/// A burst of interim responses with the final one right behind, read by a client as fast
/// as it comes, reaches it at once: relayed and written out within one round, the interim
/// heads left the client's output as it was, the round looked idle, and the rest waited for
/// the deadline (504) or an unrelated wake-up a second later.
#[test]
fn a_burst_of_interim_responses_then_the_answer_reaches_a_reading_client_at_once() {
    let mut burst = Vec::new();
    for _ in 0..5000 {
        burst.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
    }
    burst.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let primary = Upstream::start(move |_| Reply::garbage(burst.clone()));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &["--timeout", "3000"]);
    // The stall came in about one run of three: several runs make a pass mean something.
    for run in 0..6 {
        let mut client = trident.client();
        let started = Instant::now();
        let response = client.exchange(&get(&format!("/burst/{run}")));
        assert_eq!(
            (response.status, response.interim.len()),
            (200, 5000),
            "run {run}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "run {run} took {:?}",
            started.elapsed()
        );
    }
}

// --- odd but legal ---

/// An answer that comes before the upload is read reaches the client at once, and the
/// connection goes on once the upload is done.
#[test]
fn primary_answering_before_reading_the_body_is_relayed() {
    let mut s = scene(hostile(Behaviour::AnswerBeforeBody), "");
    let body = pattern(1024 * 1024, 5);
    for target in ["/upload", "/upload-again"] {
        let got = s
            .client
            .exchange(&request("POST", target, &[("Host", "t")], &body));
        assert_same_bytes("the early answer", &s.reference.raw, &got.raw);
        let block = s.block(target);
        assert_eq!(
            block.primary().response(),
            (200, HEALTHY_BODY.len() as u64),
            "{}",
            block.text
        );
    }
    s.finish();
}

/// The upstream's own `100 Continue` is not forwarded: the client gets the final answer.
#[test]
fn primary_sending_100_continue_first_is_relayed_without_it() {
    let mut s = scene(hostile(Behaviour::ContinueThenFinal), "");
    let body = pattern(1000, 6);
    let got = s
        .client
        .exchange(&request("POST", "/continue", &[("Host", "t")], &body));
    assert_same_bytes("the final answer", &s.reference.raw, &got.raw);
    s.finish();
}

/// A client whose answer came before the rest of its upload, and that then sends nothing,
/// is closed after `--send-timeout`: no leg is left whose deadline bounds it, and held, it
/// would keep its `--max-clients` slot for good (an HTTP/1.0 client would never see its
/// close-delimited answer end).
#[test]
fn a_client_that_stops_uploading_after_its_early_answer_is_closed() {
    let stage = Stage::start(
        [
            hostile(Behaviour::AnswerBeforeBody),
            Player::Healthy(Upstream::named("secondary")),
            Player::Healthy(Upstream::named("candidate")),
        ],
        ["", "", ""],
        &["--send-timeout", "500", "--shadow-methods", "all"],
    );
    let mut client = stage.client();
    client.send(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789");
    let (status, _) = client.head().expect("the early answer");
    assert_eq!(status, 200);
    let started = Instant::now();
    let (_, end) = client.rest_until_closed();
    assert_eq!(end, End::Eof);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
    let block = stage.trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    // The shadows, still waiting on the upload, read that the client stalled.
    for shadow in [block.secondary(), block.candidate()] {
        assert_eq!(
            shadow.error(),
            "client sent none of its upload for 500ms",
            "{}",
            block.text
        );
    }
}

/// Bytes after the end of a response never become the next request's answer.
#[test]
fn primary_sending_bytes_after_its_response_never_answers_the_next_request() {
    let mut s = scene(hostile(Behaviour::TrailingBytes), "");
    for i in 0..4 {
        let target = format!("/trailing/{i}");
        let got = s.client.exchange(&get(&target));
        assert_same_bytes(
            &format!("the answer to {target}"),
            &s.reference.raw,
            &got.raw,
        );
    }
    let connections: Vec<usize> = s
        .stage
        .hostile(0)
        .arrivals()
        .iter()
        .skip(1)
        .map(|(a, _)| a.connection)
        .collect();
    assert_eq!(
        connections,
        [1, 2, 3, 4],
        "a connection with stray bytes was reused"
    );
    s.finish();
}

// --- stale pooled connections ---

/// The primary's pooled connection is closed as the next GET arrives: the GET goes out
/// again on a new connection and the client never knows.
#[test]
fn primary_stale_pooled_connection_is_retried_for_a_get() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::StaleKeepAlive)),
        "",
    );
    // /healthy was answered keep-alive (first request on its connection) and pooled.
    let started = Instant::now();
    let got = s.client.exchange(&get("/second"));
    assert!(started.elapsed() < PROMPT);
    assert_same_bytes("the retried answer", &s.reference.raw, &got.raw);
    let block = s.block("/second");
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    let seen: Vec<(String, usize)> = s
        .stage
        .hostile(0)
        .arrivals()
        .into_iter()
        .map(|(a, _)| (a.target, a.connection))
        .collect();
    assert_eq!(
        seen,
        [
            ("/healthy".to_string(), 0),
            ("/second".to_string(), 0),
            ("/second".to_string(), 1)
        ]
    );
    s.finish();
}

/// A PUT may be repeated (RFC 9110 §9.2.2): with its small body kept whole, it goes out again
/// on a new connection, body and all.
#[test]
fn primary_stale_pooled_connection_is_retried_for_a_put_with_a_body() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::StaleKeepAlive)),
        "",
    );
    let put = request("PUT", "/second", &[("Host", "t")], &pattern(3000, 7));
    let started = Instant::now();
    let got = s.client.exchange(&put);
    assert!(started.elapsed() < PROMPT);
    assert_eq!(got.status, 200, "{}", got.body_text());
    let arrivals = s.stage.hostile(0).arrivals();
    let retried: Vec<_> = arrivals
        .iter()
        .filter(|(a, _)| a.target == "/second")
        .collect();
    assert_eq!(retried.len(), 2, "{arrivals:?}");
    let (again, _) = retried[1];
    assert_eq!((again.method.as_str(), again.connection), ("PUT", 1));
    // The upstream reads the whole announced body before it answers: the 200 (in time) is
    // the body sent again in full.

    // A chunked body in 1-byte chunks: 12 000 bytes of payload, several times that framed.
    let chunked = chunked_request(
        "PUT",
        "/chunked",
        &[("Host", "t")],
        &pattern(12_000, 9),
        &[1],
    );
    let got = s.client.exchange(&chunked);
    assert_eq!(got.status, 200, "{}", got.body_text());
    let sent = s.stage.hostile(0).connections_of("/chunked");
    assert_eq!(sent, [1, 2], "{:?}", s.stage.hostile(0).arrivals());

    // The body in two parts 50 ms apart, as a network delivers a larger one: the first part
    // is kept for the retry while the rest is on its way (it was dropped once written, and
    // the client got a 502).
    let split = request("PUT", "/split", &[("Host", "t")], &pattern(10_000, 5));
    let (first, rest) = split.split_at(split.len() - 5000);
    s.client.send(first);
    thread::sleep(Duration::from_millis(50));
    s.client.send(rest);
    let got = s.client.response();
    assert_eq!(got.status, 200, "{}", got.body_text());
    let sent = s.stage.hostile(0).connections_of("/split");
    assert_eq!(sent, [2, 3], "{:?}", s.stage.hostile(0).arrivals());
    s.finish();
}

/// A POST is not repeated: the stale connection's reset is the client's 502.
#[test]
fn primary_stale_pooled_connection_gives_502_for_a_post() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::StaleKeepAlive)),
        "",
    );
    let post = request("POST", "/second", &[("Host", "t")], &pattern(3000, 7));
    let started = Instant::now();
    let got = s.client.exchange(&post);
    assert!(started.elapsed() < PROMPT);
    assert_eq!(got.status, 502, "{}", got.body_text());
    assert_eq!(got.body_text(), "trident: primary connection reset\n");
    s.assert_primary_error("/second", "connection reset");
    assert_eq!(s.stage.hostile(0).targets(), ["/healthy", "/second"]);
    s.finish();
}

/// An upstream that times idle connections out with a 408 (and a close) may send it just as
/// a request goes out on the connection: for a GET that is a stale connection, not the
/// answer, and the GET goes out again on a new one. A POST, which is not sent twice, gets
/// the 408 as it came (RFC 9110 §15.5.9: the client may repeat it).
#[test]
fn primary_idle_timeout_408_on_a_reused_connection_is_a_stale_connection() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::IdleTimeout408)),
        "",
    );
    let got = s.client.exchange(&get("/second"));
    assert_same_bytes("the retried answer", &s.reference.raw, &got.raw);
    let block = s.block("/second");
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    assert_eq!(s.stage.hostile(0).connections_of("/second"), [0, 1]);

    let post = request("POST", "/post", &[("Host", "t")], &pattern(300, 7));
    let got = s.client.exchange(&post);
    assert_eq!((got.status, got.body_text().as_str()), (408, "too late"));
    assert_eq!(s.stage.hostile(0).connections_of("/post"), [1]);
    s.finish();
}

/// An upstream that rejects an upload as soon as it sees the head (a size limit: `413` with
/// `Connection: close`, then a close without reading the body, which is a reset) has
/// answered: the client gets that answer, not a 502 for the write that failed after it.
/// trident is stopped while the answer and the reset arrive, so that it meets both in one
/// batch of events with request bytes still to write (the order that lost the answer).
#[test]
fn primary_rejecting_an_upload_before_reading_it_is_relayed() {
    let mut s = scene(hostile(Behaviour::RejectBeforeBody), "");
    let primary = s.stage.hostile(0);
    primary.hold();
    let mut client = std::mem::replace(&mut s.client, s.stage.client());
    // More than the kernel buffers hold, so that request bytes wait in trident.
    let upload = request("POST", "/upload", &[("Host", "t")], &pattern(16 << 20, 8));
    let sender = thread::spawn(move || {
        let sent = client.try_send(&upload);
        (client, sent)
    });
    primary.wait_arrivals(2, WAIT);
    s.stage.trident.signal("STOP");
    primary.release();
    primary.wait_ended(2, WAIT);
    s.stage.trident.signal("CONT");
    let (mut client, sent) = sender.join().expect("the sender");
    let got = client.response();
    assert_eq!(got.status, 413, "{}", got.body_text());
    sent.expect("the rest of the upload is read (and dropped) after the answer");
    assert_eq!(got.body_text(), "too big\n");
    let block = s.block("/upload");
    assert_eq!(block.primary().response(), (413, 8), "{}", block.text);
    drop(client);
    s.finish();
}

/// Stray bytes on an idle pooled connection (a whole response nobody asked for) never
/// become the next request's answer, even when they reach trident in the same batch of
/// events as that request (trident is stopped while both arrive, the request first).
#[test]
fn stray_bytes_on_an_idle_pooled_primary_connection_never_answer_the_next_request() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::StrayWhileIdle)),
        "",
    );
    // /healthy was answered keep-alive; its connection is in the pool (its block is out).
    s.stage.trident.signal("STOP");
    s.client.send(&get("/next"));
    s.stage.hostile(0).send_stray(WAIT);
    s.stage.trident.signal("CONT");
    let got = s.client.response();
    assert_ne!(
        got.body_text(),
        "wrong",
        "the stray bytes answered the next request"
    );
    assert_same_bytes("the answer to /next", &s.reference.raw, &got.raw);
    s.finish();
}

/// The same stray bytes arriving before the next request: the idle connection is dropped
/// on their readiness event and the request goes out on a new one.
#[test]
fn stray_bytes_on_an_idle_pooled_primary_connection_get_it_dropped() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::StrayWhileIdle)),
        "",
    );
    s.stage.trident.signal("STOP");
    s.stage.hostile(0).send_stray(WAIT);
    s.client.send(&get("/next"));
    s.stage.trident.signal("CONT");
    let got = s.client.response();
    assert_same_bytes("the answer to /next", &s.reference.raw, &got.raw);
    let connections: Vec<usize> = s
        .stage
        .hostile(0)
        .arrivals()
        .iter()
        .map(|(a, _)| a.connection)
        .collect();
    assert_eq!(connections, [0, 1]);
    s.finish();
}

/// An idle pooled connection the upstream closed is not used for the next request, even a
/// POST (which could not be sent again), when the close reaches trident in the same batch
/// of events as that request: the kernel already knows, so trident can.
#[test]
fn an_idle_pooled_primary_connection_closed_by_the_upstream_is_not_used_for_a_post() {
    let mut s = scene(
        Player::Hostile(Hostile::always(Behaviour::CloseWhileIdle)),
        "",
    );
    s.stage.trident.signal("STOP");
    s.client.send(&request(
        "POST",
        "/next",
        &[("Host", "t")],
        &pattern(100, 3),
    ));
    s.stage.hostile(0).send_stray(WAIT);
    s.stage.trident.signal("CONT");
    let got = s.client.response();
    assert_same_bytes("the answer to the POST", &s.reference.raw, &got.raw);
    let connections: Vec<usize> = s
        .stage
        .hostile(0)
        .arrivals()
        .iter()
        .map(|(a, _)| a.connection)
        .collect();
    assert_eq!(connections, [0, 1]);
    s.finish();
}

/// trident at `--max-clients N` in front of a primary whose `/slow` answer never ends (its
/// line's options `primary`, a deadline), for the tests of clients that leave mid-answer.
fn endless_at_max_clients(primary: &str, max_clients: &str) -> Stage {
    Stage::start(
        [
            Player::Hostile(Hostile::for_target("/slow", Behaviour::EndlessChunked)),
            Player::Healthy(Upstream::named("secondary")),
            Player::Healthy(Upstream::named("candidate")),
        ],
        [primary, "", ""],
        &["--max-clients", max_clients],
    )
}

/// A client that asked for `/slow` and has its head: the body goes on until the deadline.
fn taking_endless(stage: &Stage) -> RawClient {
    let mut client = stage.client();
    client.send(&get("/slow"));
    client.head().expect("the endless answer's head");
    client
}

/// A client that leaves while its primary still answers leaves that leg running (read to
/// its end for the comparison), and the leg holds the descriptor the client's budget had for
/// it: the client counts against `--max-clients` until the leg ends, or until a new client
/// needs its place. Counted out at once, a client that left mid-answer made room for new
/// clients whose legs found no descriptor under a tight open-file limit (502s: hunt 49);
/// counted until the leg's deadline, it kept a new client waiting that long. Its block says
/// it left (`client left`): the primary's line says what the primary sent, not what the
/// client got (hunts 43, 48), and here why it was cut.
#[test]
fn a_client_gone_mid_answer_gives_its_place_to_a_new_client_at_max_clients() {
    let stage = endless_at_max_clients("timeout=3000", "1");
    // It reads the head and leaves: the next body bytes find it gone.
    let gone = taking_endless(&stage);
    drop(gone);
    // Connected before or after trident finds the first one gone, it waits for nothing.
    let started = Instant::now();
    let mut next = stage.client();
    next.set_read_timeout(Duration::from_secs(5));
    let got = next.exchange(&get("/next"));
    assert_eq!(got.status, 200);
    // The slow leg's deadline is 3 s from its start.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered after {:?}: the new client waited for the gone client's primary",
        started.elapsed()
    );
    let blocks = stage.trident.wait_blocks(2, WAIT);
    let block = |target: &str| blocks.iter().find(|b| b.target == target).expect(target);
    let slow = block("/slow");
    assert_eq!(
        slow.primary().error(),
        "cut to serve a new client (this one had left)",
        "{}",
        slow.text
    );
    assert!(slow.client_left, "{}", slow.text);
    assert!(!block("/next").client_left, "{}", block("/next").text);
    stage
        .trident
        .wait_stderr("was cut to serve a new one", WAIT);
}

/// With room for both, a client that leaves and a new one arriving in the same turn cut
/// nothing: the one that left was counted twice (as a client not yet reaped and as a gone
/// client's answer), and its comparison was cut (hunt 58). A connection that gave up while
/// waiting in the backlog takes no place either, even with its request sent (hunt 60).
#[test]
fn a_gone_clients_answer_is_cut_only_for_a_client_that_waits() {
    let stage = endless_at_max_clients("timeout=200", "2");
    for round in 0..8 {
        let gone = taking_endless(&stage);
        gone.reset();
        let mut next = stage.client();
        assert_eq!(next.exchange(&get("/next")).status, 200, "round {round}");
        drop(next);
        // The gone client's primary reaches its deadline: its block is the round's second.
        stage.trident.wait_blocks(2 * (round + 1), WAIT);
    }
    // At the limit (two busy), a connection that closes in the backlog, and one that sends
    // its request, then resets (the request stays there to peek); then one busy client leaves.
    let busy = taking_endless(&stage);
    let gone = taking_endless(&stage);
    let quitter = std::net::TcpStream::connect(stage.trident.addr()).expect("connect");
    drop(quitter);
    let mut resetter = stage.client();
    resetter.send(&get("/never"));
    resetter.reset();
    gone.reset();
    drop(busy);
    // Eight rounds of two, and the two at the limit.
    stage.trident.wait_blocks(18, WAIT);
    let out = stage.trident.stdout();
    assert!(
        !out.contains("cut to serve a new client"),
        "{}",
        stage.trident.output()
    );
}

/// A client that resets while its answer is still awaited is found gone at once, from the
/// reset's event, not when trident next writes to it: its block says it left. Found at the
/// write, its answer was already queued and its record already gone out (hunt 51).
#[test]
fn a_client_reset_while_awaiting_its_answer_is_marked_as_left() {
    let primary = Upstream::start(|_| Reply::ok("slowly").delay(Duration::from_millis(600)));
    let mut s = scene(Player::Healthy(primary), "");
    let mut gone = s.stage.client();
    gone.send(&get("/awaited"));
    // The primary has the request (after the scene's first), and answers in 600 ms.
    s.stage.players[0].healthy().wait_requests(2, WAIT);
    gone.reset();
    let got = s.client.exchange(&get("/next"));
    assert_eq!(got.status, 200);
    let blocks = s.stage.trident.wait_blocks(3, WAIT);
    let block = |target: &str| blocks.iter().find(|b| b.target == target).expect(target);
    let awaited = block("/awaited");
    assert!(awaited.client_left, "{}", awaited.text);
    // The primary's leg was read to its end for the comparison.
    assert_eq!(awaited.primary().response(), (200, 6), "{}", awaited.text);
    assert!(!block("/next").client_left, "{}", block("/next").text);
    s.finish();
}

/// A primary streaming an endless body as fast as it can, to a client that reads as fast as
/// it can, does not hold up other clients, and its deadline still ends it.
#[test]
fn a_flooding_primary_does_not_stall_other_clients() {
    let primary = Hostile::for_target("/flood", Behaviour::EndlessFlood);
    let mut s = scene(Player::Hostile(primary), "timeout=1000");
    let mut flooded = s.stage.client();
    flooded.set_read_timeout(Duration::from_secs(3));
    let started = Instant::now();
    flooded.send(&get("/flood"));
    let reader = thread::spawn(move || {
        let head = flooded.head().map(|(status, _)| status);
        let (rest, _) = flooded.count_until_closed();
        (head, rest, started.elapsed())
    });
    s.client.set_read_timeout(Duration::from_secs(1));
    let mut slowest = Duration::ZERO;
    let mut count = 0;
    while started.elapsed() < Duration::from_millis(800) {
        let asked = Instant::now();
        s.client.send(&get(&format!("/other/{count}")));
        let got = s.client.try_response().unwrap_or_else(|e| {
            panic!("another client got no answer within 1 s while a primary floods: {e}")
        });
        assert_eq!(got.status, 200);
        slowest = slowest.max(asked.elapsed());
        count += 1;
    }
    assert!(
        slowest < Duration::from_millis(700),
        "with a primary flooding, another client's request took up to {slowest:?}"
    );
    let (head, relayed, ended) = reader.join().expect("the flood reader");
    assert_eq!(head.ok(), Some(200));
    assert!(
        ended >= Duration::from_millis(1000) && ended <= Duration::from_millis(1000) + LATE,
        "the flood to the client ended after {ended:?} ({relayed} bytes), not at its deadline"
    );
    s.assert_primary_error("/flood", "timeout after 1000ms");
    s.finish();
}
