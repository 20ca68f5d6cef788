//! The fuzz check of the reporting thread (`fuzz/fuzz_targets/report.rs`, and
//! `tests/fuzz_corpus.rs` on stable): everything in a record but timing comes from upstreams,
//! so a body, a field or a status must never panic the comparison, break a console block
//! across lines, or make a JSON line that does not parse. A panic here would end the
//! reporting thread: the proxy would go on serving, but compare nothing more.
//!
//! An input is a control byte, then up to four sections separated by `SEPARATOR`: the raw
//! request head, then the primary's, the secondary's and the candidate's raw responses (any
//! interim heads, the final head, then the body, taken as is without framing). A leg section
//! starting with `!` is a failure (the next byte picks which kind), `-` or a missing section a
//! skipped leg. Heads go through trident's own parsers, so a record holds what the reactor
//! would have produced; a head that does not parse is a `malformed` leg, a request head that
//! does not parse a plain `GET /`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    channel, run, CapturedBody, ExchangeRecord, Format, Interim, LegOutcome, Settings, Verdict,
};
use super::{compare, SummarySignal};
use crate::failure::LegError;
use crate::http::{self, parse_request_head, parse_response_head, Limits, Version};

/// Between the sections of an input.
pub const SEPARATOR: &[u8] = b"\n\x1e\n";

/// Bit 0 of the control byte: compare at most this many bytes of a body, so short inputs
/// reach the hashed and too-large paths.
const SMALL_CAP: usize = 64;

/// Builds the input that `check_report` takes apart into these sections.
pub fn encode_report_input(small_cap: bool, request: &[u8], legs: [&[u8]; 3]) -> Vec<u8> {
    let mut out = vec![u8::from(small_cap)];
    out.extend_from_slice(request);
    for leg in legs {
        out.extend_from_slice(SEPARATOR);
        out.extend_from_slice(leg);
    }
    out
}

/// Panics if the reporting thread mishandles the exchange `data` describes (see the module
/// text), compared as given, against itself, and with primary and candidate swapped.
pub fn check_report(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let cap = if control & 1 != 0 {
        SMALL_CAP
    } else {
        Settings::default().max_compare_bytes
    };
    let mut sections = split(rest);
    let request = sections.next().unwrap_or_default();
    let [p, s, c] = [(); 3].map(|()| leg(sections.next(), cap));
    let (method, target, version, host) = match parse_request_head(request, &Limits::default()) {
        Ok(Some(head)) => (head.method, head.target, head.version, head.host),
        _ => ("GET".to_string(), "/".to_string(), Version::Http11, None),
    };
    let record = |id: u64, legs: [LegOutcome; 3]| ExchangeRecord {
        id,
        method: method.clone(),
        target: target.clone(),
        version,
        host: host.clone(),
        request_body_bytes: 0,
        epoch: 0,
        // Known for some legs and not others, as after a skip.
        client_left: false,
        upstreams: [Some(SocketAddr::from(([127, 0, 0, 1], 9001))), None, None],
        legs,
    };
    let records = [
        record(1, [p.clone(), s.clone(), c.clone()]),
        record(2, [p.clone(), p.clone(), p.clone()]),
        record(3, [c, s, p]),
    ];

    // The same outcome three times: nothing differs, by the short cut or the full comparison.
    let settings = Settings {
        ignore_fields: vec!["meta.ts".to_string()],
        max_compare_bytes: cap,
        ..Settings::default()
    };
    let rules = compare::Rules::new(&[], &settings.ignore_fields, cap);
    let same = compare::Analysis::of(&records[1], &rules);
    for comparison in [&same.noise, &same.raw] {
        if let Some(differences) = comparison.differences() {
            assert!(
                differences.is_empty(),
                "a leg differs from itself: {differences:?}"
            );
        }
    }
    // Bodies are compared as trident's own JSON tree: it must be serde_json's reading.
    for leg in &records[0].legs {
        if let LegOutcome::Response { body, .. } = leg {
            super::json::check_tree(&body.bytes);
        }
    }
    for record in &records {
        let analysis = compare::Analysis::of(record, &rules);
        for comparison in [&analysis.noise, &analysis.raw] {
            if let Some(differences) = comparison.differences() {
                assert!(differences.len() <= compare::MAX_DIFFERENCES);
                assert!(differences.iter().all(|d| !d.field.is_empty()));
            }
        }
    }

    // Text: four lines per exchange, then the summary.
    let (text, _) = run_all(records.iter().cloned(), &settings);
    let blocks = text.find("SUMMARY ").map_or(&text[..], |at| &text[..at]);
    let lines: Vec<&str> = blocks.lines().collect();
    assert_eq!(lines.len(), 4 * records.len(), "blocks:\n{blocks}");
    for (i, line) in lines.iter().enumerate() {
        let word = if i % 4 == 0 { "REQUEST " } else { "RESPONSE " };
        assert!(line.starts_with(word), "line {i}: {line:?}");
    }

    // JSON: one parsable line per exchange, then the summary's.
    let (json, _) = run_all(
        records.iter().cloned(),
        &Settings {
            format: Format::Json,
            ..settings.clone()
        },
    );
    let mut exchanges = 0;
    for line in json.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line:?}"));
        exchanges += usize::from(value["type"] == "exchange");
    }
    assert_eq!(exchanges, records.len(), "{json}");
}

