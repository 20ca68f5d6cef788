//! Request heads: parse and check what a client sent, and serialise what each leg gets.
//!
//! trident finds the end of a head with its own strict scan (CRLF line ends only, within the
//! size limits) before httparse tokenizes it, then decides the framing here, once, by RFC 9112
//! §6: any ambiguity (Content-Length with Transfer-Encoding, differing lengths, an unknown or
//! repeated coding) is an error, never a guess, so the three upstreams and trident always agree
//! on where the message ends. The head scan and the field rules shared with `response` live in
//! this file too. Nothing here touches a socket or allocates beyond the returned head.

use std::fmt;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

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
    /// Bit `n` (`n` below 63; 63 for longer names) is set when some field of `fields` has a
    /// name `n` bytes long: a leg's head need not walk the fields for a name it would
    /// replace (the role field, a `set_header` rule) when no name that long was sent.
    pub name_lengths: u64,
    /// Bytes of input the head took (through the empty line).
    pub head_len: usize,
}

impl RequestHead {
    /// True for methods that are safe to send twice (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        // Method names are case-sensitive (RFC 9110 §9.1).
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }

    /// Appends the head one upstream leg receives: `METHOD target HTTP/1.1`, the forwarded
    /// fields, `extra` fields (name, value) after them, and the framing trident chose
    /// (`Content-Length: n` or `Transfer-Encoding: chunked`), then the empty line.
    pub fn write_upstream_head(&self, extra: &[(&str, &str)], out: &mut Vec<u8>) {
        let leg = LegHead {
            extra,
            ..LegHead::default()
        };
        self.write_leg_head(&leg, out);
    }

    /// Appends the head one upstream leg receives, as `write_upstream_head`, with the
    /// leg's own Host, the client's address added to `X-Forwarded-For` and `Forwarded`, and
    /// the leg's field rules applied.
    pub fn write_leg_head(&self, leg: &LegHead<'_>, out: &mut Vec<u8>) {
        let set = leg
            .rules
            .iter()
            .filter_map(|rule| Some((&rule.name, rule.value.as_ref()?)));
        let extra_len: usize = leg
            .extra
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + set.map(|(n, v)| n.len() + v.len() + 4).sum::<usize>();
        out.reserve(self.method.len() + self.target.len() + self.fields.len() + extra_len + 128);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // A field trident sets itself (the role header) or the leg's rules name replaces the
        // client's own.
        // `_` reads as `-` here: the role header cannot be forged as `X_Trident_Role` to a
        // server that reads them alike.
        let replaced = |name: &[u8]| {
            leg.extra
                .iter()
                .any(|(n, _)| same_field_name(name, n.as_bytes()))
                || leg.rules.iter().any(|rule| rule.names(name))
        };
        // Names of equal length only can be the same field (`same_field_name`).
        let may_be_sent = |name: &str| self.name_lengths & length_bit(name.len()) != 0;
        let may_replace = leg.extra.iter().any(|(n, _)| may_be_sent(n))
            || leg.rules.iter().any(|rule| may_be_sent(&rule.name));
        if leg.host.is_none()
            && leg.client_ip.is_none()
            && !(may_replace && field_lines(&self.fields).any(|line| replaced(field_name(line))))
        {
            // The common case: the client's fields as they are.
            out.extend_from_slice(&self.fields);
        } else {
            let mut host_written = false;
            for line in field_lines(&self.fields) {
                let name = field_name(line);
                if replaced(name) {
                    continue;
                }
                if let Some(host) = leg.host {
                    if name.eq_ignore_ascii_case(b"host") {
                        if !host_written {
                            push_field(out, b"Host", host.as_bytes());
                            host_written = true;
                        }
                        continue;
                    }
                }
                if leg.client_ip.is_some() && is_forwarding_field(name) {
                    // Folded into one field below, with the client's address last.
                    continue;
                }
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            if let (Some(host), false) = (leg.host, host_written) {
                push_field(out, b"Host", host.as_bytes());
            }
            if let Some(ip) = leg.client_ip {
                self.push_forwarded_for(ip, out);
            }
        }
        for (name, value) in leg.extra {
            // A leg's own rule for the field (the role field, say) is the operator's word.
            if !leg.rules.iter().any(|rule| rule.names(name.as_bytes())) {
                push_field(out, name.as_bytes(), value.as_bytes());
            }
        }
        for rule in leg.rules {
            if let Some(value) = &rule.value {
                push_field(out, rule.name.as_bytes(), value.as_bytes());
            }
        }
        match self.body {
            BodyLength::Length(n) => push_content_length(out, n),
            BodyLength::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyLength::Empty | BodyLength::UntilClose => {}
        }
        out.extend_from_slice(b"\r\n");
    }

    /// `X-Forwarded-For: <what the client sent>, ip` and `Forwarded: <what it sent>, for=ip`
    /// (RFC 7239 §4, §6: an IPv6 address is bracketed and quoted).
    fn push_forwarded_for(&self, ip: IpAddr, out: &mut Vec<u8>) {
        for (name, node) in [
            (&b"X-Forwarded-For"[..], ForwardedNode::Plain(ip)),
            (&b"Forwarded"[..], ForwardedNode::Rfc7239(ip)),
        ] {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            for line in field_lines(&self.fields) {
                if field_name(line).eq_ignore_ascii_case(name) {
                    let value = field_value(line);
                    // A quoted-string the client left open would take trident's element
                    // in (`for="1.2.3.4, for=10.0.0.1`): such a value is not kept.
                    let open = matches!(node, ForwardedNode::Rfc7239(_)) && !quotes_closed(value);
                    if !value.is_empty() && !open {
                        out.extend_from_slice(value);
                        out.extend_from_slice(b", ");
                    }
                }
            }
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{node}");
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// What one leg's head says beyond the client's own fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegHead<'a> {
    /// Replaces the client's Host field (or supplies one when it sent none).
    pub host: Option<&'a str>,
    /// Appended to `X-Forwarded-For` and `Forwarded`.
    pub client_ip: Option<IpAddr>,
    /// Fields written after the client's (a role marker, `Connection: close`).
    pub extra: &'a [(&'a str, &'a str)],
    /// The leg's own field rules from the targets file, written after `extra`; a rule for
    /// an `extra` field replaces it.
    pub rules: &'a [FieldRule],
}

/// A change to the fields one leg's upstream receives, from the targets file:
/// `set_header="NAME: VALUE"` sends one NAME field with VALUE in place of the client's, and
/// `drop_header=NAME` sends none. An environment that needs its own credentials, or a
/// candidate that must not see a cookie, is shadowed without touching the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// The field name as written.
    pub name: String,
    /// The value sent; `None`: the field is dropped.
    pub value: Option<String>,
}

impl FieldRule {
    /// `NAME: VALUE`, what `set_header=` says. The error says what is wrong, for the caller
    /// to prefix with the option.
    pub fn parse_set(text: &str) -> Result<FieldRule, String> {
        let Some((name, value)) = text.split_once(':') else {
            return Err(format!("\"{text}\" is not NAME: VALUE"));
        };
        let name = check_rule_name(name)?;
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() {
            // Most likely an unquoted value with spaces, cut at the first one.
            return Err(format!(
                "\"{name}\" has no value (quote one with spaces: set_header=\"{name}: a b\"; \
                 drop_header={name} sends none)"
            ));
        }
        // RFC 9110 §5.5: visible characters, spaces, tabs and obs-text; never a line end,
        // which would let the value start a field (or a request) of its own.
        if let Some(bad) = value
            .bytes()
            .find(|&b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic() || b >= 0x80))
        {
            return Err(format!(
                "the value of \"{name}\" holds the control byte 0x{bad:02x}"
            ));
        }
        Ok(FieldRule {
            name: name.to_string(),
            value: Some(value.to_string()),
        })
    }

    /// `NAME`, what `drop_header=` says.
    pub fn parse_drop(text: &str) -> Result<FieldRule, String> {
        Ok(FieldRule {
            name: check_rule_name(text)?.to_string(),
            value: None,
        })
    }

    /// Whether this rule is about the field `name` (case-insensitive, RFC 9110 §5.1; and
    /// `_` as `-`, so that a client cannot slip the field past the rule to a server that
    /// reads them alike).
    pub fn names(&self, name: &[u8]) -> bool {
        same_field_name(name, self.name.as_bytes())
    }
}

