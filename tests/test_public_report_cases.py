"""Issue 6: the four cases from public reports, with exactly these outcomes.

1. Prometheus connection refused, 5 nodes, min 1 -> hold with an error, never scale to the minimum.
2. The CPU query returns NaN -> treated as missing, so no scale_down.
3. The pending-pods query returns an empty vector -> 0 pending; a transport error still means hold.
4. 6 nodes, target 5, one node already draining by us (cordoned) -> launch 0: a draining node is
   not missing capacity.

Each case is checked at the module/policy level and, for the role, by running the real
``ansible-playbook playbooks/autoscale.yml`` (local inventory, mock EC2 store seeded with the
cluster's instances, a fake Prometheus from ``bad_input_support``) and reading the outcome from
the mock-EC2 store, the run-metrics textfile and the state file.
"""
import json
import os

import pytest

from bad_input_support import (FakePrometheus, active_instances, closed_port_url, cluster_results, mock_ec2,
                               run_playbook, sample)

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import collect_prometheus
from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import (
    CONTEXT_POLICIES, NO_ACTION, POLICIES, SCALE_DOWN, SCALE_UP, decide)

GIB = 1024 ** 3
NOW = 1_800_000_000.0


# --------------------------------------------------------------------------------------------- helpers
class Site(object):
    """A tmp 'cluster dir' for the playbook: mock EC2 store with ``n`` running instances of the
    node group (ids = the fake Prometheus' provider ids), state file, textfile."""

    def __init__(self, base, n):
        self.dir = str(base)
        self.store = os.path.join(self.dir, "ec2.sqlite")
        self.state_file = os.path.join(self.dir, "state", "state.json")
        self.textfile = os.path.join(self.dir, "textfile", "k3s_autoscaler.prom")
        ec2 = mock_ec2(self.store)
        ec2.boot_seconds = 0
        ec2.run_instances(n, {"instance_type": "t3.large", "image_id": "ami-0123456789abcdef0",
                              "tags": {"k3s-autoscaler/cluster": "local", "k3s-autoscaler/node-group": "default"}})
        self.ids = sorted(i["instance_id"] for i in active_instances(self.store))
        assert len(self.ids) == n

    def results(self, n, **kw):
        """cluster_results() for this site's instances (provider ids match the store)."""
        r = cluster_results(nodes=n, **kw)
        for s, iid in zip(r["nodes"], self.ids):
            s["metric"]["provider_id"] = "aws:///us-east-1a/%s" % iid
        return r

    def run(self, prometheus_url, **extra):
        ev = {"autoscale_prometheus_url": prometheus_url, "autoscale_prometheus_timeout": 3,
              "autoscale_state_file": self.state_file, "autoscale_textfile_path": self.textfile,
              "autoscale_ec2_mock": {"store": self.store, "boot_seconds": 0},
              "autoscale_kubeconfig": os.path.join(self.dir, "no-kubeconfig"),
              "autoscale_scale_up_cooldown": 0, "autoscale_scale_down_cooldown": 0,
              "autoscale_min_nodes": 1, "autoscale_max_nodes": 10}
        ev.update(extra)
        return run_playbook(ev, env={"LOCAL_CLUSTER_DIR": self.dir})

    def textfile_values(self):
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        with open(self.textfile) as f:
            for fam in text_string_to_metric_families(f.read()):
                for s in fam.samples:
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def textfile_decision(self):
        taken = [dict(lbl)["decision"] for (name, lbl), v in self.textfile_values().items()
                 if name == "k3s_autoscaler_decision" and v == 1]
        assert len(taken) == 1, taken
        return taken[0]

    def run_error(self):
        return [v for (name, _l), v in self.textfile_values().items() if name == "k3s_autoscaler_run_error"][0]

    def state_events(self):
        if not os.path.exists(self.state_file):
            return []
        with open(self.state_file) as f:
            return json.load(f)["events"]


def describe(proc):
    return "rc=%s\nstdout:\n%s\nstderr:\n%s" % (proc.returncode, proc.stdout[-5000:], proc.stderr[-2000:])


def decision_of(proc):
    """The k3s_scale_decision / hold result from the json callback output."""
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    found = None
    for play in data["plays"]:
        for t in play["tasks"]:
            res = t["hosts"].get("local", {})
            name = t["task"]["name"].split(" : ", 1)[-1]
            if name == "Decide" and not res.get("skipped") and not res.get("failed"):
                found = res
            if name.startswith("Hold (no_action)") and not res.get("skipped"):
                found = res["ansible_facts"]["autoscale_decision"]
    return found


# --------------------------------------------------------------------------------------------- case 1
def test_case1_connection_refused_module_error_names_the_url():
    url = closed_port_url()
    with pytest.raises(MetricsError) as exc:
        collect_prometheus(url, retries=0, timeout=3)
    assert exc.value.query_name == "nodes"
    assert "cannot connect to Prometheus at %s/api/v1/query" % url in exc.value.reason


