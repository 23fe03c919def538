"""Acceptance checks on the collection as a whole: every module's documentation renders with
``ansible-doc`` (issue 2, acceptance 1) and the collection metadata is what Galaxy expects."""
import json
import os
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "k3s", "autoscaler")
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(COLLECTION, "plugins", "modules"))
                 if f.endswith(".py") and not f.startswith("_"))
ANSIBLE_DOC = os.path.join(REPO, ".venv", "bin", "ansible-doc")


def test_expected_modules_exist():
    for name in ("k3s_metrics", "k3s_scale_decision", "k3s_scale_event", "k3s_run_metrics", "ec2_instance",
                 "ec2_instance_info"):
        assert name in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    res = subprocess.run([ANSIBLE_DOC, "--json", "k3s.autoscaler." + module], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)["k3s.autoscaler." + module]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip(), "EXAMPLES is empty"
    assert doc["return"], "RETURN is empty"
    for opt, spec in doc["doc"].get("options", {}).items():
        assert spec.get("description"), "option %s of %s has no description" % (opt, module)
    text = subprocess.run([ANSIBLE_DOC, "k3s.autoscaler." + module], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and module in text.stdout


def test_galaxy_and_runtime_metadata():
    with open(os.path.join(COLLECTION, "galaxy.yml")) as f:
        galaxy = yaml.safe_load(f)
    assert (galaxy["namespace"], galaxy["name"]) == ("k3s", "autoscaler")
    with open(os.path.join(COLLECTION, "meta", "runtime.yml")) as f:
        runtime = yaml.safe_load(f)
    assert runtime["requires_ansible"].startswith(">=")
