"""The in-process Python API of the emulated Kubernetes API (no HTTP)."""
import threading

import pytest

from local_cluster.kubeapi_errors import AlreadyExists, BadRequest, Conflict, NotFound, TooManyRequests
from tests.local_cluster.conftest import make_node, make_pod


def test_create_fills_metadata_and_defaults(store):
    pod = make_pod(store, "p1", phase=None)
    meta = pod["metadata"]
    assert meta["uid"] and meta["resourceVersion"].isdigit() and meta["creationTimestamp"].endswith("Z")
    assert pod["status"]["phase"] == "Pending"  # the apiserver default
    node = make_node(store, "n1")
    assert node["spec"] == {} and "namespace" not in node["metadata"]
    assert int(node["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])


def test_create_conflicts_and_missing_namespace(store):
    make_pod(store, "p1")
    with pytest.raises(AlreadyExists) as err:
        make_pod(store, "p1")
    assert err.value.code == 409 and err.value.status()["reason"] == "AlreadyExists"
    with pytest.raises(NotFound, match='namespaces "nope" not found'):
        make_pod(store, "p2", namespace="nope")


def test_generate_name(store):
    obj = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-", "namespace": "default"}})
    assert obj["metadata"]["name"].startswith("web-") and len(obj["metadata"]["name"]) == len("web-") + 5


def test_get_by_kind_plural_or_short_name_and_not_found(store):
    make_node(store, "n1")
    assert store.get("v1", "Node", "n1")["metadata"]["name"] == "n1"
    assert store.get("v1", "nodes", "n1") == store.get("v1", "no", "n1")
    with pytest.raises(NotFound) as err:
        store.get("v1", "Node", "missing")
    assert err.value.status()["code"] == 404 and 'nodes "missing" not found' in err.value.message
    with pytest.raises(NotFound, match="no kind or resource"):
        store.get("v1", "Widget", "x")


def test_returned_dicts_are_copies(store):
    make_node(store, "n1")
    got = store.get("v1", "Node", "n1")
    got["metadata"]["labels"] = {"mutated": "yes"}
    assert store.get("v1", "Node", "n1")["metadata"]["labels"] == {}


def test_field_selector_uses_indexes_and_combines(store):
    for i in range(6):
        make_pod(store, f"p{i}", node=f"n{i % 2}" if i < 4 else None, phase="Pending" if i >= 4 else "Running")
    names = lambda **kw: [p["metadata"]["name"] for p in store.list("v1", "Pod", **kw)]  # noqa: E731
    assert names(field_selector="spec.nodeName=n0") == ["p0", "p2"]
    assert names(field_selector="status.phase=Pending") == ["p4", "p5"]
    assert names(field_selector="spec.nodeName=") == ["p4", "p5"]  # unbound pods
    assert names(field_selector="spec.nodeName==n1,status.phase!=Pending") == ["p1", "p3"]
    assert names(field_selector="metadata.name=p3,metadata.namespace=default") == ["p3"]
    # the index follows updates (binding + phase change)
    store.patch("v1", "Pod", "p4", {"spec": {"nodeName": "n0"}, "status": {"phase": "Running"}}, "default")
    assert names(field_selector="spec.nodeName=n0") == ["p0", "p2", "p4"]
    assert names(field_selector="status.phase=Pending") == ["p5"]
    store.delete("v1", "Pod", "p0", "default")
    assert names(field_selector="spec.nodeName=n0") == ["p2", "p4"]
    with pytest.raises(BadRequest, match="field label not supported: 'spec.bogus'"):
        store.list("v1", "Pod", field_selector="spec.bogus=x")


def test_label_selectors(store):
    for name, labels in {"a": {"app": "web", "tier": "fe"}, "b": {"app": "db"}, "c": {"tier": "be"}}.items():
        make_node(store, name, labels)
    names = lambda sel: [n["metadata"]["name"] for n in store.list("v1", "Node", label_selector=sel)]  # noqa: E731
    assert names("app=web") == ["a"]
    assert names("app==db") == ["b"]
    assert names("app!=web") == ["b", "c"]
    assert names("app in (web,db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b"]
    assert names("app=web,tier=fe") == ["a"]
    with pytest.raises(BadRequest, match="labelSelector"):
        names("app=(")


def test_patch_types_generation_and_conflict(store):
    dep = store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "1"},
                                                                                      {"name": "b", "image": "1"}]}}}})
    assert dep["metadata"]["generation"] == 1
    out = store.patch("apps/v1", "Deployment", "d", {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "2"}]}}}}, "default", patch_type="strategic")
    assert [c["image"] for c in out["spec"]["template"]["spec"]["containers"]] == ["1", "2"]  # merged by name
    assert out["metadata"]["generation"] == 2
    out = store.patch("apps/v1", "Deployment", "d", [{"op": "replace", "path": "/spec/replicas", "value": 3}],
                      "default", patch_type="json")
    assert out["spec"]["replicas"] == 3 and out["metadata"]["generation"] == 3
    out2 = store.patch("apps/v1", "Deployment", "d", {"status": {"replicas": 3}}, "default", subresource="status")
    assert out2["metadata"]["generation"] == 3 and out2["status"]["replicas"] == 3
    with pytest.raises(Conflict, match="has been modified"):
        store.patch("apps/v1", "Deployment", "d", {"metadata": {"resourceVersion": dep["metadata"]["resourceVersion"]},
                                                   "spec": {"replicas": 9}}, "default")
    stale = dict(out, spec={"replicas": 5})
    with pytest.raises(Conflict):
        store.replace(stale)  # out2 bumped the resourceVersion
    # no-op patches keep the resourceVersion
    same = store.patch("apps/v1", "Deployment", "d", {"spec": {"replicas": 3}}, "default")
    assert same["metadata"]["resourceVersion"] == out2["metadata"]["resourceVersion"]


