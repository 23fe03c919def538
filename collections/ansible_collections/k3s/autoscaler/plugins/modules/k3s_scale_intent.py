#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_scale_intent
short_description: Announce a k3s autoscaler action in the state file before doing it, and resolve interrupted ones
description:
  - Makes a run that is killed at any point safe to rerun. Each action is written to the state file
    (O(state_file), atomic write under its lock) B(before) it starts, and every run first resolves what an
    interrupted run left.
  - "O(action=begin_launch) - guard, then write C(pending_launch) C({launch_id, count, node_group, created, reason})
    before RunInstances. The guard counts the node group's non-terminated instances in O(instances) (pending
    included; tag C(k3s-autoscaler/node-group)) and caps the launch at O(max_nodes) minus that number; it refuses
    while the node group is backed off after capacity errors (state C(backoff), written by
    M(k3s.autoscaler.k3s_scale_event) C(direction=launch_failed)). Tag the launched instances
    C(k3s-autoscaler/launch-id) with the returned RV(launch_id)."
  - O(action=end_launch) - record the C(scale_up) of O(instance_ids) and clear C(pending_launch) in one write.
    O(action=abort_launch) - clear it when RunInstances definitely launched nothing (an EC2 error response).
  - "O(action=reconcile) (at the start of every run) - a C(pending_launch) whose launch_id tags instances in
    O(instances) is completed (scale_up recorded, record cleared); with no such instance it is kept and the run
    must hold (C(report.hold)) until O(launch_timeout) seconds after it was written, then cleared (the launch never
    happened). A C(pending_removal) whose instance is no longer live is completed (scale_down recorded); if the
    instance is still live the node must be uncordoned (C(report.removal=uncordon)), then O(action=clear_removal)."
  - "O(action=begin_removal) - guard (refuses when removing O(instance_id) would leave fewer than O(min_nodes)
    non-terminated instances in the node group), then write C(pending_removal) C({node, instance_id, cordoned_at,
    reason, node_group}) before the node is cordoned. With O(node_groups) the guard counts the group the instance
    is tagged with (C(k3s-autoscaler/node-group) in O(instances)) against that group's C(min_nodes), and refuses an
    instance tagged with no group of O(node_groups); without it, O(node_group) and O(min_nodes).
    O(action=end_removal) records the C(scale_down) (with the node group of the pending removal) and clears it;
    O(action=clear_removal) clears it (after an uncordon)."
  - A corrupt state file fails the task naming the path and the repair (C(k3s_scale_event repair=true)).
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  state_file:
    description: Path of the autoscaler JSON state file.
    type: path
    required: true
  action:
    description: The step (see the description).
    type: str
    required: true
    choices: [reconcile, begin_launch, end_launch, abort_launch, begin_removal, end_removal, clear_removal]
  instances:
    description:
      - The cluster's EC2 instances in any state, the C(instances) return of M(k3s.autoscaler.ec2_instance_info) or
        amazon.aws.ec2_instance_info filtered by the C(k3s-autoscaler/cluster) tag (each with C(instance_id),
        C(state.name), C(tags)). Required for O(action=reconcile), O(action=begin_launch), O(action=begin_removal).
    type: list
    elements: dict
  node_group:
    description:
      - Node group (value of the C(k3s-autoscaler/node-group) tag) of the launch, and of the removal guard when
        O(node_groups) is not given.
    type: str
    default: default
  node_groups:
    description:
      - For O(action=begin_removal) with several node groups, the groups as the role's C(autoscale_node_groups)
        lists them (C({name, min_nodes, ...}); other keys ignored). The guard then takes the instance's own
        group from its C(k3s-autoscaler/node-group) tag and that group's C(min_nodes) (instances), instead of
        O(node_group) / O(min_nodes). Empty or omitted - one group, O(node_group) / O(min_nodes).
    type: list
    elements: dict
    default: []
  count:
    description: For O(action=begin_launch), the nodes the decision wants to add (integer >= 1).
    type: int
  max_nodes:
    description: For O(action=begin_launch), the most non-terminated instances the node group may have.
    type: int
  min_nodes:
    description:
      - For O(action=begin_removal), the fewest non-terminated instances the node group may keep (instances).
        With O(node_groups), the group's own C(min_nodes) is used instead.
    type: int
  launch_id:
    description: For O(action=end_launch) and O(action=abort_launch), the RV(launch_id) of the begin_launch.
    type: str
  instance_ids:
    description: For O(action=end_launch), the instance_ids launched.
    type: list
    elements: str
    default: []
  node:
    description: For the removal actions, the Kubernetes node name.
    type: str
  instance_id:
    description: For the removal actions, the node's EC2 instance_id (from its providerID).
    type: str
  reason:
    description: Why (normally the decision's C(reason)); kept in the record and the event.
    type: str
    default: ""
  launch_timeout:
    description:
      - Seconds after which an unresolved C(pending_launch) (no instance carries its launch_id) is cleared as a launch
        that never happened. Until then the run holds. Longer than EC2's describe lag, shorter than a cooldown.
    type: float
    default: 300
notes:
  - Supports check mode - computes the same result from the current file and writes nothing.
seealso:
  - module: k3s.autoscaler.k3s_scale_event
  - module: k3s.autoscaler.k3s_run_lock
"""

EXAMPLES = r"""
- name: Resolve intents left by an interrupted run
  k3s.autoscaler.k3s_scale_intent:
    state_file: /var/lib/k3s-autoscaler/state.json
    action: reconcile
    instances: "{{ ec2.instances }}"
    node_group: general
  register: reconciled

- name: Guard a removal in the candidate's own node group and announce it before the cordon
  k3s.autoscaler.k3s_scale_intent:
    state_file: /var/lib/k3s-autoscaler/state.json
    action: begin_removal
    instances: "{{ ec2.instances }}"
    node_groups:
      - {name: general, instance_type: m5.large, min_nodes: 1, max_nodes: 10}
      - {name: batch, instance_type: c5.xlarge, min_nodes: 0, max_nodes: 5}
    min_nodes: 1
    node: "{{ decision.candidates[0].name }}"
    instance_id: "{{ decision.candidates[0].instance_id }}"
  register: removal

- name: Guard and announce the launch
  k3s.autoscaler.k3s_scale_intent:
    state_file: /var/lib/k3s-autoscaler/state.json
    action: begin_launch
    instances: "{{ ec2.instances }}"
    node_group: general
    count: "{{ decision.count }}"
    max_nodes: 10
  register: intent

- name: Record the launch
  k3s.autoscaler.k3s_scale_intent:
    state_file: /var/lib/k3s-autoscaler/state.json
    action: end_launch
    launch_id: "{{ intent.launch_id }}"
    instance_ids: "{{ launched.instance_ids }}"
"""

RETURN = r"""
proceed:
  description: For begin_launch / begin_removal, whether the action may go ahead (the record was written).
  returned: always
  type: bool
count:
  description: For begin_launch, the nodes to launch after the max_nodes cap (0 when not proceeding).
  returned: always
  type: int
live:
  description: Non-terminated instances of the node group in O(instances) (pending included); null when not given.
  returned: always
  type: int
launch_id:
  description: The launch_id to tag the instances with (C(k3s-autoscaler/launch-id)); null when none.
  returned: always
  type: str
node_group:
  description:
    - For begin_removal, the node group the guard counted (the instance's tag with O(node_groups), else
      O(node_group)); null when the instance has no configured group.
  returned: always
  type: str
min_nodes:
  description: For begin_removal, the min_nodes the guard applied (instances); null when not guarded.
  returned: always
  type: int
reason:
  description: Why a guard refused or capped (C(no_action - ...)), else empty.
  returned: always
  type: str
report:
  description:
    - "For reconcile, C({launch: none|completed|waiting|expired, launch_id, launched_ids, removal:
      none|completed|uncordon, node, instance_id, hold (bool), messages: [str]})."
  returned: always
  type: dict
