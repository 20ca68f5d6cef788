//! Body decoders: Content-Length, chunked (strict RFC 9112 §7.1) and read-until-close,
//! plus the chunked encoder trident uses when it re-frames a body.
//!
//! The decoders never copy and never buffer: `decode` says which bytes of the caller's input
//! are payload and how many it used up. The chunked decoder is a byte-level state machine, so
//! a chunk-size line, an extension or a trailer section may be split across reads anywhere and
//! an endless extension or trailer costs a counter, not memory. Whatever follows the end of a
//! body is left untouched: it belongs to the next message on the connection.

use std::ops::Range;

use super::{is_tchar, BodyLength, Error, Limits};

/// The result of one `BodyDecoder::decode` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used up (framing and payload); the caller drops them.
    pub consumed: usize,
    /// Where the payload bytes produced by this call lie within the input (may be empty).
    pub data: Range<usize>,
}

/// Incremental body decoder; feed it bytes in any split, it yields payload ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// This many payload bytes still to come.
    Length { remaining: u64 },
    /// Chunked framing in progress.
    Chunked(ChunkedDecoder),
    /// Everything until EOF is payload.
    UntilClose,
    /// The body is complete; further input belongs to the next message.
    Done,
}

impl BodyDecoder {
    /// A decoder for a body framed as `length` says.
    pub fn new(length: BodyLength, limits: &Limits) -> BodyDecoder {
        match length {
            BodyLength::Empty | BodyLength::Length(0) => BodyDecoder::Done,
            BodyLength::Length(n) => BodyDecoder::Length { remaining: n },
            BodyLength::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits)),
            BodyLength::UntilClose => BodyDecoder::UntilClose,
        }
    }

    /// Decodes from the start of `input`: at most one contiguous payload range per call.
    /// Call again with the unconsumed rest while `consumed > 0` and the body is not done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        match self {
            BodyDecoder::Length { remaining } => {
                let take = clamp_to_input(*remaining, input.len());
                // `take <= remaining`, so this cannot underflow.
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Decoded {
                    consumed: take,
                    data: 0..take,
                })
            }
            BodyDecoder::Chunked(chunked) => {
                let decoded = chunked.decode(input)?;
                if chunked.is_done() {
                    *self = BodyDecoder::Done;
                }
                Ok(decoded)
            }
            BodyDecoder::UntilClose => Ok(Decoded {
                consumed: input.len(),
                data: 0..input.len(),
            }),
            BodyDecoder::Done => Ok(Decoded {
                consumed: 0,
                data: 0..0,
            }),
        }
    }

    /// True once the whole body has been seen (the next input is the next message).
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// The peer closed: completes an `UntilClose` body; any other unfinished body is `Truncated`.
    pub fn finish_at_eof(&mut self) -> Result<(), Error> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            BodyDecoder::Length { .. } | BodyDecoder::Chunked(_) => Err(Error::Truncated),
        }
    }
}

/// How many of `available` input bytes a body with `remaining` bytes to go may take.
fn clamp_to_input(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |remaining| remaining.min(available))
}

/// States of the chunked decoder (RFC 9112 §7.1), one per position in the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkedState,
    /// `Limits::max_chunk_extension`: bytes allowed between the size and the CR of one line.
    max_extension: usize,
    /// `Limits::max_head`: bytes allowed in the whole trailer section.
    max_trailer: usize,
}

