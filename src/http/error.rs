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
        match self {
            Error::RequestLineTooLong => 414,
            Error::HeadTooLarge | Error::TooManyHeaders => 431,
            Error::UnsupportedTransferCoding => 501,
            Error::UnsupportedVersion => 505,
            Error::Malformed(_)
            | Error::BadContentLength
            | Error::BadTransferEncoding
            | Error::BadHost
            | Error::BadChunk(_)
            | Error::Truncated => 400,
        }
    }
}

impl fmt::Display for Error {
    // These texts reach the console as `malformed response: <text>`: short, lowercase, stable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RequestLineTooLong => f.write_str("request line too long"),
            Error::HeadTooLarge => f.write_str("head too large"),
            Error::TooManyHeaders => f.write_str("too many header fields"),
            Error::Malformed(detail) => f.write_str(detail),
            Error::BadContentLength => f.write_str("invalid Content-Length"),
            Error::BadTransferEncoding => f.write_str("invalid Transfer-Encoding"),
            Error::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            Error::BadHost => f.write_str("missing or repeated Host"),
            Error::UnsupportedVersion => f.write_str("unsupported HTTP version"),
            Error::BadChunk(detail) => write!(f, "invalid chunk: {detail}"),
            Error::Truncated => f.write_str("truncated body"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_text_per_error() {
        let rows: [(Error, u16, &str); 12] = [
            (Error::RequestLineTooLong, 414, "request line too long"),
            (Error::HeadTooLarge, 431, "head too large"),
            (Error::TooManyHeaders, 431, "too many header fields"),
            (Error::Malformed("bare LF in head"), 400, "bare LF in head"),
            (Error::BadContentLength, 400, "invalid Content-Length"),
            (Error::BadTransferEncoding, 400, "invalid Transfer-Encoding"),
            (
                Error::UnsupportedTransferCoding,
                501,
                "unsupported transfer coding",
            ),
            (Error::BadHost, 400, "missing or repeated Host"),
            (Error::UnsupportedVersion, 505, "unsupported HTTP version"),
            (
                Error::BadChunk("size is not hex"),
                400,
                "invalid chunk: size is not hex",
            ),
            (Error::BadChunk(""), 400, "invalid chunk: "),
            (Error::Truncated, 400, "truncated body"),
        ];
        for (err, status, text) in rows {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.to_string(), text, "{err:?}");
        }
    }
}
