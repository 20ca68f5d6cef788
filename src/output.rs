//! A stream (stdout for the console, stderr for the log) written from a thread of its own.
//! A reader that stops reading without closing (a paused pager, a wedged log shipper) blocks
//! a write to a full pipe for as long as it likes; here that holds up only the writer thread,
//! never the reactor or the reporting thread. Output beyond `MAX_QUEUED` is dropped in whole
//! writes (whole console blocks, whole log lines) and the lines counted, and at shutdown the
//! wait for the stream ends once it has taken nothing for a while.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most output that may wait for the stream; a write that would go beyond it is dropped.
pub const MAX_QUEUED: usize = 1024 * 1024;
/// How long `close` waits for a stream: while it takes bytes, but never `stall` without
/// progress, nor `total` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    pub stall: Duration,
    pub total: Duration,
}

/// At shutdown. A service manager's stop timeout is typically 90 s, and the log is waited
/// for after stdout.
pub const SHUTDOWN: Patience = Patience {
    stall: Duration::from_secs(5),
    total: Duration::from_secs(30),
};
/// A patient write queues at most this much at a time (whole lines where it can), as room
/// comes; the writer's batch keeps four of it once the stream has caught up.
const CHUNK: usize = 64 * 1024;
/// How often `close` looks at the writer's progress.
const PROGRESS_POLL: Duration = Duration::from_millis(50);

/// Where dropped output is owned up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// In the log: for stdout, whose console format must stay parseable.
    Logged,
    /// In the stream itself, once it catches up, as a log line in this format: for stderr,
    /// where logging about the log would feed the very queue that is full.
    Inline(LogFormat),
}

/// How a log line begins: `2026-11-24T03:45:12.123Z trident: WARN: `, the time in UTC to the
/// millisecond (a reload, a candidate going down, output dropped: when matters), or
/// `trident: WARN: ` alone where the reader stamps each line itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFormat {
    pub timestamps: bool,
}

impl LogFormat {
    /// Timestamps, unless stderr is the systemd journal: systemd names the stream it hands a
    /// service in `JOURNAL_STREAM` (`DEVICE:INODE`), and a child whose stderr was sent
    /// elsewhere inherits the variable but not the stream, hence the comparison.
    pub fn for_stderr() -> LogFormat {
        let journal = std::env::var("JOURNAL_STREAM").ok();
        let stderr = std::fs::metadata("/proc/self/fd/2").ok();
        let is_journal = match (journal, stderr) {
            (Some(stream), Some(meta)) => {
                use std::os::unix::fs::MetadataExt;
                stream == format!("{}:{}", meta.dev(), meta.ino())
            }
            _ => false,
        };
        LogFormat {
            timestamps: !is_journal,
        }
    }

    /// Writes the beginning of a line logged at `level` (`INFO`, `WARN`...) at `now`.
    pub fn begin(
        &self,
        out: &mut impl Write,
        level: impl std::fmt::Display,
        now: SystemTime,
    ) -> io::Result<()> {
        if self.timestamps {
            write_utc(out, now)?;
            out.write_all(b" ")?;
        }
        write!(out, "trident: {level}: ")
    }
}

/// `now` as RFC 3339 in UTC with milliseconds: `2026-11-24T03:45:12.123Z`.
fn write_utc(out: &mut impl Write, now: SystemTime) -> io::Result<()> {
    // Before 1970 only on a clock set wrong; it shows as 1970.
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, in_day) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        since.subsec_millis()
    )
}

/// The writing end: `write` queues (or drops) and never blocks on the stream.
pub struct Output {
    shared: Arc<Shared>,
    /// `stdout`, `stderr`: for the notices.
    name: &'static str,
    notice: Notice,
    /// Lines dropped since the stream last kept up.
    dropped_lines: u64,
    /// Whether the writer's failure was handed to a `write` (and so reported by the caller).
    failure_returned: bool,
    /// When the first patient wait began, and with what patience: the waits with the same
    /// patience share its `total` (the final summary's write and the close at shutdown,
    /// which the docs promise 30 s in all; each had its own, some 50 s together).
    first_wait: Option<(Patience, Instant)>,
}

/// Waits for an `Output` that was handed away (to the logger) to be written.
pub struct Closer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: output queued, or closing.
    ready: Condvar,
    /// Wakes `close`: the writer finished.
    finished: Condvar,
    /// Wakes a patient write: the stream took a chunk.
    room: Condvar,
}

