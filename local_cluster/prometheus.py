"""Run the REAL Prometheus (Debian ``/usr/bin/prometheus``) against the local cluster's /metrics.

:class:`PrometheusServer` writes ``prometheus.yml`` into ``state_dir``, starts Prometheus on
``127.0.0.1:<port>`` (0 = a free port) with TSDB storage in ``state_dir/data``, and waits until
``/-/ready`` answers 200 and the first scrape of every job has landed (``up == 1`` for each).

Scrape jobs (both ``honor_labels: true`` so each node's own ``instance`` label survives):
``kube-state-metrics`` -> ``/metrics/kube-state-metrics`` and ``node-exporter`` ->
``/metrics/node-exporter`` on the metrics server. Optional ``extra_target_file``: a file_sd JSON/YAML
file (job ``k3s-autoscaler``) for the autoscaler's own metrics endpoint, if any.

:meth:`PrometheusServer.stop` sends SIGTERM, waits up to ``stop_timeout`` seconds, then SIGKILLs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

DEFAULT_BINARY = "/usr/bin/prometheus"


class PrometheusError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def scrape_config(metrics_host_port: str, scrape_interval: float, extra_target_file: str | None = None) -> dict:
    interval = f"{scrape_interval:g}s"
    jobs = [
        {"job_name": name, "honor_labels": True, "metrics_path": path, "scrape_interval": interval,
         "scrape_timeout": interval, "static_configs": [{"targets": [metrics_host_port]}]}
        for name, path in (("kube-state-metrics", "/metrics/kube-state-metrics"),
                           ("node-exporter", "/metrics/node-exporter"))
    ]
    if extra_target_file:
        jobs.append({"job_name": "k3s-autoscaler", "honor_labels": True, "scrape_interval": interval,
                     "file_sd_configs": [{"files": [os.path.abspath(extra_target_file)], "refresh_interval": "30s"}]})
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}


class PrometheusServer:
    def __init__(self, metrics_host_port: str, state_dir: str, *, port: int = 0, host: str = "127.0.0.1",
                 binary: str = DEFAULT_BINARY, scrape_interval: float = 5.0, retention: str = "1d",
                 extra_target_file: str | None = None, log_path: str | None = None):
        self.metrics_host_port = metrics_host_port
        self.state_dir = os.path.abspath(state_dir)
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary
        self.scrape_interval = float(scrape_interval)
        self.retention = retention
        self.extra_target_file = extra_target_file
        self.log_path = log_path or os.path.join(self.state_dir, "prometheus.log")
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "PrometheusServer":
        if not os.access(self.binary, os.X_OK):
            raise PrometheusError(f"Prometheus binary {self.binary!r} not found or not executable; install the Debian "
                                  "package (apt-get install prometheus) or pass --prometheus-binary PATH, or run with "
                                  "--no-prometheus")
        # Each simulated cluster is new: series of an earlier cluster in the same state dir would be read as
        # nodes of this one (within Prometheus's 5 min lookback), so the TSDB starts empty.
        shutil.rmtree(os.path.join(self.state_dir, "data"), ignore_errors=True)
        os.makedirs(os.path.join(self.state_dir, "data"), exist_ok=True)
        cfg = os.path.join(self.state_dir, "prometheus.yml")
        with open(cfg, "w", encoding="utf-8") as fh:
            yaml.safe_dump(scrape_config(self.metrics_host_port, self.scrape_interval, self.extra_target_file), fh)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(self.state_dir, 'data')}",
             f"--storage.tsdb.retention.time={self.retention}", f"--web.listen-address={self.host}:{self.port}",
             "--web.enable-lifecycle"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def query(self, promql: str) -> list[dict]:
        """Instant query; returns ``data.result`` (vector samples). Raises PrometheusError on failure."""
        code, body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10)
        if code != 200:
            raise PrometheusError(f"query {promql!r} at {self.url} failed: HTTP {code} {body[:200]!r}")
        return json.loads(body)["data"]["result"]

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise PrometheusError(f"Prometheus exited with code {self.proc.returncode} during startup; "
                                      f"see {self.log_path}")
            code, _ = self._get("/-/ready")
            if code == 200:
                try:
                    up = {s["metric"].get("job"): s["value"][1] for s in self.query("up")}
                except (PrometheusError, ValueError, KeyError):
                    up = {}
                if up.get("kube-state-metrics") == "1" and up.get("node-exporter") == "1":
                    return
            time.sleep(0.25)
        raise PrometheusError(f"Prometheus at {self.url} not ready with a first successful scrape of "
                              f"{self.metrics_host_port} within {timeout:g}s; see {self.log_path}")

    def stop(self, stop_timeout: float = 15.0) -> int | None:
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            rc = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc
