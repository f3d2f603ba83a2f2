"""A real gRPC client (Python grpcio, grpcio-reflection, grpcio-health-checking) against
the supervisor's gRPC API, run by tests/grpc.rs. It knows nothing of the proto file: the
services and messages come from the server's reflection.

Usage: grpc_client.py HOST:PORT ADMIN_TOKEN READ_TOKEN
Prints one line per check ("ok …" or "FAIL …") and exits 1 if any failed.
"""

import sys
import time

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

addr, admin, read = sys.argv[1], sys.argv[2], sys.argv[3]
channel = grpc.insecure_channel(addr)
failures = []


def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what + (f": {detail}" if detail and not cond else ""), flush=True)
    if not cond:
        failures.append(what)


# Discovery by reflection.
stub = reflection_pb2_grpc.ServerReflectionStub(channel)
resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
services = sorted(s.name for s in resp.list_services_response.service)
check("reflection lists the services", "qmoi.v1.Monitor" in services and "grpc.health.v1.Health" in services, services)
pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
svc = pool.FindServiceByName("qmoi.v1.Monitor")
methods = {m.name: m for m in svc.methods}
check("every RPC is described", {"GetOverview", "GetComponent", "ListAlerts", "QueryHistory", "WatchOverview",
                                 "WatchAlerts", "Acknowledge", "Silence", "RestartComponent"} <= set(methods), sorted(methods))


def call(name, token=None, **fields):
    m = methods[name]
    req_cls = message_factory.GetMessageClass(m.input_type)
    resp_cls = message_factory.GetMessageClass(m.output_type)
    path = f"/qmoi.v1.Monitor/{name}"
    md = [("authorization", f"Bearer {token}")] if token else []
    if m.server_streaming:
        fn = channel.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                  response_deserializer=resp_cls.FromString)
    else:
        fn = channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                 response_deserializer=resp_cls.FromString)
    return fn(req_cls(**fields), metadata=md, timeout=20)


def code_of(f):
    try:
        r = f()
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            list(r)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


# Auth: none, a wrong token, the read token.
check("no token: UNAUTHENTICATED", code_of(lambda: call("GetOverview")) == grpc.StatusCode.UNAUTHENTICATED)
check("a wrong token: UNAUTHENTICATED",
      code_of(lambda: call("GetOverview", "not-a-valid-token-at-all")) == grpc.StatusCode.UNAUTHENTICATED)
o = call("GetOverview", read)
ov = json_format.MessageToDict(o, preserving_proto_field_name=True)
ids = [c["id"] for c in ov.get("components", [])]
check("GetOverview: verdict and components", ov.get("verdict", "").startswith("VERDICT_") and
      {"system_health", "security"} <= set(ids), ov)
check("GetOverview: the last reload", ov.get("supervisor", {}).get("last_reload", {}).get("ok") is True, ov)

# One component with its report.
c = json_format.MessageToDict(call("GetComponent", read, id="system_health"), preserving_proto_field_name=True)
check("GetComponent: the report", c.get("configured") and c.get("report", {}).get("component") == "system_health" and
      "qmoi_load1" in c["report"].get("metrics", {}), c)
check("GetComponent of an unknown id: NOT_FOUND",
      code_of(lambda: call("GetComponent", read, id="no_such_thing")) == grpc.StatusCode.NOT_FOUND)

# Alerts, filtered.
a = json_format.MessageToDict(call("ListAlerts", read, component="system_health"), preserving_proto_field_name=True)
check("ListAlerts: the warning of system_health",
      any(x["fingerprint"] == "system_health/fake" and x["level"] == "warning" for x in a.get("alerts", [])), a)
check("ListAlerts with a bad level: INVALID_ARGUMENT",
      code_of(lambda: call("ListAlerts", read, level="loud")) == grpc.StatusCode.INVALID_ARGUMENT)

# History, streamed in chunks.
chunks = []
deadline = time.time() + 20
while not chunks and time.time() < deadline:
    chunks = list(call("QueryHistory", read, metric="qmoi_load1", component="system_health"))
    if not chunks:
        time.sleep(1)
