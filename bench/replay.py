#!/usr/bin/env python
"""Replay benchmark (``make bench-replay``): the SAME policy code, driven by the local cluster's simulation
in virtual time, against an oracle lower bound. A benchmark that prints figures, not a timed test.

What runs
---------
For each scenario (``burst``, ``burst-20m`` = burst held 20 min, ``diurnal``, ``trace``) and each policy (every name in
``policy.POLICIES`` that is asked for; by default ``threshold`` and, once registered, ``binpacking``):

* :class:`local_cluster.simulation.Simulation` on a :class:`local_cluster.clock.VirtualClock`, in memory
  (no Kubernetes API store, no HTTP, no Prometheus), with a :class:`MockEC2` on the same clock: a launched
  instance is ``pending`` for ``--ec2-boot`` s, then the fake kubelet joins it ``--join`` s after it is
  ``running`` (node boot time = the sum, default 45 + 30 = 75 s). The simulation ticks every ``--tick`` s.
* Every ``--check-interval`` s (default 30 s) one autoscaler cycle, as ``playbooks/autoscale.yml`` runs it:
  :func:`observe` builds the policy inputs from the simulation exactly as ``k3s_metrics`` (Prometheus
  source) + ``ec2_instance_info`` would; ``policy.decide()`` decides; :func:`Replay.apply` acts as the
  ``autoscale`` role does (launch through the mock EC2 with ``count``; scale-down = cordon, evict the
  node's non-DaemonSet pods (they come back Pending through their ReplicaSet), terminate the instance);
  the in-memory state dict is updated with ``state.record_event`` like ``k3s_scale_event`` does.
* An ORACLE lower bound (:func:`oracle_nodes`), see below.

Figures (per scenario x policy)
-------------------------------
* ``node_hours``: EC2 instance-hours of the node group: every instance from launch (``pending``, billed
  as in EC2) to the terminate call; the control plane is not counted (it is never scaled).
* ``ratio``: node_hours / oracle node_hours.
* ``p50``/``p95`` pending time (seconds): for every non-DaemonSet pod, scheduled-time minus creation time.
  Pods still Pending at the end, or deleted while Pending (a trace pod that ended, a ReplicaSet shrinking),
  count with the time they had waited (a lower bound of their wait); ``censored`` says how many.
  Resolution: the simulation tick (pods are created and scheduled at ticks).
* ``actions``: executed scale actions, one per autoscaler run that acted (a scale_up of N nodes is one
  action, so is a scale_down of N empty nodes); terminations of never-joined instances are counted apart.
* ``flaps``: :func:`count_flaps` -- consecutive scale actions of opposite direction within 600 s.
* ``days/s``: simulated days per wall-clock second of that replay (policy + simulation + accounting).

Oracle lower bound
------------------
The issue's oracle is "the node-hours needed if every pod were packed perfectly with zero boot time".
At every tick, take P(t) = the CPU (cores) and memory (bytes) requests of all non-DaemonSet pods that exist
(Pending or Running; this set is the workloads' desired replicas and does not depend on the policy), and
the per-node room R = the node group's allocatable A (instance-type capacity minus the kubelet's
reservation: CPU = capacity, memory = capacity - 100 MiB, as the fake kubelet) minus the DaemonSet requests
per node. Pods are INDIVISIBLE, so the oracle is a lower bound of the optimal integer (2-D vector)
packing of P(t) into nodes of room R (:func:`oracle_nodes`)::

    oracle(t) = max(min_nodes, L2_cpu, L2_mem, ceil(n / min(k_cpu, k_mem)))

L2_d: Martello-Toth L2 bound of the 1-D packing of dimension d (contains the volume bound
ceil(sum_d / R_d) and the count of pods larger than half a node); k_d: the most pods of P(t) one node can
hold in dimension d (the k smallest requests that fit R_d together). Proof (see :func:`oracle_nodes`): an
optimal packing of P(t) projected on one dimension is a 1-D packing, and no node holds more than k_d pods.
Integrated over time with zero boot time, it is below the node-hours of ANY schedule that runs every pod
of P(t) at every instant (a policy that leaves pods Pending can use less, and pays in pending time).
For identical pods it is exact (diurnal: 18 pods of 500m, 3 per m5.large -> 6).

The older FRACTIONAL bound (:func:`fractional_nodes`, pods cut into pieces:
``max(min_nodes, ceil(max(D_cpu / R_cpu, D_mem / R_mem))``) is lower still; it is printed as the
``(fractional bound)`` row so nothing is hidden, and ``(ffd packing, 0 boot)`` (:func:`ffd_nodes`) is an
achievable integer packing of the same pods: the true optimum lies between the oracle and it.

Data: the ``trace`` scenario replays CPU-only pods (``num_gpu == 0``) of the Alibaba cluster-trace-gpu-v2023
"openb" pod list, read in place from ``../shared/traces/alibaba-openb/`` (never copied into this repo), in
REAL time (compression 1) and at REAL size (no request scaling) on m5.16xlarge nodes (64 vCPU, 256 GiB; the
largest CPU-only pod asks 32 cores / 64 GiB). Results from it must cite: Weng et al., "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC 2023.

Outputs: the table on stdout, ``out/bench-replay.json`` and ``out/bench-replay.png``.
Usage: ``.venv/bin/python bench/replay.py [--scenarios burst,diurnal,trace] [--policies threshold,binpacking]``.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (REPO_ROOT, os.path.join(REPO_ROOT, "collections")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from ansible_collections.k3s.autoscaler.plugins.module_utils import policy as pol  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils import state as st  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import EC2Error, MockEC2  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils.instance_types import get_instance_type  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import (  # noqa: E402
    assemble_result, new_node, new_pending_pod, set_provider_id)

from local_cluster import kubelet as kl  # noqa: E402
from local_cluster import trace as trace_mod  # noqa: E402
from local_cluster.clock import VirtualClock  # noqa: E402
from local_cluster.simulation import NODE_BASE_CPU, NODE_BASE_MEMORY, Simulation  # noqa: E402
from local_cluster.workloads import (  # noqa: E402
    Scenario, TimeFunction, _parse_count, load_scenario, parse_cpu, parse_memory)

CITATION = trace_mod.CITATION
MIB = 1024 * 1024
LIVE_EC2_STATES = ["pending", "running", "stopping", "stopped"]  # what ec2_instance_info lists as existing
DEFAULT_POLICIES = ("threshold", "binpacking")
DEFAULT_SCENARIOS = ("burst", "burst-20m", "diurnal", "trace")


# --------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Replay settings shared by every policy (times in seconds)."""
    check_interval: float = 30.0     # seconds between autoscaler runs (the timer)
    tick: float = 10.0               # simulation step (scheduler/kubelet/workloads resolution)
    ec2_boot: float = 45.0           # EC2 pending -> running
    join: float = 30.0               # running -> k3s agent registered (Node Ready)
    shutdown: float = 5.0            # EC2 shutting-down -> terminated
    remove_grace: float = 30.0       # NotReady -> Node deleted (cloud node lifecycle controller)
    rate_window: float = 300.0       # k3s_metrics rate window for node CPU % (role default 5m)
    scale_up_cooldown: float = 300.0    # seed role default
    scale_down_cooldown: float = 600.0  # seed role default
    max_scale_up_step: int = 10      # for policies that size their step; threshold keeps the seed's 1
    flap_window: float = 600.0       # a scale_up and a scale_down closer than this = a flap
    seed: int = 1

    @property
    def boot_seconds(self) -> float:
        """Node boot time: EC2 boot + k3s join."""
        return self.ec2_boot + self.join