def test_cordon_patch_and_uncordon(store):
    make_node(store, "n1")
    assert store.patch("v1", "Node", "n1", {"spec": {"unschedulable": True}}, patch_type="strategic")["spec"] == {
        "unschedulable": True}
    assert [n["metadata"]["name"] for n in store.list("v1", "Node", field_selector="spec.unschedulable=true")] == ["n1"]
    assert store.patch("v1", "Node", "n1", {"spec": {"unschedulable": None}}, patch_type="strategic")["spec"] == {}


def test_delete_notifies_and_garbage_collects_dependents(store):
    events = []
    store.on_delete(events.append)
    rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"},
                       "spec": {"replicas": 2}})
    make_pod(store, "rs-a", owner=rs)
    make_pod(store, "rs-b", owner=rs)
    make_pod(store, "lonely")
    deleted = store.delete("apps/v1", "ReplicaSet", "rs", "default")
    assert deleted["metadata"]["deletionTimestamp"]
    assert [(e.reason, e.name, e.type) for e in events] == [
        ("deleted", "rs", "DELETED"), ("garbage-collected", "rs-a", "DELETED"), ("garbage-collected", "rs-b", "DELETED")]
    assert [p["metadata"]["name"] for p in store.list("v1", "Pod")] == ["lonely"]


def test_orphan_propagation_keeps_dependents(store):
    rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"}})
    make_pod(store, "rs-a", owner=rs)
    store.delete("apps/v1", "ReplicaSet", "rs", "default", propagation_policy="Orphan")
    assert store.exists("v1", "Pod", "rs-a", "default")


def test_finalizers_block_deletion_until_removed(store):
    events = []
    store.on_delete(events.append)
    store.create({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "cm", "namespace": "default", "finalizers": ["example.com/hold"]}})
    marked = store.delete("v1", "ConfigMap", "cm", "default")
    assert marked["metadata"]["deletionTimestamp"] and store.exists("v1", "ConfigMap", "cm", "default")
    assert events == []
    store.patch("v1", "ConfigMap", "cm", {"metadata": {"finalizers": None}}, "default")
    assert not store.exists("v1", "ConfigMap", "cm", "default")
    assert [e.name for e in events] == ["cm"]


def test_namespace_deletion_removes_its_objects(store):
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    make_pod(store, "p", namespace="team")
    store.delete("v1", "Namespace", "team")
    assert store.list("v1", "Pod", "team") == []


