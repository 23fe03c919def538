"""The fake kubelet: turns mock-EC2 instances into Kubernetes Nodes (and back).

Join rule (like a k3s agent started from user_data): an instance whose ``state.name`` has been
``running`` for ``join_seconds`` (measured on the simulation clock from the first time the kubelet saw
it running) and whose ``user_data`` contains ``K3S_URL=<this cluster's URL>`` and
``K3S_TOKEN=<this cluster's token>`` (shell-quoted or not) registers a Node. A wrong URL or token never
joins (a real agent would retry forever; we log it once).

Node shape: name = the instance's ``private_dns_name``; ``spec.providerID`` = ``aws:///<az>/<instance_id>``;
labels ``node.kubernetes.io/instance-type``, ``topology.kubernetes.io/zone``, ``topology.kubernetes.io/region``,
``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch``, plus ``k3s-autoscaler/node-group``
from the instance tags (and ``--node-label`` flags found in user_data).

Capacity comes from the instance-type table (``instance_types.py``: vcpu -> cores, memory_mib -> bytes);
pods capacity 110 (kubelet default ``maxPods``). Allocatable = capacity minus a k3s-like reservation:
k3s sets no kube-reserved/system-reserved by default, and the kubelet's default hard eviction
threshold ``memory.available<100Mi`` is subtracted from memory. So allocatable cpu = capacity cpu,
allocatable memory = capacity - 100 MiB (both configurable via :class:`Reservation`).

When the instance is ``shutting-down``/``terminated``/``stopping``/``stopped`` (or gone), the Node's
Ready condition becomes ``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node
status." -- what the node lifecycle controller writes; kubectl shows NotReady) and it gets the
``node.kubernetes.io/unreachable`` NoSchedule/NoExecute taints; after ``remove_grace_seconds`` more
the Node is deleted (as the cloud node lifecycle controller does) and its pods with it.

The control-plane Node ``k3s-server`` (providerID ``k3s://k3s-server``, k3s's own form without a
cloud provider) always exists, labelled control-plane/master and tainted
``node-role.kubernetes.io/control-plane:NoSchedule``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.k3s.autoscaler.plugins.module_utils.instance_types import get_instance_type

from local_cluster.scheduler import Node

MIB = 1024 * 1024
CONTROL_PLANE_NAME = "k3s-server"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
UNREACHABLE_TAINTS = [
    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
]
KUBELET_VERSION = "v1.31.4+k3s1"
GONE_STATES = ("shutting-down", "terminated", "stopping", "stopped")

_VAR_RE = {
    "K3S_URL": re.compile(r"""K3S_URL=(?:'([^']*)'|"([^"]*)"|(\S+))"""),
    "K3S_TOKEN": re.compile(r"""K3S_TOKEN=(?:'([^']*)'|"([^"]*)"|(\S+))"""),
}
_LABEL_RE = re.compile(r"""--node-label[= ](?:'([^']*)'|"([^"]*)"|(\S+))""")


@dataclass
class Reservation:
    """Subtracted from capacity to get allocatable. cpu in cores, memory in bytes."""
    cpu: float = 0.0
    memory: int = 100 * MIB


def parse_user_data(user_data: str | None) -> dict:
    """Extract ``K3S_URL``, ``K3S_TOKEN`` and ``--node-label k=v`` flags from a k3s agent user_data script.
    Returns ``{"K3S_URL": str|None, "K3S_TOKEN": str|None, "labels": {k: v}}``."""
    text = user_data or ""
    out: dict = {"labels": {}}
    for var, rx in _VAR_RE.items():
        m = rx.search(text)
        out[var] = next((g for g in m.groups() if g is not None), None) if m else None
    for m in _LABEL_RE.finditer(text):
        kv = next(g for g in m.groups() if g is not None)
        if "=" in kv:
            k, v = kv.split("=", 1)
            out["labels"][k] = v
    return out


def user_data_joins(user_data: str | None, k3s_url: str, token: str) -> bool:
    parsed = parse_user_data(user_data)
    return parsed["K3S_URL"] == k3s_url and parsed["K3S_TOKEN"] == token


