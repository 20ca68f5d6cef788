//! `trident --demo` (stub, being written).

use std::io;

use crate::cli::Config;

/// Runs the demo: three built-in upstreams, the proxy, a built-in client; prints the blocks.
pub fn run(config: &Config) -> io::Result<()> {
    let _ = config;
    todo!()
}
