import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2

from local_cluster.cli import StateDirBusy, build_parser, fresh_state, lock_state_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS = "/usr/bin/prometheus"


def test_parser_defaults():
    args = build_parser().parse_args(["up"])
    assert (args.state_dir, args.scenario, args.join_seconds, args.tick, args.token, args.node_group,
            args.cluster_name, args.no_prometheus) == ("run/local", "burst", 10.0, 1.0, "local-demo-token", "default",
                                                       "local", False)
    assert args.keep_state is False and build_parser().parse_args(["up", "--keep-state"]).keep_state is True


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_fresh_state_moves_the_previous_runs_state_aside_and_leaves_the_rest(tmp_path):
    d = tmp_path / "local"
    (d / "textfile").mkdir(parents=True)
    (d / "previous").mkdir()
    for name, text in (("ec2.sqlite", "db"), ("ec2.sqlite-wal", "wal"), ("state.json", "{}"),
                       ("textfile/k3s_autoscaler.prom", "m"), ("textfile/other.prom", "o"), ("cluster.json", "{}"),
                       ("kubeconfig", "kc"), ("local_cluster.log", "log"), ("state.json.runlock", ""),
                       ("molecule.pid", "1"), ("previous/ec2.sqlite", "older db"), ("previous/ec2.sqlite-shm", "old")):
        (d / name).write_text(text)
    moved = fresh_state(str(d), str(d / "ec2.sqlite"), str(d / "textfile"))
    assert sorted(os.path.relpath(p, d) for p in moved) == [
        "ec2.sqlite", "ec2.sqlite-wal", "state.json", "textfile/k3s_autoscaler.prom"]
    assert _tree(d) == ["kubeconfig", "local_cluster.log", "molecule.pid", "previous/ec2.sqlite",
                        "previous/ec2.sqlite-wal", "previous/k3s_autoscaler.prom", "previous/state.json",
                        "state.json.runlock", "textfile/other.prom"]
    # the newer copy replaced the older one, and the older store's -shm no longer pairs with it
    assert (d / "previous" / "ec2.sqlite").read_text() == "db"
    assert (d / "previous" / "ec2.sqlite-wal").read_text() == "wal"
    assert fresh_state(str(d), str(d / "ec2.sqlite"), str(d / "textfile")) == []  # already clean
    # an --ec2-store outside the state dir is the cluster's store too
    other = tmp_path / "elsewhere.sqlite"
    other.write_text("x")
    assert fresh_state(str(d), str(other), str(d / "textfile")) == [str(other)]
    assert not other.exists() and (d / "previous" / "elsewhere.sqlite").read_text() == "x"


def test_state_dir_lock_refuses_a_second_holder_naming_the_pid(tmp_path):
    fd = lock_state_dir(str(tmp_path))
    try:
        with pytest.raises(StateDirBusy, match=r"another `python -m local_cluster up` is running with state dir "
                                               r"%s \(pid %d\).*local_cluster down --state-dir" % (tmp_path, os.getpid())):
            lock_state_dir(str(tmp_path))
    finally:
        os.close(fd)
    os.close(lock_state_dir(str(tmp_path)))  # released: free again


