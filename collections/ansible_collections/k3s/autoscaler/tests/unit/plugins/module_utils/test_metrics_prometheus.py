# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""collect_prometheus against a REAL Prometheus scraping a fixture exporter (see prom_harness)."""

import time

import pytest

from prom_harness import FixtureExporter, free_port, ksm_text, node_exporter_text, sample

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import (
    DEFAULT_QUERIES,
    build_queries,
    collect_prometheus,
)

pytestmark = pytest.mark.prometheus

GI = 1024 ** 3
MI = 1024 ** 2
RATE_WINDOW = "3s"
T0 = int(time.time())

NODES = [
    dict(name="node-a", provider_id="aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", ready=True, cpu=2, memory=8 * GI,
         instance_type="m5.large"),
    dict(name="node-b", provider_id="aws:///us-east-1b/i-0bbbbbbbbbbbbbbb2", ready=True, unschedulable=True,
         cpu=4, memory=16 * GI),
    dict(name="node-c", provider_id="k3s://node-c", ready=False, cpu=2, memory=4 * GI),
]
PODS = [
    dict(namespace="default", name="web-1", phase="Running", node="node-a", owner_kind="ReplicaSet",
         created=T0 - 600, containers=[("app", 0.5, 1 * GI), ("sidecar", 0.25, 256 * MI)]),
    dict(namespace="default", name="web-2", phase="Running", node="node-b", owner_kind="ReplicaSet",
         created=T0 - 600, containers=[("app", 1, 2 * GI)]),
    dict(namespace="default", name="done", phase="Succeeded", node="node-a", owner_kind="Job",
         created=T0 - 900, containers=[("job", 1, 1 * GI)]),
    dict(namespace="default", name="pend-1", phase="Pending", node="", owner_kind="ReplicaSet",
         created=T0 - 120, unschedulable=True, containers=[("app", 2, 4 * GI)]),
    dict(namespace="kube-system", name="ds-1", phase="Pending", node="node-c", owner_kind="DaemonSet",
         created=T0 - 60, containers=[("agent", 0.1, 128 * MI)]),
    dict(namespace="default", name="pend-2", phase="Pending", node="", owner_kind="<none>",
         created=T0 - 30, unschedulable=True, containers=[("besteffort", None, None)]),
]
HOSTS = [
    dict(instance="10.0.0.1:9100", nodename="node-a", idle_rates=[0.7, 0.8], mem_total=8e9, mem_available=6e9),
    dict(instance="10.0.0.2:9100", nodename="node-b", idle_rates=[0.25], mem_total=16e9, mem_available=6e9),
]
CPU_READY = 'count_over_time(node_cpu_seconds_total{instance="10.0.0.2:9100",cpu="0",mode="idle"}[%s]) >= 3' % RATE_WINDOW


def scenario(prometheus, exporter, name, nodes=None, pods=None, hosts=None, overrides=None, extra=""):
    """Serve a scenario and wait until Prometheus has scraped it (and the rate window is filled)."""
    nodes = NODES if nodes is None else nodes
    pods = PODS if pods is None else pods
    hosts = HOSTS if hosts is None else hosts
    marker = sample("fixture_scenario", {"name": name}, 1)
    ksm = ksm_text(nodes, pods, overrides)

    def text(now):
        return marker + ksm + extra + node_exporter_text(hosts, now)

    exporter.set_text(text)
    prometheus.wait_for_series('fixture_scenario{name="%s"}' % name)
    prometheus.wait_for_series(CPU_READY)


def collect(prometheus, **kwargs):
    kwargs.setdefault("rate_window", RATE_WINDOW)
    kwargs.setdefault("retries", 0)
    return collect_prometheus(prometheus.url, **kwargs)


