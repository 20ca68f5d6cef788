//! One exchange compared, in the reporting thread: the candidate against the primary
//! (Diff1, "raw") and the secondary against the primary (Diff2, "noise"). Each difference is a
//! named field, the unit the statistics count:
//!
//! - `status` when the status codes differ (then nothing else is compared: a 404 page and a
//!   200 document differ everywhere, and the status says it);
//! - `interim` when the last interim (1xx) status before the final one differs, or only one
//!   leg sent one: a candidate that starts or stops sending `103 Early Hints` changes what
//!   clients see before the response; with the same last interim status, its fields are
//!   compared as headers are, named `interim header NAME...` (the `Link`s of hints);
//! - `header NAME` (value), `header NAME missing`, `header NAME extra`, by case-insensitive
//!   name, skipping the ignore list (`DEFAULT_IGNORED_HEADERS` and `--ignore-header`);
//! - `body PATH[ KIND]` for JSON bodies (see `json`), `body` for other bodies that differ,
//!   `body hash` when a body was larger than the compare cap and only its hash and size could
//!   be compared;
//! - `error:KIND` when one leg failed and the other did not, or failed differently: a failing
//!   candidate is a difference, never a dropped sample.
//!
//! A skipped leg (saturation, sampling) is not compared at all. Noise masking: a field that
//! differs between primary and secondary in this very exchange is marked `masked` in the
//! candidate's differences (Diferencia's per-request rule); the statistics count it anyway.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::io;

use super::decode::{decode, decoded_hash, Payload};
use super::{json, BodyHash, CapturedBody, ExchangeRecord, LegOutcome};
use crate::failure::LegError;

/// Response fields that differ between healthy instances by design, never compared: dates,
/// per-instance and per-request identifiers, caching validators, framing, and the hop-by-hop
/// fields of RFC 9110 §7.6.1 (trident removes those before they get here; listed for clarity).
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "age",
    "expires",
    "last-modified",
    "etag",
    "set-cookie",
    "via",
    "x-request-id",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Most distinct differing fields kept per comparison; a body that differs everywhere is
/// reported by its first fields, not by thousands.
pub const MAX_DIFFERENCES: usize = 256;
/// ... for the secondary, whose fields mask the candidate's: twice as many described.
const MAX_NOISE_DIFFERENCES: usize = 2 * MAX_DIFFERENCES;
/// Most fields one comparison names at all (the rest: `more`). A field the secondary differs
/// in only some of the time, past the fields it describes, must still count each time, or an
/// identical candidate would differ in it more often than the noise.
const MAX_NAMES: usize = 10_000;
/// From this many entries on, `contains` looks in a set.
const LINEAR_NAMES: usize = 64;

/// What the comparison is told by the command line.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Lower-case header names.
    ignore_headers: Vec<String>,
    /// `--ignore-field` paths.
    ignore_fields: json::Ignored,
    /// Most bytes a body may decode to (`--max-compare-bytes`).
    cap: usize,
    /// `Content-Length` is compared when neither leg sent a body (`bodiless_length`), unless
    /// `--ignore-header` names it.
    length_without_body: bool,
}

impl Rules {
    /// The default header ignore list plus `ignore_headers`, the `ignore_fields` JSON paths,
    /// and the decode cap.
    pub fn new(ignore_headers: &[String], ignore_fields: &[String], cap: usize) -> Rules {
        let mut headers: Vec<String> = DEFAULT_IGNORED_HEADERS
            .iter()
            .map(|name| name.to_string())
            .collect();
        headers.extend(ignore_headers.iter().map(|name| name.to_ascii_lowercase()));
        Rules {
            ignore_headers: headers,
            ignore_fields: json::Ignored::new(ignore_fields),
            cap,
            length_without_body: !ignore_headers
                .iter()
                .any(|name| name.eq_ignore_ascii_case("content-length")),
        }
    }

    fn header_ignored(&self, name: &[u8]) -> bool {
        self.ignore_headers
            .iter()
            .any(|ignored| ignored.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// One differing field of one comparison, with both values cut short for samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `status`, `header content-type`, `body user.email`, `error:timeout` ...
    pub field: String,
    /// The primary's value.
    pub primary: String,
    /// The compared leg's value.
    pub other: String,
    /// Candidate only: the same field differs between primary and secondary in this exchange.
    pub masked: bool,
    /// Past what a comparison describes: the field is counted, its values were not taken
    /// (`primary` and `other` are empty).
    pub counted_only: bool,
}

/// The distinct fields one comparison found, in the order found, at most `MAX_DIFFERENCES`
/// that are not masked, and every one that is (there are no more than the noise kept).
#[derive(Debug, Clone)]
pub struct Differences {
    list: Vec<Difference>,
    /// More fields differed than were kept (not counting masked ones).
    pub more: bool,
    /// The candidate's comparison: the fields the secondary differed in (sorted). They are
    /// kept apart, so that noise in hundreds of fields cannot push a real change out.
    mask: Vec<String>,
    /// Entries of `list` not in `mask`.
    unmasked: usize,
    /// When not empty, the only fields kept (sorted), however many: a second look at the
    /// secondary for the candidate's fields past what its first comparison kept.
    only: Vec<String>,
    /// Most entries described, of each kind.
    cap: usize,
    /// The secondary's: past `cap`, its fields are still named, without values, up to
    /// `MAX_NAMES`, so that its count of every field is whole.
    names_past_cap: bool,
    /// The names in `list`, once it is long: `contains` is asked for every field found.
    /// Made then, not before: most comparisons find no field, and a set's random keys cost.
    names: Option<HashSet<String>>,
}

/// Equal when they found the same: how they were bounded is not part of it.
impl PartialEq for Differences {
    fn eq(&self, other: &Differences) -> bool {
        self.list == other.list && self.more == other.more
    }
}

impl Eq for Differences {}

impl Default for Differences {
    /// An empty list keeping `MAX_DIFFERENCES` fields.
    fn default() -> Differences {
        Differences::with_cap(MAX_DIFFERENCES)
    }
}

impl Differences {
    /// The secondary's comparison keeps more than the candidate's, so that the candidate's
    /// noise past its own bound is still known as noise.
    fn noise() -> Differences {
        Differences {
            names_past_cap: true,
            ..Differences::with_cap(MAX_NOISE_DIFFERENCES)
        }
    }

    fn with_cap(cap: usize) -> Differences {
        Differences {
            list: Vec::new(),
            more: false,
            mask: Vec::new(),
            unmasked: 0,
            only: Vec::new(),
            cap,
            names_past_cap: false,
            names: None,
        }
    }

    /// A list that keeps `fields` (sorted) alone, all of them if they differ.
    fn only(fields: Vec<String>) -> Differences {
        Differences {
            only: fields,
            ..Differences::with_cap(usize::MAX)
        }
    }

    /// The candidate's comparison, with the fields in `noise` kept apart (masked).
    fn masked_by(noise: &Differences) -> Differences {
        let mut mask: Vec<String> = noise.list.iter().map(|d| d.field.clone()).collect();
        mask.sort_unstable();
        Differences {
            mask,
            ..Differences::default()
        }
    }

    /// Adds `field` unless it is already there (array elements share a path: one count per
    /// exchange); the values are only computed when it is added.
    pub fn push_with(
        &mut self,
        field: &str,
        primary: impl FnOnce() -> String,
        other: impl FnOnce() -> String,
    ) {
        if self.contains(field) {
            return;
        }
        if !self.only.is_empty()
            && self
                .only
                .binary_search_by(|f| f.as_str().cmp(field))
                .is_err()
        {
            return;
        }
        let masked = !self.mask.is_empty()
            && self
                .mask
                .binary_search_by(|m| m.as_str().cmp(field))
                .is_ok();
        // Past the fields described, a masked one (the secondary's comparison named it, so
        // there are no more than it names) and the secondary's own are still named, to be
        // counted: a field the secondary differs in half the time and the candidate always
        // must count each time on both sides.
        let described = if masked {
            self.list.len() - self.unmasked < self.cap
        } else {
            !self.is_full()
        };
        if !described && ((!masked && !self.names_past_cap) || self.list.len() >= MAX_NAMES) {
            self.more = true;
            return;
        }
        if !masked && described {
            self.unmasked += 1;
        }
        let (primary, other) = if described {
            (primary(), other())
        } else {
            (String::new(), String::new())
        };
        if self.list.len() >= LINEAR_NAMES {
            let list = &self.list;
            self.names
                .get_or_insert_with(|| list.iter().map(|d| d.field.clone()).collect())
                .insert(field.to_string());
        }
        self.list.push(Difference {
            field: field.to_string(),
            primary,
            other,
            masked,
            counted_only: !described,
        });
    }

    pub fn contains(&self, field: &str) -> bool {
        match &self.names {
            Some(names) => names.contains(field),
            None => self.list.iter().any(|d| d.field == field),
        }
    }

    /// As many fields as are kept differ (not counting masked ones).
    pub fn is_full(&self) -> bool {
        self.unmasked >= self.cap
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Difference> {
        self.list.iter()
    }
}

/// One leg compared with the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The leg or the primary was skipped: nothing to compare.
    Skipped,
    Compared {
        differences: Differences,
        /// A body was beyond the compare cap and compared by hash and size.
        hashed: bool,
        /// Both legs answered with the same status, so their header fields and bodies were
        /// compared too (otherwise only the status or the error was): what a header or body
        /// field's rate is counted over.
        contents: bool,
        /// The same status, but a body of the exchange was cut short of what
        /// `--max-compare-bytes` keeps, for the reactors' capture budget: header fields and
        /// bodies were not compared (`contents` is false).
        squeezed: bool,
    },
}

impl Comparison {
    /// The differences, if the leg was compared.
    pub fn differences(&self) -> Option<&Differences> {
        match self {
            Comparison::Skipped => None,
            Comparison::Compared { differences, .. } => Some(differences),
        }
    }

    pub fn hashed(&self) -> bool {
        matches!(self, Comparison::Compared { hashed: true, .. })
    }

    /// The leg's header fields and body were compared with the primary's.
    pub fn contents_compared(&self) -> bool {
        matches!(self, Comparison::Compared { contents: true, .. })
    }

    /// Header fields and bodies were left uncompared for the capture budget.
    pub fn squeezed(&self) -> bool {
        matches!(self, Comparison::Compared { squeezed: true, .. })
    }
}

/// A field seen on every compared exchange (a status or an error), not only on those whose
/// header fields and bodies were compared.
pub fn is_outcome_field(field: &str) -> bool {
    field == "status" || field.starts_with("error:") || field == STATUS_OR_ERROR
}

/// The statistics' field for any status or error difference, whichever kind: a candidate
/// failing one request in five, as refusals, resets, timeouts and 500s by turns, differs in
/// each kind too seldom to count on its own.
pub const STATUS_OR_ERROR: &str = "status or error";

/// Both comparisons of one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// Secondary vs primary (Diff2).
    pub noise: Comparison,
    /// Candidate vs primary (Diff1), with `masked` set on the fields the noise explains.
    pub raw: Comparison,
}

impl Analysis {
    /// Both comparisons found more fields than they keep: the candidate's unnamed ones count
    /// as noise (as the statistics count them), not beyond it.
    pub fn more_is_noise(&self) -> bool {
        let more = |c: &Comparison| c.differences().is_some_and(|d| d.more);
        more(&self.raw) && more(&self.noise)
    }

