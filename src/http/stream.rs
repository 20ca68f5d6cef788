//! Whole byte streams through the framing layer, without sockets: what trident makes of
//! everything a client (or an upstream) sends on one connection, read in whatever pieces the
//! network delivers. The fuzz targets (`fuzz/`) and the corpus replay (`tests/fuzz_corpus.rs`)
//! share these functions, so a crash the fuzzer found stays fixed in `cargo test` on stable.
//!
//! The framers replay the proxy's own loops: `client.rs` and `exchange.rs` feed the bytes
//! buffered so far to `parse_request_head`, then to a `BodyDecoder` until it is done, and
//! re-frame each payload range for the upstreams; `exchange.rs` does the same with an
//! upstream's response, skipping interim heads, and re-frames the primary's for the client.
//! They keep whole messages in memory (the proxy streams them), which is fine for the short
//! inputs they are given. The `check_*` functions take a raw fuzz input, run the framers over
//! it in several splits and panic when an invariant fails: that panic is what the fuzzer
//! reports. Nothing here is used by the proxy itself, and nothing here touches a socket.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::sync::LazyLock;

use super::body::{write_chunk_head, CHUNK_TAIL, LAST_CHUNK};
use super::request::same_field_name;
use super::{
    parse_request_head, parse_response_head, write_response_head, BodyDecoder, BodyLength,
    Connection, Error, FieldRule, Framing, LegHead, Limits, RequestHead, ResponseHead, Version,
};

/// The authority a leg names when the request had no Host (or when its target replaces it).
pub const UPSTREAM_AUTHORITY: &str = "upstream.test:8080";

/// The client address a leg adds to `X-Forwarded-For` and `Forwarded` when asked to.
pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// The role marker field a leg carries (`X-Trident-Role` by default).
pub const ROLE_FIELD: (&str, &str) = ("X-Trident-Role", "primary");

/// A leg's field rules (`set_header=`, `drop_header=`): one field replaced, one dropped.
pub static LEG_RULES: LazyLock<[FieldRule; 2]> = LazyLock::new(|| {
    [
        FieldRule {
            name: "Authorization".to_string(),
            value: Some("Bearer leg".to_string()),
        },
        FieldRule {
            name: "cookie".to_string(),
            value: None,
        },
    ]
});

/// Inputs longer than this are not also fed one byte at a time (a head scan per byte).
const BYTEWISE_MAX: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Requests.

/// One request as trident framed it: the checked head and the de-chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

/// How a client's byte stream ended, as far as framing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEnd {
    /// Between two requests: nothing left over.
    Idle,
    /// Inside a head: this many bytes of it are buffered.
    InHead { buffered: usize },
    /// Inside a body: `RequestStream::partial` holds the request so far.
    InBody,
    /// A request asked for the connection to close after it; later bytes are never read.
    Closed,
    /// The client gets `error.status()` and the connection closes. After an error in a body,
    /// `RequestStream::partial` holds the request so far (its head already went upstream).
    Rejected(Error),
}

/// Everything trident made of one client connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStream {
    /// The complete requests, in order.
    pub requests: Vec<Request>,
    /// A request whose body was cut short by the end of the input or by a framing error.
    pub partial: Option<Request>,
    pub end: RequestEnd,
    /// Bytes framed into requests (heads and body framing).
    pub consumed: usize,
    /// Bytes read but never framed: a head in progress, bytes after a close or an error.
    pub unframed: usize,
    /// What one upstream leg received: each leg head and the re-framed body, in order.
    pub forwarded: Vec<u8>,
}

/// Which of the proxy's ways of writing a leg head the framer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegPolicy {
    /// The default: the client's fields; a Host of `UPSTREAM_AUTHORITY` only if it sent none.
    Keep,
    /// `host=target`, the client's address in `X-Forwarded-For` / `Forwarded`, a role field,
    /// `LEG_RULES`: every rewrite `write_leg_head` knows.
    Rewrite,
}

impl LegPolicy {
    /// The `LegHead` the exchange passes to `write_leg_head` for `head`.
    pub fn leg_head(self, head: &RequestHead) -> LegHead<'static> {
        match self {
            LegPolicy::Keep => LegHead {
                host: head.host.is_none().then_some(UPSTREAM_AUTHORITY),
                client_ip: None,
                extra: &[],
                rules: &[],
            },
            LegPolicy::Rewrite => LegHead {
                host: Some(UPSTREAM_AUTHORITY),
                client_ip: Some(CLIENT_IP),
                extra: &[ROLE_FIELD],
                rules: &LEG_RULES[..],
            },
        }
    }
}

/// Where the request framer stands.
#[derive(Debug)]
enum RequestPhase {
    /// Waiting for (the rest of) a head.
    Head,
    /// Reading the body of `head`.
    Body {
        head: RequestHead,
        decoder: BodyDecoder,
        body: Vec<u8>,
    },
    /// Nothing more is read: `end` says why.
    Ended(RequestEnd),
}

/// Frames a client's byte stream incrementally, as `client.rs` and `exchange.rs` do.
#[derive(Debug)]
pub struct RequestFramer {
    limits: Limits,
    policy: LegPolicy,
    /// Bytes read and not yet framed.
    input: Vec<u8>,
    phase: RequestPhase,
    requests: Vec<Request>,
    partial: Option<Request>,
    consumed: usize,
    fed: usize,
    forwarded: Vec<u8>,
}

