#!/usr/bin/env python3
"""1,000 concurrent gRPC WatchOverview streams and 1,000 GraphQL `overview` subscriptions
against the release supervisor, at once (run by scripts/bench-api.sh with the test venv's
Python: grpcio, grpcio-reflection and websockets). Prints figures; asserts nothing.

gRPC: 1,000 streams over 10 HTTP/2 connections (100 each), in this process. GraphQL:
1,000 subscriptions over 10 WebSockets (graphql-transport-ws, 100 each: the per-socket
limit), in a child process (the two clients must not queue behind each other on one
Python thread). Samples the supervisor's RSS before and with everything open, then for 20 s
measures how long each overview change takes to reach every stream and subscription:
receipt time minus the overview's `generated_at` (set when the supervisor built it, so the
figure includes the hub's refresh and publish, and the clients' own queueing).

Usage: bench_watch.py BINDIR
"""
import asyncio
import datetime
import json
import multiprocessing
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
SUBSCRIPTION = "subscription { overview { generatedAt verdict components { id state reportStatus } } }"


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def quantiles(lat):
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] * 1000 if lat else float("nan")
    return q(0.5), q(0.99), q(1.0)


def established(port):
    ss = subprocess.run(["ss", "-Htn", "state", "established", "dst", f"127.0.0.1:{port}"],
                        capture_output=True, text=True).stdout
    return len([line for line in ss.splitlines() if line.strip()])


# --- GraphQL subscriptions (child process) ---

async def gql_socket(url, first_id, n, lat, ready, measuring, stop):
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["graphql-transport-ws"], max_size=1 << 20) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise SystemExit(f"no connection_ack: {ack}")
        for i in range(first_id, first_id + n):
            await ws.send(json.dumps({"id": str(i), "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
        seen = set()
        async for raw in ws:
            m = json.loads(raw)
            if m.get("type") != "next":
                continue
            if m["id"] not in seen:
                seen.add(m["id"])
                ready.append(1)
                continue
            if stop.is_set():
                return
            if measuring.is_set():
                lat.append(time.time() - parse_time(m["payload"]["data"]["overview"]["generatedAt"]))


async def gql_run(url, ready_ev, measure_ev, out):
    lat, ready = [], []
    measuring, stop = asyncio.Event(), asyncio.Event()
    per = STREAMS // CONNECTIONS
    tasks = [asyncio.create_task(gql_socket(url, i * per, per, lat, ready, measuring, stop)) for i in range(CONNECTIONS)]
    t0 = time.time()
    while len(ready) < STREAMS and time.time() - t0 < 60:
        await asyncio.sleep(0.2)
    opened = time.time() - t0
    ready_ev.set()
    while not measure_ev.is_set():
        await asyncio.sleep(0.05)
    measuring.set()
    await asyncio.sleep(SECONDS)
    stop.set()
    for t in tasks:
        t.cancel()
    out.put({"ready": len(ready), "opened": opened, "lat": lat})


def gql_child(url, ready_ev, measure_ev, out):
    asyncio.run(gql_run(url, ready_ev, measure_ev, out))


# --- gRPC streams (this process) ---

async def watch(channel, req_cls, resp_cls, lat, measuring, stop, ready):
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
        if stop.is_set():
            break
        if measuring.is_set():
            lat.append(time.time() - parse_time(ev.overview.generated_at))
    call.cancel()


async def run(gaddr, port, pid):
    sync = grpc.insecure_channel(gaddr)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(sync))
    m = pool.FindMethodByName("qmoi.v1.Monitor.WatchOverview")
    req_cls, resp_cls = (message_factory.GetMessageClass(t) for t in (m.input_type, m.output_type))
    before = (mem_kib(pid) or 0) / 1024
    channels = [grpc.aio.insecure_channel(gaddr, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.channel_id", i)])
                for i in range(CONNECTIONS)]
    lat, ready = [], []
    measuring, stop = asyncio.Event(), asyncio.Event()
    t0 = time.time()
    tasks = [asyncio.create_task(watch(channels[i % CONNECTIONS], req_cls, resp_cls, lat, measuring, stop, ready))
             for i in range(STREAMS)]
    while len(ready) < STREAMS and time.time() - t0 < 60:
        await asyncio.sleep(0.2)
    opened = time.time() - t0
    grpc_only = (mem_kib(pid) or 0) / 1024

    ctx = multiprocessing.get_context("spawn")
    ready_ev, measure_ev, out = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=gql_child, args=(f"ws://127.0.0.1:{port}/graphql/ws", ready_ev, measure_ev, out))
    child.start()
    while not ready_ev.is_set() and child.is_alive():
        await asyncio.sleep(0.1)
    gport = gaddr.rsplit(":", 1)[1]
    grpc_conns, ws_conns = established(gport), established(port)
    await asyncio.sleep(2)
    with_all = (mem_kib(pid) or 0) / 1024
    measuring.set()
    measure_ev.set()
    await asyncio.sleep(SECONDS)
    stop.set()
    peak = (mem_kib(pid, "VmHWM") or 0) / 1024
    res = await asyncio.get_running_loop().run_in_executor(None, lambda: out.get(timeout=60))
    child.join(10)
    for t in tasks:
        t.cancel()
    for c in channels:
        await c.close()

    print(f"{len(ready)} gRPC WatchOverview streams open in {opened:.1f} s over {grpc_conns} TCP connections "
          f"({CONNECTIONS} client channels); {res['ready']} GraphQL overview subscriptions open in "
          f"{res['opened']:.1f} s over {ws_conns} WebSockets")
    print(f"supervisor RSS: {before:.1f} MiB before, {grpc_only:.1f} MiB with the gRPC streams "
          f"(+{grpc_only - before:.1f} MiB), {with_all:.1f} MiB with the subscriptions too "
          f"(+{with_all - grpc_only:.1f} MiB; both: +{with_all - before:.1f} MiB), peak {peak:.1f} MiB")
    for name, l in (("gRPC streams", lat), ("GraphQL subscriptions", res["lat"])):
        p50, p99, mx = quantiles(l)
        print(f"overview changes delivered to the {name} in {SECONDS} s: {len(l):,}; from the overview's build "
              f"to receipt: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {mx:.1f} ms")


def main(bindir):
    sup, _, port, gport = api_stack(bindir, prefix="qmoi-bench-watch-")
    try:
        time.sleep(2)
        asyncio.run(run(f"127.0.0.1:{gport}", port, sup.pid))
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
