# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end tests of k3s.autoscaler.ec2_instance through ``ansible localhost -m``."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
from module_runner import ansible_doc, host_result, run_ansible, run_module, start_module

LIVE = ["pending", "running", "stopping", "stopped"]


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "ec2.sqlite")


def base(store, **kw):
    args = {
        "region": "us-east-1",
        "name": "k3s-worker",
        "tags": {"pool": "workers"},
        "instance_type": "t3.medium",
        "image_id": "ami-0123456789abcdef0",
        "mock": {"store": store, "boot_seconds": 0, "shutdown_seconds": 0},
    }
    args.update(kw)
    return args


def live_ids(store):
    return [i["instance_id"] for i in MockEC2(store).list_instances(filters={"tag:pool": "workers", "instance-state-name": LIVE})]


def test_exact_count_check_mode_up_idempotent_down(store):
    # check mode on a missing store: predicts a change, creates nothing
    r = run_module("ec2_instance", base(store, exact_count=3), check=True)
    assert r["changed"] is True and "failed" not in r
    assert not os.path.exists(store)

    r = run_module("ec2_instance", base(store, exact_count=3, user_data="#cloud-config\n"))
    assert r["changed"] is True, r
    assert len(r["changed_ids"]) == 3 and sorted(r["instance_ids"]) == sorted(live_ids(store))
    inst = r["instances"][0]
    for key in ("instance_id", "instance_type", "image_id", "launch_time", "state", "tags", "private_ip_address",
                "private_dns_name", "placement", "subnet_id", "vpc_id", "security_groups"):
        assert key in inst
    assert inst["tags"] == {"pool": "workers", "Name": "k3s-worker"}
    assert MockEC2(store).user_data(inst["instance_id"]) == "#cloud-config\n"
    oldest = r["changed_ids"]

    again = run_module("ec2_instance", base(store, exact_count=3))
    assert again["changed"] is False and again["msg"] == "3 instances already present, nothing to do."

    up = run_module("ec2_instance", base(store, exact_count=5))
    assert up["changed"] is True and len(up["changed_ids"]) == 2
    newer = up["changed_ids"]

    # check mode scale-down: predicts, changes no row
    before = MockEC2(store).list_instances()
    chk = run_module("ec2_instance", base(store, exact_count=2), check=True)
    assert chk["changed"] is True and len(chk["terminated_ids"]) == 3
    assert MockEC2(store).list_instances() == before

    down = run_module("ec2_instance", base(store, exact_count=2))
    assert down["changed"] is True and down["msg"] == "Successfully terminated instances."
    assert sorted(down["terminated_ids"]) == sorted(oldest)  # the oldest three (launched in the first run)
    assert sorted(live_ids(store)) == sorted(newer)
    states = dict((i["instance_id"], i["state"]) for i in down["instances"])
    assert all(states[i] == {"code": 48, "name": "terminated"} for i in oldest)  # shutdown_seconds=0 + wait

    zero = run_module("ec2_instance", base(store, exact_count=0))
    assert zero["changed"] is True and sorted(zero["terminated_ids"]) == sorted(newer)
    assert live_ids(store) == []


def test_count_state_running_waits_and_tags(store):
    args = base(store, count=2, state="running", mock={"store": store, "boot_seconds": 1})
    r = run_module("ec2_instance", args)
    assert r["changed"] is True and len(r["instance_ids"]) == 2
    assert [i["state"] for i in r["instances"]] == [{"code": 16, "name": "running"}] * 2
    # count always launches
    r2 = run_module("ec2_instance", args)
    assert len(r2["changed_ids"]) == 2 and len(r2["instance_ids"]) == 4

    # tags on existing matches: no change, then purge_tags
    same = run_module("ec2_instance", base(store, mock={"store": store, "boot_seconds": 1}))
    assert same["changed"] is False and len(same["instance_ids"]) == 4
    purged = run_module("ec2_instance", base(store, tags={"team": "x"}, purge_tags=True))
    assert purged["changed"] is True
    assert all(i["tags"] == {"team": "x", "Name": "k3s-worker"} for i in purged["instances"])

    # stop then terminate by id
    ids = purged["instance_ids"]
    stopped = run_module("ec2_instance", {"region": "us-east-1", "instance_ids": ids[:1], "state": "stopped", "mock": {"store": store, "shutdown_seconds": 0}})
    assert stopped["changed"] is True and stopped["instances"][0]["state"] == {"code": 80, "name": "stopped"}
    gone = run_module("ec2_instance", {"region": "us-east-1", "instance_ids": ids, "state": "absent", "mock": {"store": store}})
    assert gone["changed"] is True and sorted(gone["terminated_ids"]) == sorted(ids)
    again = run_module("ec2_instance", {"region": "us-east-1", "instance_ids": ids, "state": "absent", "mock": {"store": store}})
    assert again["changed"] is False and again["msg"] == "No matching instances found"


