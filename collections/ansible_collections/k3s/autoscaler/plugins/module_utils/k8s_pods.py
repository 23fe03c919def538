# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pods bound to scale-down candidate nodes, with what protects them from eviction.

Production source for the binpacking policy's ``pods_detail`` (kube-state-metrics cannot tell
which PodDisruptionBudget selects a pod, so this reads the Kubernetes API).

* :func:`pods_detail_from_api` (pure): Pod and PodDisruptionBudget objects (API JSON dicts,
  camelCase) -> ``pods_detail`` records ``{namespace, name, node, cpu_cores (cores),
  memory_bytes (bytes), owner_kind, daemonset, safe_to_evict (True/False/None from annotation
  cluster-autoscaler.kubernetes.io/safe-to-evict), pdb_name, pdb_disruptions_allowed (int, None
  when no PDB selects the pod), kube_system}``. Requests are the sum over
  ``spec.containers[].resources.requests`` (like kube_pod_container_resource_requests).
  Disruptions allowed come from the PDB's ``status.disruptionsAllowed``; when the status is
  absent it is computed like the eviction API does (healthy matching pods minus the budget's
  ``minAvailable``, or minus (matching pods - ``maxUnavailable``)), from ``namespace_pods``.
  Several PDBs selecting one pod: the smallest allowance wins (the eviction API refuses such pods).
* :func:`fetch_pods_detail`: the API calls: ``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>``
  for each node, ``GET /apis/policy/v1/poddisruptionbudgets``, and ``GET /api/v1/namespaces/<ns>/pods``
  for namespaces whose PDBs have no status. Raises :class:`K8sPodsError` naming the endpoint.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_kubernetes import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    ApiException,
    k8s_client,
    new_api_client,
    _check_kubeconfig_file as check_kubeconfig_file,
)

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
TERMINAL_PHASES = ("Succeeded", "Failed")

_QTY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_MULT = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 1024.0, "Mi": 1024.0 ** 2, "Gi": 1024.0 ** 3, "Ti": 1024.0 ** 4, "Pi": 1024.0 ** 5,
         "Ei": 1024.0 ** 6}


class K8sPodsError(Exception):
    """Listing pods/PDBs failed or returned something unusable. ``endpoint`` names the API call."""

    def __init__(self, endpoint, reason):
        self.endpoint = endpoint
        self.reason = reason
        super(K8sPodsError, self).__init__("Kubernetes API %s: %s" % (endpoint, reason))


def parse_quantity(value, what):
    """Kubernetes quantity (``250m``, ``1.5``, ``512Mi``, ``1e3``) -> float. Raises ValueError naming ``what``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        m = _QTY.match(str(value).strip())
        if not m:
            raise ValueError("%s: %r is not a Kubernetes quantity (e.g. 250m, 1, 512Mi)" % (what, value))
        number = float(m.group(1)) * _MULT[m.group(2)]
    if not math.isfinite(number) or number < 0:
        raise ValueError("%s: %r must be a finite quantity >= 0" % (what, value))
    return number


def match_selector(selector, labels):
    """``metav1.LabelSelector`` matching (matchLabels + matchExpressions). ``None`` matches nothing,
    ``{}`` matches everything (policy/v1 PodDisruptionBudget semantics)."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _meta(obj):
    return obj.get("metadata") or {}


def _owner_kind(pod):
    refs = _meta(pod).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref.get("kind")
    return None


def _healthy(pod):
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or _meta(pod).get("deletionTimestamp"):
        return False
    return not any(c.get("type") == "Ready" and c.get("status") == "False" for c in status.get("conditions") or [])


def _active(pod):
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES and not _meta(pod).get("deletionTimestamp")


def disruptions_allowed(pdb, namespace_pods):
    """``status.disruptionsAllowed`` of ``pdb``, or computed from ``namespace_pods`` when absent.

    Computed like the eviction API: expected = active pods the selector matches, healthy =
    those Running and not Ready=False; desired = minAvailable (int or percent of expected,
    rounded up) or expected - maxUnavailable; no budget field means desired = expected.
    Returns max(0, healthy - desired), or 0 when the budget cannot be evaluated (never a guess
    that would allow an eviction).
    """
    status = pdb.get("status") or {}
    if isinstance(status.get("disruptionsAllowed"), int):
        return max(0, status["disruptionsAllowed"])
    if namespace_pods is None:
        return 0
    spec = pdb.get("spec") or {}
    matching = [p for p in namespace_pods
                if _active(p) and match_selector(spec.get("selector"), _meta(p).get("labels"))]
    expected = len(matching)
    healthy = sum(1 for p in matching if _healthy(p))

    def scaled(v):
        if isinstance(v, str) and v.endswith("%"):
            return int(math.ceil(expected * int(v[:-1]) / 100.0))
        return int(v)
    try:
        if spec.get("minAvailable") is not None:
            desired = scaled(spec["minAvailable"])
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled(spec["maxUnavailable"]))
        else:
            desired = expected
    except (TypeError, ValueError):
        return 0
    return max(0, healthy - desired)


