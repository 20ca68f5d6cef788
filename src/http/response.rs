//! Response heads: parse what an upstream sent (per request method), and serialise the head
//! the client receives.
//!
//! The body length of a response depends on the request (HEAD) and on the status, so it is
//! decided here, once, by the steps of RFC 9112 §6.3 in order. A response trident cannot frame
//! unambiguously is an error (the leg is reported `malformed response: ...` and its connection
//! closed), never a guess. Nothing here touches a socket.

use std::mem::MaybeUninit;
use std::time::Duration;

use super::request::{
    find_head, header_slots, map_httparse_error, push_content_length, push_decimal, start_line,
    version_error, ContentLength, FieldSummary, MAX_HEADER_SLOTS,
};
use super::{BodyLength, Error, Limits, Version};

/// An upstream response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    /// Body framing, already decided per request method (HEAD, 1xx, 204, 304: `Empty`).
    pub body: BodyLength,
    /// A valid Content-Length the upstream declared, even where no body follows (a HEAD or
    /// 304 response says how long the body would be; RFC 9110 §8.6).
    pub declared_length: Option<u64>,
    /// The upstream connection may carry another request after this response.
    pub keep_alive: bool,
    /// How long the upstream keeps the connection open while idle, as its
    /// `Keep-Alive: timeout=N` says (seconds; RFC 2068 §19.7.1.1).
    pub idle_timeout: Option<Duration>,
    /// A final response that announces a body it must not carry (to HEAD; a 204 or 304).
    /// Its connection is not reused, and is closed with a reset: trident closes first, and
    /// a TIME_WAIT per such response would use up local ports at a few hundred a second.
    pub unsent_body: bool,
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

    /// How trident frames this response's body towards a client speaking `client`
    /// (RFC 9112 §6.3): HEAD and 304 keep the length they declare, with no body; a body
    /// delimited by chunks or by close is re-chunked for HTTP/1.1 and close-delimited for
    /// HTTP/1.0, which does not understand chunked.
    pub fn client_framing(&self, client: Version) -> Framing {
        match (self.body, self.declared_length, client) {
            (BodyLength::Empty, Some(n), _) if self.status != 204 => Framing::Length(n),
            (BodyLength::Empty, _, _) => Framing::None,
            (BodyLength::Length(n), _, _) => Framing::Length(n),
            (BodyLength::Chunked | BodyLength::UntilClose, _, Version::Http11) => Framing::Chunked,
            (BodyLength::Chunked | BodyLength::UntilClose, _, Version::Http10) => Framing::Close,
        }
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
    let bounds = match find_head(buf, limits, None) {
        Ok(Some(bounds)) => bounds,
        // Not whole, or refused for what came after the status line's start: a start that
        // cannot become a status line (an SSH or SMTP banner, a TLS alert: a target on the
        // wrong port) fails now, not at the deadline as a timeout that held the leg's
        // connection and place until then; and first, so that the same bytes get the same
        // error however they arrive.
        found => {
            status_line_error(buf, limits)?;
            return found.map(|_| None);
        }
    };
    let head = &buf[..bounds.len];

    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADER_SLOTS];
    let mut response = httparse::Response::new(&mut []);
    match parse(head, &mut response, &mut slots[..header_slots(limits)]) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(Error::Malformed("invalid response head")),
        Err(err) => return Err(parse_error(err, head)),
    }
    let (Some(minor), Some(status), Some(reason)) =
        (response.version, response.code, response.reason)
    else {
        return Err(Error::Malformed("invalid status line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    // RFC 9110 §15: every valid status code is within 100..=599.
    if !(100..=599).contains(&status) {
        return Err(Error::Malformed("invalid status code"));
    }
    // trident never asks for an upgrade (it strips Upgrade), so a 101 is a broken upstream.
    if status == 101 {
        return Err(Error::Malformed("unexpected 101 Switching Protocols"));
    }
    let headers: &[httparse::Header<'_>] = response.headers;
    let summary = FieldSummary::gather(headers, head.len());

    let body = response_body_length(head_request, status, &summary)?;

    // RFC 9112 §9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`. A body
    // delimited by close ends the connection; RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0
    // message is faulty framing, so the connection is not reused after it.
    //
    // A final response that announces a body it must not carry (to HEAD; a 204 or 304) is
    // not followed by another request either: an upstream that answers HEAD like GET may
    // write that body late, after the next request went out, and it would be read as the
    // answer to that request, another client's (a reflected value becomes their response).
    // What it costs is a connection per such response. A HEAD answered with no framing at
    // all is one too: to GET, the same head would start a body that ends at the close.
    let announces_unsent_body = !(100..200).contains(&status)
        && body == BodyLength::Empty
        && (summary.codings.present
            || matches!(summary.content_length, ContentLength::Valid(n) if n > 0)
            || (head_request
                && status != 204
                && status != 304
                && summary.content_length == ContentLength::Absent));
    let keep_alive = !summary.close
        && (version == Version::Http11 || summary.keep_alive)
        && body != BodyLength::UntilClose
        && !(version == Version::Http10 && summary.codings.present)
        && !announces_unsent_body;

    // httparse gives an empty reason for one with obs-text (bytes from 0x80, RFC 9112 §4):
    // taken from the line itself when it is UTF-8 (`Échec`), which goes out as it came.
    // Other bytes (Latin-1) stay out: a reason is informational, and a String holds UTF-8.
    let reason = if reason.is_empty() {
        let line = &head[bounds.start..bounds.first_line_end];
        line.get(STATUS_LINE_PREFIX..)
            .and_then(|raw| std::str::from_utf8(raw).ok())
            // No C1 controls, line separators (U+0085, U+2028) or bidirectional overrides:
            // the reason is printed in each exchange's block, whose lines a reader splits
            // and reads as they are.
            .filter(|text| {
                !text.chars().any(|c| {
                    c.is_control()
                        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                })
            })
            .unwrap_or("")
    } else {
        reason
    };

    Ok(Some(ResponseHead {
        version,
        status,
        reason: reason.to_owned(),
        body,
        declared_length: match summary.content_length {
            ContentLength::Valid(n) => Some(n),
            _ => None,
        },
        keep_alive,
        idle_timeout: summary.keep_alive_timeout.map(Duration::from_secs),
        unsent_body: announces_unsent_body,
        head_len: head.len(),
        fields: summary.forwarded_fields(headers),
    }))
}

/// `HTTP/1.1 200 `: what comes before the reason phrase in a status line httparse accepted.
const STATUS_LINE_PREFIX: usize = 13;

/// The length of a response body, by RFC 9112 §6.3, step by step.
fn response_body_length(
    head_request: bool,
    status: u16,
    summary: &FieldSummary<'_>,
) -> Result<BodyLength, Error> {
    let codings = &summary.codings;
    // 1. A response to HEAD, any 1xx, 204 or 304 ends at the end of its head, whatever its
    //    fields say.
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyLength::Empty);
    }
    // 2. A 2xx to CONNECT switches to a tunnel: trident never forwards CONNECT, so no step.
    // 3. Transfer-Encoding with Content-Length: a smuggling signal. The RFC lets a recipient
    //    follow Transfer-Encoding; trident refuses the response and closes.
    if codings.present && summary.content_length != ContentLength::Absent {
        return Err(Error::BadTransferEncoding);
    }
    if codings.present {
        // 4. Transfer-Encoding: chunked as the final coding (and applied once, §6.1) frames
        //    the body. Any other coding is refused, as nginx does: trident strips TE, so no
        //    upstream was offered one (RFC 9112 §7.4), and a client would get the coded bytes
        //    under a `chunked`-only label, or none at all over HTTP/1.0.
        if codings.invalid || codings.chunked > 1 {
            return Err(Error::BadTransferEncoding);
        }
        if codings.other {
            return Err(Error::UnsupportedTransferCoding);
        }
        return Ok(BodyLength::Chunked);
    }
    match summary.content_length {
        // 5. An invalid Content-Length (not 1*DIGIT, overflowing, differing values) is an
        //    unrecoverable error: the proxy discards the response and closes.
        ContentLength::Invalid => Err(Error::BadContentLength),
        // 6. A valid Content-Length is the body length.
        ContentLength::Valid(n) => Ok(BodyLength::Length(n)),
        // 7. (Requests only: no framing means no body.)
        // 8. Otherwise the body runs until the server closes the connection.
        ContentLength::Absent => Ok(BodyLength::UntilClose),
    }
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
    out.reserve(reason.len() + fields.len() + 80);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(fields);
    match framing {
        Framing::Length(n) => push_content_length(out, n),
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
    match connection {
        Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Connection::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Connection::Default => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn parse<'h, 'b>(
    head: &'b [u8],
    response: &mut httparse::Response<'h, 'b>,
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> httparse::Result<usize> {
    httparse::ParserConfig::default().parse_response_with_uninit_headers(response, head, slots)
}

/// trident's error for what httparse found wrong in `head` (whole or a start).
fn parse_error(err: httparse::Error, head: &[u8]) -> Error {
    match err {
        // The version is the first word of the status line.
        httparse::Error::Version => version_error(first_word(head)),
        err => map_httparse_error(err, "invalid status line"),
    }
}

/// The start line's first word, after any empty lines.
fn first_word(head: &[u8]) -> &[u8] {
    let (line, _) = start_line(head, head.len());
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    &line[..end]
}

/// What the start of a response head that is not whole shows wrong in its status line,
/// judged on that line alone: httparse reads it byte by byte, so a prefix fails for the same
/// reason as all of it. A version starting `HTTP/` is judged once its word has ended
/// (`HTTP/2` may yet be `HTTP/2x`); anything else cannot become one.
fn status_line_error(buf: &[u8], limits: &Limits) -> Result<(), Error> {
    let (line, with_end) = start_line(buf, limits.max_head);
    let ended = with_end.len() > line.len();
    match parse(with_end, &mut httparse::Response::new(&mut []), &mut []) {
        Ok(_) => Ok(()),
        Err(httparse::Error::Version)
            if !ended && !line.contains(&b' ') && line.starts_with(b"HTTP/") =>
        {
            Ok(())
        }
        Err(err) => Err(parse_error(err, line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8], head_request: bool) -> Result<Option<ResponseHead>, Error> {
        parse_response_head(input, &Limits::default(), head_request)
    }

    const fn malformed(detail: &'static str) -> Result<BodyLength, Error> {
        Err(Error::Malformed(detail))
    }

    /// (request was HEAD, input, body length or error): RFC 9112 §6.3 step by step.
    const FRAMING: &[(bool, &[u8], Result<BodyLength, Error>)] = &[
        // 1. HEAD, 1xx, 204, 304: no body whatever the fields say.
        (
            true,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (
            true,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (true, b"HTTP/1.1 200 OK\r\n\r\n", Ok(BodyLength::Empty)),
        (
            false,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (
            false,
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (
            false,
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (
            false,
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyLength::Empty),
        ),
        (
            false,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            malformed("unexpected 101 Switching Protocols"),
        ),
        // 3. Transfer-Encoding with Content-Length.
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        // 4. Transfer-Encoding: chunked, once and alone; any other coding is refused.
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Ok(BodyLength::Chunked),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\tChunked\r\n\r\n",
            Ok(BodyLength::Chunked),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
            malformed("invalid header field name"),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
            malformed("invalid header field value"),
        ),
        // 5. and 6. Content-Length.
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyLength::Length(5)),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            Ok(BodyLength::Length(0)),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Ok(BodyLength::Length(5)),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyLength::Length(5)),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        // 8. Neither: until close.
        (
            false,
            b"HTTP/1.1 200 OK\r\n\r\n",
            Ok(BodyLength::UntilClose),
        ),
        (
            false,
            b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n",
            Ok(BodyLength::UntilClose),
        ),
        // Status lines.
        (
            false,
            b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
            Ok(BodyLength::Length(0)),
        ),
        (
            false,
            b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
            Ok(BodyLength::Length(0)),
        ),
        (
            false,
            b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            Ok(BodyLength::Length(0)),
        ),
        (
            false,
            b"HTTP/1.1 2000 OK\r\n\r\n",
            malformed("invalid status line"),
        ),
        (
            false,
            b"HTTP/1.1 20 OK\r\n\r\n",
            malformed("invalid status line"),
        ),
        (
            false,
            b"HTTP/1.1 OK\r\n\r\n",
            malformed("invalid status line"),
        ),
        (
            false,
            b"HTTP/1.1 099 Low\r\n\r\n",
            malformed("invalid status code"),
        ),
        (
            false,
            b"HTTP/1.1 600 High\r\n\r\n",
            malformed("invalid status code"),
        ),
        (
            false,
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            malformed("invalid status line"),
        ),
        (
            false,
            b"HTTP/2 200 OK\r\n\r\n",
            Err(Error::UnsupportedVersion),
        ),
        (
            false,
            b"HTTP/1.2 200 OK\r\n\r\n",
            Err(Error::UnsupportedVersion),
        ),
        (
            false,
            b"ICY 200 OK\r\n\r\n",
            malformed("invalid HTTP version"),
        ),
        // Line ends and field lines.
        (
            false,
            b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            malformed("bare LF in head"),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
            malformed("bare LF in head"),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            malformed("bare CR in head"),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n",
            malformed("invalid header field name"),
        ),
        (
            false,
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            malformed("invalid header field name"),
        ),
    ];

    #[test]
    fn framing_per_rfc_9112_section_6_3() {
        for (head_request, input, expected) in FRAMING {
            let got = parse(input, *head_request).map(|head| head.map(|head| head.body));
            assert_eq!(
                got,
                expected.clone().map(Some),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Every prefix of a head is incomplete or the final verdict; bytes after a complete head
    /// never change it (the head parser's shotgun test).
    #[test]
    fn prefixes_are_incomplete_or_final_and_suffixes_do_not_matter() {
        for (head_request, input, _) in FRAMING {
            let full = parse(input, *head_request);
            for end in 0..input.len() {
                let prefix = parse(&input[..end], *head_request);
                assert!(
                    prefix == Ok(None) || prefix == full,
                    "{:?} at {end}: {prefix:?} vs {full:?}",
                    String::from_utf8_lossy(input)
                );
            }
            let mut longer = input.to_vec();
            longer.extend_from_slice(b"HTTP/1.1 200 OK\n\r\n");
            assert_eq!(parse(&longer, *head_request), full);
        }
    }

    /// A start that cannot become a status line fails before its head is whole: a banner of
    /// another protocol is often one line, and then it waits for the client.
    #[test]
    fn a_start_that_is_not_http_fails_before_the_head_ends() {
        let foreign: [(&[u8], Error); 6] = [
            (
                b"SSH-2.0-OpenSSH_9.6\r\n",
                Error::Malformed("invalid HTTP version"),
            ),
            (
                b"220 mail ESMTP\r\n",
                Error::Malformed("invalid HTTP version"),
            ),
            (
                b"\x15\x03\x01\x00\x02\x02\x46",
                Error::Malformed("invalid HTTP version"),
            ),
            (b"\r\nhello", Error::Malformed("invalid HTTP version")),
            (b"HTTP/2 200 OK\r\n", Error::UnsupportedVersion),
            (
                b"HTTP/1.1 2x0 OK\r\nContent-",
                Error::Malformed("invalid status line"),
            ),
        ];
        for (input, error) in foreign {
            assert_eq!(
                parse(input, false),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Still an HTTP start, or a version not yet ended: wait for more.
        let pending: [&[u8]; 6] = [
            b"",
            b"HTT",
            b"\r\nHTTP/1.",
            b"HTTP/2",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A",
        ];
        for input in pending {
            assert_eq!(
                parse(input, false),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The reason phrase as sent: ASCII, UTF-8 obs-text; Latin-1 obs-text, and UTF-8 with
    /// C1 controls, line separators or bidirectional overrides, is left out.
    #[test]
    fn reason_phrases() {
        let rows: [(&[u8], &str); 8] = [
            (b"HTTP/1.1 200 OK\xE2\x80\xAEKO\r\n\r\n", ""),
            (b"HTTP/1.1 418 a\xC2\x85b\r\n\r\n", ""),
            (b"HTTP/1.1 418 a\xE2\x80\xA8b\r\n\r\n", ""),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", "Not Found"),
            (b"HTTP/1.1 404  Not  Found \r\n\r\n", " Not  Found "),
            (b"HTTP/1.1 418 \xC3\x89chec\r\n\r\n", "\u{c9}chec"),
            (b"HTTP/1.1 404 Nicht gefunden \xFC\r\n\r\n", ""),
            (b"HTTP/1.1 204 \r\n\r\n", ""),
        ];
        for (input, reason) in rows {
            let head = parse(input, false).unwrap().unwrap();
            assert_eq!(head.reason, reason, "{:?}", String::from_utf8_lossy(input));
        }
    }

    /// An upstream's `Keep-Alive: timeout=N`, which the pool keeps idle connections by.
    #[test]
    fn keep_alive_timeouts() {
        let rows: [(&[u8], Option<u64>); 11] = [
            (b"timeout=5, max=100", Some(5)),
            // Two lines are one list; of two timeouts the least.
            (b"timeout=5\r\nKeep-Alive: max=100", Some(5)),
            (b"max=100, timeout=9\r\nKeep-Alive: timeout=2", Some(2)),
            (b"max=100,timeout=75", Some(75)),
            (b"Timeout = \"3\"", Some(3)),
            (b"timeout=0", Some(0)),
            (b"timeout=", None),
            (b"timeout=5s", None),
            (b"timeout=-1", None),
            (b"timeout=1234567890", None),
            (b"max=5", None),
        ];
        for (value, seconds) in rows {
            let mut input = b"HTTP/1.1 200 OK\r\nKeep-Alive: ".to_vec();
            input.extend_from_slice(value);
            input.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            let head = parse(&input, false).unwrap().unwrap();
            let expected = seconds.map(Duration::from_secs);
            assert_eq!(
                head.idle_timeout,
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
            // Keep-Alive is hop-by-hop: never forwarded.
            assert_eq!(head.fields, b"");
        }
    }

    #[test]
    fn complete_head_fields() {
        let input = b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(
            parse(input, false).unwrap().unwrap(),
            ResponseHead {
                version: Version::Http11,
                status: 201,
                reason: "Created".into(),
                body: BodyLength::Length(2),
                declared_length: Some(2),
                keep_alive: true,
                idle_timeout: None,
                unsent_body: false,
                fields: b"Location: /x\r\n".to_vec(),
                head_len: input.len() - 2,
            }
        );
    }

    #[test]
    fn head_and_304_responses_keep_their_declared_length() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        let head = parse(input, true).unwrap().unwrap();
        assert_eq!(head.body, BodyLength::Empty);
        assert_eq!(head.declared_length, Some(1234));
        let input = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
        let head = parse(input, false).unwrap().unwrap();
        assert_eq!(
            (head.body, head.declared_length),
            (BodyLength::Empty, Some(10))
        );
    }

    #[test]
    fn interim_response_then_final() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let interim = parse(input, false).unwrap().unwrap();
        assert!(interim.is_interim());
        assert_eq!(interim.head_len, 25);
        let last = parse(&input[interim.head_len..], false).unwrap().unwrap();
        assert!(!last.is_interim());
        assert_eq!(last.body, BodyLength::Length(2));
    }

    /// (request was HEAD, input, keep_alive): RFC 9112 §9.3, never after a close-delimited body.
    #[test]
    fn persistence() {
        let rows: [(bool, &[u8], bool); 18] = [
            // A body announced but not sent (HEAD, 204, 304) might still come, late.
            (true, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            (true, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                true,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            (
                false,
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false,
            ),
            (false, b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", true),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                false,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
            (
                false,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                false,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: x, CLOSE\r\n\r\n",
                false,
            ),
            (false, b"HTTP/1.1 200 OK\r\n\r\n", false),
            (
                false,
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n",
                false,
            ),
            // HEAD answered with no framing, as GET with a body ending at the close: not
            // reused (the body may come late, as the next request's answer).
            (true, b"HTTP/1.1 200 OK\r\n\r\n", false),
            (true, b"HTTP/1.1 204 No Content\r\n\r\n", true),
            (true, b"HTTP/1.1 304 Not Modified\r\n\r\n", true),
            (false, b"HTTP/1.1 204 No Content\r\n\r\n", true),
            (
                false,
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            (
                false,
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                false,
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
                false,
            ),
        ];
        for (head_request, input, keep_alive) in rows {
            let head = parse(input, head_request).unwrap().unwrap();
            assert_eq!(
                head.keep_alive,
                keep_alive,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// (input, forwarded fields): hop-by-hop and framing fields removed, order and case kept.
    #[test]
    fn forwarded_fields() {
        let rows: [(&[u8], &[u8]); 3] = [
            (
                b"HTTP/1.1 200 OK\r\nDate: d\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
                  X-Hop: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nContent-type: text/plain\r\n\r\n",
                b"Date: d\r\nContent-type: text/plain\r\n",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n",
                b"Set-Cookie: a=1\r\nset-cookie: b=2\r\n",
            ),
            (b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nProxy-Connection: close\r\n\r\n", b"ETag: \"x\"\r\n"),
        ];
        for (input, fields) in rows {
            let head = parse(input, false).unwrap().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&head.fields),
                String::from_utf8_lossy(fields)
            );
        }
    }

    #[test]
    fn limits() {
        let head = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
        let limits = |max_head, max_headers| Limits {
            max_head,
            max_headers,
            ..Limits::default()
        };
        type HeadLenOrError = Result<Option<usize>, Error>;
        let rows: [(Limits, &[u8], HeadLenOrError); 6] = [
            (limits(head.len(), 2), head, Ok(Some(head.len()))),
            (limits(head.len() - 1, 2), head, Err(Error::HeadTooLarge)),
            (limits(head.len(), 1), head, Err(Error::TooManyHeaders)),
            (limits(8, 2), b"HTTP/1.1", Ok(None)),
            (limits(8, 2), b"HTTP/1.1 ", Err(Error::HeadTooLarge)),
            // No request-line limit applies to a status line.
            (
                Limits {
                    max_request_line: 4,
                    ..Limits::default()
                },
                head,
                Ok(Some(head.len())),
            ),
        ];
        for (limits, input, expected) in rows {
            let got = parse_response_head(input, &limits, false).map(|h| h.map(|h| h.head_len));
            assert_eq!(
                got,
                expected,
                "{limits:?} {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// (status, reason, framing, connection, what the client receives).
    #[test]
    fn client_heads() {
        let fields = b"Date: d\r\n";
        let rows: [(u16, &str, Framing, Connection, &[u8]); 6] = [
            (
                200,
                "OK",
                Framing::Length(12),
                Connection::Default,
                b"HTTP/1.1 200 OK\r\nDate: d\r\nContent-Length: 12\r\n\r\n",
            ),
            (
                200,
                "OK",
                Framing::Chunked,
                Connection::Close,
                b"HTTP/1.1 200 OK\r\nDate: d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            ),
            (
                304,
                "Not Modified",
                Framing::None,
                Connection::KeepAlive,
                b"HTTP/1.1 304 Not Modified\r\nDate: d\r\nConnection: keep-alive\r\n\r\n",
            ),
            (
                200,
                "OK",
                Framing::Close,
                Connection::Close,
                b"HTTP/1.1 200 OK\r\nDate: d\r\nConnection: close\r\n\r\n",
            ),
            (
                404,
                "",
                Framing::Length(0),
                Connection::Default,
                b"HTTP/1.1 404 \r\nDate: d\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                100,
                "Continue",
                Framing::None,
                Connection::Default,
                b"HTTP/1.1 100 Continue\r\nDate: d\r\n\r\n",
            ),
        ];
        for (status, reason, framing, connection, expected) in rows {
            let mut out = b"earlier".to_vec();
            write_response_head(status, reason, fields, framing, connection, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out[7..]),
                String::from_utf8_lossy(expected)
            );
            // What the client receives parses back with the same status and fields.
            let again = parse(&out[7..], false).unwrap().unwrap();
            assert_eq!((again.status, &again.fields[..]), (status, &fields[..]));
        }
    }
}
