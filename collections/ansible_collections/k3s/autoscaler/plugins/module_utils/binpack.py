# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Request-aware ``binpacking`` scaling policy (pure: no I/O, no clock, stdlib ``math`` only).

Modelled on Kubernetes Cluster Autoscaler (CA). Registered as ``binpacking`` in
``policy.POLICIES`` and called by ``policy.decide()``; a replay simulator can call
:func:`binpacking_policy` through ``decide()`` at a high rate.

Units: CPU in cores (float), memory in bytes (int), times in unix seconds, durations in
seconds, ``utilization`` / ``scale_down_utilization_threshold`` are RATIOS 0-1, while
``cpu_percent`` / ``memory_percent`` / ``cpu_threshold`` / ``memory_threshold`` are PERCENT 0-100.

Scale-up
--------
1. Pending pods come from ``pending_pods_detail`` (k3s_metrics: query ``pending_pods`` joined
   with ``pod_requests``, ``pod_owner``, ``pod_age``). DaemonSet pods are skipped, and so are
   pods pending for less than ``new_pod_scale_up_delay`` seconds (or of unknown age).
2. Pods that fit no node group even on an EMPTY node (allocatable minus the DaemonSet
   overhead) are ``unfittable``: reported, never a reason to launch.
3. The rest are first-fit-decreasing (FFD) packed onto the free requests capacity of existing
   Ready, schedulable worker nodes (allocatable - requested), then onto instances already on
   the way (launched, not yet registered as nodes, counted as empty nodes), then onto new
   nodes of each node group (not backed off, below its ``max_nodes``). The number of new nodes
   is bounded by ``max_scale_up_step``, the group's ``max_nodes`` and the cluster ``max_nodes``.
4. The ``least-waste`` expander picks the group whose new nodes would have the smallest
   ``cpu_waste + memory_waste`` (unrequested fraction of the new nodes' allocatable after
   packing); ties go to the group placing more pods, then fewer nodes, then the name.

Scale-down
----------
A worker node (Ready, with an ``instance_id``, node group known) is *unneeded* when all hold:
its requests utilisation max(requested CPU / allocatable CPU, requested memory / allocatable
memory) is below ``scale_down_utilization_threshold``; its usage is below the seed thresholds
(``cpu_percent < cpu_threshold`` and ``memory_percent < memory_threshold``, per node; unknown
usage blocks); no pod on it blocks (``safe-to-evict: "false"``, a PodDisruptionBudget allowing
fewer disruptions than it has pods there, a kube-system pod without PDB, a pod without
controller) and the node is not annotated ``scale-down-disabled: "true"``; and a FFD
simulation places all its non-DaemonSet pods on the other schedulable worker nodes (nodes
already planned unneeded are not destinations). A node unneeded for at least
``scale_down_unneeded_time`` seconds (first-seen times in ``state['unneeded']``) is removable;
nothing is removed within ``scale_down_delay_after_add`` seconds of the last scale-up, while
fittable pods are pending, or below min_nodes. Empty nodes (only DaemonSet pods) go in bulk
(up to ``max_empty_bulk_delete``), plus at most one non-empty node per run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math

from ansible_collections.k3s.autoscaler.plugins.module_utils.instance_types import INSTANCE_TYPES

MIB = 1024 * 1024
GIB = 1024 * MIB
EPS = 1e-9

SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SCALE_DOWN_DISABLED_ANNOTATION = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
NODE_GROUP_TAG = "k3s-autoscaler/node-group"

#: Subtracted from instance capacity to get a new node's allocatable. MUST match the local
#: cluster's fake kubelet (local_cluster/kubelet.py ``Reservation``): k3s sets no kube-reserved /
#: system-reserved by default, and the kubelet's default hard eviction threshold
#: ``memory.available<100Mi`` is subtracted from memory. So CPU = capacity, memory = capacity - 100 MiB.
DEFAULT_RESERVATION = {"cpu_cores": 0.0, "memory_bytes": 100 * MIB}

#: Launch backoff per node group after a capacity error: 300 s, doubling per consecutive
#: failure, at most 1800 s (state.record_launch_failure applies it).
BACKOFF_INITIAL = 300.0
BACKOFF_MAX = 1800.0

BINPACK_DEFAULTS = {
    "node_groups": None,
    "node_group": "default",
    "instance_type": None,
    "node_reservation": None,
    "daemonset_overhead": None,
    "new_pod_scale_up_delay": 10.0,
    "scale_down_utilization_threshold": 0.5,
    "scale_down_unneeded_time": 600.0,
    "scale_down_delay_after_add": 600.0,
    "max_empty_bulk_delete": 10,
    "max_node_provision_time": 900.0,
}

# blocked_by values added by this policy
BLOCKED_BACKOFF = "backoff"
BLOCKED_UNFITTABLE = "unfittable"
BLOCKED_DELAY_AFTER_ADD = "scale_down_delay_after_add"
BLOCKED_PODS_DETAIL = "pods_detail_missing"
BLOCKED_PENDING = "pending_pods"

_ACTIVE_STATES = ("pending", "running")


class InputError(ValueError):
    """Bad config or input for the binpacking policy; ``field`` names it (policy.py re-raises it)."""

    def __init__(self, field, message, config=False):
        self.field = field
        self.message = message
        self.config = config
        super(InputError, self).__init__("invalid %s %s: %s" % ("config" if config else "metrics", field, message))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v, digits=3):
    if v is None:
        return "unknown"
    if v == int(v):
        return "%d" % v
    return ("%.*f" % (digits, v)).rstrip("0").rstrip(".")


def _gib(b):
    return _fmt(b / GIB, 2) + "GiB"


# --------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------

def _cfg_error(field, msg):
    return InputError(field, msg, config=True)


def _num(v, field, unit, minimum=0.0):
    if not _is_number(v):
        raise _cfg_error(field, "%s must be a finite number (%s), got %s %r" % (field, unit, type(v).__name__, v))
    if v < minimum:
        raise _cfg_error(field, "%s must be >= %s (%s), got %r" % (field, _fmt(minimum), unit, v))
    return float(v)


def _int(v, field, minimum=0):
    if not _is_int(v):
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        else:
            raise _cfg_error(field, "%s must be an integer, got %s %r" % (field, type(v).__name__, v))
    if v < minimum:
        raise _cfg_error(field, "%s must be >= %d, got %d" % (field, minimum, v))
    return v


def _resources(v, field):
    """``{cpu_cores, memory_bytes}`` dict -> normalised copy (both >= 0; missing = 0)."""
    if not isinstance(v, dict):
        raise _cfg_error(field, "%s must be a dict {cpu_cores: <cores>, memory_bytes: <bytes>}, got %s"
                         % (field, type(v).__name__))
    unknown = sorted(str(k) for k in v if k not in ("cpu_cores", "memory_bytes"))
    if unknown:
        raise _cfg_error(field, "%s: unknown key %r; use cpu_cores (cores) and memory_bytes (bytes)"
                         % (field, unknown[0]))
    return {"cpu_cores": _num(v.get("cpu_cores", 0.0), field + ".cpu_cores", "cores"),
            "memory_bytes": int(_num(v.get("memory_bytes", 0), field + ".memory_bytes", "bytes"))}


