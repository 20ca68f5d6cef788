//! A host name with several addresses: a connection that cannot be made to one is made to
//! the next, and the reactor remembers which one answered. The system resolver cannot be
//! told what to answer (this host's `localhost` has one address), so these tests run the
//! proxy in-process, its targets resolved by the test; upstreams and clients are real
//! sockets as everywhere else.

mod support;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::hostile::Blackhole;
use support::tls::{PemFile, TestCa, TlsUpstream};
use support::{get, parse_blocks, refused_addr, Block, Client, Upstream};
use trident::cli::Config;
use trident::report::{self, SummarySignal};
use trident::targets::Targets;
use trident::{Control, Proxy};

/// The candidate's connect deadline in these tests.
const CONNECT_TIMEOUT_MS: u64 = 300;

/// stdout of the in-process proxy.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// trident in this process, its three targets named `primary.test`, `secondary.test` and
/// `candidate.test`, each resolving to the addresses given, in that order.
struct InProcess {
    addr: SocketAddr,
    control: Control,
    /// The leader first.
    reactors: Vec<JoinHandle<io::Result<()>>>,
    reporter: JoinHandle<report::Finished>,
    out: Captured,
}

/// How the in-process proxy runs.
struct Setup {
    /// `--dns-refresh`.
    dns_refresh: Option<Duration>,
    /// `--reactors`.
    reactors: usize,
    /// Upstream connections are pooled; by default each exchange opens its own (so each
    /// one chooses an address).
    keep_alive: bool,
    /// `--format json`.
    json: bool,
    /// The candidate is `https://candidate.test`, verified against this CA file.
    https_candidate: Option<PathBuf>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            dns_refresh: None,
            reactors: 1,
            keep_alive: false,
            json: false,
            https_candidate: None,
        }
    }
}

/// The test's resolver: what it answers for `primary.test`, `secondary.test` and
/// `candidate.test` (`None`: the lookup fails), and how often it was asked for the candidate.
#[derive(Clone)]
struct Answers {
    now: Arc<Mutex<[Option<Vec<SocketAddr>>; 3]>>,
    candidate_lookups: Arc<AtomicUsize>,
}

