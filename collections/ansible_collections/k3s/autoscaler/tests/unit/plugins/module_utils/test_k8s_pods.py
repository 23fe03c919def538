# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_pods: pods_detail_from_api (pure, PDB matching) and fetch_pods_detail against the local cluster's
emulated Kubernetes API over HTTP (local_cluster.kubeapi, kmock) with the official kubernetes client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.k8s_pods import (
    K8sPodsError, disruptions_allowed, fetch_pods_detail, match_selector, parse_quantity, pods_detail_from_api)

MI = 1024 ** 2


def api_pod(ns, name, node=None, labels=None, owner="ReplicaSet", requests=None, phase="Running", annotations=None,
            ready=True):
    meta = {"namespace": ns, "name": name, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": owner, "name": "o", "uid": "u", "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    spec = {"containers": [{"name": "c%d" % i, "image": "x", "resources": {"requests": r}}
                           for i, r in enumerate(requests or [{"cpu": "100m", "memory": "64Mi"}])]}
    if node:
        spec["nodeName"] = node
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def api_pdb(ns, name, selector, min_available=None, max_unavailable=None, allowed=None):
    spec = {"selector": selector}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"namespace": ns, "name": name},
           "spec": spec}
    if allowed is not None:
        pdb["status"] = {"disruptionsAllowed": allowed}
    return pdb


def test_quantities():
    assert parse_quantity("250m", "x") == 0.25
    assert parse_quantity("1.5", "x") == 1.5
    assert parse_quantity("512Mi", "x") == 512 * MI
    assert parse_quantity("1G", "x") == 1e9
    assert parse_quantity("1e3", "x") == 1000.0
    with pytest.raises(ValueError) as e:
        parse_quantity("lots", "pod a/b container c cpu request")
    assert "pod a/b container c cpu request" in str(e.value)


def test_selectors():
    assert match_selector({}, {"a": "1"}) is True
    assert match_selector(None, {"a": "1"}) is False
    assert match_selector({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"})
    assert not match_selector({"matchLabels": {"app": "web"}}, {"app": "db"})
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                {"key": "canary", "operator": "DoesNotExist"}]}
    assert match_selector(sel, {"tier": "fe"}) and not match_selector(sel, {"tier": "fe", "canary": "1"})


def test_pods_detail_fields_and_pdb_matching():
    pods = [
        api_pod("default", "web-1", "n1", {"app": "web"}, requests=[{"cpu": "250m", "memory": "128Mi"},
                                                                    {"cpu": "250m"}]),
        api_pod("default", "solo", "n1", owner=None, annotations={
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}),
        api_pod("kube-system", "agent", "n1", owner="DaemonSet"),
        api_pod("default", "done", "n1", phase="Succeeded"),
        api_pod("default", "unbound", None, phase="Pending"),
    ]
    pdbs = [api_pdb("default", "web-pdb", {"matchLabels": {"app": "web"}}, allowed=0),
            api_pdb("other", "web-pdb-elsewhere", {}, allowed=5)]
    out = pods_detail_from_api(pods, pdbs)
    by = dict((p["name"], p) for p in out)
    assert sorted(by) == ["agent", "solo", "web-1"]
    assert by["web-1"] == {"namespace": "default", "name": "web-1", "node": "n1", "cpu_cores": 0.5,
                           "memory_bytes": 128 * MI, "owner_kind": "ReplicaSet", "daemonset": False,
                           "safe_to_evict": None, "pdb_name": "web-pdb", "pdb_disruptions_allowed": 0,
                           "kube_system": False}
    assert by["solo"]["safe_to_evict"] is False and by["solo"]["owner_kind"] is None
    assert by["solo"]["pdb_disruptions_allowed"] is None
    assert by["agent"]["daemonset"] is True and by["agent"]["kube_system"] is True


def test_disruptions_allowed_without_status_is_computed_or_zero():
    pods = [api_pod("d", "w%d" % i, "n", {"app": "w"}) for i in range(3)] + [
        api_pod("d", "sick", "n", {"app": "w"}, ready=False)]
    pdb = api_pdb("d", "p", {"matchLabels": {"app": "w"}}, min_available=2)
    assert disruptions_allowed(pdb, pods) == 1                # 3 healthy - 2
    assert disruptions_allowed(api_pdb("d", "p", {"matchLabels": {"app": "w"}}, max_unavailable="50%"), pods) == 1
    assert disruptions_allowed(api_pdb("d", "p", {"matchLabels": {"app": "w"}}), pods) == 0
    assert disruptions_allowed(pdb, None) == 0               # unknown -> 0 (blocks), never a guess
    assert disruptions_allowed(api_pdb("d", "p", {}, allowed=4), None) == 4


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory):
    kubeapi_mod = pytest.importorskip("local_cluster.kubeapi")
    path = str(tmp_path_factory.mktemp("kube") / "kubeconfig")
    api = kubeapi_mod.KubeAPI(port=0, kubeconfig_path=path)
    api.start()
    yield api
    api.stop()


def test_fetch_pods_detail_over_http(kubeapi):
    for p in [api_pod("default", "web-1", "node-a", {"app": "web"}, requests=[{"cpu": "500m", "memory": "256Mi"}]),
              api_pod("default", "web-2", "node-b", {"app": "web"}),
              api_pod("default", "web-3", "node-c", {"app": "web"}),
              api_pod("kube-system", "coredns-1", "node-a", {"k8s-app": "kube-dns"})]:
        kubeapi.create(p)
    kubeapi.create(api_pdb("default", "web-pdb", {"matchLabels": {"app": "web"}}, min_available=3))
    out = fetch_pods_detail(["node-a"], kubeconfig=kubeapi.kubeconfig_path)
    by = dict((p["name"], p) for p in out)
    assert sorted(by) == ["coredns-1", "web-1"]               # only pods on node-a
    assert by["web-1"]["cpu_cores"] == 0.5 and by["web-1"]["memory_bytes"] == 256 * MI
    # the PDB has no status in the emulator: computed from the namespace's pods, 3 healthy - 3 = 0
    assert (by["web-1"]["pdb_name"], by["web-1"]["pdb_disruptions_allowed"]) == ("web-pdb", 0)
    assert by["coredns-1"]["kube_system"] is True and by["coredns-1"]["pdb_disruptions_allowed"] is None


def test_fetch_errors_name_the_endpoint(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
                   "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                   "current-context: x\n")
    with pytest.raises(K8sPodsError) as e:
        fetch_pods_detail(["node-a"], kubeconfig=str(bad), timeout=2)
    assert "GET /api/v1/pods?fieldSelector=spec.nodeName=node-a" in str(e.value)
    with pytest.raises(K8sPodsError) as e:
        fetch_pods_detail(["node-a"], kubeconfig=str(tmp_path / "missing"))
    assert "kubeconfig" in str(e.value)


def test_fetch_with_node_annotations(kubeapi):
    kubeapi.create({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": "node-z", "annotations": {
                        "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}}, "spec": {}, "status": {}})
    detail, annotations = fetch_pods_detail(["node-z"], kubeconfig=kubeapi.kubeconfig_path, with_annotations=True)
    assert detail == []
    assert annotations == {"node-z": {"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}}
    with pytest.raises(K8sPodsError) as e:
        fetch_pods_detail(["no-such-node"], kubeconfig=kubeapi.kubeconfig_path, with_annotations=True)
    assert "GET /api/v1/nodes/no-such-node" in str(e.value) and "404" in str(e.value)
