"""Helpers for the end-to-end tests of the main job (issue 3, acceptance 2).

The REAL stack, as a user drives it: ``python -m local_cluster up`` (emulated Kubernetes API, fake
kubelet/scheduler, mock EC2, real ``/usr/bin/prometheus``) as a subprocess per scenario, then
``ansible-playbook playbooks/autoscale.yml`` as a subprocess from the repository root with
``LOCAL_CLUSTER_DIR`` pointing at that cluster's state dir and JSON ``-e`` overrides.

Outcomes are read from the Kubernetes API (python client and ``kubectl``), the mock-EC2 store
(``MockEC2.list_instances()``), the state file, the run-metrics textfile and the playbook output
(the ``ansible.posix.json`` stdout callback, so task order and every registered result are exact).
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
ANSIBLE_PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
PROMETHEUS = "/usr/bin/prometheus"
SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")

# Small, fast timings for the simulated cluster (seconds).
JOIN_SECONDS = 2
BOOT_SECONDS = 2
SCRAPE_INTERVAL = 1
TICK = 0.5
REMOVE_GRACE = 5

DAEMONSET = "DaemonSet"
GONE = ("shutting-down", "terminated")  # EC2 state.name of a terminated instance


def wait_for(predicate, timeout, what, interval=0.25):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what`` and the last value/exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - not ready yet; reported on timeout
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s; last: %r" % (timeout, what, last))
        time.sleep(interval)


def prom_query(prom_url, query):
    url = prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _mock_ec2_class():
    from ansible_collections.k3s.autoscaler.plugins.module_utils.ec2_mock import MockEC2
    return MockEC2


class PlaybookRun:
    """One ``ansible-playbook playbooks/autoscale.yml`` run, parsed from the json stdout callback."""

    def __init__(self, cmd, proc):
        self.cmd = cmd
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.data = json.loads(self.stdout[self.stdout.index("{"):])
        except ValueError:
            self.data = None

    def __repr__(self):
        return "<PlaybookRun rc=%s decision=%s>" % (self.rc, self.decision.get("decision") if self.data else "?")

    def describe(self):
        return "cmd: %s\nrc: %s\nstdout (tail):\n%s\nstderr (tail):\n%s" % (
            " ".join(self.cmd), self.rc, self.stdout[-4000:], self.stderr[-2000:])

    @property
    def tasks(self):
        """[(task name, result for host 'local')] in execution order."""
        out = []
        for play in (self.data or {}).get("plays", []):
            for t in play.get("tasks", []):
                # "k3s.autoscaler.autoscale : Decide" -> "Decide"
                out.append((t["task"]["name"].split(" : ", 1)[-1], t["hosts"].get("local", {})))
        return out

    @property
    def task_names(self):
        return [name for name, _res in self.tasks]

    def result(self, name_prefix):
        """The result of the last task whose name starts with ``name_prefix`` (None if it did not run)."""
        found = None
        for name, res in self.tasks:
            if name.startswith(name_prefix):
                found = res
        return found

    def ran(self, name_prefix):
        res = self.result(name_prefix)
        return res is not None and not res.get("skipped")

    @property
    def decision(self):
        """The k3s_scale_decision result (``decision``, ``count``, ``reason``, ``blocked_by``, ``candidates``,
        ``desired_nodes``, ...)."""
        res = self.result("Decide")
        assert res is not None, "the Decide task did not run\n" + self.describe()
        return res

    @property
    def summary(self):
        res = self.result("Summary")
        return res.get("msg") if res else None

    @property
    def stats(self):
        return (self.data or {}).get("stats", {}).get("local", {})


class Cluster:
    """A running ``python -m local_cluster up`` (one scenario, its own state dir, real Prometheus)."""

    def __init__(self, scenario, base_dir):
        self.scenario = scenario
        self.base_dir = str(base_dir)
        self.state_dir = os.path.join(self.base_dir, "cluster")
        self.log_path = os.path.join(self.base_dir, "local_cluster.log")
        self.proc = None
        self.info = None
        self.runs = []
        self._ec2 = None
        self._core = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self):
        scenario = self.scenario
        own = os.path.join(SCENARIO_DIR, scenario + ".yaml")
        if os.path.exists(own):
            scenario = own
        cmd = [sys.executable, "-m", "local_cluster", "up", "--state-dir", self.state_dir, "--scenario", scenario,
               "--join-seconds", str(JOIN_SECONDS), "--scrape-interval", str(SCRAPE_INTERVAL), "--tick", str(TICK),
               "--remove-grace", str(REMOVE_GRACE)]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout=90):
        """cluster.json written, then Prometheus has a CPU rate for every node (else the playbook holds)."""
        path = os.path.join(self.state_dir, "cluster.json")

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("local_cluster exited with %s; log:\n%s" % (self.proc.returncode, self.log()))
            return os.path.exists(path) and json.load(open(path))

        self.info = wait_for(ready, timeout, "%s: cluster.json" % self.scenario)
        prom = self.info["prometheus_url"]
        assert prom, "the local cluster runs without Prometheus: %r" % self.info

        def rates_for_all_nodes():
            nodes = {s["metric"]["node"] for s in prom_query(prom, "kube_node_info")}
            rated = {s["metric"]["nodename"] for s in prom_query(
                prom, 'rate(node_cpu_seconds_total{mode="idle"}[1m]) * on(instance) group_left(nodename) '
                      'node_uname_info')}
            return nodes and nodes <= rated

        wait_for(rates_for_all_nodes, timeout, "%s: Prometheus CPU rate for every node" % self.scenario)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    # -- paths -----------------------------------------------------------------------------------
    @property
    def state_file(self):
        return os.path.join(self.state_dir, "state.json")

    @property
    def textfile(self):
        return os.path.join(self.state_dir, "textfile", "k3s_autoscaler.prom")

    @property
    def kubeconfig(self):
        return self.info["kubeconfig"]

    def read_state(self):
        with open(self.state_file) as f:
            return json.load(f)

    def read_textfile(self):
        """{(sample name, frozenset(labels)): value} from the run-metrics textfile."""
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        with open(self.textfile) as f:
            for fam in text_string_to_metric_families(f.read()):
                for s in fam.samples:
                    out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def textfile_decision(self):
        taken = [dict(lbl)["decision"] for (name, lbl), v in self.read_textfile().items()
                 if name == "k3s_autoscaler_decision" and v == 1]
        assert len(taken) == 1, taken
        return taken[0]

    # -- the playbook ----------------------------------------------------------------------------
    def playbook(self, extra_vars=None, check=False, timeout=180):
        """Run the main job against this cluster; returns a PlaybookRun (rc not asserted here)."""
        ev = {"autoscale_ec2_mock": {"store": self.info["ec2_store"], "boot_seconds": BOOT_SECONDS}}
        ev.update(extra_vars or {})
        cmd = [ANSIBLE_PLAYBOOK, "playbooks/autoscale.yml", "-e", json.dumps(ev)]
        if check:
            cmd.append("--check")
        env = dict(os.environ, LOCAL_CLUSTER_DIR=self.state_dir, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        run = PlaybookRun(cmd, proc)
        self.runs.append(run)
        assert run.data is not None, "playbook output is not the json callback's\n" + run.describe()
        return run

    # -- EC2 and Kubernetes ----------------------------------------------------------------------
    def ec2(self):
        if self._ec2 is None:
            self._ec2 = _mock_ec2_class()(store=self.info["ec2_store"], region=self.info["region"],
                                          boot_seconds=BOOT_SECONDS)
        return self._ec2

    def instances(self):
        """{instance_id: instance dict} of every instance in the store (all states)."""
        return {i["instance_id"]: i for i in self.ec2().list_instances()}

    def running_ids(self):
        return {iid for iid, i in self.instances().items() if i["state"]["name"] == "running"}

    def core(self):
        if self._core is None:
            from kubernetes import client, config
            self._core = client.CoreV1Api(config.new_client_from_config(config_file=self.kubeconfig))
        return self._core

    def nodes(self):
        return self.core().list_node().items

    def agent_nodes(self):
        return [n for n in self.nodes() if (n.spec.provider_id or "").startswith("aws:///")]

    def pods(self):
        return self.core().list_pod_for_all_namespaces().items

    def workload_pods(self):
        """Pods not owned by a DaemonSet."""
        return [p for p in self.pods()
                if not any(o.kind == DAEMONSET for o in (p.metadata.owner_references or []))]

    def pending_pods(self):
        return [p for p in self.workload_pods() if p.status.phase == "Pending"]

    def kubectl_nodes(self):
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl not on PATH"
        out = subprocess.run([kubectl, "--kubeconfig", self.kubeconfig, "get", "nodes", "-o", "json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["items"]


PROVIDER_ID = re.compile(r"^aws:///(?P<az>[a-z0-9-]+)/(?P<id>i-[0-9a-f]+)$")


def provider_instance(provider_id):
    """``aws:///<az>/<instance_id>`` -> (az, instance_id), else None."""
    m = PROVIDER_ID.match(provider_id or "")
    return (m.group("az"), m.group("id")) if m else None


