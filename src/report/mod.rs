//! The reporting thread: finished exchanges arrive over a bounded crossbeam channel and are
//! written to stdout as console blocks. Nothing here runs on the reactor, and the reactor
//! never waits for it (later issues add the comparison here).

mod console;

use std::io::{self, Write};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::failure::LegError;
use crate::http::Version;

pub use console::write_block;

/// How many finished exchanges may wait for the reporting thread before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 4096;

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
    /// Indexed by `Role::index()`.
    pub legs: [LegOutcome; 3],
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
    },
    /// The leg failed; see `LegError` for the console text.
    Failed { error: LegError, elapsed: Duration },
    /// The leg was not sent this request; the text says why (`saturated`, `sampling`).
    Skipped(&'static str),
}

/// The sending side the reactor holds.
pub type ReportSender = Sender<ExchangeRecord>;

/// Starts the reporting thread writing blocks to `out`. It ends when every sender is dropped,
/// after writing everything it received.
pub fn spawn(out: Box<dyn Write + Send>) -> (ReportSender, JoinHandle<()>) {
    let (sender, records) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
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
pub fn run(records: Receiver<ExchangeRecord>, out: &mut dyn Write) {
    // One buffer for every block: cleared, never reallocated once it has grown to a block.
    let mut block = Vec::with_capacity(1024);
    let mut next = records.recv().ok();
    while let Some(record) = next {
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
    use std::sync::{Arc, Mutex};

    fn record(id: u64) -> ExchangeRecord {
        let ok = LegOutcome::Response {
            status: 200,
            reason: "OK".to_string(),
            body_bytes: 2,
            elapsed: Duration::from_micros(1500),
        };
        ExchangeRecord {
            id,
            method: "GET".to_string(),
            target: format!("/{id}"),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
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
        let (sender, records) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        for id in 1..=3 {
            sender.try_send(record(id)).unwrap();
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
        let (sender, records) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        for id in 1..=5 {
            sender.try_send(record(id)).unwrap();
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
        let (sender, records) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        sender.try_send(record(1)).unwrap();
        run(records, &mut Closed);
        // The receiver is gone: senders get an error at once instead of waiting.
        assert!(sender.try_send(record(2)).is_err());
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
            sender.try_send(record(id)).unwrap();
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
