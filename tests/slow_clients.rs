//! Slow and greedy clients, and the protocol behaviours a multicasting proxy must pin down:
//! a slowloris head is answered 408 within the whole-head deadline while others are served;
//! an idle keep-alive connection is closed; a client that stops reading is dropped after the
//! send deadline and costs a bounded amount of memory; `--max-clients` and running out of
//! file descriptors make trident wait, not crash or spin. Then `Expect: 100-continue`,
//! `Upgrade`, `CONNECT` and HTTP/1.0 persistence.
//!
//! Timings are measured, not slept: every wait has a deadline and the bounds are wide enough
//! for a loaded two-core machine.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::hostile::{Behaviour, Hostile};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// A raw connection with a read timeout, for clients that misbehave on purpose.
fn raw(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to trident");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("timeout");
    stream
}

/// A client whose receive buffer holds `bytes` (SO_RCVBUF, set before connecting): the
/// kernel takes little of an answer it does not read, so the rest waits on trident's side.
fn small_window_client(addr: SocketAddr, bytes: usize) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    socket.connect_timeout(&addr.into(), WAIT).expect("connect");
    let client: TcpStream = socket.into();
    client.set_read_timeout(Some(WAIT)).expect("read timeout");
    client
}

/// The body of `queued_answer_primary`'s answers: a client with a small receive window that
/// reads none of it leaves its end in trident's output once the primary is read to its end.
const QUEUED_BODY: usize = 3_000_000;

/// A trident (with `args`) whose primary answers `QUEUED_BODY` bytes of `pattern(_, seed)`,
/// ending at the close if `close_delimited`; the upstreams live as long as the first part.
fn queued_answer_primary(
    seed: u64,
    close_delimited: bool,
    args: &[&str],
) -> ([Upstream; 3], Trident) {
    let body = pattern(QUEUED_BODY, seed);
    let primary = Upstream::start(move |_| {
        let reply = Reply::ok(body.clone());
        if close_delimited {
            reply.close_delimited()
        } else {
            reply
        }
    });
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, args);
    ([primary, s, c], trident)
}

/// Everything until EOF, an error or `timeout`; and whether it ended by EOF or error.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// A value in kB from `/proc/PID/status` (`VmRSS`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU time of `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// A client that does not speak HTTP (a TLS ClientHello on the plain port) is refused at
/// once: it was held until the head deadline, its place taken, and then answered 408.
#[test]
fn a_client_that_does_not_speak_http_is_refused_at_once() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut stranger = raw(trident.addr(), Duration::from_millis(50));
    let started = Instant::now();
    stranger
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .expect("a ClientHello's start");
    let (got, closed) = read_until_closed(&mut stranger, WAIT);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 400 ") && text.contains("invalid request line"),
        "{text:?}"
    );
    assert!(closed, "the connection stays open");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn slowloris_gets_408_within_the_head_deadline_while_others_are_served() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--header-timeout", "1000"]);
    let mut slow = raw(trident.addr(), Duration::from_millis(50));
    let started = Instant::now();
    slow.write_all(b"GET /slow HTTP/1.1\r\n")
        .expect("first bytes");
    // One header byte every 50 ms: an inactivity timer would never fire.
    let mut trickler = slow.try_clone().expect("clone");
    let trickle = thread::spawn(move || {
        for &b in b"Host: test.local\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            thread::sleep(Duration::from_millis(50));
            if trickler.write_all(&[b]).is_err() {
                break;
            }
        }
    });
    // Meanwhile other clients are served at once, on new connections and a kept one.
    let mut kept = trident.client();
    for n in 0..5 {
        let begun = Instant::now();
        let resp = kept.exchange(&get(&format!("/fast-{n}")));
        assert_eq!(resp.status, 200);
        let resp = trident.client().exchange(&get(&format!("/fresh-{n}")));
        assert_eq!(resp.status, 200);
        assert!(
            begun.elapsed() < Duration::from_millis(500),
            "served in {:?}",
            begun.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let (got, closed) = read_until_closed(&mut slow, Duration::from_secs(3));
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(text.contains("Connection: close\r\n"), "{text:?}");
    assert!(closed, "the slowloris connection stays open");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000),
        "408 after {elapsed:?}, deadline 1000ms"
    );
    let _ = trickle.join();
    // The slow request never reached an upstream.
    for up in [&p, &s, &c] {
        assert!(up.requests().iter().all(|r| r.target != "/slow"));
    }
}

#[test]
fn idle_keepalive_and_silent_connections_are_closed_after_the_idle_timeout() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--idle-timeout", "300"]);
    // A connection that never sends a byte.
    let mut silent = raw(trident.addr(), Duration::from_millis(50));
    let silent_since = Instant::now();
    // A keep-alive connection after one exchange.
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/once")).status, 200);
    let idle_since = Instant::now();
    client.expect_closed();
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_millis(1500),
        "keep-alive connection closed after {idle:?}, idle timeout 300ms"
    );
    let (got, closed) = read_until_closed(&mut silent, Duration::from_secs(2));
    let silent_for = silent_since.elapsed();
    assert!(closed && got.is_empty(), "silent connection: {got:?}");
    assert!(
        silent_for >= Duration::from_millis(250) && silent_for < Duration::from_millis(1500),
        "silent connection closed after {silent_for:?}"
    );
}

/// The inode of the TCP socket whose local end is `local` and remote end `remote`
/// (`/proc/net/tcp`: hex addresses, the IPv4 address in host order, the port big-endian).
fn tcp_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// Whether process `pid` holds a descriptor for socket `inode`.
fn holds_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
                .any(|link| link.to_str() == Some(wanted.as_str()))
        })
        .unwrap_or(false)
}

/// A trident whose primary answers `/greedy` with 32 MiB, warmed up, and a client that asked
/// for it and reads nothing: (trident, client, when it asked, trident's VmRSS before it).
fn greedy_client(
    primary: &Upstream,
    s: &Upstream,
    c: &Upstream,
) -> (Trident, TcpStream, Instant, u64) {
    let trident = Trident::with_upstreams(
        primary,
        s,
        c,
        &["--send-timeout", "500", "--timeout", "30000"],
    );
    // Warm up: the upstream pool, the report thread, the allocator.
    for _ in 0..3 {
        assert_eq!(trident.client().exchange(&get("/warm")).status, 200);
    }
    let rss = status_kb(trident.pid(), "VmRSS");
    let mut greedy = raw(trident.addr(), Duration::from_millis(50));
    greedy.write_all(&get("/greedy")).expect("send the request");
    let asked = Instant::now();
    (trident, greedy, asked, rss)
}

const GREEDY_BODY: usize = 32 << 20;

fn big_primary() -> Upstream {
    let body = pattern(GREEDY_BODY, 7);
    Upstream::start(move |req| match req.target.as_str() {
        "/greedy" => Reply::ok(body.clone()),
        _ => Reply::ok("small"),
    })
}

