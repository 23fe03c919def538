"""Smoke test of the replay benchmark (bench/replay.py): a tiny window with each policy and the accounting.

Not a timed test: it checks figures are consistent (oracle <= every policy's node-hours, pending times
>= 0, flaps counted as documented), not how fast anything runs.
"""
import os

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils import policy as pol
from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2

from bench import replay as R
from local_cluster.clock import VirtualClock
from local_cluster.simulation import Simulation
from local_cluster.trace import resolve_trace_path
from local_cluster.workloads import load_scenario

POLICIES = [p for p in ("threshold", "binpacking") if p in pol.POLICIES]
FAST = R.Settings(check_interval=30, tick=10)


def _trace_available():
    try:
        resolve_trace_path(None)
        return True
    except Exception:
        return False


# ------------------------------------------------------------------ pure accounting
@pytest.mark.parametrize("events, expected", [
    ([], 0),
    ([(0, "scale_up")], 0),
    ([(0, "scale_up"), (300, "scale_down")], 1),              # up then down within 10 min
    ([(0, "scale_down"), (600, "scale_up")], 1),              # down then up, exactly 10 min: counts
    ([(0, "scale_up"), (601, "scale_down")], 0),              # just over 10 min apart
    ([(0, "scale_up"), (300, "scale_down"), (500, "scale_up")], 2),
    ([(0, "scale_up"), (100, "scale_up"), (200, "scale_down")], 1),  # one reversal
    ([(0, "scale_down"), (100, "scale_down"), (5000, "scale_up")], 0),
    ([(500, "scale_up"), (0, "scale_down")], 1),              # unsorted input is sorted by time
    ([(0, "scale_up"), (10, "launch_failed"), (20, "scale_down")], 1),  # other events are ignored
])
def test_count_flaps_on_crafted_sequences(events, expected):
    assert R.count_flaps(events, window=600) == expected


def test_flap_pairs_name_the_direction():
    pairs = R.flap_pairs([(0, "scale_up"), (300, "scale_down"), (500, "scale_up")])
    assert [(d1, d2) for _t1, d1, _t2, d2 in pairs] == [("scale_up", "scale_down"), ("scale_down", "scale_up")]


def test_ffd_reference_is_integral_and_skips_pods_no_node_holds():
    cpu, mem = R.node_allocatable("m5.large")
    pods = [(0.5, 512 * 2 ** 20)] * 18
    # 3 pods of 500m per m5.large once the 10m DaemonSet is on it -> 6 nodes (the fractional bound says 5)
    assert R.ffd_nodes(pods, cpu, mem, ds_cpu=0.01, ds_mem=16 * 2 ** 20) == 6
    assert R.ffd_nodes([(4.0, 1)], cpu, mem, min_nodes=1) == 1  # a 4-core pod fits no m5.large
    assert R.ffd_nodes([(1.5, 1), (0.6, 1), (0.5, 1), (1.4, 1)], 2.0, 10 ** 9) == 2  # 1.5+0.5, 1.4+0.6


def test_count_flaps_window_is_a_parameter():
    assert R.count_flaps([(0, "scale_up"), (300, "scale_down")], window=120) == 0


def test_percentile_interpolates_and_handles_empty():
    assert R.percentile([], 95) is None
    assert R.percentile([5.0], 95) == 5.0
    assert R.percentile([0, 10], 50) == 5.0
    assert R.percentile(list(range(101)), 95) == 95.0
    assert R.percentile([3, 1, 2], 0) == 1


