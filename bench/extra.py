#!/usr/bin/env python3
"""trident-only benchmark scenarios that the shared yardstick (../shared/bench/run.py) lacks.

    python3 bench/extra.py [TRIDENT] [--duration S] [--out FILE] [--only a,b]

Scenarios (each starts its own processes on 127.0.0.1 free ports and stops them):
  stalled     primary throughput with the candidate stalled (accepts, never answers)
              against the healthy run, and trident's RSS over the stalled run
  bodies      keep-alive throughput, CPU and peak RSS with 100 B, 16 KiB and 1 MiB bodies,
              and RSS after a 3 s lull (freed memory handed back)
  idle        RSS per idle keep-alive client connection (1000 and 10 000 clients)
  syscalls    system calls per keep-alive request in steady state (perf tracepoints)
  floor       trident against `floor` (bench/floor.rs, `cargo build --release --example
              floor`): the least work any three-leg fan-out can do per request, on this
              machine, under the same loads (keep-alive c16, and paced c1 for latency);
              the ratio is what trident's own work costs
  instructions  user-space instructions per request, both threads, under callgrind (exact
              and repeatable where wall-clock numbers drift), for trident and floor, and
              for trident with a 665-byte request head (a typical API client's)
  reactors    keep-alive c16 with one reactor and with `--reactors 2`, interleaved
  nice        keep-alive c16 and c256 and paced c1 at the default priority and at
              `--nice -10`, interleaved (skipped without root or CAP_SYS_NICE)
  json        JSON bodies (13 KiB and 130 KiB) that differ on every leg, as real ones do
              (a timestamp, a request id; the candidate in one field more), keep-alive c16:
              the share of exchanges the reporting thread compares, and its CPU per exchange

Needs nginx and wrk (`apt-get install -y nginx wrk`), perf for `syscalls`. Python 3
standard library only. Results go to stdout and to --out (default bench/results-extra.md,
which git ignores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import socket
import threading
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")

UPSTREAM_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    default_type text/plain;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {prefix}/www;
        location = / {{ return 200 "{small}"; }}
    }}
}}
"""


