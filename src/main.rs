//! The `trident` binary, kept thin: parse the command line, start logging, run the proxy (or
//! the demo). Exit codes are decided here (and for a third SIGTERM in the signal handler): 0
//! done, 1 (with `--exit-code`) a FAIL verdict on the candidate, 2 a mistake in the command
//! line, the targets or the files named, 3 (with `--exit-code`) UNDECIDED, 4 trident itself
//! failed (`trident::EXIT_TROUBLE`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use env_logger::Env;
use trident::cli::{self, Command, Config, TargetSource};
use trident::descriptors;
use trident::output::{self, Closer, LogFormat, Notice, Output};
use trident::report::{self, Verdict};
use trident::targets::Targets;
use trident::EXIT_TROUBLE;

// `print!` and `eprintln!` panic when the stream refuses a write (`--check >/dev/full`, a
// reader that has gone): exit 101 with a backtrace, where the status must be 0, 2 or 4.
// What cannot be written is lost; the exit status still says how the run went.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse_args(&args) {
        Ok(command) => command,
        Err(err) => {
            errln!("trident: {err}");
            errln!("{}", cli::USAGE_HINT);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            outln!("trident {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Demo(config) => {
            if let Err(err) = check_report_path(&config) {
                errln!("trident: {err}");
                return ExitCode::from(2);
            }
            let _log = start_logging();
            for doubt in trident::cli::doubts(&config) {
                log::warn!("{doubt}");
            }
            match trident::demo::run(&config) {
                Ok(Verdict::Fail) if config.exit_code => ExitCode::from(1),
                Ok(Verdict::Undecided) if config.exit_code => ExitCode::from(3),
                Ok(_) => ExitCode::SUCCESS,
                Err(err) => {
                    log::error!("demo failed: {err}");
                    ExitCode::from(EXIT_TROUBLE)
                }
            }
        }
        Command::Run(config) => {
            let _log = start_logging();
            run(&config)
        }
        Command::Check(config) => check(&config),
    }
}

/// `--check`: everything `run` would load, loaded and printed; nothing started.
fn check(config: &Config) -> ExitCode {
    let targets = match load_targets(config) {
        Ok(targets) => targets,
        Err(code) => return code,
    };
    if let Err(err) = trident::tls::Setup::load(config) {
        errln!("trident: {err}");
        return ExitCode::from(2);
    }
    if let Err(err) = check_report_path(config) {
        errln!("trident: {err}");
        return ExitCode::from(2);
    }
    // The priority is tried on this process, which exits next: a value trident may not set
    // would keep it from starting.
    if let Some(nice) = config.nice {
        if let Err(err) = set_nice(nice) {
            errln!("trident: {}", nice_error(nice, &err));
            return ExitCode::from(2);
        }
    }
    // What trident would run with: --max-clients as the open-file limit leaves it.
    let (config, lowered) = match descriptor_room(config) {
        Ok(fitted) => fitted,
        Err(why) => {
            errln!("trident: {why}");
            return ExitCode::from(2);
        }
    };
    out!("{}", trident::cli::describe(&config, &targets));
    match lowered {
        Some(RoomMessage::Info(text)) => errln!("trident: note: {text}"),
        Some(RoomMessage::Warning(text)) => errln!("trident: warning: {text}"),
        None => {}
    }
    // Not an error: trident would start, as it would with the service down.
    for warning in targets.unresolved_warnings(config.dns_refresh) {
        errln!("trident: warning: {warning}");
    }
    for doubt in trident::cli::doubts(&config) {
        errln!("trident: warning: {doubt}");
    }
    outln!("configuration ok");
    ExitCode::SUCCESS
}

/// `--report FILE` can be written (checked before anything starts).
fn check_report_path(config: &Config) -> Result<(), String> {
    let Some(path) = &config.report.report_file else {
        return Ok(());
    };
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    if let Some(TargetSource::File(targets)) = &config.targets {
        inputs.push(("--targets", targets));
    }
    if let Some((cert, key)) = &config.tls {
        inputs.push(("--tls-cert", cert));
        inputs.push(("--tls-key", key));
    }
    if let Some(ca) = &config.ca_file {
        inputs.push(("--ca-file", ca));
    }
    report::check_report_path(path, &inputs)
}

