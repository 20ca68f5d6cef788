//! What users coming from httptee rely on: sampling (`--shadow-percent`, `--sample-key`),
//! safe shadowing (`--shadow-methods`) and the role header, the Host field per leg
//! (`host=keep|target|NAME`), the client's address (`--forward-client-ip`), one request per
//! connection (`--close-connections`), and `--check`. TLS has its own file (tests/tls.rs).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::tls::{PemFile, TestCa};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// `--primary URL --secondary URL --candidate URL` for three upstreams, as owned strings.
fn url_args(p: &Upstream, s: &Upstream, c: &Upstream) -> Vec<String> {
    vec![
        "--primary".into(),
        p.url(),
        "--secondary".into(),
        s.url(),
        "--candidate".into(),
        c.url(),
    ]
}

/// Runs trident with exactly `args` (nothing added: the defaults are the defaults).
fn spawn_exact(args: &[String]) -> Trident {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Trident::spawn_exact(&args)
}

/// Sends `requests` over `threads` keep-alive connections (request `i` on connection
/// `i % threads`), checking that the primary answered each; returns once all are answered.
fn send_all(trident: &Trident, requests: Vec<Vec<u8>>, threads: usize) {
    let requests = Arc::new(requests);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let requests = Arc::clone(&requests);
            let addr = trident.addr();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for request in requests.iter().skip(t).step_by(threads) {
                    let resp = client.exchange(request);
                    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(request));
                    assert!(resp.body_text().starts_with("primary "), "{resp:?}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread failed");
    }
}

/// Whether a block's shadow legs were sent: both answered, or both skipped for `reason`.
/// A block with one shadow sent and the other skipped fails the test.
fn shadowed(block: &Block, reason: &str) -> bool {
    let skipped = Outcome::Other(format!("skipped: {reason}"));
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    let sent = |leg: &support::Leg| match &leg.outcome {
        Outcome::Response { status: 200, .. } => true,
        other if *other == skipped => false,
        other => panic!("{} leg: {other:?}\n{}", leg.role, block.text),
    };
    let (s, c) = (sent(block.secondary()), sent(block.candidate()));
    assert_eq!(s, c, "one shadow leg sent, the other not:\n{}", block.text);
    s
}

/// The range a binomial count of `n` draws with probability `p` falls in but for a
/// five-sigma accident (about one run in two million).
fn five_sigma(n: usize, p: f64) -> (f64, f64) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (mean - 5.0 * sigma, mean + 5.0 * sigma)
}

/// Runs `n` GETs through trident with `--shadow-percent percent` and returns how many were
/// shadowed, after checking every block, the upstreams' counts and the client's answers.
fn shadowed_count(percent: &str, n: usize) -> usize {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--shadow-percent", percent]);
    let requests = (0..n).map(|i| get(&format!("/r{i}"))).collect();
    send_all(&trident, requests, 4);
    let blocks = trident.wait_blocks(n, WAIT);
    assert_eq!(blocks.len(), n);
    let count = blocks.iter().filter(|b| shadowed(b, "sampling")).count();
    // A block is printed once all its legs are over, so the upstreams' counts are final.
    assert_eq!(p.request_count(), n, "the primary gets every request");
    assert_eq!(
        s.request_count(),
        count,
        "secondary requests = shadowed blocks"
    );
    assert_eq!(
        c.request_count(),
        count,
        "candidate requests = shadowed blocks"
    );
    count
}

#[test]
fn shadow_percent_30_shadows_about_30_percent_of_requests() {
    let n = 2000;
    let count = shadowed_count("30", n);
    let (low, high) = five_sigma(n, 0.30);
    assert!(
        (low..=high).contains(&(count as f64)),
        "{count} of {n} shadowed at 30%: outside {low:.0}..={high:.0}"
    );
}

#[test]
fn shadow_percent_takes_fractions() {
    let n = 2000;
    let count = shadowed_count("2.5", n);
    let (low, high) = five_sigma(n, 0.025);
    assert!(
        (low..=high).contains(&(count as f64)),
        "{count} of {n} shadowed at 2.5%: outside {low:.0}..={high:.0}"
    );
}

