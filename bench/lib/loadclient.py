#!/usr/bin/python3
"""A small asyncio HTTP/1.1 load client that records every request.

N concurrent clients (coroutines on one event loop) each send GET requests in a
loop, like `siege -cN`: by default every request on a new TCP connection with
`Connection: close` (siege's default), or with --keep-alive over one persistent
connection per client (reconnecting when the server closes it). For every request
it records the send time (seconds since the start), the latency (ms, from the start
of connect to the last byte of the response) and the outcome: the HTTP status, or
an error (connect, read, write, timeout). Unlike wrk or siege this gives an exact
failure count and a latency timeline.

  loadclient.py --port P [--host 127.0.0.1] [--path / --path /cache] [-c 25]
                [--duration 10] [--rate REQ_PER_S] [--start-at MONOTONIC]
                [--timeout 10] [--keep-alive] [--until-file PATH] --out FILE.csv

FILE.csv gets one row per request: t_send_s,latency_ms,outcome (outcome: the status
code, or connect/read/write/timeout). A JSON summary goes to stdout: counts, the
client's own CPU use and the event loop's lag (how late a 5 ms timer fired: an
upper bound on what the client itself added to any latency).

Python standard library only. Uses asyncio Protocols rather than streams: about
half the CPU per request, so the client leaves more of a small machine to the
server. Used by bench/restart and bench/memory; importable (run_load()).
"""

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time

ERRORS = ("connect", "read", "write", "timeout")


