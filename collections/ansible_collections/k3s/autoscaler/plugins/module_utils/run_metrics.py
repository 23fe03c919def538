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
* ``k3s_autoscaler_runs_total{outcome}`` (counter): runs by outcome - ``completed`` (the cycle ran),
  ``error`` (it held because of an error), ``skipped`` (another run held the run lock, k3s_run_lock
  ``status: held``), read from the state file's ``runs`` map ``{outcome: int}`` (so it survives restarts).
  Absent when no state file is given.

A skipped run (:data:`SKIPPED`) must not overwrite the lock holder's gauges (its last decision): it rewrites
only the ``k3s_autoscaler_runs_total`` family of the existing textfile (:func:`merge_text`) and keeps every
other line; pushed to a Pushgateway, it replaces only that family (``pushadd``). Every textfile write, full or
merged, happens under an exclusive flock on the sibling ``<path>.lock`` (:func:`textfile_lock`), and the
module increments the state file's counter inside that lock, so the counter written last is the newest and
never goes backwards; the file itself is replaced atomically (temp file + rename).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.k3s.autoscaler.plugins.module_utils.flock import acquire_flock, release_flock
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import write_text_atomically

try:
    from prometheus_client import CollectorRegistry, Gauge, Counter, write_to_textfile, push_to_gateway
    from prometheus_client import pushadd_to_gateway
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    HAS_PROMETHEUS_CLIENT = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_PROMETHEUS_CLIENT = False

DECISIONS = ("scale_up", "scale_down", "no_action")
DIRECTIONS = ("scale_up", "scale_down")
OUTCOMES = ("completed", "error", "skipped")
SKIPPED = "skipped"
RUNS_FAMILY = "k3s_autoscaler_runs"  # exposed as k3s_autoscaler_runs_total (counter)
RUNS_HELP = "Autoscaler runs by outcome (completed, error = held on an error, skipped = run lock held)."
DEFAULT_TEXTFILE_LOCK_TIMEOUT = 30.0


