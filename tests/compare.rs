//! The comparison engine against the real binary: scripted upstreams with noise on every
//! leg (a timestamp and a random id in each JSON body, a timestamp header) and one real
//! regression on one endpoint; the summary at SIGTERM, the `--report` file, `--exit-code`,
//! `--format json`, SIGUSR1, a reload's new epoch, a failing candidate, gzip bodies and the
//! ignore flags.

mod support;

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// What a scripted upstream does differently from a healthy one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Stable,
    /// `/users/{id}` answers the email as an object instead of a string.
    EmailRegression,
    /// Adds an `X-Debug` header and a `debug` field everywhere.
    Debugging,
}

/// A JSON service with noise in every answer: `ts` (a counter shared by the three upstreams,
/// so no two answers have the same one), `request_id` (a random hex id), `X-Served-At`.
fn service(flavour: Flavour, clock: Arc<AtomicU64>) -> Upstream {
    Upstream::start(move |req| {
        let ts = clock.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}", (ts + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let path = req.target.split('?').next().unwrap_or("");
        let body = if let Some(user) = path.strip_prefix("/users/") {
            let email = if flavour == Flavour::EmailRegression {
                format!(r#"{{"local":"u{user}","domain":"example.com"}}"#)
            } else {
                format!(r#""u{user}@example.com""#)
            };
            format!(r#"{{"ts":{ts},"request_id":"{id}","user":{{"id":{user},"email":{email}}}}}"#)
        } else if path == "/items" {
            format!(
                r#"{{"ts":{ts},"request_id":"{id}","items":[{{"id":1,"name":"a"}},{{"id":2,"name":"b"}}]}}"#
            )
        } else {
            format!(r#"{{"ts":{ts},"request_id":"{id}","status":"ok"}}"#)
        };
        let body = if flavour == Flavour::Debugging {
            body.replacen('{', r#"{"debug":true,"#, 1)
        } else {
            body
        };
        let mut reply = Reply::ok(body)
            .header("Content-Type", "application/json")
            .header("X-Served-At", &ts.to_string())
            .header(
                "Date",
                &format!("Mon, 01 Jan 2024 00:00:{:02} GMT", ts % 60),
            );
        if flavour == Flavour::Debugging {
            reply = reply.header("X-Debug", "on");
        }
        reply
    })
}

/// Three scripted upstreams sharing one clock.
fn upstreams(candidate: Flavour) -> (Upstream, Upstream, Upstream) {
    let clock = Arc::new(AtomicU64::new(1));
    (
        service(Flavour::Stable, Arc::clone(&clock)),
        service(Flavour::Stable, Arc::clone(&clock)),
        service(candidate, clock),
    )
}

/// Sends `rounds` × (`/users/N`, `/items?page=N`) on two keep-alive connections at once and
/// waits for their blocks.
fn drive(trident: &Trident, rounds: usize) {
    send_rounds(trident, rounds);
    trident.wait_blocks(2 * rounds, WAIT);
}

/// `drive` without waiting for the blocks.
fn send_rounds(trident: &Trident, rounds: usize) {
    let addr = trident.addr();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in (w..rounds).step_by(2) {
                    assert_eq!(client.exchange(&get(&format!("/users/{i}"))).status, 200);
                    assert_eq!(
                        client.exchange(&get(&format!("/items?page={i}"))).status,
                        200
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread failed");
    }
}

/// The summaries in stdout: each from its `SUMMARY` line to its `VERDICT` line.
fn summaries(stdout: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in stdout.lines() {
        if line.starts_with("SUMMARY ") {
            current = Some(Vec::new());
        }
        if let Some(summary) = current.as_mut() {
            summary.push(line.to_string());
            if line.starts_with("VERDICT ") {
                all.extend(current.take());
            }
        }
    }
    all
}

/// `(endpoint, field)` for every REGRESSION line of a summary.
fn regressions(summary: &[String]) -> Vec<(String, String)> {
    let mut endpoint = String::new();
    let mut found = Vec::new();
    for line in summary {
        if let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            endpoint = name.split(": ").next().unwrap_or("").to_string();
        }
        if let Some(rest) = line.strip_prefix("    REGRESSION ") {
            let field = rest.split(": candidate").next().unwrap_or("").to_string();
            found.push((endpoint.clone(), field));
        }
    }
    found
}

fn stop(trident: &mut Trident) -> Option<i32> {
    trident.signal("TERM");
    trident.wait_exit(WAIT).code()
}

#[test]
fn a_regression_on_one_endpoint_is_flagged_and_noise_on_all_is_not() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let report = ReportFile::new();
    let mut trident =
        Trident::with_upstreams(&p, &s, &c, &["--report", report.arg(), "--exit-code"]);
    drive(&trident, 150);
    assert_eq!(stop(&mut trident), Some(1), "{}", trident.output());

    let stdout = trident.stdout();
    // Every block is still a block; the candidate's lines say what differs, noise apart.
    let blocks = parse_blocks(&stdout).expect("console blocks and a summary");
    assert_eq!(blocks.len(), 300);
    for block in &blocks {
        assert_eq!(
            block.secondary().compared(),
            Some("differs: header x-served-at, body request_id, body ts"),
            "{}",
            block.text
        );
        let expected = if block.target.starts_with("/users/") {
            "differs: body user.email type; noise: header x-served-at, body request_id, body ts"
        } else {
            "same; noise: header x-served-at, body request_id, body ts"
        };
        assert_eq!(
            block.candidate().compared(),
            Some(expected),
            "{}",
            block.text
        );
    }

    let summaries = summaries(&stdout);
    assert_eq!(summaries.len(), 1, "{stdout}");
    let summary = &summaries[0];
    assert!(
        summary[0].starts_with("SUMMARY epoch 0 (final): 300 exchanges, 0 not compared"),
        "{summary:?}"
    );
    assert_eq!(
        regressions(summary),
        [(
            "GET /users/{id}".to_string(),
            "body user.email type".to_string()
        )],
        "{summary:#?}"
    );
    assert_eq!(
        summary.last().map(String::as_str),
        Some("VERDICT candidate: FAIL — 1 endpoint regresses")
    );
    assert!(
        summary.iter().any(|l| l.starts_with("  GET /items: 150 requests; candidate differs 100.0% (0.0% beyond noise), secondary differs 100.0%")),
        "{summary:#?}"
    );
    assert!(summary
        .iter()
        .any(|l| l == "    within noise: body request_id, body ts, header x-served-at"));
    // Per-leg latency and errors, for each endpoint.
    assert_eq!(
        summary
            .iter()
            .filter(|l| l.starts_with("    latency p50/p99: primary "))
            .count(),
        2
    );
    assert_eq!(
        summary
            .iter()
            .filter(|l| *l == "    errors: primary 0, secondary 0, candidate 0")
            .count(),
        2
    );

    // The same in the report file, with samples.
    let json = report.read();
    assert_eq!(json["verdict"], "FAIL");
    assert_eq!(json["written"], "shutdown");
    let epoch = &json["epochs"][0];
    assert_eq!(epoch["exchanges"], 300);
    let endpoints = epoch["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2);
    let users = &endpoints[0];
    assert_eq!(users["endpoint"], "GET /users/{id}");
    assert_eq!(users["verdict"], "regresses");
    let flagged: Vec<&serde_json::Value> = endpoints
        .iter()
        .flat_map(|e| e["fields"].as_array().into_iter().flatten())
        .filter(|f| f["verdict"] == "regression")
        .collect();
    assert_eq!(flagged.len(), 1);
    let field = flagged[0];
    assert_eq!(field["field"], "body user.email type");
    assert_eq!(
        (field["raw"].as_u64(), field["noise"].as_u64()),
        (Some(150), Some(0))
    );
    let samples = field["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 5);
    assert!(samples[0]["request"]
        .as_str()
        .is_some_and(|r| r.starts_with("GET /users/") && r.ends_with(" HTTP/1.1")));
    assert!(samples[0]["primary"]
        .as_str()
        .is_some_and(|v| v.ends_with("@example.com\"")));
    assert!(samples[0]["candidate"]
        .as_str()
        .is_some_and(|v| v.contains("\"domain\":\"example.com\"")));
    let items = &endpoints[1];
    assert_eq!(items["endpoint"], "GET /items");
    assert_eq!(items["verdict"], "passes");
    assert_eq!(items["secondary"]["rate"], 1.0);
    assert_eq!(items["candidate"]["rate_beyond_noise"], 0.0);
}

#[test]
fn exit_code_is_zero_when_the_candidate_passes() {
    let (p, s, c) = upstreams(Flavour::Stable);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--exit-code"]);
    drive(&trident, 40);
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
    let summaries = summaries(&trident.stdout());
    let summary = summaries.last().expect("a summary");
    assert!(regressions(summary).is_empty(), "{summary:#?}");
    assert_eq!(
        summary.last().map(String::as_str),
        Some("VERDICT candidate: PASS")
    );
}

/// Too few requests to decide anything is no evidence of a pass: UNDECIDED, status 3.
#[test]
fn exit_code_is_three_when_nothing_could_be_decided() {
    let (p, s, c) = upstreams(Flavour::Stable);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--exit-code"]);
    drive(&trident, 4);
    assert_eq!(stop(&mut trident), Some(3), "{}", trident.output());
    let summary = summaries(&trident.stdout()).pop().expect("a summary");
    let verdict = summary.last().expect("a verdict line");
    assert!(
        verdict.starts_with(
            "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a verdict \
             needs"
        ),
        "{verdict}"
    );
    assert!(trident.stderr().contains("exit status 3 (--exit-code)"));
}

#[test]
fn ignored_headers_and_fields_are_not_differences() {
    let (p, s, c) = upstreams(Flavour::Debugging);
    // Without the flags, the candidate's additions are regressions ...
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--exit-code"]);
    drive(&trident, 40);
    assert_eq!(stop(&mut trident), Some(1), "{}", trident.output());
    let summary = summaries(&trident.stdout()).pop().expect("a summary");
    let mut found: Vec<String> = regressions(&summary).into_iter().map(|(_, f)| f).collect();
    found.sort();
    found.dedup();
    assert_eq!(
        found,
        ["body debug extra", "header x-debug extra"],
        "{summary:#?}"
    );
    // ... with them, nothing is.
    let mut trident = Trident::with_upstreams(
        &p,
        &s,
        &c,
        &[
            "--exit-code",
            "--ignore-header",
            "X-Debug",
            "--ignore-field",
            "debug",
        ],
    );
    drive(&trident, 40);
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
    let block = &trident.blocks()[0];
    assert_eq!(
        block.candidate().compared(),
        Some("same; noise: header x-served-at, body request_id, body ts")
    );
}

#[test]
fn a_failing_candidate_is_a_difference_not_a_drop() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let refused = refused_addr();
    let mut trident = Trident::with_addrs(p.addr(), s.addr(), refused, &["--exit-code"]);
    let mut client = trident.client();
    for i in 0..40 {
        assert_eq!(client.exchange(&get(&format!("/x/{i}"))).status, 200);
    }
    trident.wait_blocks(40, WAIT);
    assert_eq!(stop(&mut trident), Some(1), "{}", trident.output());
    let summary = summaries(&trident.stdout()).pop().expect("a summary");
    assert_eq!(
        regressions(&summary),
        [("GET /x/{id}".to_string(), "error:refused".to_string())]
    );
    assert!(summary
        .iter()
        .any(|l| l == "    errors: primary 0, secondary 0, candidate 40 (refused 40)"));
}

/// One GET of `target` through a trident in front of the three: the client's response and
/// the exchange's block.
fn one_exchange(p: &Upstream, s: &Upstream, c: &Upstream, target: &str) -> (ClientResponse, Block) {
    let trident = Trident::with_upstreams(p, s, c, &[]);
    let response = trident.client().exchange(&get(target));
    (response, trident.wait_blocks(1, WAIT).remove(0))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A JSON answer labelled `Content-Encoding: gzip`, with `body` as its bytes (gzip or not).
fn labelled_gzip(body: impl Into<Vec<u8>>) -> Reply {
    Reply::ok(body)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
}

/// A HEAD response has no body to compare: its Content-Length, the length its GET would
/// send, stands for it.
#[test]
fn a_head_whose_length_changes_differs() {
    let sized = |n: usize| move |_: &RecordedRequest| Reply::ok(vec![b'x'; n]);
    let (p, s, c) = (
        Upstream::start(sized(5000)),
        Upstream::start(sized(5000)),
        Upstream::start(sized(0)),
    );
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let head = trident
        .client()
        .exchange(&request("HEAD", "/file", &[("Host", "test.local")], b""));
    assert_eq!(head.header("content-length"), Some("5000"));
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.secondary().compared(), Some("same"), "{}", block.text);
    assert_eq!(
        block.candidate().compared(),
        Some("differs: header content-length"),
        "{}",
        block.text
    );
}

/// Labelled gzip, sent plain: no client could read it, whatever its bytes say.
/// Each reactor's capture budget holds at least one exchange's three bodies: split 32 ways,
/// 64 MiB left 2 MiB a reactor, and a lone exchange of 700 KB bodies was left uncompared, a
/// wholly changed candidate unseen (hunt 68).
#[test]
fn a_lone_exchange_is_compared_whatever_the_reactors() {
    let body = |seed: u64| move |_: &RecordedRequest| Reply::ok(pattern(700_000, seed));
    let (p, s, c) = (
        Upstream::start(body(1)),
        Upstream::start(body(1)),
        Upstream::start(body(2)),
    );
    let trident = Trident::with_upstreams(&p, &s, &c, &["--reactors", "32"]);
    assert_eq!(trident.client().exchange(&get("/big")).status, 200);
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.secondary().compared(), Some("same"), "{}", block.text);
    assert_eq!(
        block.candidate().compared(),
        Some("differs: body"),
        "{}",
        block.text
    );
}

#[test]
fn a_body_that_does_not_decode_in_its_coding_differs() {
    let body = br#"{"user":{"name":"ada"}}"#;
    let zipped = move |_: &RecordedRequest| labelled_gzip(gzip(body));
    let mislabelled = move |_: &RecordedRequest| labelled_gzip(&body[..]);
    let (p, s) = (Upstream::start(zipped), Upstream::start(zipped));
    let (_, block) = one_exchange(&p, &s, &Upstream::start(mislabelled), "/gz");
    assert_eq!(
        block.candidate().compared(),
        Some("differs: body coding"),
        "{}",
        block.text
    );
}

#[test]
fn gzip_bodies_are_compared_by_what_they_say() {
    let body = br#"{"user":{"name":"ada"}}"#;
    let plain =
        move |_: &RecordedRequest| Reply::ok(&body[..]).header("Content-Type", "application/json");
    let zipped = move |_: &RecordedRequest| labelled_gzip(gzip(body));
    let changed = |_: &RecordedRequest| labelled_gzip(gzip(br#"{"user":{"name":"bob"}}"#));
    let (p, s) = (Upstream::start(plain), Upstream::start(zipped));
    let (_, block) = one_exchange(&p, &s, &Upstream::start(changed), "/gz");
    assert_eq!(
        block.secondary().compared(),
        Some("differs: header content-encoding extra"),
        "{}",
        block.text
    );
    assert_eq!(
        block.candidate().compared(),
        Some("differs: body user.name; noise: header content-encoding extra"),
        "{}",
        block.text
    );
}

/// A compressed primary's body as sent says little of the content's size: a shadow sending
/// the same content uncompressed, far past the primary's bytes plus `--max-compare-bytes`,
/// is read whole (not cut short) and compares equal on what both decode to.
#[test]
fn an_uncompressed_shadow_of_a_compressed_primary_is_not_cut_short() {
    let content = "a".repeat(30_000);
    let zipped = {
        let content = content.clone();
        move |_: &RecordedRequest| {
            Reply::ok(gzip(content.as_bytes())).header("Content-Encoding", "gzip")
        }
    };
    let plain = move |_: &RecordedRequest| Reply::ok(content.clone());
    let (p, s, c) = (
        Upstream::start(zipped.clone()),
        Upstream::start(zipped),
        Upstream::start(plain),
    );
    let trident = Trident::with_upstreams(&p, &s, &c, &["--max-compare-bytes", "1000"]);
    assert_eq!(trident.client().exchange(&get("/gz")).status, 200);
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(
        block.candidate().response(),
        (200, 30_000),
        "{}",
        block.text
    );
    assert_eq!(
        block.candidate().compared(),
        Some("differs: header content-encoding missing"),
        "{}",
        block.text
    );
}

#[test]
fn a_candidate_that_starts_sending_early_hints_differs() {
    let plain = |_: &RecordedRequest| Reply::ok("page");
    let hinted = |_: &RecordedRequest| {
        Reply::ok("page").interim(103, "Early Hints", &[("Link", "</a.css>; rel=preload")])
    };
    let (p, s, c) = (
        Upstream::start(plain),
        Upstream::start(plain),
        Upstream::start(hinted),
    );
    let (resp, block) = one_exchange(&p, &s, &c, "/page");
    // The client hears the primary, which sent no hints.
    assert!(resp.interim.is_empty(), "{:?}", resp.interim);
    assert_eq!(block.candidate().interim(), Some(103), "{}", block.text);
    assert_eq!(
        block.candidate().compared(),
        Some("differs: interim"),
        "{}",
        block.text
    );
    assert_eq!(block.secondary().compared(), Some("same"), "{}", block.text);
}

/// An upstream's own `100 Continue` never reaches a client (trident answers `Expect`
/// itself), so a candidate that starts sending one does not differ.
#[test]
fn a_candidate_that_starts_sending_100_continue_does_not_differ() {
    let plain = |_: &RecordedRequest| Reply::ok("page");
    let continued = |_: &RecordedRequest| Reply::ok("page").interim(100, "Continue", &[]);
    let (p, s, c) = (
        Upstream::start(plain),
        Upstream::start(plain),
        Upstream::start(continued),
    );
    let (_, block) = one_exchange(&p, &s, &c, "/page");
    assert_eq!(block.candidate().interim(), None, "{}", block.text);
    assert_eq!(block.candidate().compared(), Some("same"), "{}", block.text);
}

#[test]
fn a_candidate_hinting_other_resources_differs_in_the_hint() {
    let hints = |link: &'static str| {
        move |_: &RecordedRequest| Reply::ok("page").interim(103, "Early Hints", &[("Link", link)])
    };
    let (p, s, c) = (
        Upstream::start(hints("</a.css>; rel=preload")),
        Upstream::start(hints("</a.css>; rel=preload")),
        Upstream::start(hints("</b.css>; rel=preload")),
    );
    let (resp, block) = one_exchange(&p, &s, &c, "/page");
    // The client is relayed the primary's hints.
    assert_eq!(resp.interim.len(), 1, "{:?}", resp.interim);
    assert_eq!(
        block.candidate().compared(),
        Some("differs: interim header link"),
        "{}",
        block.text
    );
    assert_eq!(block.secondary().compared(), Some("same"), "{}", block.text);
}

#[test]
fn format_json_writes_one_parsable_line_per_exchange_and_summary() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--format", "json"]);
    let mut client = trident.client();
    for i in 0..5 {
        client.exchange(&get(&format!("/users/{i}")));
    }
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
    let lines: Vec<serde_json::Value> = trident
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 6, "{}", trident.stdout());
    let mut ids: Vec<u64> = lines[..5].iter().filter_map(|l| l["id"].as_u64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for line in &lines[..5] {
        assert_eq!(line["type"], "exchange");
        assert_eq!(line["endpoint"], "GET /users/{id}");
        assert_eq!(line["primary"]["status"], 200);
        for (role, upstream) in [("primary", &p), ("secondary", &s), ("candidate", &c)] {
            assert_eq!(
                line[role]["upstream"],
                upstream.addr().to_string(),
                "{line}"
            );
        }
        assert_eq!(line["secondary"]["result"], "differs");
        assert_eq!(line["candidate"]["result"], "differs");
        let fields: Vec<&str> = line["candidate"]["differences"]
            .as_array()
            .expect("differences")
            .iter()
            .filter(|d| d["masked"] == false)
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert_eq!(fields, ["body user.email type"]);
    }
    assert_eq!(lines[5]["type"], "summary");
    assert_eq!(lines[5]["epoch"], 0);
    assert_eq!(lines[5]["exchanges"], 5);
    // Five requests are too few to fail the candidate, or to pass it.
    assert_eq!(lines[5]["verdict"]["candidate"], "UNDECIDED");
    assert_eq!(lines[5]["verdict"]["undecided_endpoints"], 1);
}

#[test]
fn sigusr1_prints_the_summary_so_far_and_writes_the_report() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let report = ReportFile::new();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--report", report.arg()]);
    drive(&trident, 20);
    trident.signal("USR1");
    assert!(
        wait_until(WAIT, || trident.stdout().contains("VERDICT ")),
        "no summary after SIGUSR1\n{}",
        trident.output()
    );
    let summary = summaries(&trident.stdout()).remove(0);
    assert!(
        summary[0].starts_with("SUMMARY epoch 0 (SIGUSR1): 40 exchanges"),
        "{summary:?}"
    );
    assert_eq!(report.read()["written"], "SIGUSR1");
    // The proxy goes on, and the blocks that follow still parse.
    assert_eq!(trident.client().exchange(&get("/users/99")).status, 200);
    assert_eq!(trident.wait_blocks(41, WAIT).len(), 41);
    assert_eq!(stop(&mut trident), Some(0));
    let all = summaries(&trident.stdout());
    assert_eq!(all.len(), 2);
    assert!(all[1][0].starts_with("SUMMARY epoch 0 (final): 41 exchanges"));
    assert_eq!(report.read()["written"], "shutdown");
}

#[test]
fn sigterm_with_a_stalled_stdout_reader_writes_the_report_and_exits() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let report = ReportFile::new();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--report", report.arg()]);
    // A reader that stops without closing (a paused pager, a wedged log shipper). 600 blocks
    // are several times what the pipe holds, so the writes to stdout block.
    trident.pause_stdout();
    send_rounds(&trident, 300);
    trident.signal("TERM");
    trident.exits_0(Duration::from_secs(20));
    assert!(
        trident.stderr().contains("stdout accepted nothing for"),
        "{}",
        trident.stderr()
    );
    // Every exchange was compared, and the final summary reached the file.
    let report = report.read();
    assert_eq!(report["written"], "shutdown");
    assert_eq!(report["epochs"][0]["exchanges"], 600, "{report}");
    assert_eq!(report["verdict"], "FAIL", "{report}");
}

/// A SIGHUP with the targets file unchanged keeps the same candidate: no new epoch, so its
/// counts go on and a run split by reloads decides as one would. A URL spelled otherwise
/// changes nothing either, nor options that write out the defaults, nor field rules
/// reordered or with their names in another case.
#[test]
fn a_reload_of_an_unchanged_file_keeps_the_epoch() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let rules = r#"drop_header=Cookie set_header="X-A: 1""#;
    let candidate = format!("{} {rules}", c.url());
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &candidate);
    let mut trident =
        Trident::spawn(&["--targets", file.arg(), "--exit-code", "--timeout", "4000"]);
    for round in 0..4 {
        let candidate = match round {
            // The same address spelled otherwise.
            1 => format!("HTTP://127.0.0.1:0{}/ {rules}", c.addr().port()),
            // The defaults written out; the rules reordered, their names in another case.
            2 => format!(
                r#"{} timeout=4000 connect_timeout=1000 max_inflight=256 host=keep set_header="x-a: 1" drop_header=cookie"#,
                c.url()
            ),
            _ => candidate.clone(),
        };
        file.write(&targets_text(&p.url(), &s.url(), &candidate));
        let mut client = trident.client();
        for i in 0..12 {
            client.exchange(&get(&format!("/users/{i}")));
        }
        trident.signal("HUP");
        trident.wait_stderr_count("targets reloaded, unchanged", round + 1, WAIT);
    }
    trident.wait_blocks(48, WAIT);
    assert_eq!(stop(&mut trident), Some(1), "{}", trident.output());
    let all = summaries(&trident.stdout());
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0][0].starts_with("SUMMARY epoch 0 (final): 48 exchanges"),
        "{all:?}"
    );
}