#[test]
fn shadow_percent_0_and_100_are_exact() {
    assert_eq!(shadowed_count("0", 300), 0);
    assert_eq!(shadowed_count("100", 300), 300);
}

#[test]
fn sample_key_shadows_all_of_a_users_requests_or_none() {
    // Sequential ids, as real user ids are: the hash must spread them, not only random keys.
    let users = 1000;
    let rounds = 2;
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(
        &p,
        &s,
        &c,
        &["--shadow-percent", "30", "--sample-key", "X-User"],
    );
    let mut requests = Vec::new();
    for round in 0..rounds {
        for user in 0..users {
            // The field name is matched case-insensitively.
            let name = if round == 1 { "x-user" } else { "X-User" };
            let user_id = format!("user-{user}");
            requests.push(request(
                "GET",
                &format!("/u/{user}/{round}"),
                &[("Host", "test.local"), (name, &user_id)],
                b"",
            ));
        }
    }
    send_all(&trident, requests, 4);
    let blocks = trident.wait_blocks(users * rounds, WAIT);
    let mut by_user: BTreeMap<usize, Vec<bool>> = BTreeMap::new();
    for block in &blocks {
        let user: usize = block.target.split('/').nth(2).unwrap().parse().unwrap();
        by_user
            .entry(user)
            .or_default()
            .push(shadowed(block, "sampling"));
    }
    assert_eq!(by_user.len(), users);
    for (user, sent) in &by_user {
        assert!(
            sent.iter().all(|&x| x == sent[0]),
            "user-{user}: some requests shadowed, some not: {sent:?}"
        );
    }
    let shadowed_users = by_user.values().filter(|sent| sent[0]).count();
    let (low, high) = five_sigma(users, 0.30);
    assert!(
        (low..=high).contains(&(shadowed_users as f64)),
        "{shadowed_users} of {users} users (user-0 .. user-{}) shadowed at 30%: outside \
         {low:.0}..={high:.0}",
        users - 1
    );
}

/// The seven methods a test sends, and whether each carries a body.
const METHODS: [(&str, bool); 7] = [
    ("GET", false),
    ("HEAD", false),
    ("OPTIONS", false),
    ("POST", true),
    ("PUT", true),
    ("DELETE", false),
    ("PATCH", true),
];

/// Sends each of `METHODS` to `/m/METHOD`; returns the blocks by method once all are in.
fn send_each_method(trident: &Trident) -> BTreeMap<String, Block> {
    let mut client = trident.client();
    for (method, has_body) in METHODS {
        let body: &[u8] = if has_body { b"data" } else { b"" };
        let resp = client.exchange(&request(
            method,
            &format!("/m/{method}"),
            &[("Host", "test.local")],
            body,
        ));
        assert_eq!(resp.status, 200, "{method}");
        if method != "HEAD" {
            assert_eq!(resp.body_text(), format!("primary {method} /m/{method}"));
        }
    }
    trident
        .wait_blocks(METHODS.len(), WAIT)
        .into_iter()
        .map(|b| (b.method.clone(), b))
        .collect()
}

/// Checks that exactly `shadowed_methods` reached the shadows, and every method the primary.
fn assert_shadowed_methods(
    (p, s, c): (&Upstream, &Upstream, &Upstream),
    blocks: &BTreeMap<String, Block>,
    shadowed_methods: &[&str],
) {
    for (method, _) in METHODS {
        let block = &blocks[method];
        let expected = shadowed_methods.contains(&method);
        assert_eq!(shadowed(block, "method"), expected, "{method}");
    }
    let mut all: Vec<String> = METHODS.iter().map(|(m, _)| format!("/m/{m}")).collect();
    all.sort();
    let mut shadow: Vec<String> = shadowed_methods.iter().map(|m| format!("/m/{m}")).collect();
    shadow.sort();
    assert_eq!(sorted_targets(&p.requests()), all, "primary");
    assert_eq!(sorted_targets(&s.requests()), shadow, "secondary");
    assert_eq!(sorted_targets(&c.requests()), shadow, "candidate");
    for up in [p, s, c] {
        for req in up.requests() {
            if req.method == "POST" || req.method == "PUT" || req.method == "PATCH" {
                assert_eq!(req.body, b"data", "{} {}", req.method, req.target);
            }
        }
    }
}

