//! The command line: help and version exit 0; every mistake (unknown flag, both target forms,
//! neither, a missing role, a bad address, a bad targets file) exits 2 with one stderr line
//! naming the problem (plus at most a usage hint) and nothing on stdout; and how log lines begin.

mod support;

use std::time::Duration;

use support::*;

const QUICK: Duration = Duration::from_secs(10);

/// Asserts `args` exits 2 with a first stderr line containing one of `needles`
/// (case-insensitive) and at most one more line (the usage hint).
fn assert_rejected(args: &[&str], needles: &[&str]) -> String {
    let run = run(args, QUICK);
    assert_eq!(
        run.status.code(),
        Some(2),
        "{args:?}: status {:?}\n{}",
        run.status,
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{args:?}: stdout {:?}", run.stdout);
    let lines = run.stderr_lines();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "{args:?}: expected one line naming the problem (and a hint), got:\n{}",
        run.stderr
    );
    let first = lines[0].to_ascii_lowercase();
    assert!(
        needles
            .iter()
            .any(|n| first.contains(&n.to_ascii_lowercase())),
        "{args:?}: {:?} does not name the problem (any of {needles:?})",
        lines[0]
    );
    lines[0].to_string()
}

#[test]
fn help_prints_usage_and_exits_zero() {
    for flag in ["--help", "-h"] {
        let run = run(&[flag], QUICK);
        assert_eq!(run.status.code(), Some(0), "{flag}: {}", run.stderr);
        for word in ["--listen", "--targets", "--primary", "--timeout"] {
            assert!(
                run.stdout.contains(word),
                "{flag}: no {word} in\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn version_prints_the_name_and_version_and_exits_zero() {
    for flag in ["--version", "-V"] {
        let run = run(&[flag], QUICK);
        assert_eq!(run.status.code(), Some(0), "{flag}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim(),
            format!("trident {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    assert_rejected(&[&["--bogus"][..], &URL_FLAGS].concat(), &["bogus"]);
}

#[test]
fn both_target_forms_exit_2() {
    let file = TargetsFile::for_urls(NOWHERE, NOWHERE, NOWHERE);
    assert_rejected(
        &[&["--targets", file.arg()][..], &URL_FLAGS].concat(),
        &["--targets", "--primary"],
    );
}

#[test]
fn neither_target_form_exits_2() {
    assert_rejected(&["--listen", "127.0.0.1:0"], &["target", "primary"]);
}

#[test]
fn a_missing_role_flag_exits_2_naming_the_role() {
    assert_rejected(
        &["--primary", NOWHERE, "--secondary", NOWHERE],
        &["candidate"],
    );
}

#[test]
fn bad_values_exit_2_naming_the_flag_or_value() {
    let rows: [(&[&str], &[&str]); 7] = [
        (
            &["--listen", "not-an-address"],
            &["--listen", "not-an-address"],
        ),
        (&["--timeout", "soon"], &["--timeout", "soon"]),
        (
            &["--connect-timeout", "fast"],
            &["--connect-timeout", "fast"],
        ),
        (&["--primary", "ftp://x"], &["--primary", "ftp://x"]),
        // A role header in a field trident decides would corrupt every leg's request.
        (
            &["--role-header", "Content-Length"],
            &["--role-header: Content-Length is decided by the request's framing"],
        ),
        (
            &["--role-header", "Host"],
            &["--role-header: Host is decided by the leg's host= option"],
        ),
        (
            &["--role-header", "Transfer-Encoding"],
            &["--role-header: Transfer-Encoding is decided by"],
        ),
    ];
    for (bad, needles) in rows {
        let mut args = URL_FLAGS.to_vec();
        // A repeated URL flag would be a different mistake: replace instead.
        if bad[0] == "--primary" {
            args[1] = bad[1];
        } else {
            args.extend_from_slice(bad);
        }
        assert_rejected(&args, needles);
    }
}

#[test]
fn bad_targets_files_exit_2_naming_file_and_line() {
    let p = format!("primary = {NOWHERE}");
    let s = format!("secondary = {NOWHERE}");
    let c = format!("candidate = {NOWHERE}");
    let rows: [(String, usize); 4] = [
        (format!("# roles\n{p}\n{s}\ncanidate = {NOWHERE}\n"), 4),
        (format!("{p}\n{s}\n{p}\n{c}\n"), 3),
        (format!("{p}\nsecondary = ftp://127.0.0.1:9\n{c}\n"), 2),
        (format!("{p}\nthis is not a target line\n{s}\n{c}\n"), 2),
    ];
    for (text, line) in rows {
        let file = TargetsFile::new(&text);
        let needle = format!("{}:{line}", file.arg());
        assert_rejected(&["--targets", file.arg()], &[&needle]);
    }
}

#[test]
fn a_targets_file_missing_a_role_exits_2_naming_the_file_and_the_role() {
    let file = TargetsFile::new(&format!("primary = {NOWHERE}\nsecondary = {NOWHERE}\n"));
    let line = assert_rejected(&["--targets", file.arg()], &[file.arg()]);
    assert!(line.contains("candidate"), "{line}");
}

#[test]
fn a_missing_targets_file_exits_2_naming_it() {
    let path = std::env::temp_dir().join("trident-test-no-such-file.conf");
    let path = path.to_str().expect("UTF-8 temp path");
    assert_rejected(&["--targets", path], &[path]);
}

#[test]
fn a_fifo_for_targets_file_is_refused_at_once() {
    // A FIFO nobody writes to: opening it to read would wait for a writer.
    let file = TargetsFile::new("");
    file.replace_with_fifo();
    assert_rejected(
        &["--targets", file.arg()],
        &[&format!("{}: a FIFO, not a file", file.arg())],
    );
}

#[test]
fn a_target_that_is_trident_itself_is_refused_at_once() {
    // Never bound: the targets are refused first.
    let own = "http://127.0.0.1:9";
    let flags = [
        "--listen",
        "127.0.0.1:9",
        "--primary",
        "http://127.0.0.1:1",
        "--secondary",
        "http://127.0.0.1:2",
        "--candidate",
        own,
    ];
    let expected = "--candidate: http://127.0.0.1:9 is trident's own listen address 127.0.0.1:9";
    assert_rejected(&flags, &[expected]);
    assert_rejected(&[&flags[..], &["--check"]].concat(), &[expected]);
    let file = TargetsFile::new(&targets_text(
        own,
        "http://127.0.0.1:2",
        "http://127.0.0.1:3",
    ));
    assert_rejected(
        &["--listen", "0.0.0.0:9", "--targets", file.arg()],
        &[&format!(
            "{}: primary http://127.0.0.1:9 is trident's own listen address 0.0.0.0:9",
            file.arg()
        )],
    );
}

#[test]
fn endless_files_are_refused_without_filling_memory() {
    // `/dev/zero` for a file never ends: each is read up to a bound, then refused.
    assert_rejected(
        &["--targets", "/dev/zero"],
        &["/dev/zero: larger than 1048576 bytes: not a targets file"],
    );
    let tls = [
        &URL_FLAGS[..],
        &["--tls-cert", "/dev/zero", "--tls-key", "/dev/zero"],
    ]
    .concat();
    assert_rejected(&tls, &["/dev/zero: no PEM certificate in it"]);
    let ca = [&URL_FLAGS[..], &["--ca-file", "/dev/zero"]].concat();
    assert_rejected(&ca, &["/dev/zero: no usable CA certificate in it"]);
}

#[test]
fn a_targets_file_with_comments_and_blank_lines_serves_traffic() {
    let (p, s, c) = three_named();
    let file = TargetsFile::new(&format!(
        "# trident targets\n\n   # indented comment\nprimary   = {}\n\nsecondary = {}\ncandidate = {}\n\n",
        p.url(),
        s.url(),
        c.url()
    ));
    let trident = Trident::spawn(&["--targets", file.arg()]);
    let resp = trident.client().exchange(&get("/from-file"));
    assert_eq!(resp.body_text(), "primary GET /from-file");
    c.wait_requests(1, Duration::from_secs(5));
}

#[test]
fn demo_proxies_real_traffic_and_exits_zero() {
    let run = run(&["--demo"], Duration::from_secs(30));
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    let blocks = parse_blocks(&run.stdout)
        .unwrap_or_else(|e| panic!("demo stdout is not console blocks: {e}\n{}", run.stdout));
    // The blocks, then the summary, ending with the verdict: the demo's candidate has one
    // real regression among noise on every endpoint.
    let summary = run
        .stdout
        .find("SUMMARY ")
        .expect("the demo ends with a summary");
    assert_eq!(
        run.stdout[..summary].lines().count(),
        4 * blocks.len(),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with(
            "VERDICT candidate: FAIL — 1 endpoint regresses (4 endpoints undecided: too few \
                 exchanges compared)\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        blocks.len() >= 12,
        "only {} blocks:\n{}",
        blocks.len(),
        run.stdout
    );
    assert!(blocks.iter().any(|b| b.method == "POST"), "{}", run.stdout);
    // The closing words say what the run did with the POSTs.
    assert!(
        run.stderr.contains("the POSTs are not shadowed"),
        "{}",
        run.stderr
    );
    let all = self::run(
        &["--demo", "--shadow-methods", "all"],
        Duration::from_secs(30),
    );
    assert_eq!(all.status.code(), Some(0), "{}", all.stderr);
    assert!(all.stderr.contains("demo: how to read"), "{}", all.stderr);
    assert!(!all.stderr.contains("not shadowed"), "{}", all.stderr);
}

/// Log lines start with the time in UTC, except where stderr is the systemd journal, which
/// stamps lines itself: systemd names that stream in JOURNAL_STREAM as `DEVICE:INODE`.
#[test]
fn log_lines_carry_a_timestamp_unless_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    // The demo's log, its stderr a socket named (or not) as the journal.
    let demo_log = |journal: bool| {
        // A socket, as systemd hands a service (std's `io::pipe` is newer than the MSRV).
        let (mut reader, writer) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", writer.as_raw_fd())).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_trident"));
        command
            .arg("--demo")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::os::fd::OwnedFd::from(writer));
        // Not the journal: another stream's, inherited by a child whose stderr went elsewhere.
        let inode = if journal { meta.ino() } else { meta.ino() + 1 };
        command.env("JOURNAL_STREAM", format!("{}:{inode}", meta.dev()));
        let mut child = command.spawn().expect("start the trident binary");
        drop(command); // the parent's copy of the write end, so that the read ends
        let read = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut reader, &mut text).map(|_| text)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the demo did not finish in 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        read.join().unwrap().expect("the demo's stderr")
    };

    let stamped = demo_log(false);
    let lines: Vec<&str> = stamped.lines().collect();
    assert!(lines.len() >= 2, "{stamped}");
    for line in lines {
        // 2026-11-24T03:45:12.123Z trident: INFO: ...
        let (time, rest) = line.split_once(' ').unwrap_or(("", line));
        let shape: String = time
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{line}");
        assert!(rest.starts_with("trident: INFO: "), "{line}");
    }

    let journal = demo_log(true);
    assert!(journal.lines().count() >= 2, "{journal}");
    for line in journal.lines() {
        assert!(line.starts_with("trident: INFO: "), "{line}");
    }
}

/// `--check` lists repeated values so that each reads as one: a name with a `,` or a space is
/// quoted (hunt 84: `a,b` and `c` read as `ignore-field=a,b,c`), and a newline is escaped
/// (hunt 86: it began a line of its own).
#[test]
fn check_lists_each_ignored_field_and_endpoint_as_one() {
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_trident"))
        .arg("--check")
        .args(URL_FLAGS)
        .args(["--ignore-field", "a,b", "--ignore-field", "c"])
        .args(["--ignore-field", "body n type", "--ignore-field", r#"q"\"#])
        .args(["--ignore-field", "a\nverdict forged"])
        .args(["--endpoint", "GET /users/{id}"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run trident --check");
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(r#" ignore-field="a,b",c,"body n type","q\"\\","a\nverdict forged" "#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#" endpoint="GET /users/{id}" "#),
        "{stdout}"
    );
}

/// `--check` shows `--max-clients` and the shadow legs' `max_inflight=` as trident would run
/// with them: lowered to what the open-file limit leaves room for, with a note saying why.
#[test]
fn check_shows_max_clients_and_max_inflight_as_the_open_file_limit_leaves_them() {
    let limited = std::process::Command::new("prlimit")
        .args([
            "--nofile=64:64",
            "--",
            env!("CARGO_BIN_EXE_trident"),
            "--check",
        ])
        .args(URL_FLAGS)
        .env_remove("RUST_LOG")
        .output()
        .expect("run prlimit (util-linux)");
    let stdout = String::from_utf8_lossy(&limited.stdout);
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert_eq!(limited.status.code(), Some(0), "{stderr}");
    let clients = stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix("max-clients="))
        .expect("a max-clients= value");
    let clients: usize = clients.parse().unwrap();
    assert!(
        (1..=12).contains(&clients),
        "max-clients={clients}\n{stdout}"
    );
    let inflight: Vec<usize> = stdout
        .lines()
        .filter_map(|line| {
            let rest = line.split("max_inflight=").nth(1)?;
            let (n, note) = rest.split_once(' ')?;
            assert!(note.starts_with("(the open-file limit's)"), "{line}");
            n.parse().ok()
        })
        .collect();
    assert_eq!(inflight.len(), 2, "{stdout}");
    let shadows = inflight[0];
    assert!(shadows >= clients && shadows < 256, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "trident: note: at most {clients} clients at once, and each shadow leg at most \
             {shadows} exchanges in flight (beyond, it is skipped as saturated): the open-file \
             limit of 64"
        )),
        "{stderr}"
    );
}

/// An open-file limit with no room for a client on each reactor is refused: a client
/// accepted then could only get 502s. `--check` says so with status 2, a start with 4.
#[test]
fn an_open_file_limit_without_room_for_a_client_is_refused() {
    for (mode, status) in [(&["--check"][..], 2), (&["--listen", "127.0.0.1:0"][..], 4)] {
        let refused = std::process::Command::new("prlimit")
            .args(["--nofile=16:16", "--", env!("CARGO_BIN_EXE_trident")])
            .args(mode)
            .args(URL_FLAGS)
            .env_remove("RUST_LOG")
            .output()
            .expect("run prlimit (util-linux)");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(status), "{mode:?}: {stderr}");
        assert!(
            stderr.contains("trident: the open-file limit of 16 leaves no room for a client"),
            "{mode:?}: {stderr}"
        );
    }
}

/// A `--report` path that cannot be written is refused before anything starts, by `--check`,
/// a real start and the demo: found only at shutdown, the whole run's report would be lost.
#[test]
fn a_report_path_that_cannot_be_written_is_refused_at_start_up() {
    let missing = std::env::temp_dir().join("trident-no-such-dir/report.json");
    let dir = std::env::temp_dir();
    for path in [missing.to_str().unwrap(), dir.to_str().unwrap(), ""] {
        for mode in [&["--check"][..], &["--listen", "127.0.0.1:0"][..]] {
            let args = [mode, &["--report", path][..], &URL_FLAGS].concat();
            assert_rejected(&args, &["--report"]);
        }
        assert_rejected(&["--demo", "--report", path], &["--report"]);
    }
}

/// A `--report` path naming the targets file is refused: the first summary would replace the
/// user's targets with JSON, and the next SIGHUP would fail on it.
#[test]
fn a_report_path_naming_the_targets_file_is_refused() {
    let file = TargetsFile::new(&targets_text(NOWHERE, NOWHERE, NOWHERE));
    for mode in [&["--check"][..], &["--listen", "127.0.0.1:0"][..]] {
        let args = [mode, &["--targets", file.arg(), "--report", file.arg()][..]].concat();
        let line = assert_rejected(&args, &["is the file --targets reads"]);
        assert!(line.contains("the report would replace it"), "{line}");
    }
    assert_eq!(
        std::fs::read_to_string(file.arg()).unwrap(),
        targets_text(NOWHERE, NOWHERE, NOWHERE)
    );
}

/// The log says at start-up which targets trident uses, with the address a host name gave.
#[test]
fn the_targets_are_logged_at_start_up_with_the_addresses_of_names() {
    let (p, s, c) = three_named();
    let candidate = format!("http://localhost:{}", c.addr().port());
    let (pu, su) = (p.url(), s.url());
    let trident = Trident::with_urls(&pu, &su, &candidate, &[]);
    let line = trident.wait_stderr("targets: ", Duration::from_secs(5));
    let expected = format!("targets: primary={pu} secondary={su} candidate={candidate} (");
    assert!(line.contains(&expected), "{line}");
    assert!(line.contains(&format!(":{})", c.addr().port())), "{line}");
}

/// `--ignore-field` written like an index is accepted (a key may be written so) with a
/// warning from `--check`; an empty path is refused.
#[test]
fn an_ignore_path_that_looks_mistaken_is_warned_about_and_an_empty_one_refused() {
    let file = TargetsFile::for_urls(
        "http://127.0.0.1:9001",
        "http://127.0.0.1:9002",
        "http://127.0.0.1:9003",
    );
    let checked = run(
        &[
            "--targets",
            file.arg(),
            "--check",
            "--ignore-field",
            "items[0].id",
            "--ignore-field",
            "body first name",
        ],
        QUICK,
    );
    assert_eq!(checked.status.code(), Some(0), "{}", checked.stderr);
    assert!(
        checked.stderr.contains(
            "warning: --ignore-field items[0].id: arrays are written [], for every element: \
             paths have no indexes; it matches only a key written so"
        ),
        "{}",
        checked.stderr
    );
    assert!(!checked.stderr.contains("first name"), "{}", checked.stderr);
    assert_rejected(
        &["--targets", file.arg(), "--ignore-field", ""],
        &["--ignore-field: an empty path"],
    );
}

/// Output the stream refuses (`/dev/full`, a reader that has gone) is lost, not a panic:
/// `--help`, `--version` and `--check` exited 101 with a backtrace (hunt 75).
#[test]
fn a_stdout_that_refuses_writes_does_not_change_the_exit_status() {
    use std::process::{Command, Stdio};
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let targets = "--primary=http://127.0.0.1:1";
    for (args, code) in [
        (vec!["--help"], 0),
        (vec!["--version"], 0),
        (
            vec![
                "--check",
                targets,
                "--secondary=http://127.0.0.1:2",
                "--candidate=http://127.0.0.1:3",
            ],
            0,
        ),
        (vec!["--bogus"], 2),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_trident"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full())
            .stderr(full())
            .output()
            .expect("run trident");
        assert_eq!(output.status.code(), Some(code), "{args:?}");
    }
}