    /// Compares the three legs of `record`.
    pub fn of(record: &ExchangeRecord, rules: &Rules) -> Analysis {
        // Legs are in `Role::ALL` order: primary, secondary, candidate.
        let [p, s, c] = &record.legs;
        if identical(p, s) && identical(p, c) {
            // The common case, settled without splitting a field: no rule can find a
            // difference between equal bytes.
            let same = || Comparison::Compared {
                differences: Differences::default(),
                hashed: false,
                contents: true,
                squeezed: false,
            };
            return Analysis {
                noise: same(),
                raw: same(),
            };
        }
        let (primary, secondary, candidate) = (Leg::new(p), Leg::new(s), Leg::new(c));
        // A body cut short by the capture budget, not by the cap, would be compared by hash
        // where the others are compared by field (noise would not mask like for like), and
        // a compressed one by its bytes as sent: neither pair's contents are compared.
        let contents = ![p, s, c].iter().any(|leg| squeezed(leg, rules.cap));
        let mut noise = compare(&primary, &secondary, rules, contents, Differences::noise());
        // The secondary's fields mask the candidate's as they are found.
        let mask = match &noise {
            Comparison::Compared { differences, .. } => Differences::masked_by(differences),
            Comparison::Skipped => Differences::default(),
        };
        let mut raw = compare(&primary, &candidate, rules, contents, mask);
        second_look_at_noise(&primary, &secondary, rules, &mut noise, &mut raw);
        Analysis { noise, raw }
    }
}

/// A response whose body was cut short of `cap` (the reactors' capture budget was full) and
/// would otherwise have been kept whole. Once cut, a capture keeps no more bytes, so one cut
/// at the cap itself holds exactly `cap`.
fn squeezed(leg: &LegOutcome, cap: usize) -> bool {
    matches!(leg, LegOutcome::Response { body, body_bytes, .. }
        if body.truncated && body.bytes.len() < cap && *body_bytes <= cap as u64)
}

/// When the secondary differed in more fields than its comparison keeps, the candidate's
/// fields beyond them could not be masked: a service noisy in a thousand fields would read
/// as a candidate that changed hundreds. The secondary is compared again for those fields
/// alone (the parsed bodies are kept), and the ones it differs in too join its list and are
/// masked in the candidate's.
fn second_look_at_noise(
    primary: &Leg<'_>,
    secondary: &Leg<'_>,
    rules: &Rules,
    noise: &mut Comparison,
    raw: &mut Comparison,
) {
    let (
        Comparison::Compared {
            differences: noise, ..
        },
        Comparison::Compared {
            differences: raw, ..
        },
    ) = (noise, raw)
    else {
        return;
    };
    if !noise.more {
        return;
    }
    let mut wanted: Vec<String> = raw
        .iter()
        .filter(|d| !d.masked)
        .map(|d| d.field.clone())
        .collect();
    if wanted.is_empty() {
        return;
    }
    wanted.sort_unstable();
    let Comparison::Compared {
        differences: found, ..
    } = compare(primary, secondary, rules, true, Differences::only(wanted))
    else {
        return;
    };
    for difference in &mut raw.list {
        if !difference.masked && found.contains(&difference.field) {
            difference.masked = true;
            raw.unmasked -= 1;
        }
    }
    if let Some(names) = &mut noise.names {
        names.extend(found.list.iter().map(|d| d.field.clone()));
    }
    noise.list.extend(found.list);
}

/// Two responses with the same status, the same field lines and the same whole body (what
/// `compare` would find no difference in, whatever the rules; it ignores reason phrases).
fn identical(a: &LegOutcome, b: &LegOutcome) -> bool {
    match (a, b) {
        (
            LegOutcome::Response {
                status: status_a,
                interim: interim_a,
                fields: fields_a,
                body: body_a,
                ..
            },
            LegOutcome::Response {
                status: status_b,
                interim: interim_b,
                fields: fields_b,
                body: body_b,
                ..
            },
        ) => {
            status_a == status_b
                && interim_a == interim_b
                && fields_a == fields_b
                && !body_a.truncated
                && !body_b.truncated
                && body_a.bytes == body_b.bytes
        }
        _ => false,
    }
}

/// The short name of a leg failure, as in `error:timeout`.
pub fn error_kind(error: &LegError) -> &'static str {
    match error {
        LegError::ConnectionRefused => "refused",
        LegError::ConnectTimeout(_) => "connect-timeout",
        LegError::Timeout(_) => "timeout",
        LegError::ConnectionReset => "reset",
        LegError::ClosedEarly => "closed",
        LegError::IdleTimeout => "idle-timeout",
        LegError::Malformed(_) => "malformed",
        LegError::Overflow => "overflow",
        LegError::ClientClosed => "client-closed",
        LegError::ClientStalled(_) => "client-stalled",
        LegError::UploadCut => "upload-cut",
        LegError::MadeRoom => "made-room",
        LegError::Tls(_) => "tls",
        LegError::Io(_) => "io",
        LegError::Unresolved => "unresolved",
    }
}