def node_from_instance(inst: dict, now: float, reservation: Reservation, extra_labels: dict | None = None) -> Node:
    itype = get_instance_type(inst["instance_type"])
    az = inst["placement"]["availability_zone"]
    name = inst["private_dns_name"]
    cap_cpu = float(itype["vcpu"])
    cap_mem = int(itype["memory_mib"]) * MIB
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": inst["instance_type"],
        "topology.kubernetes.io/zone": az, "topology.kubernetes.io/region": az[:-1],
    }
    tags = inst.get("tags") or {}
    if "k3s-autoscaler/node-group" in tags:
        labels["k3s-autoscaler/node-group"] = tags["k3s-autoscaler/node-group"]
    labels.update(extra_labels or {})
    return Node(name=name, provider_id=f"aws:///{az}/{inst['instance_id']}", instance_type=inst["instance_type"],
                zone=az, capacity_cpu=cap_cpu, capacity_memory=cap_mem,
                allocatable_cpu=max(0.0, cap_cpu - reservation.cpu),
                allocatable_memory=max(0, cap_mem - reservation.memory), created=now,
                internal_ip=inst.get("private_ip_address", ""), instance_id=inst["instance_id"], labels=labels)


def control_plane_node(now: float, cpu: float, memory: int, reservation: Reservation) -> Node:
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": CONTROL_PLANE_NAME,
        "node.kubernetes.io/instance-type": "k3s",
        "node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true",
    }
    return Node(name=CONTROL_PLANE_NAME, provider_id=f"k3s://{CONTROL_PLANE_NAME}", instance_type="k3s", zone="",
                capacity_cpu=cpu, capacity_memory=memory, allocatable_cpu=max(0.0, cpu - reservation.cpu),
                allocatable_memory=max(0, memory - reservation.memory), created=now, internal_ip="10.0.0.10",
                labels=labels, taints=[dict(CONTROL_PLANE_TAINT)])


class Kubelet:
    """Decides, from a list of mock-EC2 instances, which Nodes to register / mark NotReady / remove.

    ``step(now, instances, nodes_by_instance)`` returns ``(join, lost)``: instances (API dicts) to register
    now, and instance ids whose Node must go NotReady. Removal timing is the simulation's job
    (``Node.not_ready_since`` + ``remove_grace_seconds``).
    """

    def __init__(self, k3s_url: str, token: str, join_seconds: float = 10.0, user_data_reader=None, log=None):
        self.k3s_url = k3s_url
        self.token = token
        self.join_seconds = float(join_seconds)
        self._user_data_reader = user_data_reader
        self._first_running: dict[str, float] = {}
        self._user_data: dict[str, str | None] = {}
        self._rejected: set[str] = set()
        self._log = log or (lambda msg: None)

    def user_data(self, inst: dict) -> str | None:
        iid = inst["instance_id"]
        if iid not in self._user_data:
            self._user_data[iid] = self._user_data_reader(iid) if self._user_data_reader else inst.get("user_data")
        return self._user_data[iid]

    def step(self, now: float, instances: list[dict], registered: set[str]) -> tuple[list[dict], list[str]]:
        join, lost = [], []
        seen = set()
        for inst in instances:
            iid = inst["instance_id"]
            seen.add(iid)
            state = inst["state"]["name"]
            if iid in registered:
                if state in GONE_STATES:
                    lost.append(iid)
                continue
            if state != "running":
                continue
            first = self._first_running.setdefault(iid, now)
            if iid in self._rejected or now - first < self.join_seconds:
                continue
            if user_data_joins(self.user_data(inst), self.k3s_url, self.token):
                join.append(inst)
            else:
                self._rejected.add(iid)
                parsed = parse_user_data(self.user_data(inst))
                why = ("wrong K3S_TOKEN" if parsed["K3S_URL"] == self.k3s_url
                       else f"K3S_URL {parsed['K3S_URL']!r} is not this cluster ({self.k3s_url})")
                self._log(f"instance {iid} never joins: {why} in its user_data")
        lost.extend(iid for iid in registered if iid not in seen)  # instance vanished from the store
        return join, lost

    def user_data_labels(self, inst: dict) -> dict:
        return parse_user_data(self.user_data(inst))["labels"]
