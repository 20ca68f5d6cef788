//! The reporting thread: finished exchanges arrive over a bounded crossbeam channel and are
//! written to stdout as console blocks. Nothing here runs on the reactor, and the reactor
//! never waits for it (later issues add the comparison here).

mod console;

use std::io::Write;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

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
    let _ = out;
    todo!()
}

/// The reporting loop (public for tests): writes one block per record, one write per block so
/// blocks never interleave, flushing when the channel is momentarily empty.
pub fn run(records: Receiver<ExchangeRecord>, out: &mut dyn Write) {
    let _ = (records, out);
    todo!()
}