def test_fractional_bound_after_daemonset_overhead():
    cpu, mem = R.node_allocatable("m5.large")
    assert cpu == 2.0 and mem == 8192 * 1024 * 1024 - 100 * 1024 * 1024
    # 18 pods x 500m on m5.large with a 10m DaemonSet: 9 / 1.99 = 4.52 -> 5 (the integral need is 6)
    assert R.fractional_nodes(9.0, 18 * 512 * 2 ** 20, cpu, mem, ds_cpu=0.01, ds_mem=16 * 2 ** 20) == 5
    assert R.fractional_nodes(0.0, 0, cpu, mem, min_nodes=1) == 1
    assert R.fractional_nodes(4.0, 0, 2.0, 10 ** 9) == 2  # exactly full: no extra node for float noise
    # memory-bound demand
    assert R.fractional_nodes(0.1, 20 * 2 ** 30, cpu, mem) == 3
    with pytest.raises(ValueError, match="DaemonSet"):
        R.fractional_nodes(1.0, 1, 2.0, 10, ds_cpu=2.0)


def test_oracle_counts_indivisible_pods():
    cpu, mem = R.node_allocatable("m5.large")
    pods = [(0.5, 512 * 2 ** 20)] * 18
    # the same 18 pods: 3 per node next to the DaemonSet -> 6, what FFD reaches too
    assert R.oracle_nodes(pods, cpu, mem, ds_cpu=0.01, ds_mem=16 * 2 ** 20) == 6
    assert R.oracle_nodes([], cpu, mem, min_nodes=1) == 1
    assert R.oracle_nodes([(0.1, 1)] * 40, 2.0, 10 ** 9) == 2  # exactly full: no extra node for float noise
    assert R.oracle_nodes([(0.1, 2 ** 30)] * 20, cpu, mem) == 3  # memory-bound (7 GiB per node)
    assert R.oracle_nodes([(4.0, 1)], cpu, mem, min_nodes=1) == 1  # a pod no node holds is left out
    with pytest.raises(ValueError, match="DaemonSet"):
        R.oracle_nodes([(1.0, 1)], 2.0, 10, ds_cpu=2.0)


# ------------------------------------------------------------------ the adapter and the drain hook
def _sim(scenario="burst"):
    clock = VirtualClock()
    sim = Simulation(load_scenario(scenario), clock)
    sim.start()
    return clock, sim


def test_observe_builds_k3s_metrics_shaped_inputs():
    clock, sim = _sim("high")  # 12 x 500m on 1 m5.large agent -> Pending pods
    clock.advance(10)
    sim.tick()
    inputs = R.observe(sim)
    m = pol.validate_metrics(inputs["metrics"])
    assert m["nodes"] == 1  # the control plane is listed but not counted
    assert [n["control_plane"] for n in inputs["nodes_detail"]].count(True) == 1
    pending = inputs["pending_pods_detail"]
    assert m["pending_pods"] == len(pending) == len([p for p in sim.pending.values() if p.owner_kind != "DaemonSet"])
    assert pending and all(p["owner_kind"] == "ReplicaSet" and p["age_seconds"] >= 0 for p in pending)
    worker = next(n for n in inputs["nodes_detail"] if not n["control_plane"])
    assert worker["instance_id"] and worker["ready"] is True
    assert 0 <= worker["cpu_percent"] <= 100 and 0 <= worker["memory_percent"] <= 100
    bound = [p for p in inputs["pods_detail"] if p["node"] == worker["name"]]
    assert abs(sum(p["cpu_cores"] for p in bound) - worker["requested_cpu_cores"]) < 1e-9
    assert inputs["instances"] == []  # no EC2 in this simulation


def test_drain_evicts_into_pending_replacements(tmp_path):
    run = R.build_scenario("burst", duration=60)
    rp = R.Replay(run, "threshold", FAST, str(tmp_path))
    rp.sim.start()
    clock = rp.clock
    clock.advance(10)
    rp.sim.tick()
    node = next(n for n in rp.sim.nodes.values() if n.instance_id)
    before = [p for p in node.pods.values() if p.owner_kind != "DaemonSet"]
    assert before
    evicted = rp.drain(node.name)
    assert sorted(evicted) == sorted(p.key for p in before)
    assert node.unschedulable and all(p.owner_kind == "DaemonSet" for p in node.pods.values())
    clock.advance(10)
    rp.sim.tick()  # the ReplicaSet recreates them; nothing else can take them -> Pending
    replacements = [p for p in rp.sim.pending.values() if p.owner_kind == "ReplicaSet"]
    assert len(replacements) == len(before)
    rp.ec2.close()


