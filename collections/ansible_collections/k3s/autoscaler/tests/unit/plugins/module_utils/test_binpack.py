# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of plugins/module_utils/binpack.py: FFD, drain simulation, least-waste, backoff,
provision timeout, unneeded timing, delay-after-add, empty bulk delete, config validation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.k3s.autoscaler.plugins.module_utils.binpack import (
    DEFAULT_RESERVATION, backoff_seconds, ffd_pack, least_waste, parse_time, simulate_drain)
from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import ConfigError, MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (
    default_state, record_drain_failure, record_event, record_launch_failure, set_unneeded, validate_state)

from binpack_fixtures import GIB, MIB, NOW, cluster, config, node, node_report, pending, pod, run


def _p(name, cpu, mem=0):
    return {"namespace": "d", "name": name, "cpu_cores": cpu, "memory_bytes": mem}


# ---------------------------------------------------------------- FFD
def test_ffd_sorts_decreasing_and_fills_first_fit():
    pods = [_p("s1", 1), _p("b1", 3), _p("s2", 1), _p("b2", 3)]
    r = ffd_pack(pods, 4.0, 16 * GIB)
    assert r["new_nodes"] == 2
    assert [(p["name"], b) for p, b in r["placements"]] == [("b1", "new-1"), ("b2", "new-2"),
                                                            ("s1", "new-1"), ("s2", "new-2")]
    assert r["unplaced"] == [] and r["new_used_cpu"] == 8.0


def test_ffd_uses_existing_bins_first_and_respects_max_new_nodes():
    bins = [{"name": "n1", "free_cpu": 1.0, "free_mem": GIB}]
    r = ffd_pack([_p("a", 1, GIB), _p("b", 2), _p("c", 2), _p("d", 2)], 2.0, 4 * GIB, bins=bins, max_new_nodes=2)
    assert dict((p["name"], b) for p, b in r["placements"]) == {"a": "n1", "b": "new-1", "c": "new-2"}
    assert [p["name"] for p in r["unplaced"]] == ["d"]
    assert bins[0]["free_cpu"] == 1.0  # input not mutated


def test_ffd_memory_is_a_dimension_too():
    # 3 pods of 0.1 CPU / 3 GiB on 8 CPU / 4 GiB nodes: memory forces one pod per node
    r = ffd_pack([_p("m%d" % i, 0.1, 3 * GIB) for i in range(3)], 8.0, 4 * GIB)
    assert r["new_nodes"] == 3


def test_ffd_never_opens_a_node_for_a_pod_that_does_not_fit_an_empty_one():
    r = ffd_pack([_p("huge", 5.0)], 4.0, 16 * GIB)
    assert r["new_nodes"] == 0 and [p["name"] for p in r["unplaced"]] == ["huge"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 4.0), st.integers(0, 16 * 1024)), min_size=1, max_size=30))
def test_ffd_is_valid_and_within_the_ffd_bound(items):
    pods = [_p("p%d" % i, c, m * MIB) for i, (c, m) in enumerate(items)]
    r = ffd_pack(pods, 4.0, 16 * GIB)
    assert not r["unplaced"]
    for b in r["bins"]:
        assert b["free_cpu"] >= -1e-9 and b["free_mem"] >= -1e-6
    lower = max(sum(p["cpu_cores"] for p in pods) / 4.0, sum(p["memory_bytes"] for p in pods) / (16.0 * GIB))
    assert lower - 1e-9 <= r["new_nodes"] <= len(pods)
    # FFD (1-D) bound 11/9 OPT + 1 does not hold in 2-D in general, but 2*LB + 1 does for first-fit.
    assert r["new_nodes"] <= 2 * lower + 1


# ---------------------------------------------------------------- simulation
def test_simulate_drain_places_all_or_reports_unplaced():
    dests = [{"name": "a", "free_cpu": 0.5, "free_mem": GIB}, {"name": "b", "free_cpu": 1.0, "free_mem": GIB}]
    ok, placements, unplaced, left = simulate_drain([_p("x", 0.9), _p("y", 0.4)], dests)
    assert ok and dict((p["name"], b) for p, b in placements) == {"x": "b", "y": "a"}
    assert [round(d["free_cpu"], 6) for d in left] == [0.1, 0.1]
    ok, _pl, unplaced, _l = simulate_drain([_p("x", 0.9), _p("z", 0.9)], dests)
    assert not ok and [p["name"] for p in unplaced] == ["z"]


