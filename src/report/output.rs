//! Stdout on a thread of its own. A reader that stops reading without closing (a paused
//! pager, a wedged log shipper) blocks a write to a full pipe for as long as it likes; here
//! that holds up only the writer thread. The reporting thread goes on comparing and counting,
//! output beyond `MAX_QUEUED` is dropped in whole writes (whole blocks) and the lines counted,
//! and at shutdown the wait for stdout ends once it has taken nothing for a while.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The most output that may wait for stdout; a write that would go beyond it is dropped.
pub const MAX_QUEUED: usize = 1024 * 1024;
/// Shutdown gives up on stdout once it has taken nothing for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);
/// The writer hands stdout at most this much at a time, so that a slow reader's progress is
/// seen as progress.
const CHUNK: usize = 64 * 1024;
/// How often `close` looks at the writer's progress.
const PROGRESS_POLL: Duration = Duration::from_millis(50);

/// The reporting thread's end: `write` queues (or drops) and never blocks on stdout.
pub struct Output {
    shared: Arc<Shared>,
    /// Lines dropped since stdout last kept up.
    dropped_lines: u64,
    /// Whether the writer's failure was handed to a `write` (and so reported by the caller).
    failure_returned: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: output queued, or closing.
    ready: Condvar,
    /// Wakes `close`: the writer finished.
    finished: Condvar,
    /// Bytes stdout has taken; `close` watches it move.
    written: AtomicU64,
}

#[derive(Default)]
struct State {
    queued: Vec<u8>,
    /// The writer is waiting on `ready` (so a write must wake it).
    writer_waiting: bool,
    closing: bool,
    finished: bool,
    /// Why stdout refused a write; nothing more is written.
    failed: Option<(io::ErrorKind, String)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-updated: every change is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Output {
    /// Starts the writer thread on `out`.
    pub fn start(mut out: Box<dyn Write + Send>) -> io::Result<Output> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            finished: Condvar::new(),
            written: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        thread::Builder::new()
            .name("stdout".to_string())
            .spawn(move || write_until_closed(&writer, &mut *out))?;
        Ok(Output {
            shared,
            dropped_lines: 0,
            failure_returned: false,
        })
    }

    /// Lets the writer write what is queued and waits for it, but only while stdout keeps
    /// taking bytes: once it has taken nothing for `stall`, the rest is given up (the writer
    /// thread stays blocked until the process exits).
    pub fn close(mut self, stall: Duration) {
        self.catch_up_note();
        let mut state = self.shared.lock();
        state.closing = true;
        self.shared.ready.notify_one();
        let mut seen = self.shared.written.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while !state.finished {
            state = self
                .shared
                .finished
                .wait_timeout(state, PROGRESS_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let written = self.shared.written.load(Ordering::Relaxed);
            if written != seen {
                (seen, since) = (written, Instant::now());
            } else if !state.finished && since.elapsed() >= stall {
                log::warn!(
                    "stdout accepted nothing for {} s: exiting without the rest of the console \
                     output ({} bytes or more)",
                    stall.as_secs_f64(),
                    state.queued.len()
                );
                return;
            }
        }
        if let (Some((_, text)), false) = (&state.failed, self.failure_returned) {
            log::warn!("cannot write to stdout ({text}); the end of the console output is lost");
        }
    }

    /// Once stdout keeps up again, says how much it missed.
    fn catch_up_note(&mut self) {
        if self.dropped_lines > 0 {
            log::warn!(
                "stdout caught up; {} lines of console output were dropped while it was behind",
                std::mem::take(&mut self.dropped_lines)
            );
        }
    }
}

impl Write for Output {
    /// Queues all of `buf`, or (stdout over `MAX_QUEUED` behind) none of it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if let Some((kind, text)) = &state.failed {
            self.failure_returned = true;
            return Err(io::Error::new(*kind, text.clone()));
        }
        if state.queued.len() + buf.len() > MAX_QUEUED {
            drop(state);
            if self.dropped_lines == 0 {
                log::warn!(
                    "stdout is over {} KiB behind: console output is dropped until it catches \
                     up (exchanges are still compared and counted)",
                    MAX_QUEUED / 1024
                );
            }
            self.dropped_lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            return Ok(buf.len());
        }
        state.queued.extend_from_slice(buf);
        if state.writer_waiting {
            // Only a waiting writer needs the wake-up (a futex call).
            self.shared.ready.notify_one();
        }
        drop(state);
        self.catch_up_note();
        Ok(buf.len())
    }

    /// Nothing to do: the writer writes and flushes each batch as soon as it has it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer thread: takes everything queued at once, writes and flushes it, and repeats
