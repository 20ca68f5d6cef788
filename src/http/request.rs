//! Request heads: parse and check what a client sent, and serialise what each leg gets.

use super::{BodyLength, Error, Limits, Version};

/// A client request head, checked and reduced to what trident forwards and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: Version,
    /// The Host field value, if any.
    pub host: Option<String>,
    /// How the request body is framed: `Empty`, `Length(n)` or `Chunked` (never `UntilClose`).
    pub body: BodyLength,
    /// The client wants the connection kept after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The end-to-end field lines to forward, `Name: value\r\n` each, in the client's order and
    /// case, without hop-by-hop fields (Connection and the fields it names, Keep-Alive,
    /// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade), Content-Length and Expect.
    pub fields: Vec<u8>,
    /// Bytes of input the head took (through the empty line).
    pub head_len: usize,
}

impl RequestHead {
    /// True for methods that are safe to send twice (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        todo!()
    }

    /// Appends the head one upstream leg receives: `METHOD target HTTP/1.1`, the forwarded
    /// fields, `extra` fields (name, value) after them, and the framing trident chose
    /// (`Content-Length: n` or `Transfer-Encoding: chunked`), then the empty line.
    pub fn write_upstream_head(&self, extra: &[(&str, &str)], out: &mut Vec<u8>) {
        let _ = (extra, out);
        todo!()
    }
}

/// Parses the request head at the start of `buf`.
/// `Ok(None)`: not complete yet (and within limits). `Err`: reject the request with
/// `err.status()` and close the connection.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, Error> {
    let _ = (buf, limits);
    todo!()
}