class Watcher:
    """Background poller of (EC2 store, Nodes, Pods) snapshots while a playbook runs, so the test can say
    what the node looked like at the moment its instance left ``running``."""

    def __init__(self, cluster, interval=0.1):
        self.cluster = cluster
        self.interval = interval
        self.snapshots = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _snap(self):
        from kubernetes import client, config
        if not hasattr(self, "_api"):
            self._api = client.CoreV1Api(config.new_client_from_config(config_file=self.cluster.kubeconfig))
            self._ec2 = _mock_ec2_class()(store=self.cluster.info["ec2_store"], region=self.cluster.info["region"],
                                          boot_seconds=BOOT_SECONDS)
        states = {i["instance_id"]: i["state"]["name"] for i in self._ec2.list_instances()}
        nodes = {}
        for n in self._api.list_node().items:
            pi = provider_instance(n.spec.provider_id)
            nodes[n.metadata.name] = {"instance_id": pi[1] if pi else None,
                                      "unschedulable": bool(n.spec.unschedulable)}
        pods = {}
        for p in self._api.list_pod_for_all_namespaces().items:
            if any(o.kind == DAEMONSET for o in (p.metadata.owner_references or [])):
                continue
            if p.spec.node_name:
                pods.setdefault(p.spec.node_name, []).append(p.metadata.name)
        # EC2 read again after the Kubernetes reads: a node seen cordoned+empty above while the instance is
        # still running in this second read was cordoned+empty BEFORE the instance left running.
        states_after = {i["instance_id"]: i["state"]["name"] for i in self._ec2.list_instances()}
        return {"t": time.time(), "ec2_before": states, "ec2_after": states_after, "nodes": nodes, "pods": pods}

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.snapshots.append(self._snap())
            except Exception as exc:  # noqa: BLE001 - recorded, asserted empty by the test
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        wait_for(lambda: self.snapshots or self.errors, 30, "the first watcher snapshot")
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)
        return False


