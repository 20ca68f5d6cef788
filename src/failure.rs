//! Why a leg did not produce a complete response. The `Display` texts are part of the
//! console contract (`RESPONSE 7 candidate => error: connection refused`): keep them here,
//! short and stable.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::http;
use crate::transport::TlsFailure;

/// A leg's failure, as the console names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegError {
    /// Nothing listens at the target.
    ConnectionRefused,
    /// The TCP connection was not established within the connect deadline.
    ConnectTimeout(Duration),
    /// The whole exchange missed the leg's deadline.
    Timeout(Duration),
    /// The upstream reset the connection.
    ConnectionReset,
    /// The upstream closed before its response was complete.
    ClosedEarly,
    /// A reused connection answered `408 Request Timeout` first thing: the upstream's idle
    /// timeout crossed the request, which it never read.
    IdleTimeout,
    /// The response is not valid HTTP/1.x.
    Malformed(http::Error),
    /// A shadow leg fell too far behind the primary and was cut.
    Overflow,
    /// The client went away before its request was complete, so the request cannot be sent.
    ClientClosed,
    /// The client sent none of the rest of its request body for `--send-timeout`.
    ClientStalled(Duration),
    /// A shadow still waiting on the client's upload when the primary failed: the client got
    /// its error and was let go of, so the rest of the body never comes (not the shadow's
    /// doing, nor the client's).
    UploadCut,
    /// The primary of a client that had left, still read for the comparison, was cut to
    /// serve a new client at `--max-clients` (the new client's doing, not the upstream's).
    MadeRoom,
    /// The TLS session with an https target failed (a certificate it would not accept,
    /// a protocol error).
    Tls(String),
    /// Any other socket error, by its OS description.
    Io(String),
    /// A shadow's host name has no addresses yet (the log says why); nothing was sent.
    Unresolved,
}

impl LegError {
    /// Classifies a socket error from connect, read or write.
    pub fn from_io(err: &io::Error) -> LegError {
        if let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsFailure>())
        {
            return LegError::Tls(tls.to_string());
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => LegError::ConnectionRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => LegError::ConnectionReset,
            io::ErrorKind::UnexpectedEof => LegError::ClosedEarly,
            _ => LegError::Io(err.to_string()),
        }
    }

    /// Said of a connection whose handshake never completed: this address cannot be reached
    /// now, so the host name's next address may be (the request was not sent). A leg out of
    /// time, or cut for another reason, is not a failure of the address.
    pub fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            LegError::ConnectionRefused
                | LegError::ConnectTimeout(_)
                | LegError::ConnectionReset
                | LegError::Io(_)
        )
    }

    /// The status the client gets when the primary fails this way before any byte reached it.
    pub fn gateway_status(&self) -> u16 {
        match self {
            LegError::Timeout(_) | LegError::ConnectTimeout(_) => 504,
            // The client's own doing (it closed its side mid-body, or stopped sending it):
            // not the upstream's.
            LegError::ClientClosed => 400,
            LegError::ClientStalled(_) => 408,
            _ => 502,
        }
    }
}

impl fmt::Display for LegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegError::ConnectionRefused => f.write_str("connection refused"),
            LegError::ConnectTimeout(d) => write!(f, "connect timeout after {}ms", d.as_millis()),
            LegError::Timeout(d) => write!(f, "timeout after {}ms", d.as_millis()),
            LegError::ConnectionReset => f.write_str("connection reset"),
            LegError::ClosedEarly => f.write_str("closed before response complete"),
            LegError::IdleTimeout => f.write_str("408 on a reused connection (its idle timeout)"),
            LegError::Malformed(e) => write!(f, "malformed response: {e}"),
            LegError::Overflow => f.write_str("overflow"),
            LegError::ClientClosed => f.write_str("client closed before request complete"),
            LegError::UploadCut => f.write_str("upload cut: the primary failed before it ended"),
            LegError::MadeRoom => f.write_str("cut to serve a new client (this one had left)"),
            LegError::ClientStalled(d) => {
                write!(f, "client sent none of its upload for {}ms", d.as_millis())
            }
            LegError::Tls(e) => write!(f, "tls: {e}"),
            LegError::Io(e) => write!(f, "io: {e}"),
            LegError::Unresolved => f.write_str("unresolved host name"),
        }
    }
}

impl std::error::Error for LegError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_names_are_stable() {
        let rows: [(LegError, &str); 8] = [
            (LegError::ConnectionRefused, "connection refused"),
            (
                LegError::Timeout(Duration::from_millis(1500)),
                "timeout after 1500ms",
            ),
            (LegError::ConnectionReset, "connection reset"),
            (LegError::ClosedEarly, "closed before response complete"),
            (LegError::Overflow, "overflow"),
            (
                LegError::ConnectTimeout(Duration::from_millis(1000)),
                "connect timeout after 1000ms",
            ),
            (LegError::Unresolved, "unresolved host name"),
            (
                LegError::MadeRoom,
                "cut to serve a new client (this one had left)",
            ),
        ];
        for (err, text) in rows {
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn timeouts_are_504_everything_else_502() {
        assert_eq!(
            LegError::Timeout(Duration::from_secs(1)).gateway_status(),
            504
        );
        assert_eq!(LegError::ConnectionRefused.gateway_status(), 502);
        assert_eq!(
            LegError::Malformed(http::Error::Truncated).gateway_status(),
            502
        );
    }
}
