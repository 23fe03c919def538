# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run lock (module_utils/lock.py): held / stale / torn / expired / release-by-owner-only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils import lock


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "state.json.runlock")


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_acquire_creates_private_dir_and_file_and_records_holder(path):
    res = lock.acquire(path, holder_pid=os.getpid(), ttl=60, now=1000.0)
    assert res["status"] == "acquired" and res["recovered_stale"] is None
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        rec = json.load(f)
    assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
    assert rec["pid_start"] == lock.pid_start_time(os.getpid()) and rec["started"] == 1000.0
    assert rec["token"] == res["token"] and rec["ttl"] == 60.0


def test_second_acquire_while_holder_alive_is_held_with_clear_message(path):
    first = lock.acquire(path, holder_pid=os.getpid())
    second = lock.acquire(path, holder_pid=os.getpid())
    assert second["status"] == "held" and second["holder_status"] == "alive"
    assert second["msg"].startswith("another run holds the lock %s: pid %d on host" % (path, os.getpid()))
    assert "skipped: lock held" in second["msg"]
    assert "still running on this host" in second["msg"] and "another host" not in second["msg"]
    # the holder's record is untouched
    with open(path) as f:
        assert json.load(f)["token"] == first["token"]


def test_stale_lock_of_dead_pid_is_recovered(path):
    dead = _dead_pid()
    lock.acquire(path, holder_pid=dead)
    res = lock.acquire(path, holder_pid=os.getpid())
    assert res["status"] == "acquired"
    assert res["recovered_stale"]["pid"] == dead
    assert "recovered stale lock of pid %d" % dead in res["msg"]


def test_recycled_pid_with_other_start_time_is_stale(path):
    lock.acquire(path, holder_pid=os.getpid())
    with open(path) as f:
        rec = json.load(f)
    rec["pid_start"] = "1"  # same pid, different process start -> not the holder any more
    with open(path, "w") as f:
        json.dump(rec, f)
    res = lock.acquire(path, holder_pid=os.getpid())
    assert res["status"] == "acquired" and res["recovered_stale"]["pid"] == os.getpid()


@pytest.mark.parametrize("content", [b'{"pid": 12', b"\x00\x00garbage", b"[]", b'{"pid": 1}'])
def test_torn_record_is_recovered(path, content):
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(content)
    res = lock.acquire(path, holder_pid=os.getpid())
    assert res["status"] == "acquired" and res["recovered_stale"]["reason"] == "torn lock record"


def test_other_host_is_held_until_ttl_then_expired(path):
    lock.acquire(path, holder_pid=123, ttl=100, now=1000.0, host="other-host")
    held = lock.acquire(path, holder_pid=os.getpid(), now=1050.0)
    assert held["status"] == "held" and held["holder_status"] == "unknown"
    assert "cannot be checked from here" in held["msg"] and "wait 100 s for the lock to expire" in held["msg"]
    res = lock.acquire(path, holder_pid=os.getpid(), now=1101.0)
    assert res["status"] == "acquired" and "ttl" in res["recovered_stale"]["reason"]


def test_unknown_pid_only_expires_by_ttl(path):
    lock.acquire(path, holder_pid=None, ttl=10, now=1000.0)
    assert lock.acquire(path, holder_pid=os.getpid(), now=1005.0)["status"] == "held"
    assert lock.acquire(path, holder_pid=os.getpid(), now=1011.0)["status"] == "acquired"


def test_release_only_by_owner(path):
    res = lock.acquire(path, holder_pid=os.getpid())
    other = lock.release(path, "not-the-token")
    assert other["status"] == "not_owner"
    assert lock.acquire(path, holder_pid=os.getpid())["status"] == "held"
    assert lock.release(path, res["token"])["status"] == "released"
    assert os.path.getsize(path) == 0
    assert lock.release(path, res["token"])["status"] == "not_held"
    assert lock.acquire(path, holder_pid=os.getpid())["status"] == "acquired"


def test_release_of_missing_file_is_not_held_and_token_required(path):
    assert lock.release(path, "x")["status"] == "not_held"
    with pytest.raises(lock.LockError, match="token is required"):
        lock.release(path, "")


def test_inspect_reads_without_creating(path):
    assert lock.inspect(path) == {"holder": None, "status": "free"}
    assert not os.path.exists(path)
    lock.acquire(path, holder_pid=_dead_pid())
    assert lock.inspect(path)["status"] == "dead"


def test_bad_ttl_and_unwritable_dir(tmp_path):
    with pytest.raises(lock.LockError, match="ttl"):
        lock.acquire(str(tmp_path / "l"), ttl=0)
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(lock.LockError, match="cannot"):
        lock.acquire(str(ro / "sub" / "l"))


def test_find_run_pid_finds_outermost_ansible_ancestor(tmp_path):
    # fake "ansible-playbook" -> child "ansible-playbook" (a fork-like worker) -> python printing find_run_pid
    script = tmp_path / "ansible-playbook"
    script.write_text(
        "import os, subprocess, sys\n"
        "if len(sys.argv) > 1 and sys.argv[1] == 'worker':\n"
        "    code = ('import sys; sys.path[:0] = %r; from ansible_collections.k3s.autoscaler.plugins.module_utils '\n"
        "            'import lock; print(lock.find_run_pid())')\n"
        "    subprocess.run([sys.executable, '-c', code % (sys.path,)], check=True)\n"
        "else:\n"
        "    print(os.getpid()); sys.stdout.flush()\n"
        "    subprocess.run([sys.executable, sys.argv[0], 'worker'], check=True)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout.split()
    assert out[0] == out[1], out


def test_pid_start_time():
    assert lock.pid_start_time(os.getpid()) is not None
    assert lock.pid_start_time(_dead_pid()) is None
