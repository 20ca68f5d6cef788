//! `--format json`: each exchange as one JSON line instead of a four-line block, for log
//! pipelines. Summaries are JSON lines too (`"type":"summary"`), so every line of stdout
//! parses. The fields carry the same facts as the text block, plus the compared values.
//! Keys come in alphabetical order (serde_json's map); below, in a readable one.
//!
//! ```text
//! {"type":"exchange","id":7,"epoch":0,"endpoint":"GET /users/{id}","request":{...},
//!  "primary":{"status":200,...},"secondary":{...,"result":"same","differences":[]},
//!  "candidate":{...,"result":"differs","differences":[{"field":"body email",...}]}}
//! ```

use serde_json::{json, Map, Value};

use super::compare::{error_kind, Analysis, Comparison};
use super::{ExchangeRecord, LegOutcome};
use crate::targets::Role;

/// Appends `record` as one JSON line.
pub fn write_exchange(
    record: &ExchangeRecord,
    endpoint: &str,
    analysis: &Analysis,
    out: &mut Vec<u8>,
) {
    let mut line = Map::new();
    line.insert("type".into(), json!("exchange"));
    line.insert("id".into(), json!(record.id));
    line.insert("epoch".into(), json!(record.epoch));
    line.insert("endpoint".into(), json!(endpoint));
    line.insert(
        "request".into(),
        json!({
            "method": record.method,
            "target": record.target,
            "version": record.version.as_str(),
            "host": record.host,
            "body_bytes": record.request_body_bytes,
            "client_left": record.client_left,
        }),
    );
    for role in Role::ALL {
        let mut leg = outcome(&record.legs[role.index()]);
        if let (Some(addr), Value::Object(map)) = (record.upstreams[role.index()], &mut leg) {
            map.insert("upstream".into(), json!(addr.to_string()));
        }
        let comparison = match role {
            Role::Primary => None,
            Role::Secondary => Some(&analysis.noise),
            Role::Candidate => Some(&analysis.raw),
        };
        if let (Some(comparison), Value::Object(map)) = (comparison, &mut leg) {
            let noise_more = role == Role::Candidate && analysis.more_is_noise();
            add_comparison(comparison, role, noise_more, map);
        }
        line.insert(role.to_string(), leg);
    }
    write_line(&Value::Object(line), out);
}

/// Appends `value` as one line. U+0085, U+2028 and U+2029 are valid raw in a JSON string,
/// but readers that split lines on them too (Python's `splitlines`; JavaScript before
/// ES2019 for the last two) would cut the line there: they are written escaped, as the
/// console writes them. (serde_json escapes the C0 controls already.)
pub fn write_line(value: &Value, out: &mut Vec<u8>) {
    let start = out.len();
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    // C2 85 and E2 80 A8/A9 in UTF-8; any other C2 or E2 starts another character.
    if memchr::memchr2(0xC2, 0xE2, &out[start..]).is_some() {
        let written = out.split_off(start);
        let mut rest = &written[..];
        while let Some(at) = memchr::memchr2(0xC2, 0xE2, rest) {
            let (before, from) = rest.split_at(at);
            out.extend_from_slice(before);
            let (escaped, len): (&[u8], usize) = match from {
                [0xC2, 0x85, ..] => (b"\\u0085", 2),
                [0xE2, 0x80, 0xA8, ..] => (b"\\u2028", 3),
                [0xE2, 0x80, 0xA9, ..] => (b"\\u2029", 3),
                _ => (&from[..1], 1),
            };
            out.extend_from_slice(escaped);
            rest = &from[len..];
        }
        out.extend_from_slice(rest);
    }
    out.push(b'\n');
}

fn outcome(leg: &LegOutcome) -> Value {
    let ms = |d: &std::time::Duration| (d.as_micros() as f64 / 100.0).round() / 10.0;
    match leg {
        LegOutcome::Response {
            status,
            reason,
            body_bytes,
            elapsed,
            interim,
            body,
            ..
        } => {
            let mut leg = json!({
                "status": status,
                "reason": reason,
                "body_bytes": body_bytes,
                "elapsed_ms": ms(elapsed),
            });
            if let Some(interim) = interim {
                leg["interim"] = json!(interim.status);
            }
            if body.cut {
                leg["body_cut"] = json!(true);
            }
            leg
        }
        LegOutcome::Failed { error, elapsed } => json!({
            "error": error.to_string(),
            "error_kind": error_kind(error),
            "elapsed_ms": ms(elapsed),
        }),
        LegOutcome::Skipped(why) => json!({ "skipped": why }),
    }
}

