"""`make run` (scripts/demo.py) output: the per-cycle line, its detail line, the table and the chart show the
same figures under the same names; launched / drained nodes and evicted pods come from the run's state-file
events and a before/after read of the (emulated) Kubernetes API; stale or missing figures stay unknown ("?").

Why a run failed is read from REAL ansible-playbook output (a few one-second runs of playbooks/autoscale.yml that
fail in the role's checks or on an unreachable Prometheus, before any cluster exists); the main loop's stop /
keep-going decision, the make-run lock and the start-up errors are tested with the cluster start stubbed or with
a real `local_cluster up --no-prometheus`. The API is local_cluster's emulated Kubernetes API on a free port.
"""
import json
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


def test_start_cluster_that_exits_quotes_the_error_and_stop_is_idempotent(tmp_path):
    with pytest.raises(SystemExit) as exc:
        cluster_process.start_cluster(str(tmp_path), "no-such-scenario-xyz", timeout=60, poll=0.1)
    msg = str(exc.value)
    assert msg.startswith("local cluster exited with 2 during start-up:\n")
    assert "scenario 'no-such-scenario-xyz' not found" in msg and "known scenarios: " in msg and "burst" in msg
    assert msg.endswith("(full log: %s)" % (tmp_path / "local_cluster.log")) and "Traceback" not in msg
    with pytest.raises(SystemExit, match=r"trace CSV not found: /nonexistent\.csv"):
        cluster_process.start_cluster(str(tmp_path), "trace", 60, ["--trace", "/nonexistent.csv"], poll=0.1)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    cluster_process.stop_cluster(p, timeout=10)
    assert p.returncode is not None
    cluster_process.stop_cluster(p)  # already stopped: no error
    cluster_process.stop_cluster(None)



def test_log_error_lines_picks_the_exception_line_not_the_traceback_frames(tmp_path):
    log = tmp_path / "local_cluster.log"
    log.write_text("2026-01-01 local_cluster kube API at http://127.0.0.1:1\nTraceback (most recent call last):\n"
                   '  File "x.py", line 3, in <module>\n    raise PrometheusError(f"...")\n'
                   "local_cluster.prometheus.PrometheusError: Prometheus exited with code 1 during startup\n\n")
    assert cluster_process.log_error_lines(str(log)) == [
        "local_cluster.prometheus.PrometheusError: Prometheus exited with code 1 during startup"]
    log.write_text("a\nb\nc\nd\ne\nf\n")  # no error line: the tail
    assert cluster_process.log_error_lines(str(log)) == ["b", "c", "d", "e", "f"]
    log.write_text("")
    assert cluster_process.log_error_lines(str(log)) == ["(log is empty)"]
    assert cluster_process.log_error_lines(str(tmp_path / "missing.log"))[0].startswith("(no log: ")


def test_start_cluster_ignores_a_stale_cluster_json(tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps({"pid": 1, "api_url": "http://127.0.0.1:1"}))
    proc, info = cluster_process.start_cluster(str(tmp_path), "steady", 60, ["--no-prometheus"], poll=0.1)
    try:
        assert info["pid"] == proc.pid and info["api_url"] != "http://127.0.0.1:1"
    finally:
        cluster_process.stop_cluster(proc)
    assert proc.returncode == 0


# ---------------------------------------------------------------- why a run failed (real ansible-playbook output)


