//! A misbehaving secondary or candidate costs the client nothing: for every behaviour of the
//! hostile upstream, the client's response is byte-identical to the one it got a moment
//! before with the same leg healthy, it arrives long before the bad leg's deadline, the
//! block names the failure with its stable text, the proxy keeps serving, and once everyone
//! is gone trident holds exactly the descriptors it started with.

mod support;

use std::time::{Duration, Instant};

use support::hostile::*;
use support::*;

/// The bad leg's options: its deadline is what the client must not wait for.
const BAD_LEG: &str = "timeout=1500";
/// "Well before the bad leg's deadline".
const WELL_BEFORE: Duration = Duration::from_millis(700);
const WAIT: Duration = Duration::from_secs(5);
const SECONDARY: usize = 1;
const CANDIDATE: usize = 2;

/// What the bad leg's line in the block must say.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Error(&'static str),
    Response(u16),
    /// A `200` whose body was cut short once past the primary's (`body=NB cut`).
    Cut,
}

/// The request each case sends (to `/healthy`, `/bad` and `/bad-again`).
#[derive(Debug, Clone, Copy)]
enum Send {
    Get,
    /// A POST with this many body bytes.
    Post(usize),
}

impl Send {
    fn bytes(self, target: &str) -> Vec<u8> {
        match self {
            Send::Get => get(target),
            Send::Post(n) => request(
                "POST",
                target,
                &[("Host", "test.local")],
                &pattern(n, n as u64),
            ),
        }
    }
}

/// A primary whose answer does not depend on the request, so that every answer of a case
/// can be compared byte for byte with the reference one.
fn primary() -> Player {
    Player::Healthy(Upstream::start(|_| {
        Reply::ok("the primary's answer").header("X-Upstream", "primary")
    }))
}

fn healthy(name: &str) -> Player {
    Player::Healthy(Upstream::named(name))
}

/// Three healthy players, but `bad` in role `role`.
fn players_with(role: usize, bad: Player) -> [Player; 3] {
    let mut players = [primary(), healthy("secondary"), healthy("candidate")];
    players[role] = bad;
    players
}

fn options_for(role: usize, options: &'static str) -> [&'static str; 3] {
    let mut all = ["", "", ""];
    all[role] = options;
    all
}

/// The whole check for one behaviour in one shadow role.
fn shadow_case(role: usize, bad: Player, options: &'static str, send: Send, expect: Expect) {
    let stage = Stage::start(
        players_with(role, bad),
        options_for(role, options),
        &["--timeout", "4000"],
    );
    let mut client = stage.client();
    let reference = client.exchange(&send.bytes("/healthy"));
    assert_eq!(reference.status, 200, "{}", reference.body_text());
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());

    for target in ["/bad", "/bad-again"] {
        let started = Instant::now();
        let got = client.exchange(&send.bytes(target));
        let elapsed = started.elapsed();
        assert_same_bytes(
            &format!("the client's response to {target}"),
            &reference.raw,
            &got.raw,
        );
        assert!(
            elapsed < WELL_BEFORE,
            "{target} answered after {elapsed:?}, not well before the bad leg's 1500ms"
        );
    }

    let mut blocks = stage.trident.wait_blocks(3, WAIT);
    blocks.sort_by_key(|b| b.id);
    for block in &blocks[1..3] {
        assert_eq!(block.primary().response().0, 200, "{}", block.text);
        let other = if role == SECONDARY {
            CANDIDATE
        } else {
            SECONDARY
        };
        assert_eq!(block.legs[other].response().0, 200, "{}", block.text);
        let leg = &block.legs[role];
        match expect {
            Expect::Error(text) => assert_eq!(leg.error(), text, "{}", block.text),
            Expect::Response(status) => assert_eq!(leg.response().0, status, "{}", block.text),
            Expect::Cut => {
                assert_eq!(leg.response().0, 200, "{}", block.text);
                assert!(leg.cut(), "{}", block.text);
            }
        }
    }
    drop(client);
    stage.finish(resident);
}

