//! The reporting thread: finished exchanges arrive over a bounded crossbeam channel; each is
//! compared (`compare`: candidate and secondary against the primary), counted (`stats`, per
//! endpoint and field, per statistics epoch), and written to stdout as a console block
//! (`console`) or a JSON line (`jsonl`). Summaries and the verdict (`summary`) are written on
//! SIGUSR1, when a reload starts a new epoch, and at shutdown, when the channel disconnects.
//! Nothing here runs on the reactor, and the reactor never waits for it: if this thread falls
//! behind, exchanges are dropped at the channel and counted as `not compared`. Nor does this
//! thread wait for stdout: `crate::output` writes it from a thread of its own.

mod check;
mod compare;
mod console;
mod decode;
mod endpoint;
mod json;
mod jsonl;
mod stats;
mod summary;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde_json::{json, Value};

use crate::failure::LegError;
use crate::http::Version;
use crate::output::{self, Notice, Output};

pub use check::{check_report, encode_report_input};
pub use compare::DEFAULT_IGNORED_HEADERS;
pub use console::write_block;
pub use endpoint::{looks_like_id, Pattern, PatternError};
pub use json::ignore_path_doubt;
pub use stats::{Percent, Thresholds};

/// How many finished exchanges may wait for the reporting thread before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 4096;
/// How many captured bytes (bodies and fields) may wait for the reporting thread; beyond it
/// new exchanges are dropped (counted as not compared), so a slow reporter never grows
/// trident's memory without bound.
pub const BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// How often the idle reporting thread looks at the SIGUSR1 flag.
const SIGNAL_POLL: Duration = Duration::from_millis(200);
/// Epochs counted at once while the oldest waits for its exchanges in flight (the oldest
/// among them): past it (a reload storm under long exchanges) the oldest is reported, and
/// its stragglers count as late, so that the reporting thread's memory stays bounded.
const MAX_OPEN_EPOCHS: usize = 4;
/// After how long without an exchange the freed memory of a burst goes back to the system.
const IDLE_TRIM: Duration = Duration::from_secs(1);
/// How long the reporting thread sleeps between batches while records keep coming.
const BATCH_PAUSE: Duration = Duration::from_millis(5);
/// Output is written in batches of whole blocks up to about this size (or sooner, whenever
/// the channel is empty), so a burst costs a few writes instead of one per block.
const WRITE_BATCH: usize = 64 * 1024;
/// Closed epochs kept for `--report FILE` (each reload closes one). Without `--report`
/// none is kept: nothing would read them.
const KEPT_EPOCHS: usize = 16;
/// ... and at most this much of them, the newest always: an epoch of thousands of noisy
/// fields runs to tens of MB of samples, and 16 of them held 1 GB and were written out whole
/// at every reload and SIGUSR1, while exchanges went uncompared (hunt 80).
const KEPT_EPOCH_BYTES: usize = 32 << 20;

/// How stdout shows exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Four text lines per exchange (`REQUEST`, three `RESPONSE`), text summaries.
    #[default]
    Text,
    /// One JSON line per exchange and per summary.
    Json,
}

/// What the reporting thread is told by the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub format: Format,
    /// `--ignore-header`, on top of `DEFAULT_IGNORED_HEADERS`.
    pub ignore_headers: Vec<String>,
    /// `--ignore-field`: JSON paths left out of the comparison.
    pub ignore_fields: Vec<String>,
    /// `--endpoint`: templates tried before automatic `{id}` templating.
    pub endpoints: Vec<Pattern>,
    /// `--max-endpoints`, default 1000: beyond it, exchanges count under `other`.
    pub max_endpoints: usize,
    pub thresholds: Thresholds,
    /// `--report FILE`: the summary as JSON, rewritten on SIGUSR1, reload and shutdown.
    pub report_file: Option<PathBuf>,
    /// `--max-compare-bytes`, default 1 MiB: the most a body may decode to for the
    /// comparison (and the bytes of it each leg keeps; a hash covers the rest).
    pub max_compare_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            format: Format::Text,
            ignore_headers: Vec::new(),
            ignore_fields: Vec::new(),
            endpoints: Vec::new(),
            max_endpoints: 1000,
            thresholds: Thresholds::default(),
            report_file: None,
            max_compare_bytes: 1024 * 1024,
        }
    }
}

/// How the reporting thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub verdict: Verdict,
    /// The last write of `--report FILE` (the final one) failed.
    pub report_failed: bool,
}

/// The candidate's verdict at shutdown, for `--exit-code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No endpoint regressed in any epoch, and one of the current epoch had the samples to
    /// tell (its headers and bodies compared on both shadows `--min-samples` times).
    Pass,
    /// At least one endpoint regressed in at least one epoch.
    Fail,
    /// Nothing regressed, but no endpoint of the current epoch had those samples: no
    /// evidence either way (no traffic, every endpoint in a long tail, the shadows down or
    /// answering errors).
    Undecided,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Undecided => "UNDECIDED",
        }
    }
}

/// One finished exchange: the request and what each leg did. Sent to the reporting thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeRecord {
    /// 1, 2, 3 ... in the order requests arrived.
    pub id: u64,
    pub method: String,
    pub target: String,
    pub version: Version,
    pub host: Option<String>,
    /// Request payload bytes (after de-chunking).
    pub request_body_bytes: u64,
    /// The targets generation the exchange ran on: 0 at start-up, bumped by each reload.
    pub epoch: u64,
    /// Indexed by `Role::index()`.
    pub legs: [LegOutcome; 3],
    /// The address each leg's connection went to (the last one tried, for a leg whose
    /// connects failed); `None` for a leg that never had one (skipped).
    pub upstreams: [Option<SocketAddr>; 3],
    /// The client went away (closed, or was dropped for not reading) before its whole
    /// answer was out: the primary's line says what the primary sent, not what it got.
    pub client_left: bool,
}

impl ExchangeRecord {
    /// Heap bytes the record carries (captured bodies and fields), for the backlog bound.
    pub fn captured_bytes(&self) -> usize {
        self.legs
            .iter()
            .map(|leg| match leg {
                LegOutcome::Response {
                    fields,
                    body,
                    interim,
                    ..
                } => {
                    fields.len() + body.bytes.len() + interim.as_ref().map_or(0, |i| i.fields.len())
                }
                _ => 0,
            })
            .sum()
    }
}

/// The start of a response body, kept for comparison, and a hash of all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedBody {
    /// The first `--max-compare-bytes` payload bytes (de-chunked, still content-encoded).
    pub bytes: Vec<u8>,
    /// The body was longer than the cap: only `hash()` covers the whole of it.
    pub truncated: bool,
    /// A shadow's body cut short once it ran past the primary's whole body by more than the
    /// cap (it differs whatever follows): the size and hash are of what was read.
    pub cut: bool,
    /// The hash of the whole payload, kept only once the body outgrew the cap: a body that
    /// fits is hashed from `bytes` when (rarely) a hash is asked for, so the reactor hashes
    /// nothing on the common path.
    streamed: BodyHash,
}

impl CapturedBody {
    /// An empty capture.
    pub fn new() -> CapturedBody {
        CapturedBody::default()
    }

    /// Takes the next payload bytes: kept up to `cap`; past the cap, hashed. Once a body has
    /// outgrown its cap, nothing more is kept even if a later cap is larger (the reactor's
    /// capture budget frees up): `bytes` stays a prefix, and the hash covers every byte.
    pub fn extend(&mut self, payload: &[u8], cap: usize) {
        let room = if self.truncated {
            0
        } else {
            cap.saturating_sub(self.bytes.len())
        };
        let (kept, beyond) = payload.split_at(payload.len().min(room));
        self.bytes.extend_from_slice(kept);
        if beyond.is_empty() {
            return;
        }
        if !self.truncated {
            // The body outgrew the cap: from now on the hash is the only full record.
            self.truncated = true;
            self.streamed.update(&self.bytes);
        }
        self.streamed.update(beyond);
    }

    /// A 64-bit hash of the whole payload, however it arrived in pieces.
    pub fn hash(&self) -> u64 {
        if self.truncated {
            self.streamed.finish()
        } else {
            BodyHash::of(&self.bytes)
        }
    }
}

/// A streaming hash of a body, eight bytes at a time: past the compare cap a shadow's body is
/// hashed as it comes, and one that never ends (a misbehaving candidate) comes as fast as
/// loopback carries it. FNV-1a's byte-at-a-time multiply took nearly all of the reactor's time
/// there; a multiply per word, with a shift to carry high bits down, takes an eighth. It tells
/// bodies apart, not attackers: nothing relies on it resisting a crafted collision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyHash {
    state: u64,
    /// Bytes waiting for a whole word (`pending[..pending_len]`): the result is the same
    /// however the body is split.
    pending: [u8; 8],
    pending_len: u8,
}

impl Default for BodyHash {
    fn default() -> BodyHash {
        BodyHash {
            state: 0xcbf2_9ce4_8422_2325,
            pending: [0; 8],
            pending_len: 0,
        }
    }
}

impl BodyHash {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    /// The hash of `bytes`, whole.
    fn of(bytes: &[u8]) -> u64 {
        let mut hash = BodyHash::default();
        hash.update(bytes);
        hash.finish()
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let take = (8 - have).min(bytes.len());
            self.pending[have..have + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take as u8;
            bytes = &bytes[take..];
            if self.pending_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.pending_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len() as u8;
    }

    fn mix(&mut self, word: u64) {
        let x = (self.state ^ word).wrapping_mul(Self::MULTIPLIER);
        self.state = x ^ (x >> 29);
    }

    /// The hash of everything given so far (the tail and its length mixed in last, so that a
    /// body and the same body with zero bytes added differ).
    fn finish(&self) -> u64 {
        let mut last = self.clone();
        let len = usize::from(self.pending_len);
        let mut tail = [0u8; 8];
        tail[..len].copy_from_slice(&self.pending[..len]);
        last.mix(u64::from_le_bytes(tail));
        last.mix(len as u64);
        last.state
    }
}

#[cfg(test)]
impl LegOutcome {
    /// A `200 OK` leg whose whole `body` was captured, for the report modules' tests.
    pub(crate) fn ok_for_test(body: &str, fields: &[u8], elapsed: Duration) -> LegOutcome {
        let mut capture = CapturedBody::new();
        capture.extend(body.as_bytes(), body.len());
        LegOutcome::Response {
            status: 200,
            reason: "OK".to_string(),
            body_bytes: body.len() as u64,
            elapsed,
            interim: None,
            fields: fields.to_vec(),
            body: capture,
        }
    }
}

/// An interim (1xx) response: what `103 Early Hints` told the client to fetch early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interim {
    pub status: u16,
    /// Its end-to-end fields (the `Link`s of hints), as `LegOutcome::Response::fields`.
    pub fields: Vec<u8>,
}

/// What one leg of an exchange came to.
#[derive(Debug, Clone, PartialEq)]
pub enum LegOutcome {
    /// A complete response.
    Response {
        status: u16,
        reason: String,
        /// Response payload bytes (after de-chunking).
        body_bytes: u64,
        /// From the start of the exchange to the end of the response.
        elapsed: Duration,
        /// The last interim (1xx) response that came before it, if any (`103` for hints).
        interim: Option<Interim>,
        /// End-to-end response fields, `Name: value\r\n` each, in order and case.
        fields: Vec<u8>,
        body: CapturedBody,
    },
    /// The leg failed; see `LegError` for the console text.
    Failed { error: LegError, elapsed: Duration },
    /// The leg was not sent this request; the text says why (`saturated`, `sampling`).
    Skipped(&'static str),
}

/// What waits between the reactor and the reporting thread, and what could not wait.
#[derive(Debug, Default)]
pub struct Backlog {
    queued_bytes: AtomicUsize,
    /// Exchanges that will never be reported, by the epoch they belong to: each summary
    /// counts its own epoch's. Touched only when one is dropped (the reporting thread is
    /// behind) or abandoned, and at each summary.
    not_compared: Mutex<BTreeMap<u64, u64>>,
    /// The newest epoch a reload began (every reactor says so at its own install).
    announced_epoch: AtomicU64,
    /// Epochs begun, summed over the reactors: each reactor begins every epoch, in order, so
    /// all of them run the newest when this is `reactors` times `announced_epoch`.
    announcements: AtomicU64,
    /// Reactors sending (1 unless `--reactors`).
    reactors: AtomicU64,
    /// Exchanges of epochs a reload ended that are still in flight: the old epoch is not
    /// closed under them (they would count in none). Touched only by those exchanges.
    older_in_flight: AtomicU64,
    /// Records dropped at the channel, by every reactor: the warning counts them all.
    dropped_records: AtomicU64,
}

impl Backlog {
    /// Exchanges not compared and not yet taken into a summary, in all epochs.
    pub fn not_compared(&self) -> u64 {
        self.dropped().values().sum()
    }