#[test]
fn by_default_only_get_head_and_options_reach_the_shadows() {
    let (p, s, c) = three_named();
    // No --shadow-methods at all (spawn_exact adds nothing): the default policy.
    let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    args.extend(url_args(&p, &s, &c));
    let trident = spawn_exact(&args);
    let blocks = send_each_method(&trident);
    assert_shadowed_methods((&p, &s, &c), &blocks, &["GET", "HEAD", "OPTIONS"]);
}

#[test]
fn shadow_methods_all_sends_every_method_to_all_three() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--shadow-methods", "all"]);
    let blocks = send_each_method(&trident);
    let every: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
    assert_shadowed_methods((&p, &s, &c), &blocks, &every);
}

#[test]
fn shadow_methods_list_names_exactly_the_methods_shadowed() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--shadow-methods", "GET,POST"]);
    let blocks = send_each_method(&trident);
    assert_shadowed_methods((&p, &s, &c), &blocks, &["GET", "POST"]);
}

/// Sends one GET (with `extra` fields) and returns what each upstream got, in role order.
fn one_get(extra_args: &[&str], fields: &[(&str, &str)]) -> [RecordedRequest; 3] {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, extra_args);
    let mut headers = vec![("Host", "test.local")];
    headers.extend_from_slice(fields);
    let resp = trident
        .client()
        .exchange(&request("GET", "/who", &headers, b""));
    assert_eq!(resp.status, 200);
    trident.wait_blocks(1, WAIT);
    [p, s, c].map(|up| up.wait_requests(1, WAIT)[0].clone())
}

const ROLES: [&str; 3] = ["primary", "secondary", "candidate"];

#[test]
fn every_leg_is_told_its_role_in_x_trident_role() {
    let got = one_get(&[], &[]);
    for (req, role) in got.iter().zip(ROLES) {
        assert_eq!(req.headers_named("X-Trident-Role"), [role], "{role}");
    }
}

#[test]
fn role_header_can_be_renamed() {
    let got = one_get(&["--role-header", "X-Shadow"], &[]);
    for (req, role) in got.iter().zip(ROLES) {
        assert_eq!(req.headers_named("X-Shadow"), [role], "{role}");
        assert!(
            !req.has_header("X-Trident-Role"),
            "{role}: {:?}",
            req.headers
        );
    }
}

#[test]
fn role_header_empty_sends_none() {
    let got = one_get(&["--role-header", ""], &[]);
    for (req, role) in got.iter().zip(ROLES) {
        assert!(
            !req.has_header("X-Trident-Role"),
            "{role}: {:?}",
            req.headers
        );
    }
}

#[test]
fn a_client_cannot_forge_the_role_header() {
    // A service that dry-runs writes it is told are shadowed must not be fooled into
    // dropping a real write by a client that sends the field itself.
    let got = one_get(&[], &[("X-Trident-Role", "candidate")]);
    for (req, role) in got.iter().zip(ROLES) {
        assert_eq!(
            req.headers_named("X-Trident-Role"),
            [role],
            "{role}: the client's own X-Trident-Role must not reach the upstream"
        );
    }
}