impl RequestFramer {
    /// A framer at the start of a connection.
    pub fn new(limits: &Limits, policy: LegPolicy) -> RequestFramer {
        RequestFramer {
            limits: *limits,
            policy,
            input: Vec::new(),
            phase: RequestPhase::Head,
            requests: Vec::new(),
            partial: None,
            consumed: 0,
            fed: 0,
            forwarded: Vec::new(),
        }
    }

    /// One read's worth of bytes from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.fed += bytes.len();
        if matches!(self.phase, RequestPhase::Ended(_)) {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.advance();
    }

    /// The client closed its side: what the connection came to.
    pub fn finish(self) -> RequestStream {
        let (partial, end) = match self.phase {
            RequestPhase::Head if self.input.is_empty() => (None, RequestEnd::Idle),
            RequestPhase::Head => (
                None,
                RequestEnd::InHead {
                    buffered: self.input.len(),
                },
            ),
            RequestPhase::Body { head, body, .. } => {
                (Some(Request { head, body }), RequestEnd::InBody)
            }
            RequestPhase::Ended(end) => (self.partial, end),
        };
        RequestStream {
            requests: self.requests,
            partial,
            end,
            consumed: self.consumed,
            unframed: self.fed - self.consumed,
            forwarded: self.forwarded,
        }
    }

    /// Frames as much of the buffered input as is complete.
    fn advance(&mut self) {
        loop {
            match std::mem::replace(&mut self.phase, RequestPhase::Head) {
                RequestPhase::Head => {
                    if self.input.is_empty() {
                        return;
                    }
                    match parse_request_head(&self.input, &self.limits) {
                        Ok(None) => return,
                        Err(err) => {
                            self.phase = RequestPhase::Ended(RequestEnd::Rejected(err));
                            return;
                        }
                        Ok(Some(head)) => {
                            self.take(head.head_len);
                            let leg = self.policy.leg_head(&head);
                            head.write_leg_head(&leg, &mut self.forwarded);
                            let decoder = BodyDecoder::new(head.body, &self.limits);
                            self.phase = RequestPhase::Body {
                                head,
                                decoder,
                                body: Vec::new(),
                            };
                        }
                    }
                }
                RequestPhase::Body {
                    head,
                    mut decoder,
                    mut body,
                } => {
                    if !decoder.is_done() {
                        let chunked = head.body == BodyLength::Chunked;
                        let decoded = match decoder.decode(&self.input) {
                            Ok(decoded) => decoded,
                            Err(err) => {
                                self.partial = Some(Request { head, body });
                                self.phase = RequestPhase::Ended(RequestEnd::Rejected(err));
                                return;
                            }
                        };
                        let payload = payload_of(&self.input, &decoded.data, decoded.consumed);
                        body.extend_from_slice(payload);
                        reframe(payload, chunked, &mut self.forwarded);
                        self.take(decoded.consumed);
                        if decoder.is_done() && chunked {
                            self.forwarded.extend_from_slice(LAST_CHUNK);
                        }
                        if !decoder.is_done() {
                            let stalled = decoded.consumed == 0;
                            self.phase = RequestPhase::Body {
                                head,
                                decoder,
                                body,
                            };
                            if stalled {
                                return;
                            }
                            continue;
                        }
                    }
                    let keep_alive = head.keep_alive;
                    self.requests.push(Request { head, body });
                    if !keep_alive {
                        // The connection closes after this response: later bytes are never read.
                        self.phase = RequestPhase::Ended(RequestEnd::Closed);
                        return;
                    }
                }
                ended @ RequestPhase::Ended(_) => {
                    self.phase = ended;
                    return;
                }
            }
        }
    }

    /// Drops `n` framed bytes from the front of the input.
    fn take(&mut self, n: usize) {
        assert!(
            n <= self.input.len(),
            "framed {n} bytes of {} buffered",
            self.input.len()
        );
        self.input.drain(..n);
        self.consumed += n;
    }
}

/// Frames `pieces`, read one after the other, then the client's close.
pub fn frame_requests(pieces: &[&[u8]], limits: &Limits, policy: LegPolicy) -> RequestStream {
    let mut framer = RequestFramer::new(limits, policy);
    for piece in pieces {
        framer.feed(piece);
    }
    framer.finish()
}

// ---------------------------------------------------------------------------------------------
// Responses.

/// How an upstream's byte stream ended, followed by its close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEnd {
    /// The final response and its whole body; `trailing` bytes followed it (the connection is
    /// then not reused, and they are never read as a response).
    Complete {
        head: ResponseHead,
        body: Vec<u8>,
        trailing: usize,
    },
    /// The upstream closed inside the final head (`head` is `None`) or its body:
    /// `error: closed early`, or a cut-short message for the client.
    ClosedEarly {
        head: Option<ResponseHead>,
        body: Vec<u8>,
    },
    /// `error: malformed response: {error}` (a 502 for the primary).
    Malformed(Error),
}