/// The targets named by the command line; errors are printed and give exit status 2.
fn load_targets(config: &Config) -> Result<Targets, ExitCode> {
    let loaded = match &config.targets {
        Some(TargetSource::File(path)) => Targets::load(path),
        Some(TargetSource::Urls {
            primary,
            secondary,
            candidate,
        }) => Targets::from_urls(primary, secondary, candidate),
        // parse_args gives every Run a target source; only Demo has none.
        None => {
            errln!("trident: no targets");
            return Err(ExitCode::from(2));
        }
    };
    let file = match &config.targets {
        Some(TargetSource::File(path)) => Some(path.as_path()),
        _ => None,
    };
    loaded
        .and_then(|targets| targets.loops_back(config.listen, file).map(|()| targets))
        .map_err(|err| {
            errln!("trident: {err}");
            ExitCode::from(2)
        })
}

/// `--nice`: Linux keeps a nice value per thread and a new thread starts with its creator's,
/// so setting it before the reactors and the report thread start covers them. The threads
/// already running (the log's writer) are set one by one, this one first.
fn set_nice(nice: i32) -> std::io::Result<()> {
    set_thread_nice(0, nice)?;
    for task in std::fs::read_dir("/proc/self/task")? {
        let tid = task?.file_name().to_string_lossy().parse::<libc::id_t>();
        // The main thread (whose id is the process's) is set already.
        match tid {
            Ok(tid) if tid != std::process::id() => set_thread_nice(tid, nice)?,
            _ => {}
        }
    }
    Ok(())
}

/// Why `--nice` could not be set, with what it takes.
fn nice_error(nice: i32, err: &std::io::Error) -> String {
    let hint = match err.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (a priority above the one trident started with needs root or CAP_SYS_NICE)"
        }
        _ => "",
    };
    format!("--nice {nice}: {err}{hint}")
}

/// setpriority(2) for one thread (0: the calling one).
fn set_thread_nice(tid: libc::id_t, nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes integers only and touches no memory of this process.
    let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Logs go to stderr as `TIME trident: LEVEL: message` (`output::LogFormat`), `info` and up
/// unless RUST_LOG says otherwise, through a writer thread of their own: a reader of stderr
/// that stops reading must not stop the reactor, which logs. Dropping the guard waits for the
/// log to be written (as long as stderr takes it).
fn start_logging() -> LogGuard {
    let mut builder = env_logger::Builder::from_env(Env::default().default_filter_or("info"));
    let format = LogFormat::for_stderr();
    builder.format(move |buf, record| {
        format.begin(buf, record.level(), SystemTime::now())?;
        writeln!(buf, "{}", record.args())
    });
    let notice = Notice::Inline(format);
    let closer = match Output::start(Box::new(std::io::stderr()), "stderr", notice) {
        Ok(output) => {
            let closer = output.closer();
            builder.target(env_logger::Target::Pipe(Box::new(output)));
            Some(closer)
        }
        Err(err) => {
            errln!("trident: WARN: no thread for the log ({err}): writing it directly");
            None
        }
    };
    builder.init();
    LogGuard(closer)
}

/// Waits, on drop, for the log to reach stderr.
struct LogGuard(Option<Closer>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(closer) = &self.0 {
            closer.close(output::SHUTDOWN);
        }
    }
}

/// `config` with `--max-clients` lowered to what the open-file limit leaves room for (after
/// raising the soft limit to the hard one), logged when it was; why not, when the limit
/// leaves no room for a client on each reactor.
fn fit_to_descriptors(config: &Config) -> Result<Config, String> {
    let (config, lowered) = descriptor_room(config)?;
    match lowered {
        Some(RoomMessage::Info(text)) => log::info!("{text}"),
        Some(RoomMessage::Warning(text)) => log::warn!("{text}"),
        None => {}
    }
    Ok(config)
}

