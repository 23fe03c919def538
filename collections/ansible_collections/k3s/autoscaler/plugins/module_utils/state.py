# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The autoscaler's JSON state file (cooldown timestamps + bounded event history).

Schema (version 1)::

    {"version": 1,
     "last_scale_up": <unix seconds float> | null,
     "last_scale_down": <unix seconds float> | null,
     "events": [  # bounded history, newest last (default limit 100)
        {"time": <unix seconds>, "direction": "scale_up" | "scale_down", "count": <int>,
         "instance_ids": [<str>], "node_names": [<str>], "reason": <str>}
     ],
     "totals": {"scale_up": <int>, "scale_down": <int>}}  # completed actions ever recorded

``totals`` counts recorded scale actions (events, not nodes) per direction and is
never trimmed, so ``k3s_autoscaler_scale_events_total`` (k3s_run_metrics) stays
monotonic. It is optional on read (files written without it are valid; then
:func:`event_totals` counts the events still in the history).

Writes are atomic and serialised: an exclusive ``fcntl.flock`` on the sibling
``<path>.lock``, a temp file in the same directory (mode 0600) that is written,
flushed and fsync'ed, ``os.replace`` onto the path, then an fsync of the
directory. A missing directory is created with mode 0700.

Reads (:func:`load_state`) take no lock and create nothing (``os.replace`` is
atomic, so a reader sees the old or the new file, never a torn one); check
mode therefore never writes anything.

A missing file is a fresh default state. A corrupt / unparseable / wrong-schema
file raises :class:`StateError`; it is NEVER silently reset. Use
:func:`repair_state` (the ``repair: true`` option of k3s_scale_event) to move
it aside to ``<path>.corrupt-<unix>`` and start fresh.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import fcntl
import json
import math
import os
import tempfile
import time

STATE_VERSION = 1
DEFAULT_HISTORY_LIMIT = 100
DEFAULT_LOCK_TIMEOUT = 30.0
DIRECTIONS = ("scale_up", "scale_down")


class StateError(Exception):
    """The state file cannot be used. ``path`` names it; the message says how to repair."""

    def __init__(self, path, message):
        self.path = path
        self.message = message
        super(StateError, self).__init__("state file %s: %s" % (path, message))


def default_state():
    """A fresh state: never scaled, no history."""
    return {"version": STATE_VERSION, "last_scale_up": None, "last_scale_down": None, "events": [],
            "totals": {"scale_up": 0, "scale_down": 0}}


def _repair_hint():
    return ("move it aside (or run k3s.autoscaler.k3s_scale_event with repair=true, which renames it to "
            "<path>.corrupt-<unix> and starts a fresh state)")


