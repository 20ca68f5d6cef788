//! One client connection: reading and framing requests, handing each to an exchange, and
//! writing back what the primary answers. Requests on a connection are served one after
//! another, so pipelined requests are answered in order; the bytes of the next request wait
//! in the input buffer (or the kernel) meanwhile.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

use crate::buffer::{Buffer, ReadOutcome};
use crate::exchange::{ClientResponse, REQUEST_BUFFER_CAP};
use crate::failure::LegError;
use crate::http::{self, Connection, Framing, Version};
use crate::reactor::{Conn, Core};
use crate::timer::{Alarm, Deadline, Timers};
use crate::transport::{NotTls, Transport};

/// Bytes read from a client socket per read call (and the buffer's growth step).
pub const READ_STEP: usize = 16 * 1024;
/// Response bytes trident holds for a client before it stops reading the primary: a client
/// that reads slowly slows the primary's relay, never grows trident's memory.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// Where a client connection is in its request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPhase {
    /// Waiting for a request head; `head_started` once its first byte arrived.
    Idle { head_started: Option<Instant> },
    /// Exchange `exchange` (slab key) carries the current request.
    Busy { exchange: usize },
    /// Sending what is left in the output buffer, then closing.
    Closing,
    /// All sent and the sending side shut: reading what the client still sends, until it
    /// closes or `LINGER` passes (RFC 9112 §9.6), or, while the kernel still holds some of
    /// the answer, until the client has taken none of it for `--send-timeout` (`taken_at`:
    /// the last time it had). Closed at once with unread input, the socket would answer
    /// with a reset, and the client's kernel would drop the end of the response it had not
    /// read yet.
    Lingering { discarded: usize, taken_at: Instant },
    /// Marked for closing at the end of this loop iteration; ignore its events.
    Closed,
}

/// The longest a closed client is read from, after its response, before its socket is closed.
const LINGER: Duration = Duration::from_secs(2);
/// How often a lingering client is looked at: as often as output waiting for it is
/// (`SEND_LOOKS`), and at most `LINGER` apart. Every `LINGER` alone, one that took nothing was
/// kept up to 4 × a 1 s `--send-timeout` (hunt 85).
fn linger_look(send_timeout: Duration) -> Duration {
    LINGER.min(send_timeout / SEND_LOOKS)
}

/// How many times per `--send-timeout` a client's output that waits is looked at. The kernel
/// takes the first bytes after a write into the client's receive window even when it reads
/// nothing, so a look only once per `--send-timeout` saw that as reading, and dropped a
/// stalled client after up to twice it (hunt 79: 3.6 s for 2 s); now, after 1.25 × at most.
const SEND_LOOKS: u32 = 4;
/// The most a lingering client may send before the close is made regardless: a client that
/// keeps streaming has no use for an orderly end.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// A client connection.
#[derive(Debug)]
pub struct Client {
    /// Unique over the process lifetime (slab keys are reused).
    pub serial: u64,
    pub stream: Transport,
    pub peer: SocketAddr,
    /// Readiness seen and not yet used up (edge-triggered: cleared on `WouldBlock`).
    pub readable: bool,
    pub writable: bool,
    /// The client shut down its sending side.
    pub eof: bool,
    /// An event reported the peer's close (or an error): read until EOF, whatever the
    /// size of the reads.
    pub hup: bool,
    /// An event reported a reset (or both directions closed): the client is gone, even if
    /// trident has nothing to write to it yet. A half-close (`eof`) is not this: a client
    /// may shut its sending side and still wait for its answer.
    pub reset: bool,
    /// Request bytes read and not yet framed.
    pub input: Buffer,
    /// How much of `input` was already searched for the end of a head: a client trickling
    /// a head byte by byte must not make trident re-parse it from the start each time.
    pub head_scanned: usize,
    /// Response bytes not yet written; `out[out_pos..]` is pending.
    pub out: Vec<u8>,
    pub out_pos: usize,
    pub phase: ClientPhase,
    /// The idle or head deadline of the current phase (none while busy).
    pub alarm: Alarm,
    /// The send deadline, while output waits for a client that does not read.
    pub send_alarm: Alarm,
    /// Request body bytes received when the client's deadline was last set for the rest of
    /// an upload whose answer is already out (`detach_if_done`).
    pub upload_mark: Option<u64>,
    /// The socket's unacknowledged bytes when the send deadline was set or last looked: if
    /// fewer wait when it fires, the client has been reading what the kernel holds.
    pub unacknowledged: Option<u32>,
    /// When the client was last seen taking output (trident wrote to it, or the kernel's
    /// send buffer for it shrank): `--send-timeout` counts from here.
    pub took_output_at: Instant,
    /// The exchange (key, id) whose answer's end still waits in `out`: its record waits for
    /// it to go out, so that a client dropped before then is marked as having left.
    pub answering: Option<(usize, u64)>,
    /// Close once the current response is out (client asked, HTTP/1.0, error, shutdown).
    pub close_after: bool,
    /// The response was cut short where its framing cannot show it (a body delimited by the
    /// close, to an HTTP/1.0 client): the connection is reset, not closed, so the client
    /// sees an error and not a complete message.
    pub cut_short: bool,
}

