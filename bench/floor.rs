//! `floor`: a benchmark yardstick, not a proxy.
//!
//! It exists to measure the cost floor, on the bench machine, of any three-leg HTTP fan-out:
//! per keep-alive request it does one read from the client, one write to each of the three
//! upstreams, one read of each response, one write to the client, and epoll_wait, with no
//! allocation and no epoll_ctl in steady state. Whatever trident costs above this is the
//! price of what a real proxy must do and `floor` skips on purpose: request framing checks
//! and bodies, timeouts, pooling and retries, comparison of the three responses, reporting,
//! logging. It takes trident's command line so `bench/run.py` can drive it:
//!
//! ```text
//! floor --listen 127.0.0.1:PORT --primary http://IP:P1 --secondary http://IP:P2 \
//!       --candidate http://IP:P3
//! ```
//!
//! Requests are assumed to be body-less GETs without pipelining (what wrk sends); responses
//! must carry Content-Length. Anything else, and any error or EOF, closes the client with
//! its three upstream connections.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const CLIENT_BUF: usize = 8 * 1024;
const LEG_BUF: usize = 16 * 1024;

/// The one failure there is: close the client and its legs.
struct Close;

impl From<io::Error> for Close {
    fn from(_: io::Error) -> Self {
        Close
    }
}

/// One upstream connection and the response being read from it.
struct Leg {
    sock: TcpStream,
    buf: Box<[u8]>,
    len: usize,   // bytes held in buf
    fwd: usize,   // bytes of buf already passed on (primary: written to the client)
    sent: usize,  // bytes of the current request written
    got: usize,   // bytes of the current response read
    total: usize, // head + Content-Length once the head is parsed, 0 before
    readable: bool,
    writable: bool,
}

struct Conn {
    client: TcpStream,
    buf: Box<[u8]>,
    len: usize,
    req: usize, // length of the request in flight, 0 when idle
    readable: bool,
    writable: bool,
    legs: [Leg; 3],
}

/// Bytes one read or write moved. A short transfer means the socket is drained (or its send
/// buffer full), so the flag drops without a WouldBlock round trip: edge-triggered epoll
/// reports the next change. No signal handlers are installed, so no EINTR either.
fn moved(r: io::Result<usize>, want: usize, ready: &mut bool) -> Result<usize, Close> {
    match r {
        Ok(0) => Err(Close), // EOF (callers never pass an empty buffer)
        Ok(n) => {
            *ready = n == want;
            Ok(n)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            *ready = false;
            Ok(0)
        }
        Err(_) => Err(Close),
    }
}

/// Head length + Content-Length of a complete response head, None if the head is partial.
fn response_len(buf: &[u8]) -> Result<Option<usize>, Close> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Close),
    };
    let mut body = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Close);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| Close)?;
            body = Some(v.trim().parse::<usize>().map_err(|_| Close)?);
        }
    }
    body.and_then(|b| head.checked_add(b))
        .map(Some)
        .ok_or(Close)
}

impl Leg {
    fn done(&self) -> bool {
        self.total != 0 && self.got == self.total
    }

    /// Reads more of the response into buf; returns the bytes read (0: nothing now).
    fn pump(&mut self) -> Result<usize, Close> {
        if self.total != 0 && self.fwd == self.len {
            (self.len, self.fwd) = (0, 0);
        }
        if self.len == self.buf.len() {
            // Full: a head too big for the buffer, or the client is slow to take the primary's.
            return if self.total == 0 { Err(Close) } else { Ok(0) };
        }
        let space = &mut self.buf[self.len..];
        let n = moved(self.sock.read(space), space.len(), &mut self.readable)?;
        self.len += n;
        self.got += n;
        if self.total == 0 && n > 0 {
            self.total = response_len(&self.buf[..self.len])?.unwrap_or(0);
        }
        if self.total != 0 && self.got > self.total {
            return Err(Close);
        }
        Ok(n)
    }
}

