//! The command line (getopts) turned into a plain, validated `Config`, and the usage text.
//! Exit codes are `main`'s business; this module only says what is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::report::{ignore_path_doubt, Format, Pattern, Percent, Settings};

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
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--listen`, default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// `None` only with `--demo`, which brings its own upstreams.
    pub targets: Option<TargetSource>,
    /// `--timeout MS`, default 5000: each leg's deadline for its whole exchange.
    pub timeout: Duration,
    /// `--connect-timeout MS`, default 1000.
    pub connect_timeout: Duration,
    /// `--dns-refresh MS|off`, default 10000: how often the targets' host names are looked
    /// up again; `None`: only when the targets are loaded.
    pub dns_refresh: Option<Duration>,
    /// `--header-timeout MS`, default 10000: a request head must be complete this long
    /// after its first byte (408 otherwise).
    pub header_timeout: Duration,
    /// `--idle-timeout MS`, default 60000: a keep-alive client with no request is closed.
    pub idle_timeout: Duration,
    /// `--send-timeout MS`, default 30000: a client that reads nothing of what trident
    /// has for it for this long is dropped; one that sends nothing more of its upload gets
    /// a 408.
    pub send_timeout: Duration,
    /// `--drain-timeout MS|off`, default 20000: how long a shutdown waits for exchanges
    /// still transferring before it abandons them and writes the summary; `None`: no bound
    /// (each leg's and client's own deadlines still apply).
    pub drain_timeout: Option<Duration>,
    /// `--max-clients N`, default 10000: beyond it trident stops accepting for a while.
    pub max_clients: usize,
    /// Most exchanges each shadow leg may have in flight per reactor, as the open-file limit
    /// leaves room for beside `max_clients` (set at start-up, not by a flag; it bounds
    /// `max_inflight=`); None: not checked.
    pub shadow_room: Option<usize>,
    /// `--reactors N`, default 1: reactor threads, each with its own listener on the same
    /// address (SO_REUSEPORT); the kernel spreads new connections across them.
    pub reactors: usize,
    /// `--nice N`, -20..=19: the scheduling priority trident runs at, as nice(1); None
    /// leaves the one it was started with.
    pub nice: Option<i32>,
    /// `--max-request-line BYTES`, default 8192 (414 beyond it).
    pub max_request_line: usize,
    /// `--max-header-bytes BYTES`, default 65536 (431 beyond it).
    pub max_header_bytes: usize,
    /// `--max-headers N`, default 100 (431 beyond it).
    pub max_headers: usize,
    /// `--shadow-percent P`, default 100: the share of requests sent to the shadow legs.
    pub shadow_percent: f64,
    /// `--sample-key NAME`: sample by a hash of this request field instead of at random.
    pub sample_key: Option<String>,
    /// `--shadow-methods LIST|all`, default GET,HEAD,OPTIONS (upper-case names); `None`: all.
    pub shadow_methods: Option<Vec<String>>,
    /// `--role-header NAME`, default X-Trident-Role; `None` (`--role-header ''`): not sent.
    pub role_header: Option<String>,
    /// `--forward-client-ip`: append the client's address to X-Forwarded-For and Forwarded.
    pub forward_client_ip: bool,
    /// `--close-connections`: one exchange per client and upstream connection.
    pub close_connections: bool,
    /// `--tls-cert FILE` and `--tls-key FILE`: serve clients over TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--ca-file FILE`: trust these CA certificates for https targets instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// What the reporting thread is told: `--format`, `--ignore-header`, `--ignore-field`,
    /// `--endpoint`, `--max-endpoints`, the thresholds, `--report` and `--max-compare-bytes`.
    pub report: Settings,
    /// `--exit-code`: exit 1 at shutdown when the candidate's verdict is FAIL, 3 UNDECIDED.
    pub exit_code: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            targets: None,
            timeout: Duration::from_millis(5000),
            connect_timeout: Duration::from_millis(1000),
            dns_refresh: Some(DEFAULT_DNS_REFRESH),
            header_timeout: Duration::from_millis(10_000),
            idle_timeout: Duration::from_millis(60_000),
            send_timeout: Duration::from_millis(30_000),
            drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
            max_clients: 10_000,
            shadow_room: None,
            reactors: 1,
            nice: None,
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            shadow_percent: 100.0,
            sample_key: None,
            shadow_methods: Some(vec!["GET".into(), "HEAD".into(), "OPTIONS".into()]),
            role_header: Some("X-Trident-Role".into()),
            forward_client_ip: false,
            close_connections: false,
            tls: None,
            ca_file: None,
            report: Settings::default(),
            exit_code: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the proxy.
    Run(Config),
    /// `--demo`: built-in upstreams and client.
    Demo(Config),
    /// `--check`: validate the targets and the options, print what would be used, exit.
    Check(Config),
    /// `-h/--help`: print this usage text to stdout, exit 0.
    Help(String),
    /// `-V/--version`: print `trident VERSION`, exit 0.
    Version,
}

/// The three URL flags, in role order.
const URL_FLAGS: [&str; 3] = ["primary", "secondary", "candidate"];

/// `--dns-refresh`'s default. A service behind a name (a Kubernetes service, Consul) gets new
/// addresses when it is redeployed; this is how long trident may still use the old ones.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(10);

/// `--drain-timeout`'s default: a shutdown writes its summary before a supervisor's kill
/// (Kubernetes waits 30 s after SIGTERM by default, systemd 90 s), however long a client's
/// download would still take.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// `--help`: what trident is, every option, the targets-file format and the signals.
const HELP: &str = "\
trident: an HTTP/1.1 shadow-traffic proxy.

Every request a client sends to trident goes to three upstreams: the primary
(the stable version, whose response the client gets), the secondary (a second
stable instance, so that differences between the two show what is noise) and
the candidate (the version under test). Each exchange prints one block on
stdout: the request, then what each upstream answered, with the secondary's
and the candidate's differences from the primary. A summary per endpoint and a
verdict on the candidate follow at shutdown (and on SIGUSR1). Logs go to
stderr (RUST_LOG=debug for more).

usage: trident [--listen ADDR] --targets FILE [options]
       trident [--listen ADDR] --primary URL --secondary URL --candidate URL
       trident --demo [options]