/// Everything trident made of one upstream's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseStream {
    /// Interim (1xx) heads skipped before the final one.
    pub interim: Vec<ResponseHead>,
    pub end: ResponseEnd,
    /// Bytes framed (heads and body framing).
    pub consumed: usize,
    /// What the client receives when this upstream is the primary: the re-framed head and
    /// body (nothing after a malformed head: the client gets a 502 of trident's own).
    pub client_output: Vec<u8>,
}

/// Where the response framer stands.
#[derive(Debug)]
enum ResponsePhase {
    Head,
    Body {
        head: ResponseHead,
        decoder: BodyDecoder,
        framing: Framing,
        body: Vec<u8>,
    },
    Complete {
        head: ResponseHead,
        body: Vec<u8>,
    },
    Malformed(Error),
}

/// Frames an upstream's response incrementally, as `exchange.rs` reads a leg.
#[derive(Debug)]
pub struct ResponseFramer {
    limits: Limits,
    head_request: bool,
    client_version: Version,
    input: Vec<u8>,
    phase: ResponsePhase,
    interim: Vec<ResponseHead>,
    consumed: usize,
    fed: usize,
    client_output: Vec<u8>,
}

impl ResponseFramer {
    /// A framer for the answer to a request that was HEAD (or not), from a client speaking
    /// `client_version`.
    pub fn new(limits: &Limits, head_request: bool, client_version: Version) -> ResponseFramer {
        ResponseFramer {
            limits: *limits,
            head_request,
            client_version,
            input: Vec::new(),
            phase: ResponsePhase::Head,
            interim: Vec::new(),
            consumed: 0,
            fed: 0,
            client_output: Vec::new(),
        }
    }

    /// One read's worth of bytes from the upstream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.fed += bytes.len();
        if matches!(
            self.phase,
            ResponsePhase::Complete { .. } | ResponsePhase::Malformed(_)
        ) {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.advance();
    }

    /// The upstream closed: a read-until-close body ends here, anything else was cut short.
    pub fn finish(mut self) -> ResponseStream {
        let end = match std::mem::replace(&mut self.phase, ResponsePhase::Head) {
            ResponsePhase::Head => ResponseEnd::ClosedEarly {
                head: None,
                body: Vec::new(),
            },
            ResponsePhase::Body {
                head,
                mut decoder,
                framing,
                body,
            } => match decoder.finish_at_eof() {
                Ok(()) => {
                    if framing == Framing::Chunked {
                        self.client_output.extend_from_slice(LAST_CHUNK);
                    }
                    ResponseEnd::Complete {
                        head,
                        body,
                        trailing: 0,
                    }
                }
                Err(_) => ResponseEnd::ClosedEarly {
                    head: Some(head),
                    body,
                },
            },
            ResponsePhase::Complete { head, body } => ResponseEnd::Complete {
                head,
                body,
                trailing: self.fed - self.consumed,
            },
            ResponsePhase::Malformed(err) => ResponseEnd::Malformed(err),
        };
        ResponseStream {
            interim: self.interim,
            end,
            consumed: self.consumed,
            client_output: self.client_output,
        }
    }

    fn advance(&mut self) {
        loop {
            match std::mem::replace(&mut self.phase, ResponsePhase::Head) {
                ResponsePhase::Head => {
                    if self.input.is_empty() {
                        return;
                    }
                    match parse_response_head(&self.input, &self.limits, self.head_request) {
                        Ok(None) => return,
                        Err(err) => {
                            self.phase = ResponsePhase::Malformed(err);
                            return;
                        }
                        Ok(Some(head)) => {
                            self.take(head.head_len);
                            if head.is_interim() {
                                // RFC 9110 §15.2: not the final response; keep reading.
                                self.interim.push(head);
                                continue;
                            }
                            let framing = head.client_framing(self.client_version);
                            let connection = match framing {
                                Framing::Close => Connection::Close,
                                _ => Connection::Default,
                            };
                            write_response_head(
                                head.status,
                                &head.reason,
                                &head.fields,
                                framing,
                                connection,
                                &mut self.client_output,
                            );
                            let decoder = BodyDecoder::new(head.body, &self.limits);
                            self.phase = ResponsePhase::Body {
                                head,
                                decoder,
                                framing,
                                body: Vec::new(),
                            };
                        }
                    }
                }
                ResponsePhase::Body {
                    head,
                    mut decoder,
                    framing,
                    mut body,
                } => {
                    if decoder.is_done() {
                        if framing == Framing::Chunked {
                            self.client_output.extend_from_slice(LAST_CHUNK);
                        }
                        self.phase = ResponsePhase::Complete { head, body };
                        return;
                    }
                    let decoded = match decoder.decode(&self.input) {
                        Ok(decoded) => decoded,
                        Err(err) => {
                            self.phase = ResponsePhase::Malformed(err);
                            return;
                        }
                    };
                    let payload = payload_of(&self.input, &decoded.data, decoded.consumed);
                    body.extend_from_slice(payload);
                    reframe(
                        payload,
                        framing == Framing::Chunked,
                        &mut self.client_output,
                    );
                    self.take(decoded.consumed);
                    let stalled = decoded.consumed == 0 && !decoder.is_done();
                    self.phase = ResponsePhase::Body {
                        head,
                        decoder,
                        framing,
                        body,
                    };
                    if stalled {
                        return;
                    }
                }
                done => {
                    self.phase = done;
                    return;
                }
            }
        }
    }

