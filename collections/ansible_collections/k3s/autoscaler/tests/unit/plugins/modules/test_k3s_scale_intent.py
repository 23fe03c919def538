# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k3s_scale_intent run as Ansible runs it: begin_launch writes pending_launch before the launch; a rerun
reconciles it from the instances' launch-id tag; check mode writes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from module_runner import run_module


def inst(iid, state="running", launch_id=None):
    tags = {"k3s-autoscaler/node-group": "default"}
    if launch_id:
        tags["k3s-autoscaler/launch-id"] = launch_id
    return {"instance_id": iid, "state": {"name": state}, "tags": tags}


def test_begin_launch_then_rerun_reconciles_from_tags(tmp_path):
    sf = str(tmp_path / "state.json")
    chk = run_module("k3s_scale_intent", {"state_file": sf, "action": "begin_launch", "instances": [inst("i-1")], "count": 3,
                                          "max_nodes": 3}, check=True)
    assert chk["proceed"] and chk["count"] == 2 and not os.path.exists(sf)
    res = run_module("k3s_scale_intent", {"state_file": sf, "action": "begin_launch", "instances": [inst("i-1")], "count": 3,
                                          "max_nodes": 3, "reason": "scale_up: pending"})
    assert res["proceed"] and res["count"] == 2 and res["changed"] and res["live"] == 1
    with open(sf) as f:
        pl = json.load(f)["pending_launch"]
    assert pl["launch_id"] == res["launch_id"] and pl["count"] == 2
    # the run was killed after RunInstances: the next run finds the tagged instances
    rec = run_module("k3s_scale_intent", {"state_file": sf, "action": "reconcile",
                                          "instances": [inst("i-1"), inst("i-2", "pending", res["launch_id"]),
                                                        inst("i-3", "pending", res["launch_id"])]})
    assert rec["report"]["launch"] == "completed" and rec["report"]["launched_ids"] == ["i-2", "i-3"]
    assert rec["intents"]["pending_launch"] is None and any("tagged" in w for w in rec.get("warnings", []))
    with open(sf) as f:
        st = json.load(f)
    assert st["events"][-1]["instance_ids"] == ["i-2", "i-3"] and "pending_launch" not in st
    again = run_module("k3s_scale_intent", {"state_file": sf, "action": "reconcile", "instances": [inst("i-2"), inst("i-3")]})
    assert again["report"]["launch"] == "none" and again["changed"] is False


def test_missing_option_and_corrupt_state_are_named(tmp_path):
    sf = tmp_path / "state.json"
    res = run_module("k3s_scale_intent", {"state_file": str(sf), "action": "begin_removal", "instances": []})
    assert res.get("failed") and "needs min_nodes, node, instance_id" in res["msg"]
    sf.write_text("{not json")
    res = run_module("k3s_scale_intent", {"state_file": str(sf), "action": "reconcile", "instances": []})
    assert res.get("failed") and "is corrupt" in res["msg"] and "repair" in res["msg"]