    fn dropped(&self) -> MutexGuard<'_, BTreeMap<u64, u64>> {
        self.not_compared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `n` exchanges of `epoch` will never be reported.
    fn count_not_compared(&self, epoch: u64, n: u64) {
        if n > 0 {
            *self.dropped().entry(epoch).or_default() += n;
        }
    }

    /// Takes the counts of the epochs before `end` (all of them: `u64::MAX`).
    fn take_not_compared(&self, end: u64) -> BTreeMap<u64, u64> {
        let mut dropped = self.dropped();
        let later = dropped.split_off(&end);
        std::mem::replace(&mut *dropped, later)
    }

    /// The count of `epoch` alone, left where it is.
    fn not_compared_of(&self, epoch: u64) -> u64 {
        self.dropped().get(&epoch).copied().unwrap_or(0)
    }

    /// The count of `epoch` and of the ones before it, left where it is.
    fn not_compared_through(&self, epoch: u64) -> u64 {
        self.dropped().range(..=epoch).map(|(_, n)| n).sum()
    }

    /// The newest epoch a reload began, once every exchange of the epochs before it has been
    /// handed over (or dropped): every reactor runs it, and none has an older one in flight.
    fn older_epochs_complete(&self) -> Option<u64> {
        // In this order: a reactor adds its exchanges in flight before it counts itself in.
        let announced = self.announced_epoch.load(Ordering::SeqCst);
        let announcements = self.announcements.load(Ordering::SeqCst);
        let reactors = self.reactors.load(Ordering::SeqCst).max(1);
        let all_in = announcements == reactors * announced;
        (all_in && self.older_in_flight.load(Ordering::SeqCst) == 0).then_some(announced)
    }
}

/// The sending side the reactor holds. `offer` never blocks.
#[derive(Debug, Clone)]
pub struct ReportSender {
    records: Sender<ExchangeRecord>,
    backlog: Arc<Backlog>,
}

impl ReportSender {
    /// `n` exchanges of `epoch` will never be reported (abandoned at shutdown): counted as
    /// not compared, in that epoch's summary.
    pub fn not_compared(&self, epoch: u64, n: u64) {
        self.backlog.count_not_compared(epoch, n);
    }

    /// `n` reactors send through this channel (each with its own clone), each beginning
    /// every epoch: the old one closes once all of them have. Before any is started.
    pub fn serve_reactors(&self, n: usize) {
        self.backlog.reactors.store(n as u64, Ordering::SeqCst);
    }

    /// A reload began epoch `epoch` on one reactor (every reactor says so), with `in_flight`
    /// exchanges of the epoch it ended still under way there.
    pub fn announce_epoch(&self, epoch: u64, in_flight: u64) {
        let backlog = &self.backlog;
        backlog
            .older_in_flight
            .fetch_add(in_flight, Ordering::SeqCst);
        backlog.announced_epoch.fetch_max(epoch, Ordering::SeqCst);
        backlog.announcements.fetch_add(1, Ordering::SeqCst);
    }

    /// An exchange of an epoch a reload ended is over (reported or not).
    pub fn older_finished(&self) {
        self.backlog.older_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Hands `record` to the reporting thread if it has room (in count and in bytes);
    /// otherwise drops it and counts it: `Err` holds the records dropped so far by all the
    /// reactors.
    pub fn offer(&self, record: ExchangeRecord) -> Result<(), u64> {
        let size = record.captured_bytes();
        let queued = self.backlog.queued_bytes.load(Ordering::Relaxed);
        // One record alone always goes: its bodies are held already (the reactors' capture
        // budget, as large as this, bounds them), and the bound is on what waits. Refused,
        // three 23 MB bodies were never compared, with the reporting thread idle.
        if queued > 0 && queued + size > BACKLOG_BYTES {
            return Err(self.drop_record(record.epoch));
        }
        self.backlog.queued_bytes.fetch_add(size, Ordering::Relaxed);
        let epoch = record.epoch;
        if self.records.try_send(record).is_err() {
            self.backlog.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(self.drop_record(epoch));
        }
        Ok(())
    }

    /// Counts a record of `epoch` as not compared; the records dropped so far.
    fn drop_record(&self, epoch: u64) -> u64 {
        self.backlog.count_not_compared(epoch, 1);
        self.backlog.dropped_records.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Where the console goes: the stdout thread's `Output` in trident, any writer in tests.
pub trait Console: Write {
    /// Writes `text` whole, waiting for a reader that is slower than trident rather than
    /// dropping it: a summary is what trident is run for, and one can be larger than the
    /// stdout queue on its own (many endpoints, many fields).
    fn write_whole(&mut self, text: &[u8]) -> io::Result<()> {
        self.write_all(text)
    }

    /// Writes `text` whole without waiting, even past the queue's size, unless the stream is
    /// already that far behind (then it is dropped and counted): a summary while trident
    /// runs (SIGUSR1, a reload), for which the reporting thread must not wait on a slow
    /// reader while the records it is handed pile up and are dropped uncompared.
    fn write_now(&mut self, text: &[u8]) -> io::Result<()> {
        self.write_all(text)
    }
}

impl Console for Output {
    fn write_whole(&mut self, text: &[u8]) -> io::Result<()> {
        self.write_patiently(text, output::SHUTDOWN)
    }

    fn write_now(&mut self, text: &[u8]) -> io::Result<()> {
        self.write_unless_behind(text)
    }
}

impl Console for Vec<u8> {}
impl Console for io::Sink {}

/// The receiving side, for the reporting thread.
#[derive(Debug)]
pub struct ReportReceiver {
    records: Receiver<ExchangeRecord>,
    backlog: Arc<Backlog>,
}

impl ReportReceiver {
    /// The shared counters (for the summary's `not compared`).
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    fn done_with(&self, record: &ExchangeRecord) {
        self.backlog
            .queued_bytes
            .fetch_sub(record.captured_bytes(), Ordering::Relaxed);
    }
}

/// A bounded channel from the reactor to the reporting thread.
pub fn channel() -> (ReportSender, ReportReceiver) {
    let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let backlog = Arc::new(Backlog::default());
    (
        ReportSender {
            records: sender,
            backlog: Arc::clone(&backlog),
        },
        ReportReceiver {
            records: receiver,
            backlog,
        },
    )
}

/// SIGUSR1 asks for a summary. Registered by `main` before the proxy announces its address
/// (the default action of SIGUSR1 is to terminate the process), read by the reporting thread.
#[derive(Debug)]
pub struct SummarySignal {
    requested: Arc<AtomicBool>,
    id: Option<signal_hook::SigId>,
}

impl SummarySignal {
    /// Installs the SIGUSR1 handler (it only sets a flag).
    pub fn register() -> io::Result<SummarySignal> {
        let requested = Arc::new(AtomicBool::new(false));
        let id = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&requested))?;
        Ok(SummarySignal {
            requested,
            id: Some(id),
        })
    }

    /// A flag no signal sets (for tests and embedders): set it through `handle`.
    pub fn manual() -> SummarySignal {
        SummarySignal {
            requested: Arc::new(AtomicBool::new(false)),
            id: None,
        }
    }

    /// The flag itself: storing `true` asks for a summary as SIGUSR1 would.
    pub fn handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.requested)
    }

    /// True once per request.
    fn take(&self) -> bool {
        self.requested.load(Ordering::Relaxed) && self.requested.swap(false, Ordering::Relaxed)
    }
}

