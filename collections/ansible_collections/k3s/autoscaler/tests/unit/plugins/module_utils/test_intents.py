# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Intent records (module_utils/intents.py): a killed run's launch is completed, never repeated; a killed removal
is completed or uncordoned; guards keep non-terminated instances within [min_nodes, max_nodes]."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils import intents as it
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import default_state, validate_state


def inst(iid, state="running", group="default", launch_id=None):
    tags = {"k3s-autoscaler/node-group": group, "k3s-autoscaler/cluster": "local"}
    if launch_id:
        tags[it.LAUNCH_ID_TAG] = launch_id
    return {"instance_id": iid, "state": {"name": state, "code": 16}, "tags": tags}


def test_launch_recorded_before_and_completed_after():
    st = it.begin_launch(default_state(), 2, "default", 100.0, reason="r")
    lid = st["pending_launch"]["launch_id"]
    assert st["pending_launch"] == {"launch_id": lid, "count": 2, "node_group": "default", "created": 100.0,
                                    "reason": "r"}
    validate_state(st)
    with pytest.raises(it.IntentError, match="already pending"):
        it.begin_launch(st, 1, "default", 101.0)
    done = it.end_launch(st, lid, ["i-1", "i-2"], 105.0, reason="r")
    assert "pending_launch" not in done and done["last_scale_up"] == 105.0
    assert done["events"][-1]["instance_ids"] == ["i-1", "i-2"] and done["totals"]["scale_up"] == 1
    with pytest.raises(it.IntentError, match="not the pending launch"):
        it.end_launch(done, lid, ["i-1"], 106.0)


def test_reconcile_completes_a_killed_launch_instead_of_deciding_again():
    st = it.begin_launch(default_state(), 2, "default", 100.0)
    lid = st["pending_launch"]["launch_id"]
    instances = [inst("i-0", launch_id=None), inst("i-1", "pending", launch_id=lid), inst("i-2", launch_id=lid)]
    new, rep = it.reconcile(st, instances, "default", 110.0, launch_timeout=30)
    assert rep["launch"] == "completed" and rep["launched_ids"] == ["i-1", "i-2"] and not rep["hold"]
    assert "pending_launch" not in new and new["last_scale_up"] == 110.0
    assert new["events"][-1]["direction"] == "scale_up" and new["events"][-1]["count"] == 2


def test_reconcile_waits_then_expires_an_unresolved_launch():
    st = it.begin_launch(default_state(), 1, "default", 100.0)
    new, rep = it.reconcile(st, [inst("i-0")], "default", 120.0, launch_timeout=30)
    assert rep["launch"] == "waiting" and rep["hold"] and new == st
    assert "holding instead of deciding again" in rep["messages"][0]
    new, rep = it.reconcile(st, [inst("i-0")], "default", 131.0, launch_timeout=30)
    assert rep["launch"] == "expired" and not rep["hold"] and "pending_launch" not in new
    assert new["last_scale_up"] is None and new["events"] == []  # no made-up scale_up


def test_reconcile_removal_completed_when_instance_gone_else_uncordon():
    st = it.begin_removal(default_state(), "node-a", "i-a", 50.0, reason="low")
    for gone in ([], [inst("i-a", "shutting-down")], [inst("i-a", "terminated")]):
        new, rep = it.reconcile(st, gone, "default", 60.0)
        assert rep["removal"] == "completed" and "pending_removal" not in new
        assert new["events"][-1]["node_names"] == ["node-a"] and new["last_scale_down"] == 60.0
    new, rep = it.reconcile(st, [inst("i-a", "running")], "default", 60.0)
    assert rep["removal"] == "uncordon" and rep["node"] == "node-a" and new == st
    cleared = it.clear_removal(new, "node-a")
    assert "pending_removal" not in cleared and cleared["last_scale_down"] is None
    assert it.clear_removal(new, "other") == new


def test_launch_guard_counts_pending_and_caps_at_max_nodes():
    instances = [inst("i-1"), inst("i-2", "pending"), inst("i-3", "shutting-down"), inst("i-4", "terminated"),
                 inst("i-5", group="other")]
    g = it.launch_guard(default_state(), instances, "default", 5, 4, 0.0)
    assert g == {"proceed": True, "count": 2, "live": 2, "reason": g["reason"]} and "capped from 5 to 2" in g["reason"]
    g = it.launch_guard(default_state(), instances, "default", 1, 2, 0.0)
    assert not g["proceed"] and g["count"] == 0 and ">= max_nodes 2" in g["reason"]


def test_launch_guard_refuses_during_capacity_backoff_and_says_so():
    st = dict(default_state(), backoff={"default": {"until": 400.0, "failures": 2,
                                                    "error_code": "InsufficientInstanceCapacity"}})
    g = it.launch_guard(st, [inst("i-1")], "default", 1, 5, 100.0)
    assert not g["proceed"] and "backed off for 300 s more" in g["reason"]
    assert "InsufficientInstanceCapacity" in g["reason"]
    assert it.launch_guard(st, [inst("i-1")], "default", 1, 5, 401.0)["proceed"]


def test_removal_guard_keeps_min_nodes():
    instances = [inst("i-1"), inst("i-2", "pending"), inst("i-3", "shutting-down")]
    assert it.removal_guard(instances, "default", "i-1", 1)["proceed"]
    g = it.removal_guard(instances, "default", "i-1", 2)
    assert not g["proceed"] and "< min_nodes 2" in g["reason"]
    assert not it.removal_guard(instances, "default", "i-3", 0)["proceed"]


