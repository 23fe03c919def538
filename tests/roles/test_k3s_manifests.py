"""roles/k3s_manifests: render the manifests from the local inventory (ansible-playbook, apply=false) and
validate every one OFFLINE against the Kubernetes 1.32 schemas (kubernetes-validate, strict: unknown fields
fail), then check the least-privilege ClusterRole, the ConfigMap thresholds, the CronJob hardening and the
preflight asserts. Then apply the role to an in-process emulated Kubernetes API (local_cluster.kubeapi): check mode
on a fresh namespace (the namespaced objects are reported as would-be-created, not failed) and on an existing one
(server-side dry run, as before). The full apply to the local cluster is the molecule scenario's job."""
import json
import os
import pathlib
import subprocess
import textwrap

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
K8S_VERSION = "1.32.0"  # what the local cluster (k3s v1.32) reports
EXPECTED = ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
            "PersistentVolumeClaim", "CronJob", "Service"]  # in apply order

PLAY = """\
- name: Render the k3s_manifests role
  hosts: {hosts}
  gather_facts: false
  roles:
    - role: k3s_manifests
      vars:
        k3s_manifests_apply: false
        k3s_manifests_render_file: "{render_file}"
"""


def run_role(tmp_path, *extra, inventory=str(ROOT / "inventories" / "local"), hosts="k3s_clusters"):
    render_file = tmp_path / "k3s-autoscaler.yaml"
    play = tmp_path / "render.yml"
    play.write_text(PLAY.format(hosts=hosts, render_file=render_file))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1",
               LOCAL_CLUSTER_DIR=str(tmp_path / "no-cluster"))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", inventory, str(play), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return proc, render_file


def objects(render_file):
    return [doc for doc in yaml.safe_load_all(render_file.read_text()) if doc]