    fn take(&mut self, n: usize) {
        assert!(
            n <= self.input.len(),
            "framed {n} bytes of {} buffered",
            self.input.len()
        );
        self.input.drain(..n);
        self.consumed += n;
    }
}

/// Frames `pieces` of an upstream's answer, read one after the other, then its close.
pub fn frame_response(
    pieces: &[&[u8]],
    limits: &Limits,
    head_request: bool,
    client_version: Version,
) -> ResponseStream {
    let mut framer = ResponseFramer::new(limits, head_request, client_version);
    for piece in pieces {
        framer.feed(piece);
    }
    framer.finish()
}

// ---------------------------------------------------------------------------------------------
// The chunked decoder alone.

/// What a chunked body came to, fed in pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedEnd {
    /// The last chunk and the trailer section were read; `rest` bytes followed.
    Done { rest: usize },
    /// The input ended inside the body.
    Partial,
    /// A framing error.
    Failed(Error),
}

/// The payload decoded from a chunked body, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dechunked {
    pub payload: Vec<u8>,
    pub end: ChunkedEnd,
    /// Bytes of input the decoder used up.
    pub consumed: usize,
    /// The payload re-framed as the proxy re-frames it (one chunk per decoded range, and the
    /// last chunk once done).
    pub reframed: Vec<u8>,
}

