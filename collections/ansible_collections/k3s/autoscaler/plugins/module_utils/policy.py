# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure scaling policy for k3s.autoscaler.

Everything here is a pure function: no I/O, no clock reads (``now`` is a
parameter), no imports beyond the standard ``math`` module, so a simulator can
replay it at a very high rate.

Public API
----------
``validate_config(cfg) -> dict``
    Normalise and validate the policy configuration. Raises
    :class:`ConfigError` naming the field and how to fix it.
``validate_metrics(metrics) -> dict``
    Validate the ``metrics`` dict produced by ``k3s.autoscaler.k3s_metrics``.
    Raises :class:`MetricsError` naming the key.
``decide(metrics, config, state, now, nodes_detail=None, pending_pods_detail=None) -> dict``
    The decision. ``state`` is the dict from ``state.load_state()`` (only
    ``last_scale_up`` / ``last_scale_down`` are read) or ``None`` when there is
    no state file (then cooldowns are NOT enforced and a warning says so).
    A pending-pods scale_up of a non-context policy is held (``blocked_by``
    ``draining``) while a node this autoscaler is removing is still listed
    cordoned/NotReady (:func:`draining_by_us`: ``pending_removal.node`` or a
    ``scale_down`` event younger than ``scale_up_cooldown``): a draining node
    is not missing capacity.
``select_candidates(nodes_detail) -> list``
    Scale-down candidates, least-utilised first.
``POLICIES``
    ``name -> function(metrics, config, nodes_detail, pending_pods_detail)``
    returning a proposal ``{"decision", "count", "reason", "blocked_by"}``.
    Register new policies with :func:`register_policy`.

Units: ``avg_cpu``, ``avg_memory``, ``cpu_threshold``, ``memory_threshold``,
``*_percent`` are PERCENT 0-100 (not ratios 0-1). Times are unix seconds,
cooldowns are seconds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.k3s.autoscaler.plugins.module_utils.binpack import (
    BINPACK_DEFAULTS, InputError, binpacking_policy, validate_binpack_config)

SCALE_UP = "scale_up"
SCALE_DOWN = "scale_down"
NO_ACTION = "no_action"
DECISIONS = (SCALE_UP, SCALE_DOWN, NO_ACTION)

# blocked_by vocabulary
BLOCKED_COOLDOWN = "cooldown"
BLOCKED_MAX_NODES = "max_nodes"
BLOCKED_MIN_NODES = "min_nodes"
BLOCKED_MISSING_METRICS = "missing_metrics"
BLOCKED_NO_CANDIDATES = "no_candidates"
BLOCKED_DRAINING = "draining"

DEFAULTS = {
    "pending_pods_threshold": 0,
    "cpu_threshold": 20.0,
    "memory_threshold": 20.0,
    "scale_up_cooldown": 300.0,
    "scale_down_cooldown": 600.0,
    "max_scale_up_step": 1,
    "policy": "threshold",  # the default policy: set "binpacking" once the replay benchmark shows it wins
    "dry_run": False,
    "check_mode": False,
}
# binpacking policy keys (validated by binpack.validate_binpack_config; ignored by threshold)
DEFAULTS.update(BINPACK_DEFAULTS)

REQUIRED_CONFIG = ("min_nodes", "max_nodes")
CONFIG_KEYS = frozenset(REQUIRED_CONFIG) | frozenset(DEFAULTS)

REQUIRED_METRICS = ("nodes", "pending_pods")
OPTIONAL_COUNT_METRICS = ("ready_nodes", "unschedulable_pods", "cordoned_nodes")
PERCENT_METRICS = ("avg_cpu", "avg_memory", "cpu_requests_percent", "memory_requests_percent")


class PolicyError(ValueError):
    """Base class: bad input to the policy. ``field`` names the offending key."""

    kind = "input"

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super(PolicyError, self).__init__("invalid %s %s: %s" % (self.kind, field, message))


class ConfigError(PolicyError):
    """Invalid policy configuration (module options / config dict)."""

    kind = "config"


class MetricsError(PolicyError):
    """Invalid ``metrics`` (or ``state`` / ``nodes_detail``) input."""

    kind = "metrics"


