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
  - With the C(threshold) policy it never changes anything (always C(changed=false)); it only reads O(state_file)
    for cooldowns. With the C(binpacking) policy it writes the C(unneeded) map (node name -> unix seconds first
    seen unneeded) to O(state_file) (under its lock, atomically, never in check mode) and reports C(changed=true)
    only when that map changed.
  - "The C(binpacking) policy (request-aware, modelled on Cluster Autoscaler): scale-up sizes the step by first-fit
    decreasing of the pending pods' CPU and memory requests onto new nodes of a node group (allocatable =
    instance capacity minus O(node_reservation), minus the DaemonSet overhead per node), after filling the free
    requests capacity of existing nodes and of instances already on the way (O(instances) not yet registered as
    nodes). DaemonSet pods and pods pending for less than O(new_pod_scale_up_delay) are ignored; pods no node
    group can hold even when empty are reported in RV(unfittable_pods) and never cause a launch. The
    C(least-waste) expander chooses among O(node_groups); a node group backed off after launch failures
    (state file C(backoff), see M(k3s.autoscaler.k3s_scale_event)) is skipped. Instances not registered within
    O(max_node_provision_time) are returned in RV(terminate_instance_ids)."
  - "Binpacking scale-down: a node is unneeded when its requests utilisation is below
    O(scale_down_utilization_threshold) (ratio), its C(cpu_percent)/C(memory_percent) are below
    O(cpu_threshold)/O(memory_threshold), no pod blocks it (annotation
    C(cluster-autoscaler.kubernetes.io/safe-to-evict=false), a PodDisruptionBudget with no disruption left, a
    kube-system pod without PDB, a pod without controller), the node is not annotated
    C(cluster-autoscaler.kubernetes.io/scale-down-disabled=true), and a simulation places all its pods on the other
    nodes. It is removed after being unneeded for O(scale_down_unneeded_time) seconds, never within
    O(scale_down_delay_after_add) seconds of a scale-up; empty nodes in bulk (up to O(max_empty_bulk_delete)),
    at most one non-empty node per run. Pods on candidate nodes come from O(pods_detail) or, when it is omitted,
    from the Kubernetes API (O(kubeconfig)/O(context)); without either, non-empty nodes are not removed.
    Binpacking does not use O(scale_up_cooldown)/O(scale_down_cooldown)."
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
      - Informational for the C(threshold) policy (only its length is reported in RV(inputs)); the pods the
        C(binpacking) policy packs.
    type: list
    elements: dict
  pods_detail:
    description:
      - Pods bound to nodes, for the C(binpacking) scale-down simulation, as built by
        C(k8s_pods.pods_detail_from_api) - C({namespace, name, node, cpu_cores (cores), memory_bytes (bytes),
        owner_kind, daemonset (bool), safe_to_evict (true/false/null from annotation
        cluster-autoscaler.kubernetes.io/safe-to-evict), pdb_name, pdb_disruptions_allowed (int, null when no
        PodDisruptionBudget selects the pod), kube_system (bool)}).
      - When omitted and a node is a scale-down candidate, the module lists the pods on the candidate nodes
        (C(GET /api/v1/pods?fieldSelector=spec.nodeName=<node>)) and the PDBs
        (C(GET /apis/policy/v1/poddisruptionbudgets)) with O(kubeconfig)/O(context).
    type: list
    elements: dict
  instances:
    description:
      - The node groups' non-terminated EC2 instances (the C(instances) return of
        M(k3s.autoscaler.ec2_instance_info) filtered by the cluster tag), each with C(instance_id),
        C(launch_time) (ISO 8601 or unix seconds), C(state) (C(pending)/C(running) or C({name})) and the node group
        (C(node_group) or tag C(k3s-autoscaler/node-group)).
      - C(binpacking) counts those without a node as capacity on the way, and returns those older than
        O(max_node_provision_time) in RV(terminate_instance_ids).
    type: list
    elements: dict
  node_groups:
    description:
      - Node groups for C(binpacking), each C({name, instance_type, min_nodes, max_nodes, labels}); the node's
        group comes from its instance's C(k3s-autoscaler/node-group) tag, else from its instance type.
      - When omitted, one group named O(node_group) of O(instance_type) bounded by O(min_nodes)/O(max_nodes).
    type: list
    elements: dict
  node_group:
    description: Name of the implicit node group used when O(node_groups) is omitted.
    type: str
    default: default
  instance_type:
    description: EC2 instance type of new nodes of the implicit node group (required by C(binpacking) without
      O(node_groups)).
    type: str
  node_reservation:
    description:
      - Subtracted from an instance type's capacity to get a new node's allocatable, C({cpu_cores, memory_bytes}).
      - "Default C({cpu_cores: 0, memory_bytes: 104857600}), which is k3s' default (no kube-reserved or
        system-reserved; the kubelet eviction threshold C(memory.available<100Mi))."
    type: dict
  daemonset_overhead:
    description:
      - DaemonSet requests per node to reserve on a new node, C({cpu_cores, memory_bytes}).
      - Default from C(metrics.daemonset_requests) (query C(daemonset_requests) of M(k3s.autoscaler.k3s_metrics)),
        else the maximum over nodes in O(pods_detail), else 0 (RV(explain) says which).
    type: dict
  new_pod_scale_up_delay:
    description:
      - Seconds a pod must have been pending before it can trigger a C(binpacking) scale-up (filters pods that
        are Pending only briefly, e.g. while a volume binds). Cluster Autoscaler's C(--new-pod-scale-up-delay)
        defaults to 0; 10 s keeps such blips out and adds at most 10 s to a pod that waits for a new node.
    type: float
    default: 10
  scale_down_utilization_threshold:
    description:
      - RATIO 0-1 (0.5 means 50%). A node whose requests utilisation (max of CPU and memory requests / allocatable)
        is below this may be unneeded (C(binpacking)).
    type: float
    default: 0.5
  scale_down_unneeded_time:
    description: Seconds a node must stay unneeded across runs before C(binpacking) removes it.
    type: float
    default: 600
  scale_down_delay_after_add:
    description: Seconds after the last scale_up during which C(binpacking) removes no node.
    type: float
    default: 600
  max_empty_bulk_delete:
    description: Most empty nodes (only DaemonSet pods) C(binpacking) removes in one run.
    type: int
    default: 10
  max_node_provision_time:
    description:
      - Seconds after C(launch_time) by which an instance must be registered as a node; later it is returned in
        RV(terminate_instance_ids) and no longer counted as capacity on the way.
    type: float
    default: 900
  kubeconfig:
    description:
      - Kubeconfig used by C(binpacking) to read, for the scale-down candidates only, the node annotations
        (C(GET /api/v1/nodes/<node>), C(cluster-autoscaler.kubernetes.io/scale-down-disabled)) and, when
        O(pods_detail) is omitted, their pods and the PodDisruptionBudgets. If that read fails, no node is
        removed this run (C(blocked_by=[kubernetes_api])); a scale-up is unaffected.
      - With neither O(kubeconfig) nor O(context), the in-cluster service account is used when
        C(KUBERNETES_SERVICE_HOST) is set; otherwise non-empty nodes are not removed and annotations are not checked.
    type: path
  context:
    description: Kubeconfig context (see O(kubeconfig)).
    type: str
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
    description:
      - Scaling policy (C(threshold) is the seed rule, C(binpacking) is request-aware).
      - When omitted, C(DEFAULTS["policy"]) of C(plugins/module_utils/policy.py) is used, currently C(threshold)
        (the one line to change to make C(binpacking) the default; RV(policy) returns the policy used).
    type: str
    choices: [threshold, binpacking]
  dry_run:
    description:
      - Decide normally but mark the result not actionable (RV(actionable=false)) so the playbook skips
        launch/terminate.
    type: bool
    default: false
  state_file:
    description:
      - Path of the autoscaler JSON state file (written by M(k3s.autoscaler.k3s_scale_event)); read here, and with
        C(binpacking) its C(unneeded) map is updated.
      - A missing file means "never scaled". A corrupt file fails the task with the path and how to repair it.
      - Without it there are B(no cooldowns); RV(reason) and the warnings say so.
    type: path