/// A field name a rule may change: a token, and not one whose value trident decides itself.
fn check_rule_name(name: &str) -> Result<&str, String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("\"{name}\" is not a field name"));
    }
    match field_owner(name) {
        None => Ok(name),
        Some(owner) => Err(format!("{name} is decided by {owner}, not by a rule")),
    }
}

/// What decides the value of the request field `name`, when it is not free for a rule or
/// `--role-header` to set: the framing, the Host, a hop's own fields, the forwarding fields.
pub fn field_owner(name: &str) -> Option<&'static str> {
    // `_` as `-`: a rule for a look-alike would be a rule for the field itself to some servers.
    Some(match FieldKind::named(name, same_field_name) {
        FieldKind::Host => "the leg's host= option",
        FieldKind::ContentLength | FieldKind::TransferEncoding => "the request's framing",
        FieldKind::Expect => "trident, which answers Expect itself",
        FieldKind::Connection | FieldKind::KeepAlive | FieldKind::HopByHop => {
            "each hop (RFC 9110 §7.6.1)"
        }
        FieldKind::EndToEnd if is_forwarding_field(name.as_bytes()) => "--forward-client-ip",
        FieldKind::EndToEnd | FieldKind::Lookalike => return None,
    })
}

/// Whether every quoted-string in `value` ends (RFC 9110 §5.6.4: `\` escapes one octet in
/// it).
fn quotes_closed(value: &[u8]) -> bool {
    let mut quoted = false;
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            b'\\' if quoted && bytes.next().is_none() => return false,
            _ => {}
        }
    }
    !quoted
}

/// A client address as `X-Forwarded-For` and `Forwarded: for=` write it.
enum ForwardedNode {
    Plain(IpAddr),
    Rfc7239(IpAddr),
}

impl fmt::Display for ForwardedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardedNode::Plain(ip) => write!(f, "{ip}"),
            ForwardedNode::Rfc7239(IpAddr::V4(ip)) => write!(f, "for={ip}"),
            ForwardedNode::Rfc7239(IpAddr::V6(ip)) => write!(f, "for=\"[{ip}]\""),
        }
    }
}

/// `X-Forwarded-For` or `Forwarded`, whose values `--forward-client-ip` folds into its own, or
/// `X_Forwarded_For`, which it drops: it would forge the address to a server reading `_` as `-`.
fn is_forwarding_field(name: &[u8]) -> bool {
    same_field_name(name, b"x-forwarded-for") || name.eq_ignore_ascii_case(b"forwarded")
}

/// The `Name: value` lines of a serialised field block (without their CRLF). Each leg's
/// head walks them: memchr, not a byte loop (~15k instructions per request for a 600-byte
/// head across the three legs).
fn field_lines(fields: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = fields;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if !line.is_empty() {
            return Some(line.strip_suffix(b"\r").unwrap_or(line));
        }
    })
}

fn field_name(line: &[u8]) -> &[u8] {
    let end = memchr::memchr(b':', line).unwrap_or(line.len());
    &line[..end]
}

fn field_value(line: &[u8]) -> &[u8] {
    match memchr::memchr(b':', line) {
        Some(colon) => line[colon + 1..].trim_ascii(),
        None => &[],
    }
}

/// The values of the fields named `name` (case-insensitive) in a serialised field block, in
/// order.
pub fn field_values<'f>(fields: &'f [u8], name: &'f str) -> impl Iterator<Item = &'f [u8]> {
    field_lines(fields)
        .filter(move |line| field_name(line).eq_ignore_ascii_case(name.as_bytes()))
        .map(field_value)
}

/// The value of the first field named `name` (case-insensitive) in a serialised field block.
pub fn find_field<'f>(fields: &'f [u8], name: &str) -> Option<&'f [u8]> {
    field_lines(fields)
        .find(|line| field_name(line).eq_ignore_ascii_case(name.as_bytes()))
        .map(field_value)
}

/// Parses the request head at the start of `buf`.
/// `Ok(None)`: not complete yet (and within limits). `Err`: reject the request with
/// `err.status()` and close the connection.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, Error> {
    let bounds = match find_head(buf, limits, Some(limits.max_request_line)) {
        Ok(Some(bounds)) => bounds,
        // Not whole, or refused for what came after the request line's start: a start that
        // cannot become a request line (a TLS ClientHello on the plain port) is the answer
        // now, not a 408 at the head deadline that held its place until then; and first,
        // so that the same bytes get the same answer however they arrive.
        found => {
            request_line_error(buf, limits)?;
            return found.map(|_| None);
        }
    };
    let head = &buf[..bounds.len];

    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADER_SLOTS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(head, &mut slots[..header_slots(limits)]);
    match parsed {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(Error::Malformed("invalid request head")),
        Err(httparse::Error::Version) => {
            return Err(request_version_error(
                &head[bounds.start..bounds.first_line_end],
            ));
        }
        Err(err) => return Err(map_httparse_error(err, "invalid request line")),
    }
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(Error::Malformed("invalid request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let form = request_target(method, target)?;
    let headers: &[httparse::Header<'_>] = request.headers;
    let summary = FieldSummary::gather(headers, head.len());

    let body = request_body_length(version, &summary)?;

    // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (at most one in 1.0), with a valid value.
    let host_ok = match version {
        Version::Http11 => summary.host_count == 1,
        Version::Http10 => summary.host_count <= 1,
    };
    if !host_ok || !summary.host.map_or(true, is_valid_host) {
        return Err(Error::BadHost);
    }

    // RFC 9112 §9.3: 1.1 persists unless `close`; 1.0 only when it asked for `keep-alive`.
    let keep_alive = !summary.close && (version == Version::Http11 || summary.keep_alive);

    let expect_continue = summary.expect_continue;
    let sent_host = summary.host;
    // Host may be added below (absolute-form without one).
    let name_lengths = summary.name_lengths | length_bit("Host".len());
    let mut fields = summary.forwarded_fields(headers);
    let (target, host) = match form {
        TargetForm::AsSent => (
            target.to_owned(),
            sent_host.map(|host| String::from_utf8_lossy(host).into_owned()),
        ),
        // §3.2.2: the received Host is ignored and replaced with the target's authority,
        // and an origin server is sent the origin form (§3.2.1).
        TargetForm::Absolute { authority, rest } => {
            fields = with_host(&fields, authority);
            let target = if rest.starts_with('/') {
                rest.to_owned()
            } else if rest.is_empty() && method == "OPTIONS" {
                // §3.2.4: the server itself, as the last proxy must send it.
                "*".to_owned()
            } else {
                format!("/{rest}")
            };
            (target, Some(authority.to_owned()))
        }
    };
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target,
        version,
        host,
        body,
        keep_alive,
        expect_continue,
        head_len: head.len(),
        fields,
        name_lengths,
    }))
}

/// How a request names its target (RFC 9112 §3.2).
#[derive(Debug, PartialEq, Eq)]
enum TargetForm<'t> {
    /// origin-form (`/path?query`), `*` for OPTIONS, or CONNECT's authority-form (which the
    /// client refuses with 405): forwarded as sent.
    AsSent,
    /// absolute-form, `http://authority/path?query`: `rest` is what follows the authority.
    Absolute { authority: &'t str, rest: &'t str },
}

/// The form of `target`, or why it is not one an origin server takes (400): a target that
/// is not a path, `*` for another method than OPTIONS, another scheme than http(s), user
/// information in the authority (RFC 9110 §4.2.4), or a fragment (never sent: §4.2.5 of
/// RFC 3986 has the client strip it).
fn request_target<'t>(method: &str, target: &'t str) -> Result<TargetForm<'t>, Error> {
    if method == "CONNECT" {
        return Ok(TargetForm::AsSent);
    }
    if target.contains('#') {
        return Err(Error::Malformed("a fragment in the request target"));
    }
    if target.starts_with('/') {
        return Ok(TargetForm::AsSent);
    }
    if target == "*" {
        return match method {
            "OPTIONS" => Ok(TargetForm::AsSent),
            _ => Err(Error::Malformed("the target * is for OPTIONS only")),
        };
    }
    let Some((scheme, after)) = target.split_once("://") else {
        return Err(Error::Malformed("invalid request target"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Error::Malformed("invalid request target"));
    }
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if !is_valid_authority(authority.as_bytes()) {
        return Err(Error::Malformed("invalid authority in the request target"));
    }
    Ok(TargetForm::Absolute { authority, rest })
}

