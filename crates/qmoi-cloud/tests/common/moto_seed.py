"""Seed the moto AWS emulator for the cloud monitor's tests, with boto3 (the AWS SDK for
Python that moto installs): a client other than the monitor's own puts the resources in.

Usage: moto_seed.py URL < steps.json

steps.json is a list of steps run in order; each names its "op", a "region" (default
us-east-1) and its arguments. A step with "as": "x" saves its result under x, and a later
argument written "$x" is that result. Prints the saved results as one JSON object.

ops: launch (name, tags) -> instance id; stop / start (id); volume (size, zone) -> volume
id; attach (volume, instance, device); address -> allocation id; associate (allocation,
instance); cpu (id, value, span, step: seconds) puts CPUUtilization datapoints.
"""
import datetime
import json
import sys

import boto3

url = sys.argv[1]
kw = dict(endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing")
saved = {}


def arg(step, key, default=None):
    v = step.get(key, default)
    if isinstance(v, str) and v.startswith("$"):
        return saved[v[1:]]
    return v


for step in json.load(sys.stdin):
    region = step.get("region", "us-east-1")
    ec2 = boto3.client("ec2", region_name=region, **kw)
    op = step["op"]
    result = None
    if op == "launch":
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        tags = [{"Key": "Name", "Value": arg(step, "name")}]
        tags += [{"Key": k, "Value": v} for k, v in step.get("tags", {}).items()]
        r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                              TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        result = r["Instances"][0]["InstanceId"]
    elif op == "stop":
        ec2.stop_instances(InstanceIds=[arg(step, "id")])
    elif op == "start":
        ec2.start_instances(InstanceIds=[arg(step, "id")])
    elif op == "volume":
        result = ec2.create_volume(Size=arg(step, "size"), AvailabilityZone=arg(step, "zone"))["VolumeId"]
    elif op == "attach":
        ec2.attach_volume(VolumeId=arg(step, "volume"), InstanceId=arg(step, "instance"),
                          Device=arg(step, "device", "/dev/sdf"))
    elif op == "address":
        result = ec2.allocate_address(Domain="vpc")["AllocationId"]
    elif op == "associate":
        ec2.associate_address(AllocationId=arg(step, "allocation"), InstanceId=arg(step, "instance"))
    elif op == "cpu":
        cw = boto3.client("cloudwatch", region_name=region, **kw)
        now = datetime.datetime.now(datetime.timezone.utc)
        span, step_s = datetime.timedelta(seconds=arg(step, "span")), datetime.timedelta(seconds=arg(step, "step"))
        data, t = [], now - span
        while t <= now:
            data.append({"MetricName": "CPUUtilization", "Timestamp": t, "Value": float(arg(step, "value")),
                         "Dimensions": [{"Name": "InstanceId", "Value": arg(step, "id")}]})
            t += step_s
        for i in range(0, len(data), 500):
            cw.put_metric_data(Namespace="AWS/EC2", MetricData=data[i:i + 500])
    else:
        sys.exit(f"moto_seed.py: unknown op {op!r}")
    if "as" in step:
        saved[step["as"]] = result
print(json.dumps(saved))
