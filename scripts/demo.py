#!/usr/bin/env python3
"""`make run`: the autoscaler's main job on the local simulated k3s cluster.

Starts the local cluster (emulated Kubernetes API, fake kubelet/scheduler, workload scenario, mock EC2,
kube-state-metrics-shaped /metrics scraped by a real Prometheus) in the background, then acts as the local
timer: it runs ``ansible-playbook playbooks/autoscale.yml`` every ``--interval`` seconds (the inventory's
``autoscale_check_interval``), prints one line per cycle, and ends with a summary table and a PNG chart of
nodes, desired nodes and pending pods over time with the decisions marked.

Everything started here is stopped on exit, on error and on Ctrl-C.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTOSCALER_VARS = os.path.join(ROOT, "inventories", "local", "group_vars", "k3s_clusters", "autoscaler.yml")


def log(msg):
    print(msg, flush=True)


def start_cluster(args, run_dir):
    """Start ``python -m local_cluster up`` and wait for its cluster.json (written once it is ready)."""
    cluster_json = os.path.join(run_dir, "cluster.json")
    if os.path.exists(cluster_json):
        os.unlink(cluster_json)
    cmd = [sys.executable, "-m", "local_cluster", "up", "--state-dir", run_dir, "--scenario", args.scenario]
    if args.trace:
        cmd += ["--trace", args.trace]
    log_path = os.path.join(run_dir, "local_cluster.log")
    logf = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + args.start_timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("local cluster exited with %s during start-up; see %s" % (proc.returncode, log_path))
        if os.path.exists(cluster_json):
            with open(cluster_json) as f:
                return proc, json.load(f)
        time.sleep(0.5)
    raise SystemExit("local cluster not ready after %ss; see %s" % (args.start_timeout, log_path))


def wait_for_usage_data(prometheus_url, timeout=90):
    """Prometheus needs two scrapes before the CPU idle rate exists; until then k3s_metrics (rightly) holds.

    Waits until every node-exporter host has a rate, so the first cycle decides on real data.
    """
    import requests
    query = 'count(rate(node_cpu_seconds_total{mode="idle"}[1m]))'
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            res = requests.get(prometheus_url + "/api/v1/query", params={"query": query}, timeout=5).json()
            if res.get("data", {}).get("result"):
                return True
        except (requests.RequestException, ValueError):
            pass
        time.sleep(1)
    return False


def stop(proc, timeout=20):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def scenario_duration(name):
    """The scenario's own length in seconds (its `duration:`), or None."""
    sys.path.insert(0, ROOT)
    from local_cluster.workloads import load_scenario
    try:
        return load_scenario(name).duration or None
    except Exception:  # the local cluster reports a bad scenario itself, with the known names
        return None


def cluster_observation(kubeconfig):
    """Nodes (Ready, excluding the control plane) and pending pods, read from the Kubernetes API."""
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    ready = 0
    for node in api.list_node().items:
        labels = node.metadata.labels or {}
        if "node-role.kubernetes.io/control-plane" in labels:
            continue
        if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])):
            ready += 1
    pending = [p for p in api.list_pod_for_all_namespaces(field_selector="status.phase=Pending").items
               if not any(o.kind == "DaemonSet" for o in (p.metadata.owner_references or []))]
    return ready, len(pending)


def read_textfile(path):
    """The run metrics the playbook exported (k3s.autoscaler.k3s_run_metrics)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for fam in text_string_to_metric_families(f.read()):
            for s in fam.samples:
                if s.name == "k3s_autoscaler_decision" and s.value == 1:
                    out["decision"] = s.labels["decision"]
                elif s.name in ("k3s_autoscaler_desired_nodes", "k3s_autoscaler_run_duration_seconds",
                                "k3s_autoscaler_last_run_timestamp_seconds"):
                    out[s.name[len("k3s_autoscaler_"):]] = s.value
    return out


def summary_line(output):
    """The role's one-line summary (debug msg), printed by the callback as a JSON string."""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "pending='):
            return json.loads(line[len('"msg": '):].rstrip(","))
    return None


def scenario_vars(info):
    """The scenario's node type and node bounds, as extra vars over the local inventory.

    Each scenario says which instance type its pods need (the trace's pods do not fit a t3.large) and the
    node bounds its story is told with (boundary starts at max_nodes). Thresholds and cooldowns stay the
    inventory's (inventories/local/group_vars/k3s_clusters/autoscaler.yml).
    """
    suggested = info.get("autoscaler") or {}
    out = {}
    itype = suggested.get("instance_type") or info.get("instance_type")
    if itype:
        out["autoscale_instance_type"] = itype
    for key in ("min_nodes", "max_nodes"):
        if suggested.get(key) is not None:
            out["autoscale_" + key] = int(suggested[key])
    return out


def run_cycle(env, check, extra_vars=None):
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/autoscale.yml"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return res, time.time() - t0