impl Drop for SummarySignal {
    fn drop(&mut self) {
        // The handler stays installed but does nothing: a late SIGUSR1 is harmless.
        if let Some(id) = self.id.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Starts the reporting thread writing to `out` (through the stdout thread of `output`). It
/// ends when every sender is dropped, after comparing everything it received and writing it
/// and the final summary (or giving up on an `out` that keeps it waiting: `output::SHUTDOWN`);
/// joining it gives the verdict.
pub fn spawn(
    out: Box<dyn Write + Send>,
    settings: Settings,
    signal: SummarySignal,
) -> io::Result<(ReportSender, JoinHandle<Finished>)> {
    let (sender, records) = channel();
    let mut out = Output::start(out, "stdout", Notice::Logged)?;
    let thread = thread::Builder::new()
        .name("report".to_string())
        .spawn(move || {
            yield_to_the_reactors();
            let finished = run(records, &mut out, &settings, &signal);
            out.close(output::SHUTDOWN);
            finished
        })?;
    Ok((sender, thread))
}

/// How far below the reactors the reporting thread runs (nice +10: about a tenth of their
/// weight when they compete for a core, capped at 19).
pub const REPORT_NICE: i32 = 10;

/// Lowers this thread's priority by `REPORT_NICE`. The comparison is what trident is for,
/// but on a contended host its CPU must not come out of the clients' responses (nor out of
/// the services sharing the host): with 13 KiB JSON bodies that differ on every leg, the
/// reactor served 10 % more requests at a 10 % lower median latency, and the exchanges the
/// reporting thread could not keep up with are counted as not compared, as before. On a
/// host with a core to spare for it, nothing changes.
fn yield_to_the_reactors() {
    // SAFETY: nice(2) takes an integer and touches no memory of this process; on Linux it
    // changes the calling thread only. Lowering a priority needs no privilege, and should
    // it fail anyway, the thread runs at the reactors' priority, as it always did.
    let _ = unsafe { libc::nice(REPORT_NICE) };
}

/// `text` as it may appear in a line of output: control characters (C0, DEL and C1: a newline
/// would start a line of its own, an escape drive the terminal), line and paragraph
/// separators (U+2028, U+2029: tools that split on Unicode line breaks), bidirectional
/// overrides (they reorder how the line reads) and `\` are written as JSON escapes (`\n`,
/// `\u0085`). Request targets and JSON keys are the client's and the upstreams' text.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

/// `printable`, with `\` kept: for a message quoting the user's own text (a targets file's
/// line), where a doubled backslash would misquote it. Invisible characters (a BOM left
/// mid-file by joining two files, zero-width spaces, direction marks) are escaped too: an
/// error about `candidate` that shows nothing wrong with it would be no help.
pub(crate) fn without_controls(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

fn escaped(text: &str, data: bool) -> Cow<'_, str> {
    use std::fmt::Write as _;
    let breaks_a_line = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let invisible = |c: char| matches!(c, '\u{feff}' | '\u{200b}'..='\u{200f}');
    let plain = |c: char| !(breaks_a_line(c) || if data { c == '\\' } else { invisible(c) });
    // One pass over plain ASCII, the common case (a request target, a key).
    let ascii = text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !(data && b == b'\\'));
    if ascii || text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if plain(c) => out.push(c),
            '\\' => out.push_str("\\\\"),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// Returns the heap's free memory to the system, where the allocator keeps it otherwise.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) takes a size and works on glibc's own heap under its own
    // locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The reporting loop (public for tests and benchmarks): compares, counts and writes each
/// record; writes a summary when `signal` asks, when a reload's old epoch is complete, and
/// when the channel disconnects; returns the verdict.
pub fn run(
    receiver: ReportReceiver,
    out: &mut dyn Console,
    settings: &Settings,
    signal: &SummarySignal,
) -> Finished {
    let mut reporter = Reporter::new(settings, Arc::clone(&receiver.backlog));
    let records = &receiver.records;
    // Records arrived since the last pause: while they keep coming, this thread sleeps a
    // fixed pause between batches instead of blocking on the channel, so the reactor never
    // has to wake it (a futex call and a context switch per wake-up) and a busy proxy
    // wakes it a couple of hundred times a second, not once per exchange.
    let mut busy = false;
    loop {
        let next = match records.try_recv() {
            Ok(record) => Some(record),
            Err(TryRecvError::Empty) => {
                // A lull: what is written so far goes out now, not with the next burst.
                reporter.write_out(out, true);
                if std::mem::take(&mut busy) {
                    thread::sleep(BATCH_PAUSE);
                    None
                } else {
                    match records.recv_timeout(SIGNAL_POLL) {
                        Ok(record) => Some(record),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if let Some(record) = &next {
            busy = true;
            receiver.done_with(record);
            // Before its block: the first of a new epoch may find the old one complete.
            reporter.settle_epochs(|| records.len(), Some(record.epoch), out);
            reporter.handle(record, out);
        }
        if signal.take() {
            reporter.summarize_so_far(out);
        }
        if next.is_none() {
            reporter.settle_epochs(|| records.len(), None, out);
            reporter.return_memory_when_idle();
        }
    }
    // A SIGUSR1 just before shutdown (checked every `SIGNAL_POLL` while idle) still gets
    // its summary, and its `--report` rewrite, before the final one (hunt 78).
    if signal.take() {
        reporter.summarize_so_far(out);
    }
    reporter.finish(out)
}

/// Summaries made and not yet written (`Reporter::render`, `Reporter::publish`).
struct Rendered {
    /// The shutdown's summary: the reporting thread has nothing else to do, and waits for a
    /// slow reader (`output::SHUTDOWN`).
    last: bool,
    /// For stdout, as the format has it.
    written: Vec<u8>,
    /// The whole report file, with `--report`.
    file: Option<Vec<u8>>,
    /// At a reload, with `--report`: the closing epoch as the file has it, kept for the
    /// files after (`report_closed`), not printed a second time.
    closing: Option<Vec<u8>>,
    /// Whether the last summary fails, and the verdict over every epoch so far.
    fails: bool,
    verdict: Verdict,
}

/// The reporting thread's state: the comparison rules, the current epoch's numbers, what
/// earlier epochs came to, and the output waiting to be written.
struct Reporter<'a> {
    settings: &'a Settings,
    rules: compare::Rules,
    namer: endpoint::Namer,
    backlog: Arc<Backlog>,
    /// The oldest epoch not reported yet: its exchanges count here.
    epoch: stats::Epoch,
    /// Epochs reloads began since, counted on their own until the ones before them are
    /// complete (`settle_epochs`), oldest first, at most `MAX_OPEN_EPOCHS`.
    newer: VecDeque<stats::Epoch>,
    /// Records handled so far.
    handled: u64,
    /// Once the epochs before `complete` are: `(complete, handled when the records queued
    /// then are handled too)`. Those may hold the last of them, and those epochs close after
    /// them. A reload meanwhile completes more epochs, which wait for their own records: a
    /// mark taken before those were queued would close them without them.
    drain_until: Option<(u64, u64)>,
    /// JSON summaries of closed epochs for `--report`, oldest first, at most `KEPT_EPOCHS`
    /// and `KEPT_EPOCH_BYTES`, as the report file's text (`pretty_epoch`): a `Value` takes
    /// several times the memory, and text parsed back at every write cost more than it.
    closed: VecDeque<Vec<u8>>,
    /// The bytes of `closed`, and the most it may hold (`KEPT_EPOCH_BYTES`; tests set less).
    closed_bytes: usize,
    closed_budget: usize,
    /// Closed epochs no longer in `closed`, for the report to say so.
    epochs_left_out: u64,
    /// The closed epochs that failed.
    failed_epochs: Vec<u64>,
    /// The last write of `--report FILE` failed.
    report_failed: bool,
    /// The same for `return_memory_when_idle`, and whether it was done since the last record.
    lull_since: Option<Instant>,
    memory_returned: bool,
    /// Scratch for the endpoint name of each record.
    endpoint: String,
    pending: Vec<u8>,
    /// False once stdout refused a write: comparison and counting go on, writing stops.
    stdout_open: bool,
    /// `compare::Analysis::of`; a field so that a test can make it panic.
    analyze: fn(&ExchangeRecord, &compare::Rules) -> compare::Analysis,
}

impl<'a> Reporter<'a> {
    fn new(settings: &'a Settings, backlog: Arc<Backlog>) -> Reporter<'a> {
        Reporter {
            rules: compare::Rules::new(
                &settings.ignore_headers,
                &settings.ignore_fields,
                settings.max_compare_bytes,
            ),
            namer: endpoint::Namer::new(settings.endpoints.clone()),
            epoch: stats::Epoch::new(0, settings.max_endpoints),
            settings,
            backlog,
            newer: VecDeque::new(),
            handled: 0,
            drain_until: None,
            closed: VecDeque::new(),
            failed_epochs: Vec::new(),
            closed_bytes: 0,
            closed_budget: KEPT_EPOCH_BYTES,
            epochs_left_out: 0,
            report_failed: false,
            lull_since: None,
            memory_returned: true,
            endpoint: String::new(),
            pending: Vec::with_capacity(WRITE_BATCH + 4096),
            stdout_open: true,
            analyze: compare::Analysis::of,
        }
    }

    fn handle(&mut self, record: &ExchangeRecord, out: &mut dyn Console) {
        self.lull_since = None;
        self.memory_returned = false;
        self.handled += 1;
        // The comparison reads what upstreams sent. Should a response ever find a bug in it,
        // that exchange goes uncompared, and the thread, with every later comparison, lives.
        let (analyze, rules) = (self.analyze, &self.rules);
        self.namer
            .name(&record.method, &record.target, &mut self.endpoint);
        let analysis = match panic::catch_unwind(AssertUnwindSafe(|| analyze(record, rules))) {
            Ok(analysis) => {
                let (max_endpoints, oldest) = (self.settings.max_endpoints, self.epoch.number);
                let apart =
                    match Reporter::open_epoch(&mut self.epoch, &mut self.newer, record.epoch) {
                        Some(epoch) => epoch.record(&self.endpoint, record, &analysis),
                        // It started before a reload and finished after its epoch was reported.
                        None if record.epoch < oldest => {
                            self.epoch.late += 1;
                            true
                        }
                        None => {
                            let at = self.newer.partition_point(|e| e.number < record.epoch);
                            let mut epoch = stats::Epoch::new(record.epoch, max_endpoints);
                            let apart = epoch.record(&self.endpoint, record, &analysis);
                            self.newer.insert(at, epoch);
                            apart
                        }
                    };
                if !apart {
                    // The exchange line names the endpoint the summary counts it under.
                    self.endpoint.clear();
                    self.endpoint.push_str(endpoint::OTHER);
                }
                analysis
            }
            Err(_) => {
                log::error!(
                    "exchange {}: the comparison failed (a trident bug: please report it \
                     with the three responses); the exchange counts as not compared",
                    record.id
                );
                let oldest = self.epoch.number;
                match Reporter::open_epoch(&mut self.epoch, &mut self.newer, record.epoch) {
                    Some(epoch) => epoch.not_compared += 1,
                    None if record.epoch < oldest => self.epoch.late += 1,
                    // Its epoch's drop count comes from the backlog when it closes.
                    None => self.backlog.count_not_compared(record.epoch, 1),
                }
                compare::Analysis {
                    noise: compare::Comparison::Skipped,
                    raw: compare::Comparison::Skipped,
                }
            }
        };
        match self.settings.format {
            Format::Text => console::write_block(record, Some(&analysis), &mut self.pending),
            Format::Json => {
                jsonl::write_exchange(record, &self.endpoint, &analysis, &mut self.pending)
            }
        }
        if self.pending.len() >= WRITE_BATCH {
            self.write_out(out, false);
        }
    }

    /// The epochs reloads began that no record of has come to yet, empty: the newest (the
    /// current candidate's, whose summary so far comes last and gives the verdict, UNDECIDED
    /// while it has answered nothing; an older candidate's verdict stood in for it), and any
    /// whose exchanges were all dropped so far (their not-compared count is theirs). They are
    /// not opened: an epoch with nothing in it must not count towards `MAX_OPEN_EPOCHS`,
    /// where a few reloads with no traffic closed a real epoch early.
    fn unopened(&self) -> Vec<stats::Epoch> {
        let announced = self.backlog.announced_epoch.load(Ordering::SeqCst);
        let open = |n: u64| n == self.epoch.number || self.newer.iter().any(|e| e.number == n);
        (self.epoch.number + 1..=announced)
            .filter(|&n| !open(n) && (n == announced || self.backlog.not_compared_of(n) > 0))
            .map(|n| stats::Epoch::new(n, self.settings.max_endpoints))
            .collect()
    }

    /// The open epoch numbered `number`: the current one or one of `newer`.
    fn open_epoch<'e>(
        current: &'e mut stats::Epoch,
        newer: &'e mut VecDeque<stats::Epoch>,
        number: u64,
    ) -> Option<&'e mut stats::Epoch> {
        if current.number == number {
            return Some(current);
        }
        newer.iter_mut().find(|e| e.number == number)
    }

    /// Reports the epochs a reload ended once all of their exchanges are counted: every
    /// reactor runs the new epoch, none has an exchange of an older one in flight, and the
    /// records queued at that moment (`queued`; the last of them may be among these) and the
    /// one `in_hand` (its epoch), if it is older, are handled. Until then the new epoch's
    /// exchanges count on their own. An old exchange however slow counts in its epoch, as do
    /// those of a reactor that installs the reload late.
    fn settle_epochs(
        &mut self,
        queued: impl FnOnce() -> usize,
        in_hand: Option<u64>,
        out: &mut dyn Console,
    ) {
        while 1 + self.newer.len() > MAX_OPEN_EPOCHS {
            let next = self.newer.front().map_or(0, |e| e.number);
            self.close_epoch(next, out);
        }
        let announced = self.backlog.announced_epoch.load(Ordering::SeqCst);
        if announced <= self.epoch.number {
            self.drain_until = None;
            return;
        }
        let Some(complete) = self.backlog.older_epochs_complete() else {
            self.drain_until = None;
            return;
        };
        // Read after the counters: what they counted out is queued by now.
        let handled = self.handled;
        let (complete, until) = *self.drain_until.get_or_insert_with(|| {
            // The one in hand is handled before those queued: it counts unless it is new
            // and nothing is queued, when the old epochs close before its block.
            let behind = queued() as u64;
            let new_in_hand = in_hand.is_some_and(|epoch| epoch >= complete);
            let until = match in_hand {
                Some(_) if !(new_in_hand && behind == 0) => handled + 1 + behind,
                _ => handled + behind,
            };
            (complete, until)
        });
        if self.handled < until {
            return;
        }
        self.drain_until = None;
        while self.epoch.number < complete {
            self.close_epoch(complete, out);
        }
    }

    /// Once no exchange came for `IDLE_TRIM` after some did, hands the memory the burst freed
    /// back to the system. glibc's malloc keeps freed memory in its arenas: after a load of
    /// 256 clients with 16 KiB and 1 MiB bodies, trident stayed at 51 MiB resident, idle,
    /// where `malloc_trim` brings it to 9 MiB. Process-wide, so this thread does it for the
    /// reactors too, off their path; it runs once per lull.
    fn return_memory_when_idle(&mut self) {
        if self.memory_returned {
            return;
        }
        let lull = self.lull_since.get_or_insert_with(Instant::now);
        if lull.elapsed() >= IDLE_TRIM {
            self.memory_returned = true;
            trim_heap();
        }
    }

    /// Reports the current epoch (unless nothing happened in it) and makes the next open one
    /// current: the oldest of `newer`, else a new `next`. Epochs between the two whose every
    /// exchange was dropped are reported too.
    fn close_epoch(&mut self, next: u64, out: &mut dyn Console) {
        let following = self.newer.front().map_or(next, |e| e.number);
        let later = self.absorb_not_compared(following);
        self.report_closed(out);
        for (epoch, n) in later {
            self.epoch = stats::Epoch::new(epoch, self.settings.max_endpoints);
            self.epoch.not_compared = n;
            self.report_closed(out);
        }
        self.epoch = match self.newer.pop_front() {
            Some(epoch) => epoch,
            None => stats::Epoch::new(following, self.settings.max_endpoints),
        };
    }

    /// Takes the backlog's not-compared counts of the epochs before `end` into the current
    /// epoch: its own, and those of earlier epochs, already reported, as late. Returns the
    /// counts of the epochs after it.
    fn absorb_not_compared(&mut self, end: u64) -> BTreeMap<u64, u64> {
        let mut dropped = self.backlog.take_not_compared(end);
        let later = dropped.split_off(&(self.epoch.number + 1));
        for (epoch, n) in dropped {
            if epoch == self.epoch.number {
                self.epoch.not_compared += n;
            } else {
                self.epoch.late += n;
            }
        }
        later
    }

    /// The summary of the current epoch, which a reload ended (unless nothing happened in
    /// it); its report text is kept for the files after.
    fn report_closed(&mut self, out: &mut dyn Console) {
        let epoch = &self.epoch;
        if epoch.exchanges == 0 && epoch.late == 0 && epoch.not_compared == 0 {
            return;
        }
        let (fails, _, kept) = self.summarize(summary::Trigger::Reload, out);
        if fails {
            self.failed_epochs.push(self.epoch.number);
        }
        if let Some(text) = kept {
            let skip = self.closed_over_bounds(Some(text.len()));
            for oldest in self.closed.drain(..skip) {
                self.closed_bytes -= oldest.len();
            }
            self.epochs_left_out += skip as u64;
            self.closed_bytes += text.len();
            self.closed.push_back(text);
        }
    }

    /// SIGUSR1: the summary so far of every epoch still counting. An old one a reload ended
    /// that waits on its exchanges in flight comes first, then the newer ones, the newest
    /// last: its VERDICT line is the current candidate's. The report file holds them all.
    /// A summary so far takes nothing from the backlog: the epochs go on.
    fn summarize_so_far(&mut self, out: &mut dyn Console) {
        let unopened = self.unopened();
        let current = self.backlog.not_compared_through(self.epoch.number);
        let mut epochs = vec![(&self.epoch, current)];
        epochs.extend(self.counting(&unopened));
        let rendered = self.render(summary::Trigger::Signal, &epochs, &[]);
        self.publish(rendered, out);
    }

    /// Writes the current epoch's summary to the report file and stdout; returns whether it
    /// fails, the verdict over every epoch so far, and at a reload the closing epoch as the
    /// report file has it (`Rendered::closing`).
    fn summarize(
        &mut self,
        trigger: summary::Trigger,
        out: &mut dyn Console,
    ) -> (bool, Verdict, Option<Vec<u8>>) {
        // The newer epochs that count meanwhile are in the report file too, so far: it does
        // not lose them until the next SIGUSR1.
        let unopened = self.unopened();
        let counting = self.counting(&unopened);
        let mut rendered = self.render(trigger, &[(&self.epoch, 0)], &counting);
        let closing = rendered.closing.take();
        let (fails, verdict) = self.publish(rendered, out);
        (fails, verdict, closing)
    }

    /// The newer epochs counting beside the current one, with the `unopened` ones, oldest
    /// first, each with the backlog's count of it not taken yet.
    fn counting<'s>(&'s self, unopened: &'s [stats::Epoch]) -> Vec<(&'s stats::Epoch, u64)> {
        let mut epochs: Vec<_> = self
            .newer
            .iter()
            .chain(unopened)
            .map(|e| (e, self.backlog.not_compared_of(e.number)))
            .collect();
        epochs.sort_by_key(|(e, _)| e.number);
        epochs
    }

    /// The summaries of `epochs` (each with the backlog's count of it not taken yet), oldest
    /// first, as stdout takes them, and the report file with `counting` after them (so far,
    /// not printed). An earlier one of them that fails so far counts as failed in the
    /// verdicts of those after it.
    fn render(
        &self,
        trigger: summary::Trigger,
        epochs: &[(&stats::Epoch, u64)],
        counting: &[(&stats::Epoch, u64)],
    ) -> Rendered {
        let mut failed = self.failed_epochs.clone();
        let mut written = Vec::new();
        let mut jsons = Vec::with_capacity(epochs.len() + counting.len());
        let (mut fails, mut verdict) = (false, Verdict::Undecided);
        for (epoch, not_compared) in epochs {
            let report = summary::EpochReport::new(epoch, &self.settings.thresholds, *not_compared);
            let json = summary::to_json(&report, trigger, &failed);
            (fails, verdict) = (report.fails(), report.verdict(&failed));
            match self.settings.format {
                Format::Text => {
                    let mut text = String::new();
                    summary::write_text(&report, trigger, &failed, &mut text);
                    written.extend_from_slice(text.as_bytes());
                }
                Format::Json => {
                    let mut line = serde_json::Map::new();
                    line.insert("type".into(), json!("summary"));
                    if let Value::Object(fields) = &json {
                        line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    jsonl::write_line(&Value::Object(line), &mut written);
                }
            }
            if fails {
                failed.push(epoch.number);
            }
            jsons.push(json);
        }
        for (epoch, not_compared) in counting {
            let report = summary::EpochReport::new(epoch, &self.settings.thresholds, *not_compared);
            jsons.push(summary::to_json(
                &report,
                summary::Trigger::Counting,
                &failed,
            ));
        }
        let pretty: Option<Vec<Vec<u8>>> = self
            .settings
            .report_file
            .as_ref()
            .map(|_| jsons.iter().map(pretty_epoch).collect());
        let file = pretty
            .as_ref()
            .map(|pretty| self.report_text(trigger, &jsons, pretty));
        let closing = pretty
            .filter(|_| trigger == summary::Trigger::Reload)
            .and_then(|pretty| pretty.into_iter().next());
        Rendered {
            last: trigger == summary::Trigger::Final,
            written,
            file,
            closing,
            fails,
            verdict,
        }
    }

    /// Writes what `render` made: the report file first (once the summary shows on stdout,
    /// the file says the same), then the summaries whole, however slow the reader, after the
    /// blocks before them. Returns whether the last summary fails, and the verdict.
    fn publish(&mut self, rendered: Rendered, out: &mut dyn Console) -> (bool, Verdict) {
        // A summary builds megabytes for a service of many fields: the next lull hands them
        // back, however long ago the last did.
        self.memory_returned = false;
        self.write_out(out, false);
        if let (Some(path), Some(text)) = (&self.settings.report_file, &rendered.file) {
            self.report_failed = !write_report_file(path, text);
        }
        self.pending.extend_from_slice(&rendered.written);
        if self.stdout_open {
            let written = if rendered.last {
                out.write_whole(&self.pending)
            } else {
                out.write_now(&self.pending)
            };
            if let Err(err) = written {
                stop_writing(&err);
                self.stdout_open = false;
            }
        }
        self.pending.clear();
        self.write_out(out, true);
        (rendered.fails, rendered.verdict)
    }

    /// The whole `--report` document, pretty-printed: every kept closed epoch, then
    /// `current` (the ones being reported, the newest last; `pretty`, as `pretty_epoch` has
    /// them).
    fn report_text(
        &self,
        trigger: summary::Trigger,
        current: &[Value],
        pretty: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut failed = self.failed_epochs.clone();
        for epoch in current {
            if epoch["verdict"]["epoch_fails"] == json!(true) {
                failed.extend(epoch["epoch"].as_u64());
            }
        }
        let newest = current.last().unwrap_or(&Value::Null);
        let mut head = json!({
            "trident": env!("CARGO_PKG_VERSION"),
            "written": match trigger {
                summary::Trigger::Signal => "SIGUSR1",
                summary::Trigger::Reload => "reload",
                summary::Trigger::Final => "shutdown",
                summary::Trigger::Counting => "counting",
            },
            "verdict": newest["verdict"]["candidate"].clone(),
            "failed_epochs": failed,
        });
        // Written as a reload closes the first of `current`, the bounds count it as kept:
        // the file held a closed epoch more than they allow until the next write (hunt 84).
        let closing = pretty
            .first()
            .filter(|_| trigger == summary::Trigger::Reload);
        let skip = self.closed_over_bounds(closing.map(Vec::len));
        let left_out = self.epochs_left_out + skip as u64;
        if left_out > 0 {
            head["epochs_left_out"] = json!(left_out);
        }
        let epochs = self.closed.iter().skip(skip).chain(pretty);
        pretty_with_epochs(&head, epochs.map(Vec::as_slice))
    }

    /// How many of the oldest kept closed epochs `KEPT_EPOCHS` and the byte budget leave
    /// out, with one more of `adding` bytes kept after them (always kept, as the newest).
    fn closed_over_bounds(&self, adding: Option<usize>) -> usize {
        let (mut count, mut bytes) = (self.closed.len(), self.closed_bytes);
        if let Some(adding) = adding {
            count += 1;
            bytes += adding;
        }
        let mut skip = 0;
        while skip < self.closed.len()
            && (count > KEPT_EPOCHS || (count > 1 && bytes > self.closed_budget))
        {
            count -= 1;
            bytes -= self.closed[skip].len();
            skip += 1;
        }
        skip
    }

    /// The final summary; the verdict over every epoch.
    fn finish(mut self, out: &mut dyn Console) -> Finished {
        // Every reactor has stopped, so every exchange has arrived: the epochs a reload ended
        // close now, and the final verdict is the newest candidate's (UNDECIDED with nothing
        // in it), not an older one's.
        let announced = self.backlog.announced_epoch.load(Ordering::SeqCst);
        let newest = self
            .newer
            .back()
            .map_or(announced, |e| e.number.max(announced));
        while self.epoch.number < newest {
            self.close_epoch(newest, out);
        }
        // Every reactor has stopped: what is left in the backlog is this epoch's, or late.
        for (_, n) in self.absorb_not_compared(u64::MAX) {
            self.epoch.not_compared += n;
        }
        let (_, verdict, _) = self.summarize(summary::Trigger::Final, out);
        Finished {
            verdict,
            report_failed: self.report_failed,
        }
    }

    /// Writes what is pending (and flushes if `flush`). Stdout gone: say so once, go on
    /// counting; senders use `try_send`, so the reactor is never held up by this thread.
    fn write_out(&mut self, out: &mut dyn Console, flush: bool) {
        if self.stdout_open && !self.pending.is_empty() {
            if let Err(err) = out.write_all(&self.pending) {
                stop_writing(&err);
                self.stdout_open = false;
            }
        }
        self.pending.clear();
        if self.stdout_open && flush {
            if let Err(err) = out.flush() {
                stop_writing(&err);
                self.stdout_open = false;
            }
        }
    }
}

/// An epoch of the report's `epochs` array, pretty-printed as serde_json prints it there.
fn pretty_epoch(epoch: &Value) -> Vec<u8> {
    let text = serde_json::to_vec_pretty(epoch).unwrap_or_default();
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    // A string holds no raw line end (it is escaped), so each is a line to indent.
    for byte in text {
        match byte {
            b'\n' => out.extend_from_slice(b"\n    "),
            byte => out.push(byte),
        }
    }
    out
}

/// `head` (an object) pretty-printed as serde_json prints it, with an `epochs` array of
/// `epochs` (`pretty_epoch`) first among its keys, where its sorted keys put it.
fn pretty_with_epochs<'a>(head: &Value, epochs: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = b"{\n  \"epochs\": [".to_vec();
    for (i, epoch) in epochs.enumerate() {
        out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
        out.extend_from_slice(epoch);
    }
    out.extend_from_slice(b"\n  ]");
    let rest = serde_json::to_vec_pretty(head).unwrap_or_default();
    match rest.strip_prefix(b"{\n") {
        Some(fields) => {
            out.extend_from_slice(b",\n");
            out.extend_from_slice(fields);
        }
        None => out.extend_from_slice(b"\n}"),
    }
    out.push(b'\n');
    out
}

/// Replaces `path` with `report` whole: written beside it, then renamed over it, so a reader
/// never sees half a file. False (and a warning) when it could not be written.
fn write_report_file(path: &Path, report: &[u8]) -> bool {
    let path = &report_target(path);
    // A name of trident's own beside it: a `FILE.tmp` of the user's is left alone.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".trident-{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, report).and_then(|()| std::fs::rename(&tmp, path));
    match written {
        Ok(()) => true,
        Err(err) => {
            // Left behind, a partial one would keep filling a full file system after exit.
            let _ = std::fs::remove_file(&tmp);
            log::warn!("cannot write the report to {}: {err}", path.display());
            false
        }
    }
}

/// Checks at start-up (and for `--check`) that the report can be written where `--report`
/// says: by writing its temporary file beside it, and removing that. A run whose report is
/// lost only at shutdown would have been for nothing.
/// `inputs`: the files trident reads (`--targets`, `--tls-cert`, ...), by option; the report
/// must not replace one of them.
pub fn check_report_path(path: &Path, inputs: &[(&str, &Path)]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let target = report_target(path);
    let same =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    if let Ok(report) = std::fs::metadata(&target) {
        for (option, input) in inputs {
            if std::fs::metadata(input).is_ok_and(|input| same(&report, &input)) {
                return Err(format!(
                    "--report {shown}: is the file {option} reads ({}); the report would \
                     replace it",
                    input.display()
                ));
            }
        }
    }
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => return Err(format!("--report {shown}: is a directory")),
        // Renamed over, a device (`/dev/null`) or a FIFO would be replaced by a plain file.
        Ok(meta) if !meta.is_file() => {
            return Err(format!(
                "--report {shown}: is not a regular file (a device, FIFO or socket): the \
                 report is written beside it and renamed over it"
            ))
        }
        _ => {}
    }
    // A name of its own, so that no file of the user's (`FILE.tmp`) is touched.
    let mut probe = target.as_os_str().to_owned();
    probe.push(format!(".trident-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|err| format!("--report {shown}: cannot write beside it: {err}"))
}

/// Where the report goes: through a symbolic link to the file it names, so that the link is
/// kept (renaming over it would replace the link with a file).
/// A link to a file not made yet is followed too (the first run of a set-up that links the
/// report into place).
fn report_target(path: &Path) -> PathBuf {
    let mut target = path.to_owned();
    // A few links deep at most: a loop of links ends here, and the write then fails.
    for _ in 0..8 {
        let is_link = std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink());
        let Some(next) = is_link.then(|| std::fs::read_link(&target).ok()).flatten() else {
            break;
        };
        target = match target.parent() {
            Some(dir) if next.is_relative() => dir.join(next),
            _ => next,
        };
    }
    target
}

fn stop_writing(err: &io::Error) {
    log::warn!("cannot write to stdout ({err}); exchanges are still compared, no longer shown");
}

#[cfg(test)]
mod tests {
    use super::check::run_all;
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// The report path: a link is written through (and kept), a FIFO or device is refused
    /// rather than replaced by a file, and the check touches no file of the user's.
    #[test]
    fn report_paths_keep_links_refuse_special_files_and_spare_the_users_files() {
        let dir = std::env::temp_dir().join(format!("trident-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (file, link) = (dir.join("report.json"), dir.join("link.json"));
        std::fs::write(&file, b"{}").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let users = dir.join("link.json.tmp");
        std::fs::write(&users, b"mine").unwrap();
        assert_eq!(check_report_path(&link, &[]), Ok(()));
        assert_eq!(std::fs::read(&users).unwrap(), b"mine");
        assert!(write_report_file(&link, b"{\n  \"written\": \"test\"\n}\n"));
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .contains("\"written\": \"test\""));
        assert_eq!(
            std::fs::read(&users).unwrap(),
            b"mine",
            "the write spares FILE.tmp"
        );
        // A relative link to a file not made yet (the first run) is written through too.
        std::fs::create_dir_all(dir.join("store")).unwrap();
        let ahead = dir.join("ahead.json");
        std::os::unix::fs::symlink("store/new.json", &ahead).unwrap();
        let theirs = dir.join("store/new.json.tmp");
        std::fs::write(&theirs, b"mine").unwrap();
        assert_eq!(check_report_path(&ahead, &[]), Ok(()));
        assert!(write_report_file(&ahead, b"{\"written\": \"first\"}"));
        assert!(std::fs::symlink_metadata(&ahead)
            .unwrap()
            .file_type()
            .is_symlink());
        let written = std::fs::read_to_string(dir.join("store/new.json")).unwrap();
        assert!(written.contains("first"), "{written}");
        assert_eq!(std::fs::read(&theirs).unwrap(), b"mine");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let refused = check_report_path(&fifo, &[]).unwrap_err();
        assert!(refused.contains("is not a regular file"), "{refused}");
        let refused = check_report_path(Path::new("/dev/null"), &[]).unwrap_err();
        assert!(refused.contains("is not a regular file"), "{refused}");
        // Not a file trident reads, even through a link: the report would replace it.
        let targets = dir.join("targets.conf");
        std::fs::write(&targets, b"primary = http://127.0.0.1:1\n").unwrap();
        let inputs = [
            ("--tls-cert", Path::new("/nonexistent")),
            ("--targets", &targets),
        ];
        let refused = check_report_path(&targets, &inputs).unwrap_err();
        assert_eq!(
            refused,
            format!(
                "--report {0}: is the file --targets reads ({0}); the report would replace it",
                targets.display()
            )
        );
        let linked = dir.join("linked.conf");
        std::os::unix::fs::symlink(&targets, &linked).unwrap();
        assert!(check_report_path(&linked, &inputs).is_err());
        assert_eq!(check_report_path(&dir.join("other.json"), &inputs), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_report_is_printed_as_serde_json_prints_the_whole_document() {
        let head = serde_json::json!({
            "trident": "0.1.0", "written": "reload", "verdict": "PASS", "failed_epochs": [0],
        });
        let epochs = vec![
            serde_json::json!({"epoch": 0, "endpoints": [{"name": "GET /a", "fields": {}}],
                               "sample": "line\nbreak", "empty": []}),
            serde_json::json!({"epoch": 1, "nested": {"deep": [[1, 2], {"x": null}]}}),
        ];
        let mut whole = head.clone();
        whole["epochs"] = Value::Array(epochs.clone());
        let mut expected = serde_json::to_vec_pretty(&whole).unwrap();
        expected.push(b'\n');
        let epochs: Vec<Vec<u8>> = epochs.iter().map(pretty_epoch).collect();
        let got = pretty_with_epochs(&head, epochs.iter().map(Vec::as_slice));
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn capture_keeps_up_to_the_cap_and_hashes_everything() {
        let mut whole = CapturedBody::new();
        whole.extend(b"hello world", 64);
        let mut split = CapturedBody::new();
        split.extend(b"hello", 8);
        split.extend(b" world", 8);
        assert_eq!(whole.bytes, b"hello world");
        assert!(!whole.truncated);
        assert_eq!(split.bytes, b"hello wo");
        assert!(split.truncated);
        assert_eq!(whole.hash(), split.hash());
        assert_ne!(whole.hash(), CapturedBody::new().hash());
    }

    #[test]
    fn a_capture_past_its_cap_keeps_nothing_more_when_the_cap_grows() {
        // The cap shrinks while other exchanges hold the reactor's capture budget, and grows
        // back when they finish: the bytes after the cut are hashed, not kept.
        let mut whole = CapturedBody::new();
        whole.extend(b"hello world, again", 64);
        let mut squeezed = CapturedBody::new();
        squeezed.extend(b"hello", 4);
        squeezed.extend(b" world", 64);
        squeezed.extend(b", again", 64);
        assert_eq!(squeezed.bytes, b"hell");
        assert!(squeezed.truncated);
        assert_eq!(squeezed.hash(), whole.hash());
    }

    #[test]
    fn the_body_hash_is_the_same_however_the_body_is_split_and_tells_bodies_apart() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = {
            let mut hash = BodyHash::default();
            hash.update(&body);
            hash.finish()
        };
        for step in [1, 3, 7, 8, 9, 64, 999] {
            let mut hash = BodyHash::default();
            for piece in body.chunks(step) {
                hash.update(piece);
            }
            assert_eq!(hash.finish(), whole, "pieces of {step}");
        }
        // Past a cap, in uneven reads: the same hash as the whole body kept.
        let mut capped = CapturedBody::new();
        for piece in body.chunks(13) {
            capped.extend(piece, 100);
        }
        assert!(capped.truncated);
        assert_eq!(capped.hash(), whole);
        // A changed byte, a zero byte added, a byte removed: other hashes.
        let of = |bytes: &[u8]| {
            let mut hash = BodyHash::default();
            hash.update(bytes);
            hash.finish()
        };
        let mut changed = body.clone();
        changed[500] ^= 1;
        let mut longer = body.clone();
        longer.push(0);
        for other in [&changed[..], &longer[..], &body[..999], &body[1..]] {
            assert_ne!(of(other), whole);
        }
        assert_ne!(of(b""), of(b"\0"));
        assert_ne!(of(b"\0"), of(b"\0\0"));
    }

    /// Past the byte backlog a record is dropped and counted; but one alone is always taken
    /// (three 23 MB bodies were never compared, with nothing else waiting: hunt 50).
    #[test]
    fn offer_drops_and_counts_when_the_byte_backlog_is_full() {
        let (sender, receiver) = channel();
        let mut big = record(1);
        if let LegOutcome::Response { body, .. } = &mut big.legs[0] {
            body.bytes = vec![0; BACKLOG_BYTES + 1];
        }
        assert!(sender.offer(record(2)).is_ok());
        assert_eq!(sender.offer(big.clone()), Err(1));
        assert_eq!(receiver.backlog().not_compared(), 1);
        let (sender, receiver) = channel();
        assert!(sender.offer(big).is_ok());
        assert_eq!(sender.offer(record(3)), Err(1));
        assert_eq!(receiver.backlog().not_compared(), 1);
        // Another reactor's sender counts on from the same total.
        assert_eq!(sender.clone().offer(record(4)), Err(2));
        assert_eq!(receiver.backlog().not_compared(), 2);
    }

    fn ok_leg(body: &str) -> LegOutcome {
        LegOutcome::ok_for_test(body, b"", Duration::from_micros(1500))
    }

    fn record(id: u64) -> ExchangeRecord {
        ExchangeRecord {
            id,
            method: "GET".to_string(),
            target: format!("/{id}"),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
            epoch: 0,
            client_left: false,
            upstreams: [None; 3],
            legs: [
                ok_leg("ok"),
                ok_leg("ok"),
                LegOutcome::Failed {
                    error: LegError::ConnectionRefused,
                    elapsed: Duration::ZERO,
                },
            ],
        }
    }

    /// An exchange on `target` in `epoch` whose JSON bodies are `bodies`.
    /// The `SUMMARY` lines of console text.
    fn summary_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("SUMMARY")).collect()
    }

    fn json_record(id: u64, epoch: u64, target: &str, bodies: [&str; 3]) -> ExchangeRecord {
        let leg = |body: &str| {
            let mut leg = ok_leg(body);
            if let LegOutcome::Response { fields, .. } = &mut leg {
                *fields = b"Content-Type: application/json\r\n".to_vec();
            }
            leg
        };
        ExchangeRecord {
            id,
            method: "GET".to_string(),
            target: target.to_string(),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
            epoch,
            client_left: false,
            upstreams: [None; 3],
            legs: bodies.map(leg),
        }
    }

    fn block(id: u64) -> String {
        format!(
            "REQUEST {id} => GET /{id} HTTP/1.1 (host=-, body=0B)\n\
             RESPONSE {id} primary => 200 OK (body=2B, 1.5ms)\n\
             RESPONSE {id} secondary => 200 OK (body=2B, 1.5ms, same)\n\
             RESPONSE {id} candidate => error: connection refused\n"
        )
    }

    /// The lines from the first `SUMMARY` to its `VERDICT`, and what came before.
    fn split_summary(text: &str) -> (&str, &str) {
        let at = text.find("SUMMARY ").expect("a summary");
        (&text[..at], &text[at..])
    }

    #[test]
    fn run_writes_blocks_in_receive_order_then_the_summary() {
        let (text, verdict) = run_all((1..=3).map(record), &Settings::default());
        let (blocks, summary) = split_summary(&text);
        assert_eq!(blocks, (1..=3).map(block).collect::<String>());
        assert!(summary.starts_with("SUMMARY epoch 0 (final): 3 exchanges, 0 not compared"));
        assert_eq!(summary.matches("VERDICT").count(), 1);
        // The candidate refused all three, but three is too few to fail it.
        for line in [
            "  GET /{id}: 3 requests; candidate differs 100.0% (100.0% beyond noise), secondary differs 0.0%; too few samples to test (3 < 30)",
            "    latency p50/p99: primary 1.5ms/1.5ms, secondary 1.5ms/1.5ms, candidate -/-",
            "    errors: primary 0, secondary 0, candidate 3 (refused 3)",
            "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a verdict needs (1 endpoint flagged on too few samples)",
        ] {
            assert!(summary.lines().any(|l| l == line), "{line}\n{summary}");
        }
        assert!(summary.contains("    UNDECIDED (too few samples) error:refused: candidate 3/3"));
        assert_eq!(verdict, Verdict::Undecided);
    }

    #[test]
    fn a_comparison_that_panics_leaves_its_exchange_uncompared_and_the_thread_alive() {
        let settings = Settings::default();
        let (_, receiver) = channel();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        reporter.analyze = |record, rules| {
            assert_ne!(record.id, 2, "an injected comparison bug");
            compare::Analysis::of(record, rules)
        };
        let mut out = Vec::new();
        for id in 1..=3 {
            reporter.handle(&record(id), &mut out);
        }
        reporter.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let (blocks, summary) = split_summary(&text);
        // Exchange 2 is shown, without a result; the ones around it are compared.
        let uncompared = block(2).replace(", same", "");
        assert_eq!(blocks, [block(1), uncompared, block(3)].concat());
        assert!(
            summary.starts_with("SUMMARY epoch 0 (final): 2 exchanges, 1 not compared"),
            "{summary}"
        );
    }

    /// Exchanges that are never reported (dropped while the reporting thread is behind, or
    /// abandoned at shutdown) count in their own epoch's summary, whenever they are dropped:
    /// during an earlier epoch's summary, in an epoch of which no exchange arrived at all
    /// (which gets its summary too), or after their epoch was reported (late).
    /// A stdout for the reporter's tests: it keeps the text, counts the summaries written
    /// whole (waiting for the reader) and at once, and during each counts `per_summary`
    /// exchanges of epoch 1 as dropped by the reactors.
    struct SummaryConsole {
        text: Vec<u8>,
        backlog: Arc<Backlog>,
        per_summary: u64,
        waited: usize,
        at_once: usize,
    }

    impl SummaryConsole {
        fn new(backlog: &Arc<Backlog>) -> SummaryConsole {
            SummaryConsole {
                text: Vec::new(),
                backlog: Arc::clone(backlog),
                per_summary: 0,
                waited: 0,
                at_once: 0,
            }
        }

        fn summary(&mut self, text: &[u8]) -> io::Result<()> {
            self.backlog.count_not_compared(1, self.per_summary);
            self.text.write_all(text)
        }
    }

    impl Write for SummaryConsole {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.text.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Console for SummaryConsole {
        fn write_whole(&mut self, text: &[u8]) -> io::Result<()> {
            self.waited += 1;
            self.summary(text)
        }
        fn write_now(&mut self, text: &[u8]) -> io::Result<()> {
            self.at_once += 1;
            self.summary(text)
        }
    }

    /// Only the shutdown's summary waits for a slow reader: one on SIGUSR1 or a reload is
    /// written at once, as the reporting thread must go on taking records (hunt 75: a slow
    /// reader during a SIGUSR1 summary left thousands of exchanges uncompared).
    #[test]
    fn only_the_final_summary_waits_for_stdout() {
        let settings = Settings::default();
        let (_, receiver) = channel();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = SummaryConsole::new(receiver.backlog());
        reporter.handle(&record(1), &mut out);
        reporter.summarize_so_far(&mut out);
        reporter.close_epoch(1, &mut out);
        assert_eq!((out.waited, out.at_once), (0, 2));
        reporter.finish(&mut out);
        assert_eq!((out.waited, out.at_once), (1, 2));
    }

    #[test]
    fn exchanges_not_compared_count_in_their_own_epoch() {
        let settings = Settings::default();
        let (_, receiver) = channel();
        let backlog = Arc::clone(receiver.backlog());
        let mut reporter = Reporter::new(&settings, Arc::clone(&backlog));
        let mut out = SummaryConsole {
            per_summary: 3,
            ..SummaryConsole::new(&backlog)
        };
        reporter.handle(&record(1), &mut out);
        backlog.count_not_compared(0, 2);
        reporter.close_epoch(1, &mut out);
        out.per_summary = 0;
        // Epoch 2 began and ended with none of its exchanges reaching the reporting thread.
        backlog.count_not_compared(2, 4);
        // One of epoch 0's, dropped after its summary.
        backlog.count_not_compared(0, 1);
        reporter.close_epoch(3, &mut out);
        // Abandoned at shutdown.
        backlog.count_not_compared(3, 5);
        reporter.finish(&mut out);
        let text = String::from_utf8(out.text).unwrap();
        let summaries: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("SUMMARY "))
            .map(|l| l.split(';').next().unwrap_or(l))
            .collect();
        assert_eq!(
            summaries,
            [
                "SUMMARY epoch 0 (reloaded): 1 exchange, 2 not compared",
                "SUMMARY epoch 1 (reloaded): 0 exchanges, 3 not compared, 1 from an earlier epoch not counted",
                "SUMMARY epoch 2 (reloaded): 0 exchanges, 4 not compared",
                "SUMMARY epoch 3 (final): 0 exchanges, 5 not compared",
            ],
            "{text}"
        );
        assert_eq!(backlog.not_compared(), 0);
    }

    /// Thirty-five exchanges on `/users/N` where the candidate changed `email` and every leg
    /// has a noisy `ts`; thirty-five on `/items` with noise only.
    fn regression_and_noise(epoch: u64, first_id: u64) -> Vec<ExchangeRecord> {
        let mut records = Vec::new();
        for i in 0..35 {
            let id = first_id + 2 * i;
            let ts = |leg: u64| format!(r#""ts":{}"#, id * 10 + leg);
            records.push(json_record(
                id,
                epoch,
                &format!("/users/{i}"),
                [
                    &format!(r#"{{{},"email":"a@x"}}"#, ts(0)),
                    &format!(r#"{{{},"email":"a@x"}}"#, ts(1)),
                    &format!(r#"{{{},"email":{{"local":"a"}}}}"#, ts(2)),
                ],
            ));
            records.push(json_record(
                id + 1,
                epoch,
                "/items?page=2",
                [
                    &format!(r#"{{{},"items":[1,2]}}"#, ts(0)),
                    &format!(r#"{{{},"items":[1,2]}}"#, ts(1)),
                    &format!(r#"{{{},"items":[1,2]}}"#, ts(2)),
                ],
            ));
        }
        records
    }

    #[test]
    fn the_verdict_flags_the_regression_and_not_the_noise() {
        let (text, verdict) = run_all(regression_and_noise(0, 1), &Settings::default());
        let (_, summary) = split_summary(&text);
        assert_eq!(verdict, Verdict::Fail);
        assert!(
            summary.ends_with("VERDICT candidate: FAIL — 1 endpoint regresses\n"),
            "{summary}"
        );
        let regressions: Vec<&str> = summary
            .lines()
            .filter(|l| l.contains("REGRESSION"))
            .collect();
        assert_eq!(regressions.len(), 1, "{summary}");
        assert!(
            regressions[0].starts_with(
                "    REGRESSION body email type: candidate 35/35 (100.0%), secondary 0/35 (0.0%)"
            ),
            "{summary}"
        );
        assert!(summary.contains("  GET /users/{id}: 35 requests; candidate differs 100.0% (100.0% beyond noise), secondary differs 100.0%; 35 candidate fields masked as noise"), "{summary}");
        assert!(
            summary.contains(
                "  GET /items: 35 requests; candidate differs 100.0% (0.0% beyond noise)"
            ),
            "{summary}"
        );
        assert!(summary.contains("    within noise: body ts"), "{summary}");
    }

    #[test]
    fn too_few_samples_are_undecided_not_failed() {
        let mut records = regression_and_noise(0, 1);
        records.truncate(20);
        let (text, verdict) = run_all(records, &Settings::default());
        let (_, summary) = split_summary(&text);
        assert_eq!(verdict, Verdict::Undecided);
        assert!(
            summary.contains("too few samples to test (10 < 30)"),
            "{summary}"
        );
        assert!(
            summary.contains("UNDECIDED (too few samples) body email type"),
            "{summary}"
        );
        assert!(
            summary.ends_with(
                "VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a \
                 verdict needs (1 endpoint flagged on too few samples)\n"
            ),
            "{summary}"
        );
        // With a lower bar the same samples decide.
        let settings = Settings {
            thresholds: Thresholds {
                min_samples: 10,
                ..Thresholds::default()
            },
            ..Settings::default()
        };
        let mut records = regression_and_noise(0, 1);
        records.truncate(20);
        assert_eq!(run_all(records, &settings).1, Verdict::Fail);
    }

    #[test]
    fn an_old_epoch_is_reported_once_its_last_exchange_is_in() {
        let mut records = regression_and_noise(0, 1);
        // After the reload the candidate is fixed: noise only.
        let fixed: Vec<ExchangeRecord> = regression_and_noise(1, 1000)
            .into_iter()
            .map(|mut r| {
                r.legs[2] = r.legs[1].clone();
                r
            })
            .collect();
        records.extend(fixed);
        // An exchange of epoch 0, in flight at the reload, that finished after the new
        // epoch's: it counts in its own epoch, which waits for it.
        records.push(json_record(5000, 0, "/slow", ["{}", "{}", "{}"]));
        let (text, verdict) = run_all(records, &Settings::default());
        let summaries: Vec<&str> = text
            .match_indices("SUMMARY ")
            .map(|(i, _)| &text[i..])
            .collect();
        assert_eq!(summaries.len(), 2, "{text}");
        assert!(summaries[0].starts_with("SUMMARY epoch 0 (reloaded): 71 exchanges"));
        let old_verdict = text
            .find("VERDICT candidate: FAIL — 1 endpoint regresses")
            .unwrap();
        assert!(text.find("REQUEST 5000 ").unwrap() < old_verdict);
        assert!(
            summaries[1].starts_with("SUMMARY epoch 1 (final): 70 exchanges, 0 not compared;"),
            "{text}"
        );
        assert!(
            text.ends_with("VERDICT candidate: FAIL — epoch 0 regressed (epoch 1 passes)\n"),
            "{text}"
        );
        assert_eq!(verdict, Verdict::Fail);
    }

    /// SIGUSR1 while an old epoch waits on an exchange in flight: both summaries so far, the
    /// old candidate's first and the new one's last, with its verdict; the report file
    /// holds both. (It showed the old epoch alone, the one a supervisor had just replaced.)
    #[test]
    fn a_summary_so_far_shows_every_epoch_still_counting_the_newest_last() {
        let (sender, receiver) = channel();
        let path = std::env::temp_dir().join(format!("trident-so-far-{}.json", std::process::id()));
        let settings = Settings {
            report_file: Some(path.clone()),
            ..Settings::default()
        };
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        for record in regression_and_noise(0, 1) {
            reporter.handle(&record, &mut out);
        }
        sender.announce_epoch(1, 1);
        for mut record in regression_and_noise(1, 1000) {
            record.legs[2] = record.legs[1].clone();
            reporter.handle(&record, &mut out);
            reporter.settle_epochs(|| 0, None, &mut out);
        }
        assert_eq!((reporter.epoch.number, reporter.newer.len()), (0, 1));
        out.clear();
        reporter.summarize_so_far(&mut out);
        let text = String::from_utf8(std::mem::take(&mut out)).unwrap();
        let summaries = summary_lines(&text);
        assert_eq!(summaries.len(), 2, "{text}");
        assert!(summaries[0].starts_with("SUMMARY epoch 0 (SIGUSR1): 70 exchanges"));
        assert!(summaries[1].starts_with("SUMMARY epoch 1 (SIGUSR1): 70 exchanges"));
        assert!(
            text.ends_with("VERDICT candidate: FAIL — epoch 0 regressed (epoch 1 passes)\n"),
            "{text}"
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let epochs: Vec<&Value> = report["epochs"].as_array().unwrap().iter().collect();
        assert_eq!(
            epochs
                .iter()
                .map(|e| e["epoch"].as_u64())
                .collect::<Vec<_>>(),
            [Some(0), Some(1)]
        );
        assert_eq!(
            (report["verdict"].as_str(), &report["failed_epochs"]),
            (Some("FAIL"), &json!([0]))
        );
        // Nothing was taken: the old epoch still waits, and closes as before.
        assert_eq!((reporter.epoch.number, reporter.newer.len()), (0, 1));
        assert_eq!(reporter.newer[0].exchanges, 70);
        // When it closes, the report file keeps the newer epoch so far beside it.
        sender.older_finished();
        reporter.settle_epochs(|| 0, None, &mut out);
        assert_eq!(reporter.epoch.number, 1);
        let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let epochs: Vec<(Option<u64>, Option<&str>)> = report["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["epoch"].as_u64(), e["trigger"].as_str()))
            .collect();
        assert_eq!(
            epochs,
            [(Some(0), Some("reloaded")), (Some(1), Some("counting"))]
        );
        assert_eq!(report["written"], "reload");
    }

    /// SIGUSR1 after a reload to a new candidate that has answered nothing yet, while the old
    /// epoch waits on an exchange in flight: the new candidate's summary comes last, and its
    /// verdict is the current one. The old candidate's PASS stood for it (hunt 42).
    #[test]
    fn a_summary_so_far_after_a_reload_ends_with_the_new_candidate_before_it_answers() {
        let (sender, receiver) = channel();
        let path =
            std::env::temp_dir().join(format!("trident-announced-{}.json", std::process::id()));
        let settings = Settings {
            report_file: Some(path.clone()),
            ..Settings::default()
        };
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        for id in 1..=40 {
            reporter.handle(&json_record(id, 0, "/a", ["{}", "{}", "{}"]), &mut out);
        }
        sender.announce_epoch(1, 1);
        out.clear();
        reporter.summarize_so_far(&mut out);
        let text = String::from_utf8(std::mem::take(&mut out)).unwrap();
        let summaries = summary_lines(&text);
        assert_eq!(summaries.len(), 2, "{text}");
        assert!(
            summaries[1].starts_with("SUMMARY epoch 1 (SIGUSR1): 0 exchanges"),
            "{text}"
        );
        let verdict = text.lines().last().unwrap();
        assert!(
            verdict.starts_with("VERDICT candidate: UNDECIDED"),
            "{text}"
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(report["verdict"], "UNDECIDED");
        // The old epoch closes as before, when its last exchange is in; the new one is current.
        sender.older_finished();
        reporter.settle_epochs(|| 0, None, &mut out);
        assert_eq!((reporter.epoch.number, reporter.newer.len()), (1, 0));
        let _ = std::fs::remove_file(&path);
    }

    /// SIGUSR1 with an epoch between the current and the newest whose every exchange so far
    /// was dropped: its summary so far is there, with its drops, in epoch order (it was left
    /// out until it closed: hunt 50).
    #[test]
    fn a_summary_so_far_has_an_epoch_whose_exchanges_were_all_dropped() {
        let (sender, receiver) = channel();
        let settings = Settings::default();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        reporter.handle(&json_record(1, 0, "/a", ["{}", "{}", "{}"]), &mut out);
        sender.announce_epoch(1, 1);
        sender.not_compared(1, 1);
        sender.announce_epoch(2, 0);
        let newest = json_record(3, 2, "/a", ["{}", "{}", "{}"]);
        reporter.settle_epochs(|| 0, Some(newest.epoch), &mut out);
        reporter.handle(&newest, &mut out);
        out.clear();
        reporter.summarize_so_far(&mut out);
        let text = String::from_utf8(out).unwrap();
        let summaries = summary_lines(&text);
        assert_eq!(summaries.len(), 3, "{text}");
        assert!(
            summaries[0].starts_with("SUMMARY epoch 0 (SIGUSR1): 1 exchange,"),
            "{text}"
        );
        assert!(
            summaries[1].starts_with("SUMMARY epoch 1 (SIGUSR1): 0 exchanges, 1 not compared"),
            "{text}"
        );
        assert!(
            summaries[2].starts_with("SUMMARY epoch 2 (SIGUSR1): 1 exchange,"),
            "{text}"
        );
    }

    /// Reloads with no traffic while an old exchange is in flight: the empty epochs they
    /// begin do not count towards the open epochs' bound. Four of them closed epoch 0 early,
    /// and its last exchange counted as late in an epoch in which nothing happened (hunt 47).
    #[test]
    fn reloads_with_no_traffic_do_not_close_a_waiting_epoch_early() {
        let (sender, receiver) = channel();
        let settings = Settings::default();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        reporter.handle(&json_record(1, 0, "/a", ["{}", "{}", "{}"]), &mut out);
        for epoch in 1..=MAX_OPEN_EPOCHS as u64 + 2 {
            sender.announce_epoch(epoch, u64::from(epoch == 1));
            reporter.settle_epochs(|| 0, None, &mut out);
            reporter.summarize_so_far(&mut out);
        }
        assert_eq!((reporter.epoch.number, reporter.newer.len()), (0, 0));
        // The slow exchange comes in, and epoch 0 closes with both of its own.
        sender.older_finished();
        let slow = json_record(2, 0, "/a", ["{}", "{}", "{}"]);
        reporter.settle_epochs(|| 0, Some(slow.epoch), &mut out);
        reporter.handle(&slow, &mut out);
        reporter.settle_epochs(|| 0, None, &mut out);
        assert_eq!(reporter.epoch.number, MAX_OPEN_EPOCHS as u64 + 2);
        assert_eq!(reporter.epoch.late, 0);
        let text = String::from_utf8(out).unwrap();
        let closed: Vec<&str> = summary_lines(&text)
            .into_iter()
            .filter(|l| l.contains("(reloaded)"))
            .collect();
        assert_eq!(closed.len(), 1, "{text}");
        assert!(
            closed[0].starts_with("SUMMARY epoch 0 (reloaded): 2 exchanges, 0 not compared;"),
            "{text}"
        );
    }

    /// Two reloads while the reporting thread is behind: the mark taken at the first (the
    /// records queued then, all of epoch 0) closes epoch 0 alone. Epoch 1, completed by the
    /// second reload, waits for its own records, queued after the mark: it was closed with
    /// epoch 0, empty, and its records counted as late in epoch 2 (hunt 42).
    #[test]
    fn an_epoch_a_second_reload_completes_waits_for_its_own_records() {
        let (sender, receiver) = channel();
        let settings = Settings::default();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        let old: Vec<_> = (1..=3)
            .map(|id| json_record(id, 0, "/a", ["{}", "{}", "{}"]))
            .collect();
        // Epoch 1 begins with nothing of epoch 0 in flight, and its three records queued.
        sender.announce_epoch(1, 0);
        reporter.settle_epochs(|| old.len(), None, &mut out);
        // Epoch 1's eight exchanges, then a reload to epoch 2, all before those are handled.
        let middle: Vec<_> = (4..=11)
            .map(|id| json_record(id, 1, "/a", ["{}", "{}", r#"{"x":1}"#]))
            .collect();
        sender.announce_epoch(2, 0);
        let mut queued: std::collections::VecDeque<_> = old.into_iter().chain(middle).collect();
        while let Some(record) = queued.pop_front() {
            reporter.settle_epochs(|| queued.len(), Some(record.epoch), &mut out);
            reporter.handle(&record, &mut out);
        }
        reporter.settle_epochs(|| 0, None, &mut out);
        assert_eq!(reporter.epoch.number, 2);
        let text = String::from_utf8(out).unwrap();
        let summaries = summary_lines(&text);
        assert_eq!(summaries.len(), 2, "{text}");
        assert!(
            summaries[0].starts_with("SUMMARY epoch 0 (reloaded): 3 exchanges, 0 not compared;"),
            "{text}"
        );
        assert!(
            summaries[1].starts_with("SUMMARY epoch 1 (reloaded): 8 exchanges, 0 not compared;"),
            "{text}"
        );
        assert_eq!(reporter.epoch.late, 0);
    }

    #[test]
    fn past_the_open_epochs_bound_the_oldest_is_reported_and_its_stragglers_are_late() {
        let (sender, receiver) = channel();
        let settings = Settings::default();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        // Epoch 0 waits on an exchange in flight while reloads begin five more.
        for epoch in 1..=MAX_OPEN_EPOCHS as u64 + 1 {
            sender.announce_epoch(epoch, u64::from(epoch == 1));
            let record = json_record(epoch * 100, epoch, "/new", ["{}", "{}", "{}"]);
            reporter.handle(&record, &mut out);
            reporter.settle_epochs(|| 0, None, &mut out);
        }
        assert_eq!(reporter.epoch.number, 2, "epochs 0 and 1 were closed");
        assert_eq!(1 + reporter.newer.len(), MAX_OPEN_EPOCHS);
        reporter.handle(&json_record(7, 0, "/slow", ["{}", "{}", "{}"]), &mut out);
        assert_eq!(reporter.epoch.late, 1);
        // Its last exchange in, the rest close at once, up to the newest.
        sender.older_finished();
        reporter.settle_epochs(|| 0, None, &mut out);
        assert_eq!(reporter.epoch.number, MAX_OPEN_EPOCHS as u64 + 1);
        assert!(reporter.newer.is_empty());
        let text = String::from_utf8(out).unwrap();
        let summaries = summary_lines(&text);
        assert_eq!(summaries.len(), MAX_OPEN_EPOCHS, "{text}");
        // Epoch 0 counted nothing, so it has no summary; its straggler came once epoch 1
        // was closed too, and is epoch 2's.
        assert!(
            summaries[0].starts_with("SUMMARY epoch 1 (reloaded): 1 exchange, 0 not compared;"),
            "{text}"
        );
        assert!(
            summaries[1].starts_with(
                "SUMMARY epoch 2 (reloaded): 1 exchange, 0 not compared, 1 from an earlier epoch"
            ),
            "{text}"
        );
    }

    #[test]
    fn older_epochs_are_complete_once_every_reactor_began_the_new_one_with_none_in_flight() {
        let (sender, receiver) = channel();
        let backlog = receiver.backlog();
        sender.serve_reactors(2);
        assert_eq!(backlog.older_epochs_complete(), Some(0));
        // One reactor installed the reload; the other still starts exchanges of epoch 0.
        sender.announce_epoch(1, 0);
        assert_eq!(backlog.older_epochs_complete(), None);
        sender.announce_epoch(1, 2);
        assert_eq!(backlog.older_epochs_complete(), None);
        sender.older_finished();
        sender.older_finished();
        assert_eq!(backlog.older_epochs_complete(), Some(1));
        // A reload seen by one of the two so far.
        sender.announce_epoch(2, 0);
        assert_eq!(backlog.older_epochs_complete(), None);
        sender.announce_epoch(2, 0);
        assert_eq!(backlog.older_epochs_complete(), Some(2));
    }

    /// Epochs `range` of `regression_and_noise` exchanges, each begun by a reload (but 0).
    fn run_epochs(
        reporter: &mut Reporter,
        sender: &ReportSender,
        range: std::ops::Range<u64>,
        out: &mut Vec<u8>,
    ) {
        for epoch in range {
            if epoch > 0 {
                sender.announce_epoch(epoch, 0);
            }
            for record in regression_and_noise(epoch, 1 + epoch * 1000) {
                reporter.handle(&record, out);
                reporter.settle_epochs(|| 0, None, out);
            }
        }
    }

    #[test]
    fn closed_epochs_are_kept_only_for_a_report_file() {
        let settings = Settings::default();
        let (sender, receiver) = channel();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        run_epochs(&mut reporter, &sender, 0..4, &mut Vec::new());
        assert_eq!(reporter.failed_epochs, [0, 1, 2]);
        assert!(reporter.closed.is_empty());
    }

    /// At most `KEPT_EPOCHS` closed epochs, and at most their byte budget, the newest kept;
    /// the report says how many it left out (hunt 80: 16 epochs of noisy fields held 1 GB).
    #[test]
    fn closed_epochs_kept_for_the_report_are_bounded_in_number_and_bytes() {
        let path = std::env::temp_dir().join(format!("trident-kept-{}.json", std::process::id()));
        let settings = Settings {
            report_file: Some(path.clone()),
            ..Settings::default()
        };
        let (sender, receiver) = channel();
        let mut reporter = Reporter::new(&settings, Arc::clone(receiver.backlog()));
        let mut out = Vec::new();
        run_epochs(&mut reporter, &sender, 0..20, &mut out);
        // Epochs 0 to 18 closed; the last 16 kept.
        assert_eq!(reporter.closed.len(), KEPT_EPOCHS);
        assert_eq!(reporter.epochs_left_out, 3);
        // A budget of two epochs' bytes: the oldest go first.
        let one = reporter.closed.back().unwrap().len();
        reporter.closed_budget = 2 * one + one / 2;
        run_epochs(&mut reporter, &sender, 20..21, &mut out);
        assert_eq!(reporter.closed.len(), 2);
        assert_eq!(reporter.epochs_left_out, 18);
        assert_eq!(
            reporter.closed_bytes,
            reporter.closed.iter().map(Vec::len).sum::<usize>()
        );
        // As written when epoch 19 closed (20 counting): the bounds count 19 among the kept.
        let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let numbers = |report: &Value| -> Vec<u64> {
            report["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["epoch"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(written["epochs_left_out"], 18);
        assert_eq!(numbers(&written), [18, 19, 20]);
        reporter.summarize_so_far(&mut out);
        let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(report["epochs_left_out"], 18);
        assert_eq!(numbers(&report), [18, 19, 20]);
    }

    #[test]
    fn the_report_file_has_the_summary_and_samples() {
        let path = std::env::temp_dir().join(format!("trident-report-{}.json", std::process::id()));
        let settings = Settings {
            report_file: Some(path.clone()),
            ..Settings::default()
        };
        run_all(regression_and_noise(0, 1), &settings);
        let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(report["verdict"], "FAIL");
        assert_eq!(report["written"], "shutdown");
        let epoch = &report["epochs"][0];
        assert_eq!(epoch["exchanges"], 70);
        let users = &epoch["endpoints"][0];
        assert_eq!(users["endpoint"], "GET /users/{id}");
        assert_eq!(users["verdict"], "regresses");
        let field = &users["fields"][0];
        assert_eq!(field["field"], "body email type");
        assert_eq!(field["verdict"], "regression");
        assert_eq!(
            (field["raw"].as_u64(), field["noise"].as_u64()),
            (Some(35), Some(0))
        );
        assert_eq!(field["diffy"]["flagged"], true);
        assert_eq!(field["z_test"]["significant"], true);
        let samples = field["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 5);
        assert_eq!(samples[0]["request"], "GET /users/0 HTTP/1.1");
        assert_eq!(samples[0]["primary"], "\"a@x\"");
        assert_eq!(samples[0]["candidate"], "{\"local\":\"a\"}");
        let items = &epoch["endpoints"][1];
        assert_eq!(items["verdict"], "passes");
        assert_eq!(items["fields"][0]["field"], "body ts");
        assert_eq!(items["fields"][0]["verdict"], "noise");
    }

    #[test]
    fn json_format_writes_one_line_per_exchange_and_summary() {
        let settings = Settings {
            format: Format::Json,
            ..Settings::default()
        };
        let (text, _) = run_all(regression_and_noise(0, 1), &settings);
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 71);
        assert_eq!(lines[0]["type"], "exchange");
        assert_eq!(
            lines[0]["candidate"]["differences"][0]["field"],
            "body email type"
        );
        assert_eq!(lines[70]["type"], "summary");
        assert_eq!(lines[70]["verdict"]["candidate"], "FAIL");
    }

    /// Past `--max-endpoints`, an exchange line names `other`, where the summary counts it,
    /// not the endpoint it would have had (hunt 64).
    #[test]
    fn json_exchange_lines_name_the_endpoint_the_summary_counts() {
        let settings = Settings {
            format: Format::Json,
            max_endpoints: 1,
            ..Settings::default()
        };
        let (text, _) = run_all(regression_and_noise(0, 1), &settings);
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0]["endpoint"], "GET /users/{id}");
        assert_eq!(lines[1]["endpoint"], "other");
        let summary = &lines[70]["endpoints"];
        let names: Vec<&Value> = summary
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["endpoint"])
            .collect();
        assert_eq!(names, ["GET /users/{id}", "other"]);
    }

    /// Counts writes and flushes, to check batching.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: usize,
        flushes: usize,
    }

    impl Console for Recorder {}

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn a_burst_is_written_in_a_few_batches_of_whole_blocks() {
        let (sender, records) = channel();
        for id in 1..=2000 {
            assert!(sender.offer(record(id)).is_ok());
        }
        drop(sender);
        let mut out = Recorder::default();
        run(
            records,
            &mut out,
            &Settings::default(),
            &SummarySignal::manual(),
        );
        let text = String::from_utf8(out.bytes).unwrap();
        let (blocks, _) = split_summary(&text);
        assert_eq!(blocks, (1..=2000).map(block).collect::<String>());
        // About 400 KB of blocks: a handful of 64 KiB batches and the summary, not 2000.
        assert!(out.writes < 20, "{} writes", out.writes);
        assert!(out.flushes <= 2, "{} flushes", out.flushes);
    }

    /// A stdout whose reader has gone.
    struct Closed;

    impl Console for Closed {}

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_stdout_stops_writing_but_not_comparing() {
        let (sender, records) = channel();
        for record in regression_and_noise(0, 1) {
            assert!(sender.offer(record).is_ok());
        }
        drop(sender);
        let verdict = run(
            records,
            &mut Closed,
            &Settings::default(),
            &SummarySignal::manual(),
        );
        assert_eq!(verdict.verdict, Verdict::Fail);
    }

    /// A writer the test can read back while and after the thread that owns it runs.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.0.lock().map_err(|_| io::ErrorKind::Other)?;
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn spawned_thread_is_named_summarizes_on_request_and_drains_before_ending() {
        let out = Shared::default();
        let signal = SummarySignal::manual();
        let request = signal.handle();
        let (sender, thread) = spawn(Box::new(out.clone()), Settings::default(), signal).unwrap();
        assert_eq!(thread.thread().name(), Some("report"));
        for id in 1..=10 {
            assert!(sender.offer(record(id)).is_ok());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !out.text().contains("REQUEST 10 ") {
            assert!(
                Instant::now() < deadline,
                "blocks not written: {}",
                out.text()
            );
            thread::sleep(Duration::from_millis(5));
        }
        // A summary on request, while the senders live (as on SIGUSR1).
        request.store(true, Ordering::Relaxed);
        while !out.text().contains("VERDICT") {
            assert!(
                Instant::now() < deadline,
                "no summary on request: {}",
                out.text()
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert!(out
            .text()
            .contains("SUMMARY epoch 0 (SIGUSR1): 10 exchanges"));
        drop(sender);
        assert_eq!(thread.join().unwrap().verdict, Verdict::Undecided);
        let text = out.text();
        assert!(text.starts_with(&(1..=10).map(block).collect::<String>()));
        assert_eq!(text.matches("SUMMARY").count(), 2);
        assert!(text.ends_with("VERDICT candidate: UNDECIDED — no endpoint has the 30 compared exchanges a verdict needs (1 endpoint flagged on too few samples)\n"));
    }

    /// A summary asked for as the reactors stop (the channel disconnects before the idle
    /// thread looks at the flag again) is written before the final one: it was dropped.
    #[test]
    fn a_summary_asked_for_at_shutdown_comes_before_the_final_one() {
        let (sender, receiver) = channel();
        drop(sender);
        let signal = SummarySignal::manual();
        signal.handle().store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        run(receiver, &mut out, &Settings::default(), &signal);
        let text = String::from_utf8(out).unwrap();
        let sigusr1 = text.find("SUMMARY epoch 0 (SIGUSR1): 0 exchanges");
        let last = text.find("SUMMARY epoch 0 (final): 0 exchanges");
        assert!(sigusr1.is_some() && sigusr1 < last, "{text}");
    }

    /// Not a correctness test: how many small exchanges per second the reporting thread
    /// compares and writes. `cargo test --release --lib report::tests::throughput -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let n = 200_000u64;
        let body = |id: u64, leg: u64, email: &str| {
            format!(
                r#"{{"id":{id},"ts":{},"user":{{"name":"User {id}","email":"{email}","role":"member","active":true}}}}"#,
                id * 10 + leg
            )
        };
        let mut records = Vec::with_capacity(n as usize);
        for id in 0..n {
            let email = if id % 3 == 0 {
                "b@example.com"
            } else {
                "a@example.com"
            };
            let bodies = [
                body(id, 0, "a@example.com"),
                body(id, 1, "a@example.com"),
                body(id, 2, email),
            ];
            let mut record = json_record(
                id,
                0,
                &format!("/users/{id}"),
                [&bodies[0], &bodies[1], &bodies[2]],
            );
            for leg in &mut record.legs {
                if let LegOutcome::Response { fields, .. } = leg {
                    fields.extend_from_slice(b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: x\r\nCache-Control: no-store\r\n");
                }
            }
            records.push(record);
        }
        let size = records[0].legs[0].clone();
        if let LegOutcome::Response { body_bytes, .. } = size {
            eprintln!("body size {body_bytes} B");
        }
        let (sender, receiver) = crossbeam_channel::unbounded();
        for record in records {
            sender.send(record).unwrap();
        }
        drop(sender);
        let receiver = ReportReceiver {
            records: receiver,
            backlog: Arc::new(Backlog::default()),
        };
        // CPU time of this thread too, so that a busy machine does not hide the cost.
        let cpu = || -> Option<u64> {
            let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            text.split_whitespace().next()?.parse().ok()
        };
        let (started, cpu_before) = (Instant::now(), cpu());
        let verdict = run(
            receiver,
            &mut io::sink(),
            &Settings::default(),
            &SummarySignal::manual(),
        );
        let elapsed = started.elapsed();
        eprintln!(
            "{n} exchanges in {elapsed:?}: {:.0} exchanges/s (verdict {verdict:?})",
            n as f64 / elapsed.as_secs_f64()
        );
        if let (Some(before), Some(after)) = (cpu_before, cpu()) {
            let seconds = (after - before) as f64 / 1e9;
            eprintln!(
                "{seconds:.3}s on the CPU: {:.0} exchanges per CPU second",
                n as f64 / seconds
            );
        }
    }
}
