# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end tests of k3s.autoscaler.k3s_scale_decision, run as Ansible runs it (ad-hoc `ansible`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from module_runner import ansible_doc, run_module

NODES_DETAIL = [
    {"name": "server-0", "provider_id": "k3s://server-0", "instance_id": None, "ready": True, "unschedulable": False,
     "allocatable_cpu_cores": 2.0, "allocatable_memory_bytes": 4294967296, "requested_cpu_cores": 0.1,
     "requested_memory_bytes": 104857600, "pods": 4, "cpu_percent": 1.0, "memory_percent": 2.0},
    {"name": "worker-a", "provider_id": "aws:///us-east-1a/i-0aaa", "instance_id": "i-0aaa", "ready": True,
     "unschedulable": False, "instance_type": "t3.medium", "allocatable_cpu_cores": 2.0,
     "allocatable_memory_bytes": 4294967296, "requested_cpu_cores": 1.0, "requested_memory_bytes": 1073741824,
     "pods": 5, "cpu_percent": 12.0, "memory_percent": 10.0},
    {"name": "worker-b", "provider_id": "aws:///us-east-1a/i-0bbb", "instance_id": "i-0bbb", "ready": True,
     "unschedulable": False, "instance_type": "t3.medium", "allocatable_cpu_cores": 2.0,
     "allocatable_memory_bytes": 4294967296, "requested_cpu_cores": 0.2, "requested_memory_bytes": 268435456,
     "pods": 1, "cpu_percent": 3.0, "memory_percent": 4.0},
]


def test_scale_up_end_to_end(tmp_path):
    r = run_module("k3s_scale_decision", {
        "metrics": {"nodes": 3, "pending_pods": 7, "avg_cpu": 80.0, "avg_memory": 60.0},
        "min_nodes": 1, "max_nodes": 10, "pending_pods_threshold": 5,
        "state_file": str(tmp_path / "state.json")})
    assert not r.get("failed"), r
    assert r["changed"] is False
    assert (r["decision"], r["count"], r["current_nodes"], r["desired_nodes"]) == ("scale_up", 1, 3, 4)
    assert r["reason"] == "scale_up: 7 pending pods > threshold 5 and 3 nodes < max_nodes 10"
    assert r["actionable"] is True and r["dry_run"] is False and r["policy"] == "threshold"
    assert r["cooldowns"] == {"scale_up": 0.0, "scale_down": 0.0}
    assert r["inputs"]["state_file_used"] is True
    assert not os.path.exists(tmp_path / "state.json")  # the decision writes nothing


def test_scale_down_with_candidates_and_cooldown_from_state_file(tmp_path):
    sf = tmp_path / "state.json"
    args = {"metrics": {"nodes": 3, "pending_pods": 0, "avg_cpu": 5.0, "avg_memory": 7.0},
            "nodes_detail": NODES_DETAIL, "min_nodes": 1, "max_nodes": 10, "state_file": str(sf)}
    r = run_module("k3s_scale_decision", args)
    assert (r["decision"], r["count"], r["desired_nodes"]) == ("scale_down", 1, 2), r
    assert [c["instance_id"] for c in r["candidates"]] == ["i-0bbb", "i-0aaa"]

    sf.write_text(json.dumps({"version": 1, "last_scale_up": None, "last_scale_down": time.time() - 60,
                              "events": []}))
    r = run_module("k3s_scale_decision", args)
    assert r["decision"] == "no_action"
    assert r["blocked_by"] == ["cooldown"]
    assert 300 < r["cooldowns"]["scale_down"] <= 540  # 600 s cooldown, last scale_down 60 s before the run
    assert "remaining of scale_down_cooldown 600s" in r["reason"]


def test_no_state_file_warns_and_check_mode_is_not_actionable():
    r = run_module("k3s_scale_decision", {
        "metrics": {"nodes": 2, "pending_pods": 1}, "min_nodes": 1, "max_nodes": 3}, check=True)
    assert r["decision"] == "scale_up"
    assert r["actionable"] is False
    assert r["changed"] is False
    assert any("cooldowns" in w and "NOT enforced" in w for w in r.get("warnings", []))
    assert "no state_file" in r["reason"]


def test_invalid_config_fails_naming_the_field():
    r = run_module("k3s_scale_decision", {
        "metrics": {"nodes": 3, "pending_pods": 0}, "min_nodes": 1, "max_nodes": 5, "cpu_threshold": 0.2 * 1000})
    assert r["failed"] is True
    assert r["field"] == "cpu_threshold"
    assert r["msg"] == ("invalid config cpu_threshold: cpu_threshold must be a percent between 0 and 100, got 200.0; "
                        "it is a percent, not a ratio (use 20 for 20%)")


def test_invalid_metrics_fail_naming_the_key():
    r = run_module("k3s_scale_decision", {"metrics": {"pending_pods": 3}, "min_nodes": 1, "max_nodes": 5})
    assert r["failed"] is True
    assert r["field"] == "nodes"
    assert "metrics.nodes is required" in r["msg"]


def test_corrupt_state_file_fails_with_repair_hint(tmp_path):
    sf = tmp_path / "state.json"
    sf.write_text("{oops")
    r = run_module("k3s_scale_decision", {"metrics": {"nodes": 3, "pending_pods": 3}, "min_nodes": 1,
                                          "max_nodes": 5, "state_file": str(sf)})
    assert r["failed"] is True
    assert str(sf) in r["msg"] and "corrupt" in r["msg"] and "repair=true" in r["msg"]
    assert sf.read_text() == "{oops"


@pytest.mark.parametrize("module", ["k3s_scale_decision", "k3s_scale_event"])
def test_ansible_doc_renders(module):
    proc = ansible_doc(module)
    assert proc.returncode == 0, proc.stderr
    assert "k3s.autoscaler.%s" % module in proc.stdout
    assert "state_file" in proc.stdout
    proc = ansible_doc(module, as_json=True)
    doc = json.loads(proc.stdout)["k3s.autoscaler.%s" % module]
    assert doc["doc"]["options"] and doc["return"] and doc["examples"]
