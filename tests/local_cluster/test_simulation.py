from local_cluster.clock import VirtualClock
from local_cluster.kubeapi_store import ObjectStore
from local_cluster.simulation import Simulation
from local_cluster.workloads import load_scenario, parse_scenario
from tests.local_cluster.sim_fixtures import advance, joining_user_data, launch, make_sim


def pending(sim):
    return [p for p in sim.pods.values() if p.node is None]


def test_burst_scale_up_then_idle_with_mock_ec2_launches(tmp_path):
    sim, clock, store, ec2 = make_sim(tmp_path, load_scenario("burst"), join_seconds=10, boot_seconds=5)
    advance(sim, clock, 30)
    assert pending(sim) == []
    advance(sim, clock, 15)  # t=45: the burst (12 x 500m) does not fit on one m5.large
    assert len(pending(sim)) == 12 - 3  # the agent holds 3 x 500m next to its 10m DaemonSet pod
    assert len(store.list("v1", "Pod", field_selector="status.phase=Pending")) == len(pending(sim))
    # what the autoscaler would do: launch 3 joining nodes
    for _ in range(3):
        launch(ec2, joining_user_data())
    advance(sim, clock, 16)  # boot 5 s + join 10 s
    assert len([n for n in sim.nodes.values() if n.instance_id]) == 4
    assert pending(sim) == []
    assert all(p["status"]["phase"] == "Running" for p in store.list("v1", "Pod"))
    advance(sim, clock, 120)  # t>=160: back to 1 replica
    web = [p for p in sim.pods.values() if p.owner_kind == "ReplicaSet"]
    assert len(web) == 1 and pending(sim) == []


def test_virtual_day_without_store_or_ec2_runs_in_memory():
    sc = load_scenario("diurnal")
    sc.speed = 1.0
    clock = VirtualClock()
    sim = Simulation(sc, clock, store=None, ec2=None, seed=3)
    sim.start()
    for _ in range(8):
        sim.add_node("m5.large")
    seen = []
    for hour in range(24):
        clock.advance(3600)
        sim.tick()
        seen.append(len([p for p in sim.pods.values() if p.owner_kind == "ReplicaSet"]))
    assert max(seen) == 18 and min(seen) == 2
    assert seen[13] == 18 and seen[1] == 2  # seen[i] is at (i+1):00: peak at 14:00, trough at 02:00
    agent = [n for n in sim.nodes.values() if n.instance_id][0]
    total = sum(agent.cpu_seconds.values())
    assert abs(total - agent.capacity_cpu * 24 * 3600) < 1e-6


def test_many_nodes_and_pods_schedule_correctly():
    sc = parse_scenario({"cluster": {"initial_nodes": 0},
                         "workloads": [{"name": f"w{i}", "cpu": "250m", "memory": "256Mi", "replicas": 300}
                                       for i in range(10)]})
    clock = VirtualClock()
    store = ObjectStore()
    sim = Simulation(sc, clock, store=store, ec2=None, seed=1)
    sim.start()
    for _ in range(100):
        sim.add_node("m5.xlarge")  # 4 cores: 16 pods of 250m each
    clock.advance(1)
    sim.tick()
    per_node = [len(n.pods) for n in sim.nodes.values() if n.instance_id]
    assert sum(per_node) == 1600 and max(per_node) == 16
    assert len(pending(sim)) == 3000 - 1600
    assert len(store.list("v1", "Pod", field_selector="status.phase=Pending")) == 1400
    assert all(n.free_cpu >= -1e-9 for n in sim.nodes.values())
