# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The binpacking policy end to end through the modules, run as Ansible runs them (ad-hoc `ansible`):
k3s_scale_decision (unneeded written to the state file, pods listed from the Kubernetes API),
k3s_scale_event (launch_failed / drain_failed) and k3s_run_metrics (launch failures, unfittable pods)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from module_runner import run_module

GIB = 1024 ** 3


def node(name, iid, req_cpu, pods, cpu_percent=5.0):
    return {"name": name, "provider_id": "aws:///us-east-1a/%s" % iid, "instance_id": iid, "instance_type": "t3.medium",
            "ready": True, "unschedulable": False, "control_plane": False, "allocatable_cpu_cores": 2.0,
            "allocatable_memory_bytes": 4 * GIB - 100 * 1024 * 1024, "requested_cpu_cores": req_cpu,
            "requested_memory_bytes": 0, "pods": pods, "cpu_percent": cpu_percent, "memory_percent": 5.0}


NODES = [node("busy", "i-0aaaaaaaaaaaaaaa1", 1.2, 3), node("idle", "i-0bbbbbbbbbbbbbbb2", 0.2, 2)]
BASE = {"policy": "binpacking", "instance_type": "t3.medium", "min_nodes": 1, "max_nodes": 5, "max_scale_up_step": 5,
        "metrics": {"nodes": 2, "pending_pods": 0, "avg_cpu": 5.0, "avg_memory": 5.0,
                    "daemonset_requests": {"cpu_cores": 0.0, "memory_bytes": 0}},
        "nodes_detail": NODES, "pending_pods_detail": []}


def test_scale_up_packs_pending_pods_and_explains():
    full = [node("busy", "i-0aaaaaaaaaaaaaaa1", 2.0, 3, 90.0)]
    args = dict(BASE, nodes_detail=full, metrics=dict(BASE["metrics"], nodes=1, pending_pods=5),
                pending_pods_detail=[{"namespace": "default", "name": "p%d" % i, "cpu_cores": 1.0,
                                      "memory_bytes": GIB, "owner_kind": "ReplicaSet", "age_seconds": 60.0}
                                     for i in range(4)] + [
                    {"namespace": "default", "name": "huge", "cpu_cores": 8.0, "memory_bytes": GIB,
                     "owner_kind": "ReplicaSet", "age_seconds": 60.0}],
                instances=[{"instance_id": "i-0aaaaaaaaaaaaaaa1", "state": {"name": "running"},
                            "launch_time": "2026-01-01T00:00:00+00:00",
                            "tags": {"k3s-autoscaler/node-group": "default"}}])
    r = run_module("k3s_scale_decision", args)
    assert not r.get("failed"), r
    assert (r["decision"], r["count"], r["node_group"], r["changed"]) == ("scale_up", 2, "default", False)
    assert [p["name"] for p in r["unfittable_pods"]] == ["huge"]
    assert r["explain"]["scale_up"]["chosen"]["pods"] == 4
    assert r["terminate_instance_ids"] == [] and r["actionable"] is True


def test_unneeded_is_written_to_the_state_file_only_when_it_changes(tmp_path):
    sf = str(tmp_path / "state.json")
    pods = [{"namespace": "default", "name": "web-%d" % i, "node": "busy", "cpu_cores": 0.4, "memory_bytes": 0,
             "owner_kind": "ReplicaSet"} for i in range(3)] + [
        {"namespace": "default", "name": "api-1", "node": "idle", "cpu_cores": 0.2, "memory_bytes": 0,
         "owner_kind": "ReplicaSet"}]
    args = dict(BASE, state_file=sf, pods_detail=pods)
    r = run_module("k3s_scale_decision", args, check=True)
    assert r["changed"] is True and not os.path.exists(sf)           # check mode: nothing written
    r = run_module("k3s_scale_decision", args, diff=True)
    assert not r.get("failed"), r
    assert r["changed"] is True and r["decision"] == "no_action" and list(r["unneeded"]) == ["idle"]
    assert r["diff"]["before"] == {"unneeded": {}} and list(r["diff"]["after"]["unneeded"]) == ["idle"]
    with open(sf) as f:
        saved = json.load(f)
    assert saved["unneeded"] == r["unneeded"] and saved["version"] == 1
    r2 = run_module("k3s_scale_decision", args)
    assert r2["changed"] is False and r2["unneeded"] == r["unneeded"]
    idle = [n for n in r2["explain"]["scale_down"]["nodes"] if n["name"] == "idle"][0]
    assert idle["status"] == "unneeded" and "of scale_down_unneeded_time 600s" in idle["reason"]
    r3 = run_module("k3s_scale_decision", dict(args, scale_down_unneeded_time=0))
    assert (r3["decision"], [c["name"] for c in r3["candidates"]]) == ("scale_down", ["idle"])


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory):
    kubeapi_mod = pytest.importorskip("local_cluster.kubeapi")
    api = kubeapi_mod.KubeAPI(port=0, kubeconfig_path=str(tmp_path_factory.mktemp("kube") / "kubeconfig"))
    api.start()
    yield api
    api.stop()