#[test]
fn host_per_leg_keep_target_and_literal() {
    let (p, s, c) = three_named();
    let file = TargetsFile::new(&format!(
        "primary   = {} host=keep\nsecondary = {} host=target\ncandidate = {} host=api.example.com\n",
        p.url(),
        s.url(),
        c.url()
    ));
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let resp = trident.client().exchange(&request(
        "GET",
        "/h11",
        &[("Host", "client.example:8080")],
        b"",
    ));
    assert_eq!(resp.status, 200);
    // HTTP/1.0 may leave Host out; every leg still needs one.
    let mut old = trident.client();
    old.send(b"GET /h10 HTTP/1.0\r\n\r\n");
    assert_eq!(old.read_response(false).status, 200);
    let blocks = trident.wait_blocks(2, WAIT);
    let block = blocks.iter().find(|b| b.target == "/h11").unwrap();
    assert_eq!(
        block.host, "client.example:8080",
        "the console shows the client's Host"
    );

    let s_authority = s.addr().to_string();
    let expected = [
        (&p, "client.example:8080", p.addr().to_string()),
        (&s, s_authority.as_str(), s_authority.clone()),
        (&c, "api.example.com", "api.example.com".to_string()),
    ];
    for (up, h11, h10) in expected {
        let got = up.wait_requests(2, WAIT);
        let with_host = find(&got, "/h11");
        assert_eq!(with_host.headers_named("Host"), [h11], "{}", up.addr());
        let without = find(&got, "/h10");
        assert_eq!(
            without.headers_named("Host"),
            [h10.as_str()],
            "{}",
            up.addr()
        );
    }
}

#[test]
fn field_rules_per_leg_replace_and_drop_the_clients_fields_until_a_reload_removes_them() {
    let (p, s, c) = three_named();
    let with_rules = format!(
        "primary   = {}\n\
         secondary = {} drop_header=Cookie\n\
         candidate = {} set_header=\"Authorization: Bearer staging #2\" drop_header=cookie \
         set_header=X-Trident-Role:shadow-test   # the candidate's own credentials\n",
        p.url(),
        s.url(),
        c.url()
    );
    let file = TargetsFile::new(&with_rules);
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let fields = [
        ("Host", "shop.example"),
        ("Authorization", "Bearer prod"),
        ("Cookie", "session=1"),
        ("Accept", "*/*"),
    ];
    let resp = trident
        .client()
        .exchange(&request("GET", "/ruled", &fields, b""));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body_text(),
        "primary GET /ruled",
        "the client's answer"
    );
    // (Authorization, Cookie, X-Trident-Role) each upstream received.
    let expected: [(&Upstream, [&[&str]; 3]); 3] = [
        (&p, [&["Bearer prod"], &["session=1"], &["primary"]]),
        (&s, [&["Bearer prod"], &[], &["secondary"]]),
        (&c, [&["Bearer staging #2"], &[], &["shadow-test"]]),
    ];
    let names = ["Authorization", "Cookie", "X-Trident-Role"];
    for (up, values) in expected {
        let got = up.wait_requests(1, WAIT);
        let req = find(&got, "/ruled");
        for (name, value) in names.iter().zip(values) {
            assert_eq!(req.headers_named(name), value, "{name} at {}", up.addr());
        }
        assert_eq!(req.headers_named("Accept"), ["*/*"], "{}", up.addr());
    }

    // The rules are part of the targets: a reload without them sends the client's fields.
    file.write(&format!(
        "primary = {}\nsecondary = {}\ncandidate = {}\n",
        p.url(),
        s.url(),
        c.url()
    ));
    trident.signal("HUP");
    trident.wait_stderr("targets reloaded", WAIT);
    let resp = trident
        .client()
        .exchange(&request("GET", "/plain", &fields, b""));
    assert_eq!(resp.status, 200);
    let got = c.wait_requests(2, WAIT);
    let req = find(&got, "/plain");
    assert_eq!(req.headers_named("Authorization"), ["Bearer prod"]);
    assert_eq!(req.headers_named("Cookie"), ["session=1"]);
    assert_eq!(req.headers_named("X-Trident-Role"), ["candidate"]);
}

#[test]
fn http10_request_without_host_gets_each_targets_authority() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(b"GET /old HTTP/1.0\r\nAccept: */*\r\n\r\n");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /old");
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(got.headers_named("Host"), [up.addr().to_string()]);
    }
}

