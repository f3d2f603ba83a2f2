#!/usr/bin/env python3
"""The fleet test network (run it through scripts/fleet.sh, which checks root and builds).

N QMOI hosts, each a network namespace with its own host name, on a bridge of a private
subnet (10.213.0.0/16, nothing outside the machine), each running a full QMOI stack (the
shipped config/, its dashboard bound to the host's address with a token). Beside them, in
namespaces of their own: Prometheus (scrapes every host by file_sd, receives remote
write from the odd hosts, evaluates contrib/prometheus/qmoi-rules.yml), VictoriaMetrics
(remote write from the even hosts), a two-replica Alertmanager cluster and a webhook
receiver. Then it checks, step by step (each step prints PASS or FAIL):

  1. every host's verdict in Prometheus and on the Fleet page (host 1's dashboard) equals
     the verdict of its own supervisor; the pushing hosts are in the store they push to;
  2. every Grafana panel query of contrib/grafana returns data;
  3. a host made critical (its critical endpoint's server stopped) reaches the webhook
     through the Alertmanager cluster exactly once, with its `host` label;
  4. a stopped stack turns stale on the Fleet page and QmoiStackDown fires through
     Alertmanager to the webhook;
  5. with one Alertmanager replica killed, another host's critical alert still arrives,
     exactly once.

--bench adds figures: per-host RSS of the stack, Prometheus scrape duration per host,
remote-write samples/s and bytes/s per host, supervisor CPU and RSS with and without
remote write, and critical report -> webhook latency over many hosts (median, p99).

Everything is torn down at the end (processes by PID, namespaces, the bridge), also when
a step fails or the run is interrupted; --keep leaves it running for a look around.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from bench_common import cpu_ticks as proc_cpu_ticks, mem_kib

def rss_kib(pid):
    return mem_kib(pid) or 0


def cpu_ticks(pid):
    return proc_cpu_ticks(pid) or 0


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "fleet-test-token-0123456789"
INFRA_IP = "10.213.0.2"
AM_IPS = ["10.213.0.11", "10.213.0.12"]


def host_ip(i):
    return f"10.213.{1 + (i - 1) // 250}.{(i - 1) % 250 + 1}"


def host_name(i):
    return f"fleet-h{i}"


class Fleet:
    def __init__(self, n, bin_dir, work, bench):
        self.n, self.bin_dir, self.work, self.bench = n, bin_dir, work, bench
        self.prefix = f"qf{os.getpid() % 100000}"
        self.bridge = self.prefix + "br"
        self.namespaces = []
        self.procs = []  # (name, Popen)
        self.supervisors = {}  # i -> Popen
        self.apps = {}  # i -> Popen (the critical endpoint's server)
        self.ams = []
        self.failures = []
        self.figures = []
        self.ns_of = {}  # i -> its namespace
        self.pushes = {}  # i -> the receiver it pushes to (None: pushes nothing)
        self.last_bad = []  # the verdicts that disagreed at the last look

    # ---- plumbing ----

    def sh(self, *cmd, check=True):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r

    def netns(self, name, ip):
        ns = f"{self.prefix}-{name}"
        veth = f"{self.prefix}v{len(self.namespaces)}"
        self.sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.sh("ip", "link", "set", veth, "master", self.bridge, "up")
        self.sh("ip", "-n", ns, "addr", "add", f"{ip}/16", "dev", "eth0")
        self.sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def spawn(self, label, ns, cmd, cwd=None, env=None, hostname=None):
        log = open(os.path.join(self.work, f"{label}.log"), "wb")
        if hostname:
            # Its own UTS namespace: the stack's reports and alerts carry this host name.
            cmd = ["unshare", "--uts", "sh", "-c", f'hostname "$0" && exec "$@"', hostname] + cmd
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, cwd=cwd, env=env, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        self.procs.append((label, p))
        return p

    def get(self, url, token=None, timeout=10):
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode()

    def query(self, base, promql):
        url = f"{base}/api/v1/query?query={urllib.parse.quote(promql)}"
        try:
            j = json.loads(self.get(url))
        except (urllib.error.URLError, OSError, ValueError):
            return []
        return j.get("data", {}).get("result", [])

    def wait(self, what, f, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                v = f()
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                v = None
            if v:
                return v
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def step(self, name, f):
        t0 = time.time()
        try:
            detail = f()
            print(f"PASS  {name} ({time.time() - t0:.1f}s){': ' + detail if detail else ''}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the run goes on
            self.failures.append(name)
            print(f"FAIL  {name} ({time.time() - t0:.1f}s): {e}", flush=True)

    # ---- building the network ----

    def up(self):
        self.sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.sh("ip", "addr", "add", "10.213.0.1/16", "dev", self.bridge)
        self.sh("ip", "link", "set", self.bridge, "up")
        self.infra = self.netns("infra", INFRA_IP)
        self.start_receiver()
        self.start_prometheus()
        self.start_vm()
        for k, ip in enumerate(AM_IPS):
            self.start_am(k, ip)
        t0 = time.time()
        for i in range(1, self.n + 1):
            self.start_host(i)
        print(f"      {self.n} hosts started in {time.time() - t0:.1f}s", flush=True)

    def start_receiver(self):
        path = os.path.join(self.work, "receiver.py")
        self.hook_file = os.path.join(self.work, "webhook.jsonl")
        with open(path, "w") as f:
            f.write(
                "import http.server, json, sys, time\n"
                "out = open(sys.argv[2], 'a')\n"
                "class H(http.server.BaseHTTPRequestHandler):\n"
                "    def do_POST(self):\n"
                "        body = self.rfile.read(int(self.headers.get('content-length', 0)))\n"
                "        out.write(json.dumps({'t': time.time(), 'body': json.loads(body)}) + '\\n'); out.flush()\n"
                "        self.send_response(200); self.end_headers()\n"
                "    def log_message(self, *a): pass\n"
                "http.server.ThreadingHTTPServer((sys.argv[1], 9099), H).serve_forever()\n")
        open(self.hook_file, "w").close()
        self.spawn("webhook", self.infra, [sys.executable, path, INFRA_IP, self.hook_file])

    def hooks(self):
        out = []
        with open(self.hook_file) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
        return out

    def notifications(self, alertname, host, since=0.0):
        """Webhook calls since `since` that carry a firing alert `alertname` of `host`."""
        found = []
        for h in self.hooks():
            if h["t"] < since:
                continue
            for a in h["body"].get("alerts", []):
                l = a.get("labels", {})
                if l.get("alertname") == alertname and l.get("host") == host and a.get("status") == "firing":
                    found.append((h, a))
        return found

    def start_prometheus(self):
        d = os.path.join(self.work, "prometheus")
        os.makedirs(d)
        with open(os.path.join(d, "token"), "w") as f:
            f.write(TOKEN)
        rules = open(os.path.join(REPO, "contrib/prometheus/qmoi-rules.yml")).read()
        # Test only: the rules' `for:` shortened, so a host-down fires within seconds.
        rules = re.sub(r"for: \d+m", "for: 10s", rules)
        with open(os.path.join(d, "rules.yml"), "w") as f:
            f.write(rules)
        targets = [{"targets": [f"{host_ip(i)}:8080"], "labels": {"host": host_name(i)}} for i in range(1, self.n + 1)]
        with open(os.path.join(d, "targets.json"), "w") as f:
            json.dump(targets, f)
        am = ", ".join(f"'{ip}:9093'" for ip in AM_IPS)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(
                "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
                f"rule_files: ['{d}/rules.yml']\n"
                f"alerting: {{alertmanagers: [{{static_configs: [{{targets: [{am}]}}]}}]}}\n"
                "scrape_configs:\n"
                "  - job_name: qmoi\n"
                f"    authorization: {{credentials_file: '{d}/token'}}\n"
                f"    file_sd_configs: [{{files: ['{d}/targets.json']}}]\n")
        self.prom = f"http://{INFRA_IP}:9090"
        self.spawn("prometheus", self.infra, [
            "prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
            f"--web.listen-address={INFRA_IP}:9090", "--web.enable-remote-write-receiver"])
        self.wait("Prometheus ready", lambda: self.get(f"{self.prom}/-/ready"), 60)

    def start_vm(self):
        self.vm = f"http://{INFRA_IP}:8428"
        self.spawn("victoria-metrics", self.infra, [
            "victoria-metrics", f"-httpListenAddr={INFRA_IP}:8428",
            f"-storageDataPath={os.path.join(self.work, 'vm')}", "-search.latencyOffset=0s"])
        self.wait("VictoriaMetrics ready", lambda: self.get(f"{self.vm}/health"), 60)

    def start_am(self, k, ip):
        ns = self.netns(f"am{k + 1}", ip)
        d = os.path.join(self.work, f"am{k + 1}")
        os.makedirs(d)
        with open(os.path.join(d, "alertmanager.yml"), "w") as f:
            f.write(
                "route: {receiver: hook, group_by: [alertname, host, component], group_wait: 0s, "
                "group_interval: 5s, repeat_interval: 4h}\n"
                f"receivers: [{{name: hook, webhook_configs: [{{url: 'http://{INFRA_IP}:9099/hook', send_resolved: false}}]}}]\n")
        peer = AM_IPS[1 - k]
        p = self.spawn(f"am{k + 1}", ns, [
            "prometheus-alertmanager", f"--config.file={d}/alertmanager.yml", f"--storage.path={d}/data",
            f"--web.listen-address={ip}:9093", f"--cluster.listen-address={ip}:9094",
            f"--cluster.advertise-address={ip}:9094", f"--cluster.peer={peer}:9094",
            "--cluster.peer-timeout=3s", "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=5s"])
        self.ams.append(p)
        self.wait(f"Alertmanager {k + 1} ready", lambda: self.get(f"http://{ip}:9093/-/ready"), 60)

    def start_host(self, i):
        ip, name = host_ip(i), host_name(i)
        ns = self.netns(f"h{i}", ip)
        d = os.path.join(self.work, name)
        shutil.copytree(os.path.join(REPO, "config"), os.path.join(d, "config"))
        shipped = open(os.path.join(REPO, "config/master_monitor.toml")).read()
        components = shipped[shipped.index("\n[monitoring_components.") + 1:]
        # The report of api_endpoints every 5 s (shipped: 15 s): the alert tests wait less.
        components = components.replace("interval = 15 ", "interval = 5 ", 1)
        # Odd hosts push to Prometheus, even ones to VictoriaMetrics; with --bench every
        # fifth pushes nothing, the control group the cost of remote write is measured on.
        push = None if (self.bench and i % 5 == 0) else (self.prom if i % 2 == 1 else self.vm)
        self.pushes[i] = push
        fleet = (f'[fleet]\nquery_url = "{self.prom}"\nstale_after = "30s"\n' if i == 1 else "")
        interval = "15s" if self.bench else "5s"
        with open(os.path.join(d, "config/master_monitor.toml"), "w") as f:
            f.write(
                f'[dashboard]\nhost = "{ip}"\nport = 8080\n'
                f'[[dashboard.auth.tokens]]\nname = "fleet"\ntoken = "{TOKEN}"\nrole = "admin"\n'
                "[dashboard.rate_limit]\nenabled = false\n"
                + (f'[remote_write]\ninterval = "{interval}"\n[[remote_write.receivers]]\nurl = "{push}/api/v1/write"\n'
                   if push else "")
                + f"{fleet}\n{components}")
        with open(os.path.join(d, "config/api_endpoints.toml"), "w") as f:
            f.write('probe_interval = "1s"\n[[endpoints]]\nname = "app"\nkind = "tcp"\n'
                    f'target = "{ip}:9000"\ncritical = true\n')
        with open(os.path.join(d, "config/notification.toml"), "w") as f:
            f.write('[grouping]\ngroup_wait = "0s"\ngroup_interval = "0s"\n'
                    '[priorities.critical]\nchannels = ["alertmanager"]\n'
                    '[priorities.warning]\nchannels = ["internal"]\n[priorities.info]\nchannels = ["internal"]\n'
                    '[channels.internal]\nenabled = true\n'
                    f'[channels.alertmanager]\nurls = [{", ".join(f"{chr(34)}http://{a}:9093{chr(34)}" for a in AM_IPS)}]\n'
                    'resend_interval = "30s"\n')
        env = dict(os.environ, PATH=f"{self.bin_dir}:{os.environ.get('PATH', '')}")
        self.apps[i] = self.spawn(f"{name}-app", ns, [sys.executable, "-m", "http.server", "9000", "--bind", ip],
                                  cwd=d)
        # The endpoint's server first: a stack that probed it before it listened would
        # start with a critical alert (a flap the alert tests would count).
        self.wait(f"{name}'s app listening", lambda: self.get(f"http://{ip}:9000/", timeout=2), 30)
        self.supervisors[i] = self.spawn(f"{name}-supervisor", ns,
                                         [os.path.join(self.bin_dir, "qmoi-supervisor"), "start"],
                                         cwd=d, env=env, hostname=name)
        self.ns_of[i] = ns

    # ---- the checks ----

    def own_verdict(self, i):
        j = json.loads(self.get(f"http://{host_ip(i)}:8080/api/monitor/status", TOKEN))
        return j["verdict"]["overall"]

    def check_verdicts(self):
        names = {0: "healthy", 1: "degraded", 2: "critical"}

        def all_agree():
            fleet = json.loads(self.get(f"http://{host_ip(1)}:8080/api/fleet", TOKEN))
            on_page = {h["host"]: h["verdict"] for h in fleet["hosts"]}
            in_prom = {r["metric"]["host"]: names.get(int(float(r["value"][1])))
                       for r in self.query(self.prom, "max by (host) (qmoi_verdict)")}
            bad = []
            for i in range(1, self.n + 1):
                own = self.own_verdict(i)
                if on_page.get(host_name(i)) != own or in_prom.get(host_name(i)) != own:
                    bad.append(f"{host_name(i)}: own {own}, Prometheus {in_prom.get(host_name(i))}, "
                               f"Fleet page {on_page.get(host_name(i))}")
            self.last_bad = bad
            return not bad and fleet

        try:
            fleet = self.wait("every verdict in Prometheus and on the Fleet page", all_agree, 180)
        except TimeoutError as e:
            raise RuntimeError(f"{e}: {'; '.join(self.last_bad)}") from e
        pushed = [host_name(i) for i, url in self.pushes.items() if url == self.vm]
        for h in pushed:
            self.wait(f"{h} in VictoriaMetrics", lambda: self.query(self.vm, f'qmoi_verdict{{host="{h}"}}'), 60)
        s = fleet["summary"]
        return f"{s['hosts']} hosts ({s['healthy']} healthy, {s['degraded']} degraded, {s['critical']} critical)"

    def check_panels(self):
        # The shipped config has no backup targets and no cloud providers: those panels are
        # tested with real data by crates/qmoi-supervisor/tests/contrib.rs.
        no_data_here = {"Backup age", "Cloud cost"}
        queries = []
        for name in ["qmoi-host.json", "qmoi-fleet.json"]:
            d = json.load(open(os.path.join(REPO, "contrib/grafana", name)))
            for p in d["panels"]:
                if p["title"] in no_data_here:
                    continue
                for t in p["targets"]:
                    host = host_name(1) if name == "qmoi-host.json" else ".*"
                    q = t["expr"].replace("$__rate_interval", "1m").replace("$host", host)
                    queries.append((f"{name}/{p['title']}", q))
        pending = list(queries)
        deadline = time.time() + 120
        while pending and time.time() < deadline:
            pending = [(w, q) for w, q in pending if not self.query(self.prom, q)]
            if pending:
                time.sleep(2)
        if pending:
            raise RuntimeError("no data: " + "; ".join(f"{w}: {q}" for w, q in pending))
        return f"{len(queries)} panel queries return data"

    def make_critical(self, i):
        p = self.apps.pop(i)
        p.terminate()
        p.wait()
        return time.time()

    def exactly_once(self, alertname, host, since, settle=12):
        got = self.wait(f"{alertname} of {host} at the webhook", lambda: self.notifications(alertname, host, since), 120)
        time.sleep(settle)  # a duplicate from the other replica would come within its peer timeout
        got = self.notifications(alertname, host, since)
        if len(got) != 1:
            raise RuntimeError(f"{alertname} of {host} arrived {len(got)} times")
        return got[0]

    def check_critical(self):
        t = self.make_critical(1)
        h, a = self.exactly_once("endpoint:app", host_name(1), t)
        return f"one notification, labels host={a['labels']['host']} severity={a['labels']['severity']}"

    def check_host_down(self):
        i = 2 if self.n >= 2 else 1
        p = self.supervisors.pop(i)
        t = time.time()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)

        def stale():
            fleet = json.loads(self.get(f"http://{host_ip(1)}:8080/api/fleet", TOKEN))
            return any(h["host"] == host_name(i) and h["stale"] for h in fleet["hosts"])

        self.wait(f"{host_name(i)} stale on the Fleet page", stale, 120)
        self.exactly_once("QmoiStackDown", host_name(i), t, settle=8)
        return f"{host_name(i)} stale on the Fleet page; QmoiStackDown reached the webhook once"

    def check_replica_killed(self):
        i = 3
        am = self.ams[0]
        am.kill()
        am.wait()
        t = self.make_critical(i)
        self.exactly_once("endpoint:app", host_name(i), t)
        return f"{host_name(i)}'s alert arrived once through the remaining replica"

    # ---- figures (--bench) ----

    def supervisor_pid(self, i):
        """The supervisor's own PID (under `ip netns exec` and `unshare`, which exec it)."""
        pids = self.sh("ip", "netns", "pids", self.ns_of[i], check=False).stdout.split()
        for pid in pids:
            try:
                if open(f"/proc/{pid}/comm").read().strip() == "qmoi-supervisor":
                    return int(pid)
            except OSError:
                pass
        return None

    def bench_figures(self):
        hz = os.sysconf("SC_CLK_TCK")
        hosts = [i for i in range(1, self.n + 1) if i in self.supervisors]
        stack_rss = []
        for i in hosts:
            pids = self.sh("ip", "netns", "pids", self.ns_of[i], check=False).stdout.split()
            apps = {self.apps[i].pid} if i in self.apps else set()
            stack_rss.append(sum(rss_kib(int(p)) for p in pids if int(p) not in apps) / 1024)
        sup = {i: self.supervisor_pid(i) for i in hosts}
        t0 = {i: cpu_ticks(p) for i, p in sup.items() if p}
        w0 = time.time()
        time.sleep(60)
        dt = time.time() - w0
        cpu = {i: (cpu_ticks(p) - t0[i]) / hz / dt * 100 for i, p in sup.items() if p and i in t0}
        rss = {i: rss_kib(p) / 1024 for i, p in sup.items() if p}
        # Host 1 also serves the Fleet page: not compared.
        pushing = [i for i in cpu if self.pushes.get(i) and i != 1]
        control = [i for i in cpu if not self.pushes.get(i) and i != 1]
        scrape = self.query(self.prom, 'avg(scrape_duration_seconds{job="qmoi"})')
        samples = self.query(self.prom, "avg(rate(qmoi_remote_write_sent_samples_total[1m]))")
        nbytes = self.query(self.prom, "avg(rate(qmoi_remote_write_sent_bytes_total[1m]))")
        fig = self.figures.append
        fig(f"hosts: {len(hosts)} full stacks (8 processes each)")
        fig(f"stack RSS per host: median {statistics.median(stack_rss):.1f} MiB, max {max(stack_rss):.1f} MiB")
        if scrape:
            fig(f"Prometheus scrape duration per host: avg {float(scrape[0]['value'][1]) * 1000:.1f} ms")
        if samples and nbytes:
            fig(f"remote write per host: {float(samples[0]['value'][1]):.1f} samples/s, "
                f"{float(nbytes[0]['value'][1]):.0f} bytes/s (compressed)")
        if pushing and control:
            cp, cc = statistics.mean(cpu[i] for i in pushing), statistics.mean(cpu[i] for i in control)
            rp, rc = statistics.median(rss[i] for i in pushing), statistics.median(rss[i] for i in control)
            fig(f"supervisor CPU over {dt:.0f}s (% of one core): {cp:.3f} with remote write ({len(pushing)} hosts), "
                f"{cc:.3f} without ({len(control)} hosts): remote write adds {cp - cc:.3f}")
            fig(f"supervisor RSS (median): {rp:.1f} MiB with remote write, {rc:.1f} MiB without: adds {rp - rc:.1f} MiB")
        return ""

    def bench_latency(self, hosts):
        lat = []
        since = time.time()
        for i in hosts:
            if i not in self.apps:
                continue
            self.make_critical(i)
        deadline = time.time() + 180
        want = {host_name(i) for i in hosts}
        while time.time() < deadline:
            got = {}
            for h in self.hooks():
                if h["t"] < since:
                    continue
                for a in h["body"].get("alerts", []):
                    l = a.get("labels", {})
                    if l.get("alertname") == "endpoint:app" and l.get("host") in want:
                        got.setdefault(l["host"], []).append((h["t"], a["startsAt"]))
            if len(got) == len(want):
                break
            time.sleep(1)
        lost = want - set(got)
        dup = [h for h, v in got.items() if len(v) > 1]
        for h, v in got.items():
            t, starts = v[0]
            st = time.mktime(time.strptime(starts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            frac = re.match(r"\.(\d+)", starts[19:])
            st += float("0." + frac.group(1)) if frac else 0.0
            lat.append(t - st)
        lat.sort()
        if lat:
            p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
            self.figures.append(
                f"critical report -> webhook through the cluster ({len(lat)} hosts, Alertmanager group_wait 0s): "
                f"median {statistics.median(lat):.2f} s, p99 {p99:.2f} s, max {lat[-1]:.2f} s")
        self.figures.append(f"alerts lost: {len(lost)}, delivered twice: {len(dup)}")
        if lost or dup:
            raise RuntimeError(f"lost {sorted(lost)}, twice {dup}")
        return f"{len(lat)} critical hosts, each notified once"

    # ---- teardown ----

    def down(self):
        # A second Ctrl-C or SIGTERM must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for label, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for label, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # Anything left inside our namespaces was started by this run (a monitor whose
        # supervisor was killed): stop it by PID.
        for ns in self.namespaces:
            for pid in self.sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        time.sleep(0.5)
        for ns in self.namespaces:
            self.sh("ip", "netns", "del", ns, check=False)
        self.sh("ip", "link", "del", self.bridge, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=3, help="QMOI hosts (default 3; at most 1000)")
    ap.add_argument("--bin-dir", required=True, help="folder with qmoi-supervisor and the monitors")
    ap.add_argument("--bench", action="store_true", help="also measure and print the figures")
    ap.add_argument("--keep", action="store_true", help="leave everything running (Ctrl-C tears it down)")
    a = ap.parse_args()
    if not 1 <= a.n <= 1000:
        ap.error("n must be between 1 and 1000")
    work = tempfile.mkdtemp(prefix="qmoi-fleet-")
    f = Fleet(a.n, os.path.abspath(a.bin_dir), work, a.bench)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"==> fleet of {a.n} hosts in {work} (namespaces {f.prefix}-*, bridge {f.bridge}, 10.213.0.0/16)", flush=True)
    try:
        f.up()
        f.step("verdicts in Prometheus, VictoriaMetrics and on the Fleet page", f.check_verdicts)
        f.step("every Grafana panel query returns data", f.check_panels)
        if a.bench:
            f.step("figures", f.bench_figures)
            hosts = [i for i in range(4, a.n + 1)]
            f.step("critical report -> webhook latency", lambda: f.bench_latency(hosts))
        f.step("a critical host is notified exactly once, with its host label", f.check_critical)
        if a.n >= 2:
            f.step("a stopped stack: stale on the Fleet page, QmoiStackDown through Alertmanager", f.check_host_down)
        if a.n >= 3:
            f.step("one Alertmanager replica killed: the alert still arrives, once", f.check_replica_killed)
        for line in f.figures:
            print(f"      {line}")
        if a.keep:
            print("==> --keep: running; Ctrl-C tears it down", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("==> interrupted", flush=True)
        f.failures.append("interrupted")
    except Exception as e:  # noqa: BLE001
        print(f"FAIL  setting up the fleet: {e}", flush=True)
        f.failures.append("setup")
    finally:
        f.down()
        if f.failures:
            print(f"==> logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"==> {'FAILED: ' + ', '.join(f.failures) if f.failures else 'all steps passed'}", flush=True)
    sys.exit(1 if f.failures else 0)


if __name__ == "__main__":
    main()
