//! The reporting thread: finished exchanges arrive over a bounded crossbeam channel and are
//! written to stdout as console blocks. Nothing here runs on the reactor, and the reactor
//! never waits for it (later issues add the comparison here).

mod console;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::failure::LegError;
use crate::http::Version;

pub use console::write_block;

/// How many finished exchanges may wait for the reporting thread before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 4096;
/// How many captured bytes (bodies and fields) may wait for the reporting thread; beyond it
/// new exchanges are dropped (counted as not compared), so a slow reporter never grows
/// trident's memory without bound.
pub const BACKLOG_BYTES: usize = 64 * 1024 * 1024;

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
}

impl ExchangeRecord {
    /// Heap bytes the record carries (captured bodies and fields), for the backlog bound.
    pub fn captured_bytes(&self) -> usize {
        self.legs
            .iter()
            .map(|leg| match leg {
                LegOutcome::Response { fields, body, .. } => fields.len() + body.bytes.len(),
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
    /// The body was longer than the cap: only `hash` covers the whole of it.
    pub truncated: bool,
    /// FNV-1a (64 bit) over the whole payload.
    pub hash: u64,
}

impl CapturedBody {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

    /// An empty capture.
    pub fn new() -> CapturedBody {
        CapturedBody {
            bytes: Vec::new(),
            truncated: false,
            hash: Self::FNV_OFFSET,
        }
    }

    /// Takes the next payload bytes: kept up to `cap`, hashed all.
    pub fn extend(&mut self, payload: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        if payload.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&payload[..payload.len().min(room)]);
        let mut hash = self.hash;
        for &byte in payload {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(Self::FNV_PRIME);
        }
        self.hash = hash;
    }
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
    not_compared: AtomicU64,
}

impl Backlog {
    /// Exchanges dropped because the reporting thread was behind.
    pub fn not_compared(&self) -> u64 {
        self.not_compared.load(Ordering::Relaxed)
    }
}

/// The sending side the reactor holds. `offer` never blocks.
#[derive(Debug, Clone)]
pub struct ReportSender {
    records: Sender<ExchangeRecord>,
    backlog: Arc<Backlog>,
}

impl ReportSender {
    /// Hands `record` to the reporting thread if it has room (in count and in bytes);
    /// otherwise drops it and counts it. False when dropped.
    pub fn offer(&self, record: ExchangeRecord) -> bool {
        let size = record.captured_bytes();
        let queued = self.backlog.queued_bytes.load(Ordering::Relaxed);
        if queued + size > BACKLOG_BYTES {
            self.backlog.not_compared.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.backlog.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if self.records.try_send(record).is_err() {
            self.backlog.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.backlog.not_compared.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

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

/// Starts the reporting thread writing blocks to `out`. It ends when every sender is dropped,
/// after writing everything it received.
pub fn spawn(out: Box<dyn Write + Send>) -> (ReportSender, JoinHandle<()>) {
    let (sender, records) = channel();
    let mut out = out;
    let thread = thread::Builder::new()
        .name("report".to_string())
        .spawn(move || run(records, &mut *out))
        // Only at startup, and only when the OS refuses a thread: nothing to run without it.
        .expect("cannot start the report thread");
    (sender, thread)
}

/// The reporting loop (public for tests): writes one block per record, one write per block so
/// blocks never interleave, flushing when the channel is momentarily empty.
pub fn run(receiver: ReportReceiver, out: &mut dyn Write) {
    let records = &receiver.records;
    // One buffer for every block: cleared, never reallocated once it has grown to a block.
    let mut block = Vec::with_capacity(1024);
    let mut next = records.recv().ok();
    while let Some(record) = next {
        receiver.done_with(&record);
        block.clear();
        write_block(&record, &mut block);
        if let Err(err) = out.write_all(&block) {
            stop_writing(&err);
            return;
        }
        // Flush only when nothing else is waiting, so a burst costs one flush, not one each.
        next = match records.try_recv() {
            Ok(record) => Some(record),
            Err(TryRecvError::Empty) => {
                if let Err(err) = out.flush() {
                    stop_writing(&err);
                    return;
                }
                records.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    if let Err(err) = out.flush() {
        stop_writing(&err);
    }
}

/// Stdout is gone (a closed pipe): say so once and stop. Senders use `try_send`, so the
/// reactor is never held up by a reporting thread that has left.
fn stop_writing(err: &io::Error) {
    log::warn!("cannot write to stdout ({err}); no more exchanges will be reported");
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(whole.hash, split.hash);
        assert_ne!(whole.hash, CapturedBody::new().hash);
    }

    #[test]
    fn offer_drops_and_counts_when_the_byte_backlog_is_full() {
        let (sender, receiver) = channel();
        let mut big = record(1);
        if let LegOutcome::Response { body, .. } = &mut big.legs[0] {
            body.bytes = vec![0; BACKLOG_BYTES + 1];
        }
        assert!(!sender.offer(big));
        assert_eq!(receiver.backlog().not_compared(), 1);
        assert!(sender.offer(record(2)));
    }
    use std::sync::{Arc, Mutex};

    fn record(id: u64) -> ExchangeRecord {
        let ok = LegOutcome::Response {
            status: 200,
            reason: "OK".to_string(),
            body_bytes: 2,
            elapsed: Duration::from_micros(1500),
            fields: Vec::new(),
            body: CapturedBody::new(),
        };
        ExchangeRecord {
            id,
            method: "GET".to_string(),
            target: format!("/{id}"),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
            epoch: 0,
            legs: [
                ok.clone(),
                ok,
                LegOutcome::Failed {
                    error: LegError::ConnectionRefused,
                    elapsed: Duration::ZERO,
                },
            ],
        }
    }

    fn block(id: u64) -> String {
        format!(
            "REQUEST {id} => GET /{id} HTTP/1.1 (host=-, body=0B)\n\
             RESPONSE {id} primary => 200 OK (body=2B, 1.5ms)\n\
             RESPONSE {id} secondary => 200 OK (body=2B, 1.5ms)\n\
             RESPONSE {id} candidate => error: connection refused\n"
        )
    }

    #[test]
    fn run_writes_blocks_in_receive_order_and_ends_when_senders_go() {
        let (sender, records) = channel();
        for id in 1..=3 {
            assert!(sender.offer(record(id)));
        }
        drop(sender);
        let mut out = Vec::new();
        run(records, &mut out);
        let expected: String = (1..=3).map(block).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    /// Counts writes and flushes, to check one write per block and flushes only at lulls.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: usize,
        flushes: usize,
    }

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
    fn one_write_per_block_and_a_flush_when_idle() {
        let (sender, records) = channel();
        for id in 1..=5 {
            assert!(sender.offer(record(id)));
        }
        drop(sender);
        let mut out = Recorder::default();
        run(records, &mut out);
        assert_eq!(out.writes, 5);
        // The queue never ran empty while senders lived, so only the final flush.
        assert_eq!(out.flushes, 1);
        assert_eq!(
            out.bytes,
            (1..=5).map(block).collect::<String>().into_bytes()
        );
    }

    /// A stdout whose reader has gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_stdout_ends_the_loop_without_blocking_senders() {
        let (sender, records) = channel();
        assert!(sender.offer(record(1)));
        run(records, &mut Closed);
        // The receiver is gone: senders get an error at once instead of waiting.
        assert!(!sender.offer(record(2)));
    }

    /// A writer the test can read back after the thread that owned it has ended.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

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
    fn spawned_thread_is_named_and_drains_before_ending() {
        let out = Shared::default();
        let (sender, thread) = spawn(Box::new(out.clone()));
        assert_eq!(thread.thread().name(), Some("report"));
        for id in 1..=10 {
            assert!(sender.offer(record(id)));
        }
        drop(sender);
        thread.join().unwrap();
        let written = out.0.lock().unwrap().clone();
        assert_eq!(
            written,
            (1..=10).map(block).collect::<String>().into_bytes()
        );
    }
}