def run_totals(state):
    """``{outcome: int}`` for every outcome of :data:`OUTCOMES` from ``state['runs']`` (0 when absent).

    Raises ``ValueError`` naming ``runs.<outcome>`` when the state file holds something else than an int >= 0.
    """
    runs = state.get("runs")
    if runs is None:
        runs = {}
    if not isinstance(runs, dict):
        raise ValueError("state file key 'runs' must be an object {outcome: count}, got %s" % type(runs).__name__)
    out = {}
    for o in OUTCOMES:
        v = runs.get(o, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError("state file runs.%s must be an integer >= 0, got %r" % (o, v))
        out[o] = v
    return out


def record_run(state, outcome):
    """Return ``state`` with ``runs[outcome]`` incremented (mutates and returns it, for ``update_state``)."""
    if outcome not in OUTCOMES:
        raise ValueError("outcome must be one of %s, got %r" % (", ".join(OUTCOMES), outcome))
    runs = run_totals(state)
    runs[outcome] += 1
    state["runs"] = runs
    return state


def _add_runs(registry, cluster, node_group, runs):
    c = Counter(RUNS_FAMILY, RUNS_HELP, ("cluster", "node_group", "outcome"), registry=registry)
    for o in OUTCOMES:
        c.labels(cluster, node_group, o).inc(int(runs.get(o, 0)))


def build_runs_registry(cluster, node_group, runs):
    """A ``CollectorRegistry`` holding only ``k3s_autoscaler_runs_total{outcome}`` (what a skipped run exports)."""
    registry = CollectorRegistry()
    _add_runs(registry, cluster, node_group, runs)
    return registry


def build_registry(cluster, node_group, decision, now, started_at, desired_nodes=None, current_nodes=None,
                   pending_pods=None, totals=None, error=False, launch_failures=0, unfittable_pods=None, runs=None):
    """Return a ``CollectorRegistry`` holding the run metrics described in the module docstring.

    ``now`` and ``started_at`` are unix seconds; ``totals`` maps direction -> completed actions (int);
    ``launch_failures`` is the recorded launch failure total (int); ``unfittable_pods`` a pod count or None;
    ``runs`` the ``{outcome: int}`` run counters (:func:`run_totals`) or None (series absent).
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
    if runs is not None:
        _add_runs(registry, cluster, node_group, runs)
    return registry


def render(registry):
    """Return the text exposition of ``registry`` (str)."""
    return generate_latest(registry).decode("utf-8")


class _Families(object):
    """A collector yielding already-built metric families (parsed from an existing textfile)."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return iter(self._families)


def merge_text(existing, registry):
    """Text exposition of ``existing`` (the current textfile's text, or None) with every family that
    ``registry`` holds replaced by the registry's, and all other families kept as they are.

    Returns ``(text, warning)``; ``warning`` is None, or says the existing text was unparseable (then only the
    registry's families are written: its other lines cannot be kept faithfully).
    """
    ours = set(m.name for m in registry.collect())
    # in the text format a counter's _created samples form a family of their own (a gauge)
    ours |= set(n + "_created" for n in ours)
    kept, warning = [], None
    if existing:
        try:
            kept = [f for f in text_string_to_metric_families(existing) if f.name not in ours]
        except ValueError as exc:
            kept, warning = [], "the existing textfile is not valid exposition text (%s); rewrote it with %s only" % (
                exc, ", ".join(sorted(m.name for m in registry.collect())))
    merged = CollectorRegistry()
    if kept:
        merged.register(_Families(kept))
    out = generate_latest(merged).decode("utf-8") if kept else ""
    return out + render(registry), warning


def _ensure_parent(path):
    """Create the parent directory of ``path`` (mode 0755) when missing; another run creating it at the same
    moment is fine."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, 0o755)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(parent):
            raise


class textfile_lock(object):
    """Context manager: exclusive flock on ``<path>.lock`` (bounded wait) around a textfile read/write.

    Creates the parent directory (mode 0755) when missing. Raises ``OSError`` naming the lock file on timeout.
    """

    def __init__(self, path, timeout=DEFAULT_TEXTFILE_LOCK_TIMEOUT):
        self.lock_path = path + ".lock"
        self.timeout = timeout
        self.fd = None

    def _error(self, stage, err):
        if stage == "timeout":
            return OSError("textfile lock %s still held by another run after %s s (a stuck k3s_run_metrics?); "
                           "retry, or remove the lock file if no run is active" % (self.lock_path, self.timeout))
        return OSError("cannot lock the textfile through %s: %s" % (self.lock_path, err))

    def __enter__(self):
        _ensure_parent(self.lock_path)
        self.fd = acquire_flock(self.lock_path, self.timeout, self._error)
        return self

    def __exit__(self, *exc):
        release_flock(self.fd)
        return False


def export(registry, path=None, pushgateway_url=None, job="k3s_autoscaler", timeout=10, merge=False):
    """Write ``registry`` atomically to the node-exporter textfile ``path`` and/or push it to a Pushgateway.

    The textfile is written through prometheus-client's ``write_to_textfile`` (temp file + rename), after
    creating the parent directory (mode 0755) when missing. ``path`` must end in ``.prom``.
    ``merge=True`` (a skipped run) keeps the other families of the existing textfile (:func:`merge_text`,
    temp file + rename) and pushes with ``pushadd`` (only the registry's families are replaced). Call it
    inside :func:`textfile_lock` so that two runs never interleave their read and write.
    Returns a warning string or None.
    """
    warning = None
    if path:
        if not path.endswith(".prom"):
            raise ValueError("path must end in .prom for the node-exporter textfile collector, got %r" % path)
        _ensure_parent(path)
        if merge:
            existing = None
            if os.path.exists(path):
                with open(path) as f:
                    existing = f.read()
            text, warning = merge_text(existing, registry)
            write_text_atomically(path, text, mode=0o644)  # node-exporter may run as another user
        else:
            write_to_textfile(path, registry)
    if pushgateway_url:
        if merge:
            pushadd_to_gateway(pushgateway_url, job=job, registry=registry, timeout=timeout)
        else:
            push_to_gateway(pushgateway_url, job=job, registry=registry, timeout=timeout)
    return warning