/// Makes every step the connection's flags allow, until none is left.
fn drive(c: &mut Conn) -> Result<(), Close> {
    loop {
        if c.req == 0 {
            match c.buf[..c.len].windows(4).position(|w| w == b"\r\n\r\n") {
                Some(p) => {
                    c.req = p + 4;
                    for leg in &mut c.legs {
                        (leg.len, leg.fwd, leg.sent, leg.got, leg.total) = (0, 0, 0, 0, 0);
                    }
                }
                None if c.len == c.buf.len() => return Err(Close),
                None if c.readable => {
                    let space = &mut c.buf[c.len..];
                    c.len += moved(c.client.read(space), space.len(), &mut c.readable)?;
                    continue;
                }
                None => return Ok(()),
            }
        }
        for leg in &mut c.legs {
            if leg.sent < c.req && leg.writable {
                let req = &c.buf[leg.sent..c.req];
                leg.sent += moved(leg.sock.write(req), req.len(), &mut leg.writable)?;
            }
        }
        for (i, leg) in c.legs.iter_mut().enumerate() {
            loop {
                if i == 0 && leg.fwd < leg.len && c.writable {
                    let out = &leg.buf[leg.fwd..leg.len];
                    leg.fwd += moved(c.client.write(out), out.len(), &mut c.writable)?;
                }
                if !leg.readable || leg.sent < c.req || leg.done() {
                    break;
                }
                let n = leg.pump()?;
                if i != 0 {
                    leg.fwd = leg.len; // the shadows' bytes are only counted
                }
                if n == 0 {
                    break;
                }
            }
        }
        if !c.legs.iter().all(Leg::done) || c.legs[0].fwd < c.legs[0].len {
            return Ok(());
        }
        c.buf.copy_within(c.req..c.len, 0);
        c.len -= c.req;
        c.req = 0;
    }
}

fn open(
    client: TcpStream,
    ups: &[SocketAddr; 3],
    poll: &Poll,
    conns: &mut Slab<Conn>,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let leg = |addr: SocketAddr| -> io::Result<Leg> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        let buf = vec![0; LEG_BUF].into_boxed_slice();
        Ok(Leg {
            sock,
            buf,
            len: 0,
            fwd: 0,
            sent: 0,
            got: 0,
            total: 0,
            readable: false,
            writable: false,
        })
    };
    let legs = [leg(ups[0])?, leg(ups[1])?, leg(ups[2])?];
    let buf = vec![0; CLIENT_BUF].into_boxed_slice();
    let mut c = Conn {
        client,
        buf,
        len: 0,
        req: 0,
        readable: false,
        writable: false,
        legs,
    };
    let entry = conns.vacant_entry();
    let base = entry.key() * 4;
    let both = Interest::READABLE | Interest::WRITABLE;
    poll.registry().register(&mut c.client, Token(base), both)?;
    for (i, leg) in c.legs.iter_mut().enumerate() {
        poll.registry()
            .register(&mut leg.sock, Token(base + 1 + i), both)?;
    }
    entry.insert(c);
    Ok(())
}

fn usage(msg: &str) -> ! {
    eprintln!("floor: {msg}");
    eprintln!("usage: floor --listen IP:PORT --primary http://IP:PORT --secondary http://IP:PORT --candidate http://IP:PORT");
    std::process::exit(2);
}

fn parse_args() -> (SocketAddr, [SocketAddr; 3]) {
    let mut found: [Option<SocketAddr>; 4] = [None; 4];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--listen" => 0,
            "--primary" => 1,
            "--secondary" => 2,
            "--candidate" => 3,
            _ => usage(&format!("unknown argument {flag:?}")),
        };
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let addr = if slot == 0 {
            Some(value.as_str())
        } else {
            value.strip_prefix("http://")
        };
        let addr = addr
            .map(|a| a.strip_suffix('/').unwrap_or(a))
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            usage(&format!(
                "{flag} {value:?}: expected {}IP:PORT",
                if slot == 0 { "" } else { "http://" }
            ))
        };
        if found[slot].replace(addr).is_some() {
            usage(&format!("{flag} given twice"));
        }
    }
    match found {
        [Some(l), Some(p), Some(s), Some(c)] => (l, [p, s, c]),
        _ => usage("--listen, --primary, --secondary and --candidate are all required"),
    }
}

fn main() -> io::Result<()> {
    let (listen, ups) = parse_args();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(256);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = open(client, &ups, &poll, &mut conns);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                        Err(_) => break, // WouldBlock, or out of fds: wait for the next edge
                    }
                }
                continue;
            }
            let (key, part) = (ev.token().0 / 4, ev.token().0 % 4);
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            if ev.is_error() {
                conns.remove(key);
                continue;
            }
            let (r, w) = match part {
                0 => (&mut c.readable, &mut c.writable),
                n => (&mut c.legs[n - 1].readable, &mut c.legs[n - 1].writable),
            };
            *r |= ev.is_readable() || ev.is_read_closed();
            *w |= ev.is_writable() || ev.is_write_closed();
            if drive(c).is_err() {
                conns.remove(key);
            }
        }
    }
}