def test_two_unneeded_nodes_do_not_both_count_on_the_same_free_space():
    # a is busy with 1.0 CPU free; b and c each hold 0.8 CPU: only one of them can move onto a.
    pods = [pod("a1", "a", 1.0), pod("b1", "b", 0.8), pod("c1", "c", 0.8)]
    nodes = cluster([node("a"), node("b"), node("c")], pods)
    r = run(config(), nodes, pods_list=pods, state=dict(default_state(), unneeded={"b": NOW - 900, "c": NOW - 900}))
    assert sorted(r["unneeded"]) == ["b"]
    assert node_report(r, "c")["status"] == "needed"
    assert r["decision"] == "scale_down" and [c["name"] for c in r["candidates"]] == ["b"]


# ---------------------------------------------------------------- least-waste
def test_least_waste_picks_the_smallest_waste_then_more_pods():
    opts = [{"node_group": "big", "nodes": 1, "pods": 2, "cpu_waste": 0.75, "memory_waste": 0.5},
            {"node_group": "small", "nodes": 1, "pods": 2, "cpu_waste": 0.1, "memory_waste": 0.2},
            {"node_group": "none", "nodes": 0, "pods": 0, "cpu_waste": 0.0, "memory_waste": 0.0}]
    assert least_waste(opts)["node_group"] == "small"
    tie = [{"node_group": "a", "nodes": 2, "pods": 3, "cpu_waste": 0.1, "memory_waste": 0.1},
           {"node_group": "b", "nodes": 1, "pods": 4, "cpu_waste": 0.1, "memory_waste": 0.1}]
    assert least_waste(tie)["node_group"] == "b"
    assert least_waste([]) is None


def test_expander_explains_every_group():
    groups = [{"name": "general", "instance_type": "m5.xlarge", "min_nodes": 0, "max_nodes": 5},
              {"name": "compute", "instance_type": "c5.xlarge", "min_nodes": 0, "max_nodes": 5},
              {"name": "full", "instance_type": "m5.large", "min_nodes": 0, "max_nodes": 0}]
    full = [node("w", cpu=2.0, req_cpu=2.0, pods=2, cpu_percent=90.0, itype="m5.large", iid="i-0aaaaaaaa")]
    # CPU-heavy pods: 3.5 CPU / 2 GiB -> compute (4 CPU / 8 GiB) wastes less memory than general (16 GiB)
    r = run(config(node_groups=groups, max_nodes=20), full, [pending("cpu-heavy", 3.5, 2 * GIB)], pods_list=[])
    assert (r["decision"], r["node_group"], r["count"]) == ("scale_up", "compute", 1)
    opts = dict((o["node_group"], o) for o in r["explain"]["scale_up"]["options"])
    assert opts["compute"]["cpu_waste"] + opts["compute"]["memory_waste"] < \
        opts["general"]["cpu_waste"] + opts["general"]["memory_waste"]
    assert opts["full"]["skipped"].startswith("at max_nodes")
    assert "least-waste" in r["reason"] and "cpu-heavy" in r["reason"]


# ---------------------------------------------------------------- capacity on the way, provision timeout
def test_instances_on_the_way_absorb_pending_pods():
    full = [node("a", req_cpu=2.0, pods=2, cpu_percent=90.0)]
    inst = [{"instance_id": "i-0new0000001", "launch_time": NOW - 60, "state": {"name": "pending"},
             "tags": {"k3s-autoscaler/node-group": "default"}}]
    r = run(config(), full, [pending("p", 1.0, GIB)], pods_list=[], instances=inst)
    assert (r["decision"], r["count"]) == ("no_action", 0)
    assert [p["instance_id"] for p in r["explain"]["scale_up"]["fit_in_flight"]] == ["i-0new0000001"]
    # two pods that need two nodes: one on the way + one new
    r = run(config(), full, [pending("p", 1.5, GIB), pending("q", 1.5, GIB)], pods_list=[], instances=inst)
    assert (r["decision"], r["count"]) == ("scale_up", 1)


