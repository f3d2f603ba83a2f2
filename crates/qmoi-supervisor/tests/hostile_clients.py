"""Hostile clients against the dashboard of a running supervisor, run by
tests/hostile.rs: slowloris, endless and oversized requests, streams that never read,
many client addresses, path traversal and garbage in every parameter, a cross-origin
form post. Bounded in count and time. While each runs, /healthz is asked every 100 ms
by a well-behaved client; the supervisor's RSS and open descriptors are read before,
at the peak and after.

Usage: hostile_clients.py HOST:PORT SUPERVISOR_PID ADMIN_TOKEN
Prints `ok <name>` / `FAIL <name>: why` lines and a figures table; exits 1 on a failure.
"""
import asyncio
import os
import sys
import time
import urllib.parse

ADDR, PID, ADMIN = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HOST, PORT = ADDR.rsplit(":", 1)
PORT = int(PORT)
failures = []
figures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def usage():
    rss = 0
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{PID}/fd"))


async def request(raw, read_limit=65536, timeout=10, local=None):
    """Send raw bytes, read the answer's status line (None if the connection closed)."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, PORT, local_addr=local), timeout)
    except (OSError, asyncio.TimeoutError):
        return None, b""
    try:
        w.write(raw)
        await w.drain()
        data = await asyncio.wait_for(r.read(read_limit), timeout)
    except (OSError, asyncio.TimeoutError):
        data = b""
    finally:
        w.close()
    line = data.split(b"\r\n", 1)[0]
    parts = line.split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return code, data


def get(path, headers=""):
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{headers}\r\n".encode()


class Watch:
    """/healthz every 100 ms while an attack runs: answered count and worst latency."""

    def __init__(self):
        self.lat, self.failed, self.peak = [], 0, usage()
        self.stop = False

    async def run(self):
        while not self.stop:
            t = time.monotonic()
            code, _ = await request(get("/healthz"), timeout=5)
            if code == 200:
                self.lat.append((time.monotonic() - t) * 1000)
            else:
                self.failed += 1
            u = usage()
            self.peak = (max(self.peak[0], u[0]), max(self.peak[1], u[1]))
            await asyncio.sleep(0.1)


async def attack(name, coro):
    before = usage()
    watch = Watch()
    task = asyncio.create_task(watch.run())
    t = time.monotonic()
    try:
        result = await coro
    finally:
        watch.stop = True
        await task
    took = time.monotonic() - t
    await asyncio.sleep(1.5)
    after = usage()
    lat = sorted(watch.lat)
    worst = lat[-1] if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99) - 1] if len(lat) >= 2 else worst
    figures.append((name, took, len(lat), watch.failed, p99, worst, before, watch.peak, after))
    check(f"{name}: /healthz answered throughout", watch.failed == 0 and lat,
          f"{watch.failed} of {watch.failed + len(lat)} /healthz calls failed")
    return result


async def slowloris(n=500, seconds=12):
    async def one():
        try:
            r, w = await asyncio.open_connection(HOST, PORT)
        except OSError:
            return "refused"
        try:
            w.write(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            await w.drain()
            for i in range(seconds):
                await asyncio.sleep(1)
                w.write(b"X")
                await w.drain()
            return "held"
        except OSError:
            return "closed"
        finally:
            w.close()
    results = await asyncio.gather(*[one() for _ in range(n)])
    return {k: results.count(k) for k in set(results)}


async def silent_streams(n=1000, seconds=8):
    """SSE and WebSocket clients that ask for the stream and never read."""
    conns = []
    for i in range(n):
        path = "/api/events" if i % 2 == 0 else "/ws"
        extra = "" if i % 2 == 0 else ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        try:
            # From 1,000 addresses (127.1.x.y): a per-address limit does not stop them.
            r, w = await asyncio.open_connection(HOST, PORT, local_addr=(f"127.1.{i // 250}.{i % 250 + 1}", 0))
            w.transport.set_write_buffer_limits(0)
            # A tiny receive buffer: the server's writes back up at once.
            sock = w.get_extra_info("socket")
            sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 1024)
            # Signed in (an admin's client gone wrong): the streams are real ones.
            w.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ADMIN}\r\n{extra}\r\n".encode())
            conns.append(w)
        except OSError:
            pass
    await asyncio.sleep(seconds / 2)
    # One more, which reads: past the cap of live streams, it is told to come back.
    code, _ = await request(get("/api/events", f"Authorization: Bearer {ADMIN}\r\n"), timeout=5)
    await asyncio.sleep(seconds / 2)
    for w in conns:
        w.close()
    return len(conns), code


async def endless_body(seconds=6):
    """POST routes with a body that never ends: refused by its size or cut, not buffered."""
    codes = []
    for path in ["/api/maintenance", "/api/silences", "/api/alerts/x/ack"]:
        try:
            r, w = await asyncio.open_connection(HOST, PORT)
        except OSError:
            codes.append(None)
            continue
        w.write(f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ADMIN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n".encode())
        sent = 0
        t = time.monotonic()
        code = None
        try:
            while time.monotonic() - t < seconds:
                w.write(b"[" * 65536)
                await asyncio.wait_for(w.drain(), 2)
                sent += 65536
                if r.at_eof():
                    break
        except (OSError, asyncio.TimeoutError):
            pass
        try:
            data = await asyncio.wait_for(r.read(4096), 3)
            parts = data.split(b"\r\n", 1)[0].split()
            code = int(parts[1]) if len(parts) > 1 else None
        except (OSError, asyncio.TimeoutError):
            pass
        w.close()
        codes.append((path, code, sent))
    return codes


async def oversized():
    big_header = get("/healthz", "X-Big: " + "a" * 200_000 + "\r\n")
    big_url = get("/api/history?metric=" + "a" * 200_000)
    many_headers = get("/healthz", "".join(f"X-{i}: v\r\n" for i in range(2000)))
    out = []
    for raw in [big_header, big_url, many_headers]:
        code, _ = await request(raw)
        out.append(code)
    return out


async def many_addresses(n=200, each=30):
    """Clients from 127.0.0.2 … (each its own rate-limit bucket): 429s, no growth."""
    async def one(i):
        local = (f"127.0.{i // 250}.{i % 250 + 2}", 0)
        codes = []
        for _ in range(each):
            code, _ = await request(get("/api/monitor/status", f"Authorization: Bearer {ADMIN}\r\n"), local=local)
            codes.append(code)
        return codes
    results = await asyncio.gather(*[one(i) for i in range(n)])
    flat = [c for r in results for c in r]
    return {c: flat.count(c) for c in set(flat)}


async def traversal_and_garbage():
    paths = [
        "/api/monitor/components/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/monitor/components/%2e%2e",
        "/api/monitor/components/system_health%00",
        "/api/monitor/components/" + "%C0%AE" * 10,
        "/assets/..%2F..%2FCargo.toml",
        "/../../../../etc/passwd",
        "/api/history?metric=%00&from=yesterday&to=-1e999&step=%FF",
        "/api/history?metric=qmoi_load1&from=99999999999999999999&to=0",
        "/api/history/series?component=" + "%25" * 500,
        "/api/alerts?limit=-1&level=%27%3B--",
        "/api/slo?window=NaN",
    ]
    out = []
    for p in paths:
        code, data = await request(get(p, f"Authorization: Bearer {ADMIN}\r\n"))
        out.append((p, code, b"root:" in data or b"[workspace]" in data))
    for method, p in [("DELETE", "/api/maintenance/..%2F1"), ("DELETE", "/api/silences/1%20OR%201=1"),
                      ("POST", "/api/components/..%2Fsupervisor/restart"), ("DELETE", "/api/maintenance/99999999999999999999")]:
        raw = f"{method} {p} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 0\r\n\r\n"
        code, _ = await request(raw.encode())
        out.append((p, code, False))
    return out


async def cross_origin():
    """A form posted from another site: no bearer header, so it must not act."""
    body = "component=backup&duration=1h&reason=evil"
    raw = (f"POST /api/maintenance HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nOrigin: http://evil.example\r\n"
           f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    code, _ = await request(raw)
    ack = (f"POST /api/alerts/system_health%2Ffake/ack HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
           f"Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}").encode()
    code2, _ = await request(ack)
    return code, code2


async def main():
    r = await attack("slowloris (500 connections, a header byte a second, 12 s)", slowloris())
    check("slowloris: connections were cut or held, none crashed anything", sum(r.values()) == 500, r)
    n, code = await attack("1,000 SSE and WebSocket clients that never read (8 s)", silent_streams())
    check("silent streams: past the cap of live streams, 503", n > 0 and code == 503, (n, code))
    codes = await attack("endless bodies to 3 POST routes", endless_body())
    check("endless bodies: refused with 413 or cut, never read to the end",
          all(c in (None, 400, 401, 403, 404, 413) and sent < 50_000_000 for _, c, sent in codes), codes)
    codes = await attack("oversized headers and URLs", oversized())
    check("oversized: refused (431, 414 or closed), never read whole", all(c in (None, 414, 431) for c in codes), codes)
    counts = await attack("200 client addresses, 30 requests each", many_addresses())
    check("many addresses: answered or rate limited, never 5xx",
          all(c in (200, 429) for c in counts) and counts.get(200, 0) > 0, counts)
    out = await attack("path traversal and garbage parameters", traversal_and_garbage())
    bad = [(p, c, leak) for p, c, leak in out if leak or c is None or c >= 500]
    check("traversal and garbage: 4xx (or 200 for what is harmless), no file content, no 5xx", not bad, bad)
    c1, c2 = await attack("cross-origin form posts", cross_origin())
    check("cross-origin: a form post cannot open a window or acknowledge", c1 in (401, 403, 415) and c2 in (401, 403, 415),
          (c1, c2))
    print()
    print(f"{'attack':58} {'took':>6} {'/healthz':>9} {'failed':>6} {'p99 ms':>7} {'max ms':>7}  "
          f"{'RSS MiB before/peak/after':>26}  {'fds before/peak/after':>22}")
    for name, took, n_ok, n_bad, p99, worst, b, p, a in figures:
        print(f"{name[:58]:58} {took:6.1f} {n_ok:9d} {n_bad:6d} {p99:7.1f} {worst:7.1f}  "
              f"{b[0]:8.1f} {p[0]:8.1f} {a[0]:8.1f}  {b[1]:7d} {p[1]:7d} {a[1]:7d}")
    sys.exit(1 if failures else 0)


asyncio.run(main())
