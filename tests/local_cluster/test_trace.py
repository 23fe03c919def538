import os

import pytest

from local_cluster.clock import VirtualClock
from local_cluster.simulation import Simulation
from local_cluster.trace import DEFAULT_TRACE, REPO_ROOT, apply_trace, load_trace, resolve_trace_path, window_workloads
from local_cluster.workloads import ScenarioError, load_scenario

CSV = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
       "a,12000,16384,1,1000,,LS,Running,0,500,0\n"          # GPU pod: dropped
       "b,8000,32768,0,0,,LS,Running,100,300,100\n"          # inside the window
       "c,4000,8192,0,0,,BE,Running,50,150,50\n"             # starts before the window
       "d,2000,4096,0,0,,BE,Running,400,450,400\n"           # after the window
       "e,1000,1024,0,0,,BE,Pending,120,12902960,\n")        # never scheduled, alive to the end


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "pods.csv"
    path.write_text(CSV)
    return str(path)


def test_load_keeps_cpu_only_pods_sorted(small_csv):
    pods = load_trace(small_csv)
    assert [p.name for p in pods] == ["c", "b", "e", "d"]
    assert pods[1].cpu_milli == 8000 and pods[1].memory_mib == 32768


def test_window_compression_and_scaling(small_csv):
    wls = window_workloads(load_trace(small_csv), start=100, length=200, compression=10, cpu_scale=0.5,
                           memory_scale=0.25, namespace="trace")
    by = {w.name: w for w in wls}
    assert set(by) == {"b", "c", "e"}
    assert by["b"].lifetime == (0.0, 20.0) and by["c"].lifetime == (0.0, 5.0) and by["e"].lifetime == (2.0, 20.0)
    assert by["b"].cpu == 4.0 and by["b"].memory == 8192 * 1024 * 1024
    assert [by["b"].desired(t) for t in (0, 19.9, 20)] == [1, 1, 0]


def test_missing_trace_fails_clearly(tmp_path):
    with pytest.raises(ScenarioError, match="trace CSV not found: .*--trace"):
        resolve_trace_path(str(tmp_path / "missing.csv"))


def test_default_path_is_relative_to_repo_root():
    expected = os.path.normpath(os.path.join(REPO_ROOT, DEFAULT_TRACE))
    if not os.path.exists(expected):
        pytest.skip(f"shared trace not present at {expected}")
    assert resolve_trace_path(None) == expected


def test_trace_scenario_replays_in_virtual_time():
    sc = load_scenario("trace")
    try:
        wls = apply_trace(sc)
    except ScenarioError as exc:
        pytest.skip(str(exc))
    assert wls and all(w.namespace == "trace" for w in wls)
    clock = VirtualClock()
    sim = Simulation(sc, clock, seed=0)
    sim.start()
    for _ in range(6):
        sim.add_node(sc.instance_type)
    peak = 0
    for _ in range(72):  # 6 scenario minutes = the 7-day window
        clock.advance(5)
        sim.tick()
        peak = max(peak, sum(1 for p in sim.pods.values() if p.namespace == "trace"))
    assert peak >= 5
    assert all(p.node is not None for p in sim.pods.values())  # 7 m5.2xlarge-sized agents hold the window
    clock.advance(60)
    sim.tick()
    assert not [p for p in sim.pods.values() if p.namespace == "trace" and
                next(w for w in wls if w.name == p.workload[1]).lifetime[1] <= sim.scenario_t]