/// The sections of an input, at each `SEPARATOR`.
fn split(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(input);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memmem::find(current, SEPARATOR) {
            Some(at) => {
                rest = Some(&current[at + SEPARATOR.len()..]);
                Some(&current[..at])
            }
            None => rest.take(),
        }
    })
}

/// One leg's outcome from its section.
fn leg(section: Option<&[u8]>, cap: usize) -> LegOutcome {
    let elapsed = Duration::from_micros(1500);
    let failed = |error| LegOutcome::Failed { error, elapsed };
    let mut input = match section {
        None | Some([b'-', ..]) => return LegOutcome::Skipped("saturated"),
        Some([b'!', kind @ ..]) => {
            let errors = [
                LegError::ConnectionRefused,
                LegError::ConnectTimeout(Duration::from_millis(300)),
                LegError::Timeout(Duration::from_secs(1)),
                LegError::ConnectionReset,
                LegError::ClosedEarly,
                LegError::Malformed(http::Error::Malformed("invalid status line")),
                LegError::Overflow,
                LegError::ClientClosed,
                LegError::Tls("bad certificate".to_string()),
                // OS and rustls texts, not upstream bytes.
                LegError::Io("No route to host (os error 113)".to_string()),
            ];
            let at = kind.first().map_or(0, |&b| usize::from(b) % errors.len());
            return failed(errors[at].clone());
        }
        Some(section) => section,
    };
    let mut interim = None;
    loop {
        match parse_response_head(input, &Limits::default(), false) {
            Ok(Some(head)) if head.is_interim() => {
                input = &input[head.head_len..];
                interim = Some(Interim {
                    status: head.status,
                    fields: head.fields,
                });
            }
            Ok(Some(head)) => {
                let body = &input[head.head_len..];
                let mut capture = CapturedBody::new();
                capture.extend(body, cap);
                return LegOutcome::Response {
                    status: head.status,
                    reason: head.reason,
                    body_bytes: body.len() as u64,
                    elapsed,
                    interim,
                    fields: head.fields,
                    body: capture,
                };
            }
            Ok(None) => return failed(LegError::ClosedEarly),
            Err(err) => return failed(LegError::Malformed(err)),
        }
    }
}

/// The reporting loop's output and verdict for `records` (senders dropped first); the
/// module's unit tests use it too.
pub(super) fn run_all(
    records: impl IntoIterator<Item = ExchangeRecord>,
    settings: &Settings,
) -> (String, Verdict) {
    let records: Vec<ExchangeRecord> = records.into_iter().collect();
    let (sender, receiver) = channel();
    // As a reactor does: a reload announces its epoch before the first exchange of it, with
    // the older exchanges still to come as in flight, each counted out once it is handed over.
    let mut epoch = 0;
    for (i, record) in records.iter().enumerate() {
        while record.epoch > epoch {
            let in_flight = records[i..].iter().filter(|r| r.epoch == epoch).count();
            epoch += 1;
            sender.announce_epoch(epoch, in_flight as u64);
        }
        let older = record.epoch < epoch;
        assert!(
            sender.offer(record.clone()).is_ok(),
            "the channel took a record"
        );
        if older {
            sender.older_finished();
        }
    }
    drop(sender);
    let mut out = Vec::new();
    let verdict = run(receiver, &mut out, settings, &SummarySignal::manual()).verdict;
    let text = String::from_utf8(out).expect("the reporter writes UTF-8");
    (text, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_input_splits_into_its_sections() {
        let legs: [&[u8]; 3] = [b"HTTP/1.1 200 OK\r\n\r\nok", b"-", b""];
        let input = encode_report_input(true, b"GET / HTTP/1.1\r\n\r\n", legs);
        assert_eq!(input[0], 1);
        let sections: Vec<&[u8]> = split(&input[1..]).collect();
        assert_eq!(
            sections,
            [&b"GET / HTTP/1.1\r\n\r\n"[..], legs[0], legs[1], legs[2]]
        );
        assert_eq!(split(b"").collect::<Vec<_>>(), [&b""[..]]);
    }
}
