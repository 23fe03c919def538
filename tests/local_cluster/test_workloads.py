import pytest

from local_cluster.workloads import (ScenarioError, TimeFunction, WorkloadDriver, available_scenarios, load_scenario,
                                     parse_cpu, parse_memory, parse_scenario)
from tests.local_cluster.sim_fixtures import advance, make_sim, scenario


def test_quantities():
    assert parse_cpu("500m") == 0.5 and parse_cpu(2) == 2.0 and parse_cpu("1.5") == 1.5
    assert parse_memory("512Mi") == 512 * 1024 ** 2 and parse_memory("1G") == 10 ** 9 and parse_memory(42) == 42
    with pytest.raises(ScenarioError, match="workloads\\[0\\].cpu"):
        parse_cpu("lots", "workloads[0].cpu")
    with pytest.raises(ScenarioError, match="memory"):
        parse_memory("-1Mi")


def test_time_functions():
    steps = TimeFunction([[0, 3], [40, 16], [160, 1]], lambda v, f: float(v), "replicas")
    assert [steps(t) for t in (0, 39.9, 40, 159, 160, 1e6)] == [3, 3, 16, 16, 1, 1]
    sine = TimeFunction({"sine": {"mean": 10, "amplitude": 8, "period": 100, "phase": 0}}, lambda v, f: float(v), "r")
    assert sine(25) == pytest.approx(18) and sine(75) == pytest.approx(2) and sine(0) == pytest.approx(10)
    with pytest.raises(ScenarioError, match="period"):
        TimeFunction({"sine": {"mean": 1}}, lambda v, f: float(v), "r")


def test_all_shipped_scenarios_load_and_have_autoscaler_settings():
    names = available_scenarios()
    assert {"steady", "burst", "diurnal", "normal", "high", "low", "boundary", "trace"} <= set(names)
    for name in names:
        sc = load_scenario(name)
        assert sc.initial_nodes >= 1 and sc.instance_type
        assert {"min_nodes", "max_nodes"} <= set(sc.autoscaler), name
    with pytest.raises(ScenarioError, match="known scenarios"):
        load_scenario("nope")


def test_burst_shape_scale_up_then_idle():
    sc = load_scenario("burst")
    w = sc.workloads[0]
    assert w.desired(10) * w.cpu <= 2.0  # fits on the one initial m5.large
    assert w.desired(60) * w.cpu >= 6.0  # needs ~3 more nodes
    assert w.desired(200) * w.cpu < 1.0  # idle


def test_driver_creates_and_deletes_pending_first_then_newest():
    class P:
        def __init__(self, name, node, created):
            self.namespace, self.name, self.node, self.created = "default", name, node, created

    sc = parse_scenario({"workloads": [{"name": "w", "replicas": [[0, 3], [10, 1]]}]})
    d = WorkloadDriver(sc.workloads, seed=0)
    create, delete = d.reconcile(0, {})
    assert len(create) == 3 and delete == []
    assert all(name.startswith(sc.workloads[0].replicaset_name + "-") for _, name in create)
    live = {("default", "w"): [P("old", "n1", 1), P("new", "n1", 5), P("pend", None, 2)]}
    create, delete = d.reconcile(10, live)
    assert create == [] and delete == [("default", "pend"), ("default", "new")]


def test_evicted_pod_comes_back_pending_with_new_name(tmp_path):
    sc = scenario(workloads=[{"name": "web", "cpu": "500m", "memory": "256Mi", "replicas": 2}])
    sim, clock, store, ec2 = make_sim(tmp_path, sc)
    before = store.list("v1", "Pod", "default")
    assert len(before) == 2 and all(p["status"]["phase"] == "Running" for p in before)
    owner = before[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet" and owner["controller"] is True
    assert store.get("apps/v1", "ReplicaSet", owner["name"], "default")["metadata"]["uid"] == owner["uid"]
    victim = before[0]["metadata"]["name"]
    store.evict(victim, "default")
    sim.tick()
    after = store.list("v1", "Pod", "default")
    names = {p["metadata"]["name"] for p in after}
    assert len(after) == 2 and victim not in names
    # the replacement was created and (room being there) scheduled again on the same tick
    replacement = [p for p in after if p["metadata"]["name"] != before[1]["metadata"]["name"]][0]
    assert replacement["spec"]["nodeName"] == before[0]["spec"]["nodeName"]


def test_deleted_pod_without_room_comes_back_pending_unschedulable(tmp_path):
    sc = scenario(workloads=[{"name": "web", "cpu": "1500m", "memory": "256Mi", "replicas": 1}])
    sim, clock, store, ec2 = make_sim(tmp_path, sc)
    [pod] = store.list("v1", "Pod", "default")
    node = pod["spec"]["nodeName"]
    store.patch("v1", "Node", node, {"spec": {"unschedulable": True}}, patch_type="strategic")  # kubectl cordon
    store.delete("v1", "Pod", pod["metadata"]["name"], "default")
    advance(sim, clock, 1)
    [new] = store.list("v1", "Pod", "default")
    assert new["metadata"]["name"] != pod["metadata"]["name"]
    assert new["status"]["phase"] == "Pending" and "nodeName" not in new["spec"]
    [cond] = new["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("PodScheduled", "False", "Unschedulable")
    assert "1 node(s) were unschedulable" in cond["message"]