def test_happy_path_exact_numbers(prometheus, prom_exporter):
    scenario(prometheus, prom_exporter, "happy")
    result = collect(prometheus)
    m = result["metrics"]
    assert result["source"] == "prometheus"
    assert m["pending_pods"] == 2            # pend-1, pend-2 (ds-1 is DaemonSet-owned, excluded)
    assert m["unschedulable_pods"] == 2
    assert m["nodes"] == 3
    assert m["ready_nodes"] == 2
    assert m["cordoned_nodes"] == 1
    # node-a: idle 0.7 and 0.8 -> 25 %, node-b: idle 0.25 -> 75 %
    assert m["avg_cpu"] == pytest.approx(50.0, abs=1e-3)
    # node-a: 1 - 6/8 = 25 %, node-b: 1 - 6/16 = 62.5 %
    assert m["avg_memory"] == pytest.approx(43.75, abs=1e-9)
    # active requests: 0.75 + 1 + 2 + 0.1 cores over 2 + 4 allocatable cores of Ready nodes
    assert m["cpu_requests_percent"] == pytest.approx(100 * 3.85 / 6, abs=1e-9)
    assert m["memory_requests_percent"] == pytest.approx(100 * (7 * GI + 384 * MI) / (24 * GI), abs=1e-9)

    nodes = {n["name"]: n for n in result["nodes_detail"]}
    assert [n["name"] for n in result["nodes_detail"]] == ["node-a", "node-b", "node-c"]
    a = nodes["node-a"]
    assert a["provider_id"] == "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1"
    assert a["instance_id"] == "i-0aaaaaaaaaaaaaaa1"
    assert a["availability_zone"] == "us-east-1a"
    assert a["instance_type"] == "m5.large"
    assert a["ready"] is True and a["unschedulable"] is False
    assert a["allocatable_cpu_cores"] == 2.0 and a["allocatable_memory_bytes"] == 8 * GI
    assert a["requested_cpu_cores"] == pytest.approx(0.75) and a["requested_memory_bytes"] == GI + 256 * MI
    assert a["pods"] == 1                     # "done" (Succeeded) is not active
    assert a["cpu_percent"] == pytest.approx(25.0, abs=1e-3)
    assert a["memory_percent"] == pytest.approx(25.0)
    b = nodes["node-b"]
    assert b["unschedulable"] is True and b["instance_type"] is None
    assert b["cpu_percent"] == pytest.approx(75.0, abs=1e-3)
    assert b["memory_percent"] == pytest.approx(62.5)
    c = nodes["node-c"]
    assert c["ready"] is False and c["instance_id"] is None and c["provider_id"] == "k3s://node-c"
    assert c["cpu_percent"] is None and c["memory_percent"] is None
    assert c["pods"] == 1 and c["requested_cpu_cores"] == pytest.approx(0.1)

    pending = result["pending_pods_detail"]
    assert [(p["namespace"], p["name"]) for p in pending] == [("default", "pend-1"), ("default", "pend-2")]
    p1, p2 = pending
    assert p1["cpu_cores"] == 2.0 and p1["memory_bytes"] == 4 * GI and p1["owner_kind"] == "ReplicaSet"
    assert p1["age_seconds"] == pytest.approx(result["collected_at"] - (T0 - 120), abs=1e-2)
    assert p2["cpu_cores"] == 0.0 and p2["memory_bytes"] == 0 and p2["owner_kind"] is None
    assert result["warnings"] == []
    assert result["queries"]["node_cpu_percent"] == DEFAULT_QUERIES["node_cpu_percent"].replace(
        "$rate_window", RATE_WINDOW)


def test_empty_pending_is_zero(prometheus, prom_exporter):
    pods = [p for p in PODS if p["phase"] != "Pending"]
    scenario(prometheus, prom_exporter, "no-pending", pods=pods)
    result = collect(prometheus)
    assert result["metrics"]["pending_pods"] == 0
    assert result["metrics"]["unschedulable_pods"] == 0
    assert result["pending_pods_detail"] == []


def test_daemonset_pending_pod_is_excluded(prometheus, prom_exporter):
    pods = [p for p in PODS if p["name"] in ("web-1", "ds-1")]
    scenario(prometheus, prom_exporter, "ds-only", pods=pods)
    result = collect(prometheus)
    assert result["metrics"]["pending_pods"] == 0
    # its requests still count as active on node-c
    assert {n["name"]: n["requested_cpu_cores"] for n in result["nodes_detail"]}["node-c"] == pytest.approx(0.1)


def test_nan_in_needed_series_names_query(prometheus, prom_exporter):
    key = ("kube_node_status_allocatable", frozenset({"node": "node-a", "resource": "cpu", "unit": "core"}.items()))
    scenario(prometheus, prom_exporter, "nan", overrides={key: "NaN"})
    with pytest.raises(MetricsError) as err:
        collect(prometheus)
    assert err.value.query_name == "node_allocatable"
    assert err.value.query == DEFAULT_QUERIES["node_allocatable"]
    assert "NaN" in err.value.reason and "node-a" in err.value.reason


def test_inf_in_needed_series_is_error(prometheus, prom_exporter):
    key = ("kube_pod_container_resource_requests", frozenset(
        {"namespace": "default", "pod": "web-1", "container": "app", "node": "node-a",
         "resource": "cpu", "unit": "core"}.items()))
    scenario(prometheus, prom_exporter, "inf", overrides={key: "+Inf"})
    with pytest.raises(MetricsError) as err:
        collect(prometheus)
    assert err.value.query_name == "pod_requests"
    assert "Inf" in err.value.reason


def test_no_nodes_is_error(prometheus, prom_exporter):
    scenario(prometheus, prom_exporter, "no-nodes", nodes=[])
    with pytest.raises(MetricsError) as err:
        collect(prometheus)
    assert err.value.query_name == "nodes"
    assert "empty result" in err.value.reason and prometheus.url in err.value.reason