/// `noise_more`: the candidate's fields past those kept count as noise (the secondary's went
/// past its own too), as in the statistics.
fn add_comparison(
    comparison: &Comparison,
    role: Role,
    noise_more: bool,
    leg: &mut Map<String, Value>,
) {
    let Comparison::Compared {
        differences,
        hashed,
        squeezed,
        ..
    } = comparison
    else {
        leg.insert("result".into(), json!("not compared"));
        return;
    };
    let beyond_noise = differences.iter().any(|d| !d.masked) || (differences.more && !noise_more);
    let result = if *squeezed {
        "same status"
    } else if beyond_noise {
        "differs"
    } else {
        "same"
    };
    leg.insert("result".into(), json!(result));
    // The fields only counted, past those described, are left to `more_differences`.
    let list: Vec<Value> = differences
        .iter()
        .filter(|d| !d.counted_only)
        .map(|d| {
            let mut item = Map::new();
            item.insert("field".into(), json!(d.field));
            item.insert("primary".into(), json!(d.primary));
            item.insert(role.to_string(), json!(d.other));
            if role == Role::Candidate {
                item.insert("masked".into(), json!(d.masked));
            }
            Value::Object(item)
        })
        .collect();
    leg.insert("differences".into(), Value::Array(list));
    if differences.more || differences.iter().any(|d| d.counted_only) {
        leg.insert("more_differences".into(), json!(true));
    }
    if *hashed {
        leg.insert("compared_by_hash".into(), json!(true));
    }
    if *squeezed {
        leg.insert("contents_not_kept".into(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::LegError;
    use crate::http::Version;
    use crate::report::compare::Rules;
    use crate::report::Interim;
    use std::time::Duration;

    fn json_leg(body: &str) -> LegOutcome {
        let fields = b"Content-Type: application/json\r\n";
        LegOutcome::ok_for_test(body, fields, Duration::from_micros(2_149))
    }

    /// The leg, after a `103 Early Hints`.
    fn hinted(mut leg: LegOutcome) -> LegOutcome {
        if let LegOutcome::Response { interim, .. } = &mut leg {
            *interim = Some(Interim {
                status: 103,
                fields: b"Link: </a.css>; rel=preload\r\n".to_vec(),
            });
        }
        leg
    }

    #[test]
    fn one_line_that_parses_with_the_comparison() {
        let record = ExchangeRecord {
            id: 7,
            method: "GET".into(),
            target: "/users/7".into(),
            version: Version::Http11,
            host: Some("h".into()),
            request_body_bytes: 0,
            epoch: 2,
            client_left: false,
            upstreams: [
                Some("127.0.0.1:9001".parse().unwrap()),
                None,
                Some("[::1]:9003".parse().unwrap()),
            ],
            legs: [
                hinted(json_leg(r#"{"ts":1,"email":"a"}"#)),
                json_leg(r#"{"ts":2,"email":"a"}"#),
                LegOutcome::Failed {
                    error: LegError::ConnectionRefused,
                    elapsed: Duration::ZERO,
                },
            ],
        };
        let analysis = Analysis::of(&record, &Rules::new(&[], &[], 1024));
        let mut out = Vec::new();
        write_exchange(&record, "GET /users/{id}", &analysis, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "exchange");
        assert_eq!(v["id"], 7);
        assert_eq!(v["epoch"], 2);
        assert_eq!(v["endpoint"], "GET /users/{id}");
        assert_eq!(v["request"]["target"], "/users/7");
        assert_eq!(v["primary"]["status"], 200);
        assert_eq!(v["primary"]["elapsed_ms"], 2.1);
        assert!(v["primary"].get("result").is_none());
        // Which address served each leg; none known, none written.
        assert_eq!(v["primary"]["upstream"], "127.0.0.1:9001");
        assert!(v["secondary"].get("upstream").is_none());
        assert_eq!(v["candidate"]["upstream"], "[::1]:9003");
        assert_eq!(v["primary"]["interim"], 103);
        assert!(v["secondary"].get("interim").is_none());
        assert_eq!(v["secondary"]["result"], "differs");
        // Only the primary sent a 103: the secondary differs in that too.
        assert_eq!(v["secondary"]["differences"][0]["field"], "interim");
        assert_eq!(v["secondary"]["differences"][0]["primary"], "103");
        assert_eq!(v["secondary"]["differences"][0]["secondary"], "none");
        assert_eq!(v["secondary"]["differences"][1]["field"], "body ts");
        assert_eq!(v["secondary"]["differences"][1]["primary"], "1");
        assert_eq!(v["secondary"]["differences"][1]["secondary"], "2");
        assert_eq!(v["candidate"]["error"], "connection refused");
        assert_eq!(v["candidate"]["error_kind"], "refused");
        assert_eq!(v["candidate"]["result"], "differs");
        assert_eq!(v["candidate"]["differences"][0]["field"], "error:refused");
        assert_eq!(v["candidate"]["differences"][0]["masked"], false);
    }

    /// Raw U+0085/U+2028/U+2029 would end the line for readers that split on them (hunts
    /// 46, 59): they are escaped, and the value reads back the same; other characters led by
    /// C2 or E2 stay raw.
    #[test]
    fn line_separators_are_escaped() {
        let value = json!({"reason": "a\u{2028}b\u{2029}c\u{85}d \u{2026} \u{20ac} \u{a9}"});
        let mut out = b"before ".to_vec();
        write_line(&value, &mut out);
        let line = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            line,
            "before {\"reason\":\"a\\u2028b\\u2029c\\u0085d \u{2026} \u{20ac} \u{a9}\"}\n"
        );
        assert_eq!(line.lines().count(), 1);
        let back: Value = serde_json::from_str(&line["before ".len()..]).unwrap();
        assert_eq!(back, value);
    }
}