/// `--timeout` is the upstream's time: while trident waits for a client that reads a large
/// answer steadily but slowly (it reads the primary only as fast as the client drains), the
/// primary's deadline does not run, so the download is not cut and the primary not blamed.
/// Nor is that time in the primary's latency, which would read as slow as its client (hunt
/// 72: 5 598 ms against 45 ms for the shadows).
#[test]
fn a_slow_but_steady_download_outlasts_the_primarys_deadline() {
    let primary = big_primary();
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    // The deadline has room to spare: on a loaded machine the time trident spends waiting on
    // the primary (not on the client) adds up to a fair share of the download's.
    let trident = Trident::with_upstreams(&primary, &s, &c, &["--timeout", "1500"]);
    slow_download(&trident, || {});
    let blocks = trident.wait_blocks(1, WAIT);
    let primary_leg = blocks[0].primary();
    assert_eq!(primary_leg.response().0, 200, "{}", blocks[0].text);
    // The download took over 2 s (`slow_download`); the primary's own part, the deadline's.
    assert!(primary_leg.elapsed_ms() < 1500.0, "{}", blocks[0].text);
}

/// Reads a `GREEDY_BODY` download from `trident` at about 10 MB/s, calling `meanwhile` once
/// the first bytes came; asserts it came whole and took longer than the deadlines at stake.
fn slow_download(trident: &Trident, meanwhile: impl FnOnce()) {
    slow_download_of(trident, &get("/greedy"), meanwhile);
}

/// `slow_download`, the answer to `request`.
fn slow_download_of(trident: &Trident, request: &[u8], meanwhile: impl FnOnce()) {
    let mut client = raw(trident.addr(), WAIT);
    client.write_all(request).expect("send the request");
    // About 10 MB/s: some three seconds for 32 MiB, most of it past what the kernel buffers.
    let started = Instant::now();
    let mut got = Vec::with_capacity(GREEDY_BODY + 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut meanwhile = Some(meanwhile);
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading after {} bytes: {e}", got.len()),
        }
        if let Some(meanwhile) = meanwhile.take() {
            meanwhile();
        }
        if got.len() >= GREEDY_BODY {
            let head_end = got
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head");
            if got.len() - (head_end + 4) >= GREEDY_BODY {
                break;
            }
        }
        thread::sleep(Duration::from_millis(6));
    }
    let elapsed = started.elapsed();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(got.len() - (head_end + 4), GREEDY_BODY, "after {elapsed:?}");
    assert!(
        elapsed > Duration::from_millis(2000),
        "read in {elapsed:?}: the download did not outlast the deadline, the test measured nothing"
    );
}

/// Shutting down waits for a download still flowing to its client, past the drain's first
/// deadline (`--timeout` and a second): a steady download is not cut by a SIGTERM either.
#[test]
fn a_steady_download_in_flight_at_sigterm_is_not_cut() {
    let primary = big_primary();
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let mut trident = Trident::with_upstreams(&primary, &s, &c, &["--timeout", "500"]);
    slow_download(&trident, || trident.signal("TERM"));
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
}

/// Nor one whose primary has finished, the answer's end still in trident's own output when
/// the signal comes (the client reads nothing for a while): it goes out before the close.
/// It was closed at once, some 12 KB short.
#[test]
fn an_answer_queued_whole_is_not_cut_by_sigterm() {
    let (_upstreams, mut trident) = queued_answer_primary(11, false, &["--send-timeout", "5000"]);
    let mut client = small_window_client(trident.addr(), 4096);
    client.write_all(&get("/queued")).expect("send the request");
    // The primary is read to its end meanwhile: what the buffers take, and 64 KiB more.
    thread::sleep(Duration::from_millis(500));
    trident.signal("TERM");
    thread::sleep(Duration::from_millis(500));
    let (got, closed) = read_until_closed(&mut client, WAIT);
    assert!(closed, "the connection stays open");
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    assert_eq!(
        got.len() - (head_end + 4),
        QUEUED_BODY,
        "{}",
        trident.output()
    );
    let block = trident.exit_0_with_one_block(WAIT);
    assert_eq!(
        block.primary().response(),
        (200, QUEUED_BODY as u64),
        "{}",
        block.text
    );
}

/// Starts a slow download of `request` from a `primary` that trident drains for at most
/// 300 ms, sends SIGTERM once the first bytes came, and reads on at ~10 MB/s (the whole body
/// would take some three seconds) until the connection ends. Returns the body bytes read,
/// how the read ended (`None` for a clean close), and how long after the signal, with
/// trident exited.
fn download_cut_at_the_drain_timeout(
    primary: &Upstream,
    request: &[u8],
) -> (Trident, usize, Option<std::io::ErrorKind>, Duration) {
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let mut trident = Trident::with_upstreams(
        primary,
        &s,
        &c,
        &["--timeout", "500", "--drain-timeout", "300"],
    );
    let mut client = raw(trident.addr(), WAIT);
    client.write_all(request).expect("send the request");
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = client.read(&mut buf).expect("the first bytes");
    trident.signal("TERM");
    let signalled = Instant::now();
    let ended = loop {
        match client.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got += n,
            Err(e) => break Some(e.kind()),
        }
        thread::sleep(Duration::from_millis(6));
    };
    let cut_after = signalled.elapsed();
    assert!(
        got < GREEDY_BODY,
        "the whole body came: {got} bytes in {cut_after:?}"
    );
    trident.exits_0(WAIT);
    (trident, got, ended, cut_after)
}

/// `--drain-timeout` bounds the wait for such a download: past it the exchange is
/// abandoned (counted as not compared) and the summary written, before a supervisor's kill.
#[test]
fn a_steady_download_at_sigterm_is_cut_at_the_drain_timeout() {
    let (trident, _, _, cut_after) =
        download_cut_at_the_drain_timeout(&big_primary(), &get("/greedy"));
    assert!(
        cut_after >= Duration::from_millis(250) && cut_after < Duration::from_millis(900),
        "cut after {cut_after:?}"
    );
    assert!(
        trident.stderr().contains(
            "shutdown: 1 exchange still in flight after --drain-timeout 300ms, abandoned"
        ),
        "{}",
        trident.stderr()
    );
    assert!(
        trident
            .stdout()
            .contains("SUMMARY epoch 0 (final): 0 exchanges, 1 not compared"),
        "{}",
        trident.output()
    );
}

/// A body that ends at the close (to an HTTP/1.0 client) and is cut at the drain timeout is
/// cut with a reset: a clean close would end it as if it were whole.
#[test]
fn a_close_delimited_download_cut_at_the_drain_timeout_is_reset() {
    let body = pattern(GREEDY_BODY, 7);
    let primary = Upstream::start(move |_| Reply::ok(body.clone()).close_delimited());
    let (_, got, ended, _) =
        download_cut_at_the_drain_timeout(&primary, b"GET /greedy HTTP/1.0\r\n\r\n");
    assert_eq!(
        ended,
        Some(std::io::ErrorKind::ConnectionReset),
        "after {got} bytes"
    );
}

/// `--idle-timeout` counts from the end of an answer, not from when it was all queued: a
/// client still taking the end of its answer from trident's output is not idle, and was
/// reset (hunt 55: 17 of 20 MB, reading steadily).
#[test]
fn a_client_taking_its_answer_is_not_closed_by_the_idle_timeout() {
    let (_upstreams, trident) = queued_answer_primary(17, false, &["--idle-timeout", "300"]);
    let mut client = small_window_client(trident.addr(), 4096);
    client.write_all(&get("/taken")).expect("send the request");
    // The primary is read to its end meanwhile, the answer's end queued in trident.
    thread::sleep(Duration::from_millis(1000));
    let mut got = Vec::with_capacity(QUEUED_BODY + 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let whole = |got: &[u8]| {
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        head_end.is_some_and(|end| got.len() - (end + 4) >= QUEUED_BODY)
    };
    while !whole(&got) {
        let n = client.read(&mut buf).expect("the answer");
        assert!(
            n > 0,
            "closed after {} bytes\n{}",
            got.len(),
            trident.output()
        );
        got.extend_from_slice(&buf[..n]);
    }
    // Then idle: closed, a full idle time after the answer left trident (just before the
    // client had the last of it), not at the next of the idle timer's turns while it
    // was still owed (hunt 60: a few milliseconds after).
    let taken = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(2));
    assert!(closed, "the idle connection stays open");
    assert!(
        taken.elapsed() > Duration::from_millis(200),
        "closed {:?} after the answer was taken, --idle-timeout 300",
        taken.elapsed()
    );
}

