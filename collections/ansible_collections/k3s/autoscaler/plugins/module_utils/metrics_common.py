# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pieces of the k3s_metrics collectors (Prometheus and Kubernetes API sources).

Everything here is source-agnostic:

* :class:`MetricsError` - the single error type the collectors raise.
* :func:`parse_provider_id` - ``aws:///<az>/<instance-id>`` -> ``(az, instance_id)``.
* :func:`checked_number` - turn a raw sample/quantity into a finite float or raise.
* :func:`new_node` / :func:`new_pending_pod` - the record shapes of ``nodes_detail`` and
  ``pending_pods_detail``.
* :func:`assemble_result` - compute the cluster-level ``metrics`` dict from the per-node records.

Units everywhere: CPU in cores (float), memory in bytes (int), utilisation in PERCENT 0-100,
ages in seconds, timestamps in unix seconds.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import re

# providerID of an EC2-backed node as set by the AWS cloud provider / k3s --kubelet-arg=provider-id:
#   aws:///us-east-1a/i-0123456789abcdef0   (zone may be empty: aws:////i-0123...)
_AWS_PROVIDER_ID = re.compile(r"^aws://(?:/(?P<az>[^/]*))?/(?P<instance_id>i-[0-9a-f]{8,17})$")


class MetricsError(Exception):
    """A metric could not be collected or failed validation.

    :param query_name: the key of the query (e.g. ``nodes``, ``node_cpu_percent``) or, for the
        Kubernetes source, the API object collected (e.g. ``nodes``, ``pending_pods``).
    :param query: the PromQL expression or the API endpoint URL that was used.
    :param reason: human readable reason, including how to fix it where known.
    """

    def __init__(self, query_name, query, reason):
        self.query_name = query_name
        self.query = query
        self.reason = reason
        super(MetricsError, self).__init__(self.message)

    @property
    def message(self):
        return "k3s_metrics: %s [%s]: %s" % (self.query_name, self.query, self.reason)

    def to_dict(self):
        return dict(msg=self.message, query_name=self.query_name, query=self.query, reason=self.reason)


def parse_provider_id(provider_id):
    """Parse a Kubernetes node ``spec.providerID``.

    :returns: ``(availability_zone, instance_id)`` for ``aws:///<az>/<instance-id>``
        (``availability_zone`` is ``None`` when empty), or ``(None, None)`` when the node is not an
        EC2 node or the providerID is missing/unrecognised. Never guesses.
    """
    if not provider_id or not isinstance(provider_id, str):
        return None, None
    match = _AWS_PROVIDER_ID.match(provider_id.strip())
    if not match:
        return None, None
    return (match.group("az") or None), match.group("instance_id")


