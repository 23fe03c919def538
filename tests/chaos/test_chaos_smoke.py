"""`make chaos`, small: the fault-injection harness (scripts/chaos.py) for 20 runs with a fixed seed against one
local cluster, plus fast self-tests showing that its invariant checks do fail on a violation."""
import json
import os
import types

import pytest

import chaos
from e2e_harness import requires_stack


def _fake_chaos(tmp_path, state=None):
    ch = chaos.Chaos(seed=0, runs=0, base_dir=str(tmp_path), quiet=True)
    path = tmp_path / "state.json"
    if state is not None:
        path.write_text(json.dumps(state))
    ch.cluster = types.SimpleNamespace(state_file=str(path))
    return ch


def _snap(states, nodes=None, pods=None, before=None):
    return {"ec2_before": before or states, "ec2_after": states, "nodes": nodes or {}, "pods": pods or {},
            "state_ok": True}


def test_checks_flag_max_and_min_nodes(tmp_path):
    ch = _fake_chaos(tmp_path)
    ch.check_snapshot(_snap({"i-%d" % n: "pending" if n % 2 else "running" for n in range(chaos.MAX_NODES + 1)}))
    assert ch.violations["1_max_nodes"] == 1
    ch.check_snapshot(_snap({"i-1": "shutting-down", "i-2": "terminated"}))
    assert ch.violations["2_min_nodes"] == 1
    ch.check_snapshot(_snap({"i-1": "running", "i-2": "pending"}))
    assert sum(ch.violations.values()) == 2


def test_checks_flag_termination_of_a_node_with_pods(tmp_path):
    ch = _fake_chaos(tmp_path)
    nodes = {"n1": {"instance_id": "i-1", "unschedulable": True}, "n2": {"instance_id": "i-2", "unschedulable": True}}
    ch.check_snapshot(_snap({"i-1": "shutting-down", "i-2": "shutting-down", "i-3": "running"}, nodes,
                            pods={"n1": ["web-abc"], "n2": []}))
    assert ch.violations["6_evict_before_terminate"] == 1
    assert "n1" in ch.details[0]["what"]


def test_checks_flag_a_second_launch_of_one_decision_and_unparseable_state(tmp_path):
    ch = _fake_chaos(tmp_path, state={"version": 1, "last_scale_up": None, "last_scale_down": None, "events": []})
    tag = {chaos.LAUNCH_ID_TAG: "L1"}
    after = {"i-1": {"tags": tag, "client_token": "t1"}, "i-2": {"tags": tag, "client_token": "t2"},
             "i-3": {"tags": {}, "client_token": "t3"}}
    ch.check_launch_once(after)
    assert ch.violations["3_launch_once"] == 2  # two RunInstances calls for L1; i-3 untagged
    (tmp_path / "state.json").write_text('{"version": 1, "last_sc')
    assert "is corrupt" in ch.state_parses()


@pytest.mark.integration
@pytest.mark.prometheus
@requires_stack
def test_chaos_smoke_zero_violations(tmp_path):
    rep = chaos.run_chaos(seed=11, runs=20, base_dir=str(tmp_path / "chaos"),
                          out_path=str(tmp_path / "chaos.json"), quiet=True)
    chaos.print_table(rep)
    assert rep["runs"] == 20
    assert rep["violations_total"] == 0, rep["details"]
    assert sum(rep["behaviour_violations"].values()) == 0, rep["details"]
    # the faults really happened: at least 8 distinct kinds hit (Prometheus, EC2, kills, lock, state)
    assert len(rep["faults_fired"]) >= 8, rep["faults_fired"]
    assert rep["outcomes"].get("ok", 0) >= 3, rep["outcomes"]
    if any(k.startswith("kill_") for k in rep["faults_fired"]):
        assert rep["recoveries"].get("stale_lock", 0) >= 1, rep
    assert rep["recoveries"].get("state_repaired", 0) == rep["faults_fired"].get("corrupt_state", 0), rep
    with open(tmp_path / "chaos.json") as f:
        assert json.load(f)["runs"] == 20
    assert os.path.getsize(tmp_path / "chaos.json") > 0
