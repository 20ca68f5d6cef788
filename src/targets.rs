//! The three upstream targets: parsed from the targets file (or the three URL flags), with
//! `FILE:LINE` errors, and re-read on SIGHUP. Host names are resolved when the file is loaded,
//! never on the reactor at request time.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use crate::http::FieldRule;
use crate::report::without_controls;

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

impl Target {
    /// What this target is, however its URL spells it: https or not, the host (a name
    /// without case; an address in its one written form: `[0:0:0:0:0:0:0:1]` is `[::1]`,
    /// `[::ffff:127.0.0.1]` is 127.0.0.1), and the port (written out or the scheme's). With
    /// `host=target` the authority as written goes out as the Host field, so it counts too
    /// (without case).
    pub fn identity(&self) -> (bool, String, u16, Option<String>) {
        let host = match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical().to_string(),
            Err(_) => self.host.to_ascii_lowercase(),
        };
        // A host name has no case in the Host field either.
        let sent = matches!(self.options.host, Some(HostField::Target))
            .then(|| self.authority.to_ascii_lowercase());
        (self.tls, host, self.port, sent)
    }
}

/// Most exchanges a shadow leg may have in flight unless `max_inflight=` says otherwise.
pub const DEFAULT_MAX_INFLIGHT: usize = 256;

/// Per-leg options written after the URL (`timeout=1500`); unset ones use the command line's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegOptions {
    /// Whole-exchange deadline for this leg.
    pub timeout: Option<Duration>,
    /// Connect deadline for this leg.
    pub connect_timeout: Option<Duration>,
    /// Most exchanges this (shadow) leg may have in flight; beyond it new exchanges skip
    /// the leg (`skipped: saturated`). Ignored for the primary, which is never skipped.
    pub max_inflight: Option<usize>,
    /// The Host field this leg receives (`host=`); the client's when unset.
    pub host: Option<HostField>,
    /// Verify an https target's certificate (`tls_verify=on|off`, default on).
    pub tls_verify: Option<bool>,
    /// Request fields this leg gets in place of the client's (`set_header="NAME: VALUE"`) or
    /// goes without (`drop_header=NAME`), one rule per name.
    pub fields: Vec<FieldRule>,
}

impl LegOptions {
    /// These options with every default written out, so that a reload which only spells a
    /// default (`timeout=5000` under `--timeout 5000`) changes nothing; nor does one that
    /// only reorders the field rules or changes the case of their names (one rule per name).
    pub fn written_out(&self, timeout: Duration, connect_timeout: Duration) -> LegOptions {
        let mut fields: Vec<FieldRule> = self
            .fields
            .iter()
            .map(|rule| FieldRule {
                name: rule.name.to_ascii_lowercase(),
                value: rule.value.clone(),
            })
            .collect();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        LegOptions {
            timeout: Some(self.timeout.unwrap_or(timeout)),
            connect_timeout: Some(self.connect_timeout.unwrap_or(connect_timeout)),
            max_inflight: Some(self.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT)),
            host: Some(self.host.clone().unwrap_or(HostField::Keep)),
            tls_verify: Some(self.tls_verify.unwrap_or(true)),
            fields,
        }
    }
}

/// What a leg's Host field says (`host=keep|target|NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostField {
    /// The client's Host, as it sent it.
    Keep,
    /// The target's `host:port` from its URL.
    Target,
    /// This literal value.
    Literal(String),
}

/// One upstream: where it is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The part this upstream plays.
    pub role: Role,
    /// The URL as written (`http://127.0.0.1:9001`).
    pub url: String,
    /// `host:port` from the URL, as written (without a port if the URL has none).
    pub authority: String,
    /// The host's addresses, in the resolver's order (`localhost` as `::1`, then
    /// `127.0.0.1`): a connection that cannot be made to one address is tried on the next.
    /// Empty only for a shadow whose name did not resolve (`lookup_error`).
    pub addrs: Vec<SocketAddr>,
    /// Why a shadow's host name did not resolve when the targets were loaded. Its leg fails
    /// at once (`unresolved host name`) until a lookup (`--dns-refresh`, SIGHUP) gives it
    /// addresses: a candidate not yet in DNS, or gone from it, must not keep trident from
    /// starting and serving the primary.
    pub lookup_error: Option<String>,
    /// An `https://` target: trident speaks TLS to it.
    pub tls: bool,
    /// The host as written in the URL (no brackets, no port): the TLS server name.
    pub host: String,
    /// The port from the URL, or its scheme's.
    pub port: u16,
    /// This leg's own options, over the command line's.
    pub options: LegOptions,
}

impl Target {
    /// An https target's certificate is checked unless the leg says `tls_verify=off`.
    pub fn verifies_tls(&self) -> bool {
        self.options.tls_verify != Some(false)
    }

    /// The URL names a host (not an address): its addresses can change while trident runs.
    pub fn is_named(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }

    /// `role=URL` for the log, with its addresses, the one tried first first, when the URL
    /// names a host (`candidate=http://api.internal:8080 (10.0.0.3:8080, 10.0.0.4:8080)`).
    pub fn label(&self) -> String {
        if !self.is_named() {
            return format!("{}={}", self.role, self.url);
        }
        if self.addrs.is_empty() {
            return format!("{}={} (unresolved)", self.role, self.url);
        }
        let addrs: Vec<String> = self.addrs.iter().map(SocketAddr::to_string).collect();
        format!("{}={} ({})", self.role, self.url, addrs.join(", "))
    }

    /// How many addresses a connection may be tried on.
    pub fn address_count(&self) -> usize {
        self.addrs.len()
    }

    /// A shadow whose host name has no addresses yet.
    pub fn is_unresolved(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The address tried first, unless the name is unresolved.
    pub fn first_address(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// Whether `addr` is one of the target's addresses (compared in place: this runs on
    /// every pooled connection taken).
    pub fn has_address(&self, addr: SocketAddr) -> bool {
        self.addrs.contains(&addr)
    }

    /// The address tried after `addr` failed, wrapping around to the first (the first,
    /// too, for an address the target does not have). Called only for a target with
    /// addresses: a connection was made to one.
    pub fn address_after(&self, addr: SocketAddr) -> SocketAddr {
        let next = self
            .addrs
            .iter()
            .position(|&a| a == addr)
            .map_or(0, |i| i + 1);
        self.addrs[next % self.addrs.len()]
    }

    /// Every address, in the order tried.
    pub fn addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.iter().copied()
    }

    /// `addresses` as text, `[::1]:9003, 127.0.0.1:9003`, for the log.
    pub fn address_list(&self) -> String {
        join_addresses(self.addresses())
    }

    /// The addresses after the first, as text, for the load-time note and `--check`.
    pub fn fallback_list(&self) -> String {
        join_addresses(self.addresses().skip(1))
    }
}

/// The three targets, one per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    legs: [Target; 3],
}

impl Targets {
    /// Every target's `label`, for the log.
    pub fn labels(&self) -> String {
        self.iter().map(Target::label).collect::<Vec<_>>().join(" ")
    }

    /// Reads and parses a targets file; errors read `FILE:LINE: what is wrong`. A file
    /// beyond `MAX_FILE_BYTES` is refused unread: `--targets /dev/zero`, or a log file named
    /// by mistake, must not fill memory at a SIGHUP. A FIFO or socket is refused unread too:
    /// reading one waits for a writer, and a reload thread stuck there takes every later
    /// SIGHUP with it.
    pub fn load(path: &Path) -> Result<Targets, Error> {
        Targets::load_with(path, &resolve)
    }