def test_registered_instances_are_not_counted_twice():
    n = node("a", req_cpu=0.5, pods=1, iid="i-0abc00000001")
    inst = [{"instance_id": "i-0abc00000001", "launch_time": NOW - 3600, "state": "running", "node_group": "default"}]
    r = run(config(), [n], [], pods_list=[], instances=inst)
    assert r["explain"]["in_flight"] == [] and r["terminate_instance_ids"] == []


def test_never_joined_instance_is_terminated_and_not_counted():
    full = [node("a", req_cpu=2.0, pods=2, cpu_percent=90.0)]
    inst = [{"instance_id": "i-0stuck000001", "launch_time": "2027-01-15T07:00:00+00:00", "state": "running",
             "node_group": "default"}]
    now = parse_time("2027-01-15T07:15:01Z")
    r = run(config(), full, [pending("p", 1.0, GIB)], pods_list=[], instances=inst, now=now)
    assert r["terminate_instance_ids"] == ["i-0stuck000001"]
    assert (r["decision"], r["count"]) == ("scale_up", 1)  # its capacity no longer counts
    assert "max_node_provision_time" in r["explain"]["never_joined"][0]["reason"]
    r = run(config(), full, [pending("p", 1.0, GIB)], pods_list=[], instances=inst, now=now - 2)
    assert r["terminate_instance_ids"] == [] and r["decision"] == "no_action"  # 899 s: still on the way


def test_min_nodes_counts_instances_on_the_way():
    inst = [{"instance_id": "i-0new0000001", "launch_time": NOW - 30, "state": "pending", "node_group": "default"}]
    r = run(config(min_nodes=2), [node("a", req_cpu=0.1, pods=1)], [], pods_list=[], instances=inst)
    assert r["decision"] == "no_action"
    r = run(config(min_nodes=3), [node("a", req_cpu=0.1, pods=1)], [], pods_list=[], instances=inst)
    assert (r["decision"], r["count"]) == ("scale_up", 1) and "min_nodes" in r["reason"]


# ---------------------------------------------------------------- backoff
def test_backoff_doubles_to_the_cap_and_resets_on_success():
    assert [backoff_seconds(n) for n in range(0, 6)] == [0.0, 300.0, 600.0, 1200.0, 1800.0, 1800.0]
    s = default_state()
    for i in range(5):
        s = record_launch_failure(s, "g", "InsufficientInstanceCapacity", 1000.0 + i)
    assert s["backoff"]["g"] == {"until": 1004.0 + 1800.0, "failures": 5, "error_code": "InsufficientInstanceCapacity"}
    assert [e["direction"] for e in s["events"]] == ["launch_failed"] * 5
    assert s["last_scale_up"] is None and s["totals"]["launch_failures"] == 5
    validate_state(s)
    s = record_event(s, "scale_up", 1, 5000.0, instance_ids=["i-1"], node_group="g")
    assert "g" not in s["backoff"] and s["totals"]["launch_failures"] == 5 and s["totals"]["scale_up"] == 1


# ---------------------------------------------------------------- unneeded timing, delay after add, bulk
def _idle_cluster(n_empty=3):
    pods = [pod("busy1", "busy", 1.2)]
    nodes = cluster([node("busy")] + [node("e%d" % i) for i in range(n_empty)], pods)
    return nodes, pods


def test_unneeded_time_must_elapse_across_runs():
    nodes, pods = _idle_cluster(1)
    s = default_state()
    r1 = run(config(), nodes, pods_list=pods, state=s, now=NOW)
    assert r1["decision"] == "no_action" and r1["unneeded"] == {"e0": NOW}
    assert node_report(r1, "e0")["status"] == "unneeded"
    s = set_unneeded(s, r1["unneeded"])
    r2 = run(config(), nodes, pods_list=pods, state=s, now=NOW + 599)
    assert r2["decision"] == "no_action" and r2["unneeded"] == {"e0": NOW}
    assert "unneeded for 599s of scale_down_unneeded_time 600s" in node_report(r2, "e0")["reason"]
    r3 = run(config(), nodes, pods_list=pods, state=s, now=NOW + 600)
    assert r3["decision"] == "scale_down" and [c["name"] for c in r3["candidates"]] == ["e0"]
    # a node that becomes needed again starts over
    busy_again = cluster([node("busy"), node("e0")], pods + [pod("x", "e0", 1.5)])
    r4 = run(config(), busy_again, pods_list=pods + [pod("x", "e0", 1.5)], state=s, now=NOW + 700)
    assert r4["unneeded"] == {}


