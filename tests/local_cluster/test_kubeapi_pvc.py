"""PersistentVolumeClaims are served (the k3s_manifests role keeps the autoscaler's state on one)."""


def test_pvc_create_get_apply_patch_is_noop(store):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "state", "namespace": "default"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}
    created = store.create(pvc)
    assert store.get("v1", "pvc", "state", "default")["spec"]["resources"]["requests"]["storage"] == "64Mi"
    again = store.patch("v1", "PersistentVolumeClaim", "state", {"spec": pvc["spec"]}, "default")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert [o["metadata"]["name"] for o in store.list("v1", "persistentvolumeclaims", "default")] == ["state"]
