//! A blocking byte reader over one `TcpStream`, shared by the test upstream and the raw
//! client: lines, exact counts, chunked bodies and read-to-EOF, written by hand so that the
//! tests judge trident's framing with code that shares nothing with it. Every read is bounded
//! in time: the client treats a read timeout as an error, the upstream treats it as a chance
//! to notice that it was told to stop.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The most a head (start line plus fields) may take before the reader calls it garbage.
const MAX_HEAD: usize = 256 * 1024;

/// A header field as it was on the wire: name and value, case kept.
pub type Field = (String, String);

/// Buffered reads over a stream, remembering the raw bytes consumed.
pub struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// `Some`: a read timeout means "check the flag and read again" (upstream side).
    /// `None`: a read timeout is an error (client side).
    stop: Option<Arc<AtomicBool>>,
    raw: Vec<u8>,
}

impl Wire {
    /// Wraps `stream`; see the `stop` field for what a read timeout means.
    pub fn new(stream: TcpStream, stop: Option<Arc<AtomicBool>>) -> Wire {
        Wire {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            stop,
            raw: Vec::new(),
        }
    }

    /// The underlying stream, for writing and socket options.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// The bytes consumed since the last call, for recording what was on the wire.
    pub fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 1024 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    match &self.stop {
                        Some(stop) if !stop.load(Ordering::SeqCst) => continue,
                        Some(_) => {
                            return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"))
                        }
                        None => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "read timed out with {} unconsumed bytes: {:?}",
                                    self.buf.len() - self.pos,
                                    preview(&self.buf[self.pos..])
                                ),
                            ))
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.raw.extend_from_slice(&out);
        self.pos += n;
        out
    }

    /// Waits for at least one byte; `Ok(false)` on a clean EOF.
    pub fn has_more(&mut self) -> io::Result<bool> {
        while self.pos == self.buf.len() {
            if self.fill()? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One line without its CRLF (a bare LF is accepted here; the caller checks strictness
    /// where it matters). `Ok(None)` on EOF before any byte of the line.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[self.pos + scanned..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = self.consume(scanned + i + 1);
                let mut line = &line[..line.len() - 1];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                return Ok(Some(String::from_utf8_lossy(line).into_owned()));
            }
            scanned = self.buf.len() - self.pos;
            if scanned > MAX_HEAD {
                return Err(invalid(format!("line longer than {MAX_HEAD} bytes")));
            }
            if self.fill()? == 0 {
                if scanned == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "EOF in the middle of a line: {:?}",
                        preview(&self.buf[self.pos..])
                    ),
                ));
            }
        }
    }

    /// A start line and its header fields. `Ok(None)` on a clean EOF before the head.
    pub fn read_head(&mut self) -> io::Result<Option<(String, Vec<Field>)>> {
        let start = match self.read_line()? {
            Some(line) => line,
            None => return Ok(None),
        };
        let mut fields = Vec::new();
        let mut size = start.len();
        loop {
            let line = self
                .read_line()?
                .ok_or_else(|| invalid("EOF inside a head".to_string()))?;
            if line.is_empty() {
                return Ok(Some((start, fields)));
            }
            size += line.len();
            if size > MAX_HEAD {
                return Err(invalid(format!("head longer than {MAX_HEAD} bytes")));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
            fields.push((name.to_string(), value.trim().to_string()));
        }
    }

    /// Exactly `n` bytes.
    pub fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos == self.buf.len() && self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {} body bytes", out.len(), n),
                ));
            }
            let take = (n - out.len()).min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.consume(take));
        }
        Ok(out)
    }

    /// Everything until the peer closes.
    pub fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if self.pos < self.buf.len() {
                let n = self.buf.len() - self.pos;
                out.extend_from_slice(&self.consume(n));
            }
            if self.fill()? == 0 {
                return Ok(out);
            }
        }
    }

    /// A chunked body, decoded; trailer fields are read and returned.
    pub fn read_chunked(&mut self) -> io::Result<(Vec<u8>, Vec<Field>)> {
        let mut body = Vec::new();
        loop {
            let line = self
                .read_line()?
                .ok_or_else(|| invalid("EOF before a chunk-size line".to_string()))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk-size line {line:?}")))?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let t = self
                        .read_line()?
                        .ok_or_else(|| invalid("EOF in the trailer section".to_string()))?;
                    if t.is_empty() {
                        return Ok((body, trailers));
                    }
                    if let Some((n, v)) = t.split_once(':') {
                        trailers.push((n.to_string(), v.trim().to_string()));
                    }
                }
            }
            body.extend_from_slice(&self.read_exact_vec(size)?);
            let end = self.read_exact_vec(2)?;
            if end != b"\r\n" {
                return Err(invalid(format!("chunk data not followed by CRLF: {end:?}")));
            }
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The first bytes of `bytes`, printable, for error messages.
pub fn preview(bytes: &[u8]) -> String {
    let cut = bytes.len().min(200);
    let mut s = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if bytes.len() > cut {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

/// The value of the first field called `name` (case-insensitive).
pub fn field<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of the fields called `name` (case-insensitive), in order.
pub fn fields_named<'a>(fields: &'a [Field], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Whether a comma-separated field (Connection, Transfer-Encoding) lists `token`.
pub fn lists_token(fields: &[Field], name: &str, token: &str) -> bool {
    fields_named(fields, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a message with these fields is chunked (chunked is the final coding).
pub fn is_chunked(fields: &[Field]) -> bool {
    fields_named(fields, "transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
}