#[derive(Default)]
struct State {
    queued: Vec<u8>,
    /// Bytes the writer took from `queued` and the stream has not taken yet: still behind.
    in_hand: usize,
    /// When the stream last took bytes, or was handed some while it had none to take: a
    /// wait judges a stall from here, not from its own start, so a stream that has taken
    /// nothing for `stall` (a wedged stdout, dropping for a while) is not waited on again,
    /// and one that takes again (a reader back at shutdown) is (hunt 77).
    progress_at: Option<Instant>,
    /// The writer is waiting on `ready` (so a write must wake it).
    writer_waiting: bool,
    /// A patient write is waiting on `room` (so the writer must wake it).
    patient_waiting: bool,
    closing: bool,
    finished: bool,
    /// Why the stream refused a write; nothing more is written.
    failed: Option<(io::ErrorKind, String)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-updated: every change is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// How far behind the stream is: queued, or taken by the writer and not yet written.
    fn behind(&self) -> usize {
        self.queued.len() + self.in_hand
    }
}

/// How a wait for the stream ran out of patience.
enum OutOfPatience {
    /// The stream took nothing for `Patience::stall`.
    Stalled,
    /// It was still behind after `Patience::total`.
    TooSlow,
}

impl Patience {
    /// After a wait that began at `start`: whether patience has run out, and how.
    fn out_of(&self, state: &State, start: Instant) -> Option<OutOfPatience> {
        let now = Instant::now();
        let stalled = state
            .progress_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.stall);
        if stalled {
            Some(OutOfPatience::Stalled)
        } else {
            (now.saturating_duration_since(start) >= self.total).then_some(OutOfPatience::TooSlow)
        }
    }
}

/// How `Closer::close` ended.
#[derive(Debug, PartialEq, Eq)]
enum Closed {
    /// Everything queued was written (or the stream failed, see `State::failed`).
    Done,
    /// The stream took nothing for `Patience::stall`; this much was still queued.
    Stalled { queued: usize },
    /// The stream was still behind after `Patience::total`.
    TooSlow { queued: usize },
}

