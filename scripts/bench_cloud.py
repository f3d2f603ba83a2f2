"""qmoi-cloud inventory of many instances from the moto AWS emulator, against a plain boto3
listing of the same resources (what an operator's script does), in one run.

Usage: bench_cloud.py BIN_DIR VENV_PYTHON INSTANCES REGIONS RUNS

Seeds moto (on a loopback port) with INSTANCES instances spread over REGIONS regions (10%
stopped), one extra volume and one address per 20 instances, then times `qmoi-cloud --once`
(inventory, status checks, CloudWatch for CPU and idle, Cost Explorer) and the boto3 peer
under /usr/bin/time -v. Prints figures; asserts nothing. The emulator's own speed bounds
both: its time per page is in the figures as well.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_common import free_port  # noqa: E402

BIN, PY, N, NREG, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1"][:NREG]

SEED = r'''
import boto3, sys
url, n, regions = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
kw = dict(endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing")
per = n // len(regions)
for k, region in enumerate(regions):
    ec2 = boto3.client("ec2", region_name=region, **kw)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    count = per + (n - per * len(regions) if k == 0 else 0)
    ids = []
    while len(ids) < count:
        m = min(500, count - len(ids))
        r = ec2.run_instances(ImageId=ami, MinCount=m, MaxCount=m, InstanceType="t3.micro",
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"bench-{region}"}]}])
        ids += [i["InstanceId"] for i in r["Instances"]]
    ec2.stop_instances(InstanceIds=ids[: count // 10])
    for _ in range(count // 20):
        ec2.create_volume(Size=20, AvailabilityZone=region + "a")
        ec2.allocate_address(Domain="vpc")
    print(region, len(ids), flush=True)
'''

PEER = r'''
import boto3, sys
url, regions = sys.argv[1], sys.argv[2].split(",")
kw = dict(endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing")
total = 0
for region in regions:
    ec2 = boto3.client("ec2", region_name=region, **kw)
    for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
        total += sum(len(r["Instances"]) for r in page["Reservations"])
    for page in ec2.get_paginator("describe_instance_status").paginate(PaginationConfig={"PageSize": 1000}):
        pass
    for page in ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 500}):
        pass
    ec2.describe_addresses()
print(total)
'''


def timed(cmd, env=None):
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    rss = next((int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident set size" in l), 0)
    return wall, rss, p.returncode, p.stdout, p.stderr


def main():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        work = tempfile.mkdtemp(prefix="qmoi-bench-cloud-")
        t0 = time.monotonic()
        subprocess.run([PY, "-c", SEED, url, str(N), ",".join(REGIONS)], check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {N} instances in {len(REGIONS)} regions ({', '.join(REGIONS)}) in {time.monotonic() - t0:.1f} s")
        cfg = os.path.join(work, "cloud.toml")
        with open(cfg, "w") as f:
            f.write(f'data_dir = "{work}/data"\ntimeout = "10m"\nrequest_timeout = "5m"\n'
                     f'[[providers]]\nname = "aws"\ntype = "aws"\nregions = {json.dumps(REGIONS)}\n'
                     f'endpoint_url = "{url}"\nmonthly_budget = 1000.0\n')
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_EC2_METADATA_DISABLED="true", HOME=work)
        q, p = [], []
        for i in range(RUNS):
            # A fresh data dir each time: every run also makes its Cost Explorer call.
            subprocess.run(["rm", "-rf", os.path.join(work, "data")])
            wall, rss, rc, out, err = timed([os.path.join(BIN, "qmoi-cloud"), "--once", "-c", cfg,
                                             "--report-dir", work, "--log-dir", work], env)
            rep = json.load(open(os.path.join(work, "cloud_resources_latest.json")))
            total = rep["details"]["instances_total"]
            reqs = rep["metrics"].get('qmoi_cloud_api_requests_total{provider="aws"}')
            q.append((wall, rss))
            print(f"  qmoi-cloud --once run {i + 1}: {wall:.2f} s, max RSS {rss / 1024:.1f} MiB, "
                  f"{total} instances, {reqs:.0f} requests, exit {rc}")
            wall, rss, rc, out, _ = timed([PY, "-c", PEER, url, ",".join(REGIONS)])
            p.append((wall, rss))
            print(f"  boto3 listing run {i + 1}:     {wall:.2f} s, max RSS {rss / 1024:.1f} MiB, {out.strip()} instances")
        med = lambda xs, k: statistics.median(x[k] for x in xs)
        print()
        print(f"{'':28} {'wall (median)':>14} {'max RSS (median)':>18}")
        print(f"{'qmoi-cloud --once':28} {med(q, 0):>12.2f} s {med(q, 1) / 1024:>14.1f} MiB")
        print(f"{'boto3 listing (peer)':28} {med(p, 0):>12.2f} s {med(p, 1) / 1024:>14.1f} MiB")
        print("qmoi-cloud also queries CloudWatch (CPU + idle) and Cost Explorer; the peer only lists.")
    finally:
        moto.terminate()
        moto.wait()


main()
