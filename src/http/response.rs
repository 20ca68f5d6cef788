//! Response heads: parse what an upstream sent (per request method), and serialise the head
//! the client receives.

use super::{BodyLength, Error, Limits, Version};

/// An upstream response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    /// Body framing, already decided per request method (HEAD, 1xx, 204, 304: `Empty`).
    pub body: BodyLength,
    /// The upstream connection may carry another request after this response.
    pub keep_alive: bool,
    /// End-to-end field lines, `Name: value\r\n` each, in order and case, without hop-by-hop
    /// fields and without Content-Length / Transfer-Encoding (trident frames the message).
    pub fields: Vec<u8>,
    /// Bytes of input the head took.
    pub head_len: usize,
}

impl ResponseHead {
    /// An interim (1xx) response: another head follows on the same connection.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// How trident frames a body towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (and no framing field), e.g. a HEAD or 304 response.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by closing the connection (no framing field).
    Close,
}

/// What the client is told about the connection after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Say nothing (HTTP/1.1 default: persistent).
    Default,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Parses the response head at the start of `buf`. `head_request`: the request was HEAD,
/// so the response has no body whatever its fields say.
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
    head_request: bool,
) -> Result<Option<ResponseHead>, Error> {
    let _ = (buf, limits, head_request);
    todo!()
}

/// Appends `HTTP/1.1 status reason`, `fields`, the framing field and the connection field,
/// then the empty line.
pub fn write_response_head(
    status: u16,
    reason: &str,
    fields: &[u8],
    framing: Framing,
    connection: Connection,
    out: &mut Vec<u8>,
) {
    let _ = (status, reason, fields, framing, connection, out);
    todo!()
}
