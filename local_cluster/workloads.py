"""Scenario files and the workload driver (a ReplicaSet-like controller).

A scenario (``local_cluster/scenarios/<name>.yaml``) describes the cluster at startup and the demand
over time. Shape (all keys except ``workloads`` optional)::

    name: burst
    description: ...
    speed: 1            # scenario seconds per clock second (>1 compresses time, e.g. 144: a day in 10 min)
    repeat: 0           # if > 0, scenario time wraps modulo this many scenario seconds
    cluster:
      instance_type: m5.large      # EC2 type of the agent nodes (plugins/module_utils/instance_types.py)
      initial_nodes: 1             # already-running mock-EC2 instances created at startup
      region: us-east-1
    autoscaler: {min_nodes: 1, max_nodes: 5, ...}   # suggested settings, passed through untouched
    daemonsets:
      - {name: svclb, namespace: kube-system, cpu: 10m, memory: 32Mi, usage: {cpu: 5m, memory: 16Mi}}
    workloads:
      - name: web
        namespace: default
        cpu: 500m          # CPU request per pod (cores; "500m" = 0.5 cores)
        memory: 512Mi      # memory request per pod (bytes; Ki/Mi/Gi/K/M/G suffixes)
        replicas: [[0, 2], [40, 12], [160, 2]]   # step function: [scenario_second, replicas]
        usage: {cpu: 400m, memory: 300Mi}        # actual usage per pod; same time-function forms

Time functions (``replicas``, ``usage.cpu``, ``usage.memory``) accept: a constant (number or
quantity string); a step list ``[[t, value], ...]`` (value of the last step with t <= now; before the
first step: the first value); or ``{sine: {mean, amplitude, period, phase}}`` (phase in seconds),
clamped at 0. Replicas are rounded to the nearest int.

The driver keeps, per workload, the number of live pods equal to ``replicas(t)``: it creates pods
(Pending, new random name ``<replicaset>-<5 chars>``, ownerReferences kind ReplicaSet, controller true)
and deletes surplus ones (Pending first, then newest), exactly like a ReplicaSet. A pod that is
deleted or evicted from outside (``kubectl drain``) is therefore replaced by a new Pending pod.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")

_MEM_SUFFIX = {
    "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
    "k": 1000, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4,
}


class ScenarioError(ValueError):
    """A scenario file or value is invalid; the message names the field and the fix."""


def parse_cpu(value: Any, field_name: str = "cpu") -> float:
    """Kubernetes CPU quantity -> cores (float). ``"500m"`` -> 0.5, ``2`` -> 2.0, ``"1.5"`` -> 1.5."""
    if isinstance(value, bool) or value is None:
        raise ScenarioError(f"{field_name}: expected a CPU quantity like 500m or 2, got {value!r}")
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        text = str(value).strip()
        try:
            result = float(text[:-1]) / 1000.0 if text.endswith("m") else float(text)
        except ValueError:
            raise ScenarioError(f"{field_name}: {value!r} is not a CPU quantity (use e.g. 250m, 0.5 or 2)") from None
    if result < 0 or math.isnan(result) or math.isinf(result):
        raise ScenarioError(f"{field_name}: CPU must be a finite value >= 0, got {value!r}")
    return result


def parse_memory(value: Any, field_name: str = "memory") -> int:
    """Kubernetes memory quantity -> bytes (int). ``"512Mi"`` -> 536870912, ``"1G"`` -> 10**9."""
    if isinstance(value, bool) or value is None:
        raise ScenarioError(f"{field_name}: expected a memory quantity like 512Mi, got {value!r}")
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?\s*", str(value))
        if not m:
            raise ScenarioError(f"{field_name}: {value!r} is not a memory quantity (use e.g. 512Mi, 2Gi or bytes)")
        result = float(m.group(1)) * _MEM_SUFFIX.get(m.group(2) or "", 1)
    if result < 0 or math.isnan(result) or math.isinf(result):
        raise ScenarioError(f"{field_name}: memory must be a finite value >= 0, got {value!r}")
    return int(round(result))


class TimeFunction:
    """A value as a function of scenario time (seconds). See module docstring for forms."""

    def __init__(self, spec: Any, parse: Callable[[Any, str], float], field_name: str):
        self.field_name = field_name
        self._const: float | None = None
        self._steps: list[tuple[float, float]] | None = None
        self._sine: tuple[float, float, float, float] | None = None
        if isinstance(spec, list):
            if not spec:
                raise ScenarioError(f"{field_name}: a step list needs at least one [t, value] pair")
            steps = []
            for i, item in enumerate(spec):
                if not (isinstance(item, (list, tuple)) and len(item) == 2):
                    raise ScenarioError(f"{field_name}[{i}]: expected [scenario_seconds, value], got {item!r}")
                steps.append((float(item[0]), parse(item[1], f"{field_name}[{i}]")))
            self._steps = sorted(steps)
        elif isinstance(spec, dict):
            if set(spec) != {"sine"} or not isinstance(spec["sine"], dict):
                raise ScenarioError(f"{field_name}: a dict must be {{sine: {{mean, amplitude, period, phase}}}}, got {spec!r}")
            s = spec["sine"]
            try:
                period = float(s["period"])
            except (KeyError, TypeError, ValueError):
                raise ScenarioError(f"{field_name}.sine.period: required, seconds > 0") from None
            if period <= 0:
                raise ScenarioError(f"{field_name}.sine.period: must be > 0 seconds, got {period}")
            self._sine = (parse(s.get("mean", 0), f"{field_name}.sine.mean"),
                          float(parse(s.get("amplitude", 0), f"{field_name}.sine.amplitude")),
                          period, float(s.get("phase", 0)))
        else:
            self._const = parse(spec, field_name)

    def __call__(self, t: float) -> float:
        if self._const is not None:
            return self._const
        if self._steps is not None:
            value = self._steps[0][1]
            for start, v in self._steps:
                if start <= t:
                    value = v
                else:
                    break
            return value
        mean, amp, period, phase = self._sine
        return max(0.0, mean + amp * math.sin(2 * math.pi * (t - phase) / period))


def _parse_count(value: Any, field_name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{field_name}: expected a number of replicas, got {value!r}") from None
    if v < 0:
        raise ScenarioError(f"{field_name}: replicas must be >= 0, got {value!r}")
    return v


@dataclass
class WorkloadSpec:
    name: str
    namespace: str
    cpu: float  # request per pod, cores
    memory: int  # request per pod, bytes
    replicas: TimeFunction
    usage_cpu: TimeFunction  # actual usage per pod, cores
    usage_memory: TimeFunction  # actual usage per pod, bytes
    labels: dict = field(default_factory=dict)
    # Trace pods: a single pod alive in [start, end) scenario seconds (replicas ignored).
    lifetime: tuple[float, float] | None = None

    @property
    def replicaset_name(self) -> str:
        digest = hashlib.sha256(f"{self.namespace}/{self.name}".encode()).hexdigest()
        # pod-template-hash style suffix (10 chars of [a-z0-9])
        return f"{self.name}-{digest[:10]}"

    def desired(self, t: float) -> int:
        if self.lifetime is not None:
            return 1 if self.lifetime[0] <= t < self.lifetime[1] else 0
        return max(0, int(round(self.replicas(t))))


@dataclass
class DaemonSetSpec:
    name: str
    namespace: str
    cpu: float
    memory: int
    usage_cpu: TimeFunction
    usage_memory: TimeFunction


@dataclass
class Scenario:
    name: str
    description: str = ""
    speed: float = 1.0
    repeat: float = 0.0
    duration: float = 0.0
    instance_type: str = "m5.large"
    initial_nodes: int = 1
    region: str = "us-east-1"
    control_plane: dict = field(default_factory=lambda: {"cpu": 2.0, "memory": 4 * 1024 ** 3})
    autoscaler: dict = field(default_factory=dict)
    daemonsets: list[DaemonSetSpec] = field(default_factory=list)
    workloads: list[WorkloadSpec] = field(default_factory=list)
    trace: dict | None = None
    path: str = ""

    def scenario_time(self, elapsed_clock_seconds: float) -> float:
        t = elapsed_clock_seconds * self.speed
        return t % self.repeat if self.repeat > 0 else t


def _usage(spec: dict, key: str, default: Any, parse, field_name: str) -> TimeFunction:
    usage = spec.get("usage") or {}
    if not isinstance(usage, dict):
        raise ScenarioError(f"{field_name}.usage: expected a mapping with cpu/memory, got {usage!r}")
    return TimeFunction(usage.get(key, default), parse, f"{field_name}.usage.{key}")


def parse_scenario(data: dict, name: str = "", path: str = "") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {path or name}: top level must be a mapping")
    sc = Scenario(name=str(data.get("name") or name), path=path)
    sc.description = str(data.get("description", ""))
    sc.speed = float(data.get("speed", 1.0))
    if sc.speed <= 0:
        raise ScenarioError(f"scenario {sc.name}: speed must be > 0, got {sc.speed}")
    sc.repeat = float(data.get("repeat", 0) or 0)
    sc.duration = float(data.get("duration", 0) or 0)
    cluster = data.get("cluster") or {}
    sc.instance_type = str(cluster.get("instance_type", sc.instance_type))
    sc.initial_nodes = int(cluster.get("initial_nodes", sc.initial_nodes))
    sc.region = str(cluster.get("region", sc.region))
    cp = cluster.get("control_plane") or {}
    sc.control_plane = {"cpu": parse_cpu(cp.get("cpu", 2), "cluster.control_plane.cpu"),
                        "memory": parse_memory(cp.get("memory", "4Gi"), "cluster.control_plane.memory")}
    sc.autoscaler = dict(data.get("autoscaler") or {})
    for i, d in enumerate(data.get("daemonsets") or []):
        fn = f"daemonsets[{i}]"
        sc.daemonsets.append(DaemonSetSpec(
            name=str(d["name"]), namespace=str(d.get("namespace", "kube-system")),
            cpu=parse_cpu(d.get("cpu", 0), fn + ".cpu"), memory=parse_memory(d.get("memory", 0), fn + ".memory"),
            usage_cpu=_usage(d, "cpu", d.get("cpu", 0), parse_cpu, fn),
            usage_memory=_usage(d, "memory", d.get("memory", 0), parse_memory, fn)))
    for i, w in enumerate(data.get("workloads") or []):
        fn = f"workloads[{i}]"
        if "name" not in w:
            raise ScenarioError(f"{fn}.name: required")
        cpu = parse_cpu(w.get("cpu", "100m"), fn + ".cpu")
        mem = parse_memory(w.get("memory", "128Mi"), fn + ".memory")
        sc.workloads.append(WorkloadSpec(
            name=str(w["name"]), namespace=str(w.get("namespace", "default")), cpu=cpu, memory=mem,
            replicas=TimeFunction(w.get("replicas", 1), _parse_count, fn + ".replicas"),
            usage_cpu=_usage(w, "cpu", cpu, parse_cpu, fn), usage_memory=_usage(w, "memory", mem, parse_memory, fn),
            labels={str(k): str(v) for k, v in (w.get("labels") or {}).items()}))
    if data.get("trace") is not None:
        sc.trace = dict(data["trace"])
    return sc


def scenario_path(name_or_path: str) -> str:
    if os.path.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    return os.path.join(SCENARIO_DIR, f"{name_or_path}.yaml")


def available_scenarios() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(SCENARIO_DIR) if f.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Load ``scenarios/<name>.yaml`` (or a path). Raises ScenarioError with the known names if missing."""
    path = scenario_path(name_or_path)
    if not os.path.exists(path):
        raise ScenarioError(f"scenario {name_or_path!r} not found at {path}; known scenarios: "
                            f"{', '.join(available_scenarios())}")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_scenario(data, name=os.path.splitext(os.path.basename(path))[0], path=path)


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names


