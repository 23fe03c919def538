#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: k3s_metrics
short_description: Collect k3s cluster state (nodes, pending pods, requests, utilisation) for autoscaling
description:
  - Read-only. Collects the cluster state the scaling policy needs, from Prometheus
    (kube-state-metrics v2 + node-exporter) or from the Kubernetes API (+ metrics.k8s.io).
  - Never returns a made-up number. Unreachable endpoints, HTTP errors, non-JSON bodies, NaN or
    +/-Inf values, negative values where impossible, an empty node list and stale data fail the
    module with C(msg), C(query_name), C(query) (PromQL or API endpoint) and C(reason).
  - Percentages are PERCENT 0-100, CPU is in cores, memory in bytes, ages in seconds.
  - "Default PromQL (key: query); C($rate_window) is replaced by O(rate_window):"
  - "freshness: time() - max(timestamp(kube_node_info)) (seconds, compared with O(max_sample_age))."
  - "nodes: C(kube_node_info) (labels node, provider_id). Empty is an error."
  - "node_role: C(kube_node_role{role=~\"control-plane|master\"}) (control-plane nodes, left out of the figures)."
  - "node_labels: C(kube_node_labels) (C(label_node_kubernetes_io_instance_type) if allow-listed)."
  - "node_ready: C(kube_node_status_condition{condition=\"Ready\",status=\"true\"}) (1 = Ready)."
  - "node_unschedulable: C(kube_node_spec_unschedulable) (1 = cordoned)."
  - "node_allocatable: C(kube_node_status_allocatable{resource=~\"cpu|memory\"}) (cores, bytes)."
  - "pending_pods: (kube_pod_status_phase{phase=\"Pending\"} == 1) unless on(namespace, pod)
    kube_pod_owner{owner_kind=\"DaemonSet\"}. Empty means 0."
  - "unschedulable_pods: C(kube_pod_status_unschedulable == 1). Empty means 0."
  - "pod_requests: sum by (node, resource) (kube_pod_container_resource_requests{resource=~\"cpu|memory\"}
    and on(namespace, pod) (kube_pod_status_phase{phase=\"Running\"} == 1))
    or sum by (namespace, pod, node, resource) (kube_pod_container_resource_requests{resource=~\"cpu|memory\"}
    and on(namespace, pod) (kube_pod_status_phase{phase=\"Pending\"} == 1))
    (Running pods summed per node, Pending pods one series each; cores, bytes)."
  - "node_pods: count by (node) (kube_pod_info{node!=\"\"}
    and on(namespace, pod) (kube_pod_status_phase{phase=~\"Pending|Running\"} == 1))."
  - "pod_owner: C(kube_pod_owner) joined with Pending pods; pod_age: time() - kube_pod_created joined with Pending pods."
  - "daemonset_requests: max by (resource) (sum by (node, resource) (kube_pod_container_resource_requests{resource=~\"cpu|memory\"}
    and on(namespace, pod) kube_pod_owner{owner_kind=\"DaemonSet\"}
    and on(namespace, pod) (kube_pod_status_phase{phase=~\"Pending|Running\"} == 1)))."
  - "node_cpu_percent: 100 * (1 - avg by (nodename) (rate(node_cpu_seconds_total{mode=\"idle\"}[$rate_window])
    * on(instance) group_left(nodename) node_uname_info))."
  - "node_memory_percent: 100 * (1 - avg by (nodename) ((node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)
    * on(instance) group_left(nodename) node_uname_info))."
  - "With O(source=kubernetes): nodes from C(GET /api/v1/nodes); pods from C(GET /api/v1/pods?fieldSelector=status.phase=Pending)
    and C(status.phase=Running); usage from C(GET /apis/metrics.k8s.io/v1beta1/nodes) (percent of allocatable).
    When metrics.k8s.io is not served, avg_cpu, avg_memory and per-node cpu_percent/memory_percent are omitted
    (null) and a warning is emitted."
author:
  - k3s-autoscaler developers (@k3s-autoscaler)
options:
  source:
    description: Where to read the cluster state from.
    type: str
    choices: [prometheus, kubernetes]
    default: prometheus
  prometheus_url:
    description: Base URL of the Prometheus HTTP API, e.g. C(http://127.0.0.1:9090). Required with O(source=prometheus).
    type: str
  bearer_token:
    description: "Sent as C(Authorization: Bearer <token>) to Prometheus."
    type: str
  headers:
    description: Extra HTTP headers sent to Prometheus.
    type: dict
  validate_certs:
    description: Verify the TLS certificate of Prometheus (or of the Kubernetes API).
    type: bool
    default: true
  ca_path:
    description: CA bundle file used to verify Prometheus' TLS certificate.
    type: path
  timeout:
    description: Timeout in seconds of each HTTP request.
    type: float
    default: 10
  retries:
    description: Retries on connection errors and HTTP 408/429/502/503/504 (Prometheus source).
    type: int
    default: 2
  queries:
    description:
      - Overrides of the default PromQL by key (see the description for the keys). Unknown keys are rejected
        with the list of valid keys.
    type: dict
  rate_window:
    description: PromQL range used in C(rate()) for CPU utilisation, e.g. C(5m).
    type: str
    default: 5m
  max_sample_age:
    description:
      - Maximum age in seconds of the freshest C(kube_node_info) sample; older data fails the module as stale.
        C(0) disables the check.
    type: float
    default: 120
  kubeconfig:
    description:
      - Path to a kubeconfig file (O(source=kubernetes)). When neither O(kubeconfig) nor O(context) is given and
        C(KUBERNETES_SERVICE_HOST) is set, the in-cluster service account is used; otherwise the default kubeconfig.
    type: path
  context:
    description: Kubeconfig context to use (O(source=kubernetes)).
    type: str
notes:
  - Supports check mode; never changes anything (C(changed=false)).
requirements:
  - prometheus-api-client (source prometheus)
  - kubernetes (source kubernetes)
'''

EXAMPLES = r'''
- name: Collect cluster state from Prometheus
  k3s.autoscaler.k3s_metrics:
    prometheus_url: http://127.0.0.1:9090
  register: cluster

- name: Collect from the Kubernetes API with a kubeconfig
  k3s.autoscaler.k3s_metrics:
    source: kubernetes
    kubeconfig: ~/.kube/config
    context: k3s
  register: cluster

- name: Override one query and use a shorter rate window
  k3s.autoscaler.k3s_metrics:
    prometheus_url: https://prometheus.example.com
    bearer_token: "{{ prom_token }}"
    rate_window: 2m
    queries:
      nodes: kube_node_info{node=~"worker-.*"}
'''

RETURN = r'''
metrics:
  description: Cluster-level numbers.
  returned: success
  type: dict
  contains:
    pending_pods:
      description: Pods in phase Pending, DaemonSet-owned excluded (query pending_pods / pods fieldSelector status.phase=Pending).
      type: int
    unschedulable_pods:
      description: Pods with PodScheduled=False reason Unschedulable (query unschedulable_pods / pod conditions).
      type: int
    nodes:
      description:
        - Number of worker nodes (query nodes / GET /api/v1/nodes). Control-plane nodes (query node_role,
          C(kube_node_role{role=~"control-plane|master"}); or the node-role.kubernetes.io/control-plane or /master
          label) are never scaled and are left out of every figure in C(metrics); they stay in C(nodes_detail).
      type: int
    control_plane_nodes:
      description: Number of control-plane nodes excluded from the other figures.
      type: int
    ready_nodes:
      description: Nodes whose Ready condition is true (query node_ready).
      type: int
    cordoned_nodes:
      description: Nodes with spec.unschedulable (query node_unschedulable).
      type: int
    avg_cpu:
      description:
        - PERCENT 0-100, mean CPU utilisation over Ready nodes that have usage data (query node_cpu_percent;
          metrics.k8s.io usage / allocatable for the Kubernetes source). Null when no node is Ready;
          absent with the Kubernetes source when metrics.k8s.io is not served.
      type: float
    avg_memory:
      description: PERCENT 0-100, mean memory utilisation over Ready nodes (query node_memory_percent). Same null rules as avg_cpu.
      type: float
    cpu_requests_percent:
      description:
        - PERCENT, CPU requests of all active (Pending or Running) pods / allocatable CPU of Ready nodes * 100
          (queries pod_requests, node_allocatable). May exceed 100 when pods are pending. Null if no Ready node.
      type: float
    memory_requests_percent:
      description: PERCENT, as cpu_requests_percent for memory.
      type: float
    daemonset_requests:
      description:
        - "C({cpu_cores, memory_bytes}): the requests of the DaemonSet pods bound to one node (cores, bytes), maximum
          over nodes (query daemonset_requests; with the Kubernetes source, pods whose controller is a DaemonSet).
          Both 0 when there are no DaemonSet pods. The binpacking policy reserves this on every new node."
      type: dict
nodes_detail:
  description: One entry per node, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Kubernetes node name (label node)., type: str}
    provider_id: {description: spec.providerID (label provider_id of kube_node_info), type: str}
    instance_id: {description: EC2 instance id parsed from C(aws:///<az>/<instance-id>); null if not an AWS node., type: str}
    availability_zone: {description: AZ parsed from the providerID; null if absent., type: str}
    instance_type: {description: Label node.kubernetes.io/instance-type (query node_labels); null if unknown., type: str}
    ready: {description: Ready condition is true., type: bool}
    unschedulable: {description: Node is cordoned., type: bool}
    control_plane: {description: Control-plane node (query node_role / role label); never a scaling candidate., type: bool}
    allocatable_cpu_cores: {description: Allocatable CPU in cores (query node_allocatable)., type: float}
    allocatable_memory_bytes: {description: Allocatable memory in bytes (query node_allocatable)., type: int}
    requested_cpu_cores: {description: CPU requests in cores of active pods bound to the node (query pod_requests)., type: float}
    requested_memory_bytes: {description: Memory requests in bytes of active pods bound to the node., type: int}
    pods: {description: Active (Pending or Running) pods bound to the node (query node_pods)., type: int}
    cpu_percent: {description: PERCENT 0-100 CPU utilisation (query node_cpu_percent); null without usage data., type: float}
    memory_percent: {description: PERCENT 0-100 memory utilisation (query node_memory_percent); null without usage data., type: float}
pending_pods_detail:
  description: Pending pods (DaemonSet-owned excluded), sorted by namespace and name.
  returned: success
  type: list
  elements: dict
  contains:
    namespace: {description: Pod namespace., type: str}
    name: {description: Pod name., type: str}
    cpu_cores: {description: Sum of container CPU requests in cores (query pod_requests)., type: float}
    memory_bytes: {description: Sum of container memory requests in bytes (query pod_requests)., type: int}
    owner_kind: {description: Kind of the controlling owner (query pod_owner); null if none., type: str}
    age_seconds: {description: Seconds since creation (query pod_age); null if unknown., type: float}
source:
  description: C(prometheus) or C(kubernetes).
  returned: success
  type: str
queries:
  description: The PromQL actually used, by key (Prometheus source), or the API endpoints used (Kubernetes source).
  returned: success
  type: dict
collected_at:
  description: Unix time in seconds at which the queries were evaluated.
  returned: success
  type: float
query_name:
  description: On failure, the query key or API object that failed.
  returned: failure
  type: str
query:
  description: On failure, the PromQL or the endpoint URL that failed.
  returned: failure
  type: str
reason:
  description: On failure, why it failed and how to fix it.
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import collect_prometheus
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_kubernetes import collect_kubernetes


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", default="prometheus", choices=["prometheus", "kubernetes"]),
            prometheus_url=dict(type="str"),
            bearer_token=dict(type="str", no_log=True),
            headers=dict(type="dict"),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            timeout=dict(type="float", default=10),
            retries=dict(type="int", default=2),
            queries=dict(type="dict"),
            rate_window=dict(type="str", default="5m"),
            max_sample_age=dict(type="float", default=120),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
        ),
        required_if=[("source", "prometheus", ["prometheus_url"])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["source"] == "prometheus":
            result = collect_prometheus(
                p["prometheus_url"], queries=p["queries"], bearer_token=p["bearer_token"], headers=p["headers"],
                validate_certs=p["validate_certs"], ca_path=p["ca_path"], timeout=p["timeout"],
                rate_window=p["rate_window"], max_sample_age=p["max_sample_age"], retries=p["retries"])
        else:
            result = collect_kubernetes(kubeconfig=p["kubeconfig"], context=p["context"],
                                        validate_certs=p["validate_certs"], timeout=p["timeout"])
    except MetricsError as exc:
        module.fail_json(**exc.to_dict())
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
