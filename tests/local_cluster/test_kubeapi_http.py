"""The emulated Kubernetes API over HTTP: raw REST, the official kubernetes client, kubectl."""
import json
import shutil
import subprocess
import threading

import pytest
import requests
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from tests.local_cluster.conftest import make_node, make_pod

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


def http(api, method, path, body=None, ctype="application/json", **params):
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": ctype}
    data = json.dumps(body) if body is not None else None
    return requests.request(method, api.url + path, data=data, headers=headers, params=params, timeout=10)


def kubectl(api, *args, check=True):
    proc = subprocess.run([KUBECTL, "--kubeconfig", api.kubeconfig_path, *args], capture_output=True, text=True,
                          timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def core_v1(api):
    return k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=api.kubeconfig_path))


def test_kubeconfig_is_written(kubeapi):
    doc = yaml.safe_load(open(kubeapi.kubeconfig_path))
    assert doc["current-context"] == "local-k3s"
    assert doc["clusters"][0] == {"name": "local-k3s", "cluster": {"server": kubeapi.url}}
    assert doc["users"][0]["user"] == {"token": kubeapi.token}


def test_wrong_token_is_rejected(kubeapi):
    resp = requests.get(kubeapi.url + "/api/v1/nodes", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert resp.status_code == 401 and resp.json()["reason"] == "Unauthorized"


def test_list_kind_and_resource_version(kubeapi):
    make_node(kubeapi, "n1")
    body = http(kubeapi, "GET", "/api/v1/nodes").json()
    assert body["kind"] == "NodeList" and body["apiVersion"] == "v1"
    assert int(body["metadata"]["resourceVersion"]) >= int(body["items"][0]["metadata"]["resourceVersion"])
    body = http(kubeapi, "GET", "/apis/apps/v1/namespaces/default/deployments").json()
    assert body["kind"] == "DeploymentList" and body["apiVersion"] == "apps/v1" and body["items"] == []


def test_status_objects_for_errors(kubeapi):
    resp = http(kubeapi, "GET", "/api/v1/namespaces/default/pods/ghost")
    assert resp.status_code == 404
    assert resp.json() | {"details": None} == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                               "status": "Failure", "reason": "NotFound", "code": 404,
                                               "message": 'pods "ghost" not found', "details": None}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert http(kubeapi, "POST", "/api/v1/namespaces/default/pods", pod).status_code == 201
    dup = http(kubeapi, "POST", "/api/v1/namespaces/default/pods", pod)
    assert dup.status_code == 409 and dup.json()["reason"] == "AlreadyExists"
    current = http(kubeapi, "GET", "/api/v1/namespaces/default/pods/p").json()
    http(kubeapi, "PATCH", "/api/v1/namespaces/default/pods/p", {"metadata": {"labels": {"a": "b"}}},
         "application/merge-patch+json")
    stale = http(kubeapi, "PUT", "/api/v1/namespaces/default/pods/p", current)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    bad = http(kubeapi, "GET", "/api/v1/pods", fieldSelector="spec.bogus=1")
    assert bad.status_code == 400 and "field label not supported" in bad.json()["message"]


def test_patch_content_types_and_status_subresource(kubeapi):
    make_node(kubeapi, "n1")
    path = "/api/v1/nodes/n1"
    out = http(kubeapi, "PATCH", path, {"spec": {"unschedulable": True}}, "application/strategic-merge-patch+json")
    assert out.status_code == 200 and out.json()["spec"]["unschedulable"] is True
    out = http(kubeapi, "PATCH", path, [{"op": "add", "path": "/metadata/labels/x", "value": "y"}],
               "application/json-patch+json")
    assert out.json()["metadata"]["labels"] == {"x": "y"}
    # status changes through the main resource are ignored; through /status they apply
    http(kubeapi, "PATCH", path, {"status": {"capacity": {"cpu": "2"}}}, "application/merge-patch+json")
    assert "capacity" not in kubeapi.get("v1", "Node", "n1")["status"]
    http(kubeapi, "PATCH", path + "/status", {"status": {"capacity": {"cpu": "2"}}}, "application/merge-patch+json")
    assert kubeapi.get("v1", "Node", "n1")["status"]["capacity"] == {"cpu": "2"}
    assert http(kubeapi, "PATCH", path, {"a": 1}, "text/plain").status_code == 415


