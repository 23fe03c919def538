"""`make run` (scripts/demo.py) output: the per-cycle line, its detail line, the table and the chart show the
same figures under the same names; launched / drained nodes and evicted pods come from the run's state-file
events and a before/after read of the (emulated) Kubernetes API; stale or missing figures stay unknown ("?").

Fast: no playbook runs; the API is local_cluster's emulated Kubernetes API on a free port (no Prometheus).
"""
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))

import cluster_process  # noqa: E402
import demo  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils import run_metrics, state  # noqa: E402
# the emulated API fixture (started on a free port, kubeconfig in tmp_path) and its object helpers
from tests.local_cluster.conftest import kubeapi, make_node, make_pod  # noqa: E402,F401

# Real summary lines of the autoscale role (its Summary debug msg), as `make run` printed them.
UP = ('pending=9 nodes=1 cpu=70.1% memory=14.7% decision=scale_up+2 '
      'reason="scale_up: 9 pending pods > threshold 0 and 1 nodes < max_nodes 5"')
DOWN = ('pending=0 nodes=5 cpu=13.4% memory=4.0% decision=scale_down-1 (check mode: nothing changed) '
        'reason="scale_down: avg_cpu 13.4% < cpu_threshold 20% and \\"x\\""')
HOLD = 'pending=? nodes=? cpu=? memory=? decision=no_action reason="no_action: query nodes failed"'


def proc(rc=0, stdout="", stderr=""):
    return SimpleNamespace(returncode=rc, stdout=stdout, stderr=stderr)


# ---------------------------------------------------------------- summary line


def test_summary_line_is_read_from_the_json_callback_output():
    out = 'TASK [Summary]\nok: [localhost] => {\n    "msg": "%s"\n}\n' % UP.replace('"', '\\"')
    assert demo.summary_line(out) == UP
    assert demo.summary_line('ok: [x] => {\n "msg": "skipped: lock held - run 12"\n}') == "skipped: lock held - run 12"
    assert demo.summary_line("PLAY RECAP\nlocalhost : ok=3 failed=1") is None


def test_parse_summary_scale_up_down_hold_and_skipped():
    up = demo.parse_summary(UP)
    assert up == {"pending": 9, "nodes": 1, "cpu": 70.1, "memory": 14.7, "decision": "scale_up", "count": 2,
                  "check_mode": False,
                  "reason": "scale_up: 9 pending pods > threshold 0 and 1 nodes < max_nodes 5"}
    down = demo.parse_summary(DOWN)
    assert (down["decision"], down["count"], down["nodes"], down["check_mode"]) == ("scale_down", 1, 5, True)
    assert down["reason"].endswith('\\"x\\"')
    hold = demo.parse_summary(HOLD)
    assert (hold["nodes"], hold["pending"], hold["cpu"], hold["decision"], hold["count"]) == (
        None, None, None, "no_action", 0)
    assert demo.parse_summary("skipped: lock held")["decision"] == "skipped"
    assert demo.parse_summary("something else") is None
    assert demo.parse_summary(None) is None


# ---------------------------------------------------------------- textfile (k3s_run_metrics output)


def write_textfile(path, now, **kw):
    reg = run_metrics.build_registry("local", "default", kw.pop("decision", "scale_down"), now, now - 3, **kw)
    run_metrics.export(reg, path=str(path))


def test_textfile_of_this_run_is_read_and_a_stale_one_ignored(tmp_path):
    path = tmp_path / "k3s_autoscaler.prom"
    assert demo.read_textfile(str(path)) == {}
    now = time.time()
    write_textfile(path, now, desired_nodes=4, current_nodes=5, pending_pods=0)
    got = demo.read_textfile(str(path), since=now - 10)
    assert (got["decision"], got["desired_nodes"], got["current_nodes"], got["pending_pods"]) == (
        "scale_down", 4, 5, 0)
    # written before this cycle started (a run that failed before the export, or check mode): not this run's
    assert demo.read_textfile(str(path), since=now + 1) == {}


# ---------------------------------------------------------------- state events -> what the run did


