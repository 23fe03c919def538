"""The replay benchmark's oracle (bench/replay.py ``oracle_nodes``) is a LOWER BOUND of the optimal
integer packing: checked against an exact brute-force optimum on small random 2-D instances, and exact for
identical pods. Pure functions, no simulation (fast)."""
import math
import random

import pytest

from bench import replay as R


def exact_optimum(pods, cap_cpu, cap_mem):
    """Fewest bins of (cap_cpu, cap_mem) holding every pod: depth-first search, each pod into an open bin
    or ONE new bin (bins are interchangeable), pruned by the best found. Exponential; n <= 8 only."""
    items = sorted(pods, key=lambda p: (-p[0] / cap_cpu - p[1] / cap_mem))
    best = [len(items)]

    def place(i, bins):
        if len(bins) >= best[0]:
            return
        if i == len(items):
            best[0] = len(bins)
            return
        c, m = items[i]
        for b in bins:
            if b[0] + c <= cap_cpu + 1e-12 and b[1] + m <= cap_mem:
                b[0] += c
                b[1] += m
                place(i + 1, bins)
                b[0] -= c
                b[1] -= m
        bins.append([c, m])
        place(i + 1, bins)
        bins.pop()

    place(0, [])
    return best[0]


def _random_instance(rng):
    cap_cpu, cap_mem = rng.choice([(2.0, 8 * 2 ** 30), (4.0, 16 * 2 ** 30), (1.0, 10 ** 9)])
    n = rng.randint(1, 8)
    shape = rng.choice(["small", "mixed", "large", "memory"])
    pods = []
    for _ in range(n):
        if shape == "small":
            fc, fm = rng.uniform(0.05, 0.35), rng.uniform(0.01, 0.35)
        elif shape == "large":
            fc, fm = rng.uniform(0.3, 0.75), rng.uniform(0.01, 0.6)
        elif shape == "memory":
            fc, fm = rng.uniform(0.01, 0.2), rng.uniform(0.2, 0.7)
        else:
            fc, fm = rng.uniform(0.01, 1.0), rng.uniform(0.01, 1.0)
        # requests as Kubernetes writes them: millicores and MiB
        pods.append((round(fc * cap_cpu * 1000) / 1000.0 or 0.001, max(1, int(fm * cap_mem) // 2 ** 20 * 2 ** 20)))
    return pods, cap_cpu, cap_mem


@pytest.mark.parametrize("seed", range(6))
def test_oracle_never_exceeds_the_exact_optimum(seed):
    rng = random.Random(seed)
    tight = 0
    for _ in range(60):
        pods, cap_cpu, cap_mem = _random_instance(rng)
        opt = exact_optimum(pods, cap_cpu, cap_mem)
        bound = R.oracle_nodes(pods, cap_cpu, cap_mem)
        assert bound <= opt, (pods, cap_cpu, cap_mem, bound, opt)
        assert R.fractional_nodes(sum(c for c, _ in pods), sum(m for _, m in pods), cap_cpu, cap_mem) <= bound
        assert bound <= R.ffd_nodes(pods, cap_cpu, cap_mem)  # FFD is an achievable packing: >= OPT >= bound
        tight += bound == opt
    assert tight >= 30  # a bound of 0 would pass the <= check; most small instances are tight


def test_oracle_respects_daemonset_overhead_and_min_nodes():
    rng = random.Random(42)
    for _ in range(40):
        pods, cap_cpu, cap_mem = _random_instance(rng)
        ds_cpu, ds_mem = cap_cpu * 0.05, cap_mem // 20
        room_cpu, room_mem = cap_cpu - ds_cpu, cap_mem - ds_mem
        fit = [p for p in pods if p[0] <= room_cpu and p[1] <= room_mem]
        opt = exact_optimum(fit, room_cpu, room_mem) if fit else 0
        assert R.oracle_nodes(pods, cap_cpu, cap_mem, ds_cpu, ds_mem) <= opt
        assert R.oracle_nodes(pods, cap_cpu, cap_mem, ds_cpu, ds_mem, min_nodes=opt + 2) == opt + 2


@pytest.mark.parametrize("cpu, mem, n", [
    (0.5, 512 * 2 ** 20, 18),    # diurnal: 3 per m5.large after the 10m DaemonSet -> 6 (fractional: 5)
    (0.7, 100 * 2 ** 20, 7),     # 2 per node -> 4
    (0.3, 3 * 2 ** 30, 5),       # memory-bound: 2 per node (7.9 GiB) -> 3
    (1.2, 2 ** 20, 3),           # more than half a node each -> 3
    (0.1, 2 ** 20, 1),
])
def test_oracle_is_exact_for_identical_pods(cpu, mem, n):
    a_cpu, a_mem = R.node_allocatable("m5.large")
    ds_cpu, ds_mem = 0.01, 16 * 2 ** 20
    pods = [(cpu, mem)] * n
    per_node = min(math.floor((a_cpu - ds_cpu) / cpu), math.floor((a_mem - ds_mem) / mem))
    expected = math.ceil(n / per_node)
    assert R.oracle_nodes(pods, a_cpu, a_mem, ds_cpu, ds_mem) == expected
    # an achievable packing with as many nodes: the bound is the optimum
    assert R.ffd_nodes(pods, a_cpu, a_mem, ds_cpu, ds_mem) == expected
    if n <= 8:
        assert exact_optimum(pods, a_cpu - ds_cpu, a_mem - ds_mem) == expected


def test_l2_is_tighter_than_volume_and_half_node_counts():
    # 1-D, cap 10: sizes 6, 6, 4, 4, 4 -> volume 3, half-node count 2; L2 (alpha=4) = 2 + ceil((12 - 8)/10) = 3;
    # sizes 7, 7, 4, 4: volume 3 (22/10), J1 at alpha=4 = {7, 7} (room 3 < 4) -> 2 + ceil(8/10) = 3, OPT 3
    assert R.l2_bound([6, 6, 4, 4, 4], 10) == 3
    assert R.l2_bound([7, 7, 4, 4], 10) == 3
    assert R.l2_bound([7, 7, 3, 3], 10) == 2
    assert R.l2_bound([], 10) == 0
    assert R.max_pods_per_node([4, 1, 2, 3], 6) == 3  # 1 + 2 + 3


def test_arrivals_without_room_counts_pods_that_must_wait_for_a_boot():
    cap = (4.0, 16 * 2 ** 30)
    present = [(3.0, 2 ** 30), (1.5, 2 ** 30)]           # FFD: 2 nodes, 1.0 and 2.5 cores free
    assert R.arrivals_without_room(present, [(2.0, 2 ** 30)], *cap) == 0       # fits the 2.5 left
    assert R.arrivals_without_room(present, [(3.0, 2 ** 30)], *cap) == 1       # fits no packed node
    assert R.arrivals_without_room(present, [(3.0, 2 ** 30)], *cap, spare_nodes=1) == 0
    # two arrivals: the larger takes the 2.5 left, the other finds nothing
    assert R.arrivals_without_room(present, [(2.0, 1), (2.5, 1)], *cap) == 1
    assert R.arrivals_without_room([], [(1.0, 1)], *cap) == 1                  # an empty cluster: must boot
    assert R.arrivals_without_room([], [(1.0, 1)], *cap, min_nodes=1) == 0     # min_nodes keeps a node
    assert R.arrivals_without_room([], [(5.0, 1)], *cap) == 0                  # no node holds it: not counted