/// The body of `answer_in_the_kernel`'s answer: small enough to leave trident's output whole
/// for the kernel's send buffer, where a client reading none of it leaves most of it.
const KERNEL_BODY: usize = 600_000;

/// A trident (with `args`) whose primary answers `KERNEL_BODY` bytes of `pattern(_, seed)`,
/// and a client with a small receive window whose request for it has been printed: the
/// answer has all left trident's output. The upstreams live as long as the first part.
fn answer_in_the_kernel(seed: u64, args: &[&str]) -> ([Upstream; 3], Trident, TcpStream) {
    let body = pattern(KERNEL_BODY, seed);
    let primary = Upstream::start(move |_| Reply::ok(body.clone()));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, args);
    let mut client = small_window_client(trident.addr(), 4096);
    client.write_all(&get("/first")).expect("send the request");
    trident.wait_blocks(1, WAIT);
    ([primary, s, c], trident, client)
}

/// An answer all handed to the kernel, but not yet taken by its client, when the idle
/// timeout or a SIGTERM closes the connection; the client then pipelines its next request.
/// Closed at once, the request met a closed socket, and its reset dropped the answer's end
/// (hunt 61: 4 052 of 1 000 000 bytes). The client gets the whole answer, then the end.
/// `flood`: the client then sends 2 MB more, past what a lingering close reads (1 MiB).
fn an_answer_in_the_kernel_outlives_the_close(args: &[&str], sigterm: bool, flood: bool) {
    let (_upstreams, mut trident, mut client) = answer_in_the_kernel(23, args);
    if sigterm {
        trident.signal("TERM");
    }
    // Past the idle timeout or the shutdown's turn, with most of the answer in the kernel.
    thread::sleep(Duration::from_millis(800));
    client
        .write_all(&get("/second"))
        .expect("pipeline the next request");
    if flood {
        let mut writer = client.try_clone().expect("a writer");
        // Left unread once past the linger's limit, it blocks; it ends with the connection.
        thread::spawn(move || writer.write_all(&vec![b'x'; 2_000_000]));
    }
    let mut got = Vec::with_capacity(KERNEL_BODY + 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match client.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e.kind()),
        }
    };
    if flood {
        // Closed once the client has it all, its flood unread: a reset, after the end.
        assert!(
            matches!(ended, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
            "{ended:?}"
        );
    } else {
        assert_eq!(
            ended,
            Ok(()),
            "after {} bytes\n{}",
            got.len(),
            trident.output()
        );
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    assert_same_bytes(
        "the first answer",
        &pattern(KERNEL_BODY, 23),
        &got[head_end + 4..],
    );
    if sigterm {
        trident.exits_0(WAIT);
    }
}

#[test]
fn an_answer_in_the_kernel_outlives_the_idle_timeout() {
    an_answer_in_the_kernel_outlives_the_close(&["--idle-timeout", "300"], false, false);
}

#[test]
fn an_answer_in_the_kernel_outlives_a_sigterm() {
    an_answer_in_the_kernel_outlives_the_close(&[], true, false);
}

/// A client that sends on past the linger's limit meanwhile still gets the answer whole
/// (hunt 65: a reset at 1 MiB dropped 2.7 MB of answers).
#[test]
fn an_answer_in_the_kernel_outlives_a_flooding_client() {
    an_answer_in_the_kernel_outlives_the_close(&["--idle-timeout", "300"], false, true);
}

/// A client that takes none of that answer is read from only while it takes more: with
/// one stalled so, a SIGTERM still ends trident `--send-timeout` later, give or take a
/// quarter of it, well before the drain timeout. It was a linger turn of at least 2 s, and
/// up to 4 × the timeout (hunt 85).
#[test]
fn a_stalled_client_with_an_answer_in_the_kernel_does_not_hold_the_shutdown() {
    let (_upstreams, mut trident, client) =
        answer_in_the_kernel(29, &["--drain-timeout", "30000", "--send-timeout", "1000"]);
    // The client's kernel takes what it can hold meanwhile (its window fills a little
    // after the block comes): then it takes nothing.
    thread::sleep(Duration::from_millis(1000));
    let asked = Instant::now();
    trident.signal("TERM");
    trident.exits_0(Duration::from_secs(10));
    // Not a turn more: it took nothing in the first look (hunt 65).
    assert!(
        asked.elapsed() >= Duration::from_millis(950)
            && asked.elapsed() < Duration::from_millis(1800),
        "closed after {:?}, not about --send-timeout after the SIGTERM",
        asked.elapsed()
    );
    drop(client);
}

/// One that takes the rest of its answer after the first linger turn, and keeps its end
/// open as a connection pool does, is closed within a turn of having it all. Its close
/// waited for `--send-timeout` from its last progress before, and held the shutdown until
/// the drain timeout, logged as abandoned (hunt 73).
#[test]
fn a_client_that_took_its_whole_answer_does_not_hold_the_shutdown() {
    let (_upstreams, mut trident, mut client) =
        answer_in_the_kernel(37, &["--drain-timeout", "30000"]);
    thread::sleep(Duration::from_millis(1000));
    let asked = Instant::now();
    trident.signal("TERM");
    thread::sleep(Duration::from_millis(2500));
    // To the end of the answer, and trident's half-close; the client's end stays open.
    let (got, ended) = read_until_closed(&mut client, WAIT);
    assert!(
        ended && got.ends_with(&pattern(KERNEL_BODY, 37)),
        "the answer's end is missing"
    );
    trident.exits_0(Duration::from_secs(10));
    assert!(
        asked.elapsed() < Duration::from_millis(7000),
        "exited {:?} after the SIGTERM, not within a linger turn of the answer's end",
        asked.elapsed()
    );
    drop(client);
}

/// At `--max-clients`, a client taking its answer from the kernel at a SIGTERM makes room
/// for one waiting in the backlog, as an idle client does: the waiting request was reset
/// with the listener (hunt 73).
#[test]
fn a_request_waiting_behind_a_client_taking_its_answer_is_served_at_sigterm() {
    let (_upstreams, mut trident, holder) = answer_in_the_kernel(41, &["--max-clients", "1"]);
    let mut waiting = trident.client();
    waiting.set_read_timeout(WAIT);
    waiting.send(&get("/waiting"));
    // Not taken in while the place is held.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(trident.blocks().len(), 1, "{}", trident.output());
    trident.signal("TERM");
    let resp = waiting
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 200, "{}", trident.output());
    assert_same_bytes("the waiting answer", &pattern(KERNEL_BODY, 41), &resp.body);
    drop(holder);
    trident.exits_0(WAIT);
    assert_eq!(trident.blocks().len(), 2, "{}", trident.output());
}