/// On a quiet service the old epoch is not closed while its own exchanges are in flight:
/// they finish after the reload's grace and still count in it, not in none.
#[test]
fn a_reload_waits_for_the_old_epochs_exchanges_in_flight() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let c = Upstream::start(|_| Reply::ok("late").delay(Duration::from_millis(2500)));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &c.url());
    let mut trident = Trident::spawn(&["--targets", file.arg()]);
    let mut clients: Vec<Client> = (0..3).map(|_| trident.client()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(&get(&format!("/slow/{i}")));
    }
    c.wait_requests(3, WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &s.url()));
    trident.signal("HUP");
    trident.wait_stderr("statistics epoch 1 begins", WAIT);
    // A while after the reload (the reporting thread looks every 200 ms at most), with the
    // three still in flight: no summary yet.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !trident.stdout().contains("SUMMARY epoch 0"),
        "{}",
        trident.output()
    );
    for client in &mut clients {
        assert_eq!(client.read_response(false).status, 200);
    }
    assert!(
        wait_until(WAIT, || trident.stdout().contains(
            "SUMMARY epoch 0 (reloaded): 3 exchanges, 0 not compared"
        )),
        "{}",
        trident.output()
    );
    stop(&mut trident);
    let all = summaries(&trident.stdout());
    assert!(
        all[1][0].starts_with("SUMMARY epoch 1 (final): 0 exchanges, 0 not compared;"),
        "{all:?}"
    );
}

