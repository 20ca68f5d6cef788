//! Signals against the real binary: SIGHUP re-reads the targets file (a valid one takes effect
//! for new exchanges, a broken one is logged with FILE:LINE and ignored), and SIGTERM/SIGINT
//! drain what is in flight and exit 0; a second abandons it, a third exits at once (4).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn sighup_with_a_new_candidate_sends_later_requests_to_it() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let (old, new) = (Upstream::named("old"), Upstream::named("new"));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/before")).status, 200);
    old.wait_requests(1, WAIT);

    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    // The pooled connection to the dropped candidate is closed.
    old.wait_closed(1, WAIT);

    // The connection opened before the reload still works, and uses the new targets.
    assert_eq!(
        client.exchange(&get("/after-same-connection")).body_text(),
        "primary GET /after-same-connection"
    );
    assert_eq!(
        trident
            .client()
            .exchange(&get("/after-new-connection"))
            .status,
        200
    );
    assert_eq!(
        sorted_targets(&new.wait_requests(2, WAIT)),
        ["/after-new-connection", "/after-same-connection"]
    );
    trident.wait_blocks(3, WAIT);
    assert_eq!(
        old.request_count(),
        1,
        "the old candidate still gets traffic"
    );
    assert_eq!(p.request_count(), 3);
}

#[test]
fn sighup_lets_exchanges_in_flight_finish_on_the_old_targets() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let old = Upstream::start(|_| Reply::ok("old, slowly").delay(Duration::from_millis(800)));
    let new = Upstream::named("new");
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let trident = Trident::spawn(&["--targets", file.arg(), "--timeout", "3000"]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/in-flight")).status, 200);
    old.wait_requests(1, WAIT);
    // The candidate's leg is still waiting on the old upstream's delayed answer.
    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(
        blocks[0].candidate().response(),
        (200, 11),
        "{}",
        blocks[0].text
    );
    assert_eq!(new.request_count(), 0);
    // Once its exchange is over, the connection to the dropped target is not kept.
    old.wait_closed(1, WAIT);
    assert_eq!(client.exchange(&get("/next")).status, 200);
    assert_eq!(new.wait_requests(1, WAIT)[0].target, "/next");
    assert_eq!(old.request_count(), 1);
}

/// `max_inflight=` bounds the legs to a target, not to a role: after a reload away from a
/// candidate whose legs hang, the new candidate takes requests at once rather than being
/// skipped as saturated until the old legs time out.
#[test]
fn sighup_away_from_a_saturated_candidate_uses_the_new_one_at_once() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let old = Upstream::start(|_| Reply::ok("old, slowly").delay(Duration::from_millis(2500)));
    let new = Upstream::named("new");
    let bounded = |url: String| format!("{url} max_inflight=1");
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &bounded(old.url()));
    let trident = Trident::spawn(&["--targets", file.arg(), "--timeout", "4000"]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/hung")).status, 200);
    old.wait_requests(1, WAIT);
    // The old candidate's one slot is taken: a second request would skip it.
    assert_eq!(client.exchange(&get("/saturated")).status, 200);
    let saturated = trident.wait_blocks(1, WAIT);
    assert_eq!(
        saturated[0].candidate().outcome,
        Outcome::Other("skipped: saturated".to_string()),
        "{}",
        saturated[0].text
    );

    file.write(&targets_text(&p.url(), &s.url(), &bounded(new.url())));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    let started = Instant::now();
    assert_eq!(client.exchange(&get("/after")).status, 200);
    let after = trident
        .wait_blocks(2, WAIT)
        .into_iter()
        .find(|b| b.target == "/after")
        .expect("the exchange after the reload is reported");
    assert_eq!(after.candidate().response().0, 200, "{}", after.text);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "the new candidate waited for the old one's leg"
    );
    assert_eq!(new.wait_requests(1, WAIT)[0].target, "/after");
    // The old leg still ends on its own.
    let blocks = trident.wait_blocks(3, WAIT);
    let hung = blocks.iter().find(|b| b.target == "/hung").expect("/hung");
    assert_eq!(hung.candidate().response().0, 200, "{}", hung.text);
}