/// Cut at `--drain-timeout` instead, such a client is what the log names: it said `0
/// exchanges still in flight` (hunt 65).
#[test]
fn a_client_still_taking_its_answer_at_the_drain_timeout_is_named() {
    let (_upstreams, mut trident, client) = answer_in_the_kernel(31, &["--drain-timeout", "500"]);
    trident.signal("TERM");
    trident.exits_0(WAIT);
    assert!(
        trident.stderr().contains(
            "shutdown: 0 exchanges still in flight, 1 client still taking its last answer \
             after --drain-timeout 500ms, abandoned"
        ),
        "{}",
        trident.output()
    );
    drop(client);
}

/// A second SIGTERM cuts such an answer (a reset) and the log counts its exchange among the
/// abandoned: counted after the cut, it read `0 exchanges in flight abandoned` (hunt 56).
#[test]
fn a_queued_answer_cut_by_a_second_sigterm_is_counted_as_abandoned() {
    let (_upstreams, mut trident) = queued_answer_primary(19, false, &[]);
    let mut client = small_window_client(trident.addr(), 4096);
    client.write_all(&get("/queued")).expect("send the request");
    thread::sleep(Duration::from_millis(500));
    trident.signal("TERM");
    trident.wait_stderr("shutting down: 1 exchange in flight", WAIT);
    trident.signal("TERM");
    trident.exits_0(WAIT);
    assert!(
        trident
            .stderr()
            .contains("stopping at once (a second SIGTERM/SIGINT): 1 exchange in flight abandoned"),
        "{}",
        trident.output()
    );
    let mut rest = Vec::new();
    let ended = client.read_to_end(&mut rest);
    assert_eq!(
        ended.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "after {} bytes",
        rest.len()
    );
}

/// So is one cut because the client stopped reading (`--send-timeout`), the primary done
/// and the body's end still in trident's output (hunt 52: a clean close after 2 987 968 of
/// 3 000 000 bytes).
#[test]
fn a_close_delimited_answer_cut_by_the_send_timeout_is_reset() {
    let (_upstreams, trident) = queued_answer_primary(13, true, &["--send-timeout", "500"]);
    let mut client = small_window_client(trident.addr(), 4096);
    client
        .write_all(b"GET /cut HTTP/1.0\r\n\r\n")
        .expect("send the request");
    thread::sleep(Duration::from_millis(1500));
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match client.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got += n,
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(
        ended,
        Some(std::io::ErrorKind::ConnectionReset),
        "after {got} bytes\n{}",
        trident.output()
    );
    let blocks = trident.wait_blocks(1, WAIT);
    assert!(blocks[0].client_left, "{}", blocks[0].text);
}

/// A client that reads nothing is dropped `--send-timeout` after it last took output, give
/// or take a quarter: the bytes the kernel hands its receive window right after a write were
/// taken for reading, and it was dropped after up to twice the timeout (hunt 79).
#[test]
fn a_client_that_reads_nothing_is_dropped_near_the_send_timeout() {
    let (_upstreams, trident) = queued_answer_primary(17, false, &["--send-timeout", "1000"]);
    let mut client = small_window_client(trident.addr(), 4096);
    let started = Instant::now();
    client
        .write_all(&get("/stalled"))
        .expect("send the request");
    let blocks = trident.wait_blocks(1, WAIT);
    let elapsed = started.elapsed();
    assert!(blocks[0].client_left, "{}", blocks[0].text);
    assert!(
        elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_millis(1700),
        "dropped after {elapsed:?}"
    );
}

/// The same for an upload the client sends steadily but slowly: the time the primary waits
/// for the body's next bytes is the client's, and each piece that comes starts the wait
/// afresh (the whole upload takes longer than `--send-timeout`, no pause does).
#[test]
fn a_slow_but_steady_upload_outlasts_the_primarys_deadline() {
    let (p, s, c) = three_named();
    let trident =
        Trident::with_upstreams(&p, &s, &c, &["--timeout", "400", "--send-timeout", "500"]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    let body = pattern(1 << 20, 3);
    let started = Instant::now();
    upload_in_pieces(
        &mut client,
        "PUT /upload",
        &body,
        64 * 1024,
        Duration::from_millis(60),
    );
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert!(started.elapsed() > Duration::from_millis(800));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(p.wait_requests(1, WAIT)[0].body, body);
    // The shadows' deadlines do not count the client's time either.
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.secondary().response().0, 200, "{}", block.text);
    assert_eq!(block.candidate().response().0, 200, "{}", block.text);
}

