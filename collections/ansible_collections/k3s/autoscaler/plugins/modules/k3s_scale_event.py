#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_scale_event
short_description: Record a completed scale action in the k3s autoscaler state file
description:
  - Records a scale_up or scale_down B(after it succeeded) (call it after the EC2 launch / terminate task),
    so that M(k3s.autoscaler.k3s_scale_decision) can enforce cooldowns.
  - Sets C(last_scale_up) or C(last_scale_down) to O(time) (never moves it backwards) and appends an event to the
    bounded history (newest last, at most O(history_limit) events).
  - "The write is atomic and serialised: exclusive C(flock) on C(<state_file>.lock), temp file in the same
    directory, fsync, C(os.replace), fsync of the directory. The file is mode 0600; a missing directory is
    created with mode 0700."
  - A corrupt or wrong-schema state file fails the task (naming the path and the problem) and is never silently
    reset; set O(repair=true) to move it aside first.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  state_file:
    description: Path of the autoscaler JSON state file. Created if missing.
    type: path
    required: true
  direction:
    description:
      - Which action completed, or which failed.
      - C(launch_failed) - an EC2 launch in O(node_group) failed with O(error_code); the group is backed off
        300 s, doubling per consecutive failure up to 1800 s (state C(backoff)); C(totals.launch_failures) is
        incremented; cooldown timestamps are untouched. The C(binpacking) policy skips a backed-off group.
      - C(drain_failed) - draining O(node_names) failed (uncordon it first); the node is skipped by the
        C(binpacking) scale-down for O(skip_seconds) (state C(node_backoff)).
    type: str
    required: true
    choices: [scale_up, scale_down, launch_failed, drain_failed]
  node_group:
    description:
      - Node group of the action. Required for C(launch_failed); a recorded C(scale_up) clears the group's backoff.
    type: str
  error_code:
    description: EC2 error code of a C(launch_failed) (the C(error.code) of the failed task, e.g. InsufficientInstanceCapacity).
    type: str
  skip_seconds:
    description: For C(drain_failed), seconds the node is skipped by scale-down (use the scale_down_unneeded_time).
    type: float
    default: 600
  count:
    description:
      - Number of nodes added or removed (integer >= 1).
      - Defaults to the length of O(instance_ids), else of O(node_names); one of them is needed when omitted.
      - Not used for C(launch_failed) and C(drain_failed).
    type: int
  instance_ids:
    description: EC2 instance_ids launched (scale_up) or terminated (scale_down).
    type: list
    elements: str
    default: []
  node_names:
    description: Kubernetes node names added or removed.
    type: list
    elements: str
    default: []
  reason:
    description: Why it was done, normally the C(reason) returned by M(k3s.autoscaler.k3s_scale_decision).
    type: str
    default: ""
  time:
    description: When the action completed, unix seconds (float). Defaults to now. More than a day ahead of the
      host's clock is refused (the state file rejects such timestamps).
    type: float
  history_limit:
    description: Keep at most this many events (oldest dropped first); integer >= 1.
    type: int
    default: 100
  repair:
    description:
      - The repair flag. When the state file is corrupt or has the wrong schema, rename it to
        C(<state_file>.corrupt-<unix>) (returned as RV(backup_file)) and start from a fresh state before recording.
      - A valid file is never touched by this flag. In check mode nothing is moved.
    type: bool
    default: false
notes:
  - Supports check mode (reports C(changed=true) and the would-be RV(state), writes nothing) and diff mode
    (before/after of C(last_scale_up) and C(last_scale_down), plus C(backoff) and C(node_backoff) for failures).
seealso:
  - module: k3s.autoscaler.k3s_scale_decision
"""

EXAMPLES = r"""
- name: Record the scale-up after the instances launched
  k3s.autoscaler.k3s_scale_event:
    state_file: /var/lib/k3s-autoscaler/state.json
    direction: scale_up
    instance_ids: "{{ launched.instance_ids }}"
    reason: "{{ decision.reason }}"
  when: launched is changed

- name: Record a failed launch (backs the node group off)
  k3s.autoscaler.k3s_scale_event:
    state_file: /var/lib/k3s-autoscaler/state.json
    direction: launch_failed
    node_group: general
    error_code: "{{ launch.error.code | default('unknown') }}"

- name: Repair a corrupt state file while recording
  k3s.autoscaler.k3s_scale_event:
    state_file: /var/lib/k3s-autoscaler/state.json
    direction: scale_down
    count: 1
    node_names: [worker-3]
    repair: true
