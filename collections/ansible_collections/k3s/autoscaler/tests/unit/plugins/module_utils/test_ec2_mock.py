# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import multiprocessing
import os
import re

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import (
    EC2Error,
    MockConfigError,
    MockEC2,
    STATE_CODES,
    default_store_path,
)

T0 = datetime.datetime(2026, 11, 30, 8, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
SPEC = {"instance_type": "t3.medium", "image_id": "ami-0123456789abcdef0", "tags": {"pool": "workers"}}
POOL = {"tag:pool": "workers"}


class FakeClock(object):
    def __init__(self, now=T0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "ec2.sqlite")


@pytest.fixture
def ec2(store, clock):
    m = MockEC2(store, region="us-east-1", boot_seconds=20, shutdown_seconds=5, clock=clock, sleep=clock.sleep)
    yield m
    m.close()


def live(ec2_, filters=None):
    f = dict(filters or POOL, **{"instance-state-name": ["pending", "running", "stopping", "stopped"]})
    return ec2_.list_instances(filters=f)


def test_run_instances_shape(ec2):
    instances, launched = ec2.run_instances(3, dict(SPEC, user_data="#!/bin/sh\necho hi\n", key_name="k"))
    assert launched is True and len(instances) == 3
    i = instances[0]
    assert re.match(r"^i-[0-9a-f]{17}$", i["instance_id"])
    assert i["state"] == {"code": 0, "name": "pending"}
    assert i["launch_time"] == "2026-11-30T08:00:00+00:00"
    assert i["instance_type"] == "t3.medium" and i["image_id"] == SPEC["image_id"]
    assert i["tags"] == {"pool": "workers"}
    assert i["key_name"] == "k"
    assert re.match(r"^10\.\d+\.\d+\.\d+$", i["private_ip_address"])
    assert i["private_dns_name"] == "ip-%s.ec2.internal" % i["private_ip_address"].replace(".", "-")
    assert i["placement"]["tenancy"] == "default"
    assert [x["placement"]["availability_zone"] for x in instances] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert len(set(x["private_ip_address"] for x in instances)) == 3
    assert i["subnet_id"].startswith("subnet-") and i["vpc_id"].startswith("vpc-")
    assert i["security_groups"][0]["group_name"] == "default"
    assert ec2.user_data(i["instance_id"]) == "#!/bin/sh\necho hi\n"
    assert ec2.user_data(instances[1]["instance_id"]) == "#!/bin/sh\necho hi\n"


def test_other_region_dns_and_azs(store, clock):
    m = MockEC2(store, region="eu-west-1", clock=clock)
    insts, dummy = m.run_instances(4, SPEC)
    assert insts[0]["private_dns_name"].endswith(".eu-west-1.compute.internal")
    assert [i["placement"]["availability_zone"] for i in insts] == ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1a"]
    # regions are separate: us-east-1 sees none of them
    assert MockEC2(store, region="us-east-1", clock=clock).list_instances() == []


def test_state_transitions_over_time(ec2, clock):
    (inst,), dummy = ec2.run_instances(1, SPEC)
    iid = inst["instance_id"]

    def state():
        return ec2.list_instances(instance_ids=[iid])[0]["state"]

    clock.now += 19.9
    assert state() == {"code": 0, "name": "pending"}
    clock.now += 0.1
    assert state() == {"code": 16, "name": "running"}
    assert ec2.stop_instances([iid]) == [iid]
    assert state() == {"code": 64, "name": "stopping"}
    clock.now += 5
    assert state() == {"code": 80, "name": "stopped"}
    assert ec2.stop_instances([iid]) == []  # idempotent
    assert ec2.start_instances([iid]) == [iid]
    assert state()["name"] == "pending"
    clock.now += 20
    assert state()["name"] == "running"
    assert ec2.terminate_instances([iid]) == [iid]
    assert state() == {"code": 32, "name": "shutting-down"}
    clock.now += 5
    t = ec2.list_instances(instance_ids=[iid])[0]
    assert t["state"] == {"code": 48, "name": "terminated"}
    assert "private_ip_address" not in t and t["private_dns_name"] == ""
    assert ec2.terminate_instances([iid]) == []
    with pytest.raises(EC2Error) as exc:
        ec2.start_instances([iid])
    assert exc.value.code == "IncorrectInstanceState"
    # terminated instances disappear from describe after an hour, user_data stays readable
    clock.now += 3601
    assert ec2.list_instances(filters={"instance-id": iid}) == []
    assert ec2.user_data(iid) is None
    assert STATE_CODES == {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


def test_wait_for_uses_injected_clock(ec2, clock):
    (inst,), dummy = ec2.run_instances(1, SPEC)
    assert ec2.wait_for([inst["instance_id"]], "running", timeout=60) is True
    assert 20 <= clock.now - T0 <= 21
    (inst2,), dummy = ec2.run_instances(1, SPEC)
    assert ec2.wait_for([inst2["instance_id"]], "running", timeout=5) is False


def test_filters(ec2, clock):
    a, dummy = ec2.run_instances(1, dict(SPEC, tags={"pool": "workers", "Name": "w1"}))
    b, dummy = ec2.run_instances(1, dict(SPEC, instance_type="m5.large", tags={"pool": "gpu"}))
    clock.now += 30
    c, dummy = ec2.run_instances(1, dict(SPEC, tags={"other": "x"}))

    def ids(f):
        return sorted(i["instance_id"] for i in ec2.list_instances(filters=f))

    a, b, c = a[0]["instance_id"], b[0]["instance_id"], c[0]["instance_id"]
    assert ids({"tag:pool": "workers"}) == [a]
    assert ids({"tag:pool": ["workers", "gpu"]}) == sorted([a, b])
    assert ids({"tag:pool": "w*"}) == [a]
    assert ids({"tag-key": "other"}) == [c]
    assert ids({"instance-type": "m5.large"}) == [b]
    assert ids({"instance-state-name": "running"}) == sorted([a, b])
    assert ids({"instance_state_name": "pending"}) == [c]  # underscores accepted like amazon.aws
    assert ids({"instance-state-code": 0}) == [c]
    assert ids({"instance-id": [a, c]}) == sorted([a, c])
    assert ids({"availability-zone": "us-east-1b"}) == [b]
    assert ids({"tag:Name": "w1", "instance-type": "t3.medium"}) == [a]
    assert ids({"tag:pool": "nope"}) == []
    with pytest.raises(EC2Error) as exc:
        ec2.describe_instances(filters={"bogus-filter": "x"})
    assert exc.value.code == "InvalidParameterValue" and "bogus-filter" in str(exc.value)


def test_describe_unknown_id_not_found(ec2):
    with pytest.raises(EC2Error) as exc:
        ec2.describe_instances(instance_ids=["i-0123456789abcdef0"])
    assert exc.value.code == "InvalidInstanceID.NotFound"
    with pytest.raises(EC2Error) as exc:
        ec2.user_data("i-0123456789abcdef0")
    assert exc.value.code == "InvalidInstanceID.NotFound"


def test_unknown_instance_type_and_missing_image(ec2):
    with pytest.raises(EC2Error) as exc:
        ec2.run_instances(1, dict(SPEC, instance_type="m5.huge"))
    assert exc.value.code == "InvalidParameterValue"
    assert "m5.huge" in str(exc.value) and "t3.nano" in str(exc.value)
    assert "RunInstances" in str(exc.value)
    with pytest.raises(EC2Error) as exc:
        ec2.run_instances(1, dict(SPEC, image_id=None))
    assert exc.value.code == "MissingParameter"
    assert ec2.list_instances() == []


def test_client_token_idempotency(ec2):
    first, launched = ec2.run_instances(2, SPEC, client_token="tok-1")
    again, launched2 = ec2.run_instances(2, SPEC, client_token="tok-1")
    assert launched is True and launched2 is False
    assert [i["instance_id"] for i in again] == [i["instance_id"] for i in first]
    assert all(i["client_token"] == "tok-1" for i in again)
    assert len(ec2.list_instances()) == 2
    with pytest.raises(EC2Error) as exc:
        ec2.run_instances(3, SPEC, client_token="tok-1")
    assert exc.value.code == "IdempotentParameterMismatch"
    other, launched3 = ec2.run_instances(1, SPEC, client_token="tok-2")
    assert launched3 and len(ec2.list_instances()) == 3
    # no token -> fresh token each call
    ec2.run_instances(1, SPEC)
    ec2.run_instances(1, SPEC)
    assert len(ec2.list_instances()) == 5


def test_exact_count_up_down_idempotent_oldest_first(ec2, clock):
    r = ec2.enforce_count(3, POOL, SPEC)
    assert len(r["launched"]) == 3 and r["terminated"] == [] and r["before"] == []
    assert len(live(ec2)) == 3
    again = ec2.enforce_count(3, POOL, SPEC)
    assert again["launched"] == [] and again["terminated"] == []
    # launch two newer ones, a minute later each
    clock.now += 60
    newer1 = ec2.enforce_count(4, POOL, SPEC)["launched"]
    clock.now += 60
    newer2 = ec2.enforce_count(5, POOL, SPEC)["launched"]
    oldest3 = r["launched"]
    down = ec2.enforce_count(2, POOL, SPEC)
    assert down["launched"] == []
    assert down["terminated"] == oldest3  # the three from T0, in launch order
    assert sorted(i["instance_id"] for i in live(ec2)) == sorted(newer1 + newer2)
    # terminated instances do not count
    assert ec2.enforce_count(2, POOL, SPEC)["terminated"] == []
    assert ec2.enforce_count(0, POOL, SPEC)["terminated"] == newer1 + newer2
    assert live(ec2) == []


def test_exact_count_dry_run_writes_nothing(ec2):
    ec2.enforce_count(2, POOL, SPEC)
    before = ec2.list_instances()
    up = ec2.enforce_count(5, POOL, SPEC, dry_run=True)
    assert len(up["launched"]) == 3
    down = ec2.enforce_count(1, POOL, SPEC, dry_run=True)
    assert len(down["terminated"]) == 1
    assert ec2.list_instances() == before
    with pytest.raises(EC2Error):
        ec2.enforce_count(5, POOL, dict(SPEC, instance_type="nope"), dry_run=True)


def test_read_only_does_not_create_store(tmp_path):
    path = str(tmp_path / "sub" / "never.sqlite")
    m = MockEC2(path, read_only=True)
    assert m.list_instances() == []
    assert m.enforce_count(2, POOL, SPEC, dry_run=True)["launched"] == ["(would launch)"] * 2
    assert not os.path.exists(path)


def test_set_tags_purge(ec2):
    (i,), dummy = ec2.run_instances(1, dict(SPEC, tags={"a": "1", "b": "2"}))
    iid = i["instance_id"]
    assert ec2.set_tags([iid], {"a": "1"}, purge_tags=False) == []
    assert ec2.set_tags([iid], {"c": "3"}, purge_tags=False) == [iid]
    assert ec2.list_instances(instance_ids=[iid])[0]["tags"] == {"a": "1", "b": "2", "c": "3"}
    assert ec2.set_tags([iid], {"a": "1"}, purge_tags=True, dry_run=True) == [iid]
    assert ec2.list_instances(instance_ids=[iid])[0]["tags"] == {"a": "1", "b": "2", "c": "3"}
    assert ec2.set_tags([iid], {"a": "1"}, purge_tags=True) == [iid]
    assert ec2.list_instances(instance_ids=[iid])[0]["tags"] == {"a": "1"}


def test_injected_next_calls_persist_across_instances(store, clock):
    MockEC2(store, clock=clock).inject_failure("InsufficientInstanceCapacity", "run_instances", next_calls=2)
    # a different MockEC2 (as another process would) sees and consumes the schedule
    for dummy in range(2):
        m = MockEC2(store, clock=clock)
        with pytest.raises(EC2Error) as exc:
            m.run_instances(1, SPEC)
        assert exc.value.code == "InsufficientInstanceCapacity"
        assert str(exc.value).startswith(
            "An error occurred (InsufficientInstanceCapacity) when calling the RunInstances operation: "
        )
        assert exc.value.to_result()["error"]["code"] == "InsufficientInstanceCapacity"
        # other operations unaffected
        assert m.describe_instances() == []
    m = MockEC2(store, clock=clock)
    assert m.pending_failures() == []
    insts, dummy = m.run_instances(1, SPEC)
    assert len(insts) == 1


def test_failure_also_blocks_exact_count_and_writes_nothing(store, clock):
    m = MockEC2(store, clock=clock)
    m.inject_failure("Unavailable", "any", next_calls=1)
    with pytest.raises(EC2Error) as exc:
        m.enforce_count(2, POOL, SPEC)
    assert exc.value.code == "Unavailable" and exc.value.operation == "DescribeInstances"
    m.inject_failure("RequestLimitExceeded", "run_instances", next_calls=1)
    with pytest.raises(EC2Error) as exc:
        m.enforce_count(2, POOL, SPEC)
    assert exc.value.code == "RequestLimitExceeded" and exc.value.operation == "RunInstances"
    assert m.list_instances() == []
    assert len(m.enforce_count(2, POOL, SPEC)["launched"]) == 2


def test_config_next_calls_counted_in_store(store, clock):
    rule = [{"code": "RequestLimitExceeded", "operation": "describe_instances", "next_calls": 2}]
    outcomes = []
    for dummy in range(4):  # a fresh MockEC2 per "run", same rule every time
        m = MockEC2(store, clock=clock, failures=rule)
        try:
            m.describe_instances()
            outcomes.append("ok")
        except EC2Error as e:
            outcomes.append(e.code)
    assert outcomes == ["RequestLimitExceeded", "RequestLimitExceeded", "ok", "ok"]
    MockEC2(store).clear_failures()
    with pytest.raises(EC2Error):
        MockEC2(store, clock=clock, failures=rule).describe_instances()


def test_probability_failures_seeded(store, clock):
    def run(seed):
        m = MockEC2(store, clock=clock, seed=seed, failures=[{"code": "Unavailable", "operation": "any", "probability": 0.5}])
        out = []
        for dummy in range(40):
            try:
                m.describe_instances()
                out.append(0)
            except EC2Error as e:
                assert e.code == "Unavailable"
                out.append(1)
        return out

    a, b = run(7), run(7)
    assert a == b  # deterministic with a seed
    assert 5 < sum(a) < 35
    m = MockEC2(store, clock=clock, failures=[{"code": "Unavailable", "probability": 1.0}])
    with pytest.raises(EC2Error):
        m.describe_instances()
    m = MockEC2(store, clock=clock, failures=[{"code": "Unavailable", "probability": 0.0}])
    assert m.describe_instances() == []
    # persistent probability rule
    p = MockEC2(store, clock=clock)
    p.inject_failure("InsufficientInstanceCapacity", "run_instances", probability=1.0)
    with pytest.raises(EC2Error):
        p.run_instances(1, SPEC)
    p.clear_failures()
    assert p.run_instances(1, SPEC)[1] is True


@pytest.mark.parametrize(
    "rule,field",
    [
        ({"code": "Boom", "next_calls": 1}, "code"),
        ({"code": "Unavailable", "operation": "reboot", "next_calls": 1}, "operation"),
        ({"code": "Unavailable"}, "exactly one"),
        ({"code": "Unavailable", "probability": 0.5, "next_calls": 1}, "exactly one"),
        ({"code": "Unavailable", "probability": 50}, "not a percent"),
        ({"code": "Unavailable", "next_calls": 0}, "next_calls"),
    ],
)
def test_bad_failure_config(store, rule, field):
    with pytest.raises(MockConfigError) as exc:
        MockEC2(store, failures=[rule])
    assert field in str(exc.value) and "mock.failures[0]" in str(exc.value)


def test_latency_sleeps_per_call(store, clock):
    m = MockEC2(store, clock=clock, sleep=clock.sleep, latency_seconds=0.25)
    m.describe_instances()
    m.run_instances(1, SPEC)
    assert clock.slept == [0.25, 0.25]


def test_default_store_path_env(monkeypatch, tmp_path):
    monkeypatch.setenv("K3S_AUTOSCALER_EC2_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == str(tmp_path / "x.sqlite")
    monkeypatch.delenv("K3S_AUTOSCALER_EC2_STORE")
    assert default_store_path() == os.path.expanduser("~/.cache/k3s-autoscaler/ec2.sqlite")


def _race_worker(store, barrier, rounds, targets, results):
    # latency widens the window between the DescribeInstances count and the Run/TerminateInstances
    # write, so a non-atomic implementation would overshoot here
    m = MockEC2(store, region="us-east-1", boot_seconds=0, shutdown_seconds=0, latency_seconds=0.02)
    for r in range(rounds):
        barrier.wait()
        res = m.enforce_count(targets[r], POOL, SPEC)
        results.put((r, len(res["launched"]), len(res["terminated"])))
        barrier.wait()


def test_two_processes_racing_exact_count_never_overshoot(store):
    MockEC2(store).close()  # create the schema first
    rounds = 25
    targets = [(r % 5) + 1 for r in range(rounds)]  # 1,2,3,4,5,1,2,...
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(store, barrier, rounds, targets, results)) for dummy in range(2)]
    for p in procs:
        p.start()
    checker = MockEC2(store)
    prev = 0
    try:
        for r in range(rounds):
            barrier.wait(timeout=60)  # both workers start the round together
            barrier.wait(timeout=60)  # both done
            outcomes = [results.get(timeout=30) for dummy in range(2)]
            count = len(live(checker))
            assert count == targets[r], "round %d: %d live, want %d" % (r, count, targets[r])
            launched = sum(o[1] for o in outcomes)
            terminated = sum(o[2] for o in outcomes)
            # exactly one of the two did the work; together they moved prev -> target
            assert launched == max(targets[r] - prev, 0) and terminated == max(prev - targets[r], 0)
            prev = targets[r]
    except BaseException:
        # release the workers at once when an assertion failed. Only then: aborting after the last
        # round would break a worker that has not yet woken from the final wait (seen under load)
        barrier.abort()
        raise
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    assert [p.exitcode for p in procs] == [0, 0]


def test_config_error_message_passes_through(store, clock):
    m = MockEC2(store, clock=clock, failures=[{"code": "Unavailable", "probability": 1.0, "error_message": "zone a is on fire"}])
    with pytest.raises(EC2Error) as exc:
        m.describe_instances()
    assert str(exc.value) == "An error occurred (Unavailable) when calling the DescribeInstances operation: zone a is on fire"
    assert exc.value.to_result()["response_metadata"]["http_status_code"] == 503
