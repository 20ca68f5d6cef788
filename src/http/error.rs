//! The one error type of the framing layer.

use std::fmt;

/// Why a head or a body could not be accepted. `status()` is what a client gets for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Request line longer than `Limits::max_request_line` (414).
    RequestLineTooLong,
    /// Head larger than `Limits::max_head` (431 for requests).
    HeadTooLarge,
    /// More fields than `Limits::max_headers` (431 for requests).
    TooManyHeaders,
    /// The start line or a field line is not valid HTTP/1.x; the text says what.
    Malformed(&'static str),
    /// Content-Length is not 1*DIGIT, overflows, or appears with differing values.
    BadContentLength,
    /// Transfer-Encoding and Content-Length together, chunked not final or applied twice,
    /// or Transfer-Encoding in an HTTP/1.0 request.
    BadTransferEncoding,
    /// A transfer coding trident does not implement (501).
    UnsupportedTransferCoding,
    /// HTTP/1.1 request without Host, or with several (RFC 9112 §3.2).
    BadHost,
    /// An HTTP version other than 1.0 or 1.1 (505).
    UnsupportedVersion,
    /// Chunked framing is invalid; the text says what.
    BadChunk(&'static str),
    /// The peer closed before the body was complete.
    Truncated,
}

impl Error {
    /// The status code a client receives when its request fails this way.
    pub fn status(&self) -> u16 {
        todo!()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

impl std::error::Error for Error {}