"""

RETURN = r"""
state:
  description:
    - The new state (in check mode, the state that would be written).
    - "C({version: 1, last_scale_up: unix seconds|null, last_scale_down: unix seconds|null,
      events: [{time, direction, count, instance_ids, node_names, reason}],
      totals: {scale_up: int, scale_down: int}})"
    - C(totals) counts recorded actions per direction and is never trimmed (read by M(k3s.autoscaler.k3s_run_metrics)).
    - "Optional keys: C(backoff) ({node group: {until, failures, error_code}}), C(node_backoff)
      ({node: {until, reason}}), C(unneeded) ({node: unix seconds}), C(totals.launch_failures)."
  returned: always
  type: dict
  sample: {version: 1, last_scale_up: 1700000000.0, last_scale_down: null,
           events: [{time: 1700000000.0, direction: scale_up, count: 1, instance_ids: [i-0abc],
                     node_names: [], reason: "scale_up: 7 pending pods > threshold 5 and 3 nodes < max_nodes 10"}],
           totals: {scale_up: 1, scale_down: 0}}
event:
  description: The event recorded.
  returned: always
  type: dict
backup_file:
  description: Where the corrupt file was moved by O(repair) (in check mode, null; nothing is moved).
  returned: when O(repair=true) found a corrupt file
  type: str
  sample: /var/lib/k3s-autoscaler/state.json.corrupt-1700000000
"""

import time as _time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (
    MAX_FUTURE_SKEW, StateError, default_state, load_state, record_drain_failure, record_event, record_launch_failure,
    repair_state, update_state)


def _times(state):
    return {"last_scale_up": state.get("last_scale_up"), "last_scale_down": state.get("last_scale_down")}


def _diff_view(state, failure):
    view = _times(state)
    if failure:
        view.update(backoff=state.get("backoff") or {}, node_backoff=state.get("node_backoff") or {})
    return view


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state_file=dict(type="path", required=True),
            direction=dict(type="str", required=True,
                           choices=["scale_up", "scale_down", "launch_failed", "drain_failed"]),
            node_group=dict(type="str"),
            error_code=dict(type="str"),
            skip_seconds=dict(type="float", default=600),
            count=dict(type="int"),
            instance_ids=dict(type="list", elements="str", default=[]),
            node_names=dict(type="list", elements="str", default=[]),
            reason=dict(type="str", default=""),
            time=dict(type="float"),
            history_limit=dict(type="int", default=100),
            repair=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["state_file"]
    count = p["count"]
    failure = p["direction"] in ("launch_failed", "drain_failed")
    if p["direction"] == "launch_failed" and not p["node_group"]:
        module.fail_json(msg="node_group: direction=launch_failed needs the node group whose launch failed")
    if p["direction"] == "drain_failed" and len(p["node_names"]) != 1:
        module.fail_json(msg="node_names: direction=drain_failed needs exactly one node name (the node that failed "
                             "to drain), got %d" % len(p["node_names"]))
    if failure:
        count = 0
    elif count is None:
        count = len(p["instance_ids"]) or len(p["node_names"])
        if not count:
            module.fail_json(msg="count: set count, or pass instance_ids or node_names so it can be derived")
    if count < 1 and not failure:
        module.fail_json(msg="count must be an integer >= 1 (nodes added or removed), got %d" % count)
    if p["history_limit"] < 1:
        module.fail_json(msg="history_limit must be an integer >= 1, got %d" % p["history_limit"])
    when = _time.time() if p["time"] is None else p["time"]
    if not when >= 0 or when == float("inf"):
        module.fail_json(msg="time must be finite unix seconds >= 0, got %r" % when)
    if when > _time.time() + MAX_FUTURE_SKEW:
        module.fail_json(msg="time %r is more than %d s in the future; the state file would become unreadable "
                             "(omit time for now)" % (when, MAX_FUTURE_SKEW))

    seen = {}

    def apply(state):
        seen["before"] = _diff_view(state, failure)
        if p["direction"] == "launch_failed":
            return record_launch_failure(state, p["node_group"], p["error_code"], when, instance_ids=p["instance_ids"],
                                         reason=p["reason"], history_limit=p["history_limit"])
        if p["direction"] == "drain_failed":
            return record_drain_failure(state, p["node_names"][0], when, p["skip_seconds"], reason=p["reason"],
                                        history_limit=p["history_limit"])
        return record_event(state, p["direction"], count, when, instance_ids=p["instance_ids"],
                            node_names=p["node_names"], reason=p["reason"], history_limit=p["history_limit"],
                            node_group=p["node_group"])

    result = dict(changed=True)
    try:
        try:
            before = load_state(path)
        except StateError:
            if not p["repair"]:
                raise
            before = default_state()
            if module.check_mode:
                result["backup_file"] = None
                module.warn("check mode: %s is corrupt and would be moved aside by repair" % path)
            else:
                result["backup_file"] = repair_state(path)
        if module.check_mode:
            after = apply(before)
        else:
            # re-read under the lock: another run may have written meanwhile
            after = update_state(path, apply)
    except StateError as e:
        module.fail_json(msg=str(e), state_file=path)
    result["state"] = after
    result["event"] = after["events"][-1]
    if module._diff:
        result["diff"] = dict(before=seen.get("before", _diff_view(before, failure)), after=_diff_view(after, failure),
                              before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