notes:
  - Supports check mode (RV(actionable) is false in check mode; nothing is written) and diff mode (the
    C(unneeded) map before/after).
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

- name: Decide with the binpacking policy and two node groups
  k3s.autoscaler.k3s_scale_decision:
    policy: binpacking
    metrics: "{{ m.metrics }}"
    nodes_detail: "{{ m.nodes_detail }}"
    pending_pods_detail: "{{ m.pending_pods_detail }}"
    instances: "{{ ec2.instances }}"
    node_groups:
      - {name: general, instance_type: m5.xlarge, min_nodes: 1, max_nodes: 10}
      - {name: compute, instance_type: c5.2xlarge, min_nodes: 0, max_nodes: 5}
    min_nodes: 1
    max_nodes: 15
    max_scale_up_step: 5
    kubeconfig: /etc/rancher/k3s/k3s.yaml
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
node_group:
  description: C(binpacking) - the node group to launch in (scale_up) or of the first candidate (scale_down).
  returned: always
  type: str
  sample: general
terminate_instance_ids:
  description: C(binpacking) - instances not registered as nodes within O(max_node_provision_time); terminate them.
  returned: always
  type: list
  elements: str
unfittable_pods:
  description:
    - C(binpacking) - pending pods no node group can hold even on an empty node
      (C({namespace, name, cpu_cores, memory_bytes, reason})); they never cause a launch.
  returned: always
  type: list
  elements: dict