#[test]
fn forward_client_ip_appends_to_x_forwarded_for_and_forwarded() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--forward-client-ip"]);
    let mut client = trident.client();
    // (target, fields the client sends, X-Forwarded-For and Forwarded the upstreams get)
    type Row = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let rows: [Row; 3] = [
        ("/none", vec![], "127.0.0.1", "for=127.0.0.1"),
        (
            "/one",
            vec![
                ("X-Forwarded-For", "203.0.113.7"),
                ("Forwarded", "for=203.0.113.7;proto=https"),
            ],
            "203.0.113.7, 127.0.0.1",
            "for=203.0.113.7;proto=https, for=127.0.0.1",
        ),
        (
            "/two",
            vec![
                ("X-Forwarded-For", "198.51.100.1"),
                ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
            ],
            "198.51.100.1, 203.0.113.7, 10.0.0.1, 127.0.0.1",
            "for=127.0.0.1",
        ),
    ];
    for (target, fields, _, _) in &rows {
        let mut headers = vec![("Host", "test.local")];
        headers.extend_from_slice(fields);
        assert_eq!(
            client
                .exchange(&request("GET", target, &headers, b""))
                .status,
            200
        );
    }
    for up in [&p, &s, &c] {
        let got = up.wait_requests(rows.len(), WAIT);
        for (target, _, xff, forwarded) in &rows {
            let req = find(&got, target);
            assert_eq!(req.headers_named("X-Forwarded-For"), [*xff], "{target}");
            assert_eq!(req.headers_named("Forwarded"), [*forwarded], "{target}");
        }
    }
}

#[test]
fn without_forward_client_ip_forwarding_fields_pass_unchanged() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/plain")).status, 200);
    let headers = [("Host", "test.local"), ("X-Forwarded-For", "203.0.113.7")];
    assert_eq!(
        client
            .exchange(&request("GET", "/xff", &headers, b""))
            .status,
        200
    );
    for up in [&p, &s, &c] {
        let got = up.wait_requests(2, WAIT);
        let plain = find(&got, "/plain");
        assert!(!plain.has_header("X-Forwarded-For"), "{:?}", plain.headers);
        assert!(!plain.has_header("Forwarded"), "{:?}", plain.headers);
        let xff = find(&got, "/xff");
        assert_eq!(xff.headers_named("X-Forwarded-For"), ["203.0.113.7"]);
        assert!(!xff.has_header("Forwarded"), "{:?}", xff.headers);
    }
}

#[test]
fn forward_client_ip_brackets_and_quotes_ipv6() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        eprintln!("note: skipping the IPv6 test, this machine cannot bind [::1]: {e}");
        return;
    }
    let (p, s, c) = three_named();
    let mut args: Vec<String> = ["--listen", "[::1]:0", "--shadow-methods", "all"]
        .map(String::from)
        .to_vec();
    args.push("--forward-client-ip".into());
    args.extend(url_args(&p, &s, &c));
    let trident = spawn_exact(&args);
    assert!(trident.addr().is_ipv6(), "{}", trident.addr());
    let resp = trident.client().exchange(&get("/v6"));
    assert_eq!(resp.status, 200);
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert_eq!(got.headers_named("X-Forwarded-For"), ["::1"]);
        // RFC 7239 §6: an IPv6 node is bracketed, and the value quoted (it holds ':').
        assert_eq!(got.headers_named("Forwarded"), ["for=\"[::1]\""]);
    }
}

/// A dual-stack listener (`[::]`) sees an IPv4 client as `::ffff:127.0.0.1`; upstreams are
/// told its IPv4 address, as an IPv4 listener would tell them.
#[test]
fn forward_client_ip_gives_an_ipv4_client_of_a_dual_stack_listener_as_ipv4() {
    if let Err(e) = TcpListener::bind("[::]:0") {
        eprintln!("note: skipping the dual-stack test, this machine cannot bind [::]: {e}");
        return;
    }
    let (p, s, c) = three_named();
    let mut args: Vec<String> = ["--listen", "[::]:0", "--forward-client-ip"]
        .map(String::from)
        .to_vec();
    args.extend(url_args(&p, &s, &c));
    let trident = spawn_exact(&args);
    let v4 = SocketAddr::from(([127, 0, 0, 1], trident.addr().port()));
    let resp = Client::connect(v4).exchange(&get("/v4"));
    assert_eq!(resp.status, 200);
    let got = &p.wait_requests(1, WAIT)[0];
    assert_eq!(got.headers_named("X-Forwarded-For"), ["127.0.0.1"]);
    assert_eq!(got.headers_named("Forwarded"), ["for=127.0.0.1"]);
}

