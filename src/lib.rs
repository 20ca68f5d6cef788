//! trident: an HTTP/1.1 shadow-traffic proxy. Every client request is multicast to three
//! upstreams (primary, secondary, candidate); the client gets the primary's response, and each
//! exchange is reported on stdout. One mio reactor thread does all the I/O; a reporting thread
//! does all the writing.
//!
//! One request's path, module by module:
//! `reactor` (accept, readiness, deadlines, signals) → `client` (read and frame the request)
//! → `exchange` (fan the request out to three legs) → `upstream` (pooled upstream connections)
//! → back to `client` (stream the primary's response) → `report` (console block).

pub mod buffer;
pub mod cli;
pub mod client;
pub mod demo;
pub mod descriptors;
pub mod exchange;
pub mod failure;
pub mod http;
pub mod output;
pub mod reactor;
pub mod report;
pub mod targets;
pub mod timer;
pub mod tls;
pub mod transport;
pub mod upstream;

pub use reactor::{Control, Proxy};

/// A count with its noun, singular or plural, for messages: "1 exchange", "3 exchanges".
pub(crate) struct Counted(pub usize, pub &'static str);

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.0 == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.0, self.1)
    }
}

/// The exit status when trident itself fails: it cannot listen, a thread cannot start, the
/// report cannot be written, or a third SIGTERM/SIGINT ends it without its summary. Apart from
/// the verdict's (`--exit-code`: 1 FAIL, 3 UNDECIDED) and a mistake in the command line or the
/// targets (2), so that a CI job can tell a failing candidate from a run that did not happen.
pub const EXIT_TROUBLE: u8 = 4;