unneeded:
  description: C(binpacking) - node name -> unix seconds it was first seen unneeded (null for other policies).
  returned: always
  type: dict
explain:
  description:
    - C(binpacking) - why each choice was made. C(scale_up) (eligible_pods, skipped_daemonset, skipped_too_young,
      skipped_unknown_age, unfittable, fit_existing_nodes, fit_in_flight, options per node group with nodes,
      pods, cpu_waste, memory_waste (fractions 0-1) or why skipped, chosen), C(scale_down.nodes) (per node
      utilization (ratio), cpu_percent, memory_percent, empty, status needed/blocked/unneeded/removable/backoff,
      reason, blocked_by {kind, pod, pdb}, unneeded_for / unneeded_time (seconds), simulation placements),
      C(in_flight), C(never_joined), C(backoff), C(daemonset_overhead) (with its source), C(node_groups)
      (with allocatable).
  returned: always
  type: dict
pods_detail_source:
  description: Where the binpacking pods_detail came from (C(input), C(kubernetes), or null when none).
  returned: always
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.k3s.autoscaler.plugins.module_utils.k8s_pods import K8sPodsError, fetch_pods_detail
from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import PolicyError, decide
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import (
    StateError, load_state, set_unneeded, update_state)

CONFIG_OPTIONS = ("min_nodes", "max_nodes", "pending_pods_threshold", "cpu_threshold", "memory_threshold",
                  "scale_up_cooldown", "scale_down_cooldown", "max_scale_up_step", "policy", "dry_run",
                  "node_groups", "node_group", "instance_type", "node_reservation", "daemonset_overhead",
                  "new_pod_scale_up_delay", "scale_down_utilization_threshold", "scale_down_unneeded_time",
                  "scale_down_delay_after_add", "max_empty_bulk_delete", "max_node_provision_time")


