# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k3s_scale_intent run as Ansible runs it: begin_launch writes pending_launch before the launch; a rerun
reconciles it from the instances' launch-id tag; check mode writes nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 8))
VENV_BIN = os.path.dirname(sys.executable)


def run_module(args, check=False):
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_INVENTORY", None)
    ansible = os.path.join(VENV_BIN, "ansible")
    cmd = [ansible if os.path.exists(ansible) else "ansible", "localhost", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", "k3s.autoscaler.k3s_scale_intent",
           "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible did not print JSON (rc=%s)\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def inst(iid, state="running", launch_id=None):
    tags = {"k3s-autoscaler/node-group": "default"}
    if launch_id:
        tags["k3s-autoscaler/launch-id"] = launch_id
    return {"instance_id": iid, "state": {"name": state}, "tags": tags}


def test_begin_launch_then_rerun_reconciles_from_tags(tmp_path):
    sf = str(tmp_path / "state.json")
    chk = run_module({"state_file": sf, "action": "begin_launch", "instances": [inst("i-1")], "count": 3,
                      "max_nodes": 3}, check=True)
    assert chk["proceed"] and chk["count"] == 2 and not os.path.exists(sf)
    res = run_module({"state_file": sf, "action": "begin_launch", "instances": [inst("i-1")], "count": 3,
                      "max_nodes": 3, "reason": "scale_up: pending"})
    assert res["proceed"] and res["count"] == 2 and res["changed"] and res["live"] == 1
    with open(sf) as f:
        pl = json.load(f)["pending_launch"]
    assert pl["launch_id"] == res["launch_id"] and pl["count"] == 2
    # the run was killed after RunInstances: the next run finds the tagged instances
    rec = run_module({"state_file": sf, "action": "reconcile",
                      "instances": [inst("i-1"), inst("i-2", "pending", res["launch_id"]),
                                    inst("i-3", "pending", res["launch_id"])]})
    assert rec["report"]["launch"] == "completed" and rec["report"]["launched_ids"] == ["i-2", "i-3"]
    assert rec["intents"]["pending_launch"] is None and any("tagged" in w for w in rec.get("warnings", []))
    with open(sf) as f:
        st = json.load(f)
    assert st["events"][-1]["instance_ids"] == ["i-2", "i-3"] and "pending_launch" not in st
    again = run_module({"state_file": sf, "action": "reconcile", "instances": [inst("i-2"), inst("i-3")]})
    assert again["report"]["launch"] == "none" and again["changed"] is False


def test_missing_option_and_corrupt_state_are_named(tmp_path):
    sf = tmp_path / "state.json"
    res = run_module({"state_file": str(sf), "action": "begin_removal", "instances": []})
    assert res.get("failed") and "needs min_nodes, node, instance_id" in res["msg"]
    sf.write_text("{not json")
    res = run_module({"state_file": str(sf), "action": "reconcile", "instances": []})
    assert res.get("failed") and "is corrupt" in res["msg"] and "repair" in res["msg"]