/// A leg's outcome, with its fields split and its body decoded and parsed lazily, once, even
/// though the primary is compared twice.
enum Leg<'a> {
    Response(Response<'a>),
    Failed(&'a LegError),
    Skipped,
}

/// `(name, value)` in order, values trimmed.
type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

struct Response<'a> {
    status: u16,
    reason: &'a str,
    /// The last interim status and its fields.
    interim: Option<(u16, Fields<'a>)>,
    fields: Fields<'a>,
    body_bytes: u64,
    body: &'a CapturedBody,
    content_encoding: Option<String>,
    is_json_type: bool,
    payload: OnceCell<Payload<'a>>,
    /// Boxed: a tree (a node and two buffers) would make every leg that much larger.
    json: OnceCell<Option<Box<json::Tree>>>,
}

impl<'a> Leg<'a> {
    fn new(outcome: &'a LegOutcome) -> Leg<'a> {
        match outcome {
            LegOutcome::Response {
                status,
                reason,
                interim,
                body_bytes,
                fields,
                body,
                ..
            } => {
                let fields = split_fields(fields);
                let content_encoding = values_named(&fields, b"content-encoding")
                    .next()
                    .is_some()
                    .then(|| {
                        String::from_utf8_lossy(&joined_values(&fields, b"content-encoding"))
                            .into_owned()
                    });
                // application/json, application/problem+json, text/json ...
                let is_json_type = values_named(&fields, b"content-type").any(|v| {
                    let media = v.split(|&b| b == b';').next().unwrap_or(v);
                    media.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"))
                });
                Leg::Response(Response {
                    status: *status,
                    reason,
                    interim: interim
                        .as_ref()
                        .map(|interim| (interim.status, split_fields(&interim.fields))),
                    fields,
                    body_bytes: *body_bytes,
                    body,
                    content_encoding,
                    is_json_type,
                    payload: OnceCell::new(),
                    json: OnceCell::new(),
                })
            }
            // The client's doing (it closed, or stalled, mid-upload), or trident's (it let
            // the client go when the primary failed, and cut the shadows waiting on the
            // rest; it cut a gone client's primary to serve a new client): says nothing of
            // the upstream, and is not compared. Compared, a shadow cut
            // so differed from the primary's own failure, and an identical candidate failed
            // on the race of which came first.
            LegOutcome::Failed {
                error:
                    LegError::ClientClosed
                    | LegError::ClientStalled(_)
                    | LegError::UploadCut
                    | LegError::MadeRoom,
                ..
            } => Leg::Skipped,
            LegOutcome::Failed { error, .. } => Leg::Failed(error),
            LegOutcome::Skipped(_) => Leg::Skipped,
        }
    }
}

impl<'a> Response<'a> {
    fn payload(&self, cap: usize) -> &Payload<'a> {
        self.payload
            .get_or_init(|| decode(self.content_encoding.as_deref(), &self.body.bytes, cap))
    }

    /// The body as JSON, if it is JSON by its type or by its first byte, and parses.
    fn json(&self, cap: usize) -> Option<json::Doc<'_>> {
        let Payload::Bytes(bytes) = self.payload(cap) else {
            return None;
        };
        // RFC 8259 §8.1: a parser may ignore a byte order mark, and some services send one
        // (with a JSON media type: otherwise the first byte is what sniffing looks at). One
        // leg sending it and the other not is a difference of its own (`body bom`).
        let bytes = match bytes.strip_prefix(BOM) {
            Some(rest) if self.is_json_type => rest,
            _ => bytes,
        };
        let tree = self.json.get_or_init(|| {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            let sniffed = matches!(first, Some(b'{' | b'['));
            if self.is_json_type || sniffed {
                json::parse(bytes).map(Box::new)
            } else {
                None
            }
        });
        tree.as_ref().map(|tree| json::Doc::new(bytes, tree))
    }

    fn status_text(&self) -> String {
        if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        }
    }
}

/// Compares `other` with the primary, its differences gathered in `differences` (empty).
/// `with_contents`: header fields and bodies are compared where the statuses agree.
fn compare(
    primary: &Leg<'_>,
    other: &Leg<'_>,
    rules: &Rules,
    with_contents: bool,
    differences: Differences,
) -> Comparison {
    let mut differences = differences;
    let mut hashed = false;
    let mut contents = false;
    let mut squeezed = false;
    match (primary, other) {
        (Leg::Skipped, _) | (_, Leg::Skipped) => return Comparison::Skipped,
        (Leg::Failed(a), Leg::Failed(b)) => {
            if error_kind(a) != error_kind(b) {
                let field = format!("error:{}", error_kind(b));
                differences.push_with(&field, || a.to_string(), || b.to_string());
            }
        }
        (Leg::Failed(error), Leg::Response(response)) => {
            let field = format!("error:{}", error_kind(error));
            differences.push_with(&field, || error.to_string(), || response.status_text());
        }
        (Leg::Response(response), Leg::Failed(error)) => {
            let field = format!("error:{}", error_kind(error));
            differences.push_with(&field, || response.status_text(), || error.to_string());
        }
        (Leg::Response(p), Leg::Response(o)) => {
            if p.status != o.status {
                differences.push_with("status", || p.status_text(), || o.status_text());
            } else if !with_contents {
                squeezed = true;
            } else {
                match (&p.interim, &o.interim) {
                    (None, None) => {}
                    (Some((a, p_fields)), Some((b, o_fields))) if a == b => {
                        compare_headers(
                            p_fields,
                            o_fields,
                            "interim header",
                            rules,
                            &mut differences,
                        );
                    }
                    (a, b) => {
                        let text = |interim: &Option<(u16, Fields<'_>)>| {
                            interim
                                .as_ref()
                                .map_or_else(|| "none".to_string(), |(s, _)| s.to_string())
                        };
                        differences.push_with("interim", || text(a), || text(b));
                    }
                }
                compare_headers(&p.fields, &o.fields, "header", rules, &mut differences);
                let plain = |r: &Response<'_>| r.content_encoding.is_none();
                if p.body_bytes == 0
                    && o.body_bytes == 0
                    && rules.length_without_body
                    && plain(p)
                    && plain(o)
                {
                    bodiless_length(p, o, &mut differences);
                }
                hashed = compare_bodies(p, o, rules, &mut differences);
                contents = true;
            }
        }
    }
    Comparison::Compared {
        differences,
        hashed,
        contents,
        squeezed,
    }
}

/// With no body on either leg (a HEAD, a 204 or 304), `Content-Length` is all that stands
/// for it: a HEAD's is the length its GET would send (RFC 9110 §9.3.2), and a candidate that
/// says 0 where the stable version says 5000 differs. Otherwise the body is compared instead.
/// Only for bodies sent as they are: compressed at another level, the same content has
/// another length.
fn bodiless_length(p: &Response<'_>, o: &Response<'_>, out: &mut Differences) {
    let (mine, theirs) = (
        joined_values(&p.fields, b"content-length"),
        joined_values(&o.fields, b"content-length"),
    );
    if mine != theirs {
        // Named and sampled as any other header's difference (`compare_fields`).
        let field = match (mine.is_empty(), theirs.is_empty()) {
            (false, true) => "header content-length missing",
            (true, false) => "header content-length extra",
            _ => "header content-length",
        };
        let say = |value: &[u8]| match value {
            [] => "absent".to_string(),
            value => abbreviate::text(value),
        };
        out.push_with(field, || say(&mine), || say(&theirs));
    }
}

/// `Name: value\r\n` lines into `(name, trimmed value)` pairs.
fn split_fields(fields: &[u8]) -> Fields<'_> {
    fields
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], trim(&line[colon + 1..])))
        })
        .collect()
}