/// `fields` with its Host field (the first, as there is only one) set to `host`, or with one
/// added where there was none (HTTP/1.0).
fn with_host(fields: &[u8], host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + host.len() + 8);
    let mut written = false;
    for line in field_lines(fields) {
        if field_name(line).eq_ignore_ascii_case(b"host") {
            if !written {
                push_field(&mut out, b"Host", host.as_bytes());
                written = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if !written {
        push_field(&mut out, b"Host", host.as_bytes());
    }
    out
}

/// RFC 9112 §6.1 and §6.3 items 3-7, for a request: the body length or why it is ambiguous.
fn request_body_length(version: Version, summary: &FieldSummary<'_>) -> Result<BodyLength, Error> {
    let codings = &summary.codings;
    if codings.present {
        // §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        if version == Version::Http10 {
            return Err(Error::BadTransferEncoding);
        }
        // §6.1: CL with TE is a smuggling vector; reject (and the caller closes).
        if summary.content_length != ContentLength::Absent {
            return Err(Error::BadTransferEncoding);
        }
        // §6.3 item 4: chunked must be final, and applied once (§6.1).
        if codings.invalid || codings.chunked > 1 || !codings.last_is_chunked {
            return Err(Error::BadTransferEncoding);
        }
        // §6.1: a coding trident does not decode (gzip, chunked): 501.
        if codings.other {
            return Err(Error::UnsupportedTransferCoding);
        }
        return Ok(BodyLength::Chunked);
    }
    match summary.content_length {
        ContentLength::Absent => Ok(BodyLength::Empty),
        ContentLength::Valid(n) => Ok(BodyLength::Length(n)),
        ContentLength::Invalid => Err(Error::BadContentLength),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared with `response`: the head scan, the framing fields, the hop-by-hop filter.

/// The most header fields httparse is ever given room for (a stack array).
pub(super) const MAX_HEADER_SLOTS: usize = 256;

/// How many header slots httparse gets: its own TooManyHeaders then means "over the limit".
pub(super) fn header_slots(limits: &Limits) -> usize {
    limits.max_headers.min(MAX_HEADER_SLOTS)
}

/// Where a complete head lies at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeadBounds {
    /// Start of the start line (after any empty lines before it).
    pub start: usize,
    /// Index of the CR that ends the start line.
    pub first_line_end: usize,
    /// Length of the head, through the CRLF of the empty line.
    pub len: usize,
}

/// Whether bytes past `scanned` may settle the head: end it (an empty line) or make the
/// parser refuse it (a bare CR or LF, which it refuses wherever it is): only then is the
/// head worth parsing. Line ends are found with memchr: a byte loop cost ~10 instructions a
/// byte, some 5k for the 500-byte head of a typical API client's request.
pub fn may_complete_head(data: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(2);
    memchr::memchr2_iter(b'\r', b'\n', &data[from..]).any(|i| {
        let at = from + i;
        if data[at] == b'\r' {
            // A CR not followed by LF; at the very end, its LF may be on the way.
            return data.get(at + 1).is_some_and(|&next| next != b'\n');
        }
        // A bare LF, or the CRLF of an empty line.
        at == 0 || data[at - 1] != b'\r' || (at >= 2 && data[at - 2] == b'\n')
    })
}

/// Finds the end of the head at the start of `buf` in one pass, rejecting any line end other
/// than CRLF, before httparse sees a byte of it (httparse accepts bare LF).
///
/// `max_start_line`: the request-line limit (`None` for responses). `Ok(None)`: incomplete
/// but within the limits.
pub(super) fn find_head(
    buf: &[u8],
    limits: &Limits,
    max_start_line: Option<usize>,
) -> Result<Option<HeadBounds>, Error> {
    // Nothing beyond `max_head` can belong to an acceptable head, so never scan past it.
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut pos = 0;
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
    while window.len() >= pos + 2 && window[pos] == b'\r' && window[pos + 1] == b'\n' {
        pos += 2;
    }
    let start = pos;
    let mut line_start = pos;
    let mut first_line_end = None;
    while let Some(offset) = memchr::memchr2(b'\r', b'\n', &window[pos..]) {
        let at = pos + offset;
        // A request line already over its limit is 414 whatever ends it, so the answer does
        // not depend on how the bytes arrived.
        if first_line_end.is_none() && max_start_line.is_some_and(|max| at - start > max) {
            return Err(Error::RequestLineTooLong);
        }
        // RFC 9112 §2.2: bare CR MUST be rejected; a bare LF MAY be accepted, but mixed line
        // ends split parsers (http-garden), so trident accepts CRLF only.
        if window[at] == b'\n' {
            return Err(Error::Malformed("bare LF in head"));
        }
        match window.get(at + 1) {
            None => break,
            Some(b'\n') => {}
            Some(_) => return Err(Error::Malformed("bare CR in head")),
        }
        match first_line_end {
            None => {
                if max_start_line.is_some_and(|max| at - start > max) {
                    return Err(Error::RequestLineTooLong);
                }
                first_line_end = Some(at);
            }
            Some(first_line_end) if at == line_start => {
                return Ok(Some(HeadBounds {
                    start,
                    first_line_end,
                    len: at + 2,
                }));
            }
            Some(_) => {}
        }
        pos = at + 2;
        line_start = pos;
    }
    if first_line_end.is_none() {
        if let Some(max) = max_start_line {
            // A CR at the very end may be the start of the line's CRLF.
            let pending_cr = usize::from(window.last() == Some(&b'\r'));
            if window.len().saturating_sub(start + pending_cr) > max {
                return Err(Error::RequestLineTooLong);
            }
        }
    }
    if buf.len() > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    Ok(None)
}

/// Maps an httparse error (other than `Version`) to trident's; `start_line` names the start
/// line's own error.
pub(super) fn map_httparse_error(err: httparse::Error, start_line: &'static str) -> Error {
    match err {
        httparse::Error::HeaderName => Error::Malformed("invalid header field name"),
        httparse::Error::HeaderValue => Error::Malformed("invalid header field value"),
        // Our scan already refused bare CR and LF, so this is junk after the version.
        httparse::Error::NewLine | httparse::Error::Status | httparse::Error::Token => {
            Error::Malformed(start_line)
        }
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version => Error::UnsupportedVersion,
    }
}

/// The error for request line `line` whose version httparse refused: the version is its
/// third word, if it has three.
fn request_version_error(line: &[u8]) -> Error {
    let mut words = line.split(|&b| b == b' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(_), Some(_), Some(version), None) => version_error(version),
        _ => Error::Malformed("invalid request line"),
    }
}

/// What the start of a request head that is not whole shows wrong in its request line,
/// judged on that line alone (up to one byte past `--max-request-line`): httparse reads it
/// byte by byte, so a prefix is refused for the same reason as all of it. A version is
/// judged once its line has ended (`HTTP/2` may yet be `HTTP/2x`).
fn request_line_error(buf: &[u8], limits: &Limits) -> Result<(), Error> {
    let (line, with_end) = start_line(buf, limits.max_request_line.saturating_add(1));
    let ended = with_end.len() > line.len();
    match httparse::Request::new(&mut []).parse_with_uninit_headers(with_end, &mut []) {
        Ok(_) => Ok(()),
        Err(httparse::Error::Version) if !ended => Ok(()),
        Err(httparse::Error::Version) => Err(request_version_error(line)),
        Err(err) => Err(map_httparse_error(err, "invalid request line")),
    }
}

/// The start line of `buf` so far, after any empty lines, cut at `cap` bytes: without its
/// CRLF, and with it if it has come (a line cut at `cap` has not ended, however it goes on).
pub(super) fn start_line(buf: &[u8], cap: usize) -> (&[u8], &[u8]) {
    let mut rest = buf;
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        rest = after;
    }
    match memchr::memchr2(b'\r', b'\n', rest) {
        Some(end) if end < cap && rest[end..].starts_with(b"\r\n") => {
            (&rest[..end], &rest[..end + 2])
        }
        Some(end) if end < cap => (&rest[..end], &rest[..end]),
        _ => {
            let line = &rest[..rest.len().min(cap)];
            (line, line)
        }
    }
}

/// `HTTP/2.0`, `HTTP/3`: a version trident does not speak (505); anything else, `HTTP/01.1`
/// or `HTTP/1.` among it, is garbage (RFC 9112 §2.3: `DIGIT "." DIGIT`; a lone digit is how
/// the later versions are named).
pub(super) fn version_error(version: &[u8]) -> Error {
    match version.strip_prefix(b"HTTP/") {
        Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Error::UnsupportedVersion
        }
        Some([major]) if major.is_ascii_digit() => Error::UnsupportedVersion,
        _ => Error::Malformed("invalid HTTP version"),
    }
}