def _group(raw, idx, reservation):
    field = "node_groups[%d]" % idx
    if not isinstance(raw, dict):
        raise _cfg_error(field, "each node group must be a dict {name, instance_type, min_nodes, max_nodes, labels}")
    unknown = sorted(str(k) for k in raw if k not in ("name", "instance_type", "min_nodes", "max_nodes", "labels"))
    if unknown:
        raise _cfg_error(field, "unknown key %r; valid keys are labels, instance_type, max_nodes, min_nodes, name"
                         % unknown[0])
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _cfg_error(field + ".name", "node group name must be a non-empty string, got %r" % (name,))
    itype = raw.get("instance_type")
    if itype not in INSTANCE_TYPES:
        raise _cfg_error(field + ".instance_type", "unknown EC2 instance type %r for node group %s; known types are "
                                                   "in plugins/module_utils/instance_types.py (e.g. t3.medium, "
                                                   "m5.xlarge)" % (itype, name))
    mn = _int(raw.get("min_nodes", 0), field + ".min_nodes")
    mx = _int(raw.get("max_nodes"), field + ".max_nodes") if raw.get("max_nodes") is not None else None
    if mx is None:
        raise _cfg_error(field + ".max_nodes", "node group %s needs max_nodes (integer >= min_nodes)" % name)
    if mn > mx:
        raise _cfg_error(field + ".min_nodes", "node group %s: min_nodes (%d) must be <= max_nodes (%d)"
                         % (name, mn, mx))
    labels = raw.get("labels") or {}
    if not isinstance(labels, dict):
        raise _cfg_error(field + ".labels", "labels must be a dict of node labels, got %s" % type(labels).__name__)
    spec = INSTANCE_TYPES[itype]
    cpu = max(0.0, float(spec["vcpu"]) - reservation["cpu_cores"])
    mem = max(0, spec["memory_mib"] * MIB - reservation["memory_bytes"])
    return {"name": name, "instance_type": itype, "min_nodes": mn, "max_nodes": mx,
            "labels": dict((str(k), str(v)) for k, v in labels.items()),
            "allocatable_cpu_cores": cpu, "allocatable_memory_bytes": mem}


def validate_binpack_config(merged, out):
    """Validate the binpacking keys of ``merged`` (defaults applied) into ``out``.

    Keys: ``node_groups`` (list of ``{name, instance_type, min_nodes, max_nodes, labels}`` or None:
    one implicit group named ``node_group`` of ``instance_type`` bounded by the cluster
    min_nodes/max_nodes), ``node_reservation`` / ``daemonset_overhead``
    (``{cpu_cores, memory_bytes}`` or None), ``new_pod_scale_up_delay``, ``scale_down_unneeded_time``,
    ``scale_down_delay_after_add``, ``max_node_provision_time`` (seconds >= 0),
    ``scale_down_utilization_threshold`` (RATIO 0-1), ``max_empty_bulk_delete`` (int >= 1).
    ``out['node_groups_resolved']`` gets the groups with their computed allocatable
    (instance capacity minus ``node_reservation``, default :data:`DEFAULT_RESERVATION`).
    With ``policy != binpacking`` and no binpacking keys set, groups are resolved leniently (a
    missing instance_type is allowed).

    :raises InputError: (config=True) naming the field.
    """
    for f in ("new_pod_scale_up_delay", "scale_down_unneeded_time", "scale_down_delay_after_add",
              "max_node_provision_time"):
        out[f] = _num(merged[f], f, "seconds")
    thr = _num(merged["scale_down_utilization_threshold"], "scale_down_utilization_threshold", "ratio 0-1")
    if thr > 1:
        raise _cfg_error("scale_down_utilization_threshold",
                         "scale_down_utilization_threshold is a RATIO 0-1 (0.5 means 50%%), got %r" % thr)
    out["scale_down_utilization_threshold"] = thr
    out["max_empty_bulk_delete"] = _int(merged["max_empty_bulk_delete"], "max_empty_bulk_delete", 1)
    reservation = dict(DEFAULT_RESERVATION)
    if merged["node_reservation"] is not None:
        reservation = _resources(merged["node_reservation"], "node_reservation")
    out["node_reservation"] = reservation
    out["daemonset_overhead"] = (None if merged["daemonset_overhead"] is None
                                 else _resources(merged["daemonset_overhead"], "daemonset_overhead"))
    ng = merged["node_group"]
    if not isinstance(ng, str) or not ng:
        raise _cfg_error("node_group", "node_group must be a non-empty string (the implicit group's name)")
    out["node_group"] = ng
    itype = merged["instance_type"]
    out["instance_type"] = itype
    groups = merged["node_groups"]
    resolved = []
    if groups:
        if not isinstance(groups, list):
            raise _cfg_error("node_groups", "node_groups must be a list of {name, instance_type, min_nodes, "
                                            "max_nodes, labels}, got %s" % type(groups).__name__)
        for i, g in enumerate(groups):
            resolved.append(_group(g, i, reservation))
        names = [g["name"] for g in resolved]
        dup = sorted(set(n for n in names if names.count(n) > 1))
        if dup:
            raise _cfg_error("node_groups", "node group names must be unique; %s appears twice" % dup[0])
        out["node_groups"] = [dict(name=g["name"], instance_type=g["instance_type"], min_nodes=g["min_nodes"],
                                   max_nodes=g["max_nodes"], labels=g["labels"]) for g in resolved]
    else:
        out["node_groups"] = None
        if itype is not None or merged.get("policy") == "binpacking":
            if itype is None:
                raise _cfg_error("instance_type", "the binpacking policy needs instance_type (the EC2 instance type "
                                                  "of new nodes, e.g. t3.medium) or a node_groups list")
            resolved.append(_group({"name": ng, "instance_type": itype, "min_nodes": out["min_nodes"],
                                    "max_nodes": out["max_nodes"]}, 0, reservation))
    out["node_groups_resolved"] = resolved
    return out


# --------------------------------------------------------------------------
# packing primitives
# --------------------------------------------------------------------------

def fits(cpu, mem, free_cpu, free_mem):
    """True when a request (cores, bytes) fits free capacity (cores, bytes), with a 1e-9 core / 1 byte tolerance."""
    return cpu <= free_cpu + EPS and mem <= free_mem + 1


def _size_key(pod, node_cpu, node_mem):
    """FFD order: dominant share of a node (largest first), then CPU, memory, namespace/name."""
    share = max(pod["cpu_cores"] / node_cpu if node_cpu > 0 else float("inf"),
                pod["memory_bytes"] / node_mem if node_mem > 0 else float("inf"))
    return (-share, -pod["cpu_cores"], -pod["memory_bytes"], pod.get("namespace") or "", pod.get("name") or "")


