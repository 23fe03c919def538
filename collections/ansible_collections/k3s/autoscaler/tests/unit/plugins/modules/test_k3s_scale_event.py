# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end tests of k3s.autoscaler.k3s_scale_event, run as Ansible runs it (ad-hoc `ansible`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

from module_runner import run_module


def test_records_event_with_diff_and_modes(tmp_path):
    sf = tmp_path / "st" / "state.json"
    r = run_module("k3s_scale_event", {"state_file": str(sf), "direction": "scale_up",
                                       "instance_ids": ["i-0aaa", "i-0bbb"], "reason": "scale_up: test",
                                       "time": 1700000000.5}, diff=True)
    assert not r.get("failed"), r
    assert r["changed"] is True
    assert r["event"] == {"time": 1700000000.5, "direction": "scale_up", "count": 2,
                          "instance_ids": ["i-0aaa", "i-0bbb"], "node_names": [], "reason": "scale_up: test"}
    assert r["state"]["last_scale_up"] == 1700000000.5
    assert r["diff"]["before"] == {"last_scale_up": None, "last_scale_down": None}
    assert r["diff"]["after"] == {"last_scale_up": 1700000000.5, "last_scale_down": None}
    on_disk = json.loads(sf.read_text())
    assert on_disk == r["state"]
    assert stat.S_IMODE(os.stat(sf).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sf.parent).st_mode) == 0o700

    r = run_module("k3s_scale_event", {"state_file": str(sf), "direction": "scale_down", "count": 1,
                                       "node_names": ["worker-b"], "time": 1700000100.0, "history_limit": 1})
    assert r["state"]["last_scale_up"] == 1700000000.5
    assert r["state"]["last_scale_down"] == 1700000100.0
    assert [e["direction"] for e in json.loads(sf.read_text())["events"]] == ["scale_down"]


def test_check_mode_writes_nothing(tmp_path):
    sf = tmp_path / "state.json"
    r = run_module("k3s_scale_event", {"state_file": str(sf), "direction": "scale_up", "count": 1,
                                       "time": 1000.0}, check=True, diff=True)
    assert r["changed"] is True
    assert r["state"]["last_scale_up"] == 1000.0
    assert r["diff"]["after"]["last_scale_up"] == 1000.0
    assert os.listdir(tmp_path) == []  # no state file, no lock file

    sf.write_text(json.dumps({"version": 1, "last_scale_up": 5.0, "last_scale_down": None, "events": []}))
    before = sf.read_text()
    r = run_module("k3s_scale_event", {"state_file": str(sf), "direction": "scale_down", "count": 1,
                                       "time": 2000.0}, check=True)
    assert r["changed"] is True and r["state"]["last_scale_down"] == 2000.0
    assert sf.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_corrupt_file_fails_then_repair_moves_it_aside(tmp_path):
    sf = tmp_path / "state.json"
    sf.write_text("not json at all")
    args = {"state_file": str(sf), "direction": "scale_up", "count": 1, "time": 3000.0}
    r = run_module("k3s_scale_event", args)
    assert r["failed"] is True
    assert str(sf) in r["msg"] and "corrupt" in r["msg"] and "repair=true" in r["msg"]
    assert sf.read_text() == "not json at all"

    r = run_module("k3s_scale_event", dict(args, repair=True), check=True)
    assert r["changed"] is True and r["backup_file"] is None
    assert sf.read_text() == "not json at all"

    r = run_module("k3s_scale_event", dict(args, repair=True))
    assert not r.get("failed"), r
    backup = r["backup_file"]
    assert backup.startswith(str(sf) + ".corrupt-")
    assert open(backup).read() == "not json at all"
    assert json.loads(sf.read_text())["last_scale_up"] == 3000.0


def test_count_required_without_ids(tmp_path):
    r = run_module("k3s_scale_event", {"state_file": str(tmp_path / "s.json"), "direction": "scale_up"})
    assert r["failed"] is True
    assert r["msg"] == "count: set count, or pass instance_ids or node_names so it can be derived"
    assert not os.path.exists(tmp_path / "s.json")
