# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The 8 cases of issue 5 ("Tests from public reports"), each with exactly the issue's outcome.

Each case also runs a control variant that differs in the one fact the case is about, so the
test fails if the policy ignored that fact.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.k3s.autoscaler.plugins.module_utils.state import default_state, record_launch_failure

from binpack_fixtures import GIB, NOW, cluster, config, node, node_report, pending, pod, run

UNNEEDED_LONG_AGO = NOW - 3600


def _old_state(*unneeded_nodes):
    st = default_state()
    st["unneeded"] = dict((n, UNNEEDED_LONG_AGO) for n in unneeded_nodes)
    return st


# 1 ------------------------------------------------------------------------------------------------
def test_case1_dont_remove_a_node_whose_pod_has_nowhere_to_go():
    """2 nodes x 2 CPU. A has 1.6 CPU requested, B one 0.9 CPU pod (45 %) -> B is not removed."""
    pods = [pod("a1", "a", 0.8), pod("a2", "a", 0.8), pod("b1", "b", 0.9)]
    nodes = cluster([node("a"), node("b")], pods)
    r = run(config(), nodes, pods_list=pods, state=_old_state("a", "b"))
    assert r["decision"] == "no_action" and r["count"] == 0 and r["candidates"] == []
    b = node_report(r, "b")
    assert b["utilization"] == 0.45
    assert b["status"] == "needed"
    assert b["simulation"]["fits"] is False
    assert [p["name"] for p in b["simulation"]["unplaced"]] == ["b1"]
    assert "do not fit on the other nodes" in b["reason"]
    assert "b" not in r["unneeded"]
    # control: a 0.3 CPU pod fits A's free 0.4 CPU, so B goes.
    pods2 = [pod("a1", "a", 0.8), pod("a2", "a", 0.8), pod("b1", "b", 0.3)]
    r2 = run(config(), cluster([node("a"), node("b")], pods2), pods_list=pods2, state=_old_state("b"))
    assert r2["decision"] == "scale_down" and [c["name"] for c in r2["candidates"]] == ["b"]


# 2 ------------------------------------------------------------------------------------------------
def test_case2_a_pod_bigger_than_any_node_is_unfittable():
    """Node type 2 vCPU (~1.9 allocatable), a pending pod requesting 4 CPU -> launch 0, reported unfittable."""
    cfg = config(node_reservation={"cpu_cores": 0.1, "memory_bytes": 100 * 1024 * 1024})
    assert cfg["node_groups_resolved"][0]["allocatable_cpu_cores"] == 1.9
    nodes = [node("a", cpu=1.9, req_cpu=1.8, pods=3, cpu_percent=90.0)]
    r = run(cfg, nodes, [pending("big", 4.0, GIB)], pods_list=[])
    assert r["decision"] == "no_action" and r["count"] == 0
    assert [p["name"] for p in r["unfittable_pods"]] == ["big"]
    assert r["unfittable_pods"][0]["cpu_cores"] == 4.0
    assert "unfittable" in r["blocked_by"]
    assert "unfittable" in r["reason"]
    # control: a 1.5 CPU pod launches one node.
    r2 = run(cfg, nodes, [pending("ok", 1.5, GIB)], pods_list=[])
    assert (r2["decision"], r2["count"], r2["unfittable_pods"]) == ("scale_up", 1, [])


