//! A connection's byte stream: plain TCP, or TLS over TCP driven by rustls. Both give the
//! same non-blocking `Read`/`Write` interface, so the state machines never care which; TLS
//! adds only that its own bytes may wait for the socket (`wants_write`), and that a short
//! read does not mean the socket is drained (records are read one at a time).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use rustls::Connection;

/// Plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// A TCP socket and the rustls state of the TLS session on it.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    session: Connection,
    /// The TCP peer closed its side.
    eof: bool,
    /// The peer closed TCP without a close_notify: a body delimited by the close may have
    /// been cut (RFC 9112 §9.8).
    unclean_close: bool,
    /// TLS bytes written to the socket: a client's progress where its response has all gone
    /// into the session and only encrypted bytes wait.
    sent: u64,
    /// The peer does not speak TLS (`NotTls`): nothing of the session goes out any more (its
    /// alert, a close_notify), only plain text.
    not_tls: bool,
    /// A client's first byte, peeked before rustls takes it: an HTTP method's first letter
    /// is plain HTTP; anything else that is no TLS record (an SSLv2-style hello, 0x80) gets
    /// TLS's own alert.
    first_byte: Option<u8>,
}

/// A TLS failure (a bad certificate, a protocol error), carried inside an `io::Error` so the
/// I/O paths stay one; `failure::LegError::from_io` names it on the console.
#[derive(Debug)]
pub struct TlsFailure(pub rustls::Error);

impl fmt::Display for TlsFailure {
    /// A refused certificate in words (rustls says `invalid peer certificate: Other(OtherError(
    /// CaUsedAsEndEntity))`), with what to do about it; other failures as rustls says them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rustls::CertificateError as E;
        if is_not_tls(&self.0) {
            // What a plain HTTP server's answer to a ClientHello reads as.
            return f.write_str(
                "the target does not speak TLS (a plain HTTP server answers this way: is its \
                 URL meant to be http://?)",
            );
        }
        let rustls::Error::InvalidCertificate(problem) = &self.0 else {
            return write!(f, "{}", self.0);
        };
        const TRUST: &str = "--ca-file takes its CA, or the certificate itself; tls_verify=off \
                             accepts any";
        f.write_str("certificate refused: ")?;
        match problem {
            E::UnknownIssuer => write!(f, "not issued by a trusted CA ({TRUST})"),
            E::NotValidForName | E::NotValidForNameContext { .. } => f.write_str(
                "not valid for the target's host name (its subjectAltName must name it: \
                     the common name is not read; openssl -addext subjectAltName=DNS:HOST)",
            ),
            E::Expired | E::ExpiredContext { .. } => f.write_str("expired"),
            E::NotValidYet | E::NotValidYetContext { .. } => f.write_str("not valid yet"),
            E::Revoked => f.write_str("revoked"),
            E::BadSignature => f.write_str("bad signature"),
            E::BadEncoding => f.write_str("not a well-formed certificate"),
            E::UnsupportedSignatureAlgorithmContext { .. }
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => f.write_str(
                "signed with an algorithm trident does not accept (SHA-1, say; tls_verify=off \
                 accepts any)",
            ),
            E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
                f.write_str("not issued for a server (its extended key usage names other purposes)")
            }
            E::UnhandledCriticalExtension => {
                f.write_str("it has a critical extension trident does not know")
            }
            other if crate::tls::is_ca_used_as_end_entity(other) => write!(
                f,
                "a CA certificate used as the server's own, as a self-signed `openssl req \
                 -x509` one is ({TRUST})"
            ),
            E::UnknownRevocationStatus => f.write_str("its revocation status is unknown"),
            E::ExpiredRevocationList | E::ExpiredRevocationListContext { .. } => {
                f.write_str("the revocation list to check it against has expired")
            }
            E::InvalidOcspResponse => f.write_str("an invalid OCSP response"),
            E::ApplicationVerificationFailure => f.write_str("refused by the verifier"),
            E::Other(other) => write!(f, "{other}"),
            // What a later rustls adds, in its words.
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for TlsFailure {}

/// The peer's first bytes are no TLS record: not TLS at all (an `H` or a `G` is no record
/// type).
fn is_not_tls(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
    )
}

