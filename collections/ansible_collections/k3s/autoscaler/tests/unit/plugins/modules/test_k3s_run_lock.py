# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k3s_run_lock run as Ansible runs it (ad-hoc `ansible`): acquire / held / stale recovery / release / check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from module_runner import run_module


def test_acquire_names_the_ansible_process_then_next_run_recovers_it_as_stale(tmp_path):
    path = str(tmp_path / "run" / "state.json.runlock")
    first = run_module("k3s_run_lock", {"path": path})
    assert first["status"] == "acquired" and first["changed"] is True and first["token"]
    pid = first["holder"]["pid"]
    assert isinstance(pid, int) and pid != os.getpid()  # the ad-hoc `ansible` process, gone by now
    second = run_module("k3s_run_lock", {"path": path})
    assert second["status"] == "acquired"
    assert second["recovered_stale"]["pid"] == pid
    assert "recovered stale lock of pid %d" % pid in second["msg"]


def test_held_is_not_a_failure_and_release_needs_the_token(tmp_path):
    path = str(tmp_path / "state.json.runlock")
    first = run_module("k3s_run_lock", {"path": path, "holder_pid": os.getpid()})  # held for as long as this test lives
    held = run_module("k3s_run_lock", {"path": path})
    assert held["status"] == "held" and not held.get("failed") and held["changed"] is False
    assert held["msg"].startswith("another run holds the lock")
    assert held["holder"]["pid"] == os.getpid() and held["token"] is None
    wrong = run_module("k3s_run_lock", {"path": path, "state": "released", "token": "nope"})
    assert wrong["status"] == "not_owner" and wrong["changed"] is False
    rel = run_module("k3s_run_lock", {"path": path, "state": "released", "token": first["token"]})
    assert rel["status"] == "released" and rel["changed"] is True
    missing = run_module("k3s_run_lock", {"path": path, "state": "released"})
    assert missing.get("failed") and "token" in missing["msg"]


def test_check_mode_takes_no_lock(tmp_path):
    path = str(tmp_path / "d" / "state.json.runlock")
    res = run_module("k3s_run_lock", {"path": path}, check=True)
    assert res["status"] == "check_mode" and res["holder_status"] == "free" and res["changed"] is False
    assert not os.path.exists(os.path.dirname(path))
