# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the JSON state file (plugins/module_utils/state.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils import state as st
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (
    StateError, default_state, event_totals, load_state, record_event, repair_state, update_state)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "sub" / "state.json")


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_missing_file_is_fresh_default_and_nothing_is_created(path):
    assert load_state(path) == {"version": 1, "last_scale_up": None, "last_scale_down": None, "events": [],
                                "totals": {"scale_up": 0, "scale_down": 0}}
    assert not os.path.exists(os.path.dirname(path))


def test_update_creates_dir_0700_file_0600_and_round_trips(path):
    old = os.umask(0o022)
    try:
        new = update_state(path, lambda s: record_event(s, "scale_up", 2, 100.0, ["i-1", "i-2"], [], "why"))
    finally:
        os.umask(old)
    assert _mode(os.path.dirname(path)) == 0o700
    assert _mode(path) == 0o600
    assert _mode(path + ".lock") == 0o600
    assert load_state(path) == new
    assert new["last_scale_up"] == 100.0 and new["last_scale_down"] is None
    assert new["events"] == [{"time": 100.0, "direction": "scale_up", "count": 2, "instance_ids": ["i-1", "i-2"],
                              "node_names": [], "reason": "why"}]
    # no temp files left behind
    assert sorted(os.listdir(os.path.dirname(path))) == ["state.json", "state.json.lock"]


def test_record_event_bounds_history_and_never_moves_time_backwards():
    s = default_state()
    for i in range(5):
        s = record_event(s, "scale_down", 1, 1000.0 + i, history_limit=3)
    assert [e["time"] for e in s["events"]] == [1002.0, 1003.0, 1004.0]
    s2 = record_event(s, "scale_down", 1, 10.0, history_limit=3)
    assert s2["last_scale_down"] == 1004.0
    assert s2["events"][-1]["time"] == 10.0  # newest last = most recently recorded
    assert s["events"][-1]["time"] == 1004.0  # input not mutated


def test_default_history_limit_is_100(path):
    for i in range(105):
        s = record_event(default_state() if i == 0 else s, "scale_up", 1, float(i))
    assert len(s["events"]) == 100 and s["events"][0]["time"] == 5.0


@pytest.mark.parametrize("direction, count, t, limit", [
    ("sideways", 1, 1.0, 10), ("scale_up", 1, -1.0, 10), ("scale_up", 1, float("nan"), 10),
    ("scale_up", 1, 1.0, 0)])
def test_record_event_rejects_bad_input(direction, count, t, limit):
    with pytest.raises(ValueError):
        record_event(default_state(), direction, count, t, history_limit=limit)


def test_crash_during_replace_leaves_old_file_intact(path, monkeypatch):
    update_state(path, lambda s: record_event(s, "scale_up", 1, 100.0))
    before = open(path).read()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st.os, "replace", boom)
    with pytest.raises(StateError) as exc:
        update_state(path, lambda s: record_event(s, "scale_up", 1, 200.0))
    assert "write failed" in str(exc.value) and path in str(exc.value)
    monkeypatch.undo()
    assert open(path).read() == before
    assert load_state(path)["last_scale_up"] == 100.0
    assert sorted(os.listdir(os.path.dirname(path))) == ["state.json", "state.json.lock"]


def test_fn_raising_writes_nothing(path):
    update_state(path, lambda s: record_event(s, "scale_up", 1, 100.0))
    before = open(path).read()

    def bad(s):
        s["last_scale_up"] = 999.0
        raise RuntimeError("fail in the middle")

    with pytest.raises(RuntimeError):
        update_state(path, bad)
    assert open(path).read() == before


def test_fn_producing_invalid_state_is_rejected(path):
    with pytest.raises(StateError) as exc:
        update_state(path, lambda s: dict(s, last_scale_up="now"))
    assert "'last_scale_up' must be unix seconds" in str(exc.value)
    assert not os.path.exists(path)


def _increment(path, n):
    def inc(s):
        return record_event(s, "scale_up", 1, float(len(s["events"]) + 1), history_limit=1000)
    for dummy in range(n):
        update_state(path, inc)


def test_lock_prevents_lost_updates_across_processes(path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_increment, args=(path, 50)) for dummy in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = load_state(path)
    assert len(s["events"]) == 100
    assert s["last_scale_up"] == 100.0
    assert [e["time"] for e in s["events"]] == [float(i) for i in range(1, 101)]


def test_lock_timeout_names_lock_file(path):
    import fcntl
    os.makedirs(os.path.dirname(path))
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child():
        try:
            update_state(path, lambda s: s, lock_timeout=0.2)
            q.put("no error")
        except StateError as e:
            q.put(str(e))

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        p = ctx.Process(target=child)
        p.start()
        msg = q.get(timeout=30)
        p.join(30)
    finally:
        os.close(fd)
    assert "could not lock %s.lock within 0.2 s" % path in msg


