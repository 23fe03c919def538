# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Collect k3s cluster state from the Kubernetes API with the official ``kubernetes`` client.

Endpoints used (the result's ``queries`` maps the same keys to these URLs):

* ``nodes``: ``GET /api/v1/nodes`` - name, spec.providerID, spec.unschedulable, Ready condition,
  status.allocatable cpu/memory, label node.kubernetes.io/instance-type.
* ``pending_pods``: ``GET /api/v1/pods?fieldSelector=status.phase=Pending``.
* ``running_pods``: ``GET /api/v1/pods?fieldSelector=status.phase=Running``.
  Requests = sum of ``spec.containers[].resources.requests`` (init containers and overhead are
  not counted, like kube-state-metrics' kube_pod_container_resource_requests).
* ``node_usage``: ``GET /apis/metrics.k8s.io/v1beta1/nodes`` - usage.cpu / usage.memory, reported
  as PERCENT of the node's allocatable (like ``kubectl top node``; can exceed 100). When the API
  answers 404 (no metrics-server), usage is omitted and a warning is returned. Never guessed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import time

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.utils.quantity import parse_quantity
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc
    # importable names for k8s_pods.py; never used unless HAS_KUBERNETES
    k8s_client = k8s_config = ApiException = ConfigException = parse_quantity = None

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import (
    MetricsError,
    assemble_result,
    checked_number,
    new_node,
    new_pending_pod,
    set_provider_id,
)

ENDPOINTS = {
    "nodes": "/api/v1/nodes",
    "pending_pods": "/api/v1/pods?fieldSelector=status.phase%3DPending",
    "running_pods": "/api/v1/pods?fieldSelector=status.phase%3DRunning",
    "node_usage": "/apis/metrics.k8s.io/v1beta1/nodes",
}
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


# Role labels of control-plane (server) nodes; k3s sets both on servers.
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def _check_kubeconfig_file(kubeconfig):
    """Name the real problem of an explicit kubeconfig path (the client's own messages for a missing
    or non-YAML file are misleading, e.g. "Expected key current-context")."""
    if not kubeconfig:
        return
    if not os.path.isfile(kubeconfig):
        raise MetricsError("kubeconfig", kubeconfig, "kubeconfig file %s does not exist (or is not a file); "
                                                     "set kubeconfig to the path of a readable kubeconfig" % kubeconfig)
    try:
        import yaml
        with open(kubeconfig, "r") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsError("kubeconfig", kubeconfig, "cannot read kubeconfig file %s: %s" % (kubeconfig, exc))
    except yaml.YAMLError as exc:
        raise MetricsError("kubeconfig", kubeconfig, "kubeconfig file %s is not valid YAML: %s"
                           % (kubeconfig, str(exc)[:200]))
    if not isinstance(data, dict):
        raise MetricsError("kubeconfig", kubeconfig, "kubeconfig file %s is not a kubeconfig (a YAML mapping with "
                                                     "clusters, contexts, users), got %s"
                           % (kubeconfig, type(data).__name__ if data is not None else "an empty file"))


def new_api_client(kubeconfig, context, validate_certs, load_error):
    """A ``kubernetes.client.ApiClient`` (no urllib3 retries) from ``kubeconfig``/``context``, or the in-cluster
    service account when neither is set and ``KUBERNETES_SERVICE_HOST`` is (i.e. inside a pod).

    Shared by :func:`_api_client` and ``k8s_pods``; the caller has checked HAS_KUBERNETES and the kubeconfig file.
    ``load_error(exc)`` returns the exception to raise when the client cannot load that configuration.
    """
    cfg = k8s_client.Configuration()
    try:
        if not kubeconfig and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise load_error(exc)
    if not validate_certs:
        cfg.verify_ssl = False
    cfg.retries = 0
    return k8s_client.ApiClient(cfg)


def _api_client(kubeconfig, context, validate_certs):
    if not HAS_KUBERNETES:
        raise MetricsError("kubeconfig", kubeconfig, "python package kubernetes is required: %s" % KUBERNETES_IMPORT_ERROR)
    _check_kubeconfig_file(kubeconfig)
    return new_api_client(kubeconfig, context, validate_certs, lambda exc: MetricsError(
        "kubeconfig", kubeconfig or "~/.kube/config",
        "cannot load Kubernetes client configuration (context %r): %s; set kubeconfig/context "
        "or run in-cluster" % (context, exc)))


def _call(api, name, timeout):
    """Issue the typed client call for endpoint ``name`` without deserialising (raw urllib3 response)."""
    kwargs = dict(_preload_content=False, _request_timeout=timeout)
    if name == "nodes":
        return k8s_client.CoreV1Api(api).list_node(**kwargs)
    if name in ("pending_pods", "running_pods"):
        phase = "Pending" if name == "pending_pods" else "Running"
        return k8s_client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector="status.phase=%s" % phase, **kwargs)
    return k8s_client.CustomObjectsApi(api).list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes", **kwargs)


def _get(api, name, timeout, allow_404=False):
    """GET the endpoint ``ENDPOINTS[name]``; return the decoded List dict (None on 404 when ``allow_404``)."""
    url = api.configuration.host.rstrip("/") + ENDPOINTS[name]
    try:
        resp = _call(api, name, timeout)
    except ApiException as exc:
        if allow_404 and exc.status == 404:
            return None
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else (exc.body or "")
        hint = {401: "; the kubeconfig user's credentials (token or client certificate) were rejected: renew them",
                403: "; the kubeconfig user lacks RBAC permission for this list: bind it to the ClusterRole of "
                     "roles/k3s_manifests (nodes, pods get/list/watch)"}.get(exc.status, "")
        raise MetricsError(name, url, "HTTP %s %s from the Kubernetes API: %s%s"
                           % (exc.status, exc.reason, body[:300], hint))
    except Exception as exc:  # urllib3 connection/timeout errors and friends
        raise MetricsError(name, url, "cannot reach the Kubernetes API: %s; check kubeconfig/context and that the "
                                      "API server is running" % (str(exc)[:300]))
    body = resp.data
    try:
        data = json.loads(body)
    except ValueError:
        raise MetricsError(name, url, "the Kubernetes API answered a body that is not JSON: %r" % body[:200])
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise MetricsError(name, url, "expected a List object with items, got %r" % (str(data)[:200]))
    return data


def _quantity(value, name, url, what):
    try:
        number = parse_quantity(value)
    except (ValueError, TypeError) as exc:
        raise MetricsError(name, url, "%s: %r is not a Kubernetes quantity (%s)" % (what, value, exc))
    return checked_number(number, name, url, what)


def _parse_time(value):
    if not value:
        return None
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def _owner_kind(pod):
    refs = pod.get("metadata", {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref.get("kind")
    return refs[0].get("kind") if refs else None


def _pod_requests(pod, name, url):
    cpu = 0.0
    mem = 0.0
    what = "pod %s/%s" % (pod.get("metadata", {}).get("namespace"), pod.get("metadata", {}).get("name"))
    for container in pod.get("spec", {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        if "cpu" in requests:
            cpu += _quantity(requests["cpu"], name, url, "%s container %s cpu request" % (what, container.get("name")))
        if "memory" in requests:
            mem += _quantity(requests["memory"], name, url, "%s container %s memory request" % (what, container.get("name")))
    return cpu, int(round(mem))


def _unschedulable(pod):
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return True
    return False


def collect_kubernetes(kubeconfig=None, context=None, validate_certs=True, timeout=10, now=None):
    """Collect cluster state from the Kubernetes API.

    :param kubeconfig: kubeconfig path; with neither it nor ``context`` and ``KUBERNETES_SERVICE_HOST``
        set, the in-cluster service account is used, otherwise the default kubeconfig.
    :param context: kubeconfig context name.
    :param validate_certs: verify the API server certificate.
    :param timeout: per-request timeout in seconds.
    :returns: same shape as ``collect_prometheus`` with ``source='kubernetes'`` and ``queries`` = endpoint URLs.
        Without metrics.k8s.io, ``metrics`` has no ``avg_cpu``/``avg_memory`` keys, per-node
        ``cpu_percent``/``memory_percent`` are null and ``warnings`` says why.
    :raises MetricsError: naming the endpoint URL on any failure.
    """
    api = _api_client(kubeconfig, context, validate_certs)
    host = api.configuration.host.rstrip("/")
    urls = dict((k, host + v) for k, v in ENDPOINTS.items())
    at = time.time() if now is None else float(now)
    warnings = []
    try:
        node_list = _get(api, "nodes", timeout)
        if not node_list["items"]:
            raise MetricsError("nodes", urls["nodes"], "the API returned no nodes; a cluster always has nodes")
        nodes = {}
        for item in node_list["items"]:
            meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status", {})
            node = new_node(meta.get("name"))
            set_provider_id(node, spec.get("providerID"))
            labels = meta.get("labels") or {}
            node["instance_type"] = next((labels[k] for k in INSTANCE_TYPE_LABELS if labels.get(k)), None)
            node["control_plane"] = any(k in labels for k in CONTROL_PLANE_LABELS)
            node["unschedulable"] = bool(spec.get("unschedulable"))
            node["ready"] = any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in status.get("conditions") or [])
            alloc = status.get("allocatable") or {}
            for field, res in (("allocatable_cpu_cores", "cpu"), ("allocatable_memory_bytes", "memory")):
                if res in alloc:
                    value = _quantity(alloc[res], "nodes", urls["nodes"], "node %s allocatable %s" % (node["name"], res))
                    node[field] = value if res == "cpu" else int(round(value))
                elif node["ready"]:
                    raise MetricsError("nodes", urls["nodes"], "Ready node %s has no status.allocatable.%s"
                                       % (node["name"], res))
            nodes[node["name"]] = node

        pending = []
        ds_per_node = {}
        unschedulable = 0
        total_cpu = 0.0
        total_mem = 0
        for key in ("pending_pods", "running_pods"):
            for pod in _get(api, key, timeout)["items"]:
                meta = pod.get("metadata", {})
                cpu, mem = _pod_requests(pod, key, urls[key])
                total_cpu += cpu
                total_mem += mem
                node = nodes.get(pod.get("spec", {}).get("nodeName"))
                if node is not None:
                    node["requested_cpu_cores"] += cpu
                    node["requested_memory_bytes"] += mem
                    node["pods"] += 1
                    if _owner_kind(pod) == "DaemonSet":
                        acc = ds_per_node.setdefault(node["name"], [0.0, 0])
                        acc[0] += cpu
                        acc[1] += mem
                if key != "pending_pods":
                    continue
                if _unschedulable(pod):
                    unschedulable += 1
                kind = _owner_kind(pod)
                if kind == "DaemonSet":
                    continue
                record = new_pending_pod(meta.get("namespace"), meta.get("name"))
                record.update(cpu_cores=cpu, memory_bytes=mem, owner_kind=kind)
                created = _parse_time(meta.get("creationTimestamp"))
                record["age_seconds"] = max(0.0, at - created) if created is not None else None
                pending.append(record)

        usage = _get(api, "node_usage", timeout, allow_404=True)
    finally:
        api.close()

    usage_available = usage is not None
    if not usage_available:
        warnings.append("metrics.k8s.io is not served (404 from %s; is metrics-server running?): avg_cpu, avg_memory "
                        "and per-node cpu_percent/memory_percent are omitted" % urls["node_usage"])
    else:
        for item in usage["items"]:
            node = nodes.get(item.get("metadata", {}).get("name"))
            if node is None:
                continue
            u = item.get("usage") or {}
            for field, res, alloc in (("cpu_percent", "cpu", "allocatable_cpu_cores"),
                                      ("memory_percent", "memory", "allocatable_memory_bytes")):
                if res in u and node[alloc]:
                    used = _quantity(u[res], "node_usage", urls["node_usage"], "node %s usage %s" % (node["name"], res))
                    node[field] = 100.0 * used / node[alloc]

    result = assemble_result(
        list(nodes.values()), pending, unschedulable, total_cpu, total_mem, source="kubernetes", queries=urls,
        collected_at=at, warnings=warnings, usage_available=usage_available,
        usage_sources={"cpu_percent": ("node_usage", urls["node_usage"]),
                       "memory_percent": ("node_usage", urls["node_usage"])})
    # DaemonSet requests per node, max over nodes (the overhead a new node carries); 0 without DaemonSet pods.
    result["metrics"]["daemonset_requests"] = {
        "cpu_cores": max([v[0] for v in ds_per_node.values()] or [0.0]),
        "memory_bytes": max([v[1] for v in ds_per_node.values()] or [0])}
    return result