/// Every value of the fields called `name` (any case), in order; lazily, since most
/// comparisons find them equal and never need them gathered.
fn values_named<'a, 'f>(
    fields: &'f [(&'a [u8], &'a [u8])],
    name: &'f [u8],
) -> impl Iterator<Item = &'a [u8]> + Clone + 'f {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Every value of the fields called `name`, joined with `, ` as one field line would hold them.
fn joined_values(fields: &[(&[u8], &[u8])], name: &[u8]) -> Vec<u8> {
    values_named(fields, name)
        .collect::<Vec<_>>()
        .join(&b", "[..])
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// A header name longer than this is cut in a field's name and ends in `…`: a hostile leg
/// sending long names that change on every response would otherwise grow the statistics by
/// each one (the response head may be 64 KiB).
const MAX_HEADER_NAME_LEN: usize = 128;

/// Compares every header the primary sent (all values of a name, in order) with the other
/// leg's, then names the other's extra ones; each difference is named `KIND NAME...`.
fn compare_headers(
    p: &[(&[u8], &[u8])],
    o: &[(&[u8], &[u8])],
    kind: &str,
    rules: &Rules,
    out: &mut Differences,
) {
    let first_of_name = |fields: &[(&[u8], &[u8])], i: usize| {
        !fields[..i]
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(fields[i].0))
    };
    let join =
        |fields: &[(&[u8], &[u8])], name: &[u8]| abbreviate::text(&joined_values(fields, name));
    // Only a difference needs the name lower-cased: most headers are equal. A name is kept
    // for the whole epoch, so a long one is cut (names are tokens: ASCII, any cut is whole).
    let lower = |name: &[u8]| {
        let mut lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        if lower.len() > MAX_HEADER_NAME_LEN && lower.is_char_boundary(MAX_HEADER_NAME_LEN) {
            lower.truncate(MAX_HEADER_NAME_LEN);
            lower.push('…');
        }
        lower
    };
    for (i, (name, _)) in p.iter().enumerate() {
        if rules.header_ignored(name) || !first_of_name(p, i) {
            continue;
        }
        let theirs = values_named(o, name);
        if theirs.clone().next().is_none() {
            let field = format!("{kind} {} missing", lower(name));
            out.push_with(&field, || join(p, name), || "absent".to_string());
        } else if !joined(values_named(p, name)).eq(joined(theirs)) {
            let field = format!("{kind} {}", lower(name));
            out.push_with(&field, || join(p, name), || join(o, name));
        }
    }
    for (i, (name, _)) in o.iter().enumerate() {
        if rules.header_ignored(name)
            || !first_of_name(o, i)
            || p.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let field = format!("{kind} {} extra", lower(name));
        out.push_with(&field, || "absent".to_string(), || join(o, name));
    }
}

/// A field's values as one, joined by `, `: a field repeated is the same as its values
/// joined by commas (RFC 9110 §5.3). Commas inside a value (a quoted string, a URL) stay as
/// they are, so `charset="a,b"` and `charset="a, b"` still differ.
fn joined<'a>(values: impl Iterator<Item = &'a [u8]> + 'a) -> impl Iterator<Item = u8> + 'a {
    values.enumerate().flat_map(|(i, value)| {
        let separator: &[u8] = if i == 0 { b"" } else { b", " };
        separator.iter().chain(value).copied()
    })
}

/// A UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Compares the bodies; true when they could only be compared by hash.
fn compare_bodies(
    p: &Response<'_>,
    o: &Response<'_>,
    rules: &Rules,
    out: &mut Differences,
) -> bool {
    let by_hash = |out: &mut Differences| {
        if p.body_bytes != o.body_bytes || p.body.hash() != o.body.hash() {
            let describe =
                |r: &Response<'_>| format!("{} bytes, hash {:016x}", r.body_bytes, r.body.hash());
            if !rules.ignore_fields.whole_body_field("body hash") {
                out.push_with("body hash", || describe(p), || describe(o));
            }
        } else {
            same_bytes_coded_otherwise(p, o, rules, out);
        }
        true
    };
    if p.body.truncated || o.body.truncated {
        return by_decoded_hash(p, o, rules, out).unwrap_or_else(|| by_hash(out));
    }
    // The common case: the same bytes in the same coding mean the same body.
    if p.content_encoding == o.content_encoding && p.body.bytes == o.body.bytes {
        return false;
    }
    let (mine, theirs) = match (p.payload(rules.cap), o.payload(rules.cap)) {
        (Payload::Bytes(mine), Payload::Bytes(theirs)) => (mine, theirs),
        // Neither decodes: their bytes, as sent, are all there is to compare.
        (Payload::Corrupt, Payload::Corrupt) => {
            if p.body.bytes == o.body.bytes {
                // As past the cap (`by_hash`): said to be coded otherwise (hunt 84).
                same_bytes_coded_otherwise(p, o, rules, out);
                return false;
            }
            if !rules.ignore_fields.whole_body_field("body") {
                let (primary, other) = abbreviate::bytes_pair(&p.body.bytes, &o.body.bytes);
                out.push_with("body", || primary, || other);
            }
            return false;
        }
        // One does not decode in its coding: a client reads nothing of it, however alike
        // the bytes it sent are to what the other's decode to.
        (Payload::Corrupt, _) | (_, Payload::Corrupt) => {
            let says = |r: &Response<'_>| match r.payload(rules.cap) {
                Payload::Corrupt => format!(
                    "{} bytes that do not decode as {}",
                    r.body_bytes,
                    r.content_encoding.as_deref().unwrap_or_default()
                ),
                _ => "decodes".to_string(),
            };
            if !rules.ignore_fields.whole_body_field("body coding") {
                out.push_with("body coding", || says(p), || says(o));
            }
            return false;
        }
        _ => return by_decoded_hash(p, o, rules, out).unwrap_or_else(|| by_hash(out)),
    };
    if mine == theirs {
        // Alike as sent, in a coding trident does not decode (`br`, compared as sent), is
        // what the bytes beyond the cap show too (`by_hash`). No bytes are nothing in any
        // coding.
        if p.body.bytes == o.body.bytes && !p.body.bytes.is_empty() {
            same_bytes_coded_otherwise(p, o, rules, out);
        }
        return false;
    }
    if let (Some(a), Some(b)) = (p.json(rules.cap), o.json(rules.cap)) {
        let bom = |bytes: &[u8]| bytes.starts_with(BOM);
        if bom(mine) != bom(theirs) && !rules.ignore_fields.whole_body_field("body bom") {
            let says = |present: bool| if present { "present" } else { "absent" }.to_string();
            out.push_with("body bom", || says(bom(mine)), || says(bom(theirs)));
        }
        json::diff(a, b, &rules.ignore_fields, out);
        return false;
    }
    if !rules.ignore_fields.whole_body_field("body") {
        let (primary, other) = abbreviate::bytes_pair(mine, theirs);
        out.push_with("body", || primary, || other);
    }
    false
}

/// A response's `Content-Encoding` as what it means: lower case, `x-gzip` as `gzip` (and
/// `x-compress` as `compress`), without
/// `identity`, joined by `, ` (empty: not encoded).
/// The same bytes said to be coded otherwise: one of the two cannot be read as its coding
/// says (with `--ignore-header Content-Encoding` nothing else says so). A body mislabelled
/// so was seen beyond the cap only (hunt 82).
fn same_bytes_coded_otherwise(
    p: &Response<'_>,
    o: &Response<'_>,
    rules: &Rules,
    out: &mut Differences,
) {
    if coding(p) != coding(o) && !rules.ignore_fields.whole_body_field("body coding") {
        let says = |r: &Response<'_>| match coding(r) {
            c if c.is_empty() => format!("{} bytes, not encoded", r.body_bytes),
            c => format!("{} bytes as {c}", r.body_bytes),
        };
        out.push_with("body coding", || says(p), || says(o));
    }
}