# 3 ------------------------------------------------------------------------------------------------
def test_case3_daemonsets_take_space_on_new_nodes_too():
    """4-CPU node type, DaemonSets 0.25 CPU per node: pending 4 CPU -> 0, pending 3.5 CPU -> 1."""
    cfg = config(instance_type="t3.xlarge")  # 4 vCPU, 16 GiB
    nodes = [node("a", cpu=4.0, mem=16 * GIB, itype="t3.xlarge", req_cpu=3.9, pods=5, cpu_percent=95.0)]
    ds = {"daemonset_requests": {"cpu_cores": 0.25, "memory_bytes": 0}}  # k3s_metrics query daemonset_requests
    r4 = run(cfg, nodes, [pending("four", 4.0, GIB)], pods_list=[], **ds)
    assert (r4["decision"], r4["count"]) == ("no_action", 0)
    assert [p["name"] for p in r4["unfittable_pods"]] == ["four"]
    assert r4["explain"]["daemonset_overhead"]["cpu_cores"] == 0.25
    r35 = run(cfg, nodes, [pending("three-and-a-half", 3.5, GIB)], pods_list=[], **ds)
    assert (r35["decision"], r35["count"], r35["node_group"]) == ("scale_up", 1, "default")
    assert r35["unfittable_pods"] == []
    # control: without DaemonSet overhead the 4 CPU pod fits an empty 4-CPU node.
    r0 = run(cfg, nodes, [pending("four", 4.0, GIB)], pods_list=[],
             daemonset_requests={"cpu_cores": 0.0, "memory_bytes": 0})
    assert (r0["decision"], r0["count"]) == ("scale_up", 1)


# 4 ------------------------------------------------------------------------------------------------
def test_case4_a_pending_daemonset_pod_launches_nothing():
    """3 nodes, one pending DaemonSet pod -> launch 0."""
    nodes = [node(n, req_cpu=2.0, req_mem=4 * GIB, pods=4, cpu_percent=90.0) for n in ("a", "b", "c")]
    r = run(config(), nodes, [pending("ds-x", 0.1, 64 * 1024 * 1024, ns="kube-system", owner="DaemonSet")],
            pods_list=[])
    assert (r["decision"], r["count"]) == ("no_action", 0)
    assert [p["name"] for p in r["explain"]["scale_up"]["skipped_daemonset"]] == ["ds-x"]
    assert "DaemonSet" in r["reason"]
    # control: the same pod owned by a ReplicaSet launches a node (all nodes are full).
    r2 = run(config(), nodes, [pending("rs-x", 0.1, 64 * 1024 * 1024)], pods_list=[])
    assert (r2["decision"], r2["count"]) == ("scale_up", 1)


# 5 ------------------------------------------------------------------------------------------------
def test_case5_pack_pods_dont_launch_one_node_per_pod():
    """4 pending pods of 4 CPU / 6 GiB, node type 8 CPU / 32 GiB -> launch 2."""
    cfg = config(instance_type="m5.2xlarge")
    nodes = [node("a", cpu=8.0, mem=32 * GIB - 100 * 1024 * 1024, itype="m5.2xlarge", req_cpu=7.5, pods=6,
                  cpu_percent=90.0)]
    pend = [pending("p%d" % i, 4.0, 6 * GIB) for i in range(4)]
    r = run(cfg, nodes, pend, pods_list=[])
    assert (r["decision"], r["count"], r["node_group"]) == ("scale_up", 2, "default")
    chosen = r["explain"]["scale_up"]["chosen"]
    assert chosen["pods"] == 4 and chosen["nodes"] == 2
    assert "p0" in r["reason"] and "m5.2xlarge" in r["reason"]


# 6 ------------------------------------------------------------------------------------------------
def test_case6_a_short_pending_spell_launches_nothing():
    """A pod unschedulable for 5 s, then scheduled -> no launch."""
    full = [node("a", req_cpu=2.0, pods=3, cpu_percent=90.0)]
    r1 = run(config(), full, [pending("blip", 0.5, GIB, age=5.0)], pods_list=[])
    assert (r1["decision"], r1["count"]) == ("no_action", 0)
    assert [p["name"] for p in r1["explain"]["scale_up"]["skipped_too_young"]] == ["blip"]
    assert "new_pod_scale_up_delay" in r1["reason"]
    # next run: the pod got scheduled (no longer pending)
    r2 = run(config(), full, [], pods_list=[], now=NOW + 30)
    assert (r2["decision"], r2["count"]) == ("no_action", 0)
    # control: had it stayed pending for 35 s it would launch.
    r3 = run(config(), full, [pending("blip", 0.5, GIB, age=35.0)], pods_list=[], now=NOW + 30)
    assert (r3["decision"], r3["count"]) == ("scale_up", 1)