fn candidate(behaviour: Behaviour, send: Send, expect: Expect) {
    let bad = Player::Hostile(Hostile::start(behaviour));
    shadow_case(CANDIDATE, bad, BAD_LEG, send, expect);
}

fn secondary(behaviour: Behaviour, send: Send, expect: Expect) {
    let bad = Player::Hostile(Hostile::start(behaviour));
    shadow_case(SECONDARY, bad, BAD_LEG, send, expect);
}

// --- before HTTP starts ---

#[test]
fn candidate_refusing_connections_does_not_touch_the_client() {
    let bad = Player::Refusing(Refusing::new());
    shadow_case(
        CANDIDATE,
        bad,
        BAD_LEG,
        Send::Get,
        Expect::Error("connection refused"),
    );
}

#[test]
fn secondary_refusing_connections_does_not_touch_the_client() {
    let bad = Player::Refusing(Refusing::new());
    shadow_case(
        SECONDARY,
        bad,
        BAD_LEG,
        Send::Get,
        Expect::Error("connection refused"),
    );
}

#[test]
fn candidate_whose_connect_never_completes_does_not_touch_the_client() {
    let bad = Player::Blackhole(Blackhole::new());
    shadow_case(
        CANDIDATE,
        bad,
        "timeout=1500 connect_timeout=1200",
        Send::Get,
        Expect::Error("connect timeout after 1200ms"),
    );
}

#[test]
fn candidate_accepting_and_never_reading_does_not_touch_the_client() {
    candidate(
        Behaviour::AcceptNoRead,
        Send::Get,
        Expect::Error("timeout after 1500ms"),
    );
}

#[test]
fn candidate_reading_and_never_answering_does_not_touch_the_client() {
    candidate(
        Behaviour::ReadNoAnswer,
        Send::Get,
        Expect::Error("timeout after 1500ms"),
    );
}

#[test]
fn secondary_reading_and_never_answering_does_not_touch_the_client() {
    secondary(
        Behaviour::ReadNoAnswer,
        Send::Get,
        Expect::Error("timeout after 1500ms"),
    );
}

// --- closes and resets ---

#[test]
fn candidate_closing_before_the_status_line_does_not_touch_the_client() {
    candidate(
        Behaviour::CloseBeforeStatus,
        Send::Get,
        Expect::Error("closed before response complete"),
    );
}

#[test]
fn candidate_closing_mid_headers_does_not_touch_the_client() {
    candidate(
        Behaviour::CloseMidHeaders,
        Send::Get,
        Expect::Error("closed before response complete"),
    );
}

#[test]
fn candidate_closing_mid_body_does_not_touch_the_client() {
    candidate(
        Behaviour::CloseMidBodyLength,
        Send::Get,
        Expect::Error("closed before response complete"),
    );
}

#[test]
fn candidate_closing_mid_chunked_body_does_not_touch_the_client() {
    candidate(
        Behaviour::CloseMidBodyChunked,
        Send::Get,
        Expect::Error("closed before response complete"),
    );
}

#[test]
fn candidate_resetting_mid_response_does_not_touch_the_client() {
    candidate(
        Behaviour::ResetMidResponse,
        Send::Get,
        Expect::Error("connection reset"),
    );
}

#[test]
fn secondary_resetting_mid_response_does_not_touch_the_client() {
    secondary(
        Behaviour::ResetMidResponse,
        Send::Get,
        Expect::Error("connection reset"),
    );
}

// --- malformed responses ---

#[test]
fn candidate_answering_garbage_does_not_touch_the_client() {
    candidate(
        Behaviour::Garbage,
        Send::Get,
        Expect::Error("malformed response: invalid HTTP version"),
    );
}

#[test]
fn secondary_answering_garbage_does_not_touch_the_client() {
    secondary(
        Behaviour::Garbage,
        Send::Get,
        Expect::Error("malformed response: invalid HTTP version"),
    );
}

