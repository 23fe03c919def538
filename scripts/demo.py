#!/usr/bin/env python3
"""`make run`: the autoscaler's main job on the local simulated k3s cluster.

Starts the local cluster (emulated Kubernetes API, fake kubelet/scheduler, workload scenario, mock EC2,
kube-state-metrics-shaped /metrics scraped by a real Prometheus) in the background, then acts as the local
timer: it runs ``ansible-playbook playbooks/autoscale.yml`` every ``--interval`` seconds (the inventory's
``autoscale_check_interval``), prints one line per cycle (plus one indented line naming the instances a
scale_up launched, or the node a scale_down drained with its instance_id and evicted pods, or why a run failed),
and ends with a summary table and a PNG chart with the decisions marked. The line, the table and the chart show
the same four figures under the same names (see LEGEND):

* ``nodes``: worker nodes the decision counted (Prometheus ``kube_node_info``, control plane excluded,
  NotReady/booting nodes included; from the role's summary line / ``k3s_autoscaler_current_nodes``);
* ``desired``: the decision's target for that count (``k3s_autoscaler_desired_nodes``);
* ``ready``: Ready worker nodes after the run (``GET /api/v1/nodes``);
* ``pending``: pending pods the decision counted (DaemonSet pods excluded).

Launched / drained nodes come from the state file's events of the run (``instance_ids``, ``node_names``);
evicted pods are the non-DaemonSet pods bound to the drained node before the run and gone after it
(``GET /api/v1/pods`` before and after). A failed run's full output goes to ``<run dir>/cycle-NN.log``; its
detail line quotes the failed task's message (see :func:`playbook_failure`).

A run that fails in the role's configuration checks (tasks "Validating arguments against arg spec", "Refuse
autoscale_* variables ...", "Preflight - ..."), on a template error of an inventory variable (e.g. no
cluster.json to read the Prometheus URL from) or before any task ran (vault, playbook parse error) stops
``make run`` at once with that message and exit code 2: the next cycle would fail the same way. Any other
failure (Prometheus hiccup, EC2 error) is shown and the loop goes on.

The run dir is ``--run-dir``, else ``$LOCAL_CLUSTER_DIR``, else ``run/local``. One ``make run`` per run dir:
it holds ``fcntl.flock`` on ``<run dir>/.make-run.lock`` for the whole run and a second one refuses at once.
The local cluster (``python -m local_cluster up``) starts from a clean run dir itself (it moves the previous
mock-EC2 store, state.json and run-metrics textfile to ``<run dir>/previous/``).

Everything started here is stopped on exit, on error and on Ctrl-C.
"""
import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml
from prometheus_client.parser import text_string_to_metric_families

from cluster_process import start_cluster, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTOSCALER_VARS = os.path.join(ROOT, "inventories", "local", "group_vars", "k3s_clusters", "autoscaler.yml")


def log(msg):
    print(msg, flush=True)


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


def scenario_duration(name):
    """The scenario's own length in seconds (its `duration:`), or None."""
    sys.path.insert(0, ROOT)
    from local_cluster.workloads import load_scenario
    try:
        return load_scenario(name).duration or None
    except Exception:  # the local cluster reports a bad scenario itself, with the known names
        return None


def kube_api(kubeconfig):
    """A CoreV1Api on the local cluster's kubeconfig (cluster.json ``kubeconfig``)."""
    from kubernetes import client, config
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


def _is_daemonset_or_mirror(pod):
    meta = pod.metadata
    return (any(o.kind == "DaemonSet" for o in (meta.owner_references or []))
            or "kubernetes.io/config.mirror" in (meta.annotations or {}))


def ready_worker_nodes(api):
    """Ready worker nodes (control plane excluded), from ``GET /api/v1/nodes``: the "ready nodes" figure."""
    ready = 0
    for node in api.list_node().items:
        if "node-role.kubernetes.io/control-plane" in (node.metadata.labels or {}):
            continue
        if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])):
            ready += 1
    return ready