def test_state_events_since_the_cycle_start(tmp_path):
    path = str(tmp_path / "state.json")
    assert demo.state_events(path, 0) == []
    t0 = time.time()
    state.update_state(path, lambda s: state.record_event(s, "scale_up", 2, t0 - 30, instance_ids=["i-old1", "i-old2"]))
    state.update_state(path, lambda s: state.record_event(s, "scale_down", 1, t0, instance_ids=["i-0abc"],
                                                          node_names=["worker-2"]))
    evs = demo.state_events(path, t0 - 1)
    assert [(e["direction"], e["node_names"], e["instance_ids"]) for e in evs] == [
        ("scale_down", ["worker-2"], ["i-0abc"])]
    (tmp_path / "bad.json").write_text("{not json")
    assert demo.state_events(str(tmp_path / "bad.json"), 0) == []


def test_run_details_names_launched_ids_drained_node_and_evicted_pods():
    before = {"worker-2": {"default/web-1", "default/web-2"}, "worker-1": {"default/web-3"}}
    after = {"worker-1": {"default/web-3", "default/web-4"}}
    events = [{"direction": "scale_up", "instance_ids": ["i-1", "i-2"], "node_names": []},
              {"direction": "scale_down", "instance_ids": ["i-0abc"], "node_names": ["worker-2"]},
              {"direction": "drain_failed", "instance_ids": [], "node_names": ["worker-3"], "reason": "PDB"}]
    got = demo.run_details(events, before, after)
    assert got["launched"] == ["i-1", "i-2"]
    assert got["removed"] == [{"node": "worker-2", "instance_id": "i-0abc",
                               "evicted": ["default/web-1", "default/web-2"]}]
    assert got["drain_failed"] == [{"node": "worker-3", "reason": "PDB"}]
    assert demo.run_details([], before, after) == {"launched": [], "removed": [], "drain_failed": [],
                                                   "launch_failed": []}


# ---------------------------------------------------------------- rows, lines, table


def row_for(summary, rc=0, textfile=None, ready=1, details=None, stdout=""):
    d = {"launched": [], "removed": [], "drain_failed": [], "launch_failed": []}
    d.update(details or {})
    return demo.build_row(3, 31.4, 16.5, proc(rc, stdout=stdout), demo.parse_summary(summary), textfile or {},
                          ready, d, "run/local/cycle-03.log" if rc else None)


def test_scale_up_row_line_and_one_detail_line():
    row = row_for(UP, textfile={"desired_nodes": 3.0, "current_nodes": 1.0}, details={"launched": ["i-1", "i-2"]})
    assert (row["nodes"], row["desired"], row["ready"], row["pending"], row["decision"]) == (1, 3, 1, 9, "scale_up")
    line = demo.cycle_line(row)
    assert line.startswith("[cycle  3 t=   31s 16.5s] scale_up+2")
    assert "nodes=1 desired=3 ready=1 pending=9 cpu=70.1% memory=14.7%" in line
    assert "\n" not in line
    assert demo.detail_line(row) == "    launched i-1, i-2"


def test_scale_down_detail_names_node_instance_and_evicted_pods():
    row = row_for(DOWN.replace(" (check mode: nothing changed)", ""), textfile={"desired_nodes": 4.0},
                  ready=5, details={"removed": [{"node": "worker-2", "instance_id": "i-0abc",
                                                 "evicted": ["default/web-1", "default/web-2"]}]})
    detail = demo.detail_line(row)
    assert detail == ("    cordoned and drained worker-2 (i-0abc, terminated), evicted 2 pods: "
                      "default/web-1, default/web-2")
    assert "scale_down-1" in demo.cycle_line(row) and "desired=4" in demo.cycle_line(row)


def test_failed_run_is_an_error_with_unknown_figures_and_a_one_line_reason():
    out = ('TASK [Fail]\nfatal: [localhost]: FAILED! => {\n    "changed": false,\n'
           '    "msg": "query nodes failed:\\nconnection refused"\n}\n')
    row = row_for(HOLD, rc=2, ready=None, stdout=out)
    assert (row["decision"], row["nodes"], row["desired"], row["ready"], row["pending"]) == (
        "error", None, None, None, None)
    assert "nodes=? desired=? ready=? pending=? cpu=? memory=?" in demo.cycle_line(row)
    detail = demo.detail_line(row)
    assert detail == ("    run failed (rc=2): query nodes failed: connection refused; "
                      "full output run/local/cycle-03.log")
    # no summary at all (crash before the role ran): stderr's last line, still one detail line
    row = row_for(None, rc=4, stdout="", ready=2)
    row["error"] = demo.failure_message(proc(4, stderr="ERROR! the playbook could not be found\n"))
    assert row["decision"] == "error" and "\n" not in demo.detail_line(row)


