//! The integration-test harness, shared by every `tests/*.rs` file with `mod support;`:
//! recording test upstreams (healthy and misbehaving), a raw HTTP client, the trident binary
//! as a child process, console-block parsing, targets files and payload helpers. Nothing here
//! sleeps and hopes: every wait has a deadline and panics with what it saw.

// Each test file uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod console;
pub mod hostile;
pub mod tls;
pub mod trident;
pub mod upstream;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A target no test listens on (the discard port): for command lines that must be refused
/// or checked before anything is sent.
pub const NOWHERE: &str = "http://127.0.0.1:9";
/// The three URL flags, every target `NOWHERE`.
pub const URL_FLAGS: [&str; 6] = [
    "--primary",
    NOWHERE,
    "--secondary",
    NOWHERE,
    "--candidate",
    NOWHERE,
];

pub use client::{chunked_request, get, request, BodyFraming, Client, ClientResponse};
pub use console::{parse_blocks, Block, Leg, Outcome};
pub use trident::{run, run_under, Finished, Trident};
pub use upstream::{
    find, refused_addr, sorted_targets, three_named, three_serving, RecordedRequest, Reply,
    Upstream,
};

/// Polls `cond` every few milliseconds until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift), so that reordered or repeated chunks show.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a 64 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Asserts two byte strings are equal, reporting sizes, checksums and the first difference
/// instead of dumping megabytes.
pub fn assert_same_bytes(what: &str, expected: &[u8], got: &[u8]) {
    if expected == got {
        return;
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    panic!(
        "{what}: {} bytes (checksum {:016x}) expected, {} bytes (checksum {:016x}) received; \
         first difference at offset {first}",
        expected.len(),
        checksum(expected),
        got.len(),
        checksum(got)
    );
}

/// A report file path in the temp dir, removed on drop.
pub struct ReportFile(PathBuf);

impl ReportFile {
    pub fn new() -> ReportFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        ReportFile(std::env::temp_dir().join(format!(
            "trident-report-{}-{}.json",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        )))
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }

    pub fn exists(&self) -> bool {
        self.0.exists()
    }

    pub fn read(&self) -> serde_json::Value {
        let bytes = std::fs::read(&self.0).expect("the report file exists");
        serde_json::from_slice(&bytes).expect("the report file is JSON")
    }
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A targets file in the temp dir, removed on drop.
pub struct TargetsFile {
    path: PathBuf,
}

impl TargetsFile {
    /// A file with `text`.
    pub fn new(text: &str) -> TargetsFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "trident-test-{}-{}-{}.conf",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos
        ));
        let file = TargetsFile { path };
        file.write(text);
        file
    }

    /// A valid file naming three upstream URLs.
    pub fn for_urls(primary: &str, secondary: &str, candidate: &str) -> TargetsFile {
        TargetsFile::new(&targets_text(primary, secondary, candidate))
    }

    /// Replaces the file's contents (atomically, by rename, as an editor would).
    pub fn write(&self, text: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write targets file");
        std::fs::rename(&tmp, &self.path).expect("rename targets file");
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with a FIFO that nobody writes to (by rename, as `write` does).
    pub fn replace_with_fifo(&self) {
        let tmp = self.path.with_extension("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&tmp)
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {}: {status}", tmp.display());
        std::fs::rename(&tmp, &self.path).expect("rename the FIFO over the targets file");
    }

    /// The path as a `&str` for the command line.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8 here")
    }
}

impl Drop for TargetsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The text of a valid targets file, with a comment and a blank line.
pub fn targets_text(primary: &str, secondary: &str, candidate: &str) -> String {
    format!(
        "# trident targets\n\nprimary   = {primary}\nsecondary = {secondary}\ncandidate = {candidate}\n"
    )
}