def _is_time(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def validate_state(data, path="<state>"):
    """Check ``data`` against schema version 1; raise StateError naming the problem."""
    def bad(what):
        raise StateError(path, "wrong schema: %s; %s" % (what, _repair_hint()))

    if not isinstance(data, dict):
        bad("top level must be a JSON object, got %s" % type(data).__name__)
    if data.get("version") != STATE_VERSION:
        bad("'version' must be %d, got %r" % (STATE_VERSION, data.get("version")))
    for key in ("last_scale_up", "last_scale_down"):
        if key not in data:
            bad("missing key %r" % key)
        if data[key] is not None and not _is_time(data[key]):
            bad("%r must be unix seconds (number >= 0) or null, got %r" % (key, data[key]))
    events = data.get("events")
    if not isinstance(events, list):
        bad("'events' must be a list, got %s" % type(events).__name__)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            bad("events[%d] must be an object" % i)
        if not _is_time(ev.get("time")):
            bad("events[%d].time must be unix seconds, got %r" % (i, ev.get("time")))
        if ev.get("direction") not in DIRECTIONS:
            bad("events[%d].direction must be scale_up or scale_down, got %r" % (i, ev.get("direction")))
        cnt = ev.get("count")
        if not isinstance(cnt, int) or isinstance(cnt, bool) or cnt < 0:
            bad("events[%d].count must be an integer >= 0, got %r" % (i, cnt))
        for key in ("instance_ids", "node_names"):
            v = ev.get(key)
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                bad("events[%d].%s must be a list of strings" % (i, key))
        if not isinstance(ev.get("reason"), str):
            bad("events[%d].reason must be a string" % i)
    if "totals" in data:
        totals = data["totals"]
        if not isinstance(totals, dict):
            bad("'totals' must be an object, got %s" % type(totals).__name__)
        for d in DIRECTIONS:
            v = totals.get(d, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad("totals.%s must be an integer >= 0, got %r" % (d, v))
    return data


def event_totals(state):
    """Completed scale actions per direction: ``{"scale_up": int, "scale_down": int}``.

    From ``state["totals"]`` (never trimmed); for a state without ``totals``,
    the number of events of each direction still in the bounded history.
    """
    totals = state.get("totals")
    if isinstance(totals, dict):
        return dict((d, int(totals.get(d, 0))) for d in DIRECTIONS)
    return dict((d, sum(1 for ev in state.get("events", []) if ev.get("direction") == d)) for d in DIRECTIONS)


def _reject_constant(name):
    raise ValueError("non-finite number %s is not valid JSON" % name)


def _read(path):
    """Parse and validate the file; None when it does not exist."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateError(path, "is a directory, not a JSON file; point state_file at a file path")
    except OSError as e:
        raise StateError(path, "cannot be read (%s); check its permissions" % e.strerror)
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as e:
        raise StateError(path, "is corrupt (not valid JSON: %s); %s" % (e, _repair_hint()))
    return validate_state(data, path)


def load_state(path):
    """Load the state (no lock, no writes). Missing file -> :func:`default_state`.

    :raises StateError: corrupt, unparseable or wrong-schema file.
    """
    data = _read(path)
    return default_state() if data is None else data


def _ensure_dir(path):
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        try:
            os.makedirs(d, mode=0o700)
            os.chmod(d, 0o700)  # makedirs' mode is masked by the umask
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise StateError(path, "cannot create directory %s (%s)" % (d, e.strerror))
    return d


class _Lock(object):
    """Exclusive flock on ``<path>.lock`` (created 0600), polled up to ``timeout`` seconds."""

    def __init__(self, path, timeout=DEFAULT_LOCK_TIMEOUT):
        self.path = path
        self.lock_path = path + ".lock"
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        _ensure_dir(self.path)
        try:
            self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StateError(self.path, "cannot open lock file %s (%s)" % (self.lock_path, e.strerror))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(self.fd)
                    raise StateError(self.path, "cannot lock %s (%s)" % (self.lock_path, e.strerror))
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise StateError(self.path, "could not lock %s within %s s: another autoscaler run "
                                                "holds it; wait for it to finish" % (self.lock_path, self.timeout))
                time.sleep(0.01)

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
        return False


def _fsync_dir(d):
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path, data):
    """Write ``data`` as JSON: temp file in same dir (0600), flush, fsync, os.replace, fsync dir."""
    d = _ensure_dir(path)
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = None
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(d)


def update_state(path, fn, lock_timeout=DEFAULT_LOCK_TIMEOUT):
    """Lock, read (missing -> default), ``new = fn(deepcopy(state))``, validate, atomic write; return new.

    ``fn`` may mutate its argument and return it. The file is replaced only
    after ``fn`` succeeded and its result validated.

    :raises StateError: corrupt file (nothing is written), lock timeout, or
        ``fn`` produced an invalid state.
    """
    with _Lock(path, lock_timeout):
        current = _read(path)
        if current is None:
            current = default_state()
        new = fn(copy.deepcopy(current))
        validate_state(new, path)
        try:
            _atomic_write(path, new)
        except (OSError, TypeError, ValueError) as e:
            raise StateError(path, "write failed (%s); the previous file is left intact" % (e,))
        return new


def repair_state(path, now=None, lock_timeout=DEFAULT_LOCK_TIMEOUT):
    """Move a corrupt state file aside and write a fresh default state.

    Only acts when the file is corrupt: a valid file is left alone and a
    missing one is not created. The backup is ``<path>.corrupt-<unix>`` (with
    ``-N`` appended if that exists).

    :returns: the backup path, or None when there was nothing to repair.
    """
    with _Lock(path, lock_timeout):
        try:
            _read(path)
            return None
        except StateError:
            pass
        stamp = int(time.time() if now is None else now)
        backup = "%s.corrupt-%d" % (path, stamp)
        n = 1
        while os.path.exists(backup):
            backup = "%s.corrupt-%d-%d" % (path, stamp, n)
            n += 1
        os.rename(path, backup)
        _atomic_write(path, default_state())
        return backup


def record_event(state, direction, count, time_s, instance_ids=None, node_names=None, reason="",
                 history_limit=DEFAULT_HISTORY_LIMIT):
    """Pure: return a new state with the event appended and last_scale_<direction> advanced.

    ``last_scale_up``/``last_scale_down`` become max(previous, time_s), so a
    late (back-dated) record never moves a cooldown backwards. ``events`` is
    trimmed to the newest ``history_limit`` entries.
    """
    if direction not in DIRECTIONS:
        raise ValueError("direction must be scale_up or scale_down, got %r" % (direction,))
    if not _is_time(time_s):
        raise ValueError("time must be unix seconds >= 0, got %r" % (time_s,))
    if not isinstance(history_limit, int) or isinstance(history_limit, bool) or history_limit < 1:
        raise ValueError("history_limit must be an integer >= 1, got %r" % (history_limit,))
    new = copy.deepcopy(state)
    key = "last_" + direction
    prev = new.get(key)
    new[key] = float(time_s) if prev is None else max(float(prev), float(time_s))
    new["events"].append({
        "time": float(time_s),
        "direction": direction,
        "count": int(count),
        "instance_ids": [str(x) for x in (instance_ids or [])],
        "node_names": [str(x) for x in (node_names or [])],
        "reason": reason or "",
    })
    new["totals"] = event_totals(state)
    new["totals"][direction] += 1
    new["events"] = new["events"][-history_limit:]
    return new
