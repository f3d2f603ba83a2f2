"""Real GraphQL clients against the supervisor's GraphQL API, run by tests/graphql.rs:
the `gql` library (its requests transport for queries and mutations, its websockets
transport for subscriptions) and plain `requests` for what a library would refuse to send
(oversized, batched, wrongly typed and cross-site requests).

Usage: graphql_client.py BASE_URL ADMIN_TOKEN READ_TOKEN WARN_FILE SCHEMA_FILE
  BASE_URL     http://127.0.0.1:PORT
  WARN_FILE    while this file exists, the fake system_health monitor warns (an alert)
  SCHEMA_FILE  docs/schema.graphql
Prints one line per check ("ok …" or "FAIL …") and exits 1 if any failed.
"""

import asyncio
import json
import os
import sys
import threading
import time

import requests
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from graphql import build_schema, lexicographic_sort_schema, print_schema

base, admin, read, warn_file, schema_file = sys.argv[1:6]
ws_url = base.replace("http://", "ws://") + "/graphql/ws"
failures = []


def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what + (f": {detail}" if detail and not cond else ""), flush=True)
    if not cond:
        failures.append(what)


def client(token, schema=False):
    t = RequestsHTTPTransport(url=base + "/graphql", headers={"Authorization": f"Bearer {token}"}, timeout=20)
    return Client(transport=t, fetch_schema_from_transport=schema)


def error_code(c, query, **variables):
    """The `extensions.code` of the first error (None: no error)."""
    try:
        c.execute(gql(query), variable_values=variables)
        return None
    except TransportQueryError as e:
        errs = e.errors or []
        return (errs[0].get("extensions") or {}).get("code") if errs else str(e)


# --- The schema served is the one checked in (by introspection over the wire). ---
admin_c = client(admin, schema=True)
with admin_c as session:
    served = print_schema(lexicographic_sort_schema(admin_c.schema))
with open(schema_file) as f:
    filed = print_schema(lexicographic_sort_schema(build_schema(f.read())))
check("the introspected schema equals docs/schema.graphql", served == filed,
      "\n".join(l for l in set(served.splitlines()) ^ set(filed.splitlines()))[:2000])
admin_c = client(admin)
read_c = client(read)

# --- Queries. ---
r = read_c.execute(gql("""{ overview { generatedAt verdict reasons supervisor { pid version }
    components { id state priority pid restarts reportAgeS reportStatus summary criticalAlerts warningAlerts } } }"""))
ov = r["overview"]
ids = {c["id"] for c in ov["components"]}
check("overview: verdict and every component", ov["verdict"] in ("HEALTHY", "DEGRADED", "CRITICAL")
      and {"system_health", "security", "notification"} <= ids, r)
check("overview: the supervisor", ov["supervisor"]["pid"] > 0, ov["supervisor"])
sh = next(c for c in ov["components"] if c["id"] == "system_health")
check("overview: a component's state", sh["state"] == "RUNNING" and sh["pid"] > 0, sh)

r = read_c.execute(gql("""query($id: String!) { component(id: $id) { id configured state { state }
    report { component host generatedAt status summary checks { name status message }
             metrics(prefix: "qmoi_load") { name value } alerts { fingerprint } details } } }"""),
                   variable_values={"id": "system_health"})
c = r["component"]
check("component: its report", c["configured"] and c["report"]["component"] == "system_health"
      and c["report"]["checks"][0]["name"] == "fake", c)
check("component: metrics by prefix", c["report"]["metrics"] == [{"name": "qmoi_load1", "value": 0.25}], c["report"]["metrics"])
r = read_c.execute(gql('{ component(id: "notification") { report { details } } }'))
d = r["component"]["report"]["details"]
check("component: details is JSON", isinstance(d, dict) and "channels" in d, d)
check("component: unknown is NOT_FOUND", error_code(read_c, '{ component(id: "nope") { id } }') == "NOT_FOUND")

# History: the metric has been recorded for a few seconds.
r = read_c.execute(gql('{ history(metric: "qmoi_load1", component: "system_health") { component metric points { t value } } series { component metric } }'))
h = r["history"]
check("history: points of the metric", len(h) == 1 and h[0]["points"] and h[0]["points"][0]["value"] == 0.25, h)
check("series: lists it", {"component": "system_health", "metric": "qmoi_load1"} in r["series"], r["series"])
check("history: a bad range is BAD_USER_INPUT",
      error_code(read_c, '{ history(metric: "qmoi_load1", from: "yesterday") { metric } }') == "BAD_USER_INPUT")

r = read_c.execute(gql("{ config }"))
text = json.dumps(r["config"])
check("config: served, secrets masked", "dashboard" in text and admin not in text and read not in text, text[:300])

# --- An alert fires; a subscription sees it fire and resolve. ---
events = []
ready = threading.Event()


def ws_transport(token, protocol=WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL):
    # The subprotocol named: gql 4.4 reads the one the server chose from a case-sensitive
    # `Sec-WebSocket-Protocol` key, and HTTP/1.1 servers (hyper) send header names in
    # lower case, so it would fall back to the old Apollo protocol (docs/API.md).
    return WebsocketsTransport(url=ws_url, headers={"Authorization": f"Bearer {token}"}, subprotocols=[protocol])


