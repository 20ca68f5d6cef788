//! The targets-file fuzz check, shared by `fuzz_targets/targets_file.rs` and the corpus
//! replay in `tests/fuzz_corpus.rs`.
//!
//! Host names go to `offline_resolve`, never to DNS: fed random text, the system resolver
//! would send random names out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use trident::targets::{Role, Targets};

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
                // Only a shadow may be left unresolved, and then it says why.
                assert_eq!(
                    target.is_unresolved(),
                    target.lookup_error.is_some(),
                    "{target:?}"
                );
                assert!(
                    !target.is_unresolved() || target.role != Role::Primary,
                    "{target:?}"
                );
                // Every address is tried once, in the resolver's order.
                if let Some((&first, rest)) = target.addrs.split_first() {
                    assert!(!rest.contains(&first), "{target:?}");
                    let mut addr = first;
                    for &next in rest {
                        addr = target.address_after(addr);
                        assert_eq!(addr, next, "{target:?}");
                    }
                    assert_eq!(target.address_after(addr), first, "{target:?}");
                }
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
            // names and ports as the load looked up), and fails for the unresolved alone.
            let (again, failures) = targets.looked_up_again(&offline_resolve);
            assert_eq!(again, targets, "looked up again");
            let unresolved: Vec<Role> = targets
                .iter()
                .filter(|t| t.is_unresolved())
                .map(|t| t.role)
                .collect();
            let failed: Vec<Role> = failures.iter().map(|(role, _)| *role).collect();
            assert_eq!(failed, unresolved);
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