def ffd_pack(pods, node_cpu, node_mem, bins=None, max_new_nodes=None):
    """First-fit decreasing of ``pods`` onto ``bins`` (existing free capacity) then new empty nodes.

    :param pods: list of dicts with ``cpu_cores`` (cores) and ``memory_bytes`` (bytes).
    :param node_cpu: allocatable CPU (cores) of one NEW node, DaemonSet overhead already subtracted.
    :param node_mem: allocatable memory (bytes) of one new node, overhead subtracted.
    :param bins: optional list of ``{"name", "free_cpu", "free_mem"}`` tried first, in order
        (not mutated; copies are returned).
    :param max_new_nodes: at most this many new nodes are opened (None = unlimited).
    :returns: ``{"new_nodes": int, "placements": [(pod, bin_name)], "unplaced": [pod],
        "bins": [bin copies incl. new nodes "new-1"...], "new_used_cpu": cores, "new_used_mem": bytes}``.
        Pods that do not fit an empty new node are returned in ``unplaced`` (never open a node).
    """
    work = [dict(b, pods=list(b.get("pods", []))) for b in (bins or [])]
    n_existing = len(work)
    placements = []
    unplaced = []
    new_nodes = 0
    for pod in sorted(pods, key=lambda p: _size_key(p, node_cpu, node_mem)):
        cpu, mem = pod["cpu_cores"], pod["memory_bytes"]
        target = None
        for b in work:
            if fits(cpu, mem, b["free_cpu"], b["free_mem"]):
                target = b
                break
        room = max_new_nodes is None or new_nodes < max_new_nodes
        if target is None and room and fits(cpu, mem, node_cpu, node_mem):
            new_nodes += 1
            target = {"name": "new-%d" % new_nodes, "free_cpu": node_cpu, "free_mem": node_mem, "pods": [],
                      "new": True}
            work.append(target)
        if target is None:
            unplaced.append(pod)
            continue
        target["free_cpu"] -= cpu
        target["free_mem"] -= mem
        target["pods"].append(pod)
        placements.append((pod, target["name"]))
    new_bins = work[n_existing:]
    return {"new_nodes": new_nodes, "placements": placements, "unplaced": unplaced, "bins": work,
            "new_used_cpu": sum(node_cpu - b["free_cpu"] for b in new_bins),
            "new_used_mem": sum(node_mem - b["free_mem"] for b in new_bins)}


def least_waste(options):
    """Pick the expansion option with the least waste (CA's ``least-waste`` expander).

    Each option: ``{"node_group", "nodes" (int > 0), "pods" (placed count), "cpu_waste",
    "memory_waste"}`` where a waste is the fraction (0-1) of the new nodes' allocatable left
    unrequested after packing. Score = cpu_waste + memory_waste; ties: more pods placed, fewer
    nodes, then group name. Returns the chosen option or None for no options.
    """
    usable = [o for o in options if o["nodes"] > 0 and o["pods"] > 0]
    if not usable:
        return None
    return min(usable, key=lambda o: (round(o["cpu_waste"] + o["memory_waste"], 9), -o["pods"], o["nodes"],
                                      o["node_group"]))


def simulate_drain(pods, destinations):
    """Can every pod in ``pods`` be placed on ``destinations``' free capacity (FFD)?

    :param pods: non-DaemonSet pods of the node to remove (``cpu_cores``, ``memory_bytes``, name).
    :param destinations: list of ``{"name", "free_cpu", "free_mem"}`` (other nodes).
    :returns: ``(ok, placements, unplaced, new_destinations)``; ``new_destinations`` has the
        capacity left after placing (use it for the next node removed in the same run).
    """
    dests = [dict(name=b["name"], free_cpu=b["free_cpu"], free_mem=b["free_mem"]) for b in destinations]
    placed, unplaced = _drain_inplace(pods, dests, ())
    return (not unplaced, [(p, d["name"]) for p, d in placed], unplaced, dests)


def _drain_inplace(pods, dests, exclude):
    """FFD of ``pods`` onto ``dests`` (mutated in place), skipping names in ``exclude``.

    All-or-nothing: when a pod does not fit, every placement is rolled back. Returns
    ``(placements [(pod, dest)], unplaced [pod])``.
    """
    placed, unplaced = [], []
    for pod in sorted(pods, key=lambda p: (-p["cpu_cores"], -p["memory_bytes"], p.get("namespace") or "",
                                           p.get("name") or "")):
        cpu, mem = pod["cpu_cores"], pod["memory_bytes"]
        for d in dests:
            if cpu <= d["free_cpu"] + EPS and mem <= d["free_mem"] + 1 and d["name"] not in exclude:
                d["free_cpu"] -= cpu
                d["free_mem"] -= mem
                placed.append((pod, d))
                break
        else:
            unplaced.append(pod)
    if unplaced:
        for pod, d in placed:
            d["free_cpu"] += pod["cpu_cores"]
            d["free_mem"] += pod["memory_bytes"]
    return placed, unplaced


def parse_time(v):
    """unix seconds from a number or an ISO 8601 string (``2026-11-30T08:00:00+00:00``, ``...Z``); None if unknown."""
    if _is_number(v):
        return float(v)
    if isinstance(v, str) and v:
        s = v.strip().replace("Z", "+00:00")
        try:
            dt = datetime.datetime.fromisoformat(s)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp()
    return None


def backoff_seconds(failures):
    """Backoff after ``failures`` consecutive launch failures: 300 s doubling, at most 1800 s."""
    if failures < 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * (2 ** min(failures - 1, 16)))


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def _in_err(field, msg):
    return InputError(field, msg)


def _req(d, key, field, default=None):
    v = d.get(key, default)
    if v is None:
        v = 0
    if not _is_number(v) or v < 0:
        raise _in_err(field, "%s must be a finite number >= 0 (%s), got %r"
                      % (field, "cores" if "cpu" in key else "bytes", d.get(key)))
    return v


def _norm_pending(pods):
    out = []
    for i, p in enumerate(pods or []):
        if not isinstance(p, dict):
            raise _in_err("pending_pods_detail[%d]" % i, "must be a dict (from k3s.autoscaler.k3s_metrics)")
        age = p.get("age_seconds")
        out.append({"namespace": p.get("namespace") or "", "name": str(p.get("name") or ""),
                    "cpu_cores": float(_req(p, "cpu_cores", "pending_pods_detail[%d].cpu_cores" % i)),
                    "memory_bytes": int(_req(p, "memory_bytes", "pending_pods_detail[%d].memory_bytes" % i)),
                    "owner_kind": p.get("owner_kind"),
                    "age_seconds": float(age) if _is_number(age) else None})
    return out


_INF = float("inf")


def _plain_number(v):
    return v.__class__ in (int, float)


class _PodIndex(object):
    """pods_detail grouped by node; a node's pods are validated and normalised on first use only
    (a replay with thousands of pods pays for the candidate nodes' pods, not for all of them)."""

    def __init__(self, pods):
        self.raw = {}
        self.cache = {}
        for i, p in enumerate(pods or []):
            if not isinstance(p, dict):
                raise _in_err("pods_detail[%d]" % i,
                              "must be a dict {namespace, name, node, cpu_cores, memory_bytes, owner_kind, daemonset, "
                              "safe_to_evict, pdb_disruptions_allowed, kube_system}")
            node = p.get("node")
            if node:
                self.raw.setdefault(node, []).append((i, p))

    def __bool__(self):
        return bool(self.raw)

    def movable_count(self, node):
        """Pods on ``node`` that are neither DaemonSet nor mirror pods (no validation)."""
        return sum(1 for _i, p in self.raw.get(node, ())
                   if not p.get("daemonset") and p.get("owner_kind") not in ("DaemonSet", "Node"))

    def get(self, node):
        if node not in self.cache:
            self.cache[node] = _norm_pods(self.raw.get(node, ())).get(node, [])
        return self.cache[node]

    def daemonset_max(self):
        """(cores, bytes): max over nodes of the DaemonSet pods' requests on one node."""
        cpu = mem = 0
        for node, items in self.raw.items():
            c = m = 0
            for i, p in items:
                if p.get("daemonset") or p.get("owner_kind") == "DaemonSet":
                    c += _req(p, "cpu_cores", "pods_detail[%d].cpu_cores" % i)
                    m += _req(p, "memory_bytes", "pods_detail[%d].memory_bytes" % i)
            cpu, mem = max(cpu, c), max(mem, m)
        return cpu, mem


