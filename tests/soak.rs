//! A randomized soak: 1000 requests over 8 threads and 40 client connections, the candidate
//! misbehaving in a way picked per request by a seeded xorshift generator (the pick travels
//! in the request target, so the hostile upstream and the checks agree on it). Every client
//! must get exactly the primary's answer, every block must say what that misbehaviour
//! deserves, the proxy must still serve at the end, and once everyone is gone it must hold
//! exactly the descriptors it held before the soak.
//!
//! The seed is printed (and named in any failure); `TRIDENT_SOAK_SEED=0x... cargo test
//! --test soak` replays a run.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::hostile::*;
use support::*;

const SEED: u64 = 0x7121_DE47_50AC_2024;
const REQUESTS: usize = 1000;
const THREADS: usize = 8;
const PER_THREAD: usize = REQUESTS / THREADS;
const _: () = assert!(REQUESTS % THREADS == 0);
/// Requests per client connection before the thread opens a new one.
const PER_CONNECTION: usize = 25;
/// The candidate's deadline: short, so hung legs do not pile up for long, but long enough
/// that a leg that fails at once is never mistaken for a hung one on a loaded machine.
const CANDIDATE_OPTIONS: &str = "timeout=1000";
const CANDIDATE_TIMEOUT: &str = "timeout after 1000ms";
/// The whole soak must end well under a minute.
const BUDGET: Duration = Duration::from_secs(40);

/// A tiny xorshift64* generator: the same seed, the same soak.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    match std::env::var("TRIDENT_SOAK_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("TRIDENT_SOAK_SEED={text:?} is not a number"))
        }
        Err(_) => SEED,
    }
}

/// The behaviour named by the last segment of a soak target (`/soak/3/17/garbage`).
fn behaviour_of(target: &str) -> Behaviour {
    target
        .rsplit('/')
        .next()
        .and_then(Behaviour::from_name)
        .unwrap_or(Behaviour::Healthy)
}

/// Whether `outcome` is what the candidate's line may say for `behaviour` on `method`.
fn fits(behaviour: Behaviour, method: &str, outcome: &Outcome) -> bool {
    use Behaviour::*;
    let error = |text: &str| matches!(outcome, Outcome::Error(e) if e == text);
    let ok = matches!(outcome, Outcome::Response { status: 200, .. });
    if matches!(outcome, Outcome::Other(o) if o == "skipped: saturated") {
        return true;
    }
    match behaviour {
        // Nobody asks for strays here: the idle ones are healthy (and nobody sends HEAD).
        Healthy | HealthyClose | AnswerBeforeBody | ContinueThenFinal | TrailingBytes
        | StrayWhileIdle | CloseWhileIdle | LateHeadBody => ok,
        AcceptNoRead | ReadNoAnswer | Trickle | HeadersThenStall | EndlessInterim => {
            error(CANDIDATE_TIMEOUT)
        }
        // Cut short once past the primary's (short) body by more than the compare cap.
        EndlessChunked | EndlessFlood => {
            matches!(
                outcome,
                Outcome::Response {
                    status: 200,
                    cut: true,
                    ..
                }
            )
        }
        CloseBeforeStatus | CloseMidHeaders | CloseMidBodyLength | CloseMidBodyChunked
        | LengthOverstated => error("closed before response complete"),
        ResetMidResponse => error("connection reset"),
        RejectBeforeBody => matches!(outcome, Outcome::Response { status: 413, .. }),
        Garbage => error("malformed response: invalid HTTP version"),
        BadChunkSize => error("malformed response: invalid chunk: chunk size is not hex"),
        HugeHead => error("malformed response: head too large"),
        ConflictingLengths => error("malformed response: invalid Content-Length"),
        // A GET meeting the stale close is sent again on a new connection, where it is the
        // first request and answered; a POST is not.
        StaleKeepAlive => ok || (method == "POST" && error("connection reset")),
        // Likewise, where a POST's answer is the 408 itself.
        IdleTimeout408 => {
            ok || (method == "POST" && matches!(outcome, Outcome::Response { status: 408, .. }))
        }
    }
}

