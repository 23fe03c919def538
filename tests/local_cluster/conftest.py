"""Fixtures for the emulated Kubernetes API: a started KubeAPI on a free port with its kubeconfig."""
import pytest

from local_cluster.kubeapi import KubeAPI


@pytest.fixture
def store():
    """The in-process API only (no HTTP server)."""
    return KubeAPI()


@pytest.fixture
def kubeapi(tmp_path):
    api = KubeAPI(kubeconfig_path=str(tmp_path / "kubeconfig")).start()
    try:
        yield api
    finally:
        api.stop()


def make_node(api, name, labels=None, **spec):
    return api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
                       "spec": spec, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})


def make_pod(api, name, namespace="default", node=None, phase="Running", labels=None, owner=None, volumes=None):
    meta = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "controller": True,
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
    spec = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}], "volumes": volumes or []}
    if node:
        spec["nodeName"] = node
    return api.create({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                       "status": {"phase": phase}})
