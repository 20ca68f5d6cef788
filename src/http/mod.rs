//! HTTP/1.1 framing without sockets: request and response heads, body decoders and the
//! serialisation of the heads trident forwards. Fed bytes, it says what they mean; it never
//! reads or writes a socket, so it can be unit-tested and fuzzed alone.
//!
//! httparse only tokenizes; every framing decision (RFC 9112 §6) is made here, strictly,
//! so that trident and its three upstreams always agree on where a message ends.

pub mod body;
mod error;
pub mod request;
pub mod response;
pub mod stream;

pub use body::{BodyDecoder, Decoded};
pub use error::Error;
pub use request::{
    field_values, find_field, may_complete_head, parse_request_head, FieldRule, LegHead,
    RequestHead,
};
pub(crate) use request::{is_tchar, is_valid_authority};
pub use response::{parse_response_head, write_response_head, Connection, Framing, ResponseHead};

/// The protocol version of a message (only HTTP/1.x is spoken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as it appears on the wire (`HTTP/1.1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How a message body is delimited (RFC 9112 §6.3), decided once from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body at all (a request without framing headers, HEAD/1xx/204/304 responses).
    Empty,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// A response read until the upstream closes (RFC 9112 §6.3 item 8).
    UntilClose,
}

/// Size limits on what trident will parse; exceeding one is an error, never a reallocation spiral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (RFC 9112 §3: 414 beyond it).
    pub max_request_line: usize,
    /// Largest head (start line plus fields) in bytes (431 beyond it).
    pub max_head: usize,
    /// Most header fields in one head (431 beyond it).
    pub max_headers: usize,
    /// Longest chunk extension on one chunk-size line (RFC 9112 §7.1.1).
    pub max_chunk_extension: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 64 * 1024,
            max_headers: 100,
            max_chunk_extension: 1024,
        }
    }
}