def test_bad_scenario_is_one_error_line_and_moves_nothing(tmp_path):
    (tmp_path / "state.json").write_text("{}")
    for args, expected in ((["--scenario", "no-such-scenario"], "scenario 'no-such-scenario' not found"),
                           (["--scenario", "trace", "--trace", "/nonexistent.csv"],
                            "trace CSV not found: /nonexistent.csv")):
        proc = subprocess.run([sys.executable, "-m", "local_cluster", "up", "--state-dir", str(tmp_path)] + args,
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert proc.stderr.startswith("local_cluster up: error: " ) and expected in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (tmp_path / "state.json").exists() and not (tmp_path / "previous").exists()


def test_status_without_cluster_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "local_cluster", "status", "--state-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "cluster.json does not exist" in proc.stderr and "local_cluster up" in proc.stderr


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _query(prom_url, q):
    url = prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["data"]["result"]


@pytest.mark.integration
@pytest.mark.prometheus
@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason="needs /usr/bin/prometheus")
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_up_end_to_end_with_prometheus_and_joining_instance(tmp_path):
    state = tmp_path / "local"
    log = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "local_cluster", "up", "--state-dir", str(state),
                             "--scenario", "normal", "--join-seconds", "1", "--tick", "0.5",
                             "--scrape-interval", "1"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        info_path = state / "cluster.json"
        info = _wait(lambda: info_path.exists() and json.loads(info_path.read_text()), 60, "cluster.json")
        assert info["pid"] == proc.pid and info["scenario"] == "normal"
        assert info["k3s_url"] == info["api_url"] and os.path.exists(info["kubeconfig"])
        prom = info["prometheus_url"]
        nodes = _wait(lambda: _query(prom, "kube_node_info"), 30, "kube_node_info in Prometheus")
        assert {s["metric"]["node"] for s in nodes} >= {"k3s-server"} and len(nodes) == 3  # cp + 2 agents
        cpu = _wait(lambda: _query(prom, 'node_cpu_seconds_total{mode="idle"} * on(instance) group_left(nodename) '
                                         'node_uname_info'), 30, "node_cpu_seconds_total joined to node_uname_info")
        assert {s["metric"]["nodename"] for s in cpu} == {s["metric"]["node"] for s in nodes}

        ec2 = MockEC2(store=info["ec2_store"], region=info["region"], boot_seconds=1)
        user_data = (f"#!/bin/sh\nexport K3S_URL={info['k3s_url']}\nexport K3S_TOKEN={info['k3s_token']}\n"
                     "curl -sfL https://get.k3s.io | sh -s - agent\n")
        [inst], _ = ec2.run_instances(1, {"instance_type": "m5.large", "image_id": "ami-0123456789abcdef0",
                                          "user_data": user_data})
        ec2.close()

        def kubectl_nodes():
            out = subprocess.run(["kubectl", "--kubeconfig", info["kubeconfig"], "get", "nodes", "-o", "json"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            return {n["metadata"]["name"]: n for n in json.loads(out)["items"]}

        node = _wait(lambda: kubectl_nodes().get(inst["private_dns_name"]), 30, "the new Node via kubectl")
        assert node["spec"]["providerID"].endswith("/" + inst["instance_id"])

        status = subprocess.run([sys.executable, "-m", "local_cluster", "status", "--state-dir", str(state)],
                                cwd=REPO, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and inst["private_dns_name"] in status.stdout and "k3s-server" in status.stdout

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not info_path.exists()
        with pytest.raises(OSError):
            urllib.request.urlopen(prom + "/-/ready", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    text = (tmp_path / "up.log").read_text()
    assert "prometheus stopped" in text and "local cluster stopped" in text and "Traceback" not in text


def _start_up(state, log_path, *extra):
    log = open(log_path, "a")
    proc = subprocess.Popen([sys.executable, "-m", "local_cluster", "up", "--state-dir", str(state), "--scenario",
                             "normal", "--no-prometheus", *extra], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    info_path = state / "cluster.json"

    def ready():
        assert proc.poll() is None, "local_cluster up exited with %s:\n%s" % (proc.returncode, log_path.read_text())
        return info_path.exists() and json.loads(info_path.read_text()).get("pid") == proc.pid and \
            json.loads(info_path.read_text())
    return proc, _wait(ready, 60, "cluster.json of pid %d" % proc.pid)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def _instance_ids(store):
    ec2 = MockEC2(store=str(store), region="us-east-1")
    try:
        return {i["instance_id"] for i in ec2.describe_instances()}
    finally:
        ec2.close()


@pytest.mark.integration
def test_up_refuses_a_second_up_and_starts_each_cluster_from_a_clean_state_dir(tmp_path):
    state = tmp_path / "local"
    log_path = tmp_path / "up.log"
    first, info = _start_up(state, log_path)
    try:
        first_ids = _instance_ids(info["ec2_store"])
        assert len(first_ids) == 2  # scenario normal: 2 initial agents
        (state / "state.json").write_text('{"version": 1}')  # what an autoscale run of this cluster leaves
        second = subprocess.run([sys.executable, "-m", "local_cluster", "up", "--state-dir", str(state),
                                 "--no-prometheus"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert ("another `python -m local_cluster up` is running with state dir %s (pid %d)" % (state, first.pid)
                in second.stderr)
        # the running cluster's files are untouched
        assert json.loads((state / "cluster.json").read_text())["pid"] == first.pid
        assert _instance_ids(info["ec2_store"]) == first_ids and (state / "state.json").exists()
    finally:
        assert _stop(first) == 0

    # a new cluster: the old instances (old K3S_URL) and state are moved aside, not adopted
    third, info3 = _start_up(state, log_path)
    try:
        third_ids = _instance_ids(info3["ec2_store"])
        assert len(third_ids) == 2 and not third_ids & first_ids
        assert _instance_ids(state / "previous" / "ec2.sqlite") == first_ids
        assert (state / "previous" / "state.json").read_text() == '{"version": 1}'
        assert not (state / "state.json").exists()
    finally:
        assert _stop(third) == 0

    # --keep-state: the store is reused (the scenario's initial agents are launched on top of it)
    fourth, info4 = _start_up(state, log_path, "--keep-state")
    try:
        assert _instance_ids(info4["ec2_store"]) >= third_ids
    finally:
        assert _stop(fourth) == 0
    text = log_path.read_text()
    assert "fresh state: moved the previous run's ec2.sqlite" in text and "--keep-state: reusing" in text