def _norm_pods(indexed):
    """[(index, pods_detail item)] -> {node_name: [pod]} (validated)."""
    by_node = {}
    for i, p in indexed:
        f = "pods_detail[%d]" % i
        node = p.get("node")
        pda = p.get("pdb_disruptions_allowed")
        if pda is not None and not _is_int(pda):
            raise _in_err(f + ".pdb_disruptions_allowed", "must be an integer or null (no PDB matches), got %r" % (pda,))
        ste = p.get("safe_to_evict")
        if ste not in (None, True, False):
            raise _in_err(f + ".safe_to_evict", "must be true, false or null (annotation %s absent), got %r"
                          % (SAFE_TO_EVICT_ANNOTATION, ste))
        ns = p.get("namespace") or ""
        cpu, mem = p.get("cpu_cores") or 0, p.get("memory_bytes") or 0
        if not (_plain_number(cpu) and 0 <= cpu < _INF):
            cpu = _req(p, "cpu_cores", f + ".cpu_cores")
        if not (_plain_number(mem) and 0 <= mem < _INF):
            mem = _req(p, "memory_bytes", f + ".memory_bytes")
        by_node.setdefault(node, []).append({
            "namespace": ns, "name": str(p.get("name") or ""), "node": node,
            "cpu_cores": float(cpu), "memory_bytes": int(mem),
            "owner_kind": p.get("owner_kind"),
            "daemonset": bool(p.get("daemonset")) or p.get("owner_kind") == "DaemonSet",
            "mirror": p.get("owner_kind") == "Node",
            "safe_to_evict": ste, "pdb_disruptions_allowed": pda, "pdb_name": p.get("pdb_name"),
            "kube_system": bool(p.get("kube_system")) if p.get("kube_system") is not None else ns == "kube-system"})
    return by_node


def _norm_instances(instances):
    out = []
    for i, inst in enumerate(instances or []):
        f = "instances[%d]" % i
        if not isinstance(inst, dict) or not inst.get("instance_id"):
            raise _in_err(f, "each instance must be a dict with instance_id (from k3s.autoscaler.ec2_instance_info)")
        state = inst.get("state")
        if isinstance(state, dict):
            state = state.get("name")
        group = inst.get("node_group")
        if group is None and isinstance(inst.get("tags"), dict):
            group = inst["tags"].get(NODE_GROUP_TAG)
        out.append({"instance_id": inst["instance_id"], "state": state,
                    "launch_time": parse_time(inst.get("launch_time")), "node_group": group,
                    "instance_type": inst.get("instance_type")})
    return out


def daemonset_overhead(cfg, metrics, pods_by_node):
    """Per-node DaemonSet requests to reserve on a NEW node: ``({cpu_cores, memory_bytes}, source)``.

    Order: config ``daemonset_overhead``; ``metrics['daemonset_requests']`` (k3s_metrics query
    ``daemonset_requests``: max over nodes of the DaemonSet pods' requests per node); the max over
    nodes in ``pods_detail``; else zero (source says unknown).
    """
    if cfg.get("daemonset_overhead") is not None:
        return dict(cfg["daemonset_overhead"]), "config daemonset_overhead"
    ds = metrics.get("daemonset_requests")
    if isinstance(ds, dict):
        cpu, mem = ds.get("cpu_cores"), ds.get("memory_bytes")
        if _is_number(cpu) and _is_number(mem) and cpu >= 0 and mem >= 0:
            return {"cpu_cores": float(cpu), "memory_bytes": int(mem)}, "metrics.daemonset_requests"
        raise _in_err("metrics.daemonset_requests", "must be {cpu_cores: cores >= 0, memory_bytes: bytes >= 0}, got %r"
                      % (ds,))
    if pods_by_node:
        cpu, mem = pods_by_node.daemonset_max()
        return {"cpu_cores": float(cpu), "memory_bytes": int(mem)}, "pods_detail (max over nodes)"
    return {"cpu_cores": 0.0, "memory_bytes": 0}, "unknown (no daemonset_requests, no pods_detail): assumed 0"


def _state_map(state, key):
    v = (state or {}).get(key)
    return v if isinstance(v, dict) else {}


# --------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------

def _pod_ref(p):
    return {"namespace": p["namespace"], "name": p["name"], "cpu_cores": p["cpu_cores"],
            "memory_bytes": p["memory_bytes"]}


def _pod_str(p):
    return "%s/%s (%s CPU, %s)" % (p["namespace"], p["name"], _fmt(p["cpu_cores"]), _gib(p["memory_bytes"]))


def _ratio(num, den):
    if not _is_number(num) or not _is_number(den) or den <= 0:
        return None
    return num / den


def _blocking_pod(pods):
    """First reason a pod blocks draining, or None. Returns (kind, pod, text)."""
    per_pdb = {}
    for p in pods:
        if p["pdb_name"] is not None and p["pdb_disruptions_allowed"] is not None:
            per_pdb[(p["namespace"], p["pdb_name"])] = per_pdb.get((p["namespace"], p["pdb_name"]), 0) + 1
    for p in sorted(pods, key=lambda x: (x["namespace"], x["name"])):
        if p["daemonset"] or p["mirror"]:
            continue
        ref = "%s/%s" % (p["namespace"], p["name"])
        if p["safe_to_evict"] is True:
            continue
        if p["safe_to_evict"] is False:
            return "safe_to_evict", p, "pod %s has annotation %s: \"false\"" % (ref, SAFE_TO_EVICT_ANNOTATION)
        pda = p["pdb_disruptions_allowed"]
        if pda is not None:
            need = per_pdb.get((p["namespace"], p["pdb_name"]), 1) if p["pdb_name"] is not None else 1
            if pda < need:
                return "pdb", p, ("pod %s: its PodDisruptionBudget%s allows %d disruption(s), %d needed"
                                  % (ref, " " + p["pdb_name"] if p["pdb_name"] else "", pda, need))
        elif p["kube_system"]:
            return "kube_system", p, "pod %s is in kube-system without a PodDisruptionBudget" % ref
        if not p["owner_kind"]:
            return "no_controller", p, "pod %s has no controller (would not be recreated)" % ref
    return None


