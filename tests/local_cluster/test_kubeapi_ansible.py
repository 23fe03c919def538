"""kubernetes.core modules (k8s_info, k8s apply/absent, k8s_drain) against the emulated Kubernetes API,
run by ansible-playbook as a subprocess from the repo root."""
import json
import os
import subprocess
import sys

import yaml

from tests.local_cluster.conftest import make_node, make_pod

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"},
             "data": {"mode": "fast"}}

PLAY = [{
    "hosts": "localhost", "gather_facts": False,
    "tasks": [
        {"name": "pods on n1 that are Running with app=web",
         "kubernetes.core.k8s_info": {"kind": "Pod", "field_selectors": ["spec.nodeName=n1", "status.phase=Running"],
                                      "label_selectors": ["app=web"]},
         "register": "info"},
        {"name": "apply a ConfigMap", "kubernetes.core.k8s": {"state": "present", "apply": True, "definition": CONFIGMAP},
         "register": "apply1"},
        {"name": "apply it again", "kubernetes.core.k8s": {"state": "present", "apply": True, "definition": CONFIGMAP},
         "register": "apply2"},
        {"name": "delete it", "kubernetes.core.k8s": {"state": "absent", "api_version": "v1", "kind": "ConfigMap",
                                                      "name": "settings", "namespace": "default"},
         "register": "absent"},
        {"name": "cordon n2", "kubernetes.core.k8s_drain": {"name": "n2", "state": "cordon"}, "register": "cordon"},
        {"name": "uncordon n2", "kubernetes.core.k8s_drain": {"name": "n2", "state": "uncordon"},
         "register": "uncordon"},
        {"name": "drain n1", "kubernetes.core.k8s_drain": {
            "name": "n1", "state": "drain",
            "delete_options": {"ignore_daemonsets": True, "delete_emptydir_data": True, "wait_timeout": 20}},
         "register": "drain"},
        {"name": "dump results", "ansible.builtin.copy": {
            "dest": "{{ out_file }}",
            "content": "{{ {'info': info, 'apply1': apply1, 'apply2': apply2, 'absent': absent, 'cordon': cordon,"
                       " 'uncordon': uncordon, 'drain': drain} | to_json }}"}},
    ],
}]


def test_kubernetes_core_modules(kubeapi, tmp_path):
    make_node(kubeapi, "n1")
    make_node(kubeapi, "n2")
    rs = kubeapi.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"replicas": 3}})
    make_pod(kubeapi, "web-1", node="n1", labels={"app": "web"}, owner=rs)
    make_pod(kubeapi, "web-2", node="n1", labels={"app": "web"}, owner=rs, phase="Pending")
    make_pod(kubeapi, "web-3", node="n2", labels={"app": "web"}, owner=rs)
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(PLAY, sort_keys=False))
    out_file = tmp_path / "results.json"
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=kubeapi.kubeconfig_path, ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("ANSIBLE_INVENTORY", None)
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"out_file={out_file}", str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out_file.read_text())

    assert [r["metadata"]["name"] for r in res["info"]["resources"]] == ["web-1"]
    assert res["apply1"]["changed"] is True and res["apply1"]["result"]["data"] == {"mode": "fast"}
    assert res["apply2"]["changed"] is False
    assert res["absent"]["changed"] is True
    assert not kubeapi.exists("v1", "ConfigMap", "settings", "default")
    assert res["cordon"]["changed"] is True and res["uncordon"]["changed"] is True
    assert not kubeapi.get("v1", "Node", "n2")["spec"].get("unschedulable")
    assert res["drain"]["changed"] is True
    assert kubeapi.get("v1", "Node", "n1")["spec"]["unschedulable"] is True
    assert kubeapi.list("v1", "Pod", field_selector="spec.nodeName=n1") == []
    assert [p["metadata"]["name"] for p in kubeapi.list("v1", "Pod")] == ["web-3"]