/// On a quiet service no exchange of the new epoch comes: the old one's summary and report
/// come a moment after the reload anyway.
#[test]
fn a_reload_reports_the_old_epoch_without_waiting_for_the_next_request() {
    let (p, s, c) = upstreams(Flavour::EmailRegression);
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &c.url());
    let report = ReportFile::new();
    let mut trident = Trident::spawn(&["--targets", file.arg(), "--report", report.arg()]);
    drive(&trident, 5);
    trident.wait_blocks(5, WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &s.url()));
    trident.signal("HUP");
    trident.wait_stderr("(changed: candidate; statistics epoch 1 begins)", WAIT);
    assert!(
        wait_until(WAIT, || trident
            .stdout()
            .contains("SUMMARY epoch 0 (reloaded)")),
        "{}",
        trident.output()
    );
    assert_eq!(report.read()["written"], "reload");
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
}

/// Stopped just after a reload, trident still closes the old epoch: the final verdict is the
/// new candidate's (nothing compared yet: UNDECIDED, 3), not the old one's.
#[test]
fn a_stop_just_after_a_reload_judges_the_new_candidate() {
    let clock = Arc::new(AtomicU64::new(1));
    let (p, s) = (
        service(Flavour::Stable, Arc::clone(&clock)),
        service(Flavour::Stable, Arc::clone(&clock)),
    );
    let (old, new) = (
        service(Flavour::Stable, Arc::clone(&clock)),
        service(Flavour::Stable, clock),
    );
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let mut trident = Trident::spawn(&["--targets", file.arg(), "--exit-code"]);
    drive(&trident, 40);
    trident.wait_blocks(80, WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("statistics epoch 1 begins", WAIT);
    assert_eq!(stop(&mut trident), Some(3), "{}", trident.output());
    let all = summaries(&trident.stdout());
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[0][0].starts_with("SUMMARY epoch 0 (reloaded): 80 exchanges"),
        "{all:?}"
    );
    assert!(
        all[1][0].starts_with("SUMMARY epoch 1 (final): 0 exchanges"),
        "{all:?}"
    );
    assert!(
        all[1]
            .last()
            .is_some_and(|v| v.starts_with("VERDICT candidate: UNDECIDED")),
        "{all:?}"
    );
}

