//! The console block format (stdout), one block per exchange:
//!
//! ```text
//! REQUEST 1 => GET /hello HTTP/1.1 (host=localhost:8080, body=0B)
//! RESPONSE 1 primary => 200 OK (body=12B, 0.4ms)
//! RESPONSE 1 secondary => 200 OK (body=12B, 0.5ms)
//! RESPONSE 1 candidate => error: connection refused
//! ```
//!
//! When the exchange was compared, the secondary's and the candidate's response lines end
//! with the result inside their parentheses: `same`, or `differs: FIELD, FIELD` (fields as
//! `compare` names them). The candidate's fields that the secondary also differs in, in this
//! exchange, are listed apart as `noise: FIELD` (they are masked):
//!
//! ```text
//! RESPONSE 7 secondary => 200 OK (body=93B, 1.8ms, differs: body ts)
//! RESPONSE 7 candidate => 200 OK (body=93B, 2.1ms, differs: body user.email; noise: body ts)
//! ```

use std::io::{self, Write};
use std::time::Duration;

use super::compare::{listed_name, Analysis, Comparison, Difference};
use super::{printable, ExchangeRecord, LegOutcome};
use crate::http::request::push_decimal;
use crate::targets::Role;

/// Most fields named in one list of a response line; the rest are counted (`+3 more`).
const LISTED_FIELDS: usize = 6;

/// Appends the four lines of `record`'s block to `out`, with the comparison results if the
/// exchange was compared.
pub fn write_block(record: &ExchangeRecord, analysis: Option<&Analysis>, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write_lines(record, analysis, out);
}

fn write_lines(
    record: &ExchangeRecord,
    analysis: Option<&Analysis>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // Pieces pushed one by one rather than `write!`: this runs for every exchange, and the
    // formatting machinery cost more than the comparison (callgrind).
    let id = record.id;
    out.extend_from_slice(b"REQUEST ");
    push_decimal(out, id);
    for piece in [" => ", &record.method, " "] {
        out.extend_from_slice(piece.as_bytes());
    }
    // The client's text: anything that could break the line is escaped.
    out.extend_from_slice(printable(&record.target).as_bytes());
    out.push(b' ');
    out.extend_from_slice(record.version.as_str().as_bytes());
    // A host may hold `,` `(` `)` (RFC 3986 sub-delims), and a reason anything printable:
    // quoted then, so that neither can pass for this line's own fields (`host=a,body=9B)`).
    out.extend_from_slice(b" (host=");
    out.extend_from_slice(listed_name(record.host.as_deref().unwrap_or("-")).as_bytes());
    out.extend_from_slice(b", body=");
    push_decimal(out, record.request_body_bytes);
    out.extend_from_slice(if record.client_left {
        b"B, client left)\n"
    } else {
        b"B)\n"
    });
    for role in Role::ALL {
        out.extend_from_slice(b"RESPONSE ");
        push_decimal(out, id);
        out.push(b' ');
        out.extend_from_slice(role.name().as_bytes());
        out.extend_from_slice(b" => ");
        match &record.legs[role.index()] {
            LegOutcome::Response {
                status,
                reason,
                body_bytes,
                elapsed,
                interim,
                body,
                ..
            } => {
                push_decimal(out, u64::from(*status));
                if !reason.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(listed_name(reason).as_bytes());
                }
                out.extend_from_slice(b" (body=");
                push_decimal(out, *body_bytes);
                out.extend_from_slice(if body.cut { b"B cut, " } else { b"B, " });
                push_millis(out, *elapsed);
                if let Some(interim) = interim {
                    out.extend_from_slice(b", after ");
                    push_decimal(out, u64::from(interim.status));
                }
                let comparison = analysis.and_then(|a| match role {
                    Role::Primary => None,
                    Role::Secondary => Some(&a.noise),
                    Role::Candidate => Some(&a.raw),
                });
                if let Some(Comparison::Compared {
                    differences,
                    squeezed,
                    ..
                }) = comparison
                {
                    if *squeezed {
                        // Only the statuses were compared: not `same`, which it may not be.
                        out.extend_from_slice(
                            b", same status; contents not kept: capture budget full",
                        );
                    } else {
                        let noise_more = role == Role::Candidate
                            && analysis.is_some_and(Analysis::more_is_noise);
                        let more = differences.more && !noise_more;
                        write_result(differences.iter(), more, noise_more, out)?;
                    }
                }
                out.extend_from_slice(b")\n");
            }
            LegOutcome::Failed { error, .. } => writeln!(out, "error: {error}")?,
            LegOutcome::Skipped(why) => writeln!(out, "skipped: {why}")?,
        }
    }
    Ok(())
}