#[test]
fn candidate_sending_an_invalid_chunk_size_does_not_touch_the_client() {
    candidate(
        Behaviour::BadChunkSize,
        Send::Get,
        Expect::Error("malformed response: invalid chunk: chunk size is not hex"),
    );
}

#[test]
fn candidate_overstating_its_content_length_does_not_touch_the_client() {
    candidate(
        Behaviour::LengthOverstated,
        Send::Get,
        Expect::Error("closed before response complete"),
    );
}

#[test]
fn candidate_sending_a_1_mib_header_block_does_not_touch_the_client() {
    candidate(
        Behaviour::HugeHead,
        Send::Get,
        Expect::Error("malformed response: head too large"),
    );
}

#[test]
fn candidate_sending_two_different_content_lengths_does_not_touch_the_client() {
    candidate(
        Behaviour::ConflictingLengths,
        Send::Get,
        Expect::Error("malformed response: invalid Content-Length"),
    );
}

// --- slow ---

#[test]
fn candidate_trickling_a_byte_every_100ms_does_not_touch_the_client() {
    candidate(
        Behaviour::Trickle,
        Send::Get,
        Expect::Error("timeout after 1500ms"),
    );
}

#[test]
fn candidate_stalling_after_its_headers_does_not_touch_the_client() {
    candidate(
        Behaviour::HeadersThenStall,
        Send::Get,
        Expect::Error("timeout after 1500ms"),
    );
}

#[test]
fn candidate_streaming_an_endless_body_does_not_touch_the_client() {
    candidate(Behaviour::EndlessChunked, Send::Get, Expect::Cut);
}

#[test]
fn secondary_streaming_an_endless_body_does_not_touch_the_client() {
    secondary(Behaviour::EndlessChunked, Send::Get, Expect::Cut);
}

/// An endless candidate body is cut once it has run past the primary's whole body by more
/// than the compare cap (it differs whatever follows), long before its deadline, and
/// trident's resident memory stays flat meanwhile.
#[test]
fn an_endless_candidate_body_is_cut_past_the_primarys_and_costs_no_memory() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::start(Behaviour::EndlessChunked)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    client.exchange(&get("/healthy"));
    stage.trident.wait_blocks(1, WAIT);
    let pid = stage.pid();
    let before = rss_kib(pid);
    let started = Instant::now();
    assert_eq!(client.exchange(&get("/endless")).status, 200);
    assert!(started.elapsed() < WELL_BEFORE);
    let mut peak = before;
    let done = wait_until(WAIT, || {
        peak = peak.max(rss_kib(pid));
        stage.trident.blocks().len() >= 2
    });
    assert!(
        done,
        "no block for the endless body\n{}",
        stage.trident.output()
    );
    // Cut well before the leg's 1500 ms deadline, after the 1 MiB compare cap.
    assert!(started.elapsed() < WELL_BEFORE, "{:?}", started.elapsed());
    let streamed = stage.hostile(CANDIDATE).streamed();
    assert!(
        streamed >= 1024 * 1024,
        "only {streamed} bytes streamed: the test measured nothing"
    );
    assert!(
        peak <= before + 4 * 1024,
        "trident grew from {before} KiB to {peak} KiB while {streamed} bytes of an endless \
         body streamed"
    );
    let blocks = stage.trident.blocks();
    assert!(blocks[1].candidate().cut(), "{}", blocks[1].text);
    assert_eq!(
        blocks[1].candidate().response().0,
        200,
        "{}",
        blocks[1].text
    );
}

// --- odd but legal ---

#[test]
fn candidate_answering_before_reading_the_body_is_a_response() {
    candidate(
        Behaviour::AnswerBeforeBody,
        Send::Post(1024 * 1024),
        Expect::Response(200),
    );
}