/// Each reload's old epoch gets its own grace: after a first reload on a quiet service, an
/// exchange in flight at the second is still counted in the epoch it began in.
#[test]
fn a_second_quiet_reload_still_waits_for_the_old_epochs_exchanges() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let slow = Upstream::start(|_| Reply::ok("slowly").delay(Duration::from_millis(500)));
    let (first, second) = (Upstream::named("first"), Upstream::named("second"));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &first.url());
    let mut trident = Trident::spawn(&["--targets", file.arg()]);
    trident.client().exchange(&get("/epoch-0"));
    trident.wait_blocks(1, WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &slow.url()));
    trident.signal("HUP");
    assert!(
        wait_until(WAIT, || trident
            .stdout()
            .contains("SUMMARY epoch 0 (reloaded)")),
        "{}",
        trident.output()
    );
    // An exchange in epoch 1 still in flight when epoch 2 begins (epoch 0 closed after a
    // second without exchanges: that lull must not count for the next reload's grace).
    let mut client = trident.client();
    client.send(&get("/epoch-1"));
    slow.wait_requests(1, WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &second.url()));
    trident.signal("HUP");
    trident.wait_stderr("statistics epoch 2 begins", WAIT);
    assert_eq!(client.read_response(false).status, 200);
    assert!(
        wait_until(WAIT, || trident
            .stdout()
            .contains("SUMMARY epoch 1 (reloaded)")),
        "{}",
        trident.output()
    );
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
    let all = summaries(&trident.stdout());
    assert!(
        all[1][0].starts_with("SUMMARY epoch 1 (reloaded): 1 exchange,"),
        "{all:?}"
    );
    assert!(!all[1][0].contains("earlier epoch"), "{all:?}");
}