/// Where the chunked decoder stands in the grammar:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkedState {
    /// Reading the hex digits of a chunk-size (`digits` of them so far).
    Size { size: u64, digits: u8 },
    /// Whitespace after the size, which only a `;` may follow (BWS before a chunk-ext).
    SizeSpace { size: u64, ext_len: usize },
    /// Inside the chunk extensions, up to the CR; `ext_len` counts toward the cap.
    Extension { size: u64, ext_len: usize },
    /// The CR of the size line was seen; the LF must follow.
    SizeLf { size: u64 },
    /// This many payload bytes of the current chunk still to come.
    Data { remaining: u64 },
    /// The chunk's payload is complete; its CR must follow.
    DataCr,
    /// The CR after the payload was seen; the LF must follow.
    DataLf,
    /// At the start of a trailer field line, or of the final empty line.
    TrailerLineStart { total: usize },
    /// Inside a trailer field's name, which a colon must end.
    TrailerName { total: usize },
    /// Inside a trailer field's value (discarded).
    TrailerLine { total: usize },
    /// The CR of a trailer field line was seen; the LF must follow.
    TrailerLf { total: usize },
    /// The CR of the final empty line was seen; the LF ends the body.
    EndLf,
    /// The whole chunked body has been read.
    Done,
}

/// At most 16 hex digits: any such size fits in a u64, so no overflow check is needed after.
const MAX_SIZE_DIGITS: u8 = 16;

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, bounded by `limits`.
    pub fn new(limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkedState::Size { size: 0, digits: 0 },
            max_extension: limits.max_chunk_extension,
            max_trailer: limits.max_head,
        }
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkedState::Done
    }

    /// Decodes from the start of `input`, as `BodyDecoder::decode` does.
    ///
    /// Framing bytes are consumed one at a time; payload bytes in one slice. After a payload
    /// range, the framing that follows is consumed too (so that a body ending in this input is
    /// reported done at once), but not the next chunk's payload. A framing error right after a
    /// payload range is reported on the next call, so the valid payload before it is never lost
    /// and the outcome does not depend on how the input was split.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        let mut pos = 0;
        let mut data = 0..0;
        while pos < input.len() {
            match self.state {
                ChunkedState::Done => break,
                ChunkedState::Data { remaining } => {
                    if !data.is_empty() {
                        break;
                    }
                    let take = clamp_to_input(remaining, input.len() - pos);
                    data = pos..pos + take;
                    pos += take;
                    // `take <= remaining` and `take > 0` here.
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        ChunkedState::DataCr
                    } else {
                        ChunkedState::Data { remaining }
                    };
                }
                state => match self.step(state, input[pos]) {
                    Ok(next) => {
                        self.state = next;
                        pos += 1;
                    }
                    Err(err) if data.is_empty() => return Err(err),
                    Err(_) => break,
                },
            }
        }
        Ok(Decoded {
            consumed: pos,
            data,
        })
    }

    /// The state after framing byte `b` in `state` (never called in `Data` or `Done`).
    fn step(&self, state: ChunkedState, b: u8) -> Result<ChunkedState, Error> {
        use ChunkedState::*;
        let next = match state {
            Size { size, digits } => match hex_value(b) {
                Some(_) if digits == MAX_SIZE_DIGITS => return Err(bad("chunk size too long")),
                Some(v) => Size {
                    size: (size << 4) | u64::from(v),
                    digits: digits + 1,
                },
                // RFC 9112 §7.1: chunk-size = 1*HEXDIG; no sign, `0x`, `_` or leading space.
                None if digits == 0 => return Err(bad("chunk size is not hex")),
                None => match b {
                    b' ' | b'\t' => SizeSpace {
                        size,
                        ext_len: self.extension_len(0)?,
                    },
                    b';' => Extension {
                        size,
                        ext_len: self.extension_len(0)?,
                    },
                    b'\r' => SizeLf { size },
                    b'\n' => return Err(bad("bare LF after chunk size")),
                    _ => return Err(bad("chunk size is not hex")),
                },
            },
            // BWS is only allowed before a chunk-ext, so whitespace must lead to a `;`.
            SizeSpace { size, ext_len } => match b {
                b' ' | b'\t' => SizeSpace {
                    size,
                    ext_len: self.extension_len(ext_len)?,
                },
                b';' => Extension {
                    size,
                    ext_len: self.extension_len(ext_len)?,
                },
                _ => return Err(bad("whitespace after chunk size")),
            },
            // RFC 9112 §7.1.1: cap the extension; no CTL but HTAB (so no CR, LF or NUL in it).
            Extension { size, ext_len } => match b {
                b'\r' => SizeLf { size },
                b'\t' | b' '..=b'~' | 0x80..=0xff => Extension {
                    size,
                    ext_len: self.extension_len(ext_len)?,
                },
                _ => return Err(bad("control character in chunk extension")),
            },
            SizeLf { size } => match b {
                b'\n' if size == 0 => TrailerLineStart { total: 0 },
                b'\n' => Data { remaining: size },
                _ => return Err(bad("bare CR in chunk size line")),
            },
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            DataLf => match b {
                b'\n' => Size { size: 0, digits: 0 },
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            // Trailer fields are discarded, but each line must still be a field line (RFC 9112
            // §7.1.2: `field-name ":" field-value`, no obs-fold) ending in CRLF exactly: a
            // peer that reads the line otherwise must not be handed the rest of the stream.
            TrailerLineStart { total } => match b {
                b'\r' => EndLf,
                _ if is_tchar(b) => TrailerName {
                    total: self.trailer_len(total)?,
                },
                b' ' | b'\t' => return Err(bad("folded line in trailer section")),
                b'\n' => return Err(bad("bare LF in trailer section")),
                _ => return Err(bad("bad trailer field name")),
            },
            TrailerName { total } => match b {
                b':' => TrailerLine {
                    total: self.trailer_len(total)?,
                },
                _ if is_tchar(b) => TrailerName {
                    total: self.trailer_len(total)?,
                },
                b'\r' | b'\n' => return Err(bad("trailer field without a colon")),
                _ => return Err(bad("bad trailer field name")),
            },
            TrailerLine { total } => match b {
                b'\r' => TrailerLf {
                    total: self.trailer_len(total)?,
                },
                _ => self.trailer_byte(total, b)?,
            },
            TrailerLf { total } => match b {
                b'\n' => TrailerLineStart {
                    total: self.trailer_len(total)?,
                },
                _ => return Err(bad("bare CR in trailer section")),
            },
            EndLf => match b {
                b'\n' => Done,
                _ => return Err(bad("bare CR in trailer section")),
            },
            Data { .. } | Done => state,
        };
        Ok(next)
    }

    /// One more byte of chunk extension (counting the BWS and `;` before it).
    fn extension_len(&self, ext_len: usize) -> Result<usize, Error> {
        let ext_len = ext_len + 1;
        if ext_len > self.max_extension {
            return Err(bad("chunk extension too long"));
        }
        Ok(ext_len)
    }

    /// One more byte of trailer section.
    fn trailer_len(&self, total: usize) -> Result<usize, Error> {
        let total = total + 1;
        if total > self.max_trailer {
            return Err(bad("trailer section too large"));
        }
        Ok(total)
    }

    /// A byte of a trailer field line other than its CR.
    fn trailer_byte(&self, total: usize, b: u8) -> Result<ChunkedState, Error> {
        match b {
            b'\n' => Err(bad("bare LF in trailer section")),
            b'\t' | b' '..=b'~' | 0x80..=0xff => Ok(ChunkedState::TrailerLine {
                total: self.trailer_len(total)?,
            }),
            _ => Err(bad("control character in trailer section")),
        }
    }
}