def binpacking_policy(m, cfg, nodes_detail, pending_pods_detail, context):
    """The ``binpacking`` policy. See the module docstring for the rules.

    :param m: validated metrics (policy.validate_metrics) plus ``daemonset_requests`` when given.
    :param cfg: validated config (policy.validate_config; includes ``node_groups_resolved``).
    :param nodes_detail: k3s_metrics ``nodes_detail`` (list) or None.
    :param pending_pods_detail: k3s_metrics ``pending_pods_detail`` or None.
    :param context: ``{"state": dict|None, "now": float, "pods_detail": list|None,
        "instances": list|None, "pods_detail_nodes": list|None}`` (``pods_detail_nodes``: the
        nodes pods_detail covers; None = all nodes; pods of other nodes are unknown). ``state`` keys read: ``last_scale_up``, ``unneeded``
        ({node: first_seen unix s}), ``backoff`` ({group: {until, failures}}), ``node_backoff``
        ({node: {until, reason}}).
    :returns: proposal ``{decision, count, reason, blocked_by, candidates, node_group,
        terminate_instance_ids, unfittable_pods, unneeded, explain, bounds_applied}``.
    :raises InputError: bad input, naming the field.
    """
    now = float(context["now"])
    state = context.get("state")
    groups = cfg["node_groups_resolved"]
    if not groups:
        raise _cfg_error("instance_type", "the binpacking policy needs instance_type or node_groups")
    gmap = dict((g["name"], g) for g in groups)
    nodes_detail = nodes_detail or []
    pods_given = context.get("pods_detail") is not None
    pods_by_node = _PodIndex(context.get("pods_detail"))
    pending = _norm_pending(pending_pods_detail)
    instances = _norm_instances(context.get("instances"))
    overhead, overhead_src = daemonset_overhead(cfg, m, pods_by_node)
    explain = {"node_groups": [dict(g) for g in groups], "daemonset_overhead": dict(overhead, source=overhead_src)}
    warnings = []

    # ---- nodes and their groups -------------------------------------------------------
    inst_by_id = dict((i["instance_id"], i) for i in instances)
    node_iids = set()
    workers = []
    for idx, n in enumerate(nodes_detail):
        if not isinstance(n, dict):
            raise _in_err("nodes_detail[%d]" % idx, "must be a dict (from k3s.autoscaler.k3s_metrics)")
        if n.get("instance_id"):
            node_iids.add(n["instance_id"])
        if n.get("control_plane"):
            continue
        grp = None
        inst = inst_by_id.get(n.get("instance_id"))
        if inst is not None and inst["node_group"] in gmap:
            grp = inst["node_group"]
        else:
            matches = [g["name"] for g in groups if g["instance_type"] == n.get("instance_type")]
            if len(matches) == 1:
                grp = matches[0]
            elif len(groups) == 1:
                grp = groups[0]["name"]
        workers.append((n, grp))

    # ---- instances on the way / never joined -------------------------------------------
    terminate, in_flight = [], []
    for inst in instances:
        if inst["state"] not in _ACTIVE_STATES or inst["instance_id"] in node_iids:
            continue
        age = None if inst["launch_time"] is None else now - inst["launch_time"]
        rec = {"instance_id": inst["instance_id"], "node_group": inst["node_group"], "age_seconds": age}
        if age is not None and age > cfg["max_node_provision_time"]:
            rec["reason"] = ("not registered as a node %ss after launch > max_node_provision_time %ss: terminate"
                             % (_fmt(age, 0), _fmt(cfg["max_node_provision_time"])))
            terminate.append(rec)
            continue
        if age is None:
            warnings.append("instance %s has no launch_time; counted as on the way, never terminated as "
                            "never-joined" % inst["instance_id"])
        grp = inst["node_group"] if inst["node_group"] in gmap else (
            groups[0]["name"] if len(groups) == 1 else None)
        rec["node_group"] = grp
        in_flight.append(rec)
    explain["in_flight"] = in_flight
    explain["never_joined"] = terminate

    count_by_group = dict((g["name"], 0) for g in groups)
    for n, grp in workers:
        if grp in count_by_group:
            count_by_group[grp] += 1
    for rec in in_flight:
        if rec["node_group"] in count_by_group:
            count_by_group[rec["node_group"]] += 1
    total_nodes = m["nodes"]
    total_with_flight = total_nodes + len(in_flight)
    explain["nodes_by_group"] = dict(count_by_group)

    backoff = _state_map(state, "backoff")
    backed_off = {}
    for g in groups:
        b = backoff.get(g["name"])
        if isinstance(b, dict) and _is_number(b.get("until")) and b["until"] > now:
            backed_off[g["name"]] = b
    explain["backoff"] = dict((k, dict(v, remaining_seconds=v["until"] - now)) for k, v in backed_off.items())

    pods_nodes = context.get("pods_detail_nodes")
    result = {"_pods_nodes": None if pods_nodes is None else set(pods_nodes),
              "_instance_groups": dict((i["instance_id"], i["node_group"]) for i in instances),
              "decision": "no_action", "count": 0, "blocked_by": [], "candidates": [], "node_group": None,
              "terminate_instance_ids": [r["instance_id"] for r in terminate], "unfittable_pods": [],
              "unneeded": {}, "explain": explain, "warnings": warnings}

    def eff(g):
        return (max(0.0, g["allocatable_cpu_cores"] - overhead["cpu_cores"]),
                max(0, g["allocatable_memory_bytes"] - overhead["memory_bytes"]))

    # ---- scale-up analysis ---------------------------------------------------------------
    up = {"eligible_pods": [], "skipped_daemonset": [], "skipped_too_young": [], "skipped_unknown_age": [],
          "unfittable": [], "fit_existing_nodes": [], "fit_in_flight": [], "options": [], "chosen": None}
    explain["scale_up"] = up
    delay = cfg["new_pod_scale_up_delay"]
    candidates_up = []
    pending_fittable = 0
    for p in pending:
        if p["owner_kind"] == "DaemonSet":
            up["skipped_daemonset"].append(_pod_ref(p))
            continue
        if not any(fits(p["cpu_cores"], p["memory_bytes"], *eff(g)) for g in groups):
            ref = _pod_ref(p)
            ref["reason"] = ("requests more than any node group's allocatable after DaemonSet overhead (%s)"
                             % ", ".join("%s: %s CPU, %s" % (g["name"], _fmt(eff(g)[0]), _gib(eff(g)[1]))
                                         for g in groups))
            up["unfittable"].append(ref)
            continue
        pending_fittable += 1
        if p["age_seconds"] is None and delay > 0:
            up["skipped_unknown_age"].append(_pod_ref(p))
            continue
        if p["age_seconds"] is not None and p["age_seconds"] < delay:
            ref = _pod_ref(p)
            ref["age_seconds"] = p["age_seconds"]
            up["skipped_too_young"].append(ref)
            continue
        candidates_up.append(p)
    result["unfittable_pods"] = up["unfittable"]
    if up["unfittable"]:
        result["blocked_by"].append(BLOCKED_UNFITTABLE)

    def free_bins():
        bins = []
        for n, _grp in workers:
            if n.get("ready") is not True or n.get("unschedulable"):
                continue
            ac, am = n.get("allocatable_cpu_cores"), n.get("allocatable_memory_bytes")
            if not _is_number(ac) or not _is_number(am):
                continue
            bins.append({"name": n.get("name"), "free_cpu": ac - (n.get("requested_cpu_cores") or 0.0),
                         "free_mem": am - (n.get("requested_memory_bytes") or 0)})
        return bins

    remaining = candidates_up
    if remaining:
        res = ffd_pack(remaining, 0.0, 0.0, bins=free_bins(), max_new_nodes=0)
        up["fit_existing_nodes"] = [dict(_pod_ref(p), node=b) for p, b in res["placements"]]
        remaining = res["unplaced"]
    if remaining and in_flight:
        fl_bins = []
        for rec in in_flight:
            g = gmap.get(rec["node_group"]) or groups[0]
            c, mm = eff(g)
            fl_bins.append({"name": rec["instance_id"], "free_cpu": c, "free_mem": mm})
        res = ffd_pack(remaining, 0.0, 0.0, bins=fl_bins, max_new_nodes=0)
        up["fit_in_flight"] = [dict(_pod_ref(p), instance_id=b) for p, b in res["placements"]]
        remaining = res["unplaced"]
    up["eligible_pods"] = [_pod_ref(p) for p in remaining]

    # bounds: above max_nodes remove one node (the least utilised one no pod or annotation protects)
    if total_nodes > cfg["max_nodes"]:
        _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap,
                             count_by_group, total_nodes, pending_fittable, allow_removal=False)
        r = _over_max_pick(result, workers, pods_by_node, pods_given, pods_nodes)
        if r is not None:
            result.update(decision="scale_down", count=1, node_group=r["node_group"], bounds_applied=True,
                          candidates=[_candidate(r)],
                          reason="scale_down: %d nodes > max_nodes %d; removing 1 toward max_nodes: %s "
                                 "(utilisation %s, %s)" % (total_nodes, cfg["max_nodes"], r["name"],
                                                           _fmt(r["utilization"]), r["reason"] or r["status"]))
        else:
            result["reason"] = ("no_action: %d nodes > max_nodes %d but no node can go: each is protected, NotReady, "
                                "of unknown pods, or its pods fit nowhere else" % (total_nodes, cfg["max_nodes"]))
            result["blocked_by"].append("no_candidates")
        return result

    # bounds: min_nodes (cluster and per group), counting instances on the way
    step = cfg["max_scale_up_step"]
    cluster_room = cfg["max_nodes"] - total_with_flight
    deficits = [(g, g["min_nodes"] - count_by_group[g["name"]]) for g in groups
                if count_by_group[g["name"]] < g["min_nodes"] and g["name"] not in backed_off]
    if total_with_flight < cfg["min_nodes"] and not deficits:
        deficits = [(g, cfg["min_nodes"] - total_with_flight) for g in groups
                    if g["name"] not in backed_off and count_by_group[g["name"]] < g["max_nodes"]][:1]
    if deficits and cluster_room > 0:
        g, need = deficits[0]
        cnt = max(1, min(need, step, cluster_room, g["max_nodes"] - count_by_group[g["name"]]))
        result.update(decision="scale_up", count=cnt, node_group=g["name"], bounds_applied=True,
                      reason="scale_up: %d nodes (+%d on the way) below min_nodes (node group %s has %d < its "
                             "min_nodes %d; cluster min_nodes %d); adding %d %s node(s) (max_scale_up_step %d)"
                             % (total_nodes, len(in_flight), g["name"], count_by_group[g["name"]],
                                g["min_nodes"], cfg["min_nodes"], cnt, g["instance_type"], step))
        up["chosen"] = {"node_group": g["name"], "nodes": cnt, "why": "min_nodes"}
        _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap,
                             count_by_group, total_nodes, pending_fittable, allow_removal=False)
        return result

    if remaining:
        for g in groups:
            headroom = min(g["max_nodes"] - count_by_group[g["name"]], cluster_room)
            c, mm = eff(g)
            opt = {"node_group": g["name"], "instance_type": g["instance_type"], "headroom": max(0, headroom),
                   "node_allocatable_cpu_cores": c, "node_allocatable_memory_bytes": mm}
            if g["name"] in backed_off:
                opt.update(nodes=0, pods=0, cpu_waste=None, memory_waste=None,
                           skipped="backed off until %s (%ss left) after %s launch failure(s)"
                                   % (_fmt(backed_off[g["name"]]["until"], 0),
                                      _fmt(backed_off[g["name"]]["until"] - now, 0),
                                      backed_off[g["name"]].get("failures", "?")))
                up["options"].append(opt)
                continue
            fit_here = [p for p in remaining if fits(p["cpu_cores"], p["memory_bytes"], c, mm)]
            full = ffd_pack(fit_here, c, mm)
            limit = max(0, min(headroom, step))
            packed = ffd_pack(fit_here, c, mm, max_new_nodes=limit)
            n_new = packed["new_nodes"]
            opt.update(nodes_needed=full["new_nodes"], nodes=n_new, pods=len(packed["placements"]),
                       pods_not_fitting_group=len(remaining) - len(fit_here),
                       cpu_waste=(1.0 - packed["new_used_cpu"] / (n_new * c)) if n_new and c > 0 else None,
                       memory_waste=(1.0 - packed["new_used_mem"] / (n_new * mm)) if n_new and mm > 0 else None,
                       placed=["%s/%s" % (p["namespace"], p["name"]) for p, _b in packed["placements"]])
            if n_new == 0:
                opt["skipped"] = ("at max_nodes (group %d/%d, cluster %d+%d on the way/%d)"
                                  % (count_by_group[g["name"]], g["max_nodes"], total_nodes, len(in_flight),
                                     cfg["max_nodes"]) if limit == 0 else "no pending pod fits this group")
            up["options"].append(opt)
        best = least_waste([o for o in up["options"] if o.get("cpu_waste") is not None])
        if best is not None:
            up["chosen"] = {"node_group": best["node_group"], "nodes": best["nodes"], "pods": best["pods"],
                            "score": best["cpu_waste"] + best["memory_waste"], "expander": "least-waste"}
            drivers = [p for p in remaining if "%s/%s" % (p["namespace"], p["name"]) in set(best["placed"])]
            shown = ", ".join(_pod_str(p) for p in drivers[:5]) + (" and %d more" % (len(drivers) - 5)
                                                                   if len(drivers) > 5 else "")
            others = [o for o in up["options"] if o is not best]
            why_group = "least-waste: cpu_waste %s + memory_waste %s = %s" % (
                _fmt(best["cpu_waste"]), _fmt(best["memory_waste"]), _fmt(best["cpu_waste"] + best["memory_waste"]))
            if others:
                why_group += "; other groups: " + "; ".join(
                    "%s %s" % (o["node_group"], o.get("skipped") or "score %s" % _fmt(
                        o["cpu_waste"] + o["memory_waste"])) for o in others)
            capped = best["nodes"] < best["nodes_needed"]
            result.update(
                decision="scale_up", count=best["nodes"], node_group=best["node_group"],
                reason="scale_up: %d pending pod(s) pending >= %ss fit no existing node or instance on the way "
                       "(%d on the way); FFD packs %d of them onto %d new %s node(s) of group %s%s (%s): %s"
                       % (len(remaining), _fmt(delay), len(in_flight), best["pods"], best["nodes"],
                          best["instance_type"], best["node_group"],
                          " (capped from %d by max_scale_up_step %d / max_nodes)" % (best["nodes_needed"], step)
                          if capped else "", why_group, shown))
            _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap,
                                 count_by_group, total_nodes, pending_fittable, allow_removal=False)
            return result
        # nothing can launch
        why = "; ".join("%s: %s" % (o["node_group"], o.get("skipped", "no nodes")) for o in up["options"])
        if backed_off and all(g["name"] in backed_off for g in groups):
            result["blocked_by"].append(BLOCKED_BACKOFF)
        elif any(o.get("skipped", "").startswith("at max_nodes") for o in up["options"]):
            result["blocked_by"].append("max_nodes")
        shown = ", ".join(_pod_str(p) for p in remaining[:5])
        result["reason"] = ("no_action: scale_up wanted (%d pending pod(s) fit no existing node: %s) but no node "
                            "group can launch (%s)" % (len(remaining), shown, why))
        _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap,
                             count_by_group, total_nodes, pending_fittable, allow_removal=False)
        return result

    # ---- no scale-up: scale-down ---------------------------------------------------------
    parts = []
    if up["fit_existing_nodes"]:
        parts.append("%d pending pod(s) fit existing nodes' free requests capacity" % len(up["fit_existing_nodes"]))
    if up["fit_in_flight"]:
        parts.append("%d pending pod(s) fit the %d instance(s) on the way"
                     % (len(up["fit_in_flight"]), len(in_flight)))
    if up["skipped_too_young"]:
        parts.append("%d pending pod(s) younger than new_pod_scale_up_delay %ss"
                     % (len(up["skipped_too_young"]), _fmt(delay)))
    if up["skipped_unknown_age"]:
        parts.append("%d pending pod(s) of unknown age" % len(up["skipped_unknown_age"]))
    if up["skipped_daemonset"]:
        parts.append("%d pending DaemonSet pod(s) ignored" % len(up["skipped_daemonset"]))
    if up["unfittable"]:
        parts.append("%d unfittable pod(s) (bigger than any node group's empty node: %s)"
                     % (len(up["unfittable"]), ", ".join(_pod_str(p) for p in up["unfittable"][:3])))
    up_text = "; ".join(parts) if parts else "no pending pods"
    _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap, count_by_group,
                         total_nodes, pending_fittable, allow_removal=True, up_text=up_text)
    return result


