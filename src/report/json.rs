//! Structural comparison of two JSON bodies, Diffy's way: key order does not matter, and
//! each difference is named by a field path (`user.email`) that stays bounded however large
//! the bodies are. Array elements share one path without their index (`items[].price`), and
//! an object whose keys are data rather than names (ids, dates, more than 50 keys) is a
//! dynamic map whose keys all become `*` (`scores.*`), so paths cannot explode in number.
//!
//! A path is followed by the kind of difference when it is not a plain change of value:
//! `type` (a string became an object; `1` became `1.0`), `missing` (the primary has the field,
//! the other leg does not), `extra` (the reverse), `length` (arrays of different lengths).
//! The whole body, when it is not an object or array that matches, is `$`.

use serde_json::{Map, Value};

use super::compare::{abbreviate, Differences};

/// Keys beyond this many make an object a dynamic map (OpenDiffy's rule).
const MAX_NAMED_KEYS: usize = 50;
/// A key longer than this is data, not a name.
const MAX_KEY_LEN: usize = 64;

/// What kind of difference a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Value,
    Type,
    Missing,
    Extra,
    Length,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Value => "",
            Kind::Type => " type",
            Kind::Missing => " missing",
            Kind::Extra => " extra",
            Kind::Length => " length",
        }
    }
}

/// An `--ignore-field` path in the form paths are matched in: without `[]` markers and
/// without a leading `$.` (so `items.id`, `items[].id` and `$.items[].id` are the same).
pub fn normalize_path(path: &str) -> String {
    let path = path.strip_prefix("$.").unwrap_or(path);
    path.replace("[]", "")
}

/// Appends the differences between `primary` and `other` to `out`, as `body PATH[ KIND]`
/// fields, skipping the paths in `ignore` (normalized with `normalize_path`) and everything
/// under them.
pub fn diff(primary: &Value, other: &Value, ignore: &[String], out: &mut Differences) {
    let mut walk = Walk {
        path: String::new(),
        field: String::new(),
        ignore,
        out,
    };
    walk.value(primary, other);
}

struct Walk<'a> {
    /// The path of the current node, `user.emails[]`; empty at the root.
    path: String,
    /// Scratch for the field name of a difference.
    field: String,
    ignore: &'a [String],
    out: &'a mut Differences,
}

impl Walk<'_> {
    fn value(&mut self, primary: &Value, other: &Value) {
        if self.out.is_full() {
            return;
        }
        match (primary, other) {
            (Value::Object(a), Value::Object(b)) => self.object(a, b),
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    self.record(Kind::Length, Some(primary), Some(other));
                    return;
                }
                let mark = self.path.len();
                self.path.push_str("[]");
                if !self.ignored() {
                    for (x, y) in a.iter().zip(b) {
                        self.value(x, y);
                    }
                }
                self.path.truncate(mark);
            }
            // Diffy lifts integers to Long and the rest to Double: `1` and `1.0` differ in
            // type, as a strictly typed client would see them.
            (Value::Number(x), Value::Number(y)) => {
                if x != y {
                    let kind = if x.is_f64() == y.is_f64() {
                        Kind::Value
                    } else {
                        Kind::Type
                    };
                    self.record(kind, Some(primary), Some(other));
                }
            }
            (Value::String(x), Value::String(y)) if x != y => {
                self.record(Kind::Value, Some(primary), Some(other));
            }
            (Value::Bool(x), Value::Bool(y)) if x != y => {
                self.record(Kind::Value, Some(primary), Some(other));
            }
            (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Null, Value::Null) => {}
            _ => self.record(Kind::Type, Some(primary), Some(other)),
        }
    }

    fn object(&mut self, a: &Map<String, Value>, b: &Map<String, Value>) {
        let mark = self.path.len();
        if is_dynamic(a) || is_dynamic(b) {
            // Keys are data: one path for all of them, as Diffy's MapDifference does.
            self.push_key("*");
            if !self.ignored() {
                for (key, x) in a {
                    match b.get(key) {
                        Some(y) => self.value(x, y),
                        None => self.record(Kind::Missing, Some(x), None),
                    }
                }
                for (key, y) in b {
                    if !a.contains_key(key) {
                        self.record(Kind::Extra, None, Some(y));
                    }
                }
            }
            self.path.truncate(mark);
            return;
        }
        for (key, x) in a {
            self.push_key(key);
            if !self.ignored() {
                match b.get(key) {
                    Some(y) => self.value(x, y),
                    None => self.record(Kind::Missing, Some(x), None),
                }
            }
            self.path.truncate(mark);
        }
        for (key, y) in b {
            if !a.contains_key(key) {
                self.push_key(key);
                if !self.ignored() {
                    self.record(Kind::Extra, None, Some(y));
                }
                self.path.truncate(mark);
            }
        }
    }

    fn push_key(&mut self, key: &str) {
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
    }

    fn ignored(&self) -> bool {
        if self.ignore.is_empty() {
            return false;
        }
        let normalized = self.path.replace("[]", "");
        self.ignore.contains(&normalized)
    }

    fn record(&mut self, kind: Kind, primary: Option<&Value>, other: Option<&Value>) {
        self.field.clear();
        self.field.push_str("body ");
        self.field.push_str(if self.path.is_empty() {
            "$"
        } else {
            &self.path
        });
        self.field.push_str(kind.suffix());
        let text = |value: Option<&Value>| value.map_or_else(|| "absent".to_string(), render);
        self.out
            .push_with(&self.field, || text(primary), || text(other));
    }
}