impl Output {
    /// Starts a writer thread on `out`.
    pub fn start(
        mut out: Box<dyn Write + Send>,
        name: &'static str,
        notice: Notice,
    ) -> io::Result<Output> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            finished: Condvar::new(),
            room: Condvar::new(),
        });
        let writer = Arc::clone(&shared);
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || write_until_closed(&writer, &mut *out))?;
        Ok(Output {
            shared,
            name,
            notice,
            dropped_lines: 0,
            failure_returned: false,
            first_wait: None,
        })
    }

    /// A handle that can wait for this output once it is handed away.
    pub fn closer(&self) -> Closer {
        Closer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// `Closer::close`, saying in the log what was lost (for `Notice::Logged`; a stream that
    /// is the log has no one else to tell).
    pub fn close(mut self, patience: Patience) {
        let began = self.wait_began(patience);
        let closed = self.closer().close_within(patience, began);
        if self.notice != Notice::Logged {
            return;
        }
        if self.dropped_lines > 0 {
            log::warn!(
                "{} lines of {}'s output were dropped while it was behind",
                self.dropped_lines,
                self.name
            );
        }
        let (why, limit, queued) = match closed {
            Closed::Done => return self.failure_note(),
            Closed::Stalled { queued } => ("accepted nothing for", patience.stall, queued),
            Closed::TooSlow { queued } => ("was still behind after", patience.total, queued),
        };
        log::warn!(
            "{} {why} {} s: exiting without the rest of its output ({queued} bytes or more)",
            self.name,
            limit.as_secs_f64()
        );
    }

    /// Says that the stream refused a write, unless a `write` already told the caller.
    fn failure_note(&self) {
        if let (Some((_, text)), false) = (&self.shared.lock().failed, self.failure_returned) {
            log::warn!(
                "cannot write to {} ({text}); the end of its output is lost",
                self.name
            );
        }
    }

    /// Queues all of `buf`, waiting for the stream when it is `MAX_QUEUED` behind instead of
    /// dropping: for what must not be lost to a reader that is merely slower than trident (a
    /// summary, which can be larger than `MAX_QUEUED` on its own). Waits as `patience` allows;
    /// past it, the rest is dropped and counted as `write` would.
    pub fn write_patiently(&mut self, mut buf: &[u8], patience: Patience) -> io::Result<()> {
        let began = self.wait_began(patience);
        let mut gave_up = false;
        while !buf.is_empty() {
            // Whole lines where there are any, so that what a give-up drops is whole lines.
            let mut piece = buf.len().min(CHUNK);
            if piece < buf.len() {
                if let Some(newline) = buf[..piece].iter().rposition(|&b| b == b'\n') {
                    piece = newline + 1;
                }
            }
            let mut state = self.shared.lock();
            // The cap `write` will apply: waiting only for the full cap while dropping would
            // hand each piece to a `write` that drops it.
            while !gave_up && state.behind() + piece > self.cap() && state.failed.is_none() {
                state.patient_waiting = true;
                state = self
                    .shared
                    .room
                    .wait_timeout(state, PROGRESS_POLL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                state.patient_waiting = false;
                // The rest is dropped without a wait per piece.
                gave_up = patience.out_of(&state, began).is_some();
            }
            drop(state);
            // Room, a failed stream (`write` says so) or no more patience (`write` drops).
            self.write_all(&buf[..piece])?;
            buf = &buf[piece..];
        }
        Ok(())
    }

    /// Queues all of `buf` without waiting, however large, unless the stream is already
    /// `MAX_QUEUED` behind (then it is dropped and counted, as by `write`): what must not
    /// hold its writer up, and may be lost only to a reader that has fallen that far behind.
    /// The queue holds at most `MAX_QUEUED` and one such write more.
    pub fn write_unless_behind(&mut self, buf: &[u8]) -> io::Result<()> {
        self.queue(buf, true).map(drop)
    }

    /// When a wait with `patience` counts its `total` from: the first wait with it.
    fn wait_began(&mut self, patience: Patience) -> Instant {
        match self.first_wait {
            Some((first, began)) if first == patience => began,
            _ => {
                let now = Instant::now();
                self.first_wait = Some((patience, now));
                now
            }
        }
    }

    /// How far behind the stream may be for a write to be queued. Once dropping, only half
    /// `MAX_QUEUED` lets output in again: the stream has then really taken something. At the
    /// cap itself a small line would fit where a larger one did not, and "caught up" would be
    /// said of a reader that read nothing.
    fn cap(&self) -> usize {
        if self.dropped_lines > 0 {
            MAX_QUEUED / 2
        } else {
            MAX_QUEUED
        }
    }

    /// Once the stream keeps up again, says in the log how much it missed (`Notice::Logged`).
    fn caught_up(&mut self) {
        if self.notice == Notice::Logged && self.dropped_lines > 0 {
            // Taken outside the macro: its arguments are not evaluated when warnings are off.
            let lines = std::mem::take(&mut self.dropped_lines);
            log::warn!(
                "{} caught up; {lines} lines of its output were dropped while it was behind",
                self.name
            );
        }
    }
}

impl Closer {
    /// Lets the writer write what is queued and waits for it, as `patience` allows; what is
    /// left then is given up (the writer thread stays blocked until the process exits).
    pub fn close(&self, patience: Patience) {
        self.close_within(patience, Instant::now());
    }

    /// `began`: when the wait's `total` counts from.
    fn close_within(&self, patience: Patience, began: Instant) -> Closed {
        let mut state = self.shared.lock();
        state.closing = true;
        self.shared.ready.notify_one();
        while !state.finished {
            state = self
                .shared
                .finished
                .wait_timeout(state, PROGRESS_POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if state.finished {
                break;
            }
            let queued = state.behind();
            match patience.out_of(&state, began) {
                Some(OutOfPatience::Stalled) => return Closed::Stalled { queued },
                Some(OutOfPatience::TooSlow) => return Closed::TooSlow { queued },
                None => {}
            }
        }
        Closed::Done
    }
}

impl Write for Output {
    /// Queues all of `buf`, or (the stream over `MAX_QUEUED` behind) none of it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.queue(buf, false)
    }

    /// Nothing to do: the writer writes and flushes each batch as soon as it has it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output {
    /// Queues all of `buf`, or none of it if the stream is over the cap behind: with `buf`
    /// (`write`), or before it (`whole`: `write_unless_behind`).
    fn queue(&mut self, buf: &[u8], whole: bool) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if let Some((kind, text)) = &state.failed {
            self.failure_returned = true;
            return Err(io::Error::new(*kind, text.clone()));
        }
        let adding = if whole { 0 } else { buf.len() };
        if state.behind() + adding > self.cap() {
            drop(state);
            if self.dropped_lines == 0 && self.notice == Notice::Logged {
                log::warn!(
                    "{} is over {} KiB behind: its output is dropped until it catches up",
                    self.name,
                    MAX_QUEUED / 1024
                );
            }
            let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
            self.dropped_lines += lines.max(1);
            return Ok(buf.len());
        }
        if let (Notice::Inline(format), 1..) = (self.notice, self.dropped_lines) {
            // Owned up to in the stream itself, ahead of what comes next.
            let lines = std::mem::take(&mut self.dropped_lines);
            let queued = &mut state.queued;
            let _ = format.begin(queued, log::Level::Warn, SystemTime::now());
            let _ = writeln!(
                queued,
                "{} caught up; {lines} lines of its output were dropped while it was behind",
                self.name
            );
        }
        state.queued.extend_from_slice(buf);
        if state.writer_waiting {
            // Only a waiting writer needs the wake-up (a futex call). The stream had nothing
            // to take until now: it has not stalled, however long ago it last took bytes.
            state.progress_at = Some(Instant::now());
            self.shared.ready.notify_one();
        }
        drop(state);
        self.caught_up();
        Ok(buf.len())
    }
}