def test_cached_ec2_sees_its_own_writes(tmp_path):
    clock = VirtualClock()
    ec2 = R.CachedEC2(MockEC2(store=str(tmp_path / "ec2.sqlite"), boot_seconds=30, shutdown_seconds=5,
                              clock=clock), clock)
    assert ec2.list_instances() == []
    (inst,), _ = ec2.run_instances(1, {"instance_type": "m5.large", "image_id": "ami-0123456789abcdef0"})
    assert [i["state"]["name"] for i in ec2.list_instances()] == ["pending"]
    clock.advance(30)
    assert [i["state"]["name"] for i in ec2.list_instances()] == ["running"]  # pending results are not cached
    ec2.terminate_instances([inst["instance_id"]])
    assert [i["state"]["name"] for i in ec2.list_instances()] == ["shutting-down"]
    clock.advance(5)
    assert [i["state"]["name"] for i in ec2.list_instances()] == ["terminated"]
    ec2.close()


# ------------------------------------------------------------------ tiny replays
@pytest.fixture(scope="module")
def burst_results(tmp_path_factory):
    run = R.build_scenario("burst", duration=900)
    tmp = str(tmp_path_factory.mktemp("replay"))
    return {p: R.replay(run, p, FAST, tmp) for p in POLICIES}


@pytest.mark.parametrize("policy", POLICIES)
def test_burst_accounting(burst_results, policy):
    r = burst_results[policy]
    assert r.oracle_node_hours > 0
    assert r.oracle_node_hours <= r.node_hours + 1e-9
    assert r.pending_count > 0 and all(w >= 0 for w in [r.p50, r.p95, r.pending_max])
    assert r.p50 <= r.p95 <= r.pending_max
    # the burst needs more than the initial node: someone scaled up and the flaps match the events
    assert r.scale_ups >= 1 and r.nodes_launched >= 1
    assert r.scale_actions == r.scale_ups + r.scale_downs
    assert r.flaps == R.count_flaps([(e["time"], e["direction"]) for e in r.events])
    assert r.sim_seconds == 900 and r.wall_seconds > 0
    # node-hours are at least (initial node for the whole window) and at most max_nodes for the whole window
    assert 900 / 3600 - 1e-9 <= r.node_hours <= 5 * 900 / 3600 + 1e-9
    series = r.series
    assert len(series["t"]) == len(series["instances"]) == len(series["oracle"]) == 30


def test_oracle_is_policy_independent(burst_results):
    oracles = {round(r.oracle_node_hours, 9) for r in burst_results.values()}
    assert len(oracles) == 1


@pytest.mark.skipif(not _trace_available(), reason="Alibaba openb trace not at ../shared/traces/alibaba-openb/")
@pytest.mark.parametrize("policy", POLICIES)
def test_trace_window_accounting(tmp_path, policy):
    # 3 hours of the real trace (Weng et al., USENIX ATC 2023), real size on m5.16xlarge
    run = R.build_scenario("trace", trace_start=12.0e6, trace_days=0.125)
    assert run.scenario.workloads and all(w.cpu <= 64 for w in run.scenario.workloads)
    r = R.replay(run, policy, FAST, str(tmp_path))
    assert r.oracle_node_hours <= r.node_hours + 1e-9
    assert r.pending_count > 0 and r.p95 >= 0 and r.p50 >= 0


