"""``python -m local_cluster up|status|down``: the long-lived simulated k3s cluster.

``up`` starts, on 127.0.0.1 (port 0 = a free port): the emulated Kubernetes API (writes
``<state-dir>/kubeconfig``), the simulation (fake kubelet over the mock-EC2 store, fake scheduler, workload
driver), the /metrics server and the real Prometheus; then writes ``<state-dir>/cluster.json`` atomically
(keys: api_url, kubeconfig, metrics_url, prometheus_url (null with --no-prometheus), ec2_store, k3s_url,
k3s_token, cluster_name, node_group, region, scenario, autoscaler, state_dir, textfile_dir, pid) and ticks until SIGTERM/SIGINT.
On exit it stops Prometheus, the metrics server and the API, and removes cluster.json.

One ``up`` per state dir: it holds ``fcntl.flock`` on ``<state-dir>/.local_cluster.lock`` for its whole life and
a second ``up`` on the same dir refuses at once. Each ``up`` starts a NEW cluster (new API URL, new nodes), so
it starts from a clean state dir: the previous run's mock-EC2 store (``ec2.sqlite`` and its SQLite -wal/-shm/
-journal files, or the ``--ec2-store`` file), the autoscaler's ``state.json`` and its run-metrics textfile
(``<textfile dir>/k3s_autoscaler.prom``) are moved to ``<state-dir>/previous/`` (replacing what was there) and
a stale ``cluster.json`` is removed (see :func:`fresh_state`). Their instances were launched with the old
cluster's ``K3S_URL`` and would never join the new one, yet count toward max_nodes. ``--keep-state`` keeps them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request

import yaml

from local_cluster.pidlock import try_pid_lock

log = logging.getLogger("local_cluster")


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


LOCK_NAME = ".local_cluster.lock"
PREVIOUS_DIR = "previous"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
TEXTFILE_NAME = "k3s_autoscaler.prom"


class StateDirBusy(RuntimeError):
    """Another ``local_cluster up`` holds the state dir's lock."""


def lock_state_dir(state_dir: str) -> int:
    """Take ``fcntl.flock`` (exclusive, non-blocking) on ``<state_dir>/.local_cluster.lock`` and write our pid in it.

    Returns the lock's file descriptor; keep it open for the life of the cluster (the kernel releases the lock
    when the process exits, even on SIGKILL). Raises :class:`StateDirBusy` naming the holder's pid.
    """
    fd, holder = try_pid_lock(os.path.join(state_dir, LOCK_NAME))
    if fd is None:
        raise StateDirBusy(f"another `python -m local_cluster up` is running with state dir {state_dir} (pid {holder}); "
                           f"stop it first (`python -m local_cluster down --state-dir {state_dir}`) or pass another "
                           "--state-dir")
    return fd


def fresh_state(state_dir: str, ec2_store: str, textfile_dir: str) -> list[str]:
    """Start a new cluster from a clean state dir; returns the paths moved aside (as they were).

    Moves, if present, the mock-EC2 store ``ec2_store`` with its SQLite ``-wal``/``-shm``/``-journal`` files,
    ``<state_dir>/state.json`` (the autoscaler's state: cooldowns, events, intents) and
    ``<textfile_dir>/k3s_autoscaler.prom`` (the autoscaler's run metrics) to ``<state_dir>/previous/``
    (replacing an older copy there), and removes a stale ``<state_dir>/cluster.json``. Logs, kubeconfig,
    lock files and anything else in the dir are left alone. Call it with the state dir locked
    (:func:`lock_state_dir`): a running cluster's files must never be moved.
    """
    moved = []
    candidates = [ec2_store] + [ec2_store + s for s in SQLITE_SIDECARS] + [
        os.path.join(state_dir, "state.json"), os.path.join(textfile_dir, TEXTFILE_NAME)]
    previous = os.path.join(state_dir, PREVIOUS_DIR)
    for path in candidates:
        if not os.path.lexists(path):
            continue
        os.makedirs(previous, mode=0o700, exist_ok=True)
        target = os.path.join(previous, os.path.basename(path))
        if os.path.lexists(target):
            os.unlink(target)
        shutil.move(path, target)
        moved.append(path)
    if ec2_store in moved:  # an older run's sidecar in previous/ must not pair with the store just moved there
        for sidecar in SQLITE_SIDECARS:
            target = os.path.join(previous, os.path.basename(ec2_store) + sidecar)
            if os.path.lexists(target) and ec2_store + sidecar not in moved:
                os.unlink(target)
    info_path = os.path.join(state_dir, "cluster.json")
    if os.path.lexists(info_path):
        os.unlink(info_path)
    return moved