def _candidate_nodes(result):
    """Nodes the binpacking policy may remove, or could not judge because their pods are unknown: their
    pods, PodDisruptionBudgets and annotations are read from the Kubernetes API."""
    nodes = ((result.get("explain") or {}).get("scale_down") or {}).get("nodes") or []
    return [n["name"] for n in nodes if n.get("status") in ("unneeded", "removable", "backoff")
            or (n.get("blocked_by") or {}).get("kind") == "pods_detail_missing"]


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
            policy=dict(type="str", choices=["threshold", "binpacking"]),
            dry_run=dict(type="bool", default=False),
            state_file=dict(type="path"),
            pods_detail=dict(type="list", elements="dict"),
            instances=dict(type="list", elements="dict"),
            node_groups=dict(type="list", elements="dict"),
            node_group=dict(type="str", default="default"),
            instance_type=dict(type="str"),
            node_reservation=dict(type="dict"),
            daemonset_overhead=dict(type="dict"),
            new_pod_scale_up_delay=dict(type="float", default=10),
            scale_down_utilization_threshold=dict(type="float", default=0.5),
            scale_down_unneeded_time=dict(type="float", default=600),
            scale_down_delay_after_add=dict(type="float", default=600),
            max_empty_bulk_delete=dict(type="int", default=10),
            max_node_provision_time=dict(type="float", default=900),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
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
    now = time.time()
    inputs = {"pods_detail": p["pods_detail"], "pods_nodes": None, "nodes_detail": p["nodes_detail"]}
    source = "input" if p["pods_detail"] is not None else None

    def run():
        return decide(p["metrics"], config, state, now, nodes_detail=inputs["nodes_detail"],
                      pending_pods_detail=p["pending_pods_detail"], pods_detail=inputs["pods_detail"],
                      instances=p["instances"], pods_detail_nodes=inputs["pods_nodes"])
    try:
        result = run()
        need = _candidate_nodes(result) if result["policy"] == "binpacking" else []
        if need and (p["kubeconfig"] or p["context"] or os.environ.get("KUBERNETES_SERVICE_HOST")):
            try:
                detail, annotations = fetch_pods_detail(need, kubeconfig=p["kubeconfig"], context=p["context"],
                                                        with_annotations=True)
            except K8sPodsError as e:
                result["warnings"].append("cannot read the pods and annotations of scale-down candidates %s (%s); "
                                          "no node is removed this run" % (", ".join(need), e))
                if result["decision"] == "scale_down":
                    result.update(decision="no_action", count=0, candidates=[], actionable=False,
                                  desired_nodes=result["current_nodes"], node_group=None,
                                  reason="no_action: scale_down wanted but the Kubernetes API could not be read for "
                                         "the candidates' pods and annotations (%s)" % e)
                    result["blocked_by"].append("kubernetes_api")
            else:
                if inputs["pods_detail"] is None:
                    inputs.update(pods_detail=detail, pods_nodes=need)
                    source = "kubernetes"
                inputs["nodes_detail"] = [dict(n, annotations=annotations[n.get("name")])
                                          if n.get("name") in annotations else n for n in inputs["nodes_detail"]]
                result = run()
        elif need:
            result["warnings"].append("scale-down candidates %s: pods and node annotations unknown (no kubeconfig or "
                                      "context): non-empty nodes are not removed and the scale-down-disabled "
                                      "annotation is not checked; pass kubeconfig" % ", ".join(need))
    except PolicyError as e:
        module.fail_json(msg=str(e), field=e.field)
    for w in result.pop("warnings"):
        module.warn(w)
    result["pods_detail_source"] = source

    changed = False
    new_unneeded = result.get("unneeded")
    if new_unneeded is not None and state is not None:
        old_unneeded = state.get("unneeded") or {}
        if dict((k, float(v)) for k, v in old_unneeded.items()) != new_unneeded:
            changed = True
            if not module.check_mode:
                try:
                    update_state(p["state_file"], lambda st: set_unneeded(st, new_unneeded))
                except StateError as e:
                    module.fail_json(msg=str(e), state_file=p["state_file"])
            if module._diff:
                result["diff"] = dict(before={"unneeded": old_unneeded}, after={"unneeded": new_unneeded},
                                      before_header=p["state_file"], after_header=p["state_file"])
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