/// A client spoke plain HTTP to the TLS listener (its first byte a method's first letter,
/// where a TLS record's is its type) before any TLS byte went to it: it is answered in plain
/// text (`Transport::write_plain`), as nginx does, not with an alert it cannot read. Carried
/// inside an `io::Error`.
#[derive(Debug)]
pub struct NotTls;

impl fmt::Display for NotTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not TLS (plain HTTP to the TLS port?)")
    }
}

impl std::error::Error for NotTls {}

impl NotTls {
    /// The error is a `NotTls`.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|inner| inner.is::<NotTls>())
    }
}

impl Transport {
    /// A TLS session over `tcp` (server side for clients, client side for upstreams).
    pub fn tls(tcp: TcpStream, session: Connection) -> Transport {
        Transport::Tls(Box::new(TlsStream {
            tcp,
            session,
            eof: false,
            unclean_close: false,
            sent: 0,
            not_tls: false,
            first_byte: None,
        }))
    }

    /// The TLS peer closed without close_notify, so the end of what it sent cannot be told
    /// from a cut (false for plain TCP, where a close is all there is).
    pub fn closed_without_notify(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.unclean_close)
    }

    /// TLS bytes written to the socket so far (0 for plain TCP).
    pub fn tls_bytes_sent(&self) -> u64 {
        match self {
            Transport::Plain(_) => 0,
            Transport::Tls(tls) => tls.sent,
        }
    }

    /// Bytes the kernel holds in the socket's send queue, not yet acknowledged by the peer:
    /// it shrinks as the peer reads, even while trident writes nothing (a send buffer of
    /// megabytes takes a long time to make room for more). `None` if the kernel will not say.
    pub fn unacknowledged(&self) -> Option<u32> {
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which points to a
        // live c_int; the descriptor is this socket's, open for as long as `self` is.
        let done = unsafe {
            libc::ioctl(
                self.tcp().as_raw_fd(),
                libc::TIOCOUTQ,
                &mut queued as *mut libc::c_int,
            )
        };
        (done == 0).then(|| u32::try_from(queued).unwrap_or(0))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => &tls.tcp,
        }
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => &mut tls.tcp,
        }
    }

    /// A TLS handshake has begun and not finished: the client still has its part to send.
    pub fn mid_handshake(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.session.is_handshaking() && tls.sent > 0)
    }

    /// A TLS session whose handshake has not completed.
    pub fn handshaking(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.session.is_handshaking())
    }

    /// A short read means the socket had nothing more (only true of plain TCP).
    pub fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// TLS bytes (handshake, alerts, encrypted data) are waiting for the socket.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(tls) => tls.session.wants_write(),
        }
    }

    /// Application data sealed in the TLS session waits for the socket (its handshake's own
    /// records or an alert do not count: they answer nothing).
    pub fn owes_data(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(tls) => tls.session.wants_write() && !tls.session.is_handshaking(),
        }
    }

    /// Writes waiting TLS bytes until done or `WouldBlock` (returned as an error).
    pub fn send_pending(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(tls) => tls.send_pending(),
        }
    }

    /// Whether an idle connection is still quiet: the peer neither closed it nor sent data.
    /// TLS records that carry no data, such as a session ticket or a key update sent after
    /// the last response, are processed here and do not count; a plain socket is peeked.
    /// A peer that keeps talking past a few records is not quiet: it cannot hold the loop.
    pub fn is_quiet(&mut self) -> bool {
        const MAX_READS: usize = 16;
        let tls = match self {
            Transport::Plain(tcp) => {
                let mut probe = [0u8; 1];
                return matches!(
                    tcp.peek(&mut probe),
                    Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
                );
            }
            Transport::Tls(tls) => tls,
        };
        for _ in 0..MAX_READS {
            let state = match tls.session.process_new_packets() {
                Ok(state) => state,
                Err(_) => return false,
            };
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() || tls.eof {
                return false;
            }
            // A key update asks for one back.
            if tls.send_what_fits().is_err() {
                return false;
            }
            match tls.session.read_tls(&mut tls.tcp) {
                Ok(0) => tls.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// Makes the coming close a reset (`SO_LINGER` 0): what is unsent is dropped and the
    /// peer gets an error rather than a clean end of the stream.
    pub fn reset_on_close(&mut self) {
        let _ =
            socket2::SockRef::from(&*self.tcp_mut()).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Writes `bytes` outside any TLS session, best effort (one non-blocking write): the
    /// answer to a peer that does not speak TLS (`NotTls`).
    pub fn write_plain(&mut self, bytes: &[u8]) {
        let _ = self.tcp_mut().write(bytes);
    }

    /// Starts a TLS close (close_notify), best effort, before the socket is dropped: a client
    /// reading a close-delimited body then knows it got all of it.
    pub fn close_notify(&mut self) {
        if let Transport::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = tls.send_pending();
        }
    }
}

impl TlsStream {
    fn send_pending(&mut self) -> io::Result<()> {
        if self.not_tls {
            return Ok(());
        }
        while self.session.wants_write() {
            self.sent += self.session.write_tls(&mut self.tcp)? as u64;
        }
        Ok(())
    }

    /// Like `send_pending`, but a full socket is not an error here: what is left goes out
    /// on the next writable event.
    fn send_what_fits(&mut self) -> io::Result<()> {
        match self.send_pending() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tls = match self {
            Transport::Plain(tcp) => return tcp.read(buf),
            Transport::Tls(tls) => tls,
        };
        loop {
            match tls.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: for HTTP framing, a close, which only
                // a body delimited by the close must not take as its end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    tls.unclean_close = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            if tls.eof {
                tls.unclean_close = true;
                return Ok(0);
            }
            let server = matches!(tls.session, Connection::Server(_));
            if server && tls.first_byte.is_none() {
                let mut first = [0u8; 1];
                if let Ok(1) = tls.tcp.peek(&mut first) {
                    tls.first_byte = Some(first[0]);
                }
            }
            if tls.session.read_tls(&mut tls.tcp)? == 0 {
                tls.eof = true;
            }
            if let Err(e) = tls.session.process_new_packets() {
                // What a request may begin with: a method (a token, in any case) or the empty
                // lines before one; never a TLS record's type (0x14–0x18) nor SSLv2's 0x80.
                let plain_http = tls
                    .first_byte
                    .is_some_and(|b| crate::http::is_tchar(b) || b == b'\r' || b == b'\n');
                if is_not_tls(&e) && tls.sent == 0 && server && plain_http {
                    tls.not_tls = true;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, NotTls));
                }
                // Tell the peer why (the alert rustls queued), then fail.
                let _ = tls.send_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, TlsFailure(e)));
            }
            // The handshake may have something to answer.
            tls.send_what_fits()?;
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let tls = match self {
            Transport::Plain(tcp) => return tcp.write(buf),
            Transport::Tls(tls) => tls,
        };
        // Bytes already encrypted go first; if the socket is full, so is this stream.
        tls.send_pending()?;
        let accepted = tls.session.writer().write(buf)?;
        tls.send_what_fits()?;
        if accepted == 0 && !buf.is_empty() {
            // rustls' buffer is full (its limit keeps memory bounded): wait for the socket.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.write_vectored(bufs),
            Transport::Tls(_) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &**b);
                self.write(first)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::TlsFailure;
    use rustls::{CertificateError as E, ExtendedKeyPurpose};

    fn said(problem: E) -> String {
        TlsFailure(rustls::Error::InvalidCertificate(problem)).to_string()
    }

    #[test]
    fn refused_certificates_are_told_in_words_not_as_rust_values() {
        let rows = [
            (
                E::InvalidPurposeContext {
                    required: ExtendedKeyPurpose::ServerAuth,
                    presented: vec![ExtendedKeyPurpose::ClientAuth],
                },
                "certificate refused: not issued for a server (its extended key usage names \
                 other purposes)",
            ),
            (
                E::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![6, 9, 42, 134],
                    supported_algorithms: Vec::new(),
                },
                "certificate refused: signed with an algorithm trident does not accept (SHA-1, \
                 say; tls_verify=off accepts any)",
            ),
            (
                E::BadEncoding,
                "certificate refused: not a well-formed certificate",
            ),
        ];
        for (problem, words) in rows {
            assert_eq!(said(problem), words);
        }
        assert_eq!(
            said(E::ExpiredRevocationList),
            "certificate refused: the revocation list to check it against has expired"
        );
    }
}