#[test]
fn candidate_sending_100_continue_first_is_a_response() {
    candidate(
        Behaviour::ContinueThenFinal,
        Send::Post(1000),
        Expect::Response(200),
    );
}

#[test]
fn candidate_sending_bytes_after_its_response_is_a_response() {
    candidate(Behaviour::TrailingBytes, Send::Get, Expect::Response(200));
}

/// The connection that carried bytes after its response is not reused: the next request
/// goes out on a new one (otherwise it would read those bytes as its answer).
#[test]
fn a_candidate_connection_with_bytes_after_the_response_is_not_reused() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::start(Behaviour::TrailingBytes)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    for i in 0..3 {
        client.exchange(&get(&format!("/trailing/{i}")));
        stage.trident.wait_blocks(i + 1, WAIT);
    }
    let arrivals = stage.hostile(CANDIDATE).arrivals();
    let connections: Vec<usize> = arrivals.iter().map(|(a, _)| a.connection).collect();
    assert_eq!(connections, [0, 1, 2], "{arrivals:?}");
    for block in stage.trident.blocks() {
        assert_eq!(
            block.candidate().response(),
            (200, HEALTHY_BODY.len() as u64),
            "{}",
            block.text
        );
    }
}

// --- stale pooled connections ---

/// A stale pooled connection (closed by the upstream as the next request arrives) is
/// replaced once for a GET: the candidate answers on a new connection.
#[test]
fn candidate_stale_pooled_connection_is_retried_for_a_get() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::start(Behaviour::StaleKeepAlive)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    let reference = client.exchange(&get("/first"));
    // The candidate's connection is back in the pool once its block is out.
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());
    let started = Instant::now();
    let got = client.exchange(&get("/second"));
    assert!(started.elapsed() < WELL_BEFORE);
    assert_same_bytes("the answer to /second", &reference.raw, &got.raw);
    let blocks = stage.trident.wait_blocks(2, WAIT);
    assert_eq!(
        blocks[1].candidate().response(),
        (200, HEALTHY_BODY.len() as u64),
        "{}",
        blocks[1].text
    );
    let seen: Vec<(String, usize)> = stage
        .hostile(CANDIDATE)
        .arrivals()
        .into_iter()
        .map(|(a, _)| (a.target, a.connection))
        .collect();
    assert_eq!(
        seen,
        [
            ("/first".to_string(), 0),
            ("/second".to_string(), 0),
            ("/second".to_string(), 1)
        ]
    );
    drop(client);
    stage.finish(resident);
}

/// A POST is not safe to repeat: the stale connection's failure is reported.
#[test]
fn candidate_stale_pooled_connection_is_reported_for_a_post() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::start(Behaviour::StaleKeepAlive)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    client.exchange(&get("/first"));
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());
    let post = request(
        "POST",
        "/second",
        &[("Host", "test.local")],
        &pattern(2000, 2),
    );
    let got = client.exchange(&post);
    assert_eq!(got.body_text(), "the primary's answer");
    let blocks = stage.trident.wait_blocks(2, WAIT);
    assert_eq!(
        blocks[1].candidate().error(),
        "connection reset",
        "{}",
        blocks[1].text
    );
    assert_eq!(stage.hostile(CANDIDATE).targets(), ["/first", "/second"]);
    drop(client);
    stage.finish(resident);
}

/// Even an idempotent PUT is not sent again once part of its body has left the buffer.
#[test]
fn candidate_stale_pooled_connection_is_reported_for_a_streamed_put() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::start(Behaviour::StaleKeepAlive)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    client.exchange(&get("/first"));
    stage.trident.wait_blocks(1, WAIT);
    let body = pattern(2 * 1024 * 1024, 9);
    let got = client.exchange(&request("PUT", "/big", &[("Host", "test.local")], &body));
    assert_eq!(got.body_text(), "the primary's answer");
    let blocks = stage.trident.wait_blocks(2, WAIT);
    assert_eq!(
        blocks[1].candidate().error(),
        "connection reset",
        "{}",
        blocks[1].text
    );
    assert_eq!(stage.hostile(CANDIDATE).targets(), ["/first", "/big"]);
}

