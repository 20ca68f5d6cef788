//! The mio event loop (stub, being written).

use std::io;
use std::net::SocketAddr;

use crate::cli::Config;
use crate::report::ReportSender;
use crate::targets::Targets;

/// A bound, not yet running proxy.
pub struct Proxy {
    _private: (),
}

/// Asks a running proxy, from any thread, to reload its targets or to stop.
#[derive(Clone)]
pub struct Control {
    _private: (),
}

impl Proxy {
    /// Binds the listener (`config.listen`, port 0 allowed) and prepares the reactor.
    /// The targets file (if `config.targets` names one) is what SIGHUP re-reads.
    pub fn bind(config: &Config, targets: Targets) -> io::Result<Proxy> {
        let _ = (config, targets);
        todo!()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// SIGHUP reloads, SIGTERM/SIGINT drain and stop.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        todo!()
    }

    /// A handle to reload or stop the proxy from another thread.
    pub fn control(&self) -> Control {
        todo!()
    }

    /// Runs until stopped; finished exchanges go to `report`. Returns after draining.
    pub fn run(self, report: ReportSender) -> io::Result<()> {
        let _ = report;
        todo!()
    }
}

impl Control {
    /// Re-read the targets file, as SIGHUP does.
    pub fn reload(&self) {}

    /// Stop accepting, finish in-flight exchanges, return from `run`, as SIGTERM does.
    pub fn shutdown(&self) {}
}