/// One thread's share: `count` requests, a new connection every `PER_CONNECTION`.
fn client_thread(trident: std::net::SocketAddr, thread: usize, count: usize, seed: u64) {
    let mut rng = XorShift::new(seed ^ (thread as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut client = None;
    for i in 0..count {
        if i % PER_CONNECTION == 0 {
            client = Some(Client::connect(trident));
        }
        let client = client.as_mut().expect("connected");
        let behaviour = Behaviour::ALL[rng.below(Behaviour::ALL.len())];
        let target = format!("/soak/{thread}/{i}/{behaviour}");
        let (method, bytes) = if rng.below(4) == 0 {
            let body = pattern(1 + rng.below(4096), rng.next());
            ("POST", request("POST", &target, &[("Host", "soak")], &body))
        } else {
            ("GET", request("GET", &target, &[("Host", "soak")], b""))
        };
        client.send(&bytes);
        let resp = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("seed {seed:#x}: {method} {target}: {e}"));
        assert_eq!(
            (resp.status, resp.body_text(), resp.header("X-Upstream")),
            (200, format!("primary {method} {target}"), Some("primary")),
            "seed {seed:#x}: the answer to {method} {target}"
        );
    }
}

#[test]
fn a_thousand_requests_against_a_randomly_misbehaving_candidate() {
    let seed = seed();
    println!("soak seed {seed:#x} (replay: TRIDENT_SOAK_SEED={seed:#x})");
    let started = Instant::now();
    let candidate = Hostile::with_plan(|arrival| behaviour_of(&arrival.target));
    let stage = Stage::start(
        [
            Player::Healthy(Upstream::named("primary")),
            Player::Healthy(Upstream::named("secondary")),
            Player::Hostile(candidate),
        ],
        ["", "", CANDIDATE_OPTIONS],
        &["--timeout", "3000"],
    );
    let mut warm = stage.client();
    assert_eq!(warm.exchange(&get("/warm-up")).status, 200);
    drop(warm);
    stage.trident.wait_blocks(1, Duration::from_secs(5));
    let resident = resident_fds(stage.pid());

    let addr = stage.trident.addr();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| thread::spawn(move || client_thread(addr, t, PER_THREAD, seed)))
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().err())
        .map(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} client threads failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Still alive, still right.
    let mut last = stage.client();
    let resp = last.exchange(&get("/final"));
    assert_eq!(resp.body_text(), "primary GET /final", "seed {seed:#x}");
    drop(last);

    let total = THREADS * PER_THREAD + 2;
    let all_in = wait_until(Duration::from_secs(15), || {
        stage.trident.stdout().lines().count() >= 4 * total
    });
    assert!(
        all_in,
        "seed {seed:#x}: {} of {total} blocks",
        stage.trident.stdout().lines().count() / 4
    );
    let blocks = stage.trident.blocks();
    assert_eq!(blocks.len(), total, "seed {seed:#x}");
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for block in &blocks {
        assert_eq!(
            block.primary().response().0,
            200,
            "seed {seed:#x}\n{}",
            block.text
        );
        assert_eq!(
            block.secondary().response().0,
            200,
            "seed {seed:#x}\n{}",
            block.text
        );
        let behaviour = behaviour_of(&block.target);
        let outcome = &block.candidate().outcome;
        assert!(
            fits(behaviour, &block.method, outcome),
            "seed {seed:#x}: {behaviour} on {} gave the candidate {outcome:?}\n{}",
            block.method,
            block.text
        );
        let kind = match outcome {
            Outcome::Response { status, .. } => status.to_string(),
            Outcome::Error(e) => e.clone(),
            Outcome::Other(o) => o.clone(),
        };
        *tally.entry(kind).or_default() += 1;
    }
    println!("candidate outcomes: {tally:#?}");

    stage.finish(resident);
    let elapsed = started.elapsed();
    println!("soak took {elapsed:?}");
    assert!(
        elapsed < BUDGET,
        "seed {seed:#x}: the soak took {elapsed:?}"
    );
}