fn bad(detail: &'static str) -> Error {
    Error::BadChunk(detail)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the chunk-size line for a chunk of `len` payload bytes (`len` > 0).
pub fn write_chunk_head(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; (usize::BITS / 4) as usize];
    let mut start = digits.len();
    let mut rest = len;
    loop {
        start -= 1;
        digits[start] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
    out.extend_from_slice(b"\r\n");
}

/// Ends one chunk's payload.
pub const CHUNK_TAIL: &[u8] = b"\r\n";

/// The last chunk and the empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// What feeding a whole input to a decoder came to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Outcome {
        /// The body ended; `rest` is what was left for the next message.
        Done { payload: Vec<u8>, rest: Vec<u8> },
        /// The input ended inside the body.
        Partial { payload: Vec<u8> },
        /// A framing error, after this much valid payload.
        Failed { payload: Vec<u8>, err: Error },
    }

    fn done(payload: &[u8], rest: &[u8]) -> Outcome {
        Outcome::Done {
            payload: payload.to_vec(),
            rest: rest.to_vec(),
        }
    }

    fn partial(payload: &[u8]) -> Outcome {
        Outcome::Partial {
            payload: payload.to_vec(),
        }
    }

    fn failed(payload: &[u8], detail: &'static str) -> Outcome {
        Outcome::Failed {
            payload: payload.to_vec(),
            err: Error::BadChunk(detail),
        }
    }

    /// Feeds `pieces` one after the other as a connection would (unconsumed bytes stay at the
    /// front of its buffer), checking the `Decoded` contract on every call.
    fn feed(length: BodyLength, limits: &Limits, pieces: &[&[u8]]) -> Outcome {
        let mut decoder = BodyDecoder::new(length, limits);
        let mut buf: Vec<u8> = Vec::new();
        let mut payload = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            while !decoder.is_done() {
                let decoded = match decoder.decode(&buf) {
                    Ok(decoded) => decoded,
                    Err(err) => return Outcome::Failed { payload, err },
                };
                assert!(decoded.consumed <= buf.len(), "{decoded:?}");
                assert!(decoded.data.start <= decoded.data.end, "{decoded:?}");
                assert!(decoded.data.end <= decoded.consumed, "{decoded:?}");
                assert_eq!(
                    decoded.consumed == 0,
                    buf.is_empty(),
                    "consumed 0 only for empty input: {decoded:?}"
                );
                payload.extend_from_slice(&buf[decoded.data]);
                buf.drain(..decoded.consumed);
                if decoded.consumed == 0 {
                    break;
                }
            }
        }
        if decoder.is_done() {
            Outcome::Done { payload, rest: buf }
        } else {
            Outcome::Partial { payload }
        }
    }

    fn small_limits() -> Limits {
        Limits {
            max_chunk_extension: 8,
            max_head: 16,
            ..Limits::default()
        }
    }

    /// (limits, input, outcome): the chunked grammar of RFC 9112 §7.1, row by row.
    fn chunked_rows() -> Vec<(Limits, &'static [u8], Outcome)> {
        let d = Limits::default();
        let s = small_limits();
        vec![
            // Valid bodies.
            (d, b"0\r\n\r\n", done(b"", b"")),
            (d, b"5\r\nhello\r\n0\r\n\r\n", done(b"hello", b"")),
            (
                d,
                b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
                done(b"hello", b"GET / HTTP/1.1\r\n"),
            ),
            (
                d,
                b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n1\r\n!\r\n0\r\n\r\n",
                done(b"abc0123456789abcdef!", b""),
            ),
            (
                d,
                b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
                done(b"01234567890123456789", b""),
            ),
            (d, b"005\r\nhello\r\n0000\r\n\r\n", done(b"hello", b"")),
            (
                d,
                b"0000000000000005\r\nhello\r\n0\r\n\r\n",
                done(b"hello", b""),
            ),
            (
                d,
                b"5;name=value\r\nhello\r\n0;last\r\n\r\n",
                done(b"hello", b""),
            ),
            (d, b"5 ;a=b\r\nhello\r\n0\t;c\r\n\r\n", done(b"hello", b"")),
            (
                d,
                b"5;a=\"b\tc\"\r\nhello\r\n0\r\n\r\n",
                done(b"hello", b""),
            ),
            (d, b"5;a=\xff\r\nhello\r\n0\r\n\r\n", done(b"hello", b"")),
            (
                d,
                b"2\r\nhi\r\n0\r\nX-Sum: 1\r\nY: \t2\r\n\r\nnext",
                done(b"hi", b"next"),
            ),
            (s, b"1;abcdefg\r\nx\r\n0\r\n\r\n", done(b"x", b"")),
            (s, b"0\r\nX: 123456789\r\n\r\n", done(b"", b"")),
            // Incomplete bodies.
            (d, b"", partial(b"")),
            (d, b"5", partial(b"")),
            (d, b"5;ext", partial(b"")),
            (d, b"5\r\nhel", partial(b"hel")),
            (d, b"5\r\nhello\r", partial(b"hello")),
            (d, b"5\r\nhello\r\n0\r\nX: 1\r\n", partial(b"hello")),
            (d, b"0\r\n\r", partial(b"")),
            (d, b"ffffffffffffffff\r\nabc", partial(b"abc")),
            // Chunk sizes: 1*HEXDIG, at most 16 digits.
            (
                d,
                b"0x5\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (
                d,
                b"+5\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (
                d,
                b"-5\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (
                d,
                b"5_0\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (
                d,
                b" 5\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (
                d,
                b"\r\nhello\r\n0\r\n\r\n",
                failed(b"", "chunk size is not hex"),
            ),
            (d, b";ext\r\n", failed(b"", "chunk size is not hex")),
            (d, b"5g\r\nhello\r\n", failed(b"", "chunk size is not hex")),
            (
                d,
                b"00000000000000005\r\nhello\r\n",
                failed(b"", "chunk size too long"),
            ),
            (
                d,
                b"10000000000000000\r\n",
                failed(b"", "chunk size too long"),
            ),
            (
                d,
                b"5 \r\nhello\r\n0\r\n\r\n",
                failed(b"", "whitespace after chunk size"),
            ),
            (
                d,
                b"5 x\r\nhello\r\n",
                failed(b"", "whitespace after chunk size"),
            ),
            // Size lines end in CRLF exactly.
            (
                d,
                b"5\nhello\r\n0\r\n\r\n",
                failed(b"", "bare LF after chunk size"),
            ),
            (
                d,
                b"5\rhello\r\n0\r\n\r\n",
                failed(b"", "bare CR in chunk size line"),
            ),
            (
                d,
                b"2\r\nhi\r\n0\n\r\n",
                failed(b"hi", "bare LF after chunk size"),
            ),
            // Extensions: no CTL but HTAB, bounded.
            (
                d,
                b"5;a\rb\r\nhello\r\n0\r\n\r\n",
                failed(b"", "bare CR in chunk size line"),
            ),
            (
                d,
                b"5;a\nhello\r\n0\r\n\r\n",
                failed(b"", "control character in chunk extension"),
            ),
            (
                d,
                b"5;a\0b\r\nhello\r\n",
                failed(b"", "control character in chunk extension"),
            ),
            (
                d,
                b"5;a\x7f\r\nhello\r\n",
                failed(b"", "control character in chunk extension"),
            ),
            (
                s,
                b"1;abcdefgh\r\nx\r\n0\r\n\r\n",
                failed(b"", "chunk extension too long"),
            ),
            (
                s,
                b"1        ;a\r\nx\r\n",
                failed(b"", "chunk extension too long"),
            ),
            // Chunk data is followed by CRLF exactly.
            (
                d,
                b"5\r\nhello\n0\r\n\r\n",
                failed(b"hello", "chunk data not followed by CRLF"),
            ),
            (
                d,
                b"5\r\nhello\r0\r\n\r\n",
                failed(b"hello", "chunk data not followed by CRLF"),
            ),
            (
                d,
                b"5\r\nhelloXX\r\n0\r\n\r\n",
                failed(b"hello", "chunk data not followed by CRLF"),
            ),
            (
                d,
                b"2\r\nhi\r\n3\r\nabc0\r\n\r\n",
                failed(b"hiabc", "chunk data not followed by CRLF"),
            ),
            // Trailer section: field lines ending in CRLF, no CTL, bounded.
            (d, b"0\r\n\n", failed(b"", "bare LF in trailer section")),
            (
                d,
                b"0\r\nX-Sum\r\n\r\n",
                failed(b"", "trailer field without a colon"),
            ),
            (
                d,
                b"0\r\nX-Sum\n\r\n",
                failed(b"", "trailer field without a colon"),
            ),
            (
                d,
                b"0\r\nX Sum: 1\r\n\r\n",
                failed(b"", "bad trailer field name"),
            ),
            (
                d,
                b"0\r\n: 1\r\n\r\n",
                failed(b"", "bad trailer field name"),
            ),
            (
                d,
                b"0\r\nX: 1\r\n 2\r\n\r\n",
                failed(b"", "folded line in trailer section"),
            ),
            (
                d,
                b"0\r\nX: 1\n\r\n",
                failed(b"", "bare LF in trailer section"),
            ),
            (d, b"0\r\n\rX", failed(b"", "bare CR in trailer section")),
            (
                d,
                b"0\r\nX: 1\rY: 2\r\n\r\n",
                failed(b"", "bare CR in trailer section"),
            ),
            (
                d,
                b"0\r\nX: \x01\r\n\r\n",
                failed(b"", "control character in trailer section"),
            ),
            (
                s,
                b"0\r\nX: 1234567890123\r\n\r\n",
                failed(b"", "trailer section too large"),
            ),
        ]
    }

    #[test]
    fn chunked_bodies_whole() {
        for (limits, input, expected) in chunked_rows() {
            assert_eq!(
                feed(BodyLength::Chunked, &limits, &[input]),
                expected,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunked_bodies_split_at_every_offset() {
        for (limits, input, expected) in chunked_rows() {
            for at in 0..=input.len() {
                let (head, tail) = input.split_at(at);
                assert_eq!(
                    feed(BodyLength::Chunked, &limits, &[head, tail]),
                    expected,
                    "input {:?} split at {at}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn chunked_bodies_byte_by_byte() {
        for (limits, input, expected) in chunked_rows() {
            let pieces: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(
                feed(BodyLength::Chunked, &limits, &pieces),
                expected,
                "input {:?} byte by byte",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn chunked_yields_one_payload_range_per_call() {
        let input = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\nrest";
        let mut decoder = BodyDecoder::new(BodyLength::Chunked, &Limits::default());
        // The first call stops where the second chunk's payload begins.
        let first = decoder.decode(input).unwrap();
        assert_eq!(
            first,
            Decoded {
                consumed: 11,
                data: 3..6
            }
        );
        assert!(!decoder.is_done());
        // The second call takes that payload and all the framing up to the end of the body.
        let second = decoder.decode(&input[11..]).unwrap();
        assert_eq!(
            second,
            Decoded {
                consumed: 10,
                data: 0..3
            }
        );
        assert!(decoder.is_done());
        // Done: the rest belongs to the next message.
        assert_eq!(
            decoder.decode(b"rest").unwrap(),
            Decoded {
                consumed: 0,
                data: 0..0
            }
        );
    }

    #[test]
    fn chunked_error_after_payload_is_reported_on_the_next_call() {
        let mut decoder = BodyDecoder::new(BodyLength::Chunked, &Limits::default());
        let first = decoder.decode(b"5\r\nhello\nX").unwrap();
        assert_eq!(
            first,
            Decoded {
                consumed: 8,
                data: 3..8
            }
        );
        assert_eq!(
            decoder.decode(b"\nX"),
            Err(Error::BadChunk("chunk data not followed by CRLF"))
        );
    }

    /// (length, input, outcome) for the other framings.
    fn other_rows() -> Vec<(BodyLength, &'static [u8], Outcome)> {
        vec![
            (BodyLength::Empty, b"", done(b"", b"")),
            (
                BodyLength::Empty,
                b"GET / HTTP/1.1\r\n",
                done(b"", b"GET / HTTP/1.1\r\n"),
            ),
            (BodyLength::Length(0), b"next", done(b"", b"next")),
            (BodyLength::Length(5), b"hello", done(b"hello", b"")),
            (BodyLength::Length(5), b"helloGET", done(b"hello", b"GET")),
            (BodyLength::Length(5), b"hel", partial(b"hel")),
            (BodyLength::Length(5), b"", partial(b"")),
            (BodyLength::Length(u64::MAX), b"abc", partial(b"abc")),
            (BodyLength::UntilClose, b"", partial(b"")),
            (
                BodyLength::UntilClose,
                b"0\r\n\r\nanything",
                partial(b"0\r\n\r\nanything"),
            ),
        ]
    }

    #[test]
    fn other_bodies_in_any_split() {
        let limits = Limits::default();
        for (length, input, expected) in other_rows() {
            assert_eq!(
                feed(length, &limits, &[input]),
                expected,
                "{length:?} {input:?}"
            );
            for at in 0..=input.len() {
                let (head, tail) = input.split_at(at);
                assert_eq!(
                    feed(length, &limits, &[head, tail]),
                    expected,
                    "{length:?} {input:?} at {at}"
                );
            }
            let pieces: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(
                feed(length, &limits, &pieces),
                expected,
                "{length:?} {input:?} bytewise"
            );
        }
    }

    #[test]
    fn new_decoder_per_length() {
        let limits = Limits::default();
        let rows = [
            (BodyLength::Empty, true),
            (BodyLength::Length(0), true),
            (BodyLength::Length(1), false),
            (BodyLength::Chunked, false),
            (BodyLength::UntilClose, false),
        ];
        for (length, is_done) in rows {
            assert_eq!(
                BodyDecoder::new(length, &limits).is_done(),
                is_done,
                "{length:?}"
            );
        }
    }

    #[test]
    fn end_of_input_completes_only_until_close_bodies() {
        let limits = Limits::default();
        let rows: [(BodyLength, &[u8], Result<(), Error>); 8] = [
            (BodyLength::UntilClose, b"", Ok(())),
            (BodyLength::UntilClose, b"abc", Ok(())),
            (BodyLength::Empty, b"", Ok(())),
            (BodyLength::Length(3), b"abc", Ok(())),
            (BodyLength::Length(3), b"ab", Err(Error::Truncated)),
            (BodyLength::Chunked, b"0\r\n\r\n", Ok(())),
            (BodyLength::Chunked, b"1\r\na\r\n", Err(Error::Truncated)),
            (BodyLength::Chunked, b"0\r\n\r", Err(Error::Truncated)),
        ];
        for (length, input, expected) in rows {
            let mut decoder = BodyDecoder::new(length, &limits);
            let mut rest = input;
            while !rest.is_empty() && !decoder.is_done() {
                let decoded = decoder.decode(rest).unwrap();
                rest = &rest[decoded.consumed..];
            }
            assert_eq!(decoder.finish_at_eof(), expected, "{length:?} {input:?}");
            if expected.is_ok() {
                assert!(decoder.is_done());
            }
        }
    }

    #[test]
    fn chunk_heads_are_lowercase_hex() {
        let rows: [(usize, &[u8]); 6] = [
            (1, b"1\r\n"),
            (10, b"a\r\n"),
            (15, b"f\r\n"),
            (16, b"10\r\n"),
            (255, b"ff\r\n"),
            (0xabcdef, b"abcdef\r\n"),
        ];
        for (len, expected) in rows {
            let mut out = b"prefix".to_vec();
            write_chunk_head(len, &mut out);
            assert_eq!(&out[6..], expected, "{len}");
        }
        let mut out = Vec::new();
        write_chunk_head(usize::MAX, &mut out);
        assert_eq!(out, format!("{:x}\r\n", usize::MAX).into_bytes());
    }

    #[test]
    fn encoder_output_decodes_to_the_same_payload() {
        let payloads: [&[u8]; 3] = [b"a", b"hello world", &[0u8; 300]];
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for payload in payloads {
            write_chunk_head(payload.len(), &mut wire);
            wire.extend_from_slice(payload);
            wire.extend_from_slice(CHUNK_TAIL);
            expected.extend_from_slice(payload);
        }
        wire.extend_from_slice(LAST_CHUNK);
        assert_eq!(
            feed(BodyLength::Chunked, &Limits::default(), &[&wire]),
            done(&expected, b"")
        );
    }
}