impl Answers {
    fn new(addresses: [Vec<SocketAddr>; 3]) -> Answers {
        Answers {
            now: Arc::new(Mutex::new(addresses.map(Some))),
            candidate_lookups: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Each name resolves to its upstream's one address.
    fn each(upstreams: [&Upstream; 3]) -> Answers {
        Answers::new(upstreams.map(|up| vec![up.addr()]))
    }

    /// From now on `candidate.test` resolves to `answer`.
    fn set_candidate(&self, answer: Option<Vec<SocketAddr>>) {
        self.now.lock().unwrap()[2] = answer;
    }

    fn resolve(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        let index = ["primary.test", "secondary.test", "candidate.test"]
            .iter()
            .position(|name| *name == host)
            .expect("a name of the test");
        let answer = self.now.lock().unwrap()[index].clone();
        if index == 2 {
            self.candidate_lookups.fetch_add(1, Ordering::SeqCst);
        }
        answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
    }

    /// Waits until the candidate's name was looked up with the answer set now: two more
    /// lookups than so far (one may have read the answer before).
    fn wait_lookup(&self) {
        let before = self.candidate_lookups.load(Ordering::SeqCst);
        let looked_up = support::wait_until(Duration::from_secs(5), || {
            self.candidate_lookups.load(Ordering::SeqCst) >= before + 2
        });
        assert!(looked_up, "the candidate's name was not looked up again");
    }
}

impl InProcess {
    fn start(addresses: [Vec<SocketAddr>; 3]) -> InProcess {
        InProcess::resolving(&Answers::new(addresses), Setup::default())
    }

    /// The names resolve to what `answers` holds at each lookup: when the targets are loaded
    /// and, with `setup.dns_refresh`, every so often after.
    fn resolving(answers: &Answers, setup: Setup) -> InProcess {
        let scheme = match setup.https_candidate {
            Some(_) => "https",
            None => "http",
        };
        let text = format!(
            "primary = http://primary.test\nsecondary = http://secondary.test\n\
             candidate = {scheme}://candidate.test connect_timeout={CONNECT_TIMEOUT_MS}\n"
        );
        let answers = answers.clone();
        let resolve = move |host: &str, _port: u16| answers.resolve(host);
        let targets = Targets::parse_with(&text, "t.conf", &resolve).expect("targets");
        let format = if setup.json {
            report::Format::Json
        } else {
            report::Format::Text
        };
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            timeout: Duration::from_secs(5),
            close_connections: !setup.keep_alive,
            dns_refresh: setup.dns_refresh,
            reactors: setup.reactors,
            ca_file: setup.https_candidate,
            report: report::Settings {
                format,
                ..report::Settings::default()
            },
            ..Config::default()
        };
        let mut proxy = Proxy::bind(&config, targets).expect("bind");
        proxy.set_resolver(resolve);
        let addr = proxy.local_addr();
        let control = proxy.control();
        let out = Captured::default();
        let (report_tx, reporter) = report::spawn(
            Box::new(out.clone()),
            config.report.clone(),
            SummarySignal::manual(),
        )
        .expect("reporting thread");
        let followers: Vec<Proxy> = (1..setup.reactors)
            .map(|_| proxy.follower().expect("another reactor"))
            .collect();
        let mut running = vec![];
        for follower in followers {
            let report_tx = report_tx.clone();
            running.push(thread::spawn(move || follower.run(report_tx)));
        }
        running.insert(0, thread::spawn(move || proxy.run(report_tx)));
        InProcess {
            addr,
            control,
            reactors: running,
            reporter,
            out,
        }
    }

    /// Sends `n` GETs one after the other, each on its own connection, and returns the
    /// primary's bodies as the clients saw them.
    fn send(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let mut client = Client::connect(self.addr);
                let response = client.exchange(&get(&format!("/{i}")));
                assert_eq!(
                    response.status,
                    200,
                    "request {i}: {}",
                    response.body_text()
                );
                response.body_text()
            })
            .collect()
    }

    /// Sends `n` GETs, each exchange over (all three legs) before the next starts; `sent`
    /// counts the exchanges so far.
    fn send_in_turn(&self, sent: &mut usize, n: usize) {
        for _ in 0..n {
            self.send(1);
            *sent += 1;
            self.wait_blocks(*sent);
        }
    }

    /// Sends in turn until the candidate's `after` upstream got a request (5 s at most).
    fn send_until_moved_to(&self, after: &Upstream, sent: &mut usize) {
        let moved = support::wait_until(Duration::from_secs(5), || {
            self.send_in_turn(sent, 1);
            after.request_count() > 0
        });
        assert!(moved, "the candidate's new address got no request");
    }

    /// Waits until `n` blocks are out (all three legs of `n` exchanges over).
    fn wait_blocks(&self, n: usize) {
        let printed = || {
            let out = String::from_utf8_lossy(&self.out.0.lock().unwrap()).into_owned();
            parse_blocks(&out).map_or(0, |blocks| blocks.len())
        };
        assert!(
            support::wait_until(Duration::from_secs(5), || printed() >= n),
            "{} blocks, not {n}",
            printed()
        );
    }

    /// Stops the proxy, lets it drain, and returns its blocks in exchange order.
    fn stop(self) -> Vec<Block> {
        self.stop_with_output().0
    }

    /// `stop`, and stdout as written.
    fn stop_with_output(self) -> (Vec<Block>, String) {
        let out = self.stop_raw();
        let mut blocks = parse_blocks(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        blocks.sort_by_key(|block| block.id);
        (blocks, out)
    }

    /// Stops the proxy, lets it drain, and returns stdout as written.
    fn stop_raw(self) -> String {
        self.control.shutdown();
        for reactor in self.reactors {
            reactor.join().expect("reactor thread").expect("reactor");
        }
        self.reporter.join().expect("reporting thread");
        let out = self.out.0.lock().unwrap().clone();
        String::from_utf8(out).expect("UTF-8")
    }
}

/// A leg's time in ms, from its RESPONSE line; panics on an error line.
fn elapsed_ms(block: &Block, leg: usize) -> f64 {
    block.legs[leg].elapsed_ms()
}

#[test]
fn a_name_whose_first_address_refuses_is_served_by_the_next() {
    let (primary, secondary, candidate) = support::three_named();
    let proxied = InProcess::start([
        vec![refused_addr(), primary.addr()],
        // connect(2) itself fails (TCP to the broadcast address): the next one is tried at once.
        vec![
            SocketAddr::from(([255, 255, 255, 255], 9)),
            secondary.addr(),
        ],
        // Two addresses, neither answering: the leg fails once, with the last one's error.
        vec![refused_addr(), refused_addr()],
    ]);
    let bodies = proxied.send(3);
    let blocks = proxied.stop();
    assert_eq!(
        bodies,
        ["primary GET /0", "primary GET /1", "primary GET /2"]
    );
    assert_eq!(blocks.len(), 3);
    for block in &blocks {
        assert_eq!(block.primary().response().0, 200, "{}", block.text);
        assert_eq!(block.secondary().response().0, 200, "{}", block.text);
        assert_eq!(
            block.candidate().error(),
            "connection refused",
            "{}",
            block.text
        );
    }
    assert_eq!(primary.request_count(), 3);
    assert_eq!(secondary.request_count(), 3);
    assert_eq!(candidate.request_count(), 0);
}