#[test]
fn close_connections_gives_one_request_per_connection() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--close-connections"]);
    let n = 5;
    for i in 0..n {
        let mut client = trident.client();
        // An HTTP/1.1 request that would keep the connection open without the flag.
        let resp = client.exchange(&get(&format!("/c{i}")));
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("Connection"),
            Some("close"),
            "{:?}",
            resp.headers
        );
        client.expect_closed();
    }
    trident.wait_blocks(n, WAIT);
    for up in [&p, &s, &c] {
        let got = up.wait_requests(n, WAIT);
        assert_eq!(got.len(), n);
        assert_eq!(
            up.connections(),
            n,
            "{}: one connection per request",
            up.addr()
        );
        for req in &got {
            assert!(
                support::wire::lists_token(&req.headers, "Connection", "close"),
                "{:?}",
                req.headers
            );
        }
        up.wait_closed(n, WAIT);
    }
}

/// An upstream that ignores `Connection: close`: it answers every GET on a connection and
/// keeps it open until trident closes it. Counts accepted and peer-closed connections.
struct Stubborn {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed_by_peer: Arc<AtomicUsize>,
}

impl Stubborn {
    fn start() -> Stubborn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_peer = Arc::new(AtomicUsize::new(0));
        let (a, cl) = (Arc::clone(&accepted), Arc::clone(&closed_by_peer));
        // The threads end with the test process; nothing here blocks a test's end.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let cl = Arc::clone(&cl);
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let mut pending = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match stream.read(&mut chunk) {
                            Ok(0) => {
                                cl.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                            Err(_) => return,
                        }
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(reply).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Stubborn {
            addr,
            accepted,
            closed_by_peer,
        }
    }
}

#[test]
fn close_connections_closes_upstreams_that_would_keep_them_open() {
    let ups = [Stubborn::start(), Stubborn::start(), Stubborn::start()];
    let trident = Trident::with_addrs(
        ups[0].addr,
        ups[1].addr,
        ups[2].addr,
        &["--close-connections"],
    );
    let n = 4;
    for i in 0..n {
        let mut client = trident.client();
        let resp = client.exchange(&get(&format!("/s{i}")));
        assert_eq!((resp.status, resp.body_text().as_str()), (200, "ok"));
        client.expect_closed();
    }
    trident.wait_blocks(n, WAIT);
    for up in &ups {
        let closed = wait_until(WAIT, || up.closed_by_peer.load(Ordering::SeqCst) >= n);
        assert!(
            closed,
            "{}: trident closed {} of {n} upstream connections",
            up.addr,
            up.closed_by_peer.load(Ordering::SeqCst)
        );
        assert_eq!(up.accepted.load(Ordering::SeqCst), n, "{}", up.addr);
    }
}

// --check: validate and print, start nothing.

fn check(args: &[&str]) -> Finished {
    let mut all = vec!["--check"];
    all.extend_from_slice(args);
    run(&all, WAIT)
}