def test_failure_injection_surfaces_error_code(store):
    rule = {"code": "InsufficientInstanceCapacity", "operation": "run_instances", "next_calls": 1}
    args = base(store, exact_count=2, mock={"store": store, "boot_seconds": 0, "failures": [rule]})
    r = run_module("ec2_instance", args)
    assert r.get("failed") is True
    assert r["msg"].startswith(
        "Failed to create new EC2 instance: An error occurred (InsufficientInstanceCapacity) "
        "when calling the RunInstances operation: "
    )
    assert r["error"]["code"] == "InsufficientInstanceCapacity"
    assert live_ids(store) == []
    # same rule again: the persisted counter is spent, the call succeeds
    ok = run_module("ec2_instance", args)
    assert ok["changed"] is True and len(live_ids(store)) == 2

    # persistent schedule injected from outside, for a run that does not configure failures
    MockEC2(store).inject_failure("RequestLimitExceeded", "describe_instances", next_calls=1)
    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": {"store": store}})
    assert r.get("failed") is True and r["error"]["code"] == "RequestLimitExceeded"
    assert r["msg"].startswith("Failed to describe instances: An error occurred (RequestLimitExceeded)")
    assert "failed" not in run_module("ec2_instance_info", {"region": "us-east-1", "mock": {"store": store}})

    MockEC2(store).inject_failure("Unavailable", "terminate_instances", next_calls=1)
    r = run_module("ec2_instance", base(store, exact_count=0))
    assert r.get("failed") is True and r["error"]["code"] == "Unavailable"
    assert r["msg"].startswith("Unable to terminate instances: An error occurred (Unavailable)")
    assert len(live_ids(store)) == 2


def test_bad_input_fails_clearly(store):
    r = run_module("ec2_instance", base(store, instance_type="m5.huge", count=1))
    assert r.get("failed") is True and r["error"]["code"] == "InvalidParameterValue"
    assert "m5.huge" in r["msg"] and "t3.medium" in r["msg"]
    r = run_module("ec2_instance", dict(base(store, count=1), region=None))
    assert r.get("failed") is True and "region" in r["msg"]
    r = run_module("ec2_instance", base(store, count=1, exact_count=1))
    assert r.get("failed") is True and "mutually exclusive" in r["msg"]
    r = run_module("ec2_instance", base(store, state="rebooted"))
    assert r.get("failed") is True and "not supported" in r["msg"]
    r = run_module("ec2_instance", base(store, exact_count=1, mock={"store": store, "failures": [
        {"code": "Unavailable", "probability": 0.5, "next_calls": 1}]}))
    assert r.get("failed") is True and "mutually exclusive" in r["msg"]
    assert not os.path.exists(store) or live_ids(store) == []


def test_aws_connection_options_accepted_and_secret_hidden(store):
    args = base(store, exact_count=1, access_key="AKIAEXAMPLE", secret_key="s3cr3t-VALUE", session_token="tok-VALUE",
                profile="default", endpoint_url="https://ec2.us-east-1.amazonaws.com", aws_region="us-east-1")
    del args["region"]
    proc = run_ansible("ec2_instance", args, verbose=True)
    r = host_result(proc.stdout, proc.stderr, proc.returncode)
    assert r["changed"] is True and len(live_ids(store)) == 1
    assert "s3cr3t-VALUE" not in proc.stdout and "tok-VALUE" not in proc.stdout


def test_two_ansible_processes_racing_exact_count(store):
    MockEC2(store).close()
    for target in (3, 1, 4):
        args = base(store, exact_count=target, wait=False)
        procs = [start_module("ec2_instance", args) for dummy in range(2)]
        results = [host_result(*p.communicate(timeout=120)) for p in procs]
        assert all("failed" not in r for r in results), results
        assert len(live_ids(store)) == target
        assert sum(1 for r in results if r["changed"]) >= 1


@pytest.mark.parametrize("module", ["ec2_instance", "ec2_instance_info"])
def test_ansible_doc_renders(module):
    proc = ansible_doc(module)
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr
    for word in ("mock", "boot_seconds", "failures", "next_calls", "RETURN VALUES", "filters", "instance_ids"):
        assert word in proc.stdout