def test_delay_after_add_blocks_removal_but_not_tracking():
    nodes, pods = _idle_cluster(1)
    s = dict(default_state(), unneeded={"e0": NOW - 3600}, last_scale_up=NOW - 100)
    r = run(config(), nodes, pods_list=pods, state=s)
    assert r["decision"] == "no_action" and "scale_down_delay_after_add" in r["blocked_by"]
    assert r["unneeded"] == {"e0": NOW - 3600}
    r = run(config(), nodes, pods_list=pods, state=dict(s, last_scale_up=NOW - 600))
    assert r["decision"] == "scale_down"


def test_empty_nodes_go_in_bulk_up_to_the_limit_plus_at_most_one_non_empty():
    pods = [pod("busy1", "busy", 1.9), pod("n1", "ne1", 0.1), pod("n2", "ne2", 0.1)]
    nodes = cluster([node("busy", cpu=4.0), node("ne1"), node("ne2")] + [node("e%d" % i) for i in range(4)], pods)
    s = dict(default_state(), unneeded=dict((n["name"], NOW - 3600) for n in nodes))
    r = run(config(max_empty_bulk_delete=3), nodes, pods_list=pods, state=s)
    names = [c["name"] for c in r["candidates"]]
    assert r["decision"] == "scale_down" and r["count"] == 4
    assert names[:3] == ["e0", "e1", "e2"] and names[3] in ("ne1", "ne2")
    assert [c["empty"] for c in r["candidates"]] == [True, True, True, False]
    assert "max_empty_bulk_delete 3" in r["reason"] and "at most one non-empty" in r["reason"]


def test_min_nodes_limits_the_bulk():
    nodes, pods = _idle_cluster(3)
    s = dict(default_state(), unneeded=dict((n["name"], NOW - 3600) for n in nodes))
    r = run(config(min_nodes=3), nodes, pods_list=pods, state=s)
    assert r["decision"] == "scale_down" and r["count"] == 1 and r["desired_nodes"] == 3


def test_pending_fittable_pods_block_removal():
    nodes, pods = _idle_cluster(1)
    s = dict(default_state(), unneeded={"e0": NOW - 3600})
    r = run(config(), nodes, [pending("young", 0.2, GIB, age=3)], pods_list=pods, state=s)
    assert r["decision"] == "no_action" and "pending_pods" in r["blocked_by"]


def test_drain_failure_skips_the_node():
    nodes, pods = _idle_cluster(1)
    s = dict(default_state(), unneeded={"e0": NOW - 3600})
    s = record_drain_failure(s, "e0", NOW - 10, 600, reason="eviction refused")
    assert "e0" not in s["unneeded"]
    validate_state(s)
    s = dict(s, unneeded={"e0": NOW - 3600})
    r = run(config(), nodes, pods_list=pods, state=s)
    assert r["decision"] == "no_action" and node_report(r, "e0")["status"] == "backoff"
    r = run(config(), nodes, pods_list=pods, state=s, now=NOW + 600)
    assert r["decision"] == "scale_down"


# ---------------------------------------------------------------- blockers
@pytest.mark.parametrize("extra,kind", [
    ({"ns": "kube-system", "owner": "ReplicaSet"}, "kube_system"),
    ({"owner": None}, "no_controller"),
])
def test_kube_system_without_pdb_and_pods_without_controller_block(extra, kind):
    pods = [pod("busy1", "busy", 1.2), pod("x", "e0", 0.1, **extra)]
    nodes = cluster([node("busy"), node("e0")], pods)
    r = run(config(), nodes, pods_list=pods, state=dict(default_state(), unneeded={"e0": NOW - 3600}))
    assert r["decision"] == "no_action" and node_report(r, "e0")["blocked_by"]["kind"] == kind


