# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Collect k3s cluster state from Prometheus (kube-state-metrics v2 + node-exporter).

Public API:

* :data:`DEFAULT_QUERIES` - query key -> PromQL (instant queries, all evaluated at the same
  ``time``). ``$rate_window`` in a query is replaced by the ``rate_window`` argument.
* :func:`collect_prometheus` - run the queries and return the shared result shape
  (see :func:`metrics_common.assemble_result`).

Every number is validated (finite, non-negative where that is the only meaning); a failed check
raises :class:`MetricsError` naming the query key and the PromQL.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

try:
    import requests
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from urllib3.util.retry import Retry
    HAS_PROMETHEUS_API_CLIENT = True
    PROMETHEUS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    HAS_PROMETHEUS_API_CLIENT = False
    PROMETHEUS_IMPORT_ERROR = exc

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import (
    MetricsError,
    assemble_result,
    checked_number,
    new_node,
    new_pending_pod,
    set_provider_id,
)

#: key -> PromQL. Metric names are exactly those of kube-state-metrics v2 and node-exporter.
DEFAULT_QUERIES = {
    # Seconds since the freshest kube_node_info sample; compared with max_sample_age.
    "freshness": "time() - max(timestamp(kube_node_info))",
    # One series per node: labels node, provider_id, internal_ip, kubelet_version, ...
    "nodes": "kube_node_info",
    # Control-plane (server) nodes: excluded from the scaling figures (k3s sets both roles on servers).
    "node_role": 'kube_node_role{role=~"control-plane|master"}',
    # Node labels (only those allowed by kube-state-metrics --metric-labels-allowlist); used for
    # label_node_kubernetes_io_instance_type. May be empty.
    "node_labels": "kube_node_labels",
    # 1 = node condition Ready is true.
    "node_ready": 'kube_node_status_condition{condition="Ready",status="true"}',
    # 1 = node is cordoned (spec.unschedulable).
    "node_unschedulable": "kube_node_spec_unschedulable",
    # Allocatable CPU (unit core) and memory (unit byte) per node.
    "node_allocatable": 'kube_node_status_allocatable{resource=~"cpu|memory"}',
    # Pods in phase Pending, DaemonSet-owned pods excluded. Empty = 0 pending pods.
    "pending_pods": '(kube_pod_status_phase{phase="Pending"} == 1) '
                    'unless on(namespace, pod) kube_pod_owner{owner_kind="DaemonSet"}',
    # Pods whose PodScheduled condition is False/Unschedulable. Empty = 0.
    "unschedulable_pods": "kube_pod_status_unschedulable == 1",
    # Requests (cores / bytes) of active pods, summed over containers: Running pods summed per node
    # (one series per node and resource, no namespace/pod labels), Pending pods one series per pod
    # (labels namespace, pod, node; node is absent while the pod is not bound). The response is
    # O(nodes + pending pods), not O(pods): 2,002 series / 0.2 MB instead of 62,002 series / 9.4 MB
    # at 1,000 nodes / 30,000 pods. A per-pod override (sum by (namespace, pod, node, resource))
    # gives the same figures. `and on(namespace, pod)` filters without a group_left join.
    "pod_requests": 'sum by (node, resource) ('
                    'kube_pod_container_resource_requests{resource=~"cpu|memory"} '
                    'and on(namespace, pod) (kube_pod_status_phase{phase="Running"} == 1)) '
                    'or sum by (namespace, pod, node, resource) ('
                    'kube_pod_container_resource_requests{resource=~"cpu|memory"} '
                    'and on(namespace, pod) (kube_pod_status_phase{phase="Pending"} == 1))',
    # Number of active (Pending or Running) pods bound to each node.
    "node_pods": 'count by (node) (kube_pod_info{node!=""} '
                 'and on(namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"} == 1))',
    # Owner kind of pending pods (label owner_kind; "<none>" when the pod has no owner).
    "pod_owner": 'kube_pod_owner * on(namespace, pod) group_left() '
                 '(max by (namespace, pod) (kube_pod_status_phase{phase="Pending"} == 1))',
    # Age in seconds of pending pods.
    "pod_age": 'time() - (kube_pod_created * on(namespace, pod) group_left() '
               '(max by (namespace, pod) (kube_pod_status_phase{phase="Pending"} == 1)))',
    # DaemonSet requests per node (cores / bytes), max over nodes: the overhead a NEW node carries.
    # Empty = no DaemonSet pods = 0.
    "daemonset_requests": 'max by (resource) (sum by (node, resource) ('
                          'kube_pod_container_resource_requests{resource=~"cpu|memory"} '
                          'and on(namespace, pod) kube_pod_owner{owner_kind="DaemonSet"} '
                          'and on(namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"} == 1)))',
    # CPU utilisation percent 0-100 per node (label nodename == Kubernetes node name in k3s).
    "node_cpu_percent": '100 * (1 - avg by (nodename) ('
                        'rate(node_cpu_seconds_total{mode="idle"}[$rate_window]) '
                        '* on(instance) group_left(nodename) node_uname_info))',
    # Memory utilisation percent 0-100 per node.
    "node_memory_percent": '100 * (1 - avg by (nodename) ('
                           '(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) '
                           '* on(instance) group_left(nodename) node_uname_info))',
}

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|[smhdwy]))+$")
_RETRY_STATUS = (408, 429, 502, 503, 504)
# Utilisation computed from rates can be off by a hair at the edges; beyond this it is an error.
_PERCENT_SLACK = 1.0


