#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_run_lock
short_description: Take or release the k3s autoscaler's run lock (one run per state file at a time)
description:
  - O(state=acquired) takes the run lock at O(path). When another live run holds it, the task does B(not) fail;
    it returns RV(status=held) and a RV(msg) starting with C(another run holds the lock), so the play can print
    it and end for that host (C(ansible.builtin.meta) C(end_host)) with exit code 0.
  - "The lock file holds the holder: C({pid, host, pid_start, started, token, ttl}). C(pid) is the run's
    C(ansible-playbook) process (the outermost C(ansible*) ancestor of the module process, or O(holder_pid)),
    C(pid_start) its start time in clock ticks since boot (C(/proc/<pid>/stat) field 22), C(started) unix
    seconds. An exclusive C(fcntl.flock) on the same file serialises the check-and-write."
  - "A stale lock, left by a killed run, is detected and taken over; RV(recovered_stale) names the dead pid
    and RV(msg) says C(recovered stale lock of pid N). Stale means the file names a pid on this host that no
    longer exists (or was recycled: different start time), or the record is torn. When liveness cannot be
    checked (another host, no pid), the lock expires O(ttl) seconds after it was taken."
  - O(state=released) empties the lock file if O(token) (from the acquire) still holds it; another run's lock
    is never touched (RV(status=not_owner)).
  - A missing directory is created with mode 0700; the lock file is mode 0600.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  path:
    description: Lock file path, normally C(<state_file>.runlock) next to the autoscaler state file.
    type: path
    required: true
  state:
    description: C(acquired) takes the lock, C(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  token:
    description: For O(state=released), the RV(token) returned by the acquire.
    type: str
  ttl:
    description:
      - Seconds after which a lock whose holder cannot be checked for liveness (another host, unknown pid)
        is considered expired. Must be longer than a run.
    type: float
    default: 3600
  holder_pid:
    description: Process that owns the run (default - the outermost C(ansible*) ancestor process).
    type: int
notes:
  - Check mode takes no lock and writes nothing (a dry run only reads, so it may overlap a real run);
    it returns RV(status=check_mode) and the current holder, if any, in RV(holder).
"""

EXAMPLES = r"""
- name: Take the run lock
  k3s.autoscaler.k3s_run_lock:
    path: /var/lib/k3s-autoscaler/state.json.runlock
  register: run_lock

- name: Another run is active
  when: run_lock.status == 'held'
  block:
    - name: Say so
      ansible.builtin.debug:
        msg: "skipped: lock held - {{ run_lock.msg }}"
    - name: End this host's run cleanly
      ansible.builtin.meta: end_host

- name: Release the run lock
  k3s.autoscaler.k3s_run_lock:
    path: /var/lib/k3s-autoscaler/state.json.runlock
    state: released
    token: "{{ run_lock.token }}"
"""

RETURN = r"""
status:
  description:
    - C(acquired) (this run holds the lock now), C(held) (another live run holds it; do nothing),
      C(released), C(not_held) (nothing to release), C(not_owner) (another run holds it; left alone),
      C(check_mode).
  returned: always
  type: str
  sample: acquired
msg:
  description: What happened, naming the lock file and the holder.
  returned: always
  type: str
  sample: "another run holds the lock /var/lib/k3s-autoscaler/state.json.runlock: pid 4242 on host ctl since
    2026-01-01T00:00:00Z; this run exits without acting (skipped: lock held); it is still running on this host;
    the next run after it ends will act"
token:
  description: The lock token (pass it to O(state=released)); null unless RV(status=acquired).
  returned: always
  type: str
holder:
  description: The holder record C({pid, host, pid_start, started (unix seconds), token, ttl (seconds)}) - ours
    after an acquire, the other run's when RV(status=held); null when free.
  returned: always
  type: dict
holder_status:
  description: For RV(status=held) or in check mode, C(alive), C(unknown) (cannot check, within ttl), C(dead),
    C(expired), C(torn) or C(free).
  returned: always
  type: str
recovered_stale:
  description: When a stale lock was taken over, C({pid, host, started, reason}) of the dead holder; else null.
  returned: always
  type: dict
lock_file:
  description: O(path).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k3s.autoscaler.plugins.module_utils.lock import LockError, acquire, inspect, release


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            token=dict(type="str", no_log=False),
            ttl=dict(type="float", default=3600),
            holder_pid=dict(type="int"),
        ),
        required_if=[("state", "released", ("token",))],
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, lock_file=p["path"], token=None, holder=None, holder_status=None,
                  recovered_stale=None)
    try:
        if module.check_mode:
            seen = inspect(p["path"])
            result.update(status="check_mode", holder=seen["holder"], holder_status=seen["status"],
                          msg="check mode: no run lock taken (lock %s: %s)" % (p["path"], seen["status"]))
            module.exit_json(**result)
        if p["ttl"] <= 0:
            module.fail_json(msg="ttl must be a number of seconds > 0, got %s" % p["ttl"], **result)
        if p["state"] == "acquired":
            res = acquire(p["path"], holder_pid=p["holder_pid"], ttl=p["ttl"])
            result.update(status=res["status"], msg=res["msg"], holder=res["holder"])
            if res["status"] == "acquired":
                result.update(changed=True, token=res["token"], recovered_stale=res["recovered_stale"])
                if res["recovered_stale"]:
                    module.warn(res["msg"])
            else:
                result["holder_status"] = res["holder_status"]
        else:
            res = release(p["path"], p["token"])
            result.update(status=res["status"], msg=res["msg"], holder=res["holder"],
                          changed=res["status"] == "released")
    except LockError as e:
        module.fail_json(msg=str(e), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