async def watch_alerts():
    t = ws_transport(read)
    async with Client(transport=t) as s:
        events.append(("subprotocol", t.subprotocol))
        sub = s.subscribe(gql('subscription { alerts(component: "system_health") { action fingerprint alert { level component } } }'))
        ready.set()
        async for e in sub:
            events.append(e["alerts"])
            if e["alerts"]["action"] == "RESOLVED":
                return


def run_watch():
    try:
        asyncio.run(asyncio.wait_for(watch_alerts(), 60))
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        events.append(("error", repr(e)))
        ready.set()


th = threading.Thread(target=run_watch)
th.start()
ready.wait(20)
time.sleep(0.5)
open(warn_file, "w").close()

fp = None
deadline = time.time() + 20
while time.time() < deadline and fp is None:
    r = read_c.execute(gql('{ alerts(component: "system_health") { fingerprint level state silenced acknowledged { by } } }'))
    fp = next((a["fingerprint"] for a in r["alerts"] if a["fingerprint"].endswith("fake")), None)
    time.sleep(0.3)
check("alerts: the warning fires", fp is not None, r)

# --- Mutations: the read role and no auth are refused; admin acts, audited. ---
check("mutation with the read role is FORBIDDEN",
      error_code(read_c, 'mutation($f: String!) { acknowledge(fingerprint: $f) { by } }', f=fp or "") == "FORBIDDEN")
resp = requests.post(base + "/graphql", json={"query": "{ overview { verdict } }"}, timeout=10)
check("no token: HTTP 401", resp.status_code == 401, resp.status_code)
r = admin_c.execute(gql('mutation($f: String!) { acknowledge(fingerprint: $f, comment: "on it") { fingerprint by comment } }'),
                    variable_values={"f": fp})
check("acknowledge", r["acknowledge"]["by"] == "admin" and r["acknowledge"]["comment"] == "on it", r)
r = admin_c.execute(gql('{ alerts(acknowledged: true) { fingerprint acknowledged { by comment } } }'))
check("alerts(acknowledged: true) lists it", [a["fingerprint"] for a in r["alerts"]] == [fp], r)
check("acknowledge of no firing alert is NOT_FOUND",
      error_code(admin_c, 'mutation { acknowledge(fingerprint: "x/y") { by } }') == "NOT_FOUND")
r = admin_c.execute(gql('mutation { silence(component: "system_health", level: WARNING, duration: "1h", comment: "maint") { id component level createdBy expiresAt } }'))
sid = r["silence"]["id"]
check("silence", sid > 0 and r["silence"]["createdBy"] == "admin" and r["silence"]["level"] == "WARNING", r)
r = admin_c.execute(gql("{ silences { id comment } alerts(silenced: true) { fingerprint silencedBy } }"))
check("silences and alerts(silenced: true)", r["silences"] == [{"id": sid, "comment": "maint"}]
      and r["alerts"] == [{"fingerprint": fp, "silencedBy": sid}], r)
check("silence without a matcher is BAD_USER_INPUT",
      error_code(admin_c, 'mutation { silence(duration: "1h") { id } }') == "BAD_USER_INPUT")
check("silence with a bad duration is BAD_USER_INPUT",
      error_code(admin_c, 'mutation { silence(component: "backup", duration: "soon") { id } }') == "BAD_USER_INPUT")
r = admin_c.execute(gql("mutation($id: Int!) { unsilence(id: $id) }"), variable_values={"id": sid})
check("unsilence", r["unsilence"] == sid, r)
check("unsilence again is NOT_FOUND", error_code(admin_c, "mutation($id: Int!) { unsilence(id: $id) }", id=sid) == "NOT_FOUND")
r = admin_c.execute(gql('mutation { restartComponent(id: "security") }'))
check("restartComponent", "security" in r["restartComponent"], r)
check("restartComponent of an unknown one is NOT_FOUND",
      error_code(admin_c, 'mutation { restartComponent(id: "nope") }') == "NOT_FOUND")
r = admin_c.execute(gql('mutation { openMaintenance(component: "backup", duration: "1h", reason: "disk swap") { id component createdBy active } }'))
mw = r["openMaintenance"]
check("openMaintenance", mw["component"] == "backup" and mw["createdBy"] == "admin" and mw["active"], r)
r = read_c.execute(gql("{ maintenance { id reason } }"))
check("maintenance lists it", {"id": mw["id"], "reason": "disk swap"} in r["maintenance"], r)
check("openMaintenance of an unknown component is BAD_USER_INPUT",
      error_code(admin_c, 'mutation { openMaintenance(component: "coffee", duration: "1h", reason: "x") { id } }') == "BAD_USER_INPUT")
r = admin_c.execute(gql("mutation($id: Int!) { endMaintenance(id: $id) }"), variable_values={"id": mw["id"]})
check("endMaintenance", r["endMaintenance"] == mw["id"], r)
r = admin_c.execute(gql("mutation { reset }"))
check("reset", isinstance(r["reset"], str) and r["reset"], r)

