"""Shared helpers for the issue-6 bad-input corpus, public-report and security tests.

* :class:`FakePrometheus` - a tiny HTTP server on 127.0.0.1 that poses as the Prometheus HTTP API
  (``/api/v1/query``). It recognises which k3s_metrics query (key of ``DEFAULT_QUERIES``) each
  request is and answers it from a healthy cluster (:func:`cluster_results`) unless a fault
  is set for that key (or for every key): a raw body, an HTTP status, a content type.
* :func:`run_tasks` - run several module tasks through REAL Ansible in ONE ``ansible-playbook``
  process (``-i localhost, -c local``), each with ``ignore_errors``, and return every task's
  result (the ``json`` stdout callback). One process keeps the corpus fast (~5 s for all).
* :func:`run_playbook` - ``ansible-playbook playbooks/autoscale.yml`` from the repository root
  (the local inventory) with JSON extra vars; returns (rc, stdout, stderr).
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
GIB = 1024 ** 3


def _queries(rate_window):
    from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import build_queries
    return build_queries(None, rate_window)


def sample(labels, value, ts=None):
    return {"metric": dict(labels), "value": [ts if ts is not None else time.time(), str(value)]}


def cluster_results(nodes=None, pending=0, cpu_percent=50.0, memory_percent=50.0, cordoned=(), age=2.0):
    """Healthy answers by query key for ``nodes`` worker nodes (names ``node-<i>``, EC2 ids
    ``i-0000000000000000<i>``, 2 cores / 8 GiB each, Ready) and ``pending`` Pending pods of
    0.5 cores / 512 MiB. ``cordoned``: node names with spec.unschedulable."""
    if nodes is None:
        nodes = 3
    names = ["node-%d" % i for i in range(nodes)]
    pods = ["web-%d" % i for i in range(pending)]
    r = {
        "nodes": [sample({"node": n, "provider_id": "aws:///us-east-1a/i-%017x" % (i + 1)}, 1)
                  for i, n in enumerate(names)],
        "freshness": [sample({}, age)],
        "node_role": [],
        "node_labels": [sample({"node": n, "label_node_kubernetes_io_instance_type": "t3.large"}, 1) for n in names],
        "node_ready": [sample({"node": n, "condition": "Ready", "status": "true"}, 1) for n in names],
        "node_unschedulable": [sample({"node": n}, 1 if n in cordoned else 0) for n in names],
        "node_allocatable": [sample({"node": n, "resource": res}, v) for n in names
                             for res, v in (("cpu", 2), ("memory", 8 * GIB))],
        "node_pods": [sample({"node": n}, 2) for n in names],
        "pending_pods": [sample({"namespace": "default", "pod": p}, 1) for p in pods],
        "unschedulable_pods": [sample({"namespace": "default", "pod": p}, 1) for p in pods],
        "pod_requests": [sample({"namespace": "default", "pod": p, "resource": res}, v) for p in pods
                         for res, v in (("cpu", 0.5), ("memory", 512 * 1024 * 1024))],
        "pod_owner": [sample({"namespace": "default", "pod": p, "owner_kind": "ReplicaSet"}, 1) for p in pods],
        "pod_age": [sample({"namespace": "default", "pod": p}, 600) for p in pods],
        "daemonset_requests": [],
        "node_cpu_percent": [sample({"nodename": n}, cpu_percent) for n in names],
        "node_memory_percent": [sample({"nodename": n}, memory_percent) for n in names],
    }
    return r


class FakePrometheus(object):
    """Poses as Prometheus on ``http://127.0.0.1:<free port>``.

    ``results``: ``{query key: list of series}`` (default :func:`cluster_results()`).
    ``faults``: ``{query key or "*": {"status": int, "body": str, "content_type": str}
    | {"result": [...]} | {"json": obj}}`` - a fault replaces the normal answer of that key.
    ``seen`` lists the query keys asked (``"?"`` for an unknown PromQL). ``auth`` lists the
    Authorization headers received.
    """

    def __init__(self, results=None, faults=None, rate_window="5m"):
        self.results = cluster_results() if results is None else results
        self.faults = dict(faults or {})
        self.by_promql = dict((v, k) for k, v in _queries(rate_window).items())
        self.seen = []
        self.auth = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, params):
                promql = (params.get("query") or [""])[0]
                key = fake.by_promql.get(promql, "?")
                fake.seen.append(key)
                fake.auth.append(self.headers.get("Authorization"))
                fault = fake.faults.get(key, fake.faults.get("*"))
                status, ctype = 200, "application/json"
                if fault is None or "result" in fault:
                    result = fake.results.get(key, []) if fault is None else fault["result"]
                    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
                elif "json" in fault:
                    body = json.dumps(fault["json"])
                    status = fault.get("status", 200)
                else:
                    status = fault.get("status", 200)
                    body = fault.get("body", "")
                    ctype = fault.get("content_type", "text/plain")
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server API
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                params = parse_qs(self.rfile.read(n).decode("utf-8"))
                params.update(parse_qs(urlparse(self.path).query))
                self._answer(params)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return "http://127.0.0.1:%d" % port


def ansible_env(**extra):
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    env.pop("ANSIBLE_INVENTORY", None)
    env.update(extra)
    return env


def run_tasks(tasks, timeout=300):
    """Run ``tasks`` (list of ``(module short name, args dict)``) in one ansible-playbook process on
    localhost through REAL Ansible. Returns the list of per-task results (dicts with ``failed``,
    ``msg``, ...), in order."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "case %d" % i, "k3s.autoscaler.%s" % mod: args, "ignore_errors": True}
        for i, (mod, args) in enumerate(tasks)]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=None, delete=False) as f:
        json.dump(play, f)
        path = f.name
    try:
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), path, "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % PYTHON]
        proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("ansible-playbook did not print JSON (rc=%s)\n%s\n%s"
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    results = [t["hosts"]["localhost"] for t in out["plays"][0]["tasks"]]
    assert len(results) == len(tasks), (len(results), len(tasks), proc.stderr[-2000:])
    return results


def run_playbook(extra_vars, args=(), env=None, timeout=300):
    """``ansible-playbook playbooks/autoscale.yml`` (local inventory, from the repo root) with
    ``extra_vars`` as JSON. Returns the CompletedProcess (stdout/stderr text)."""
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/autoscale.yml", "-e", json.dumps(extra_vars)]
    cmd.extend(args)
    e = ansible_env()
    e.update(env or {})
    return subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)


def mock_ec2(store):
    from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
    return MockEC2(store=store, region="us-east-1")


def active_instances(store):
    """Instances of the mock store that are pending or running."""
    if not os.path.exists(store):
        return []
    return [i for i in mock_ec2(store).list_instances() if i["state"]["name"] in ("pending", "running")]
