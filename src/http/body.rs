//! Body decoders: Content-Length, chunked (strict RFC 9112 §7.1) and read-until-close,
//! plus the chunked encoder trident uses when it re-frames a body.

use std::ops::Range;

use super::{BodyLength, Error, Limits};

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
        let _ = (length, limits);
        todo!()
    }

    /// Decodes from the start of `input`: at most one contiguous payload range per call.
    /// Call again with the unconsumed rest while `consumed > 0` and the body is not done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        let _ = input;
        todo!()
    }

    /// True once the whole body has been seen (the next input is the next message).
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// The peer closed: completes an `UntilClose` body; any other unfinished body is `Truncated`.
    pub fn finish_at_eof(&mut self) -> Result<(), Error> {
        todo!()
    }
}

/// States of the chunked decoder (RFC 9112 §7.1), one per position in the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    // implementation-defined fields
}

/// Appends the chunk-size line for a chunk of `len` payload bytes (`len` > 0).
pub fn write_chunk_head(len: usize, out: &mut Vec<u8>) {
    let _ = (len, out);
    todo!()
}

/// Ends one chunk's payload.
pub const CHUNK_TAIL: &[u8] = b"\r\n";

/// The last chunk and the empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