# The alert resolves: the subscription saw FIRED, then ACKNOWLEDGED, then RESOLVED.
os.remove(warn_file)
th.join(40)
kinds = [e["action"] for e in events if isinstance(e, dict)]
check("subscription negotiated graphql-transport-ws", ("subprotocol", "graphql-transport-ws") in events, events)
check("subscription: the alert fired", any(e.get("action") == "FIRED" and e["fingerprint"] == fp
                                           and e["alert"]["level"] == "WARNING" for e in events if isinstance(e, dict)), events)
check("subscription: acknowledged, then resolved", "ACKNOWLEDGED" in kinds and kinds[-1:] == ["RESOLVED"], events)
r = read_c.execute(gql('{ alerts(state: RESOLVED, component: "system_health") { fingerprint state endedAt } }'))
check("alerts(state: RESOLVED) lists it", any(a["fingerprint"] == fp and a["endedAt"] for a in r["alerts"]), r)


# --- Overview subscription: the current overview at once, then a restart arrives. ---
async def watch_restart():
    t = ws_transport(admin)
    async with Client(transport=t) as s:
        seen = []
        async for e in s.subscribe(gql("subscription { overview { components(id: \"security\") { restarts } } }")):
            n = e["overview"]["components"][0]["restarts"]
            seen.append(n)
            if len(seen) == 1:
                await s.execute(gql('mutation { restartComponent(id: "security") }'))
            elif n > seen[0]:
                return seen


try:
    seen = asyncio.run(asyncio.wait_for(watch_restart(), 30))
    check("overview subscription: now, then the restart (mutation over the socket)", seen[-1] > seen[0], seen)
except Exception as e:  # noqa: BLE001
    check("overview subscription: now, then the restart (mutation over the socket)", False, repr(e))

# The older protocol of subscriptions-transport-ws ("graphql-ws") works too.
async def legacy():
    async with Client(transport=ws_transport(read, WebsocketsTransport.APOLLO_SUBPROTOCOL)) as s:
        async for e in s.subscribe(gql("subscription { overview { verdict } }")):
            return e["overview"]["verdict"]


try:
    v = asyncio.run(asyncio.wait_for(legacy(), 20))
    check("a subscription over the older graphql-ws protocol", v in ("HEALTHY", "DEGRADED", "CRITICAL"), v)
except Exception as e:  # noqa: BLE001
    check("a subscription over the older graphql-ws protocol", False, repr(e))

# --- Notifications: the notifier's deliveries and dead letters. ---
deadline = time.time() + 30
n = None
while time.time() < deadline:
    n = read_c.execute(gql("{ notifications { reportAt deliveries { channel result attempt } deadLetters { channel lastError } pending { channel } } }"))["notifications"]
    if n and n["deadLetters"] and any(d["channel"] == "internal" for d in n["deliveries"]):
        break
    time.sleep(0.5)
check("notifications: deliveries", n is not None and any(d["channel"] == "internal" for d in n["deliveries"]), n)
check("notifications: dead letters", n is not None and any(d["channel"] == "hook" and d["lastError"] for d in n["deadLetters"]), n)

# --- Protection. ---
nested = "query { " + "__schema { types { fields { type { " + "ofType { " * 14 + "name" + " }" * 14 + " } } } } }"
check("a query deeper than the limit is refused", "nested too deep" in json.dumps(
    requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}"}, json={"query": nested}, timeout=10).json()))
wide = "{ " + " ".join(f"a{i}: overview {{ verdict }}" for i in range(600)) + " }"
check("a query over the complexity limit is refused", "too complex" in json.dumps(
    requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}"}, json={"query": wide}, timeout=10).json()))
big = requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}"},
                    json={"query": "{ overview { verdict } }", "variables": {"pad": "x" * 70000}}, timeout=10)
check("a body over 64 KiB is 413", big.status_code == 413, big.status_code)
batch = requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}"},
                      json=[{"query": "{ overview { verdict } }"}] * 2, timeout=10)
check("a batch is 400", batch.status_code == 400 and "batch" in batch.text, (batch.status_code, batch.text))
form = requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}", "Content-Type": "text/plain"},
                     data='{"query": "{ overview { verdict } }"}', timeout=10)
check("a text/plain body (what a cross-site form can send) is 415", form.status_code == 415, form.status_code)
cross = requests.post(base + "/graphql", headers={"Authorization": f"Bearer {admin}", "Origin": "http://evil.example"},
                      json={"query": "mutation { reset }"}, timeout=10)
check("a cross-origin POST is 403", cross.status_code == 403, cross.status_code)
bad = requests.post(base + "/graphql", headers={"Authorization": f"Bearer {read}"}, json={"query": "{ overview {"}, timeout=10)
check("a syntax error is a GraphQL error naming the place", bad.status_code == 200
      and "locations" in bad.text and bad.json().get("data") is None, bad.text)

print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}")
sys.exit(1 if failures else 0)
