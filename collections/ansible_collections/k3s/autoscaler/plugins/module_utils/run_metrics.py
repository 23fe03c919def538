# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The autoscaler's own run metrics, built with prometheus-client.

Series (all gauges unless noted; labels ``cluster`` and ``node_group`` on every series):

* ``k3s_autoscaler_decision{decision}``: 1 for the decision of the last run, 0 for the other two
  (``scale_up``, ``scale_down``, ``no_action``).
* ``k3s_autoscaler_desired_nodes``: desired node count of the last run (nodes). Absent when unknown.
* ``k3s_autoscaler_current_nodes``: nodes seen by the last run (nodes). Absent when unknown.
* ``k3s_autoscaler_pending_pods``: pending pods seen by the last run (pods). Absent when unknown.
* ``k3s_autoscaler_scale_events_total{direction}`` (counter): completed scale actions by direction,
  read from the state file's ``totals`` (so it survives process restarts).
* ``k3s_autoscaler_launch_failures_total`` (counter): EC2 launches that failed (state file
  ``totals.launch_failures``, recorded by k3s_scale_event direction=launch_failed).
* ``k3s_autoscaler_unfittable_pods``: pending pods no node group can hold even on an empty node, seen by
  the last run (binpacking policy; pods). Absent when unknown.
* ``k3s_autoscaler_last_run_timestamp_seconds``: unix time (seconds) the last run finished.
* ``k3s_autoscaler_run_duration_seconds``: wall time of the last run (seconds).
* ``k3s_autoscaler_run_error``: 1 when the last run held because of an error, else 0.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

try:
    from prometheus_client import CollectorRegistry, Gauge, Counter, write_to_textfile, push_to_gateway
    from prometheus_client.exposition import generate_latest
    HAS_PROMETHEUS_CLIENT = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_PROMETHEUS_CLIENT = False

DECISIONS = ("scale_up", "scale_down", "no_action")
DIRECTIONS = ("scale_up", "scale_down")


def build_registry(cluster, node_group, decision, now, started_at, desired_nodes=None, current_nodes=None,
                   pending_pods=None, totals=None, error=False, launch_failures=0, unfittable_pods=None):
    """Return a ``CollectorRegistry`` holding the run metrics described in the module docstring.

    ``now`` and ``started_at`` are unix seconds; ``totals`` maps direction -> completed actions (int);
    ``launch_failures`` is the recorded launch failure total (int); ``unfittable_pods`` a pod count or None.
    Raises ``ValueError`` naming the field for an unknown decision or a run that ends before it starts.
    """
    if decision not in DECISIONS:
        raise ValueError("decision must be one of %s, got %r" % (", ".join(DECISIONS), decision))
    if now < started_at:
        raise ValueError("started_at (%s) is after the end of the run (%s)" % (started_at, now))
    totals = totals or {}
    registry = CollectorRegistry()
    labels = ("cluster", "node_group")
    lv = (cluster, node_group)

    g = Gauge("k3s_autoscaler_decision", "Decision of the last run (1 = taken).", labels + ("decision",),
              registry=registry)
    for d in DECISIONS:
        g.labels(*(lv + (d,))).set(1 if d == decision else 0)
    for name, value, help_text in (
            ("k3s_autoscaler_desired_nodes", desired_nodes, "Desired node count of the last run."),
            ("k3s_autoscaler_current_nodes", current_nodes, "Nodes seen by the last run."),
            ("k3s_autoscaler_pending_pods", pending_pods, "Pending pods seen by the last run."),
            ("k3s_autoscaler_unfittable_pods", unfittable_pods,
             "Pending pods no node group can hold even on an empty node (last run).")):
        if value is not None:
            Gauge(name, help_text, labels, registry=registry).labels(*lv).set(value)
    c = Counter("k3s_autoscaler_scale_events", "Completed scale actions by direction.", labels + ("direction",),
                registry=registry)
    for d in DIRECTIONS:
        c.labels(*(lv + (d,))).inc(int(totals.get(d, 0)))
    Counter("k3s_autoscaler_launch_failures", "EC2 launches that failed (capacity errors back the group off).",
            labels, registry=registry).labels(*lv).inc(int(launch_failures or 0))
    Gauge("k3s_autoscaler_last_run_timestamp_seconds", "Unix time the last run finished.", labels,
          registry=registry).labels(*lv).set(now)
    Gauge("k3s_autoscaler_run_duration_seconds", "Wall time of the last run.", labels,
          registry=registry).labels(*lv).set(now - started_at)
    Gauge("k3s_autoscaler_run_error", "1 when the last run held because of an error.", labels,
          registry=registry).labels(*lv).set(1 if error else 0)
    return registry


def render(registry):
    """Return the text exposition of ``registry`` (str)."""
    return generate_latest(registry).decode("utf-8")


def export(registry, path=None, pushgateway_url=None, job="k3s_autoscaler", timeout=10):
    """Write ``registry`` atomically to the node-exporter textfile ``path`` and/or push it to a Pushgateway.

    The textfile is written through prometheus-client's ``write_to_textfile`` (temp file + rename), after
    creating the parent directory (mode 0755) when missing. ``path`` must end in ``.prom``.
    """
    if path:
        if not path.endswith(".prom"):
            raise ValueError("path must end in .prom for the node-exporter textfile collector, got %r" % path)
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        write_to_textfile(path, registry)
    if pushgateway_url:
        push_to_gateway(pushgateway_url, job=job, registry=registry, timeout=timeout)
