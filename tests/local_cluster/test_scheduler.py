from local_cluster.scheduler import Node, Pod, schedule, unschedulable_message

GI = 1024 ** 3


def node(name, cpu=2.0, mem=8 * GI, **kw):
    return Node(name=name, provider_id=f"aws:///us-east-1a/{name}", instance_type="m5.large", zone="us-east-1a",
                capacity_cpu=cpu, capacity_memory=mem, allocatable_cpu=cpu, allocatable_memory=mem, created=0.0, **kw)


def pod(name, cpu=0.5, mem=GI, created=0.0, **kw):
    return Pod(namespace="default", name=name, uid=name, cpu=cpu, memory=mem, created=created,
               owner_kind="ReplicaSet", owner_name="rs", workload=("default", "w"), **kw)


def test_first_fit_fills_nodes_in_order_and_tracks_free_capacity():
    n1, n2 = node("n1"), node("n2")
    pods = [pod(f"p{i}", created=i) for i in range(6)]
    bound, failed = schedule(pods, [n1, n2])
    assert [p.node for p in pods] == ["n1"] * 4 + ["n2"] * 2
    assert len(bound) == 6 and failed == []
    assert n1.free_cpu == 0.0 and n2.free_cpu == 1.0
    assert n2.free_memory == 6 * GI and n2.free_pods == 108
    assert all(p.phase == "Running" for p in pods)


def test_pod_that_fits_nowhere_stays_pending_with_real_message():
    cp = node("k3s-server", labels={"node-role.kubernetes.io/control-plane": "true"},
              taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    n1, n2 = node("n1"), node("n2", mem=GI // 2)
    big = pod("big", cpu=1.5, mem=GI)
    schedule([pod("filler", cpu=1.0)], [n1])
    bound, failed = schedule([big], [cp, n1, n2])
    assert bound == [] and failed == [big]
    assert big.node is None and big.phase == "Pending"
    assert big.unschedulable_message == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, "
        "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }.")


def test_cordoned_and_not_ready_nodes_are_skipped():
    cordoned, notready, ok = node("a", unschedulable=True), node("b", ready="Unknown"), node("c")
    p = pod("p")
    schedule([p], [cordoned, notready, ok])
    assert p.node == "c"
    q = pod("q")
    schedule([q], [cordoned, notready])
    assert q.unschedulable_message == "0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable."


def test_tolerations_allow_tainted_node():
    tainted = node("t", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    plain = pod("plain")
    tol = pod("tol", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    schedule([plain, tol], [tainted])
    assert plain.node is None and tol.node == "t"


def test_daemonset_pod_only_goes_to_its_node_and_oldest_pending_first():
    n1, n2 = node("n1", cpu=1.0), node("n2", cpu=1.0)
    ds = pod("ds", cpu=0.1, pinned_node="n2", tolerations=[{"operator": "Exists"}])
    old, new = pod("old", cpu=1.0, created=1), pod("new", cpu=1.0, created=2)
    schedule([new, ds, old], [n1, n2])
    assert ds.node == "n2"
    assert old.node == "n1"  # oldest first, first fit
    assert new.node is None and "2 Insufficient cpu" in new.unschedulable_message


def test_same_size_pods_share_cursor_but_smaller_pods_still_fill_gaps():
    nodes = [node(f"n{i}", cpu=1.0) for i in range(3)]
    pods = [pod("a", cpu=0.75, created=0), pod("b", cpu=0.75, created=1), pod("small", cpu=0.25, created=2),
            pod("c", cpu=0.75, created=3)]
    schedule(pods, nodes)
    assert [p.node for p in pods] == ["n0", "n1", "n0", "n2"]


def test_message_with_no_nodes():
    assert unschedulable_message(pod("x"), []) == "0/0 nodes are available."
