//! A reusable byte buffer for socket reads: filled from the end, consumed from the front,
//! zeroed only when it grows, so reading into it costs no allocation or memset per event.

use std::io::{self, Read};

/// Bytes read from a socket and not yet consumed. `bytes` is always fully initialised;
/// `start..end` is the unconsumed part.
#[derive(Debug, Default)]
pub struct Buffer {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

/// Outcome of one `Buffer::read_from` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were appended. `drained`: the read returned less than asked, so the
    /// socket has nothing more for now (edge-triggered readiness will fire again).
    Data { drained: bool },
    /// The peer closed its side.
    Eof,
    /// Nothing to read now.
    WouldBlock,
    /// The buffer is at its limit; consume first.
    Full,
}

impl Buffer {
    /// An empty buffer; it allocates on first use.
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Reads once from `reader` into the spare room, growing the buffer in steps of `step`
    /// bytes up to `limit` bytes of unconsumed data.
    pub fn read_from<R: Read>(
        &mut self,
        reader: &mut R,
        step: usize,
        limit: usize,
    ) -> io::Result<ReadOutcome> {
        if self.len() >= limit {
            return Ok(ReadOutcome::Full);
        }
        if self.end == self.bytes.len() {
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.bytes.len() {
                let grown = (self.bytes.len() + step).min(limit.max(self.end + 1));
                self.bytes.resize(grown, 0);
            }
        }
        let room = &mut self.bytes[self.end..];
        let asked = room.len();
        loop {
            match reader.read(room) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.end += n;
                    return Ok(ReadOutcome::Data { drained: n < asked });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Buffer storage that connections between messages do not need: an idle keep-alive
/// connection gives its storage back, a busy one borrows it, so neither allocation nor
/// zeroing happens per request, and idle connections cost only their struct.
#[derive(Debug, Default)]
pub struct Spares {
    free: Vec<Vec<u8>>,
}

impl Spares {
    /// Most storages kept; the rest are freed.
    const MAX: usize = 1024;
    /// Storages larger than this (grown for a big head) are freed, not kept.
    const KEEP_UP_TO: usize = 32 * 1024;

    /// Gives `buf` storage if it has none.
    pub fn lend(&mut self, buf: &mut Buffer) {
        if buf.bytes.is_empty() {
            if let Some(storage) = self.free.pop() {
                buf.bytes = storage;
            }
        }
    }

    /// Takes `buf`'s storage back if it holds no data.
    pub fn reclaim(&mut self, buf: &mut Buffer) {
        if !buf.is_empty() || buf.bytes.is_empty() {
            return;
        }
        let storage = std::mem::take(&mut buf.bytes);
        buf.clear();
        if storage.len() <= Self::KEEP_UP_TO && self.free.len() < Self::MAX {
            self.free.push(storage);
        }
    }
}

/// Emptied byte vectors (the heads written for each leg, a client's output between
/// responses) kept for the next exchange, so a request does not allocate new ones.
#[derive(Debug, Default)]
pub struct Scratch {
    free: Vec<Vec<u8>>,
}

impl Scratch {
    /// Most vectors kept (three per exchange in flight, for a thousand exchanges).
    const MAX: usize = 3 * 1024;
    /// Vectors grown beyond this (for an unusually large head) are freed, not kept.
    const KEEP_UP_TO: usize = 8 * 1024;

    /// An empty vector, recycled when one is at hand.
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    /// Keeps `bytes`' storage for a later `take`.
    pub fn give(&mut self, mut bytes: Vec<u8>) {
        let capacity = bytes.capacity();
        if capacity > 0 && capacity <= Self::KEEP_UP_TO && self.free.len() < Self::MAX {
            bytes.clear();
            self.free.push(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_recycles_small_vectors_only() {
        let mut scratch = Scratch::default();
        assert_eq!(scratch.take().capacity(), 0, "nothing to recycle yet");
        let mut head = Vec::with_capacity(300);
        head.extend_from_slice(b"GET / HTTP/1.1\r\n");
        scratch.give(head);
        let again = scratch.take();
        assert!(again.is_empty() && again.capacity() >= 300);
        scratch.give(Vec::with_capacity(Scratch::KEEP_UP_TO + 1));
        scratch.give(Vec::new());
        assert_eq!(
            scratch.take().capacity(),
            0,
            "oversized and empty ones are not kept"
        );
    }

    #[test]
    fn reads_consumes_and_compacts() {
        let mut buf = Buffer::new();
        let mut src: &[u8] = b"hello world";
        assert_eq!(
            buf.read_from(&mut src, 4, 64).unwrap(),
            ReadOutcome::Data { drained: false }
        );
        assert_eq!(buf.data(), b"hell");
        buf.consume(2);
        // Compacting makes room before growing.
        buf.read_from(&mut src, 4, 64).unwrap();
        assert_eq!(buf.data(), b"llo ");
        buf.consume(4);
        assert!(buf.is_empty());
        buf.read_from(&mut src, 16, 64).unwrap();
        assert_eq!(buf.data(), b"worl");
        buf.read_from(&mut src, 16, 64).unwrap();
        assert_eq!(buf.data(), b"world");
        assert_eq!(buf.read_from(&mut src, 16, 64).unwrap(), ReadOutcome::Eof);
    }

    #[test]
    fn spare_storage_moves_between_idle_and_busy_buffers() {
        let mut spares = Spares::default();
        let mut a = Buffer::new();
        let mut src: &[u8] = b"abc";
        a.read_from(&mut src, 16, 64).unwrap();
        spares.reclaim(&mut a); // holds data: kept
        assert_eq!(a.data(), b"abc");
        a.consume(3);
        spares.reclaim(&mut a);
        assert_eq!(spares.free.len(), 1);
        let mut b = Buffer::new();
        spares.lend(&mut b);
        assert_eq!(b.bytes.len(), 16);
        assert!(spares.free.is_empty());
    }

    #[test]
    fn stops_at_the_limit() {
        let mut buf = Buffer::new();
        let mut src: &[u8] = &[7u8; 100];
        while buf.read_from(&mut src, 8, 20).unwrap() != ReadOutcome::Full {}
        assert_eq!(buf.len(), 20);
    }
}