class _Conn(asyncio.Protocol):
    """One TCP connection. A request is answered when the status line, the headers
    and Content-Length bytes of body (or, without Content-Length, everything up to
    EOF) have arrived."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.buf = bytearray()
        self.waiter = None       # future of the request in flight, or None
        self.closed = False
        self.server_close = False  # the response said Connection: close
        self.head_end = -1
        self.need = -1           # total bytes of the response, -1 = until EOF
        self.status = 0

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self.head_end >= 0 and self.need < 0:
                w.set_result(self.status)      # body delimited by EOF
            else:
                w.set_exception(ConnectionResetError("read"))

    def send(self, data):
        self.buf.clear()
        self.head_end = -1
        self.need = -1
        self.status = 0
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data):
        self.buf += data
        if self.head_end < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head_end = i + 4
            head = bytes(self.buf[:i]).decode("latin-1").split("\r\n")
            try:
                self.status = int(head[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                self.status = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.need = self.head_end + int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    self.server_close = True
                elif name == "transfer-encoding":
                    self.need = -2  # chunked: not expected here; read to EOF
        if self.need >= 0 and len(self.buf) >= self.need:
            w = self.waiter
            if w is not None and not w.done():
                w.set_result(self.status)


async def _client(loop, cfg, rec, idx):
    host, port, paths = cfg["host"], cfg["port"], cfg["paths"]
    ka = cfg["keep_alive"]
    reqs = [(f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: serval-bench\r\n"
             + ("" if ka else "Connection: close\r\n") + "\r\n").encode() for p in paths]
    t0, timeout = cfg["t0"], cfg["timeout"]
    n = idx  # clients start at different paths when there are several
    conn = None
    # Pacing: each client starts a request every `interval` s (clients staggered), or
    # at once when the previous answer came later than that (no catching up).
    interval = cfg["concurrency"] / cfg["rate"] if cfg["rate"] else 0.0
    next_at = t0 + interval * idx / cfg["concurrency"]
    while loop.time() < cfg["stop_at"]:
        if interval:
            now = loop.time()
            if next_at > now:
                await asyncio.sleep(next_at - now)
                if loop.time() >= cfg["stop_at"]:
                    break
            next_at = max(next_at, now) + interval
        req = reqs[n % len(reqs)]
        n += 1
        start = loop.time()
        stage = "connect"
        outcome = None
        try:
            async with asyncio.timeout(timeout):
                if conn is None or conn.closed or conn.server_close:
                    if conn is not None and not conn.closed:
                        conn.transport.close()
                    _, conn = await loop.create_connection(lambda: _Conn(loop), host, port)
                stage = "read"
                outcome = await conn.send(req)
        except TimeoutError:
            outcome = "timeout"
        except OSError as e:
            outcome = "write" if isinstance(e, BrokenPipeError) else stage
        end = loop.time()
        if not isinstance(outcome, int) or not ka:
            if conn is not None and not conn.closed:
                conn.transport.close()
            conn = None
        rec.append((start - t0, (end - start) * 1000.0, outcome))
    if conn is not None and not conn.closed:
        conn.transport.close()


async def _lag_monitor(loop, cfg, lags, period=0.005):
    """How late a periodic timer fires: the event loop's scheduling delay, which is
    added to the latency of whatever request completes in that moment. Also ends the
    run early when cfg["until_file"] appears (clients finish the request in flight)."""
    n = 0
    while loop.time() < cfg["stop_at"]:
        want = loop.time() + period
        await asyncio.sleep(period)
        lags.append(max(0.0, loop.time() - want) * 1000.0)
        n += 1
        if cfg["until_file"] and n % 20 == 0 and os.path.exists(cfg["until_file"]):
            cfg["stop_at"] = loop.time()


async def _main(cfg):
    loop = asyncio.get_running_loop()
    # Wait for the agreed start (a CLOCK_MONOTONIC instant, shared by all processes).
    if cfg["start_at"] is not None:
        delay = cfg["start_at"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    # loop.time() is time.monotonic() on Linux; keep one origin for everything.
    cfg["t0"] = loop.time()
    cfg["stop_at"] = cfg["t0"] + cfg["duration"]
    rec, lags = [], []
    tasks = [asyncio.create_task(_client(loop, cfg, rec, i))
             for i in range(cfg["concurrency"])]
    mon = asyncio.create_task(_lag_monitor(loop, cfg, lags))
    await asyncio.gather(*tasks)
    await mon
    return rec, lags


def run_load(host, port, paths=("/",), concurrency=25, duration=10.0, timeout=10.0,
             keep_alive=False, start_at=None, rate=0.0, until_file=None):
    """Runs the load; returns (records, summary). records: [(t_send_s, latency_ms,
    outcome)], outcome an int status or one of ERRORS."""
    cfg = {"host": host, "port": port, "paths": list(paths), "concurrency": concurrency,
           "duration": duration, "timeout": timeout, "keep_alive": keep_alive,
           "start_at": start_at, "rate": rate, "until_file": until_file}
    # No cyclic GC pauses in the middle of a latency measurement (nothing here makes
    # long-lived cycles); the heap is small and the process short-lived.
    gc.disable()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.monotonic()
    rec, lags = asyncio.run(_main(cfg))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - w0
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    lags.sort()
    summary = {
        "t0": cfg["t0"],
        "requests": len(rec),
        "ok": sum(1 for r in rec if isinstance(r[2], int) and 200 <= r[2] < 300),
        "client_cpu_cores": round(cpu / wall, 2) if wall > 0 else None,
        "loop_lag_ms_max": round(lags[-1], 1) if lags else None,
        "loop_lag_ms_p99": round(lags[int(0.99 * (len(lags) - 1))], 1) if lags else None,
    }
    return rec, summary


def write_records(path, rec):
    with open(path, "w") as f:
        f.write("t_send_s,latency_ms,outcome\n")
        for t, lat, out in rec:
            f.write(f"{t:.4f},{lat:.3f},{out}\n")


def read_records(path):
    rec = []
    with open(path) as f:
        next(f)
        for line in f:
            t, lat, out = line.rstrip("\n").split(",")
            rec.append((float(t), float(lat), int(out) if out.isdigit() else out))
    return rec


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", action="append", help="request path; repeat to rotate (default /)")
    p.add_argument("-c", "--concurrency", type=int, default=25)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--keep-alive", action="store_true")
    p.add_argument("--rate", type=float, default=0.0,
                   help="at most this many requests/s in total (paced per client); 0 = no limit")
    p.add_argument("--start-at", type=float, help="time.monotonic() instant to start at")
    p.add_argument("--until-file", help="end the run early once this file exists")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    rec, summary = run_load(a.host, a.port, a.path or ["/"], a.concurrency, a.duration,
                            a.timeout, a.keep_alive, a.start_at, a.rate, a.until_file)
    write_records(a.out, rec)
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