/// A value as JSON, cut to a sample's length.
fn render(value: &Value) -> String {
    let mut out = Vec::new();
    // The writer refuses bytes past the limit; the error only stops the serialisation.
    let _ = serde_json::to_writer(abbreviate::Limited::new(&mut out), value);
    abbreviate::finish(out)
}

/// An object is a dynamic map when its keys look like data: many of them, long ones, or
/// ones that are not identifiers (`"7"`, `"2024-01-01"`, `"a b"`).
fn is_dynamic(map: &Map<String, Value>) -> bool {
    map.len() > MAX_NAMED_KEYS || map.keys().any(|key| !is_name(key))
}

fn is_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    key.len() <= MAX_KEY_LEN
        && (first.is_ascii_alphabetic() || matches!(first, b'_' | b'$' | b'@'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names of the differences between two JSON texts.
    fn fields(primary: &str, other: &str) -> Vec<String> {
        fields_ignoring(primary, other, &[])
    }

    fn fields_ignoring(primary: &str, other: &str, ignore: &[&str]) -> Vec<String> {
        let p: Value = serde_json::from_str(primary).unwrap();
        let o: Value = serde_json::from_str(other).unwrap();
        let ignore: Vec<String> = ignore.iter().map(|p| normalize_path(p)).collect();
        let mut out = Differences::default();
        diff(&p, &o, &ignore, &mut out);
        out.iter().map(|d| d.field.clone()).collect()
    }

    #[test]
    fn differences_and_their_paths() {
        let rows: &[(&str, &str, &[&str])] = &[
            // Equal, whatever the key order and spacing.
            (r#"{"a":1,"b":[1,2]}"#, r#"{ "b": [1, 2], "a": 1 }"#, &[]),
            (r#"{"a":1}"#, r#"{"a":2}"#, &["body a"]),
            // Nested objects.
            (
                r#"{"user":{"name":"ada","email":"a@x"}}"#,
                r#"{"user":{"name":"ada","email":"b@x"}}"#,
                &["body user.email"],
            ),
            (
                r#"{"user":{"address":{"city":"Paris"}}}"#,
                r#"{"user":{"address":{"city":"Lyon"}}}"#,
                &["body user.address.city"],
            ),
            // Type changes.
            (r#"{"a":"1"}"#, r#"{"a":1}"#, &["body a type"]),
            (r#"{"a":{"x":1}}"#, r#"{"a":[1]}"#, &["body a type"]),
            (r#"{"a":null}"#, r#"{"a":false}"#, &["body a type"]),
            (r#"{"a":true}"#, r#"{"a":false}"#, &["body a"]),
            // Numbers: 1 and 1.0 differ in type (Diffy's Long vs Double); 1.0 and 1.00 do not.
            (r#"{"n":1}"#, r#"{"n":1.0}"#, &["body n type"]),
            (r#"{"n":1.0}"#, r#"{"n":1.00}"#, &[]),
            (r#"{"n":1.5}"#, r#"{"n":2.5}"#, &["body n"]),
            (r#"{"n":-1}"#, r#"{"n":1}"#, &["body n"]),
            (r#"{"n":1e2}"#, r#"{"n":100.0}"#, &[]),
            // Missing and extra fields.
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"#, &["body b missing"]),
            (r#"{"a":1}"#, r#"{"a":1,"c":{"d":1}}"#, &["body c extra"]),
            (
                r#"{"a":1,"b":2}"#,
                r#"{"a":1,"c":2}"#,
                &["body b missing", "body c extra"],
            ),
            // Arrays: one path for all elements, counted once; lengths differ as a whole.
            (
                r#"{"items":[{"p":1},{"p":2},{"p":3}]}"#,
                r#"{"items":[{"p":9},{"p":2},{"p":8}]}"#,
                &["body items[].p"],
            ),
            (
                r#"{"items":[1,2,3]}"#,
                r#"{"items":[1,2]}"#,
                &["body items length"],
            ),
            (r#"[{"id":1}]"#, r#"[{"id":2}]"#, &["body [].id"]),
            (r#"[[1],[2]]"#, r#"[[1],[3]]"#, &["body [][]"]),
            // The root itself.
            (r#"{"a":1}"#, r#"[1]"#, &["body $ type"]),
            (r#""x""#, r#""y""#, &["body $"]),
            // Dynamic-key maps: keys become `*`.
            (
                r#"{"scores":{"7":{"v":1},"8":{"v":2}}}"#,
                r#"{"scores":{"7":{"v":1},"8":{"v":3},"9":{"v":1}}}"#,
                &["body scores.*.v", "body scores.* extra"],
            ),
            (
                r#"{"by_day":{"2024-01-01":1}}"#,
                r#"{"by_day":{"2024-01-02":1}}"#,
                &["body by_day.* missing", "body by_day.* extra"],
            ),
        ];
        for (primary, other, expected) in rows {
            assert_eq!(fields(primary, other), *expected, "{primary} vs {other}");
        }
    }

    #[test]
    fn many_keys_make_a_dynamic_map() {
        let object = |n: usize, changed: usize| {
            let fields: Vec<String> = (0..n)
                .map(|i| format!(r#""k{i}":{}"#, if i == changed { 1 } else { 0 }))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        assert_eq!(fields(&object(10, 99), &object(10, 3)), ["body k3"]);
        assert_eq!(fields(&object(51, 99), &object(51, 3)), ["body *"]);
    }

    #[test]
    fn ignored_paths_and_what_is_under_them_are_skipped() {
        let p = r#"{"ts":1,"user":{"id":"a","name":"x"},"items":[{"id":1,"v":1}]}"#;
        let o = r#"{"ts":2,"user":{"id":"b","name":"y"},"items":[{"id":2,"v":2}]}"#;
        assert_eq!(
            fields_ignoring(p, o, &["ts", "user.id", "items[].id"]),
            ["body items[].v", "body user.name"]
        );
        assert_eq!(
            fields_ignoring(p, o, &["$.user", "items.id", "items[].v"]),
            ["body ts"]
        );
        // A missing field that is ignored is not reported either.
        assert_eq!(
            fields_ignoring(r#"{"a":1,"b":2}"#, r#"{"a":1}"#, &["b"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn samples_show_both_values_cut_short() {
        let long = "x".repeat(500);
        let p: Value = serde_json::from_str(&format!(r#"{{"a":"{long}","b":1}}"#)).unwrap();
        let o: Value = serde_json::from_str(r#"{"a":"short"}"#).unwrap();
        let mut out = Differences::default();
        diff(&p, &o, &[], &mut out);
        let got: Vec<_> = out.iter().collect();
        assert_eq!(got[0].field, "body a");
        assert!(got[0].primary.starts_with("\"xxxx"), "{}", got[0].primary);
        assert!(got[0].primary.chars().count() <= 101, "{}", got[0].primary);
        assert!(got[0].primary.ends_with('…'));
        assert_eq!(got[0].other, "\"short\"");
        assert_eq!(
            (
                got[1].field.as_str(),
                got[1].primary.as_str(),
                got[1].other.as_str()
            ),
            ("body b missing", "1", "absent")
        );
    }

    #[test]
    fn differences_are_bounded() {
        let object = |v: usize| {
            let fields: Vec<String> = (0..50).map(|i| format!(r#""a{i}":{v}"#)).collect();
            format!(
                r#"{{"o":{{{}}},"p":{{{}}}}}"#,
                fields.join(","),
                fields.join(",")
            )
        };
        let p: Value = serde_json::from_str(&object(1)).unwrap();
        let o: Value = serde_json::from_str(&object(2)).unwrap();
        let mut out = Differences::default();
        diff(&p, &o, &[], &mut out);
        assert!(out.is_full());
        assert!(out.len() <= crate::report::compare::MAX_DIFFERENCES);
    }
}
