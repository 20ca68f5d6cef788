//! The targets-file fuzz check, shared by `fuzz_targets/targets_file.rs` and the corpus
//! replay in `tests/fuzz_corpus.rs`.
//!
//! `Targets::parse` resolves host names with the system resolver, and offers no way to pass
//! another one: fed random text, it would send random names to DNS. So inputs whose URLs
//! could reach the resolver are skipped, by a test that errs on the side of skipping.

use trident::targets::Targets;

/// The file name errors are reported against.
const FILE: &str = "fuzz.conf";

/// True when no URL in `text` can make `Targets::parse` resolve a name. The parser only
/// resolves a host made of letters, digits, `-`, `.` and `_` that is not all digits and dots,
/// and only after `://`; the authority it sees ends at or before the first ASCII whitespace,
/// `/`, `?` or `#`, and its host at the first `:` (unless bracketed). So any `://` followed by
/// a host part with a letter, `-` or `_` in it is skipped.
pub fn resolves_nothing(text: &str) -> bool {
    text.match_indices("://").all(|(at, _)| {
        let rest = &text[at + 3..];
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || matches!(c, '/' | '?' | '#'))
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.starts_with('[') {
            return true;
        }
        let host = authority.split(':').next().unwrap_or_default();
        !host
            .bytes()
            .any(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
    })
}

/// Parses fuzz input as a targets file: no panic; an error names the file; a success is
/// made of what the text says and parsing again gives the same targets.
pub fn check_targets_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if !resolves_nothing(&text) {
        return;
    }
    match Targets::parse(&text, FILE) {
        Ok(targets) => {
            for target in targets.iter() {
                assert!(text.contains(&target.url), "{target:?} not in {text:?}");
                assert!(
                    target.url.contains(&target.authority),
                    "authority of {target:?}"
                );
            }
            assert_eq!(Targets::parse(&text, FILE), Ok(targets), "parsed twice");
        }
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{FILE}:")),
                "error {message:?} does not name the file"
            );
        }
    }
}