/// `, same`, `, differs: A, B` and, for fields masked as noise, `; noise: C`. `more`: fields
/// past those kept, beyond noise; `noise_more`: past those kept, where the secondary's went
/// past its own too.
fn write_result<'a>(
    differences: impl Iterator<Item = &'a Difference> + Clone,
    more: bool,
    noise_more: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let differing = differences.clone().filter(|d| !d.masked);
    let masked = differences.filter(|d| d.masked);
    if differing.clone().next().is_none() && !more {
        out.extend_from_slice(b", same");
    } else {
        out.extend_from_slice(b", differs: ");
        write_list(differing, more, out)?;
    }
    if masked.clone().next().is_some() || noise_more {
        out.extend_from_slice(b"; noise: ");
        write_list(masked, noise_more, out)?;
    }
    Ok(())
}

fn write_list<'a>(
    fields: impl Iterator<Item = &'a Difference>,
    more: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut hidden = 0;
    let mut listed = 0;
    for difference in fields {
        if listed == LISTED_FIELDS {
            hidden += 1;
            continue;
        }
        if listed > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(listed_name(&difference.field).as_bytes());
        listed += 1;
    }
    let separator = if listed > 0 { ", " } else { "" };
    // `more`: fields past what one comparison keeps, not counted.
    match (hidden, more) {
        (0, false) => {}
        (0, true) => write!(out, "{separator}more fields")?,
        (_, false) => write!(out, "{separator}+{hidden} more")?,
        (_, true) => write!(out, "{separator}+{hidden} more and others")?,
    }
    Ok(())
}