class WorkloadDriver:
    """ReplicaSet-like reconciler. ``reconcile`` returns (to_create, to_delete):

    * ``to_create``: list of (WorkloadSpec, pod_name) new pods to create Pending;
    * ``to_delete``: list of pod keys (namespace, name) to delete (surplus replicas).

    ``live`` maps workload key (namespace, name) -> list of live pods; each pod must have
    ``.name``, ``.namespace``, ``.node`` (None while Pending) and ``.created`` attributes.
    """

    def __init__(self, workloads: list[WorkloadSpec], seed: int | None = None):
        self.workloads = list(workloads)
        self._rng = random.Random(seed)
        self._used_names: set[str] = set()

    def add(self, workload: WorkloadSpec) -> None:
        self.workloads.append(workload)

    def new_pod_name(self, workload: WorkloadSpec) -> str:
        return self.new_name(workload.replicaset_name)

    def new_name(self, prefix: str) -> str:
        """``<prefix>-<5 chars>``, never reused in this driver (a replacement pod gets a new name)."""
        while True:
            name = f"{prefix}-" + "".join(self._rng.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if name not in self._used_names:
                self._used_names.add(name)
                return name

    def reconcile(self, t: float, live: dict) -> tuple[list, list]:
        to_create, to_delete = [], []
        for w in self.workloads:
            pods = live.get((w.namespace, w.name), ())
            want = w.desired(t)
            have = len(pods)
            if want > have:
                to_create.extend((w, self.new_pod_name(w)) for _ in range(want - have))
            elif want < have:
                # ReplicaSet deletion order: unscheduled first, then the newest.
                ordered = sorted(pods, key=lambda p: (p.node is not None, -p.created, p.name))
                to_delete.extend((p.namespace, p.name) for p in ordered[: have - want])
        return to_create, to_delete
