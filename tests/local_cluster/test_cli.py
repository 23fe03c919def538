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

from local_cluster.cli import build_parser

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS = "/usr/bin/prometheus"


def test_parser_defaults():
    args = build_parser().parse_args(["up"])
    assert (args.state_dir, args.scenario, args.join_seconds, args.tick, args.token, args.node_group,
            args.cluster_name, args.no_prometheus) == ("run/local", "burst", 10.0, 1.0, "local-demo-token", "default",
                                                       "local", False)


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