impl Client {
    pub fn new(serial: u64, stream: Transport, peer: SocketAddr) -> Client {
        Client {
            serial,
            stream,
            peer,
            readable: false,
            writable: false,
            eof: false,
            hup: false,
            reset: false,
            input: Buffer::new(),
            head_scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            phase: ClientPhase::Idle { head_started: None },
            alarm: Alarm::default(),
            send_alarm: Alarm::default(),
            upload_mark: None,
            unacknowledged: None,
            took_output_at: Instant::now(),
            answering: None,
            close_after: false,
            cut_short: false,
        }
    }

    /// Starts (or moves) the keep-alive idle deadline: the connection has no request now.
    pub(crate) fn arm_idle(&mut self, key: usize, timers: &mut Timers, idle_timeout: Duration) {
        let deadline = Deadline::Client {
            conn: key,
            serial: self.serial,
        };
        timers.set_alarm(&mut self.alarm, Instant::now() + idle_timeout, deadline);
    }

    /// Response bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Nothing at all waits to be sent (neither response bytes nor TLS bytes).
    pub fn all_sent(&self) -> bool {
        self.pending_output() == 0 && !self.stream.wants_write()
    }

    /// Answer bytes have not all gone out: in `out`, or sealed in the TLS session.
    pub fn owes_output(&self) -> bool {
        self.pending_output() > 0 || self.stream.owes_data()
    }

    /// There is room to relay more of the primary's response.
    pub fn has_output_room(&self) -> bool {
        self.pending_output() < OUTPUT_CAP
    }