/// Shutting down waits for an upload still coming in steadily, past the drain's first look
/// (the leg deadlines then, and a second): its legs' deadlines move on while they wait on
/// the client, so it is still live.
#[test]
fn a_steady_upload_in_flight_at_sigterm_is_not_cut() {
    let (p, s, c) = three_named();
    let mut trident =
        Trident::with_upstreams(&p, &s, &c, &["--timeout", "400", "--send-timeout", "500"]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    let body = pattern(1 << 20, 3);
    client.send(
        format!(
            "PUT /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let started = Instant::now();
    for (i, piece) in body.chunks(64 * 1024).enumerate() {
        client.send(piece);
        if i == 0 {
            trident.signal("TERM");
        }
        thread::sleep(Duration::from_millis(150));
    }
    assert!(
        started.elapsed() > Duration::from_millis(2000),
        "the upload was too quick"
    );
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(p.wait_requests(1, WAIT)[0].body, body);
    trident.exits_0(WAIT);
}

/// Sends `method_target` with `body` as its Content-Length body, `piece` bytes at a time
/// with `pause` after each: a client uploading steadily but slowly.
fn upload_in_pieces(
    client: &mut Client,
    method_target: &str,
    body: &[u8],
    piece: usize,
    pause: Duration,
) {
    client.send(
        format!(
            "{method_target} HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for piece in body.chunks(piece) {
        client.send(piece);
        thread::sleep(pause);
    }
}

/// A whole upload whose primary answers later than `--send-timeout` gets the primary's
/// answer: the deadline set for each piece of the upload stayed set once it was whole, and
/// answered the client 408 for a stall, with the primary's answer to a write lost (hunt 74).
#[test]
fn a_whole_upload_answered_after_the_send_timeout_gets_the_primarys_answer() {
    let p = Upstream::start(|_| Reply::ok("stored").delay(Duration::from_millis(1500)));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&p, &s, &c, &["--send-timeout", "500"]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    let body = pattern(1 << 20, 9);
    // In pieces, so that trident reads it in several turns.
    upload_in_pieces(
        &mut client,
        "POST /store",
        &body,
        128 * 1024,
        Duration::from_millis(20),
    );
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(
        resp.status,
        200,
        "{}\n{}",
        resp.body_text(),
        trident.output()
    );
    assert_eq!(resp.body_text(), "stored");
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
}

/// An upstream that answers before the client's slow upload ends (an early 403) did not wait
/// for the rest of it: its latency is all of its time. The waits for the body were left out,
/// and a 700 ms answer read as 0.1 ms (hunt 74).
#[test]
fn an_early_answer_to_a_slow_upload_keeps_its_latency() {
    let addr = answering_early(vec![(
        Duration::from_millis(700),
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno".to_vec(),
    )]);
    let trident = Trident::with_addrs(addr, addr, addr, &["--shadow-methods", "all"]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    client.send(b"POST /early HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n");
    // 100 bytes every 100 ms: the answer comes while most of it is still to be sent.
    for _ in 0..10 {
        client.send(&[b'x'; 100]);
        thread::sleep(Duration::from_millis(100));
    }
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(resp.status, 403, "{}", trident.output());
    drop(client);
    let block = trident.wait_blocks(1, WAIT).remove(0);
    for leg in &block.legs {
        assert!(leg.elapsed_ms() >= 650.0, "{}", block.text);
    }
}

/// An early answer read slowly: the waits before it (for the upload) are the upstream's time,
/// the waits after it (for the slow reader) are not. All of them counted, and a primary that
/// answered in 300 ms read as slow as its reader, some 3 s.
#[test]
fn an_early_answer_read_slowly_leaves_the_readers_time_out_of_its_latency() {
    let mut answer =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {GREEDY_BODY}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    answer.extend_from_slice(&pattern(GREEDY_BODY, 5));
    let addr = answering_early(vec![(Duration::from_millis(300), answer)]);
    // The POST goes to the primary alone; its upload is never finished.
    let trident = Trident::with_addrs(addr, addr, addr, &["--shadow-methods", "GET"]);
    let mut request =
        b"POST /early HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 100]);
    slow_download_of(&trident, &request, || {});
    let block = trident.wait_blocks(1, WAIT).remove(0);
    let primary = block.primary();
    assert_eq!(primary.response().0, 200, "{}", block.text);
    let elapsed = primary.elapsed_ms();
    assert!((250.0..1500.0).contains(&elapsed), "{}", block.text);
}

/// An early answer whose body comes later: the leg's time is all the upstream's, the wait
/// for the upload ending with the answer. On a shadow the wait ran on past the answer until
/// trident next wrote to it, and that part was left out: 1.6 s read for 2.3 (hunt 81).
#[test]
fn an_early_answer_whose_body_comes_later_keeps_all_its_time() {
    let addr = answering_early(vec![
        (
            Duration::from_millis(300),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            Duration::from_millis(1500),
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
    ]);
    let trident = Trident::with_addrs(addr, addr, addr, &[]);
    // Three at once, as the exchanges' legs then take their turns in the reactor.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let mut client = trident.client();
            thread::spawn(move || {
                client.set_read_timeout(WAIT);
                // The upload is never finished: the upstream answers without it.
                client.send(
                    b"POST /early HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n",
                );
                client.send(&[b'x'; 100]);
                let resp = client.try_read_response(false);
                // The exchange ends with the client, which will send no more of the upload,
                // once the shadows' answers are in too.
                thread::sleep(Duration::from_millis(500));
                resp.map(|r| r.body_text())
            })
        })
        .collect();
    for client in clients {
        let body = client.join().expect("a client thread");
        assert_eq!(body.ok().as_deref(), Some("hello"), "{}", trident.output());
    }
    for block in trident.wait_blocks(3, WAIT) {
        for leg in &block.legs {
            assert!(leg.elapsed_ms() >= 1750.0, "{}", block.text);
        }
    }
}

/// A client dropped by `--send-timeout` in the middle of its upload, whose answer came early:
/// the legs that answered read on and say what their upstreams sent (the primary's line is
/// the primary's, as for any client that left). Every leg read `client closed before request
/// complete`, and the shadows' answers went uncompared (hunt 85).
#[test]
fn legs_that_answered_early_read_on_when_the_client_is_dropped_mid_upload() {
    const BODY: usize = 4 << 20;
    let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n").into_bytes();
    answer.extend_from_slice(&pattern(BODY, 21));
    let addr = answering_early(vec![(Duration::ZERO, answer)]);
    let trident = Trident::with_addrs(addr, addr, addr, &["--send-timeout", "500"]);
    let mut client = small_window_client(trident.addr(), 4096);
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1000000\r\n\r\n")
        .expect("send the head");
    // Uploads steadily and reads nothing, until trident drops it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if client.write_all(&[b'u'; 2000]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert!(block.client_left, "{}", block.text);
    for leg in &block.legs {
        assert_eq!(leg.response().0, 200, "{}", block.text);
    }
}

/// The same for a client that closes in the middle of its upload once it has the primary's
/// head: the legs that answered read on (hunt 86: every leg read `client closed`).
#[test]
fn legs_that_answered_early_read_on_when_the_client_closes_mid_upload() {
    let addr = answering_early(vec![
        (
            Duration::ZERO,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
        ),
        (Duration::from_millis(500), b"hello".to_vec()),
    ]);
    let trident = Trident::with_addrs(addr, addr, addr, &[]);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    client.send(b"POST /early HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2000\r\n\r\n");
    client.send(&[b'x'; 100]);
    let (status, _, _) = client
        .read_head()
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    assert_eq!(status, 200);
    // A clean close, the upload unfinished.
    drop(client);
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert!(block.client_left, "{}", block.text);
    for leg in &block.legs {
        assert_eq!(leg.response().0, 200, "{}", block.text);
    }
}

/// An upstream answering every request early, without reading its upload: after the first
/// read, each piece of `script` after its pause; then it reads whatever comes until the close.
fn answering_early(script: Vec<(Duration, Vec<u8>)>) -> SocketAddr {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = upstream.local_addr().expect("address");
    let script = std::sync::Arc::new(script);
    thread::spawn(move || {
        for conn in upstream.incoming() {
            let Ok(mut conn) = conn else { return };
            let script = std::sync::Arc::clone(&script);
            thread::spawn(move || {
                let _ = conn.read(&mut [0u8; 4096]);
                for (pause, piece) in script.iter() {
                    thread::sleep(*pause);
                    let _ = conn.write_all(piece);
                }
                let mut sink = [0u8; 64 * 1024];
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// `answering_early` with `head` and `first` at once, and `rest` after `pause`.
fn early_answering(
    head: &'static [u8],
    first: &'static [u8],
    pause: Duration,
    rest: &'static [u8],
) -> SocketAddr {
    answering_early(vec![
        (Duration::ZERO, [head, first].concat()),
        (pause, rest.to_vec()),
    ])
}

/// A client that stalls its upload while its early answer is still coming takes the whole
/// answer and is then let go of: nothing looked at it again, its block never came, and it
/// held its `--max-clients` place for good (hunt 87).
#[test]
fn a_client_stalled_mid_upload_takes_its_streaming_early_answer_and_is_let_go() {
    let addr = early_answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n",
        b"0123456789",
        Duration::from_millis(1200),
        b"abcdefghij",
    );
    let args = [
        "--send-timeout",
        "500",
        "--max-clients",
        "1",
        "--shadow-methods",
        "GET",
    ];
    let trident = Trident::with_addrs(addr, addr, addr, &args);
    let mut client = raw(trident.addr(), WAIT);
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1000\r\n\r\n")
        .expect("send the head");
    client.write_all(&[b'a'; 100]).expect("send a piece");
    let (got, closed) = read_until_closed(&mut client, WAIT);
    assert!(closed, "not let go of\n{}", trident.output());
    assert!(
        got.ends_with(b"0123456789abcdefghij"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
    // Its place is free again.
    let mut other = trident.client();
    other.set_read_timeout(WAIT);
    assert_eq!(other.exchange(&get("/other")).status, 200);
}

/// An HTTP/1.0 client that half-closes mid-upload while its early answer, whose body ends at
/// the close, is still coming: trident lets it go (its request can never be complete), and
/// the close is a reset, not a FIN that would pass for the body's end (hunt 87: `hello` read
/// as the whole of `helloworld`).
#[test]
fn an_early_answer_cut_when_its_client_half_closes_is_reset() {
    let addr = early_answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        Duration::from_millis(1000),
        b"5\r\nworld\r\n0\r\n\r\n",
    );
    let trident = Trident::with_addrs(addr, addr, addr, &["--shadow-methods", "GET"]);
    let mut client = raw(trident.addr(), WAIT);
    client
        .write_all(b"POST /up HTTP/1.0\r\nHost: test.local\r\nContent-Length: 1000\r\n\r\n")
        .expect("send the head");
    client.write_all(&[b'a'; 100]).expect("send a piece");
    // Half-closes once the answer's first part has come.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"hello") {
        let n = client.read(&mut buf).expect("the answer's first part");
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let ended = loop {
        match client.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.ends_with("helloworld") || ended == Some(std::io::ErrorKind::ConnectionReset),
        "a cut answer passed for whole: {text:?}, then {ended:?}"
    );
}

/// A bad chunk while an early answer is still coming cuts it, and the block says the client
/// left (hunt 88: it read as a whole 200).
#[test]
fn a_bad_chunk_cutting_an_early_answer_marks_the_client_as_left() {
    let addr = early_answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n",
        b"0123456789",
        Duration::from_millis(600),
        b"abcdefghij",
    );
    let trident = Trident::with_addrs(addr, addr, addr, &["--shadow-methods", "GET"]);
    let mut client = raw(trident.addr(), WAIT);
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .expect("send the head");
    let mut head = [0u8; 128];
    let n = client.read(&mut head).expect("the early answer's start");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    client.write_all(b"zz\r\n").expect("a bad chunk");
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert!(block.client_left, "{}", block.text);
    assert_eq!(block.primary().response().0, 200, "{}", block.text);
}

/// A bad chunk after an early answer that is all out: the client is closed, as any client
/// whose body is refused. It held its place for good (hunt 87).
#[test]
fn a_bad_chunk_after_a_whole_early_answer_closes_the_client() {
    let addr = early_answering(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n",
        b"forbidden",
        Duration::ZERO,
        b"",
    );
    let args = ["--max-clients", "1", "--shadow-methods", "GET"];
    let trident = Trident::with_addrs(addr, addr, addr, &args);
    let mut client = raw(trident.addr(), WAIT);
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .expect("send the head");
    // The whole early answer first.
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"forbidden") {
        let n = client.read(&mut buf).expect("the early answer");
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 403"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    client.write_all(b"zz\r\n").expect("a bad chunk");
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(3));
    assert!(closed, "not closed\n{}", trident.output());
    // Its place is free again: the next client is answered (as every one is, 403).
    let mut other = trident.client();
    other.set_read_timeout(WAIT);
    assert_eq!(other.exchange(&get("/other")).status, 403);
}

/// A client that stops sending in the middle of its upload is waited on for `--send-timeout`,
/// whether that is longer or shorter than `--timeout`: then it gets a 408 (its own doing),
/// and the legs read that the client stalled, not that their upstreams timed out.
#[test]
fn a_client_stalled_mid_upload_is_waited_on_for_the_send_timeout() {
    for (timeout, send_timeout) in [("300", 1000), ("5000", 500)] {
        let (p, s, c) = three_named();
        let send = send_timeout.to_string();
        let args = [
            "--timeout",
            timeout,
            "--send-timeout",
            &send,
            "--shadow-methods",
            "all",
        ];
        let trident = Trident::with_upstreams(&p, &s, &c, &args);
        let mut client = trident.client();
        client.set_read_timeout(WAIT);
        let started = Instant::now();
        client
            .send(b"PUT /stalled HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1000000\r\n\r\n");
        client.send(&pattern(64 * 1024, 4));
        let resp = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 408, "{}", resp.body_text());
        let least = Duration::from_millis(send_timeout);
        assert!(
            elapsed >= least && elapsed < least + Duration::from_millis(1500),
            "--timeout {timeout}: answered after {elapsed:?}"
        );
        // The exchange is over with the 408, not at the legs' `--timeout`.
        let block = trident
            .wait_blocks(1, Duration::from_millis(1500))
            .remove(0);
        let stalled = format!("client sent none of its upload for {send_timeout}ms");
        for leg in &block.legs {
            assert_eq!(leg.error(), stalled, "{}", block.text);
        }
    }
}

/// A client whose upload trident stops reading, because the primary takes none of it, has
/// not stalled: the wait is the primary's, which times out (504), however much shorter
/// `--send-timeout` is. So is the shadows' wait for the rest of it: they read that their
/// upload was cut with the primary, not that they timed out (hunt 72: both were counted as
/// the shadows' timeouts, and a candidate with a shorter `timeout=` failed alone).
#[test]
fn an_upload_held_back_by_a_primary_that_does_not_read_is_the_primarys_timeout() {
    let p = Upstream::stalled();
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let args = [
        "--timeout",
        "2500",
        "--send-timeout",
        "700",
        "--shadow-methods",
        "all",
    ];
    let trident = Trident::with_upstreams(&p, &s, &c, &args);
    let mut client = trident.client();
    client.set_read_timeout(WAIT);
    let body = pattern(8 << 20, 5);
    client.send(
        format!(
            "POST /held HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let started = Instant::now();
    // Sent on a thread of its own: the writes block once every buffer on the way is full.
    let mut writer = client.writer();
    let sender = thread::spawn(move || {
        for piece in body.chunks(64 * 1024) {
            if writer.write_all(piece).is_err() {
                return;
            }
        }
    });
    let resp = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{e}\n{}", trident.output()));
    let elapsed = started.elapsed();
    assert_eq!(resp.status, 504, "after {elapsed:?}: {}", resp.body_text());
    assert!(elapsed >= Duration::from_millis(2400), "{elapsed:?}");
    let block = trident.wait_blocks(1, WAIT).remove(0);
    assert_eq!(
        block.primary().error(),
        "timeout after 2500ms",
        "{}",
        block.text
    );
    for shadow in [block.secondary(), block.candidate()] {
        assert_eq!(
            shadow.error(),
            "upload cut: the primary failed before it ended",
            "{}",
            block.text
        );
    }
    drop(client);
    let _ = sender.join();
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_send_timeout_in_bounded_memory() {
    let primary = big_primary();
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let (trident, mut greedy, asked, baseline) = greedy_client(&primary, &s, &c);
    // Read nothing. The primary is read only as fast as the client drains, so trident's
    // memory stays flat until the send deadline drops the client: it closes its end of the
    // connection, whose socket is found by its addresses.
    let pid = trident.pid();
    let mut inode = None;
    let accepted = wait_until(WAIT, || {
        inode = tcp_inode(trident.addr(), greedy.local_addr().expect("local address"));
        inode.is_some_and(|inode| holds_socket(pid, inode))
    });
    assert!(accepted, "trident's end of the greedy connection not found");
    let inode = inode.expect("inode");
    let mut peak = baseline;
    let dropped = wait_until(Duration::from_secs(10), || {
        peak = peak.max(status_kb(pid, "VmRSS"));
        !holds_socket(pid, inode)
    });
    let dropped_after = asked.elapsed();
    assert!(
        dropped,
        "the greedy client was never dropped\n{}",
        trident.output()
    );
    // Not before the deadline; the upper bound allows for the kernel's buffers filling
    // slowly on a loaded machine (every byte they take restarts the deadline).
    assert!(
        dropped_after >= Duration::from_millis(450) && dropped_after < Duration::from_secs(8),
        "dropped after {dropped_after:?}, send timeout 500ms"
    );
    let growth_kb = peak.saturating_sub(baseline);
    assert!(
        growth_kb < 6 * 1024,
        "VmRSS grew by {growth_kb} kB (from {baseline} kB) for a client that does not read"
    );
    // The client got part of the body, then the close.
    let (got, closed) = read_until_closed(&mut greedy, Duration::from_secs(5));
    assert!(closed, "the greedy connection stays open");
    assert!(
        got.len() < GREEDY_BODY,
        "the client got {} of {GREEDY_BODY} bytes",
        got.len()
    );
    // The primary's response has nowhere to go any more: the exchange ends now, not at the
    // primary's --timeout (30 s here), and its block is written.
    let ended = wait_until(Duration::from_secs(8), || {
        trident
            .blocks()
            .iter()
            .any(|block| block.target == "/greedy")
    });
    assert!(
        ended,
        "the exchange of a dropped client still runs {:?} after the drop: its primary leg \
         waits for --timeout\n{}",
        asked.elapsed() - dropped_after,
        trident.output()
    );
}

/// A client dropped by `--send-timeout` while the end of an answer waits in trident's own
/// output (the primary done, the answer all queued) is marked as having left in that
/// exchange's block, not only in the one whose answer was still streaming: the record waits
/// for the answer to go out (hunt 51). Pipelined requests for 40 KB answers, never read,
/// fill the kernel's buffers; trident's output holds at least 64 KiB when it stops, so the
/// last answer queued whole is among what waits.
#[test]
fn a_client_dropped_with_a_queued_answer_unsent_is_marked_as_left() {
    const ANSWER: usize = 40_000;
    const REQUESTS: usize = 200;
    let primary = Upstream::start(|_| Reply::ok(pattern(ANSWER, 5)));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &["--send-timeout", "500"]);
    let mut client = raw(trident.addr(), WAIT);
    let pipelined: Vec<u8> = (0..REQUESTS)
        .flat_map(|i| get(&format!("/queued/{i}")))
        .collect();
    client.write_all(&pipelined).expect("send the requests");
    // Read nothing until well past the send deadline (the buffers fill in milliseconds).
    thread::sleep(Duration::from_millis(1500));
    let (_, closed) = read_until_closed(&mut client, Duration::from_secs(10));
    assert!(closed, "the client that reads nothing was not dropped");
    let mut left = Vec::new();
    let marked = wait_until(WAIT, || {
        left = trident
            .blocks()
            .iter()
            .filter(|block| block.client_left)
            .map(|block| block.id)
            .collect();
        left.len() >= 2
    });
    assert!(
        marked,
        "blocks marked 'client left': {left:?} (the queued answer's is not)\n{}",
        trident.output()
    );
    // The marks are on the last exchanges, whose answers the client did not get.
    let first_marked = left.iter().min().copied().unwrap_or(0);
    for block in trident.blocks().iter().filter(|b| b.id > first_marked) {
        assert!(block.client_left, "{}", block.text);
    }
}

#[test]
fn beyond_max_clients_a_connection_waits_until_one_closes() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--max-clients", "2"]);
    let mut first = trident.client();
    let mut second = trident.client();
    assert_eq!(first.exchange(&get("/first")).status, 200);
    assert_eq!(second.exchange(&get("/second")).status, 200);
    // The third is accepted by the kernel, not by trident: no answer while two are open.
    let mut third = trident.client();
    third.send(&get("/third"));
    third.set_read_timeout(Duration::from_millis(400));
    let early = third.try_read_response(false);
    assert!(early.is_err(), "served beyond --max-clients: {early:?}");
    assert_eq!(
        p.request_count(),
        2,
        "the third request reached an upstream"
    );
    // One closes: the third is served, and the other still is.
    drop(first);
    third.set_read_timeout(WAIT);
    assert_eq!(third.read_response(false).body_text(), "primary GET /third");
    assert_eq!(second.exchange(&get("/second-again")).status, 200);
}

#[test]
fn a_burst_of_connections_while_the_reactor_is_busy_is_queued_not_dropped() {
    // More connections than std's backlog of 128 arrive while trident cannot accept (it is
    // stopped): the kernel must finish every handshake and queue them, since a dropped SYN
    // costs its client a 1 s retransmission. The kernel caps the queue at somaxconn.
    let somaxconn: usize = fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let burst = 300.min(somaxconn);
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    trident.signal("STOP");
    let connected: Vec<TcpStream> = (0..burst)
        .map_while(|_| TcpStream::connect_timeout(&trident.addr(), Duration::from_millis(500)).ok())
        .collect();
    let queued = connected.len();
    trident.signal("CONT");
    assert_eq!(
        queued, burst,
        "handshakes finished while trident was stopped"
    );
    for (i, stream) in connected.into_iter().enumerate() {
        let mut client = Client::from_stream(stream);
        assert_eq!(client.exchange(&get(&format!("/burst/{i}"))).status, 200);
    }
}

#[test]
fn out_of_file_descriptors_trident_serves_its_clients_and_does_not_spin() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    // Lower the running process's limit: the harness spawns the binary itself.
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", trident.pid()))
        .arg("--nofile=64:64")
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
    // An established client, whose upstream connections are pooled.
    let mut client = trident.client();
    assert_eq!(client.exchange(&get("/before")).status, 200);
    // Far more connections than descriptors: the kernel queues them, trident runs out.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| raw(trident.addr(), Duration::from_millis(50)))
        .collect();
    trident.wait_stderr("accept failed", WAIT);
    let ticks_before = cpu_ticks(trident.pid());
    let window = Instant::now();
    // The established client is still served while the limit is hit.
    for n in 0..10 {
        let resp = client.exchange(&get(&format!("/during-{n}")));
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        thread::sleep(Duration::from_millis(150));
    }
    let wall = window.elapsed();
    let cpu = Duration::from_millis(
        (cpu_ticks(trident.pid()) - ticks_before) * 1000 / ticks_per_second(),
    );
    eprintln!("out of descriptors: {cpu:?} of CPU in {wall:?}");
    assert!(
        cpu < wall / 5,
        "trident used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );
    // The flood goes away: new clients are served again.
    drop(flood);
    let recovered = wait_until(WAIT, || {
        let mut fresh = trident.client();
        fresh.set_read_timeout(Duration::from_millis(500));
        fresh.send(&get("/after"));
        fresh
            .try_read_response(false)
            .is_ok_and(|r| r.status == 200)
    });
    assert!(
        recovered,
        "no new client served after the flood\n{}",
        trident.output()
    );
    assert_eq!(client.exchange(&get("/still")).status, 200);
}

/// trident in front of `addrs` (primary, secondary, candidate) with at most `files` open
/// descriptors.
fn with_open_file_limit(files: u64, addrs: [SocketAddr; 3]) -> Trident {
    let [p, s, c] = addrs.map(|addr| format!("http://{addr}"));
    Trident::spawn_with_open_file_limit(
        files,
        &["--primary", &p, "--secondary", &s, "--candidate", &c],
    )
}

/// Started with few descriptors, trident accepts only the clients it has descriptors for
/// (each may need four: itself and one connection per leg) and says so: the others wait in
/// the listen backlog and are served as the first ones leave, and none gets a 502 for a
/// descriptor its upstream connection could not have.
#[test]
fn with_few_descriptors_trident_accepts_only_the_clients_it_can_serve() {
    let (p, s, c) = three_named();
    let trident = with_open_file_limit(64, [p.addr(), s.addr(), c.addr()]);
    trident.wait_stderr("the open-file limit of 64 leaves room for no more", WAIT);
    // More clients than 64 descriptors could serve, each with a request waiting.
    let mut clients: Vec<Client> = (0..30)
        .map(|i| {
            let mut client = trident.client();
            client.set_read_timeout(WAIT);
            client.send(&get(&format!("/crowd/{i}")));
            client
        })
        .collect();
    // In order: each is answered once enough of those before it have left.
    for (i, mut client) in clients.drain(..).enumerate() {
        let resp = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("client {i}: {e}\n{}", trident.output()));
        assert_eq!(resp.status, 200, "client {i}: {}", resp.body_text());
    }
}

/// A shadow that never answers holds a descriptor per exchange until its deadline, while each
/// client goes on to its next request. With few descriptors each shadow leg is bounded to what
/// the clients and their primary legs leave (beyond, it is skipped as saturated), so a silent
/// candidate never takes the descriptors that new clients need: each is accepted at once.
#[test]
fn with_few_descriptors_a_silent_candidate_leaves_the_clients_their_descriptors() {
    let (p, s, _) = three_named();
    let c = Hostile::start(Behaviour::ReadNoAnswer);
    let trident = with_open_file_limit(64, [p.addr(), s.addr(), c.addr()]);
    trident.wait_stderr("each shadow leg at most", WAIT);
    // One client connection after another, more than the descriptors left for the candidate:
    // every candidate leg is still waiting for its 5 s deadline when the last one comes.
    let started = Instant::now();
    for i in 0..40 {
        let mut client = trident.client();
        client.set_read_timeout(WAIT);
        client.send(&request(
            "GET",
            &format!("/silent/{i}"),
            &[("Host", "test.local"), ("Connection", "close")],
            b"",
        ));
        let resp = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("client {i}: {e}\n{}", trident.output()));
        assert_eq!(resp.status, 200, "client {i}: {}", resp.body_text());
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the clients were not served before the candidate's deadline"
    );
    let output = trident.output();
    assert!(!output.contains("accept failed"), "{output}");
    assert!(!output.contains("Too many open files"), "{output}");
    // Blocks come through the reporting thread: wait for them.
    assert!(
        wait_until(WAIT, || trident
            .stdout()
            .contains("candidate => skipped: saturated")),
        "{output}"
    );
}

/// Load that goes over `--max-clients` and back, again and again, is logged once (a minute),
/// not once per time.
#[test]
fn reaching_max_clients_again_and_again_is_logged_once() {
    let (p, s, c) = three_named();
    let mut trident = Trident::with_upstreams(&p, &s, &c, &["--max-clients", "1"]);
    for i in 0..20 {
        let mut client = trident.client();
        client.set_read_timeout(WAIT);
        assert_eq!(client.exchange(&get(&format!("/full/{i}"))).status, 200);
    }
    trident.wait_blocks(20, WAIT);
    // Every log line written: stop it.
    trident.signal("TERM");
    assert!(trident.wait_exit(WAIT).success());
    let said = trident.stderr().matches("not accepting more").count();
    assert_eq!(said, 1, "{}", trident.stderr());
}

#[test]
fn expect_100_continue_is_answered_by_trident_and_not_forwarded() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    client.send(
        b"PUT /expect HTTP/1.1\r\nHost: test.local\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let (status, reason, _) = client.read_head().expect("an interim answer");
    assert_eq!((status, reason.as_str()), (100, "Continue"));
    client.send(b"hello");
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    for up in [&p, &s, &c] {
        let got = &up.wait_requests(1, WAIT)[0];
        assert!(!got.has_header("Expect"), "Expect forwarded");
        assert_eq!(got.body, b"hello");
    }
}

#[test]
fn upgrade_is_served_as_plain_http_without_upgrade_or_te() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp = client.exchange(
        b"GET /chat HTTP/1.1\r\nHost: test.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nTE: trailers\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "primary GET /chat");
    assert!(resp.header("Upgrade").is_none());
    // Still HTTP on the same connection: no tunnel was opened.
    assert_eq!(client.exchange(&get("/after-upgrade")).status, 200);
    for up in [&p, &s, &c] {
        let got = find(&up.wait_requests(2, WAIT), "/chat").clone();
        for name in ["Upgrade", "Connection", "TE"] {
            assert!(!got.has_header(name), "{name} forwarded to {}", up.addr());
        }
        assert_eq!(got.header("Sec-WebSocket-Version"), Some("13"));
    }
}

#[test]
fn connect_gets_405_and_reaches_no_upstream() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = trident.client();
    let resp =
        client.exchange(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("Connection"), Some("close"));
    client.expect_closed();
    assert_eq!(trident.client().exchange(&get("/after")).status, 200);
    for up in [&p, &s, &c] {
        assert_eq!(sorted_targets(&up.wait_requests(1, WAIT)), ["/after"]);
    }
}

#[test]
fn http10_closes_unless_keep_alive_was_asked_and_then_announces_it() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut plain = trident.client();
    let resp = plain.exchange(b"GET /old HTTP/1.0\r\nHost: test.local\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_ne!(resp.header("Connection"), Some("keep-alive"));
    plain.expect_closed();

    let mut kept = trident.client();
    let resp = kept
        .exchange(b"GET /kept-1 HTTP/1.0\r\nHost: test.local\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    let resp = kept
        .exchange(b"GET /kept-2 HTTP/1.0\r\nHost: test.local\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(resp.body_text(), "primary GET /kept-2");
    // Upstreams always speak HTTP/1.1 with trident.
    for up in [&p, &s, &c] {
        for got in up.wait_requests(3, WAIT) {
            assert_eq!(got.version, "HTTP/1.1");
        }
    }
}

/// `--send-timeout` drops a client that takes nothing; one reading steadily is not dropped
/// though trident writes nothing for longer: the kernel's send buffer (megabytes, once it
/// has grown) makes room for more only in large steps, and the client reads from it
/// meanwhile.
#[test]
fn a_client_reading_steadily_from_the_kernels_buffer_is_not_dropped() {
    const BODY: usize = 4 << 20;
    let primary = Upstream::start(|_| Reply::ok(pattern(BODY, 3)));
    let (s, c) = (Upstream::named("secondary"), Upstream::named("candidate"));
    let trident = Trident::with_upstreams(&primary, &s, &c, &["--send-timeout", "300"]);
    let mut client = small_window_client(trident.addr(), 8192);
    client.write_all(&get("/steady")).expect("send the request");
    // About 800 KB/s, without a pause longer than a few milliseconds.
    let mut got = 0;
    let mut buf = [0u8; 8192];
    while got < BODY {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("reading after {got} bytes: {e}"),
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(got >= BODY, "cut after {got} bytes\n{}", trident.output());
    let blocks = trident.wait_blocks(1, WAIT);
    assert_eq!(blocks[0].primary().response().0, 200, "{}", blocks[0].text);
}

/// A client that closes its side in the middle of its upload gets a 400 naming that, not a
/// 502 blaming the primary, which did nothing wrong.
#[test]
fn a_client_that_half_closes_mid_upload_gets_a_400() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    let mut client = raw(trident.addr(), WAIT);
    client
        .write_all(b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .expect("send");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("the answer");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(
            "trident: the request ended before its body did (the client closed its side)\n"
        ),
        "{answer}"
    );
}