/// What the descriptor check has to say: `--max-clients` lowered from its default is news, not
/// a problem (the default is a ceiling, not a wish); lowered from a value the command line
/// gave, or not checked at all, it is a warning.
enum RoomMessage {
    Info(String),
    Warning(String),
}

/// `fit_to_descriptors` without the logging, for `--check` too.
fn descriptor_room(config: &Config) -> Result<(Config, Option<RoomMessage>), String> {
    let mut config = config.clone();
    let limit = match descriptors::raise_limit() {
        Ok(limit) => limit,
        Err(err) => {
            let text =
                format!("cannot read the open-file limit ({err}); --max-clients is not checked");
            return Ok((config, Some(RoomMessage::Warning(text))));
        }
    };
    if limit.now > limit.was {
        log::debug!("open-file limit raised from {} to {}", limit.was, limit.now);
    }
    let open = descriptors::open_now().unwrap_or(16);
    let per_reactor_room = descriptors::per_reactor(limit.now, open, config.reactors);
    let room = descriptors::clients_per_reactor(limit.now, open, config.reactors);
    if room == 0 {
        let each = if config.reactors > 1 {
            format!(" on each of {} reactors", config.reactors)
        } else {
            String::new()
        };
        return Err(format!(
            "the open-file limit of {} leaves no room for a client{each} ({} descriptors \
             each, its own and one per leg, after the {} trident keeps for itself); raise it \
             (ulimit -n, systemd's LimitNOFILE=){}",
            limit.now,
            descriptors::PER_CLIENT,
            descriptors::reserved(open, config.reactors),
            if config.reactors > 1 {
                " or use fewer --reactors"
            } else {
                ""
            }
        ));
    }
    let per_reactor = if config.reactors > 1 {
        " per reactor"
    } else {
        ""
    };
    let clients = room.min(config.max_clients);
    let shadow_room = descriptors::shadow_legs_per_reactor(per_reactor_room, clients);
    config.shadow_room = Some(shadow_room);
    let shadows = if shadow_room < trident::targets::DEFAULT_MAX_INFLIGHT {
        format!(
            ", and each shadow leg at most {shadow_room} exchanges in flight{per_reactor} \
             (beyond, it is skipped as saturated)"
        )
    } else {
        String::new()
    };
    if room < config.max_clients {
        let text = format!(
            "at most {room} clients{per_reactor} at once{shadows}: the open-file limit of {} \
             leaves room for no more (each client may hold {} descriptors: its own and one per \
             leg); raise the hard limit (ulimit -Hn, systemd's LimitNOFILE=) for more",
            limit.now,
            descriptors::PER_CLIENT
        );
        let lowered = if config.max_clients == Config::default().max_clients {
            RoomMessage::Info(text)
        } else {
            RoomMessage::Warning(format!("--max-clients {}: {text}", config.max_clients))
        };
        config.max_clients = room;
        return Ok((config, Some(lowered)));
    }
    if !shadows.is_empty() {
        // A slow shadow holds a descriptor per exchange: bounded, it never takes those of
        // new clients and their primary legs.
        let text = format!(
            "each shadow leg at most {shadow_room} exchanges in flight{per_reactor} (beyond, it \
             is skipped as saturated): the open-file limit of {} leaves room for no more beside \
             {} clients; raise the hard limit (ulimit -Hn, systemd's LimitNOFILE=) or lower \
             --max-clients for more",
            limit.now, config.max_clients
        );
        return Ok((config, Some(RoomMessage::Info(text))));
    }
    Ok((config, None))
}