def test_case1_connection_refused_5_nodes_min_1_holds_never_scales_to_min(tmp_path):
    site = Site(tmp_path, 5)
    proc = site.run(closed_port_url(), autoscale_min_nodes=1)
    assert proc.returncode != 0, "the run must fail (hold with an error)\n" + describe(proc)
    d = decision_of(proc)
    assert d is not None and d["decision"] == NO_ACTION and d["count"] == 0, describe(proc)
    assert "cannot connect to Prometheus" in d["reason"], d["reason"]
    assert sorted(i["instance_id"] for i in active_instances(site.store)) == site.ids, "an instance was terminated"
    assert site.textfile_decision() == NO_ACTION and site.run_error() == 1
    assert [e for e in site.state_events() if e["direction"] == SCALE_DOWN] == []


# --------------------------------------------------------------------------------------------- case 2
def test_case2_cpu_nan_is_an_error_naming_the_query_never_a_number():
    faults = {"node_cpu_percent": {"result": [sample({"nodename": "node-%d" % i}, "NaN") for i in range(5)]}}
    with FakePrometheus(results=cluster_results(nodes=5, cpu_percent=3.0, memory_percent=3.0), faults=faults) as p:
        with pytest.raises(MetricsError) as exc:
            collect_prometheus(p.url, retries=0)
    assert exc.value.query_name == "node_cpu_percent" and "NaN" in exc.value.reason