class _ValidatedConfig(dict):
    """Marker type: the normalised return value of validate_config().

    decide() skips re-validation for this type (keeps replay cheap). Do not
    mutate it; call validate_config() again after changing anything.
    """

    __slots__ = ()


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cfg_int(cfg, field, minimum):
    v = cfg[field]
    if not _is_int(v):
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        else:
            raise ConfigError(field, "%s must be an integer, got %s %r; set it to a whole number such as %d"
                              % (field, type(v).__name__, v, max(minimum, 1)))
    if v < minimum:
        raise ConfigError(field, "%s must be >= %d, got %d; %s"
                          % (field, minimum, v,
                             "the step is the number of nodes added per scale_up, use 1 or more"
                             if field == "max_scale_up_step" else "negative values are not allowed"))
    return v


def _cfg_number(cfg, field, unit):
    v = cfg[field]
    if not _is_number(v):
        raise ConfigError(field, "%s must be a number (%s), got %s %r" % (field, unit, type(v).__name__, v))
    if not math.isfinite(v):
        raise ConfigError(field, "%s must be a finite number (%s), got %r" % (field, unit, v))
    return float(v)


def validate_config(cfg):
    """Validate and normalise the policy config.

    :param cfg: dict with ``min_nodes`` and ``max_nodes`` (required, int >= 0)
        and optionally ``pending_pods_threshold`` (int >= 0, default 0),
        ``cpu_threshold`` / ``memory_threshold`` (percent 0-100, default 20),
        ``scale_up_cooldown`` / ``scale_down_cooldown`` (seconds >= 0, default
        300 / 600), ``max_scale_up_step`` (int >= 1, default 1), ``policy``
        (a key of :data:`POLICIES`, default ``threshold``), ``dry_run`` and
        ``check_mode`` (bool, default false). ``None`` values mean "default".
    :returns: a new normalised dict (ints as int, percents/seconds as float).
    :raises ConfigError: naming the field and how to fix it. Unknown keys are
        rejected (they are usually typos).
    """
    if isinstance(cfg, _ValidatedConfig):
        return cfg
    if not isinstance(cfg, dict):
        raise ConfigError("config", "config must be a dict, got %s" % type(cfg).__name__)
    unknown = sorted(str(k) for k in cfg if k not in CONFIG_KEYS)
    if unknown:
        raise ConfigError(unknown[0], "unknown config key %r; valid keys are: %s"
                          % (unknown[0], ", ".join(sorted(CONFIG_KEYS))))
    merged = dict(DEFAULTS)
    for k, v in cfg.items():
        if v is not None:
            merged[k] = v
    for field in REQUIRED_CONFIG:
        if merged.get(field) is None:
            raise ConfigError(field, "%s is required; set it to an integer >= 0" % field)

    out = _ValidatedConfig()
    out["min_nodes"] = _cfg_int(merged, "min_nodes", 0)
    out["max_nodes"] = _cfg_int(merged, "max_nodes", 0)
    if out["min_nodes"] > out["max_nodes"]:
        raise ConfigError("min_nodes", "min_nodes (%d) must be <= max_nodes (%d); lower min_nodes or raise max_nodes"
                          % (out["min_nodes"], out["max_nodes"]))
    out["pending_pods_threshold"] = _cfg_int(merged, "pending_pods_threshold", 0)
    for field in ("cpu_threshold", "memory_threshold"):
        v = _cfg_number(merged, field, "percent 0-100")
        if v < 0 or v > 100:
            raise ConfigError(field, "%s must be a percent between 0 and 100, got %r; it is a percent, "
                                     "not a ratio (use 20 for 20%%)" % (field, merged[field]))
        out[field] = v
    for field in ("scale_up_cooldown", "scale_down_cooldown"):
        v = _cfg_number(merged, field, "seconds")
        if v < 0:
            raise ConfigError(field, "%s must be >= 0 seconds, got %r; use 0 to disable the cooldown"
                              % (field, merged[field]))
        out[field] = v
    out["max_scale_up_step"] = _cfg_int(merged, "max_scale_up_step", 1)
    policy = merged["policy"]
    if policy not in POLICIES:
        raise ConfigError("policy", "unknown policy %r; choose one of: %s" % (policy, ", ".join(sorted(POLICIES))))
    out["policy"] = policy
    for field in ("dry_run", "check_mode"):
        if not isinstance(merged[field], bool):
            raise ConfigError(field, "%s must be a boolean (true/false), got %s %r"
                              % (field, type(merged[field]).__name__, merged[field]))
        out[field] = merged[field]
    try:
        validate_binpack_config(merged, out)
    except InputError as e:
        raise ConfigError(e.field, e.message)
    return out