def pods_by_node(api):
    """``{node name: set of "namespace/name"}`` of the pods bound to each node (``GET /api/v1/pods``).

    DaemonSet and mirror pods are left out (a drain does not evict them) and so are finished pods
    (phase Succeeded/Failed). Read before and after each run to name the pods a scale_down evicted.
    """
    out = {}
    for pod in api.list_pod_for_all_namespaces().items:
        node = pod.spec.node_name
        if not node or _is_daemonset_or_mirror(pod) or (pod.status.phase in ("Succeeded", "Failed")):
            continue
        out.setdefault(node, set()).add("%s/%s" % (pod.metadata.namespace, pod.metadata.name))
    return out


def read_textfile(path, since=None):
    """The run metrics the playbook exported (k3s.autoscaler.k3s_run_metrics), or {}.

    ``since`` (unix seconds): ignore the file unless its ``k3s_autoscaler_last_run_timestamp_seconds`` is at
    least that, so a run that failed before the export (or ran in check mode, which exports nothing) never
    shows the previous run's figures.
    """
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for fam in text_string_to_metric_families(f.read()):
            for s in fam.samples:
                if s.name == "k3s_autoscaler_decision" and s.value == 1:
                    out["decision"] = s.labels["decision"]
                elif s.name in ("k3s_autoscaler_desired_nodes", "k3s_autoscaler_current_nodes",
                                "k3s_autoscaler_pending_pods", "k3s_autoscaler_run_duration_seconds",
                                "k3s_autoscaler_last_run_timestamp_seconds"):
                    out[s.name[len("k3s_autoscaler_"):]] = s.value
    if since is not None and out.get("last_run_timestamp_seconds", float("-inf")) < since:
        return {}
    return out


_SUMMARY = re.compile(r'^pending=(?P<pending>\S+) nodes=(?P<nodes>\S+) cpu=(?P<cpu>\S+) memory=(?P<memory>\S+) '
                      r'decision=(?P<decision>[a-z_]+)(?P<count>[+-]\d+)?(?P<check> \(check mode: nothing changed\))?'
                      r' reason="(?P<reason>.*)"$')


def summary_line(output):
    """The role's one-line summary (its ``Summary`` debug msg, printed by the callback as a JSON string)."""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith('"msg": "pending=') or line.startswith('"msg": "skipped:'):
            return json.loads(line[len('"msg": '):].rstrip(","))
    return None


def _number(text):
    """'12' -> 12, '69.2%' -> 69.2, '?' -> None."""
    text = text.rstrip("%")
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text else value


def parse_summary(line):
    """The role's summary line as a dict: pending, nodes (ints or None for '?'), cpu, memory (percent 0-100
    or None), decision, count (int), check_mode, reason. ``skipped: ...`` (run lock held) gives
    ``{"decision": "skipped", "reason": ...}``; anything else None."""
    if not line:
        return None
    if line.startswith("skipped:"):
        return {"decision": "skipped", "reason": line}
    m = _SUMMARY.match(line)
    if not m:
        return None
    return {"pending": _number(m.group("pending")), "nodes": _number(m.group("nodes")),
            "cpu": _number(m.group("cpu")), "memory": _number(m.group("memory")),
            "decision": m.group("decision"), "count": abs(int(m.group("count") or 0)),
            "check_mode": bool(m.group("check")), "reason": m.group("reason")}


def state_events(state_file, since):
    """Events the state file (k3s.autoscaler state, schema version 1) recorded at or after ``since`` (unix s).

    Each is ``{"time", "direction": scale_up|scale_down|launch_failed|drain_failed, "count", "instance_ids",
    "node_names", "reason", ...}``. A missing or unreadable file gives [] (the run's own output says why).
    """
    try:
        with open(state_file) as f:
            events = json.load(f).get("events") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [ev for ev in events if isinstance(ev, dict) and isinstance(ev.get("time"), (int, float))
            and ev["time"] >= since]


