#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_scale_decision
short_description: Decide whether a k3s cluster should scale up, scale down or do nothing
description:
  - Pure scaling policy. Takes the result of M(k3s.autoscaler.k3s_metrics) and returns
    C(scale_up), C(scale_down) or C(no_action) with the number of nodes, the reason (one sentence
    with the numbers that decided), what blocked an action, and the scale-down candidates.
  - Never changes anything (always C(changed=false)); it only reads O(state_file) for cooldowns.
  - "The C(threshold) policy (seed rule): 1. C(scale_up) when C(metrics.pending_pods) > O(pending_pods_threshold)
    and C(metrics.nodes) < O(max_nodes); 2. otherwise C(scale_down) when C(metrics.avg_cpu) < O(cpu_threshold)
    and C(metrics.avg_memory) < O(memory_threshold) and C(metrics.nodes) > O(min_nodes); 3. otherwise C(no_action)."
  - Bounds override the policy; C(metrics.nodes) below O(min_nodes) gives C(scale_up) toward O(min_nodes)
    (at most O(max_scale_up_step) nodes), above O(max_nodes) gives C(scale_down) of one node toward O(max_nodes).
  - Unknown C(avg_cpu) or C(avg_memory) (absent, null or NaN) make scale-down impossible
    (C(blocked_by=[missing_metrics])); uncertain data never causes a scaling action.
  - "Cooldowns (need O(state_file)): a scale_up within O(scale_up_cooldown) seconds of the last scale_up is blocked;
    a scale_down within O(scale_down_cooldown) seconds of the last scale_down B(or of the last scale_up) is blocked
    (new nodes get time to absorb load before any node is removed). The same cooldowns apply to min/max bound
    corrections. Blocked decisions become C(no_action) with C(blocked_by=[cooldown])."
  - Config and O(metrics) are validated before anything else; errors name the field and how to fix it.
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  metrics:
    description:
      - The C(metrics) return of M(k3s.autoscaler.k3s_metrics).
      - Required keys C(nodes) and C(pending_pods) (integer counts >= 0). C(nodes) is the number of
        Kubernetes Node objects (C(kube_node_info)) and is what O(min_nodes) / O(max_nodes) bound.
      - Optional C(avg_cpu), C(avg_memory), C(cpu_requests_percent), C(memory_requests_percent) are PERCENT 0-100;
        absent, null or NaN means unknown. Optional counts C(ready_nodes), C(unschedulable_pods), C(cordoned_nodes).
    type: dict
    required: true
  nodes_detail:
    description:
      - The C(nodes_detail) return of M(k3s.autoscaler.k3s_metrics), a list of
        C({name, instance_id, instance_type, ready, unschedulable, allocatable_cpu_cores (cores),
        allocatable_memory_bytes (bytes), requested_cpu_cores, requested_memory_bytes, pods,
        cpu_percent, memory_percent (percent 0-100)}).
      - Needed for scale-down candidates; without it scale-down is blocked with C(no_candidates).
    type: list
    elements: dict
  pending_pods_detail:
    description:
      - The C(pending_pods_detail) return of M(k3s.autoscaler.k3s_metrics)
        (C({namespace, name, cpu_cores, memory_bytes, owner_kind, age_seconds})).
      - Informational for the C(threshold) policy (only its length is reported in RV(inputs)).
    type: list
    elements: dict
  min_nodes:
    description: Lower bound on C(metrics.nodes) (integer >= 0, <= O(max_nodes)).
    type: int
    required: true
  max_nodes:
    description: Upper bound on C(metrics.nodes) (integer >= O(min_nodes)).
    type: int
    required: true
  pending_pods_threshold:
    description: Scale up when C(metrics.pending_pods) is strictly greater than this (integer >= 0).
    type: int
    default: 0
  cpu_threshold:
    description:
      - Scale down only when C(metrics.avg_cpu) is strictly below this. PERCENT 0-100 (20 means 20%), not a ratio.
    type: float
    default: 20
  memory_threshold:
    description:
      - Scale down only when C(metrics.avg_memory) is strictly below this. PERCENT 0-100, not a ratio.
    type: float
    default: 20
  scale_up_cooldown:
    description: Seconds after the last scale_up (from O(state_file)) during which another scale_up is blocked.
    type: float
    default: 300
  scale_down_cooldown:
    description:
      - Seconds after the last scale_down B(and) after the last scale_up during which a scale_down is blocked.
    type: float
    default: 600
  max_scale_up_step:
    description:
      - Nodes added per scale_up (integer >= 1); the C(threshold) policy adds this many, capped at
        O(max_nodes) - C(metrics.nodes).
    type: int
    default: 1
  policy:
    description: Scaling policy.
    type: str
    choices: [threshold]
    default: threshold
  dry_run:
    description:
      - Decide normally but mark the result not actionable (RV(actionable=false)) so the playbook skips
        launch/terminate.
    type: bool
    default: false
  state_file:
    description:
      - Path of the autoscaler JSON state file (written by M(k3s.autoscaler.k3s_scale_event)); read only here.
      - A missing file means "never scaled". A corrupt file fails the task with the path and how to repair it.
      - Without it there are B(no cooldowns); RV(reason) and the warnings say so.
    type: path
notes:
  - Supports check mode (RV(actionable) is false in check mode). Never writes anything.