def _optional_percent(metrics, key):
    """Return a float percent, or None when unknown (absent, None or NaN)."""
    v = metrics.get(key)
    if v is None:
        return None
    if not _is_number(v):
        raise MetricsError(key, "metrics.%s must be a number (percent 0-100) or null when unknown, got %s %r"
                           % (key, type(v).__name__, v))
    if math.isnan(v):  # NaN means "unknown", e.g. 0/0 in PromQL
        return None
    if math.isinf(v) or v < 0:
        raise MetricsError(key, "metrics.%s must be a finite percent >= 0, got %r; check the query "
                                "that produced it in k3s_metrics" % (key, v))
    return float(v)


def validate_metrics(metrics):
    """Validate the ``metrics`` dict from ``k3s.autoscaler.k3s_metrics``.

    Required: ``nodes`` and ``pending_pods`` (int >= 0). Optional counts
    (``ready_nodes``, ``unschedulable_pods``, ``cordoned_nodes``) must be int
    >= 0 when present. Percent keys (``avg_cpu``, ``avg_memory``,
    ``cpu_requests_percent``, ``memory_requests_percent``, percent 0-100) may
    be absent, None or NaN, all of which mean *unknown* and are returned as
    None; values above 100 are accepted (scrape skew) but negative or infinite
    values are rejected.

    :returns: a new dict with the keys above (unknown percents as None).
    :raises MetricsError: naming the key.
    """
    if not isinstance(metrics, dict):
        raise MetricsError("metrics", "metrics must be a dict (the 'metrics' return of k3s.autoscaler.k3s_metrics), "
                                      "got %s" % type(metrics).__name__)
    out = {}
    for key in REQUIRED_METRICS + OPTIONAL_COUNT_METRICS:
        v = metrics.get(key)
        if v is None:
            if key in REQUIRED_METRICS:
                raise MetricsError(key, "metrics.%s is required (an integer count >= 0); pass the 'metrics' "
                                        "return of k3s.autoscaler.k3s_metrics" % key)
            out[key] = None
            continue
        if not _is_int(v):
            if isinstance(v, float) and math.isfinite(v) and v == int(v):
                v = int(v)
            else:
                raise MetricsError(key, "metrics.%s must be an integer count >= 0, got %s %r"
                                   % (key, type(v).__name__, v))
        if v < 0:
            raise MetricsError(key, "metrics.%s must be an integer count >= 0, got %d" % (key, v))
        out[key] = v
    for key in PERCENT_METRICS:
        out[key] = _optional_percent(metrics, key)
    ds = metrics.get("daemonset_requests")
    if ds is not None:
        if not isinstance(ds, dict) or any(not _is_number(ds.get(k)) or not math.isfinite(ds.get(k)) or ds.get(k) < 0
                                           for k in ("cpu_cores", "memory_bytes")):
            raise MetricsError("daemonset_requests", "metrics.daemonset_requests must be {cpu_cores: cores >= 0, "
                                                     "memory_bytes: bytes >= 0} (query daemonset_requests of "
                                                     "k3s.autoscaler.k3s_metrics), got %r" % (ds,))
        out["daemonset_requests"] = {"cpu_cores": float(ds["cpu_cores"]), "memory_bytes": int(ds["memory_bytes"])}
    return out


def _state_time(state, key):
    if state is None:
        return None
    v = state.get(key)
    if v is None:
        return None
    if not _is_number(v) or not math.isfinite(v):
        raise MetricsError("state." + key, "state.%s must be unix seconds or null, got %r; "
                                           "repair the state file" % (key, v))
    return float(v)


