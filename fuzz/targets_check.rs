//! The targets-file fuzz check, shared by `fuzz_targets/targets_file.rs` and the corpus
//! replay in `tests/fuzz_corpus.rs`.
//!
//! Host names go to `offline_resolve`, never to DNS: fed random text, the system resolver
//! would send random names out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use trident::targets::Targets;

/// The file name errors are reported against.
const FILE: &str = "fuzz.conf";

/// Where every name resolves (TEST-NET-1, RFC 5737).
const RESOLVED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// A name's second address when it has two.
const RESOLVED_TOO: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// A resolver without a network: a name under `.invalid` (RFC 6761) fails, one under
/// `.test` resolves to `RESOLVED` and `RESOLVED_TOO`, any other to `RESOLVED`, so every
/// path of a lookup is reachable.
pub fn offline_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host.to_ascii_lowercase();
    if host.ends_with(".invalid") {
        Err(io::Error::new(io::ErrorKind::NotFound, "no such name"))
    } else if host.ends_with(".test") {
        Ok(vec![
            SocketAddr::from((RESOLVED, port)),
            SocketAddr::from((RESOLVED_TOO, port)),
        ])
    } else {
        Ok(vec![SocketAddr::from((RESOLVED, port))])
    }
}

/// Parses fuzz input as a targets file: no panic; an error names the file; a success is
/// made of what the text says and parsing again gives the same targets.
pub fn check_targets_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parse = || Targets::parse_with(&text, FILE, &offline_resolve);
    match parse() {
        Ok(targets) => {
            for target in targets.iter() {
                assert!(text.contains(&target.url), "{target:?} not in {text:?}");
                assert!(
                    target.url.contains(&target.authority),
                    "authority of {target:?}"
                );
                // Every address is tried once, in the resolver's order.
                assert!(!target.fallbacks.contains(&target.addr), "{target:?}");
                let mut addr = target.addr;
                for &next in &target.fallbacks {
                    addr = target.address_after(addr);
                    assert_eq!(addr, next, "{target:?}");
                }
                assert_eq!(target.address_after(addr), target.addr, "{target:?}");
                // A rule never smuggles a line end (a field or a request of its own) into
                // the heads it is written into.
                for rule in &target.options.fields {
                    let line = format!("{}: {}", rule.name, rule.value.as_deref().unwrap_or(""));
                    assert!(
                        !line.contains(['\r', '\n', '\0']) && !rule.name.contains([' ', ':']),
                        "{rule:?}"
                    );
                }
            }
            // Looking the names up again with the same answers changes nothing (the same
            // names and ports as the load looked up).
            let (again, failures) = targets.looked_up_again(&offline_resolve);
            assert_eq!(again, targets, "looked up again");
            assert!(failures.is_empty(), "{failures:?}");
            assert_eq!(parse(), Ok(targets), "parsed twice");
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