seealso:
  - module: k3s.autoscaler.k3s_scale_event
"""

EXAMPLES = r"""
- name: Collect metrics
  k3s.autoscaler.k3s_metrics:
    source: prometheus
  register: m

- name: Decide
  k3s.autoscaler.k3s_scale_decision:
    metrics: "{{ m.metrics }}"
    nodes_detail: "{{ m.nodes_detail }}"
    pending_pods_detail: "{{ m.pending_pods_detail }}"
    min_nodes: 1
    max_nodes: 10
    pending_pods_threshold: 5
    cpu_threshold: 20      # percent
    memory_threshold: 20   # percent
    state_file: /var/lib/k3s-autoscaler/state.json
  register: decision

- name: Terminate the least-utilised nodes
  ansible.builtin.debug:
    msg: "would terminate {{ decision.candidates[:decision.count] | map(attribute='instance_id') | list }}"
  when: decision.actionable and decision.decision == 'scale_down'
"""

RETURN = r"""
decision:
  description: What to do.
  returned: always
  type: str
  choices: [scale_up, scale_down, no_action]
  sample: scale_up
count:
  description: Nodes to add (scale_up) or remove (scale_down) this cycle; 0 for no_action.
  returned: always
  type: int
  sample: 1
current_nodes:
  description: C(metrics.nodes).
  returned: always
  type: int
  sample: 3
desired_nodes:
  description:
    - Node count the decision steers toward; always within [min_nodes, max_nodes].
    - Normally C(current_nodes) +/- C(count); when C(current_nodes) is outside the bounds it is the bound.
  returned: always
  type: int
  sample: 4
reason:
  description: One sentence with the numbers that decided.
  returned: always
  type: str
  sample: "scale_up: 7 pending pods > threshold 5 and 3 nodes < max_nodes 10"
blocked_by:
  description:
    - Why a wanted action became no_action (or why scale_down was impossible).
    - Values are C(cooldown), C(max_nodes), C(min_nodes), C(missing_metrics), C(no_candidates).
  returned: always
  type: list
  elements: str
  sample: [cooldown]
candidates:
  description:
    - For scale_down, all eligible nodes, least-utilised first; terminate the first C(count).
    - Eligible means Ready with an C(instance_id) (the control plane and non-EC2 nodes never are).
    - Ordered by C(requests_percent) (max of CPU and memory requests / allocatable, percent), then
      max(C(cpu_percent), C(memory_percent)), then C(pods), then C(name); unknown values sort last.
    - Empty unless C(decision=scale_down).
  returned: always
  type: list
  elements: dict
  sample: [{name: worker-2, instance_id: i-0abc, instance_type: t3.medium, cpu_percent: 3.1,
            memory_percent: 8.0, requests_percent: 12.5, pods: 2, unschedulable: false}]
policy:
  description: The policy used.
  returned: always
  type: str
  sample: threshold
dry_run:
  description: The O(dry_run) option.
  returned: always
  type: bool
  sample: false
actionable:
  description: True when C(decision) != no_action and not O(dry_run) and not in check mode.
  returned: always
  type: bool
  sample: true
inputs:
  description:
    - The numbers and config used; C(metrics) (validated, unknown percents as null), C(config) (normalised),
      C(last_scale_up), C(last_scale_down) (unix seconds or null), C(state_file_used), C(now) (unix seconds),
      C(nodes_detail_count), C(pending_pods_detail_count).
  returned: always
  type: dict
cooldowns:
  description: Seconds remaining before a scale_up / scale_down is allowed (0 when not blocked).
  returned: always
  type: dict
  sample: {scale_up: 0.0, scale_down: 412.5}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import PolicyError, decide
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import StateError, load_state

CONFIG_OPTIONS = ("min_nodes", "max_nodes", "pending_pods_threshold", "cpu_threshold", "memory_threshold",
                  "scale_up_cooldown", "scale_down_cooldown", "max_scale_up_step", "policy", "dry_run")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            metrics=dict(type="dict", required=True),
            nodes_detail=dict(type="list", elements="dict"),
            pending_pods_detail=dict(type="list", elements="dict"),
            min_nodes=dict(type="int", required=True),
            max_nodes=dict(type="int", required=True),
            pending_pods_threshold=dict(type="int", default=0),
            cpu_threshold=dict(type="float", default=20),
            memory_threshold=dict(type="float", default=20),
            scale_up_cooldown=dict(type="float", default=300),
            scale_down_cooldown=dict(type="float", default=600),
            max_scale_up_step=dict(type="int", default=1),
            policy=dict(type="str", choices=["threshold"], default="threshold"),
            dry_run=dict(type="bool", default=False),
            state_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    config = dict((k, p[k]) for k in CONFIG_OPTIONS)
    config["check_mode"] = module.check_mode
    state = None
    if p["state_file"]:
        try:
            state = load_state(p["state_file"])
        except StateError as e:
            module.fail_json(msg=str(e), state_file=p["state_file"])
    try:
        result = decide(p["metrics"], config, state, time.time(),
                        nodes_detail=p["nodes_detail"], pending_pods_detail=p["pending_pods_detail"])
    except PolicyError as e:
        module.fail_json(msg=str(e), field=e.field)
    for w in result.pop("warnings"):
        module.warn(w)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