def run_details(events, pods_before, pods_after):
    """What a run did, from its state-file events and the pods per node read before and after it.

    Returns ``{"launched": [instance_id], "removed": [{"node", "instance_id", "evicted": ["ns/name"]}],
    "drain_failed": [{"node", "reason"}], "launch_failed": [{"node_group", "error_code", "reason"}]}``.
    ``evicted``: the non-DaemonSet pods bound to the node before the run that are gone from it after the run.
    """
    out = {"launched": [], "removed": [], "drain_failed": [], "launch_failed": []}
    for ev in events:
        direction = ev.get("direction")
        if direction == "scale_up":
            out["launched"] += list(ev.get("instance_ids") or [])
        elif direction == "scale_down":
            names = list(ev.get("node_names") or [])
            ids = list(ev.get("instance_ids") or [])
            for i, node in enumerate(names):
                gone = sorted((pods_before.get(node) or set()) - (pods_after.get(node) or set()))
                out["removed"].append({"node": node, "instance_id": ids[i] if i < len(ids) else None,
                                       "evicted": gone})
        elif direction == "drain_failed":
            for node in ev.get("node_names") or []:
                out["drain_failed"].append({"node": node, "reason": ev.get("reason") or ""})
        elif direction == "launch_failed":
            out["launch_failed"].append({"node_group": ev.get("node_group"), "error_code": ev.get("error_code"),
                                         "reason": ev.get("reason") or ""})
    return out


def _shorten(text, limit=160):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def detail_line(row):
    """At most one indented line saying what the run did (nodes launched / drained, pods evicted) or why it
    failed; None when there is nothing to add."""
    parts = []
    if row.get("launched"):
        parts.append("launched %s" % ", ".join(row["launched"]))
    for r in row.get("removed") or []:
        evicted = r["evicted"]
        parts.append("cordoned and drained %s (%s, terminated), evicted %d pod%s%s" % (
            r["node"], r["instance_id"] or "instance_id ?", len(evicted), "" if len(evicted) == 1 else "s",
            (": " + ", ".join(evicted)) if evicted else ""))
    for r in row.get("drain_failed") or []:
        parts.append("drain of %s failed, node uncordoned: %s" % (r["node"], _shorten(r["reason"], 120)))
    for r in row.get("launch_failed") or []:
        parts.append("launch in node group %s failed (%s)" % (r["node_group"], r["error_code"] or "no error code"))
    if row.get("rc"):
        task = (' in task "%s"' % _shorten(row["failed_task"], 60)) if row.get("failed_task") else ""
        parts.append("run failed (rc=%s)%s: %s; full output %s" % (
            row["rc"], task, _shorten(row.get("error") or "?", 200), row.get("log") or "-"))
    return ("    " + "; ".join(parts)) if parts else None


def _fmt(value, spec="%d"):
    return "?" if value is None else spec % value


def cycle_line(row):
    """The per-cycle line; its figures are the table's columns and the chart's series (same names)."""
    decision = row["decision"]
    if decision in ("scale_up", "scale_down") and row.get("count"):
        decision += ("+%d" if decision == "scale_up" else "-%d") % row["count"]
    return ("[cycle %2d t=%5.0fs %4.1fs] %-13s nodes=%s desired=%s ready=%s pending=%s cpu=%s memory=%s%s "
            'reason="%s"' % (row["cycle"], row["t"], row["seconds"], decision, _fmt(row["nodes"]),
                             _fmt(row["desired"]), _fmt(row["ready"]), _fmt(row["pending"]),
                             _fmt(row.get("cpu"), "%.1f%%"), _fmt(row.get("memory"), "%.1f%%"),
                             " (check mode: nothing changed)" if row.get("check_mode") else "",
                             row.get("reason") or "-"))


LEGEND = ("nodes = worker nodes the decision counted (Prometheus kube_node_info, NotReady/booting included); "
          "desired = the decision's target for that count; ready = Ready worker nodes after the run (Kubernetes "
          "API); pending = pending pods the decision counted (DaemonSet pods excluded)")

TABLE_FMT = "%-6s %-6s %-7s %-11s %-6s %-8s %-6s %-8s %s"