/// What all the Content-Length fields of a head say together (RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum ContentLength {
    #[default]
    Absent,
    Valid(u64),
    /// Not 1*DIGIT, overflowing, or differing values.
    Invalid,
}

impl ContentLength {
    /// Merges one Content-Length field value: identical values (also in a comma list) are one.
    fn merge(self, value: &[u8]) -> ContentLength {
        let mut merged = self;
        for element in value.split(|&b| b == b',') {
            merged = match (merged, parse_digits(trim_ows(element))) {
                (ContentLength::Invalid, _) | (_, None) => return ContentLength::Invalid,
                (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
                (ContentLength::Valid(m), Some(n)) if m == n => ContentLength::Valid(n),
                (ContentLength::Valid(_), Some(_)) => return ContentLength::Invalid,
            };
        }
        merged
    }
}

/// 1*DIGIT as a u64: no sign, no `0x`, no spaces, not empty, no overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The transfer codings of all Transfer-Encoding fields, in order (RFC 9112 §6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TransferCodings {
    /// At least one Transfer-Encoding field.
    pub present: bool,
    /// An empty value or element, or an element that is not a coding name.
    pub invalid: bool,
    /// How many times `chunked` appears.
    pub chunked: u32,
    /// The final coding is `chunked`.
    pub last_is_chunked: bool,
    /// A coding other than `chunked` appears.
    pub other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            let (name, params) = match element.iter().position(|&b| b == b';') {
                Some(at) => (trim_ows(&element[..at]), true),
                None => (element, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                // Includes empty list elements (`,chunked`), which some parsers skip and
                // others do not: refuse rather than pick a side.
                self.invalid = true;
                self.last_is_chunked = false;
            } else if name.eq_ignore_ascii_case(b"chunked") {
                // chunked takes no parameters (RFC 9112 §7).
                self.invalid |= params;
                self.chunked = self.chunked.saturating_add(1);
                self.last_is_chunked = true;
            } else {
                self.other = true;
                self.last_is_chunked = false;
            }
        }
    }
}

/// The fields of a head that decide framing, persistence and forwarding, gathered in one pass.
#[derive(Debug, Default)]
pub(super) struct FieldSummary<'b> {
    pub content_length: ContentLength,
    pub codings: TransferCodings,
    /// A Connection field lists `close`.
    pub close: bool,
    /// A Connection field lists `keep-alive`.
    pub keep_alive: bool,
    /// A Connection field lists some other name: those fields are hop-by-hop too.
    pub connection_names_fields: bool,
    pub host_count: usize,
    /// The first Host value.
    pub host: Option<&'b [u8]>,
    /// An Expect field is `100-continue`.
    pub expect_continue: bool,
    /// The least `timeout` of the Keep-Alive fields (`timeout=5, max=100`), in seconds: how
    /// long an upstream keeps an idle connection.
    pub keep_alive_timeout: Option<u64>,
    /// The Host and end-to-end field lines, copied in the same pass; see `forwarded_fields`.
    forwarded: Vec<u8>,
    /// `length_bit` of each of their names.
    name_lengths: u64,
}