def test_delete_returns_object_with_propagation_options(kubeapi):
    rs = kubeapi.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"}})
    make_pod(kubeapi, "rs-1", owner=rs)
    resp = http(kubeapi, "DELETE", "/apis/apps/v1/namespaces/default/replicasets/rs",
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
    assert resp.status_code == 200 and resp.json()["metadata"]["name"] == "rs"
    assert not kubeapi.exists("v1", "Pod", "rs-1", "default")


def test_discovery_documents(kubeapi):
    assert http(kubeapi, "GET", "/version").json()["major"] == "1"
    assert http(kubeapi, "GET", "/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in http(kubeapi, "GET", "/apis").json()["groups"]}
    assert set(groups) == {"apps", "batch", "policy", "rbac.authorization.k8s.io", "coordination.k8s.io"}
    core = {r["name"]: r for r in http(kubeapi, "GET", "/api/v1").json()["resources"]}
    eviction = core["pods/eviction"]
    assert (eviction["group"], eviction["version"], eviction["kind"], eviction["namespaced"]) == (
        "policy", "v1", "Eviction", True)
    assert core["nodes"]["namespaced"] is False and core["pods"]["namespaced"] is True
    for name in ("namespaces", "serviceaccounts", "configmaps", "services", "events", "secrets"):
        assert name in core
    rbac = {r["name"]: r["namespaced"] for r in
            http(kubeapi, "GET", "/apis/rbac.authorization.k8s.io/v1").json()["resources"]}
    assert rbac == {"clusterroles": False, "clusterrolebindings": False, "roles": True, "rolebindings": True}
    assert http(kubeapi, "GET", "/apis/example.com/v1").status_code == 404


def test_watch_streams_initial_and_live_events(kubeapi):
    make_node(kubeapi, "n1")
    lines = []
    with requests.get(kubeapi.url + "/api/v1/nodes", params={"watch": "1", "timeoutSeconds": "5"},
                      stream=True, timeout=10) as resp:
        it = resp.iter_lines()
        lines.append(json.loads(next(it)))
        threading.Timer(0.05, lambda: kubeapi.patch("v1", "Node", "n1", {"metadata": {"labels": {"x": "1"}}})).start()
        lines.append(json.loads(next(it)))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "n1"), ("MODIFIED", "n1")]
    assert lines[1]["object"]["metadata"]["labels"] == {"x": "1"}


def test_kmock_reactions_can_inject_faults(kubeapi):
    kubeapi.handler["get /api/v1/nodes"] << 503
    assert http(kubeapi, "GET", "/api/v1/nodes").status_code == 503
    assert http(kubeapi, "GET", "/api/v1/pods").status_code == 200


# ---------------------------------------------------------------- the official python client
def test_python_client(kubeapi):
    make_node(kubeapi, "n1")
    make_pod(kubeapi, "a", node="n1")
    make_pod(kubeapi, "b", phase="Pending")
    v1 = core_v1(kubeapi)
    assert [n.metadata.name for n in v1.list_node().items] == ["n1"]
    pending = v1.list_pod_for_all_namespaces(field_selector="status.phase=Pending")
    assert [p.metadata.name for p in pending.items] == ["b"]
    assert [p.metadata.name for p in v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items] == ["a"]
    node = v1.patch_node("n1", {"spec": {"unschedulable": True}})
    assert node.spec.unschedulable is True
    v1.create_namespaced_pod_eviction("a", "default", k8s_client.V1Eviction(
        metadata=k8s_client.V1ObjectMeta(name="a", namespace="default")))
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod("a", "default")
    assert err.value.status == 404


