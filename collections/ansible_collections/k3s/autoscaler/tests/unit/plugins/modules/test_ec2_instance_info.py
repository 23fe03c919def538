# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end tests of k3s.autoscaler.ec2_instance_info through ``ansible localhost -m``."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
from module_runner import run_module

SPEC = {"instance_type": "c5.large", "image_id": "ami-1", "tags": {"pool": "workers"}, "user_data": "#!/bin/sh\nk3s agent\n"}


def test_info_filters_attributes_and_not_found(tmp_path):
    store = str(tmp_path / "ec2.sqlite")
    m = MockEC2(store, boot_seconds=0, shutdown_seconds=0)
    a, dummy = m.run_instances(2, SPEC)
    b, dummy = m.run_instances(1, dict(SPEC, instance_type="m5.large", tags={"pool": "other"}))
    m.terminate_instances([a[1]["instance_id"]])
    mock = {"store": store}

    everything = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock})
    assert everything["changed"] is False and len(everything["instances"]) == 3

    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock,
                                         "filters": {"tag:pool": "workers", "instance-state-name": ["running"]},
                                         "include_attributes": ["userData", "instanceType"]})
    assert [i["instance_id"] for i in r["instances"]] == [a[0]["instance_id"]]
    inst = r["instances"][0]
    assert inst["state"] == {"code": 16, "name": "running"}
    assert base64.b64decode(inst["attributes"]["user_data"]["value"]).decode() == SPEC["user_data"]
    assert inst["attributes"]["instance_type"] == {"value": "c5.large"}
    assert "user_data" not in inst  # like EC2, only via include_attributes

    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock, "instance_ids": [b[0]["instance_id"]]})
    assert [i["instance_type"] for i in r["instances"]] == ["m5.large"]

    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock, "instance_ids": ["i-0123456789abcdef0"]})
    assert r.get("failed") is True and r["error"]["code"] == "InvalidInstanceID.NotFound"

    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock, "filters": {"no-such-filter": 1}})
    assert r.get("failed") is True and r["error"]["code"] == "InvalidParameterValue" and "no-such-filter" in r["msg"]

    # minimum_uptime is in minutes: nothing launched an hour ago
    r = run_module("ec2_instance_info", {"region": "us-east-1", "mock": mock, "minimum_uptime": 60})
    assert r["instances"] == []

    # other region sees nothing
    r = run_module("ec2_instance_info", {"region": "eu-west-1", "mock": mock})
    assert r["instances"] == []
