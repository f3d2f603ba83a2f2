#!/usr/bin/env python3
"""1,000 concurrent gRPC WatchOverview streams against the release supervisor (run by
scripts/bench-api.sh with the test venv's Python: grpcio and grpcio-reflection).
Prints figures; asserts nothing.

Opens the streams over 10 HTTP/2 connections (100 each), samples the supervisor's RSS
before and with them open, and for 20 s measures how long each overview change takes to
reach every stream: receipt time minus the overview's `generated_at` (set when the
supervisor built it, so the figure includes the hub's refresh and publish).

Usage: bench_watch.py BINDIR
"""
import asyncio
import datetime
import os
import signal
import subprocess
import sys
import time

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import api_stack, mem_kib  # noqa: E402

STREAMS, CONNECTIONS, SECONDS = 1000, 10, 20


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


async def watch(channel, req_cls, resp_cls, lat, stop, ready):
    call = channel.unary_stream("/qmoi.v1.Monitor/WatchOverview", request_serializer=req_cls.SerializeToString,
                                response_deserializer=resp_cls.FromString)(req_cls())
    first = True
    async for ev in call:
        if first:
            ready.append(1)
            first = False
            continue
        if ev.heartbeat or not ev.HasField("overview"):
            continue
        if not stop.is_set():
            lat.append(time.time() - parse_time(ev.overview.generated_at))
        else:
            break
    call.cancel()


async def run(addr, pid):
    sync = grpc.insecure_channel(addr)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(sync))
    m = pool.FindMethodByName("qmoi.v1.Monitor.WatchOverview")
    req_cls, resp_cls = (message_factory.GetMessageClass(t) for t in (m.input_type, m.output_type))
    before = (mem_kib(pid) or 0) / 1024
    channels = [grpc.aio.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.channel_id", i)])
                for i in range(CONNECTIONS)]
    lat, ready, stop = [], [], asyncio.Event()
    tasks = [asyncio.create_task(watch(channels[i % CONNECTIONS], req_cls, resp_cls, lat, stop, ready))
             for i in range(STREAMS)]
    t0 = time.time()
    while len(ready) < STREAMS and time.time() - t0 < 60:
        await asyncio.sleep(0.2)
    opened = time.time() - t0
    port = addr.rsplit(":", 1)[1]
    ss = subprocess.run(["ss", "-Htn", "state", "established", "dst", f"127.0.0.1:{port}"],
                        capture_output=True, text=True).stdout
    connections = len([line for line in ss.splitlines() if line.strip()])
    await asyncio.sleep(2)
    lat.clear()
    with_streams = (mem_kib(pid) or 0) / 1024
    await asyncio.sleep(SECONDS)
    stop.set()
    peak = (mem_kib(pid, "VmHWM") or 0) / 1024
    for t in tasks:
        t.cancel()
    for c in channels:
        await c.close()
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] * 1000 if lat else float("nan")
    print(f"{len(ready)} WatchOverview streams open in {opened:.1f} s over {connections} TCP connections "
          f"({CONNECTIONS} client channels)")
    print(f"supervisor RSS: {before:.1f} MiB before, {with_streams:.1f} MiB with the streams "
          f"(+{with_streams - before:.1f} MiB), peak {peak:.1f} MiB")
    print(f"overview changes delivered to the streams in {SECONDS} s: {len(lat):,}; "
          f"from the overview's build to receipt: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {q(1.0):.1f} ms")


def main(bindir):
    sup, _, _, gport = api_stack(bindir, prefix="qmoi-bench-watch-")
    try:
        time.sleep(2)
        asyncio.run(run(f"127.0.0.1:{gport}", sup.pid))
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