#[test]
fn a_name_whose_first_address_never_answers_costs_one_connect_deadline() {
    let (primary, secondary, candidate) = support::three_named();
    let blackhole = Blackhole::new();
    let proxied = InProcess::start([
        vec![primary.addr()],
        vec![secondary.addr()],
        vec![blackhole.addr(), candidate.addr()],
    ]);
    // The first exchange's candidate leg is over before the next exchange starts (the
    // client waits for the primary only).
    let mut sent = 0;
    proxied.send_in_turn(&mut sent, 1);
    proxied.send(3);
    let blocks = proxied.stop();
    assert_eq!(blocks.len(), 4);
    let deadline = CONNECT_TIMEOUT_MS as f64;
    // The first exchange waits out the silent address, then is served by the next ...
    assert_eq!(
        blocks[0].candidate().response().0,
        200,
        "{}",
        blocks[0].text
    );
    assert!(elapsed_ms(&blocks[0], 2) >= deadline, "{}", blocks[0].text);
    // ... which the later connections go to first.
    for block in &blocks[1..] {
        assert_eq!(block.candidate().response().0, 200, "{}", block.text);
        assert!(elapsed_ms(block, 2) < deadline, "{}", block.text);
    }
    assert_eq!(candidate.request_count(), 4);
    assert_eq!(candidate.connections(), 4);
}

#[test]
fn a_name_that_moves_is_followed_without_a_reload() {
    followed_without_a_reload(1);
}

#[test]
fn a_name_that_moves_is_followed_by_every_reactor() {
    followed_without_a_reload(2);
}

fn followed_without_a_reload(reactors: usize) {
    let (primary, secondary, before) = support::three_named();
    let after = Upstream::named("moved");
    let answers = Answers::each([&primary, &secondary, &before]);
    let setup = Setup {
        dns_refresh: Some(Duration::from_millis(50)),
        reactors,
        ..Setup::default()
    };
    let proxied = InProcess::resolving(&answers, setup);
    proxied.send(2);
    proxied.wait_blocks(2);
    assert_eq!(before.request_count(), 2);

    // The candidate is redeployed elsewhere: within a few lookups trident follows it.
    answers.set_candidate(Some(vec![after.addr()]));
    let mut sent = 2;
    proxied.send_until_moved_to(&after, &mut sent);
    let moved_at = before.request_count();

    // A lookup that fails keeps the address it had. Each request comes on a connection
    // of its own, which the kernel gives either reactor: all of them moved.
    answers.set_candidate(None);
    answers.wait_lookup();
    proxied.send(10);
    sent += 10;
    proxied.wait_blocks(sent);
    let (blocks, out) = proxied.stop_with_output();
    assert_eq!(blocks.len(), sent);
    assert_eq!(
        before.request_count(),
        moved_at,
        "the old address is not used again"
    );
    assert_eq!(after.request_count() + moved_at, sent);
    for block in &blocks {
        assert_eq!(block.candidate().response().0, 200, "{}", block.text);
    }
    // The same targets all along: one epoch, so one summary, at shutdown (a reload's
    // epoch would have printed the first one's summary when the second began).
    assert_eq!(out.matches("SUMMARY ").count(), 1, "{out}");
}

#[test]
fn a_reload_of_command_line_targets_looks_their_names_up_again() {
    let (primary, secondary, before) = support::three_named();
    let after = Upstream::named("moved");
    let answers = Answers::each([&primary, &secondary, &before]);
    // No targets file, and no lookup due for an hour: only the reload can move it.
    let setup = Setup {
        dns_refresh: Some(Duration::from_secs(3600)),
        ..Setup::default()
    };
    let proxied = InProcess::resolving(&answers, setup);
    let mut sent = 0;
    proxied.send_in_turn(&mut sent, 1);
    answers.set_candidate(Some(vec![after.addr()]));
    proxied.control.reload();
    proxied.send_until_moved_to(&after, &mut sent);
    proxied.stop();
    assert_eq!(before.request_count() + after.request_count(), sent);
}

