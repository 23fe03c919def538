"""The simulation core: kubelet + scheduler + workload driver + usage integration, on an injectable clock.

:class:`Simulation` owns the authoritative, indexed model of nodes and pods (plain Python objects, see
:mod:`local_cluster.scheduler`). Each :meth:`Simulation.tick`:

1. applies changes made from outside through the Kubernetes API store (pod deleted/evicted, node cordoned
   or deleted), received via ``store.on_event`` and queued (thread-safe);
2. integrates node-exporter CPU counters over the elapsed clock time from the current pod usage, then
   recomputes usage for the new scenario time;
3. runs the fake kubelet over the mock-EC2 instances (join / NotReady / remove after grace);
4. reconciles workloads (ReplicaSet-like: create Pending pods, delete surplus);
5. runs the scheduler over Pending pods and writes bindings / ``PodScheduled=False`` conditions.

The store is optional: ``store=None`` runs purely in memory (virtual time, no HTTP, no Prometheus), and
``store=ObjectStore()`` (``local_cluster.kubeapi_store``) mirrors everything into the emulated Kubernetes API
(the live cluster passes the store that backs its HTTP server). ``ec2`` is a ``MockEC2`` (same ``clock``!) or
None (then add nodes with :meth:`Simulation.add_node`).
"""
from __future__ import annotations

import collections
import logging
import threading
import uuid
from typing import Any

from local_cluster import kubelet as kl
from local_cluster.scheduler import Node, Pod, schedule, unbind
from local_cluster.workloads import DaemonSetSpec, Scenario, WorkloadDriver, WorkloadSpec

log = logging.getLogger("local_cluster")

DEFAULT_IMAGE_ID = "ami-0123456789abcdef0"
NODE_BASE_CPU = 0.05  # cores used by the OS + k3s agent on every node (node-exporter "system" mode)
NODE_BASE_MEMORY = 300 * 1024 * 1024  # bytes used by the OS + k3s agent on every node
PAUSE_IMAGE_ID = ("registry.k8s.io/pause@sha256:"
                  "7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097")
DS_TOLERATIONS = [{"operator": "Exists"}]  # DaemonSet pods tolerate every taint (like k3s's svclb)


def format_cpu(cores: float) -> str:
    return f"{int(round(cores * 1000))}m"


def format_memory(nbytes: int) -> str:
    for suffix, factor in (("Gi", 1024 ** 3), ("Mi", 1024 ** 2), ("Ki", 1024)):
        if nbytes and nbytes % factor == 0:
            return f"{nbytes // factor}{suffix}"
    return str(int(nbytes))


def rfc3339(epoch: float) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ThreadLocalEC2:
    """Adapter: one ``MockEC2`` per thread over the same SQLite store (``MockEC2`` keeps a sqlite3
    connection, which may only be used by the thread that created it). Exposes the part of the MockEC2
    API the simulation uses: ``store``, ``region``, ``list_instances``, ``user_data``, ``close``."""

    def __init__(self, store: str, region: str = "us-east-1", clock=None, **kwargs):
        self.store, self.region, self._clock, self._kwargs = store, region, clock, kwargs
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()

    def _ec2(self):
        ec2 = getattr(self._local, "ec2", None)
        if ec2 is None:
            from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
            ec2 = MockEC2(store=self.store, region=self.region, clock=self._clock, **self._kwargs)
            self._local.ec2 = ec2
            with self._lock:
                self._all.append(ec2)
        return ec2

    def list_instances(self, *args, **kwargs):
        return self._ec2().list_instances(*args, **kwargs)

    def user_data(self, instance_id):
        return self._ec2().user_data(instance_id)

    def __getattr__(self, name):
        return getattr(self._ec2(), name)

    def close(self):
        with self._lock:
            for ec2 in self._all:
                try:
                    ec2.close()
                except Exception:  # a connection of another (finished) thread
                    pass
            self._all.clear()


