"""Replay a time-compressed window of the Alibaba "openb" pod trace through the simulation.

Data: Alibaba cluster-trace-gpu-v2023 (``openb_pod_list_*.csv``), read in place from
``../shared/traces/alibaba-openb/`` (never copied into this repository). Cite: Weng et al., "Beware of
Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC 2023.

Columns used: ``name``, ``cpu_milli`` (millicores), ``memory_mib`` (MiB), ``num_gpu``,
``creation_time``/``deletion_time`` (seconds from trace start; ``deletion_time == 12902960`` = still alive
at trace end). Only CPU-only pods (``num_gpu == 0``) are kept.

Window: trace seconds ``[start, start + length)``; a pod alive in it becomes a one-pod workload (a
ReplicaSet of 1, so an evicted pod comes back Pending) alive in scenario seconds
``[(max(creation, start) - start) / compression, (min(deletion, end) - start) / compression)``.
Requests are multiplied by ``cpu_scale`` / ``memory_scale`` (documented in the scenario) so the local run
stays at a handful of nodes; usage = ``usage_ratio`` x the scaled request.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

from local_cluster.workloads import ScenarioError, TimeFunction, WorkloadSpec, parse_cpu, parse_memory

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TRACE = "../shared/traces/alibaba-openb/openb_pod_list_default.csv"
TRACE_END = 12902960.0
CITATION = ('Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation '
            'Gradient Descent", USENIX ATC 2023 (Alibaba cluster-trace-gpu-v2023)')


@dataclass
class TracePod:
    name: str
    cpu_milli: float
    memory_mib: float
    creation: float
    deletion: float


def resolve_trace_path(path: str | None) -> str:
    """Resolve ``path`` (default :data:`DEFAULT_TRACE`) relative to the repository root; fail clearly if missing."""
    path = path or DEFAULT_TRACE
    full = path if os.path.isabs(path) else os.path.normpath(os.path.join(REPO_ROOT, path))
    if not os.path.isfile(full):
        raise ScenarioError(f"trace CSV not found: {full} (from --trace / trace.path {path!r}, relative to the repo "
                            f"root {REPO_ROOT}). Put the Alibaba openb trace at ../shared/traces/alibaba-openb/ "
                            "or pass --trace /path/to/openb_pod_list_default.csv")
    return full


def load_trace(path: str | None = None) -> list[TracePod]:
    """CPU-only pods (num_gpu == 0) of the CSV, sorted by creation_time."""
    full = resolve_trace_path(path)
    pods = []
    with open(full, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"name", "cpu_milli", "memory_mib", "num_gpu", "creation_time", "deletion_time"} - set(reader.fieldnames or [])
        if missing:
            raise ScenarioError(f"trace CSV {full} lacks column(s) {sorted(missing)}; expected the openb pod list format")
        for row in reader:
            try:
                if int(float(row["num_gpu"] or 0)) != 0:
                    continue
                pods.append(TracePod(row["name"], float(row["cpu_milli"]), float(row["memory_mib"]),
                                     float(row["creation_time"]), float(row["deletion_time"])))
            except ValueError as exc:
                raise ScenarioError(f"trace CSV {full}: bad row {row.get('name')!r}: {exc}") from None
    pods.sort(key=lambda p: (p.creation, p.name))
    return pods


def window_workloads(pods: list[TracePod], *, start: float, length: float, compression: float = 1.0,
                     cpu_scale: float = 1.0, memory_scale: float = 1.0, usage_ratio: float = 0.7,
                     namespace: str = "trace", max_pods: int = 0) -> list[WorkloadSpec]:
    """One single-pod workload per trace pod alive in the window (see module docstring)."""
    if length <= 0 or compression <= 0:
        raise ScenarioError(f"trace window: length ({length}) and compression ({compression}) must be > 0")
    end = start + length
    out = []
    for p in pods:
        if p.creation >= end or p.deletion <= start:
            continue
        born = (max(p.creation, start) - start) / compression
        dies = (min(p.deletion, end) - start) / compression
        if p.deletion >= TRACE_END and end >= TRACE_END:
            dies = float("inf")
        cpu = parse_cpu(p.cpu_milli * cpu_scale / 1000.0, f"trace {p.name}.cpu_milli")
        mem = parse_memory(p.memory_mib * memory_scale * 1024 * 1024, f"trace {p.name}.memory_mib")
        w = WorkloadSpec(name=p.name, namespace=namespace, cpu=cpu, memory=mem,
                         replicas=TimeFunction(1, lambda v, f: float(v), "replicas"),
                         usage_cpu=TimeFunction(cpu * usage_ratio, lambda v, f: float(v), "usage.cpu"),
                         usage_memory=TimeFunction(int(mem * usage_ratio), lambda v, f: float(v), "usage.memory"),
                         labels={"trace": "alibaba-openb"}, lifetime=(born, dies))
        out.append(w)
        if max_pods and len(out) >= max_pods:
            break
    return out


def peak_demand(workloads: list[WorkloadSpec]) -> tuple[float, int]:
    """(peak total CPU requests in cores, peak concurrent pods) over the window's pod births."""
    best_cpu, best_n = 0.0, 0
    for w in workloads:
        t = w.lifetime[0]
        alive = [x for x in workloads if x.lifetime[0] <= t < x.lifetime[1]]
        best_cpu = max(best_cpu, sum(x.cpu for x in alive))
        best_n = max(best_n, len(alive))
    return best_cpu, best_n


def apply_trace(scenario, trace_path: str | None = None) -> list[WorkloadSpec]:
    """Add the trace workloads described by ``scenario.trace`` (keys: path, start, length, compression,
    cpu_scale, memory_scale, usage_ratio, namespace, max_pods) to ``scenario.workloads``."""
    cfg = dict(scenario.trace or {})
    pods = load_trace(trace_path or cfg.get("path"))
    wls = window_workloads(pods, start=float(cfg.get("start", 12.0e6)), length=float(cfg.get("length", 604800)),
                           compression=float(cfg.get("compression", 1680)),
                           cpu_scale=float(cfg.get("cpu_scale", 0.125)),
                           memory_scale=float(cfg.get("memory_scale", 0.125)),
                           usage_ratio=float(cfg.get("usage_ratio", 0.7)),
                           namespace=str(cfg.get("namespace", "trace")), max_pods=int(cfg.get("max_pods", 0)))
    scenario.workloads.extend(wls)
    return wls