points = [p for ch in chunks for p in ch.points]
check("QueryHistory: points of qmoi_load1", points and all(p.value == 0.25 for p in points), len(points))
check("QueryHistory without a metric: INVALID_ARGUMENT",
      code_of(lambda: call("QueryHistory", read)) == grpc.StatusCode.INVALID_ARGUMENT)

# Admin only: refused to the read role, allowed to admin.
check("RestartComponent with the read role: PERMISSION_DENIED",
      code_of(lambda: call("RestartComponent", read, id="security")) == grpc.StatusCode.PERMISSION_DENIED)

# A watch stream sees the restart arrive.
stream = call("WatchOverview", read)
first = next(stream)
before = {c.id: c.restarts for c in first.overview.components}
r = call("RestartComponent", admin, id="security")
check("RestartComponent with admin", "security" in r.message, r.message)
seen = None
deadline = time.time() + 20
for ev in stream:
    if ev.heartbeat:
        continue
    now = {c.id: c.restarts for c in ev.overview.components}
    if now.get("security", 0) > before.get("security", 0):
        seen = now
        break
    if time.time() > deadline:
        break
stream.cancel()
check("WatchOverview: the restart arrives on the stream", seen is not None, before)
# Acknowledge and silence: refused to the reader, done for the admin, seen by ListAlerts
# and on a WatchAlerts stream opened before.
alerts_stream = call("WatchAlerts", read)
check("Acknowledge with the read role: PERMISSION_DENIED",
      code_of(lambda: call("Acknowledge", read, fingerprint="system_health/fake")) == grpc.StatusCode.PERMISSION_DENIED)
ack = call("Acknowledge", admin, fingerprint="system_health/fake", comment="looking")
check("Acknowledge with admin", ack.by == "admin" and ack.at > 0, ack)
check("Acknowledge of an alert not firing: NOT_FOUND",
      code_of(lambda: call("Acknowledge", admin, fingerprint="nope/nothing")) == grpc.StatusCode.NOT_FOUND)
sil = call("Silence", admin, component="system_health", duration_s=3600, comment="maintenance")
check("Silence with admin", sil.id > 0 and sil.expires_at > time.time(), sil)
check("Silence without a matcher: INVALID_ARGUMENT",
      code_of(lambda: call("Silence", admin, duration_s=60)) == grpc.StatusCode.INVALID_ARGUMENT)
a = json_format.MessageToDict(call("ListAlerts", read, component="system_health"), preserving_proto_field_name=True)
fake = [x for x in a.get("alerts", []) if x["fingerprint"] == "system_health/fake"]
check("ListAlerts: acknowledged and silenced", fake and fake[0].get("acknowledged_by") == "admin" and
      int(fake[0].get("silenced_by", 0)) == sil.id, a)
actions = []
try:
    for ev in alerts_stream:
        if ev.heartbeat:
            continue
        actions.append((ev.action, ev.fingerprint, ev.silence if ev.HasField("silence") else None))
        if ("silenced", "", sil.id) in actions:
            break
except grpc.RpcError as e:
    actions.append(("error", str(e.code()), None))
alerts_stream.cancel()
check("WatchAlerts: the acknowledgement and the silence arrive",
      ("acknowledged", "system_health/fake", None) in actions and ("silenced", "", sil.id) in actions, actions)
check("RestartComponent of an unknown id: NOT_FOUND",
      code_of(lambda: call("RestartComponent", admin, id="nope")) == grpc.StatusCode.NOT_FOUND)

# Health, overall and per component.
health = health_pb2_grpc.HealthStub(channel)
h = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
check("health of the server: SERVING", h.status == health_pb2.HealthCheckResponse.SERVING, h)
h = health.Check(health_pb2.HealthCheckRequest(service="system_health"), timeout=10)
check("health of system_health: SERVING", h.status == health_pb2.HealthCheckResponse.SERVING, h)
try:
    health.Check(health_pb2.HealthCheckRequest(service="no_such_component"), timeout=10)
    check("health of an unknown service: NOT_FOUND", False)
except grpc.RpcError as e:
    check("health of an unknown service: NOT_FOUND", e.code() == grpc.StatusCode.NOT_FOUND, e.code())

sys.exit(1 if failures else 0)
