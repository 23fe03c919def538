"""The simulation's object model (nodes, pods) and the fake scheduler.

Units everywhere in the core: CPU in cores (float), memory in bytes (int), time in epoch seconds.

Scheduler: Pending pods (oldest first) are bound first-fit by requests onto nodes that are Ready,
schedulable (not cordoned: ``spec.unschedulable`` false), with every NoSchedule/NoExecute taint
tolerated and enough free allocatable cpu, memory and pod slots. Free capacity is indexed per node
(``Node.free_cpu``/``free_memory``/``free_pods``, kept up to date on bind/unbind), and pods with the
same (requests, tolerations) signature share a cursor over the node list during one pass, so a pass is
O(nodes + pods) per signature rather than O(pods x nodes). A pod that fits nowhere keeps
``PodScheduled=False`` reason ``Unschedulable`` with the real scheduler's message format, e.g.
``0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: },
2 Insufficient cpu.``
"""
from __future__ import annotations

from dataclasses import dataclass, field

EPS = 1e-9


@dataclass(eq=False)
class Pod:
    namespace: str
    name: str
    uid: str
    cpu: float  # request, cores
    memory: int  # request, bytes
    created: float  # epoch seconds
    owner_kind: str  # ReplicaSet | DaemonSet
    owner_name: str
    workload: tuple  # (namespace, workload-or-daemonset name)
    container: str = "main"
    tolerations: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    node: str | None = None  # spec.nodeName
    phase: str = "Pending"
    unschedulable_message: str | None = None
    usage_cpu: float = 0.0  # actual usage, cores
    usage_memory: int = 0  # actual usage, bytes
    pinned_node: str | None = None  # DaemonSet pods: the one node they run on

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(eq=False)
class Node:
    name: str
    provider_id: str
    instance_type: str
    zone: str
    capacity_cpu: float  # cores
    capacity_memory: int  # bytes
    allocatable_cpu: float
    allocatable_memory: int
    created: float
    internal_ip: str = ""
    instance_id: str | None = None
    allocatable_pods: int = 110
    labels: dict = field(default_factory=dict)
    taints: list = field(default_factory=list)
    ready: str = "True"  # Ready condition status: True | False | Unknown
    unschedulable: bool = False  # spec.unschedulable (cordon)
    not_ready_since: float | None = None
    pods: dict = field(default_factory=dict)  # (ns, name) -> Pod
    free_cpu: float = 0.0
    free_memory: int = 0
    free_pods: int = 0
    # node-exporter counters: node_cpu_seconds_total per mode, summed over CPUs
    cpu_seconds: dict = field(default_factory=lambda: {"idle": 0.0, "user": 0.0, "system": 0.0})

    def __post_init__(self):
        self.recompute_free()

    def recompute_free(self) -> None:
        self.free_cpu = self.allocatable_cpu - sum(p.cpu for p in self.pods.values())
        self.free_memory = self.allocatable_memory - sum(p.memory for p in self.pods.values())
        self.free_pods = self.allocatable_pods - len(self.pods)

    @property
    def role(self) -> str | None:
        return "control-plane" if "node-role.kubernetes.io/control-plane" in self.labels else None


def tolerates(tolerations: list, taint: dict) -> bool:
    """Kubernetes toleration matching (key/operator/value/effect) for one taint."""
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        op = tol.get("operator") or "Equal"
        if not key:
            if op == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if op == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod: Pod, node: Node) -> dict | None:
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod.tolerations, taint):
            return taint
    return None


def bind(pod: Pod, node: Node) -> None:
    pod.node = node.name
    pod.phase = "Running"
    pod.unschedulable_message = None
    node.pods[pod.key] = pod
    node.free_cpu -= pod.cpu
    node.free_memory -= pod.memory
    node.free_pods -= 1


def unbind(pod: Pod, node: Node) -> None:
    if node.pods.pop(pod.key, None) is not None:
        node.free_cpu += pod.cpu
        node.free_memory += pod.memory
        node.free_pods += 1


def fit_reasons(pod: Pod, node: Node) -> list[str]:
    """Why ``pod`` cannot go on ``node`` (empty list: it fits). Reasons use the real scheduler's words."""
    if node.unschedulable:
        return ["node(s) were unschedulable"]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return ["node(s) had untolerated taint {%s: %s}" % (taint.get("key"), taint.get("value") or "")]
    if node.ready != "True":
        return ["node(s) were not ready"]
    reasons = []
    if node.free_pods < 1:
        reasons.append("Too many pods")
    if pod.cpu > node.free_cpu + EPS:
        reasons.append("Insufficient cpu")
    if pod.memory > node.free_memory:
        reasons.append("Insufficient memory")
    return reasons


def fits(pod: Pod, node: Node) -> bool:
    return (not node.unschedulable and node.ready == "True" and node.free_pods >= 1
            and pod.cpu <= node.free_cpu + EPS and pod.memory <= node.free_memory
            and untolerated_taint(pod, node) is None)


def unschedulable_message(pod: Pod, nodes: list[Node]) -> str:
    counts: dict[str, int] = {}
    for node in nodes:
        for reason in fit_reasons(pod, node):
            counts[reason] = counts.get(reason, 0) + 1
    detail = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=lambda kv: kv[0]))
    msg = f"0/{len(nodes)} nodes are available"
    return f"{msg}: {detail}." if detail else f"{msg}."


def _signature(pod: Pod) -> tuple:
    tol = tuple(sorted(tuple(sorted(t.items())) for t in pod.tolerations))
    return (pod.cpu, pod.memory, tol)


def schedule(pending: list[Pod], nodes: list[Node]) -> tuple[list[Pod], list[Pod]]:
    """One scheduling pass. ``pending``: pods to place (any order; sorted oldest first here).
    ``nodes``: candidate nodes in first-fit order. Binds in place (``bind``) and returns
    ``(bound, unschedulable)``; unschedulable pods get ``unschedulable_message`` set.

    DaemonSet pods (``pinned_node`` set) go first and only consider their own node.
    """
    bound, failed = [], []
    by_name = {n.name: n for n in nodes}
    cursors: dict[tuple, int] = {}  # signature -> first node index that might still fit
    failed_msgs: dict[tuple, str] = {}
    # DaemonSet pods first (like their system-node-critical priority would ensure), then oldest first.
    for pod in sorted(pending, key=lambda p: (p.pinned_node is None, p.created, p.namespace, p.name)):
        if pod.pinned_node is not None:
            node = by_name.get(pod.pinned_node)
            if node is not None and fits(pod, node):
                bind(pod, node)
                bound.append(pod)
            else:
                pod.unschedulable_message = unschedulable_message(pod, [node] if node else [])
                failed.append(pod)
            continue
        sig = _signature(pod)
        if sig in failed_msgs:
            pod.unschedulable_message = failed_msgs[sig]
            failed.append(pod)
            continue
        i = cursors.get(sig, 0)
        while i < len(nodes) and not fits(pod, nodes[i]):
            i += 1
        if i < len(nodes):
            bind(pod, nodes[i])
            bound.append(pod)
            cursors[sig] = i  # earlier nodes did not fit; capacity only shrinks during a pass
        else:
            msg = unschedulable_message(pod, nodes)
            failed_msgs[sig] = msg
            pod.unschedulable_message = msg
            failed.append(pod)
    return bound, failed