def table_lines(rows):
    out = [TABLE_FMT % ("cycle", "t(s)", "run(s)", "decision", "nodes", "desired", "ready", "pending",
                        "launched / drained")]
    for r in rows:
        what = list(r.get("launched") or []) + ["%s (%s)" % (x["node"], x["instance_id"])
                                                for x in r.get("removed") or []]
        out.append(TABLE_FMT % (r["cycle"], "%.0f" % r["t"], "%.1f" % r["seconds"], r["decision"],
                                _fmt(r["nodes"]), _fmt(r["desired"]), _fmt(r["ready"]), _fmt(r["pending"]),
                                ", ".join(what) or "-"))
    return out


# Tasks of the role that check its configuration before anything else: a failure there repeats every cycle.
CONFIG_TASKS = ("Validating arguments against arg spec", "Refuse autoscale_* variables", "Preflight - ")
_TASK = re.compile(r"^TASK \[(?P<name>.*)\] \**$")
_RESULT = re.compile(r"^(?:fatal: \[[^\]]*\]: FAILED!|failed: \[[^\]]*\] \(item=.*\)) => (?P<json>.*)$")
_ORIGIN = re.compile(r"^Origin: (?P<path>[^<]\S*?)(?::\d+){0,2}$")
_PREFIXES = ("Task failed: ", "Action failed: ", "Module failed: ")
_INVENTORY_PATH = re.compile(r"(^|/)(inventories|group_vars|host_vars)/")


def _strip_prefixes(text):
    text = " ".join(str(text).split())
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if text.startswith(p):
                text, changed = text[len(p):], True
    return text


def _result_json(first, rest):
    """The JSON object after ``=>``: on the line itself (json result format) or spread over the next lines
    (pretty-printed). Returns (dict or None, lines consumed after the first)."""
    try:
        return json.loads(first), 0
    except ValueError:
        pass
    buf = first
    for i, line in enumerate(rest[:400]):
        buf += "\n" + line
        if line.startswith("}"):
            try:
                return json.loads(buf), i + 1
            except ValueError:
                pass
    return None, 0


def _result_message(result):
    if not isinstance(result, dict):
        return None
    msg = result.get("msg")
    if msg and msg != "One or more items failed":
        return _strip_prefixes(msg)
    for key in ("stderr", "module_stderr", "exception"):
        tail = [x for x in str(result.get(key) or "").splitlines() if x.strip()]
        if tail:
            return _strip_prefixes(tail[-1])
    return None