def log(msg: str) -> None:
    print(f"[extra {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Procs:
    """Every process a scenario starts, stopped by pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()


def start_upstream(procs: Procs, root: str, name: str) -> int:
    prefix = os.path.join(root, name)
    os.makedirs(os.path.join(prefix, "www"), mode=0o755, exist_ok=True)
    with open(os.path.join(prefix, "www", "16k"), "wb") as f:
        f.write(b"s" * 16384)
    with open(os.path.join(prefix, "www", "1m"), "wb") as f:
        f.write(b"m" * (1 << 20))
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(UPSTREAM_CONF.format(prefix=prefix, port=port, small="x" * 100))
    procs.start(["nginx", "-c", conf, "-p", prefix], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    wait_port(port)
    return port


def start_stalled(procs: Procs) -> tuple[int, socket.socket]:
    """A listener that never accepts: connections complete in the kernel backlog and
    never get an answer (what a hung candidate looks like from the proxy)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(65535)
    return s.getsockname()[1], s


def start_trident(procs: Procs, trident: str, ports: list[int], extra: list[str] | None = None
                  ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [trident, "--listen", f"127.0.0.1:{port}",
            "--primary", f"http://127.0.0.1:{ports[0]}",
            "--secondary", f"http://127.0.0.1:{ports[1]}",
            "--candidate", f"http://127.0.0.1:{ports[2]}"] + (extra or [])
    p = procs.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


PACED_LUA = """
-- A random 0-2 ms pause after each response: about 1k req/s on one connection.
math.randomseed(os.time())
function delay()
  return math.random(0, 2)
end
"""


def wrk(port: int, path: str, conns: int, seconds: float, script: str | None = None) -> dict:
    run = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency"]
                         + (["-s", script] if script else [])
                         + [f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 30)
    out = run.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"wrk said: {out} {run.stderr}")
    rps = float(found.group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p50_us = float(p50.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[p50.group(2)] if p50 else 0.0
    return {"rps": rps, "requests": total, "non2xx": int(errors.group(1)) if errors else 0,
            "p50_us": p50_us}


def measured(pid: int, run) -> dict:
    before = cpu_ticks(pid)
    result = run()
    result["cpu_s"] = (cpu_ticks(pid) - before) / CLK_TCK
    result["cpu_us_per_req"] = result["cpu_s"] * 1e6 / max(result["requests"], 1)
    result["hwm_mib"] = status_kib(pid, "VmHWM") / 1024
    return result


# ------------------------------------------------------------------------- scenarios

def rss_samples(pid: int, every: float, stop: threading.Event) -> list[float]:
    """VmRSS in MiB every `every` seconds until `stop` is set (run in a thread)."""
    samples = []
    while not stop.wait(every):
        samples.append(status_kib(pid, "VmRSS") / 1024)
    return samples


def scenario_stalled(trident: str, root: str, seconds: float) -> list[str]:
    # The warm-up outlasts trident's 5 s --timeout: by then the stalled candidate holds all
    # the legs its max_inflight allows, each keeping its exchange's other bodies until it
    # times out. Growth to that bound is the bound; "flat" is what comes after it.
    rows = ["| run | req/s | primary non-2xx | peak RSS MiB | RSS start→end MiB | RSS min–max during the run MiB |",
            "|---|---|---|---|---|---|"]
    results = {}
    for name in ("healthy", "stalled candidate"):
        procs = Procs()
        try:
            ports = [start_upstream(procs, root, f"s-{name[:4]}-{i}") for i in range(2)]
            if name == "healthy":
                ports.append(start_upstream(procs, root, "s-heal-2"))
                hold = None
            else:
                port, hold = start_stalled(procs)
                ports.append(port)
            tri, port = start_trident(procs, trident, ports)
            wrk(port, "/", 16, 6)  # warm-up, past the stalled legs' deadline
            start_rss = status_kib(tri.pid, "VmRSS") / 1024
            stop = threading.Event()
            sampled: list[float] = []
            sampler = threading.Thread(
                target=lambda: sampled.extend(rss_samples(tri.pid, 0.5, stop)))
            sampler.start()
            try:
                r = measured(tri.pid, lambda: wrk(port, "/", 16, seconds))
            finally:
                stop.set()
                sampler.join()
            end_rss = status_kib(tri.pid, "VmRSS") / 1024
            results[name] = r
            low, high = (min(sampled), max(sampled)) if sampled else (start_rss, end_rss)
            rows.append(f"| {name} | {r['rps']:.0f} | {r['non2xx']} | {r['hwm_mib']:.1f} | "
                        f"{start_rss:.1f} → {end_rss:.1f} | {low:.1f}–{high:.1f} |")
            if hold:
                hold.close()
        finally:
            procs.stop()
    ratio = results["stalled candidate"]["rps"] / results["healthy"]["rps"]
    rows.append("")
    rows.append(f"Primary throughput with the candidate stalled: {ratio:.2f} × the healthy run.")
    return rows


def scenario_bodies(trident: str, root: str, seconds: float) -> list[str]:
    rows = ["| body | req/s | CPU µs/req | peak RSS MiB | RSS 3 s after MiB |", "|---|---|---|---|---|"]
    procs = Procs()
    try:
        ports = [start_upstream(procs, root, f"b-{i}") for i in range(3)]
        for label, path, conns in (("100 B", "/", 16), ("16 KiB", "/16k", 16), ("1 MiB", "/1m", 4)):
            tri, port = start_trident(procs, trident, ports)
            wrk(port, path, conns, 1)
            r = measured(tri.pid, lambda: wrk(port, path, conns, seconds))
            if r["non2xx"]:
                raise RuntimeError(f"{label}: {r['non2xx']} responses were not 2xx")
            time.sleep(3)  # a lull: trident hands freed memory back after 1 s of it
            idle = status_kib(tri.pid, "VmRSS") / 1024
            rows.append(f"| {label} (c{conns}) | {r['rps']:.0f} | {r['cpu_us_per_req']:.1f} | "
                        f"{r['hwm_mib']:.1f} | {idle:.1f} |")
            tri.send_signal(signal.SIGTERM)
            tri.wait(timeout=10)
    finally:
        procs.stop()
    return rows


def scenario_idle(trident: str, root: str, _seconds: float) -> list[str]:
    rows = ["| idle clients | RSS before MiB | RSS after MiB | KiB per connection |", "|---|---|---|---|"]
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    for count in (1000, 10000):
        procs = Procs()
        clients: list[socket.socket] = []
        try:
            ports = [start_upstream(procs, root, f"i-{count}-{i}") for i in range(3)]
            tri, port = start_trident(procs, trident, ports, ["--max-clients", str(count + 100)])
            # One request warms the pools, so the delta is client connections only.
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request)
                s.recv(65536)
            time.sleep(0.2)
            before = status_kib(tri.pid, "VmRSS")
            # One client after another, each left open after its answer: what an idle
            # keep-alive connection costs (not the peak of ten thousand requests at once).
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", port))
                s.settimeout(10)
                s.sendall(request)
                got = b""
                while b"\r\n\r\n" not in got or len(got) < 100:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                clients.append(s)
            time.sleep(0.5)
            after = status_kib(tri.pid, "VmRSS")
            rows.append(f"| {count} | {before / 1024:.1f} | {after / 1024:.1f} | "
                        f"{(after - before) / count:.2f} |")
        finally:
            for s in clients:
                s.close()
            procs.stop()
    return rows


SYSCALLS = ["recvfrom", "sendto", "writev", "write", "read", "epoll_wait", "futex",
            "sched_yield", "clock_nanosleep", "accept4", "epoll_ctl"]


def scenario_syscalls(trident: str, root: str, seconds: float) -> list[str]:
    """Counts system calls with perf's tracepoints (no slowdown worth speaking of; strace
    would slow trident enough to change what it does)."""
    if not shutil.which("perf"):
        return ["perf not installed: skipped (`apt-get install -y linux-perf`)."]
    procs = Procs()
    try:
        ports = [start_upstream(procs, root, f"c-{i}") for i in range(3)]
        tri, port = start_trident(procs, trident, ports)
        wrk(port, "/", 16, 1)
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{c}" for c in SYSCALLS]
        out = os.path.join(root, "perf.csv")
        counter = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-o", out, "-p", str(tri.pid)]
            + [arg for e in events for arg in ("-e", e)],
            stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        r = wrk(port, "/", 16, seconds)
        counter.send_signal(signal.SIGINT)
        counter.wait(timeout=10)
        counts = {}
        with open(out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    counts[fields[2].split(":")[-1].replace("sys_enter_", "")] = int(fields[0])
        total = counts.pop("sys_enter", 0)
        if not total:
            return ["perf could not count system calls here (tracepoints not readable)."]
        rows = [f"{r['requests']} keep-alive requests (wrk c16, {seconds:g} s, counted with "
                f"perf tracepoints over both threads): {total / r['requests']:.2f} system calls "
                "per request.", "", "| call | per request |", "|---|---|"]
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            rows.append(f"| {name} | {n / r['requests']:.2f} |")
        rest = total - sum(counts.values())
        rows.append(f"| (others) | {rest / r['requests']:.2f} |")
        return rows
    finally:
        procs.stop()


def paced_script(root: str) -> str:
    """The wrk script of the paced loads, written into `root`; its path."""
    path = os.path.join(root, "paced.lua")
    with open(path, "w") as f:
        f.write(PACED_LUA)
    return path


def interleaved(root: str, tag: str, variants, loads, seconds: float):
    """Runs every load (name, connections, wrk script) against every variant (name, binary,
    extra flags) in 3 interleaved rounds on the same three upstreams. Returns
    median(variant, load, key) over the rounds."""
    runs: dict[tuple[str, str], list[dict]] = {}
    procs = Procs()
    try:
        ports = [start_upstream(procs, root, f"{tag}-{i}") for i in range(3)]
        for _ in range(3):
            for name, binary, extra in variants:
                proc, port = start_trident(procs, binary, ports, extra)
                wrk(port, "/", 16, 1)
                for load, conns, script in loads:
                    r = measured(proc.pid, lambda: wrk(port, "/", conns, seconds, script))
                    if r["non2xx"]:
                        raise RuntimeError(f"{name}: {r['non2xx']} responses were not 2xx")
                    runs.setdefault((name, load), []).append(r)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
    finally:
        procs.stop()

    def median(name: str, load: str, key: str) -> float:
        values = sorted(r[key] for r in runs[(name, load)])
        return values[len(values) // 2]

    return median


# How each measured key is printed in an interleaved table.
CELL_FORMAT = {"rps": ".0f", "p50_us": ".0f", "cpu_us_per_req": ".1f"}


def interleaved_table(title: str, median, names, columns) -> list[str]:
    """A markdown table of `median` (from `interleaved`): one row per variant name, one column
    per (load, key, header)."""
    rows = ["| " + " | ".join([title] + [header for _, _, header in columns]) + " |",
            "|---" * (len(columns) + 1) + "|"]
    for name in names:
        cells = [format(median(name, load, key), CELL_FORMAT[key]) for load, key, _ in columns]
        rows.append("| " + " | ".join([name] + cells) + " |")
    return rows


def median_ratio(median, name: str, base: str, load: str, key: str) -> float:
    return median(name, load, key) / max(median(base, load, key), 1e-9)


def floor_binary(trident: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(trident)), "examples", "floor")


def scenario_floor(trident: str, root: str, seconds: float) -> list[str]:
    """Interleaved runs of trident and floor against the same three upstreams; medians."""
    floor = floor_binary(trident)
    if not os.access(floor, os.X_OK):
        return [f"no floor binary at {floor}: `cargo build --release --example floor`."]
    loads = (("ka-c16", 16, None), ("paced-c1", 1, paced_script(root)))
    median = interleaved(root, "f", (("trident", trident, []), ("floor", floor, [])), loads, seconds)

    rows = interleaved_table(
        "proxy (100 B, 3 interleaved runs each, medians)", median, ("trident", "floor"),
        [("ka-c16", "rps", "ka-c16 req/s"), ("ka-c16", "cpu_us_per_req", "ka-c16 CPU µs/req"),
         ("paced-c1", "p50_us", "paced-c1 p50 µs"),
         ("paced-c1", "cpu_us_per_req", "paced-c1 CPU µs/req")])

    def ratio(load: str, key: str) -> float:
        return median_ratio(median, "trident", "floor", load, key)

    rows += ["", f"trident ÷ floor: ka-c16 CPU per request {ratio('ka-c16', 'cpu_us_per_req'):.2f}×, "
             f"req/s {ratio('ka-c16', 'rps'):.2f}×; paced-c1 p50 {ratio('paced-c1', 'p50_us'):.2f}×."]
    return rows


# The yardstick's request, and one with the head of a typical API client's (665 bytes: a
# user agent, an Accept and a dozen fields): what trident does per field shows in the second.
SMALL_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
LARGE_REQUEST = (
    b"GET /api/v1/users/12345?include=orders HTTP/1.1\r\nHost: bench\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: application/json\r\n"
    + b"".join(b"X-Header-%d: %s\r\n" % (i, b"v" * 30) for i in range(12))
    + b"\r\n"
)


def callgrind_instructions(binary: str, ports: list[int], root: str, count: int,
                           request: bytes = SMALL_REQUEST) -> float:
    """User-space instructions per keep-alive request (all threads), counted by callgrind
    between a warm-up and the end of `count` requests on 4 connections."""
    out = os.path.join(root, f"callgrind-{os.path.basename(binary)}-{len(request)}.out")
    port = free_port()
    procs = Procs()
    try:
        proc = procs.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
                            "--listen", f"127.0.0.1:{port}",
                            "--primary", f"http://127.0.0.1:{ports[0]}",
                            "--secondary", f"http://127.0.0.1:{ports[1]}",
                            "--candidate", f"http://127.0.0.1:{ports[2]}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, 60)

        def requests(n: int) -> None:
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
            for _ in range(n // len(socks)):
                for s in socks:
                    s.sendall(request)
                for s in socks:
                    got = b""
                    while not (b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= 100):
                        chunk = s.recv(65536)
                        if not chunk:
                            raise RuntimeError(f"{binary} closed the connection")
                        got += chunk
            for s in socks:
                s.close()

        requests(200)
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        requests(count)
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        time.sleep(0.5)
    finally:
        procs.stop()
    with open(out + ".1") as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1]) / count
    raise RuntimeError("callgrind wrote no summary")


def scenario_instructions(trident: str, root: str, _seconds: float) -> list[str]:
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        return ["valgrind not installed: skipped (`apt-get install -y valgrind`)."]
    count = 2000
    procs = Procs()
    rows = [f"| proxy | instructions per request ({count} keep-alive requests, 100 B) |", "|---|---|"]
    try:
        ports = [start_upstream(procs, root, f"i-{i}") for i in range(3)]
        for name, binary in (("trident", trident), ("floor", floor_binary(trident))):
            if os.access(binary, os.X_OK):
                rows.append(f"| {name} | {callgrind_instructions(binary, ports, root, count):,.0f} |")
        n = callgrind_instructions(trident, ports, root, count, LARGE_REQUEST)
        rows.append(f"| trident, {len(LARGE_REQUEST)}-byte request head | {n:,.0f} |")
    finally:
        procs.stop()
    return rows


def scenario_reactors(trident: str, root: str, seconds: float) -> list[str]:
    """Interleaved: the default single reactor and `--reactors 2`, wrk c16, same upstreams."""
    rows = ["| round | 1 reactor: req/s | CPU µs/req | 2 reactors: req/s | CPU µs/req |",
            "|---|---|---|---|---|"]
    gains = []
    procs = Procs()
    try:
        ports = [start_upstream(procs, root, f"r-{i}") for i in range(3)]
        for round_no in range(1, 4):
            cells = []
            for extra in ([], ["--reactors", "2"]):
                proc, port = start_trident(procs, trident, ports, extra)
                wrk(port, "/", 16, 1)
                cells.append(measured(proc.pid, lambda: wrk(port, "/", 16, seconds)))
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
            one, two = cells
            gains.append(two["rps"] / one["rps"])
            rows.append(f"| {round_no} | {one['rps']:.0f} | {one['cpu_us_per_req']:.1f} | "
                        f"{two['rps']:.0f} | {two['cpu_us_per_req']:.1f} |")
    finally:
        procs.stop()
    gains.sort()
    rows += ["", f"2 reactors ÷ 1: {gains[1]:.2f}× req/s (median of {len(gains)}; "
             f"{gains[0]:.2f}–{gains[-1]:.2f})."]
    return rows


def may_raise_priority() -> bool:
    """Whether this process holds CAP_SYS_NICE (bit 23 of CapEff), which a negative
    --nice needs."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 23))
    return False


def scenario_nice(trident: str, root: str, seconds: float) -> list[str]:
    """Interleaved: trident at the default priority and at `--nice -10`, same upstreams."""
    if not may_raise_priority():
        return ["skipped: `--nice -10` needs root or CAP_SYS_NICE."]
    loads = (("ka-c16", 16, None), ("ka-c256", 256, None), ("paced-c1", 1, paced_script(root)))
    variants = (("default", []), ("--nice -10", ["--nice", "-10"]))
    median = interleaved(root, "n", [(name, trident, extra) for name, extra in variants], loads,
                         seconds)

    rows = interleaved_table(
        "trident (100 B, 3 interleaved runs each, medians)", median,
        [name for name, _ in variants],
        [("ka-c16", "rps", "ka-c16 req/s"), ("ka-c16", "cpu_us_per_req", "CPU µs/req"),
         ("ka-c256", "rps", "ka-c256 req/s"), ("ka-c256", "cpu_us_per_req", "CPU µs/req"),
         ("paced-c1", "p50_us", "paced-c1 p50 µs")])

    def ratio(load: str, key: str) -> float:
        return median_ratio(median, "--nice -10", "default", load, key)

    rows += ["", f"--nice -10 ÷ default: ka-c16 req/s {ratio('ka-c16', 'rps'):.2f}×, CPU per request "
             f"{ratio('ka-c16', 'cpu_us_per_req'):.2f}×; ka-c256 req/s {ratio('ka-c256', 'rps'):.2f}×; "
             f"paced-c1 p50 {ratio('paced-c1', 'p50_us'):.2f}×."]
    return rows


def json_body(leg: int, items: int) -> bytes:
    """A list response as services send them: per-response noise at the top, and the
    candidate (leg 2) answering one item differently."""
    rows = [{"id": k, "name": f"user {k}", "email": f"u{k}@example.com", "tags": ["a", "b"],
             "score": k * 1.5, "active": (k % 2 == 0) != (leg == 2 and k == 7)}
            for k in range(items)]
    return json.dumps({"generated_at": f"2026-11-23T10:00:0{leg}Z", "request_id": f"req-{leg}",
                       "items": rows}).encode()


def thread_ticks(pid: int, name: str) -> int:
    """utime + stime of the thread of `pid` called `name`, in clock ticks."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return int(fields[11]) + int(fields[12])
    raise RuntimeError(f"no thread {name} in {pid}")


def scenario_json(trident: str, root: str, seconds: float) -> list[str]:
    rows = ["| body | req/s | compared | reporting thread CPU µs per compared exchange | "
            "trident CPU µs/req |", "|---|---|---|---|---|"]
    for items in (120, 1200):
        procs = Procs()
        try:
            ports = [start_upstream(procs, root, f"j-{items}-{i}") for i in range(3)]
            size = 0
            for i in range(3):
                body = json_body(i, items)
                size = len(body)
                with open(os.path.join(root, f"j-{items}-{i}", "www", "json"), "wb") as f:
                    f.write(body)
            port = free_port()
            out_path = os.path.join(root, f"json-{items}.out")
            with open(out_path, "w") as out:
                tri = procs.start([trident, "--listen", f"127.0.0.1:{port}",
                                   "--primary", f"http://127.0.0.1:{ports[0]}",
                                   "--secondary", f"http://127.0.0.1:{ports[1]}",
                                   "--candidate", f"http://127.0.0.1:{ports[2]}"],
                                  stdout=out, stderr=subprocess.DEVNULL)
            wait_port(port)
            before = thread_ticks(tri.pid, "report")
            r = measured(tri.pid, lambda: wrk(port, "/json", 16, seconds))
            report_s = (thread_ticks(tri.pid, "report") - before) / CLK_TCK
            tri.send_signal(signal.SIGTERM)
            tri.wait(timeout=60)
            with open(out_path) as f:
                summary = re.search(r"SUMMARY epoch \d+ \(final\): (\d+) exchanges, (\d+) not compared",
                                    f.read())
            # `N exchanges` counts the compared ones; `M not compared` the rest.
            compared, dropped = int(summary.group(1)), int(summary.group(2))
            total = max(compared + dropped, 1)
            compared = max(compared, 1)
            rows.append(f"| {size / 1024:.0f} KiB | {r['rps']:.0f} | {100 * compared / total:.0f} % "
                        f"| {report_s * 1e6 / compared:.0f} | {r['cpu_us_per_req']:.1f} |")
        finally:
            procs.stop()
    return rows


SCENARIOS = {
    "stalled": scenario_stalled,
    "bodies": scenario_bodies,
    "idle": scenario_idle,
    "syscalls": scenario_syscalls,
    "floor": scenario_floor,
    "instructions": scenario_instructions,
    "reactors": scenario_reactors,
    "nice": scenario_nice,
    "json": scenario_json,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trident", nargs="?", default="target/release/trident")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load (default 5)")
    ap.add_argument("--out", default=os.path.join(HERE, "results-extra.md"))
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            print(f"extra.py: {tool} not found (apt-get install -y nginx wrk)", file=sys.stderr)
            return 2
    if not os.access(args.trident, os.X_OK):
        print(f"extra.py: no trident binary at {args.trident} (make build)", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
        if hard < want and os.geteuid() == 0:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        pass
    names = args.only.split(",") if args.only else list(SCENARIOS)
    lines = [f"# trident extra scenarios — {dt.date.today()}", "",
             f"Machine: {os.cpu_count()} CPUs; binary {args.trident}; {args.duration:g} s per load.", ""]
    root = tempfile.mkdtemp(prefix="trident-extra-")
    os.chmod(root, 0o755)  # nginx workers (not root) serve the body files from it
    try:
        for name in names:
            log(f"scenario {name}")
            lines += [f"## {name}", ""] + SCENARIOS[name](args.trident, root, args.duration) + [""]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