#[test]
fn check_prints_the_configuration_and_says_ok() {
    let file = TargetsFile::new(
        "# staging\n\
         primary   = http://127.0.0.1:9001 timeout=2500 host=target\n\
         secondary = http://127.0.0.1:9002 max_inflight=10\n\
         candidate = https://localhost:9443 tls_verify=off host=api.internal connect_timeout=300 \
         set_header=\"Authorization: Bearer s3cret\" drop_header=Cookie\n",
    );
    let leaf = TestCa::new("check CA").issue(&["localhost"]);
    let (cert, key) = leaf.files();
    // A busy address: --check must not try to listen on it (nor connect to the targets).
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let done = check(&[
        "--listen",
        &listen,
        "--targets",
        file.arg(),
        "--shadow-percent",
        "12.5",
        "--sample-key",
        "X-User",
        "--shadow-methods",
        "GET,POST",
        "--role-header",
        "X-Shadow",
        "--forward-client-ip",
        "--close-connections",
        "--dns-refresh",
        "2500",
        "--tls-cert",
        cert.arg(),
        "--tls-key",
        key.arg(),
    ]);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let out = &done.stdout;
    let line = |start: &str| -> &str {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{out}"))
    };
    assert!(line("listen").contains(&listen), "{out}");
    assert!(line("tls").contains(cert.arg()) && line("tls").contains(key.arg()));
    let primary = line("primary");
    for needle in ["http://127.0.0.1:9001", "timeout=2500ms", "host=target"] {
        assert!(primary.contains(needle), "{needle:?} not in {primary:?}");
    }
    let secondary = line("secondary");
    for needle in ["http://127.0.0.1:9002", "timeout=5000ms", "max_inflight=10"] {
        assert!(
            secondary.contains(needle),
            "{needle:?} not in {secondary:?}"
        );
    }
    let candidate = line("candidate");
    for needle in [
        "https://localhost:9443",
        "connect_timeout=300ms",
        "host=api.internal",
        "tls_verify=off",
        "set_header=Authorization",
        "drop_header=Cookie",
    ] {
        assert!(
            candidate.contains(needle),
            "{needle:?} not in {candidate:?}"
        );
    }
    assert!(!out.contains("s3cret"), "a set value is printed: {out}");
    let shadowing = line("shadowing");
    for needle in ["12.5%", "GET,POST", "X-User"] {
        assert!(
            shadowing.contains(needle),
            "{needle:?} not in {shadowing:?}"
        );
    }
    assert_eq!(line("dns refresh"), "dns refresh         2500ms", "{out}");
    let headers = line("headers");
    for needle in [
        "X-Shadow",
        "forward-client-ip=true",
        "close-connections=true",
    ] {
        assert!(headers.contains(needle), "{needle:?} not in {headers:?}");
    }
    assert_eq!(out.lines().last(), Some("configuration ok"), "{out}");
}

#[test]
fn check_with_url_flags_shows_the_defaults() {
    let done = check(&[
        "--primary",
        "http://127.0.0.1:9001",
        "--secondary",
        "http://127.0.0.1:9002",
        "--candidate",
        "http://127.0.0.1:9003",
    ]);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    for needle in [
        "100% of GET,HEAD,OPTIONS",
        "role=X-Trident-Role",
        "forward-client-ip=false",
        "close-connections=false",
        "configuration ok",
    ] {
        assert!(
            done.stdout.contains(needle),
            "{needle:?} not in\n{}",
            done.stdout
        );
    }
}

#[test]
fn check_reports_a_broken_targets_file_with_file_and_line() {
    let good = "primary = http://127.0.0.1:9001\nsecondary = http://127.0.0.1:9002\n";
    let rows = [
        (
            format!("{good}candidate = http://127.0.0.1:9003 tls_verify=maybe\n"),
            3,
            "tls_verify: \"maybe\" is not on or off",
        ),
        (
            "primary = http://127.0.0.1:9001 hots=x\n".to_string(),
            1,
            "unknown option \"hots\"",
        ),
        (
            format!("# c\n{good}candidate = ftp://127.0.0.1:9003\n"),
            4,
            "unsupported scheme \"ftp\"",
        ),
    ];
    for (text, line, message) in rows {
        let file = TargetsFile::new(&text);
        let done = check(&["--targets", file.arg()]);
        assert_eq!(done.status.code(), Some(2), "{text}\n{done:?}");
        let expected = format!("{}:{line}: ", file.arg());
        assert!(
            done.stderr.contains(&expected) && done.stderr.contains(message),
            "expected {expected:?} and {message:?} in {:?}",
            done.stderr
        );
        assert!(!done.stdout.contains("configuration ok"), "{}", done.stdout);
    }
}