/// Decodes a chunked body fed in `pieces`, calling the decoder as the proxy does.
pub fn decode_chunked(pieces: &[&[u8]], limits: &Limits) -> Dechunked {
    let mut decoder = BodyDecoder::new(BodyLength::Chunked, limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Dechunked {
        payload: Vec::new(),
        end: ChunkedEnd::Partial,
        consumed: 0,
        reframed: Vec::new(),
    };
    let mut fed = 0;
    for piece in pieces {
        fed += piece.len();
        if decoder.is_done() {
            continue;
        }
        buf.extend_from_slice(piece);
        while !buf.is_empty() && !decoder.is_done() {
            let decoded = match decoder.decode(&buf) {
                Ok(decoded) => decoded,
                Err(err) => {
                    out.end = ChunkedEnd::Failed(err);
                    return out;
                }
            };
            let payload = payload_of(&buf, &decoded.data, decoded.consumed);
            out.payload.extend_from_slice(payload);
            reframe(payload, true, &mut out.reframed);
            buf.drain(..decoded.consumed);
            out.consumed += decoded.consumed;
            if decoder.is_done() {
                out.reframed.extend_from_slice(LAST_CHUNK);
            }
            if decoded.consumed == 0 {
                break;
            }
        }
    }
    if decoder.is_done() {
        out.end = ChunkedEnd::Done {
            rest: fed - out.consumed,
        };
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared by the framers.

/// The payload bytes of one decode call, checked against what the decoder says it used.
fn payload_of<'i>(input: &'i [u8], data: &Range<usize>, consumed: usize) -> &'i [u8] {
    assert!(
        data.start <= data.end && data.end <= consumed && consumed <= input.len(),
        "decoder returned payload {data:?} and consumed {consumed} of {} bytes",
        input.len()
    );
    &input[data.clone()]
}

/// Appends `payload` as the proxy re-frames it: one chunk, or the bytes as they are.
fn reframe(payload: &[u8], chunked: bool, out: &mut Vec<u8>) {
    if payload.is_empty() {
        return;
    }
    if chunked {
        write_chunk_head(payload.len(), out);
        out.extend_from_slice(payload);
        out.extend_from_slice(CHUNK_TAIL);
    } else {
        out.extend_from_slice(payload);
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz inputs and the invariants the targets check.

/// A raw fuzz input taken apart: which limits, which flags, where reads end, and the bytes.
///
/// Byte 0 controls: bits 0-2 the number of split points, bit 3 small limits (so that short
/// inputs reach every limit), bits 4 and 5 two target-specific flags. Two bytes per split
/// point follow (little-endian, taken modulo the payload length + 1), then the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzInput<'a> {
    pub limits: Limits,
    /// Requests: rewrite every leg head. Responses: the request was HEAD.
    pub flag_a: bool,
    /// Responses: the client speaks HTTP/1.0.
    pub flag_b: bool,
    /// Ascending offsets into `payload` where one read ends and the next begins.
    pub splits: Vec<usize>,
    pub payload: &'a [u8],
}

impl<'a> FuzzInput<'a> {
    /// The limits used when bit 3 of the control byte is set.
    pub const SMALL_LIMITS: Limits = Limits {
        max_request_line: 32,
        max_head: 160,
        max_headers: 6,
        max_chunk_extension: 8,
    };

    /// Takes a raw fuzz input apart (any bytes are a valid input).
    pub fn parse(data: &'a [u8]) -> FuzzInput<'a> {
        let Some((&control, rest)) = data.split_first() else {
            return FuzzInput {
                limits: Limits::default(),
                flag_a: false,
                flag_b: false,
                splits: Vec::new(),
                payload: data,
            };
        };
        let wanted = usize::from(control & 0b111);
        let count = wanted.min(rest.len() / 2);
        let (points, payload) = rest.split_at(count * 2);
        let mut splits: Vec<usize> = points
            .chunks_exact(2)
            .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (payload.len() + 1))
            .collect();
        splits.sort_unstable();
        splits.dedup();
        FuzzInput {
            limits: if control & 0b1000 != 0 {
                FuzzInput::SMALL_LIMITS
            } else {
                Limits::default()
            },
            flag_a: control & 0b1_0000 != 0,
            flag_b: control & 0b10_0000 != 0,
            splits,
            payload,
        }
    }

    /// The control byte and split points that make `parse` give back these settings.
    pub fn encode(
        small_limits: bool,
        flag_a: bool,
        flag_b: bool,
        splits: &[u16],
        payload: &[u8],
    ) -> Vec<u8> {
        let count = splits.len().min(7);
        let control = count as u8
            | if small_limits { 0b1000 } else { 0 }
            | if flag_a { 0b1_0000 } else { 0 }
            | if flag_b { 0b10_0000 } else { 0 };
        let mut out = vec![control];
        for split in &splits[..count] {
            out.extend_from_slice(&split.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// The payload cut at the split points.
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        let mut pieces = Vec::with_capacity(self.splits.len() + 1);
        let mut start = 0;
        for &at in &self.splits {
            pieces.push(&self.payload[start..at]);
            start = at;
        }
        pieces.push(&self.payload[start..]);
        pieces
    }

    /// The payload one byte at a time, if it is short enough for that to be cheap.
    pub fn bytewise(&self) -> Option<Vec<&'a [u8]>> {
        (self.payload.len() <= BYTEWISE_MAX).then(|| self.payload.chunks(1).collect())
    }
}

/// Fuzz target (a): a client's bytes in any split. Never panics in the framing layer; the same
/// requests and the same end whatever the split points; bytes are accounted for exactly; and
/// what trident forwards re-frames, through the same parser, to the same requests.
pub fn check_request_stream(data: &[u8]) {
    let input = FuzzInput::parse(data);
    let policy = if input.flag_a {
        LegPolicy::Rewrite
    } else {
        LegPolicy::Keep
    };
    let whole = frame_requests(&[input.payload], &input.limits, policy);
    check_request_accounting(&whole, input.payload.len());
    check_forwarded(&whole, &input.limits, policy);
    let split = frame_requests(&input.pieces(), &input.limits, policy);
    assert_same_requests(&whole, &split, "split at", &input.splits);
    check_forwarded(&split, &input.limits, policy);
    if let Some(bytes) = input.bytewise() {
        let bytewise = frame_requests(&bytes, &input.limits, policy);
        assert_same_requests(&whole, &bytewise, "byte by byte", &[]);
    }
}

fn check_request_accounting(stream: &RequestStream, fed: usize) {
    assert_eq!(
        stream.consumed + stream.unframed,
        fed,
        "consumed {} + unframed {} is not the {fed} bytes fed",
        stream.consumed,
        stream.unframed
    );
    let heads: usize = stream
        .requests
        .iter()
        .map(|r| r.head.head_len)
        .sum::<usize>()
        + stream.partial.as_ref().map_or(0, |r| r.head.head_len);
    let bodies: usize = stream.requests.iter().map(|r| r.body.len()).sum::<usize>()
        + stream.partial.as_ref().map_or(0, |r| r.body.len());
    assert!(
        heads + bodies <= stream.consumed,
        "heads ({heads}) and bodies ({bodies}) exceed the {} bytes consumed",
        stream.consumed
    );
    for request in &stream.requests {
        if let BodyLength::Length(n) = request.head.body {
            assert_eq!(request.body.len() as u64, n, "a Content-Length body");
        }
    }
    match (&stream.end, &stream.partial) {
        (RequestEnd::InBody, Some(_)) | (RequestEnd::Rejected(_), _) | (_, None) => {}
        (end, Some(_)) => panic!("a partial request with end {end:?}"),
    }
    if let RequestEnd::InHead { buffered } = stream.end {
        assert_eq!(buffered, stream.unframed, "the head in progress");
    }
}

fn assert_same_requests(whole: &RequestStream, other: &RequestStream, how: &str, splits: &[usize]) {
    assert_eq!(
        (&whole.requests, &whole.partial),
        (&other.requests, &other.partial),
        "fed whole vs {how} {splits:?}"
    );
    assert_eq!(whole.end, other.end, "fed whole vs {how} {splits:?}");
    // The bytes a decoder used before it failed are not counted (`decode` returns only the
    // error), so they depend on the splits; everything else must not.
    if !matches!(whole.end, RequestEnd::Rejected(_)) {
        assert_eq!(
            whole.consumed, other.consumed,
            "bytes consumed, fed whole vs {how} {splits:?}"
        );
    }
}

/// What one leg received re-frames to the requests trident accepted, and forwarding it again
/// (without rewrites) changes nothing: every leg head is already what trident would write.
fn check_forwarded(stream: &RequestStream, limits: &Limits, policy: LegPolicy) {
    // A leg head may be a little longer than the client's (`X:v` is written `X: v`, a Host
    // may be added): an upstream with exactly trident's limits could refuse it.
    let relaxed = Limits {
        max_head: limits.max_head * 2 + 1024,
        max_headers: limits.max_headers + 4,
        ..*limits
    };
    // Re-framed with the default policy, what a leg got is forwarded unchanged.
    let again = frame_requests(&[&stream.forwarded], &relaxed, LegPolicy::Keep);
    assert_eq!(
        again.requests.len(),
        stream.requests.len(),
        "forwarded {:?} re-frames to {:?}",
        String::from_utf8_lossy(&stream.forwarded),
        again.end
    );
    for (accepted, forwarded) in stream.requests.iter().zip(&again.requests) {
        assert_forwarded_as(accepted, forwarded, policy);
    }
    match (&stream.partial, &again.partial) {
        (None, None) => assert_eq!(
            again.end,
            RequestEnd::Idle,
            "forwarded {:?}",
            String::from_utf8_lossy(&stream.forwarded)
        ),
        (Some(accepted), Some(forwarded)) => {
            assert_eq!(again.end, RequestEnd::InBody);
            assert_forwarded_as(accepted, forwarded, policy);
        }
        (accepted, forwarded) => panic!(
            "partial request {accepted:?} forwarded as {forwarded:?}, stream {:?}",
            String::from_utf8_lossy(&stream.forwarded)
        ),
    }
    assert!(
        again.forwarded == stream.forwarded,
        "re-forwarding changed the bytes: {:?} became {:?}",
        String::from_utf8_lossy(&stream.forwarded),
        String::from_utf8_lossy(&again.forwarded)
    );
}

/// `forwarded` (what a leg re-parsed) is `accepted` as `policy` writes it.
fn assert_forwarded_as(accepted: &Request, forwarded: &Request, policy: LegPolicy) {
    let (a, f) = (&accepted.head, &forwarded.head);
    let leg = policy.leg_head(a);
    assert_eq!(
        (&f.method, &f.target, f.version, f.body),
        (&a.method, &a.target, Version::Http11, a.body),
        "request line and framing"
    );
    let host = leg
        .host
        .map(str::to_owned)
        .or_else(|| a.host.clone())
        .unwrap_or_default();
    assert_eq!(f.host.as_deref(), Some(host.as_str()), "Host");
    let expected = expected_leg_fields(&a.fields, &leg);
    assert!(
        f.fields == expected,
        "fields {:?} forwarded as {:?}, expected {:?}",
        String::from_utf8_lossy(&a.fields),
        String::from_utf8_lossy(&f.fields),
        String::from_utf8_lossy(&expected)
    );
    assert!(
        forwarded.body == accepted.body,
        "body {:?} forwarded as {:?}",
        String::from_utf8_lossy(&accepted.body),
        String::from_utf8_lossy(&forwarded.body)
    );
}

/// The field block a leg should carry, written from the rules rather than from
/// `write_leg_head`'s code: the client's fields named like an extra field or a rule dropped
/// (a client cannot forge the role field), Host replaced in place (or added after the
/// client's fields), `X-Forwarded-For` and `Forwarded` folded into one field each with the
/// client last, then the extra fields no rule names, then the rules' values. (A re-parse never has the
/// framing fields.)
/// Whether every quoted-string in `value` ends (RFC 9110 §5.6.4: `\` quotes the next byte).
fn quoted_strings_end(value: &[u8]) -> bool {
    let mut inside = false;
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'"' => inside = !inside,
            b'\\' if inside => i += 1,
            _ => {}
        }
        i += 1;
    }
    !inside && i == value.len()
}

fn expected_leg_fields(fields: &[u8], leg: &LegHead<'_>) -> Vec<u8> {
    let lines: Vec<(&[u8], &[u8])> = fields
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let value = line.get(colon + 1..).unwrap_or_default().trim_ascii();
            (&line[..colon], value)
        })
        .collect();
    let is = |name: &[u8], known: &str| name.eq_ignore_ascii_case(known.as_bytes());
    // What trident replaces or folds, it knows by its `_` look-alikes too (a server may read
    // `X_Forwarded_For` as `X-Forwarded-For`).
    let alike = |name: &[u8], known: &str| same_field_name(name, known.as_bytes());
    let mut out = Vec::new();
    let push = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let mut host_written = false;
    for &(name, value) in &lines {
        if leg.extra.iter().any(|(extra, _)| alike(name, extra))
            || leg.rules.iter().any(|rule| alike(name, &rule.name))
        {
            continue;
        }
        if let (Some(host), true) = (leg.host, is(name, "host")) {
            if !host_written {
                push(&mut out, b"Host", host.as_bytes());
                host_written = true;
            }
            continue;
        }
        if leg.client_ip.is_some() && (alike(name, "x-forwarded-for") || is(name, "forwarded")) {
            continue;
        }
        push(&mut out, name, value);
    }
    if let (Some(host), false) = (leg.host, host_written) {
        push(&mut out, b"Host", host.as_bytes());
    }
    if let Some(ip) = leg.client_ip {
        for (field, node) in [
            ("X-Forwarded-For", ip.to_string()),
            ("Forwarded", forwarded_node(ip)),
        ] {
            let mut value = Vec::new();
            for &(name, earlier) in &lines {
                // A Forwarded value that leaves a quoted-string open is not kept: it would
                // take trident's own element into the quotes.
                let open = field == "Forwarded" && !quoted_strings_end(earlier);
                if is(name, field) && !earlier.is_empty() && !open {
                    value.extend_from_slice(earlier);
                    value.extend_from_slice(b", ");
                }
            }
            value.extend_from_slice(node.as_bytes());
            push(&mut out, field.as_bytes(), &value);
        }
    }
    for (name, value) in leg.extra {
        if !leg.rules.iter().any(|rule| is(name.as_bytes(), &rule.name)) {
            push(&mut out, name.as_bytes(), value.as_bytes());
        }
    }
    for rule in leg.rules {
        if let Some(value) = &rule.value {
            push(&mut out, rule.name.as_bytes(), value.as_bytes());
        }
    }
    out
}