def playbook_failure(rc, stdout, stderr=""):
    """Why an ``ansible-playbook`` run failed, from its default-callback output as ``make run`` captures it
    (``ANSIBLE_CALLBACK_RESULT_FORMAT=json``: ``fatal: [host]: FAILED! => {...}`` per failed task, ``failed:
    [host] (item=...) => {...}`` per failed loop item, each after an ``[ERROR]: Task failed: ...`` block whose
    ``Origin:`` lines name the task file and, for a template error, the variable's file).

    Returns None for rc 0, else ``{"task": name of the failed task without its role prefix, or None,
    "msg": the failed result's ``msg`` (loop items joined by "; ") on one line, else the last ``[ERROR]:``
    text, else the last stderr line, or None, "config": bool}``. The failure taken is the last one not
    followed by ``...ignoring`` (a rescued failure is followed by the one that failed the run).

    ``config`` is True when the next cycle cannot succeed either: the task is one of :data:`CONFIG_TASKS`,
    an ``Origin:`` of its error is an inventory file (``inventories/``, ``group_vars/``, ``host_vars/``: a
    template error of an inventory variable), or no task ran at all and ansible-playbook exited 1, 4 or 5
    (vault, inventory or playbook parse errors, bad options).
    """
    if rc == 0:
        return None
    lines = stdout.splitlines()
    task, task_seen, origins, errors = None, False, [], []
    failures = []  # [{"task", "msgs", "origins", "open"}], one per failed task (a loop's items share one)
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        task_header = _TASK.match(line)
        result = _RESULT.match(line)
        if task_header:
            task, task_seen, origins = task_header.group("name").split(" : ", 1)[-1].strip(), True, []
            if failures:
                failures[-1]["open"] = False
        elif line.startswith("[ERROR]: "):
            errors.append(_strip_prefixes(line[len("[ERROR]: "):]))
        elif _ORIGIN.match(line):
            origins.append(_ORIGIN.match(line).group("path"))
        elif result:
            data, used = _result_json(result.group("json"), lines[i + 1:])
            i += used
            msg = _result_message(data) if data is not None else _strip_prefixes(result.group("json"))
            if failures and failures[-1]["open"]:
                failures[-1]["msgs"].append(msg)
                failures[-1]["origins"] = list(origins)
            else:
                failures.append({"task": task, "msgs": [msg], "origins": list(origins), "open": True})
        elif line.strip() == "...ignoring" and failures:
            failures.pop()
        i += 1
    stderr_errors = [_strip_prefixes(x[len("[ERROR]: "):]) for x in stderr.splitlines() if x.startswith("[ERROR]: ")]
    if failures:
        f = failures[-1]
        msgs = [x for x in f["msgs"] if x]
        msg = "; ".join(dict.fromkeys(msgs)) or (errors[-1] if errors else None)
        config = (any(f["task"] and f["task"].startswith(c) for c in CONFIG_TASKS)
                  or any(_INVENTORY_PATH.search(o) for o in f["origins"]))
        return {"task": f["task"], "msg": msg, "config": bool(config)}
    tail = [x.strip() for x in stderr.splitlines() if x.strip()]
    msg = (stderr_errors or errors or [None])[-1] or (_strip_prefixes(tail[-1]) if tail else None)
    return {"task": None, "msg": msg, "config": (not task_seen) and rc in (1, 4, 5)}


def failure_message(res):
    """The failed task's message on one line (see :func:`playbook_failure`), or None."""
    failure = playbook_failure(res.returncode or 1, res.stdout, res.stderr)
    return failure["msg"] if failure else None


def build_row(cycle, t, took, res, summary, textfile, ready, details, log_path=None):
    """One cycle's figures: decision inputs/outputs from the role's summary line and this run's textfile,
    ``ready`` from the API after the run, ``details`` from :func:`run_details`. Unknown figures are None."""
    s = summary or {}
    decision = s.get("decision") or textfile.get("decision") or "error"
    if res.returncode != 0:
        decision = "error"
    nodes = s.get("nodes", textfile.get("current_nodes"))
    pending = s.get("pending", textfile.get("pending_pods"))
    desired = textfile.get("desired_nodes")
    row = dict(cycle=cycle, t=round(t, 1), seconds=round(took, 1), rc=res.returncode, decision=decision,
               count=s.get("count", 0), nodes=None if nodes is None else int(nodes),
               desired=None if desired is None else int(desired), ready=ready,
               pending=None if pending is None else int(pending), cpu=s.get("cpu"), memory=s.get("memory"),
               check_mode=s.get("check_mode", False), reason=s.get("reason"))
    row.update(details)
    if res.returncode != 0:
        failure = playbook_failure(res.returncode, res.stdout, res.stderr)
        row["error"] = failure["msg"]
        row["failed_task"] = failure["task"]
        row["config_error"] = failure["config"]
        row["log"] = log_path
    return row


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


SERIES = {
    "nodes": "nodes: worker nodes the decision counted (kube_node_info, NotReady/booting included)",
    "desired": "desired: the decision's target for nodes",
    "ready": "ready: Ready worker nodes after the run (Kubernetes API)",
    "pending": "pending: pending pods the decision counted",
}