    /// Writes pending output until done or `WouldBlock`; true if the socket took any.
    /// Err: the client is gone.
    fn flush(&mut self) -> io::Result<bool> {
        let (out_pos, tls_sent) = (self.out_pos, self.stream.tls_bytes_sent());
        while self.out_pos < self.out.len() && self.writable {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    if self.out_pos < self.out.len() && self.stream.is_plain() {
                        // A short write means the socket buffer is full.
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.writable && self.stream.wants_write() {
            // TLS bytes left behind by an earlier full socket (or the handshake).
            match self.stream.send_pending() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                other => other?,
            }
        }
        let moved = self.out_pos > out_pos || self.stream.tls_bytes_sent() != tls_sent;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= OUTPUT_CAP {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(moved)
    }

    /// Reads more request bytes. `Ok(false)`: nothing more for now.
    pub(crate) fn fill(&mut self, limit: usize) -> io::Result<bool> {
        if !self.readable || self.eof {
            return Ok(false);
        }
        match self.input.read_from(&mut self.stream, READ_STEP, limit)? {
            ReadOutcome::Data { drained } => {
                // A short read emptied the socket; but a close reported with the data
                // comes with no further event, so it must still be read.
                if drained && !self.hup && self.stream.is_plain() {
                    self.readable = false;
                }
                Ok(true)
            }
            ReadOutcome::Eof => {
                self.eof = true;
                self.readable = false;
                Ok(false)
            }
            ReadOutcome::WouldBlock => {
                self.readable = false;
                Ok(false)
            }
            ReadOutcome::Full => Ok(false),
        }
    }
}

/// The answer to plain HTTP sent to the TLS listener (`NotTls`), as nginx gives one: a TLS
/// alert would reach the client as 7 bytes it cannot read.
const PLAIN_HTTP_TO_TLS: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Content-Length: 62\r\nConnection: close\r\n\r\n\
trident: this port speaks TLS: send the request with https://\n";

/// The buffer grew past `limit` with the last read.
fn crosses(before: usize, now: usize, limit: usize) -> bool {
    before <= limit && now > limit
}

/// What the client is told about the connection, from its version and wishes.
pub fn connection_field(version: Version, keep_alive: bool) -> Connection {
    match (version, keep_alive) {
        (_, false) => Connection::Close,
        (Version::Http10, true) => Connection::KeepAlive,
        (Version::Http11, true) => Connection::Default,
    }
}

/// Appends a complete short plain-text response made by trident itself; to a HEAD request
/// (`head_only`), its head alone: a body there would be read as the next response's start.
pub fn write_own_response(
    status: u16,
    text: &str,
    version: Version,
    keep_alive: bool,
    head_only: bool,
    out: &mut Vec<u8>,
) {
    let fields = b"Content-Type: text/plain; charset=utf-8\r\n";
    let body_len = text.len() + 1;
    http::write_response_head(
        status,
        reason_phrase(status),
        fields,
        Framing::Length(body_len as u64),
        connection_field(version, keep_alive),
        out,
    );
    if !head_only {
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
    }
}

/// The reason phrase for the statuses trident sends itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

impl Core {
    /// Runs client `key` as far as it can go: flush output, read and frame the next request,
    /// push the current exchange forward, move to the next request when it is done.
    pub(crate) fn drive_client(&mut self, key: usize) {
        loop {
            if !self.flush_client(key) {
                return;
            }
            let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
                return;
            };
            match client.phase {
                ClientPhase::Closed => return,
                ClientPhase::Closing => {
                    if client.all_sent() {
                        self.close_when_read(key);
                    }
                    return;
                }
                ClientPhase::Lingering { .. } => {
                    self.linger(key);
                    return;
                }
                ClientPhase::Busy { exchange } => {
                    if client.reset {
                        // Found gone now, not at the next write: its exchange's block says
                        // the client left, and its primary leg is read as an orphan's.
                        debug!("client {}: reset while awaiting its answer", client.peer);
                        self.client_gone(key);
                        return;
                    }
                    self.drive_exchange(exchange);
                    if !self.detach_if_done(key, exchange) {
                        return;
                    }
                }
                ClientPhase::Idle { head_started } => {
                    if !self.read_request_head(key, head_started) {
                        return;
                    }
                }
            }
        }
    }

    /// Idle phase: parse a head from the input, reading as needed. True when the phase changed.
    fn read_request_head(&mut self, key: usize, head_started: Option<Instant>) -> bool {
        let limits = self.settings.limits;
        let draining = self.draining;
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return false;
        };
        loop {
            // Draining, a client with nothing to read is let go; one whose request came
            // before the shutdown (read here first: its readiness may not have been seen
            // yet) is served.
            if client.input.is_empty() && draining && !client.readable {
                if client.all_sent() {
                    self.close_idle(key);
                    return false;
                }
                // An answer still going out is not cut by the shutdown.
                client.phase = ClientPhase::Closing;
                return true;
            }
            if !client.input.is_empty() && head_started.is_none() {
                // A deadline from the first byte, which trickling bytes cannot extend
                // (slowloris).
                let now = Instant::now();
                client.phase = ClientPhase::Idle {
                    head_started: Some(now),
                };
                let deadline = Deadline::Client {
                    conn: key,
                    serial: client.serial,
                };
                self.timers.set_alarm(
                    &mut client.alarm,
                    now + self.settings.head_timeout,
                    deadline,
                );
                return true;
            }
            let data = client.input.data();
            // The first read of a head is parsed at once: it holds all of it, nearly always.
            // Nothing read is nothing to parse (an idle client's every turn).
            let worth_parsing = !data.is_empty()
                && (client.head_scanned == 0
                    || http::may_complete_head(data, client.head_scanned)
                    || crosses(client.head_scanned, data.len(), limits.max_request_line)
                    || data.len() > limits.max_head);
            client.head_scanned = data.len();
            if worth_parsing {
                match http::parse_request_head(data, &limits) {
                    Ok(Some(head)) => {
                        client.input.consume(head.head_len);
                        self.spares.reclaim(&mut client.input);
                        client.head_scanned = 0;
                        if head.method == "CONNECT" {
                            // A tunnel cannot be multicast (RFC 9110 §9.3.6).
                            self.reject_request(key, 405, "CONNECT is not supported");
                            return true;
                        }
                        self.start_exchange(key, head);
                        return true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        debug!("client {}: bad request: {e}", client.peer);
                        let status = e.status();
                        let text = format!("trident: bad request: {e}");
                        self.reject_request(key, status, &text);
                        return true;
                    }
                }
            }
            if !client.readable || client.eof {
                if client.eof {
                    // Closed between requests (or mid-head: nothing to answer); what is
                    // still owed to it goes out first.
                    client.phase = ClientPhase::Closing;
                    return true;
                }
                return false;
            }
            // Reading past the head limit makes the parser report the overflow.
            self.spares.lend(&mut client.input);
            match client.fill(limits.max_head + 1) {
                Ok(true) => continue,
                Ok(false) => {
                    // Nothing came: an idle connection keeps no buffer.
                    self.spares.reclaim(&mut client.input);
                    if client.eof {
                        // Closed between requests (or mid-head: nothing to answer); what
                        // is still owed to it goes out first.
                        client.phase = ClientPhase::Closing;
                        return true;
                    }
                    if draining && !client.readable {
                        // Nothing to read: let go, above.
                        continue;
                    }
                    return false;
                }
                Err(e) => {
                    debug!("client {}: read failed: {e}", client.peer);
                    if NotTls::is(&e) {
                        client.stream.write_plain(PLAIN_HTTP_TO_TLS);
                    }
                    self.close_conn(key);
                    return false;
                }
            }
        }
    }

