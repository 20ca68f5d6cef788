//! `--nice N`: trident takes its scheduling priority before it starts any thread, so every
//! thread runs at it, except the report thread, which yields to the others by
//! `REPORT_NICE` more; a priority it may not take is a clear startup error, not a silent
//! fallback.

mod support;

use std::time::{Duration, Instant};

use ::trident::report::REPORT_NICE;
use support::*;

/// The nice value the report thread takes when trident runs at `nice`.
fn report_nice(nice: i64) -> i64 {
    (nice + i64::from(REPORT_NICE)).min(19)
}

const WAIT: Duration = Duration::from_secs(5);

/// The nice value of every thread of process `pid`, by thread name, once a thread of each
/// name in `names` runs (a new thread has its creator's name until it names itself).
fn thread_nice(pid: u32, names: &[&str]) -> Vec<(String, i64)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut threads = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("proc")
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is field 3, nice field 19.
            let nice = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(16))
                .and_then(|n| n.parse().ok());
            if let Some(nice) = nice {
                threads.push((comm.trim().to_string(), nice));
            }
        }
        let all_named = names
            .iter()
            .all(|name| threads.iter().any(|(comm, _)| comm == name));
        if all_named || Instant::now() >= deadline {
            return threads;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether this test process may take nice `nice`: CAP_SYS_NICE (bit 23 of CapEff), or an
/// RLIMIT_NICE soft limit that allows it (the limit is 20 - the lowest nice value allowed).
fn may_take_nice(nice: i64) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc");
    let capable = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 23) != 0);
    let limits = std::fs::read_to_string("/proc/self/limits").expect("proc");
    let limit = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max nice priority"))
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(Some(0), |soft| soft.parse::<i64>().ok());
    // "unlimited" does not parse: any nice value is allowed.
    capable
        || match limit {
            Some(limit) => 20 - limit <= nice,
            None => true,
        }
}

#[test]
fn every_thread_runs_at_the_nice_value_given() {
    let (p, s, c) = three_named();
    // Lowering priority needs no privilege, so this runs anywhere (a test run itself at a
    // nice above 7 asks for its own value instead).
    let own = thread_nice(std::process::id(), &[])
        .first()
        .map_or(0, |(_, nice)| *nice);
    let want = own.max(7);
    let value = want.to_string();
    let trident = Trident::with_upstreams(&p, &s, &c, &["--reactors", "2", "--nice", &value]);
    assert_eq!(
        trident.client().exchange(&get("/x")).body_text(),
        "primary GET /x"
    );
    let threads = thread_nice(
        trident.pid(),
        &["trident", "reactor-1", "report", "stdout", "stderr"],
    );
    let names: Vec<&str> = threads.iter().map(|(name, _)| name.as_str()).collect();
    for name in ["trident", "reactor-1", "report", "stdout", "stderr"] {
        assert!(names.contains(&name), "no {name} thread in {threads:?}");
    }
    for (name, nice) in &threads {
        let expected = if name == "report" {
            report_nice(want)
        } else {
            want
        };
        assert_eq!(*nice, expected, "{name} in {threads:?}");
    }
}

#[test]
fn the_report_thread_yields_to_the_reactor_by_default() {
    let (p, s, c) = three_named();
    let trident = Trident::with_upstreams(&p, &s, &c, &[]);
    assert_eq!(
        trident.client().exchange(&get("/x")).body_text(),
        "primary GET /x"
    );
    let threads = thread_nice(trident.pid(), &["trident", "report"]);
    let nice = |name: &str| {
        threads
            .iter()
            .find(|(comm, _)| comm == name)
            .map(|(_, nice)| *nice)
            .unwrap_or_else(|| panic!("no {name} thread in {threads:?}"))
    };
    assert_eq!(nice("report"), report_nice(nice("trident")), "{threads:?}");
}

#[test]
fn a_raised_priority_is_taken_or_refused_with_the_reason() {
    if may_take_nice(-5) {
        let (p, s, c) = three_named();
        let trident = Trident::with_upstreams(&p, &s, &c, &["--nice", "-5"]);
        assert_eq!(
            trident.client().exchange(&get("/x")).body_text(),
            "primary GET /x"
        );
        let threads = thread_nice(trident.pid(), &["trident", "report"]);
        for (name, nice) in &threads {
            let expected = if name == "report" {
                report_nice(-5)
            } else {
                -5
            };
            assert_eq!(*nice, expected, "{name} in {threads:?}");
        }
    } else {
        let args = [&["--listen", "127.0.0.1:0", "--nice", "-5"][..], &URL_FLAGS].concat();
        let run = run(&args, WAIT);
        assert_eq!(run.status.code(), Some(4), "{}", run.stderr);
        assert!(
            run.stderr.contains("--nice -5") && run.stderr.contains("CAP_SYS_NICE"),
            "the refusal names the flag and what it needs: {}",
            run.stderr
        );
    }
}

/// `--check` tries the priority, so that it does not call a command line fine that would
/// then refuse to start. Run as root, the check runs as nobody (`setpriv`), who may not
/// raise a priority; otherwise as this test runs, expecting what `may_take_nice` says.
#[test]
fn check_refuses_a_priority_trident_may_not_take() {
    let args = [&["--check", "--nice", "-5"][..], &URL_FLAGS].concat();
    let as_nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ];
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let (wrapper, refused): (&[&str], bool) = if may_take_nice(-5) && setpriv {
        (&as_nobody, true)
    } else {
        (&[], !may_take_nice(-5))
    };
    let checked = run_under(wrapper, &args, WAIT);
    if refused {
        assert_eq!(checked.status.code(), Some(2), "{}", checked.stderr);
        assert!(
            checked.stderr.contains("--nice -5") && checked.stderr.contains("CAP_SYS_NICE"),
            "{}",
            checked.stderr
        );
        assert!(
            !checked.stdout.contains("configuration ok"),
            "{}",
            checked.stdout
        );
    } else {
        assert_eq!(checked.status.code(), Some(0), "{}", checked.stderr);
        assert!(
            checked.stdout.contains("configuration ok"),
            "{}",
            checked.stdout
        );
    }
}