class Simulation:
    def __init__(self, scenario: Scenario, clock, *, store=None, ec2=None, k3s_url: str = "http://127.0.0.1:6443",
                 token: str = "local-demo-token", join_seconds: float = 10.0, remove_grace_seconds: float = 30.0,
                 cluster_name: str = "local", node_group: str = "default", reservation: kl.Reservation | None = None,
                 image_id: str = DEFAULT_IMAGE_ID, seed: int | None = None):
        self.scenario = scenario
        self.clock = clock
        self.store = store
        self.ec2 = ec2
        self.k3s_url = k3s_url
        self.token = token
        self.cluster_name = cluster_name
        self.node_group = node_group
        self.remove_grace_seconds = float(remove_grace_seconds)
        self.reservation = reservation or kl.Reservation()
        self.image_id = image_id
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.pending: dict[tuple[str, str], Pod] = {}
        self.by_workload: dict[tuple[str, str], list[Pod]] = collections.defaultdict(list)
        self.node_by_instance: dict[str, str] = {}
        self.driver = WorkloadDriver(scenario.workloads, seed=seed)
        self.daemonsets: list[DaemonSetSpec] = list(scenario.daemonsets)
        self._ds_by_key = {(d.namespace, d.name): d for d in self.daemonsets}
        self._wl_by_key = {(w.namespace, w.name): w for w in scenario.workloads}
        self.kubelet = kl.Kubelet(k3s_url, token, join_seconds,
                                  user_data_reader=(ec2.user_data if ec2 is not None else None), log=log.info)
        self._events: collections.deque = collections.deque()
        self._owner_uids: dict[tuple[str, str, str], str] = {}
        self.start_time: float | None = None
        self.last_tick: float | None = None
        self.scenario_t = 0.0
        self.ticks = 0
        self._unschedulable_count = 0
        self._unsubscribe = None

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        """Create the control plane, owner objects and the scenario's initial agent nodes (already running)."""
        with self.lock:
            now = self.clock()
            self.start_time = self.last_tick = now
            if self.store is not None:
                self._unsubscribe = self.store.on_event(self._on_store_event)
                for ns in sorted({w.namespace for w in self.scenario.workloads} | {d.namespace for d in self.daemonsets}):
                    if not self.store.exists("v1", "Namespace", ns):
                        self.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            for d in self.daemonsets:
                self._create_owner("DaemonSet", d.namespace, d.name)
            for w in self.scenario.workloads:
                self._create_owner("ReplicaSet", w.namespace, w.replicaset_name, w)
            cp = self.scenario.control_plane
            self._register(kl.control_plane_node(now, cp["cpu"], cp["memory"], self.reservation))
            if self.scenario.initial_nodes > 0:
                if self.ec2 is not None:
                    for inst in self.launch_initial_instances(self.scenario.initial_nodes):
                        self.kubelet._first_running[inst["instance_id"]] = now - self.kubelet.join_seconds
                else:
                    for _ in range(self.scenario.initial_nodes):
                        self.add_node(self.scenario.instance_type)
            log.info("simulation started: scenario=%s control-plane=%s initial_nodes=%d",
                     self.scenario.name, kl.CONTROL_PLANE_NAME, self.scenario.initial_nodes)
        self.tick()

    def user_data(self) -> str:
        """A k3s agent user_data script that joins this cluster (what the autoscale role renders)."""
        return ("#!/bin/sh\nset -eu\n"
                f"export K3S_URL={self.k3s_url}\nexport K3S_TOKEN={self.token}\n"
                "curl -sfL https://get.k3s.io | sh -s - agent \\\n"
                f"  --node-label k3s-autoscaler/node-group={self.node_group}\n")

    def instance_tags(self) -> dict:
        return {"Name": f"{self.cluster_name}-{self.node_group}", "k3s-autoscaler/cluster": self.cluster_name,
                "k3s-autoscaler/node-group": self.node_group}

    def launch_initial_instances(self, count: int) -> list[dict]:
        """Launch ``count`` already-running instances (boot_seconds=0) in the same mock-EC2 store,
        tagged for this cluster/node group, so the autoscaler can see and terminate them."""
        from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
        boot0 = MockEC2(store=self.ec2.store, region=self.ec2.region, boot_seconds=0, clock=self.clock)
        try:
            instances, _ = boot0.run_instances(count, {
                "instance_type": self.scenario.instance_type, "image_id": self.image_id,
                "tags": self.instance_tags(), "user_data": self.user_data()})
        finally:
            boot0.close()
        return instances

    def add_node(self, instance_type: str, name: str | None = None, zone: str = "us-east-1a") -> Node:
        """Register an agent Node directly (no EC2): for virtual runs and tests."""
        with self.lock:
            n = len(self.nodes)
            ip = f"10.0.{(n // 250) % 250}.{n % 250 + 4}"
            iid = "i-" + uuid.uuid4().hex[:17]
            inst = {"instance_id": iid, "instance_type": instance_type, "placement": {"availability_zone": zone},
                    "private_dns_name": name or f"ip-{ip.replace('.', '-')}.ec2.internal", "private_ip_address": ip,
                    "tags": self.instance_tags()}
            node = kl.node_from_instance(inst, self.clock(), self.reservation)
            self._register(node)
            return node

    # ------------------------------------------------------------------ store mirroring
    def _on_store_event(self, event) -> None:
        kind = event.resource.kind
        if (kind == "Pod" and event.type == "DELETED") or (kind == "Node" and event.type in ("MODIFIED", "DELETED")):
            self._events.append((kind, event.type, event.object, event.reason))

    def _create_owner(self, kind: str, namespace: str, name: str, w: WorkloadSpec | None = None) -> None:
        uid = str(uuid.uuid4())
        if self.store is not None:
            labels = {"app": w.name if w else name}
            spec: dict[str, Any] = {"selector": {"matchLabels": labels},
                                    "template": {"metadata": {"labels": labels},
                                                 "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}}
            if w is not None:
                spec["replicas"] = w.desired(0)
            body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace,
                                                                          "labels": labels}, "spec": spec}
            if self.store.exists("apps/v1", kind, name, namespace):
                uid = self.store.get("apps/v1", kind, name, namespace, copy=False)["metadata"]["uid"]
            else:
                uid = self.store.create(body, copy=False)["metadata"]["uid"]
        self._owner_uids[(kind, namespace, name)] = uid

    def node_object(self, node: Node) -> dict:
        ts = rfc3339(node.created)
        status = node.ready
        cond_reason, cond_msg = {"True": ("KubeletReady", "kubelet is posting ready status"),
                                 "False": ("KubeletNotReady", "container runtime is down"),
                                 "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status.")}[status]
        conditions = [{"type": t, "status": "Unknown" if status == "Unknown" else "False",
                       "reason": cond_reason if status == "Unknown" else f"KubeletHasSufficient{t[:-8] if t.endswith('Pressure') else t}",
                       "message": cond_msg if status == "Unknown" else f"kubelet has no {t}",
                       "lastHeartbeatTime": ts, "lastTransitionTime": ts}
                      for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
        conditions.append({"type": "Ready", "status": status, "reason": cond_reason, "message": cond_msg,
                           "lastHeartbeatTime": ts, "lastTransitionTime": ts})
        res = {"cpu": format_cpu(node.capacity_cpu), "memory": f"{node.capacity_memory // 1024}Ki",
               "pods": str(node.allocatable_pods), "ephemeral-storage": "20959212Ki"}
        alloc = {"cpu": format_cpu(node.allocatable_cpu), "memory": f"{node.allocatable_memory // 1024}Ki",
                 "pods": str(node.allocatable_pods), "ephemeral-storage": "20388876855"}
        spec: dict[str, Any] = {"providerID": node.provider_id, "podCIDR": "10.42.%d.0/24" % (len(self.nodes) % 250)}
        if node.taints:
            spec["taints"] = [dict(t) for t in node.taints]
        if node.unschedulable:
            spec["unschedulable"] = True
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": dict(node.labels),
                         "annotations": {"k3s.io/internal-ip": node.internal_ip, "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
            "status": {"capacity": res, "allocatable": alloc, "conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": node.internal_ip},
                                     {"type": "Hostname", "address": node.name}],
                       "nodeInfo": self.node_info(node)},
        }

    @staticmethod
    def node_info(node: Node) -> dict:
        return {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.1.0-28-cloud-amd64", "kubeProxyVersion": kl.KUBELET_VERSION,
                "kubeletVersion": kl.KUBELET_VERSION, "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)", "machineID": node.name, "systemUUID": node.name,
                "bootID": node.name}

    def pod_object(self, pod: Pod) -> dict:
        owner_uid = self._owner_uids.get((pod.owner_kind, pod.namespace, pod.owner_name), "")
        obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": pod.owner_kind, "name": pod.owner_name,
                                              "uid": owner_uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"containers": [{"name": pod.container, "image": "registry.k8s.io/pause:3.9",
                                     "resources": {"requests": {"cpu": format_cpu(pod.cpu),
                                                                "memory": format_memory(pod.memory)}}}],
                     "tolerations": [dict(t) for t in pod.tolerations], "restartPolicy": "Always",
                     "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30},
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        if pod.pinned_node:
            obj["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                        "values": [pod.pinned_node]}]}]}}}
        return obj

    def _bound_patch(self, pod: Pod, now: float) -> dict:
        ts = rfc3339(now)
        node = self.nodes.get(pod.node)
        return {"spec": {"nodeName": pod.node},
                "status": {"phase": "Running", "hostIP": node.internal_ip if node else "", "startTime": ts,
                           "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts}
                                          for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                           "podIP": "10.42.0.%d" % (hash(pod.key) % 250 + 2),
                           "containerStatuses": [{"name": pod.container, "ready": True, "started": True,
                                                  "restartCount": 0, "image": "registry.k8s.io/pause:3.9",
                                                  "imageID": PAUSE_IMAGE_ID,
                                                  "containerID": "containerd://" + pod.uid.replace("-", "") * 2,
                                                  "state": {"running": {"startedAt": ts}}}]}}

    def _store_call(self, what: str, fn, *args, **kwargs):
        if self.store is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # the API store is the mirror; the model stays authoritative
            log.warning("kube API store: %s failed: %s", what, exc)
            return None

    # ------------------------------------------------------------------ model changes
    def _register(self, node: Node) -> None:
        self.nodes[node.name] = node
        if node.instance_id:
            self.node_by_instance[node.instance_id] = node.name
        if self.store is not None:
            obj = self.node_object(node)
            if self.store.exists("v1", "Node", node.name):
                self._store_call("replace node", self.store.replace, obj)
            else:
                self._store_call("create node", self.store.create, obj, copy=False)
        now = self.clock()
        for d in self.daemonsets:
            self._new_pod(d.namespace, d.name, "DaemonSet", d.name, d.cpu, d.memory, {"app": d.name}, now,
                          tolerations=DS_TOLERATIONS, pinned_node=node.name)
        if node.instance_id:
            log.info("node %s joined (instance %s, %s, %s)", node.name, node.instance_id, node.instance_type, node.zone)

    def _new_pod(self, namespace, workload_name, owner_kind, owner_name, cpu, memory, labels, now,
                 tolerations=None, pinned_node=None, name=None) -> Pod:
        if name is None:
            name = (self.driver.new_name(owner_name) if owner_kind == "DaemonSet"
                    else self.driver.new_pod_name(self._wl_by_key[(namespace, workload_name)]))
        pod = Pod(namespace=namespace, name=name, uid=str(uuid.uuid4()), cpu=cpu, memory=memory, created=now,
                  owner_kind=owner_kind, owner_name=owner_name, workload=(namespace, workload_name),
                  tolerations=list(tolerations or []), labels=dict(labels), pinned_node=pinned_node)
        if self.store is not None:
            created = self._store_call("create pod", self.store.create, self.pod_object(pod), copy=False)
            if created is not None:
                pod.uid = created["metadata"]["uid"]
        self.pods[pod.key] = pod
        self.pending[pod.key] = pod
        self.by_workload[pod.workload].append(pod)
        return pod

    def _forget_pod(self, pod: Pod) -> None:
        self.pods.pop(pod.key, None)
        self.pending.pop(pod.key, None)
        lst = self.by_workload.get(pod.workload)
        if lst is not None:
            try:
                lst.remove(pod)
            except ValueError:
                pass
        if pod.node and pod.node in self.nodes:
            unbind(pod, self.nodes[pod.node])

    def delete_pod(self, key: tuple[str, str], reason: str = "deleted") -> None:
        pod = self.pods.get(key)
        if pod is None:
            return
        self._forget_pod(pod)
        self._store_call("delete pod", self.store.delete if self.store else None, "v1", "Pod", pod.name, pod.namespace,
                         copy=False)

    def _remove_node(self, name: str, why: str) -> None:
        node = self.nodes.pop(name, None)
        if node is None:
            return
        if node.instance_id:
            self.node_by_instance.pop(node.instance_id, None)
        for pod in list(node.pods.values()) + [p for p in self.pending.values() if p.pinned_node == name]:
            self.delete_pod(pod.key)
        if self.store is not None and self.store.exists("v1", "Node", name):
            self._store_call("delete node", self.store.delete, "v1", "Node", name, copy=False)
        log.info("node %s removed (%s)", name, why)

    def _set_not_ready(self, node: Node, now: float) -> None:
        if node.ready == "Unknown":
            return
        node.ready = "Unknown"
        node.not_ready_since = now
        node.taints = [t for t in node.taints if t.get("key") != "node.kubernetes.io/unreachable"] + \
            [dict(t, timeAdded=rfc3339(now)) for t in kl.UNREACHABLE_TAINTS]
        if self.store is not None:
            obj = self.node_object(node)
            self._store_call("patch node NotReady", self.store.patch, "v1", "Node", node.name,
                             {"spec": {"taints": obj["spec"]["taints"]}, "status": {"conditions": obj["status"]["conditions"]}},
                             patch_type="merge", copy=False)
        log.info("node %s NotReady (instance %s is gone or shutting down)", node.name, node.instance_id)

    # ------------------------------------------------------------------ tick
    def _apply_events(self) -> None:
        while self._events:
            kind, etype, obj, reason = self._events.popleft()
            meta = obj.get("metadata", {})
            if kind == "Pod":
                pod = self.pods.get((meta.get("namespace"), meta.get("name")))
                if pod is not None and pod.uid == meta.get("uid"):
                    self._forget_pod(pod)
                    log.info("pod %s/%s %s from outside; its %s will replace it", pod.namespace, pod.name, reason,
                             pod.owner_kind)
            elif kind == "Node":
                node = self.nodes.get(meta.get("name"))
                if node is None:
                    continue
                if etype == "DELETED":
                    self.nodes.pop(node.name, None)
                    if node.instance_id:
                        self.node_by_instance.pop(node.instance_id, None)
                    for pod in list(node.pods.values()):
                        self.delete_pod(pod.key)
                    log.info("node %s deleted from outside", node.name)
                    continue
                spec = obj.get("spec") or {}
                cordoned = bool(spec.get("unschedulable"))
                if cordoned != node.unschedulable:
                    log.info("node %s %s", node.name, "cordoned" if cordoned else "uncordoned")
                node.unschedulable = cordoned
                node.taints = [dict(t) for t in spec.get("taints") or []]

    def _integrate_and_update_usage(self, now: float, dt: float, t: float) -> None:
        usage_cache: dict = {}
        for node in self.nodes.values():
            if dt > 0 and node.ready == "True":
                pod_cpu = sum(p.usage_cpu for p in node.pods.values())
                system = min(NODE_BASE_CPU, node.capacity_cpu)
                user = min(pod_cpu, node.capacity_cpu - system)
                node.cpu_seconds["system"] += system * dt
                node.cpu_seconds["user"] += user * dt
                node.cpu_seconds["idle"] += (node.capacity_cpu - system - user) * dt
            for pod in node.pods.values():
                key = pod.workload
                if key not in usage_cache:
                    spec = self._wl_by_key.get(key) or self._ds_by_key.get(key)
                    usage_cache[key] = (spec.usage_cpu(t), int(spec.usage_memory(t))) if spec else (0.0, 0)
                pod.usage_cpu, pod.usage_memory = usage_cache[key]

    def tick(self) -> dict:
        """Advance the simulation to ``clock()``. Returns counters of what changed in this tick."""
        with self.lock:
            now = self.clock()
            if self.start_time is None:
                raise RuntimeError("Simulation.tick() before start()")
            dt = max(0.0, now - self.last_tick)
            self.last_tick = now
            t = self.scenario.scenario_time(now - self.start_time)
            self.scenario_t = t
            self.ticks += 1
            self._apply_events()
            self._integrate_and_update_usage(now, dt, t)
            stats = {"joined": 0, "not_ready": 0, "removed": 0, "created": 0, "deleted": 0, "bound": 0,
                     "unschedulable": 0}
            # kubelet
            if self.ec2 is not None:
                instances = self.ec2.list_instances(all_regions=False)
                join, lost = self.kubelet.step(now, instances, set(self.node_by_instance))
                for inst in join:
                    if inst["private_dns_name"] in self.nodes:
                        continue
                    self._register(kl.node_from_instance(inst, now, self.reservation, self.kubelet.user_data_labels(inst)))
                    stats["joined"] += 1
                for iid in lost:
                    node = self.nodes.get(self.node_by_instance.get(iid, ""))
                    if node is not None and node.ready != "Unknown":
                        self._set_not_ready(node, now)
                        stats["not_ready"] += 1
            for node in list(self.nodes.values()):
                if node.not_ready_since is not None and now - node.not_ready_since >= self.remove_grace_seconds:
                    self._remove_node(node.name, f"NotReady for {self.remove_grace_seconds:g}s")
                    stats["removed"] += 1
            # workloads
            to_create, to_delete = self.driver.reconcile(t, self.by_workload)
            for key in to_delete:
                self.delete_pod(key)
            for w, name in to_create:
                self._new_pod(w.namespace, w.name, "ReplicaSet", w.replicaset_name, w.cpu, w.memory,
                              {"app": w.name, **w.labels}, now, name=name)
            stats["created"], stats["deleted"] = len(to_create), len(to_delete)
            # scheduler
            bound, failed = schedule(list(self.pending.values()), list(self.nodes.values()))
            for pod in bound:
                del self.pending[pod.key]
                spec = self._wl_by_key.get(pod.workload) or self._ds_by_key.get(pod.workload)
                if spec is not None:
                    pod.usage_cpu, pod.usage_memory = spec.usage_cpu(t), int(spec.usage_memory(t))
                if self.store is not None:
                    self._store_call("bind pod", self.store.patch, "v1", "Pod", pod.name, self._bound_patch(pod, now),
                                     pod.namespace, patch_type="merge", copy=False)
            for pod in failed:
                if self.store is not None and pod.unschedulable_message != getattr(pod, "_written_msg", None):
                    pod._written_msg = pod.unschedulable_message
                    self._store_call("mark pod unschedulable", self.store.patch, "v1", "Pod", pod.name, {"status": {
                        "phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                            "reason": "Unschedulable",
                                                            "message": pod.unschedulable_message,
                                                            "lastTransitionTime": rfc3339(now)}]}},
                                     pod.namespace, patch_type="merge", copy=False)
            stats["bound"], stats["unschedulable"] = len(bound), len(failed)
            if len(failed) != self._unschedulable_count:
                log.info("%d pod(s) Pending/Unschedulable%s", len(failed),
                         f": {failed[0].unschedulable_message}" if failed else "")
                self._unschedulable_count = len(failed)
            if to_create or to_delete:
                log.info("workloads at t=%.0fs: +%d pod(s), -%d pod(s)", t, len(to_create), len(to_delete))
            return stats

    def run_until(self, end: float, step: float) -> None:
        """Virtual-time helper: tick every ``step`` clock seconds until ``clock() >= end``."""
        while self.clock() < end:
            self.clock.sleep(min(step, end - self.clock()))
            self.tick()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ views
    def summary(self) -> dict:
        with self.lock:
            phases = collections.Counter(p.phase for p in self.pods.values())
            return {
                "scenario": self.scenario.name, "scenario_time": round(self.scenario_t, 1),
                "nodes": [{"name": n.name, "ready": n.ready, "unschedulable": n.unschedulable,
                           "instance_id": n.instance_id, "instance_type": n.instance_type, "pods": len(n.pods),
                           "cpu_requested": round(n.allocatable_cpu - n.free_cpu, 3),
                           "cpu_allocatable": n.allocatable_cpu} for n in self.nodes.values()],
                "pods": dict(phases), "unschedulable": self._unschedulable_count,
            }