// --- overflow ---

/// A candidate that takes the connection but never reads a big upload is cut with
/// `overflow` instead of pacing the upload (the primary gets all of it).
#[test]
fn candidate_never_reading_a_big_upload_is_cut_with_overflow() {
    let stage = Stage::start(
        [
            Player::Healthy(Upstream::named("primary")),
            healthy("secondary"),
            Player::Hostile(Hostile::start(Behaviour::AcceptNoRead)),
        ],
        ["", "", "timeout=5000"],
        &[],
    );
    let mut client = stage.client();
    client.exchange(&get("/healthy"));
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());
    let body = pattern(12 * 1024 * 1024, 12);
    let started = Instant::now();
    let got = client.exchange(&request("POST", "/upload", &[("Host", "t")], &body));
    let elapsed = started.elapsed();
    assert_eq!(got.body_text(), "primary POST /upload");
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    let blocks = stage.trident.wait_blocks(2, WAIT);
    assert_eq!(
        blocks[1].candidate().error(),
        "overflow",
        "{}",
        blocks[1].text
    );
    assert_eq!(
        blocks[1].secondary().response().0,
        200,
        "{}",
        blocks[1].text
    );
    drop(client);
    stage.finish(resident);
}

// --- max_inflight= ---

/// With `max_inflight=2` on a hung candidate, a third concurrent exchange skips it
/// (`skipped: saturated`) while the primary and secondary serve it; once the hung legs
/// time out, the candidate is used again.
#[test]
fn a_saturated_candidate_is_skipped_and_used_again_once_it_drains() {
    let hostile = Hostile::with_plan(|a| {
        if a.target == "/after" {
            Behaviour::Healthy
        } else {
            Behaviour::ReadNoAnswer
        }
    });
    let stage = Stage::start(
        players_with(CANDIDATE, Player::Hostile(hostile)),
        options_for(CANDIDATE, "timeout=800 max_inflight=2"),
        &[],
    );
    let mut clients: Vec<RawClient> = (0..3).map(|_| stage.client()).collect();
    for (i, client) in clients.iter_mut().take(2).enumerate() {
        let started = Instant::now();
        assert_eq!(
            client.exchange(&get(&format!("/hung/{i}"))).body_text(),
            "the primary's answer"
        );
        assert!(started.elapsed() < WELL_BEFORE);
    }
    // Both hung legs are in flight at the candidate.
    stage.hostile(CANDIDATE).wait_arrivals(2, WAIT);
    let started = Instant::now();
    assert_eq!(
        clients[2].exchange(&get("/third")).body_text(),
        "the primary's answer"
    );
    assert!(started.elapsed() < WELL_BEFORE);
    let third = stage
        .trident
        .wait_blocks(1, WAIT)
        .into_iter()
        .find(|b| b.target == "/third")
        .expect("the saturated exchange is reported at once");
    assert_eq!(
        third.candidate().outcome,
        Outcome::Other("skipped: saturated".to_string()),
        "{}",
        third.text
    );
    assert_eq!(third.primary().response().0, 200, "{}", third.text);
    assert_eq!(third.secondary().response().0, 200, "{}", third.text);
    let blocks = stage.trident.wait_blocks(3, WAIT);
    for block in blocks.iter().filter(|b| b.target.starts_with("/hung/")) {
        assert_eq!(
            block.candidate().error(),
            "timeout after 800ms",
            "{}",
            block.text
        );
    }
    // The two hung legs gave their slots back.
    clients[0].exchange(&get("/after"));
    let blocks = stage.trident.wait_blocks(4, WAIT);
    assert_eq!(
        blocks[3].candidate().response().0,
        200,
        "{}",
        blocks[3].text
    );
    assert_eq!(
        stage.hostile(CANDIDATE).targets().len(),
        3,
        "the saturated exchange reached the candidate"
    );
}