    /// Answers a request trident will not forward, then closes the connection.
    pub(crate) fn reject_request(&mut self, key: usize, status: u16, text: &str) {
        if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
            // The method is not known (or not trusted): no HEAD exception, and the connection
            // closes after it, so nothing could be read as a next response.
            write_own_response(status, text, Version::Http11, false, false, &mut client.out);
            client.phase = ClientPhase::Closing;
            client.input.clear();
        }
    }

    /// When exchange `exchange` no longer needs client `key` (request read, response queued),
    /// move the client on. True when it moved on.
    fn detach_if_done(&mut self, key: usize, exchange: usize) -> bool {
        let Some(ex) = self.exchanges.get_mut(exchange) else {
            return false;
        };
        let response_done = matches!(ex.response, ClientResponse::Done);
        if !(response_done && ex.request.is_done()) {
            if !ex.request.is_done() {
                // The client has `--send-timeout` for each piece of its upload, as it has for
                // its output: once the answer is out no leg's deadline may be left to bound
                // it, and before, a stalled client is its own trouble, not the upstreams'.
                // But not while trident itself stops reading it: the upload buffer is full
                // because a leg (the primary) takes nothing, and that wait is the leg's,
                // bounded by its own deadline.
                let received = ex.request.body_bytes;
                let reading = ex.request.buf.len() < REQUEST_BUFFER_CAP;
                if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
                    if !reading {
                        client.upload_mark = None;
                        client.alarm.clear();
                    } else if client.upload_mark != Some(received) {
                        client.upload_mark = Some(received);
                        let deadline = Deadline::Client {
                            conn: key,
                            serial: client.serial,
                        };
                        let at = Instant::now() + self.settings.send_timeout;
                        self.timers.set_alarm(&mut client.alarm, at, deadline);
                    }
                }
            } else if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
                // The upload is whole: what is left is the legs' time. Left set, the alarm
                // answered a slow primary's exchange with the client's 408 (hunt 74).
                if client.upload_mark.take().is_some() {
                    client.alarm.clear();
                }
            }
            return false;
        }
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return false;
        };
        if client.phase != (ClientPhase::Busy { exchange }) {
            return false;
        }
        ex.client = None;
        // The answer is all queued, not all out: its record waits for it (`release_answer`).
        // A pipelined answer queued behind it lets the earlier one go unmarked.
        let earlier = if client.all_sent() {
            None
        } else {
            ex.awaiting_flush = true;
            client.answering.replace((exchange, ex.id))
        };
        if client.close_after || self.draining {
            client.phase = ClientPhase::Closing;
        } else {
            client.phase = ClientPhase::Idle { head_started: None };
            self.spares.reclaim(&mut client.input);
            if client.pending_output() == 0 {
                // An idle keep-alive connection should cost its struct, not a response's
                // worth of capacity: the storage goes back for the next exchange to use.
                self.scratch.give(std::mem::take(&mut client.out));
                client.out_pos = 0;
            }
            // With the answer still to go out, the idle time starts when it has
            // (`flush_client`), not now.
            if client.answering.is_none() {
                client.arm_idle(key, &mut self.timers, self.settings.idle_timeout);
            }
        }
        if let Some(earlier) = earlier {
            self.release_answer(earlier, false);
        }
        self.finish_exchange_if_done(exchange);
        true
    }

    /// The answer of exchange `(key, id)` is out of the client's output (or never will be,
    /// `left`): its record may go.
    pub(crate) fn release_answer(&mut self, (key, id): (usize, u64), left: bool) {
        if let Some(ex) = self.exchanges.get_mut(key).filter(|ex| ex.id == id) {
            ex.awaiting_flush = false;
            ex.client_left |= left;
            self.finish_exchange_if_done(key);
        }
    }

    /// Closes client `key`, whose response is all sent: at once if nothing more can come
    /// from it (it closed, or the close is to be a reset), else after shutting the sending
    /// side and reading what the client still sends (`ClientPhase::Lingering`).
    fn close_when_read(&mut self, key: usize) {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return;
        };
        if client.eof || client.cut_short {
            self.close_conn(key);
            return;
        }
        client.stream.close_notify();
        if let Err(e) = client.stream.tcp().shutdown(std::net::Shutdown::Write) {
            debug!("client {}: shutdown: {e}", client.peer);
            self.close_conn(key);
            return;
        }
        client.input.clear();
        let now = Instant::now();
        client.phase = ClientPhase::Lingering {
            discarded: 0,
            taken_at: now,
        };
        // What the kernel still holds for the client (the end of an answer just written, as
        // a rule): read again at the deadline (`client_deadline`).
        client.unacknowledged = client.stream.unacknowledged();
        let deadline = Deadline::Client {
            conn: key,
            serial: client.serial,
        };
        let look = linger_look(self.settings.send_timeout);
        self.timers
            .set_alarm(&mut client.alarm, now + look, deadline);
        self.linger(key);
    }

    /// Closes idle client `key` (its idle time is up, or trident is shutting down): at once,
    /// unless the kernel still holds the end of its last answer. A request the client has
    /// pipelined behind that answer would then meet a closed socket, whose reset drops what
    /// the client had not yet received: it lingers instead, for as long as it takes more.
    pub(crate) fn close_idle(&mut self, key: usize) {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return;
        };
        // Mid-handshake, the client's next records would meet a closed socket too.
        if client.stream.mid_handshake()
            || client.stream.unacknowledged().is_some_and(|left| left > 0)
        {
            self.close_when_read(key);
        } else {
            self.close_conn(key);
        }
    }

    /// Reads and drops what a lingering client sends; closes it at its end of the stream, an
    /// error, or past `LINGER_MAX_BYTES`.
    fn linger(&mut self, key: usize) {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return;
        };
        let ClientPhase::Lingering { discarded, .. } = &mut client.phase else {
            return;
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if *discarded > LINGER_MAX_BYTES {
                // It sends without end. While the kernel still hands it its answer's end, what
                // it sends is left unread (a close now would be a reset that drops that end):
                // the linger's deadline closes it once it takes no more.
                if client.stream.unacknowledged().is_some_and(|left| left > 0) {
                    return;
                }
                break;
            }
            if !client.readable && !client.hup {
                return;
            }
            // The raw socket: after close_notify nothing the client sends is read as TLS.
            match client.stream.tcp_mut().read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => *discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    client.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.close_conn(key);
    }

    /// The client's socket failed or it went away: release its exchange and close.
    pub(crate) fn client_gone(&mut self, key: usize) {
        if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
            if let ClientPhase::Busy { exchange } = client.phase {
                // An answer let go of part-way whose body ends at the close: a reset says it
                // is cut, where a FIN would pass for its end (hunt 87: an early answer still
                // coming when its client half-closed or stalled mid-upload).
                let streaming = self.exchanges.get(exchange).map(|ex| ex.response);
                if streaming == Some(ClientResponse::Streaming(Framing::Close)) {
                    client.cut_short = true;
                }
                self.abandon_client(exchange);
            }
        }
        self.close_conn(key);
    }

    /// Flushes client `key`'s output without driving anything else, and keeps its send
    /// deadline: output that waits with no byte taken for `--send-timeout` drops the client.
    /// False when the client is gone.
    pub(crate) fn flush_client(&mut self, key: usize) -> bool {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return false;
        };
        if client.all_sent() && !client.send_alarm.is_set() {
            // Nothing to write and no deadline to clear: the common call, a round after the
            // response went out.
            return true;
        }
        let moved = match client.flush() {
            Ok(moved) => moved,
            Err(e) => {
                debug!("client {}: write failed: {e}", client.peer);
                self.client_gone(key);
                return false;
            }
        };
        if client.all_sent() {
            client.send_alarm.clear();
            if let Some(answer) = client.answering.take() {
                // The last answer has left trident: the idle time counts from now.
                if client.phase == (ClientPhase::Idle { head_started: None }) {
                    client.arm_idle(key, &mut self.timers, self.settings.idle_timeout);
                }
                self.release_answer(answer, false);
            }
        } else if moved || !client.send_alarm.is_set() {
            // Progress (or the first wait) restarts the send deadline. What waits may be TLS
            // bytes alone (the response all in the session): they count as output too.
            client.unacknowledged = client.stream.unacknowledged();
            let now = Instant::now();
            client.took_output_at = now;
            let deadline = Deadline::ClientSend {
                conn: key,
                serial: client.serial,
            };
            let next = now + self.settings.send_timeout / SEND_LOOKS;
            self.timers
                .set_alarm(&mut client.send_alarm, next, deadline);
        }
        true
    }

    /// A client's send deadline fired: a look at whether it took any of its pending output,
    /// and once it has taken none for `--send-timeout`, it is dropped.
    pub(crate) fn client_send_deadline(&mut self, key: usize, serial: u64) {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return;
        };
        let deadline = Deadline::ClientSend { conn: key, serial };
        let now = Instant::now();
        if client.serial == serial
            && self
                .timers
                .fire_alarm(&mut client.send_alarm, now, deadline)
            && !client.all_sent()
        {
            // trident wrote nothing since, but the kernel's send buffer may have: a client
            // reading steadily from megabytes of it is not stalled.
            let unacknowledged = client.stream.unacknowledged();
            let reading = matches!(
                (unacknowledged, client.unacknowledged),
                (Some(left), Some(before)) if left < before
            );
            if reading {
                client.took_output_at = now;
            }
            client.unacknowledged = unacknowledged;
            let until = client.took_output_at + self.settings.send_timeout;
            if now < until {
                let next = (now + self.settings.send_timeout / SEND_LOOKS).min(until);
                self.timers
                    .set_alarm(&mut client.send_alarm, next, deadline);
                return;
            }
            debug!("client {}: not reading its response, dropped", client.peer);
            self.client_gone(key);
        }
    }

    /// A client deadline fired: a head that took too long gets 408, an idle connection closes.
    pub(crate) fn client_deadline(&mut self, key: usize, serial: u64) {
        let Some(Conn::Client(client)) = self.conns.get_mut(key) else {
            return;
        };
        let deadline = Deadline::Client { conn: key, serial };
        if client.serial != serial
            || !self
                .timers
                .fire_alarm(&mut client.alarm, Instant::now(), deadline)
        {
            return;
        }
        match client.phase {
            ClientPhase::Idle {
                head_started: Some(_),
            } => {
                debug!("client {}: request head deadline", client.peer);
                self.reject_request(key, 408, "trident: request head not received in time");
                self.drive_client(key);
            }
            ClientPhase::Idle { head_started: None } => {
                debug!("client {}: idle timeout", client.peer);
                self.close_idle(key);
            }
            ClientPhase::Lingering {
                ref mut taken_at, ..
            } => {
                // Still taking the end of its answer from the kernel's send buffer: closed,
                // a request it sends would be met by a reset that drops the rest. It has
                // `--send-timeout` to take some more, as while it is answered (the kernel
                // hands a slow reader its answer in steps of tens of KB), looked at as often.
                // Once it has taken the rest, it has `LINGER` to read it and close: a reset
                // would drop what it has not read, and a connection pool that keeps its end
                // open would otherwise hold the place (or the exit) until its deadline.
                let now = Instant::now();
                let left = client.stream.unacknowledged().unwrap_or(0);
                if client.unacknowledged.is_some_and(|before| left < before) {
                    *taken_at = now;
                }
                client.unacknowledged = Some(left);
                let waited = now.saturating_duration_since(*taken_at);
                let over = if left > 0 {
                    waited >= self.settings.send_timeout
                } else {
                    waited >= LINGER
                };
                if !over {
                    let next = now + linger_look(self.settings.send_timeout);
                    self.timers.set_alarm(&mut client.alarm, next, deadline);
                    return;
                }
                self.close_conn(key);
            }
            // Set while its upload is unfinished (`detach_if_done`).
            ClientPhase::Busy { exchange } => {
                let Some(ex) = self
                    .exchanges
                    .get(exchange)
                    .filter(|ex| !ex.request.is_done())
                else {
                    return;
                };
                let streaming = matches!(ex.response, ClientResponse::Streaming(_));
                let answered = ex.response == ClientResponse::Done;
                debug!(
                    "client {}: sent none of the rest of its upload for --send-timeout",
                    client.peer
                );
                let error = LegError::ClientStalled(self.settings.send_timeout);
                if streaming {
                    // Its answer is on its way without the upload (an early one): the legs
                    // still waiting for the rest read that the client stalled, and the client
                    // takes its answer, then is let go of here `--send-timeout` on. Nothing
                    // looked again, and it held its place for good (hunt 87).
                    self.abort_request(exchange, error);
                    if let Some(Conn::Client(client)) = self.conns.get_mut(key) {
                        let at = Instant::now() + self.settings.send_timeout;
                        self.timers.set_alarm(&mut client.alarm, at, deadline);
                    }
                } else if answered {
                    // The shadows still waiting on the upload read that the client stalled,
                    // as they do when it has no answer yet, not that it closed.
                    self.abort_request(exchange, error);
                    self.client_gone(key);
                } else {
                    self.abort_request(exchange, error);
                    // The client has its 408 and is let go of: the exchange is over now, not
                    // at its legs' deadlines.
                    self.finish_exchange_if_done(exchange);
                    self.drive_client(key);
                }
            }
            _ => {}
        }
    }
}