    /// `load`, with host names looked up by `resolve`, as `parse_with`.
    pub fn load_with(path: &Path, resolve: Resolver) -> Result<Targets, Error> {
        // Escaped: a newline in the name must not start a line of the log.
        let file = crate::report::without_controls(&path.to_string_lossy()).into_owned();
        let cannot_read = |err: io::Error| Error::new(&*file, None, format!("cannot read: {err}"));
        // Non-blocking, so that opening a FIFO does not wait for a writer before its type
        // can be seen; on a regular file the flag changes nothing.
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(cannot_read)?;
        let kind = opened.metadata().map_err(cannot_read)?.file_type();
        if kind.is_fifo() || kind.is_socket() {
            let what = if kind.is_fifo() { "a FIFO" } else { "a socket" };
            return Err(Error::new(
                file,
                None,
                format!("{what}, not a file: reading it would wait for a writer"),
            ));
        }
        let mut bytes = Vec::new();
        opened
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot_read)?;
        if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
            return Err(Error::new(
                file,
                None,
                "UTF-16 text (as some Windows editors save it): save it as UTF-8".to_string(),
            ));
        }
        // Size first: the cut may fall inside a character.
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::new(
                file,
                None,
                format!("larger than {MAX_FILE_BYTES} bytes: not a targets file"),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|err| {
            let at = err.utf8_error().valid_up_to();
            let line = err.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Error::new(&*file, Some(line), "not UTF-8 text".to_string())
        })?;
        parse_file(&text, &file, resolve)
    }

    /// Parses targets-file text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Targets, Error> {
        parse_file(text, file, &resolve)
    }

    /// `parse`, with host names looked up by `resolve` (host, port: the addresses, in the
    /// order to try them) instead of the system resolver: the fuzz target parses names
    /// without sending them to DNS, and tests give a name addresses of their choosing.
    pub fn parse_with(text: &str, file: &str, resolve: Resolver) -> Result<Targets, Error> {
        parse_file(text, file, resolve)
    }

    /// Builds the targets from the three URL flags.
    pub fn from_urls(primary: &str, secondary: &str, candidate: &str) -> Result<Targets, Error> {
        from_urls_with([primary, secondary, candidate], &resolve)
    }

    /// The target playing `role`.
    pub fn get(&self, role: Role) -> &Target {
        &self.legs[role.index()]
    }

    /// All three, in `Role::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.legs.iter()
    }

    /// These targets with their host names looked up again by `resolve`, for the addresses a
    /// redeployed service moved to, or a shadow's unresolved name now has. A name that cannot
    /// be looked up keeps its addresses (an unresolved one stays so, with the error it had);
    /// the failures come back beside, with their role, for the caller to say. The same
    /// addresses in another order (a DNS server rotating its answers) are no change.
    pub fn looked_up_again(&self, resolve: Resolver) -> (Targets, Vec<(Role, String)>) {
        let mut failures = Vec::new();
        let mut targets = self.clone();
        for target in targets.legs.iter_mut().filter(|t| t.is_named()) {
            match resolve(&target.host, target.port) {
                Ok(addrs) if addrs.is_empty() => {
                    failures.push((target.role, "no addresses".to_string()))
                }
                Ok(addrs)
                    if addrs.iter().all(|&addr| target.has_address(addr))
                        && target.addresses().all(|addr| addrs.contains(&addr)) => {}
                Ok(addrs) => {
                    target.addrs = addrs;
                    target.lookup_error = None;
                }
                Err(err) => failures.push((target.role, err.to_string())),
            }
        }
        (targets, failures)
    }

    /// A reload's shadows whose names did not resolve this time take the addresses the
    /// same name had in `installed`: a lookup failing for a moment (a DNS server restarting)
    /// must not fail every exchange of a leg that works, as `looked_up_again` does not. The
    /// lookups failed so come back, with their role and error, for the caller to say.
    pub fn keep_addresses_of(&mut self, installed: &Targets) -> Vec<(Role, String)> {
        let mut kept = Vec::new();
        for (target, before) in self.legs.iter_mut().zip(installed.iter()) {
            if target.is_unresolved()
                && !before.is_unresolved()
                && target.port == before.port
                && target.host.eq_ignore_ascii_case(&before.host)
            {
                let why = target.lookup_error.take();
                target.addrs.clone_from(&before.addrs);
                kept.push((target.role, why.unwrap_or_else(|| "no addresses".into())));
            }
        }
        kept
    }

    /// A note for each target whose host name has several addresses: which one trident
    /// tries first, and that the others follow when a connection cannot be made (so that a
    /// refusal logged for `::1` while the service listens on `127.0.0.1` is understood).
    pub fn address_notes(&self) -> impl Iterator<Item = String> + '_ {
        self.iter().filter(|t| t.address_count() > 1).map(|t| {
            format!(
                "{}: {} resolves to {} addresses; trident connects to {} first, then to {} \
                 when a connection cannot be made",
                t.role,
                t.host,
                t.address_count(),
                t.addrs[0],
                t.fallback_list()
            )
        })
    }

    /// Logs what a load found about the names: `address_notes` as information,
    /// `unresolved_warnings` as warnings. At start-up and at each reload.
    pub fn log_lookups(&self, refresh: Option<Duration>) {
        for note in self.address_notes() {
            log::info!("{note}");
        }
        for warning in self.unresolved_warnings(refresh) {
            log::warn!("{warning}");
        }
    }

    /// A warning for each shadow whose host name did not resolve: its leg fails until the
    /// name is looked up again with success, every `refresh` (`--dns-refresh`) or, without
    /// one, at SIGHUP.
    pub fn unresolved_warnings(
        &self,
        refresh: Option<Duration>,
    ) -> impl Iterator<Item = String> + '_ {
        let when = match refresh {
            Some(every) => format!("looked up again every {}ms", every.as_millis()),
            None => "looked up again at SIGHUP (--dns-refresh off)".to_string(),
        };
        self.iter().filter(|t| t.is_unresolved()).map(move |t| {
            format!(
                "{}: cannot resolve \"{}\" ({}); its leg fails (unresolved host name) until \
                 the name resolves, {when}",
                t.role,
                t.host,
                t.lookup_error.as_deref().unwrap_or("no addresses"),
            )
        })
    }

    /// Refuses a target that is trident's own listener: every request sent there would come
    /// back as a new exchange and fan out again, each round adding requests to the other
    /// upstreams, without end. A port typed wrong must not multiply production traffic.
    /// (A loop through another host, a load balancer say, is not seen here.) `file`: where
    /// the targets came from, for the error (else it names the role's flag).
    pub fn loops_back(&self, listen: SocketAddr, file: Option<&Path>) -> Result<(), Error> {
        // Any address counts: a refused first one sends connections on to the next.
        let Some(target) = self
            .iter()
            .find(|t| t.addresses().any(|addr| is_listener(addr, listen)))
        else {
            return Ok(());
        };
        let (location, role) = match file {
            Some(path) => (
                crate::report::without_controls(&path.to_string_lossy()).into_owned(),
                format!("{} ", target.role.name()),
            ),
            None => (format!("--{}", target.role.name()), String::new()),
        };
        let message = format!(
            "{role}{} is trident's own listen address {listen}: its requests would come back to \
             trident and fan out again without end",
            target.url
        );
        Err(Error::new(location, None, message))
    }
}

/// `Targets::from_urls` with names looked up by `resolve`; errors name the role's flag.
fn from_urls_with(urls: [&str; 3], resolve: Resolver) -> Result<Targets, Error> {
    let leg = |role: Role| {
        let url = urls[role.index()];
        parse_url(url, resolve)
            .and_then(|parsed| parsed.into_target(role, url, LegOptions::default()))
            .map_err(|message| Error::new(format!("--{role}"), None, message))
    };
    Ok(Targets {
        legs: [
            leg(Role::Primary)?,
            leg(Role::Secondary)?,
            leg(Role::Candidate)?,
        ],
    })
}

/// Addresses as text, comma-separated.
fn join_addresses(addrs: impl Iterator<Item = SocketAddr>) -> String {
    let texts: Vec<String> = addrs.map(|addr| addr.to_string()).collect();
    texts.join(", ")
}

/// Whether a connection to `target` reaches a listener on `listen`: the same port, and the
/// same address, or any address of this host when `listen` is the wildcard.
fn is_listener(target: SocketAddr, listen: SocketAddr) -> bool {
    if target.port() != listen.port() || listen.port() == 0 {
        return false;
    }
    // `[::ffff:127.0.0.1]` is 127.0.0.1: the kernel connects to it (and binds it) as IPv4.
    let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
    let (target, listen) = (canonical(target), canonical(listen));
    if listen.is_ipv4() && target.is_ipv6() {
        // An IPv4 listener, even the wildcard, takes no IPv6 connection.
        return false;
    }
    // A connection to the wildcard address goes to the host's loopback address.
    let to = match target.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    if listen.ip().is_unspecified() {
        // Binding succeeds only to an address this host has.
        to.is_loopback() || std::net::UdpSocket::bind((to, 0)).is_ok()
    } else {
        to == listen.ip()
    }
}

/// Whether a host's last label is a number (decimal, or hex as `0x7f`): the WHATWG URL
/// standard's test for a host meant as an IPv4 address, which resolvers read in forms
/// (`10.1`, `0x7f000001`, `2130706433`) that are no host names.
fn ends_in_a_number(host: &str) -> bool {
    let last = host
        .strip_suffix('.')
        .unwrap_or(host)
        .rsplit('.')
        .next()
        .unwrap_or("");
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// An authority's port, if it names one no connection can have. A client's Host is forwarded
/// as sent, but a target's `host=` is the user's own to get right.
fn out_of_range_port(authority: &str) -> Option<&str> {
    let port = match authority.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    }?;
    // `h:` names no port (RFC 3986 allows the empty one): the scheme's is meant.
    (!port.is_empty() && !matches!(port.parse::<u16>(), Ok(1..))).then_some(port)
}

