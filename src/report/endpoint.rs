//! Endpoints: the bucket an exchange's statistics go to, `METHOD /path` with the path
//! segments that look like ids (numbers, UUIDs, hex hashes) written `{id}`, so that
//! `/users/7` and `/users/8` count together. `--endpoint` templates (`/users/{name}/posts`)
//! come first. The table of endpoints lives in `stats`; this module only names them.

use std::borrow::Cow;
use std::fmt;

use super::printable;

/// The name of the bucket for exchanges beyond `--max-endpoints`.
pub const OTHER: &str = "other";

/// The longest endpoint name kept; longer ones are cut (a bound on memory per endpoint).
const MAX_NAME: usize = 200;

/// An explicit `--endpoint` template: an optional method, then `/`-separated segments where
/// `{anything}` matches any one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    method: Option<String>,
    segments: Vec<Segment>,
    /// The path part as the user wrote it, used as the endpoint's name.
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// Why an `--endpoint` value is not a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses `[METHOD ]/seg/{param}/seg`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let bad = |why: &str| PatternError(format!("\"{text}\" {why}"));
        // A path comes first, or a method and a space: a path holding a space is refused below.
        let (method, path) = match text.split_once(' ').filter(|_| !text.starts_with('/')) {
            Some((method, path)) => {
                // A method is a token, as for --shadow-methods (`M-SEARCH`).
                if !crate::cli::is_token(method) {
                    return Err(bad("does not start with a method or a /"));
                }
                // As --shadow-methods: `get /x` means GET (a lower-case method is its own,
                // RFC 9110 §9.1, but nobody means one in a template, and it would never match).
                (Some(method.to_ascii_uppercase()), path.trim_start())
            }
            None => (None, text),
        };
        if !path.starts_with('/') {
            return Err(bad("is not a path starting with /"));
        }
        if path.contains(['?', '#', ' ']) {
            return Err(bad("has a query, a fragment or a space"));
        }
        let mut segments = Vec::new();
        for segment in path[1..].split('/') {
            if segment.starts_with('{') && segment.ends_with('}') && segment.len() >= 2 {
                if segment[1..segment.len() - 1].contains(['{', '}']) {
                    return Err(bad("has a brace inside a {parameter}"));
                }
                segments.push(Segment::Any);
            } else if segment.contains(['{', '}']) {
                return Err(bad("has a {parameter} that is not a whole segment"));
            } else {
                segments.push(Segment::Literal(segment.to_string()));
            }
        }
        Ok(Pattern {
            method,
            segments,
            path: path.to_string(),
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut given = rest.split('/');
        for segment in &self.segments {
            match (segment, given.next()) {
                // A parameter is a whole segment, not an empty one: `/users/` is the list,
                // not `/users/{name}`, as the automatic templates keep it.
                (Segment::Any, Some(got)) if !got.is_empty() => {}
                (Segment::Literal(want), Some(got)) if want == got => {}
                _ => return false,
            }
        }
        given.next().is_none()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(method) => write!(f, "{method} {}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// Names endpoints: explicit templates first, then automatic `{id}` templating.
#[derive(Debug, Clone, Default)]
pub struct Namer {
    patterns: Vec<Pattern>,
}

impl Namer {
    /// A namer trying `patterns` in order before templating.
    pub fn new(patterns: Vec<Pattern>) -> Namer {
        Namer { patterns }
    }

    /// Writes the endpoint of a request (`GET /users/{id}`) into `out` (cleared first).
    pub fn name(&self, method: &str, target: &str, out: &mut String) {
        out.clear();
        out.push_str(method);
        out.push(' ');
        let path = path_of(target);
        if let Some(pattern) = self.patterns.iter().find(|p| p.matches(method, path)) {
            out.push_str(&pattern.path);
        } else if let Some(rest) = path.strip_prefix('/') {
            for segment in rest.split('/') {
                out.push('/');
                if looks_like_id(segment) {
                    out.push_str("{id}");
                } else {
                    out.push_str(segment);
                }
                if out.len() > MAX_NAME {
                    break;
                }
            }
        } else {
            out.push_str(path);
        }
        // The client's text, as the console shows it: nothing in it may break a line.
        if let Cow::Owned(escaped) = printable(out) {
            *out = escaped;
        }
        if out.len() > MAX_NAME {
            let mut cut = MAX_NAME;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
        }
    }
}

/// The path of a request target: origin-form without its query, the path of an
/// absolute-form URL, or the target itself (`*`, authority-form).
fn path_of(target: &str) -> &str {
    let without_query = |t: &'_ str| -> usize { t.find(['?', '#']).unwrap_or(t.len()) };
    if target.starts_with('/') {
        return &target[..without_query(target)];
    }
    if let Some(scheme_end) = target.find("://") {
        let rest = &target[scheme_end + 3..];
        return match rest.find('/') {
            Some(slash) => {
                let path = &rest[slash..];
                &path[..without_query(path)]
            }
            None => "/",
        };
    }
    target
}

/// A path segment that names one resource among many: a number, a UUID or a hex hash.
pub fn looks_like_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(bytes) {
        return true;
    }
    // A hex hash: long hex runs are ids; shorter ones (a short commit hash) only with both
    // digits and letters, so that words like `cafe` or `deadbeef` stay words.
    if bytes.len() >= 8 && bytes.iter().all(u8::is_ascii_hexdigit) {
        let has_digit = bytes.iter().any(u8::is_ascii_digit);
        let has_letter = bytes.iter().any(u8::is_ascii_alphabetic);
        return bytes.len() >= 16 || (has_digit && has_letter);
    }
    false
}

/// `8-4-4-4-12` hex digits (RFC 9562 §4 text form), any case.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(namer: &Namer, method: &str, target: &str) -> String {
        let mut out = String::new();
        namer.name(method, target, &mut out);
        out
    }

    #[test]
    fn automatic_templates() {
        let namer = Namer::default();
        let rows: &[(&str, &str, &str)] = &[
            ("GET", "/", "GET /"),
            ("GET", "/users/7", "GET /users/{id}"),
            ("GET", "/users/7?x=1", "GET /users/{id}"),
            (
                "DELETE",
                "/users/123/posts/456",
                "DELETE /users/{id}/posts/{id}",
            ),
            (
                "GET",
                "/orders/550e8400-e29b-41d4-a716-446655440000",
                "GET /orders/{id}",
            ),
            (
                "GET",
                "/orders/550E8400-E29B-41D4-A716-446655440000/items",
                "GET /orders/{id}/items",
            ),
            ("GET", "/blobs/9f86d081884c7d65", "GET /blobs/{id}"),
            (
                "GET",
                "/blobs/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "GET /blobs/{id}",
            ),
            ("GET", "/commits/a1b2c3d4", "GET /commits/{id}"),
            // Words stay words, even when they are hex.
            ("GET", "/deadbeef", "GET /deadbeef"),
            ("GET", "/cafe/v2/items", "GET /cafe/v2/items"),
            ("GET", "/users/me", "GET /users/me"),
            ("GET", "/a1b2c3", "GET /a1b2c3"),
            ("GET", "/users/", "GET /users/"),
            ("GET", "//x", "GET //x"),
            ("GET", "http://example.com/users/9?q", "GET /users/{id}"),
            ("GET", "http://example.com", "GET /"),
            ("OPTIONS", "*", "OPTIONS *"),
            // The client's text, escaped where it could break or reorder a line.
            ("GET", "/a\u{2028}b/\u{202e}x", r"GET /a\u2028b/\u202ex"),
        ];
        for (method, target, expected) in rows {
            assert_eq!(name(&namer, method, target), *expected, "{target}");
        }
    }

    #[test]
    fn explicit_templates_come_first() {
        let namer = Namer::new(vec![
            Pattern::parse("/users/{name}/posts").unwrap(),
            Pattern::parse("POST /users/{name}").unwrap(),
            Pattern::parse("/static/{file}").unwrap(),
            Pattern::parse("delete /items/{item}").unwrap(),
            Pattern::parse("M-SEARCH /ssdp/{any}").unwrap(),
        ]);
        let rows: &[(&str, &str, &str)] = &[
            ("GET", "/users/alice/posts", "GET /users/{name}/posts"),
            ("GET", "/users/7/posts?page=2", "GET /users/{name}/posts"),
            ("POST", "/users/alice", "POST /users/{name}"),
            // A parameter is not an empty segment: the list is not an item.
            ("POST", "/users/", "POST /users/"),
            ("GET", "/users//posts", "GET /users//posts"),
            // The method does not match: automatic templating.
            ("GET", "/users/alice", "GET /users/alice"),
            (
                "GET",
                "/users/alice/posts/extra",
                "GET /users/alice/posts/extra",
            ),
            ("GET", "/static/app.js", "GET /static/{file}"),
            ("DELETE", "/items/x1", "DELETE /items/{item}"),
            ("M-SEARCH", "/ssdp/x", "M-SEARCH /ssdp/{any}"),
        ];
        for (method, target, expected) in rows {
            assert_eq!(name(&namer, method, target), *expected, "{target}");
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("users/{id}", "is not a path starting with /"),
            ("get/x /y", "does not start with a method or a /"),
            (
                "/users/{id",
                "has a {parameter} that is not a whole segment",
            ),
            (
                "/users/x{id}",
                "has a {parameter} that is not a whole segment",
            ),
            ("/users/{a{b}}", "has a brace inside a {parameter}"),
            ("/users?x", "has a query, a fragment or a space"),
            ("/users/a b", "has a query, a fragment or a space"),
            ("GET /users/a b", "has a query, a fragment or a space"),
        ] {
            let err = Pattern::parse(text).unwrap_err().to_string();
            assert!(err.ends_with(why), "{text}: {err}");
        }
    }

    #[test]
    fn long_names_are_cut() {
        let target = format!("/{}", "x".repeat(1000));
        let got = name(&Namer::default(), "GET", &target);
        assert!(got.chars().count() <= MAX_NAME + 1, "{}", got.len());
        assert!(got.ends_with('…'));
    }
}
