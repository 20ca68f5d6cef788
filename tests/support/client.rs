//! A raw HTTP/1.1 client: writes exactly the bytes a test gives it and parses what comes
//! back by hand (Content-Length, chunked, close-delimited; interim 1xx heads collected
//! separately), keeping unread bytes between responses so pipelined answers can be read
//! one after the other. Every read and write times out after 5 s.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::wire::{self, Field, Wire};

/// Per read and per write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How the body of a response the client read was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    ContentLength,
    Chunked,
    CloseDelimited,
}

/// One final response as the client read it.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In order, case kept.
    pub headers: Vec<Field>,
    /// Decoded body.
    pub body: Vec<u8>,
    pub framing: BodyFraming,
    /// Interim (1xx) heads that came before it: (status, reason, fields).
    pub interim: Vec<(u16, String, Vec<Field>)>,
}

impl ClientResponse {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::field(&self.headers, name)
    }

    /// Every value of `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        wire::fields_named(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection.
pub struct Client {
    wire: Wire,
}

impl Client {
    /// Connects with 5 s read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to trident at {addr}: {e}"));
        Client::from_stream(stream)
    }

    /// A client on a stream already connected, with 5 s read and write timeouts.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let _ = stream.set_nodelay(true);
        Client {
            wire: Wire::new(stream, None),
        }
    }

    /// Changes the read timeout (the deadline for each read).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.wire
            .stream()
            .set_read_timeout(Some(timeout))
            .expect("timeout");
    }

    /// A second handle on the connection, to write from another thread while this one
    /// reads (with a 5 s write timeout).
    pub fn writer(&mut self) -> TcpStream {
        self.wire
            .stream()
            .try_clone()
            .expect("clone the client's stream")
    }

    /// Writes all of `bytes` in one go.
    pub fn send(&mut self, bytes: &[u8]) {
        self.wire
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("sending {} bytes to trident: {e}", bytes.len()));
    }

    /// Reads one final response (skipping and collecting 1xx heads); panics on error.
    pub fn read_response(&mut self, head_request: bool) -> ClientResponse {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("reading a response from trident: {e}"))
    }

    /// Sends `request` and reads its response.
    pub fn exchange(&mut self, request: &[u8]) -> ClientResponse {
        let head = request.starts_with(b"HEAD ");
        self.send(request);
        self.read_response(head)
    }

    /// Reads one final response, or says why it could not.
    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<ClientResponse> {
        let mut interim = Vec::new();
        loop {
            let (start, headers) = self.wire.read_head()?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )
            })?;
            let mut parts = start.splitn(3, ' ');
            let version = parts.next().unwrap_or("").to_string();
            let status: u16 = parts.next().unwrap_or("").parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {start:?}"),
                )
            })?;
            let reason = parts.next().unwrap_or("").to_string();
            if !version.starts_with("HTTP/1.") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {start:?}"),
                ));
            }
            if (100..200).contains(&status) {
                interim.push((status, reason, headers));
                continue;
            }
            let (body, framing) = if head_request || status == 204 || status == 304 {
                (Vec::new(), BodyFraming::None)
            } else if wire::is_chunked(&headers) {
                (self.wire.read_chunked()?.0, BodyFraming::Chunked)
            } else if let Some(cl) = wire::field(&headers, "content-length") {
                let n: usize = cl.parse().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad Content-Length {cl:?}"),
                    )
                })?;
                (self.wire.read_exact_vec(n)?, BodyFraming::ContentLength)
            } else {
                (self.wire.read_to_eof()?, BodyFraming::CloseDelimited)
            };
            self.wire.take_raw();
            return Ok(ClientResponse {
                version,
                status,
                reason,
                headers,
                body,
                framing,
                interim,
            });
        }
    }

    /// Reads exactly one head (interim or final) and nothing after it: (status, reason, fields).
    pub fn read_head(&mut self) -> io::Result<(u16, String, Vec<Field>)> {
        let (start, headers) = self.wire.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a head",
            )
        })?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {start:?}"),
            )
        })?;
        let reason = parts.next().unwrap_or("").to_string();
        self.wire.take_raw();
        Ok((status, reason, headers))
    }

    /// Asserts that the server closes the connection without sending anything more.
    pub fn expect_closed(&mut self) {
        match self.wire.has_more() {
            Ok(false) => {}
            Ok(true) => panic!(
                "expected the connection closed, got more bytes: {:?}",
                wire::preview(self.wire.buffered())
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection closed: {e}"),
        }
    }

    /// Reads whatever arrives until EOF (or an error), for responses that are cut short.
    pub fn read_until_closed(&mut self) -> io::Result<Vec<u8>> {
        self.wire.read_to_eof()
    }

    /// Half-closes the connection (no more requests).
    pub fn shutdown_write(&mut self) {
        let _ = self.wire.stream().shutdown(std::net::Shutdown::Write);
    }
}

/// A request with a Content-Length body (the header is added when the body is not empty or
/// the method usually has one).
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `GET target` with `Host: test.local`.
pub fn get(target: &str) -> Vec<u8> {
    request("GET", target, &[("Host", "test.local")], b"")
}

/// A request with a chunked body cut into `sizes` (cycled).
pub fn chunked_request(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sizes: &[usize],
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
    let mut out = out.into_bytes();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let take = sizes[i % sizes.len()].max(1).min(rest.len());
        out.extend_from_slice(format!("{take:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..take]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[take..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