/// What is wrong with a targets file or a target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file name, or the flag (`--primary`) for a URL given on the command line.
    location: String,
    /// 1-based; `None` when the problem is the file as a whole (unreadable, a role missing).
    line: Option<usize>,
    message: String,
}

impl Error {
    fn new(location: impl Into<String>, line: Option<usize>, message: String) -> Error {
        // Messages quote the file's text: a control character in it (an escape sequence)
        // must not reach the terminal or the log as it is.
        let message = match without_controls(&message) {
            Cow::Borrowed(_) => message,
            Cow::Owned(escaped) => escaped,
        };
        Error {
            location: location.into(),
            line,
            message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.location, line, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The largest targets file read: three lines and comments fit many times over.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// `set_header` and `drop_header` rules one target may have. Each is applied to every
/// request head the leg sends, and a thousand would be a generated file gone wrong.
const MAX_FIELD_RULES: usize = 100;

/// The longest deadline trident accepts: a day. Anything longer is surely a typo, and a bound
/// keeps `Instant + timeout` from overflowing (which would panic on the reactor).
const MAX_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// Parses the `MS` of `--timeout MS` and of `timeout=MS`: a positive whole number of
/// milliseconds, at most a day. The error says what is wrong with `text`, quoting it, for the
/// caller to prefix with the flag or option name.
pub fn parse_millis(text: &str) -> Result<Duration, String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(text) {
        return Err(match text.strip_prefix('-') {
            Some(rest) if digits(rest) => {
                format!("{text:?} is not a positive number of milliseconds")
            }
            _ => format!("{text:?} is not a number of milliseconds"),
        });
    }
    match text.parse::<u64>() {
        Ok(0) => Err(format!("{text:?} is not a positive number of milliseconds")),
        Ok(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        // All digits, so the only parse failure left is overflow: too long as well.
        _ => Err(format!("{text:?} is more than a day ({MAX_MILLIS}ms)")),
    }
}

/// Turns a host name and port into its addresses, the one to use first. Injected so that
/// tests can fail a lookup without asking a real DNS server.
pub type Resolver<'a> = &'a dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// The system resolver, in its order, each address once. Runs when targets are loaded and on
/// the reload thread (`--dns-refresh`), never on a reactor.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in (host, port).to_socket_addrs()? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

/// The targets file, line by line; the first problem found is the error.
fn parse_file(text: &str, file: &str, resolve: Resolver) -> Result<Targets, Error> {
    // Per role: the line it was first given on, and the target.
    let mut found: [Option<(usize, Target)>; 3] = [None, None, None];
    // An editor's byte-order mark would otherwise glue itself to the first role name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at = |message: String| Error::new(file, Some(number), message);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (role, rest) = split_role(line).map_err(at)?;
        if let Some((first, _)) = &found[role.index()] {
            return Err(at(format!(
                "duplicate role \"{role}\" (first on line {first})"
            )));
        }
        let target = parse_target(role, rest, resolve).map_err(at)?;
        found[role.index()] = Some((number, target));
    }
    let [primary, secondary, candidate] = found.map(|slot| slot.map(|(_, target)| target));
    match (primary, secondary, candidate) {
        (Some(primary), Some(secondary), Some(candidate)) => Ok(Targets {
            legs: [primary, secondary, candidate],
        }),
        (None, None, None) => Err(Error::new(
            file,
            None,
            "no targets in it: one line each for primary, secondary and candidate \
             (ROLE = URL)"
                .to_string(),
        )),
        (primary, secondary, _) => {
            let missing = if primary.is_none() {
                Role::Primary
            } else if secondary.is_none() {
                Role::Secondary
            } else {
                Role::Candidate
            };
            Err(Error::new(
                file,
                None,
                format!("missing role \"{missing}\""),
            ))
        }
    }
}

/// Cuts a `#` comment: a whole line, or a `#` that follows whitespace outside quotes. A `#`
/// inside a word (`http://x/#frag`) stays, so that the URL check can reject it by name.
fn strip_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '#' && previous_is_space {
            return &line[..at];
        } else if c == '"' {
            quoted = true;
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

/// Splits what follows `role =` into words at whitespace. Double quotes keep whitespace in a
/// word (`set_header="Authorization: Bearer x"`) and are removed; inside them `\"` and `\\`
/// stand for `"` and `\`.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => word.push(escaped),
                            Some(other) => {
                                return Err(format!("unknown escape \"\\{other}\" in quotes"))
                            }
                            None => return Err("unterminated quote".to_string()),
                        },
                        Some(other) => word.push(other),
                        None => return Err("unterminated quote".to_string()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Splits `role = rest` (spaces around `=` optional) into the role and what follows `=`.
fn split_role(line: &str) -> Result<(Role, &str), String> {
    let end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    let role = match word {
        "primary" => Role::Primary,
        "secondary" => Role::Secondary,
        "candidate" => Role::Candidate,
        "" => return Err("expected \"ROLE = URL\"".to_string()),
        other => return Err(format!("unknown role \"{other}\"")),
    };
    match rest.trim_start().strip_prefix('=') {
        Some(rest) => Ok((role, rest.trim_start())),
        None => Err(format!("expected \"=\" after \"{word}\"")),
    }
}

/// Fills an option's slot the first time it is given.
fn set_once<T>(
    slot: &mut Option<T>,
    key: &str,
    parse: impl FnOnce() -> Result<T, String>,
) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate option \"{key}\""));
    }
    *slot = Some(parse()?);
    Ok(())
}

/// `URL [key=value ...]`, what follows `role =`.
fn parse_target(role: Role, rest: &str, resolve: Resolver) -> Result<Target, String> {
    // The URL is taken as written (quotes are for option values), so errors quote it as is.
    let (url, rest) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .unwrap_or((rest.trim_start(), ""));
    if url.is_empty() {
        return Err(format!("missing URL after \"{role} =\""));
    }
    let parsed = parse_url(url, resolve)?;
    let mut options = LegOptions::default();
    for option in split_words(rest)?.iter().map(String::as_str) {
        let (key, value) = match option.split_once('=') {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => (key, value),
            Some((key, "")) if !key.is_empty() => {
                return Err(format!("{key}: no value after \"=\""));
            }
            _ => return Err(format!("bad option \"{option}\" (expected KEY=VALUE)")),
        };
        let millis = || parse_millis(value).map_err(|why| format!("{key}: {why}"));
        match key {
            "timeout" => set_once(&mut options.timeout, key, millis)?,
            "connect_timeout" => set_once(&mut options.connect_timeout, key, millis)?,
            "max_inflight" => set_once(&mut options.max_inflight, key, || {
                match value.parse::<usize>() {
                    // `+5` parses, but `timeout=+5` is refused: one form for every count.
                    Ok(n) if (1..=1_000_000).contains(&n) && !value.starts_with('+') => Ok(n),
                    _ => Err(format!(
                        "max_inflight: \"{value}\" is not a whole number between 1 and 1000000"
                    )),
                }
            })?,
            "host" => set_once(&mut options.host, key, || match value {
                // In any case, as host names are: `host=Keep` sent `Host: Keep`.
                keep if keep.eq_ignore_ascii_case("keep") => Ok(HostField::Keep),
                target if target.eq_ignore_ascii_case("target") => Ok(HostField::Target),
                // What trident takes in a client's Host, it sends: an upstream would refuse
                // the rest (`http://h`, `user@h`, `h/v1`) on every request of the leg.
                literal if crate::http::is_valid_authority(literal.as_bytes()) => {
                    match out_of_range_port(literal) {
                        None => Ok(HostField::Literal(literal.to_string())),
                        Some(port) => Err(format!(
                            "host: port \"{port}\" of \"{literal}\" is out of range (1-65535)"
                        )),
                    }
                }
                _ => Err(format!(
                    "host: \"{value}\" is not keep, target or a host name (HOST[:PORT], as a \
                     Host field holds it)"
                )),
            })?,
            "tls_verify" => set_once(&mut options.tls_verify, key, || match value {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(format!("tls_verify: \"{value}\" is not on or off")),
            })?,
            "set_header" | "drop_header" => {
                let rule = if key == "set_header" {
                    FieldRule::parse_set(value)
                } else {
                    FieldRule::parse_drop(value)
                }
                .map_err(|why| format!("{key}: {why}"))?;
                if options.fields.len() == MAX_FIELD_RULES {
                    return Err(format!(
                        "{key}: more than {MAX_FIELD_RULES} field rules for one target"
                    ));
                }
                if options.fields.iter().any(|r| r.names(rule.name.as_bytes())) {
                    return Err(format!("{key}: a second rule for \"{}\"", rule.name));
                }
                options.fields.push(rule);
            }
            _ => return Err(format!("unknown option \"{key}\"")),
        }
    }
    // An option that would do nothing is refused, not silently kept.
    if role == Role::Primary && options.max_inflight.is_some() {
        return Err(
            "max_inflight: the primary has no bound (every client request goes to it); \
                    it is for the secondary and the candidate"
                .to_string(),
        );
    }
    if !parsed.tls && options.tls_verify.is_some() {
        return Err("tls_verify: only an https:// target has a certificate to check".to_string());
    }
    parsed.into_target(role, url, options)
}