#[test]
fn check_refuses_tls_files_it_cannot_use_and_names_them() {
    let ca = TestCa::new("check CA");
    let leaf = ca.issue(&["localhost"]);
    let other = ca.issue(&["localhost"]);
    let (cert, key) = leaf.files();
    let other_key = PemFile::new("other-key", &other.key_pem);
    let garbage = PemFile::new("garbage", "this is not PEM\n");
    let encrypted = PemFile::new(
        "encrypted",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    // OpenSSL's older form (`openssl rsa -des3 -traditional`): header lines in the section.
    let encrypted_traditional = PemFile::new(
        "encrypted-traditional",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
         DEK-Info: DES-EDE3-CBC,0123456789ABCDEF\n\nMIIBvTBXBgkqhkiG9w0BBQ0w\n\
         -----END RSA PRIVATE KEY-----\n",
    );
    let cert_pem = std::fs::read_to_string(cert.path()).unwrap();
    let cut_short = PemFile::new(
        "cut-short",
        &cert_pem[..cert_pem.find("-----END").expect("an END line")],
    );
    // A base64 line gone: still PEM, no longer a certificate.
    let mut lines: Vec<&str> = cert_pem.lines().collect();
    lines.remove(2);
    let line_gone = PemFile::new("line-gone", &(lines.join("\n") + "\n"));
    let missing = std::env::temp_dir().join(format!("trident-missing-{}.pem", std::process::id()));
    let missing = missing.to_str().unwrap();
    let targets = TargetsFile::for_urls(
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002",
        "http://127.0.0.1:9003",
    );
    // (extra flags, what stderr must name)
    let rows: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--tls-cert", cert.arg()],
            vec!["--tls-cert needs --tls-key"],
        ),
        (
            vec!["--tls-key", key.arg()],
            vec!["--tls-key needs --tls-cert"],
        ),
        (
            vec!["--tls-cert", missing, "--tls-key", key.arg()],
            vec![missing],
        ),
        (
            vec!["--tls-cert", garbage.arg(), "--tls-key", key.arg()],
            vec![garbage.arg()],
        ),
        (
            vec!["--tls-cert", cert.arg(), "--tls-key", missing],
            vec![missing],
        ),
        (
            vec!["--tls-cert", cert.arg(), "--tls-key", garbage.arg()],
            vec![garbage.arg(), "no PEM private key in it"],
        ),
        (
            vec!["--tls-cert", cert.arg(), "--tls-key", encrypted.arg()],
            vec![encrypted.arg(), "the key is encrypted"],
        ),
        (
            vec![
                "--tls-cert",
                cert.arg(),
                "--tls-key",
                encrypted_traditional.arg(),
            ],
            vec![encrypted_traditional.arg(), "the key is encrypted"],
        ),
        (
            vec!["--tls-cert", cut_short.arg(), "--tls-key", key.arg()],
            vec![
                cut_short.arg(),
                "no \"-----END CERTIFICATE-----\" line after its BEGIN line: the file is cut short",
            ],
        ),
        (
            vec!["--tls-cert", line_gone.arg(), "--tls-key", key.arg()],
            vec![line_gone.arg(), "a certificate in it is not well-formed"],
        ),
        // A key that is not the certificate's.
        (
            vec!["--tls-cert", cert.arg(), "--tls-key", other_key.arg()],
            vec![
                cert.arg(),
                other_key.arg(),
                "the key is not the first certificate's",
            ],
        ),
        (vec!["--ca-file", missing], vec![missing]),
        (
            vec!["--ca-file", cut_short.arg()],
            vec![cut_short.arg(), "the file is cut short"],
        ),
        (vec!["--ca-file", garbage.arg()], vec![garbage.arg()]),
    ];
    for (flags, names) in rows {
        let mut args = vec!["--targets", targets.arg()];
        args.extend_from_slice(&flags);
        let done = check(&args);
        assert_eq!(done.status.code(), Some(2), "{flags:?}\n{done:?}");
        for name in names {
            assert!(
                done.stderr.contains(name),
                "{flags:?}: {name:?} not in {:?}",
                done.stderr
            );
        }
        assert!(!done.stdout.contains("configuration ok"), "{flags:?}");
    }
}