/// A reload that keeps a saturated candidate (an option changed, `host=` too, or the same
/// candidate back after another) keeps its legs' count: each such reload gave it a fresh `max_inflight=`,
/// and 20 of them let a hung candidate hold 63 legs at `max_inflight=3` (hunt 78).
#[test]
fn sighup_that_keeps_a_saturated_candidate_keeps_it_saturated() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let hung = Upstream::start(|_| Reply::ok("slowly").delay(Duration::from_millis(3000)));
    let other = Upstream::named("other");
    let with = |url: &str, timeout: u32| format!("{url} max_inflight=1 timeout={timeout}");
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &with(&hung.url(), 4000));
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/hung")).status, 200);
    hung.wait_requests(1, WAIT);
    let mut reloads = 0;
    let mut reload = |candidate: String| {
        file.write(&targets_text(&p.url(), &s.url(), &candidate));
        trident.signal("HUP");
        reloads += 1;
        let deadline = Instant::now() + WAIT;
        while trident.stderr().matches("targets reloaded").count() < reloads {
            assert!(Instant::now() < deadline, "reload {reloads} not logged");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Its timeout changed, then another candidate and the hung one back.
    reload(with(&hung.url(), 4001));
    client.exchange(&get("/option-changed"));
    reload(with(&other.url(), 4001));
    reload(with(&hung.url(), 4001));
    client.exchange(&get("/back"));
    // What is sent to it changed, not the upstream (hunt 81).
    reload(format!("{} host=target", with(&hung.url(), 4001)));
    client.exchange(&get("/host-target"));
    let blocks = trident.wait_blocks(3, WAIT);
    for block in &blocks {
        assert_eq!(
            block.candidate().outcome,
            Outcome::Other("skipped: saturated".to_string()),
            "{}",
            block.text
        );
    }
    assert_eq!(hung.request_count(), 1);
}

#[test]
fn sighup_with_a_broken_targets_file_keeps_the_old_targets() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let (old, new) = (Upstream::named("old"), Upstream::named("new"));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/one")).status, 200);

    // Line 3 names a role that does not exist.
    file.write(&format!(
        "primary = {}\nsecondary = {}\ncanidate = {}\n",
        p.url(),
        s.url(),
        new.url()
    ));
    trident.signal("HUP");
    let line = trident.wait_stderr(&format!("{}:3", file.arg()), WAIT);
    assert!(
        !trident.stderr().contains("targets reloaded"),
        "a broken file was reported as reloaded: {line}"
    );

    assert_eq!(client.exchange(&get("/two")).status, 200);
    assert_eq!(trident.client().exchange(&get("/three")).status, 200);
    assert_eq!(
        sorted_targets(&old.wait_requests(3, WAIT)),
        ["/one", "/three", "/two"]
    );
    assert_eq!(new.request_count(), 0);

    // Fixed, it takes effect on the next SIGHUP.
    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    assert_eq!(client.exchange(&get("/four")).status, 200);
    assert_eq!(new.wait_requests(1, WAIT)[0].target, "/four");
    trident.wait_blocks(4, WAIT);
}

#[test]
fn sighup_the_instant_trident_says_it_listens_is_a_reload() {
    let (p, s, c) = (
        Upstream::named("primary"),
        Upstream::named("secondary"),
        Upstream::named("candidate"),
    );
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &c.url());
    // A supervisor may send SIGHUP as soon as it reads `listening on`; before the handlers
    // were installed first, about one such start in three was ended by the signal. Sent
    // straight from this process, not through kill(1), to land as early as a supervisor's.
    for _ in 0..10 {
        let trident = Trident::spawn(&["--targets", file.arg()]);
        let pid = i32::try_from(trident.pid()).expect("a pid");
        // SAFETY: kill(2) on the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        trident.wait_stderr("targets reloaded", WAIT);
        assert_eq!(trident.client().exchange(&get("/after")).status, 200);
    }
}