/// What a target URL says.
struct ParsedUrl {
    authority: String,
    /// The addresses, in the resolver's order, or why the host name has none.
    addrs: Result<Vec<SocketAddr>, String>,
    port: u16,
    /// `https://`.
    tls: bool,
    /// The host as written (no brackets, no port): the TLS server name.
    host: String,
}

impl ParsedUrl {
    /// The target for `role`. A host name that did not resolve is an error for the primary,
    /// the leg the client waits for; a shadow starts unresolved.
    fn into_target(self, role: Role, url: &str, options: LegOptions) -> Result<Target, String> {
        let (addrs, lookup_error) = match self.addrs {
            Ok(addrs) => (addrs, None),
            Err(why) if role == Role::Primary => {
                return Err(format!("cannot resolve \"{}\": {why}", self.host))
            }
            Err(why) => (Vec::new(), Some(why)),
        };
        Ok(Target {
            role,
            url: url.to_string(),
            authority: self.authority,
            addrs,
            lookup_error,
            port: self.port,
            tls: self.tls,
            host: self.host,
            options,
        })
    }
}

/// Checks `http://HOST[:PORT][/]` and resolves it: the authority as written, and the
/// addresses. Anything a plain host:port target cannot honour (a path, a query, user info)
/// is an error rather than silently dropped; a name that does not resolve is for the caller
/// to judge.
fn parse_url(url: &str, resolve: Resolver) -> Result<ParsedUrl, String> {
    let bad = |why: &str| format!("bad URL \"{url}\": {why}");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected http://HOST[:PORT]"));
    };
    let tls = scheme.eq_ignore_ascii_case("https");
    if !tls && !scheme.eq_ignore_ascii_case("http") {
        return Err(bad(&format!(
            "unsupported scheme \"{scheme}\" (expected http:// or https://)"
        )));
    }

    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
        let (path, after) = tail.split_at(path_end);
        return Err(if path.len() > 1 {
            bad(&format!(
                "a path (\"{path}\") is not allowed, only http://HOST[:PORT]"
            ))
        } else if after.starts_with('?') {
            bad("a query is not allowed, only http://HOST[:PORT]")
        } else {
            bad("a fragment is not allowed, only http://HOST[:PORT]")
        });
    }
    if authority.contains('@') {
        return Err(bad("user info is not allowed, only http://HOST[:PORT]"));
    }

    // Split host and port; an IPv6 host is bracketed because it contains colons.
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(bad("missing \"]\" after the IPv6 address"));
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(bad("expected \":PORT\" after \"]\"")),
            },
        };
        (Host::V6(inside), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(bad(
                "an IPv6 address needs brackets, as in http://[::1]:8080",
            ));
        }
        match authority.split_once(':') {
            Some((host, port)) => (Host::Plain(host), Some(port)),
            None => (Host::Plain(authority), None),
        }
    };
    let port = match port {
        None if tls => 443,
        None => 80,
        Some("") => return Err(bad("missing port after \":\"")),
        Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(bad(&format!("port \"{port}\" is not a number")));
        }
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(bad(&format!("port \"{port}\" is out of range (1-65535)"))),
        },
    };

    let host_name = match host {
        Host::V6(inside) | Host::Plain(inside) => inside.to_string(),
    };
    let addrs = match host {
        Host::V6(inside) => match inside.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Err(_) => return Err(bad(&format!("\"[{inside}]\" is not an IPv6 address"))),
        },
        Host::Plain("") => return Err(bad("missing host")),
        Host::Plain(host) => {
            if let Ok(ip) = host.parse::<Ipv4Addr>() {
                Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)])
            } else if host.ends_with('.') && host[..host.len() - 1].parse::<Ipv4Addr>().is_ok() {
                // A name may end in the root's dot; an address may not.
                return Err(bad(&format!(
                    "\"{host}\" is an IPv4 address with a dot after it (write {})",
                    &host[..host.len() - 1]
                )));
            } else if ends_in_a_number(host) {
                // The resolver would take `10.1` as 10.0.0.1, and `0x7f.1` as 127.0.0.1; a
                // typo should not go that far, nor an address in a form only some read so.
                return Err(bad(&format!(
                    "\"{host}\" is not an IPv4 address (four decimal numbers, a.b.c.d)"
                )));
            } else if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            {
                return Err(bad(&format!("\"{host}\" is not a host name")));
            } else {
                match resolve(host, port) {
                    Ok(addrs) if addrs.is_empty() => Err("no addresses".to_string()),
                    Ok(addrs) => Ok(addrs),
                    Err(err) => Err(err.to_string()),
                }
            }
        }
    };
    Ok(ParsedUrl {
        authority: authority.to_string(),
        addrs,
        port,
        tls,
        host: host_name,
    })
}