@pytest.fixture(scope="module")
def failed_runs(tmp_path_factory):
    """Real runs of playbooks/autoscale.yml that fail (each about a second; no cluster needed):

    * ``typo``: ``-e autoscale_max_node=3`` (the role refuses unknown autoscale_* variables);
    * ``no_cluster``: no cluster.json in LOCAL_CLUSTER_DIR (template error of the inventory's
      autoscale_prometheus_url, raised in the arg-spec validation);
    * ``preflight``: ``autoscale_max_nodes=0`` (Preflight loop, two failed items);
    * ``prometheus``: cluster.json points at a closed Prometheus port (metrics fail, the run holds and fails).
    """
    out = {}
    for name, extra, with_cluster in (("typo", {"autoscale_max_node": 3}, True), ("no_cluster", None, False),
                                      ("preflight", {"autoscale_max_nodes": 0}, True), ("prometheus", None, True)):
        d = tmp_path_factory.mktemp("run-" + name)
        if with_cluster:
            (d / "cluster.json").write_text(json.dumps({
                "prometheus_url": "http://127.0.0.1:1", "kubeconfig": str(d / "kubeconfig"),
                "ec2_store": str(d / "ec2.sqlite"), "k3s_url": "http://127.0.0.1:2"}))
        env = dict(os.environ, LOCAL_CLUSTER_DIR=str(d), ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                   ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
        env.pop("ANSIBLE_STDOUT_CALLBACK", None)
        res, _took = demo.run_cycle(env, False, extra)
        out[name] = res
    return out


def test_config_failures_are_named_with_their_message_and_stop(failed_runs):
    typo = demo.playbook_failure(failed_runs["typo"].returncode, failed_runs["typo"].stdout, failed_runs["typo"].stderr)
    assert failed_runs["typo"].returncode == 2
    assert typo["config"] is True and typo["task"].startswith("Refuse autoscale_* variables")
    assert typo["msg"].startswith("autoscale_max_node: not an option of role k3s.autoscaler.autoscale")
    res = failed_runs["no_cluster"]
    nc = demo.playbook_failure(res.returncode, res.stdout, res.stderr)
    assert nc["config"] is True and nc["task"].startswith("Validating arguments against arg spec")
    assert nc["msg"].startswith("autoscale_prometheus_url: no /") and "/cluster.json to read it from" in nc["msg"]
    res = failed_runs["preflight"]
    pre = demo.playbook_failure(res.returncode, res.stdout, res.stderr)
    assert pre["config"] is True and pre["task"].startswith("Preflight - ")
    assert pre["msg"].startswith("autoscale_max_nodes (0) must be >= 1") and "; autoscale_min_nodes (1)" in pre["msg"]
    for f in (typo, nc, pre):
        assert "\n" not in f["msg"] and not f["msg"].startswith("Task failed")


def test_a_prometheus_failure_is_named_and_is_not_a_config_error(failed_runs):
    res = failed_runs["prometheus"]
    assert res.returncode == 2
    got = demo.playbook_failure(res.returncode, res.stdout, res.stderr)
    assert got["config"] is False and got["task"].startswith("Fail the run when the inputs were uncertain")
    assert "cannot connect to Prometheus at http://127.0.0.1:1/api/v1/query" in got["msg"]


def test_detail_line_quotes_the_failed_tasks_message(failed_runs):
    row = demo.build_row(1, 0.0, 1.2, failed_runs["typo"], None, {}, None, {}, "run/local/cycle-01.log")
    assert row["decision"] == "error" and row["config_error"] is True
    detail = demo.detail_line(row)
    assert detail.startswith('    run failed (rc=2) in task "Refuse autoscale_* variables')
    assert "autoscale_max_node: not an option of role" in detail and detail.endswith(
        "; full output run/local/cycle-01.log")
    assert "\n" not in detail and ": ?;" not in detail


def test_failures_before_any_task_and_ignored_ones():
    # wrong vault password: rc 4, nothing but PLAY on stdout, the [ERROR] on stderr
    got = demo.playbook_failure(4, "\nPLAY [Autoscale k3s node groups] ****\n",
                                "[ERROR]: Decryption failed (no vault secrets were found that could decrypt).\n")
    assert got == {"task": None, "msg": "Decryption failed (no vault secrets were found that could decrypt).",
                   "config": True}
    # killed (negative rc) before a task: not a configuration error
    assert demo.playbook_failure(-9, "", "")["config"] is False
    out = ("TASK [r : Probe] ***\nfatal: [local]: FAILED! => {\"msg\": \"probe failed\"}\n...ignoring\n"
           "TASK [r : Launch 2 node(s)] ***\nfatal: [local]: FAILED! => {\"msg\": \"Task failed: Action failed: "
           "InsufficientInstanceCapacity: no m5.large in us-east-1a\"}\n")
    assert demo.playbook_failure(2, out) == {"task": "Launch 2 node(s)", "config": False,
                                             "msg": "InsufficientInstanceCapacity: no m5.large in us-east-1a"}
    assert demo.playbook_failure(0, out) is None


# ---------------------------------------------------------------- the main loop: stop on config errors, else go on


@pytest.fixture
def stub_cluster(monkeypatch, tmp_path):
    """main() with the cluster start/stop and API reads stubbed; ``calls`` counts the playbook runs."""
    state = {"runs": [], "started": 0}

    def start(run_dir, scenario, timeout, extra=()):
        state["started"] += 1
        return None, {"kubeconfig": str(tmp_path / "kubeconfig"), "prometheus_url": None, "api_url": "x"}

    monkeypatch.setattr(demo, "start_cluster", start)
    monkeypatch.setattr(demo, "stop_cluster", lambda proc: None)
    monkeypatch.setattr(demo, "kube_api", lambda path: None)
    monkeypatch.setattr(demo, "pods_by_node", lambda api: {})
    monkeypatch.setattr(demo, "ready_worker_nodes", lambda api: 1)
    return state


def _main_args(tmp_path):
    return ["--scenario", "steady", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out"),
            "--interval", "0", "--duration", "600"]


def test_main_stops_after_the_first_cycle_on_a_config_error(failed_runs, stub_cluster, monkeypatch, tmp_path,
                                                            capsys):
    def run_cycle(env, check, extra=None):
        stub_cluster["runs"].append(env["LOCAL_CLUSTER_DIR"])
        if len(stub_cluster["runs"]) > 1:
            raise KeyboardInterrupt  # a second cycle: the bug this test catches
        return failed_runs["typo"], 1.0

    monkeypatch.setattr(demo, "run_cycle", run_cycle)
    assert demo.main(_main_args(tmp_path)) == 2
    assert stub_cluster["runs"] == [str(tmp_path / "run")]
    out = capsys.readouterr().out
    assert 'run failed (rc=2) in task "Refuse autoscale_* variables' in out
    assert "==> stopping: the autoscale run failed in its configuration checks" in out
    assert out.rstrip().splitlines()[-2].strip().startswith("autoscale_max_node: not an option of role")
    assert (tmp_path / "run" / "cycle-01.log").read_text().startswith(failed_runs["typo"].stdout[:200])
    assert not (tmp_path / "out" / "autoscale-steady.png").exists()  # no chart of a run that never ran


def test_main_keeps_going_after_a_prometheus_failure(failed_runs, stub_cluster, monkeypatch, tmp_path, capsys):
    def run_cycle(env, check, extra=None):
        stub_cluster["runs"].append(1)
        if len(stub_cluster["runs"]) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third cycle
        return failed_runs["prometheus"], 1.0

    monkeypatch.setattr(demo, "run_cycle", run_cycle)
    assert demo.main(_main_args(tmp_path)) == 130
    out = capsys.readouterr().out
    assert out.count("cannot connect to Prometheus at http://127.0.0.1:1") >= 2 and "stopping:" not in out
    assert (tmp_path / "out" / "autoscale-steady.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((tmp_path / "out" / "autoscale-steady.json").read_text())
    assert [r["decision"] for r in rows] == ["error", "error"] and not any(r["config_error"] for r in rows)


# ---------------------------------------------------------------- one make run per run dir; TRACE only for trace


def test_second_make_run_on_the_same_run_dir_refuses_at_once(stub_cluster, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "cycle-01.log").write_text("the first run's log")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, %r); import demo; "
                               "demo.take_run_lock(%r); print('locked', flush=True); time.sleep(120)"
                               % (os.path.join(REPO, "scripts"), str(run_dir))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        # the run dir comes from LOCAL_CLUSTER_DIR when --run-dir is not given (as `LOCAL_CLUSTER_DIR=... make run`)
        monkeypatch.setenv("LOCAL_CLUSTER_DIR", str(run_dir))
        with pytest.raises(SystemExit) as exc:
            demo.main(["--scenario", "steady", "--out", str(tmp_path / "out")])
        assert str(exc.value).startswith("another make run is active in this checkout (pid %d, run dir %s); "
                                         "stop it first (Ctrl-C) or use LOCAL_CLUSTER_DIR=" % (holder.pid, run_dir))
        assert stub_cluster["started"] == 0
        assert (run_dir / "cycle-01.log").read_text() == "the first run's log"  # nothing of the first run deleted
    finally:
        holder.kill()
        holder.wait(10)
    os.close(demo.take_run_lock(str(run_dir)))  # released with its process


def test_trace_only_applies_to_the_trace_scenario(stub_cluster, tmp_path):
    with pytest.raises(SystemExit, match=r"TRACE=x\.csv only applies to SCENARIO=trace .*not SCENARIO=burst"):
        demo.main(["--scenario", "burst", "--trace", "x.csv", "--run-dir", str(tmp_path / "run")])
    assert stub_cluster["started"] == 0 and not (tmp_path / "run").exists()
    assert demo.scenario_has_trace("trace") is True and demo.scenario_has_trace("burst") is False
    assert demo.scenario_has_trace("no-such-scenario") is None  # the local cluster reports that one
