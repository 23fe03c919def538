# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The autoscaler's run lock: one ``ansible-playbook playbooks/autoscale.yml`` run per state file at a time.

A run lasts many Ansible tasks, each its own process, so no single process can hold an ``flock`` for the
whole run. The lock is therefore an *owner record* in a lock file, and ``fcntl.flock`` (exclusive, on the
same file) only serialises the read-check-write of that record:

* lock file: normally ``<state_file>.runlock`` in the state directory; a missing directory is created with
  mode 0700; the file itself is created with mode 0600 and never deleted (deleting an flock'ed file races).
* free: the file is empty (or missing).
* held: the file holds one JSON object, the *holder*::

      {"pid": <int|null>, "host": <str>, "pid_start": <str|null>, "started": <unix seconds>,
       "token": <uuid hex>, "ttl": <seconds>}

  ``pid`` is the run's owning process - by default the outermost ``ansible``/``ansible-playbook``
  ancestor of the module process (:func:`find_run_pid`); ``pid_start`` is that process's start time in
  clock ticks since boot (field 22 of ``/proc/<pid>/stat``), so a recycled pid is not mistaken for the
  holder. ``token`` is returned by :func:`acquire` and must be passed to :func:`release`.
* stale: the holder is dead. On the same ``host``: ``/proc/<pid>`` is gone or its start time differs. A
  torn / unparseable record is also stale (it can only be left by a writer killed mid-write, because the
  writer holds the flock while writing). On another host (or when ``pid`` is unknown) liveness cannot be
  checked; the record then expires ``ttl`` seconds after ``started``. :func:`acquire` takes over a stale or
  expired lock and reports it in ``recovered_stale``.

Nothing here sleeps or retries: the second run gets ``status="held"`` at once and is expected to exit
cleanly (the role ends the play for that host with ``meta: end_host``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import math
import os
import socket
import time
import uuid

from ansible_collections.k3s.autoscaler.plugins.module_utils.flock import OPEN_FAILED, acquire_flock, release_flock

DEFAULT_TTL = 3600.0
FLOCK_TIMEOUT = 10.0


class LockError(Exception):
    """The lock file cannot be used (permissions, not a file, ...). The message names the path and the fix."""


def lock_path_for(state_file):
    """The run-lock path that belongs to ``state_file``: ``<state_file>.runlock``."""
    return state_file + ".runlock"


def pid_start_time(pid):
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if no such pid."""
    try:
        with open("/proc/%d/stat" % int(pid), "r") as f:
            stat = f.read()
    except (OSError, ValueError, TypeError):
        return None
    # field 2 (comm) may contain spaces and parentheses: split after the LAST ')'
    rest = stat.rsplit(")", 1)[-1].split()
    # rest[0] is field 3 (state); field 22 is rest[19]
    return rest[19] if len(rest) > 19 else None


def _parent_pid(pid):
    try:
        with open("/proc/%d/stat" % pid, "r") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _is_ansible(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return False
    return any(os.path.basename(a).startswith("ansible") for a in argv[:3])


def find_run_pid(start=None):
    """The pid that owns this run: the outermost ancestor of ``start`` (default: our parent) whose command
    line is an ``ansible*`` program (``ansible-playbook``, ``ansible``). Ansible's per-task workers are forks
    of the main process with the same command line, so the outermost one is the main process, which lives for
    the whole run. None when there is no such ancestor (e.g. the module runs on a remote host)."""
    pid = os.getppid() if start is None else start
    found = None
    seen = 0
    while pid and pid > 1 and seen < 64:
        if _is_ansible(pid):
            found = pid
        pid = _parent_pid(pid)
        seen += 1
    return found


def _ensure_dir(path):
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        try:
            os.makedirs(d, mode=0o700)
            os.chmod(d, 0o700)  # makedirs' mode is masked by the umask
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise LockError("cannot create the lock directory %s (%s); create it (mode 0700) or set the "
                                "lock path to a writable directory" % (d, e.strerror))


class _Flock(object):
    """Exclusive flock on the lock file for one read-check-write (bounded wait)."""

    def __init__(self, path, timeout=FLOCK_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        _ensure_dir(self.path)
        self.fd = acquire_flock(self.path, self.timeout, self._error)
        return self

    def _error(self, stage, e):
        if stage == OPEN_FAILED:
            return LockError("cannot open the lock file %s (%s); check its permissions" % (self.path, e.strerror))
        return LockError("cannot flock the lock file %s (%s)" % (self.path, e.strerror or e))

    def read(self):
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(self.fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)

    def write(self, data):
        raw = b"" if data is None else (json.dumps(data, sort_keys=True) + "\n").encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        if raw:
            os.write(self.fd, raw)
        os.fsync(self.fd)

    def __exit__(self, *exc):
        release_flock(self.fd)
        return False


def _parse(raw):
    """(holder dict | None, torn: bool) from the lock file bytes."""
    if not raw.strip():
        return None, False
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None, True
    if not isinstance(data, dict) or not data.get("token"):
        return None, True
    return data, False


def holder_status(holder, now=None, host=None):
    """``alive``, ``dead`` (same host, pid gone or recycled), ``expired`` (liveness unknown and older than its
    ttl) or ``unknown`` (another host / no pid, within its ttl) for a holder record."""
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    pid = holder.get("pid")
    if holder.get("host") == host and isinstance(pid, int) and pid > 0:
        start = pid_start_time(pid)
        if start is None:
            return "dead"
        if holder.get("pid_start") is not None and str(holder["pid_start"]) != start:
            return "dead"
        return "alive"
    started = holder.get("started")
    ttl = holder.get("ttl", DEFAULT_TTL)
    if isinstance(started, (int, float)) and isinstance(ttl, (int, float)) and now - started > ttl:
        return "expired"
    return "unknown"


def _fmt_seconds(v):
    """``100`` for 100.0; anything that is not a number as it is (a hand-edited record)."""
    return "%g" % v if isinstance(v, (int, float)) and not isinstance(v, bool) else "%s" % (v,)


def describe_holder(holder):
    """One line naming the holder: ``pid 123 on host h since 2026-01-01T00:00:00Z``."""
    started = holder.get("started")
    when = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
            if isinstance(started, (int, float)) else "an unknown time")
    return "pid %s on host %s since %s" % (holder.get("pid"), holder.get("host"), when)


def inspect(path):
    """Read-only view (no flock, nothing created): ``{"holder": dict|None, "status": free|alive|dead|expired|
    unknown|torn}``."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {"holder": None, "status": "free"}
    except OSError as e:
        raise LockError("cannot read the lock file %s (%s); check its permissions" % (path, e.strerror))
    holder, torn = _parse(raw)
    if torn:
        return {"holder": None, "status": "torn"}
    if holder is None:
        return {"holder": None, "status": "free"}
    return {"holder": holder, "status": holder_status(holder)}


def acquire(path, holder_pid=None, ttl=DEFAULT_TTL, now=None, host=None):
    """Take the run lock at ``path``.

    :param holder_pid: the process whose life bounds the run (default :func:`find_run_pid`; None is allowed,
        then only ``ttl`` can expire the lock).
    :param ttl: seconds after which a lock whose holder's liveness cannot be checked is expired (> 0).
    :returns: ``{"status": "acquired", "token", "holder", "recovered_stale": dict|None, "msg"}`` or
        ``{"status": "held", "holder", "holder_status", "msg"}`` (``msg`` starts with "another run holds
        the lock").
    :raises LockError: the lock file cannot be opened/locked.
    """
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not math.isfinite(ttl) or ttl <= 0:
        raise LockError("ttl must be a number of seconds > 0, got %r" % (ttl,))
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    if holder_pid is None:
        holder_pid = find_run_pid()
    with _Flock(path) as fl:
        current, torn = _parse(fl.read())
        recovered = None
        if torn:
            recovered = {"pid": None, "host": None, "started": None, "reason": "torn lock record"}
        elif current is not None:
            status = holder_status(current, now=now, host=host)
            if status in ("alive", "unknown"):
                if status == "alive":
                    # same host, and that pid is the process that took the lock: a real concurrent run
                    hint = "it is still running on this host; the next run after it ends will act"
                else:
                    hint = ("its process cannot be checked from here (another host, or no pid recorded): if no "
                            "autoscaler run is active there, delete "
                            "the file's contents or wait %s s for the lock to expire" % _fmt_seconds(current.get("ttl", DEFAULT_TTL)))
                return {"status": "held", "holder": current, "holder_status": status,
                        "msg": "another run holds the lock %s: %s; this run exits without acting (skipped: lock "
                               "held); %s" % (path, describe_holder(current), hint)}
            recovered = {"pid": current.get("pid"), "host": current.get("host"), "started": current.get("started"),
                         "reason": "holder process is gone" if status == "dead"
                         else "lock older than its ttl of %s s" % current.get("ttl", DEFAULT_TTL)}
        holder = {"pid": holder_pid, "host": host, "pid_start": pid_start_time(holder_pid) if holder_pid else None,
                  "started": float(now), "token": uuid.uuid4().hex, "ttl": float(ttl)}
        fl.write(holder)
    msg = "acquired the run lock %s for pid %s" % (path, holder_pid)
    if recovered:
        msg += "; recovered stale lock of pid %s (%s)" % (recovered["pid"], recovered["reason"])
    return {"status": "acquired", "token": holder["token"], "holder": holder, "recovered_stale": recovered,
            "msg": msg}


def release(path, token):
    """Release the lock if ``token`` holds it. Returns ``{"status": "released"|"not_held"|"not_owner",
    "holder": dict|None, "msg"}``; never removes another run's lock."""
    if not token:
        raise LockError("token is required to release the run lock %s (the token returned by acquire)" % path)
    if not os.path.exists(path):
        return {"status": "not_held", "holder": None, "msg": "the run lock %s is not held" % path}
    with _Flock(path) as fl:
        current, torn = _parse(fl.read())
        if current is None and not torn:
            return {"status": "not_held", "holder": None, "msg": "the run lock %s is not held" % path}
        if torn or current.get("token") != token:
            return {"status": "not_owner", "holder": current,
                    "msg": "the run lock %s is held by another run (%s); left alone"
                           % (path, describe_holder(current) if current else "torn record")}
        fl.write(None)
    return {"status": "released", "holder": current, "msg": "released the run lock %s" % path}