/// The host part of a URL, before it is resolved.
enum Host<'a> {
    /// Between brackets: must be an IPv6 address.
    V6(&'a str),
    /// An IPv4 address or a name.
    Plain(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const GOOD_HEAD: &str = "primary = http://127.0.0.1:9001\nsecondary = http://127.0.0.1:9002\n";

    #[test]
    fn a_named_targets_label_has_each_of_its_addresses() {
        let url = "http://api.internal:8080";
        let targets = from_urls_with([url, url, url], &|_, port| {
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 3], port)),
                SocketAddr::from(([10, 0, 0, 4], port)),
            ])
        })
        .unwrap();
        assert_eq!(
            targets.get(Role::Candidate).label(),
            "candidate=http://api.internal:8080 (10.0.0.3:8080, 10.0.0.4:8080)"
        );
    }

    #[test]
    fn a_target_is_the_same_however_its_url_spells_it() {
        let identity = |url: &str| {
            let targets = from_urls_with([url, url, url], &|_, port| {
                Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
            })
            .unwrap();
            targets.get(Role::Candidate).identity()
        };
        for (a, b, same) in [
            ("http://[::1]", "http://[0:0:0:0:0:0:0:1]:80/", true),
            ("https://h.example", "HTTPS://H.Example:443", true),
            ("http://127.0.0.1:8080", "http://127.0.0.1:08080", true),
            (
                "http://127.0.0.1:8080",
                "http://[::ffff:127.0.0.1]:8080",
                true,
            ),
            ("http://h.example", "https://h.example", false),
            ("http://h.example", "http://h.example:8080", false),
            ("http://h.example", "http://g.example", false),
        ] {
            assert_eq!(identity(a) == identity(b), same, "{a} {b}");
        }
        // With host=target the authority as written is sent: spelled otherwise (a port written
        // out), it differs; its case is no spelling (hunt 81: each reload that changed only the
        // case began a new epoch).
        let with_host_target = |url: &str| {
            let targets = from_urls_with([url, url, url], &|_, port| {
                Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
            })
            .unwrap();
            let mut target = targets.get(Role::Candidate).clone();
            target.options.host = Some(HostField::Target);
            target.identity()
        };
        assert_ne!(
            with_host_target("http://h.example"),
            with_host_target("http://H.example:80")
        );
        assert_eq!(
            with_host_target("http://h.example"),
            with_host_target("http://H.Example")
        );
    }

    #[test]
    fn a_target_that_is_trident_itself_is_refused() {
        // (listen, candidate URL, refused)
        let cases = [
            ("127.0.0.1:8080", "http://127.0.0.1:8080", true),
            ("127.0.0.1:8080", "http://localhost:8080", true),
            ("127.0.0.1:8080", "http://127.0.0.1:8081", false),
            ("127.0.0.1:8080", "http://127.0.0.2:8080", false),
            ("0.0.0.0:8080", "http://127.0.0.5:8080", true),
            ("0.0.0.0:8080", "http://192.0.2.1:8080", false),
            ("0.0.0.0:8080", "http://[::1]:8080", false),
            ("[::]:8080", "http://127.0.0.1:8080", true),
            ("[::1]:8080", "http://[::1]:8080", true),
            ("127.0.0.1:8080", "http://0.0.0.0:8080", true),
            ("[::1]:8080", "http://[::]:8080", true),
            ("0.0.0.0:8080", "http://0.0.0.0:8080", true),
            ("127.0.0.1:0", "http://127.0.0.1:8080", false),
            // IPv4-mapped IPv6 addresses are their IPv4 address.
            ("127.0.0.1:8080", "http://[::ffff:127.0.0.1]:8080", true),
            ("0.0.0.0:8080", "http://[::ffff:127.0.0.1]:8080", true),
            ("[::1]:8080", "http://[::ffff:127.0.0.1]:8080", false),
            ("127.0.0.1:8080", "http://[::ffff:127.0.0.2]:8080", false),
            ("[::ffff:127.0.0.1]:8080", "http://127.0.0.1:8080", true),
        ];
        for (listen, url, refused) in cases {
            let targets =
                Targets::from_urls("http://127.0.0.1:9001", "http://127.0.0.1:9002", url).unwrap();
            let checked = targets.loops_back(listen.parse().unwrap(), None);
            assert_eq!(checked.is_err(), refused, "{listen} {url}: {checked:?}");
        }
        let targets = Targets::from_urls(
            "http://127.0.0.1:9001",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:9003",
        )
        .unwrap();
        assert_eq!(
            targets
                .loops_back(v4(8080), Some(Path::new("t.conf")))
                .unwrap_err()
                .to_string(),
            "t.conf: secondary http://127.0.0.1:8080 is trident's own listen address 127.0.0.1:8080: its \
             requests would come back to trident and fan out again without end"
        );
    }

    #[test]
    fn https_targets_speak_tls_to_their_host_name() {
        let targets = Targets::from_urls(
            "http://127.0.0.1:1",
            "https://localhost:8443",
            "https://[::1]",
        )
        .unwrap();
        let secondary = targets.get(Role::Secondary);
        assert!(secondary.tls);
        assert_eq!(secondary.host, "localhost");
        assert_eq!(secondary.port, 8443);
        let candidate = targets.get(Role::Candidate);
        assert_eq!((candidate.host.as_str(), candidate.port), ("::1", 443));
        assert!(!targets.get(Role::Primary).tls);
    }

    #[test]
    fn good_files() {
        // (file text, the three (authority, addr, options) in role order)
        type Leg = (&'static str, SocketAddr, LegOptions);
        let plain = LegOptions::default();
        let rows: Vec<(String, [Leg; 3])> = vec![
            (
                format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003\n"),
                [
                    ("127.0.0.1:9001", v4(9001), plain.clone()),
                    ("127.0.0.1:9002", v4(9002), plain.clone()),
                    ("127.0.0.1:9003", v4(9003), plain.clone()),
                ],
            ),
            (
                // Comments, blank lines, any spacing around `=`, trailing slash, default port,
                // IPv6, per-leg options (a keyword in any case), CRLF line ends, roles in any
                // order.
                "# the three\r\n\r\n  candidate=http://[::1]:9003/  timeout=1500 connect_timeout=200 max_inflight=8 host=Target # new\r\n\
                 \tsecondary =http://127.0.0.1/\r\n\
                 primary= http://127.0.0.1:9001 # stable\r\n   # done\r\n"
                    .to_string(),
                [
                    ("127.0.0.1:9001", v4(9001), plain.clone()),
                    ("127.0.0.1", v4(80), plain.clone()),
                    (
                        "[::1]:9003",
                        "[::1]:9003".parse().unwrap(),
                        LegOptions {
                            timeout: ms(1500),
                            connect_timeout: ms(200),
                            max_inflight: Some(8),
                            host: Some(HostField::Target),
                            tls_verify: None,
                            fields: Vec::new(),
                        },
                    ),
                ],
            ),
            (
                // A byte-order mark, an upper-case scheme, https on its default port.
                format!(
                    "\u{feff}{GOOD_HEAD}candidate = HTTPS://127.0.0.1 timeout=86400000 tls_verify=off"
                ),
                [
                    ("127.0.0.1:9001", v4(9001), plain.clone()),
                    ("127.0.0.1:9002", v4(9002), plain.clone()),
                    (
                        "127.0.0.1",
                        v4(443),
                        LegOptions {
                            timeout: ms(86_400_000),
                            connect_timeout: None,
                            max_inflight: None,
                            host: None,
                            tls_verify: Some(false),
                            fields: Vec::new(),
                        },
                    ),
                ],
            ),
            (
                // Field rules: quoted where the value has spaces (or a `#`), in any order
                // among the other options.
                format!(
                    "{GOOD_HEAD}candidate = http://127.0.0.1:9003 \
                     set_header=\"Authorization: Bearer st #1\" timeout=900 drop_header=Cookie \
                     \"set_header=X-Quote: say \\\"hi\\\"\" # a comment\n"
                ),
                [
                    ("127.0.0.1:9001", v4(9001), plain.clone()),
                    ("127.0.0.1:9002", v4(9002), plain.clone()),
                    (
                        "127.0.0.1:9003",
                        v4(9003),
                        LegOptions {
                            timeout: ms(900),
                            fields: vec![
                                FieldRule::parse_set("Authorization: Bearer st #1").unwrap(),
                                FieldRule::parse_drop("Cookie").unwrap(),
                                FieldRule::parse_set("X-Quote: say \"hi\"").unwrap(),
                            ],
                            ..LegOptions::default()
                        },
                    ),
                ],
            ),
        ];
        for (text, legs) in rows {
            let targets = match Targets::parse(&text, "targets.conf") {
                Ok(targets) => targets,
                Err(err) => panic!("{text:?}: {err}"),
            };
            for ((target, role), (authority, addr, options)) in
                targets.iter().zip(Role::ALL).zip(legs)
            {
                assert_eq!(target.role, role, "{text:?}");
                assert_eq!(target.authority, authority, "{text:?}");
                assert_eq!(target.addrs, [addr], "{text:?}");
                assert_eq!(target.options, options, "{text:?}");
                assert_eq!(targets.get(role), target);
            }
        }
    }

    #[test]
    fn url_is_kept_as_written() {
        let text = format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003/ timeout=5");
        let targets = Targets::parse(&text, "t").unwrap();
        assert_eq!(targets.get(Role::Candidate).url, "http://127.0.0.1:9003/");
    }

    #[test]
    fn localhost_resolves_at_load_time() {
        let text = format!("{GOOD_HEAD}candidate = http://localhost:9003");
        let targets = Targets::parse(&text, "t").unwrap();
        let candidate = targets.get(Role::Candidate);
        assert_eq!(candidate.authority, "localhost:9003");
        assert!(
            candidate.addrs[0].ip().is_loopback(),
            "{:?}",
            candidate.addrs
        );
        assert_eq!(candidate.port, 9003);
    }

    #[test]
    fn bad_files_name_file_line_and_problem() {
        // (the candidate line, or a whole file when it has no primary line, and the error)
        let rows: &[(&str, &str)] = &[
            ("canidate = http://127.0.0.1:1", "targets.conf:3: unknown role \"canidate\""),
            ("Candidate = http://127.0.0.1:1", "targets.conf:3: unknown role \"Candidate\""),
            (
                "primary = http://127.0.0.1:1",
                "targets.conf:3: duplicate role \"primary\" (first on line 1)",
            ),
            ("candidate http://127.0.0.1:1", "targets.conf:3: expected \"=\" after \"candidate\""),
            ("= http://127.0.0.1:1", "targets.conf:3: expected \"ROLE = URL\""),
            ("candidate =", "targets.conf:3: missing URL after \"candidate =\""),
            ("candidate = # none", "targets.conf:3: missing URL after \"candidate =\""),
            (
                "candidate = http//x",
                "targets.conf:3: bad URL \"http//x\": expected http://HOST[:PORT]",
            ),
            (
                "candidate = ftp://127.0.0.1",
                "targets.conf:3: bad URL \"ftp://127.0.0.1\": unsupported scheme \"ftp\" (expected http:// or https://)",
            ),
            (
                "candidate = http://127.0.0.1 host=http://api.example.com",
                "targets.conf:3: host: \"http://api.example.com\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "candidate = http://127.0.0.1 host=user@api.example.com",
                "targets.conf:3: host: \"user@api.example.com\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "candidate = http://127.0.0.1 host=api.example.com/v1",
                "targets.conf:3: host: \"api.example.com/v1\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "candidate = http://127.0.0.1 host=:8080",
                "targets.conf:3: host: \":8080\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "candidate = http://127.0.0.1 host=[::1",
                "targets.conf:3: host: \"[::1\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "\u{feff}candidate = http://127.0.0.1",
                "targets.conf:3: unknown role \"\\ufeffcandidate\"",
            ),
            (
                "candidate = http://127.0.0.1 max_inflight=+5",
                "targets.conf:3: max_inflight: \"+5\" is not a whole number between 1 and 1000000",
            ),
            (
                "candidate = http://127.0.0.1 host=api.example.com:99999",
                "targets.conf:3: host: port \"99999\" of \"api.example.com:99999\" is out of range (1-65535)",
            ),
            (
                "candidate = http://127.0.0.1 host=api.example.com:x",
                "targets.conf:3: host: \"api.example.com:x\" is not keep, target or a host name (HOST[:PORT], as a Host field holds it)",
            ),
            (
                "candidate = http://127.0.0.1 host=[::1]:0",
                "targets.conf:3: host: port \"0\" of \"[::1]:0\" is out of range (1-65535)",
            ),
            (
                "candidate = http://127.0.0.1 host=",
                "targets.conf:3: host: no value after \"=\"",
            ),
            (
                "candidate = http://10.0.0.1.:80",
                "targets.conf:3: bad URL \"http://10.0.0.1.:80\": \"10.0.0.1.\" is an IPv4 address with a dot after it (write 10.0.0.1)",
            ),
            (
                "candidate = https://127.0.0.1 tls_verify=maybe",
                "targets.conf:3: tls_verify: \"maybe\" is not on or off",
            ),
            (
                "candidate = http://127.0.0.1:1/api",
                "targets.conf:3: bad URL \"http://127.0.0.1:1/api\": a path (\"/api\") is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://127.0.0.1:1//",
                "targets.conf:3: bad URL \"http://127.0.0.1:1//\": a path (\"//\") is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://127.0.0.1:1/?a=b",
                "targets.conf:3: bad URL \"http://127.0.0.1:1/?a=b\": a query is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://127.0.0.1:1?a",
                "targets.conf:3: bad URL \"http://127.0.0.1:1?a\": a query is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://127.0.0.1:1/#top",
                "targets.conf:3: bad URL \"http://127.0.0.1:1/#top\": a fragment is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://user:pw@127.0.0.1:1",
                "targets.conf:3: bad URL \"http://user:pw@127.0.0.1:1\": user info is not allowed, only http://HOST[:PORT]",
            ),
            (
                "candidate = http://127.0.0.1:http",
                "targets.conf:3: bad URL \"http://127.0.0.1:http\": port \"http\" is not a number",
            ),
            (
                "candidate = http://127.0.0.1:+80",
                "targets.conf:3: bad URL \"http://127.0.0.1:+80\": port \"+80\" is not a number",
            ),
            (
                "candidate = http://127.0.0.1:65536",
                "targets.conf:3: bad URL \"http://127.0.0.1:65536\": port \"65536\" is out of range (1-65535)",
            ),
            (
                "candidate = http://127.0.0.1:0",
                "targets.conf:3: bad URL \"http://127.0.0.1:0\": port \"0\" is out of range (1-65535)",
            ),
            (
                "candidate = http://127.0.0.1:",
                "targets.conf:3: bad URL \"http://127.0.0.1:\": missing port after \":\"",
            ),
            ("candidate = http://", "targets.conf:3: bad URL \"http://\": missing host"),
            ("candidate = http://:80", "targets.conf:3: bad URL \"http://:80\": missing host"),
            (
                "candidate = http://::1:80",
                "targets.conf:3: bad URL \"http://::1:80\": an IPv6 address needs brackets, as in http://[::1]:8080",
            ),
            (
                "candidate = http://0x7f.1:80",
                "targets.conf:3: bad URL \"http://0x7f.1:80\": \"0x7f.1\" is not an IPv4 address (four decimal numbers, a.b.c.d)",
            ),
            (
                "candidate = http://0X7F000001",
                "targets.conf:3: bad URL \"http://0X7F000001\": \"0X7F000001\" is not an IPv4 address (four decimal numbers, a.b.c.d)",
            ),
            (
                "candidate = http://host.0x",
                "targets.conf:3: bad URL \"http://host.0x\": \"host.0x\" is not an IPv4 address (four decimal numbers, a.b.c.d)",
            ),
            (
                "candidate = http://[::1:80",
                "targets.conf:3: bad URL \"http://[::1:80\": missing \"]\" after the IPv6 address",
            ),
            (
                "candidate = http://[::1]80",
                "targets.conf:3: bad URL \"http://[::1]80\": expected \":PORT\" after \"]\"",
            ),
            (
                "candidate = http://[zz]:80",
                "targets.conf:3: bad URL \"http://[zz]:80\": \"[zz]\" is not an IPv6 address",
            ),
            (
                "candidate = http://10.1:80",
                "targets.conf:3: bad URL \"http://10.1:80\": \"10.1\" is not an IPv4 address (four decimal numbers, a.b.c.d)",
            ),
            (
                "candidate = http://127.0.0.256",
                "targets.conf:3: bad URL \"http://127.0.0.256\": \"127.0.0.256\" is not an IPv4 address (four decimal numbers, a.b.c.d)",
            ),
            (
                "candidate = http://lo%63alhost",
                "targets.conf:3: bad URL \"http://lo%63alhost\": \"lo%63alhost\" is not a host name",
            ),
            ("candidate = http://127.0.0.1 foo=1", "targets.conf:3: unknown option \"foo\""),
            (
                "candidate = http://127.0.0.1 max_inflight=0",
                "targets.conf:3: max_inflight: \"0\" is not a whole number between 1 and 1000000",
            ),
            (
                "candidate = http://127.0.0.1 max_inflight=2 max_inflight=3",
                "targets.conf:3: duplicate option \"max_inflight\"",
            ),
            (
                "candidate = http://127.0.0.1 timeout",
                "targets.conf:3: bad option \"timeout\" (expected KEY=VALUE)",
            ),
            (
                "candidate = http://127.0.0.1 timeout=",
                "targets.conf:3: timeout: no value after \"=\"",
            ),
            (
                "candidate = http://127.0.0.1 =5",
                "targets.conf:3: bad option \"=5\" (expected KEY=VALUE)",
            ),
            (
                "candidate = http://127.0.0.1 timeout = 5",
                "targets.conf:3: bad option \"timeout\" (expected KEY=VALUE)",
            ),
            (
                "candidate = http://127.0.0.1 timeout=abc",
                "targets.conf:3: timeout: \"abc\" is not a number of milliseconds",
            ),
            (
                "candidate = http://127.0.0.1 connect_timeout=0",
                "targets.conf:3: connect_timeout: \"0\" is not a positive number of milliseconds",
            ),
            (
                "candidate = http://127.0.0.1 timeout=-5",
                "targets.conf:3: timeout: \"-5\" is not a positive number of milliseconds",
            ),
            (
                "candidate = http://127.0.0.1 timeout=86400001",
                "targets.conf:3: timeout: \"86400001\" is more than a day (86400000ms)",
            ),
            (
                "candidate = http://127.0.0.1 timeout=1 timeout=2",
                "targets.conf:3: duplicate option \"timeout\"",
            ),
            (
                "candidate = http://127.0.0.1 set_header=Authorization: Bearer x",
                "targets.conf:3: set_header: \"Authorization\" has no value (quote one with spaces: set_header=\"Authorization: a b\"; drop_header=Authorization sends none)",
            ),
            (
                "candidate = http://127.0.0.1 set_header=\"X-A: 1",
                "targets.conf:3: unterminated quote",
            ),
            (
                "candidate = \"http://127.0.0.1\"",
                "targets.conf:3: bad URL \"\"http://127.0.0.1\"\": unsupported scheme \"\"http\" (expected http:// or https://)",
            ),
            (
                "candidate = http://127.0.0.1 set_header=\"X-A: \\n\"",
                "targets.conf:3: unknown escape \"\\n\" in quotes",
            ),
            (
                "candidate = http://127.0.0.1 set_header=X-A:1 drop_header=x-a",
                "targets.conf:3: drop_header: a second rule for \"x-a\"",
            ),
            (
                "candidate = http://127.0.0.1 drop_header=Host",
                "targets.conf:3: drop_header: Host is decided by the leg's host= option, not by a rule",
            ),
            (
                "candidate = http://127.0.0.1 set_header=\"X-A: a\tb\u{7f}\"",
                "targets.conf:3: set_header: the value of \"X-A\" holds the control byte 0x7f",
            ),
            ("# no candidate", "targets.conf: missing role \"candidate\""),
            (
                "candidate = http://127.0.0.1 tls_verify=off",
                "targets.conf:3: tls_verify: only an https:// target has a certificate to check",
            ),
        ];
        let primary_bound = "primary = http://127.0.0.1:9001 max_inflight=5\n\
                             secondary = http://127.0.0.1:9002\ncandidate = http://127.0.0.1:9003\n";
        assert_eq!(
            Targets::parse(primary_bound, "targets.conf")
                .err()
                .map(|e| e.to_string()),
            Some(
                "targets.conf:1: max_inflight: the primary has no bound (every client request \
                 goes to it); it is for the secondary and the candidate"
                    .to_string()
            )
        );
        for (line, expected) in rows {
            let text = format!("{GOOD_HEAD}{line}\n");
            match Targets::parse(&text, "targets.conf") {
                Ok(_) => panic!("{line:?} parsed"),
                Err(err) => assert_eq!(err.to_string(), *expected, "{line:?}"),
            }
        }
    }

    #[test]
    fn missing_roles_are_named_in_role_order() {
        let rows: &[(&str, &str)] = &[
            (
                "",
                "t.conf: no targets in it: one line each for primary, secondary and candidate \
                 (ROLE = URL)",
            ),
            (
                "# nothing\n\n",
                "t.conf: no targets in it: one line each for primary, secondary and candidate \
                 (ROLE = URL)",
            ),
            ("\0 = http://127.0.0.1:1", "t.conf:1: unknown role \"\\u0000\""),
            // The file's text is quoted with its control characters escaped.
            (
                "primary = http://127.0.0.1:1 host=a\x1b[2Jb",
                "t.conf:1: host: \"a\\u001b[2Jb\" is not keep, target or a host name (HOST[:PORT], \
                 as a Host field holds it)",
            ),
            (
                "primary = http://h\x1b]0;x\x07y",
                "t.conf:1: bad URL \"http://h\\u001b]0;x\\u0007y\": \"h\\u001b]0;x\\u0007y\" is not a host name",
            ),
            (
                "candidate = http://127.0.0.1:3",
                "t.conf: missing role \"primary\"",
            ),
            (
                "primary = http://127.0.0.1:1",
                "t.conf: missing role \"secondary\"",
            ),
        ];
        for (text, expected) in rows {
            let err = Targets::parse(text, "t.conf").unwrap_err();
            assert_eq!(err.to_string(), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_second_lookup_changes_the_addresses_of_names_only() {
        let first = |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            assert_eq!(host, "svc.internal", "an address is never looked up");
            Ok(vec![SocketAddr::from(([10, 0, 0, 5], port))])
        };
        let text = format!("{GOOD_HEAD}candidate = http://svc.internal:9003 timeout=700\n");
        let targets = parse_file(&text, "targets.conf", &first).unwrap();
        let candidate = targets.get(Role::Candidate);
        assert!(candidate.is_named() && !targets.get(Role::Primary).is_named());

        // The same answer: the same targets.
        let (again, failures) = targets.looked_up_again(&first);
        assert_eq!((&again, failures.len()), (&targets, 0));

        // Moved, and now two addresses: only they change.
        let moved = |_: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 7], port)),
                SocketAddr::from(([10, 0, 0, 8], port)),
            ])
        };
        let (again, failures) = targets.looked_up_again(&moved);
        assert!(failures.is_empty());
        let after = again.get(Role::Candidate);
        assert_eq!(after.address_list(), "10.0.0.7:9003, 10.0.0.8:9003");
        assert_eq!(
            (&after.url, &after.options),
            (&candidate.url, &candidate.options)
        );
        assert_eq!(again.get(Role::Primary), targets.get(Role::Primary));

        // A rotated answer is the same answer.
        let rotated = |_: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 8], port)),
                SocketAddr::from(([10, 0, 0, 7], port)),
            ])
        };
        let (same, failures) = again.looked_up_again(&rotated);
        assert_eq!((&same, failures.len()), (&again, 0));

        // A failed lookup keeps the addresses it had, and says so.
        let gone = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        };
        let (kept, failures) = again.looked_up_again(&gone);
        assert_eq!(kept, again);
        assert_eq!(failures, [(Role::Candidate, "no such host".to_string())]);
        let empty = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> { Ok(Vec::new()) };
        let (kept, failures) = again.looked_up_again(&empty);
        assert_eq!(kept, again);
        assert_eq!(failures, [(Role::Candidate, "no addresses".to_string())]);
    }

    #[test]
    fn a_primary_that_does_not_resolve_is_an_error_naming_the_host() {
        let refuse = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        };
        let text = "primary = http://stable.internal:8080\n\
                    secondary = http://127.0.0.1:9002\ncandidate = http://127.0.0.1:9003\n";
        let err = parse_file(text, "targets.conf", &refuse).unwrap_err();
        assert_eq!(
            err.to_string(),
            "targets.conf:1: cannot resolve \"stable.internal\": no such host"
        );
        let none = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> { Ok(Vec::new()) };
        let err = parse_file(text, "targets.conf", &none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "targets.conf:1: cannot resolve \"stable.internal\": no addresses"
        );
    }

    #[test]
    fn a_shadow_that_does_not_resolve_starts_unresolved_until_a_lookup_finds_it() {
        let refuse = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        };
        let text = format!("{GOOD_HEAD}candidate = http://shadow.internal:8080 timeout=900\n");
        let targets = parse_file(&text, "targets.conf", &refuse).unwrap();
        let candidate = targets.get(Role::Candidate);
        assert!(candidate.is_unresolved());
        assert_eq!(candidate.first_address(), None);
        assert_eq!(candidate.lookup_error.as_deref(), Some("no such host"));
        assert_eq!(
            (candidate.port, candidate.options.timeout),
            (8080, Some(Duration::from_millis(900)))
        );
        let warnings: Vec<String> = targets
            .unresolved_warnings(Some(Duration::from_secs(10)))
            .collect();
        assert_eq!(
            warnings,
            [
                "candidate: cannot resolve \"shadow.internal\" (no such host); its leg fails \
                 (unresolved host name) until the name resolves, looked up again every 10000ms"
            ]
        );
        assert!(targets
            .unresolved_warnings(None)
            .all(|w| w.ends_with("at SIGHUP (--dns-refresh off)")));
        // Nothing to loop back to.
        assert!(targets.loops_back(v4(8080), None).is_ok());
        let described = crate::cli::describe(&crate::cli::Config::default(), &targets);
        assert!(
            described.contains("http://shadow.internal:8080 (unresolved: no such host)"),
            "{described}"
        );

        // Still failing: the same targets (the first error kept), the failure said.
        let (again, failures) = targets.looked_up_again(&refuse);
        assert_eq!(again, targets);
        assert_eq!(failures, [(Role::Candidate, "no such host".to_string())]);
        // Found: its addresses, and no error left.
        let found = |_: &str, port: u16| -> io::Result<Vec<SocketAddr>> { Ok(vec![v4(port)]) };
        let (found, failures) = targets.looked_up_again(&found);
        assert!(failures.is_empty());
        let candidate = found.get(Role::Candidate);
        assert_eq!(
            (&candidate.addrs[..], &candidate.lookup_error),
            (&[v4(8080)][..], &None)
        );
        assert_eq!(found.unresolved_warnings(None).count(), 0);

        // The URL flags too.
        let err = from_urls_with(
            [
                "http://gone.internal:1",
                "http://127.0.0.1:2",
                "http://[::1]:3",
            ],
            &refuse,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--primary: cannot resolve \"gone.internal\": no such host"
        );
        let targets = from_urls_with(
            [
                "http://127.0.0.1:1",
                "http://gone.internal:2",
                "http://[::1]:3",
            ],
            &refuse,
        )
        .unwrap();
        assert!(targets.get(Role::Secondary).is_unresolved());
    }

    #[test]
    fn a_host_with_several_addresses_tries_them_in_order_and_names_them() {
        let both = |_: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            Ok(vec![
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            ])
        };
        let text = format!("{GOOD_HEAD}candidate = http://localhost:9003\n");
        let targets = parse_file(&text, "targets.conf", &both).unwrap();
        let candidate = targets.get(Role::Candidate);
        let v6: SocketAddr = "[::1]:9003".parse().unwrap();
        assert_eq!(candidate.addrs, [v6, v4(9003)]);
        let notes: Vec<String> = targets.address_notes().collect();
        assert_eq!(
            notes,
            [
                "candidate: localhost resolves to 2 addresses; trident connects to [::1]:9003 \
                 first, then to 127.0.0.1:9003 when a connection cannot be made"
            ]
        );
        // Each address is followed by the next, the last by the first.
        assert_eq!(candidate.address_after(v6), v4(9003));
        assert_eq!(candidate.address_after(v4(9003)), v6);
        assert!(candidate.has_address(v4(9003)) && candidate.has_address(v6));
        assert!(!candidate.has_address(v4(9002)));
        // Addresses written as such have no others, and follow themselves.
        let primary = targets.get(Role::Primary);
        assert_eq!(primary.address_count(), 1);
        assert_eq!(primary.address_after(primary.addrs[0]), primary.addrs[0]);
        // --check shows both, in order.
        let described = crate::cli::describe(&crate::cli::Config::default(), &targets);
        assert!(
            described.contains("http://localhost:9003 ([::1]:9003, then 127.0.0.1:9003)"),
            "{described}"
        );
        // trident listening on the second address is a loop: connections end up there when
        // the first refuses.
        let err = targets.loops_back(v4(9003), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--candidate: http://localhost:9003 is trident's own"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_says_so() {
        let path = Path::new("/nonexistent/trident/targets.conf");
        let err = Targets::load(path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/nonexistent/trident/targets.conf: cannot read: "),
            "{text}"
        );
    }

    /// A newline in the file's name is escaped: it must not start a line of the log.
    #[test]
    fn the_files_name_is_escaped_in_errors() {
        let path =
            std::env::temp_dir().join(format!("trident-bad\nname-{}.conf", std::process::id()));
        fs::write(&path, "nonsense\n").unwrap();
        let err = Targets::load(&path).unwrap_err().to_string();
        fs::remove_file(&path).unwrap();
        assert!(!err.contains('\n'), "{err:?}");
        assert!(err.contains("trident-bad\\nname-"), "{err:?}");
    }

    #[test]
    fn an_endless_or_huge_file_is_refused_unread() {
        let err = Targets::load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero: larger than 1048576 bytes: not a targets file"
        );
        let path = std::env::temp_dir().join(format!("trident-huge-{}.conf", std::process::id()));
        let mut text = format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003\n");
        text.push_str(&"#".repeat(MAX_FILE_BYTES as usize + 1 - text.len()));
        fs::write(&path, &text).unwrap();
        let too_big = Targets::load(&path);
        // Cut inside a two-byte character, it is still too big, not bad UTF-8.
        let mut split = text.clone();
        split.truncate(MAX_FILE_BYTES as usize - 1);
        split.push_str("é#");
        fs::write(&path, &split).unwrap();
        let too_big_split = Targets::load(&path);
        text.pop();
        fs::write(&path, &text).unwrap();
        let just_fits = Targets::load(&path);
        let _ = fs::remove_file(&path);
        for too_big in [too_big, too_big_split] {
            assert!(too_big
                .unwrap_err()
                .to_string()
                .ends_with(": not a targets file"));
        }
        assert_eq!(just_fits.unwrap().get(Role::Candidate).addrs, [v4(9003)]);
    }

    #[test]
    fn host_literals_take_a_port_in_range_or_none() {
        for (literal, fine) in [
            ("api.example.com", true),
            ("api.example.com:8080", true),
            // An empty port is allowed (RFC 3986): the scheme's.
            ("api.example.com:", true),
            ("[::1]:443", true),
            ("api.example.com:65536", false),
            ("api.example.com:0", false),
        ] {
            let file = format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003 host={literal}\n");
            assert_eq!(Targets::parse(&file, "t.conf").is_ok(), fine, "{literal}");
        }
    }

    #[test]
    fn field_rules_are_bounded_per_target() {
        let rules =
            |n: usize| -> String { (0..n).map(|i| format!(" drop_header=X-{i}")).collect() };
        let file = |n| format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003{}\n", rules(n));
        let most = Targets::parse(&file(MAX_FIELD_RULES), "targets.conf").unwrap();
        assert_eq!(
            most.get(Role::Candidate).options.fields.len(),
            MAX_FIELD_RULES
        );
        assert_eq!(
            Targets::parse(&file(MAX_FIELD_RULES + 1), "targets.conf")
                .unwrap_err()
                .to_string(),
            "targets.conf:3: drop_header: more than 100 field rules for one target"
        );
    }

    #[test]
    fn load_reads_a_real_file() {
        let path =
            std::env::temp_dir().join(format!("trident-targets-{}.conf", std::process::id()));
        fs::write(
            &path,
            format!("{GOOD_HEAD}candidate = http://127.0.0.1:9003\n"),
        )
        .unwrap();
        let loaded = Targets::load(&path);
        assert_eq!(loaded.unwrap().get(Role::Candidate).addrs, [v4(9003)]);
        // What an editor may save instead of UTF-8 is named as such.
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(GOOD_HEAD.bytes().flat_map(|b| [b, 0]))
            .collect();
        fs::write(&path, utf16).unwrap();
        let err = Targets::load(&path).unwrap_err().to_string();
        assert!(err.ends_with(": UTF-16 text (as some Windows editors save it): save it as UTF-8"));
        fs::write(&path, b"# ok\nprimary = http://h\xe9:1\n").unwrap();
        let err = Targets::load(&path).unwrap_err().to_string();
        assert!(err.ends_with(":2: not UTF-8 text"), "{err}");
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn url_flags_are_labelled_by_flag() {
        let targets = Targets::from_urls(
            "http://127.0.0.1:1",
            "http://127.0.0.1:2/",
            "http://[::1]:3",
        )
        .unwrap();
        let ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
        assert_eq!(ports, [1, 2, 3]);
        assert_eq!(targets.get(Role::Secondary).url, "http://127.0.0.1:2/");
        assert_eq!(targets.get(Role::Candidate).options, LegOptions::default());

        let rows: &[([&str; 3], &str)] = &[
            (
                ["http//x", "http://127.0.0.1:2", "http://127.0.0.1:3"],
                "--primary: bad URL \"http//x\": expected http://HOST[:PORT]",
            ),

            (
                ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3/x"],
                "--candidate: bad URL \"http://127.0.0.1:3/x\": a path (\"/x\") is not allowed, only http://HOST[:PORT]",
            ),
        ];
        for ([p, s, c], expected) in rows {
            let err = Targets::from_urls(p, s, c).unwrap_err();
            assert_eq!(err.to_string(), *expected);
        }
    }

    #[test]
    fn millis() {
        let rows: &[(&str, Result<u64, &str>)] = &[
            ("1", Ok(1)),
            ("5000", Ok(5000)),
            ("007", Ok(7)),
            ("86400000", Ok(86_400_000)),
            ("0", Err("\"0\" is not a positive number of milliseconds")),
            ("-1", Err("\"-1\" is not a positive number of milliseconds")),
            ("abc", Err("\"abc\" is not a number of milliseconds")),
            ("", Err("\"\" is not a number of milliseconds")),
            ("1.5", Err("\"1.5\" is not a number of milliseconds")),
            ("+5", Err("\"+5\" is not a number of milliseconds")),
            ("5ms", Err("\"5ms\" is not a number of milliseconds")),
            (
                "99999999999999999999999",
                Err("\"99999999999999999999999\" is more than a day (86400000ms)"),
            ),
        ];
        for (text, expected) in rows {
            let got = parse_millis(text);
            let expected = expected.map(Duration::from_millis).map_err(str::to_string);
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn comments_need_whitespace_before_them() {
        let rows: &[(&str, &str)] = &[
            ("# all", ""),
            ("a # b", "a "),
            ("a\t#b", "a\t"),
            ("http://x/#frag", "http://x/#frag"),
            ("a#b #c", "a#b "),
            ("plain", "plain"),
            ("x=\"a #b\" #c", "x=\"a #b\" "),
            ("x=\"a \\\" #b\" #c", "x=\"a \\\" #b\" "),
            ("x=\"open #b", "x=\"open #b"),
        ];
        for (line, expected) in rows {
            assert_eq!(strip_comment(line), *expected, "{line:?}");
        }
    }

    #[test]
    fn words_split_at_whitespace_outside_quotes() {
        let rows: &[(&str, Result<&[&str], &str>)] = &[
            ("", Ok(&[])),
            ("  a \t b  ", Ok(&["a", "b"])),
            ("k=\"a b\" c", Ok(&["k=a b", "c"])),
            ("\"k=a b\"", Ok(&["k=a b"])),
            ("a\"\"b \"\"", Ok(&["ab", ""])),
            ("k=\"\\\"\\\\\"", Ok(&["k=\"\\"])),
            ("k=a\\b", Ok(&["k=a\\b"])),
            ("k=\"a", Err("unterminated quote")),
            ("k=\"a\\", Err("unterminated quote")),
            ("k=\"\\t\"", Err("unknown escape \"\\t\" in quotes")),
        ];
        for (text, expected) in rows {
            let expected = expected
                .map(|words| words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
                .map_err(str::to_string);
            assert_eq!(split_words(text), expected, "{text:?}");
        }
    }
}