@pytest.mark.parametrize("policy", sorted(p for p in POLICIES if p not in CONTEXT_POLICIES))
@pytest.mark.parametrize("cpu", [float("nan"), None])
def test_case2_cpu_missing_or_nan_means_no_scale_down(policy, cpu):
    nodes = [{"name": "n%d" % i, "instance_id": "i-%017x" % (i + 1), "ready": True, "unschedulable": False,
              "allocatable_cpu_cores": 2.0, "allocatable_memory_bytes": 8 * GIB, "requested_cpu_cores": 0.1,
              "requested_memory_bytes": GIB // 4, "pods": 1, "cpu_percent": None, "memory_percent": 3.0}
             for i in range(5)]
    m = {"nodes": 5, "pending_pods": 0, "avg_cpu": cpu, "avg_memory": 3.0}
    cfg = {"policy": policy, "min_nodes": 1, "max_nodes": 10, "scale_down_cooldown": 0}
    r = decide(m, cfg, None, NOW, nodes_detail=nodes)
    assert r["decision"] == NO_ACTION and "missing_metrics" in r["blocked_by"], r["reason"]
    # control: the same idle cluster with a known CPU does scale down
    assert decide(dict(m, avg_cpu=3.0), cfg, None, NOW, nodes_detail=nodes)["decision"] == SCALE_DOWN


def test_case2_cpu_nan_role_holds_and_terminates_nothing(tmp_path):
    site = Site(tmp_path, 5)
    results = site.results(5, cpu_percent=3.0, memory_percent=3.0)
    faults = {"node_cpu_percent": {"result": [sample({"nodename": "node-%d" % i}, "NaN") for i in range(5)]}}
    with FakePrometheus(results=results, faults=faults, rate_window="1m") as prom:
        proc = site.run(prom.url)
    d = decision_of(proc)
    assert d is not None and d["decision"] == NO_ACTION, describe(proc)
    assert "node_cpu_percent" in d["reason"] and "NaN" in d["reason"], d["reason"]
    assert sorted(i["instance_id"] for i in active_instances(site.store)) == site.ids
    assert site.textfile_decision() == NO_ACTION


# --------------------------------------------------------------------------------------------- case 3
def test_case3_empty_pending_vector_is_zero_pending():
    with FakePrometheus(results=cluster_results(nodes=3, pending=0)) as p:
        r = collect_prometheus(p.url, retries=0)
        assert "pending_pods" in p.seen
    assert r["metrics"]["pending_pods"] == 0 and r["pending_pods_detail"] == []


def test_case3_transport_error_on_pending_query_is_an_error_not_zero():
    faults = {"pending_pods": {"status": 503, "body": "upstream connect error"}}
    with FakePrometheus(faults=faults) as p:
        with pytest.raises(MetricsError) as exc:
            collect_prometheus(p.url, retries=0)
    assert exc.value.query_name == "pending_pods" and "503" in exc.value.reason


def test_case3_role_empty_vector_runs_transport_error_holds(tmp_path):
    site = Site(tmp_path / "empty", 3)
    with FakePrometheus(results=site.results(3, pending=0), rate_window="1m") as prom:
        proc = site.run(prom.url)
    assert proc.returncode == 0, describe(proc)
    d = decision_of(proc)
    assert d["decision"] == NO_ACTION and d["inputs"]["metrics"]["pending_pods"] == 0, d
    assert site.run_error() == 0

    site2 = Site(tmp_path / "transport", 3)
    faults = {"pending_pods": {"status": 503, "body": "upstream connect error"}}
    with FakePrometheus(results=site2.results(3, pending=4), faults=faults, rate_window="1m") as prom:
        proc = site2.run(prom.url)
    assert proc.returncode != 0, describe(proc)
    d = decision_of(proc)
    assert d["decision"] == NO_ACTION and "pending_pods" in d["reason"], d
    assert sorted(i["instance_id"] for i in active_instances(site2.store)) == site2.ids, "launched on an error"
    assert site2.run_error() == 1


# --------------------------------------------------------------------------------------------- case 4
def _draining_inputs():
    nodes = []
    for i in range(6):
        cordoned = i == 5
        nodes.append({"name": "node-%d" % i, "instance_id": "i-%017x" % (i + 1), "instance_type": "t3.large",
                      "ready": True, "unschedulable": cordoned, "control_plane": False,
                      "allocatable_cpu_cores": 2.0, "allocatable_memory_bytes": 8 * GIB,
                      "requested_cpu_cores": 0.0 if cordoned else 0.5, "requested_memory_bytes": 0 if cordoned else GIB,
                      "pods": 0 if cordoned else 2, "cpu_percent": 30.0, "memory_percent": 30.0})
    # the pods evicted from node-5 are Pending until they reschedule
    pending = [{"namespace": "default", "name": "evicted-%d" % i, "cpu_cores": 0.5, "memory_bytes": 512 * 1024 ** 2,
                "owner_kind": "ReplicaSet", "age_seconds": 60.0} for i in range(2)]
    metrics = {"nodes": 6, "pending_pods": 2, "ready_nodes": 6, "cordoned_nodes": 1, "avg_cpu": 30.0,
               "avg_memory": 30.0}
    state = {"version": 1, "last_scale_up": None, "last_scale_down": NOW - 20, "events": [
        {"time": NOW - 20, "direction": "scale_down", "count": 1, "instance_ids": ["i-%017x" % 6],
         "node_names": ["node-5"], "reason": "scale_down"}]}
    instances = [{"instance_id": n["instance_id"], "launch_time": NOW - 9999, "state": "running",
                  "node_group": "default"} for n in nodes]
    return nodes, pending, metrics, state, instances


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_case4_six_nodes_target_five_one_draining_by_us_launches_zero(policy):
    nodes, pending, metrics, state, instances = _draining_inputs()
    cfg = {"policy": policy, "min_nodes": 5, "max_nodes": 10, "scale_up_cooldown": 300}
    if policy in CONTEXT_POLICIES:
        cfg["instance_type"] = "t3.large"
    ctx = policy in CONTEXT_POLICIES
    r = decide(metrics, cfg, state, NOW, nodes_detail=nodes, pending_pods_detail=pending,
               pods_detail=[] if ctx else None, instances=instances if ctx else None)
    assert r["decision"] != SCALE_UP, r["reason"]  # launch 0
    assert r["desired_nodes"] <= 6, r


def test_case4_a_node_cordoned_by_someone_else_does_not_block_scale_up():
    """Control: the hold is for nodes WE are removing, not for any cordoned node."""
    nodes, pending, metrics, _state, _inst = _draining_inputs()
    state = {"version": 1, "last_scale_up": None, "last_scale_down": None, "events": []}
    r = decide(metrics, {"min_nodes": 5, "max_nodes": 10}, state, NOW, nodes_detail=nodes,
               pending_pods_detail=pending)
    assert r["decision"] == SCALE_UP, r["reason"]
    # and the scale_down event must be recent: older than scale_up_cooldown no longer holds
    _n, _p, _m, old_state, _i = _draining_inputs()
    old_state["events"][0]["time"] = NOW - 3600
    r = decide(metrics, {"min_nodes": 5, "max_nodes": 10, "scale_up_cooldown": 300}, old_state, NOW,
               nodes_detail=nodes, pending_pods_detail=pending)
    assert r["decision"] == SCALE_UP, r["reason"]


def test_case4_role_launches_zero_while_our_node_drains(tmp_path):
    import time
    site = Site(tmp_path, 6)
    results = site.results(6, pending=2, cpu_percent=30.0, memory_percent=30.0, cordoned=("node-5",))
    os.makedirs(os.path.dirname(site.state_file))
    now = time.time()
    with open(site.state_file, "w") as f:
        json.dump({"version": 1, "last_scale_up": None, "last_scale_down": now - 20, "events": [
            {"time": now - 20, "direction": "scale_down", "count": 1, "instance_ids": [site.ids[5]],
             "node_names": ["node-5"], "reason": "scale_down"}]}, f)
    ec2 = mock_ec2(site.store)
    ec2.terminate_instances([site.ids[5]])  # its instance is terminating, the node is still listed
    before = sorted(i["instance_id"] for i in active_instances(site.store))
    with FakePrometheus(results=results, rate_window="1m") as prom:
        proc = site.run(prom.url, autoscale_min_nodes=5, autoscale_scale_up_cooldown=300)
    d = decision_of(proc)
    assert d is not None and d["decision"] != SCALE_UP and d["count"] == 0, describe(proc)
    assert "draining" in d["blocked_by"], d
    assert sorted(i["instance_id"] for i in active_instances(site.store)) == before, "launched a node"