# --------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------

def _ratio_percent(num, den):
    if not _is_number(num) or not _is_number(den) or not math.isfinite(num) or not math.isfinite(den) or den <= 0:
        return None
    r = 100.0 * num / den
    return r if math.isfinite(r) else None


def _percent_or_none(v):
    if not _is_number(v) or not math.isfinite(v):
        return None
    return float(v)


def _candidate_sort_key(c):
    req = c["requests_percent"]
    use = [p for p in (c["cpu_percent"], c["memory_percent"]) if p is not None]
    return (req is None, req if req is not None else 0.0,
            not use, max(use) if use else 0.0,
            c["pods"] if c["pods"] is not None else float("inf"),
            c["name"])


def select_candidates(nodes_detail):
    """Scale-down candidates from ``nodes_detail``, least-utilised first.

    A node is a candidate only if it has an ``instance_id`` (a node we cannot
    terminate, e.g. the k3s control plane or a non-EC2 node, is never a
    candidate) and ``ready`` is true (NotReady nodes report stale or zero
    usage that would make them look idle; replacing broken nodes is not a
    scale-down decision). Cordoned (``unschedulable``) nodes stay candidates.

    ``requests_percent`` = max(requested_cpu_cores / allocatable_cpu_cores,
    requested_memory_bytes / allocatable_memory_bytes) * 100, or None when
    allocatable is unknown. Ordering: requests_percent ascending (unknown
    last), then max(cpu_percent, memory_percent) ascending (unknown last),
    then pod count, then name.

    :returns: list of ``{name, instance_id, instance_type, cpu_percent,
        memory_percent, requests_percent, pods, unschedulable}``.
    """
    out = []
    if not nodes_detail:
        return out
    for i, n in enumerate(nodes_detail):
        if not isinstance(n, dict):
            raise MetricsError("nodes_detail[%d]" % i, "each nodes_detail item must be a dict (from "
                                                       "k3s.autoscaler.k3s_metrics), got %s" % type(n).__name__)
        iid = n.get("instance_id")
        if not iid or not isinstance(iid, str) or n.get("ready") is not True or n.get("control_plane"):
            continue
        reqs = [p for p in (_ratio_percent(n.get("requested_cpu_cores"), n.get("allocatable_cpu_cores")),
                            _ratio_percent(n.get("requested_memory_bytes"), n.get("allocatable_memory_bytes")))
                if p is not None]
        pods = n.get("pods")
        out.append({
            "name": str(n.get("name") or ""),
            "instance_id": iid,
            "instance_type": n.get("instance_type"),
            "cpu_percent": _percent_or_none(n.get("cpu_percent")),
            "memory_percent": _percent_or_none(n.get("memory_percent")),
            "requests_percent": max(reqs) if len(reqs) == 2 else None,
            "pods": pods if _is_int(pods) else None,
            "unschedulable": bool(n.get("unschedulable")),
        })
    out.sort(key=_candidate_sort_key)
    return out


# --------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------

def _fmt(v):
    """Format a percent or seconds value compactly for reasons."""
    if v is None:
        return "unknown"
    if v == int(v):
        return "%d" % v
    return ("%.6f" % v).rstrip("0").rstrip(".")


