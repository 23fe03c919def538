"""Every PromQL of every Grafana dashboard in grafana/dashboards/ returns data from a real Prometheus.

The module-scoped fixture starts the local simulated cluster (scenario ``high``: pending pods that need new
nodes, so the first autoscaler run is a scale_up) with ``--no-prometheus``, then the real
``/usr/bin/prometheus`` scraping it exactly as roles/prometheus configures it: jobs ``kube-state-metrics`` and
``node-exporter`` (``honor_labels``) and the role's recording rules (roles/prometheus/files/
k3s-autoscaler.rules.yml). It runs ``playbooks/autoscale.yml`` twice (``LOCAL_CLUSTER_DIR`` = the state dir,
``autoscale_prometheus_url`` = this Prometheus), so ``k3s.autoscaler.k3s_run_metrics`` writes
``<state-dir>/textfile/k3s_autoscaler.prom``, which the local cluster's node-exporter textfile collector serves.

Each panel target and each annotation query (dashboard variables substituted: query variables by running
their ``label_values()`` against Prometheus, textboxes by their value, ``$__rate_interval`` by 1m) is run as
a range query over the test's window; each must return at least one series with at least one sample.
A series the autoscaler does not export yet (not in the textfile) is reported as a skip naming it.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD_DIR = os.path.join(ROOT, "grafana", "dashboards")
RULES = os.path.join(ROOT, "roles", "prometheus", "files", "k3s-autoscaler.rules.yml")
PROMETHEUS = "/usr/bin/prometheus"
SCRAPE = 2  # seconds: scrape and rule evaluation interval of the test's Prometheus
VENV_BIN = os.path.dirname(sys.executable)

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]


def _dashboards():
    return sorted(f for f in os.listdir(DASHBOARD_DIR) if f.endswith(".json"))


def _load(name):
    with open(os.path.join(DASHBOARD_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)


def _queries(dash):
    """(what, expr) for every panel target (nested rows included) and every Prometheus annotation."""
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(("panel %r target %s" % (p.get("title"), t.get("refId")), t["expr"]))
    walk(dash.get("panels", []))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(("annotation %r" % a.get("name"), a["expr"]))
    return out


ALL_QUERIES = [(name, what, expr) for name in _dashboards() for what, expr in _queries(_load(name))]


# --------------------------------------------------------------------------- static checks (fast)

@pytest.mark.parametrize("name", _dashboards())
def test_dashboard_is_provisionable(name):
    dash = _load(name)
    assert dash.get("uid") and dash.get("title"), "%s: uid and title are required for file provisioning" % name
    ids = []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            walk(p.get("panels", []))
            if p.get("type") != "row":
                assert p.get("targets"), "%s: panel %r has no query" % (name, p.get("title"))
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                    "%s: panel %r must use the ${datasource} variable" % (name, p.get("title")))
    walk(dash["panels"])
    assert len(ids) == len(set(ids)), "%s: duplicate panel ids %s" % (name, ids)
    names = [v["name"] for v in dash["templating"]["list"]]
    assert "datasource" in names
    for _, expr in _queries(dash):
        for var in re.findall(r"\$\{?(\w+)", expr):
            assert var in names or var.startswith("__"), "%s: %r uses undefined variable $%s" % (name, expr, var)


def test_dashboard_covers_the_issue_panels():
    exprs = " ".join(e for _, _, e in ALL_QUERIES)
    for series in ("k3s_autoscaler_desired_nodes", "cluster:kube_node_workers_ready:count", "cluster:kube_pod_pending:count",
                   "cluster:kube_pod_unschedulable:count", "cluster:node_cpu_utilisation_workers:avg_percent_rate5m",
                   "cluster:node_memory_utilisation_workers:avg_percent", "$cpu_threshold", "$memory_threshold",
                   "k3s_autoscaler_decision", "k3s_autoscaler_launch_failures_total"):
        assert series in exprs, "no dashboard query uses %s" % series


def test_textfile_collector_appends_valid_files_and_skips_bad_ones(tmp_path, caplog):
    from local_cluster.clock import VirtualClock
    from local_cluster.exporter import MetricsServer
    from local_cluster.simulation import Simulation
    from local_cluster.workloads import load_scenario

    (tmp_path / "a.prom").write_text('# TYPE k3s_autoscaler_desired_nodes gauge\n'
                                     'k3s_autoscaler_desired_nodes{cluster="local"} 3\n')
    (tmp_path / "b.prom").write_text("not{{ a metric\n")
    (tmp_path / "c.prom").write_text("node_memory_MemTotal_bytes 5\n")  # clashes with the simulated series
    (tmp_path / "ignored.txt").write_text("other_metric 1\n")
    sim = Simulation(load_scenario("steady"), VirtualClock())
    sim.start()
    srv = MetricsServer(sim, textfile_dir=str(tmp_path)).start()
    try:
        def get(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (srv.port, path), timeout=5) as r:
                return r.read().decode()
        node, ksm, both = get("/metrics/node-exporter"), get("/metrics/kube-state-metrics"), get("/metrics")
    finally:
        srv.stop()
    for body in (node, both):
        assert 'k3s_autoscaler_desired_nodes{cluster="local"} 3' in body
        assert "not{{" not in body and "other_metric" not in body
        assert "node_memory_MemTotal_bytes 5" not in body
    assert "k3s_autoscaler_desired_nodes" not in ksm
    logged = caplog.text
    assert "b.prom" in logged and "c.prom" in logged


# --------------------------------------------------------------------------- live Prometheus

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def _stop(proc, timeout=20):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("%s is not installed (apt-get install prometheus)" % PROMETHEUS)
    base = tmp_path_factory.mktemp("dash")
    state = str(base / "cluster")
    procs = []
    logs = []
    try:
        log = open(base / "local_cluster.log", "w")
        logs.append(log)
        cl = subprocess.Popen([sys.executable, "-m", "local_cluster", "up", "--state-dir", state, "--scenario", "high",
                               "--no-prometheus", "--join-seconds", "3"],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(cl)
        info_path = os.path.join(state, "cluster.json")
        deadline = time.monotonic() + 60
        while not os.path.exists(info_path):
            assert cl.poll() is None, "local cluster exited (%s); see %s" % (cl.returncode, log.name)
            assert time.monotonic() < deadline, "local cluster not ready in 60 s; see %s" % log.name
            time.sleep(0.2)
        with open(info_path) as fh:
            info = json.load(fh)
        target = urllib.parse.urlsplit(info["metrics_url"]).netloc
        port = _free_port()
        cfg = {"global": {"scrape_interval": "%ds" % SCRAPE, "evaluation_interval": "%ds" % SCRAPE},
               "rule_files": [RULES],
               "scrape_configs": [{"job_name": job, "honor_labels": True, "metrics_path": path,
                                   "static_configs": [{"targets": [target]}]}
                                  for job, path in (("kube-state-metrics", "/metrics/kube-state-metrics"),
                                                    ("node-exporter", "/metrics/node-exporter"))]}
        cfg_path = base / "prometheus.yml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        plog = open(base / "prometheus.log", "w")
        logs.append(plog)
        prom = subprocess.Popen([PROMETHEUS, "--config.file=%s" % cfg_path, "--storage.tsdb.path=%s" % (base / "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=plog, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(prom)
        url = "http://127.0.0.1:%d" % port
        start = time.time()
        deadline = time.monotonic() + 60
        while True:
            assert prom.poll() is None, "prometheus exited (%s); see %s" % (prom.returncode, plog.name)
            try:
                up = _get_json(url + "/api/v1/query?query=up")["data"]["result"]
                if len(up) == 2 and all(s["value"][1] == "1" for s in up):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus not scraping in 60 s; see %s" % plog.name
            time.sleep(0.3)
        env = dict(os.environ, LOCAL_CLUSTER_DIR=state, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        textfile = os.path.join(state, "textfile", "k3s_autoscaler.prom")
        for _ in range(2):
            res = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/autoscale.yml",
                                  "-e", "autoscale_prometheus_url=%s" % url],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, "autoscale.yml failed:\n%s\n%s" % (res.stdout[-3000:], res.stderr[-2000:])
            assert os.path.exists(textfile), "autoscale.yml wrote no %s" % textfile
            time.sleep(2 * SCRAPE)  # let Prometheus scrape this run's textfile before the next run overwrites it
        with open(textfile) as fh:
            exported = fh.read()
        # Wait until the last run's metrics and the recorded CPU average (needs two scrapes of a new node) exist.
        deadline = time.monotonic() + 30
        probes = ("k3s_autoscaler_last_run_timestamp_seconds", "cluster:node_cpu_utilisation_workers:avg_percent_rate5m")
        while True:
            if all(_get_json(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))["data"]["result"]
                   for q in probes):
                break
            assert time.monotonic() < deadline, "Prometheus at %s has no %s after 30 s" % (url, probes)
            time.sleep(0.5)
        time.sleep(2 * SCRAPE)
        yield {"url": url, "start": start, "exported": exported, "info": info}
    finally:
        for p in reversed(procs):
            _stop(p)
        for fh in logs:
            fh.close()
        shutil.rmtree(os.path.join(str(base), "data"), ignore_errors=True)


def _substitute(expr, dash, url):
    values = {"__rate_interval": "1m", "__interval": "%ds" % SCRAPE, "__range": "5m"}
    for v in dash["templating"]["list"]:
        if v["type"] == "textbox" or v["type"] == "constant":
            values[v["name"]] = v["query"]
        elif v["type"] == "query":
            m = re.match(r"label_values\((.*),\s*(\w+)\)$", v["definition"])
            assert m, "variable %s: only label_values(selector, label) is supported here" % v["name"]
            sel = _substitute_simple(m.group(1), values)
            got = _get_json(url + "/api/v1/label/%s/values?%s" % (m.group(2), urllib.parse.urlencode({"match[]": sel})))
            assert got["data"], "variable %s: %s returned no values" % (v["name"], v["definition"])
            values[v["name"]] = got["data"][0]
    return _substitute_simple(expr, values)


def _substitute_simple(expr, values):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), expr)


@pytest.mark.parametrize("name,what,expr", ALL_QUERIES, ids=["%s: %s" % (n, w) for n, w, _ in ALL_QUERIES])
def test_every_query_returns_data(live, name, what, expr):
    missing = [s for s in re.findall(r"\bk3s_autoscaler_\w+", expr) if s not in live["exported"]]
    if missing:
        pytest.skip("%s: k3s_run_metrics does not export %s yet" % (what, ", ".join(missing)))
    q = _substitute(expr, _load(name), live["url"])
    assert "$" not in q.replace("$1", ""), "unsubstituted variable in %r" % q
    end = time.time()
    res = _get_json(live["url"] + "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": q, "start": "%.3f" % live["start"], "end": "%.3f" % end, "step": "%d" % SCRAPE}))
    assert res["status"] == "success", res
    series = res["data"]["result"]
    assert series and any(s["values"] for s in series), "%s %s: %r returned no data" % (name, what, q)
    for s in series:
        for _, v in s["values"]:
            assert v not in ("NaN", "+Inf", "-Inf"), "%s: %r returned %s" % (what, q, v)
            if "percent" in q and "vector(" not in q:
                assert 0 <= float(v) <= 100, "%s: percent out of 0-100: %s" % (what, v)