def assert_cordon_drain_then_terminate(c, run, watcher):
    """The scale_down of ``run`` cordoned and drained its candidate before terminating its instance:
    task order in the playbook output, the state-file event, and the watcher's snapshots (the node was
    unschedulable with no non-DaemonSet pods when its instance left ``running``, and was seen so while the
    instance was still running). Returns (node name, instance_id)."""
    d = run.decision
    cand = d["candidates"][0]
    node, iid = cand["name"], cand["instance_id"]
    names = run.task_names
    i_drain = next(i for i, n in enumerate(names) if n.startswith("Cordon and drain %s through" % node))
    i_term = next(i for i, n in enumerate(names) if n.startswith("Terminate instance %s" % iid))
    i_rec = names.index("Record the scale-down in the state file")
    assert i_drain < i_term < i_rec, names
    assert run.result("Cordon and drain %s through" % node)["changed"] is True
    assert not any(n.startswith("Uncordon") for n in names), names

    state = c.instances()[iid]["state"]["name"]
    assert state in GONE, state
    event = c.read_state()["events"][-1]
    assert (event["direction"], event["instance_ids"], event["node_names"]) == ("scale_down", [iid], [node])

    assert not watcher.errors, watcher.errors
    snaps = [s for s in watcher.snapshots if node in s["nodes"]]
    first_gone = next((s for s in snaps if s["ec2_before"].get(iid) in GONE), None)
    assert first_gone is not None, "the watcher never saw %s leave running while %s existed" % (iid, node)
    assert first_gone["nodes"][node]["unschedulable"] is True, "node not cordoned when its instance terminated"
    assert first_gone["pods"].get(node, []) == [], "non-DaemonSet pods still on the node at termination"
    # seen cordoned and drained while the instance was still running (the EC2 read after the Kubernetes read)
    assert any(s["ec2_after"].get(iid) == "running" and s["nodes"][node]["unschedulable"]
               and not s["pods"].get(node) for s in snaps), "never observed cordoned+drained before terminate"
    return node, iid


@contextlib.contextmanager
def started_clusters(scenarios, tmp_path_factory):
    """Start several local clusters at once (their Prometheus warm-ups overlap), yield {scenario: Cluster}."""
    clusters = {}
    try:
        for name in scenarios:
            clusters[name] = Cluster(name, tmp_path_factory.mktemp("e2e-" + name)).start()
        for c in clusters.values():
            c.wait_ready()
        yield clusters
    finally:
        for c in clusters.values():
            c.stop()


requires_stack = pytest.mark.skipif(
    not (os.access(PROMETHEUS, os.X_OK) and os.access(ANSIBLE_PLAYBOOK, os.X_OK) and shutil.which("kubectl")),
    reason="needs /usr/bin/prometheus, .venv/bin/ansible-playbook and kubectl")