def test_safe_to_evict_true_overrides_and_daemonsets_never_block():
    pods = [pod("busy1", "busy", 1.2), pod("x", "e0", 0.1, ns="kube-system", owner=None, safe_to_evict=True),
            pod("ds", "e0", 0.05, owner="DaemonSet")]
    nodes = cluster([node("busy"), node("e0")], pods)
    r = run(config(), nodes, pods_list=pods, state=dict(default_state(), unneeded={"e0": NOW - 3600}))
    assert r["decision"] == "scale_down"


def test_scale_down_disabled_annotation_blocks():
    pods = [pod("busy1", "busy", 1.2)]
    nodes = cluster([node("busy"), node("e0", scale_down_disabled=True)], pods)
    r = run(config(), nodes, pods_list=pods, state=dict(default_state(), unneeded={"e0": NOW - 3600}))
    assert r["decision"] == "no_action"
    assert node_report(r, "e0")["blocked_by"] == {
        "kind": "annotation", "annotation": "cluster-autoscaler.kubernetes.io/scale-down-disabled"}


def test_usage_rule_and_unknown_usage_keep_nodes():
    pods = [pod("busy1", "busy", 1.2)]
    hot = cluster([node("busy"), node("e0", cpu_percent=35.0)], pods)
    r = run(config(), hot, pods_list=pods, state=dict(default_state(), unneeded={"e0": NOW - 3600}))
    assert r["decision"] == "no_action" and "not below cpu_threshold" in node_report(r, "e0")["reason"]
    unknown = cluster([node("busy"), node("e0", cpu_percent=None)], pods)
    r = run(config(), unknown, pods_list=pods, state=dict(default_state(), unneeded={"e0": NOW - 3600}))
    assert r["decision"] == "no_action" and "usage unknown" in node_report(r, "e0")["reason"]


def test_without_pods_detail_only_empty_nodes_can_go():
    nodes = [node("busy", req_cpu=1.2, pods=3), node("e0", pods=0), node("ne", req_cpu=0.1, pods=1)]
    s = dict(default_state(), unneeded={"e0": NOW - 3600, "ne": NOW - 3600})
    r = run(config(), nodes, pods_list=None, state=s)
    assert r["decision"] == "scale_down" and [c["name"] for c in r["candidates"]] == ["e0"]
    assert node_report(r, "ne")["blocked_by"] == {"kind": "pods_detail_missing"}


def test_control_plane_is_never_touched_and_not_a_destination():
    cp = node("server", iid=None, control_plane=True, req_cpu=0.0, pods=0)
    pods = [pod("b1", "b", 0.9)]
    nodes = [cp] + cluster([node("b")], pods)
    r = run(config(), nodes, pods_list=pods, state=dict(default_state(), unneeded={"b": NOW - 3600}))
    assert r["decision"] == "no_action" and node_report(r, "b")["simulation"]["fits"] is False
    assert [n["name"] for n in r["explain"]["scale_down"]["nodes"]] == ["b"]


