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
     "totals": {"scale_up": <int>, "scale_down": <int>, "launch_failures": <int>},
     # optional keys used by the binpacking policy (files without them stay valid):
     "unneeded": {<node name>: <unix seconds first seen unneeded>},    # written by k3s_scale_decision
     "backoff": {<node group>: {"until": <unix s>, "failures": <int>, "error_code": <str>}},
     "node_backoff": {<node name>: {"until": <unix s>, "reason": <str>}}}  # after a failed drain

Event ``direction`` is ``scale_up``, ``scale_down``, ``launch_failed`` (an EC2 launch of
``node_group`` failed with ``error_code``; :func:`record_launch_failure` backs the group off
300 s doubling per consecutive failure up to 1800 s) or ``drain_failed``
(:func:`record_drain_failure` skips the node for a while). A recorded ``scale_up`` of a node
group clears its backoff; a ``scale_down`` drops the removed nodes from ``unneeded`` and
``node_backoff``.

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
import json
import math
import os
import tempfile
import time

from ansible_collections.k3s.autoscaler.plugins.module_utils.binpack import backoff_seconds
from ansible_collections.k3s.autoscaler.plugins.module_utils.flock import LOCK_FAILED, OPEN_FAILED, acquire_flock, release_flock

STATE_VERSION = 1
DEFAULT_HISTORY_LIMIT = 100
DEFAULT_LOCK_TIMEOUT = 30.0
DIRECTIONS = ("scale_up", "scale_down")
FAILURE_DIRECTIONS = ("launch_failed", "drain_failed")
EVENT_DIRECTIONS = DIRECTIONS + FAILURE_DIRECTIONS


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
    return ("repair it with `make repair-state STATE=<path>` (scripts/repair_state.py) or the task "
            "k3s.autoscaler.k3s_scale_event with repair=true: both rename it to <path>.corrupt-<unix> and start a "
            "fresh state (cooldowns and pending intents are lost: check the cluster before the next run)")


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
        if ev.get("direction") not in EVENT_DIRECTIONS:
            bad("events[%d].direction must be scale_up or scale_down, got %r (failure events: launch_failed, "
                "drain_failed)" % (i, ev.get("direction")))
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
        for d in DIRECTIONS + ("launch_failures",):
            v = totals.get(d, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad("totals.%s must be an integer >= 0, got %r" % (d, v))
    unneeded = data.get("unneeded", {})
    if not isinstance(unneeded, dict) or not all(isinstance(k, str) and _is_time(v) for k, v in unneeded.items()):
        bad("'unneeded' must be an object {node name: unix seconds}")
    for key, fields in (("backoff", ("until", "failures")), ("node_backoff", ("until",))):
        section = data.get(key, {})
        if not isinstance(section, dict):
            bad("%r must be an object, got %s" % (key, type(section).__name__))
        for name, entry in section.items():
            if not isinstance(entry, dict) or not _is_time(entry.get("until")):
                bad("%s.%s.until must be unix seconds" % (key, name))
            if "failures" in fields:
                f = entry.get("failures")
                if not isinstance(f, int) or isinstance(f, bool) or f < 0:
                    bad("%s.%s.failures must be an integer >= 0, got %r" % (key, name, f))
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


def launch_failure_total(state):
    """Launch failures ever recorded (``totals.launch_failures``; 0 when absent)."""
    totals = state.get("totals")
    return int(totals.get("launch_failures", 0)) if isinstance(totals, dict) else 0


def _append(new, time_s, direction, count, instance_ids, node_names, reason, history_limit, extra=None):
    ev = {"time": float(time_s), "direction": direction, "count": int(count),
          "instance_ids": [str(x) for x in (instance_ids or [])],
          "node_names": [str(x) for x in (node_names or [])], "reason": reason or ""}
    ev.update(extra or {})
    new["events"].append(ev)
    new["events"] = new["events"][-history_limit:]


def _check_common(time_s, history_limit):
    if not _is_time(time_s):
        raise ValueError("time must be unix seconds >= 0, got %r" % (time_s,))
    if not isinstance(history_limit, int) or isinstance(history_limit, bool) or history_limit < 1:
        raise ValueError("history_limit must be an integer >= 1, got %r" % (history_limit,))


def record_launch_failure(state, node_group, error_code, time_s, instance_ids=None, reason="",
                          history_limit=DEFAULT_HISTORY_LIMIT):
    """Pure: a launch in ``node_group`` failed with EC2 ``error_code`` (e.g. InsufficientInstanceCapacity).

    ``backoff[node_group]`` becomes ``{"until": time_s + backoff, "failures": n, "error_code"}``
    where n counts consecutive failures (reset by a recorded scale_up of the group) and the
    backoff is 300 s * 2**(n-1), at most 1800 s (binpack.backoff_seconds). Appends a
    ``launch_failed`` event and increments ``totals.launch_failures``. Cooldowns are untouched.
    """
    _check_common(time_s, history_limit)
    if not node_group or not isinstance(node_group, str):
        raise ValueError("node_group must be a non-empty string, got %r" % (node_group,))
    new = copy.deepcopy(state)
    backoff = new.setdefault("backoff", {})
    failures = int((backoff.get(node_group) or {}).get("failures", 0)) + 1
    until = float(time_s) + backoff_seconds(failures)
    backoff[node_group] = {"until": until, "failures": failures, "error_code": str(error_code or "unknown")}
    _append(new, time_s, "launch_failed", 0, instance_ids, [], reason or "launch in node group %s failed: %s"
            % (node_group, error_code), history_limit, {"node_group": node_group, "error_code": str(error_code or "")})
    totals = event_totals(state)
    totals["launch_failures"] = launch_failure_total(state) + 1
    new["totals"] = totals
    return new


def record_drain_failure(state, node_name, time_s, skip_seconds, reason="", history_limit=DEFAULT_HISTORY_LIMIT):
    """Pure: draining ``node_name`` failed (node uncordoned by the caller); skip it for ``skip_seconds``.

    Sets ``node_backoff[node_name] = {"until": time_s + skip_seconds, "reason"}``, drops the
    node from ``unneeded`` (its unneeded time starts over) and appends a ``drain_failed`` event.
    """
    _check_common(time_s, history_limit)
    new = copy.deepcopy(state)
    new.setdefault("node_backoff", {})[node_name] = {"until": float(time_s) + float(skip_seconds),
                                                     "reason": reason or "drain_failed"}
    new.get("unneeded", {}).pop(node_name, None)
    _append(new, time_s, "drain_failed", 0, [], [node_name], reason, history_limit)
    return new


def set_unneeded(state, unneeded):
    """Pure: a new state whose ``unneeded`` map is ``unneeded`` ({node: first-seen unix seconds})."""
    new = copy.deepcopy(state)
    new["unneeded"] = dict((str(k), float(v)) for k, v in (unneeded or {}).items())
    return new


def _reject_constant(name):
    raise ValueError("non-finite number %s is not valid JSON" % name)


#: Loading refuses files/histories beyond these (a runaway writer or a wrong file, never a real state) and
#: timestamps further in the future than MAX_FUTURE_SKEW seconds (corruption or a badly wrong clock: such a
#: cooldown would block scaling for years). Smaller skews are handled by the policy (cooldown fully active).
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_EVENTS = 10000
MAX_FUTURE_SKEW = 86400.0


def _check_sane(data, path, now):
    events = data["events"]
    if len(events) > MAX_EVENTS:
        raise StateError(path, "implausible: %d events in the history (at most %d are ever kept); %s"
                         % (len(events), MAX_EVENTS, _repair_hint()))
    limit = now + MAX_FUTURE_SKEW
    stamps = [(k, data.get(k)) for k in ("last_scale_up", "last_scale_down")]
    stamps += [("events[%d].time" % i, ev["time"]) for i, ev in enumerate(events)]
    stamps += [("unneeded.%s" % k, v) for k, v in (data.get("unneeded") or {}).items()]
    for what, v in stamps:
        if v is not None and v > limit:
            raise StateError(path, "%s %r is %.0f s in the future (more than %d s ahead of this host's clock "
                                   "%.0f): a corrupt file or a wrong clock; fix the clock, or %s"
                             % (what, v, v - now, MAX_FUTURE_SKEW, now, _repair_hint()))


def _read(path):
    """Parse and validate the file; None when it does not exist."""
    try:
        if os.path.getsize(path) > MAX_STATE_BYTES:
            raise StateError(path, "implausible size %d bytes (more than %d); %s"
                             % (os.path.getsize(path), MAX_STATE_BYTES, _repair_hint()))
    except OSError:
        pass  # missing/unreadable: reported below
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateError(path, "is a directory, not a JSON file; point state_file at a file path")
    except UnicodeDecodeError as e:
        raise StateError(path, "is corrupt (not UTF-8 text: %s); %s" % (e, _repair_hint()))
    except OSError as e:
        raise StateError(path, "cannot be read (%s); check its permissions" % e.strerror)
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as e:
        raise StateError(path, "is corrupt (not valid JSON: %s); %s" % (e, _repair_hint()))
    validate_state(data, path)
    _check_sane(data, path, time.time())
    return data


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
        self.fd = acquire_flock(self.lock_path, self.timeout, self._error)
        return self

    def _error(self, stage, e):
        if stage == OPEN_FAILED:
            return StateError(self.path, "cannot open lock file %s (%s)" % (self.lock_path, e.strerror))
        if stage == LOCK_FAILED:
            return StateError(self.path, "cannot lock %s (%s)" % (self.lock_path, e.strerror))
        return StateError(self.path, "could not lock %s within %s s: another autoscaler run "
                                     "holds it; wait for it to finish" % (self.lock_path, self.timeout))

    def __exit__(self, *exc):
        release_flock(self.fd)
        return False


def _fsync_dir(d):
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path, data):
    """Write ``data`` as JSON: temp file in same dir (0600), flush, fsync, os.replace, fsync dir."""
    _ensure_dir(path)
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text_atomically(path, text, mode=0o600):
    """Replace ``path`` with ``text``, never in place: a hidden temp file ``.<name>.*.tmp`` in the same
    (existing) directory with ``mode``, flushed and fsync'ed, ``os.replace``d onto ``path``, then the directory
    fsync'ed. The temp file is removed on any error."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
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
    :raises StateError: when ``path`` is a directory (a state file path was meant; nothing is moved).
    """
    if os.path.isdir(path):
        raise StateError(path, "is a directory, not a state file; nothing was moved. Give the state file's path "
                               "(autoscale_state_file, e.g. run/local/state.json)")
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
                 history_limit=DEFAULT_HISTORY_LIMIT, node_group=None):
    """Pure: return a new state with the event appended and last_scale_<direction> advanced.

    ``last_scale_up``/``last_scale_down`` become max(previous, time_s), so a
    late (back-dated) record never moves a cooldown backwards. ``events`` is
    trimmed to the newest ``history_limit`` entries. A scale_up with
    ``node_group`` clears that group's launch backoff; a scale_down drops
    ``node_names`` from ``unneeded`` and ``node_backoff``.
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
    if node_group:
        new["events"][-1]["node_group"] = str(node_group)
    if direction == "scale_up" and node_group and isinstance(new.get("backoff"), dict):
        new["backoff"].pop(node_group, None)
    if direction == "scale_down":
        for n in node_names or []:
            for key in ("unneeded", "node_backoff"):
                if isinstance(new.get(key), dict):
                    new[key].pop(str(n), None)
    new["totals"] = event_totals(state)
    new["totals"][direction] += 1
    if launch_failure_total(state):
        new["totals"]["launch_failures"] = launch_failure_total(state)
    new["events"] = new["events"][-history_limit:]
    return new