/// `for=` as RFC 7239 §6 writes a node: an IPv6 address bracketed and quoted.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("for={ip}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    }
}

/// Fuzz target (b): an upstream's answer in any split, for a HEAD request or not (flag a)
/// and an HTTP/1.0 client or not (flag b). The same outcome whatever the splits; bytes
/// accounted for; what the client receives re-frames to the same status, fields and body.
pub fn check_response_stream(data: &[u8]) {
    let input = FuzzInput::parse(data);
    let version = if input.flag_b {
        Version::Http10
    } else {
        Version::Http11
    };
    let frame = |pieces: &[&[u8]]| frame_response(pieces, &input.limits, input.flag_a, version);
    let whole = frame(&[input.payload]);
    assert!(
        whole.consumed <= input.payload.len(),
        "consumed {} of {} bytes",
        whole.consumed,
        input.payload.len()
    );
    if let ResponseEnd::Complete { trailing, .. } = whole.end {
        assert_eq!(
            whole.consumed + trailing,
            input.payload.len(),
            "trailing bytes"
        );
    }
    for interim in &whole.interim {
        assert!(interim.is_interim() && interim.body == BodyLength::Empty);
    }
    let same = |other: &ResponseStream, how: &str| {
        assert_eq!(
            (&whole.interim, &whole.end),
            (&other.interim, &other.end),
            "fed whole vs {how} {:?}",
            input.splits
        );
        // Bytes a decoder used before it failed are not reported: split-dependent.
        if !matches!(whole.end, ResponseEnd::Malformed(_)) {
            assert_eq!(whole.consumed, other.consumed, "consumed, {how}");
        }
    };
    let split = frame(&input.pieces());
    same(&split, "split at");
    if let Some(bytes) = input.bytewise() {
        same(&frame(&bytes), "byte by byte");
    }
    check_client_output(&whole, &input.limits, input.flag_a, version);
    check_client_output(&split, &input.limits, input.flag_a, version);
}