fn coding(r: &Response<'_>) -> String {
    let Some(codings) = &r.content_encoding else {
        return String::new();
    };
    codings
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        // RFC 9110 §8.4.1: the `x-` names are the same codings.
        .map(|c| match c.as_str() {
            "x-gzip" => "gzip".to_string(),
            "x-compress" => "compress".to_string(),
            _ => c,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most bytes a body is decoded to for `by_decoded_hash`: beyond, it is compared by the hash
/// of its bytes as sent (a zip bomb costs the reporting thread this much inflating, no more).
const DECODED_HASH_LIMIT: u64 = 64 * 1024 * 1024;

/// Bodies of which one is past the cap, compared by the length and hash of what they decode
/// to: the same content compressed at another level, or not compressed, is the same body.
/// `None` when that cannot be known: a body compressed past the cap was kept only as the
/// hash of its bytes as sent, and one may not decode within `DECODED_HASH_LIMIT`.
fn by_decoded_hash(
    p: &Response<'_>,
    o: &Response<'_>,
    rules: &Rules,
    out: &mut Differences,
) -> Option<bool> {
    let digest = |r: &Response<'_>| {
        // The coding as it counts: `identity` is none, `x-gzip` is `gzip` (hunt 84: `gzip,
        // identity` and `identity` read as another body past the cap).
        let coding = coding(r);
        if r.body.truncated {
            // Hashed as it came: its content's hash unless it was encoded.
            return coding.is_empty().then(|| (r.body_bytes, r.body.hash()));
        }
        match r.payload(rules.cap) {
            Payload::Bytes(bytes) => Some((bytes.len() as u64, BodyHash::of(bytes))),
            Payload::Corrupt => Some((r.body_bytes, r.body.hash())),
            Payload::TooLarge => decoded_hash(Some(&coding), &r.body.bytes, DECODED_HASH_LIMIT),
        }
    };
    let (mine, theirs) = (digest(p)?, digest(o)?);
    if mine != theirs {
        let describe = |(len, hash): (u64, u64)| format!("{len} bytes, hash {hash:016x}");
        if !rules.ignore_fields.whole_body_field("body hash") {
            out.push_with("body hash", || describe(mine), || describe(theirs));
        }
    }
    Some(true)
}

/// Values cut to a sample's length: a bounded writer for serialisers, and text helpers.
/// A field name as a list shows it: quoted (`"a, b"`, with `"` and `\` escaped) when it holds
/// a character that separates or closes a list of names (`,` `;` `(` `)`), so that a JSON key
/// such as `x) differs: y` cannot make a console line or a summary read otherwise. Header
/// names are tokens, and never hold one.
pub fn listed_name(name: &str) -> std::borrow::Cow<'_, str> {
    // Bytes, not chars: every special one is ASCII, and this runs for every exchange.
    let special = |b: &u8| matches!(b, b',' | b';' | b'(' | b')' | b'"' | b'\\');
    if !name.as_bytes().iter().any(special) {
        return name.into();
    }
    let mut quoted = String::with_capacity(name.len() + 4);
    quoted.push('"');
    for c in name.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted.into()
}

pub mod abbreviate {
    use super::io;

    /// Longest value text kept in a sample, in bytes.
    pub const LIMIT: usize = 100;

    /// A writer that takes `LIMIT + 1` bytes (so `finish` can tell it was cut) and then
    /// refuses more, which stops a serialiser early.
    pub struct Limited<'a> {
        out: &'a mut Vec<u8>,
    }

    impl<'a> Limited<'a> {
        pub fn new(out: &'a mut Vec<u8>) -> Limited<'a> {
            Limited { out }
        }
    }

    impl io::Write for Limited<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = (LIMIT + 1).saturating_sub(self.out.len());
            if room == 0 {
                return Err(io::Error::other("sample is long enough"));
            }
            let n = buf.len().min(room);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The text a `Limited` writer collected, with `…` if it was cut.
    pub fn finish(bytes: Vec<u8>) -> String {
        text(&bytes)
    }

    /// At most `LIMIT` bytes of `bytes` as text (lossy), with `…` if cut.
    pub fn text(bytes: &[u8]) -> String {
        let head = &bytes[..bytes.len().min(LIMIT + 4)];
        let lossy = String::from_utf8_lossy(head);
        if bytes.len() <= LIMIT {
            return lossy.into_owned();
        }
        let mut cut = LIMIT.min(lossy.len());
        while !lossy.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut out = lossy[..cut].to_string();
        out.push('…');
        out
    }

    /// Two bodies that are not JSON, each as `bytes` gives it, unless they first differ past
    /// what a sample shows: then each from a little before that byte (`…` in front). Binary
    /// bodies, or samples that would read alike, show where they part and their next bytes
    /// in hex, so that the two samples never read the same.
    pub fn bytes_pair(a: &[u8], b: &[u8]) -> (String, String) {
        const CONTEXT: usize = 20;
        let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        // Where binary bodies part, with their next bytes in hex: two of a size read alike
        // otherwise.
        let binary = |body: &[u8]| {
            let next = &body[same.min(body.len())..];
            let hex: Vec<String> = next.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(
                "{} (binary, from byte {same}: {})",
                size(body.len()),
                hex.join(" ")
            )
        };
        if same + CONTEXT <= LIMIT {
            let (mine, theirs) = (bytes(a), bytes(b));
            if mine != theirs {
                return (mine, theirs);
            }
            return (binary(a), binary(b));
        }
        // The bytes before `same` are the same on both sides: one boundary for both.
        let mut start = same - CONTEXT;
        while start > 0 && (a[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        let from = |body: &[u8]| match text_sample(&body[start..]) {
            Some(text) => format!("{}: …{text}", size(body.len())),
            None => binary(body),
        };
        (from(a), from(b))
    }

    /// A body that is not JSON: its size and, if it is text, its start.
    pub fn bytes(body: &[u8]) -> String {
        match text_sample(body) {
            Some(text) => format!("{}: {text}", size(body.len())),
            None => format!("{} (binary)", size(body.len())),
        }
    }

    /// `text` of `body` if its start reads as text; None for binary.
    fn text_sample(body: &[u8]) -> Option<String> {
        let printable = body
            .iter()
            .take(LIMIT)
            .all(|&b| b.is_ascii_graphic() || b == b' ' || b >= 0x80 || b.is_ascii_whitespace());
        // A prefix cut inside a character is still text (`error_len` is None then).
        let utf8 = match std::str::from_utf8(&body[..body.len().min(LIMIT)]) {
            Ok(_) => true,
            Err(err) => err.error_len().is_none(),
        };
        (printable && utf8).then(|| text(body))
    }

    /// `1 byte`, `N bytes`.
    fn size(len: usize) -> String {
        match len {
            1 => "1 byte".to_string(),
            n => format!("{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Version;
    use crate::report::Interim;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;
    use std::time::Duration;

    fn response(status: u16, fields: &str, body: &[u8]) -> LegOutcome {
        captured(status, fields, body, 1024)
    }

    /// A response whose body was captured up to `cap` bytes (and hashed past them).
    fn captured(status: u16, fields: &str, body: &[u8], cap: usize) -> LegOutcome {
        let mut capture = CapturedBody::new();
        capture.extend(body, cap);
        LegOutcome::Response {
            status,
            reason: "OK".to_string(),
            body_bytes: body.len() as u64,
            elapsed: Duration::from_millis(1),
            interim: None,
            fields: fields.as_bytes().to_vec(),
            body: capture,
        }
    }

    /// `outcome` (a response) after an interim response with `status` and no fields.
    fn after(status: u16, outcome: LegOutcome) -> LegOutcome {
        hinted(status, "", outcome)
    }

    /// `outcome` (a response) after an interim response with `status` and `fields`.
    fn hinted(status: u16, fields: &str, mut outcome: LegOutcome) -> LegOutcome {
        if let LegOutcome::Response { interim, .. } = &mut outcome {
            *interim = Some(Interim {
                status,
                fields: fields.as_bytes().to_vec(),
            });
        }
        outcome
    }

    fn failed(error: LegError) -> LegOutcome {
        LegOutcome::Failed {
            error,
            elapsed: Duration::from_millis(1),
        }
    }

    fn record(legs: [LegOutcome; 3]) -> ExchangeRecord {
        ExchangeRecord {
            id: 1,
            method: "GET".to_string(),
            target: "/".to_string(),
            version: Version::Http11,
            host: None,
            request_body_bytes: 0,
            epoch: 0,
            client_left: false,
            upstreams: [None; 3],
            legs,
        }
    }

    fn rules() -> Rules {
        Rules::new(&["X-Trace".to_string()], &["meta.ts".to_string()], 1024)
    }

    #[test]
    fn identical_legs_take_the_short_cut_to_what_the_full_comparison_finds() {
        let mut long = CapturedBody::new();
        long.extend(&[b'x'; 2048], 1024);
        let truncated = LegOutcome::Response {
            status: 200,
            reason: "OK".to_string(),
            body_bytes: 2048,
            elapsed: Duration::from_millis(1),
            interim: None,
            fields: Vec::new(),
            body: long,
        };
        let rows = [
            (
                response(200, "Content-Type: text/plain\r\n", b"hello"),
                true,
            ),
            (response(404, "", b""), true),
            (after(103, response(200, "", b"hinted")), true),
            (
                response(200, "Content-Type: application/json\r\n", b"{\"a\":1}"),
                true,
            ),
            (
                response(200, "Content-Encoding: gzip\r\n", &gzip(b"zipped")),
                true,
            ),
            // Not for the short cut: a body beyond the cap is compared by hash.
            (truncated, false),
            (failed(LegError::ConnectionRefused), false),
        ];
        for (leg, short) in rows {
            assert_eq!(identical(&leg, &leg), short, "{leg:?}");
            let full = compare(
                &Leg::new(&leg),
                &Leg::new(&leg),
                &rules(),
                true,
                Differences::default(),
            );
            let analysis = Analysis::of(&record([leg.clone(), leg.clone(), leg.clone()]), &rules());
            assert_eq!(analysis.raw, full, "{leg:?}");
            assert_eq!(analysis.noise, full, "{leg:?}");
        }
    }

    /// A shadow cut short once past the primary's body differs from it as a whole longer body
    /// does (`body hash`), so one that finished before the primary did and one that was cut
    /// mask each other as noise: whether a shadow is cut depends on when the primary ends.
    #[test]
    fn a_cut_shadow_body_is_a_body_difference_and_masked_by_a_whole_one() {
        let long = |sent: usize, cut: bool| {
            let mut body = CapturedBody::new();
            body.extend(&vec![b'x'; sent], 16);
            body.cut = cut;
            LegOutcome::Response {
                status: 200,
                reason: "OK".to_string(),
                body_bytes: sent as u64,
                elapsed: Duration::from_millis(1),
                interim: None,
                fields: Vec::new(),
                body,
            }
        };
        let primary = response(200, "", b"short");
        let whole = long(3000, false);
        let cut = long(1100, true);
        assert_eq!(pair(primary.clone(), cut.clone()), ["body hash"]);
        assert_eq!(
            raw(primary.clone(), whole.clone(), cut.clone()),
            ["body hash (masked)"]
        );
        assert_eq!(raw(primary, cut, whole), ["body hash (masked)"]);
    }

    /// The candidate's differences as `field` or `field (masked)`.
    fn raw(primary: LegOutcome, secondary: LegOutcome, candidate: LegOutcome) -> Vec<String> {
        raw_with(&rules(), [primary, secondary, candidate])
    }

    /// `raw`, under `rules`.
    fn raw_with(rules: &Rules, legs: [LegOutcome; 3]) -> Vec<String> {
        let analysis = Analysis::of(&record(legs), rules);
        match analysis.raw {
            Comparison::Skipped => vec!["skipped".to_string()],
            Comparison::Compared { differences, .. } => differences
                .iter()
                .map(|d| {
                    if d.masked {
                        format!("{} (masked)", d.field)
                    } else {
                        d.field.clone()
                    }
                })
                .collect(),
        }
    }

    fn pair(primary: LegOutcome, candidate: LegOutcome) -> Vec<String> {
        raw(primary.clone(), primary, candidate)
    }

    /// `pair`, under `rules`.
    fn pair_with(rules: &Rules, primary: LegOutcome, candidate: LegOutcome) -> Vec<String> {
        raw_with(rules, [primary.clone(), primary, candidate])
    }

    const JSON: &str = "Content-Type: application/json\r\n";

    #[test]
    fn status_headers_and_errors() {
        let ok = |fields: &str| response(200, fields, b"hi");
        let rows: Vec<(LegOutcome, LegOutcome, &[&str])> =
            vec![
            (ok(""), ok(""), &[]),
            (ok(""), response(500, "", b"hi"), &["status"]),
            // A different status says it all: no header or body fields on top.
            (
                ok("A: 1\r\n"),
                response(404, "A: 2\r\n", b"gone"),
                &["status"],
            ),
            (ok("A: 1\r\n"), ok("a:  1 \r\n"), &[]),
            // A repeated field is its values joined by commas (RFC 9110 §5.3).
            (ok("A: 1\r\nA: 2\r\n"), ok("A: 1, 2\r\n"), &[]),
            (ok("A: 1\r\nA: 2\r\n"), ok("A: 1,2\r\n"), &["header a"]),
            (
                ok("Content-Type: text/html; charset=\"a,b\"\r\n"),
                ok("Content-Type: text/html; charset=\"a, b\"\r\n"),
                &["header content-type"],
            ),
            (ok("A: 1\r\nA: 2\r\n"), ok("A: 2, 1\r\n"), &["header a"]),
            // Interim responses: sent by one leg only, or a different status.
            (ok(""), after(103, ok("")), &["interim"]),
            (after(103, ok("")), ok("A: 1\r\n"), &["interim", "header a extra"]),
            (after(100, ok("")), after(103, ok("")), &["interim"]),
            (after(103, ok("")), after(103, ok("")), &[]),
            // The same interim status: its fields are compared, under the same rules.
            (
                hinted(103, "Link: </a.css>; rel=preload\r\n", ok("")),
                hinted(103, "Link: </b.css>; rel=preload\r\n", ok("")),
                &["interim header link"],
            ),
            (
                hinted(103, "Link: </a.css>\r\nDate: 1\r\n", ok("")),
                hinted(103, "Date: 2\r\nX: 1\r\n", ok("")),
                &["interim header link missing", "interim header x extra"],
            ),
            (
                hinted(103, "Link: </a.css>\r\n", ok("")),
                hinted(100, "", ok("")),
                &["interim"],
            ),
            (ok(""), after(103, response(500, "", b"hi")), &["status"]),
            (ok("A: 1\r\n"), ok("A: 2\r\n"), &["header a"]),
            (ok("A: 1\r\nB: 2\r\n"), ok("B: 2\r\n"), &["header a missing"]),
            (ok(""), ok("New-Thing: 1\r\n"), &["header new-thing extra"]),
            (ok("V: 1\r\nV: 2\r\n"), ok("V: 1\r\n"), &["header v"]),
            (ok("V: 1\r\nV: 2\r\n"), ok("v: 1\r\nV: 2\r\n"), &[]),
            // The default ignore list and --ignore-header, by any case.
            (
                ok("Date: Mon\r\nServer: a\r\nETag: \"1\"\r\nX-Request-Id: 1\r\nX-Trace: 1\r\n"),
                ok("date: Tue\r\nServer: b\r\nETag: \"2\"\r\nx-request-id: 2\r\nx-trace: 2\r\n"),
                &[],
            ),
            (
                ok(""),
                failed(LegError::Timeout(Duration::from_secs(1))),
                &["error:timeout"],
            ),
            (ok(""), failed(LegError::ConnectionRefused), &["error:refused"]),
            (
                failed(LegError::ConnectionReset),
                ok(""),
                &["error:reset"],
            ),
            (
                failed(LegError::ConnectionReset),
                failed(LegError::ConnectionReset),
                &[],
            ),
            (
                failed(LegError::ConnectionReset),
                failed(LegError::Overflow),
                &["error:overflow"],
            ),
        ];
        for (primary, candidate, expected) in rows {
            assert_eq!(
                pair(primary.clone(), candidate.clone()),
                *expected,
                "{primary:?} / {candidate:?}"
            );
        }
    }

    #[test]
    fn a_long_header_name_is_cut_in_the_field_name() {
        let long = "X-".to_string() + &"n".repeat(500);
        let extra = format!("{long}: 1\r\n");
        let found = pair(response(200, "", b"hi"), response(200, &extra, b"hi"));
        let expected = format!("header {}… extra", &long.to_ascii_lowercase()[..128]);
        assert_eq!(found, [expected]);
    }

    #[test]
    fn an_interim_difference_names_both_statuses() {
        let analysis = Analysis::of(
            &record([
                response(200, "", b"x"),
                after(103, response(200, "", b"x")),
                response(200, "", b"x"),
            ]),
            &rules(),
        );
        let noise: Vec<_> = analysis.noise.differences().unwrap().iter().collect();
        assert_eq!(
            (
                noise[0].field.as_str(),
                noise[0].primary.as_str(),
                noise[0].other.as_str()
            ),
            ("interim", "none", "103")
        );
        assert!(analysis.raw.differences().unwrap().is_empty());
    }

    #[test]
    fn skipped_legs_are_not_compared() {
        let ok = response(200, "", b"x");
        assert_eq!(
            raw(ok.clone(), ok.clone(), LegOutcome::Skipped("saturated")),
            ["skipped"]
        );
        let analysis = Analysis::of(
            &record([ok.clone(), LegOutcome::Skipped("saturated"), ok]),
            &rules(),
        );
        assert_eq!(analysis.noise, Comparison::Skipped);
        assert!(matches!(analysis.raw, Comparison::Compared { .. }));
    }

    /// A leg failed by the client, or cut when the primary failed mid-upload, says nothing of
    /// its upstream: not compared, whatever the primary did.
    #[test]
    fn legs_failed_by_the_client_or_cut_are_not_compared() {
        let failed = |error: LegError| LegOutcome::Failed {
            error,
            elapsed: Duration::from_millis(1),
        };
        let closed = failed(LegError::ClosedEarly);
        for cut in [
            LegError::ClientClosed,
            LegError::ClientStalled(Duration::from_millis(5)),
            LegError::UploadCut,
            LegError::MadeRoom,
        ] {
            assert_eq!(
                raw(closed.clone(), closed.clone(), failed(cut.clone())),
                ["skipped"]
            );
        }
        assert_eq!(
            raw(
                closed.clone(),
                closed.clone(),
                failed(LegError::ConnectionReset)
            ),
            ["error:reset"]
        );
    }

    #[test]
    fn bodies_json_bytes_and_ignored_fields() {
        let rows: Vec<(LegOutcome, LegOutcome, &[&str])> = vec![
            (
                response(200, JSON, br#"{"a":1,"b":2}"#),
                response(200, JSON, br#"{"b":2, "a":1}"#),
                &[],
            ),
            (
                response(200, JSON, br#"{"user":{"email":"a"}}"#),
                response(200, JSON, br#"{"user":{"email":"b"}}"#),
                &["body user.email"],
            ),
            // Sniffed without a JSON content type.
            (
                response(200, "", b" {\"a\":1}"),
                response(200, "", b"{\"a\":2}"),
                &["body a"],
            ),
            // A byte order mark before the JSON is ignored (RFC 8259 §8.1), on either side.
            (
                response(200, JSON, b"\xEF\xBB\xBF{\"a\":1,\"b\":2}"),
                response(200, JSON, b"\xEF\xBB\xBF{\"b\":2,\"a\":1}"),
                &[],
            ),
            (
                response(200, JSON, b"\xEF\xBB\xBF{\"a\":1}"),
                response(200, JSON, b"{\"a\":2}"),
                &["body bom", "body a"],
            ),
            // Without a JSON media type a BOM is a first byte like any other: not sniffed.
            (
                response(200, "", b"\xEF\xBB\xBF{\"a\":1}"),
                response(200, "", b"\xEF\xBB\xBF{\"a\":2}"),
                &["body"],
            ),
            // Content type says JSON but it is not: compared as bytes.
            (
                response(200, JSON, b"{oops"),
                response(200, JSON, b"{oops!"),
                &["body"],
            ),
            (
                response(200, "", b"plain text"),
                response(200, "", b"other text"),
                &["body"],
            ),
            // --ignore-field.
            (
                response(200, JSON, br#"{"meta":{"ts":1},"v":1}"#),
                response(200, JSON, br#"{"meta":{"ts":2},"v":1}"#),
                &[],
            ),
            (
                response(
                    200,
                    "Content-Type: application/problem+json; charset=utf-8\r\n",
                    br#"{"a":1}"#,
                ),
                response(
                    200,
                    "Content-Type: application/problem+json; charset=utf-8\r\n",
                    br#"{"a":[]}"#,
                ),
                &["body a type"],
            ),
        ];
        for (primary, candidate, expected) in rows {
            assert_eq!(
                pair(primary.clone(), candidate.clone()),
                *expected,
                "{primary:?} / {candidate:?}"
            );
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A body cut short of the cap by the capture budget: neither pair's header fields and
    /// bodies are compared (hunt 66), where the body compressed at another level read as a
    /// `body hash` difference, and a secondary compared by hash masked nothing of a candidate
    /// compared by field.
    #[test]
    fn a_body_cut_for_the_capture_budget_leaves_the_contents_uncompared() {
        let body = br#"{"ts":1,"user":"ada"}"#;
        let gz = format!("{JSON}Content-Encoding: gzip\r\n");
        let fast = {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(body).unwrap();
            enc.finish().unwrap()
        };
        let best = {
            let mut enc = GzEncoder::new(Vec::new(), Compression::best());
            enc.write_all(body).unwrap();
            enc.finish().unwrap()
        };
        assert_ne!(fast, best);
        let squeezed = captured(200, &gz, &best, 10);
        let rows = [
            // The candidate's compressed at another level, cut short.
            [
                response(200, &gz, &fast),
                response(200, &gz, &fast),
                squeezed.clone(),
            ],
            // The secondary cut short, the candidate differing in a noisy field.
            [
                response(200, JSON, br#"{"ts":1,"user":"ada"}"#),
                captured(200, JSON, br#"{"ts":2,"user":"ada"}"#, 5),
                response(200, JSON, br#"{"ts":3,"user":"ada"}"#),
            ],
        ];
        for legs in rows {
            let analysis = Analysis::of(&record(legs), &rules());
            for comparison in [&analysis.noise, &analysis.raw] {
                assert!(comparison.squeezed(), "{comparison:?}");
                assert!(!comparison.contents_compared());
                assert_eq!(comparison.differences().map(Differences::len), Some(0));
            }
        }
        // A status still differs, and a body cut at the cap itself is compared by hash.
        let failing = Analysis::of(
            &record([
                response(200, JSON, body),
                response(200, JSON, body),
                captured(500, "", b"oops", 1),
            ]),
            &rules(),
        );
        assert_eq!(
            failing
                .raw
                .differences()
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .field,
            "status"
        );
        let at_cap = Analysis::of(
            &record([
                captured(200, "", &[b'a'; 2000], 1024),
                captured(200, "", &[b'a'; 2000], 1024),
                captured(200, "", &[b'b'; 2000], 1024),
            ]),
            &rules(),
        );
        assert!(!at_cap.raw.squeezed() && at_cap.raw.hashed());
    }

    /// The same bytes under another coding differ in `body coding`, also with
    /// `Content-Encoding` itself ignored (hunt 66: both read `same`).
    #[test]
    fn the_same_bytes_in_another_coding_differ() {
        let ignoring = Rules::new(&["Content-Encoding".to_string()], &[], 16);
        let none = Vec::<String>::new();
        let plain = vec![b'a'; 100];
        let zipped = gzip(&plain);
        let rows = [
            // A plain body labelled gzip.
            (
                captured(200, "", &plain, 16),
                captured(200, "Content-Encoding: gzip\r\n", &plain, 16),
            ),
            // Gzip bytes sent without their label.
            (
                captured(200, "Content-Encoding: gzip\r\n", &zipped, 16),
                captured(200, "", &zipped, 16),
            ),
        ];
        for (primary, candidate) in rows {
            assert_eq!(pair_with(&ignoring, primary, candidate), ["body coding"]);
        }
        // The same label spelt otherwise is the same coding.
        assert_eq!(
            pair_with(
                &ignoring,
                captured(200, "Content-Encoding: gzip\r\n", &zipped, 16),
                captured(200, "Content-Encoding: X-Gzip, identity\r\n", &zipped, 16),
            ),
            none
        );
        let compress =
            |name: &str| captured(200, &format!("Content-Encoding: {name}\r\n"), &zipped, 16);
        assert_eq!(
            pair_with(&ignoring, compress("compress"), compress("x-compress")),
            none
        );
        // Within the cap too, in a coding trident does not decode (compared as sent): the
        // same bytes labelled `br` read as the same body (hunt 82).
        let under = Rules::new(&["Content-Encoding".to_string()], &[], 1024);
        assert_eq!(
            pair_with(
                &under,
                captured(200, "", &plain, 1024),
                captured(200, "Content-Encoding: br\r\n", &plain, 1024),
            ),
            ["body coding"]
        );
        // So are bytes neither of whose labels decodes them (hunt 84: `same`).
        assert_eq!(
            pair_with(
                &under,
                captured(200, "Content-Encoding: gzip\r\n", &plain, 1024),
                captured(200, "Content-Encoding: deflate\r\n", &plain, 1024),
            ),
            ["body coding"]
        );
        // Past the cap, `identity` in a label is no coding: the same content, plain and
        // gzipped, is the same body (hunt 84: `body hash`).
        let large = vec![b'a'; 2000];
        let zipped = gzip(&large);
        for (plain_label, zip_label) in [
            (
                "Content-Encoding: identity\r\n",
                "Content-Encoding: gzip\r\n",
            ),
            ("", "Content-Encoding: gzip, identity\r\n"),
            ("", "Content-Encoding: identity, x-gzip\r\n"),
        ] {
            assert_eq!(
                pair_with(
                    &under,
                    captured(200, plain_label, &large, 1024),
                    captured(200, zip_label, &zipped, 1024),
                ),
                none,
                "{plain_label:?} {zip_label:?}"
            );
        }
    }

    #[test]
    fn gzip_bodies_are_compared_decoded() {
        let body = br#"{"user":{"name":"ada"}}"#;
        let gz = format!("{JSON}Content-Encoding: gzip\r\n");
        // Same meaning, one compressed: only the header differs.
        assert_eq!(
            pair(response(200, JSON, body), response(200, &gz, &gzip(body))),
            ["header content-encoding extra"]
        );
        assert_eq!(
            pair(
                response(200, &gz, &gzip(body)),
                response(200, &gz, &gzip(br#"{"user":{"name":"bob"}}"#))
            ),
            ["body user.name"]
        );
    }

    #[test]
    fn whole_body_fields_are_left_out_by_their_names_or_with_the_root() {
        let differing = |ignore: &[&str], p: LegOutcome, c: LegOutcome| {
            let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
            let rules = Rules::new(&[], &ignore, 1024);
            let analysis = Analysis::of(&record([p.clone(), p, c]), &rules);
            analysis.raw.differences().map_or(0, Differences::len)
        };
        let text = |body: &[u8]| response(200, "", body);
        let json = |body: &[u8]| response(200, JSON, body);
        let bom = b"\xef\xbb\xbf{}";
        let gz = format!("{JSON}Content-Encoding: gzip\r\n");
        let big = |byte: u8| captured(200, "", &[byte; 2000], 1024);
        let coded = || response(200, &gz, &gzip(b"{}"));
        let plain = || response(200, &gz, b"{}");
        for root in ["$", "body $"] {
            assert_eq!(differing(&[root], text(b"a"), text(b"b")), 0, "{root}");
        }
        let rows: Vec<(&str, LegOutcome, LegOutcome)> = vec![
            ("body", text(b"a"), text(b"b")),
            ("body bom", json(b"{}"), json(bom)),
            ("body hash", big(b'a'), big(b'b')),
            ("body coding", coded(), plain()),
        ];
        // The names leave the JSON keys so called in: `body body`, `body hash`.
        let keyed = |v: &str| json(format!(r#"{{"body":"{v}","hash":"{v}"}}"#).as_bytes());
        assert_eq!(differing(&["body", "body hash"], keyed("a"), keyed("b")), 2);
        assert_eq!(
            differing(&["body body", "$.hash"], keyed("a"), keyed("b")),
            0
        );
        for (name, p, c) in rows {
            assert_eq!(differing(&[], p.clone(), c.clone()), 1, "{name}");
            assert_eq!(differing(&[name], p.clone(), c.clone()), 0, "{name}");
            assert_eq!(differing(&["$"], p, c), 0, "{name}");
        }
    }

    #[test]
    fn with_no_body_on_either_leg_the_declared_length_is_compared() {
        let head = |length: &str| response(200, length, b"");
        // A HEAD's Content-Length is its GET's body length (the reactor keeps it for this).
        assert_eq!(
            pair(
                head("Content-Length: 5000\r\n"),
                head("Content-Length: 0\r\n")
            ),
            ["header content-length"]
        );
        assert_eq!(
            pair(head("Content-Length: 5000\r\n"), head("")),
            ["header content-length missing"]
        );
        assert_eq!(
            pair(head(""), head("Content-Length: 0\r\n")),
            ["header content-length extra"]
        );
        assert_eq!(
            pair(head("Content-Length: 7\r\n"), head("Content-Length: 7\r\n")),
            Vec::<String>::new()
        );
        // With a body, the body is compared instead.
        assert_eq!(
            pair(
                response(200, "Content-Length: 1\r\n", b"a"),
                response(200, "Content-Length: 2\r\n", b"a")
            ),
            Vec::<String>::new()
        );
        // Compressed, the same content may have another length: not compared. Nor is a
        // coding of no bytes a body that does not decode.
        let gz = |length: &str| response(200, &format!("Content-Encoding: gzip\r\n{length}"), b"");
        assert_eq!(
            pair(
                gz("Content-Length: 1010\r\n"),
                gz("Content-Length: 989\r\n")
            ),
            Vec::<String>::new()
        );
        assert_eq!(pair(head(""), gz("")), ["header content-encoding extra"]);
        // --ignore-header Content-Length leaves it out.
        let rules = Rules::new(&["Content-Length".to_string()], &[], 1024);
        let legs = [
            head("Content-Length: 5000\r\n"),
            head("Content-Length: 5000\r\n"),
            head("Content-Length: 0\r\n"),
        ];
        let analysis = Analysis::of(&record(legs), &rules);
        assert_eq!(analysis.raw.differences().map(Differences::len), Some(0));
    }

    #[test]
    fn a_body_that_does_not_decode_in_its_coding_differs_from_one_that_does() {
        let body = br#"{"user":{"name":"ada"}}"#;
        let gz = format!("{JSON}Content-Encoding: gzip\r\n");
        // Labelled gzip, sent plain: its bytes are the other's content, and no client can
        // read it.
        assert_eq!(
            pair(response(200, &gz, &gzip(body)), response(200, &gz, body)),
            ["body coding"]
        );
        assert_eq!(
            pair(response(200, &gz, body), response(200, &gz, &gzip(body))),
            ["body coding"]
        );
        // Neither decodes: compared as sent.
        assert_eq!(
            pair(response(200, &gz, b"plain"), response(200, &gz, b"plain")),
            Vec::<String>::new()
        );
        assert_eq!(
            pair(response(200, &gz, b"plain"), response(200, &gz, b"other")),
            ["body"]
        );
    }

    #[test]
    fn beyond_the_cap_bodies_compare_by_hash() {
        let big = |bytes: &[u8], cap: usize| captured(200, "", bytes, cap);
        let a = vec![b'a'; 2000];
        let mut b = a.clone();
        b[1999] = b'b';
        let analysis = Analysis::of(
            &record([big(&a, 1024), big(&a, 1024), big(&b, 1024)]),
            &rules(),
        );
        assert!(analysis.raw.hashed());
        let fields: Vec<_> = analysis
            .raw
            .differences()
            .unwrap()
            .iter()
            .map(|d| d.field.clone())
            .collect();
        assert_eq!(fields, ["body hash"]);
        assert_eq!(analysis.noise.differences().map(Differences::len), Some(0));
        // A gzip bomb decodes to more than the cap: hash, never gigabytes.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        for _ in 0..16 {
            enc.write_all(&[0u8; 1 << 20]).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let gz = |body: &[u8]| captured(200, "Content-Encoding: gzip\r\n", body, 1 << 20);
        let small = gzip(b"{}");
        let analysis = Analysis::of(&record([gz(&bomb), gz(&bomb), gz(&small)]), &rules());
        assert!(analysis.raw.hashed());
        assert_eq!(analysis.raw.differences().unwrap().len(), 1);
    }

    /// A body that decodes past the cap is compared on what it decodes to: the same content
    /// compressed at another level, or not at all, is no difference; other content is.
    #[test]
    fn bodies_decoding_past_the_cap_compare_by_what_they_decode_to() {
        let cap = 64 * 1024;
        let leg = |encoding: Option<&str>, body: &[u8]| {
            let fields =
                encoding.map_or_else(String::new, |e| format!("Content-Encoding: {e}\r\n"));
            captured(200, &fields, body, cap)
        };
        let level = |body: &[u8], level: u32| {
            let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
            enc.write_all(body).unwrap();
            enc.finish().unwrap()
        };
        let content: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}},").into_bytes())
            .collect();
        assert!(content.len() > cap && level(&content, 1).len() < cap);
        let mut changed = content.clone();
        changed[content.len() - 3] = b'x';
        let rules = Rules::new(&[], &[], cap);
        let fields = |candidate: LegOutcome| -> Vec<String> {
            let primary = leg(Some("gzip"), &level(&content, 6));
            let secondary = leg(Some("gzip"), &level(&content, 6));
            let analysis = Analysis::of(&record([primary, secondary, candidate]), &rules);
            assert!(analysis.raw.hashed());
            let differences = analysis.raw.differences().unwrap().iter();
            // (A coding another leg did not use is a header difference of its own.)
            differences
                .map(|d| d.field.clone())
                .filter(|f| f.starts_with("body"))
                .collect()
        };
        assert_eq!(
            fields(leg(Some("gzip"), &level(&content, 1))),
            Vec::<String>::new()
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(&content).unwrap();
        assert_eq!(
            fields(leg(Some("deflate"), &zlib.finish().unwrap())),
            Vec::<String>::new()
        );
        // Not compressed: kept as a hash of its bytes as they came, which are its content.
        assert_eq!(fields(leg(None, &content)), Vec::<String>::new());
        assert_eq!(fields(leg(None, &changed)), ["body hash"]);
        assert_eq!(
            fields(leg(Some("gzip"), &level(&changed, 1))),
            ["body hash"]
        );
    }

    #[test]
    fn noise_in_this_exchange_masks_the_candidate_field() {
        let body = |ts: u32, email: &str| {
            response(
                200,
                JSON,
                format!(r#"{{"ts":{ts},"email":"{email}"}}"#).as_bytes(),
            )
        };
        assert_eq!(
            raw(body(1, "a"), body(2, "a"), body(3, "b")),
            ["body email", "body ts (masked)"]
        );
        // The secondary happened to agree: the same field is not masked this time.
        assert_eq!(raw(body(1, "a"), body(1, "a"), body(3, "a")), ["body ts"]);
        // A type change on a noisy field is a different field: not masked.
        assert_eq!(
            raw(
                body(1, "a"),
                body(2, "a"),
                response(200, JSON, br#"{"ts":"1","email":"a"}"#)
            ),
            ["body ts type"]
        );
    }

    #[test]
    fn abbreviations() {
        assert_eq!(abbreviate::text(b"short"), "short");
        let long = abbreviate::text(&[b'x'; 300]);
        assert_eq!(long.len(), abbreviate::LIMIT + '…'.len_utf8());
        let multibyte = abbreviate::text("é".repeat(200).as_bytes());
        assert!(multibyte.ends_with('…'));
        assert_eq!(abbreviate::bytes(b"hello"), "5 bytes: hello");
        assert_eq!(abbreviate::bytes(&[0, 1, 2, 255]), "4 bytes (binary)");
        // Bodies that part early show their starts; late, from a little before the byte.
        let (a, b) = abbreviate::bytes_pair(b"status=ok", b"status=no");
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("9 bytes: status=ok", "9 bytes: status=no")
        );
        let long = |end: &str| format!("{}é{end}", "x".repeat(150));
        let (a, b) = abbreviate::bytes_pair(long("A").as_bytes(), long("B").as_bytes());
        assert_eq!(a, format!("153 bytes: …{}éA", "x".repeat(18)));
        assert_eq!(b, format!("153 bytes: …{}éB", "x".repeat(18)));
        let binary = |end: u8| [vec![0u8; 200], vec![end]].concat();
        let (a, b) = abbreviate::bytes_pair(&binary(1), &binary(2));
        assert_eq!(a, "201 bytes (binary, from byte 200: 01)");
        assert_eq!(b, "201 bytes (binary, from byte 200: 02)");
        // Early too: two images of a size that part at byte 10 do not read alike.
        let image = |at: u8| {
            let mut bytes = vec![0x89u8, b'P', b'N', b'G', 0, 0, 0, 0, 0, 0];
            bytes.extend([at, 0xff, 0, 1]);
            bytes
        };
        let (a, b) = abbreviate::bytes_pair(&image(7), &image(9));
        assert_eq!(a, "14 bytes (binary, from byte 10: 07 ff 00 01)");
        assert_eq!(b, "14 bytes (binary, from byte 10: 09 ff 00 01)");
    }
}