intents:
  description: The C(pending_launch) and C(pending_removal) records after the step (null when none).
  returned: always
  type: dict
"""

import time as _time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k3s.autoscaler.plugins.module_utils import intents as it
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import StateError, load_state, update_state

NEEDS = {
    "reconcile": ("instances",),
    "begin_launch": ("instances", "count", "max_nodes"),
    "end_launch": ("launch_id",),
    "abort_launch": ("launch_id",),
    "begin_removal": ("instances", "min_nodes", "node", "instance_id"),
    "end_removal": ("node", "instance_id"),
    "clear_removal": (),
}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state_file=dict(type="path", required=True),
            action=dict(type="str", required=True, choices=list(NEEDS)),
            instances=dict(type="list", elements="dict"),
            node_group=dict(type="str", default="default"),
            node_groups=dict(type="list", elements="dict", default=[]),
            count=dict(type="int"),
            max_nodes=dict(type="int"),
            min_nodes=dict(type="int"),
            launch_id=dict(type="str"),
            instance_ids=dict(type="list", elements="str", default=[]),
            node=dict(type="str"),
            instance_id=dict(type="str"),
            reason=dict(type="str", default=""),
            launch_timeout=dict(type="float", default=300),
        ),
        supports_check_mode=True,
    )
    p = module.params
    action = p["action"]
    missing = [k for k in NEEDS[action] if p[k] is None]
    if missing:
        module.fail_json(msg="action=%s needs %s" % (action, ", ".join(missing)))
    now = _time.time()
    out = dict(proceed=False, count=0, live=None, launch_id=None, reason="", report={}, node_group=None,
               min_nodes=None)

    def step(state):
        if action == "reconcile":
            new, rep = it.reconcile(state, p["instances"], p["node_group"], now, p["launch_timeout"])
            out.update(report=rep, launch_id=rep["launch_id"],
                       live=len(it.live_instances(p["instances"], p["node_group"])))
            return new
        if action == "begin_launch":
            it.validate_intents(state)
            guard = it.launch_guard(state, p["instances"], p["node_group"], p["count"], p["max_nodes"], now)
            out.update(proceed=guard["proceed"], count=guard["count"], live=guard["live"], reason=guard["reason"])
            if not guard["proceed"]:
                return state
            new = it.begin_launch(state, guard["count"], p["node_group"], now, reason=p["reason"])
            out["launch_id"] = new["pending_launch"]["launch_id"]
            return new
        if action == "end_launch":
            out["launch_id"] = p["launch_id"]
            return it.end_launch(state, p["launch_id"], p["instance_ids"], now, reason=p["reason"],
                                 node_group=p["node_group"])
        if action == "abort_launch":
            out["launch_id"] = p["launch_id"]
            return it.abort_launch(state, p["launch_id"])
        if action == "begin_removal":
            it.validate_intents(state)
            guard = it.removal_guard(p["instances"], p["node_group"], p["instance_id"], p["min_nodes"],
                                     node_groups=p["node_groups"])
            out.update(proceed=guard["proceed"], live=guard["live"], reason=guard["reason"],
                       node_group=guard["node_group"], min_nodes=guard["min_nodes"])
            if not guard["proceed"]:
                return state
            return it.begin_removal(state, p["node"], p["instance_id"], now, reason=p["reason"],
                                    node_group=guard["node_group"])
        if action == "end_removal":
            return it.end_removal(state, p["node"], p["instance_id"], now, reason=p["reason"])
        return it.clear_removal(state, p["node"])

    try:
        before = load_state(p["state_file"])
        if module.check_mode:
            after = step(before)
        else:
            after = before
            probe = step(before)  # decides whether anything changes; re-applied under the lock below
            if probe != before:
                after = update_state(p["state_file"], step)
    except StateError as e:
        module.fail_json(msg=str(e), state_file=p["state_file"], **out)
    except it.IntentError as e:
        module.fail_json(msg="%s (state file %s)" % (e, p["state_file"]), **out)
    for msg in out["report"].get("messages", []):
        module.warn(msg)
    out["intents"] = {"pending_launch": after.get("pending_launch"), "pending_removal": after.get("pending_removal")}
    module.exit_json(changed=after != before, **out)


if __name__ == "__main__":
    main()