def threshold_policy(m, cfg, nodes_detail=None, pending_pods_detail=None):
    """The seed rule (baseline ``threshold`` policy).

    1. scale_up when pending_pods > pending_pods_threshold and nodes < max_nodes
       (count = min(max_scale_up_step, max_nodes - nodes)).
    2. otherwise scale_down (count 1) when avg_cpu < cpu_threshold and
       avg_memory < memory_threshold and nodes > min_nodes.
    3. otherwise no_action.
    Unknown avg_cpu / avg_memory make scale_down impossible.
    """
    nodes = m["nodes"]
    pending = m["pending_pods"]
    pthr = cfg["pending_pods_threshold"]
    mx = cfg["max_nodes"]
    mn = cfg["min_nodes"]
    if pending > pthr:
        if nodes < mx:
            return {"decision": SCALE_UP, "count": min(cfg["max_scale_up_step"], mx - nodes), "blocked_by": [],
                    "reason": "scale_up: %d pending pods > threshold %d and %d nodes < max_nodes %d"
                              % (pending, pthr, nodes, mx)}
        return {"decision": NO_ACTION, "count": 0, "blocked_by": [BLOCKED_MAX_NODES],
                "reason": "no_action: %d pending pods > threshold %d but %d nodes >= max_nodes %d"
                          % (pending, pthr, nodes, mx)}
    cpu = m["avg_cpu"]
    mem = m["avg_memory"]
    if cpu is None or mem is None:
        missing = " and ".join(k for k, v in (("avg_cpu", cpu), ("avg_memory", mem)) if v is None)
        return {"decision": NO_ACTION, "count": 0, "blocked_by": [BLOCKED_MISSING_METRICS],
                "reason": "no_action: %d pending pods <= threshold %d and %s unknown (missing or NaN), so "
                          "scale_down is impossible (uncertain data never causes a scaling action)"
                          % (pending, pthr, missing)}
    cthr = cfg["cpu_threshold"]
    mthr = cfg["memory_threshold"]
    if cpu < cthr and mem < mthr:
        if nodes > mn:
            return {"decision": SCALE_DOWN, "count": 1, "blocked_by": [],
                    "reason": "scale_down: avg_cpu %s%% < cpu_threshold %s%% and avg_memory %s%% < "
                              "memory_threshold %s%% and %d nodes > min_nodes %d"
                              % (_fmt(cpu), _fmt(cthr), _fmt(mem), _fmt(mthr), nodes, mn)}
        return {"decision": NO_ACTION, "count": 0, "blocked_by": [BLOCKED_MIN_NODES],
                "reason": "no_action: avg_cpu %s%% < cpu_threshold %s%% and avg_memory %s%% < memory_threshold "
                          "%s%% but %d nodes <= min_nodes %d"
                          % (_fmt(cpu), _fmt(cthr), _fmt(mem), _fmt(mthr), nodes, mn)}
    why = []
    if cpu >= cthr:
        why.append("avg_cpu %s%% >= cpu_threshold %s%%" % (_fmt(cpu), _fmt(cthr)))
    if mem >= mthr:
        why.append("avg_memory %s%% >= memory_threshold %s%%" % (_fmt(mem), _fmt(mthr)))
    return {"decision": NO_ACTION, "count": 0, "blocked_by": [],
            "reason": "no_action: %d pending pods <= threshold %d and %s" % (pending, pthr, " and ".join(why))}


POLICIES = {"threshold": threshold_policy, "binpacking": binpacking_policy}

#: Policies called with a 5th argument ``context`` = ``{"state", "now", "pods_detail",
#: "instances"}``. They handle min/max bounds, candidates and timing themselves (decide()
#: skips its bound corrections and cooldowns for them) and may return the extra keys
#: ``candidates``, ``node_group``, ``terminate_instance_ids``, ``unfittable_pods``,
#: ``unneeded``, ``explain`` and ``warnings``.
CONTEXT_POLICIES = set(["binpacking"])


def register_policy(name, fn, context=False):
    """Register ``fn(metrics, config, nodes_detail, pending_pods_detail) -> proposal`` as ``name``.

    The proposal is ``{"decision", "count", "reason", "blocked_by"}``; decide()
    still enforces min/max bounds, candidates and cooldowns around it. The
    module's ``policy`` choices must be extended to expose a new name.
    With ``context=True`` the function takes a 5th argument (see :data:`CONTEXT_POLICIES`).
    """
    POLICIES[name] = fn
    if context:
        CONTEXT_POLICIES.add(name)
    else:
        CONTEXT_POLICIES.discard(name)


# --------------------------------------------------------------------------
# decide
# --------------------------------------------------------------------------

