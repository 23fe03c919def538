# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""collect_kubernetes against a small real HTTP server speaking the Kubernetes API (canned JSON,
honouring fieldSelector=status.phase=X), with the official kubernetes client on the other end."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from prom_harness import free_port

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_kubernetes import collect_kubernetes

GI = 1024 ** 3
MI = 1024 ** 2


def node(name, provider_id, ready=True, unschedulable=False, cpu="2", memory="8Gi", itype=None):
    labels = {"kubernetes.io/hostname": name}
    if itype:
        labels["node.kubernetes.io/instance-type"] = itype
    return {"metadata": {"name": name, "labels": labels},
            "spec": dict({"providerID": provider_id}, **({"unschedulable": True} if unschedulable else {})),
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(ns, name, phase, node_name=None, owner=None, created="2020-01-01T00:00:00Z", unschedulable=False,
        containers=()):
    meta = {"namespace": ns, "name": name, "creationTimestamp": created}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "controller": True, "apiVersion": "v1", "uid": "u"}]
    status = {"phase": phase}
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    spec = {"containers": [{"name": c, "resources": {"requests": req} if req else {}} for c, req in containers]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec, "status": status}


NODES = [node("node-a", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", cpu="2", memory="8Gi", itype="t3.large"),
         node("node-b", "aws:///us-east-1b/i-0bbbbbbbbbbbbbbb2", unschedulable=True, cpu="4000m", memory="16Gi"),
         node("node-c", "k3s://node-c", ready=False)]
PODS = [pod("default", "web-1", "Running", "node-a", "ReplicaSet",
            containers=[("app", {"cpu": "500m", "memory": "1Gi"}), ("side", {"cpu": "250m", "memory": "256Mi"})]),
        pod("default", "done", "Succeeded", "node-a", "Job", containers=[("job", {"cpu": "1", "memory": "1Gi"})]),
        pod("default", "pend-1", "Pending", None, "ReplicaSet", created="2020-01-01T00:00:00Z", unschedulable=True,
            containers=[("app", {"cpu": "2", "memory": "4Gi"})]),
        pod("kube-system", "ds-1", "Pending", "node-c", "DaemonSet", containers=[("agent", {"cpu": "100m", "memory": "128Mi"})])]
USAGE = {"items": [{"metadata": {"name": "node-a"}, "usage": {"cpu": "500m", "memory": "2Gi"}},
                   {"metadata": {"name": "node-b"}, "usage": {"cpu": "3000000000n", "memory": "12Gi"}}]}


class FakeKubeAPI(object):
    """Real HTTP server with /api/v1/nodes, /api/v1/pods and /apis/metrics.k8s.io/v1beta1/nodes."""

    def __init__(self):
        self.nodes, self.pods, self.usage = list(NODES), list(PODS), USAGE
        self.fail = {}    # path -> (status, body)
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                api.requests.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
                if url.path in api.fail:
                    return self._send(*api.fail[url.path])
                if url.path == "/api/v1/nodes":
                    return self._send(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": api.nodes})
                if url.path == "/api/v1/pods":
                    sel = parse_qs(url.query).get("fieldSelector", [""])[0]
                    items = api.pods
                    if sel:
                        assert sel.startswith("status.phase="), sel
                        items = [p for p in items if p["status"]["phase"] == sel.split("=", 1)[1]]
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                if url.path == "/apis/metrics.k8s.io/v1beta1/nodes" and api.usage is not None:
                    return self._send(200, dict(api.usage, kind="NodeMetricsList", apiVersion="metrics.k8s.io/v1beta1"))
                return self._send(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})

            def _send(self, status, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def write_kubeconfig(path, server, context="fake"):
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "tok123"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


@pytest.fixture
def kube(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = FakeKubeAPI()
    api.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    yield api
    api.close()


def test_happy_path(kube):
    now = time.time()
    result = collect_kubernetes(kubeconfig=kube.kubeconfig, now=now)
    m = result["metrics"]
    assert result["source"] == "kubernetes"
    assert (m["pending_pods"], m["unschedulable_pods"], m["nodes"], m["ready_nodes"], m["cordoned_nodes"]) == (1, 1, 3, 2, 1)
    # node-a 0.5/2 = 25 %, node-b 3/4 = 75 % (percent of allocatable)
    assert m["avg_cpu"] == pytest.approx(50.0)
    # node-a 2Gi/8Gi = 25 %, node-b 12Gi/16Gi = 75 %
    assert m["avg_memory"] == pytest.approx(50.0)
    assert m["cpu_requests_percent"] == pytest.approx(100 * (0.75 + 2 + 0.1) / 6)
    assert m["memory_requests_percent"] == pytest.approx(100 * (GI + 256 * MI + 4 * GI + 128 * MI) / (24 * GI))
    nodes = {n["name"]: n for n in result["nodes_detail"]}
    assert nodes["node-a"]["instance_id"] == "i-0aaaaaaaaaaaaaaa1" and nodes["node-a"]["instance_type"] == "t3.large"
    assert nodes["node-a"]["pods"] == 1 and nodes["node-a"]["requested_memory_bytes"] == GI + 256 * MI
    assert nodes["node-b"]["allocatable_cpu_cores"] == 4.0 and nodes["node-b"]["unschedulable"] is True
    assert nodes["node-c"]["ready"] is False and nodes["node-c"]["instance_id"] is None
    assert nodes["node-c"]["pods"] == 1 and nodes["node-c"]["cpu_percent"] is None
    [p] = result["pending_pods_detail"]
    assert (p["namespace"], p["name"], p["cpu_cores"], p["memory_bytes"], p["owner_kind"]) == \
        ("default", "pend-1", 2.0, 4 * GI, "ReplicaSet")
    assert p["age_seconds"] == pytest.approx(now - 1577836800.0)
    assert result["warnings"] == []
    # the pods were listed with field selectors, with the kubeconfig's token
    selectors = [req[1].get("fieldSelector") for req in kube.requests if req[0] == "/api/v1/pods"]
    assert selectors == [["status.phase=Pending"], ["status.phase=Running"]]
    assert all(req[2] == "Bearer tok123" for req in kube.requests)


def test_metrics_api_not_served_omits_usage_with_warning(kube):
    kube.usage = None
    result = collect_kubernetes(kubeconfig=kube.kubeconfig)
    assert "avg_cpu" not in result["metrics"] and "avg_memory" not in result["metrics"]
    assert all(n["cpu_percent"] is None and n["memory_percent"] is None for n in result["nodes_detail"])
    assert any("metrics.k8s.io" in w for w in result["warnings"])
    assert result["metrics"]["cpu_requests_percent"] == pytest.approx(100 * 2.85 / 6)


def test_no_nodes_is_error(kube):
    kube.nodes = []
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=kube.kubeconfig)
    assert err.value.query_name == "nodes" and err.value.query == kube.url + "/api/v1/nodes"


def test_http_error_names_endpoint(kube):
    kube.fail["/api/v1/pods"] = (403, {"kind": "Status", "message": "forbidden: cannot list pods"})
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=kube.kubeconfig)
    assert err.value.query_name == "pending_pods"
    assert "403" in err.value.reason and "forbidden" in err.value.reason
    assert err.value.query.startswith(kube.url + "/api/v1/pods")


def test_non_json_body_is_error(kube):
    kube.fail["/api/v1/nodes"] = (200, "<html>proxy login</html>")
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=kube.kubeconfig)
    assert "not JSON" in err.value.reason


def test_bad_quantity_is_error(kube):
    kube.nodes = [node("node-a", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1", cpu="lots")]
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=kube.kubeconfig)
    assert "node-a" in err.value.reason and "cpu" in err.value.reason


def test_unreachable_names_endpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    server = "http://127.0.0.1:%d" % free_port()
    cfg = write_kubeconfig(tmp_path / "kc", server)
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=cfg, timeout=2)
    assert err.value.query == server + "/api/v1/nodes" and "cannot reach" in err.value.reason


def test_unknown_context_is_error(kube):
    with pytest.raises(MetricsError) as err:
        collect_kubernetes(kubeconfig=kube.kubeconfig, context="nope")
    assert err.value.query_name == "kubeconfig"