options:
  --listen ADDR          accept clients on ADDR (default 127.0.0.1:8080;
                         port 0 picks a free port; IPv6 as [::1]:8080)
  --targets FILE         read the three upstreams from FILE (re-read on SIGHUP)
  --primary URL          the primary upstream, http://HOST[:PORT] (or https://)
  --secondary URL        the secondary upstream
  --candidate URL        the candidate upstream
  --timeout MS           each upstream's deadline for a whole exchange, in
                         milliseconds (default 5000)
  --connect-timeout MS   each upstream's deadline to connect, in milliseconds
                         (default 1000)
  --dns-refresh MS       look the targets' host names up again this often, in
                         milliseconds, or off (default 10000)
  --header-timeout MS    a request head must be complete this long after its
                         first byte, else 408 (default 10000)
  --idle-timeout MS      close a client idle this long (default 60000)
  --send-timeout MS      drop a client that reads nothing of its response, or
                         answer 408 to one that sends nothing more of its
                         upload, for this long (default 30000)
  --drain-timeout MS     at shutdown, abandon exchanges still transferring after
                         this long and write the summary, or off (default 20000)
  --max-clients N        most client connections at once (default 10000)
  --reactors N           reactor threads sharing the listen address (default 1;
                         --max-clients and max_inflight= apply per reactor)
  --nice N               scheduling priority, as nice(1), -20 to 19: below 0
                         trident runs ahead of the upstreams sharing its host
                         (needs root or CAP_SYS_NICE; default: unchanged)
  --max-request-line B   longest request line, else 414 (default 8192)
  --max-header-bytes B   largest request head, else 431 (default 65536)
  --max-headers N        most header fields in a head, else 431 (default 100)
  --max-compare-bytes B  response body bytes kept per upstream to compare
                         (default 1048576)
  --shadow-percent P     share of requests also sent to the secondary and the
                         candidate, 0 to 100 (default 100)
  --sample-key NAME      sample by a hash of this request header's value, so
                         one user's requests are all shadowed or none are
  --shadow-methods LIST  methods sent to the shadows, comma-separated, or
                         all (default GET,HEAD,OPTIONS: writes happen once)
  --role-header NAME     header telling each upstream its role (default
                         X-Trident-Role; '' sends none)
  --forward-client-ip    add the client address to X-Forwarded-For and
                         Forwarded
  --close-connections    one request per client and upstream connection
  --tls-cert FILE        serve clients over TLS with this PEM certificate chain
  --tls-key FILE         ... and this PEM private key
  --ca-file FILE         trust these PEM CA certificates for https:// targets
                         (default: the system's)
  --check                validate the options and the targets, print them,
                         exit 0 (or 2 on an error); use before a SIGHUP
  --demo                 run three built-in upstreams and a client against
                         them, and show the blocks (not with --listen,
                         --reactors, --nice, --tls-cert, --tls-key, --check)
  -h, --help             print this help
  -V, --version          print the version

comparison (candidate vs primary, against secondary vs primary as noise):
  --ignore-header NAME   leave this response header out (repeatable); always
                         left out: Date, Server, Age, Expires, Last-Modified,
                         ETag, Set-Cookie, Via, X-Request-Id, the hop-by-hop
                         fields, and Content-Length unless neither leg has a
                         body (HEAD, 304)
  --ignore-field PATH    leave this body field out (repeatable), as the
                         report names it: user.email, items[].id, body n type;
                         body, body hash, body bom, body coding; $ for all
  --endpoint PATTERN     count requests matching [METHOD ]/users/{name}/posts
                         as one endpoint (repeatable); otherwise numbers,
                         UUIDs and hex hashes in paths become {id}
  --max-endpoints N      endpoints counted apart, the rest as other
                         (default 1000)
  --relative-threshold P Diffy's relative threshold, percent (default 20)
  --absolute-threshold P Diffy's absolute threshold, percent (default 0.03)
  --confidence P         the significance tests' confidence, percent, over
                         all the fields an epoch tests (Holm) (default 99)
  --min-samples N        compared requests an endpoint needs before it can
                         fail the candidate (default 30)
  --report FILE          write the summary as JSON to FILE at shutdown, on
                         SIGUSR1 and on reload, with sample differences
  --exit-code            exit 1 at shutdown if the verdict is FAIL, 3 if it is
                         UNDECIDED (2: a mistake in the options; 4: trident
                         itself failed)
  --format FORMAT        text (default) or json: one JSON line per exchange

targets file: one upstream per line, ROLE = URL [OPTION=VALUE ...]
  ROLE     primary, secondary or candidate, each exactly once
  URL      http://HOST[:PORT] or https://HOST[:PORT], port 80 (443) if
           omitted; HOST is an IPv4 address, an IPv6 address in brackets,
           or a name resolved when the file is loaded
  OPTION   timeout=MS, connect_timeout=MS: this upstream's own deadlines;
           max_inflight=N: most exchanges in flight (shadows; default 256);
           host=keep|target|NAME: the Host header it gets;
           tls_verify=on|off: check an https target's certificate;
           set_header=\"NAME: VALUE\", drop_header=NAME: this leg's request
           fields (repeatable)
  A # after whitespace starts a comment; blank lines are ignored. For example:

    # targets.conf
    primary   = http://127.0.0.1:9001
    secondary = http://127.0.0.1:9002
    candidate = http://localhost:9003  timeout=1500   # the new build

signals:
  SIGHUP            re-read the targets file; if a target changed, a new
                    statistics epoch begins (the old one's summary first)
  SIGUSR1           print the summary so far (and rewrite --report FILE)
  SIGTERM, SIGINT   stop accepting, finish the exchanges in flight (at most
                    --drain-timeout), print the summary, exit; a second
                    abandons what is in flight, a third exits at once
                    without the summary (status 4)
";

/// The option table: getopts does the tokenizing, `parse_args` the meaning.
fn options() -> getopts::Options {
    let mut opts = getopts::Options::new();
    opts.optopt("", "listen", "address to accept clients on", "ADDR")
        .optopt("", "targets", "targets file", "FILE")
        .optopt("", "primary", "primary upstream", "URL")
        .optopt("", "secondary", "secondary upstream", "URL")
        .optopt("", "candidate", "candidate upstream", "URL")
        .optopt("", "timeout", "per-leg exchange deadline", "MS")
        .optopt("", "connect-timeout", "per-leg connect deadline", "MS")
        .optopt("", "dns-refresh", "host name lookup interval", "MS")
        .optopt("", "header-timeout", "request head deadline", "MS")
        .optopt("", "idle-timeout", "keep-alive idle deadline", "MS")
        .optopt("", "send-timeout", "client send deadline", "MS")
        .optopt("", "drain-timeout", "shutdown deadline", "MS")
        .optopt("", "max-clients", "most client connections", "N")
        .optopt("", "reactors", "reactor threads", "N")
        .optopt("", "nice", "scheduling priority", "N")
        .optopt("", "max-request-line", "longest request line", "BYTES")
        .optopt("", "max-header-bytes", "largest request head", "BYTES")
        .optopt("", "max-headers", "most header fields", "N")
        .optopt("", "max-compare-bytes", "body bytes kept per leg", "BYTES")
        .optopt("", "shadow-percent", "share of requests shadowed", "P")
        .optopt("", "sample-key", "sample by this header", "NAME")
        .optopt("", "shadow-methods", "methods sent to the shadows", "LIST")
        .optopt("", "role-header", "role header name", "NAME")
        .optflag("", "forward-client-ip", "add X-Forwarded-For and Forwarded")
        .optflag("", "close-connections", "one request per connection")
        .optopt("", "tls-cert", "listener certificate chain", "FILE")
        .optopt("", "tls-key", "listener private key", "FILE")
        .optopt("", "ca-file", "CA certificates for https targets", "FILE")
        .optflag("", "check", "validate and print the configuration")
        .optmulti("", "ignore-header", "response header not compared", "NAME")
        .optmulti("", "ignore-field", "body field not compared", "PATH")
        .optmulti("", "endpoint", "endpoint template", "PATTERN")
        .optopt("", "max-endpoints", "endpoints counted apart", "N")
        .optopt("", "relative-threshold", "Diffy's relative threshold", "P")
        .optopt("", "absolute-threshold", "Diffy's absolute threshold", "P")
        .optopt("", "confidence", "significance tests' confidence", "P")
        .optopt("", "min-samples", "samples needed to decide", "N")
        .optopt("", "report", "JSON report file", "FILE")
        .optflag(
            "",
            "exit-code",
            "exit 1 when the verdict is FAIL, 3 UNDECIDED",
        )
        .optopt("", "format", "text or json", "FORMAT")
        .optflag("", "demo", "built-in upstreams and client")
        .optflag("h", "help", "print help")
        .optflag("V", "version", "print version");
    opts
}

/// Parses `args` (without the program name).
pub fn parse_args(args: &[String]) -> Result<Command, Error> {
    let matches = options().parse(args).map_err(Error::from_getopts)?;
    if matches.opt_present("help") {
        return Ok(Command::Help(HELP.to_string()));
    }
    if matches.opt_present("version") {
        return Ok(Command::Version);
    }
    if let Some(arg) = matches.free.first() {
        return Err(Error(Kind::Positional(arg.clone())));
    }

    let mut config = Config::default();
    if let Some(value) = matches.opt_str("listen") {
        config.listen = match value.parse() {
            Ok(addr) => addr,
            Err(_) => return Err(Error(Kind::BadListen(value))),
        };
    }
    if let Some(value) = matches.opt_str("timeout") {
        config.timeout = millis("--timeout", &value)?;
    }
    if let Some(value) = matches.opt_str("connect-timeout") {
        config.connect_timeout = millis("--connect-timeout", &value)?;
    }
    if let Some(value) = matches.opt_str("dns-refresh") {
        config.dns_refresh = match value.as_str() {
            "off" => None,
            _ => Some(millis("--dns-refresh", &value)?),
        };
    }
    if let Some(value) = matches.opt_str("drain-timeout") {
        config.drain_timeout = match value.as_str() {
            "off" => None,
            _ => Some(millis("--drain-timeout", &value)?),
        };
    }
    for (flag, field) in [
        ("--header-timeout", &mut config.header_timeout),
        ("--idle-timeout", &mut config.idle_timeout),
        ("--send-timeout", &mut config.send_timeout),
    ] {
        if let Some(value) = matches.opt_str(&flag[2..]) {
            *field = millis(flag, &value)?;
        }
    }
    // (flag, field, lowest, highest): limits outside these would break the proxy, not tune it.
    let counts: [(&'static str, &mut usize, usize, usize); 6] = [
        ("--max-clients", &mut config.max_clients, 1, 1_000_000),
        ("--reactors", &mut config.reactors, 1, 64),
        (
            "--max-request-line",
            &mut config.max_request_line,
            64,
            1 << 20,
        ),
        (
            "--max-header-bytes",
            &mut config.max_header_bytes,
            256,
            1 << 24,
        ),
        ("--max-headers", &mut config.max_headers, 1, 256),
        (
            "--max-compare-bytes",
            &mut config.report.max_compare_bytes,
            0,
            1 << 30,
        ),
    ];
    for (flag, field, lowest, highest) in counts {
        if let Some(value) = matches.opt_str(&flag[2..]) {
            *field = count(flag, &value, lowest, highest)?;
        }
    }

    if let Some(value) = matches.opt_str("nice") {
        config.nice = Some(nice(&value)?);
    }

    shadow_options(&matches, &mut config)?;
    config.forward_client_ip = matches.opt_present("forward-client-ip");
    config.close_connections = matches.opt_present("close-connections");
    config.tls = match (
        file_option(&matches, "--tls-cert")?,
        file_option(&matches, "--tls-key")?,
    ) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => return Err(Error(Kind::Lonely("tls-cert", "tls-key"))),
        (None, Some(_)) => return Err(Error(Kind::Lonely("tls-key", "tls-cert"))),
    };
    config.ca_file = file_option(&matches, "--ca-file")?.map(PathBuf::from);
    compare_options(&matches, &mut config)?;

    let file = file_option(&matches, "--targets")?;
    let urls = URL_FLAGS.map(|flag| matches.opt_str(flag));
    let first_url_flag = URL_FLAGS
        .into_iter()
        .zip(&urls)
        .find_map(|(flag, url)| url.as_ref().map(|_| flag));

    if matches.opt_present("demo") {
        if file.is_some() {
            return Err(Error(Kind::DemoWithTargets("targets")));
        }
        if let Some(flag) = first_url_flag {
            return Err(Error(Kind::DemoWithTargets(flag)));
        }
        // The demo's proxy is its own: a plain listener on a free port, one reactor. An
        // option it would ignore is refused rather than silently dropped.
        let unused = ["listen", "reactors", "nice", "tls-cert", "tls-key", "check"];
        if let Some(flag) = unused.into_iter().find(|flag| matches.opt_present(flag)) {
            return Err(Error(Kind::DemoWithProxyOption(flag)));
        }
        return Ok(Command::Demo(config));
    }

    let source = match (file, urls) {
        (Some(path), _) => match first_url_flag {
            Some(flag) => return Err(Error(Kind::TargetsAndUrls(flag))),
            None => TargetSource::File(PathBuf::from(path)),
        },
        (None, [Some(primary), Some(secondary), Some(candidate)]) => TargetSource::Urls {
            primary,
            secondary,
            candidate,
        },
        (None, [None, None, None]) => return Err(Error(Kind::NoTargets)),
        (None, urls) => {
            let missing = URL_FLAGS
                .into_iter()
                .zip(urls)
                .filter(|(_, url)| url.is_none())
                .map(|(flag, _)| flag)
                .collect();
            return Err(Error(Kind::MissingUrls(missing)));
        }
    };
    config.targets = Some(source);
    if matches.opt_present("check") {
        return Ok(Command::Check(config));
    }
    Ok(Command::Run(config))
}

/// `--shadow-percent`, `--sample-key`, `--shadow-methods`, `--role-header`.
fn shadow_options(matches: &getopts::Matches, config: &mut Config) -> Result<(), Error> {
    if let Some(value) = matches.opt_str("shadow-percent") {
        config.shadow_percent = match value.parse::<f64>() {
            // `abs`: "-0" is 0, not shown as "-0%".
            Ok(p) if (0.0..=100.0).contains(&p) => p.abs(),
            _ => {
                let why = format!("\"{value}\" is not a number from 0 to 100");
                return Err(Error(Kind::BadNumber {
                    flag: "--shadow-percent",
                    why,
                }));
            }
        };
    }
    if let Some(name) = matches.opt_str("sample-key") {
        if !is_token(&name) {
            return Err(Error(Kind::BadName("sample-key", name)));
        }
        config.sample_key = Some(name);
    }
    if let Some(list) = matches.opt_str("shadow-methods") {
        config.shadow_methods = if list.eq_ignore_ascii_case("all") {
            None
        } else {
            // Methods are case-sensitive (RFC 9110 §9.1), but nobody means `get` as a method
            // of its own: names are taken in upper case.
            let methods: Vec<String> = list
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .collect();
            if let Some(bad) = methods.iter().find(|m| !is_token(m)) {
                return Err(Error(Kind::BadName("shadow-methods", bad.clone())));
            }
            if methods.iter().any(|m| m == "ALL") {
                return Err(Error(Kind::BadValue {
                    flag: "--shadow-methods",
                    why: format!("\"{list}\": all stands alone, not in a list of methods"),
                }));
            }
            Some(methods)
        };
    }
    if let Some(name) = matches.opt_str("role-header") {
        config.role_header = if name.is_empty() {
            None
        } else if !is_token(&name) {
            return Err(Error(Kind::BadName("role-header", name)));
        } else if let Some(owner) = crate::http::request::field_owner(&name) {
            // Content-Length: primary, Host: primary... would corrupt every leg's request.
            return Err(Error(Kind::BadValue {
                flag: "--role-header",
                why: format!("{name} is decided by {owner}; name a field of its own"),
            }));
        } else {
            Some(name)
        };
    }
    Ok(())
}

/// The comparison and report flags.
/// The file name given to `flag` (`--targets`), if any. An empty one is refused: it would be
/// reported as `: cannot read`, naming nothing.
fn file_option(matches: &getopts::Matches, flag: &'static str) -> Result<Option<String>, Error> {
    match matches.opt_str(flag.trim_start_matches('-')) {
        Some(path) if path.is_empty() => Err(Error(Kind::BadValue {
            flag,
            why: "an empty file name".into(),
        })),
        path => Ok(path),
    }
}

fn compare_options(matches: &getopts::Matches, config: &mut Config) -> Result<(), Error> {
    for name in matches.opt_strs("ignore-header") {
        if !is_token(&name) {
            return Err(Error(Kind::BadName("ignore-header", name)));
        }
        config.report.ignore_headers.push(name);
    }
    for path in matches.opt_strs("ignore-field") {
        if path.is_empty() {
            return Err(Error(Kind::BadValue {
                flag: "--ignore-field",
                why: "an empty path (a JSON path is like user.email or items[].id)".to_string(),
            }));
        }
        config.report.ignore_fields.push(path);
    }
    for text in matches.opt_strs("endpoint") {
        let pattern = Pattern::parse(&text).map_err(|err| {
            Error(Kind::BadValue {
                flag: "--endpoint",
                why: err.to_string(),
            })
        })?;
        config.report.endpoints.push(pattern);
    }
    if let Some(value) = matches.opt_str("max-endpoints") {
        config.report.max_endpoints = count("--max-endpoints", &value, 1, 100_000)?;
    }
    if let Some(value) = matches.opt_str("min-samples") {
        config.report.thresholds.min_samples =
            count("--min-samples", &value, 1, 1_000_000_000)? as u64;
    }
    let thresholds = &mut config.report.thresholds;
    // Diffy's comparisons are strict and neither rate exceeds 100 %: at 100 nothing is ever
    // flagged, and the candidate could not fail.
    let below_100 = |p: Percent| p < Percent::whole(100);
    if let Some(value) = matches.opt_str("relative-threshold") {
        thresholds.relative = percent("--relative-threshold", &value, below_100, "0 to 99.9999")?;
    }
    if let Some(value) = matches.opt_str("absolute-threshold") {
        thresholds.absolute = percent("--absolute-threshold", &value, below_100, "0 to 99.9999")?;
    }
    if let Some(value) = matches.opt_str("confidence") {
        // 100 % would never fail anything, and below 50 % the test says "regression" to
        // a coin toss.
        let sensible = |p: Percent| p >= Percent::whole(50) && p < Percent::whole(100);
        thresholds.confidence = percent("--confidence", &value, sensible, "50 to 99.9999")?;
    }
    config.report.report_file = file_option(matches, "--report")?.map(PathBuf::from);
    config.exit_code = matches.opt_present("exit-code");
    if let Some(format) = matches.opt_str("format") {
        config.report.format = match format.as_str() {
            "text" => Format::Text,
            "json" => Format::Json,
            _ => {
                return Err(Error(Kind::BadValue {
                    flag: "--format",
                    why: format!("\"{format}\" is not text or json"),
                }))
            }
        };
    }
    Ok(())
}

/// What `--check` prints: the configuration trident would run with, one item a line.
/// What looks mistaken in `config` without being wrong: logged at start-up, printed by
/// `--check`.
pub fn doubts(config: &Config) -> Vec<String> {
    let report = &config.report;
    let mut doubts: Vec<String> = report
        .ignore_fields
        .iter()
        .filter_map(|path| {
            ignore_path_doubt(path).map(|why| {
                format!("--ignore-field {path}: {why}; it matches only a key written so")
            })
        })
        .collect();
    if report.endpoints.len() > report.max_endpoints {
        doubts.push(format!(
            "--max-endpoints {} is fewer than the {} --endpoint patterns: the requests of those \
             seen after {} count under \"other\"",
            report.max_endpoints,
            report.endpoints.len(),
            crate::Counted(report.max_endpoints, "endpoint")
        ));
    }
    doubts
}

pub fn describe(config: &Config, targets: &crate::targets::Targets) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let ms = |d: Duration| d.as_millis();
    let ms_or_off =
        |d: Option<Duration>| d.map_or_else(|| "off".to_string(), |d| format!("{}ms", ms(d)));
    let _ = writeln!(out, "listen              {}", config.listen);
    if let Some((cert, key)) = &config.tls {
        let _ = writeln!(
            out,
            "tls                 {} {}",
            cert.display(),
            key.display()
        );
    }
    if let Some(ca_file) = &config.ca_file {
        let _ = writeln!(out, "ca-file             {}", ca_file.display());
    }
    for target in targets.iter() {
        let o = &target.options;
        let addr = match target.first_address() {
            None => format!(
                "unresolved: {}",
                target.lookup_error.as_deref().unwrap_or("no addresses")
            ),
            Some(first) if target.address_count() > 1 => {
                format!("{first}, then {}", target.fallback_list())
            }
            Some(first) => first.to_string(),
        };
        let _ = write!(
            out,
            "{:<19} {} ({addr}) timeout={}ms connect_timeout={}ms",
            target.role.name(),
            target.url,
            ms(o.timeout.unwrap_or(config.timeout)),
            ms(o.connect_timeout.unwrap_or(config.connect_timeout)),
        );
        if target.role != crate::targets::Role::Primary {
            let given = o
                .max_inflight
                .unwrap_or(crate::targets::DEFAULT_MAX_INFLIGHT);
            let _ = write!(
                out,
                " max_inflight={}",
                given.min(config.shadow_room.unwrap_or(given))
            );
            if config.shadow_room.is_some_and(|room| room < given) {
                out.push_str(" (the open-file limit's)");
            }
        }
        match &o.host {
            None | Some(crate::targets::HostField::Keep) => {}
            Some(crate::targets::HostField::Target) => out.push_str(" host=target"),
            Some(crate::targets::HostField::Literal(name)) => {
                let _ = write!(out, " host={name}");
            }
        }
        if target.tls && o.tls_verify == Some(false) {
            out.push_str(" tls_verify=off");
        }
        // Names only: a set value is often a credential, and --check output gets pasted.
        for rule in &o.fields {
            let option = match rule.value {
                Some(_) => "set_header",
                None => "drop_header",
            };
            let _ = write!(out, " {option}={}", rule.name);
        }
        out.push('\n');
    }
    let methods = match &config.shadow_methods {
        None => "all".to_string(),
        Some(list) => list.join(","),
    };
    let _ = writeln!(
        out,
        "shadowing           {}% of {methods}{}",
        config.shadow_percent,
        config
            .sample_key
            .as_ref()
            .map(|k| format!(", sampled by {k}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "dns refresh         {}", ms_or_off(config.dns_refresh));
    let _ = writeln!(
        out,
        "drain timeout       {}",
        ms_or_off(config.drain_timeout)
    );
    let _ = writeln!(
        out,
        "headers             role={} forward-client-ip={} close-connections={}",
        config.role_header.as_deref().unwrap_or("(none)"),
        config.forward_client_ip,
        config.close_connections
    );
    let _ = writeln!(
        out,
        "client limits       header-timeout={}ms idle-timeout={}ms send-timeout={}ms \
         max-clients={} reactors={} nice={} max-request-line={} max-header-bytes={} \
         max-headers={}",
        ms(config.header_timeout),
        ms(config.idle_timeout),
        ms(config.send_timeout),
        config.max_clients,
        config.reactors,
        config
            .nice
            .map_or_else(|| "unchanged".to_string(), |n| n.to_string()),
        config.max_request_line,
        config.max_header_bytes,
        config.max_headers
    );
    // An item with a `,`, a space, `"`, `\` or a control character is quoted, and escaped as
    // output is (`printable`): joined bare, `a,b` and `c` read as three (hunt 84), and a
    // newline began a line of its own (hunt 86).
    let list = |items: &[String]| {
        if items.is_empty() {
            return "(none)".to_string();
        }
        let quoted = items.iter().map(|item| {
            let escaped = crate::report::printable(item).replace('"', "\\\"");
            if escaped != *item || item.contains([',', ' ']) {
                format!("\"{escaped}\"")
            } else {
                escaped
            }
        });
        quoted.collect::<Vec<_>>().join(",")
    };
    let report = &config.report;
    let endpoints: Vec<String> = report.endpoints.iter().map(|p| p.to_string()).collect();
    let _ = writeln!(
        out,
        "comparison          ignore-header={} ignore-field={} endpoint={} max-endpoints={} \
         max-compare-bytes={}",
        list(&report.ignore_headers),
        list(&report.ignore_fields),
        list(&endpoints),
        report.max_endpoints,
        report.max_compare_bytes
    );
    let t = &report.thresholds;
    let _ = writeln!(
        out,
        "verdict             relative>{} absolute>{} confidence={} min-samples={} \
         report={} exit-code={} format={}",
        t.relative,
        t.absolute,
        t.confidence,
        t.min_samples,
        report
            .report_file
            .as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string()),
        config.exit_code,
        match report.format {
            Format::Text => "text",
            Format::Json => "json",
        }
    );
    out
}

/// An HTTP token (RFC 9110 §5.6.2): what a field name or a method may be.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::http::is_tchar)
}

/// A percentage flag value (`20`, `0.03`, `99.9`) that `valid` accepts; `range` says which.
fn percent(
    flag: &'static str,
    value: &str,
    valid: impl Fn(Percent) -> bool,
    range: &str,
) -> Result<Percent, Error> {
    match Percent::parse(value) {
        Some(p) if valid(p) => Ok(p),
        _ => Err(Error(Kind::BadNumber {
            flag,
            why: format!("\"{value}\" is not a percentage from {range} (at most four decimals)"),
        })),
    }
}

/// A count or size flag value within `lowest..=highest`; the error names the flag.
fn count(flag: &'static str, value: &str, lowest: usize, highest: usize) -> Result<usize, Error> {
    let why = match value.parse::<usize>() {
        Ok(n) if (lowest..=highest).contains(&n) => return Ok(n),
        Ok(_) => format!("\"{value}\" is not between {lowest} and {highest}"),
        // Too large, or negative: a whole number all the same.
        Err(_) if is_whole(value) => {
            format!("\"{value}\" is not between {lowest} and {highest}")
        }
        Err(_) => format!("\"{value}\" is not a whole number"),
    };
    Err(Error(Kind::BadNumber { flag, why }))
}

/// Digits, with a sign or not: what a whole number out of any integer type's range looks like.
fn is_whole(value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A `--nice` value: nice(1)'s range on Linux.
fn nice(value: &str) -> Result<i32, Error> {
    let why = match value.parse::<i32>() {
        Ok(n) if (-20..=19).contains(&n) => return Ok(n),
        Ok(_) => format!("\"{value}\" is not between -20 and 19"),
        Err(_) if is_whole(value) => format!("\"{value}\" is not between -20 and 19"),
        Err(_) => format!("\"{value}\" is not a whole number"),
    };
    Err(Error(Kind::BadNumber {
        flag: "--nice",
        why,
    }))
}

/// A `MS` flag value; the error names the flag and the value.
fn millis(flag: &'static str, value: &str) -> Result<Duration, Error> {
    crate::targets::parse_millis(value).map_err(|why| Error(Kind::BadMillis { flag, why }))
}

/// A command-line mistake; Display is one line naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Kind);

/// The mistakes, one variant each; flag names are stored without their dashes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A flag trident does not know (`--fo`, `-x`).
    UnknownOption(String),
    /// An argument that is not valid UTF-8 (getopts' quoting of it).
    NotUtf8(String),
    /// A flag that takes a value came last.
    MissingValue(String),
    /// `--demo=yes`.
    UnexpectedValue(String),
    /// The same flag twice: which one wins would be a guess.
    Duplicate(String),
    /// A word that is not a flag or a flag's value.
    Positional(String),
    BadListen(String),
    BadMillis {
        flag: &'static str,
        why: String,
    },
    BadNumber {
        flag: &'static str,
        why: String,
    },
    /// `--targets` and a URL flag (the first one given).
    TargetsAndUrls(&'static str),
    /// Some URL flags but not all three; the missing ones, in role order.
    MissingUrls(Vec<&'static str>),
    NoTargets,
    /// `--demo` with `--targets` or a URL flag.
    DemoWithTargets(&'static str),
    /// `--demo` with an option about the proxy's own listener or threads.
    DemoWithProxyOption(&'static str),
    /// One flag of a pair without the other (`--tls-cert` without `--tls-key`).
    Lonely(&'static str, &'static str),
    /// A header or method name that is not an HTTP token.
    BadName(&'static str, String),
    /// A value the flag cannot use; `why` names it.
    BadValue {
        flag: &'static str,
        why: String,
    },
}

/// The short hint printed after an error line.
pub const USAGE_HINT: &str = "usage: trident [--listen ADDR] (--targets FILE | --primary URL --secondary URL --candidate URL) [options]; try 'trident --help'";

impl Error {
    fn from_getopts(fail: getopts::Fail) -> Error {
        Error(match fail {
            // getopts quotes an argument it cannot read as UTF-8 with `{:?}`.
            getopts::Fail::UnrecognizedOption(name) if name.starts_with('"') => Kind::NotUtf8(name),
            getopts::Fail::UnrecognizedOption(name) => Kind::UnknownOption(name),
            getopts::Fail::ArgumentMissing(name) => Kind::MissingValue(name),
            getopts::Fail::UnexpectedArgument(name) => Kind::UnexpectedValue(name),
            getopts::Fail::OptionDuplicated(name) => Kind::Duplicate(name),
            // No option is mandatory, so getopts cannot say this; keep its text if it does.
            getopts::Fail::OptionMissing(name) => Kind::MissingValue(name),
        })
    }
}

/// A flag as the user types it: `-h` for a one-letter name, `--listen` otherwise.
struct Flag<'a>(&'a str);

impl fmt::Display for Flag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.chars().count() == 1 {
            write!(f, "-{}", self.0)
        } else {
            write!(f, "--{}", self.0)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::UnknownOption(name) => write!(f, "unknown option \"{}\"", Flag(name)),
            Kind::NotUtf8(arg) => write!(f, "argument {arg} is not valid UTF-8"),
            Kind::MissingValue(name) => write!(f, "{} needs a value", Flag(name)),
            Kind::UnexpectedValue(name) => write!(f, "{} does not take a value", Flag(name)),
            Kind::Duplicate(name) => write!(f, "{} given more than once", Flag(name)),
            Kind::Positional(arg) => write!(f, "unexpected argument \"{arg}\""),
            Kind::BadListen(value) => write!(
                f,
                "--listen: \"{value}\" is not an IP address and port \
                 (like 127.0.0.1:8080 or [::1]:8080)"
            ),
            Kind::BadMillis { flag, why }
            | Kind::BadNumber { flag, why }
            | Kind::BadValue { flag, why } => {
                write!(f, "{flag}: {why}")
            }
            Kind::TargetsAndUrls(flag) => write!(
                f,
                "--targets and {} cannot be used together \
                 (give a targets file or the three URLs)",
                Flag(flag)
            ),
            Kind::MissingUrls(missing) => {
                f.write_str("missing ")?;
                for (i, flag) in missing.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(f, "{}", Flag(flag))?;
                }
                f.write_str(" (all three of --primary, --secondary, --candidate are needed)")
            }
            Kind::NoTargets => f.write_str(
                "no targets: give --targets FILE, or --primary, --secondary and --candidate \
                 URLs (or --demo)",
            ),
            Kind::Lonely(given, missing) => {
                write!(f, "--{given} needs --{missing} too")
            }
            Kind::BadName(flag, name) => {
                write!(f, "--{flag}: \"{name}\" is not a valid HTTP name")
            }
            Kind::DemoWithTargets(flag) => write!(
                f,
                "--demo brings its own upstreams: {} cannot be used with it",
                Flag(flag)
            ),
            Kind::DemoWithProxyOption(flag) => write!(
                f,
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: {} \
                 cannot be used with it",
                Flag(flag)
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Thresholds;

    fn parse(line: &str) -> Result<Command, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse_args(&args).map_err(|err| err.to_string())
    }

    const URLS: &str = "--primary http://a --secondary http://b --candidate http://c";

    fn urls() -> Option<TargetSource> {
        Some(TargetSource::Urls {
            primary: "http://a".into(),
            secondary: "http://b".into(),
            candidate: "http://c".into(),
        })
    }

    fn file(path: &str) -> Option<TargetSource> {
        Some(TargetSource::File(PathBuf::from(path)))
    }

    #[test]
    fn good_command_lines() {
        let ms = Duration::from_millis;
        let defaults = Config::default();
        let rows: Vec<(String, Command)> = vec![
            (
                "--targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    ..defaults.clone()
                }),
            ),
            (
                URLS.into(),
                Command::Run(Config {
                    targets: urls(),
                    ..defaults.clone()
                }),
            ),
            (
                "--listen 0.0.0.0:0 --timeout 1500 --connect-timeout 200 --targets=t.conf".into(),
                Command::Run(Config {
                    listen: "0.0.0.0:0".parse().unwrap(),
                    targets: file("t.conf"),
                    timeout: ms(1500),
                    connect_timeout: ms(200),
                    ..defaults.clone()
                }),
            ),
            (
                "--header-timeout 2000 --idle-timeout 3000 --send-timeout 4000 --max-clients 5 \
                 --reactors 2 --max-request-line 100 --max-header-bytes 1000 --max-headers 7 \
                 --max-compare-bytes 0 --targets t.conf"
                    .into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    header_timeout: ms(2000),
                    idle_timeout: ms(3000),
                    send_timeout: ms(4000),
                    max_clients: 5,
                    reactors: 2,
                    max_request_line: 100,
                    max_header_bytes: 1000,
                    max_headers: 7,
                    report: Settings {
                        max_compare_bytes: 0,
                        ..defaults.report.clone()
                    },
                    ..defaults.clone()
                }),
            ),
            (
                "--dns-refresh off --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    dns_refresh: None,
                    ..defaults.clone()
                }),
            ),
            (
                "--drain-timeout off --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    drain_timeout: None,
                    ..defaults.clone()
                }),
            ),
            (
                "--drain-timeout 2500 --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    drain_timeout: Some(ms(2500)),
                    ..defaults.clone()
                }),
            ),
            (
                "--dns-refresh 500 --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    dns_refresh: Some(ms(500)),
                    ..defaults.clone()
                }),
            ),
            (
                "--nice -10 --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    nice: Some(-10),
                    ..defaults.clone()
                }),
            ),
            (
                "--nice=19 --targets t.conf".into(),
                Command::Run(Config {
                    targets: file("t.conf"),
                    nice: Some(19),
                    ..defaults.clone()
                }),
            ),
            (
                format!("--listen [::1]:8080 {URLS}"),
                Command::Run(Config {
                    listen: "[::1]:8080".parse().unwrap(),
                    targets: urls(),
                    ..defaults.clone()
                }),
            ),
            ("--demo".into(), Command::Demo(defaults.clone())),
            (
                "--demo --timeout 100".into(),
                Command::Demo(Config {
                    timeout: ms(100),
                    ..defaults.clone()
                }),
            ),
            ("--help".into(), Command::Help(HELP.into())),
            ("-h".into(), Command::Help(HELP.into())),
            // Help and version win over everything else that parses.
            ("--targets t.conf --help".into(), Command::Help(HELP.into())),
            ("-h stray".into(), Command::Help(HELP.into())),
            ("--version".into(), Command::Version),
            ("-V".into(), Command::Version),
            ("--demo -V".into(), Command::Version),
        ];
        for (line, expected) in rows {
            assert_eq!(parse(&line), Ok(expected), "{line}");
        }
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let rows: Vec<(String, &str)> = vec![
            ("--targte t.conf".into(), "unknown option \"--targte\""),
            ("-x".into(), "unknown option \"-x\""),
            ("--targets".into(), "--targets needs a value"),
            (format!("{URLS} --timeout"), "--timeout needs a value"),
            ("--demo=yes".into(), "--demo does not take a value"),
            (
                "--targets a --targets b".into(),
                "--targets given more than once",
            ),
            ("--demo --demo".into(), "--demo given more than once"),
            ("-h -h".into(), "--help given more than once"),
            ("--targets t.conf extra".into(), "unexpected argument \"extra\""),
            ("--targets t.conf -- --demo".into(), "unexpected argument \"--demo\""),
            (
                "--targets t.conf --timeout abc".into(),
                "--timeout: \"abc\" is not a number of milliseconds",
            ),
            (
                "--targets t.conf --timeout 0".into(),
                "--timeout: \"0\" is not a positive number of milliseconds",
            ),
            (
                "--targets t.conf --timeout -5".into(),
                "--timeout: \"-5\" is not a positive number of milliseconds",
            ),
            (
                "--targets t.conf --max-headers 300".into(),
                "--max-headers: \"300\" is not between 1 and 256",
            ),
            (
                "--targets t.conf --nice -21".into(),
                "--nice: \"-21\" is not between -20 and 19",
            ),
            (
                "--targets t.conf --nice high".into(),
                "--nice: \"high\" is not a whole number",
            ),
            (
                "--targets t.conf --max-clients lots".into(),
                "--max-clients: \"lots\" is not a whole number",
            ),
            (
                "--targets t.conf --report=".into(),
                "--report: an empty file name",
            ),
            (
                "--targets t.conf --max-clients -1".into(),
                "--max-clients: \"-1\" is not between 1 and 1000000",
            ),
            (
                "--targets t.conf --max-clients 99999999999999999999".into(),
                "--max-clients: \"99999999999999999999\" is not between 1 and 1000000",
            ),
            (
                "--targets t.conf --nice 99999999999".into(),
                "--nice: \"99999999999\" is not between -20 and 19",
            ),
            (
                "--targets t.conf --max-clients 1e3".into(),
                "--max-clients: \"1e3\" is not a whole number",
            ),
            (
                "--targets t.conf --reactors 0".into(),
                "--reactors: \"0\" is not between 1 and 64",
            ),
            (
                "--targets t.conf --drain-timeout never".into(),
                "--drain-timeout: \"never\" is not a number of milliseconds",
            ),
            (
                "--targets t.conf --idle-timeout 0".into(),
                "--idle-timeout: \"0\" is not a positive number of milliseconds",
            ),
            (
                "--targets t.conf --connect-timeout 1.5".into(),
                "--connect-timeout: \"1.5\" is not a number of milliseconds",
            ),
            (
                "--targets t.conf --dns-refresh 0".into(),
                "--dns-refresh: \"0\" is not a positive number of milliseconds",
            ),
            (
                "--targets t.conf --connect-timeout 100000000".into(),
                "--connect-timeout: \"100000000\" is more than a day (86400000ms)",
            ),
            (
                "--targets t.conf --listen localhost:8080".into(),
                "--listen: \"localhost:8080\" is not an IP address and port (like 127.0.0.1:8080 or [::1]:8080)",
            ),
            (
                "--targets t.conf --listen ::1:8080".into(),
                "--listen: \"::1:8080\" is not an IP address and port (like 127.0.0.1:8080 or [::1]:8080)",
            ),
            (
                "--targets t.conf --listen 127.0.0.1".into(),
                "--listen: \"127.0.0.1\" is not an IP address and port (like 127.0.0.1:8080 or [::1]:8080)",
            ),
            (
                "--targets t.conf --secondary http://b".into(),
                "--targets and --secondary cannot be used together (give a targets file or the three URLs)",
            ),
            (
                format!("--targets t.conf {URLS}"),
                "--targets and --primary cannot be used together (give a targets file or the three URLs)",
            ),
            (
                "".into(),
                "no targets: give --targets FILE, or --primary, --secondary and --candidate URLs (or --demo)",
            ),
            (
                "--timeout 100".into(),
                "no targets: give --targets FILE, or --primary, --secondary and --candidate URLs (or --demo)",
            ),
            (
                "--primary http://a --secondary http://b".into(),
                "missing --candidate (all three of --primary, --secondary, --candidate are needed)",
            ),
            (
                "--secondary http://b".into(),
                "missing --primary and --candidate (all three of --primary, --secondary, --candidate are needed)",
            ),
            (
                "--demo --targets t.conf".into(),
                "--demo brings its own upstreams: --targets cannot be used with it",
            ),
            (
                "--demo --candidate http://c".into(),
                "--demo brings its own upstreams: --candidate cannot be used with it",
            ),
            (
                "--listen 127.0.0.1:0 --demo".into(),
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: \
                 --listen cannot be used with it",
            ),
            (
                "--demo --reactors 2".into(),
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: \
                 --reactors cannot be used with it",
            ),
            (
                "--demo --nice 5".into(),
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: \
                 --nice cannot be used with it",
            ),
            (
                "--demo --tls-cert c.pem --tls-key k.pem".into(),
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: \
                 --tls-cert cannot be used with it",
            ),
            (
                "--demo --check".into(),
                "--demo runs its own plain-HTTP proxy on a free local port, one reactor: \
                 --check cannot be used with it",
            ),
        ];
        for (line, expected) in rows {
            assert_eq!(parse(&line), Err(expected.to_string()), "{line}");
        }
    }

    #[test]
    fn help_covers_options_format_and_signals() {
        for needle in [
            "--listen ADDR",
            "default 127.0.0.1:8080",
            "--targets FILE",
            "--primary URL",
            "--secondary URL",
            "--candidate URL",
            "--timeout MS",
            "(default 5000)",
            "--connect-timeout MS",
            "(default 1000)",
            "--demo",
            "-h, --help",
            "-V, --version",
            "ROLE = URL",
            "timeout=1500",
            "SIGHUP",
            "SIGTERM, SIGINT",
            "SIGUSR1",
            "--ignore-header NAME",
            "--ignore-field PATH",
            "--endpoint PATTERN",
            "--max-endpoints N",
            "--relative-threshold P",
            "--absolute-threshold P",
            "--confidence P",
            "--min-samples N",
            "--report FILE",
            "--exit-code",
            "--format FORMAT",
            "--reactors N",
            "--nice N",
        ] {
            assert!(HELP.contains(needle), "help lacks {needle:?}");
        }
        // Fits an 80-column terminal.
        for line in HELP.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }

    #[test]
    fn comparison_flags() {
        let run = |line: &str, extra: &[&str]| {
            let mut args: Vec<String> = format!("{URLS} {line}")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            args.extend(extra.iter().map(|a| a.to_string()));
            match parse_args(&args) {
                Ok(Command::Run(config)) => config,
                other => panic!("{line}: {other:?}"),
            }
        };
        let defaults = Config::default();
        // Fewer endpoints counted apart than patterns given: said, not refused (a pattern may
        // see no traffic).
        let narrow = run(
            "--max-endpoints 1 --endpoint /a/{id} --endpoint /b/{id}",
            &[],
        );
        assert_eq!(
            doubts(&narrow),
            [
                "--max-endpoints 1 is fewer than the 2 --endpoint patterns: the requests of those \
              seen after 1 endpoint count under \"other\""
            ]
        );
        assert!(doubts(&run("--endpoint /a/{id}", &[])).is_empty());
        // "-0" is 0, shown as "0%" (not "-0%").
        let zero = run("--shadow-percent -0", &[]).shadow_percent;
        assert!(zero == 0.0 && zero.is_sign_positive());
        assert_eq!(defaults.report.thresholds, Thresholds::default());
        assert_eq!(
            (defaults.report.max_endpoints, defaults.report.format),
            (1000, Format::Text)
        );
        let config = run(
            "--ignore-header X-Debug --ignore-header x-trace --ignore-field user.ts \
             --ignore-field items[].id --endpoint /users/{name}/posts \
             --max-endpoints 50 --relative-threshold 10 --absolute-threshold 0.5 \
             --confidence 99.9 --min-samples 100 --report r.json --exit-code --format json",
            &["--endpoint", "GET /x"],
        );
        assert_eq!(config.report.ignore_headers, ["X-Debug", "x-trace"]);
        assert_eq!(config.report.ignore_fields, ["user.ts", "items[].id"]);
        assert_eq!(
            config.report.endpoints,
            [
                Pattern::parse("/users/{name}/posts").unwrap(),
                Pattern::parse("GET /x").unwrap()
            ]
        );
        assert_eq!(config.report.max_endpoints, 50);
        assert_eq!(
            config.report.thresholds,
            Thresholds {
                relative: Percent::whole(10),
                absolute: Percent::ten_thousandths(5000),
                confidence: Percent::ten_thousandths(999_000),
                min_samples: 100,
            }
        );
        assert_eq!(config.report.report_file, Some(PathBuf::from("r.json")));
        assert!(config.exit_code);
        assert_eq!(config.report.format, Format::Json);

        let bad: &[(&str, &str)] = &[
            ("--ignore-header a:b", "--ignore-header: \"a:b\" is not a valid HTTP name"),
            (
                "--shadow-methods all,GET",
                "--shadow-methods: \"all,GET\": all stands alone, not in a list of methods",
            ),
            ("--endpoint users", "--endpoint: \"users\" is not a path starting with /"),
            ("--max-endpoints 0", "--max-endpoints: \"0\" is not between 1 and 100000"),
            (
                "--relative-threshold 120",
                "--relative-threshold: \"120\" is not a percentage from 0 to 99.9999 (at most four decimals)",
            ),
            (
                "--absolute-threshold x",
                "--absolute-threshold: \"x\" is not a percentage from 0 to 99.9999 (at most four decimals)",
            ),
            // Nothing is ever above 100 %: the candidate could never fail.
            (
                "--relative-threshold 100",
                "--relative-threshold: \"100\" is not a percentage from 0 to 99.9999 (at most four decimals)",
            ),
            (
                "--absolute-threshold 100%",
                "--absolute-threshold: \"100%\" is not a percentage from 0 to 99.9999 (at most four decimals)",
            ),
            (
                "--confidence 100",
                "--confidence: \"100\" is not a percentage from 50 to 99.9999 (at most four decimals)",
            ),
            (
                "--confidence 20",
                "--confidence: \"20\" is not a percentage from 50 to 99.9999 (at most four decimals)",
            ),
            ("--min-samples 0", "--min-samples: \"0\" is not between 1 and 1000000000"),
            ("--format yaml", "--format: \"yaml\" is not text or json"),
            ("--report a --report b", "--report given more than once"),
        ];
        for (line, expected) in bad {
            assert_eq!(
                parse(&format!("{URLS} {line}")),
                Err(expected.to_string()),
                "{line}"
            );
        }
        // An empty file name is refused, not read as a file named "".
        for (flag, pair) in [
            ("--tls-cert", Some("--tls-key")),
            ("--tls-key", Some("--tls-cert")),
            ("--ca-file", None),
            ("--targets", None),
        ] {
            let mut args = vec![flag.to_string(), String::new()];
            if let Some(other) = pair {
                args.extend([other.to_string(), "f".to_string()]);
            }
            if flag != "--targets" {
                args.extend(URLS.split_whitespace().map(str::to_string));
            }
            assert_eq!(
                parse_args(&args).map_err(|e| e.to_string()),
                Err(format!("{flag}: an empty file name")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn flag_names_keep_their_dashes() {
        assert_eq!(Flag("h").to_string(), "-h");
        assert_eq!(Flag("listen").to_string(), "--listen");
    }
}