/// until closed with nothing left, or until stdout refuses a write.
fn write_until_closed(shared: &Shared, out: &mut dyn Write) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            while state.queued.is_empty() && !state.closing {
                state.writer_waiting = true;
                state = shared
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.writer_waiting = false;
            }
            if state.queued.is_empty() {
                state.finished = true;
                shared.finished.notify_all();
                return;
            }
            // The two buffers swap roles: no allocation once both have grown.
            std::mem::swap(&mut state.queued, &mut batch);
        }
        let written = batch
            .chunks(CHUNK)
            .try_for_each(|chunk| {
                out.write_all(chunk)?;
                shared
                    .written
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(())
            })
            .and_then(|()| out.flush());
        batch.clear();
        if let Err(err) = written {
            let mut state = shared.lock();
            state.failed = Some((err.kind(), err.to_string()));
            state.queued = Vec::new();
            state.finished = true;
            shared.finished.notify_all();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A stdout whose every write waits for a permit (or fails once the permits' sender is
    /// gone); what it took is shared with the test.
    struct Gated {
        permits: mpsc::Receiver<()>,
        taken: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.permits.recv().is_err() {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.taken.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gated() -> (Output, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let (permit, permits) = mpsc::channel();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let out = Gated {
            permits,
            taken: Arc::clone(&taken),
        };
        (Output::start(Box::new(out)).unwrap(), permit, taken)
    }

    fn line(n: usize) -> Vec<u8> {
        format!("{n:0>1023}\n").into_bytes()
    }

    #[test]
    fn everything_queued_is_written_in_order_before_close_returns() {
        let (mut output, permit, taken) = gated();
        for n in 0..100 {
            output.write_all(&line(n)).unwrap();
        }
        for _ in 0..1000 {
            permit.send(()).unwrap();
        }
        output.close(Duration::from_secs(5));
        let expected: Vec<u8> = (0..100).flat_map(line).collect();
        assert_eq!(*taken.lock().unwrap(), expected);
    }

    #[test]
    fn a_stalled_stdout_drops_whole_writes_beyond_the_cap_and_close_gives_up() {
        // The writer takes the first line and blocks writing it; MAX_QUEUED bytes then queue,
        // and the 200 lines after them are dropped.
        let (mut output, _permit, taken) = gated();
        let started = Instant::now();
        output.write_all(&line(0)).unwrap();
        while !output.shared.lock().queued.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        for n in 1..=(MAX_QUEUED / 1024 + 200) {
            output.write_all(&line(n)).unwrap();
        }
        assert_eq!(output.dropped_lines, 200);
        assert_eq!(output.shared.lock().queued.len(), MAX_QUEUED);
        let stall = Duration::from_millis(300);
        output.close(stall);
        assert!(started.elapsed() < stall * 10, "{:?}", started.elapsed());
        assert!(taken.lock().unwrap().is_empty());
    }

    #[test]
    fn a_slow_stdout_is_waited_for_while_it_makes_progress() {
        let (mut output, permit, taken) = gated();
        let lines = 6 * CHUNK / 1024;
        for n in 0..lines {
            output.write_all(&line(n)).unwrap();
        }
        // At least six writes (a chunk each), 100 ms apart: 600 ms in all, twice the stall
        // limit, but never 300 ms without progress.
        let feeder = thread::spawn(move || {
            for _ in 0..lines {
                thread::sleep(Duration::from_millis(100));
                if permit.send(()).is_err() {
                    break;
                }
            }
        });
        output.close(Duration::from_millis(300));
        feeder.join().unwrap();
        assert_eq!(taken.lock().unwrap().len(), lines * 1024);
    }

    #[test]
    fn a_refused_write_is_returned_to_the_next_write() {
        let (mut output, permit, _taken) = gated();
        drop(permit);
        output.write_all(b"first\n").unwrap();
        let refused = (0..200).find_map(|_| {
            thread::sleep(Duration::from_millis(10));
            output.write_all(b"later\n").err()
        });
        assert_eq!(refused.map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
        output.close(Duration::from_secs(5));
    }
}