def build_queries(queries=None, rate_window="5m"):
    """Merge user overrides into :data:`DEFAULT_QUERIES` and substitute ``$rate_window``.

    :raises MetricsError: unknown key (the message lists the valid keys), empty/non-string PromQL,
        or a ``rate_window`` that is not a PromQL duration.
    """
    if not isinstance(rate_window, str) or not _DURATION.match(rate_window):
        raise MetricsError("rate_window", rate_window,
                           "not a PromQL duration; use e.g. 30s, 5m or 1h")
    merged = dict(DEFAULT_QUERIES)
    for key, value in (queries or {}).items():
        if key not in DEFAULT_QUERIES:
            raise MetricsError(key, value, "unknown query key; valid keys are: %s" % ", ".join(sorted(DEFAULT_QUERIES)))
        if not isinstance(value, str) or not value.strip():
            raise MetricsError(key, value, "the override must be a non-empty PromQL string")
        merged[key] = value
    return dict((k, v.replace("$rate_window", rate_window)) for k, v in merged.items())


class _Client(object):
    """Thin wrapper over PrometheusConnect that maps every failure to MetricsError."""

    def __init__(self, url, bearer_token=None, headers=None, validate_certs=True, ca_path=None,
                 timeout=10, retries=2):
        if not HAS_PROMETHEUS_API_CLIENT:
            raise MetricsError("prometheus_url", url, "python package prometheus-api-client is required: %s"
                               % PROMETHEUS_IMPORT_ERROR)
        if not url or not re.match(r"^https?://", url):
            raise MetricsError("prometheus_url", url, "must be an http:// or https:// URL, e.g. http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/api/v1/query"
        self.timeout = timeout
        all_headers = dict(headers or {})
        if bearer_token:
            all_headers["Authorization"] = "Bearer %s" % bearer_token
        session = requests.Session()
        if not validate_certs:
            session.verify = False
        elif ca_path:
            session.verify = ca_path
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.2,
                      status_forcelist=_RETRY_STATUS, raise_on_status=False)
        self.prom = PrometheusConnect(url=self.url, headers=all_headers or None, retry=retry,
                                      session=session, timeout=timeout)

    def query(self, name, promql, at):
        """Run an instant query at unix time ``at``; return the list of ``{metric, value}``."""
        try:
            result = self.prom.custom_query(promql, params={"time": "%.3f" % at})
        except ValueError:
            # requests' JSONDecodeError is both a ValueError and a RequestException: handle it first.
            raise MetricsError(name, promql, "%s answered HTTP 200 with a body that is not JSON (an HTML error page "
                                             "or a proxy/login page?); check prometheus_url points at Prometheus"
                               % self.endpoint)
        except requests.exceptions.SSLError as exc:
            raise MetricsError(name, promql, "TLS error talking to %s: %s; set ca_path to the CA bundle "
                                             "(or validate_certs=false for testing)" % (self.endpoint, exc))
        except requests.exceptions.Timeout:
            raise MetricsError(name, promql, "no answer from %s within %s s; raise timeout or check Prometheus load"
                               % (self.endpoint, self.timeout))
        except requests.exceptions.ConnectionError as exc:
            raise MetricsError(name, promql, "cannot connect to Prometheus at %s: %s; check prometheus_url and that "
                                             "Prometheus is running and reachable" % (self.endpoint, _short(exc)))
        except requests.exceptions.RequestException as exc:
            raise MetricsError(name, promql, "request to %s failed: %s" % (self.endpoint, _short(exc)))
        except PrometheusApiClientException as exc:
            raise MetricsError(name, promql, "%s answered with an error: %s" % (self.endpoint, _short(exc)))
        except (KeyError, TypeError):
            raise MetricsError(name, promql, "%s answered JSON without data.result; is this a Prometheus HTTP API?"
                               % self.endpoint)
        if not isinstance(result, list) or any(not isinstance(s, dict) or "value" not in s for s in result):
            raise MetricsError(name, promql, "expected an instant vector (list of series with a value) from %s; "
                                             "scalar/matrix/string results are not supported" % self.endpoint)
        return result