#[test]
fn sighup_with_a_fifo_for_targets_file_is_refused_and_later_reloads_still_work() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let (old, new) = (Upstream::named("old"), Upstream::named("new"));
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let trident = Trident::spawn(&["--targets", file.arg()]);

    // Nobody writes to the FIFO: a reload that opened or read it would wait forever, and
    // take every later SIGHUP with it.
    file.replace_with_fifo();
    trident.signal("HUP");
    trident.wait_stderr(&format!("{}: a FIFO, not a file", file.arg()), WAIT);
    assert_eq!(trident.client().exchange(&get("/one")).status, 200);
    assert_eq!(old.wait_requests(1, WAIT)[0].target, "/one");

    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    assert_eq!(trident.client().exchange(&get("/two")).status, 200);
    assert_eq!(new.wait_requests(1, WAIT)[0].target, "/two");
    trident.wait_blocks(2, WAIT);
}

#[test]
fn sighup_with_trident_itself_as_a_target_is_refused() {
    let (p, s, c) = three_named();
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &c.url());
    let mut trident = Trident::spawn(&["--targets", file.arg()]);
    let own = format!("http://{}", trident.addr());
    file.write(&targets_text(&p.url(), &s.url(), &own));
    trident.signal("HUP");
    trident.wait_stderr(
        &format!(
            "reload failed, keeping the old targets: {}: candidate {own} is trident's own \
             listen address",
            file.arg()
        ),
        WAIT,
    );
    // The old candidate still gets the shadow, and the request went round no loop.
    assert_eq!(trident.client().exchange(&get("/once")).status, 200);
    assert_eq!(c.wait_requests(1, WAIT)[0].target, "/once");
    // Once trident has drained and exited, every exchange it started has its block.
    trident.signal("TERM");
    trident.exits_0(WAIT);
    assert_eq!(trident.blocks().len(), 1, "{}", trident.output());
    assert_eq!(p.requests().len(), 1);
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_zero() {
    let slow = |_: &RecordedRequest| Reply::ok("slow answer").delay(Duration::from_millis(500));
    let (p, s, c) = three_serving(slow);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--timeout", "3000"]);
    let mut client = trident.client();
    client.send(&get("/in-flight"));
    p.wait_requests(1, WAIT);
    trident.signal("TERM");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "slow answer");
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(block.target, "/in-flight");
    for leg in &block.legs {
        assert_eq!(leg.response(), (200, 11), "{}", block.text);
    }
    assert!(trident.stdout().ends_with('\n'), "{}", trident.output());
}

/// A request sent just before a SIGTERM, on a connection trident had not even accepted when
/// the signal came, is served: the drain let such a client go before reading it, and the
/// close with its request unread was a reset.
#[test]
fn a_request_sent_just_before_sigterm_is_served() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    // Stopped, trident sees the connection, its request and the signal in one turn.
    trident.signal("STOP");
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    client.send(&get("/last"));
    trident.signal("TERM");
    trident.signal("CONT");
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(block.target, "/last");
}

/// So is one whose head had only partly come: let go with the idle clients, it was closed
/// with no answer at all (hunt 73).
#[test]
fn a_request_head_split_by_sigterm_is_served() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    client.send(b"GET /split HTTP/1.1\r\nHost: split.test\r\n");
    trident.signal("TERM");
    trident.wait_stderr("shutting down", WAIT);
    client.send(b"\r\n");
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(block.target, "/split");
    // What the drain waits for is named: it read `0 exchanges in flight` (hunt 74).
    assert!(
        trident.stderr().contains(
            "shutting down: 0 exchanges in flight, 1 client still sending a request head"
        ),
        "{}",
        trident.output()
    );
}

/// So is one waiting in the backlog at `--max-clients`, once the idle client holding the
/// place is let go (hunt 70: reset with the listener).
#[test]
fn a_request_waiting_at_max_clients_is_served_at_sigterm() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--max-clients", "1"]);
    let mut holder = trident.client();
    assert_eq!(holder.exchange(&get("/first")).status, 200);
    trident.wait_blocks(1, WAIT);
    let mut waiting = trident.client();
    waiting.set_read_timeout(WAIT);
    waiting.send(&get("/waiting"));
    // Not taken in while the place is held.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(trident.blocks().len(), 1, "{}", trident.output());
    trident.signal("TERM");
    let resp = waiting
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    trident.exits_0(WAIT);
    assert_eq!(trident.blocks().len(), 2, "{}", trident.output());
    drop(holder);
}