def test_python_client_eviction_blocked_by_pdb(kubeapi):
    for i in range(2):
        make_pod(kubeapi, f"web-{i}", node="n1", labels={"app": "web"})
    kubeapi.create({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    with pytest.raises(ApiException) as err:
        core_v1(kubeapi).create_namespaced_pod_eviction("web-0", "default", {"metadata": {"name": "web-0"}})
    assert err.value.status == 429 and json.loads(err.value.body)["reason"] == "TooManyRequests"


# ---------------------------------------------------------------- kubectl
@needs_kubectl
def test_kubectl_get(kubeapi):
    make_node(kubeapi, "n1")
    make_node(kubeapi, "n2")
    kubeapi.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    make_pod(kubeapi, "a", node="n1")
    make_pod(kubeapi, "b", namespace="team", node="n2")
    make_pod(kubeapi, "c", namespace="team", phase="Pending")
    nodes = json.loads(kubectl(kubeapi, "get", "nodes", "-o", "json").stdout)
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["n1", "n2"]
    pods = json.loads(kubectl(kubeapi, "get", "pods", "-A", "-o", "json").stdout)
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods["items"]] == [
        ("default", "a"), ("team", "b"), ("team", "c")]
    out = kubectl(kubeapi, "get", "pods", "-A", "--field-selector", "status.phase=Pending,spec.nodeName=",
                  "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert out == "c"
    assert "n1" in kubectl(kubeapi, "get", "nodes").stdout  # server-side Table printing


@needs_kubectl
def test_kubectl_cordon_uncordon(kubeapi):
    make_node(kubeapi, "n1")
    assert "cordoned" in kubectl(kubeapi, "cordon", "n1").stdout
    assert kubeapi.get("v1", "Node", "n1")["spec"]["unschedulable"] is True
    kubectl(kubeapi, "uncordon", "n1")
    assert not kubeapi.get("v1", "Node", "n1")["spec"].get("unschedulable")


@needs_kubectl
def test_kubectl_drain(kubeapi):
    make_node(kubeapi, "n1")
    make_node(kubeapi, "n2")
    ds = kubeapi.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "kube-system"},
                         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {}}})
    rs = kubeapi.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"replicas": 3}})
    make_pod(kubeapi, "agent-n1", namespace="kube-system", node="n1", labels={"app": "agent"}, owner=ds)
    make_pod(kubeapi, "web-1", node="n1", owner=rs, volumes=[{"name": "tmp", "emptyDir": {}}])
    make_pod(kubeapi, "web-2", node="n1", owner=rs)
    make_pod(kubeapi, "web-3", node="n2", owner=rs)
    evicted = []
    kubeapi.on_delete(lambda e: evicted.append((e.reason, e.name)))
    proc = kubectl(kubeapi, "drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s")
    assert "node/n1 drained" in proc.stdout
    assert sorted(evicted) == [("evicted", "web-1"), ("evicted", "web-2")]
    assert kubeapi.get("v1", "Node", "n1")["spec"]["unschedulable"] is True
    left = [p["metadata"]["name"] for p in kubeapi.list("v1", "Pod", field_selector="spec.nodeName=n1")]
    assert left == ["agent-n1"]  # DaemonSet-owned pods are skipped


@needs_kubectl
def test_kubectl_drain_times_out_on_pdb(kubeapi):
    make_node(kubeapi, "n1")
    rs = kubeapi.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"replicas": 1}})
    make_pod(kubeapi, "web-1", node="n1", owner=rs, labels={"app": "web"})
    kubeapi.create({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    proc = kubectl(kubeapi, "drain", "n1", "--timeout=1s", check=False)
    assert proc.returncode != 0
    assert "disruption budget" in proc.stdout + proc.stderr
    assert kubeapi.exists("v1", "Pod", "web-1", "default")