def test_main_writes_json_and_png(tmp_path, capsys):
    rc = R.main(["--scenarios", "burst", "--policies", ",".join(POLICIES + ["no-such-policy"]),
                 "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "no-such-policy" in out and "oracle (lower bound)" in out
    assert os.path.getsize(tmp_path / "bench-replay.png") > 1000
    import json
    data = json.loads((tmp_path / "bench-replay.json").read_text())
    assert {r["policy"] for r in data["results"]} == set(POLICIES)


def test_compact_series_keeps_change_points_and_the_last_sample(burst_results):
    r = next(iter(burst_results.values()))
    full, compact = r.series, r.compact_series()
    assert compact["t"][0] == full["t"][0] and compact["t"][-1] == full["t"][-1]
    assert len(compact["t"]) <= len(full["t"])
    # a step plot of the compact series gives back every full sample
    for i, t in enumerate(full["t"]):
        j = max(k for k, tc in enumerate(compact["t"]) if tc <= t)
        assert all(compact[key][j] == full[key][i] for key in full if key != "t")


def test_any_registered_policy_plugs_in(monkeypatch, tmp_path):
    """The harness calls policy.decide() with whatever is registered: a policy that always wants one more
    node drives the simulation to max_nodes, through the mock EC2 and the fake kubelet."""
    calls = []

    def always_up(m, cfg, nodes_detail=None, pending_pods_detail=None):
        calls.append(m["nodes"])
        return {"decision": pol.SCALE_UP, "count": 1, "blocked_by": [], "reason": "scale_up: test policy"}

    monkeypatch.setitem(pol.POLICIES, "always_up", always_up)
    run = R.build_scenario("burst", duration=600)
    # scale_up_cooldown 120 s > node boot (75 s + tick alignment): each launch has joined before the next
    s = R.Settings(check_interval=30, tick=10, scale_up_cooldown=120)
    r = R.replay(run, "always_up", s, str(tmp_path))
    assert calls and max(calls) == run.max_nodes  # the joined nodes were observed
    assert r.nodes_launched == run.max_nodes - run.scenario.initial_nodes
    assert r.scale_downs == 0 and r.decisions["no_action"] > 0  # decide() blocks it at max_nodes


def test_a_policy_blind_to_booting_instances_overshoots_max_nodes(monkeypatch, tmp_path):
    """Why the issue asks to count capacity on the way: metrics.nodes counts registered Nodes only, so with
    no cooldown a policy that ignores ``instances`` launches again while nodes boot, past max_nodes."""
    monkeypatch.setitem(pol.POLICIES, "always_up", lambda m, cfg, nd=None, pp=None: {
        "decision": pol.SCALE_UP, "count": 1, "blocked_by": [], "reason": "scale_up: test policy"})
    run = R.build_scenario("burst", duration=600)
    r = R.replay(run, "always_up", R.Settings(check_interval=30, tick=10, scale_up_cooldown=0), str(tmp_path))
    assert r.nodes_launched > run.max_nodes - run.scenario.initial_nodes


def test_burst_20m_variant_holds_the_burst_for_20_minutes():
    run = R.build_scenario("burst-20m")
    w = run.scenario.workloads[0]
    assert [w.desired(t) for t in (0, 40, 1239, 1240)] == [3, 12, 12, 1]
    assert run.duration == 3600 and run.instance_type == "m5.large"
    assert R.build_scenario("burst").scenario.workloads[0].desired(200) == 1  # the original is untouched


@pytest.mark.parametrize("args, message", [
    (["--scenarios", "nope"], "--scenarios nope: scenario 'nope' not found"),
    (["--scenarios", "burst", "--set", "new_pod_scale_up_dela=10"], "did you mean new_pod_scale_up_delay?"),
    (["--scenarios", "trace", "--trace", "/nonexistent.csv"], "trace CSV not found: /nonexistent.csv"),
    (["--scenarios", "burst", "--set", "new_pod_scale_up_delay=abc"], "must be a finite number (seconds)"),
])
def test_bad_command_line_is_a_usage_error_not_a_traceback(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        R.main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err, err