#[test]
fn sigint_exits_zero() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    assert_eq!(trident.client().exchange(&get("/x")).status, 200);
    trident.wait_blocks(1, WAIT);
    trident.signal("INT");
    trident.exits_0(WAIT);
}

#[test]
fn sigterm_with_an_idle_keepalive_client_exits_promptly() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--timeout", "2000"]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/idle")).status, 200);
    trident.wait_blocks(1, WAIT);
    let started = Instant::now();
    trident.signal("TERM");
    // Nothing is in flight: an idle keep-alive connection must not hold the exit.
    trident.exits_0(Duration::from_secs(4));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        started.elapsed()
    );
    client.expect_closed();
}

/// Ctrl-C twice: the second signal stops waiting for what is in flight (a primary that never
/// answers, under a long `--timeout`), and the summary and the report are written still.
#[test]
fn a_second_sigterm_abandons_what_is_in_flight_and_still_writes_the_summary() {
    let (p, s, c) = (
        Upstream::hung(),
        Upstream::named("secondary"),
        Upstream::named("candidate"),
    );
    let report = ReportFile::new();
    let mut trident = Trident::with_upstreams(
        &p,
        &s,
        &c,
        &["--timeout", "60000", "--report", report.arg()],
    );
    let mut client = trident.client();
    client.send(&get("/never"));
    p.wait_requests(1, WAIT);
    trident.signal("TERM");
    trident.wait_stderr("shutting down", WAIT);
    let started = Instant::now();
    trident.signal("TERM");
    trident.exits_0(WAIT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        trident
            .stderr()
            .contains("stopping at once (a second SIGTERM/SIGINT): 1 exchange in flight abandoned"),
        "{}",
        trident.stderr()
    );
    assert!(
        trident.stdout().contains("VERDICT candidate: "),
        "{}",
        trident.output()
    );
    // The abandoned exchange is counted, as not compared.
    assert!(
        trident
            .stdout()
            .contains("SUMMARY epoch 0 (final): 0 exchanges, 1 not compared"),
        "{}",
        trident.output()
    );
    assert_eq!(report.read()["written"], "shutdown");
}

/// The drain waits for each leg's own deadline: a candidate line's `timeout=` longer than
/// `--timeout` is not cut short by shutting down.
#[test]
fn sigterm_waits_for_a_leg_with_a_longer_timeout_of_its_own() {
    let (p, s) = (Upstream::named("primary"), Upstream::named("secondary"));
    let c = Upstream::start(|_| Reply::ok("late").delay(Duration::from_millis(2000)));
    let candidate = format!("{} timeout=6000", c.url());
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &candidate);
    let mut trident = Trident::spawn(&["--targets", file.arg(), "--timeout", "500"]);
    assert_eq!(trident.client().exchange(&get("/late")).status, 200);
    c.wait_requests(1, WAIT);
    trident.signal("TERM");
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(block.candidate().response(), (200, 4), "{}", block.text);
}

/// A third signal is the way out when the summary cannot be written (stdout's reader has
/// stopped): trident exits at once, with status 4 and without it.
#[test]
fn a_third_sigterm_exits_at_once_with_status_4() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &[]);
    trident.pause_stdout();
    // Blocks enough to fill the pipe (some 200 KiB), so that the final summary waits on the
    // reader (up to 5 s).
    let mut client = trident.client();
    let long = format!("/{}", "x".repeat(2000));
    for _ in 0..100 {
        assert_eq!(client.exchange(&get(&long)).status, 200);
    }
    trident.signal("TERM");
    trident.wait_stderr("stopped after", WAIT);
    let started = Instant::now();
    // Each once the last is in: two of the same signal pending at once are delivered as one.
    trident.signal_taken("TERM");
    trident.signal("TERM");
    let status = trident.wait_exit(WAIT);
    assert_eq!(status.code(), Some(4), "{}", trident.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !trident.stdout().contains("VERDICT"),
        "{}",
        trident.stderr()
    );
}