def _api_pod(ns, name, node_name, cpu, owner="ReplicaSet", annotations=None, labels=None):
    meta = {"namespace": ns, "name": name, "labels": labels or {}, "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "x",
                                                            "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"}}


def _api_node(name, annotations=None):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {}, "status": {}}


def _node_detail(r, name):
    return [n for n in r["explain"]["scale_down"]["nodes"] if n["name"] == name][0]


def test_pods_come_from_the_kubernetes_api_when_not_passed(kubeapi, tmp_path):
    kubeapi.create(_api_node("idle"))
    kubeapi.create(_api_pod("default", "api-1", "idle", "200m",
                            annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}))
    args = dict(BASE, scale_down_unneeded_time=0, state_file=str(tmp_path / "s.json"))
    r = run_module("k3s_scale_decision", dict(args, kubeconfig=kubeapi.kubeconfig_path))
    assert not r.get("failed"), r
    assert r["pods_detail_source"] == "kubernetes"
    idle = _node_detail(r, "idle")
    assert r["decision"] == "no_action" and idle["blocked_by"] == {"kind": "safe_to_evict", "pod": "default/api-1"}
    # without API access a non-empty node is never removed, and the warning says why
    r = run_module("k3s_scale_decision", args)
    assert r["decision"] == "no_action" and r["pods_detail_source"] is None
    assert any("pass kubeconfig" in w for w in r.get("warnings", []))


def test_scale_down_disabled_annotation_is_read_from_the_api(kubeapi, tmp_path):
    empty = [node("busy", "i-0aaaaaaaaaaaaaaa1", 1.2, 3), node("spare", "i-0ccccccccccccccc3", 0.0, 0)]
    kubeapi.create(_api_node("spare", {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}))
    args = dict(BASE, nodes_detail=empty, scale_down_unneeded_time=0, state_file=str(tmp_path / "s.json"))
    # without API access the empty node would go
    r = run_module("k3s_scale_decision", args)
    assert (r["decision"], [c["name"] for c in r["candidates"]]) == ("scale_down", ["spare"])
    r = run_module("k3s_scale_decision", dict(args, kubeconfig=kubeapi.kubeconfig_path))
    assert not r.get("failed"), r
    assert r["decision"] == "no_action"
    assert _node_detail(r, "spare")["blocked_by"]["kind"] == "annotation"
    # an unreadable API blocks the removal (never guesses that nothing protects the node)
    kubeapi.delete("v1", "Node", "spare")
    r = run_module("k3s_scale_decision", dict(args, kubeconfig=kubeapi.kubeconfig_path))
    assert r["decision"] == "no_action" and "kubernetes_api" in r["blocked_by"]
    assert "GET /api/v1/nodes/spare" in r["reason"]


def test_launch_failed_backs_off_and_run_metrics_count_it(tmp_path):
    sf = str(tmp_path / "state.json")
    t = float(int(time.time()))
    r = run_module("k3s_scale_event", {"state_file": sf, "direction": "launch_failed", "node_group": "default",
                                       "error_code": "InsufficientInstanceCapacity", "time": t}, diff=True)
    assert not r.get("failed"), r
    assert r["state"]["backoff"]["default"] == {"until": t + 300, "failures": 1,
                                                "error_code": "InsufficientInstanceCapacity"}
    assert r["diff"]["after"]["backoff"]["default"]["failures"] == 1
    assert r["state"]["last_scale_up"] is None and r["state"]["totals"]["launch_failures"] == 1
    r = run_module("k3s_scale_event", {"state_file": sf, "direction": "launch_failed"})
    assert r.get("failed") and "node_group" in r["msg"]
    r = run_module("k3s_scale_event", {"state_file": sf, "direction": "drain_failed", "node_names": ["idle"],
                                       "skip_seconds": 600, "reason": "eviction refused by PDB"})
    assert not r.get("failed"), r
    assert r["state"]["node_backoff"]["idle"]["reason"] == "eviction refused by PDB"
    prom = str(tmp_path / "m.prom")
    r = run_module("k3s_run_metrics", {"path": prom, "cluster": "c", "node_group": "default", "decision": "no_action",
                                       "started_at": 0, "state_file": sf, "unfittable_pods": 2})
    assert not r.get("failed"), r
    text = open(prom).read()
    assert 'k3s_autoscaler_launch_failures_total{cluster="c",node_group="default"} 1.0' in text
    assert 'k3s_autoscaler_unfittable_pods{cluster="c",node_group="default"} 2.0' in text