@dataclass
class ScenarioRun:
    """One scenario as the benchmark runs it."""
    name: str
    scenario: Scenario
    duration: float            # virtual seconds to replay
    instance_type: str
    min_nodes: int
    max_nodes: int
    note: str = ""


def build_scenario(name: str, *, trace_start: float = 12.0e6, trace_days: float = 7.0,
                   trace_instance_type: str = "m5.16xlarge", trace_path: str | None = None,
                   duration: float | None = None) -> ScenarioRun:
    """``burst`` / ``diurnal`` from ``local_cluster/scenarios`` played at speed 1 (scenario second = clock
    second, so boot times and check intervals are realistic); ``trace``: a window of the Alibaba openb
    trace (CPU-only pods) in real time and at real size."""
    if name == "trace":
        sc = load_scenario("trace")
        sc.speed, sc.repeat = 1.0, 0.0
        sc.instance_type = trace_instance_type
        sc.trace = dict(sc.trace or {}, start=trace_start, length=trace_days * 86400.0, compression=1.0,
                        cpu_scale=1.0, memory_scale=1.0)
        wls = trace_mod.apply_trace(sc, trace_path)
        itype = get_instance_type(trace_instance_type)
        return ScenarioRun("trace", sc, duration or trace_days * 86400.0, trace_instance_type, 1, 12,
                           note="Alibaba openb trace seconds [%g, %g), %d CPU-only pods, real time and size, %s "
                                "(%d vCPU, %d GiB); %s" % (trace_start, trace_start + trace_days * 86400, len(wls),
                                                          trace_instance_type, itype["vcpu"],
                                                          itype["memory_mib"] // 1024, CITATION))
    if name == "burst-20m":
        # burst.yaml with the burst held for 20 min instead of 2: long enough for new nodes to matter
        sc = load_scenario("burst")
        sc.name, sc.speed = name, 1.0
        w = sc.workloads[0]
        w.replicas = TimeFunction([[0, 3], [40, 12], [1240, 1]], _parse_count, "web.replicas")
        w.usage_cpu = TimeFunction([[0, "400m"], [1240, "50m"]], parse_cpu, "web.usage.cpu")
        w.usage_memory = TimeFunction([[0, "300Mi"], [1240, "100Mi"]], parse_memory, "web.usage.memory")
        return ScenarioRun(name, sc, duration or 3600.0, sc.autoscaler.get("instance_type") or sc.instance_type,
                           int(sc.autoscaler.get("min_nodes", 1)), int(sc.autoscaler.get("max_nodes", 10)),
                           note="burst.yaml with 12 x 500m held from t=40 s to t=1240 s (20 min), speed 1")
    sc = load_scenario(name)
    sc.speed = 1.0
    auto = sc.autoscaler
    default_duration = {"burst": 1800.0, "diurnal": 86400.0}.get(name, sc.duration or 3600.0)
    return ScenarioRun(name, sc, duration or default_duration, auto.get("instance_type") or sc.instance_type,
                       int(auto.get("min_nodes", 1)), int(auto.get("max_nodes", 10)),
                       note="local_cluster/scenarios/%s.yaml at speed 1" % name)


def policy_config(policy: str, run: ScenarioRun, s: Settings, overrides: dict | None = None) -> dict:
    """The policy config: the same min/max and cooldowns for every policy; threshold keeps the seed's
    settings (pending_pods_threshold 0, cpu/memory 20 %, one node per scale_up). ``overrides`` (``--set``)
    apply to every policy but threshold (e.g. ``new_pod_scale_up_delay=10`` for binpacking)."""
    cfg = {"policy": policy, "min_nodes": run.min_nodes, "max_nodes": run.max_nodes,
           "pending_pods_threshold": 0, "cpu_threshold": 20.0, "memory_threshold": 20.0,
           "scale_up_cooldown": s.scale_up_cooldown, "scale_down_cooldown": s.scale_down_cooldown,
           "max_scale_up_step": 1 if policy == "threshold" else s.max_scale_up_step}
    # request-aware policies: one implicit node group of the scenario's instance type (binpack.py keys;
    # their other settings stay at the policy defaults: new_pod_scale_up_delay 10 s, unneeded time 600 s...)
    extra = {"node_group": run.scenario.autoscaler.get("node_group", "default"), "instance_type": run.instance_type}
    for k, v in extra.items():  # only keys the (current) policy module knows
        if k in pol.CONFIG_KEYS and policy != "threshold":
            cfg[k] = v
    if policy != "threshold":
        for k, v in (overrides or {}).items():
            if k not in pol.CONFIG_KEYS:
                raise pol.ConfigError(k, "--set %s: not a policy config key; valid keys: %s"
                                      % (k, ", ".join(sorted(pol.CONFIG_KEYS))))
            cfg[k] = v
    return pol.validate_config(cfg)


# --------------------------------------------------------------------------------------------- accounting
def percentile(values, p):
    """Linear-interpolated percentile (p in 0-100) of a list of numbers; None for an empty list."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(math.floor(k)), int(math.ceil(k))
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def flap_pairs(events, window=600.0):
    """The flapping pairs of :func:`count_flaps`: ``[(t1, d1, t2, d2)]`` in time order."""
    evs = sorted((float(t), d) for t, d in events if d in ("scale_up", "scale_down"))
    return [(t1, d1, t2, d2) for (t1, d1), (t2, d2) in zip(evs, evs[1:]) if d1 != d2 and t2 - t1 <= window]


def count_flaps(events, window=600.0):
    """Flaps in a list of ``(time_s, direction)`` scale actions (``scale_up``/``scale_down``, any order):
    the number of consecutive actions (in time order) of opposite direction less than or equal to
    ``window`` seconds apart. up@0, down@300, up@500 -> 2; up@0, down@700 -> 0; up, up, down (all within
    10 min) -> 1."""
    return len(flap_pairs(events, window))


def node_allocatable(instance_type: str, reservation: kl.Reservation | None = None) -> tuple[float, int]:
    """(allocatable CPU cores, allocatable memory bytes) of a new node of ``instance_type``: exactly what
    the fake kubelet registers (capacity minus :class:`local_cluster.kubelet.Reservation`)."""
    r = reservation or kl.Reservation()
    it = get_instance_type(instance_type)
    return max(0.0, float(it["vcpu"]) - r.cpu), max(0, int(it["memory_mib"]) * MIB - r.memory)


def _room(alloc_cpu: float, alloc_mem: float, ds_cpu: float, ds_mem: float) -> tuple[float, float]:
    eff_cpu, eff_mem = alloc_cpu - ds_cpu, alloc_mem - ds_mem
    if eff_cpu <= 0 or eff_mem <= 0:
        raise ValueError("oracle: DaemonSet requests (%s cores, %s bytes) leave no room on a node of %s cores, "
                         "%s bytes allocatable" % (ds_cpu, ds_mem, alloc_cpu, alloc_mem))
    return eff_cpu, eff_mem


def fractional_nodes(demand_cpu: float, demand_mem: float, alloc_cpu: float, alloc_mem: float,
                     ds_cpu: float = 0.0, ds_mem: float = 0.0, min_nodes: int = 0) -> int:
    """FRACTIONAL bound: ``max(min_nodes, ceil(max(D_cpu / room_cpu, D_mem / room_mem)))`` -- pods cut into
    pieces. A valid but loose lower bound (18 pods of 0.5 core on 1.99 free cores: 5, while 6 are needed);
    kept as the ``fractional bound`` row. ``demand_*``: sums of requests (cores, bytes)."""
    eff_cpu, eff_mem = _room(alloc_cpu, alloc_mem, ds_cpu, ds_mem)
    need = max(demand_cpu / eff_cpu, demand_mem / eff_mem)
    return max(int(min_nodes), int(math.ceil(need - 1e-9)))


def _ceil_div(a: float, b: float, tol: float) -> int:
    """ceil(a / b) rounding DOWN values within ``tol`` (relative to b) of an integer: a bound never grows
    from float noise (4.0 cores of 0.1-core pods on a 2-core node is 2, not 3)."""
    if a <= tol * b:
        return 0
    return int(math.ceil(a / b - tol))


def l2_bound(sizes, cap: float, tol: float = 1e-9) -> int:
    """Martello-Toth L2 lower bound of 1-D bin packing: ``sizes`` (each <= ``cap``) into bins of ``cap``.

    For every alpha in {0} U {sizes <= cap/2}: J1 = sizes > cap - alpha, J2 = sizes in (cap/2, cap - alpha],
    J3 = sizes in [alpha, cap/2];  L(alpha) = |J1| + |J2| + max(0, ceil((sum J3 - (|J2| cap - sum J2)) / cap)).
    Why it is a bound: items > cap/2 pairwise cannot share a bin (|J1| + |J2| bins); a J1 bin has room
    < alpha, so no J3 item goes there; J3 items that do not fit in the J2 bins' leftover
    (at most |J2| cap - sum J2) need further bins of ``cap``. L(0) = max(#items > cap/2, ceil(sum / cap)), so
    L2 includes the L1 (volume) bound and the "more than half a node" count. ``tol``: relative tolerance;
    every comparison is made in the direction that can only LOWER the bound."""
    xs = sorted((float(s) for s in sizes), reverse=True)
    if not xs:
        return 0
    half, eps = cap / 2.0, tol * cap
    best = 0
    for alpha in [0.0] + sorted(set(s for s in xs if s <= half + eps)):
        j1 = j2 = 0
        s2 = s3 = 0.0
        for s in xs:
            if s > cap - alpha + eps:
                j1 += 1
            elif s > half + eps:
                j2 += 1
                s2 += s
            elif s >= alpha - eps:
                s3 += s
        best = max(best, j1 + j2 + _ceil_div(max(0.0, s3 - (j2 * cap - s2)), cap, tol))
    return best


def max_pods_per_node(sizes, cap: float, tol: float = 1e-9) -> int:
    """The largest k such that the k SMALLEST ``sizes`` fit ``cap`` together: no node holds more than k of
    these pods (any k of them sum to at least the k smallest)."""
    total, k = 0.0, 0
    for s in sorted(float(x) for x in sizes):
        if total + s > cap + tol * cap:
            break
        total += s
        k += 1
    return k


def oracle_nodes(pods, alloc_cpu: float, alloc_mem: float, ds_cpu: float = 0.0, ds_mem: float = 0.0,
                 min_nodes: int = 0) -> int:
    """Integral lower bound of the nodes that can hold ``pods`` ((cpu cores, memory bytes) pairs) at once.

    ``max(min_nodes, L2_cpu, L2_mem, ceil(n / k))`` with room = allocatable - DaemonSet requests per node,
    L2_d = :func:`l2_bound` of the pods' requests in dimension d (it includes the volume bound L1_d and the
    count of pods larger than half a node), k = min over the two dimensions of :func:`max_pods_per_node`.
    Pods that fit no empty node are left out (no node, of any policy, ever holds them; :func:`ffd_nodes`
    skips them too).

    Proof that it is <= the optimum OPT of the 2-D (vector) packing of the same pods: take an optimal
    packing into OPT nodes. Its CPU requests alone are a valid 1-D packing of the CPU sizes into OPT bins of
    room_cpu, so OPT >= L2_cpu (a lower bound of every 1-D packing); the same for memory. Every node holds
    at most k_cpu pods (its CPU sum must fit) and at most k_mem, so OPT >= ceil(n / min(k_cpu, k_mem)).
    min_nodes is a floor every policy keeps. For n identical pods the bound is exact: a node holds
    k = min(floor(room_cpu / cpu), floor(room_mem / mem)) of them, and ceil(n / k) nodes suffice."""
    eff_cpu, eff_mem = _room(alloc_cpu, alloc_mem, ds_cpu, ds_mem)
    fit = [(c, m) for c, m in pods if c <= eff_cpu * (1 + 1e-9) and m <= eff_mem]
    if not fit:
        return max(int(min_nodes), 0)
    cpus, mems = [c for c, _m in fit], [m for _c, m in fit]
    k = min(max_pods_per_node(cpus, eff_cpu), max_pods_per_node(mems, eff_mem))
    card = int(math.ceil(len(fit) / k)) if k > 0 else len(fit)
    return max(int(min_nodes), l2_bound(cpus, eff_cpu), l2_bound(mems, eff_mem), card)


def ffd_nodes(pods, alloc_cpu: float, alloc_mem: float, ds_cpu: float = 0.0, ds_mem: float = 0.0,
              min_nodes: int = 0) -> int:
    """Nodes a first-fit-decreasing packing of ``pods`` ((cpu cores, memory bytes) pairs) onto EMPTY nodes
    needs (per-node room = allocatable - DaemonSet requests). An integral, achievable reference (FFD <=
    11/9 OPT + 6/9), NOT a lower bound; pods larger than a node are ignored (no node can hold them)."""
    return max(int(min_nodes), len(ffd_bins(pods, alloc_cpu, alloc_mem, ds_cpu, ds_mem)))


def ffd_bins(pods, alloc_cpu: float, alloc_mem: float, ds_cpu: float = 0.0, ds_mem: float = 0.0) -> list:
    """The packing behind :func:`ffd_nodes`: one ``[free cores, free bytes]`` per node opened."""
    eff_cpu, eff_mem = alloc_cpu - ds_cpu, alloc_mem - ds_mem
    bins: list[list[float]] = []
    for cpu, mem in sorted(pods, key=lambda p: -max(p[0] / eff_cpu, p[1] / eff_mem)):
        if cpu > eff_cpu + 1e-9 or mem > eff_mem:
            continue
        if not _first_fit(bins, cpu, mem):
            bins.append([eff_cpu - cpu, eff_mem - mem])
    return bins


def _first_fit(bins: list, cpu: float, mem: float) -> bool:
    """Put a pod of ``cpu`` cores / ``mem`` bytes on the first ``[free cores, free bytes]`` bin that holds it
    (mutating that bin); False when none does."""
    for b in bins:
        if cpu <= b[0] + 1e-9 and mem <= b[1]:
            b[0] -= cpu
            b[1] -= mem
            return True
    return False


def arrivals_without_room(present, arrived, alloc_cpu: float, alloc_mem: float, ds_cpu: float = 0.0,
                          ds_mem: float = 0.0, min_nodes: int = 0, spare_nodes: int = 0) -> int:
    """How many of the ``arrived`` pods find NO room when they arrive in the zero-boot FFD packing of the
    ``present`` pods (its nodes, at least ``min_nodes``, plus ``spare_nodes`` empty ones): pods that wait for
    a node boot under any policy that holds only the nodes the present pods need (the oracle's budget).
    The present pods may be re-packed for free (an optimistic cluster), so this is a LOWER bound of the
    arrivals such a policy must make wait. Arrivals are tried largest first, first fit."""
    eff_cpu, eff_mem = alloc_cpu - ds_cpu, alloc_mem - ds_mem
    bins = ffd_bins(present, alloc_cpu, alloc_mem, ds_cpu, ds_mem)
    bins += [[eff_cpu, eff_mem] for _ in range(max(0, int(min_nodes) - len(bins)) + int(spare_nodes))]
    missing = 0
    for cpu, mem in sorted(arrived, key=lambda p: -max(p[0] / eff_cpu, p[1] / eff_mem)):
        if cpu > eff_cpu + 1e-9 or mem > eff_mem:
            continue  # no node holds it: not a matter of boot time
        if not _first_fit(bins, cpu, mem):
            missing += 1
    return missing


class PendingTracker:
    """Pending time of every non-DaemonSet pod: time of the tick that bound it minus its creation time."""

    def __init__(self):
        self.waits: list[float] = []
        self.censored = 0
        self._waiting: dict[str, object] = {}  # uid -> Pod
        self._seen: set[str] = set()

    def update(self, sim: Simulation, now: float) -> None:
        for pod in sim.pods.values():
            if pod.pinned_node is not None or pod.uid in self._seen:
                continue
            self._seen.add(pod.uid)
            if pod.node is not None:
                self.waits.append(max(0.0, now - pod.created))
            else:
                self._waiting[pod.uid] = pod
        for uid, pod in list(self._waiting.items()):
            if pod.node is not None:
                self.waits.append(max(0.0, now - pod.created))
                del self._waiting[uid]
            elif sim.pods.get(pod.key) is not pod:  # deleted while Pending
                self.waits.append(max(0.0, now - pod.created))
                self.censored += 1
                del self._waiting[uid]

    def finish(self, now: float) -> None:
        for pod in self._waiting.values():
            self.waits.append(max(0.0, now - pod.created))
            self.censored += 1
        self._waiting.clear()


# --------------------------------------------------------------------------------------------- observe
class Observer:
    """Builds the policy inputs from the simulation, like ``k3s_metrics`` (Prometheus source) plus
    ``ec2_instance_info`` would. Keeps per-node CPU counter samples to compute
    ``rate(node_cpu_seconds_total{mode="idle"}[rate_window])`` from the node-exporter counters."""

    def __init__(self, rate_window: float = 300.0):
        self.rate_window = float(rate_window)
        self._samples: dict[str, list[tuple[float, float]]] = {}

    def node_cpu_percent(self, node, now: float) -> float:
        """100 * (1 - idle rate per CPU) over the rate window (k3s_metrics ``node_cpu_percent``); a node with
        no earlier sample uses its current usage (what the counters will show)."""
        ncpu = max(1, int(round(node.capacity_cpu)))
        samples = self._samples.setdefault(node.name, [])
        samples.append((now, node.cpu_seconds["idle"]))
        while len(samples) > 1 and samples[0][0] < now - self.rate_window:
            samples.pop(0)
        t0, idle0 = samples[0]
        if now - t0 > 0:
            idle_rate = (node.cpu_seconds["idle"] - idle0) / (now - t0)
            return max(0.0, min(100.0, 100.0 * (1.0 - idle_rate / ncpu)))
        system = min(NODE_BASE_CPU, node.capacity_cpu)
        user = min(sum(p.usage_cpu for p in node.pods.values()), node.capacity_cpu - system)
        return 100.0 * (system + user) / node.capacity_cpu

    def observe(self, sim: Simulation, ec2, now: float, cluster_filters: dict | None = None) -> dict:
        """The adapter: simulation state -> ``{metrics, nodes_detail, pending_pods_detail, pods_detail,
        instances, daemonset_overhead, warnings}``.

        * ``metrics``/``nodes_detail``/``pending_pods_detail``: through ``metrics_common.assemble_result``,
          the function both k3s_metrics collectors use (control plane listed, left out of the figures;
          DaemonSet pods not counted as pending; cpu_percent from the idle counter rate, memory_percent =
          100 * (1 - MemAvailable / MemTotal) with MemAvailable = capacity - 300 MiB - pods' usage).
        * ``pods_detail``: pods bound to nodes (namespace, name, node, cpu_cores, memory_bytes, owner_kind,
          owner_name, daemonset, kube_system, safe_to_evict None, pdb_disruptions_allowed None: the
          simulation has no annotations and no PDBs).
        * ``instances``: the cluster's non-terminated instances as ``ec2_instance_info`` lists them.
        * ``daemonset_overhead``: {cpu_cores, memory_bytes}: max over nodes of the DaemonSet pods'
          requests on a node (0 when no DaemonSet pod is bound).
        """
        nodes, pods_detail = [], []
        ds_cpu = ds_mem = 0.0
        for n in sim.nodes.values():
            rec = new_node(n.name)
            set_provider_id(rec, n.provider_id)
            rec.update(instance_type=n.instance_type, ready=n.ready == "True", unschedulable=n.unschedulable,
                       allocatable_cpu_cores=n.allocatable_cpu, allocatable_memory_bytes=n.allocatable_memory,
                       control_plane=n.role == "control-plane", pods=len(n.pods))
            req_cpu = req_mem = node_ds_cpu = node_ds_mem = 0
            for p in n.pods.values():
                req_cpu += p.cpu
                req_mem += p.memory
                is_ds = p.owner_kind == "DaemonSet"
                if is_ds:
                    node_ds_cpu += p.cpu
                    node_ds_mem += p.memory
                pods_detail.append({"namespace": p.namespace, "name": p.name, "node": n.name, "cpu_cores": p.cpu,
                                    "memory_bytes": p.memory, "owner_kind": p.owner_kind, "owner_name": p.owner_name,
                                    "daemonset": is_ds, "kube_system": p.namespace == "kube-system",
                                    "safe_to_evict": None, "pdb_disruptions_allowed": None})
            ds_cpu, ds_mem = max(ds_cpu, node_ds_cpu), max(ds_mem, node_ds_mem)
            rec["requested_cpu_cores"], rec["requested_memory_bytes"] = req_cpu, int(req_mem)
            if rec["ready"]:
                rec["cpu_percent"] = self.node_cpu_percent(n, now)
                used = NODE_BASE_MEMORY + sum(p.usage_memory for p in n.pods.values())
                avail = max(0, n.capacity_memory - used)
                rec["memory_percent"] = 100.0 * (1.0 - avail / n.capacity_memory)
            nodes.append(rec)
        pending, unschedulable = [], 0
        total_cpu = sum(p.cpu for p in sim.pods.values())
        total_mem = sum(p.memory for p in sim.pods.values())
        for p in sim.pending.values():
            if p.unschedulable_message:
                unschedulable += 1
            if p.owner_kind == "DaemonSet":
                continue
            rec = new_pending_pod(p.namespace, p.name)
            rec.update(cpu_cores=p.cpu, memory_bytes=p.memory, owner_kind=p.owner_kind,
                       age_seconds=max(0.0, now - p.created))
            pending.append(rec)
        result = assemble_result(nodes, pending, unschedulable, total_cpu, int(total_mem), source="replay",
                                 queries={}, collected_at=now)
        filters = dict(cluster_filters or {})
        filters["instance-state-name"] = LIVE_EC2_STATES
        instances = ec2.list_instances(filters=filters) if ec2 is not None else []
        result.update(pods_detail=pods_detail, instances=instances,
                      daemonset_overhead={"cpu_cores": ds_cpu, "memory_bytes": int(ds_mem)})
        result["metrics"]["daemonset_requests"] = {"cpu_cores": ds_cpu, "memory_bytes": int(ds_mem)}
        return result


def observe(sim: Simulation, ec2=None, now: float | None = None, rate_window: float = 300.0) -> dict:
    """One-shot :meth:`Observer.observe` (no CPU-rate history: usage-based node CPU %)."""
    return Observer(rate_window).observe(sim, ec2, sim.clock() if now is None else now,
                                         {"tag:k3s-autoscaler/cluster": sim.cluster_name})


# --------------------------------------------------------------------------------------------- EC2
class CachedEC2:
    """A read cache in front of :class:`MockEC2` (profiling showed the SQLite reads dominate a replay).

    ``list_instances`` results are reused while nothing can have changed: no write went through this
    object (``run_instances`` / ``terminate_instances`` clear the cache), no listed instance is in a
    timed transition (``pending``, ``shutting-down``, ``stopping``: those results are never cached), and at
    most ``max_age`` clock seconds passed (so terminated instances still vanish after their hour). Same
    answers as the store; only writes through this object are seen (the replay makes all of them here)."""

    TRANSITIONAL = ("pending", "shutting-down", "stopping")

    def __init__(self, ec2: MockEC2, clock, max_age: float = 300.0):
        self.ec2, self.clock, self.max_age = ec2, clock, float(max_age)
        self.store, self.region = ec2.store, ec2.region
        self._cache: dict[str, tuple[float, list]] = {}

    def list_instances(self, filters=None, instance_ids=None, include_expired=False, all_regions=False):
        key = repr((filters, instance_ids, include_expired, all_regions))
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] <= self.max_age:
            return list(hit[1])
        result = self.ec2.list_instances(filters=filters, instance_ids=instance_ids, include_expired=include_expired,
                                         all_regions=all_regions)
        if not any(i["state"]["name"] in self.TRANSITIONAL for i in result):
            self._cache[key] = (now, result)
        else:
            self._cache.pop(key, None)
        return list(result)

    def run_instances(self, count, spec, client_token=None, dry_run=False):
        self._cache.clear()
        return self.ec2.run_instances(count, spec, client_token=client_token, dry_run=dry_run)

    def terminate_instances(self, instance_ids, dry_run=False):
        self._cache.clear()
        return self.ec2.terminate_instances(instance_ids, dry_run=dry_run)

    def user_data(self, instance_id):
        return self.ec2.user_data(instance_id)

    def close(self):
        self.ec2.close()


# --------------------------------------------------------------------------------------------- replay
_DECIDE_PARAMS = frozenset(inspect.signature(pol.decide).parameters)
_RECORD_EVENT_PARAMS = frozenset(inspect.signature(st.record_event).parameters)


def decide_kwargs(inputs: dict) -> dict:
    """The inputs ``policy.decide`` accepts (its signature grows with new policies)."""
    return {k: v for k, v in inputs.items() if k in _DECIDE_PARAMS and k not in ("metrics", "config", "state", "now")}


@dataclass
class RunResult:
    scenario: str
    policy: str
    node_hours: float
    oracle_node_hours: float
    ffd_node_hours: float
    fractional_node_hours: float
    pending_count: int
    pending_censored: int
    p50: float | None
    p95: float | None
    pending_max: float | None
    scale_actions: int
    scale_ups: int
    scale_downs: int
    nodes_launched: int
    nodes_removed: int
    never_joined_terminated: int
    launch_failures: int
    flaps: int
    flaps_down_up: int
    sim_seconds: float
    wall_seconds: float
    cpu_seconds: float = 0.0
    arrivals: int = 0                 # pods created during the replay (evicted pods' replacements included)
    arrivals_no_room: int = 0         # of them: no room in the zero-boot FFD packing of the other pods
    arrivals_no_room_spare1: int = 0  # the same with one spare empty node
    decisions: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    events: list = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.node_hours / self.oracle_node_hours if self.oracle_node_hours > 0 else float("nan")

    @property
    def days_per_second(self) -> float:
        return (self.sim_seconds / 86400.0) / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    def compact_series(self) -> dict:
        """The series at its change points only (plus the last sample): same step plot, far smaller JSON."""
        keys = [k for k in self.series if k != "t"]
        out = {k: [] for k in self.series}
        n = len(self.series["t"])
        prev = None
        for i in range(n):
            row = tuple(self.series[k][i] for k in keys)
            if row != prev or i == n - 1:
                out["t"].append(self.series["t"][i])
                for k, v in zip(keys, row):
                    out[k].append(v)
                prev = row
        return out

    def to_dict(self, with_series=True) -> dict:
        d = dataclasses.asdict(self)
        d["series"] = self.compact_series()
        d["ratio_to_oracle"] = self.ratio
        d["days_per_wall_second"] = self.days_per_second
        if not with_series:
            d.pop("series")
            d.pop("events")
        return d


class Replay:
    """One scenario x one policy."""

    def __init__(self, run: ScenarioRun, policy: str, settings: Settings, workdir: str, overrides: dict | None = None):
        self.run, self.policy, self.s = run, policy, settings
        self.config = policy_config(policy, run, settings, overrides)
        self.clock = VirtualClock()
        self.store = os.path.join(workdir, "ec2-%s-%s.sqlite" % (run.name, policy))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.store + suffix):
                os.unlink(self.store + suffix)
        self.ec2 = CachedEC2(MockEC2(store=self.store, region=run.scenario.region, boot_seconds=settings.ec2_boot,
                                     shutdown_seconds=settings.shutdown, clock=self.clock, seed=settings.seed),
                             self.clock)
        self.sim = Simulation(copy.deepcopy(run.scenario), self.clock, ec2=self.ec2, join_seconds=settings.join,
                              remove_grace_seconds=settings.remove_grace,
                              node_group=run.scenario.autoscaler.get("node_group", "default"), seed=settings.seed)
        self.observer = Observer(settings.rate_window)
        self.state = st.default_state()
        self.tracker = PendingTracker()
        self.alive: dict[str, float] = {}   # instance_id -> launch time (billed)
        self.instance_seconds = 0.0
        self.oracle_seconds = 0.0
        self.ffd_seconds = 0.0
        self._ffd_cache: tuple = (None, 0, 0)  # (pods key, FFD nodes, integral bound)
        self.fractional_seconds = 0.0
        self.arrivals = self.arrivals_no_room = self.arrivals_no_room_spare1 = 0
        self.events: list[dict] = []
        self.decisions: dict[str, int] = {}
        self.launch_failures = 0
        self.never_joined = 0
        self.series = {"t": [], "instances": [], "ready_nodes": [], "oracle": [], "demand_nodes": []}
        alloc_cpu, alloc_mem = node_allocatable(run.instance_type, self.sim.reservation)
        self.alloc = (alloc_cpu, alloc_mem)
        self.ds = (sum(d.cpu for d in self.sim.daemonsets), sum(d.memory for d in self.sim.daemonsets))

    # ---- accounting
    def _bill(self, t0: float, t1: float) -> None:
        self.instance_seconds += len(self.alive) * (t1 - t0)

    def _oracle_now(self) -> tuple[int, float, int, int]:
        """(integral lower bound :func:`oracle_nodes`, demand in node-equivalents, FFD reference,
        fractional bound) for the pods now."""
        pods = tuple(sorted((p.cpu, p.memory) for p in self.sim.pods.values() if p.pinned_node is None))
        cpu, mem = sum(c for c, _m in pods), sum(m for _c, m in pods)
        frac_n = fractional_nodes(cpu, mem, self.alloc[0], self.alloc[1], self.ds[0], self.ds[1], self.run.min_nodes)
        frac = max(cpu / (self.alloc[0] - self.ds[0]), mem / (self.alloc[1] - self.ds[1]))
        if self._ffd_cache[0] != pods:  # the exact multiset of requests: both figures depend on nothing else
            key = pods
            args = (self.alloc[0], self.alloc[1], self.ds[0], self.ds[1], self.run.min_nodes)
            self._ffd_cache = (key, ffd_nodes(pods, *args), oracle_nodes(pods, *args))
        return self._ffd_cache[2], frac, self._ffd_cache[1], frac_n

    def _count_arrivals(self, before: set) -> None:
        """Arrivals of this tick (pod keys not there before; replacements of evicted pods included) that the
        zero-boot FFD packing of the other pods has no room for (:func:`arrivals_without_room`), with 0 and
        with 1 spare node."""
        arrived, present = [], []
        for key, p in self.sim.pods.items():
            if p.pinned_node is None:
                (present if key in before else arrived).append((p.cpu, p.memory))
        if not arrived:
            return
        args = (self.alloc[0], self.alloc[1], self.ds[0], self.ds[1], self.run.min_nodes)
        self.arrivals += len(arrived)
        self.arrivals_no_room += arrivals_without_room(present, arrived, *args)
        self.arrivals_no_room_spare1 += arrivals_without_room(present, arrived, *args, spare_nodes=1)

    # ---- acting (what the autoscale role does with a decision)
    def _group_instance_type(self, group) -> str:
        for g in self.config.get("node_groups_resolved") or []:
            if g.get("name") == group:
                return g["instance_type"]
        return self.run.instance_type

    def _launch(self, count: int, decision: dict, now: float) -> None:
        """``ec2_instance`` with ``count`` (the role's scale_up.yml), then ``k3s_scale_event``; a launch error
        is recorded as the role's rescue does (``record_launch_failure`` -> the group's backoff)."""
        group = decision.get("node_group") or self.sim.node_group
        spec = {"instance_type": self._group_instance_type(group), "image_id": self.sim.image_id,
                "tags": dict(self.sim.instance_tags(), **{"k3s-autoscaler/node-group": group}),
                "user_data": self.sim.user_data()}
        try:
            instances, _ = self.ec2.run_instances(count, spec)
        except EC2Error as e:
            self.launch_failures += 1
            self.events.append({"time": now, "direction": "launch_failed", "node_group": group, "error_code": e.code})
            record_failure = getattr(st, "record_launch_failure", None)
            if record_failure is not None:
                self.state = record_failure(self.state, group, e.code, now, reason=str(e))
            return
        ids = [i["instance_id"] for i in instances]
        for iid in ids:
            self.alive[iid] = now
        kw = {"node_group": group} if "node_group" in _RECORD_EVENT_PARAMS else {}
        self.state = st.record_event(self.state, "scale_up", len(ids), now, instance_ids=ids,
                                     reason=decision.get("reason", ""), **kw)
        self.events.append({"time": now, "direction": "scale_up", "count": len(ids), "instance_ids": ids,
                            "node_group": group})

    def _terminate(self, instance_ids, now: float) -> None:
        ids = [i for i in instance_ids if i]
        if ids:
            self.ec2.terminate_instances(ids)
        for iid in ids:
            self.alive.pop(iid, None)

    def drain(self, node_name: str) -> list:
        """``kubectl drain --ignore-daemonsets`` in virtual time: cordon, evict every non-DaemonSet pod (its
        ReplicaSet recreates it Pending at the next tick). Returns the evicted pod keys."""
        with self.sim.lock:
            node = self.sim.nodes.get(node_name)
            if node is None:
                return []
            node.unschedulable = True
            evicted = [p.key for p in list(node.pods.values()) if p.owner_kind != "DaemonSet"]
            for key in evicted:
                self.sim.delete_pod(key, reason="evicted")
            return evicted

    def _remove(self, cands: list, decision: dict, now: float) -> None:
        """Drain then terminate each node; ONE scale_down action of ``len(cands)`` nodes is recorded
        (docs/policy.md, replay use: ``record_event(state, "scale_down", n, now, node_names=[...])``)."""
        for cand in cands:
            self.drain(cand["name"])
            self._terminate([cand["instance_id"]], now)
        ids, names = [c["instance_id"] for c in cands], [c["name"] for c in cands]
        self.state = st.record_event(self.state, "scale_down", len(cands), now, instance_ids=ids, node_names=names,
                                     reason=decision.get("reason", ""))
        self.events.append({"time": now, "direction": "scale_down", "count": len(cands), "nodes": names,
                            "instance_ids": ids})

    @staticmethod
    def nodes_to_remove(decision: dict) -> list:
        """The first ``count`` candidates: the seed role removes ``candidates[0]`` (threshold's count is 1);
        a context policy (binpacking) names exactly the nodes to remove (empty ones in bulk + at most one
        non-empty), ``count`` of them."""
        return (decision.get("candidates") or [])[:max(1, int(decision.get("count") or 0))]

    def apply(self, decision: dict, now: float) -> None:
        if decision.get("dry_run"):
            return
        stale = decision.get("terminate_instance_ids") or []
        if stale:
            self._terminate(stale, now)
            self.never_joined += len(stale)
            self.events.append({"time": now, "direction": "terminate_never_joined", "instance_ids": list(stale)})
        if not decision.get("actionable"):
            return
        if decision["decision"] == pol.SCALE_UP:
            self._launch(int(decision["count"]), decision, now)
        elif decision["decision"] == pol.SCALE_DOWN:
            cands = self.nodes_to_remove(decision)
            if cands:
                self._remove(cands, decision, now)

    def _apply_state_updates(self, decision: dict) -> None:
        """A policy that tracks unneeded nodes across runs returns the new ``unneeded`` map
        ({node: first-seen unix s}; None for other policies); k3s_scale_decision writes it to the state
        file with ``state.set_unneeded`` -- so do we, in memory."""
        unneeded = decision.get("unneeded")
        set_unneeded = getattr(st, "set_unneeded", None)
        if unneeded is not None and set_unneeded is not None and unneeded != self.state.get("unneeded", {}):
            self.state = set_unneeded(self.state, unneeded)

    # ---- the loop
    def check(self, now: float) -> dict:
        inputs = self.observer.observe(self.sim, self.ec2, now, {"tag:k3s-autoscaler/cluster": self.sim.cluster_name})
        decision = pol.decide(inputs["metrics"], self.config, self.state, now, **decide_kwargs(inputs))
        self.decisions[decision["decision"]] = self.decisions.get(decision["decision"], 0) + 1
        self._apply_state_updates(decision)
        n_events = len(self.events)
        self.apply(decision, now)
        for ev in self.events[n_events:]:  # what drove each action (kept in the JSON)
            ev.update(reason=decision["reason"], pending_pods=inputs["metrics"]["pending_pods"],
                      nodes=inputs["metrics"]["nodes"], instances=len(inputs["instances"]))
        return decision

    def execute(self) -> RunResult:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        sim, s = self.sim, self.s
        sim.start()
        start = self.clock()
        for inst in self.ec2.list_instances(filters={"instance-state-name": LIVE_EC2_STATES}):
            self.alive[inst["instance_id"]] = start
        end = start + self.run.duration
        next_check = start
        self.tracker.update(sim, start)
        now = start
        while now < end:
            if now >= next_check:
                self.check(now)
                next_check += s.check_interval
                n_or, frac, _, _ = self._oracle_now()
                self.series["t"].append(now - start)
                self.series["instances"].append(len(self.alive))
                self.series["ready_nodes"].append(sum(1 for n in sim.nodes.values()
                                                      if n.ready == "True" and n.role != "control-plane"))
                self.series["oracle"].append(n_or)
                self.series["demand_nodes"].append(round(frac, 3))
            step = min(s.tick, end - now)
            n_or, _, n_ffd, n_frac = self._oracle_now()
            self.oracle_seconds += n_or * step
            self.fractional_seconds += n_frac * step
            self.ffd_seconds += n_ffd * step
            self._bill(now, now + step)
            self.clock.advance(step)
            now = self.clock()
            before = set(sim.pods)
            sim.tick()
            self.tracker.update(sim, now)
            self._count_arrivals(before)
        self.tracker.finish(now)
        st.validate_state(self.state, "<replay state>")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sim.stop()
        self.ec2.close()
        waits = self.tracker.waits
        flap_events = [(e["time"], e["direction"]) for e in self.events]
        ups = sum(1 for e in self.events if e["direction"] == "scale_up")
        downs = sum(1 for e in self.events if e["direction"] == "scale_down")
        return RunResult(
            scenario=self.run.name, policy=self.policy, node_hours=self.instance_seconds / 3600.0,
            oracle_node_hours=self.oracle_seconds / 3600.0, ffd_node_hours=self.ffd_seconds / 3600.0,
            fractional_node_hours=self.fractional_seconds / 3600.0, arrivals=self.arrivals,
            arrivals_no_room=self.arrivals_no_room, arrivals_no_room_spare1=self.arrivals_no_room_spare1,
            pending_count=len(waits),
            pending_censored=self.tracker.censored, p50=percentile(waits, 50), p95=percentile(waits, 95),
            pending_max=max(waits) if waits else None, scale_actions=ups + downs,
            scale_ups=ups, scale_downs=downs,
            nodes_launched=sum(e.get("count", 0) for e in self.events if e["direction"] == "scale_up"),
            nodes_removed=sum(e["count"] for e in self.events if e["direction"] == "scale_down"),
            never_joined_terminated=self.never_joined, launch_failures=self.launch_failures,
            flaps=count_flaps(flap_events, s.flap_window),
            flaps_down_up=sum(1 for f in flap_pairs(flap_events, s.flap_window) if f[1] == "scale_down"),
            sim_seconds=self.run.duration, wall_seconds=wall, cpu_seconds=cpu,
            decisions=dict(self.decisions), series=self.series, events=self.events)


def replay(run: ScenarioRun, policy: str, settings: Settings | None = None, workdir: str | None = None,
           overrides: dict | None = None) -> RunResult:
    """Replay ``run`` with ``policy``; returns the figures. ``overrides``: config keys for non-threshold
    policies (see :func:`policy_config`)."""
    settings = settings or Settings()
    if policy not in pol.POLICIES:
        raise KeyError("policy %r is not registered in policy.POLICIES (%s)" % (policy, ", ".join(sorted(pol.POLICIES))))
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            return Replay(run, policy, settings, tmp, overrides).execute()
    return Replay(run, policy, settings, workdir, overrides).execute()


# --------------------------------------------------------------------------------------------- report
def targets(results: dict, scenario: str, candidate: str, baseline: str, s: Settings) -> list[dict]:
    """The issue's targets for ``candidate`` on ``scenario``: each {target, value, met}."""
    c, b = results.get((scenario, candidate)), results.get((scenario, baseline))
    if c is None:
        return []
    limit = s.boot_seconds + 2 * s.check_interval
    out = [
        {"target": "node-hours <= 1.15 x oracle", "value": "%.3f x" % c.ratio, "met": c.ratio <= 1.15},
        {"target": "p95 pending <= boot %gs + 2 x check %gs = %gs" % (s.boot_seconds, s.check_interval, limit),
         "value": "%.0f s" % c.p95 if c.p95 is not None else "n/a", "met": c.p95 is not None and c.p95 <= limit},
        {"target": "0 flaps", "value": "%d (%d scale_up->scale_down, %d scale_down->scale_up)"
                                        % (c.flaps, c.flaps - c.flaps_down_up, c.flaps_down_up), "met": c.flaps == 0},
    ]
    if b is not None and b.p95 is not None and c.p95 is not None:
        cut = 1.0 - c.p95 / b.p95 if b.p95 > 0 else 0.0
        out.append({"target": "p95 pending >= 30%% lower than %s's at equal or lower node-hours" % baseline,
                    "value": "%.0f%% %s (%.0f s vs %.0f s), node-hours %.2f vs %.2f"
                             % (100 * abs(cut), "lower" if cut >= 0 else "HIGHER", c.p95, b.p95, c.node_hours,
                                b.node_hours),
                    "met": cut >= 0.30 and c.node_hours <= b.node_hours + 1e-9})
    return out


def _fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def format_table(results: dict, runs: dict) -> str:
    head = ("scenario", "policy", "node-h", "x oracle", "pods", "p50 pend s", "p95 pend s", "actions",
            "flaps (up>down/down>up)", "days/s")
    rows = []
    for scen in runs:
        first = next((r for (sc, _p), r in results.items() if sc == scen), None)
        if first is not None:
            rows.append((scen, "oracle (lower bound)", "%.2f" % first.oracle_node_hours, "1.000", "-", "0", "0", "-",
                         "-", "-"))
            rows.append((scen, "(fractional bound)", "%.2f" % first.fractional_node_hours,
                         "%.3f" % (first.fractional_node_hours / first.oracle_node_hours), "-", "0", "0", "-", "-",
                         "-"))
            rows.append((scen, "(ffd packing, 0 boot)", "%.2f" % first.ffd_node_hours,
                         "%.3f" % (first.ffd_node_hours / first.oracle_node_hours), "-", "0", "0", "-", "-", "-"))
        for (sc, p), r in results.items():
            if sc != scen:
                continue
            rows.append((sc, p, "%.2f" % r.node_hours, "%.3f" % r.ratio, str(r.pending_count), _fmt(r.p50),
                         _fmt(r.p95), "%d (+%d/-%d)" % (r.scale_actions, r.scale_ups, r.scale_downs),
                         "%d (%d/%d)" % (r.flaps, r.flaps - r.flaps_down_up, r.flaps_down_up),
                         "%.2f" % r.days_per_second))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def plot(results: dict, runs: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.3 * len(runs)), squeeze=False)
    for ax, scen in zip(axes[:, 0], runs):
        first = True
        for (sc, p), r in results.items():
            if sc != scen:
                continue
            hours = [t / 3600.0 for t in r.series["t"]]
            if first:
                ax.fill_between(hours, r.series["demand_nodes"], step="post", alpha=0.2, color="grey",
                                label="demand (requests / node allocatable)")
                ax.step(hours, r.series["oracle"], where="post", color="black", linestyle="--", linewidth=1,
                        label="oracle")
                first = False
            ax.step(hours, r.series["instances"], where="post", linewidth=1.2, label="%s instances" % p)
        title = scen if scen != "trace" else "trace (Alibaba openb, Weng et al., USENIX ATC 2023)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hours")
        ax.set_ylabel("nodes")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    s0 = Settings()
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    ap.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                    help="policies to compare (names in policy.POLICIES; an unregistered name is skipped with a note)")
    ap.add_argument("--baseline", default="threshold")
    ap.add_argument("--candidate", default="binpacking", help="the policy the targets are checked for")
    for f in dataclasses.fields(Settings):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    ap.add_argument("--trace", default=None, help="openb pod list CSV (default ../shared/traces/alibaba-openb/...)")
    ap.add_argument("--trace-start", type=float, default=12.0e6, help="trace seconds")
    ap.add_argument("--trace-days", type=float, default=7.0)
    ap.add_argument("--trace-instance-type", default="m5.16xlarge")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="policy config override for every policy but threshold (YAML value), e.g. "
                         "--set new_pod_scale_up_delay=10; repeatable")
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "out"))
    args = ap.parse_args(argv)
    import yaml
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error("--set %r: expected KEY=VALUE" % item)
        overrides[key.strip()] = yaml.safe_load(value)
        if key.strip() not in pol.CONFIG_KEYS:
            import difflib
            near = difflib.get_close_matches(key.strip(), sorted(pol.CONFIG_KEYS), n=1)
            ap.error("--set %s: not a policy config key%s; valid keys: %s"
                     % (key.strip(), " (did you mean %s?)" % near[0] if near else "", ", ".join(sorted(pol.CONFIG_KEYS))))
    s = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
    del s0

    policies = []
    for p in [x.strip() for x in args.policies.split(",") if x.strip()]:
        if p in pol.POLICIES:
            policies.append(p)
        else:
            print("note: policy %r is not registered (policy.POLICIES: %s); skipped" % (p, ", ".join(sorted(pol.POLICIES))))
    if not policies:
        ap.error("--policies %s: no registered policy; choose from %s" % (args.policies, ", ".join(sorted(pol.POLICIES))))
    runs = {}
    for name in [x.strip() for x in args.scenarios.split(",") if x.strip()]:
        try:
            runs[name] = build_scenario(name, trace_start=args.trace_start, trace_days=args.trace_days,
                                        trace_instance_type=args.trace_instance_type, trace_path=args.trace)
        except (OSError, ValueError, KeyError) as e:  # unknown scenario, missing/invalid trace file
            ap.error("--scenarios %s: %s (the replay also knows burst-20m: burst held 20 min)" % (name, e))
    if not runs:
        ap.error("--scenarios: no scenario given")
    try:  # a bad --set value (e.g. a string where seconds are expected) is a usage error, before any replay
        for name, run in runs.items():
            for p in policies:
                policy_config(p, run, s, overrides)
    except pol.ConfigError as e:
        ap.error("--set: %s" % e)
    if overrides:
        print("policy overrides (all but threshold): %s" % overrides)
    print("replay: check interval %gs, tick %gs, node boot %gs (EC2 %gs + join %gs), cooldowns up %gs / down %gs, "
          "max_scale_up_step %d (threshold: 1)" % (s.check_interval, s.tick, s.boot_seconds, s.ec2_boot, s.join,
                                                    s.scale_up_cooldown, s.scale_down_cooldown, s.max_scale_up_step))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        for name, run in runs.items():
            print("%s: %s; %g h, %s, min %d / max %d nodes" % (name, run.note, run.duration / 3600.0, run.instance_type,
                                                             run.min_nodes, run.max_nodes))
            for p in policies:
                r = replay(run, p, s, tmp, overrides)
                results[(name, p)] = r
                print("  %-11s %.2f node-h (oracle %.2f), p95 pending %s s, %d actions, %d flaps, %.2f s wall"
                      % (p, r.node_hours, r.oracle_node_hours, _fmt(r.p95), r.scale_actions, r.flaps, r.wall_seconds))
                if r.arrivals:
                    print("  %-11s %d pod arrivals; no room for %d (%.1f%%) in the zero-boot FFD packing of the other "
                          "pods, %d (%.1f%%) with 1 spare node" % ("", r.arrivals, r.arrivals_no_room,
                                                                  100.0 * r.arrivals_no_room / r.arrivals,
                                                                  r.arrivals_no_room_spare1,
                                                                  100.0 * r.arrivals_no_room_spare1 / r.arrivals))
    print()
    print(format_table(results, runs))
    report_targets = {}
    for scen in ("trace", "diurnal"):
        if scen in runs:
            report_targets[scen] = targets(results, scen, args.candidate, args.baseline, s)
            if report_targets[scen]:
                print("\ntargets for %s on %s:" % (args.candidate, scen))
                for t in report_targets[scen]:
                    print("  [%s] %s: %s" % ("met" if t["met"] else "NOT met", t["target"], t["value"]))
    if "trace" in runs:
        print("\ntrace: %s" % runs["trace"].note)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "bench-replay.json")
    png_path = os.path.join(args.out, "bench-replay.png")
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump({"settings": dataclasses.asdict(s), "boot_seconds": s.boot_seconds, "citation": CITATION,
                   "policy_overrides": overrides,
                   "configs": {p: {k: v for k, v in policy_config(p, next(iter(runs.values())), s, overrides).items()
                                   if k != "node_groups_resolved"} for p in policies} if runs else {},
                   "scenarios": {k: {"note": v.note, "duration_s": v.duration, "instance_type": v.instance_type,
                                     "min_nodes": v.min_nodes, "max_nodes": v.max_nodes} for k, v in runs.items()},
                   "results": [r.to_dict() for r in results.values()], "targets": report_targets},
                  fh, indent=1, default=str)
    plot(results, runs, png_path)
    print("\nwrote %s and %s" % (os.path.relpath(json_path, REPO_ROOT), os.path.relpath(png_path, REPO_ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