/// Loads the targets, binds, and runs the proxy until a signal stops it.
fn run(config: &Config) -> ExitCode {
    let targets = match load_targets(config) {
        Ok(targets) => targets,
        Err(code) => return code,
    };
    let tls = match trident::tls::Setup::load(config) {
        Ok(tls) => tls,
        Err(err) => {
            errln!("trident: {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = check_report_path(config) {
        errln!("trident: {err}");
        return ExitCode::from(2);
    }
    // After the checks that may refuse to start: a warning about a name that did not resolve
    // would otherwise come before the error that ends the run.
    targets.log_lookups(config.dns_refresh);
    for doubt in trident::cli::doubts(config) {
        log::warn!("{doubt}");
    }
    log::info!("targets: {}", targets.labels());
    if let Some(nice) = config.nice {
        if let Err(err) = set_nice(nice) {
            errln!("trident: {}", nice_error(nice, &err));
            return ExitCode::from(EXIT_TROUBLE);
        }
    }
    let config = &match fit_to_descriptors(config) {
        Ok(config) => config,
        Err(why) => {
            errln!("trident: {why}");
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    // Before the proxy announces its address: SIGUSR1's default action would end the process.
    let summary_signal = match report::SummarySignal::register() {
        Ok(signal) => signal,
        Err(err) => {
            log::error!("cannot install the SIGUSR1 handler: {err}");
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    let mut proxy = match trident::Proxy::bind_with_tls(config, targets, tls) {
        Ok(proxy) => proxy,
        Err(err) => {
            errln!("trident: cannot listen on {}: {err}", config.listen);
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    if let Err(err) = proxy.handle_signals() {
        log::error!("cannot install signal handlers: {err}");
        return ExitCode::from(EXIT_TROUBLE);
    }
    let mut followers = Vec::new();
    for _ in 1..config.reactors {
        match proxy.follower() {
            Ok(follower) => followers.push(follower),
            Err(err) => {
                log::error!(
                    "cannot start another reactor on {}: {err}",
                    proxy.local_addr()
                );
                return ExitCode::from(EXIT_TROUBLE);
            }
        }
    }
    // Only now: a supervisor may send SIGHUP or SIGTERM once it reads this line, and until
    // `handle_signals` their default action would end the process without a summary.
    log::info!("listening on {}", proxy.local_addr());
    if config.reactors > 1 {
        log::info!(
            "{} reactor threads share {}",
            config.reactors,
            proxy.local_addr()
        );
    }
    let settings = config.report.clone();
    let (sender, reporter) =
        match report::spawn(Box::new(std::io::stdout()), settings, summary_signal) {
            Ok(started) => started,
            Err(err) => {
                log::error!("cannot start the report thread: {err}");
                return ExitCode::from(EXIT_TROUBLE);
            }
        };
    sender.serve_reactors(config.reactors);
    let mut running = Vec::new();
    for (n, follower) in followers.into_iter().enumerate() {
        let sender = sender.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("reactor-{}", n + 1))
            .spawn(move || follower.run(sender));
        match spawned {
            Ok(handle) => running.push(handle),
            Err(err) => log::error!("cannot start reactor {}: {err}", n + 1),
        }
    }
    // The leader's `run` returns once every reactor was told to stop; each drains its own.
    let mut outcome = proxy.run(sender);
    for handle in running {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome = outcome.and(Err(err)),
            Err(_) => outcome = outcome.and(Err(std::io::Error::other("a reactor panicked"))),
        }
    }
    // Every `run` has dropped its sender, so the report thread ends after the last block
    // and the final summary.
    let finished = reporter.join();
    match (outcome, finished.map(|f| (f.verdict, f.report_failed))) {
        (Err(err), _) => {
            log::error!("proxy stopped: {err}");
            ExitCode::from(EXIT_TROUBLE)
        }
        (Ok(()), Err(_)) => {
            log::error!("the report thread panicked; some exchanges were not reported");
            ExitCode::from(EXIT_TROUBLE)
        }
        (Ok(()), Ok((_, true))) => {
            log::error!("the final report could not be written: exit status {EXIT_TROUBLE}");
            ExitCode::from(EXIT_TROUBLE)
        }
        (Ok(()), Ok((Verdict::Fail, _))) if config.exit_code => {
            log::info!("the candidate's verdict is FAIL: exit status 1 (--exit-code)");
            ExitCode::from(1)
        }
        (Ok(()), Ok((Verdict::Undecided, _))) if config.exit_code => {
            log::info!(
                "the candidate's verdict is UNDECIDED (too few samples to decide): exit status 3 \
                 (--exit-code)"
            );
            ExitCode::from(3)
        }
        (Ok(()), Ok(_)) => ExitCode::SUCCESS,
    }
}