def cmd_up(args) -> int:
    from local_cluster.workloads import ScenarioError

    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    try:
        lock_fd = lock_state_dir(state_dir)
    except StateDirBusy as exc:
        print(f"local_cluster up: error: {exc}", file=sys.stderr)
        return 1
    try:
        return _up(args, state_dir)
    except ScenarioError as exc:
        # a bad --scenario / --trace: one clear line, no traceback (nothing was started, no state moved)
        print(f"local_cluster up: error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.close(lock_fd)


def _up(args, state_dir: str) -> int:
    from local_cluster.clock import RealClock
    from local_cluster.exporter import MetricsServer
    from local_cluster.kubeapi import KubeAPI
    from local_cluster.prometheus import PrometheusServer
    from local_cluster.simulation import Simulation, ThreadLocalEC2
    from local_cluster.trace import CITATION, apply_trace
    from local_cluster.workloads import load_scenario

    info_path = os.path.join(state_dir, "cluster.json")
    scenario = load_scenario(args.scenario)
    if args.speed:
        scenario.speed = args.speed
    if scenario.trace is not None or args.trace:
        wls = apply_trace(scenario, args.trace)
        log.info("trace: %d CPU-only pods from the Alibaba openb trace (%s)", len(wls), CITATION)
    ec2_store = os.path.abspath(args.ec2_store or os.path.join(state_dir, "ec2.sqlite"))
    textfile_dir = os.path.abspath(args.textfile_dir or os.path.join(state_dir, "textfile"))
    if args.keep_state:
        if os.path.lexists(info_path):
            os.unlink(info_path)  # stale: the lock says no cluster runs on this dir
        log.info("--keep-state: reusing %s, %s and the textfile of the previous run (their instances only join "
                 "if they carry this cluster's K3S_URL)", ec2_store, os.path.join(state_dir, "state.json"))
    else:
        moved = fresh_state(state_dir, ec2_store, textfile_dir)
        if moved:
            log.info("fresh state: moved the previous run's %s to %s (--keep-state reuses them)",
                     ", ".join(os.path.basename(p) for p in moved), os.path.join(state_dir, PREVIOUS_DIR))
    clock = RealClock()
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ec2 = ThreadLocalEC2(ec2_store, region=args.region or scenario.region, clock=clock)
    api = KubeAPI(port=args.api_port, kubeconfig_path=os.path.join(state_dir, "kubeconfig")).start()
    log.info("kube API at %s (kubeconfig %s)", api.url, api.kubeconfig_path)
    metrics = prom = sim = ticker = None
    try:
        sim = Simulation(scenario, clock, store=api, ec2=ec2, k3s_url=api.url, token=args.token,
                         join_seconds=args.join_seconds, remove_grace_seconds=args.remove_grace,
                         cluster_name=args.cluster_name, node_group=args.node_group)
        sim.start()

        def tick_loop():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    sim.tick()
                except Exception:
                    log.exception("simulation tick failed")
                stop.wait(max(0.0, args.tick - (time.monotonic() - started)))

        ticker = threading.Thread(target=tick_loop, name="simulation", daemon=True)
        ticker.start()
        os.makedirs(textfile_dir, exist_ok=True)
        metrics = MetricsServer(sim, port=args.metrics_port, textfile_dir=textfile_dir).start()
        log.info("metrics at %s", metrics.url)
        if not args.no_prometheus:
            prom = PrometheusServer(f"127.0.0.1:{metrics.port}", os.path.join(state_dir, "prometheus"),
                                    port=args.prometheus_port, binary=args.prometheus_binary,
                                    scrape_interval=args.scrape_interval,
                                    extra_target_file=args.extra_target_file)
            prom.start(timeout=args.prometheus_start_timeout)
            log.info("prometheus at %s", prom.url)
        info = {"api_url": api.url, "kubeconfig": api.kubeconfig_path, "metrics_url": metrics.url,
                "prometheus_url": prom.url if prom else None, "ec2_store": ec2_store, "k3s_url": api.url,
                "k3s_token": args.token, "cluster_name": args.cluster_name, "node_group": args.node_group,
                "region": ec2.region, "instance_type": scenario.instance_type, "scenario": scenario.name,
                "autoscaler": scenario.autoscaler, "state_dir": state_dir, "textfile_dir": textfile_dir, "pid": os.getpid()}
        _write_json_atomic(info_path, info)
        log.info("ready: %s", info_path)
        while not stop.wait(1.0):
            pass
    finally:
        stop.set()
        if ticker is not None:
            ticker.join(30)
        if os.path.exists(info_path):
            os.unlink(info_path)
        if prom is not None:
            rc = prom.stop()
            log.info("prometheus stopped (exit code %s)", rc)
        if metrics is not None:
            metrics.stop()
        if sim is not None:
            sim.stop()
        api.stop()
        ec2.close()
        log.info("local cluster stopped")
    return 0


def _read_info(state_dir: str) -> dict:
    path = os.path.join(os.path.abspath(state_dir), "cluster.json")
    if not os.path.exists(path):
        raise SystemExit(f"no running local cluster: {path} does not exist (start one with "
                         f"`python -m local_cluster up --state-dir {state_dir}`)")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _api_get(info: dict, path: str) -> dict:
    with open(info["kubeconfig"], encoding="utf-8") as fh:
        kc = yaml.safe_load(fh)
    token = kc["users"][0]["user"]["token"]
    req = urllib.request.Request(info["api_url"] + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def cmd_status(args) -> int:
    info = _read_info(args.state_dir)
    nodes = _api_get(info, "/api/v1/nodes")["items"]
    pods = _api_get(info, "/api/v1/pods")["items"]
    print(f"cluster {info['cluster_name']} scenario={info['scenario']} api={info['api_url']} "
          f"prometheus={info.get('prometheus_url')} pid={info['pid']}")
    print(f"{'NODE':42} {'STATUS':26} {'INSTANCE-TYPE':14} {'PODS':>5}")
    per_node: dict = {}
    for p in pods:
        per_node[p["spec"].get("nodeName")] = per_node.get(p["spec"].get("nodeName"), 0) + 1
    for n in nodes:
        ready = next((c["status"] for c in n["status"].get("conditions", []) if c["type"] == "Ready"), "Unknown")
        status = ("Ready" if ready == "True" else "NotReady") + (",SchedulingDisabled" if n["spec"].get("unschedulable") else "")
        itype = n["metadata"].get("labels", {}).get("node.kubernetes.io/instance-type", "")
        print(f"{n['metadata']['name']:42} {status:26} {itype:14} {per_node.get(n['metadata']['name'], 0):>5}")
    phases: dict = {}
    for p in pods:
        phases[p["status"].get("phase")] = phases.get(p["status"].get("phase"), 0) + 1
    unsched = sum(1 for p in pods for c in p["status"].get("conditions", [])
                  if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable")
    print("pods: " + ", ".join(f"{k}={v}" for k, v in sorted(phases.items())) + f", Unschedulable={unsched}")
    return 0


def cmd_down(args) -> int:
    info = _read_info(args.state_dir)
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"process {pid} is not running; removing stale cluster.json")
        os.unlink(os.path.join(os.path.abspath(args.state_dir), "cluster.json"))
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"local cluster (pid {pid}) stopped")
            return 0
        time.sleep(0.2)
    print(f"local cluster (pid {pid}) did not stop within {args.timeout:g}s", file=sys.stderr)
    return 1


def cmd_bench(args) -> int:
    """Measure one steady-state tick and one /metrics render at ``--nodes`` x ``--pods`` (virtual clock)."""
    from local_cluster.clock import VirtualClock
    from local_cluster.exporter import render
    from local_cluster.kubeapi_store import ObjectStore
    from local_cluster.simulation import Simulation
    from local_cluster.workloads import parse_scenario

    per = max(1, args.pods // 30)
    sc = parse_scenario({"name": "bench", "cluster": {"initial_nodes": 0},
                         "daemonsets": [{"name": "svclb", "cpu": "10m", "memory": "16Mi"}],
                         "workloads": [{"name": f"w{i}", "cpu": "100m", "memory": "128Mi", "replicas": per,
                                        "usage": {"cpu": "50m", "memory": "64Mi"}} for i in range(30)]})
    clock = VirtualClock()
    store = None if args.no_store else ObjectStore()
    sim = Simulation(sc, clock, store=store, seed=0)
    sim.start()
    t0 = time.perf_counter()
    for _ in range(args.nodes):
        sim.add_node(args.instance_type)
    t_nodes = time.perf_counter() - t0
    clock.advance(1)
    t0 = time.perf_counter()
    sim.tick()
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(3):
        clock.advance(1)
        t0 = time.perf_counter()
        sim.tick()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    body = render(sim)
    t_render = time.perf_counter() - t0
    running = sum(1 for p in sim.pods.values() if p.node)
    print(json.dumps({"nodes": len(sim.nodes), "pods": len(sim.pods), "running": running, "store": store is not None,
                      "register_nodes_s": round(t_nodes, 3), "first_tick_s": round(t_first, 3),
                      "steady_tick_s": round(min(times), 3), "metrics_render_s": round(t_render, 3),
                      "metrics_bytes": len(body)}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m local_cluster", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local cluster and run until SIGTERM/SIGINT")
    up.add_argument("--state-dir", default="run/local")
    up.add_argument("--keep-state", action="store_true",
                    help="reuse the previous run's mock-EC2 store, state.json and run-metrics textfile (default: move "
                         "them to <state-dir>/previous/; their instances carry the old cluster's K3S_URL and would "
                         "never join)")
    up.add_argument("--scenario", default="burst", help="scenario name in local_cluster/scenarios/ or a YAML path")
    up.add_argument("--trace", default=None, help="Alibaba openb pod CSV (relative to the repo root); implies trace replay")
    up.add_argument("--api-port", type=int, default=0)
    up.add_argument("--metrics-port", type=int, default=0)
    up.add_argument("--prometheus-port", type=int, default=0)
    up.add_argument("--no-prometheus", action="store_true")
    up.add_argument("--prometheus-binary", default="/usr/bin/prometheus")
    up.add_argument("--scrape-interval", type=float, default=5.0, help="seconds")
    up.add_argument("--prometheus-start-timeout", type=float, default=60.0,
                    help="seconds to wait for Prometheus to be ready with a first successful scrape of every job "
                         "(raise it for 1,000-node clusters or long scrape intervals)")
    up.add_argument("--extra-target-file", default=None, help="file_sd file for job k3s-autoscaler (optional)")
    up.add_argument("--textfile-dir", default=None,
                    help="node-exporter textfile collector directory: its *.prom files are appended to /metrics and "
                         "/metrics/node-exporter (default <state-dir>/textfile)")
    up.add_argument("--join-seconds", type=float, default=10.0, help="seconds an instance runs before its Node joins")
    up.add_argument("--remove-grace", type=float, default=30.0, help="seconds a NotReady Node stays before removal")
    up.add_argument("--tick", type=float, default=1.0, help="seconds between simulation ticks")
    up.add_argument("--speed", type=float, default=0.0, help="override the scenario's speed (scenario s per real s)")
    up.add_argument("--ec2-store", default=None, help="mock-EC2 SQLite store (default <state-dir>/ec2.sqlite)")
    up.add_argument("--region", default=None, help="EC2 region (default: the scenario's)")
    up.add_argument("--token", default="local-demo-token", help="K3S_TOKEN that joining user_data must carry")
    up.add_argument("--node-group", default="default")
    up.add_argument("--cluster-name", default="local")
    up.set_defaults(func=cmd_up)
    st = sub.add_parser("status", help="print nodes and a pods summary")
    st.add_argument("--state-dir", default="run/local")
    st.set_defaults(func=cmd_status)
    dn = sub.add_parser("down", help="SIGTERM the running cluster and wait for it to exit")
    dn.add_argument("--state-dir", default="run/local")
    dn.add_argument("--timeout", type=float, default=30.0)
    dn.set_defaults(func=cmd_down)
    bn = sub.add_parser("bench", help="time a tick and a /metrics render at scale (virtual clock, no HTTP)")
    bn.add_argument("--nodes", type=int, default=1000)
    bn.add_argument("--pods", type=int, default=30000)
    bn.add_argument("--instance-type", default="m5.2xlarge")
    bn.add_argument("--no-store", action="store_true", help="pure in-memory (no Kubernetes API object store)")
    bn.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)
