# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""k3s.autoscaler.k3s_metrics end to end, run by Ansible (ad-hoc `ansible localhost -m ...`)
against a real Prometheus scraping a fixture exporter, plus `ansible-doc`."""

import json
import os
import sys

import pytest

from module_runner import ansible_doc, run_module

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
from prom_harness import (PROMETHEUS_BIN, FixtureExporter, PrometheusProcess, free_port,  # noqa: E402
                          ksm_text, node_exporter_text, sample)

GI = 1024 ** 3

NODES = [dict(name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", ready=True, cpu=2, memory=8 * GI)]
PODS = [dict(namespace="default", name="pend-1", phase="Pending", node="", owner_kind="ReplicaSet", created=1,
             unschedulable=True, containers=[("app", 1, GI)])]
HOSTS = [dict(instance="10.0.0.1:9100", nodename="node-a", idle_rates=[0.6], mem_total=8e9, mem_available=2e9)]


@pytest.fixture(scope="module")
def prometheus():
    if not os.path.exists(PROMETHEUS_BIN):
        pytest.skip("real Prometheus binary %s not installed" % PROMETHEUS_BIN)
    ksm = ksm_text(NODES, PODS) + sample("fixture_scenario", {"name": "module"}, 1)
    with FixtureExporter(lambda now: ksm + node_exporter_text(HOSTS, now)) as exporter:
        with PrometheusProcess([exporter.target]) as prom:
            prom.wait_for_series('count_over_time(node_cpu_seconds_total{instance="10.0.0.1:9100"}[3s]) >= 3')
            yield prom


@pytest.mark.integration
@pytest.mark.parametrize("check", [False, True])
def test_module_end_to_end(prometheus, check):
    res = run_module("k3s_metrics", {"prometheus_url": prometheus.url, "rate_window": "3s"}, check=check)
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    m = res["metrics"]
    assert (m["nodes"], m["ready_nodes"], m["pending_pods"], m["unschedulable_pods"]) == (1, 1, 1, 1)
    assert m["avg_cpu"] == pytest.approx(40.0, abs=1e-3)
    assert m["avg_memory"] == pytest.approx(75.0)
    assert m["cpu_requests_percent"] == pytest.approx(50.0)
    assert res["nodes_detail"][0]["instance_id"] == "i-0aaaaaaaaaaaaaaa1"
    assert res["pending_pods_detail"][0]["name"] == "pend-1"
    assert res["source"] == "prometheus" and "nodes" in res["queries"]


@pytest.mark.integration
def test_module_failure_names_query_and_endpoint():
    url = "http://127.0.0.1:%d" % free_port()
    res = run_module("k3s_metrics", {"prometheus_url": url, "retries": 0})
    assert res["failed"] is True
    assert res["query_name"] == "nodes" and res["query"] == "kube_node_info"
    assert url + "/api/v1/query" in res["msg"]


@pytest.mark.integration
def test_module_rejects_unknown_query_key():
    res = run_module("k3s_metrics", {"prometheus_url": "http://127.0.0.1:1", "queries": {"bogus": "up"}})
    assert res["failed"] is True and "valid keys are" in res["msg"] and "pending_pods" in res["msg"]


@pytest.mark.integration
def test_module_requires_prometheus_url():
    res = run_module("k3s_metrics", {"source": "prometheus"})
    assert res["failed"] is True and "prometheus_url" in res["msg"]


def test_ansible_doc_renders():
    proc = ansible_doc("k3s_metrics", as_json=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["k3s.autoscaler.k3s_metrics"]
    assert set(doc["doc"]["options"]) == {
        "source", "prometheus_url", "bearer_token", "headers", "validate_certs", "ca_path", "timeout", "retries",
        "queries", "rate_window", "max_sample_age", "kubeconfig", "context"}
    assert {"metrics", "nodes_detail", "pending_pods_detail", "source", "queries", "collected_at"} <= set(doc["return"])