def test_over_max_nodes_removes_one():
    nodes, pods = _idle_cluster(2)
    r = run(config(max_nodes=2), nodes, pods_list=pods, state=default_state())
    assert (r["decision"], r["count"]) == ("scale_down", 1) and "max_nodes" in r["reason"]


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("kw,field", [
    ({"instance_type": None}, "instance_type"),
    ({"instance_type": "t9.huge"}, "node_groups[0].instance_type"),
    ({"scale_down_utilization_threshold": 50}, "scale_down_utilization_threshold"),
    ({"new_pod_scale_up_delay": -1}, "new_pod_scale_up_delay"),
    ({"max_empty_bulk_delete": 0}, "max_empty_bulk_delete"),
    ({"node_groups": [{"name": "a", "instance_type": "t3.medium", "max_nodes": 1},
                      {"name": "a", "instance_type": "t3.large", "max_nodes": 1}]}, "node_groups"),
    ({"node_groups": [{"name": "a", "instance_type": "t3.medium", "min_nodes": 3, "max_nodes": 1}]},
     "node_groups[0].min_nodes"),
    ({"daemonset_overhead": {"cpu": 1}}, "daemonset_overhead"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as e:
        config(**kw)
    assert e.value.field == field


def test_bad_inputs_name_the_field():
    with pytest.raises(MetricsError) as e:
        run(config(), [node("a")], [], pods_list=[dict(pod("x", "a", 0.1), cpu_cores=-1)])
    assert e.value.field == "pods_detail[0].cpu_cores"
    with pytest.raises(MetricsError) as e:
        run(config(), [node("a")], [], pods_list=[],
            daemonset_requests={"cpu_cores": float("nan"), "memory_bytes": 0})
    assert e.value.field == "daemonset_requests"
    with pytest.raises(MetricsError) as e:
        run(config(), [node("a")], [], pods_list=[], instances=[{"launch_time": 1}])
    assert e.value.field == "instances[0]"


def test_allocatable_matches_the_local_cluster_kubelet_reservation():
    assert DEFAULT_RESERVATION == {"cpu_cores": 0.0, "memory_bytes": 100 * MIB}
    g = config(instance_type="m5.large")["node_groups_resolved"][0]
    assert (g["allocatable_cpu_cores"], g["allocatable_memory_bytes"]) == (2.0, 8 * GIB - 100 * MIB)
    try:
        from local_cluster.kubelet import Reservation
    except ImportError:
        pytest.skip("local_cluster not importable")
    res = Reservation()
    assert (res.cpu, res.memory) == (DEFAULT_RESERVATION["cpu_cores"], DEFAULT_RESERVATION["memory_bytes"])


def test_threshold_policy_output_is_unchanged_by_the_new_keys():
    from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import decide
    r = decide({"nodes": 3, "pending_pods": 7, "avg_cpu": 80.0, "avg_memory": 60.0},
               {"min_nodes": 1, "max_nodes": 10, "pending_pods_threshold": 5}, default_state(), NOW)
    assert (r["decision"], r["count"], r["policy"]) == ("scale_up", 1, "threshold")
    assert r["reason"] == "scale_up: 7 pending pods > threshold 5 and 3 nodes < max_nodes 10"
    assert (r["unneeded"], r["terminate_instance_ids"], r["explain"]) == (None, [], {})


def test_over_max_nodes_never_removes_a_node_whose_pods_fit_nowhere():
    # 2 nodes > max_nodes 1, but each node's pod needs more than the other node has free
    pods = [pod("a1", "a", 1.5), pod("b1", "b", 1.2)]
    nodes = cluster([node("a"), node("b")], pods)
    r = run(config(max_nodes=1), nodes, pods_list=pods, state=default_state())
    assert (r["decision"], r["count"]) == ("no_action", 0) and "fit nowhere else" in r["reason"]
    # a protected pod is not overridden by the bound either
    pods = [pod("a1", "a", 0.2, safe_to_evict=False), pod("b1", "b", 0.2, safe_to_evict=False)]
    r = run(config(max_nodes=1), cluster([node("a"), node("b")], pods), pods_list=pods, state=default_state())
    assert r["decision"] == "no_action"


def test_node_of_a_group_missing_from_node_groups_is_kept_and_the_reason_names_its_tag():
    groups = [{"name": "small", "instance_type": "c5.large", "min_nodes": 0, "max_nodes": 5},
              {"name": "big", "instance_type": "c5.xlarge", "min_nodes": 0, "max_nodes": 5}]
    n = node("a", req_cpu=0.1, pods=1, cpu_percent=3.0, itype="m5.large", iid="i-0abc00000001")
    inst = [{"instance_id": "i-0abc00000001", "launch_time": NOW - 3600, "state": "running",
             "tags": {"k3s-autoscaler/node-group": "default"}}]
    r = run(config(node_groups=groups, min_nodes=0), [n], [], pods_list=[], instances=inst)
    rec = node_report(r, "a")
    assert rec["node_group"] is None and rec["status"] != "removable"
    assert "its instance tag k3s-autoscaler/node-group is 'default', which is not in node_groups" in rec["reason"]
    assert "_instance_groups" not in r and "_pods_nodes" not in r
