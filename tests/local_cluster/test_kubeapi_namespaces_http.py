"""The bare /api/v1/namespaces collection over HTTP (kmock 0.8's path parser used to raise on it)."""
from tests.local_cluster.test_kubeapi_http import http


def test_list_and_create_namespaces_over_http(kubeapi):
    listed = http(kubeapi, "GET", "/api/v1/namespaces")
    assert listed.status_code == 200, listed.text
    assert "default" in [ns["metadata"]["name"] for ns in listed.json()["items"]]
    created = http(kubeapi, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": "team-a"}})
    assert created.status_code == 201, created.text
    assert http(kubeapi, "GET", "/api/v1/namespaces/team-a").json()["metadata"]["name"] == "team-a"