def chart(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    t = [r["t"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.step(t, [r["nodes"] for r in rows], where="post", label="nodes (Ready agents)", linewidth=2)
    ax.plot(t, [r["desired"] if r["desired"] is not None else float("nan") for r in rows], linestyle="none",
            marker="o", markersize=4, color="tab:orange", label="desired nodes (each run's decision)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.step(t, [r["pending"] for r in rows], where="post", color="tab:red", alpha=0.6, label="pending pods")
    ax2.set_ylabel("pending pods")
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylim(bottom=0)
    for r in rows:
        if r["decision"] == "scale_up":
            ax.annotate("up", (r["t"], r["nodes"]), xytext=(0, 12), textcoords="offset points", ha="center",
                        color="green", arrowprops=dict(arrowstyle="->", color="green"))
        elif r["decision"] == "scale_down":
            ax.annotate("down", (r["t"], r["nodes"]), xytext=(0, -18), textcoords="offset points", ha="center",
                        color="purple", arrowprops=dict(arrowstyle="->", color="purple"))
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("nodes")
    ax.set_title(title)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # below the axes, so it never hides the data
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=3, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    with open(AUTOSCALER_VARS) as f:
        inv = yaml.safe_load(f)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=os.environ.get("SCENARIO", "burst"))
    p.add_argument("--trace", default=os.environ.get("TRACE") or None, help="pod trace CSV for the trace scenario")
    p.add_argument("--interval", type=float, default=float(inv.get("autoscale_check_interval", 15)),
                   help="seconds between autoscale runs (default: inventory autoscale_check_interval)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run (default: the scenario's duration, else 360)")
    p.add_argument("--run-dir", default=os.path.join(ROOT, "run", "local"))
    p.add_argument("--out", default=os.path.join(ROOT, "out"))
    p.add_argument("--start-timeout", type=float, default=90)
    p.add_argument("--check", action="store_true", help="run the playbook in check mode (dry run)")
    args = p.parse_args(argv)

    os.makedirs(args.run_dir, mode=0o700, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    for stale in ("state.json", "ec2.sqlite", "textfile/k3s_autoscaler.prom"):
        path = os.path.join(args.run_dir, stale)
        if os.path.exists(path):
            os.unlink(path)
    env = dict(os.environ, LOCAL_CLUSTER_DIR=args.run_dir, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = None
    rows = []
    interrupted = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log("==> starting the local cluster (scenario %s)" % args.scenario)
        proc, info = start_cluster(args, args.run_dir)
        duration = args.duration or scenario_duration(args.scenario) or 360.0
        if info.get("prometheus_url"):
            log("==> waiting for Prometheus to have node CPU rates (two scrapes)")
            wait_for_usage_data(info["prometheus_url"])
        log("==> Kubernetes API %s, Prometheus %s, mock EC2 %s" % (
            info.get("api_url"), info.get("prometheus_url"), info.get("ec2_store")))
        extra = scenario_vars(info)
        if extra:
            log("==> scenario settings over the inventory: %s" % ", ".join("%s=%s" % kv for kv in sorted(extra.items())))
        log("==> running playbooks/autoscale.yml every %ss for %ss (Ctrl-C stops cleanly)" % (args.interval, duration))
        start = time.time()
        cycle = 0
        while time.time() - start < duration:
            cycle += 1
            t_cycle = time.time()
            res, took = run_cycle(env, args.check, extra)
            metrics = read_textfile(os.path.join(args.run_dir, "textfile", "k3s_autoscaler.prom"))
            nodes, pending = cluster_observation(info["kubeconfig"])
            line = summary_line(res.stdout) or ("playbook failed (rc=%s)" % res.returncode)
            decision = metrics.get("decision", "error") if res.returncode == 0 else "error"
            rows.append(dict(t=round(t_cycle - start, 1), cycle=cycle, nodes=nodes, pending=pending,
                             desired=metrics.get("desired_nodes"), decision=decision, rc=res.returncode,
                             seconds=round(took, 1)))
            log("[cycle %2d t=%5.0fs %4.1fs] %s" % (cycle, t_cycle - start, took, line))
            if res.returncode != 0:
                tail = (res.stdout + res.stderr).strip().splitlines()[-8:]
                log("    " + "\n    ".join(tail))
            time.sleep(max(0.0, args.interval - (time.time() - t_cycle)))
    except KeyboardInterrupt:
        interrupted = True
        log("==> interrupted; stopping")
    finally:
        stop(proc)
    if not rows:
        return 1
    ups = sum(1 for r in rows if r["decision"] == "scale_up")
    downs = sum(1 for r in rows if r["decision"] == "scale_down")
    errors = sum(1 for r in rows if r["rc"] != 0)
    log("\n%-8s %-8s %-7s %-8s %-8s %-11s %s" % ("cycle", "t(s)", "nodes", "desired", "pending", "decision", "run(s)"))
    for r in rows:
        log("%-8d %-8.0f %-7d %-8s %-8d %-11s %.1f" % (r["cycle"], r["t"], r["nodes"],
                                                    "-" if r["desired"] is None else int(r["desired"]),
                                                    r["pending"], r["decision"], r["seconds"]))
    png = os.path.join(args.out, "autoscale-%s.png" % args.scenario)
    chart(rows, png, "k3s-autoscaler on the local cluster: scenario %s" % args.scenario)
    with open(os.path.join(args.out, "autoscale-%s.json" % args.scenario), "w") as f:
        json.dump(rows, f, indent=1)
    log("\n==> %d cycles: %d scale_up, %d scale_down, %d failed runs; peak %d nodes; chart %s" % (
        len(rows), ups, downs, errors, max(r["nodes"] for r in rows), png))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