def pods_detail_from_api(pods, pdbs, namespace_pods=None):
    """Build ``pods_detail`` (see module docstring) from API Pod and PodDisruptionBudget dicts.

    :param pods: Pod objects (dicts); only those bound to a node (``spec.nodeName``) and not
        Succeeded/Failed are returned.
    :param pdbs: PodDisruptionBudget objects of all namespaces.
    :param namespace_pods: ``{namespace: [Pod]}`` used to compute ``disruptionsAllowed`` for PDBs
        without status; missing namespaces fall back to 0 allowed (blocks, never guesses).
    :raises ValueError: a request is not a valid quantity (the message names the pod/container).
    """
    out = []
    by_ns = {}
    for pdb in pdbs or []:
        by_ns.setdefault(_meta(pdb).get("namespace"), []).append(pdb)
    allowed_cache = {}
    for pod in pods or []:
        meta, spec = _meta(pod), pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        ns, name = meta.get("namespace") or "default", meta.get("name") or ""
        cpu = mem = 0.0
        for c in spec.get("containers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            what = "pod %s/%s container %s" % (ns, name, c.get("name"))
            if "cpu" in req:
                cpu += parse_quantity(req["cpu"], what + " cpu request")
            if "memory" in req:
                mem += parse_quantity(req["memory"], what + " memory request")
        ann = (meta.get("annotations") or {}).get(SAFE_TO_EVICT)
        safe = True if str(ann).lower() == "true" else False if str(ann).lower() == "false" else None
        kind = _owner_kind(pod)
        pdb_name, pdb_allowed = None, None
        for pdb in by_ns.get(ns, []):
            if not match_selector((pdb.get("spec") or {}).get("selector"), meta.get("labels")):
                continue
            key = (ns, _meta(pdb).get("name"))
            if key not in allowed_cache:
                allowed_cache[key] = disruptions_allowed(
                    pdb, None if namespace_pods is None else namespace_pods.get(ns))
            if pdb_allowed is None or allowed_cache[key] < pdb_allowed:
                pdb_name, pdb_allowed = key[1], allowed_cache[key]
        out.append({"namespace": ns, "name": name, "node": node, "cpu_cores": cpu, "memory_bytes": int(round(mem)),
                    "owner_kind": kind, "daemonset": kind == "DaemonSet", "safe_to_evict": safe,
                    "pdb_name": pdb_name, "pdb_disruptions_allowed": pdb_allowed, "kube_system": ns == "kube-system"})
    out.sort(key=lambda p: (p["node"], p["namespace"], p["name"]))
    return out


def _api(kubeconfig, context, validate_certs):
    if not HAS_KUBERNETES:
        raise K8sPodsError("kubeconfig", "python package kubernetes is required: %s" % KUBERNETES_IMPORT_ERROR)
    try:
        check_kubeconfig_file(kubeconfig)  # a missing / non-YAML file, named as such
    except MetricsError as e:
        raise K8sPodsError("kubeconfig %s" % kubeconfig, e.reason)
    return new_api_client(kubeconfig, context, validate_certs, lambda e: K8sPodsError(
        "kubeconfig %s" % (kubeconfig or "~/.kube/config"),
        "cannot load the client configuration (context %r): %s; set kubeconfig/context" % (context, e)))


def _object(call, endpoint, timeout, *args, **kwargs):
    try:
        resp = call(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    except ApiException as e:
        body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else (e.body or "")
        raise K8sPodsError(endpoint, "HTTP %s %s: %s" % (e.status, e.reason, body[:300]))
    except Exception as e:  # urllib3 connection errors and friends
        raise K8sPodsError(endpoint, "cannot reach the API server: %s; check kubeconfig/context" % (str(e)[:300]))
    try:
        data = json.loads(resp.data)
    except ValueError:
        raise K8sPodsError(endpoint, "answer is not JSON: %r" % resp.data[:200])
    if not isinstance(data, dict):
        raise K8sPodsError(endpoint, "expected an object, got %r" % str(data)[:200])
    return data


def _items(call, endpoint, timeout, *args, **kwargs):
    data = _object(call, endpoint, timeout, *args, **kwargs)
    if not isinstance(data.get("items"), list):
        raise K8sPodsError(endpoint, "expected a List with items, got %r" % str(data)[:200])
    return data["items"]


def fetch_pods_detail(node_names, kubeconfig=None, context=None, validate_certs=True, timeout=10,
                      with_annotations=False):
    """List the pods on ``node_names`` and all PDBs; return :func:`pods_detail_from_api` of them.

    With ``with_annotations`` also read each node (``GET /api/v1/nodes/<node>``) and return
    ``(pods_detail, {node: metadata.annotations})`` (the binpacking policy reads
    ``cluster-autoscaler.kubernetes.io/scale-down-disabled`` from them).

    :raises K8sPodsError: naming the endpoint (``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>``,
        ``GET /apis/policy/v1/poddisruptionbudgets``, ``GET /api/v1/namespaces/<ns>/pods``,
        ``GET /api/v1/nodes/<node>``).
    """
    api = _api(kubeconfig, context, validate_certs)
    annotations = {}
    try:
        core = k8s_client.CoreV1Api(api)
        if with_annotations:
            for node in sorted(set(node_names)):
                annotations[node] = _meta(_object(core.read_node, "GET /api/v1/nodes/%s" % node, timeout,
                                                  node)).get("annotations") or {}
        policy = k8s_client.PolicyV1Api(api)
        pods = []
        for node in sorted(set(node_names)):
            pods.extend(_items(core.list_pod_for_all_namespaces, "GET /api/v1/pods?fieldSelector=spec.nodeName=%s" % node,
                               timeout, field_selector="spec.nodeName=%s" % node))
        pdbs = _items(policy.list_pod_disruption_budget_for_all_namespaces,
                      "GET /apis/policy/v1/poddisruptionbudgets", timeout)
        namespace_pods = {}
        for ns in sorted(set(_meta(p).get("namespace") for p in pdbs
                             if not isinstance((p.get("status") or {}).get("disruptionsAllowed"), int))):
            namespace_pods[ns] = _items(core.list_namespaced_pod, "GET /api/v1/namespaces/%s/pods" % ns, timeout, ns)
    finally:
        api.close()
    try:
        detail = pods_detail_from_api(pods, pdbs, namespace_pods)
    except ValueError as e:
        raise K8sPodsError("GET /api/v1/pods", str(e))
    return (detail, annotations) if with_annotations else detail
