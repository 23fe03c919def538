"""Start and stop ``python -m local_cluster up`` as a background process (shared by scripts/demo.py and
scripts/bench_cycle.py).

The local cluster writes ``<state dir>/cluster.json`` (API URL, kubeconfig, Prometheus URL, mock EC2 store, ...)
once it is ready; :func:`start_cluster` waits for that file and returns its contents. Its output goes to
``<state dir>/local_cluster.log``. The process runs in its own session so that :func:`stop_cluster` can kill
the whole group (Prometheus included) if SIGTERM is not enough.
"""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cluster(run_dir, scenario, timeout, extra_args=(), poll=0.5):
    """Start the local cluster with state dir ``run_dir`` and ``--scenario scenario`` (a name or a YAML path).

    ``extra_args``: more ``local_cluster up`` arguments (e.g. ``["--trace", path]``). A stale cluster.json
    from an earlier run is removed first, so only this process's file counts. Returns ``(proc, info)``
    (info: the parsed cluster.json). Raises SystemExit naming the log file if the process exits during
    start-up or is not ready after ``timeout`` seconds; in both cases nothing is left running.
    """
    cluster_json = os.path.join(run_dir, "cluster.json")
    if os.path.exists(cluster_json):
        os.unlink(cluster_json)
    cmd = [sys.executable, "-m", "local_cluster", "up", "--state-dir", run_dir, "--scenario", scenario]
    cmd += list(extra_args)
    log_path = os.path.join(run_dir, "local_cluster.log")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("local cluster exited with %s during start-up; see %s" % (proc.returncode, log_path))
        if os.path.exists(cluster_json):
            with open(cluster_json) as f:
                return proc, json.load(f)
        time.sleep(poll)
    stop_cluster(proc)
    raise SystemExit("local cluster not ready after %ss; see %s" % (timeout, log_path))


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