def _over_max_pick(result, workers, pods_by_node, pods_given, pods_nodes):
    """Above max_nodes: the node to remove - removable/unneeded first, then the least utilised Ready node
    with an instance_id whose pods are known, unprotected, and fit on the other schedulable nodes
    (utilisation, usage and timing are overridden by the bound, the safety of the pods is not)."""
    order = {"removable": 0, "unneeded": 1, "needed": 2}
    report = dict((r["name"], r) for r in result["explain"]["scale_down"]["nodes"])
    by_name = dict((n.get("name"), n) for n, _g in workers)
    pool = sorted((r for r in report.values() if r["status"] in order and r["instance_id"]
                   and r["utilization"] is not None and r["node_group"] is not None
                   and by_name[r["name"]].get("ready") is True),
                  key=lambda x: (order[x["status"]], x["utilization"], x["name"]))
    for r in pool:
        name = r["name"]
        covered = pods_given and (pods_nodes is None or name in pods_nodes)
        if covered:
            pods = pods_by_node.get(name)
        elif r["empty"]:
            pods = []
        else:
            continue
        if _blocking_pod(pods) is not None:
            continue
        dests = []
        for n, _g in workers:
            if n.get("name") == name or n.get("ready") is not True or n.get("unschedulable"):
                continue
            if _is_number(n.get("allocatable_cpu_cores")) and _is_number(n.get("allocatable_memory_bytes")):
                dests.append({"name": n.get("name"),
                              "free_cpu": n["allocatable_cpu_cores"] - (n.get("requested_cpu_cores") or 0),
                              "free_mem": n["allocatable_memory_bytes"] - (n.get("requested_memory_bytes") or 0)})
        movable = [p for p in pods if not p["daemonset"] and not p["mirror"]]
        if simulate_drain(movable, dests)[0]:
            return r
    return None