// --- per-leg options ---

/// `timeout=` and `connect_timeout=` on a leg's line override `--timeout` and
/// `--connect-timeout`; the error text carries the leg's own number.
#[test]
fn per_leg_deadlines_override_the_command_line() {
    let stage = Stage::start(
        [
            primary(),
            Player::Blackhole(Blackhole::new()),
            Player::Hostile(Hostile::start(Behaviour::ReadNoAnswer)),
        ],
        ["", "connect_timeout=250", "timeout=300"],
        &["--timeout", "4000", "--connect-timeout", "4000"],
    );
    let mut client = stage.client();
    let started = Instant::now();
    assert_eq!(
        client.exchange(&get("/x")).body_text(),
        "the primary's answer"
    );
    assert!(started.elapsed() < Duration::from_millis(250));
    let blocks = stage.trident.wait_blocks(1, Duration::from_secs(2));
    assert_eq!(
        blocks[0].secondary().error(),
        "connect timeout after 250ms",
        "{}",
        blocks[0].text
    );
    assert_eq!(
        blocks[0].candidate().error(),
        "timeout after 300ms",
        "{}",
        blocks[0].text
    );
}

/// A candidate that rejects an upload at once (`413`, then a reset: the body is left
/// unread) has answered, and its block says so, whether or not trident meets the answer and
/// the reset in one batch of events.
#[test]
fn candidate_rejecting_an_upload_before_reading_it_is_a_response() {
    candidate(
        Behaviour::RejectBeforeBody,
        Send::Post(4 << 20),
        Expect::Response(413),
    );
}

/// Stray bytes on an idle pooled candidate connection, arriving in the same batch of events
/// as the next request (trident is stopped while both arrive), are not taken for the
/// candidate's answer: its line shows the answer it really gave.
#[test]
fn stray_bytes_on_an_idle_pooled_candidate_connection_are_not_its_answer() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::always(Behaviour::StrayWhileIdle)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut client = stage.client();
    let reference = client.exchange(&get("/first"));
    stage.trident.wait_blocks(1, WAIT);
    let resident = resident_fds(stage.pid());
    stage.trident.signal("STOP");
    client.send(&get("/next"));
    stage.hostile(CANDIDATE).send_stray(WAIT);
    stage.trident.signal("CONT");
    let got = client.response();
    assert_same_bytes("the answer to /next", &reference.raw, &got.raw);
    let blocks = stage.trident.wait_blocks(2, WAIT);
    assert_eq!(
        blocks[1].candidate().response(),
        (200, HEALTHY_BODY.len() as u64),
        "{}",
        blocks[1].text
    );
    drop(client);
    stage.finish(resident);
}