/// The most the writer hands the stream in one write: a blocking write to a pipe returns
/// only once all of it is in, so a reader's progress is seen a write at a time, and one
/// taking 10 KiB/s took 6 s per 64 KiB write, given up on as taking nothing for 5 s.
/// `PIPE_BUF` (4 KiB on Linux) is also what a pipe takes atomically.
const WRITE_STEP: usize = 4096;
/// How long the writer waits before it tries a stream that said it would block again.
const RETRY_AFTER_WOULD_BLOCK: Duration = Duration::from_millis(10);

/// Writes `batch` to `out` `WRITE_STEP` at a time, counting each write's bytes as the
/// stream's progress as they go: counted 64 KiB at a time, a reader slower than that per
/// `stall` was taken for one that reads nothing. A stream left non-blocking (by another
/// process sharing the pipe or terminal) that is full is a slow reader, tried again, not a
/// failed stream.
fn write_batch(shared: &Shared, out: &mut dyn Write, mut batch: &[u8]) -> io::Result<()> {
    while !batch.is_empty() {
        match out.write(&batch[..batch.len().min(WRITE_STEP)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let mut state = shared.lock();
                state.in_hand -= n;
                state.progress_at = Some(Instant::now());
                if state.patient_waiting {
                    shared.room.notify_one();
                }
                batch = &batch[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(RETRY_AFTER_WOULD_BLOCK);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `out.flush()`, tried again while a non-blocking stream is full (`write_batch`).
fn flush(out: &mut dyn Write) -> io::Result<()> {
    loop {
        match out.flush() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(RETRY_AFTER_WOULD_BLOCK);
            }
            done => return done,
        }
    }
}

/// The writer thread: takes everything queued at once, writes and flushes it, and repeats
/// until closed with nothing left, or until the stream refuses a write.
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
            state.in_hand = batch.len();
            state.progress_at = Some(Instant::now());
        }
        let written = write_batch(shared, out, &batch).and_then(|()| flush(out));
        batch.clear();
        // What a reader that fell behind made grow is given back once it has caught up.
        batch.shrink_to(4 * CHUNK);
        if let Err(err) = written {
            let mut state = shared.lock();
            state.failed = Some((err.kind(), err.to_string()));
            state.queued = Vec::new();
            state.in_hand = 0;
            state.finished = true;
            shared.finished.notify_all();
            shared.room.notify_all();
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

    fn gated_with(notice: Notice) -> (Output, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let (permit, permits) = mpsc::channel();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let out = Gated {
            permits,
            taken: Arc::clone(&taken),
        };
        let output = Output::start(Box::new(out), "test", notice).unwrap();
        (output, permit, taken)
    }

    /// Waits as long as any test takes.
    fn patient() -> Patience {
        Patience {
            stall: Duration::from_secs(60),
            total: Duration::from_secs(60),
        }
    }

    fn gated() -> (Output, mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        gated_with(Notice::Logged)
    }

    /// Writes line 0, waits until the writer has taken it (and is blocked writing it), then
    /// writes lines until the stream is `MAX_QUEUED` bytes behind (line 0 counts: the stream
    /// has not taken it), and `dropped` more.
    fn fill(output: &mut Output, dropped: usize) {
        output.write_all(&line(0)).unwrap();
        while !output.shared.lock().queued.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        for n in 1..(MAX_QUEUED / 1024 + dropped) {
            output.write_all(&line(n)).unwrap();
        }
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
        output.close(patient());
        let expected: Vec<u8> = (0..100).flat_map(line).collect();
        assert_eq!(*taken.lock().unwrap(), expected);
    }

    #[test]
    fn a_stalled_stdout_drops_whole_writes_beyond_the_cap_and_close_gives_up() {
        // The writer takes the first line and blocks writing it; lines then queue up to
        // MAX_QUEUED bytes behind, and the 200 lines after them are dropped.
        let (mut output, _permit, taken) = gated();
        let started = Instant::now();
        fill(&mut output, 200);
        assert_eq!(output.dropped_lines, 200);
        assert_eq!(output.shared.lock().behind(), MAX_QUEUED);
        let stall = Duration::from_millis(300);
        output.close(Patience {
            stall,
            total: Duration::from_secs(60),
        });
        assert!(started.elapsed() < stall * 10, "{:?}", started.elapsed());
        assert!(taken.lock().unwrap().is_empty());
    }

    /// A smaller write fitting under the cap where a larger one did not is no catching up: the
    /// stream has taken nothing.
    #[test]
    fn output_stays_dropped_until_the_stream_has_taken_half_the_cap() {
        let (mut output, permit, _taken) = gated();
        fill(&mut output, 0);
        // Room for half a line: a full line is dropped, and a short one that would fit is
        // not let in.
        {
            let queued = &mut output.shared.lock().queued;
            queued.truncate(queued.len() - 512);
        }
        output.write_all(&line(9)).unwrap();
        output.write_all(b"short\n").unwrap();
        assert_eq!(output.dropped_lines, 2);
        // Once the stream has taken more than half the cap, output goes in again.
        for _ in 0..=MAX_QUEUED / WRITE_STEP / 2 + 1 {
            permit.send(()).unwrap();
        }
        while output.shared.lock().behind() > MAX_QUEUED / 2 - 64 {
            thread::sleep(Duration::from_millis(1));
        }
        output.write_all(b"short\n").unwrap();
        assert_eq!(output.dropped_lines, 0);
        drop(permit);
    }

    #[test]
    fn an_inline_notice_says_what_was_dropped_once_the_stream_catches_up() {
        let plain = LogFormat { timestamps: false };
        let (mut output, permit, taken) = gated_with(Notice::Inline(plain));
        fill(&mut output, 3);
        for _ in 0..=MAX_QUEUED / WRITE_STEP + 1 {
            permit.send(()).unwrap();
        }
        // All of it taken by the stream, not only by the writer.
        while output.shared.lock().behind() > 0 {
            thread::sleep(Duration::from_millis(1));
        }
        output.write_all(b"after\n").unwrap();
        for _ in 0..2 {
            permit.send(()).unwrap();
        }
        output.close(patient());
        let taken = taken.lock().unwrap();
        let expected: Vec<u8> = (0..MAX_QUEUED / 1024).flat_map(line).collect();
        assert_eq!(taken[..expected.len()], expected[..]);
        assert_eq!(
            String::from_utf8_lossy(&taken[expected.len()..]),
            "trident: WARN: test caught up; 3 lines of its output were dropped while it was \
             behind\nafter\n"
        );
    }

    #[test]
    fn what_the_writer_holds_unwritten_counts_as_behind() {
        // MAX_QUEUED bytes queued at once: the writer takes them all and blocks on the first
        // chunk. The queue is empty, but the stream has taken nothing: a line more is dropped,
        // and nothing is said to have caught up.
        let (mut output, permit, taken) = gated();
        let all: Vec<u8> = (0..MAX_QUEUED / 1024).flat_map(line).collect();
        output.write_all(&all).unwrap();
        while !output.shared.lock().queued.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        output.write_all(b"dropped\n").unwrap();
        assert_eq!(output.dropped_lines, 1);
        // Over half written: room again, and the drop is owned up to.
        for _ in 0..=MAX_QUEUED / WRITE_STEP / 2 {
            permit.send(()).unwrap();
        }
        while output.shared.lock().behind() > MAX_QUEUED / 2 - WRITE_STEP {
            thread::sleep(Duration::from_millis(1));
        }
        output.write_all(b"kept\n").unwrap();
        assert_eq!(output.dropped_lines, 0);
        for _ in 0..MAX_QUEUED / WRITE_STEP + 2 {
            permit.send(()).unwrap();
        }
        output.close(patient());
        let taken = taken.lock().unwrap();
        assert_eq!(taken[..all.len()], all[..]);
        assert_eq!(&taken[all.len()..], b"kept\n");
    }

    #[test]
    fn a_patient_write_waits_for_a_slow_stream_instead_of_dropping() {
        // Twice MAX_QUEUED in one write, to a stream that takes a chunk every millisecond.
        let (mut output, permit, taken) = gated();
        let all: Vec<u8> = (0..2 * MAX_QUEUED / 1024).flat_map(line).collect();
        let feeder = thread::spawn(move || {
            while permit.send(()).is_ok() {
                thread::sleep(Duration::from_millis(1));
            }
        });
        output.write_patiently(&all, patient()).unwrap();
        assert_eq!(output.dropped_lines, 0);
        output.close(patient());
        assert_eq!(*taken.lock().unwrap(), all);
        feeder.join().unwrap();
    }

    /// A summary written while block output is being dropped is waited for and written
    /// whole once the stream takes again, not handed to a `write` that drops it.
    #[test]
    fn a_patient_write_while_dropping_is_written_whole() {
        let (mut output, permit, taken) = gated();
        fill(&mut output, 3);
        assert_eq!(output.dropped_lines, 3);
        let feeder = thread::spawn(move || {
            while permit.send(()).is_ok() {
                thread::sleep(Duration::from_millis(1));
            }
        });
        let summary = b"SUMMARY epoch 0 (so far)\n".repeat(10);
        output.write_patiently(&summary, patient()).unwrap();
        output.close(patient());
        feeder.join().unwrap();
        let taken = taken.lock().unwrap();
        assert!(
            taken.ends_with(&summary),
            "{:?}",
            String::from_utf8_lossy(&taken[taken.len().saturating_sub(300)..])
        );
    }

    /// A stream that has taken nothing for longer than the stall patience (dropping all the
    /// while) is not waited on by a patient write (the final summary to a wedged stdout); one
    /// that only just stopped taking still is.
    #[test]
    fn a_patient_write_does_not_wait_on_a_stream_stalled_since_dropping_began() {
        let stall = Duration::from_millis(200);
        let patience = Patience {
            stall,
            total: Duration::from_secs(60),
        };
        let (mut output, _permit, _taken) = gated();
        fill(&mut output, 1);
        let started = Instant::now();
        output.write_patiently(&line(1), patience).unwrap();
        assert!(started.elapsed() >= stall, "{:?}", started.elapsed());

        let (mut output, _permit, _taken) = gated();
        fill(&mut output, 1);
        thread::sleep(stall);
        let started = Instant::now();
        output.write_patiently(&line(1), patience).unwrap();
        assert!(started.elapsed() < stall, "{:?}", started.elapsed());
    }

    #[test]
    fn a_patient_write_gives_up_on_a_stalled_stream_and_counts_what_it_dropped() {
        let (mut output, _permit, taken) = gated();
        let all: Vec<u8> = (0..2 * MAX_QUEUED / 1024).flat_map(line).collect();
        let stall = Duration::from_millis(200);
        let patience = Patience {
            stall,
            total: Duration::from_secs(60),
        };
        let started = Instant::now();
        output.write_patiently(&all, patience).unwrap();
        let waited = started.elapsed();
        assert!(waited >= stall && waited < stall * 10, "{waited:?}");
        // The writer holds the first chunk, MAX_QUEUED bytes are behind, the rest dropped
        // in whole lines.
        assert_eq!(output.shared.lock().behind(), MAX_QUEUED);
        assert_eq!(output.dropped_lines, (MAX_QUEUED / 1024) as u64);
        // Nor does another patient write (a second summary), while the stream takes nothing.
        let again = Instant::now();
        output.write_patiently(&line(1), patience).unwrap();
        assert!(again.elapsed() < stall, "{:?}", again.elapsed());
        // Closing does not wait for the stalled stream all over again.
        let closing = Instant::now();
        output.close(patience);
        assert!(closing.elapsed() < stall, "{:?}", closing.elapsed());
        assert!(taken.lock().unwrap().is_empty());
    }

    #[test]
    fn log_lines_begin_with_the_time_in_utc() {
        let at = |secs: u64, millis: u64| {
            let now = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            let mut out = Vec::new();
            LogFormat { timestamps: true }
                .begin(&mut out, log::Level::Info, now)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        for (secs, millis, time) in [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (94_653_296, 7, "1972-12-31T12:34:56.007Z"),
            (951_868_799, 999, "2000-02-29T23:59:59.999Z"),
            (1_795_491_912, 123, "2026-11-24T03:45:12.123Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
        ] {
            assert_eq!(at(secs, millis), format!("{time} trident: INFO: "));
        }
        // Where the reader stamps lines itself (the journal): the level and message alone.
        let mut out = Vec::new();
        LogFormat { timestamps: false }
            .begin(&mut out, log::Level::Warn, SystemTime::now())
            .unwrap();
        assert_eq!(out, b"trident: WARN: ");
    }

    #[test]
    fn a_slow_stdout_is_waited_for_while_it_makes_progress() {
        let (mut output, permit, taken) = gated();
        let lines = 6 * WRITE_STEP / 1024;
        for n in 0..lines {
            output.write_all(&line(n)).unwrap();
        }
        // At least six writes (a step each), 100 ms apart: 600 ms in all, twice the stall
        // limit, but never 300 ms without progress.
        let feeder = thread::spawn(move || {
            for _ in 0..lines {
                thread::sleep(Duration::from_millis(100));
                if permit.send(()).is_err() {
                    break;
                }
            }
        });
        output.close(Patience {
            stall: Duration::from_millis(300),
            total: Duration::from_secs(60),
        });
        feeder.join().unwrap();
        assert_eq!(taken.lock().unwrap().len(), lines * 1024);
    }

    #[test]
    fn a_stream_that_trickles_is_given_up_after_the_total() {
        let (mut output, permit, taken) = gated();
        let lines = 16 * WRITE_STEP / 1024;
        for n in 0..lines {
            output.write_all(&line(n)).unwrap();
        }
        // A write every 50 ms, until the writer is gone: never a stall, but 16 writes take
        // 800 ms, twice the total.
        let feeder = thread::spawn(move || loop {
            thread::sleep(Duration::from_millis(50));
            if permit.send(()).is_err() {
                break;
            }
        });
        let started = Instant::now();
        let closed = output.closer().close_within(
            Patience {
                stall: Duration::from_millis(300),
                total: Duration::from_millis(400),
            },
            started,
        );
        let elapsed = started.elapsed();
        assert!(matches!(closed, Closed::TooSlow { .. }), "{closed:?}");
        assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
        let written = taken.lock().unwrap().len();
        assert!(written > 0 && written < lines * 1024, "{written}");
        drop(output);
        feeder.join().unwrap();
    }

    /// A stream that takes a little at each write, slowly.
    struct Trickling {
        per_write: usize,
        pause: Duration,
        /// Every other write says it would block, as a full non-blocking pipe does.
        would_block: bool,
        turn: bool,
        taken: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Trickling {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.turn = !self.turn;
            if self.would_block && self.turn {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            thread::sleep(self.pause);
            let n = buf.len().min(self.per_write);
            self.taken.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn trickling(
        per_write: usize,
        pause: Duration,
        would_block: bool,
    ) -> (Output, Arc<Mutex<Vec<u8>>>) {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let out = Trickling {
            per_write,
            pause,
            would_block,
            turn: false,
            taken: Arc::clone(&taken),
        };
        (
            Output::start(Box::new(out), "test", Notice::Logged).unwrap(),
            taken,
        )
    }

    /// Each write's bytes are progress: a reader taking 1 KiB every 20 ms (50 KiB/s) never
    /// goes 200 ms without taking something. Counted a chunk at a time (30 KiB here, 64 KiB
    /// at most), it took 600 ms per chunk and was given up on as taking nothing (hunt 75).
    #[test]
    fn a_reader_slower_than_a_chunk_per_stall_is_not_taken_for_stalled() {
        let (mut output, taken) = trickling(1024, Duration::from_millis(20), false);
        let text: Vec<u8> = (0..30).flat_map(line).collect();
        output.write_all(&text).unwrap();
        let closed = output.closer().close_within(
            Patience {
                stall: Duration::from_millis(200),
                total: Duration::from_secs(60),
            },
            Instant::now(),
        );
        assert_eq!(closed, Closed::Done);
        assert_eq!(*taken.lock().unwrap(), text);
    }

    /// A stream left non-blocking that says it would block is a full pipe, tried again: it
    /// was taken for a failed stream, and all later output was lost (hunt 75).
    #[test]
    fn a_stream_that_would_block_is_written_later_not_given_up() {
        let (mut output, taken) = trickling(4096, Duration::ZERO, true);
        let text: Vec<u8> = (0..100).flat_map(line).collect();
        output.write_all(&text).unwrap();
        output.close(patient());
        assert_eq!(*taken.lock().unwrap(), text);
    }

    /// A write that may not wait is queued whole, past the cap, unless the stream is already
    /// that far behind: then it is dropped at once (hunt 75: a SIGUSR1 summary waited for a
    /// slow reader, and thousands of exchanges went uncompared meanwhile).
    #[test]
    fn a_write_unless_behind_never_waits() {
        let (mut output, _permit, _taken) = gated();
        let started = Instant::now();
        output.write_all(&line(0)).unwrap();
        let big: Vec<u8> = (1..(MAX_QUEUED / 1024 + 10)).flat_map(line).collect();
        output.write_unless_behind(&big).unwrap();
        assert_eq!(output.dropped_lines, 0);
        assert!(output.shared.lock().behind() > MAX_QUEUED);
        output.write_unless_behind(&line(1)).unwrap();
        assert_eq!(output.dropped_lines, 1);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }

    /// A patient write and the close after it share one `total`: each had its own, and a
    /// shutdown promised 30 s took some 50 s (hunt 75).
    #[test]
    fn a_patient_write_and_the_close_share_one_total() {
        // A write every 300 ms: the total runs out between two of them.
        let (mut output, _taken) = trickling(1024, Duration::from_millis(300), false);
        let patience = Patience {
            stall: Duration::from_secs(60),
            total: Duration::from_millis(400),
        };
        let started = Instant::now();
        let text: Vec<u8> = (0..(3 * MAX_QUEUED / 1024)).flat_map(line).collect();
        output.write_patiently(&text, patience).unwrap();
        // Still taking bytes: too slow, not stalled (hunt 77: `accepted nothing for`).
        let began = output.wait_began(patience);
        let closed = output.closer().close_within(patience, began);
        assert!(matches!(closed, Closed::TooSlow { .. }), "{closed:?}");
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
    }

    /// A stream that took nothing for long and takes again, slowly, just before the final
    /// summary (a reader back at shutdown) is waited for: it was given up on at once, as if
    /// it had accepted nothing for `stall`, judged from before it took again (hunt 77).
    #[test]
    fn a_stream_that_takes_again_after_a_long_stall_is_waited_for() {
        let (mut output, permit, taken) = gated();
        fill(&mut output, 3);
        let stall = Duration::from_millis(300);
        thread::sleep(stall * 2);
        // A write now and every 100 ms for a while, never a stall; then as fast as the writer
        // goes.
        let feeder = thread::spawn(move || {
            for _ in 0..6 {
                permit.send(()).unwrap();
                thread::sleep(Duration::from_millis(100));
            }
            while permit.send(()).is_ok() {}
        });
        while taken.lock().unwrap().is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        let summary = b"SUMMARY\n".repeat(100);
        let patience = Patience {
            stall,
            total: Duration::from_secs(60),
        };
        output.write_patiently(&summary, patience).unwrap();
        output.close(patience);
        feeder.join().unwrap();
        assert!(taken.lock().unwrap().ends_with(&summary));
    }

    #[test]
    fn a_refused_write_is_returned_to_the_next_write() {
        let (mut output, permit, _taken) = gated();
        drop(permit);
        output.write_all(b"first\n").unwrap();
        // The writer ends when its write is refused.
        let mut state = output.shared.lock();
        while !state.finished {
            state = output.shared.finished.wait(state).unwrap();
        }
        drop(state);
        let refused = output.write_all(b"later\n").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::BrokenPipe);
        output.close(patient());
    }
}
