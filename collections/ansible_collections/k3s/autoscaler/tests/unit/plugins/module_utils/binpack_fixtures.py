# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builders for binpacking-policy tests: nodes_detail / pods_detail / pending pods / instances as
k3s_metrics, k8s_pods and ec2_instance_info produce them (CPU cores, memory bytes, unix seconds)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.k3s.autoscaler.plugins.module_utils.policy import decide, validate_config

GIB = 1024 ** 3
MIB = 1024 ** 2
NOW = 1_800_000_000.0


def node(name, cpu=2.0, mem=4 * GIB, req_cpu=0.0, req_mem=0, pods=0, itype="t3.medium", ready=True,
         cpu_percent=5.0, memory_percent=5.0, iid=None, **extra):
    n = {"name": name, "instance_id": iid or ("i-%s" % name.encode().hex()[:12].ljust(8, "0")),
         "provider_id": None, "instance_type": itype, "ready": ready, "unschedulable": False,
         "control_plane": False, "allocatable_cpu_cores": cpu, "allocatable_memory_bytes": mem,
         "requested_cpu_cores": req_cpu, "requested_memory_bytes": req_mem, "pods": pods,
         "cpu_percent": cpu_percent, "memory_percent": memory_percent}
    n.update(extra)
    return n


def pod(name, node_name, cpu, mem=0, ns="default", owner="ReplicaSet", **extra):
    p = {"namespace": ns, "name": name, "node": node_name, "cpu_cores": cpu, "memory_bytes": mem,
         "owner_kind": owner, "daemonset": owner == "DaemonSet", "safe_to_evict": None,
         "pdb_disruptions_allowed": None, "kube_system": ns == "kube-system"}
    p.update(extra)
    return p


def pending(name, cpu, mem=0, age=120.0, ns="default", owner="ReplicaSet"):
    return {"namespace": ns, "name": name, "cpu_cores": cpu, "memory_bytes": mem, "owner_kind": owner,
            "age_seconds": age}


def cluster(nodes_list, pods_list):
    """nodes_detail with requested/pods filled from pods_list (like k3s_metrics does)."""
    out = []
    for n in nodes_list:
        n = dict(n)
        mine = [p for p in pods_list if p["node"] == n["name"]]
        n["requested_cpu_cores"] = sum(p["cpu_cores"] for p in mine)
        n["requested_memory_bytes"] = sum(p["memory_bytes"] for p in mine)
        n["pods"] = len(mine)
        out.append(n)
    return out


def metrics_for(nodes_detail, pending_list, **extra):
    workers = [n for n in nodes_detail if not n.get("control_plane")]
    m = {"nodes": len(workers), "pending_pods": len(pending_list), "avg_cpu": 5.0, "avg_memory": 5.0}
    m.update(extra)
    return m


def config(**kw):
    cfg = {"policy": "binpacking", "min_nodes": 0, "max_nodes": 10, "instance_type": "t3.medium",
           "max_scale_up_step": 10}
    cfg.update(kw)
    return validate_config(cfg)


def run(cfg, nodes_detail, pending_list=(), pods_list=None, state=None, now=NOW, instances=None, **metrics_extra):
    pending_list = list(pending_list)
    return decide(metrics_for(nodes_detail, pending_list, **metrics_extra), cfg,
                  state if state is not None else {"last_scale_up": None, "last_scale_down": None},
                  now, nodes_detail=nodes_detail, pending_pods_detail=pending_list, pods_detail=pods_list,
                  instances=instances)


def node_report(result, name):
    for r in result["explain"]["scale_down"]["nodes"]:
        if r["name"] == name:
            return r
    raise AssertionError("node %s not in the scale_down report" % name)