/// A candidate streaming an endless body as fast as it can does not hold up anyone else:
/// the flooded exchange's own client and other clients are answered as quickly as ever, and
/// the flood is cut once past the primary's body by more than the compare cap (trident must
/// not stay on one busy socket, deaf to every other; `a_flooding_primary_...` in
/// hostile_primary.rs has a flood that lasts to its deadline).
#[test]
fn a_flooding_candidate_does_not_stall_other_clients() {
    let stage = Stage::start(
        players_with(
            CANDIDATE,
            Player::Hostile(Hostile::for_target("/flood", Behaviour::EndlessFlood)),
        ),
        options_for(CANDIDATE, BAD_LEG),
        &[],
    );
    let mut flooded = stage.client();
    let mut other = stage.client();
    other.exchange(&get("/warm"));
    for client in [&mut flooded, &mut other] {
        client.set_read_timeout(Duration::from_secs(1));
    }
    let started = Instant::now();
    flooded.send(&get("/flood"));
    let answer = flooded.try_response();
    assert!(
        answer.is_ok() && started.elapsed() < WELL_BEFORE,
        "the flooded exchange's own client: {:?} after {:?}",
        answer.map(|r| r.status),
        started.elapsed()
    );
    let mut slowest = Duration::ZERO;
    let mut count = 0;
    // Requests from another client while the flood lasts and after it is cut (its leg's
    // deadline is 1500 ms).
    while started.elapsed() < Duration::from_millis(1200) {
        let asked = Instant::now();
        other.send(&get(&format!("/other/{count}")));
        let got = other.try_response().unwrap_or_else(|e| {
            panic!(
                "another client got no answer within 1 s while a candidate floods \
                 ({} bytes streamed so far): {e}",
                stage.hostile(CANDIDATE).streamed()
            )
        });
        assert_eq!(got.body_text(), "the primary's answer");
        slowest = slowest.max(asked.elapsed());
        count += 1;
    }
    assert!(
        slowest < WELL_BEFORE,
        "with a candidate flooding, another client's request took up to {slowest:?} \
         ({count} requests in 1.2 s)"
    );
    let blocks = stage.trident.wait_blocks(2 + count, Duration::from_secs(3));
    let flood = blocks
        .iter()
        .find(|b| b.target == "/flood")
        .expect("a block");
    assert!(flood.candidate().cut(), "{}", flood.text);
}

/// Exchanges held up by a stalled candidate keep the other legs' bodies for the comparison
/// until its deadline. What they keep in all is bounded (`CAPTURE_BUDGET`, 64 MiB): past it,
/// a body is kept no further and its exchange's contents are not compared. 40 exchanges of
/// 1 MiB bodies would keep 80 MiB.
#[test]
fn bodies_kept_for_exchanges_waiting_on_a_stalled_candidate_are_bounded() {
    let (unkept, endpoint) = unkept_while_the_candidate_stalls(40, &[]);
    // 64 MiB keeps 32 exchanges' two bodies whole; the other 8 are not (fewer if some
    // timed out, and let go of theirs, before the last requests came).
    assert!((4..=40).contains(&unkept), "{endpoint}");
}

/// The budget is trident's, not each reactor's: with `--reactors 2`, 24 exchanges of 1 MiB
/// bodies on one connection (so on one reactor) would keep 48 MiB, over that reactor's half.
#[test]
fn the_capture_budget_is_shared_out_between_reactors() {
    let (unkept, endpoint) = unkept_while_the_candidate_stalls(24, &["--reactors", "2"]);
    // 32 MiB keeps 16 exchanges' two bodies whole; the other 8 are not.
    assert!((1..=24).contains(&unkept), "{endpoint}");
}

/// Sends `n` requests for 1 MiB bodies on one connection while the candidate hangs; returns
/// how many exchanges had their contents left uncompared, and the endpoint's summary line.
fn unkept_while_the_candidate_stalls(n: usize, args: &[&str]) -> (u64, String) {
    let body = pattern(1 << 20, 5);
    let serve = move |_: &RecordedRequest| Reply::ok(body.clone());
    let (p, s, c) = (
        Upstream::start(serve.clone()),
        Upstream::start(serve),
        Upstream::hung(),
    );
    let args = [&["--timeout", "3000"], args].concat();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &args);
    let mut client = trident.client();
    for i in 0..n {
        assert_eq!(client.exchange(&get(&format!("/big/{i}"))).status, 200);
    }
    trident.wait_blocks(n, Duration::from_secs(10));
    trident.signal("TERM");
    trident.exits_0(WAIT);
    let stdout = trident.stdout();
    let endpoint = stdout
        .lines()
        .find(|l| l.starts_with(&format!("  GET /big/{{id}}: {n} requests")))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let unkept: u64 = endpoint
        .split("; ")
        .find_map(|part| {
            part.strip_suffix(" with headers and bodies not compared (the capture budget was full)")
        })
        .unwrap_or_else(|| panic!("nothing left uncompared: {endpoint}"))
        .parse()
        .expect("a count");
    (unkept, endpoint)
}
