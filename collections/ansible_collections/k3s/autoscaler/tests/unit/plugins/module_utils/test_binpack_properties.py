# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invariants of the binpacking policy over random clusters (hypothesis): bounds, unfittable pods never
launch, removed nodes' pods really fit on the nodes that stay, protected nodes are never removed, and the
decision is a pure function of its inputs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from hypothesis import event, given, settings, strategies as st

from ansible_collections.k3s.autoscaler.plugins.module_utils.binpack import simulate_drain
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import default_state

from binpack_fixtures import GIB, NOW, cluster, config, node, pending, pod, run

CPU = st.sampled_from([0.1, 0.25, 0.5, 1.0, 1.5, 2.5])
MEM = st.sampled_from([0, GIB // 4, GIB, 2 * GIB])


@st.composite
def clusters(draw):
    n_nodes = draw(st.integers(1, 6))
    names = ["n%d" % i for i in range(n_nodes)]
    pods = []
    for i in range(draw(st.integers(0, 14))):
        where = draw(st.sampled_from(names))
        used = sum(p["cpu_cores"] for p in pods if p["node"] == where)
        cpu = draw(CPU)
        if used + cpu > 2.0:
            continue
        pods.append(pod("p%d" % i, where, cpu, draw(MEM), safe_to_evict=draw(st.sampled_from([None, None, None, None, False]))))
    nodes = cluster([node(n, cpu_percent=draw(st.sampled_from([5.0, 5.0, 5.0, 50.0]))) for n in names], pods)
    pend = [pending("q%d" % i, draw(st.sampled_from([0.5, 1.0, 1.9, 3.0])), draw(MEM),
                    age=draw(st.sampled_from([5.0, 60.0])), owner=draw(st.sampled_from(["ReplicaSet", "DaemonSet"])))
            for i in range(draw(st.sampled_from([0, 0, 0, 1, 3, 6])))]
    unneeded = dict((n, NOW - draw(st.sampled_from([0, 100, 3600, 3600]))) for n in names
                    if draw(st.sampled_from([True, True, True, False])))
    last_up = draw(st.sampled_from([None, None, NOW - 60, NOW - 7200]))
    return nodes, pods, pend, dict(default_state(), unneeded=unneeded, last_scale_up=last_up)


@settings(max_examples=300, deadline=None)
@given(clusters(), st.integers(0, 3), st.integers(1, 4))
def test_invariants(data, min_nodes, step):
    nodes, pods, pend, state = data
    max_nodes = max(min_nodes, 6)
    cfg = config(min_nodes=min_nodes, max_nodes=max_nodes, max_scale_up_step=step)
    args = (cfg, copy.deepcopy(nodes), copy.deepcopy(pend))
    r = run(*args, pods_list=copy.deepcopy(pods), state=copy.deepcopy(state))
    # pure: same inputs, same output
    assert r == run(*args, pods_list=copy.deepcopy(pods), state=copy.deepcopy(state))
    n = len(nodes)
    event(r["decision"])
    assert min_nodes <= r["desired_nodes"] <= max_nodes or r["decision"] == "no_action"
    if r["decision"] == "scale_up":
        assert 1 <= r["count"] <= step and n + r["count"] <= max_nodes
        eligible = [p for p in pend if p["owner_kind"] != "DaemonSet" and p["age_seconds"] >= 30
                    and p["cpu_cores"] <= 2.0]
        assert eligible or n < min_nodes
    assert all(p["cpu_cores"] > 2.0 for p in r["unfittable_pods"])
    if r["decision"] == "scale_down":
        assert n - r["count"] >= min_nodes
        assert state["last_scale_up"] is None or NOW - state["last_scale_up"] >= 600 or n > max_nodes
        gone = set(c["name"] for c in r["candidates"])
        assert len(gone) == r["count"]
        assert sum(1 for c in r["candidates"] if not c["empty"]) <= 1
        stay = [{"name": x["name"], "free_cpu": x["allocatable_cpu_cores"] - x["requested_cpu_cores"],
                 "free_mem": x["allocatable_memory_bytes"] - x["requested_memory_bytes"]}
                for x in nodes if x["name"] not in gone]
        moving = [p for p in pods if p["node"] in gone]
        assert all(p["safe_to_evict"] is not False for p in moving)
        ok, _pl, unplaced, _left = simulate_drain(moving, stay)
        assert ok, unplaced
        for name in gone:
            assert NOW - state["unneeded"][name] >= 600
    for name in r["unneeded"]:
        assert all(p["safe_to_evict"] is not False for p in pods if p["node"] == name)
