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


def test_begin_removal_guards_the_candidates_own_node_group(tmp_path):
    sf = str(tmp_path / "state.json")
    batch = [dict(inst("i-b%d" % n), tags={"k3s-autoscaler/node-group": "batch"}) for n in (1, 2)]
    groups = [{"name": "default", "instance_type": "m5.large", "min_nodes": 1, "max_nodes": 5},
              {"name": "batch", "instance_type": "c5.xlarge", "min_nodes": 1, "max_nodes": 3}]
    args = {"state_file": sf, "action": "begin_removal", "instances": [inst("i-d1")] + batch, "min_nodes": 1,
            "node": "node-b1", "instance_id": "i-b1", "node_groups": groups}
    res = run_module("k3s_scale_intent", args)
    assert res["proceed"] and (res["node_group"], res["min_nodes"], res["live"]) == ("batch", 1, 2), res
    assert res["intents"]["pending_removal"]["node_group"] == "batch"
    end = run_module("k3s_scale_intent", {"state_file": sf, "action": "end_removal", "node": "node-b1",
                                          "instance_id": "i-b1"})
    assert end["changed"] and end["intents"]["pending_removal"] is None
    with open(sf) as f:
        assert json.load(f)["events"][-1]["node_group"] == "batch"
    # i-b1 is gone: removing i-b2 would leave batch below its min_nodes 1
    args.update(instances=[inst("i-d1"), batch[1]], node="node-b2", instance_id="i-b2")
    res = run_module("k3s_scale_intent", args)
    assert not res["proceed"] and "node group batch < min_nodes 1" in res["reason"] and res["changed"] is False