def test_check_mode_without_textfile_has_no_desired_figure():
    row = row_for(DOWN, textfile={})
    assert row["desired"] is None and row["check_mode"]
    assert "desired=?" in demo.cycle_line(row) and "(check mode: nothing changed)" in demo.cycle_line(row)


def test_line_table_and_chart_use_the_same_names(tmp_path):
    rows = [row_for(UP, textfile={"desired_nodes": 3.0}, details={"launched": ["i-1", "i-2"]}),
            row_for(HOLD, rc=2, ready=None)]
    table = demo.table_lines(rows)
    assert table[0].split()[:8] == ["cycle", "t(s)", "run(s)", "decision", "nodes", "desired", "ready", "pending"]
    assert table[1].split()[3:8] == ["scale_up", "1", "3", "1", "9"] and table[1].endswith("i-1, i-2")
    assert table[2].split()[3:8] == ["error", "?", "?", "?", "?"]
    for name in ("nodes", "desired", "ready", "pending"):
        assert name + "=" in demo.cycle_line(rows[0])
        assert demo.SERIES[name].startswith(name + ": ")
        assert name + " = " in demo.LEGEND
    png = tmp_path / "c.png"
    demo.chart(rows, str(png), "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the Kubernetes API reads


RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "uid": "u-rs"}}
DS = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "svclb", "uid": "u-ds"}}


def test_api_reads_ready_workers_and_pods_per_node(kubeapi, tmp_path):
    make_node(kubeapi, "server-0", labels={"node-role.kubernetes.io/control-plane": "true"})
    make_node(kubeapi, "worker-1")
    make_node(kubeapi, "worker-2")
    kubeapi.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-3"},  # booting: NotReady
                    "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    make_pod(kubeapi, "web-1", node="worker-2", owner=RS)
    make_pod(kubeapi, "web-2", node="worker-2", owner=RS)
    make_pod(kubeapi, "svclb-1", node="worker-2", owner=DS)
    make_pod(kubeapi, "web-3", node="worker-1", owner=RS)
    make_pod(kubeapi, "done-1", node="worker-1", owner=RS, phase="Succeeded")
    make_pod(kubeapi, "web-4", owner=RS, phase="Pending")  # not bound to a node
    api = demo.kube_api(str(tmp_path / "kubeconfig"))
    assert demo.ready_worker_nodes(api) == 2
    before = demo.pods_by_node(api)
    assert before == {"worker-2": {"default/web-1", "default/web-2"}, "worker-1": {"default/web-3"}}
    kubeapi.evict("web-1", "default")
    kubeapi.evict("web-2", "default")
    got = demo.run_details([{"direction": "scale_down", "instance_ids": ["i-0abc"], "node_names": ["worker-2"]}],
                           before, demo.pods_by_node(api))
    assert got["removed"] == [{"node": "worker-2", "instance_id": "i-0abc",
                               "evicted": ["default/web-1", "default/web-2"]}]


# ---------------------------------------------------------------- shared start/stop (demo.py and bench_cycle.py)


def test_both_scripts_use_the_shared_start_and_stop():
    import bench_cycle
    assert demo.start_cluster is bench_cycle.start_cluster is cluster_process.start_cluster
    assert demo.stop_cluster is bench_cycle.stop_cluster is cluster_process.stop_cluster


def test_start_cluster_that_exits_names_its_log_and_stop_is_idempotent(tmp_path):
    with pytest.raises(SystemExit, match="exited with .* during start-up; see .*local_cluster.log"):
        cluster_process.start_cluster(str(tmp_path), "no-such-scenario-xyz", timeout=60, poll=0.1)
    assert (tmp_path / "local_cluster.log").exists()
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    cluster_process.stop_cluster(p, timeout=10)
    assert p.returncode is not None
    cluster_process.stop_cluster(p)  # already stopped: no error
    cluster_process.stop_cluster(None)