/// What the client receives from a complete (or cut-short) primary response re-frames to
/// the same status, reason, fields and body.
fn check_client_output(stream: &ResponseStream, limits: &Limits, head: bool, version: Version) {
    let (accepted, body, complete) = match &stream.end {
        ResponseEnd::Complete { head, body, .. } => (head, body, true),
        ResponseEnd::ClosedEarly {
            head: Some(head),
            body,
        } => (head, body, false),
        ResponseEnd::ClosedEarly { head: None, .. } => {
            assert!(
                stream.client_output.is_empty(),
                "client output without a final head"
            );
            return;
        }
        // A head error leaves nothing for the client; a body error leaves a message cut
        // short, and the client connection is closed after it.
        ResponseEnd::Malformed(_) => return,
    };
    let relaxed = Limits {
        max_head: limits.max_head * 2 + 1024,
        max_headers: limits.max_headers + 4,
        ..*limits
    };
    let again = frame_response(&[&stream.client_output], &relaxed, head, Version::Http11);
    let (got, got_body) = match &again.end {
        ResponseEnd::Complete { head, body, .. } => (head, body),
        // A cut-short body the client cannot tell from a whole one: close-delimited (an
        // HTTP/1.0 client) ends at the close whatever it was meant to be.
        ResponseEnd::ClosedEarly {
            head: Some(head),
            body,
        } => (head, body),
        other => panic!(
            "client output {:?} re-frames to {other:?}",
            String::from_utf8_lossy(&stream.client_output)
        ),
    };
    let cut_short = matches!(again.end, ResponseEnd::ClosedEarly { .. });
    let close_delimited = version == Version::Http10
        && matches!(accepted.body, BodyLength::Chunked | BodyLength::UntilClose);
    assert!(
        cut_short != complete || (close_delimited && !complete),
        "a {} response reached the client {}",
        if complete { "complete" } else { "cut-short" },
        if cut_short { "cut short" } else { "complete" }
    );
    assert_eq!(
        (got.status, &got.reason, &got.fields),
        (accepted.status, &accepted.reason, &accepted.fields),
        "client output {:?}",
        String::from_utf8_lossy(&stream.client_output)
    );
    assert!(
        got_body == body,
        "body {:?} reached the client as {:?}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(got_body)
    );
    assert!(again.interim.is_empty(), "interim heads reached the client");
}