def _short(exc, limit=300):
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def _series_name(sample):
    labels = sample.get("metric", {})
    return "{%s}" % ",".join('%s="%s"' % (k, labels[k]) for k in sorted(labels))


def _value(sample, name, promql, allow_negative=False):
    value = sample["value"][1] if isinstance(sample.get("value"), list) and len(sample["value"]) == 2 else None
    return checked_number(value, name, promql, "series %s" % _series_name(sample), allow_negative=allow_negative)


def _label(sample, label, name, promql):
    value = sample.get("metric", {}).get(label)
    if not value:
        raise MetricsError(name, promql, "series %s has no '%s' label; the query must keep that label"
                           % (_series_name(sample), label))
    return value


def _percent(sample, name, promql):
    number = _value(sample, name, promql, allow_negative=True)
    if number < -_PERCENT_SLACK or number > 100 + _PERCENT_SLACK:
        raise MetricsError(name, promql, "series %s: %s is not a percentage 0-100" % (_series_name(sample), number))
    return min(100.0, max(0.0, number))


def collect_prometheus(url, queries=None, bearer_token=None, headers=None, validate_certs=True, ca_path=None,
                       timeout=10, rate_window="5m", max_sample_age=120, retries=2, now=None):
    """Collect cluster state from Prometheus.

    :param url: Prometheus base URL, e.g. ``http://127.0.0.1:9090``.
    :param queries: dict overriding entries of :data:`DEFAULT_QUERIES` by key.
    :param bearer_token: sent as ``Authorization: Bearer <token>``.
    :param headers: extra HTTP headers (dict).
    :param validate_certs: verify TLS certificates (bool).
    :param ca_path: CA bundle file for TLS verification.
    :param timeout: per-request timeout in seconds.
    :param rate_window: PromQL duration substituted for ``$rate_window``.
    :param max_sample_age: seconds; the freshest ``kube_node_info`` sample must be younger, 0 disables.
    :param retries: retries on connection errors and HTTP 408/429/502/503/504.
    :param now: evaluation time (unix seconds) for all queries; default the current time.
    :returns: ``dict(metrics, nodes_detail, pending_pods_detail, warnings, source='prometheus', queries,
        collected_at)``.
    :raises MetricsError: on any failure; nothing is made up.
    """
    q = build_queries(queries, rate_window)
    client = _Client(url, bearer_token=bearer_token, headers=headers, validate_certs=validate_certs,
                     ca_path=ca_path, timeout=timeout, retries=retries)
    at = time.time() if now is None else float(now)
    warnings = []

    def run(name):
        return client.query(name, q[name], at)

    # --- nodes -----------------------------------------------------------------------------------
    node_series = run("nodes")
    if not node_series:
        raise MetricsError("nodes", q["nodes"], "empty result from %s: a cluster always has nodes; is "
                                                "kube-state-metrics scraped (check up{} of its job) and its data fresh?"
                           % client.endpoint)
    if max_sample_age:
        fresh = run("freshness")
        if not fresh:
            raise MetricsError("freshness", q["freshness"], "empty result from %s; cannot tell the data age"
                               % client.endpoint)
        age = checked_number(fresh[0]["value"][1], "freshness", q["freshness"], "age in seconds",
                             allow_negative=True)
        if age > max_sample_age:
            raise MetricsError("freshness", q["freshness"],
                               "stale data: the freshest kube_node_info sample is %.0f s old (max_sample_age=%s s); "
                               "is kube-state-metrics still being scraped?" % (age, max_sample_age))

    nodes = {}
    for s in node_series:
        name = _label(s, "node", "nodes", q["nodes"])
        if name not in nodes:
            nodes[name] = new_node(name)
            set_provider_id(nodes[name], s["metric"].get("provider_id"))

    for s in run("node_role"):
        # a role series without its node label must not silently count a control plane as an agent
        name = _label(s, "node", "node_role", q["node_role"])
        if name in nodes:
            nodes[name]["control_plane"] = True

    for s in run("node_labels"):
        name = _label(s, "node", "node_labels", q["node_labels"])
        labels = s.get("metric", {})
        itype = labels.get("label_node_kubernetes_io_instance_type") or labels.get("label_beta_kubernetes_io_instance_type")
        if name in nodes and itype:
            nodes[name]["instance_type"] = itype

    for key, field in (("node_ready", "ready"), ("node_unschedulable", "unschedulable")):
        for s in run(key):
            name = _label(s, "node", key, q[key])
            value = _value(s, key, q[key])
            if name in nodes and value == 1:
                nodes[name][field] = True

    for s in run("node_allocatable"):
        name = _label(s, "node", "node_allocatable", q["node_allocatable"])
        resource = _label(s, "resource", "node_allocatable", q["node_allocatable"])
        value = _value(s, "node_allocatable", q["node_allocatable"])
        if name not in nodes:
            continue
        if resource == "cpu":
            nodes[name]["allocatable_cpu_cores"] = value
        elif resource == "memory":
            nodes[name]["allocatable_memory_bytes"] = int(round(value))
    for node in nodes.values():
        if node["ready"]:
            for field, res in (("allocatable_cpu_cores", "cpu"), ("allocatable_memory_bytes", "memory")):
                if node[field] is None:
                    raise MetricsError("node_allocatable", q["node_allocatable"],
                                       "Ready node %s has no allocatable %s series; cannot compute requests percent"
                                       % (node["name"], res))

    for s in run("node_pods"):
        name = _label(s, "node", "node_pods", q["node_pods"])
        if name in nodes:
            nodes[name]["pods"] = int(_value(s, "node_pods", q["node_pods"]))

    # --- pods --------------------------------------------------------------------------------------
    pending = {}
    for s in run("pending_pods"):
        key = (_label(s, "namespace", "pending_pods", q["pending_pods"]), _label(s, "pod", "pending_pods", q["pending_pods"]))
        _value(s, "pending_pods", q["pending_pods"])
        pending[key] = new_pending_pod(*key)

    unschedulable = run("unschedulable_pods")
    for s in unschedulable:
        _value(s, "unschedulable_pods", q["unschedulable_pods"])
    unschedulable_pods = len(set((s["metric"].get("namespace"), s["metric"].get("pod")) for s in unschedulable))

    total_cpu = 0.0
    total_mem = 0.0
    for s in run("pod_requests"):
        resource = _label(s, "resource", "pod_requests", q["pod_requests"])
        value = _value(s, "pod_requests", q["pod_requests"])
        labels = s["metric"]
        node = nodes.get(labels.get("node"))
        pod = pending.get((labels.get("namespace"), labels.get("pod")))
        if resource == "cpu":
            total_cpu += value
            if node is not None:
                node["requested_cpu_cores"] += value
            if pod is not None:
                pod["cpu_cores"] += value
        elif resource == "memory":
            total_mem += value
            if node is not None:
                node["requested_memory_bytes"] += int(round(value))
            if pod is not None:
                pod["memory_bytes"] += int(round(value))

    if pending:
        for s in run("pod_owner"):
            pod = pending.get((s["metric"].get("namespace"), s["metric"].get("pod")))
            kind = s["metric"].get("owner_kind")
            if pod is not None and kind and kind != "<none>":
                pod["owner_kind"] = kind
        for s in run("pod_age"):
            pod = pending.get((s["metric"].get("namespace"), s["metric"].get("pod")))
            if pod is not None:
                pod["age_seconds"] = _value(s, "pod_age", q["pod_age"])

    ds_requests = {"cpu_cores": 0.0, "memory_bytes": 0}
    for s in run("daemonset_requests"):
        resource = _label(s, "resource", "daemonset_requests", q["daemonset_requests"])
        value = _value(s, "daemonset_requests", q["daemonset_requests"])
        if resource == "cpu":
            ds_requests["cpu_cores"] = value
        elif resource == "memory":
            ds_requests["memory_bytes"] = int(round(value))

    # --- usage ------------------------------------------------------------------------------------
    for key, field in (("node_cpu_percent", "cpu_percent"), ("node_memory_percent", "memory_percent")):
        for s in run(key):
            name = _label(s, "nodename", key, q[key])
            if name in nodes:
                nodes[name][field] = _percent(s, key, q[key])

    result = assemble_result(
        list(nodes.values()), list(pending.values()), unschedulable_pods, total_cpu, int(round(total_mem)),
        source="prometheus", queries=q, collected_at=at, warnings=warnings, usage_available=True,
        usage_sources={"cpu_percent": ("node_cpu_percent", q["node_cpu_percent"]),
                       "memory_percent": ("node_memory_percent", q["node_memory_percent"])},
    )
    result["metrics"]["daemonset_requests"] = ds_requests
    return result