def draining_by_us(state, nodes_detail, now, window):
    """Names of nodes still listed (cordoned or NotReady) in ``nodes_detail`` that this autoscaler is removing.

    A node is "draining by us" when the state names it as being removed: the ``node`` of a
    ``pending_removal`` record (written before the cordon), or the ``node_names`` of a
    ``scale_down`` event less than ``window`` seconds old (its instance is terminating and
    its evicted pods are rescheduling). Such a node is not missing capacity.
    """
    if not state or not nodes_detail:
        return []
    ours = set()
    rec = state.get("pending_removal")
    if isinstance(rec, dict) and isinstance(rec.get("node"), str):
        ours.add(rec["node"])
    for ev in state.get("events") or []:
        if (isinstance(ev, dict) and ev.get("direction") == SCALE_DOWN and _is_number(ev.get("time"))
                and 0 <= now - ev["time"] < window):
            ours.update(n for n in ev.get("node_names") or [] if isinstance(n, str))
    listed = set(n.get("name") for n in nodes_detail
                 if isinstance(n, dict) and (n.get("unschedulable") or n.get("ready") is not True))
    return sorted(ours & listed)


def _blocked(reason, why):
    """Turn a proposal reason "scale_up: X" into "no_action: scale_up wanted (X) but <why>"."""
    head, _sep, rest = reason.partition(": ")
    return "no_action: %s wanted (%s) but %s" % (head, rest, why)


def _cooldowns(cfg, last_up, last_down, now, warnings):
    """Seconds remaining (>= 0) before a scale_up / scale_down is allowed.

    scale_down is guarded by scale_down_cooldown after the last scale_down AND
    after the last scale_up (new nodes must get a chance to take load before
    removing any). A timestamp in the future (clock skew) blocks for the full
    cooldown and adds a warning.
    """
    def remaining(last, cooldown, what):
        if last is None:
            return 0.0
        if last > now:
            warnings.append("%s %s is in the future (now %s); treating the cooldown as fully active"
                            % (what, _fmt(last), _fmt(now)))
            return cooldown
        return max(0.0, last + cooldown - now)

    up = remaining(last_up, cfg["scale_up_cooldown"], "last_scale_up")
    down = max(remaining(last_down, cfg["scale_down_cooldown"], "last_scale_down"),
               remaining(last_up, cfg["scale_down_cooldown"], "last_scale_up") if last_up is not None else 0.0)
    return up, down