def chart(rows, path, title):
    """PNG of the rows: the table's nodes / desired / ready / pending columns over time, decisions marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def series(key):
        return [float("nan") if r[key] is None else r[key] for r in rows]

    t = [r["t"] for r in rows]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    ax.step(t, series("ready"), where="post", label=SERIES["ready"], linewidth=2.5, color="tab:blue")
    ax.step(t, series("nodes"), where="post", label=SERIES["nodes"], linewidth=1.5, linestyle="--",
            color="tab:gray")
    ax.plot(t, series("desired"), linestyle="none", marker="o", markersize=5, color="tab:orange",
            label=SERIES["desired"])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.step(t, series("pending"), where="post", color="tab:red", alpha=0.6, label=SERIES["pending"])
    ax2.set_ylabel("pending pods")
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylim(bottom=0)
    for r in rows:
        if r["nodes"] is None or r["decision"] not in ("scale_up", "scale_down"):
            continue
        up = r["decision"] == "scale_up"
        label = ("up +%d" if up else "down -%d") % r.get("count", 0)
        color = "green" if up else "purple"
        ax.annotate(label, (r["t"], r["nodes"]), xytext=(0, 14 if up else -20), textcoords="offset points",
                    ha="center", color=color, arrowprops=dict(arrowstyle="->", color=color))
    ax.set_xlabel("seconds since start (each point: one autoscale run)")
    ax.set_ylabel("nodes")
    ax.set_title(title)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # below the axes, so it never hides the data
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=2, frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


LOCK_NAME = ".make-run.lock"


def take_run_lock(run_dir):
    """Exclusive ``fcntl.flock`` on ``<run_dir>/.make-run.lock`` (our pid written in it), held until the process
    exits; returns its file descriptor. A second ``make run`` on the same run dir would delete the first one's
    state and autoscale the wrong cluster, so it raises SystemExit at once naming the holder's pid."""
    sys.path.insert(0, ROOT)
    from local_cluster.pidlock import try_pid_lock
    fd, holder = try_pid_lock(os.path.join(run_dir, LOCK_NAME))
    if fd is None:
        raise SystemExit("another make run is active in this checkout (pid %s, run dir %s); stop it first (Ctrl-C) "
                         "or use LOCAL_CLUSTER_DIR=<another dir> make run" % (holder, run_dir))
    return fd


def scenario_has_trace(name):
    """True/False: the scenario (name or YAML path) replays a trace (its ``trace:`` section); None if it does
    not load (the local cluster then reports why, with the known names)."""
    sys.path.insert(0, ROOT)
    from local_cluster.workloads import load_scenario
    try:
        return load_scenario(name).trace is not None
    except Exception:
        return None


