#!/usr/bin/env python3
"""`make bench-cycle`: wall time of one autoscale run at 10 and 1,000 simulated nodes (a benchmark, not a test).

For each size it starts the local cluster (``python -m local_cluster up``, real Prometheus) from a scenario
generated into a temp dir: N already-running m5.2xlarge agents and 30 pods per agent (Cluster Autoscaler's
scalability-test density: 1,000 nodes / 30,000 pods; 10 nodes / 300 pods), plus one DaemonSet pod per node.
Once Prometheus has enough samples for ``rate()`` and every pod is Running, it runs, interleaved,
``--repeat`` times each (same inventory, host, local connection, profile_tasks callback on both):

* ``ansible-playbook playbooks/autoscale.yml``  (steady state: expected decision ``no_action``)
* ``ansible-playbook <tmp>/noop_same_tasks.yml`` (generated after the first autoscale run with the number of
  tasks profile_tasks recorded in it, skipped ones included; ansible.builtin set_fact/debug no-ops)

and one ``autoscale.yml --check`` run with the CPU and memory thresholds raised to 90 percent so the policy
decides ``scale_down`` and builds the candidate list (check mode: nothing is drained or terminated).

Printed: nodes, pods, autoscale run and no-op run (median / min seconds), overhead (median difference),
k3s_metrics task time (median, from ansible.posix.profile_tasks), the other autoscale tasks' time, the
Prometheus head series count and the decisions. The same figures go to ``out/bench-cycle.json``.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

from cluster_process import start_cluster, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODS_PER_NODE = 30          # Cluster Autoscaler scalability tests: 1,000 nodes / 30,000 pods
WORKLOADS = 30              # ReplicaSet-like workloads the pods are spread over
INSTANCE_TYPE = "m5.2xlarge"  # 8 vCPU, 32 GiB
# Per pod: request 100m / 128Mi, usage 80m / 96Mi -> per node 3 cores requested (37.5 %), about 2.45 cores
# used (~31 % CPU, above the 20 % scale-down threshold) -> steady state decides no_action.
POD = {"cpu": "100m", "memory": "128Mi", "usage": {"cpu": "80m", "memory": "96Mi"}}
METRICS_TASK = "Collect cluster metrics"
_PROFILE_LINE = re.compile(r"^(?P<name>.+?)\s-{2,}\s+(?P<secs>[0-9]+\.[0-9]+)s\s*$")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def scenario(nodes, pods):
    per = max(1, pods // WORKLOADS)
    return {
        "name": "bench-%d" % nodes,
        "description": "bench-cycle: %d %s agents, %d pods" % (nodes, INSTANCE_TYPE, per * WORKLOADS),
        "cluster": {"instance_type": INSTANCE_TYPE, "initial_nodes": nodes, "region": "us-east-1"},
        "autoscaler": {"min_nodes": 1, "max_nodes": nodes * 2},
        "daemonsets": [{"name": "svclb-traefik", "namespace": "kube-system", "cpu": "10m", "memory": "16Mi",
                        "usage": {"cpu": "2m", "memory": "8Mi"}}],
        "workloads": [dict(POD, name="w%02d" % i, namespace="default", replicas=per) for i in range(WORKLOADS)],
    }


def prom_query(url, promql, timeout=60):
    qs = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen("%s/api/v1/query?%s" % (url, qs), timeout=timeout) as resp:
        body = json.load(resp)
    return body["data"]["result"]


def prom_scalar(url, promql):
    res = prom_query(url, promql)
    return float(res[0]["value"][1]) if res else 0.0


def head_series(url):
    with urllib.request.urlopen(url + "/api/v1/status/tsdb", timeout=60) as resp:
        return int(json.load(resp)["data"]["headStats"]["numSeries"])


def wait_warm(prom, nodes, pods, rate_window, timeout):
    """Until every agent has a CPU rate over ``rate_window`` and every pod is Running (as Prometheus sees it)."""
    cpu_q = ('count(rate(node_cpu_seconds_total{mode="idle"}[%s]) * on(instance) group_left(nodename) '
             'node_uname_info)' % rate_window)
    run_q = 'count(kube_pod_status_phase{phase="Running"} == 1)'
    vcpus = 8
    deadline = time.time() + timeout
    have_cpu = running = 0
    while time.time() < deadline:
        try:
            have_cpu = prom_scalar(prom, cpu_q)
            running = prom_scalar(prom, run_q)
        except OSError:
            pass
        if have_cpu >= nodes * vcpus and running >= pods + nodes:
            return
        time.sleep(2)
    raise SystemExit("cluster not warm after %ss: %d CPU rate series (want >= %d), %d Running pods (want >= %d)"
                     % (timeout, have_cpu, nodes * vcpus, running, pods + nodes))


def run_playbook(playbook, env, extra_vars, check=False):
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        tail = "\n    ".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise SystemExit("%s failed (rc=%s):\n    %s" % (playbook, res.returncode, tail))
    tasks = {}
    count = 0
    in_recap = False
    for line in res.stdout.splitlines():
        if line.startswith("===="):
            in_recap = True
            continue
        m = _PROFILE_LINE.match(line.strip()) if in_recap else None
        if m:
            name = m.group("name").split(" : ", 1)[-1].strip()
            tasks[name] = tasks.get(name, 0.0) + float(m.group("secs"))
            count += 1
    decision = None
    for line in res.stdout.splitlines():
        m = re.search(r"decision=(\w+)", line)
        if m and "pending=" in line:
            decision = m.group(1)
    return {"wall_s": wall, "tasks": tasks, "task_count": count, "decision": decision, "stdout": res.stdout}


def write_noop_playbook(path, count):
    """A play like playbooks/autoscale.yml (hosts k3s_clusters, same inventory and connection, no facts) with
    ``count`` no-op ansible.builtin tasks: the number of tasks profile_tasks saw in an autoscale run."""
    tasks = []
    for i in range(count):
        if i % 2:
            tasks.append({"name": "No-op %d" % (i + 1), "ansible.builtin.debug": {"msg": "noop {{ noop_value }}"}})
        else:
            tasks.append({"name": "No-op %d" % (i + 1), "ansible.builtin.set_fact": {"noop_value": i}})
    play = [{"name": "No-op baseline with the autoscale run's task count (%d)" % count, "hosts": "k3s_clusters",
             "gather_facts": False, "tasks": tasks}]
    with open(path, "w") as f:
        f.write("---\n# Generated by scripts/bench_cycle.py\n")
        yaml.safe_dump(play, f, sort_keys=False)


def med_min(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}


def bench_size(nodes, args, base_env):
    pods = (max(1, nodes * PODS_PER_NODE // WORKLOADS)) * WORKLOADS
    run_dir = tempfile.mkdtemp(prefix="bench-cycle-%d-" % nodes, dir=args.tmp)
    sc_path = os.path.join(run_dir, "scenario.yaml")
    with open(sc_path, "w") as f:
        yaml.safe_dump(scenario(nodes, pods), f, sort_keys=False)
    log("==> %d nodes / %d pods: starting the local cluster (scenario %s)" % (nodes, pods, sc_path))
    t0 = time.perf_counter()
    proc, info = start_cluster(run_dir, sc_path, args.start_timeout,
                               ["--scrape-interval", str(args.scrape_interval),
                                "--prometheus-start-timeout", str(args.start_timeout)])
    try:
        prom = info["prometheus_url"]
        wait_warm(prom, nodes, pods, args.rate_window, args.warm_timeout)
        log("    cluster up and warm in %.1f s (Prometheus %s)" % (time.perf_counter() - t0, prom))
        env = dict(base_env, LOCAL_CLUSTER_DIR=run_dir)
        ev = {"autoscale_min_nodes": 1, "autoscale_max_nodes": nodes * 2,
              "autoscale_prometheus_rate_window": args.rate_window,
              "autoscale_prometheus_timeout": args.prometheus_timeout}
        auto, noop = [], []
        noop_path = os.path.join(run_dir, "noop_same_tasks.yml")
        load_before = os.getloadavg()[0]
        for i in range(args.repeat):
            a = run_playbook("playbooks/autoscale.yml", env, ev)
            if i == 0:
                write_noop_playbook(noop_path, a["task_count"])
            n = run_playbook(noop_path, env, {})
            auto.append(a)
            noop.append(n)
            log("    run %d: autoscale %.2f s (k3s_metrics %.2f s, decision %s), no-op %.2f s"
                % (i + 1, a["wall_s"], a["tasks"].get(METRICS_TASK, float("nan")), a["decision"], n["wall_s"]))
        chk = run_playbook("playbooks/autoscale.yml", env,
                           dict(ev, autoscale_cpu_threshold=90, autoscale_memory_threshold=90), check=True)
        log("    check-mode run (thresholds 90 %%): %.2f s, decision %s" % (chk["wall_s"], chk["decision"]))
        load_after = os.getloadavg()[0]
        series = head_series(prom)
        nodes_seen = prom_scalar(prom, "count(kube_node_info)")
        pods_seen = prom_scalar(prom, "count(kube_pod_info)")
        scrape_s = prom_scalar(prom, 'max(scrape_duration_seconds{job="kube-state-metrics"})')
    finally:
        stop_cluster(proc, timeout=30)
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    metrics_t = [a["tasks"].get(METRICS_TASK, float("nan")) for a in auto]
    rest_t = [sum(v for k, v in a["tasks"].items() if k != METRICS_TASK) for a in auto]
    overhead = [a["wall_s"] - n["wall_s"] for a, n in zip(auto, noop)]
    return {
        "nodes": nodes, "pods": pods, "daemonset_pods": nodes + 1,
        "kube_node_info_series": int(nodes_seen), "kube_pod_info_series": int(pods_seen),
        "prometheus_head_series": series,
        "kube_state_metrics_scrape_s": round(scrape_s, 3),
        "autoscale_run_s": med_min([a["wall_s"] for a in auto]),
        "noop_run_s": med_min([n["wall_s"] for n in noop]),
        "overhead_s": med_min(overhead),
        "k3s_metrics_task_s": med_min(metrics_t),
        "other_autoscale_tasks_s": med_min(rest_t),
        "autoscale_task_times_s": [dict((k, round(v, 3)) for k, v in a["tasks"].items()) for a in auto],
        "decisions": [a["decision"] for a in auto],
        "tasks_per_run": {"autoscale": [a["task_count"] for a in auto], "noop": [n["task_count"] for n in noop]},
        "check_mode_run": {"wall_s": round(chk["wall_s"], 3), "decision": chk["decision"],
                           "k3s_metrics_task_s": chk["tasks"].get(METRICS_TASK),
                           "thresholds_percent": {"cpu": 90, "memory": 90}},
        "repeat": args.repeat,
        "loadavg_1m": {"before": round(load_before, 2), "after": round(load_after, 2), "cpus": os.cpu_count()},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,1000", help="comma-separated node counts (30 pods per node)")
    p.add_argument("--repeat", type=int, default=3, help="measurements per playbook and size")
    p.add_argument("--scrape-interval", type=float, default=30.0,
                   help="Prometheus scrape interval (= scrape timeout), seconds: a kube-state-metrics scrape of the "
                        "1,000-node cluster takes several seconds on 2 busy cores and a timed-out scrape marks "
                        "every series stale")
    p.add_argument("--rate-window", default="2m", help="autoscale_prometheus_rate_window (>= 4 scrape intervals)")
    p.add_argument("--prometheus-timeout", type=int, default=60, help="autoscale_prometheus_timeout, seconds")
    p.add_argument("--start-timeout", type=float, default=240)
    p.add_argument("--warm-timeout", type=float, default=180)
    p.add_argument("--tmp", default=None, help="parent of the per-size temp state dirs")
    p.add_argument("--keep", action="store_true",
                   help="keep the per-size state dirs (cluster log, Prometheus TSDB, ec2.sqlite) instead of removing them")
    p.add_argument("--out", default=os.path.join(ROOT, "out", "bench-cycle.json"))
    args = p.parse_args(argv)

    base_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                    ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                    PROFILE_TASKS_SORT_ORDER="none", PROFILE_TASKS_TASK_OUTPUT_LIMIT="100",
                    PYTHONUNBUFFERED="1")
    base_env.pop("ANSIBLE_INVENTORY", None)
    t_all = time.perf_counter()
    rows = [bench_size(int(s), args, base_env) for s in args.sizes.split(",") if s.strip()]
    total = time.perf_counter() - t_all

    hdr = ("nodes", "pods", "autoscale med/min s", "no-op med/min s", "overhead s", "k3s_metrics s",
           "other tasks s", "prom series", "decision", "check-mode decision")
    fmt = "%6s %7s %20s %17s %11s %14s %14s %12s %10s %s"
    print(fmt % hdr)
    for r in rows:
        print(fmt % (r["nodes"], r["pods"],
                     "%.2f / %.2f" % (r["autoscale_run_s"]["median"], r["autoscale_run_s"]["min"]),
                     "%.2f / %.2f" % (r["noop_run_s"]["median"], r["noop_run_s"]["min"]),
                     "%.2f" % r["overhead_s"]["median"], "%.2f" % r["k3s_metrics_task_s"]["median"],
                     "%.2f" % r["other_autoscale_tasks_s"]["median"], r["prometheus_head_series"],
                     ",".join(sorted(set(str(d) for d in r["decisions"]))),
                     "%s (%.2f s, --check)" % (r["check_mode_run"]["decision"], r["check_mode_run"]["wall_s"])))
    for r in rows:
        print("%d nodes: 1-min load average %.1f before / %.1f after the runs on %d CPUs; kube-state-metrics scrape "
              "%.1f s" % (r["nodes"], r["loadavg_1m"]["before"], r["loadavg_1m"]["after"], r["loadavg_1m"]["cpus"],
                          r["kube_state_metrics_scrape_s"]))
    print("pods = workload pods (%d per node) + one DaemonSet pod per node; %d runs each, interleaved; "
          "k3s_metrics and other tasks from ansible.posix.profile_tasks; bench took %.0f s"
          % (PODS_PER_NODE, args.repeat, total))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "bench_seconds": round(total, 1),
                   "scrape_interval_s": args.scrape_interval, "rate_window": args.rate_window,
                   "instance_type": INSTANCE_TYPE, "sizes": rows}, f, indent=1)
    print("figures written to %s" % os.path.relpath(args.out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