impl<'b> FieldSummary<'b> {
    /// Reads every field once; nothing is decided yet (requests and responses differ). The
    /// lines to forward are copied in the same pass, into one allocation of `head_len` (the
    /// head they came from) plus one byte per field (`Name:value` becomes `Name: value`).
    pub(super) fn gather(headers: &[httparse::Header<'b>], head_len: usize) -> FieldSummary<'b> {
        let mut summary = FieldSummary {
            forwarded: Vec::with_capacity(head_len + headers.len()),
            ..FieldSummary::default()
        };
        for header in headers {
            let kind = FieldKind::of(header.name);
            if matches!(kind, FieldKind::Host | FieldKind::EndToEnd) {
                push_field(&mut summary.forwarded, header.name.as_bytes(), header.value);
                summary.name_lengths |= length_bit(header.name.len());
            }
            match kind {
                FieldKind::ContentLength => {
                    summary.content_length = summary.content_length.merge(header.value);
                }
                FieldKind::TransferEncoding => summary.codings.add(header.value),
                FieldKind::Connection => {
                    for token in list_elements(header.value) {
                        if token.eq_ignore_ascii_case(b"close") {
                            summary.close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            summary.keep_alive = true;
                        } else {
                            summary.connection_names_fields = true;
                        }
                    }
                }
                FieldKind::Host => {
                    summary.host_count += 1;
                    summary.host.get_or_insert(header.value);
                }
                FieldKind::Expect => {
                    // A list may name it among others (`100-continue, foo`).
                    summary.expect_continue |= list_elements(header.value)
                        .any(|e| e.eq_ignore_ascii_case(b"100-continue"));
                }
                FieldKind::KeepAlive => {
                    // Lines of one field are one list (RFC 9110 §5.3); the least is safe.
                    let least = keep_alive_timeout(header.value).into_iter();
                    summary.keep_alive_timeout = least.chain(summary.keep_alive_timeout).min();
                }
                FieldKind::HopByHop | FieldKind::Lookalike | FieldKind::EndToEnd => {}
            }
        }
        summary
    }

    /// The end-to-end field lines, `Name: value\r\n` each, in order, for forwarding. A field
    /// that a Connection field names is hop-by-hop too (RFC 9110 §7.6.1); that is rare, and
    /// known only after the last field, so only then are the lines copied again without it.
    pub(super) fn forwarded_fields(self, headers: &[httparse::Header<'_>]) -> Vec<u8> {
        if self.connection_names_fields {
            end_to_end_fields(headers)
        } else {
            self.forwarded
        }
    }
}

/// What trident does with a field, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    ContentLength,
    TransferEncoding,
    Connection,
    Host,
    Expect,
    /// Keep-Alive: hop-by-hop, and read for an upstream's idle timeout.
    KeepAlive,
    /// Proxy-Connection, TE, Trailer, Upgrade (RFC 9110 §7.6.1).
    HopByHop,
    /// One of the above with `_` for `-` (`Transfer_Encoding`): dropped, as nginx does by
    /// default. A server that reads `_` as `-` (CGI-style header mapping) would otherwise
    /// frame the request differently from trident, and a pooled connection would carry a
    /// smuggled request whose answer goes to the next client.
    Lookalike,
    /// Forwarded as is (unless Connection names it).
    EndToEnd,
}

impl FieldKind {
    fn of(name: &str) -> FieldKind {
        // A lookalike has a known name's length (`named` with any name matching says which
        // lengths those are): most names are settled without a scan for `_`.
        let known_length = || FieldKind::named(name, |_, _| true) != FieldKind::EndToEnd;
        match FieldKind::named(name, |a, b| a.eq_ignore_ascii_case(b)) {
            FieldKind::EndToEnd
                if known_length()
                    && name.as_bytes().contains(&b'_')
                    && FieldKind::named(name, same_field_name) != FieldKind::EndToEnd =>
            {
                FieldKind::Lookalike
            }
            kind => kind,
        }
    }

    /// Dispatches on the name's length first: most fields are settled by one comparison.
    fn named(name: &str, eq: impl Fn(&[u8], &[u8]) -> bool) -> FieldKind {
        let is = |known: &str| eq(name.as_bytes(), known.as_bytes());
        match name.len() {
            2 if is("te") => FieldKind::HopByHop,
            4 if is("host") => FieldKind::Host,
            6 if is("expect") => FieldKind::Expect,
            7 if is("trailer") || is("upgrade") => FieldKind::HopByHop,
            10 if is("connection") => FieldKind::Connection,
            10 if is("keep-alive") => FieldKind::KeepAlive,
            14 if is("content-length") => FieldKind::ContentLength,
            16 if is("proxy-connection") => FieldKind::HopByHop,
            17 if is("transfer-encoding") => FieldKind::TransferEncoding,
            _ => FieldKind::EndToEnd,
        }
    }
}

/// Whether two field names are the same to a server that ignores case and reads `_` as `-`
/// (as CGI-style header mapping does: both become `HTTP_X_FORWARDED_FOR`).
pub(super) fn same_field_name(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

/// The end-to-end field lines of a head whose Connection field names other fields.
fn end_to_end_fields(headers: &[httparse::Header<'_>]) -> Vec<u8> {
    // An upper bound of what is written, so the Vec is allocated exactly once.
    let capacity: usize = headers
        .iter()
        .map(|header| header.name.len() + header.value.len() + 4)
        .sum();
    let mut fields = Vec::with_capacity(capacity);
    for header in headers {
        let forward = match FieldKind::of(header.name) {
            // Host is never dropped, even if Connection names it: the upstream needs it.
            FieldKind::Host => true,
            // RFC 9110 §7.6.1: a field named in Connection is hop-by-hop.
            FieldKind::EndToEnd => !named_in_connection(headers, header.name),
            _ => false,
        };
        if forward {
            push_field(&mut fields, header.name.as_bytes(), header.value);
        }
    }
    fields
}

/// True when a Connection field of `headers` lists `name`.
fn named_in_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("connection"))
        .any(|header| {
            list_elements(header.value).any(|token| token.eq_ignore_ascii_case(name.as_bytes()))
        })
}

/// The least `timeout` parameter of a Keep-Alive value (`timeout=5, max=100`), in whole
/// seconds, quoted or not; none when there is none that is a number.
fn keep_alive_timeout(value: &[u8]) -> Option<u64> {
    list_elements(value)
        .filter_map(|element| {
            let at = element.iter().position(|&b| b == b'=')?;
            let (name, value) = (trim_ows(&element[..at]), trim_ows(&element[at + 1..]));
            let value = match value {
                [b'"', inner @ .., b'"'] => inner,
                bare => bare,
            };
            let digits =
                !value.is_empty() && value.len() <= 9 && value.iter().all(u8::is_ascii_digit);
            (name.eq_ignore_ascii_case(b"timeout") && digits)
                .then(|| value.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
        })
        .min()
}

/// The non-empty elements of a comma-separated field value, OWS trimmed (RFC 9110 §5.6.1).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// tchar (RFC 9110 §5.6.2): what a field name or a method is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9112 §3.2: Host = uri-host [ ":" port ], or empty (a target without an authority).
/// Rejects spaces, `/`, `@` (userinfo) and anything that could mean another authority.
fn is_valid_host(host: &[u8]) -> bool {
    host.is_empty() || is_valid_authority(host)
}

/// An http authority (RFC 3986 §3.2.2–3.2.3; RFC 9110 §4.2.1, which wants a host): a host
/// that is a bracketed IP literal or a name of unreserved, percent-encoded and sub-delimiter
/// characters, then an optional `:port` of digits. No user information (`@` is not among
/// the characters), no empty host (`:8080`), no unclosed bracket (`[::1`), no `%` but as a
/// percent-encoding (`%2e`, not `%zz`), no letters in the port (`:8a`).
pub(crate) fn is_valid_authority(authority: &[u8]) -> bool {
    let name_char = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b);
    let (host_ok, port) = match authority.strip_prefix(b"[") {
        Some(literal) => {
            let Some(close) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            let (inside, rest) = (&literal[..close], &literal[close + 1..]);
            // RFC 6874: a zone id (`%25eth0`) is not empty.
            let ok = !inside.is_empty()
                && !inside.ends_with(b"%25")
                && inside.iter().all(|b| name_char(b) || *b == b':');
            match rest {
                [] => (ok, None),
                [b':', port @ ..] => (ok, Some(port)),
                _ => return false,
            }
        }
        None => {
            let (host, port) = match authority.iter().position(|&b| b == b':') {
                Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
                None => (authority, None),
            };
            (!host.is_empty() && host.iter().all(name_char), port)
        }
    };
    host_ok
        && percent_encodings_are_whole(authority)
        && port.map_or(true, |port| port.iter().all(u8::is_ascii_digit))
}

/// Every `%` starts a percent-encoding: two hex digits follow (RFC 3986 §2.1).
fn percent_encodings_are_whole(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Appends `name: value\r\n`.
pub(super) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A field name's length as one bit of `RequestHead::name_lengths`.
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// Appends `Content-Length: n\r\n`.
pub(super) fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through the formatting machinery.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_head_is_worth_parsing_past_an_empty_line_or_a_bare_cr_or_lf() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // (data, bytes scanned before, may be complete)
        let cases: [(&[u8], usize, bool); 12] = [
            (head, 0, true),
            (&head[..head.len() - 2], 0, false),
            (&head[..head.len() - 1], 0, false),
            // The last byte of the empty line came in a read of its own.
            (head, head.len() - 1, true),
            (b"GET / HTTP/1.1\nHost: a\n\n", 0, true),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", 10, false),
            (b"\n", 0, true),
            (b"\r\n\r\n", 0, true),
            // Bare CR and LF: the parser refuses them at once.
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 0, true),
            (b"GET / HTTP/1.1\rHost", 0, true),
            (b"GET / HTTP/1.1\nHost", 0, true),
            // A CR at the end waits for what follows it.
            (b"GET / HTTP/1.1\r", 0, false),
        ];
        for (data, scanned, expected) in cases {
            assert_eq!(
                may_complete_head(data, scanned),
                expected,
                "{:?} scanned {scanned}",
                String::from_utf8_lossy(data)
            );
        }
    }

    use super::*;

    fn parse(input: &[u8]) -> Result<Option<RequestHead>, Error> {
        parse_request_head(input, &Limits::default())
    }

    /// A complete head's body length, or the error.
    fn body_of(input: &[u8]) -> Result<BodyLength, Error> {
        match parse(input)? {
            Some(head) => Ok(head.body),
            None => panic!("incomplete: {:?}", String::from_utf8_lossy(input)),
        }
    }

    const fn malformed(detail: &'static str) -> Result<BodyLength, Error> {
        Err(Error::Malformed(detail))
    }