def config_stop_message(row):
    """What ``make run`` prints when a run failed in the role's configuration checks (``row["config_error"]``)."""
    where = ('task "%s"' % row["failed_task"]) if row.get("failed_task") else "ansible-playbook, before any task ran"
    return ("==> stopping: the autoscale run failed in its configuration checks (%s); every later cycle would fail "
            "the same way:\n    %s\n    Fix it (inventories/local/group_vars/k3s_clusters/*.yml, or the scenario's "
            "settings) and start make run again. Full output: %s" % (
                where, row.get("error") or "(no message; see the full output)", row.get("log") or "-"))


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
    p.add_argument("--run-dir", default=os.environ.get("LOCAL_CLUSTER_DIR") or os.path.join(ROOT, "run", "local"),
                   help="the local cluster's state dir (default: $LOCAL_CLUSTER_DIR, else run/local); one make run "
                        "per run dir")
    p.add_argument("--out", default=os.path.join(ROOT, "out"))
    p.add_argument("--start-timeout", type=float, default=90)
    p.add_argument("--check", action="store_true", help="run the playbook in check mode (dry run)")
    args = p.parse_args(argv)
    args.run_dir = os.path.abspath(os.path.join(ROOT, args.run_dir))
    if args.trace and scenario_has_trace(args.scenario) is False:
        raise SystemExit("TRACE=%s only applies to SCENARIO=trace (a trace replay), not SCENARIO=%s: run `make run "
                         "SCENARIO=trace TRACE=%s`, or drop TRACE" % (args.trace, args.scenario, args.trace))

    os.makedirs(args.run_dir, mode=0o700, exist_ok=True)
    lock_fd = take_run_lock(args.run_dir)  # noqa: F841 - held until exit
    os.makedirs(args.out, exist_ok=True)
    # the previous run's state.json, ec2.sqlite and textfile: `local_cluster up` moves them aside itself
    for path in glob.glob(os.path.join(args.run_dir, "cycle-*.log")):
        os.unlink(path)
    env = dict(os.environ, LOCAL_CLUSTER_DIR=args.run_dir, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = None
    rows = []
    interrupted = False
    fatal = None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log("==> starting the local cluster (scenario %s)" % args.scenario)
        proc, info = start_cluster(args.run_dir, args.scenario, args.start_timeout,
                                   ["--trace", args.trace] if args.trace else [])
        duration = args.duration or scenario_duration(args.scenario) or 360.0
        if info.get("prometheus_url"):
            log("==> waiting for Prometheus to have node CPU rates (two scrapes)")
            wait_for_usage_data(info["prometheus_url"])
        log("==> Kubernetes API %s, Prometheus %s, mock EC2 %s" % (
            info.get("api_url"), info.get("prometheus_url"), info.get("ec2_store")))
        extra = scenario_vars(info)
        if extra:
            log("==> scenario settings over the inventory: %s"
                % ", ".join("%s=%s" % kv for kv in sorted(extra.items())))
        log("==> running playbooks/autoscale.yml every %ss for %ss (Ctrl-C stops cleanly)" % (args.interval, duration))
        api = kube_api(info["kubeconfig"])
        state_file = os.path.join(args.run_dir, "state.json")
        textfile = os.path.join(args.run_dir, "textfile", "k3s_autoscaler.prom")
        log("==> per cycle: " + LEGEND)
        start = time.time()
        cycle = 0
        while time.time() - start < duration:
            cycle += 1
            t_cycle = time.time()
            pods_before = pods_by_node(api)
            res, took = run_cycle(env, args.check, extra)
            log_path = None
            if res.returncode != 0:
                log_path = os.path.join(args.run_dir, "cycle-%02d.log" % cycle)
                with open(log_path, "w") as f:
                    f.write(res.stdout + res.stderr)
            details = run_details(state_events(state_file, t_cycle), pods_before, pods_by_node(api))
            row = build_row(cycle, t_cycle - start, took, res, parse_summary(summary_line(res.stdout)),
                            read_textfile(textfile, since=t_cycle), ready_worker_nodes(api), details,
                            os.path.relpath(log_path, ROOT) if log_path else None)
            rows.append(row)
            log(cycle_line(row))
            detail = detail_line(row)
            if detail:
                log(detail)
            if row.get("config_error"):
                fatal = row
                break
            time.sleep(max(0.0, args.interval - (time.time() - t_cycle)))
    except KeyboardInterrupt:
        interrupted = True
        log("==> interrupted; stopping")
    finally:
        stop_cluster(proc)
    if fatal is not None and not any(r["rc"] == 0 for r in rows):
        log(config_stop_message(fatal))
        return 2
    if not rows:
        return 1
    ups = sum(1 for r in rows if r["decision"] == "scale_up")
    downs = sum(1 for r in rows if r["decision"] == "scale_down")
    errors = sum(1 for r in rows if r["rc"] != 0)
    log("\n" + LEGEND)
    log("\n".join(table_lines(rows)))
    png = os.path.join(args.out, "autoscale-%s.png" % args.scenario)
    tmp = "%s.tmp.%d.png" % (png, os.getpid())  # written whole, then renamed: a reader never sees half a file
    chart(rows, tmp, "k3s-autoscaler on the local cluster: scenario %s" % args.scenario)
    os.replace(tmp, png)
    out_json = os.path.join(args.out, "autoscale-%s.json" % args.scenario)
    with open(out_json + ".tmp.%d" % os.getpid(), "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(out_json + ".tmp.%d" % os.getpid(), out_json)
    ready = [r["ready"] for r in rows if r["ready"] is not None]
    log("\n==> %d cycles: %d scale_up, %d scale_down, %d failed runs; peak %s Ready worker nodes; chart %s" % (
        len(rows), ups, downs, errors, max(ready) if ready else "?", png))
    if fatal is not None:
        log(config_stop_message(fatal))
        return 2
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