# 7 ------------------------------------------------------------------------------------------------
def test_case7_repeated_launch_failures_back_off_the_group():
    """3 launches fail with InsufficientInstanceCapacity -> the group backs off; no 4th launch inside it."""
    full = [node("a", req_cpu=2.0, pods=3, cpu_percent=90.0)]
    want = [pending("w", 1.0, GIB)]
    cfg = config()
    st = default_state()
    t = NOW
    backoffs = []
    for _attempt in range(3):
        r = run(cfg, full, want, pods_list=[], state=st, now=t)
        assert (r["decision"], r["count"], r["node_group"]) == ("scale_up", 1, "default")
        st = record_launch_failure(st, "default", "InsufficientInstanceCapacity", t)
        backoffs.append(st["backoff"]["default"]["until"] - t)
        # inside the backoff: no launch
        r = run(cfg, full, want, pods_list=[], state=st, now=t + 60)
        assert (r["decision"], r["count"]) == ("no_action", 0)
        assert "backoff" in r["blocked_by"]
        t = st["backoff"]["default"]["until"] + 1
    assert backoffs == [300.0, 600.0, 1200.0]
    assert st["totals"]["launch_failures"] == 3
    # no 4th launch anywhere inside the third backoff
    for dt in (1, 600, 1199):
        r = run(cfg, full, want, pods_list=[], state=st, now=t - 1 - 1200 + dt)
        assert r["decision"] == "no_action", dt


def test_case7_where_a_second_group_fits_it_launches_there():
    groups = [{"name": "small", "instance_type": "t3.medium", "min_nodes": 0, "max_nodes": 5},
              {"name": "big", "instance_type": "t3.2xlarge", "min_nodes": 0, "max_nodes": 5}]
    cfg = config(node_groups=groups)
    full = [node("a", req_cpu=2.0, pods=3, cpu_percent=90.0)]
    want = [pending("w", 1.5, 3 * GIB)]
    r = run(cfg, full, want, pods_list=[])
    assert (r["decision"], r["node_group"]) == ("scale_up", "small")  # least waste
    st = default_state()
    for i in range(3):
        st = record_launch_failure(st, "small", "InsufficientInstanceCapacity", NOW + i)
    r = run(cfg, full, want, pods_list=[], state=st, now=NOW + 10)
    assert (r["decision"], r["count"], r["node_group"]) == ("scale_up", 1, "big")
    small = [o for o in r["explain"]["scale_up"]["options"] if o["node_group"] == "small"][0]
    assert small["skipped"].startswith("backed off")


# 8 ------------------------------------------------------------------------------------------------
def _protected_case(**pod_extra):
    pods = [pod("a1", "a", 1.2), pod("b1", "b", 0.2, **pod_extra)]
    return cluster([node("a"), node("b")], pods), pods


def test_case8_a_protected_pod_keeps_the_node_safe_to_evict_false():
    nodes, pods = _protected_case(safe_to_evict=False)
    r = run(config(), nodes, pods_list=pods, state=_old_state("a", "b"))
    assert r["decision"] == "no_action"
    b = node_report(r, "b")
    assert b["status"] == "blocked"
    assert b["blocked_by"] == {"kind": "safe_to_evict", "pod": "default/b1"}
    assert "cluster-autoscaler.kubernetes.io/safe-to-evict" in b["reason"]


def test_case8_a_protected_pod_keeps_the_node_pdb_allows_0():
    nodes, pods = _protected_case(pdb_disruptions_allowed=0, pdb_name="web-pdb")
    r = run(config(), nodes, pods_list=pods, state=_old_state("a", "b"))
    assert r["decision"] == "no_action"
    b = node_report(r, "b")
    assert b["status"] == "blocked"
    assert b["blocked_by"] == {"kind": "pdb", "pod": "default/b1", "pdb": "web-pdb", "disruptions_allowed": 0}


def test_case8_control_unprotected_node_is_removed():
    nodes, pods = _protected_case(pdb_disruptions_allowed=1, pdb_name="web-pdb")
    r = run(config(), nodes, pods_list=pods, state=_old_state("a", "b"))
    assert r["decision"] == "scale_down" and r["count"] == 1
    assert r["candidates"][0]["name"] == "b"