/// A final report that cannot be written (its directory went away during the run) is
/// trident's failure, status 4, whatever the verdict: a CI job must not take the run as done.
#[test]
fn a_final_report_that_cannot_be_written_exits_4() {
    let (dir, _path, _upstreams, mut trident) = one_exchange_reported_in("dir");
    std::fs::remove_dir_all(&dir).expect("remove the report's directory");
    stopped_with_status_4(&mut trident);
}

/// A trident writing `--report DIR/report.json` in a directory of its own (named after
/// `tag`), once it has printed one exchange's block.
fn one_exchange_reported_in(tag: &str) -> (PathBuf, PathBuf, [Upstream; 3], Trident) {
    let dir = std::env::temp_dir().join(format!("trident-report-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make the report's directory");
    let path = dir.join("report.json");
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--report", path.to_str().unwrap()]);
    assert_eq!(trident.client().exchange(&get("/x")).status, 200);
    trident.wait_blocks(1, WAIT);
    (dir, path, [p, s, c], trident)
}

/// SIGTERM, then exit status 4 for the report that could not be written.
fn stopped_with_status_4(trident: &mut Trident) {
    trident.signal("TERM");
    let status = trident.wait_exit(WAIT);
    assert_eq!(status.code(), Some(4), "{}", trident.stderr());
    assert!(
        trident
            .stderr()
            .contains("the final report could not be written"),
        "{}",
        trident.stderr()
    );
}

/// Nor does it leave its temporary file beside the report: on a full file system a partial
/// one kept the space after the exit (hunt 75).
#[test]
fn a_report_that_cannot_be_written_leaves_no_temporary_file() {
    let (dir, path, _upstreams, mut trident) = one_exchange_reported_in("tmp");
    // The report's name is taken by a directory: the temporary file is written, not renamed.
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir(&path).expect("a directory in the report's place");
    stopped_with_status_4(&mut trident);
    let left: Vec<String> = std::fs::read_dir(&dir)
        .expect("the report's directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(left, ["report.json"], "{}", trident.stderr());
}

/// A SIGHUP while trident drains is not installed: the new targets could take no request,
/// and their empty epoch became the final summary (UNDECIDED where the traffic seen passed).
#[test]
fn a_sighup_while_draining_is_ignored() {
    let p = Upstream::named("primary");
    let slow = |_: &RecordedRequest| Reply::ok("slow").delay(Duration::from_millis(1200));
    let (s, old, new) = (
        Upstream::start(slow),
        Upstream::start(slow),
        Upstream::named("new"),
    );
    let file = TargetsFile::for_urls(&p.url(), &s.url(), &old.url());
    let mut trident = Trident::spawn(&["--targets", file.arg(), "--timeout", "3000"]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/in-flight")).status, 200);
    trident.signal("TERM");
    trident.wait_stderr("shutting down", WAIT);
    file.write(&targets_text(&p.url(), &s.url(), &new.url()));
    trident.signal("HUP");
    trident.wait_stderr("reload asked while shutting down: ignored", WAIT);
    trident.exits_0(WAIT);
    let stdout = trident.stdout();
    assert!(
        stdout.contains("SUMMARY epoch 0 (final): 1 exchange,"),
        "{}",
        trident.output()
    );
    assert!(!stdout.contains("SUMMARY epoch 1"), "{}", trident.output());
    assert!(
        !trident.stderr().contains("targets reloaded"),
        "{}",
        trident.output()
    );
}

/// While trident drains, its listener is closed: a new client is refused at once (and can
/// go elsewhere), not left in the backlog to be reset when trident exits.
#[test]
fn a_draining_trident_refuses_new_connections() {
    let slow = |_: &RecordedRequest| Reply::ok("slow").delay(Duration::from_millis(1500));
    let (p, s, c) = three_serving(slow);
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--timeout", "3000"]);
    let mut client = trident.client();
    client.send(&get("/in-flight"));
    p.wait_requests(1, WAIT);
    trident.signal("TERM");
    trident.wait_stderr("shutting down", WAIT);
    let refused = std::net::TcpStream::connect(trident.addr()).map_err(|e| e.kind());
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{}",
        trident.stderr()
    );
    assert_eq!(client.read_response(false).status, 200);
    trident.exits_0(WAIT);
}