def test_ready_node_without_usage_data_is_warned_and_excluded(prometheus, prom_exporter):
    nodes = [dict(n, ready=True) for n in NODES]          # node-c Ready but no node-exporter
    scenario(prometheus, prom_exporter, "partial-usage", nodes=nodes)
    result = collect(prometheus)
    assert result["metrics"]["avg_cpu"] == pytest.approx(50.0, abs=1e-3)
    assert any("node-c" in w and "cpu_percent" in w for w in result["warnings"])
    assert any("node-c" in w and "memory_percent" in w for w in result["warnings"])


def test_no_ready_node_with_usage_data_is_error(prometheus, prom_exporter):
    nodes = [dict(NODES[2], ready=True)]
    scenario(prometheus, prom_exporter, "no-usage", nodes=nodes)
    with pytest.raises(MetricsError) as err:
        collect(prometheus)
    assert err.value.query_name == "node_cpu_percent"
    assert "node-c" in err.value.reason


def test_stale_node_info_is_rejected(prometheus, prom_exporter):
    old_ms = int((time.time() - 60) * 1000)
    nodes = [dict(NODES[0], name="node-s", info_timestamp_ms=old_ms)]
    hosts = [dict(HOSTS[0], nodename="node-s"), HOSTS[1]]
    scenario(prometheus, prom_exporter, "stale", nodes=nodes, hosts=hosts)
    try:
        with pytest.raises(MetricsError) as err:
            collect(prometheus, max_sample_age=30)
        assert err.value.query_name == "freshness"
        assert "stale" in err.value.reason
        # with freshness disabled the same data is accepted
        assert collect(prometheus, max_sample_age=0)["metrics"]["nodes"] == 1
    finally:
        # explicitly timestamped samples never get staleness markers: remove them for later tests
        scenario(prometheus, prom_exporter, "after-stale")
        prometheus.delete_series('kube_node_info{node="node-s"}')


def test_exporter_down_is_error(prometheus, prom_exporter):
    scenario(prometheus, prom_exporter, "before-down")
    prom_exporter.set_response(503, "down")
    prometheus.wait_for_series('up{job="fixture"} == 0')
    with pytest.raises(MetricsError) as err:
        collect(prometheus)
    assert err.value.query_name == "nodes"


def test_queries_override(prometheus, prom_exporter):
    scenario(prometheus, prom_exporter, "override")
    result = collect(prometheus, queries={"nodes": 'kube_node_info{node="node-a"}'})
    assert result["metrics"]["nodes"] == 1
    assert result["queries"]["nodes"] == 'kube_node_info{node="node-a"}'
    assert result["queries"]["node_ready"] == DEFAULT_QUERIES["node_ready"]


def test_unknown_query_key_lists_valid_keys():
    with pytest.raises(MetricsError) as err:
        build_queries({"pending": "up"})
    assert err.value.query_name == "pending"
    for key in DEFAULT_QUERIES:
        assert key in err.value.reason


@pytest.mark.parametrize("window", ["5", "5 m", "5m]) or vector(1", ""])
def test_bad_rate_window_rejected(window):
    with pytest.raises(MetricsError) as err:
        build_queries(None, window)
    assert err.value.query_name == "rate_window"


def test_unreachable_url_names_endpoint():
    url = "http://127.0.0.1:%d" % free_port()
    with pytest.raises(MetricsError) as err:
        collect_prometheus(url, retries=0, timeout=2)
    assert err.value.query_name == "nodes"
    assert url + "/api/v1/query" in err.value.reason
    assert "cannot connect" in err.value.reason


def test_http_500_is_error():
    with FixtureExporter() as fake:
        fake.set_response(500, '{"status":"error","error":"boom"}', "application/json")
        with pytest.raises(MetricsError) as err:
            collect_prometheus(fake.url, retries=0)
    assert "500" in err.value.reason and fake.url in err.value.reason


def test_html_body_is_error():
    with FixtureExporter() as fake:
        fake.set_response(200, "<html><body>Login required</body></html>", "text/html")
        with pytest.raises(MetricsError) as err:
            collect_prometheus(fake.url, retries=0)
    assert "not JSON" in err.value.reason and err.value.query == DEFAULT_QUERIES["nodes"]


def test_bearer_token_and_headers_are_sent():
    seen = {}
    with FixtureExporter() as fake:
        import http.server  # noqa: F401 - documented: headers are checked via the handler below
        orig = fake._server.RequestHandlerClass.do_GET

        def spy(handler):
            seen.update(dict(handler.headers))
            orig(handler)
        fake._server.RequestHandlerClass.do_GET = spy
        fake.set_response(200, '{"status":"success","data":{"resultType":"vector","result":[]}}', "application/json")
        with pytest.raises(MetricsError):
            collect_prometheus(fake.url, bearer_token="s3cr3t", headers={"X-Scope-OrgID": "k3s"}, retries=0)
    assert seen.get("Authorization") == "Bearer s3cr3t"
    assert seen.get("X-Scope-OrgID") == "k3s"