    /// (input, body length or error): RFC 9112 §6 framing, and every way a head is refused.
    const FRAMING: &[(&[u8], Result<BodyLength, Error>)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(BodyLength::Empty)),
        (b"GET / HTTP/1.0\r\n\r\n", Ok(BodyLength::Empty)),
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(BodyLength::Empty)),
        // Content-Length: 1*DIGIT, identical duplicates merged.
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", Ok(BodyLength::Length(5))),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Ok(BodyLength::Length(0))),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", Ok(BodyLength::Length(7))),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Ok(BodyLength::Length(5))),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 ,\t5\r\n\r\n", Ok(BodyLength::Length(5))),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            Ok(BodyLength::Length(5)),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
            Ok(BodyLength::Length(u64::MAX)),
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", Err(Error::BadContentLength)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,5\r\n\r\n", Err(Error::BadContentLength)),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
            Err(Error::BadContentLength),
        ),
        // Transfer-Encoding: chunked final and once; the smuggling variants.
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(BodyLength::Chunked)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n", Ok(BodyLength::Chunked)),
        (b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n", Ok(BodyLength::Chunked)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", Ok(BodyLength::Chunked)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \t\r\n\r\n", Ok(BodyLength::Chunked)),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
            malformed("invalid header field name"),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
            malformed("invalid header field value"),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n",
            malformed("invalid header field value"),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Error::UnsupportedTransferCoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Err(Error::BadTransferEncoding)),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(Error::BadTransferEncoding),
        ),
        // A look-alike name is just another field.
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", Ok(BodyLength::Empty)),
        // Host: exactly one in HTTP/1.1, at most one in 1.0, a valid authority.
        (b"GET / HTTP/1.1\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Err(Error::BadHost)),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Ok(BodyLength::Empty)),
        (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Ok(BodyLength::Empty)),
        (b"GET / HTTP/1.1\r\nHost: h%2Dx.example\r\n\r\n", Ok(BodyLength::Empty)),
        (b"GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", Ok(BodyLength::Empty)),
        (b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", Ok(BodyLength::Empty)),
        // Versions.
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Err(Error::UnsupportedVersion)),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Err(Error::UnsupportedVersion)),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", Err(Error::UnsupportedVersion)),
        (b"GET / HTTP/3\r\nHost: a\r\n\r\n", Err(Error::UnsupportedVersion)),
        (b"GET / HTTP/01.1\r\nHost: a\r\n\r\n", malformed("invalid HTTP version")),
        (b"GET / HTTP/1.\r\nHost: a\r\n\r\n", malformed("invalid HTTP version")),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        (b"GET / HTTP/\r\nHost: a\r\n\r\n", malformed("invalid HTTP version")),
        (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", malformed("invalid HTTP version")),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", malformed("invalid HTTP version")),
        (b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        // Request lines.
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", malformed("invalid request line")),
        (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        (b"GET /\r\n\r\n", malformed("invalid request line")),
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", malformed("invalid request line")),
        // Line ends: CRLF only.
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", malformed("bare LF in head")),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", malformed("bare LF in head")),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", malformed("bare LF in head")),
        (b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", malformed("bare LF in head")),
        (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", malformed("bare CR in head")),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", malformed("bare CR in head")),
        (b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", malformed("bare CR in head")),
        // Field lines: no obs-fold, no colonless line, no NUL.
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", malformed("invalid header field name")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", malformed("invalid header field name")),
        (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", malformed("invalid header field name")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", malformed("invalid header field name")),
        (b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", malformed("invalid header field name")),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", malformed("invalid header field value")),
    ];

    #[test]
    fn framing_and_refusals() {
        for (input, expected) in FRAMING {
            assert_eq!(
                body_of(input),
                *expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// A start that cannot become a request line is refused before the head ends: a TLS
    /// ClientHello on the plain port would otherwise hold its place until the head deadline.
    #[test]
    fn a_start_that_is_not_http_is_refused_before_the_head_ends() {
        let refused: [(&[u8], Error); 5] = [
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Error::Malformed("invalid request line"),
            ),
            (
                b"SSH-2.0-OpenSSH_9.6\r\n",
                Error::Malformed("invalid request line"),
            ),
            (b"GET /a b c\r\n", Error::Malformed("invalid request line")),
            (b"PRI * HTTP/2.0\r\n", Error::UnsupportedVersion),
            (
                b"GET / HTTP/1.1 extra\r\nHost",
                Error::Malformed("invalid request line"),
            ),
        ];
        for (input, error) in refused {
            assert_eq!(
                parse(input),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let pending: [&[u8]; 6] = [
            b"",
            b"G",
            b"\r\nGET /path?q=1 HTT",
            b"GET / HTTP/2",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: val",
        ];
        for input in pending {
            assert_eq!(
                parse(input),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// Every prefix of a head is either incomplete or already the final verdict, and bytes
    /// after a complete head never change it (the head parser's shotgun test).
    #[test]
    fn prefixes_are_incomplete_or_final_and_suffixes_do_not_matter() {
        for (input, _) in FRAMING {
            let full = parse(input);
            for end in 0..input.len() {
                let prefix = parse(&input[..end]);
                assert!(
                    prefix == Ok(None) || prefix == full,
                    "{:?} at {end}: {prefix:?} vs {full:?}",
                    String::from_utf8_lossy(input)
                );
            }
            let mut longer = input.to_vec();
            longer.extend_from_slice(b"0\r\n\r\nGET / HTTP/1.1\r\n\n");
            assert_eq!(parse(&longer), full, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn complete_head_fields() {
        let input = b"\r\nPOST /submit?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 3\r\n\r\nabc";
        let head = parse(input).unwrap().unwrap();
        assert_eq!(
            head,
            RequestHead {
                method: "POST".into(),
                target: "/submit?q=1".into(),
                version: Version::Http11,
                host: Some("example.com:8080".into()),
                body: BodyLength::Length(3),
                keep_alive: true,
                expect_continue: false,
                fields: b"Host: example.com:8080\r\n".to_vec(),
                name_lengths: 1 << 4,
                head_len: input.len() - 3,
            }
        );
    }

    /// (input, keep_alive): RFC 9112 §9.3.
    #[test]
    fn persistence() {
        let rows: [(&[u8], bool); 10] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: CLOSE\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive,close\r\n\r\n",
                false,
            ),
        ];
        for (input, keep_alive) in rows {
            let head = parse(input).unwrap().unwrap();
            assert_eq!(
                head.keep_alive,
                keep_alive,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// RFC 9112 §3.2: the target forms. absolute-form is forwarded in origin form with its
    /// authority as the Host (the client's ignored, §3.2.2); `*` only with OPTIONS; no other
    /// form, scheme, user information or fragment.
    #[test]
    fn request_target_forms() {
        let accepted: &[(&str, &str, &str)] = &[
            ("GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n", "/a?b", "h"),
            ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", "h"),
            (
                "GET http://public.example/admin?x=1 HTTP/1.1\r\nHost: other\r\nA: 1\r\n\r\n",
                "/admin?x=1",
                "public.example",
            ),
            (
                "GET HTTPS://h.example:8443 HTTP/1.1\r\nHost: h\r\n\r\n",
                "/",
                "h.example:8443",
            ),
            (
                "GET http://h.example?q HTTP/1.1\r\nHost: h\r\n\r\n",
                "/?q",
                "h.example",
            ),
            // HTTP/1.0 may send no Host: the authority supplies one.
            ("GET http://h.example/ HTTP/1.0\r\n\r\n", "/", "h.example"),
            (
                "GET http://[::1]:8080/x HTTP/1.1\r\nHost: h\r\n\r\n",
                "/x",
                "[::1]:8080",
            ),
            (
                "GET http://h.example:/x HTTP/1.1\r\nHost: h\r\n\r\n",
                "/x",
                "h.example:",
            ),
            // §3.2.4: OPTIONS for the server itself goes on as `*`; with a path, as the path.
            (
                "OPTIONS http://h.example HTTP/1.1\r\nHost: h\r\n\r\n",
                "*",
                "h.example",
            ),
            (
                "OPTIONS http://h.example/ HTTP/1.1\r\nHost: h\r\n\r\n",
                "/",
                "h.example",
            ),
        ];
        for (input, target, host) in accepted {
            let head = parse(input.as_bytes()).unwrap().unwrap();
            assert_eq!(
                (head.target.as_str(), head.host.as_deref()),
                (*target, Some(*host))
            );
            let hosts: Vec<&[u8]> = field_lines(&head.fields)
                .filter(|line| field_name(line).eq_ignore_ascii_case(b"host"))
                .collect();
            assert_eq!(hosts, [format!("Host: {host}").as_bytes()], "{input:?}");
        }
        let with_a = parse(accepted[2].0.as_bytes()).unwrap().unwrap();
        assert_eq!(with_a.fields, b"Host: public.example\r\nA: 1\r\n");
        let refused = [
            "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET x:80 HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /f#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http:///path HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://h\"/ HTTP/1.1\r\nHost: h\r\n\r\n",
            // An empty host with a port, an unclosed bracket, letters in the port.
            "GET http://:8080/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://[::1/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://h.example:8a/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://[]/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET http://[::1]x/ HTTP/1.1\r\nHost: h\r\n\r\n",
            // The same in a Host field.
            "GET / HTTP/1.1\r\nHost: :8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h:8a\r\n\r\n",
            // A `%` that is not a percent-encoding.
            "GET / HTTP/1.1\r\nHost: h%zz.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h%2\r\n\r\n",
            "GET http://h%/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [fe80::1%25]\r\n\r\n",
        ];
        for input in refused {
            let err = parse(input.as_bytes()).unwrap_err();
            assert_eq!(err.status(), 400, "{input:?}: {err:?}");
        }
        // CONNECT's authority-form is left to the client, which refuses CONNECT with 405.
        let connect = parse(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
        assert_eq!(connect.unwrap().unwrap().target, "h:443");
    }

    /// (input, forwarded fields, expect_continue): RFC 9110 §7.6.1 hop-by-hop removal.
    #[test]
    fn forwarded_fields() {
        let rows: [(&[u8], &[u8], bool); 8] = [
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue, foo\r\nContent-Length: 5\r\n\r\n",
                b"Host: a\r\n",
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-A: 1\r\nKeep-Alive: timeout=5\r\n\
                  Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n\
                  Expect: 100-continue\r\nContent-Length: 5\r\nX-B: 2\r\n\r\n",
                b"Host: a\r\nX-A: 1\r\nX-B: 2\r\n",
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nAccept: */*\r\n\r\n",
                b"Host: a\r\nAccept: */*\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nX-Secret: s\r\nHost: a\r\nConnection: x-secret, X-Other\r\nx-other: o\r\nX-Kept: k\r\n\r\n",
                b"Host: a\r\nX-Kept: k\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: host, close\r\n\r\n",
                b"Host: a\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nhOsT: a\r\nx-Custom-Case: Value  With\tSpaces\r\nX: \t v \t\r\nEmpty:\r\n\r\n",
                b"hOsT: a\r\nx-Custom-Case: Value  With\tSpaces\r\nX: v\r\nEmpty: \r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n",
                b"Host: a\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nX: \xe9t\xe9\r\n\r\n",
                b"Host: a\r\nX: \xe9t\xe9\r\n",
                false,
            ),
        ];
        for (input, fields, expect_continue) in rows {
            let head = parse(input).unwrap().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&head.fields),
                String::from_utf8_lossy(fields),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(head.expect_continue, expect_continue);
        }
    }

    /// A request with `count` fields `X-n: v`.
    fn with_fields(count: usize) -> Vec<u8> {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for n in 1..count {
            head.extend_from_slice(format!("X-{n}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    type HeadLenOrError = Result<Option<usize>, Error>;

    type Extra<'a> = &'a [(&'a str, &'a str)];

    /// (limits, input, head length or error): 414, 431 and their boundaries.
    #[test]
    fn limits() {
        let line = |max_request_line| Limits {
            max_request_line,
            ..Limits::default()
        };
        let head = |max_head| Limits {
            max_head,
            ..Limits::default()
        };
        let fields = |max_headers| Limits {
            max_headers,
            max_head: 1 << 20,
            ..Limits::default()
        };
        let exactly_40: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nX: 12345678\r\n\r\n";
        assert_eq!(exactly_40.len(), 40);
        let rows: Vec<(Limits, Vec<u8>, HeadLenOrError)> = vec![
            (
                line(19),
                b"GET /01234 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                Ok(Some(32)),
            ),
            (
                line(19),
                b"GET /012345 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                Err(Error::RequestLineTooLong),
            ),
            (
                line(19),
                b"GET /012345 HTTP/1.1\r\n".to_vec(),
                Err(Error::RequestLineTooLong),
            ),
            (line(19), b"GET /01234 HTTP/1.1".to_vec(), Ok(None)),
            (line(19), b"GET /01234 HTTP/1.1\r".to_vec(), Ok(None)),
            (
                line(19),
                b"GET /012345 HTTP/1.1".to_vec(),
                Err(Error::RequestLineTooLong),
            ),
            (line(19), b"\r\n\r\nGET /01234 HTTP/1.1".to_vec(), Ok(None)),
            // A request line without a version is refused once it has ended, before the head.
            (line(19), b"GET /01234567890123\r".to_vec(), Ok(None)),
            (
                line(19),
                b"GET /01234567890123\r\n".to_vec(),
                Err(Error::Malformed("invalid request line")),
            ),
            (head(40), exactly_40.to_vec(), Ok(Some(40))),
            (head(40), [exactly_40, b"body"].concat(), Ok(Some(40))),
            (head(39), exactly_40.to_vec(), Err(Error::HeadTooLarge)),
            (head(40), exactly_40[..39].to_vec(), Ok(None)),
            (
                head(38),
                exactly_40[..39].to_vec(),
                Err(Error::HeadTooLarge),
            ),
            (
                head(16),
                b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n".to_vec(),
                Err(Error::HeadTooLarge),
            ),
            (fields(2), with_fields(2), Ok(Some(with_fields(2).len()))),
            (fields(2), with_fields(3), Err(Error::TooManyHeaders)),
            (
                fields(100),
                with_fields(100),
                Ok(Some(with_fields(100).len())),
            ),
            (fields(100), with_fields(101), Err(Error::TooManyHeaders)),
            (
                fields(1000),
                with_fields(256),
                Ok(Some(with_fields(256).len())),
            ),
            (fields(1000), with_fields(257), Err(Error::TooManyHeaders)),
        ];
        for (limits, input, expected) in rows {
            let got =
                parse_request_head(&input, &limits).map(|head| head.map(|head| head.head_len));
            assert_eq!(
                got,
                expected,
                "{limits:?} {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn idempotent_methods() {
        let rows = [
            ("GET", true),
            ("HEAD", true),
            ("OPTIONS", true),
            ("TRACE", true),
            ("PUT", true),
            ("DELETE", true),
            ("POST", false),
            ("PATCH", false),
            ("CONNECT", false),
            ("get", false),
        ];
        for (method, idempotent) in rows {
            let input = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
            let head = parse(input.as_bytes()).unwrap().unwrap();
            assert_eq!(head.is_idempotent(), idempotent, "{method}");
        }
    }

    /// (client head, extra fields, what an upstream leg receives).
    #[test]
    fn upstream_heads() {
        let rows: [(&[u8], Extra, &[u8]); 5] = [
            (
                b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\nAccept: */*\r\n\r\n",
                &[],
                b"GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                &[("X-Forwarded-For", "10.0.0.1"), ("Via", "1.0 trident")],
                b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.0 trident\r\n\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 12\r\nHost: h\r\n\r\n",
                &[],
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 0\r\nHost: h\r\n\r\n",
                &[("Via", "1.1 t")],
                b"POST / HTTP/1.1\r\nHost: h\r\nVia: 1.1 t\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
                &[],
                b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
        ];
        for (input, extra, expected) in rows {
            let head = parse(input).unwrap().unwrap();
            let mut out = b"previous".to_vec();
            head.write_upstream_head(extra, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out[8..]),
                String::from_utf8_lossy(expected)
            );
            // What trident sends parses back to the same message (an HTTP/1.0 request without
            // Host needs one from `extra` to become a valid HTTP/1.1 request).
            if head.host.is_none() {
                continue;
            }
            let again = parse(&out[8..]).unwrap().unwrap();
            assert_eq!(
                (&again.method, &again.target, again.body),
                (&head.method, &head.target, head.body)
            );
        }
    }

    #[test]
    fn decimal_and_trim_helpers() {
        for n in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        let rows: [(&[u8], &[u8]); 5] = [
            (b"", b""),
            (b" \t ", b""),
            (b"a", b"a"),
            (b"\t a b \t", b"a b"),
            (b"a\x0b", b"a\x0b"),
        ];
        for (input, trimmed) in rows {
            assert_eq!(trim_ows(input), trimmed);
        }
    }

    fn leg_head(raw: &[u8], leg: &LegHead<'_>) -> String {
        let head = parse_request_head(raw, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        head.write_leg_head(leg, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn leg_heads_rewrite_host_and_fold_the_client_address() {
        let raw = b"GET /a HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 10.0.0.1\r\n\
                    Accept: */*\r\nForwarded: for=10.0.0.1\r\n\r\n";
        let rows: [(LegHead<'_>, &str); 4] = [
            (
                LegHead::default(),
                "GET /a HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 10.0.0.1\r\n\
                 Accept: */*\r\nForwarded: for=10.0.0.1\r\n\r\n",
            ),
            (
                LegHead {
                    host: Some("127.0.0.1:9003"),
                    extra: &[("X-Trident-Role", "candidate")],
                    ..LegHead::default()
                },
                "GET /a HTTP/1.1\r\nHost: 127.0.0.1:9003\r\nX-Forwarded-For: 10.0.0.1\r\n\
                 Accept: */*\r\nForwarded: for=10.0.0.1\r\nX-Trident-Role: candidate\r\n\r\n",
            ),
            (
                LegHead {
                    client_ip: Some("192.0.2.7".parse().unwrap()),
                    ..LegHead::default()
                },
                "GET /a HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\
                 X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nForwarded: for=10.0.0.1, for=192.0.2.7\r\n\r\n",
            ),
            (
                LegHead {
                    client_ip: Some("2001:db8::1".parse().unwrap()),
                    ..LegHead::default()
                },
                "GET /a HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\
                 X-Forwarded-For: 10.0.0.1, 2001:db8::1\r\n\
                 Forwarded: for=10.0.0.1, for=\"[2001:db8::1]\"\r\n\r\n",
            ),
        ];
        for (leg, expected) in rows {
            assert_eq!(leg_head(raw, &leg), expected);
        }
    }

    /// A client's `Forwarded` value that leaves a quoted-string open is not kept: trident's
    /// own element would end up inside it. Closed ones, escapes included, are.
    #[test]
    fn an_open_quoted_string_in_forwarded_does_not_take_tridents_element_in() {
        let leg = LegHead {
            client_ip: Some("192.0.2.7".parse().unwrap()),
            ..LegHead::default()
        };
        let rows: [(&str, &str); 5] = [
            (r#"for="192.0.2.1"#, "for=192.0.2.7"),
            (r#"for="a\""#, "for=192.0.2.7"),
            (r#"for=192.0.2.1;by="x"#, "for=192.0.2.7"),
            (r#"for="a\"b";by=x"#, r#"for="a\"b";by=x, for=192.0.2.7"#),
            (
                r#"for="[2001:db8::2]""#,
                r#"for="[2001:db8::2]", for=192.0.2.7"#,
            ),
        ];
        for (sent, forwarded) in rows {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nForwarded: {sent}\r\n\r\n");
            let head = leg_head(raw.as_bytes(), &leg);
            assert!(
                head.contains(&format!("\r\nForwarded: {forwarded}\r\n")),
                "{sent}: {head}"
            );
        }
    }

    /// A server that reads `_` as `-` (CGI-style) must not get a field trident decides, or
    /// replaces, under another spelling.
    #[test]
    fn look_alikes_of_the_fields_trident_decides_do_not_pass() {
        assert_eq!(FieldKind::of("Transfer_Encoding"), FieldKind::Lookalike);
        assert_eq!(FieldKind::of("content_length"), FieldKind::Lookalike);
        assert_eq!(FieldKind::of("Proxy_Connection"), FieldKind::Lookalike);
        assert_eq!(FieldKind::of("X_Custom"), FieldKind::EndToEnd);
        assert_eq!(
            FieldKind::of("Transfer-Encoding"),
            FieldKind::TransferEncoding
        );
        assert_eq!(field_owner("Content_Length"), Some("the request's framing"));
        assert_eq!(field_owner("X_Forwarded_For"), Some("--forward-client-ip"));
        assert!(FieldRule::parse_drop("X-Api-Key")
            .unwrap()
            .names(b"x_api_key"));
        let raw = b"GET /a HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\
                    X_Trident_Role: primary\r\nX_Forwarded_For: 10.0.0.9\r\nX_Kept: k\r\n\r\n";
        let leg = LegHead {
            client_ip: Some("192.0.2.7".parse().unwrap()),
            extra: &[("X-Trident-Role", "candidate")],
            ..LegHead::default()
        };
        assert_eq!(
            leg_head(raw, &leg),
            "GET /a HTTP/1.1\r\nHost: a\r\nX_Kept: k\r\nX-Forwarded-For: 192.0.2.7\r\n\
             Forwarded: for=192.0.2.7\r\nX-Trident-Role: candidate\r\n\r\n"
        );
    }

    #[test]
    fn a_leg_head_supplies_host_and_client_address_when_the_client_sent_none() {
        let raw = b"POST /p HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi";
        let leg = LegHead {
            host: Some("backend:80"),
            client_ip: Some("127.0.0.1".parse().unwrap()),
            extra: &[("Connection", "close")],
            ..LegHead::default()
        };
        assert_eq!(
            leg_head(raw, &leg),
            "POST /p HTTP/1.1\r\nHost: backend:80\r\nX-Forwarded-For: 127.0.0.1\r\n\
             Forwarded: for=127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn a_legs_rules_replace_and_drop_the_clients_fields() {
        let raw = b"GET /a HTTP/1.1\r\nHost: shop.example\r\nauthorization: Bearer client\r\n\
                    Cookie: a=1\r\nAccept: */*\r\nCookie: b=2\r\n\r\n";
        let rules = [
            FieldRule::parse_set("Authorization: Bearer staging").unwrap(),
            FieldRule::parse_drop("cookie").unwrap(),
            FieldRule::parse_set("X-Env:staging").unwrap(),
            FieldRule::parse_drop("X-Absent").unwrap(),
        ];
        let leg = LegHead {
            extra: &[("X-Trident-Role", "candidate")],
            rules: &rules,
            ..LegHead::default()
        };
        assert_eq!(
            leg_head(raw, &leg),
            "GET /a HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\
             X-Trident-Role: candidate\r\nAuthorization: Bearer staging\r\nX-Env: staging\r\n\r\n"
        );
        // A rule for an extra field (the role field) replaces trident's value, or drops it.
        for (rule, sent) in [
            (
                FieldRule::parse_set("x-trident-role: test").unwrap(),
                "x-trident-role: test\r\n",
            ),
            (FieldRule::parse_drop("X-Trident-Role").unwrap(), ""),
        ] {
            let leg = LegHead {
                extra: &[("X-Trident-Role", "candidate")],
                rules: std::slice::from_ref(&rule),
                ..LegHead::default()
            };
            assert_eq!(
                leg_head(raw, &leg),
                format!(
                    "GET /a HTTP/1.1\r\nHost: shop.example\r\nauthorization: Bearer client\r\n\
                     Cookie: a=1\r\nAccept: */*\r\nCookie: b=2\r\n{sent}\r\n"
                )
            );
        }
        // A client that sent none of the fields gets the set ones added all the same.
        let bare = b"GET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n";
        assert_eq!(
            leg_head(
                bare,
                &LegHead {
                    rules: &rules,
                    ..LegHead::default()
                }
            ),
            "GET /b HTTP/1.1\r\nHost: shop.example\r\n\
             Authorization: Bearer staging\r\nX-Env: staging\r\n\r\n"
        );
    }

    #[test]
    fn field_rules_are_checked_where_they_are_written() {
        // (the option's text, the name and value it sets or the error)
        type Row<'a> = (&'a str, Result<(&'a str, &'a str), &'a str>);
        let set: [Row<'_>; 12] = [
            ("X-Env: staging", Ok(("X-Env", "staging"))),
            ("Authorization:Bearer a b\t", Ok(("Authorization", "Bearer a b"))),
            ("X-Utf8: caf\u{e9}", Ok(("X-Utf8", "caf\u{e9}"))),
            ("X-Env", Err("\"X-Env\" is not NAME: VALUE")),
            ("X-Env:  ", Err("\"X-Env\" has no value (quote one with spaces: set_header=\"X-Env: a b\"; drop_header=X-Env sends none)")),
            (" X-Env: a", Err("\" X-Env\" is not a field name")),
            (": a", Err("\"\" is not a field name")),
            ("X-A: a\r\nX-B: b", Err("the value of \"X-A\" holds the control byte 0x0d")),
            ("X-A: a\0", Err("the value of \"X-A\" holds the control byte 0x00")),
            ("host: a", Err("host is decided by the leg's host= option, not by a rule")),
            ("Content-Length: 1", Err("Content-Length is decided by the request's framing, not by a rule")),
            ("X-Forwarded-For: 1.2.3.4", Err("X-Forwarded-For is decided by --forward-client-ip, not by a rule")),
        ];
        for (text, expected) in set {
            let got = FieldRule::parse_set(text);
            match expected {
                Ok((name, value)) => assert_eq!(
                    got,
                    Ok(FieldRule {
                        name: name.to_string(),
                        value: Some(value.to_string())
                    }),
                    "{text:?}"
                ),
                Err(why) => assert_eq!(got, Err(why.to_string()), "{text:?}"),
            }
        }
        let dropped: [(&str, Result<(), &str>); 6] = [
            ("Cookie", Ok(())),
            (
                "Connection",
                Err("Connection is decided by each hop (RFC 9110 §7.6.1), not by a rule"),
            ),
            (
                "TE",
                Err("TE is decided by each hop (RFC 9110 §7.6.1), not by a rule"),
            ),
            (
                "Expect",
                Err("Expect is decided by trident, which answers Expect itself, not by a rule"),
            ),
            (
                "Forwarded",
                Err("Forwarded is decided by --forward-client-ip, not by a rule"),
            ),
            ("Bad Name", Err("\"Bad Name\" is not a field name")),
        ];
        for (text, expected) in dropped {
            let got = FieldRule::parse_drop(text);
            match expected {
                Ok(()) => assert_eq!(
                    got,
                    Ok(FieldRule {
                        name: text.to_string(),
                        value: None
                    })
                ),
                Err(why) => assert_eq!(got, Err(why.to_string()), "{text:?}"),
            }
        }
    }

    #[test]
    fn find_field_is_case_insensitive_and_trims() {
        let fields = b"X-User:  alice \r\nAccept: */*\r\n";
        assert_eq!(find_field(fields, "x-user"), Some(&b"alice"[..]));
        assert_eq!(find_field(fields, "missing"), None);
        let twice = b"X-User: a\r\nHost: h\r\nx-user:  b \r\n";
        let values: Vec<&[u8]> = field_values(twice, "X-USER").collect();
        assert_eq!(values, [&b"a"[..], &b"b"[..]]);
    }
}