@pytest.mark.parametrize("bad", [
    {"pending_launch": {"launch_id": "", "count": 1, "created": 1.0, "node_group": "g"}},
    {"pending_launch": {"launch_id": "x", "count": 0, "created": 1.0, "node_group": "g"}},
    {"pending_launch": {"launch_id": "x", "count": 1, "created": "now", "node_group": "g"}},
    {"pending_removal": {"node": "n", "instance_id": "", "cordoned_at": 1.0}},
    {"pending_removal": {"node": "n", "instance_id": "i", "cordoned_at": None}},
])
def test_bad_intent_records_are_errors_not_guesses(bad):
    with pytest.raises(it.IntentError, match="repair the state file"):
        it.reconcile(dict(default_state(), **bad), [], "default", 0.0)


def test_instances_must_have_state_and_id():
    with pytest.raises(it.IntentError, match="instance_id"):
        it.live_instances([{"state": {"name": "running"}}], "default")
    with pytest.raises(it.IntentError, match="state.name"):
        it.live_instances([{"instance_id": "i-1", "tags": {"k3s-autoscaler/node-group": "default"}}], "default")


GROUPS = [{"name": "default", "instance_type": "m5.large", "min_nodes": 1, "max_nodes": 5},
          {"name": "batch", "instance_type": "c5.xlarge", "min_nodes": 2, "max_nodes": 4}]


def test_removal_guard_uses_the_instances_own_node_group_and_its_min_nodes():
    instances = [inst("i-d1"), inst("i-b1", group="batch"), inst("i-b2", group="batch"), inst("i-b3", group="batch"),
                 inst("i-b4", "terminated", group="batch")]
    # single-group call (what the role did before): a batch node is "not a live instance of node group default"
    assert not it.removal_guard(instances, "default", "i-b1", 1)["proceed"]
    g = it.removal_guard(instances, "default", "i-b1", 1, node_groups=GROUPS)
    assert g["proceed"] and (g["node_group"], g["min_nodes"], g["live"]) == ("batch", 2, 3), g
    # batch min_nodes 2 applies, not the cluster-wide min_nodes 0 passed for the single group
    two_left = [i for i in instances if i["instance_id"] != "i-b3"]
    g = it.removal_guard(two_left, "default", "i-b1", 0, node_groups=GROUPS)
    assert not g["proceed"] and "node group batch < min_nodes 2" in g["reason"], g
    # default's own min_nodes 1 keeps its last instance even though batch has room
    g = it.removal_guard(instances, "default", "i-d1", 0, node_groups=GROUPS)
    assert not g["proceed"] and (g["node_group"], g["min_nodes"]) == ("default", 1) and "min_nodes 1" in g["reason"]


def test_removal_guard_refuses_an_instance_of_no_configured_group():
    instances = [inst("i-x", group="gpu"), inst("i-b1", group="batch")]
    g = it.removal_guard(instances, "default", "i-x", 0, node_groups=GROUPS)
    assert not g["proceed"] and g["node_group"] is None and "'gpu', not one of node_groups default, batch" in g["reason"]
    g = it.removal_guard(instances, "default", "i-gone", 0, node_groups=GROUPS)
    assert not g["proceed"] and "not among the cluster's instances" in g["reason"]
    untagged = [{"instance_id": "i-u", "state": {"name": "running"}, "tags": {}}]
    assert not it.removal_guard(untagged, "default", "i-u", 0, node_groups=GROUPS)["proceed"]
    # a group without min_nodes counts as min_nodes 0 (as the binpacking policy reads it)
    g = it.removal_guard(instances, "default", "i-b1", 5, node_groups=[{"name": "batch", "max_nodes": 3}])
    assert g["proceed"] and g["min_nodes"] == 0
    with pytest.raises(it.IntentError, match=r"node_groups\[0\] \(batch\): min_nodes"):
        it.removal_guard(instances, "default", "i-b1", 0, node_groups=[{"name": "batch", "min_nodes": "two"}])


def test_removal_records_its_node_group_in_the_intent_and_the_scale_down_event():
    st = it.begin_removal(default_state(), "node-b", "i-b1", 10.0, reason="unneeded", node_group="batch")
    assert validate_state(st)["pending_removal"]["node_group"] == "batch"
    done = it.end_removal(st, "node-b", "i-b1", 20.0, reason="unneeded")
    assert done["events"][-1]["node_group"] == "batch" and "pending_removal" not in done
    # an interrupted one completed by reconcile carries it too
    new, rep = it.reconcile(st, [inst("i-b1", "terminated", group="batch")], "default", 30.0)
    assert rep["removal"] == "completed" and new["events"][-1]["node_group"] == "batch"
    # records written before node_group existed stay valid
    old = it.begin_removal(default_state(), "node-a", "i-a", 10.0)
    assert "node_group" not in old["pending_removal"]
    assert "node_group" not in it.end_removal(old, "node-a", "i-a", 11.0)["events"][-1]
    with pytest.raises(it.IntentError, match="pending_removal.node_group"):
        it.validate_intents(dict(default_state(), pending_removal=dict(old["pending_removal"], node_group=3)))