def decide(metrics, config, state, now, nodes_detail=None, pending_pods_detail=None, pods_detail=None,
           instances=None, pods_detail_nodes=None):
    """Decide scale_up / scale_down / no_action. Pure: same inputs, same output.

    :param metrics: the ``metrics`` dict from k3s.autoscaler.k3s_metrics.
    :param config: policy config, see :func:`validate_config` (validated here
        unless it already is the return value of validate_config()).
    :param state: state dict (``last_scale_up`` / ``last_scale_down`` unix
        seconds or None) or None when there is no state file: then cooldowns
        are not enforced and a warning says so.
    :param now: current time, unix seconds.
    :param nodes_detail: list of node dicts (needed for scale_down candidates;
        without it scale_down is blocked with ``no_candidates``).
    :param pending_pods_detail: list of pending pod dicts (informational for
        the threshold policy; passed on to the policy function).
    :param pods_detail: list of pods bound to nodes (binpacking scale-down:
        ``{namespace, name, node, cpu_cores, memory_bytes, owner_kind, daemonset,
        safe_to_evict, pdb_disruptions_allowed, kube_system}``), see k8s_pods.py.
    :param instances: the node groups' non-terminated EC2 instances
        (``{instance_id, launch_time, state, node_group}`` or ec2_instance_info
        items); binpacking counts those not yet registered as capacity on the way.
    :param pods_detail_nodes: names of the nodes ``pods_detail`` covers (None = all).
    :returns: dict with decision, count, current_nodes, desired_nodes (always
        within [min_nodes, max_nodes]), reason, blocked_by, candidates,
        policy, dry_run, actionable, inputs, cooldowns, warnings, and
        node_group, terminate_instance_ids, unfittable_pods, unneeded
        (binpacking: new {node: first_seen}; None for other policies), explain.
    :raises ConfigError, MetricsError: bad input (never a made-up decision).
    """
    cfg = config if isinstance(config, _ValidatedConfig) else validate_config(config)
    m = validate_metrics(metrics)
    if not _is_number(now) or not math.isfinite(now):
        raise MetricsError("now", "now must be finite unix seconds, got %r" % (now,))
    if nodes_detail is not None and not isinstance(nodes_detail, list):
        raise MetricsError("nodes_detail", "nodes_detail must be a list of node dicts, got %s"
                           % type(nodes_detail).__name__)
    if pending_pods_detail is not None and not isinstance(pending_pods_detail, list):
        raise MetricsError("pending_pods_detail", "pending_pods_detail must be a list of pod dicts, got %s"
                           % type(pending_pods_detail).__name__)
    if state is not None and not isinstance(state, dict):
        raise MetricsError("state", "state must be a dict (from load_state) or None, got %s" % type(state).__name__)

    warnings = []
    last_up = _state_time(state, "last_scale_up")
    last_down = _state_time(state, "last_scale_down")
    if state is None:
        warnings.append("no state_file: cooldowns (scale_up_cooldown, scale_down_cooldown) are NOT enforced")
    for field in ("cpu_threshold", "memory_threshold"):
        if 0 < cfg[field] <= 1:
            warnings.append("%s %s is a percent 0-100, not a ratio: 20 means 20 %%; did you mean %s?"
                            % (field, _fmt(cfg[field]), _fmt(cfg[field] * 100)))
    up_left, down_left = _cooldowns(cfg, last_up, last_down, float(now), warnings)

    nodes = m["nodes"]
    mn = cfg["min_nodes"]
    mx = cfg["max_nodes"]

    context_policy = cfg["policy"] in CONTEXT_POLICIES
    for name, v in (("pods_detail", pods_detail), ("instances", instances)):
        if v is not None and not isinstance(v, list):
            raise MetricsError(name, "%s must be a list of dicts, got %s" % (name, type(v).__name__))

    # 1. bounds first: they override the policy (context policies apply them themselves,
    #    counting instances on the way).
    if context_policy:
        try:
            prop = POLICIES[cfg["policy"]](m, cfg, nodes_detail, pending_pods_detail,
                                           {"state": state, "now": float(now), "pods_detail": pods_detail,
                                            "instances": instances, "pods_detail_nodes": pods_detail_nodes})
        except InputError as e:
            if e.config:
                raise ConfigError(e.field, e.message)
            raise MetricsError(e.field, e.message)
        warnings.extend(prop.get("warnings") or [])
    elif nodes < mn:
        count = min(mn - nodes, cfg["max_scale_up_step"])
        prop = {"decision": SCALE_UP, "count": count, "blocked_by": [],
                "reason": "scale_up: %d nodes < min_nodes %d; adding %d toward min_nodes (max_scale_up_step %d)"
                          % (nodes, mn, count, cfg["max_scale_up_step"])}
    elif nodes > mx:
        prop = {"decision": SCALE_DOWN, "count": 1, "blocked_by": [],
                "reason": "scale_down: %d nodes > max_nodes %d; removing 1 toward max_nodes" % (nodes, mx)}
    else:
        prop = POLICIES[cfg["policy"]](m, cfg, nodes_detail, pending_pods_detail)
        # A node we are removing (cordoned, drained, instance terminating) is still counted in
        # metrics.nodes, and the pods evicted from it are Pending until they reschedule: that
        # is not missing capacity, so it never triggers a launch (no scale_down/scale_up flap).
        draining = draining_by_us(state, nodes_detail, float(now), cfg["scale_up_cooldown"])
        if prop["decision"] == SCALE_UP and draining:
            prop = {"decision": NO_ACTION, "count": 0, "blocked_by": [BLOCKED_DRAINING],
                    "reason": _blocked(prop["reason"], "node(s) %s are being removed by this autoscaler (scale_down "
                                                       "in flight): their evicted pods are expected to be Pending "
                                                       "until they reschedule; a draining node is not missing "
                                                       "capacity" % ", ".join(draining))}

    decision = prop["decision"]
    count = int(prop["count"])
    reason = prop["reason"]
    blocked_by = list(prop["blocked_by"])

    # 2. generic safety net for any policy.
    if decision == SCALE_UP and nodes >= mx:
        decision, reason = NO_ACTION, _blocked(reason, "%d nodes >= max_nodes %d" % (nodes, mx))
        blocked_by.append(BLOCKED_MAX_NODES)
    elif decision == SCALE_DOWN and nodes <= mn:
        decision, reason = NO_ACTION, _blocked(reason, "%d nodes <= min_nodes %d" % (nodes, mn))
        blocked_by.append(BLOCKED_MIN_NODES)
    if decision == SCALE_UP:
        count = max(1, min(count, mx - nodes))
    elif decision == SCALE_DOWN:
        count = max(1, min(count, nodes - mn))

    # 3. candidates for scale_down.
    candidates = []
    if decision == SCALE_DOWN and context_policy:
        candidates = list(prop.get("candidates") or [])
        count = min(count, len(candidates))
        if not candidates:
            blocked_by.append(BLOCKED_NO_CANDIDATES)
            reason = _blocked(reason, "the policy named no candidate")
            decision = NO_ACTION
    elif decision == SCALE_DOWN:
        candidates = select_candidates(nodes_detail)
        if not candidates:
            blocked_by.append(BLOCKED_NO_CANDIDATES)
            reason = _blocked(reason, "no node is a scale_down candidate (%s; nodes without instance_id, e.g. the "
                                      "control plane, and NotReady nodes are never terminated)"
                              % ("nodes_detail not provided" if nodes_detail is None
                                 else "none of %d nodes in nodes_detail is Ready with an instance_id"
                                 % len(nodes_detail)))
            decision = NO_ACTION
        else:
            count = min(count, len(candidates))

    # 4. cooldowns (context policies time themselves: instances on the way, unneeded time,
    #    scale_down_delay_after_add).
    if context_policy:
        pass
    elif decision == SCALE_UP and up_left > 0:
        reason = _blocked(reason, "blocked by cooldown: %ds remaining of scale_up_cooldown %ss since last_scale_up"
                          % (math.ceil(up_left), _fmt(cfg["scale_up_cooldown"])))
        blocked_by.append(BLOCKED_COOLDOWN)
        decision = NO_ACTION
    elif decision == SCALE_DOWN and down_left > 0:
        reason = _blocked(reason, "blocked by cooldown: %ds remaining of scale_down_cooldown %ss since the last "
                                  "scale_down/scale_up" % (math.ceil(down_left), _fmt(cfg["scale_down_cooldown"])))
        blocked_by.append(BLOCKED_COOLDOWN)
        decision = NO_ACTION

    if decision == NO_ACTION:
        count = 0
        desired = nodes
    elif decision == SCALE_UP:
        desired = nodes + count
    else:
        desired = nodes - count
    desired = mn if desired < mn else mx if desired > mx else desired

    if state is None and decision != NO_ACTION:
        reason += " (no state_file: cooldowns not enforced)"

    return {
        "decision": decision,
        "count": count,
        "current_nodes": nodes,
        "desired_nodes": desired,
        "reason": reason,
        "blocked_by": blocked_by,
        "candidates": candidates,
        "policy": cfg["policy"],
        "dry_run": cfg["dry_run"],
        "actionable": decision != NO_ACTION and not cfg["dry_run"] and not cfg["check_mode"],
        "inputs": {
            "metrics": m,
            "config": dict(cfg),
            "last_scale_up": last_up,
            "last_scale_down": last_down,
            "state_file_used": state is not None,
            "now": float(now),
            "nodes_detail_count": None if nodes_detail is None else len(nodes_detail),
            "pending_pods_detail_count": None if pending_pods_detail is None else len(pending_pods_detail),
            "pods_detail_count": None if pods_detail is None else len(pods_detail),
            "instances_count": None if instances is None else len(instances),
        },
        "cooldowns": {"scale_up": up_left, "scale_down": down_left},
        "warnings": warnings,
        "node_group": prop.get("node_group") if decision != NO_ACTION else None,
        "terminate_instance_ids": list(prop.get("terminate_instance_ids") or []),
        "unfittable_pods": list(prop.get("unfittable_pods") or []),
        "unneeded": prop.get("unneeded") if context_policy else None,
        "explain": prop.get("explain") or {},
    }