#[test]
fn a_reload_reports_the_old_epoch_and_starts_a_new_one() {
    let clock = Arc::new(AtomicU64::new(1));
    let p = service(Flavour::Stable, Arc::clone(&clock));
    let s = service(Flavour::Stable, Arc::clone(&clock));
    let broken = service(Flavour::EmailRegression, Arc::clone(&clock));
    let fixed = service(Flavour::Stable, clock);
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &broken.url());
    let report = ReportFile::new();
    let mut trident = Trident::spawn(&["--targets", file.arg(), "--report", report.arg()]);
    drive(&trident, 40);
    file.write(&targets_text(&p.url(), &s.url(), &fixed.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    let mut client = trident.client();
    for i in 0..40 {
        client.exchange(&get(&format!("/users/{i}")));
    }
    trident.wait_blocks(120, WAIT);
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.output());
    let stdout = trident.stdout();
    let all = summaries(&stdout);
    assert_eq!(all.len(), 2, "{stdout}");
    assert!(
        all[0][0].starts_with("SUMMARY epoch 0 (reloaded): 80 exchanges"),
        "{:?}",
        all[0]
    );
    assert_eq!(regressions(&all[0]).len(), 1);
    assert!(
        all[1][0].starts_with("SUMMARY epoch 1 (final): 40 exchanges"),
        "{:?}",
        all[1]
    );
    assert!(regressions(&all[1]).is_empty(), "{:?}", all[1]);
    assert_eq!(
        all[1].last().map(String::as_str),
        Some("VERDICT candidate: FAIL — epoch 0 regressed (epoch 1 passes)")
    );
    // The old epoch's summary came after every block of its own (a few of the new one's
    // may come before it: they count apart).
    let old_summary = stdout.find("SUMMARY epoch 0").expect("epoch 0 summary");
    let blocks = parse_blocks(&stdout).expect("blocks");
    let last_old = blocks
        .iter()
        .map(|b| b.id)
        .filter(|&id| id <= 80)
        .max()
        .expect("old blocks");
    let last_old_at = stdout
        .find(&format!("REQUEST {last_old} "))
        .expect("the block");
    assert!(last_old_at < old_summary);
    let json = report.read();
    let epochs = json["epochs"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 2);
    assert_eq!(
        (epochs[0]["epoch"].as_u64(), epochs[1]["epoch"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(json["failed_epochs"], serde_json::json!([0]));
}

/// Exchanges in flight at a reload count in the epoch they began in, however long the old
/// candidate takes, though the new epoch's come first: a regressing candidate slower than its
/// replacement is still caught.
#[test]
fn a_reload_waits_for_the_old_epochs_slow_exchanges() {
    let p = Upstream::start(|_| Reply::ok("stable"));
    let s = Upstream::start(|_| Reply::ok("stable"));
    let slow = Upstream::start(|_| Reply::ok("broken").delay(Duration::from_millis(1500)));
    let fixed = Upstream::start(|_| Reply::ok("stable"));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &slow.url());
    let mut trident =
        Trident::spawn(&["--targets", file.arg(), "--exit-code", "--min-samples", "5"]);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let mut client = trident.client();
            std::thread::spawn(move || client.exchange(&get(&format!("/item/{i}"))).status)
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    // The primary answered all eight; the old candidate has all eight still to answer.
    assert!(trident.blocks().is_empty(), "{}", trident.output());
    file.write(&targets_text(&p.url(), &s.url(), &fixed.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    assert_eq!(trident.client().exchange(&get("/item/new")).status, 200);
    trident.wait_blocks(9, WAIT);
    assert_eq!(stop(&mut trident), Some(1), "{}", trident.output());
    let stdout = trident.stdout();
    let all = summaries(&stdout);
    assert_eq!(all.len(), 2, "{stdout}");
    assert!(
        all[0][0].starts_with("SUMMARY epoch 0 (reloaded): 8 exchanges, 0 not compared;"),
        "{:?}",
        all[0]
    );
    assert_eq!(regressions(&all[0]).len(), 1, "{:?}", all[0]);
    assert!(
        all[1][0].starts_with("SUMMARY epoch 1 (final): 1 exchange, 0 not compared;"),
        "{:?}",
        all[1]
    );
    assert_eq!(
        all[1].last().map(String::as_str),
        Some("VERDICT candidate: FAIL — epoch 0 regressed (epoch 1 undecided)")
    );
}

/// A summary larger than stdout's queue (1 MiB: 500 endpoints, each with 17 long-named
/// fields the candidate changes, 16 of them listed) reaches a reader that keeps reading,
/// whole.
#[test]
fn a_summary_larger_than_the_stdout_queue_is_written_whole() {
    const ENDPOINTS: usize = 500;
    const ROUNDS: usize = 1;
    let json_service = |changes: bool| {
        Upstream::start(move |_| {
            let fields: Vec<String> = (0..17)
                .map(|field| {
                    format!(
                        r#""a_field_with_a_long_descriptive_name_like_some_services_have_{field:03}":{}"#,
                        u8::from(changes)
                    )
                })
                .collect();
            Reply::ok(format!(
                r#"{{"a_record_with_a_long_name":{{{}}}}}"#,
                fields.join(",")
            ))
            .header("Content-Type", "application/json")
        })
    };
    let (p, s, c) = (json_service(false), json_service(false), json_service(true));
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = Client::connect(trident.addr());
    for _ in 0..ROUNDS {
        for endpoint in 0..ENDPOINTS {
            // Letters, so that each path is an endpoint of its own, not an `{id}`.
            let name: String = [b'a' + (endpoint / 26) as u8, b'a' + (endpoint % 26) as u8]
                .iter()
                .map(|&b| b as char)
                .collect();
            assert_eq!(client.exchange(&get(&format!("/api/{name}"))).status, 200);
        }
    }
    trident.wait_blocks(ENDPOINTS * ROUNDS, WAIT);
    assert_eq!(stop(&mut trident), Some(0), "{}", trident.stderr());
    let stdout = trident.stdout();
    let summary = &stdout[stdout.find("SUMMARY ").expect("a summary")..];
    assert!(summary.len() > 1024 * 1024, "{} bytes", summary.len());
    assert_eq!(summaries(&stdout).len(), 1);
    assert!(
        summary.ends_with(
            "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a verdict \
             needs (500 endpoints flagged on too few samples)\n"
        ),
        "{}",
        &summary[summary.len() - 200..]
    );
    assert!(
        !trident.stderr().contains("dropped"),
        "{}",
        trident.stderr()
    );
}