/// Fuzz target (c): a chunked body alone. The same payload and end whatever the splits; the
/// payload is never longer than the input; the proxy's re-framing decodes to the same payload.
pub fn check_chunked(data: &[u8]) {
    let input = FuzzInput::parse(data);
    let whole = decode_chunked(&[input.payload], &input.limits);
    assert!(
        whole.consumed <= input.payload.len() && whole.payload.len() <= whole.consumed,
        "payload {} and consumed {} of {} bytes",
        whole.payload.len(),
        whole.consumed,
        input.payload.len()
    );
    if let ChunkedEnd::Done { rest } = whole.end {
        assert_eq!(whole.consumed + rest, input.payload.len());
    }
    let same = |other: &Dechunked, how: &str| {
        assert_eq!(
            (&whole.payload, &whole.end),
            (&other.payload, &other.end),
            "fed whole vs {how} {:?}",
            input.splits
        );
        // Bytes used before an error are not reported by `decode`: split-dependent.
        if !matches!(whole.end, ChunkedEnd::Failed(_)) {
            assert_eq!(whole.consumed, other.consumed, "consumed, {how}");
        }
    };
    let split = decode_chunked(&input.pieces(), &input.limits);
    same(&split, "split at");
    if let Some(bytes) = input.bytewise() {
        same(&decode_chunked(&bytes, &input.limits), "byte by byte");
    }
    for decoded in [&whole, &split] {
        let again = decode_chunked(&[&decoded.reframed], &input.limits);
        assert_eq!(again.payload, decoded.payload, "re-framed payload");
        let expected_end = match decoded.end {
            ChunkedEnd::Done { .. } => ChunkedEnd::Done { rest: 0 },
            _ => ChunkedEnd::Partial,
        };
        assert_eq!(again.end, expected_end, "re-framed end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_stream(pieces: &[&[u8]]) -> RequestStream {
        frame_requests(pieces, &Limits::default(), LegPolicy::Keep)
    }

    #[test]
    fn fuzz_inputs_come_apart_and_back() {
        let data = FuzzInput::encode(true, true, false, &[3, 1, 100], b"hello");
        let input = FuzzInput::parse(&data);
        assert_eq!(input.limits, FuzzInput::SMALL_LIMITS);
        assert!(input.flag_a && !input.flag_b);
        // 100 % 6 = 4; sorted.
        assert_eq!(input.splits, vec![1, 3, 4]);
        assert_eq!(input.pieces(), vec![&b"h"[..], b"el", b"l", b"o"]);
        let empty = FuzzInput::parse(b"");
        assert_eq!(empty.pieces(), vec![&b""[..]]);
        // Fewer bytes than the split points asked for: as many as there are.
        let short = FuzzInput::parse(&[0b111, 1, 0, 2]);
        assert_eq!((short.splits.len(), short.payload), (1, &[2u8][..]));
    }

    #[test]
    fn pipelined_requests_frame_and_forward() {
        let input: &[u8] = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.0\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n";
        let stream = default_stream(&[input]);
        assert_eq!(stream.requests.len(), 2);
        assert_eq!(stream.requests[0].body, b"abc");
        assert_eq!(stream.end, RequestEnd::Closed);
        assert_eq!(stream.unframed, 32);
        assert_eq!(
            String::from_utf8_lossy(&stream.forwarded),
            "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: upstream.test:8080\r\n\r\n"
        );
    }

    /// (input, end, partial body).
    type EndRow = (&'static [u8], RequestEnd, Option<&'static [u8]>);

    /// How a stream can stop.
    #[test]
    fn ends() {
        let rows: [EndRow; 6] = [
            (b"", RequestEnd::Idle, None),
            (b"GET / HT", RequestEnd::InHead { buffered: 8 }, None),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
                RequestEnd::InBody,
                Some(b"ab"),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
                RequestEnd::Rejected(Error::BadContentLength),
                None,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n",
                RequestEnd::Rejected(Error::BadChunk("chunk data not followed by CRLF")),
                Some(b"ab"),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET",
                RequestEnd::Closed,
                None,
            ),
        ];
        for (input, end, partial) in rows {
            let stream = default_stream(&[input]);
            assert_eq!(stream.end, end, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                stream.partial.as_ref().map(|r| &r.body[..]),
                partial,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            check_request_stream(&FuzzInput::encode(false, false, false, &[], input));
        }
    }

    #[test]
    fn responses_skip_interim_heads_and_end_at_close() {
        let input: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: 1\r\n\r\nuntil close";
        let stream = frame_response(&[input], &Limits::default(), false, Version::Http11);
        assert_eq!(stream.interim.len(), 1);
        match &stream.end {
            ResponseEnd::Complete { head, body, .. } => {
                assert_eq!((head.status, &body[..]), (200, &b"until close"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            String::from_utf8_lossy(&stream.client_output),
            "HTTP/1.1 200 OK\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nuntil close\r\n0\r\n\r\n"
        );
        check_response_stream(&FuzzInput::encode(false, false, false, &[30], input));
        check_response_stream(&FuzzInput::encode(false, false, true, &[30], input));
    }

    #[test]
    fn chunked_alone() {
        let input = b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nrest";
        let decoded = decode_chunked(&[input], &Limits::default());
        assert_eq!(decoded.payload, b"abc");
        assert_eq!(decoded.end, ChunkedEnd::Done { rest: 4 });
        assert_eq!(decoded.reframed, b"3\r\nabc\r\n0\r\n\r\n");
        check_chunked(&FuzzInput::encode(false, false, false, &[2, 9], input));
    }
}
