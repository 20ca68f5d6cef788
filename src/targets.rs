//! The three upstream targets: parsed from the targets file (or the three URL flags), with
//! `FILE:LINE` errors, and re-read on SIGHUP. Host names are resolved when the file is loaded,
//! never on the reactor at request time.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The part an upstream plays in an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The stable version whose response the client gets.
    Primary,
    /// A second stable instance: its differences from the primary are noise.
    Secondary,
    /// The new version under test.
    Candidate,
}

impl Role {
    /// All roles, in console order.
    pub const ALL: [Role; 3] = [Role::Primary, Role::Secondary, Role::Candidate];

    /// The role's name in the targets file and on the console.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Candidate => "candidate",
        }
    }

    /// Index into per-role arrays (`ALL` order).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-leg options written after the URL (`timeout=1500`); unset ones use the command line's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegOptions {
    /// Whole-exchange deadline for this leg.
    pub timeout: Option<Duration>,
    /// Connect deadline for this leg.
    pub connect_timeout: Option<Duration>,
}

/// One upstream: where it is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub role: Role,
    /// The URL as written (`http://127.0.0.1:9001`).
    pub url: String,
    /// `host:port` from the URL.
    pub authority: String,
    /// The address the host resolved to when the targets were loaded.
    pub addr: SocketAddr,
    pub options: LegOptions,
}

/// The three targets, one per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    legs: [Target; 3],
}

impl Targets {
    /// Reads and parses a targets file; errors read `FILE:LINE: what is wrong`.
    pub fn load(path: &Path) -> Result<Targets, Error> {
        let _ = path;
        todo!()
    }

    /// Parses targets-file text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Targets, Error> {
        let _ = (text, file);
        todo!()
    }

    /// Builds the targets from the three URL flags.
    pub fn from_urls(primary: &str, secondary: &str, candidate: &str) -> Result<Targets, Error> {
        let _ = (primary, secondary, candidate);
        todo!()
    }

    /// The target playing `role`.
    pub fn get(&self, role: Role) -> &Target {
        &self.legs[role.index()]
    }

    /// All three, in `Role::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.legs.iter()
    }
}

/// What is wrong with a targets file or a target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    // implementation-defined; Display gives `FILE:LINE: message` (or `FILE: message`,
    // or `--primary: message` for the URL flags)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

impl std::error::Error for Error {}
