//! Runs the built `trident` binary as a child process: learns its address from the
//! `listening on ADDR` log line, collects stdout and stderr in threads, parses console
//! blocks, sends signals with `kill`, and never leaves a stray process behind.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::Client;
use super::console::{parse_blocks, Block};
use super::upstream::Upstream;
use super::wait_until;

/// How long trident may take to say where it listens.
const STARTUP: Duration = Duration::from_secs(10);

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_trident")
}

/// A running trident; killed and reaped on drop.
pub struct Trident {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<u8>>>,
    /// While set, nothing reads trident's stdout (stderr): its pipe fills and writes block.
    stdout_paused: Arc<AtomicBool>,
    stderr_paused: Arc<AtomicBool>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Trident {
    /// Runs `trident --listen 127.0.0.1:0 ARGS...` and waits for its address. Every method
    /// is shadowed (`--shadow-methods all`) unless ARGS say otherwise, so that tests of
    /// bodies and failures see all three legs whatever the method.
    pub fn spawn(args: &[&str]) -> Trident {
        Trident::spawn_exact(&with_test_defaults(args))
    }

    /// `spawn` with `RUST_LOG=LEVEL`.
    pub fn spawn_at_log_level(level: &str, args: &[&str]) -> Trident {
        let log = Some(("RUST_LOG", level.to_string()));
        Trident::spawn_logging(&with_test_defaults(args), log)
    }

    /// Runs `trident ARGS...` with nothing added (ARGS must give a `--listen` address with
    /// port 0 or a free one), for tests of the defaults and of other listen addresses.
    pub fn spawn_exact(args: &[&str]) -> Trident {
        Trident::spawn_logging(args, debug_log())
    }

    /// `spawn` with at most `files` open descriptors (soft and hard limit, through
    /// util-linux's `prlimit`, which runs trident in its own process).
    pub fn spawn_with_open_file_limit(files: u64, args: &[&str]) -> Trident {
        let limit = format!("--nofile={files}:{files}");
        let program = ["prlimit", &limit, "--", binary()];
        Trident::spawn_program(&program, &with_test_defaults(args), debug_log())
    }

    fn spawn_logging(args: &[&str], log: Option<(&'static str, String)>) -> Trident {
        Trident::spawn_program(&[binary()], args, log)
    }

    /// Runs `program` (trident, or a command running it) with `args`.
    fn spawn_program(
        program: &[&str],
        args: &[&str],
        log: Option<(&'static str, String)>,
    ) -> Trident {
        let mut child = Command::new(program[0])
            .args(&program[1..])
            .args(args)
            .env_remove("RUST_LOG")
            .envs(log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the trident binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_paused = Arc::new(AtomicBool::new(false));
        let stderr_paused = Arc::new(AtomicBool::new(false));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out_reader = {
            let mut pipe = child.stdout.take().expect("stdout pipe");
            let stdout = Arc::clone(&stdout);
            let paused = Arc::clone(&stdout_paused);
            thread::spawn(move || {
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    while paused.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(5));
                    }
                    let Ok(n) = pipe.read(&mut chunk) else { break };
                    if n == 0 {
                        break;
                    }
                    stdout.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            })
        };
        let err_reader = {
            let pipe = child.stderr.take().expect("stderr pipe");
            let stderr = Arc::clone(&stderr);
            let paused = Arc::clone(&stderr_paused);
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = Vec::new();
                let mut announced = false;
                loop {
                    while paused.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(5));
                    }
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if !announced {
                        if let Some(addr) = listening_addr(&text) {
                            announced = true;
                            let _ = tx.send(addr);
                        }
                    }
                    stderr.lock().unwrap().push_str(&text);
                }
            })
        };
        let mut trident = Trident {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout,
            stdout_paused,
            stderr_paused,
            stderr,
            readers: vec![out_reader, err_reader],
            exited: None,
        };
        match rx.recv_timeout(STARTUP) {
            Ok(addr) => trident.addr = addr,
            Err(_) => {
                let _ = trident.child.kill();
                let status = trident.child.wait();
                trident.join_readers();
                panic!(
                    "trident {:?} did not log `listening on ADDR` within {:?} (exit: {:?})\n\
                     --- stderr ---\n{}\n--- stdout ---\n{}",
                    args,
                    STARTUP,
                    status,
                    trident.stderr(),
                    trident.stdout()
                );
            }
        }
        trident
    }

    /// Runs trident with the three URL flags pointing at these addresses, plus `extra`.
    pub fn with_addrs(
        primary: SocketAddr,
        secondary: SocketAddr,
        candidate: SocketAddr,
        extra: &[&str],
    ) -> Trident {
        Trident::with_urls(
            &format!("http://{primary}"),
            &format!("http://{secondary}"),
            &format!("http://{candidate}"),
            extra,
        )
    }

    /// Runs trident with these three URL flags (http:// or https://), plus `extra`.
    pub fn with_urls(primary: &str, secondary: &str, candidate: &str, extra: &[&str]) -> Trident {
        let mut args = vec![
            "--primary",
            primary,
            "--secondary",
            secondary,
            "--candidate",
            candidate,
        ];
        args.extend_from_slice(extra);
        Trident::spawn(&args)
    }

    /// Runs trident in front of three test upstreams, plus `extra`.
    pub fn with_upstreams(
        primary: &Upstream,
        secondary: &Upstream,
        candidate: &Upstream,
        extra: &[&str],
    ) -> Trident {
        Trident::with_addrs(primary.addr(), secondary.addr(), candidate.addr(), extra)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new client connection to this trident.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// stdout and stderr, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// The blocks complete so far; panics if stdout is malformed.
    pub fn blocks(&self) -> Vec<Block> {
        parse_blocks(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not console blocks: {e}\n{}", self.output()))
    }

    /// Waits until at least `n` blocks are complete; panics with the output on timeout.
    pub fn wait_blocks(&self, n: usize, timeout: Duration) -> Vec<Block> {
        let deadline = Instant::now() + timeout;
        loop {
            let blocks = self.blocks();
            if blocks.len() >= n {
                return blocks;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} of {} console blocks within {:?}\n{}",
                    blocks.len(),
                    n,
                    timeout,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until stderr has a line containing `needle`; returns that line.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> String {
        self.wait_stderr_count(needle, 1, timeout).swap_remove(0)
    }

    /// Waits until stderr has `n` lines containing `needle` (one per reactor, say); returns
    /// the lines.
    pub fn wait_stderr_count(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let stderr = self.stderr();
            let lines: Vec<String> = stderr
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect();
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() >= deadline {
                panic!(
                    "stderr has {} of {n} lines containing {needle:?} within {timeout:?}\n{}",
                    lines.len(),
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops reading trident's stdout, as a reader that stopped (not closed) would: once
    /// the pipe is full, trident's writes to stdout block. Reading resumes once it exits.
    pub fn pause_stdout(&self) {
        self.stdout_paused.store(true, Ordering::Relaxed);
    }

    /// `pause_stdout` for stderr.
    pub fn pause_stderr(&self) {
        self.stderr_paused.store(true, Ordering::Relaxed);
    }

    /// Reads stderr again after `pause_stderr`.
    pub fn resume_stderr(&self) {
        self.stderr_paused.store(false, Ordering::Relaxed);
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Sends `kill -TERM` (or another signal by `name`) and waits until the process has taken
    /// it: no longer pending in `/proc/PID/status`. Two of the same signal pending at once
    /// are delivered as one, so a test that counts signals sends each after the last is in.
    pub fn signal_taken(&self, name: &str) {
        let number = match name {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "HUP" => libc::SIGHUP,
            "USR1" => libc::SIGUSR1,
            other => panic!("no signal number known for {other}"),
        };
        let bit = 1u64 << (number - 1);
        self.signal(name);
        let status = format!("/proc/{}/status", self.pid());
        let pending = || {
            let Ok(text) = std::fs::read_to_string(&status) else {
                return false; // gone: nothing is pending any more
            };
            text.lines()
                .filter_map(|l| {
                    l.strip_prefix("SigPnd:")
                        .or_else(|| l.strip_prefix("ShdPnd:"))
                })
                .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .any(|mask| mask & bit != 0)
        };
        assert!(
            wait_until(Duration::from_secs(5), || !pending()),
            "SIG{name} still pending\n{}",
            self.output()
        );
    }

    /// Waits for the process to exit with status 0 and returns the one block it printed.
    pub fn exit_0_with_one_block(&mut self, timeout: Duration) -> Block {
        self.exits_0(timeout);
        let mut blocks = self.blocks();
        assert_eq!(blocks.len(), 1, "{}", self.output());
        blocks.remove(0)
    }

    /// Waits for the process to exit and asserts it exited 0 (a drained shutdown).
    pub fn exits_0(&mut self, timeout: Duration) {
        let status = self.wait_exit(timeout);
        assert_eq!(status.code(), Some(0), "{}", self.output());
    }

    /// Waits for the process to exit; kills it and panics on timeout. The output is complete
    /// once this returns.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    self.join_readers();
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.join_readers();
                    panic!(
                        "trident did not exit within {:?}\n{}",
                        timeout,
                        self.output()
                    );
                }
            }
        }
    }

    fn join_readers(&mut self) {
        self.stdout_paused.store(false, Ordering::Relaxed);
        self.stderr_paused.store(false, Ordering::Relaxed);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Trident {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.join_readers();
        if thread::panicking() {
            // The test failed somewhere else (a client read, an upstream wait): show what
            // trident said, which the test harness prints with the failure.
            eprintln!("trident {} output:\n{}", self.addr, self.output());
        }
    }
}

/// `--listen 127.0.0.1:0`, and `--shadow-methods all` unless `args` say otherwise, then `args`.
fn with_test_defaults<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut full = vec!["--listen", "127.0.0.1:0"];
    if !args.iter().any(|a| a.starts_with("--shadow-methods")) {
        full.extend_from_slice(&["--shadow-methods", "all"]);
    }
    full.extend_from_slice(args);
    full
}

/// `TRIDENT_TEST_LOG=debug cargo test ...` runs the spawned proxies with `RUST_LOG=debug`
/// (by default they run with the default level, as a user would).
fn debug_log() -> Option<(&'static str, String)> {
    std::env::var("TRIDENT_TEST_LOG")
        .ok()
        .map(|level| ("RUST_LOG", level))
}

/// The address in a `... listening on 127.0.0.1:PORT ...` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on ")?;
    let rest = &line[at + "listening on ".len()..];
    let word = rest.split_whitespace().next()?;
    let word = word
        .trim_matches(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '[' | ']')));
    let word = word.strip_prefix("http://").unwrap_or(word);
    word.parse().ok()
}

/// What a trident run that ended on its own produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Runs `trident ARGS...` (no `--listen` added) to completion; kills it and panics if it is
/// still running after `timeout` (a command line that should have been rejected was not).
pub fn run(args: &[&str], timeout: Duration) -> Finished {
    run_under(&[], args, timeout)
}

/// `run` under a wrapper command (`setpriv --reuid 65534 ...`), which is given the binary
/// and `args`.
pub fn run_under(wrapper: &[&str], args: &[&str], timeout: Duration) -> Finished {
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary());
            command
        }
        None => Command::new(binary()),
    };
    let mut child = command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the trident binary");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = collect(Box::new(child.stderr.take().expect("stderr pipe")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "trident {args:?} still running after {timeout:?}\n--- stderr ---\n{stderr}"
                );
            }
        }
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