@pytest.mark.parametrize("content, problem", [
    ("{not json", "is corrupt (not valid JSON"),
    ("", "is corrupt (not valid JSON"),
    ('{"version": 1, "last_scale_up": NaN, "last_scale_down": null, "events": []}', "is corrupt (not valid JSON"),
    ("[]", "wrong schema: top level must be a JSON object, got list"),
    ('{"version": 2, "last_scale_up": null, "last_scale_down": null, "events": []}',
     "wrong schema: 'version' must be 1, got 2"),
    ('{"version": 1, "last_scale_down": null, "events": []}', "wrong schema: missing key 'last_scale_up'"),
    ('{"version": 1, "last_scale_up": "x", "last_scale_down": null, "events": []}',
     "wrong schema: 'last_scale_up' must be unix seconds (number >= 0) or null, got 'x'"),
    ('{"version": 1, "last_scale_up": null, "last_scale_down": null, "events": [], "totals": {"scale_up": -1}}',
     "wrong schema: totals.scale_up must be an integer >= 0, got -1"),
    ('{"version": 1, "last_scale_up": null, "last_scale_down": null, "events": {}}',
     "wrong schema: 'events' must be a list, got dict"),
    ('{"version": 1, "last_scale_up": null, "last_scale_down": null, "events": [{"time": 1, "direction": "up",'
     ' "count": 1, "instance_ids": [], "node_names": [], "reason": ""}]}',
     "wrong schema: events[0].direction must be scale_up or scale_down, got 'up'"),
])
def test_corrupt_file_raises_and_is_never_reset(path, content, problem):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(StateError) as exc:
        load_state(path)
    msg = str(exc.value)
    assert msg.startswith("state file %s: " % path)
    assert problem in msg
    assert "make repair-state STATE=" in msg and "repair=true" in msg
    with pytest.raises(StateError):
        update_state(path, lambda s: record_event(s, "scale_up", 1, 1.0))
    assert open(path).read() == content


def test_repair_moves_corrupt_file_aside_and_writes_fresh_state(path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("garbage")
    backup = repair_state(path, now=1234)
    assert backup == path + ".corrupt-1234"
    assert open(backup).read() == "garbage"
    assert load_state(path) == default_state()
    assert _mode(path) == 0o600
    # second corruption at the same second gets a distinct backup name
    with open(path, "w") as f:
        f.write("garbage2")
    assert repair_state(path, now=1234) == path + ".corrupt-1234-1"


def test_repair_leaves_valid_or_missing_file_alone(path):
    assert repair_state(path) is None
    assert not os.path.exists(path)
    update_state(path, lambda s: record_event(s, "scale_down", 1, 5.0))
    before = open(path).read()
    assert repair_state(path) is None
    assert open(path).read() == before


def test_written_file_is_plain_json(path):
    update_state(path, lambda s: record_event(s, "scale_down", 1, 5.5, node_names=["w1"]))
    data = json.load(open(path))
    assert data["version"] == 1 and data["last_scale_down"] == 5.5


def test_totals_survive_history_trimming():
    s = default_state()
    for i in range(7):
        s = record_event(s, "scale_up" if i % 2 else "scale_down", 3, float(i), history_limit=2)
    assert len(s["events"]) == 2
    assert s["totals"] == {"scale_up": 3, "scale_down": 4}  # actions, not nodes
    assert event_totals(s) == {"scale_up": 3, "scale_down": 4}


def test_event_totals_without_totals_key_counts_history(path):
    os.makedirs(os.path.dirname(path))
    ev = {"time": 1.0, "direction": "scale_down", "count": 1, "instance_ids": [], "node_names": [], "reason": ""}
    with open(path, "w") as f:
        json.dump({"version": 1, "last_scale_up": None, "last_scale_down": 1.0, "events": [ev, ev]}, f)
    s = load_state(path)
    assert event_totals(s) == {"scale_up": 0, "scale_down": 2}
    s = update_state(path, lambda x: record_event(x, "scale_up", 1, 2.0))
    assert s["totals"] == {"scale_up": 1, "scale_down": 2}


def test_repair_refuses_a_directory_and_moves_nothing(tmp_path):
    from ansible_collections.k3s.autoscaler.plugins.module_utils.state import StateError, repair_state
    d = tmp_path / "statedir"
    d.mkdir()
    with pytest.raises(StateError) as e:
        repair_state(str(d))
    assert "is a directory, not a state file; nothing was moved" in str(e.value)
    assert sorted(os.listdir(str(tmp_path))) == ["statedir"]