def load(render_file, kind):
    (obj,) = [doc for doc in objects(render_file) if doc["kind"] == kind]
    return obj


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("k3s_manifests")
    proc, render_file = run_role(tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return render_file


def test_every_object_is_rendered_in_apply_order(rendered):
    assert [doc["kind"] for doc in objects(rendered)] == EXPECTED


@pytest.mark.parametrize("kind", EXPECTED)
def test_manifest_is_valid_against_the_kubernetes_schema(rendered, kind):
    try:
        kubernetes_validate.validate(load(rendered, kind), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:  # the message embeds the whole schema: keep it short
        pytest.fail(f"{kind}: {err.message} at {list(err.path)}")


def test_schema_validation_can_fail(rendered):
    cronjob = load(rendered, "CronJob")
    cronjob["spec"]["concurrencyPolicyy"] = "Forbid"  # a misspelled field is rejected in strict mode
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)


def test_clusterrole_is_exactly_least_privilege(rendered):
    role = load(rendered, "ClusterRole")
    grants = {(group, res): sorted(rule["verbs"])
              for rule in role["rules"] for group in rule["apiGroups"] for res in rule["resources"]}
    assert grants == {
        ("", "nodes"): ["get", "list", "patch", "watch"],
        ("", "pods"): ["get", "list", "watch"],
        ("", "pods/eviction"): ["create"],
        ("", "events"): ["create"],
    }
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in role["rules"])  # no resourceNames/URLs
    binding = load(rendered, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    sa = load(rendered, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def test_configmap_carries_the_local_inventory_thresholds(rendered):
    inventory = yaml.safe_load((ROOT / "inventories/local/group_vars/k3s_clusters/autoscaler.yml").read_text())
    cm = load(rendered, "ConfigMap")
    config = yaml.safe_load(cm["data"]["autoscaler.yml"])
    for key in ("autoscale_min_nodes", "autoscale_max_nodes", "autoscale_cpu_threshold",
                "autoscale_memory_threshold", "autoscale_pending_pods_threshold", "autoscale_scale_up_cooldown",
                "autoscale_scale_down_cooldown", "autoscale_max_scale_up_step", "autoscale_instance_type"):
        assert config[key] == inventory[key], key
    assert config["autoscale_state_file"] == "/var/lib/k3s-autoscaler/state.json"
    assert config["autoscale_kubeconfig"] == ""  # in-cluster ServiceAccount credentials
    assert not [k for k in config if "token" in k or "password" in k]
    hosts = yaml.safe_load(cm["data"]["hosts.yml"])
    assert hosts["k3s_clusters"]["hosts"]["in-cluster"]["ansible_connection"] == "local"


def test_cronjob_is_forbid_hardened_and_mounts_config_state_tmp(rendered):
    cj = load(rendered, "CronJob")["spec"]
    assert cj["concurrencyPolicy"] == "Forbid" and cj["startingDeadlineSeconds"] == 120
    pod = cj["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["image"] == "k3s-autoscaler:latest"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory"} and "memory" in container["resources"]["limits"]
    assert container["command"][:4] == ["ansible-playbook", "-i", "/etc/k3s-autoscaler/hosts.yml",
                                        "/app/playbooks/autoscale.yml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"config": "/etc/k3s-autoscaler", "state": "/var/lib/k3s-autoscaler", "tmp": "/tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == load(rendered, "PersistentVolumeClaim")["metadata"]["name"]
    assert volumes["config"]["configMap"]["name"] == load(rendered, "ConfigMap")["metadata"]["name"]


def test_service_selects_the_autoscaler_pods(rendered):
    svc = load(rendered, "Service")["spec"]
    labels = load(rendered, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= labels.items()
    assert svc["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]


def test_emptydir_state_renders_no_claim(tmp_path):
    proc, render_file = run_role(tmp_path, "-e", "k3s_manifests_state_storage=emptyDir")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PersistentVolumeClaim" not in [doc["kind"] for doc in objects(render_file)]
    pod = load(render_file, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["state"] == {"name": "state", "emptyDir": {}}


@pytest.mark.parametrize("extra, expected", [
    ({"k3s_manifests_starting_deadline_seconds": 5}, "k3s_manifests_starting_deadline_seconds must be >= 10"),
    ({"k3s_manifests_config_overrides": {"autoscale_k3s_token": "x"}}, "Secrets (tokens, passwords) must not"),
    ({"k3s_manifests_schedule": "every minute"}, "k3s_manifests_schedule must be a 5-field cron"),
])
def test_preflight_rejects_bad_input_with_a_clear_message(tmp_path, extra, expected):
    extra_file = tmp_path / "extra.yml"
    extra_file.write_text(yaml.safe_dump(extra))
    proc, render_file = run_role(tmp_path, "-e", f"@{extra_file}")
    assert proc.returncode != 0
    assert expected in " ".join((proc.stdout + proc.stderr).split()), textwrap.shorten(proc.stdout, 2000)
    assert not render_file.exists()  # nothing rendered (or applied) after a failed preflight


# --- applying to an emulated Kubernetes API (local_cluster.kubeapi, in-process, no simulation) ---------------
APPLY_PLAY = """\
- name: Apply the k3s_manifests role
  hosts: k3s_clusters
  gather_facts: false
  roles:
    - role: k3s_manifests
"""


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory):
    from local_cluster.kubeapi import KubeAPI

    tmp = tmp_path_factory.mktemp("k3s_manifests_api")
    api = KubeAPI(kubeconfig_path=str(tmp / "kubeconfig")).start()
    yield api
    api.stop()


def apply_role(tmp_path, api, namespace, *extra):
    """Run the role against ``api`` with the JSON callback; return (proc, {task name: [item results]})."""
    play = tmp_path / "apply.yml"
    play.write_text(APPLY_PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", LOCAL_CLUSTER_DIR=str(tmp_path / "no-cluster"))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / "local"), str(play),
                           "-e", f"k3s_manifests_kubeconfig={api.kubeconfig_path}",
                           "-e", f"k3s_manifests_namespace={namespace}", "-e", f"k3s_manifests_name={namespace}",
                           *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    tasks = {}
    if proc.stdout.lstrip().startswith("{"):
        for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
            result = task["hosts"].get("local", {})
            tasks[task["task"]["name"].removeprefix("k3s_manifests : ")] = result.get("results", [result])
    return proc, tasks


def by_template(results):
    """Template name -> item result, for the items that ran (not skipped)."""
    return {r["item"]: r for r in results if not r.get("skipped")}


APPLY_TASK = "Apply the manifests (client-side apply, last-applied annotation)"
REPORT_TASK = "Report the namespaced objects as would be created (check mode, the Namespace does not exist yet)"
CLUSTER_SCOPED = ["namespace.yaml", "clusterrole.yaml", "clusterrolebinding.yaml"]
NAMESPACED = ["serviceaccount.yaml", "configmap.yaml", "pvc.yaml", "cronjob.yaml", "service.yaml"]


def test_check_mode_on_a_fresh_namespace_reports_the_namespaced_objects_as_would_be_created(tmp_path, kube_api):
    # The emulated API, like real Kubernetes, answers a dry run into a missing namespace with 404
    # namespaces "<ns>" not found: the role must not send those objects, and must still show them.
    proc, tasks = apply_role(tmp_path, kube_api, "fresh-check", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    applied, reported = by_template(tasks[APPLY_TASK]), by_template(tasks[REPORT_TASK])
    assert sorted(applied) == sorted(CLUSTER_SCOPED)  # server-side dry run, as before
    assert all(r["changed"] and not r.get("failed") for r in applied.values())
    assert sorted(reported) == sorted(NAMESPACED)
    for template, result in reported.items():
        assert result["changed"] is True and result["method"] == "create", template
        assert result["diff"]["before"] == {}
        after = result["diff"]["after"]
        assert after == result["result"] and after["metadata"]["namespace"] == "fresh-check", template
    kinds = {r["diff"]["after"]["kind"] for r in reported.values()}
    assert kinds == {"ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "CronJob", "Service"}
    cm = yaml.safe_load(reported["configmap.yaml"]["diff"]["after"]["data"]["autoscaler.yml"])
    assert cm["autoscale_state_file"] == "/var/lib/k3s-autoscaler/state.json"  # the rendered object, in full
    # check mode changed nothing on the API
    assert not kube_api.exists("v1", "Namespace", "fresh-check")
    assert not kube_api.exists("rbac.authorization.k8s.io/v1", "ClusterRole", "fresh-check")


def test_existing_namespace_keeps_the_server_side_dry_run(tmp_path, kube_api):
    proc, tasks = apply_role(tmp_path, kube_api, "existing")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert kube_api.exists("batch/v1", "CronJob", "existing", "existing")
    assert not by_template(tasks[REPORT_TASK])  # a real run never uses the check-mode report
    before = kube_api.get("v1", "ConfigMap", "existing", "existing")["data"]["autoscaler.yml"]

    # --check with one changed threshold: every object goes to the API's dry run; only the ConfigMap changes
    proc, tasks = apply_role(tmp_path, kube_api, "existing", "--check", "--diff", "-e", '{"autoscale_max_nodes": 9}')
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert not by_template(tasks[REPORT_TASK])
    applied = by_template(tasks[APPLY_TASK])
    assert sorted(applied) == sorted(CLUSTER_SCOPED + NAMESPACED)
    assert sorted(t for t, r in applied.items() if r["changed"]) == ["configmap.yaml"]
    diff_after = yaml.safe_load(applied["configmap.yaml"]["diff"]["after"]["data"]["autoscaler.yml"])
    assert diff_after["autoscale_max_nodes"] == 9
    assert kube_api.get("v1", "ConfigMap", "existing", "existing")["data"]["autoscaler.yml"] == before


def test_would_create_refuses_to_run_outside_check_mode(tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LIBRARY=str(ROOT / "roles" / "k3s_manifests" / "library"))
    definition = json.dumps({"definition": {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "x", "namespace": "ns"}}})
    proc = subprocess.run([str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
                           "-m", "k3s_manifests_would_create", "-a", definition],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "only reports in check mode" in proc.stdout, proc.stdout + proc.stderr