def _pdb(store, name, **spec):
    return store.create({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                         "metadata": {"name": name, "namespace": "default"},
                         "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}})


def test_eviction_respects_min_available(store):
    events = []
    store.on_delete(events.append)
    for i in range(3):
        make_pod(store, f"web-{i}", node="n1", labels={"app": "web"})
    _pdb(store, "web-pdb", minAvailable=2)
    assert store.evict("web-0", "default")["status"] == "Success"
    with pytest.raises(TooManyRequests) as err:
        store.evict("web-1", "default")
    status = err.value.status()
    assert status["code"] == 429 and status["reason"] == "TooManyRequests"
    assert "needs 2 healthy pods and has 2 currently" in status["details"]["causes"][0]["message"]
    assert store.exists("v1", "Pod", "web-1", "default")
    assert [(e.reason, e.name) for e in events] == [("evicted", "web-0")]


def test_eviction_max_unavailable_percent_and_pending_pods(store):
    rs = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"replicas": 4}})
    for i in range(4):
        make_pod(store, f"web-{i}", node="n1", labels={"app": "web"}, owner=rs)
    make_pod(store, "web-pending", labels={"app": "web"}, phase="Pending")
    _pdb(store, "web-pdb", maxUnavailable="25%")
    store.evict("web-pending", "default")  # Pending pods are always evictable
    store.evict("web-0", "default")  # expected = rs replicas 4, ceil(25%)=1 may be unavailable, 4 healthy
    with pytest.raises(TooManyRequests):
        store.evict("web-1", "default")


def test_eviction_of_unknown_pod_and_multiple_pdbs(store):
    with pytest.raises(NotFound):
        store.evict("ghost", "default")
    make_pod(store, "web-0", labels={"app": "web"})
    _pdb(store, "a", minAvailable=0)
    _pdb(store, "b", minAvailable=0)
    with pytest.raises(Exception, match="more than one PodDisruptionBudget"):
        store.evict("web-0", "default")


def test_callbacks_may_recreate_pods_and_errors_are_contained(store):
    """A ReplicaSet-like simulator brings evicted pods back as Pending from inside the callback."""
    def recreate(event):
        if event.resource.kind == "Pod" and event.reason == "evicted":
            store.create({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"generateName": event.name + "-", "namespace": event.namespace,
                                       "labels": event.object["metadata"].get("labels", {})}})

    def broken(event):
        raise RuntimeError("simulator bug")
    store.on_delete(broken)
    unsubscribe = store.on_delete(recreate)
    make_pod(store, "web", node="n1")
    store.evict("web", "default")
    pods = store.list("v1", "Pod", field_selector="status.phase=Pending")
    assert len(pods) == 1 and pods[0]["metadata"]["name"].startswith("web-")
    unsubscribe()
    store.evict(pods[0]["metadata"]["name"], "default")
    assert store.list("v1", "Pod") == []


def test_concurrent_writers_keep_indexes_consistent(store):
    def worker(w):
        for i in range(200):
            make_pod(store, f"w{w}-{i}", node=f"n{i % 5}", phase="Pending")
            store.patch("v1", "Pod", f"w{w}-{i}", {"status": {"phase": "Running"}}, "default")
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count("v1", "Pod") == 800
    assert store.list("v1", "Pod", field_selector="status.phase=Pending") == []
    assert len(store.list("v1", "Pod", field_selector="spec.nodeName=n3,status.phase=Running")) == 160
    rvs = [int(p["metadata"]["resourceVersion"]) for p in store.list("v1", "Pod")]
    assert len(set(rvs)) == 800


def test_list_pagination(store):
    for i in range(7):
        make_node(store, f"n{i}")
    res = store.resolve("v1", "Node")
    page1, _, token, remaining = store.list_page(res, None, limit=3)
    assert [n["metadata"]["name"] for n in page1] == ["n0", "n1", "n2"] and token and remaining == 4
    page2, _, token2, _ = store.list_page(res, None, limit=3, continue_token=token)
    page3, _, token3, _ = store.list_page(res, None, limit=3, continue_token=token2)
    assert [n["metadata"]["name"] for n in page2 + page3] == ["n3", "n4", "n5", "n6"] and token3 is None
