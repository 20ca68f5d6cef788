//! The command line (getopts) turned into a plain, validated `Config`, and the usage text.
//! Exit codes are `main`'s business; this module only says what is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the targets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    /// `--targets FILE` (re-read on SIGHUP).
    File(PathBuf),
    /// `--primary URL --secondary URL --candidate URL`.
    Urls {
        primary: String,
        secondary: String,
        candidate: String,
    },
}

/// Everything the command line decides, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--listen`, default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// `None` only with `--demo`, which brings its own upstreams.
    pub targets: Option<TargetSource>,
    /// `--timeout MS`, default 5000: each leg's deadline for its whole exchange.
    pub timeout: Duration,
    /// `--connect-timeout MS`, default 1000.
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            targets: None,
            timeout: Duration::from_millis(5000),
            connect_timeout: Duration::from_millis(1000),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the proxy.
    Run(Config),
    /// `--demo`: built-in upstreams and client.
    Demo(Config),
    /// `-h/--help`: print this usage text to stdout, exit 0.
    Help(String),
    /// `-V/--version`: print `trident VERSION`, exit 0.
    Version,
}

/// Parses `args` (without the program name).
pub fn parse_args(args: &[String]) -> Result<Command, Error> {
    let _ = args;
    todo!()
}

/// A command-line mistake; Display is one line naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    // implementation-defined
}

/// The short hint printed after an error line.
pub const USAGE_HINT: &str = "usage: trident [--listen ADDR] (--targets FILE | --primary URL --secondary URL --candidate URL) [options]; try 'trident --help'";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

impl std::error::Error for Error {}