#[test]
fn pooled_connections_to_an_address_a_name_left_are_closed() {
    let (primary, secondary, before) = support::three_named();
    let after = Upstream::named("moved");
    let answers = Answers::each([&primary, &secondary, &before]);
    let setup = Setup {
        dns_refresh: Some(Duration::from_millis(50)),
        keep_alive: true,
        ..Setup::default()
    };
    let proxied = InProcess::resolving(&answers, setup);
    // Each exchange over (its candidate leg too) before the next: they reuse one pooled
    // connection to the candidate.
    let mut sent = 0;
    proxied.send_in_turn(&mut sent, 3);
    assert_eq!(before.connections(), 1);
    assert_eq!(before.closed_connections(), 0);

    answers.set_candidate(Some(vec![after.addr()]));
    // The idle connection to the old address closes at the lookup, not at its idle timeout.
    before.wait_closed(1, Duration::from_secs(5));
    proxied.send(2);
    proxied.wait_blocks(5);
    proxied.stop();
    assert_eq!(before.request_count(), 3);
    assert_eq!(after.request_count(), 2);
}

#[test]
fn the_json_line_names_the_address_each_leg_went_to() {
    let (primary, secondary, _) = support::three_named();
    let last = refused_addr();
    let answers = Answers::new([
        vec![refused_addr(), primary.addr()],
        vec![secondary.addr()],
        vec![refused_addr(), last],
    ]);
    let setup = Setup {
        json: true,
        ..Setup::default()
    };
    let proxied = InProcess::resolving(&answers, setup);
    proxied.send(1);
    let out = proxied.stop_raw();
    let line: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("a line")).expect("JSON");
    // The address that answered, and for a leg whose every address refused, the last tried.
    assert_eq!(
        line["primary"]["upstream"],
        primary.addr().to_string(),
        "{line}"
    );
    assert_eq!(
        line["secondary"]["upstream"],
        secondary.addr().to_string(),
        "{line}"
    );
    assert_eq!(line["candidate"]["upstream"], last.to_string(), "{line}");
    assert_eq!(line["candidate"]["error_kind"], "refused", "{line}");
}

#[test]
fn an_https_name_served_by_its_second_address_is_verified_and_pooled_by_its_name() {
    let (primary, secondary, _) = support::three_named();
    let ca = TestCa::new("addresses test CA");
    let ca_file = PemFile::new("ca", &ca.pem());
    let candidate = TlsUpstream::named("candidate", &ca.issue(&["candidate.test"]));
    let answers = Answers::new([
        vec![primary.addr()],
        vec![secondary.addr()],
        vec![refused_addr(), candidate.addr()],
    ]);
    let setup = Setup {
        keep_alive: true,
        https_candidate: Some(ca_file.path().to_path_buf()),
        ..Setup::default()
    };
    let proxied = InProcess::resolving(&answers, setup);
    let mut sent = 0;
    proxied.send_in_turn(&mut sent, 3);
    let blocks = proxied.stop();
    // The certificate was checked for the name, whatever the address, and the session made
    // to the second address served the later requests from the pool.
    for block in &blocks {
        assert_eq!(block.candidate().response().0, 200, "{}", block.text);
    }
    assert_eq!(candidate.requests().len(), 3);
    assert_eq!(candidate.connections(), 1);
}

#[test]
fn a_candidate_not_yet_in_dns_is_followed_once_its_name_resolves() {
    unresolved_at_start(Setup {
        dns_refresh: Some(Duration::from_millis(50)),
        ..Setup::default()
    });
}

#[test]
fn with_dns_refresh_off_a_reload_looks_an_unresolved_name_up() {
    unresolved_at_start(Setup::default());
}

/// trident starts with the candidate's name unresolved: the primary serves every client and
/// the candidate's leg fails at once, until the name resolves (at the next lookup, or with
/// `--dns-refresh off` at a reload).
fn unresolved_at_start(setup: Setup) {
    let (primary, secondary, candidate) = support::three_named();
    let answers = Answers::each([&primary, &secondary, &candidate]);
    answers.set_candidate(None);
    let refresh = setup.dns_refresh.is_some();
    let proxied = InProcess::resolving(&answers, setup);
    let mut sent = 0;
    proxied.send_in_turn(&mut sent, 2);

    answers.set_candidate(Some(vec![candidate.addr()]));
    if !refresh {
        proxied.control.reload();
    }
    proxied.send_until_moved_to(&candidate, &mut sent);
    let (blocks, out) = proxied.stop_with_output();
    assert_eq!(blocks.len(), sent);
    for block in &blocks[..2] {
        assert_eq!(block.primary().response().0, 200, "{}", block.text);
        assert_eq!(block.secondary().response().0, 200, "{}", block.text);
        assert_eq!(
            block.candidate().error(),
            "unresolved host name",
            "{}",
            block.text
        );
    }
    assert_eq!(blocks[sent - 1].candidate().response().0, 200);
    assert_eq!(primary.request_count(), sent);
    // The same targets, now with an address: the comparison goes on in one epoch.
    assert_eq!(out.matches("SUMMARY ").count(), 1, "{out}");
}
