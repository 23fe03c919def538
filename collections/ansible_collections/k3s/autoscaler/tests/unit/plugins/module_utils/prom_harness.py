# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reusable test harness: a fixture exporter and a REAL Prometheus (/usr/bin/prometheus).

    exporter = FixtureExporter()                  # serves on 127.0.0.1:<free port>
    exporter.set_text('up_fixture 1\\n')           # or a callable(now_seconds) -> str
    with PrometheusProcess([exporter.target]) as prom:
        prom.wait_for_series('up_fixture')        # blocks until the series is queryable
        prom.query('up_fixture')                  # -> list of {metric, value}
    exporter.close()

``FixtureExporter`` can also pretend to be a broken Prometheus: ``set_response(status=500,
body='<html>..', content_type='text/html')`` makes every path answer that way.
Scrape config uses ``honor_labels`` and ``honor_timestamps`` so fixtures control ``instance``
labels and explicit sample timestamps (needed for exact ``rate()`` results).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FixtureExporter(object):
    """HTTP server on 127.0.0.1 answering every GET with a settable body.

    ``text`` is a str or a callable ``f(now_unix_seconds) -> str`` evaluated per request (use it
    for counters growing at a known rate on the exporter's clock). ``requests`` counts GETs.
    """

    def __init__(self, text="", status=200, content_type="text/plain; version=0.0.4; charset=utf-8"):
        self._lock = threading.Lock()
        self._text = text
        self._status = status
        self._content_type = content_type
        self.requests = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                with exporter._lock:
                    exporter.requests += 1
                    text, status, ctype = exporter._text, exporter._status, exporter._content_type
                body = text(time.time()) if callable(text) else text
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def target(self):
        """``host:port`` for a Prometheus static_config."""
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def set_text(self, text):
        """Serve ``text`` (str or callable(now) -> str) with HTTP 200 and the exposition content type."""
        self.set_response(200, text, "text/plain; version=0.0.4; charset=utf-8")

    def set_response(self, status, body, content_type="text/plain; charset=utf-8"):
        with self._lock:
            self._status, self._text, self._content_type = status, body, content_type

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PrometheusProcess(object):
    """Context manager running the real Prometheus on 127.0.0.1:<free port> with a temp TSDB.

    :param scrape_targets: list of ``host:port`` (one job ``fixture``) or dict job_name -> list.
    :param scrape_interval: Prometheus duration, default ``1s``.
    :param lookback_delta: ``--query.lookback-delta`` (default Prometheus' 5m).
    """

    def __init__(self, scrape_targets, scrape_interval="1s", lookback_delta=None, honor_labels=True,
                 honor_timestamps=True, startup_timeout=30.0, extra_args=()):
        if isinstance(scrape_targets, dict):
            self.jobs = dict(scrape_targets)
        else:
            self.jobs = {"fixture": list(scrape_targets)}
        self.scrape_interval = scrape_interval
        self.lookback_delta = lookback_delta
        self.honor_labels = honor_labels
        self.honor_timestamps = honor_timestamps
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self.tmpdir = None
        self.port = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _config(self):
        # JSON is valid YAML.
        return json.dumps({
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_interval},
            "scrape_configs": [
                {"job_name": job, "honor_labels": self.honor_labels, "honor_timestamps": self.honor_timestamps,
                 "static_configs": [{"targets": targets}]}
                for job, targets in sorted(self.jobs.items())
            ],
        })

    def start(self):
        if not os.path.exists(PROMETHEUS_BIN):
            raise RuntimeError("Prometheus binary not found at %s (apt-get install prometheus)" % PROMETHEUS_BIN)
        self.tmpdir = tempfile.mkdtemp(prefix="prom-harness-")
        config = os.path.join(self.tmpdir, "prometheus.yml")
        with open(config, "w") as fh:
            fh.write(self._config())
        last_error = None
        for _attempt in range(3):
            self.port = free_port()
            args = [PROMETHEUS_BIN, "--config.file=%s" % config,
                    "--storage.tsdb.path=%s" % os.path.join(self.tmpdir, "data"),
                    "--web.listen-address=127.0.0.1:%d" % self.port,
                    "--web.enable-lifecycle", "--web.enable-admin-api"]
            if self.lookback_delta:
                args.append("--query.lookback-delta=%s" % self.lookback_delta)
            args.extend(self.extra_args)
            log = open(os.path.join(self.tmpdir, "prometheus.log"), "ab")
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir)
            log.close()
            try:
                self._wait_ready()
                return self
            except RuntimeError as exc:
                last_error = exc
                self._kill()
        self.stop()
        raise last_error

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited with %s: %s" % (self.proc.returncode, self.log_tail()))
            try:
                with urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus not ready within %ss: %s" % (self.startup_timeout, self.log_tail()))

    def log_tail(self, chars=2000):
        try:
            with open(os.path.join(self.tmpdir, "prometheus.log"), "rb") as fh:
                return fh.read().decode("utf-8", "replace")[-chars:]
        except OSError:
            return ""

    def query(self, promql):
        """Instant query at now; returns ``data.result`` (raises RuntimeError on API errors)."""
        with urlopen("%s/api/v1/query?%s" % (self.url, urlencode({"query": promql})), timeout=5) as resp:
            payload = json.loads(resp.read().decode("utf-8"))
        if payload.get("status") != "success":
            raise RuntimeError("query %r failed: %s" % (promql, payload))
        return payload["data"]["result"]

    def delete_series(self, match):
        """Delete series matching the selector ``match`` (admin API), e.g. samples that carried explicit
        timestamps and therefore never go stale on their own."""
        req = Request("%s/api/v1/admin/tsdb/delete_series?%s" % (self.url, urlencode({"match[]": match})),
                      method="POST")
        with urlopen(req, timeout=5) as resp:
            if resp.status not in (200, 204):
                raise RuntimeError("delete_series(%r) answered %s" % (match, resp.status))

    def wait_for_series(self, promql, timeout=30.0, interval=0.2):
        """Poll until ``promql`` returns a non-empty result; return that result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("no series for %r within %ss; prometheus log: %s"
                                     % (promql, timeout, self.log_tail(800)))
            time.sleep(interval)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self._kill()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- exposition builders (kube-state-metrics v2 / node-exporter shaped) --------------------------

def _fmt_labels(labels):
    return ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"'))
                    for k, v in sorted(labels.items()))


def sample(name, labels, value, timestamp_ms=None):
    """One exposition line; ``value`` may be a number or 'NaN' / '+Inf' / '-Inf'."""
    line = "%s{%s} %s" % (name, _fmt_labels(labels), value if isinstance(value, str) else repr(float(value)))
    if timestamp_ms is not None:
        line += " %d" % timestamp_ms
    return line + "\n"


def ksm_text(nodes=(), pods=(), overrides=None):
    """kube-state-metrics v2 exposition.

    ``nodes``: dicts ``name, provider_id, ready (bool), unschedulable (bool), cpu (cores),
    memory (bytes), instance_type (optional), info_timestamp_ms (optional explicit timestamp)``.
    ``pods``: dicts ``namespace, name, phase, node ('' = unbound), owner_kind ('<none>' = none),
    created (unix s), unschedulable (bool), containers: [(name, cpu_cores, memory_bytes)]``.
    ``overrides``: {(metric, frozenset(labels.items())): value} replaces single values (NaN tests).
    """
    overrides = overrides or {}

    def s(name, labels, value, ts=None):
        return sample(name, labels, overrides.get((name, frozenset(labels.items())), value), ts)

    out = []
    for n in nodes:
        out.append(s("kube_node_info", {"node": n["name"], "provider_id": n.get("provider_id", ""),
                                        "internal_ip": "10.0.0.%d" % (len(out) + 1)}, 1, n.get("info_timestamp_ms")))
        if n.get("instance_type"):
            out.append(s("kube_node_labels", {"node": n["name"],
                                              "label_node_kubernetes_io_instance_type": n["instance_type"]}, 1))
        for status in ("true", "false", "unknown"):
            out.append(s("kube_node_status_condition", {"node": n["name"], "condition": "Ready", "status": status},
                         1 if (status == "true") == bool(n.get("ready", True)) and status != "unknown" else 0))
        out.append(s("kube_node_spec_unschedulable", {"node": n["name"]}, 1 if n.get("unschedulable") else 0))
        out.append(s("kube_node_status_allocatable", {"node": n["name"], "resource": "cpu", "unit": "core"}, n["cpu"]))
        out.append(s("kube_node_status_allocatable", {"node": n["name"], "resource": "memory", "unit": "byte"},
                     n["memory"]))
    for p in pods:
        key = {"namespace": p["namespace"], "pod": p["name"]}
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            out.append(s("kube_pod_status_phase", dict(key, phase=phase), 1 if p["phase"] == phase else 0))
        out.append(s("kube_pod_info", dict(key, node=p.get("node", ""), created_by_kind=p.get("owner_kind", "<none>")), 1))
        kind = p.get("owner_kind", "<none>")
        out.append(s("kube_pod_owner", dict(key, owner_kind=kind, owner_name="<none>" if kind == "<none>" else "owner",
                                            owner_is_controller="true" if kind != "<none>" else "<none>"), 1))
        out.append(s("kube_pod_created", key, p.get("created", 0)))
        if p.get("unschedulable"):
            out.append(s("kube_pod_status_unschedulable", key, 1))
        for cname, cpu, mem in p.get("containers", ()):
            base = dict(key, container=cname, node=p.get("node", ""))
            if cpu is not None:
                out.append(s("kube_pod_container_resource_requests", dict(base, resource="cpu", unit="core"), cpu))
            if mem is not None:
                out.append(s("kube_pod_container_resource_requests", dict(base, resource="memory", unit="byte"), mem))
    return "".join(out)


def node_exporter_text(hosts, now):
    """node-exporter exposition for several hosts from one target (needs ``honor_labels``).

    ``hosts``: dicts ``instance, nodename, idle_rates: [per-cpu idle seconds per second],
    mem_total, mem_available``. Idle counters are ``rate * now`` stamped with the exporter's own
    clock (explicit millisecond timestamps), so ``rate()`` over them is exactly ``rate``.
    """
    ts_ms = int(now * 1000)
    out = []
    for h in hosts:
        out.append(sample("node_uname_info", {"instance": h["instance"], "nodename": h["nodename"],
                                              "sysname": "Linux"}, 1))
        for cpu, rate in enumerate(h.get("idle_rates", ())):
            out.append(sample("node_cpu_seconds_total", {"instance": h["instance"], "cpu": str(cpu), "mode": "idle"},
                              rate * ts_ms / 1000.0, ts_ms))
        if "mem_total" in h:
            out.append(sample("node_memory_MemTotal_bytes", {"instance": h["instance"]}, h["mem_total"]))
            out.append(sample("node_memory_MemAvailable_bytes", {"instance": h["instance"]}, h["mem_available"]))
    return "".join(out)