/// Elapsed time as milliseconds with exactly one decimal (`0.4ms`, `1503.2ms`), rounded to
/// the nearest tenth in integers so that the text never depends on float formatting.
fn push_millis(out: &mut Vec<u8>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let tenths = micros.saturating_add(50) / 100;
    push_decimal(out, tenths / 10);
    out.push(b'.');
    push_decimal(out, tenths % 10);
    out.extend_from_slice(b"ms");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::LegError;
    use crate::http::Version;

    fn ok(status: u16, reason: &str, body_bytes: u64, micros: u64) -> LegOutcome {
        LegOutcome::Response {
            status,
            reason: reason.to_string(),
            body_bytes,
            elapsed: Duration::from_micros(micros),
            interim: None,
            fields: Vec::new(),
            body: crate::report::CapturedBody::new(),
        }
    }

    fn record(host: Option<&str>, legs: [LegOutcome; 3]) -> ExchangeRecord {
        ExchangeRecord {
            id: 1,
            method: "GET".to_string(),
            target: "/hello".to_string(),
            version: Version::Http11,
            host: host.map(str::to_string),
            request_body_bytes: 0,
            epoch: 0,
            client_left: false,
            upstreams: [None; 3],
            legs,
        }
    }

    fn text(record: &ExchangeRecord) -> String {
        let mut out = Vec::new();
        write_block(record, None, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn blocks() {
        let refused = LegOutcome::Failed {
            error: LegError::ConnectionRefused,
            elapsed: Duration::from_micros(300),
        };
        let rows: Vec<(ExchangeRecord, &str)> = vec![
            (
                record(
                    Some("localhost:8080"),
                    [
                        ok(200, "OK", 12, 400),
                        ok(200, "OK", 12, 549),
                        refused.clone(),
                    ],
                ),
                "REQUEST 1 => GET /hello HTTP/1.1 (host=localhost:8080, body=0B)\n\
                 RESPONSE 1 primary => 200 OK (body=12B, 0.4ms)\n\
                 RESPONSE 1 secondary => 200 OK (body=12B, 0.5ms)\n\
                 RESPONSE 1 candidate => error: connection refused\n",
            ),
            (
                record(
                    None,
                    [
                        ok(404, "Not Found", 0, 12_345),
                        LegOutcome::Failed {
                            error: LegError::Timeout(Duration::from_millis(1500)),
                            elapsed: Duration::from_millis(1500),
                        },
                        LegOutcome::Skipped("saturated"),
                    ],
                ),
                "REQUEST 1 => GET /hello HTTP/1.1 (host=-, body=0B)\n\
                 RESPONSE 1 primary => 404 Not Found (body=0B, 12.3ms)\n\
                 RESPONSE 1 secondary => error: timeout after 1500ms\n\
                 RESPONSE 1 candidate => skipped: saturated\n",
            ),
            (
                record(
                    Some("h"),
                    [
                        ok(204, "", 0, 1_503_249),
                        ok(200, "", 3, 0),
                        ok(599, "Whatever You Like", 1, 99_950),
                    ],
                ),
                "REQUEST 1 => GET /hello HTTP/1.1 (host=h, body=0B)\n\
                 RESPONSE 1 primary => 204 (body=0B, 1503.2ms)\n\
                 RESPONSE 1 secondary => 200 (body=3B, 0.0ms)\n\
                 RESPONSE 1 candidate => 599 Whatever You Like (body=1B, 100.0ms)\n",
            ),
            // A host and reasons that would pass for the line's own fields are quoted
            // (hunt 46: a `same` forged inside a candidate's reason).
            (
                record(
                    Some("a,body=9B),(x"),
                    [
                        ok(200, "OK (body=2B, 0.1ms, same)", 2, 100),
                        ok(200, r#"a "b" \ c;d"#, 2, 100),
                        ok(200, "All good", 2, 100),
                    ],
                ),
                "REQUEST 1 => GET /hello HTTP/1.1 (host=\"a,body=9B),(x\", body=0B)\n\
                 RESPONSE 1 primary => 200 \"OK (body=2B, 0.1ms, same)\" (body=2B, 0.1ms)\n\
                 RESPONSE 1 secondary => 200 \"a \\\"b\\\" \\\\ c;d\" (body=2B, 0.1ms)\n\
                 RESPONSE 1 candidate => 200 All good (body=2B, 0.1ms)\n",
            ),
        ];
        for (record, expected) in rows {
            assert_eq!(text(&record), expected);
        }
    }

    #[test]
    fn request_line_shows_method_target_version_and_body() {
        let mut post = record(
            None,
            [
                ok(201, "Created", 0, 1000),
                ok(201, "Created", 0, 1000),
                ok(201, "Created", 0, 1000),
            ],
        );
        post.id = 42;
        post.method = "POST".to_string();
        post.target = "/upload?x=1".to_string();
        post.version = Version::Http10;
        post.request_body_bytes = 1_048_576;
        let text = text(&post);
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "REQUEST 42 => POST /upload?x=1 HTTP/1.0 (host=-, body=1048576B)"
        );
        assert!(text.contains("RESPONSE 42 candidate => 201 Created (body=0B, 1.0ms)\n"));
        // The client's target, with what a reader would take for a line break or a
        // terminal command escaped.
        post.target =
            "/a\u{85}VERDICT\u{a0}candidate:\u{a0}PASS\u{2028}\u{9b}2J\u{202e}\\é".to_string();
        let escaped = self::text(&post);
        assert_eq!(
            escaped.lines().next().unwrap(),
            [
                r"REQUEST 42 => POST /a\u0085VERDICT",
                "\u{a0}candidate:\u{a0}PASS",
                r"\u2028\u009b2J\u202e\\é HTTP/1.0 (host=-, body=1048576B)",
            ]
            .concat()
        );
    }

    #[test]
    fn millis_have_one_decimal_rounded() {
        let rows: &[(u64, &str)] = &[
            (0, "0.0ms"),
            (49, "0.0ms"),
            (50, "0.1ms"),
            (400, "0.4ms"),
            (12_345, "12.3ms"),
            (12_350, "12.4ms"),
            (999_960, "1000.0ms"),
            (1_503_249, "1503.2ms"),
        ];
        for (micros, expected) in rows {
            let mut out = Vec::new();
            push_millis(&mut out, Duration::from_micros(*micros));
            assert_eq!(String::from_utf8_lossy(&out), *expected);
        }
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = b"before\n".to_vec();
        write_block(
            &record(
                None,
                [
                    LegOutcome::Skipped("a"),
                    LegOutcome::Skipped("b"),
                    LegOutcome::Skipped("c"),
                ],
            ),
            None,
            &mut out,
        );
        assert!(out.starts_with(b"before\nREQUEST 1 => "));
        assert!(out.ends_with(b"RESPONSE 1 candidate => skipped: c\n"));
    }

    fn json(status: u16, body: &str) -> LegOutcome {
        let mut capture = crate::report::CapturedBody::new();
        capture.extend(body.as_bytes(), 1024);
        LegOutcome::Response {
            status,
            reason: "OK".to_string(),
            body_bytes: body.len() as u64,
            elapsed: Duration::from_micros(2100),
            interim: None,
            fields: b"Content-Type: application/json\r\n".to_vec(),
            body: capture,
        }
    }

    fn compared(legs: [LegOutcome; 3]) -> String {
        let record = record(None, legs);
        let rules = crate::report::compare::Rules::new(&[], &[], 1024);
        let analysis = Analysis::of(&record, &rules);
        let mut out = Vec::new();
        write_block(&record, Some(&analysis), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Past what both comparisons name, the candidate's fields are noise on its line, as in
    /// the statistics, not a difference.
    #[test]
    fn fields_past_what_both_comparisons_name_read_as_noise() {
        let leg = |seed: u64| {
            let members: Vec<String> = (0..10_500)
                .map(|i| format!(r#""f{i:05}":{seed}"#))
                .collect();
            let body = format!("{{{}}}", members.join(","));
            let fields = b"Content-Type: application/json\r\n";
            LegOutcome::ok_for_test(&body, fields, Duration::from_micros(2100))
        };
        let record = record(None, [leg(1), leg(2), leg(3)]);
        let rules = crate::report::compare::Rules::new(&[], &[], 1 << 20);
        let analysis = Analysis::of(&record, &rules);
        assert!(analysis.more_is_noise());
        let mut out = Vec::new();
        write_block(&record, Some(&analysis), &mut out);
        let text = String::from_utf8(out).unwrap();
        let candidate = text
            .lines()
            .find(|l| l.starts_with("RESPONSE 1 candidate"))
            .unwrap();
        assert!(
            candidate.contains(", same; noise: body f00000, "),
            "{candidate}"
        );
        assert!(candidate.ends_with(" more and others)"), "{candidate}");
        let mut line = Vec::new();
        crate::report::jsonl::write_exchange(&record, "GET /", &analysis, &mut line);
        let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(line["candidate"]["result"], "same");
    }

    #[test]
    fn compared_blocks_carry_the_result_in_the_parentheses() {
        let rows: Vec<([LegOutcome; 3], [&str; 3])> = vec![
            (
                [json(200, r#"{"a":1}"#), json(200, r#"{"a":1}"#), json(200, r#"{"a":1}"#)],
                [
                    "RESPONSE 1 primary => 200 OK (body=7B, 2.1ms)",
                    "RESPONSE 1 secondary => 200 OK (body=7B, 2.1ms, same)",
                    "RESPONSE 1 candidate => 200 OK (body=7B, 2.1ms, same)",
                ],
            ),
            (
                [
                    json(200, r#"{"ts":1,"user":{"email":"a"}}"#),
                    json(200, r#"{"ts":2,"user":{"email":"a"}}"#),
                    json(200, r#"{"ts":3,"user":{"email":"b"}}"#),
                ],
                [
                    "RESPONSE 1 primary => 200 OK (body=29B, 2.1ms)",
                    "RESPONSE 1 secondary => 200 OK (body=29B, 2.1ms, differs: body ts)",
                    "RESPONSE 1 candidate => 200 OK (body=29B, 2.1ms, differs: body user.email; noise: body ts)",
                ],
            ),
            (
                [json(200, r#"{"ts":1}"#), json(200, r#"{"ts":2}"#), json(200, r#"{"ts":3}"#)],
                [
                    "RESPONSE 1 primary => 200 OK (body=8B, 2.1ms)",
                    "RESPONSE 1 secondary => 200 OK (body=8B, 2.1ms, differs: body ts)",
                    "RESPONSE 1 candidate => 200 OK (body=8B, 2.1ms, same; noise: body ts)",
                ],
            ),
            (
                [
                    LegOutcome::Failed {
                        error: LegError::Timeout(Duration::from_millis(50)),
                        elapsed: Duration::from_millis(50),
                    },
                    json(500, "{}"),
                    LegOutcome::Skipped("saturated"),
                ],
                [
                    "RESPONSE 1 primary => error: timeout after 50ms",
                    "RESPONSE 1 secondary => 500 OK (body=2B, 2.1ms, differs: error:timeout)",
                    "RESPONSE 1 candidate => skipped: saturated",
                ],
            ),
            (
                [
                    json(200, r#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1}"#),
                    json(200, r#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1}"#),
                    json(200, r#"{"a":2,"b":2,"c":2,"d":2,"e":2,"f":2,"g":2,"h":2}"#),
                ],
                [
                    "RESPONSE 1 primary => 200 OK (body=49B, 2.1ms)",
                    "RESPONSE 1 secondary => 200 OK (body=49B, 2.1ms, same)",
                    "RESPONSE 1 candidate => 200 OK (body=49B, 2.1ms, differs: body a, body b, body c, body d, body e, body f, +2 more)",
                ],
            ),
            // A key that would read as the line's own words is quoted.
            (
                [
                    json(200, r#"{"x) differs: \"q\"; noise: y":1,"id":1}"#),
                    json(200, r#"{"x) differs: \"q\"; noise: y":1,"id":1}"#),
                    json(200, r#"{"x) differs: \"q\"; noise: y":2,"id":1}"#),
                ],
                [
                    "RESPONSE 1 primary => 200 OK (body=40B, 2.1ms)",
                    "RESPONSE 1 secondary => 200 OK (body=40B, 2.1ms, same)",
                    r#"RESPONSE 1 candidate => 200 OK (body=40B, 2.1ms, differs: "body x) differs: \"q\"; noise: y")"#,
                ],
            ),
        ];
        for (legs, expected) in rows {
            let text = compared(legs);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(
                lines[0],
                "REQUEST 1 => GET /hello HTTP/1.1 (host=-, body=0B)"
            );
            assert_eq!(lines[1..], expected, "{text}");
        }
    }
}