def checked_number(value, query_name, query, what, allow_negative=False):
    """Convert a Prometheus sample value (string such as ``"0.5"``, ``"NaN"``, ``"+Inf"``) or a
    number to a finite float.

    :raises MetricsError: if the value is not a number, NaN, +/-Inf, or negative while
        ``allow_negative`` is false. ``what`` names the series/object in the message.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricsError(query_name, query, "%s: value %r is not a number" % (what, value))
    if math.isnan(number):
        raise MetricsError(query_name, query, "%s: value is NaN; the exporter/API reports no valid number "
                                              "for this series (check the exporter or override the query)" % what)
    if math.isinf(number):
        raise MetricsError(query_name, query, "%s: value is %s; refusing to use an infinite number" % (what, value))
    if number < 0 and not allow_negative:
        raise MetricsError(query_name, query, "%s: value %s is negative, which is impossible for this metric" % (what, number))
    return number


def new_node(name):
    """Empty ``nodes_detail`` record for node ``name`` (fields filled by the collectors)."""
    return dict(
        name=name,
        provider_id=None,
        instance_id=None,
        availability_zone=None,
        instance_type=None,
        ready=False,
        unschedulable=False,
        allocatable_cpu_cores=None,
        allocatable_memory_bytes=None,
        requested_cpu_cores=0.0,
        requested_memory_bytes=0,
        pods=0,
        cpu_percent=None,
        memory_percent=None,
        control_plane=False,
    )


def set_provider_id(node, provider_id):
    node["provider_id"] = provider_id or None
    node["availability_zone"], node["instance_id"] = parse_provider_id(provider_id)


def new_pending_pod(namespace, name):
    """Empty ``pending_pods_detail`` record."""
    return dict(namespace=namespace, name=name, cpu_cores=0.0, memory_bytes=0, owner_kind=None, age_seconds=None)


def _mean(values):
    return sum(values) / len(values)


def assemble_result(nodes, pending_pods, unschedulable_pods, total_requested_cpu, total_requested_memory,
                    source, queries, collected_at, warnings=None, usage_available=True, usage_sources=None):
    """Build the collector result from per-node and per-pending-pod records.

    :param nodes: list of :func:`new_node` records (all nodes of the cluster). Records with
        ``control_plane`` true are returned in ``nodes_detail`` but excluded from ``metrics``.
    :param pending_pods: list of :func:`new_pending_pod` records (DaemonSet pods already excluded).
    :param unschedulable_pods: int, number of pods with PodScheduled=False/Unschedulable.
    :param total_requested_cpu: cores requested by all active (Pending or Running) pods, bound or not.
    :param total_requested_memory: bytes requested by all active pods.
    :param usage_sources: ``{"cpu_percent": (query_name, query), "memory_percent": (...)}`` used to
        name the query/endpoint in errors about missing usage data.
    :param usage_available: False when the source has no usage data at all (Kubernetes API without
        metrics.k8s.io): ``avg_cpu``/``avg_memory`` are then omitted, not guessed.
    :returns: ``dict(metrics=..., nodes_detail=..., pending_pods_detail=..., warnings=[...],
        source=..., queries=..., collected_at=...)``.
    :raises MetricsError: when usage data is expected but no ready node has any.
    """
    warnings = list(warnings or [])
    nodes = sorted(nodes, key=lambda n: n["name"])
    # Control-plane (server) nodes are never scaled: they are listed in nodes_detail but left out of
    # every cluster-level figure, together with the requests of the pods bound to them.
    control_plane = [n for n in nodes if n.get("control_plane")]
    workers = [n for n in nodes if not n.get("control_plane")]
    total_requested_cpu -= sum(n["requested_cpu_cores"] for n in control_plane)
    total_requested_memory -= sum(n["requested_memory_bytes"] for n in control_plane)
    ready = [n for n in workers if n["ready"]]
    metrics = dict(
        pending_pods=len(pending_pods),
        unschedulable_pods=int(unschedulable_pods),
        nodes=len(workers),
        ready_nodes=len(ready),
        cordoned_nodes=len([n for n in workers if n["unschedulable"]]),
        control_plane_nodes=len(control_plane),
    )

    if usage_available:
        if not ready:
            warnings.append("no node is Ready: avg_cpu and avg_memory are null")
            metrics["avg_cpu"] = None
            metrics["avg_memory"] = None
        else:
            for key, field in (("avg_cpu", "cpu_percent"), ("avg_memory", "memory_percent")):
                with_data = [n[field] for n in ready if n[field] is not None]
                missing = sorted(n["name"] for n in ready if n[field] is None)
                if not with_data:
                    qname, query = (usage_sources or {}).get(field, (field, None))
                    raise MetricsError(qname, query,
                                       "no Ready node has %s data (Ready nodes: %s); is node-exporter scraped and "
                                       "node_uname_info{nodename} equal to the Kubernetes node name?"
                                       % (field, ", ".join(n["name"] for n in ready)))
                if missing:
                    warnings.append("%s: no usage data for Ready node(s) %s; excluded from %s"
                                    % (field, ", ".join(missing), key))
                metrics[key] = _mean(with_data)

    alloc_cpu = sum(n["allocatable_cpu_cores"] or 0.0 for n in ready)
    alloc_mem = sum(n["allocatable_memory_bytes"] or 0 for n in ready)
    if alloc_cpu > 0:
        metrics["cpu_requests_percent"] = 100.0 * total_requested_cpu / alloc_cpu
    else:
        metrics["cpu_requests_percent"] = None
        warnings.append("cpu_requests_percent is null: Ready nodes have no allocatable CPU")
    if alloc_mem > 0:
        metrics["memory_requests_percent"] = 100.0 * total_requested_memory / alloc_mem
    else:
        metrics["memory_requests_percent"] = None
        warnings.append("memory_requests_percent is null: Ready nodes have no allocatable memory")

    return dict(
        metrics=metrics,
        nodes_detail=nodes,
        pending_pods_detail=sorted(pending_pods, key=lambda p: (p["namespace"], p["name"])),
        warnings=warnings,
        source=source,
        queries=dict(queries),
        collected_at=collected_at,
    )