def _candidate(r):
    """Scale-down candidate record (threshold policy's shape plus node_group, utilization, empty)."""
    return {"name": r["name"], "instance_id": r["instance_id"], "instance_type": r["instance_type"],
            "node_group": r["node_group"], "cpu_percent": r["cpu_percent"], "memory_percent": r["memory_percent"],
            "requests_percent": None if r["utilization"] is None else 100.0 * r["utilization"],
            "utilization": r["utilization"], "pods": r["pods"], "empty": r["empty"],
            "unschedulable": r["unschedulable"]}


def _scale_down_analysis(result, cfg, workers, pods_by_node, pods_given, state, now, gmap, count_by_group,
                         total_nodes, pending_fittable, allow_removal, up_text=""):
    """Per-node scale-down report, new ``unneeded`` map, and (if allowed) the nodes to remove."""
    pods_nodes = result.pop("_pods_nodes", None)
    inst_groups = result.pop("_instance_groups", {})
    prev_unneeded = _state_map(state, "unneeded")
    node_backoff = _state_map(state, "node_backoff")
    thr = cfg["scale_down_utilization_threshold"]
    report = []
    result["explain"]["scale_down"] = {"nodes": report}
    dest_pool = []
    evaluated = []
    for n, grp in workers:
        name = n.get("name")
        cpu_r = _ratio(n.get("requested_cpu_cores"), n.get("allocatable_cpu_cores"))
        mem_r = _ratio(n.get("requested_memory_bytes"), n.get("allocatable_memory_bytes"))
        util = max(cpu_r, mem_r) if cpu_r is not None and mem_r is not None else None
        covered = pods_given and (pods_nodes is None or name in pods_nodes)
        n_movable = pods_by_node.movable_count(name) if covered else None
        empty = (n_movable == 0) if covered else (n.get("pods") == 0)
        rec = {"name": name, "instance_id": n.get("instance_id"), "instance_type": n.get("instance_type"),
               "node_group": grp, "utilization": util, "cpu_requests_ratio": cpu_r, "memory_requests_ratio": mem_r,
               "cpu_percent": n.get("cpu_percent"), "memory_percent": n.get("memory_percent"),
               "pods": n.get("pods"), "movable_pods": n_movable, "empty": empty,
               "unschedulable": bool(n.get("unschedulable")),
               "unneeded_for": None, "unneeded_time": cfg["scale_down_unneeded_time"], "status": "needed",
               "reason": ""}
        report.append(rec)
        if n.get("ready") is True and not n.get("unschedulable") and util is not None:
            dest_pool.append({"name": name, "free_cpu": n["allocatable_cpu_cores"] - (n.get("requested_cpu_cores") or 0),
                              "free_mem": n["allocatable_memory_bytes"] - (n.get("requested_memory_bytes") or 0)})
        why = None
        if not n.get("instance_id"):
            why = "no instance_id (not an EC2 node of ours)"
        elif n.get("ready") is not True:
            why = "NotReady (usage stale)"
        elif grp is None:
            tagged = inst_groups.get(n.get("instance_id"))
            if tagged:
                why = ("node group unknown (its instance tag %s is %r, which is not in node_groups, and instance_type "
                       "%s matches no single group): add that group to node_groups or retag the instance"
                       % (NODE_GROUP_TAG, tagged, n.get("instance_type")))
            else:
                why = "node group unknown (no instance tag %s, instance_type %s matches no single group)" % (
                    NODE_GROUP_TAG, n.get("instance_type"))
        elif str((n.get("annotations") or {}).get(SCALE_DOWN_DISABLED_ANNOTATION, "")).lower() == "true" \
                or n.get("scale_down_disabled") is True:
            why = "node annotation %s: \"true\"" % SCALE_DOWN_DISABLED_ANNOTATION
            rec["blocked_by"] = {"kind": "annotation", "annotation": SCALE_DOWN_DISABLED_ANNOTATION}
        elif util is None:
            why = "requests utilisation unknown (allocatable missing)"
        elif util >= thr:
            why = "requests utilisation %s >= scale_down_utilization_threshold %s (cpu %s, memory %s)" % (
                _fmt(util), _fmt(thr), _fmt(cpu_r), _fmt(mem_r))
        else:
            cp, mp = n.get("cpu_percent"), n.get("memory_percent")
            if not _is_number(cp) or not _is_number(mp):
                why = "usage unknown (cpu_percent/memory_percent null): uncertain data never removes a node"
            elif cp >= cfg["cpu_threshold"] or mp >= cfg["memory_threshold"]:
                why = "usage cpu %s%% / memory %s%% not below cpu_threshold %s%% / memory_threshold %s%%" % (
                    _fmt(cp, 1), _fmt(mp, 1), _fmt(cfg["cpu_threshold"]), _fmt(cfg["memory_threshold"]))
            elif not covered and not empty:
                why = ("pods on the node unknown (pods_detail not provided; pass kubeconfig so the module lists "
                       "them): cannot prove they fit elsewhere")
                rec["blocked_by"] = {"kind": BLOCKED_PODS_DETAIL}
            else:
                pods = pods_by_node.get(name)
                blk = _blocking_pod(pods)
                if blk is not None:
                    kind, pod, text = blk
                    why = text
                    rec["blocked_by"] = {"kind": kind, "pod": "%s/%s" % (pod["namespace"], pod["name"])}
                    if kind == "pdb":
                        rec["blocked_by"]["pdb"] = pod["pdb_name"]
                        rec["blocked_by"]["disruptions_allowed"] = pod["pdb_disruptions_allowed"]
        if why is not None:
            rec["reason"] = why
            rec["status"] = "blocked" if "blocked_by" in rec else "needed"
            continue
        evaluated.append((n, grp, rec, [p for p in pods_by_node.get(name) if not p["daemonset"] and not p["mirror"]]
                          if covered else []))

    # simulation: least utilised first; a node planned unneeded is no destination for later ones.
    evaluated.sort(key=lambda t: (not t[2]["empty"], t[2]["utilization"], t[2]["name"]))
    removed_names = set()
    dests = dest_pool
    unneeded = {}
    for n, grp, rec, movable in evaluated:
        name = rec["name"]
        placed, unplaced = _drain_inplace(movable, dests, removed_names | set([name]))
        if unplaced:
            rec["reason"] = ("simulation: %d pod(s) do not fit on the other nodes: %s"
                             % (len(unplaced), ", ".join(_pod_str(p) for p in unplaced[:5])))
            rec["status"] = "needed"
            rec["simulation"] = {"fits": False, "unplaced": [_pod_ref(p) for p in unplaced]}
            continue
        rec["simulation"] = {"fits": True, "placements": [dict(_pod_ref(p), node=d["name"]) for p, d in placed]}
        removed_names.add(name)
        first = prev_unneeded.get(name)
        first = float(first) if _is_number(first) and first <= now else now
        unneeded[name] = first
        rec["unneeded_since"] = first
        rec["unneeded_for"] = now - first
        nb = node_backoff.get(name)
        if isinstance(nb, dict) and _is_number(nb.get("until")) and nb["until"] > now:
            rec["status"] = "backoff"
            rec["reason"] = "unneeded, but drain failed before (%s); skipped for %ss more" % (
                nb.get("reason") or "drain_failed", _fmt(nb["until"] - now, 0))
        elif now - first >= cfg["scale_down_unneeded_time"]:
            rec["status"] = "removable"
            rec["reason"] = ("unneeded for %ss >= scale_down_unneeded_time %ss: utilisation %s < %s, usage below "
                             "thresholds, %s" % (_fmt(now - first, 0), _fmt(cfg["scale_down_unneeded_time"]),
                                                 _fmt(rec["utilization"]), _fmt(thr),
                                                 "empty" if rec["empty"] else "its %d pod(s) fit elsewhere"
                                                 % len(movable)))
        else:
            rec["status"] = "unneeded"
            rec["reason"] = "unneeded for %ss of scale_down_unneeded_time %ss" % (
                _fmt(now - first, 0), _fmt(cfg["scale_down_unneeded_time"]))
    result["unneeded"] = unneeded

    if not allow_removal:
        return
    removable = [r for r in report if r["status"] == "removable"]
    removable.sort(key=lambda r: (not r["empty"], r["utilization"], r["name"]))
    summary = ", ".join("%s: %s" % (r["name"], r["reason"]) for r in report) or "no worker nodes"
    if not removable:
        result["reason"] = "no_action: %s; no node removable (%s)" % (up_text, summary)
        return
    last_up = (state or {}).get("last_scale_up")
    if _is_number(last_up) and now - last_up < cfg["scale_down_delay_after_add"]:
        result["blocked_by"].append(BLOCKED_DELAY_AFTER_ADD)
        result["reason"] = ("no_action: %d node(s) removable (%s) but blocked by scale_down_delay_after_add: %ss "
                            "since the last scale_up < %ss" % (len(removable), ", ".join(r["name"] for r in removable),
                                                               _fmt(now - last_up, 0),
                                                               _fmt(cfg["scale_down_delay_after_add"])))
        return
    if pending_fittable:
        result["blocked_by"].append(BLOCKED_PENDING)
        result["reason"] = ("no_action: %d node(s) removable (%s) but %d fittable pod(s) are pending; no node is "
                            "removed until they are scheduled" % (len(removable),
                                                                  ", ".join(r["name"] for r in removable),
                                                                  pending_fittable))
        return
    room = total_nodes - cfg["min_nodes"]
    per_group = dict((g, count_by_group[g] - gmap[g]["min_nodes"]) for g in count_by_group)
    chosen, empties, non_empty = [], 0, 0
    skipped = []
    for r in removable:
        if len(chosen) >= room:
            skipped.append("%s (cluster at min_nodes %d)" % (r["name"], cfg["min_nodes"]))
            continue
        if per_group.get(r["node_group"], 0) <= 0:
            skipped.append("%s (group %s at its min_nodes)" % (r["name"], r["node_group"]))
            continue
        if r["empty"]:
            if empties >= cfg["max_empty_bulk_delete"]:
                skipped.append("%s (max_empty_bulk_delete %d)" % (r["name"], cfg["max_empty_bulk_delete"]))
                continue
            empties += 1
        else:
            if non_empty >= 1:
                skipped.append("%s (at most one non-empty node per run)" % r["name"])
                continue
            non_empty += 1
        per_group[r["node_group"]] -= 1
        chosen.append(r)
    if not chosen:
        result["blocked_by"].append("min_nodes")
        result["reason"] = "no_action: %d node(s) removable but none can go: %s" % (len(removable), "; ".join(skipped))
        return
    result["decision"] = "scale_down"
    result["count"] = len(chosen)
    result["candidates"] = [_candidate(r) for r in chosen]
    result["node_group"] = chosen[0]["node_group"]
    why_each = "; ".join("%s: %s" % (r["name"], r["reason"]) for r in chosen)
    kept = " (kept: %s)" % "; ".join(skipped) if skipped else ""
    result["reason"] = ("scale_down: remove %d node(s) (%d empty, %d non-empty): %s%s; %s"
                        % (len(chosen), empties, non_empty, why_each, kept, up_text))
