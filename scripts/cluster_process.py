"""Start and stop ``python -m local_cluster up`` as a background process (shared by scripts/demo.py and
scripts/bench_cycle.py).

The local cluster writes ``<state dir>/cluster.json`` (API URL, kubeconfig, Prometheus URL, mock EC2 store, ...)
once it is ready; :func:`start_cluster` waits for that file (with this process's ``pid``) and returns its
contents. Its output goes to ``<state dir>/local_cluster.log``; when it exits during start-up, the error lines
of that log are part of the message. The process runs in its own session so that :func:`stop_cluster` can kill
the whole group (Prometheus included) if SIGTERM is not enough.

The state dir's previous contents (mock-EC2 store, state.json, run-metrics textfile, stale cluster.json) are
the business of ``local_cluster up`` itself: it moves them to ``<state dir>/previous/`` (see local_cluster/cli.py
``fresh_state``) and refuses to start while another ``up`` holds the same state dir.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cluster(run_dir, scenario, timeout, extra_args=(), poll=0.5):
    """Start the local cluster with state dir ``run_dir`` and ``--scenario scenario`` (a name or a YAML path).

    ``extra_args``: more ``local_cluster up`` arguments (e.g. ``["--trace", path]``). Only a cluster.json
    whose ``pid`` is the started process counts (a stale one from an earlier run is ignored; ``up`` removes
    it). Returns ``(proc, info)`` (info: the parsed cluster.json). Raises SystemExit if the process exits
    during start-up (the message quotes the log's error lines, see :func:`log_error_lines`) or is not ready
    after ``timeout`` seconds; in both cases nothing is left running.
    """
    cluster_json = os.path.join(run_dir, "cluster.json")
    cmd = [sys.executable, "-m", "local_cluster", "up", "--state-dir", run_dir, "--scenario", scenario]
    cmd += list(extra_args)
    log_path = os.path.join(run_dir, "local_cluster.log")
    os.makedirs(run_dir, exist_ok=True)
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("local cluster exited with %s during start-up:\n%s\n(full log: %s)" % (
                proc.returncode, _indent(log_error_lines(log_path)), log_path))
        info = _read_info(cluster_json)
        if info is not None and info.get("pid") == proc.pid:
            return proc, info
        time.sleep(poll)
    stop_cluster(proc)
    raise SystemExit("local cluster not ready after %ss; its last log lines:\n%s\n(full log: %s)" % (
        timeout, _indent(log_error_lines(log_path)), log_path))


def _read_info(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # not written yet (it is written atomically, but may be a stale one's leftovers)
        return None


_ERROR_LINE = re.compile(r"error|exception|fatal|failed|not found|refused|denied", re.IGNORECASE)


def log_error_lines(log_path, limit=3, tail=5):
    """The lines of the local cluster's log that say why it stopped: the last ``limit`` unindented lines that
    mention an error (a traceback's frames and source lines are indented and skipped; its last line, the
    exception and message, is not), else the last ``tail`` non-empty lines. ``["(log is empty)"]`` or
    ``["(no log: ...)"]`` when there is nothing to show."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [x.rstrip() for x in f if x.strip()]
    except OSError as exc:
        return ["(no log: %s)" % exc]
    if not lines:
        return ["(log is empty)"]
    errors = [x for x in lines if not x[:1].isspace() and _ERROR_LINE.search(x)]
    return errors[-limit:] if errors else lines[-tail:]


def _indent(lines):
    return "\n".join("    " + x for x in lines)


def stop_cluster(proc, timeout=20):
    """SIGTERM the local cluster, wait up to ``timeout`` seconds, then SIGKILL its process group."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
