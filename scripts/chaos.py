#!/usr/bin/env python3
"""`make chaos`: the fault-injection harness of issue 6.

Runs ``ansible-playbook playbooks/autoscale.yml`` repeatedly against ONE local cluster
(``tests/chaos/scenario.yaml``: demand that rises and falls every 150 s, short cooldowns) while injecting
faults chosen from ``--seed``, and checks the six invariants after every run and, through a background
sampler (every 0.1 s), during runs. Prints a table and writes ``out/chaos.json``.

Reuses ``tests/integration/e2e_harness.py`` (``Cluster`` starts ``python -m local_cluster up`` with a real
Prometheus; ``Watcher`` samples EC2 + Nodes + Pods; ``PlaybookRun`` parses the json callback).

Faults (one per run, dealt from a seeded, shuffled deck so every type recurs; kill triggers stay armed
across runs until the action they wait for happens, at most ``KILL_ARM_RUNS`` runs):

* Prometheus, through a fault-injecting HTTP proxy in front of the real Prometheus (the playbook's
  ``autoscale_prometheus_url`` points at the proxy): ``prom_down`` (URL of a closed port: connection
  refused), ``prom_slow`` (answers after the query timeout), ``prom_html`` (HTTP 502 with an HTML body),
  ``prom_nonjson`` (200 with a non-JSON body), ``prom_nan`` / ``prom_inf`` / ``prom_negative`` (every sample
  value of one query, chosen at random, replaced by NaN, +Inf or -7), ``prom_stale`` (the freshness query
  says the data is an hour old), ``prom_missing_labels`` (one query's series lose all their labels).
* EC2 mock (``MockEC2.inject_failure`` on the run's store, cleared after the run): ``ec2_capacity``
  (InsufficientInstanceCapacity on RunInstances), ``ec2_throttle`` (RequestLimitExceeded on the next 2
  calls of any operation: the role retries), ``ec2_unavailable`` (Unavailable, HTTP 503, on RunInstances or
  TerminateInstances: the "timeout" of an overloaded endpoint), ``ec2_latency`` (1.5 s per call).
* SIGKILL of the playbook's whole process group: ``kill_launch_intent`` (as soon as ``pending_launch`` is in
  the state file: before or during RunInstances), ``kill_launch`` (as soon as a new instance is in the EC2
  store: after RunInstances, before the record), ``kill_cordon`` (as soon as a node is cordoned: between
  cordon and terminate), ``kill_state_write`` (``tests/chaos/hooks/sitecustomize.py`` makes the rename of
  the state file's temp file wait 1 s; the kill lands while the temp file exists).
* ``concurrent``: two runs started at once (one must print "skipped: lock held" and exit 0).
* ``corrupt_state``: the state file truncated or overwritten with garbage between runs; the next run
  must hold with an error naming the corrupt file; then the documented repair
  (``scripts/repair_state.py``, ``make repair-state``) runs and counts as a recovery.
* ``none``: a clean run.

"injected" counts the faults dealt, "fired" those that hit: a kill that happened, an EC2 rule consumed by a
call, a Prometheus answer actually rewritten, a state file actually corrupted.

Invariants (a violation of any is counted, with details, and makes the exit code 1):

1. ``max_nodes``: non-terminated instances of the node group (EC2 ``state.name`` pending, running,
   stopping or stopped; tag ``k3s-autoscaler/node-group``) <= max_nodes, in every sample and after every run.
2. ``min_nodes``: the same count >= min_nodes (the scaler's own view: Ready nodes plus instances still
   booting, i.e. every instance not shutting-down/terminated).
3. ``launch_once``: every instance launched by the autoscaler carries a ``k3s-autoscaler/launch-id`` tag;
   all instances of one launch id come from ONE RunInstances call (one ``client_token``) of at most
   ``max_scale_up_step`` instances; no instance appears in two scale_up events of the state file.
4. ``state_parses``: the state file parses and validates (old or new) in every sample and after every run,
   except between a deliberate ``corrupt_state`` and its repair.
5. ``cordon``: after every run that finished (not killed, not skipped by the lock), no node whose instance is
   still live is cordoned: a scale-down either terminated it or uncordoned it, and a run killed between cordon
   and terminate is resolved by the next run.
6. ``evict_before_terminate``: when an instance is first seen shutting-down/terminated, its node (still
   registered) holds no pod other than DaemonSet pods.

Behaviour checks (reported next to the invariants): a run under a Prometheus transport fault (down, slow,
HTML, non-JSON) or a stale/NaN/Inf/negative/label-less answer does not scale down; transport faults hold
(no launch, no cordon) with an error naming the URL or the query; a corrupt state file holds.
"""
import argparse
import collections
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "collections"), os.path.join(ROOT, "tests", "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import e2e_harness as e2e  # noqa: E402
from ansible_collections.k3s.autoscaler.plugins.module_utils.state import StateError, load_state  # noqa: E402

SCENARIO = os.path.join(ROOT, "tests", "chaos", "scenario.yaml")
HOOKS = os.path.join(ROOT, "tests", "chaos", "hooks")
REPAIR = os.path.join(ROOT, "scripts", "repair_state.py")
LIVE = ("pending", "running", "stopping", "stopped")
GONE = ("shutting-down", "terminated")
LAUNCH_ID_TAG = "k3s-autoscaler/launch-id"
KILL_ARM_RUNS = 8

MIN_NODES = 1
MAX_NODES = 4
STEP = 2
PROM_TIMEOUT = 2
RUN_TIMEOUT = 240

PROM_TRANSPORT = ("prom_down", "prom_slow", "prom_html", "prom_nonjson")
PROM_VALUE = ("prom_nan", "prom_inf", "prom_negative", "prom_stale", "prom_missing_labels")
EC2_FAULTS = ("ec2_capacity", "ec2_throttle", "ec2_unavailable", "ec2_latency")
KILLS = ("kill_launch_intent", "kill_launch", "kill_cordon", "kill_state_write")
OTHER = ("concurrent", "corrupt_state")
DECK = ("none", "none", "none") + PROM_TRANSPORT + PROM_VALUE + EC2_FAULTS + KILLS + OTHER
INVARIANTS = ("1_max_nodes", "2_min_nodes", "3_launch_once", "4_state_parses", "5_cordon",
              "6_evict_before_terminate")
BEHAVIOUR = ("bad_metrics_scaled_down", "transport_fault_acted", "transport_fault_unnamed", "corrupt_state_acted",
             "corrupt_state_no_error", "lock_held_bad_exit")


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Prometheus fault proxy
class PromProxy:
    """HTTP proxy in front of the real Prometheus; ``mode`` is set per run."""

    def __init__(self, upstream):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.target = 0          # which eligible query of the run a value fault hits (0-based)
        self.hit_query = None
        self.count = 0           # queries seen this run
        self.fired = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.handle(self, body)

            do_GET = _handle
            do_POST = _handle

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_mode(self, mode, rng):
        with self.lock:
            self.mode = mode
            self.count = 0
            self.fired = 0
            self.target = rng.randrange(0, 8)
            self.hit_query = None

    @staticmethod
    def eligible(mode, query):
        """Queries whose answer a value/label fault can make wrong: value faults skip the info series
        (kube_node_info, kube_node_role, kube_node_labels: their value is always 1 and never read) and the
        freshness query (prom_stale's own fault); label faults skip the label-less freshness query."""
        if "timestamp(" in query:
            return False
        if mode == "prom_missing_labels":
            return True
        return not re.match(r"\s*kube_node_(info|role|labels)\b", query)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, status, body, ctype):
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:  # the client gave up (its timeout): expected under prom_slow
            h.close_connection = True

    def handle(self, h, body):
        query = urllib.parse.unquote_plus(h.path.split("query=", 1)[-1].split("&", 1)[0]) if "query=" in h.path \
            else urllib.parse.unquote_plus((body or b"").decode("latin-1").split("query=", 1)[-1].split("&", 1)[0])
        with self.lock:
            mode = self.mode
            hit = False
            if mode in PROM_VALUE and self.eligible(mode, query):
                hit = self.count == self.target
                self.count += 1
                if hit:
                    self.hit_query = query
        if mode == "prom_slow":
            self.fired += 1
            time.sleep(PROM_TIMEOUT + 1.5)
        elif mode == "prom_html":
            self.fired += 1
            return self._send(h, 502, b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad "
                                      b"Gateway</h1><hr>nginx</body></html>", "text/html")
        elif mode == "prom_nonjson":
            self.fired += 1
            return self._send(h, 200, b"upstream connect error or disconnect/reset before headers", "application/json")
        req = urllib.request.Request(self.upstream + h.path, data=body, method=h.command,
                                     headers={k: v for k, v in h.headers.items()
                                              if k.lower() in ("content-type", "accept", "authorization")})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "application/json")
        except OSError:
            return self._send(h, 502, b"proxy: upstream Prometheus unreachable", "text/plain")
        if "/api/v1/query" in h.path and mode in PROM_VALUE and status == 200:
            raw, changed = self._rewrite(mode, raw, query, hit)
            if changed:
                self.fired += 1
        return self._send(h, status, raw, ctype)

    @staticmethod
    def _rewrite(mode, raw, request, hit):
        try:
            doc = json.loads(raw)
            result = doc["data"]["result"]
        except (ValueError, KeyError, TypeError):
            return raw, False
        changed = False
        if mode == "prom_stale":
            if "timestamp(" in request:
                for s in result:
                    s["value"][1] = "3600"
                    changed = True
        elif hit and result:
            for s in result:
                if mode == "prom_missing_labels":
                    s["metric"] = {}
                else:
                    s["value"][1] = {"prom_nan": "NaN", "prom_inf": "+Inf", "prom_negative": "-7"}[mode]
            changed = True
        return (json.dumps(doc).encode() if changed else raw), changed


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


# ---------------------------------------------------------------------------------------------------------
# sampling during runs
class Sampler(e2e.Watcher):
    """The e2e Watcher's snapshots (EC2 states, nodes, non-DaemonSet pods per node) + invariants 1, 2, 4, 6
    checked on every snapshot, + the EC2 store's tags for invariant 3."""

    def __init__(self, chaos, interval=0.2):
        super().__init__(chaos.cluster, interval=interval)
        self.chaos = chaos

    def _snap(self):
        snap = super()._snap()
        snap["state_ok"] = self.chaos.state_parses()
        self.chaos.check_snapshot(snap)
        return snap

    def _loop(self):
        while not self._stop.is_set():
            try:
                self._snap()  # not kept: checked at once (300 runs would hold too many)
                self.snapshots = [True]
            except Exception as exc:  # noqa: BLE001 - recorded; a sampler error is not a violation
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)


# ---------------------------------------------------------------------------------------------------------
class Chaos:
    def __init__(self, seed, runs, base_dir, out_path=None, quiet=False):
        self.seed = seed
        self.runs = runs
        self.base_dir = os.path.abspath(base_dir)
        self.out_path = out_path
        self.quiet = quiet
        self.rng = random.Random(seed)
        self.cluster = None
        self.proxy = None
        self.faults = collections.Counter()
        self.fired = collections.Counter()
        self.violations = collections.Counter({k: 0 for k in INVARIANTS})
        self.behaviour = collections.Counter({k: 0 for k in BEHAVIOUR})
        self.details = []
        self.recoveries = collections.Counter()
        self.outcomes = collections.Counter()
        self.initial_ids = set()
        self.corrupted = False
        self.prev_gone = {}
        self.seen_terminations = set()
        self.deck = []
        self.armed_kill = None
        self.armed_ec2 = None
        self.run_index = 0
        self.durations = []
        self._lock = threading.Lock()
        self._seq = 0

    # -- helpers --------------------------------------------------------------------------------------
    def violation(self, inv, what):
        with self._lock:
            self.violations[inv] += 1
            if len(self.details) < 200:
                self.details.append({"run": self.run_index, "invariant": inv, "what": what})
        log("  VIOLATION %s (run %d): %s" % (inv, self.run_index, what))

    def misbehaved(self, key, what):
        self.behaviour[key] += 1
        if len(self.details) < 200:
            self.details.append({"run": self.run_index, "behaviour": key, "what": what})
        log("  BEHAVIOUR %s (run %d): %s" % (key, self.run_index, what))

    def state_parses(self):
        if self.corrupted:
            return None
        try:
            load_state(self.cluster.state_file)
            return True
        except StateError as e:
            return str(e)

    def store_instances(self):
        return self.cluster.ec2().list_instances(include_expired=True)

    def live_count(self, states):
        return sum(1 for s in states.values() if s in LIVE)

    def check_snapshot(self, snap):
        states = snap["ec2_after"]
        live = self.live_count(states)
        if live > MAX_NODES:
            self.violation("1_max_nodes", "%d non-terminated instances > max_nodes %d (sampled)" % (live, MAX_NODES))
        if live < MIN_NODES:
            self.violation("2_min_nodes", "%d non-terminated instances < min_nodes %d (sampled)" % (live, MIN_NODES))
        if snap["state_ok"] not in (True, None):
            self.violation("4_state_parses", "sampled: %s" % snap["state_ok"])
        # 6: the first snapshot in which an instance is gone, read BEFORE the Kubernetes reads
        for node, info in snap["nodes"].items():
            iid = info.get("instance_id")
            if not iid or iid in self.seen_terminations:
                continue
            if snap["ec2_before"].get(iid) in GONE:
                self.seen_terminations.add(iid)
                pods = snap["pods"].get(node, [])
                if pods:
                    self.violation("6_evict_before_terminate", "instance %s terminated while node %s held non-DaemonSet "
                                                               "pods %s" % (iid, node, pods[:5]))

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self):
        os.makedirs(self.base_dir, exist_ok=True)
        self.cluster = e2e.Cluster(SCENARIO, self.base_dir).start()
        self.cluster.wait_ready(timeout=120)
        self.proxy = PromProxy(self.cluster.info["prometheus_url"])
        self.initial_ids = {i["instance_id"] for i in self.store_instances()}
        # warm up: Prometheus needs a CPU rate for every node (wait_ready) - then the first run decides on data
        return self

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        if self.cluster:
            self.cluster.stop()

    def extra_vars(self, fault):
        mock = {"store": self.cluster.info["ec2_store"], "boot_seconds": e2e.BOOT_SECONDS, "shutdown_seconds": 1}
        if fault == "ec2_latency":
            mock["latency_seconds"] = 1.5
        url = closed_port_url() if fault == "prom_down" else self.proxy.url
        return {
            "autoscale_ec2_mock": mock,
            "autoscale_prometheus_url": url,
            "autoscale_prometheus_timeout": PROM_TIMEOUT,
            "autoscale_prometheus_rate_window": "20s",
            "autoscale_min_nodes": MIN_NODES,
            "autoscale_max_nodes": MAX_NODES,
            "autoscale_max_scale_up_step": STEP,
            "autoscale_scale_up_cooldown": 6,
            "autoscale_scale_down_cooldown": 12,
            "autoscale_launch_timeout": 8,
            "autoscale_ec2_retries": 3,
            "autoscale_ec2_retry_delay": 1,
            "autoscale_drain_timeout": 20,
            "autoscale_drain_grace_period": 1,
        }

    def popen(self, fault, env_extra=None):
        cmd = [e2e.ANSIBLE_PLAYBOOK, "playbooks/autoscale.yml", "-e", json.dumps(self.extra_vars(fault))]
        # pipelining only changes how Ansible ships each module to the local python (stdin instead of a temp
        # file): about a third less time per task, same modules, same order, same results
        env = dict(os.environ, LOCAL_CLUSTER_DIR=self.cluster.state_dir, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PIPELINING="1")
        env.update(env_extra or {})
        self._seq += 1
        out = open(os.path.join(self.base_dir, "run-%d.out" % self._seq), "w+")
        err = open(os.path.join(self.base_dir, "run-%d.err" % self._seq), "w+")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
        return proc, out, err, cmd

    @staticmethod
    def finish(proc, out, err, cmd, killed=False):
        try:
            proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        res = type("P", (), {"returncode": proc.returncode, "stdout": out.read(), "stderr": err.read()[-4000:]})
        out.close()
        err.close()
        for f in (out, err):
            try:
                os.unlink(f.name)
            except OSError:
                pass
        run = e2e.PlaybookRun(cmd, res)
        run.killed = killed
        return run

    # -- kill triggers ----------------------------------------------------------------------------------
    def trigger(self, kind, before_ids):
        """A predicate: the moment to SIGKILL for ``kind``."""
        c = self.cluster
        tmp = re.compile(r"^\.state\.json\..*\.tmp$")
        if kind == "kill_launch_intent":
            def pending():
                try:
                    with open(c.state_file) as f:
                        return (json.load(f).get("pending_launch") or {}).get("launch_id")
                except (OSError, ValueError, AttributeError):
                    return None
            old = pending()  # one left by an earlier killed run does not count: wait for THIS run's intent

            def hit():
                lid = pending()
                return lid is not None and lid != old
        elif kind == "kill_launch":
            def hit():
                return any(i["instance_id"] not in before_ids for i in self.store_instances())
        elif kind == "kill_cordon":
            def hit():
                return any(n.spec.unschedulable for n in c.agent_nodes())
        else:
            def hit():
                return any(tmp.match(n) for n in os.listdir(c.state_dir))
        return hit

    def run_with_kill(self, kind, fault):
        before_ids = {i["instance_id"] for i in self.store_instances()}
        env = {"PYTHONPATH": HOOKS, "K3S_CHAOS_STATE_WRITE_DELAY": "1.0"} if kind == "kill_state_write" else {}
        hit = self.trigger(kind, before_ids)
        if kind == "kill_cordon" and hit():
            return self.finish(*self.popen(fault, env)), False  # a node is already cordoned: cannot tell
        proc, out, err, cmd = self.popen(fault, env)
        fired = False
        while proc.poll() is None:
            try:
                if hit():
                    os.killpg(proc.pid, signal.SIGKILL)
                    fired = True
                    break
            except ProcessLookupError:
                break
            except Exception:  # noqa: BLE001 - e.g. the Kubernetes API busy; try again
                pass
            time.sleep(0.02)
        return self.finish(proc, out, err, cmd, killed=fired), fired

    # -- one run ----------------------------------------------------------------------------------------
    def next_fault(self):
        if not self.deck:
            self.deck = list(DECK)
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def one_run(self):
        fault = self.next_fault()
        kill = None
        if fault in KILLS:
            if self.armed_kill is None:
                self.armed_kill = [fault, 0]
            fault = "none"
        if self.armed_kill:
            kill = self.armed_kill[0]
            self.armed_kill[1] += 1
        self.faults[fault] += 1
        self.proxy.set_mode(fault if fault.startswith("prom_") else "pass", self.rng)
        ec2 = self.cluster.ec2()
        if fault in ("ec2_capacity", "ec2_throttle", "ec2_unavailable"):
            # the rule stays in the store until an EC2 call consumes it (at most KILL_ARM_RUNS runs)
            if self.armed_ec2:
                ec2.clear_failures()
                self.outcomes["ec2_fault_never_hit_" + self.armed_ec2[0]] += 1
            if fault == "ec2_capacity":
                ec2.inject_failure("InsufficientInstanceCapacity", "run_instances", next_calls=1)
            elif fault == "ec2_throttle":
                ec2.inject_failure("RequestLimitExceeded", "any", next_calls=2)
            else:
                ec2.inject_failure("Unavailable", self.rng.choice(["run_instances", "terminate_instances"]),
                                   next_calls=1)
            self.armed_ec2 = [fault, 0]
        elif fault == "corrupt_state" and self.corrupt():
            self.fired["corrupt_state"] += 1

        before = {i["instance_id"]: i["state"]["name"] for i in self.store_instances()}
        cordoned_before = {n.metadata.name for n in self.cluster.agent_nodes() if n.spec.unschedulable}
        t0 = time.monotonic()
        runs = []
        with Sampler(self) as sampler:
            if fault == "concurrent":
                a = self.popen(fault, {"K3S_CHAOS_TWIN": "a"})
                b = self.popen(fault, {"K3S_CHAOS_TWIN": "b", "K3S_CHAOS_TWIN2": "b"})
                runs = [self.finish(*a), self.finish(*b)]
            elif kill:
                run, fired = self.run_with_kill(kill, fault)
                runs = [run]
                if fired:
                    self.fired[kill] += 1
                    self.faults[kill] += 1
                    self.armed_kill = None
                elif self.armed_kill and self.armed_kill[1] >= KILL_ARM_RUNS:
                    self.outcomes["kill_never_fired_" + kill] += 1
                    self.armed_kill = None
            else:
                runs = [self.finish(*self.popen(fault))]
        self.durations.append(time.monotonic() - t0)
        if sampler.errors:
            self.outcomes["sampler_errors"] += len(sampler.errors)
        if self.armed_ec2:
            if not ec2.pending_failures():
                self.fired[self.armed_ec2[0]] += 1
                self.armed_ec2 = None
            else:
                self.armed_ec2[1] += 1
                if self.armed_ec2[1] >= KILL_ARM_RUNS:
                    ec2.clear_failures()
                    self.outcomes["ec2_fault_never_hit_" + self.armed_ec2[0]] += 1
                    self.armed_ec2 = None
        if fault.startswith("prom_") and fault != "prom_down" and self.proxy.fired:
            self.fired[fault] += 1
        elif fault in ("ec2_latency", "concurrent"):
            self.fired[fault] += 1
        self.after_run(fault, runs, before, cordoned_before)
        return fault, kill, runs

    def corrupt(self):
        """Truncate or garble the state file. Only when no intent is pending: a corrupt file loses its
        pending_launch / pending_removal, which no automatic repair can recover (scripts/repair_state.py
        says to check the cluster by hand then)."""
        path = self.cluster.state_file
        if not os.path.exists(path):
            self.outcomes["corrupt_skipped_no_state_file"] += 1
            return False
        try:
            st = load_state(path)
        except StateError:
            return False
        if st.get("pending_launch") or st.get("pending_removal"):
            self.outcomes["corrupt_skipped_intent_pending"] += 1
            return False
        how = self.rng.choice(["truncate", "garbage", "half"])
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(0)
            f.truncate()
            if how == "garbage":
                f.write(b"\x00\x17not json at all")
            elif how == "half":
                f.write(data[:max(1, len(data) // 2)])
        self.corrupted = True
        return True

    def after_run(self, fault, runs, before, cordoned_before):
        c = self.cluster
        killed = any(getattr(r, "killed", False) for r in runs)
        for r in runs:
            out = r.stdout
            if "recovered stale lock of pid" in out:
                self.recoveries["stale_lock"] += 1
            if "recorded the scale_up instead of deciding again" in out:
                self.recoveries["launch_completed"] += 1
            if "never happened: no instance is tagged" in out:
                self.recoveries["launch_expired"] += 1
            if "recorded the scale_down" in out and "interrupted run" in out:
                self.recoveries["removal_completed"] += 1
            if "uncordoning the node" in out:
                self.recoveries["removal_uncordoned"] += 1
            if "skipped: lock held" in out:
                self.outcomes["skipped_lock_held"] += 1
                if r.rc != 0:
                    self.misbehaved("lock_held_bad_exit", "the run that found the lock held exited %s" % r.rc)
            elif getattr(r, "killed", False):
                self.outcomes["killed"] += 1
            elif r.rc == 0:
                self.outcomes["ok"] += 1
            else:
                self.outcomes["held_or_failed_rc%s" % r.rc] += 1
        after = {i["instance_id"]: i for i in self.store_instances()}
        launched = [i for i in after if i not in before]
        terminated = [i for i, inst in after.items() if inst["state"]["name"] in GONE and before.get(i) in LIVE]
        nodes = c.agent_nodes()
        cordoned_now = {n.metadata.name for n in nodes if n.spec.unschedulable}
        newly_cordoned = cordoned_now - cordoned_before
        acted = bool(launched or terminated or newly_cordoned)
        self.outcomes["launched_instances"] += len(launched)
        self.outcomes["terminated_instances"] += len(terminated)

        # behaviour under bad metrics / corrupt state (only when the run got as far as collecting metrics)
        collected = any(r.ran("Collect cluster metrics") for r in runs)
        prom_hit = collected and (fault == "prom_down" or (fault.startswith("prom_") and self.proxy.fired))
        if prom_hit and fault == "prom_down":
            self.fired["prom_down"] += 1
        if prom_hit and not killed and (terminated or newly_cordoned):
            self.misbehaved("bad_metrics_scaled_down", "%s (query %s): terminated %s cordoned %s"
                            % (fault, self.proxy.hit_query, terminated, sorted(newly_cordoned)))
        if prom_hit and fault in PROM_TRANSPORT and not killed:
            if launched:
                self.misbehaved("transport_fault_acted", "%s: launched %s" % (fault, launched))
            r = runs[0]
            msg = (r.result("Fail the run when the inputs were uncertain") or {}).get("msg", "")
            if r.rc == 0 or not re.search(r"k3s_metrics: \w+ \[.+\]: .*(127\.0\.0\.1|Prometheus)", msg, re.S):
                self.misbehaved("transport_fault_unnamed", "%s: rc=%s, error %r does not name the query and URL"
                                % (fault, r.rc, msg[:300]))
        if fault == "corrupt_state" and self.corrupted:
            if acted:
                self.misbehaved("corrupt_state_acted", "launched %s terminated %s" % (launched, terminated))
            if "is corrupt" not in runs[0].stdout or runs[0].rc == 0:
                self.misbehaved("corrupt_state_no_error", "rc=%s" % runs[0].rc)
            rep = subprocess.run([sys.executable, REPAIR, c.state_file], capture_output=True, text=True, timeout=60)
            if rep.returncode == 0 and "repaired" in rep.stdout:
                self.recoveries["state_repaired"] += 1
            self.corrupted = False
        if fault == "concurrent" and sum("skipped: lock held" in r.stdout for r in runs) == 0:
            self.outcomes["concurrent_no_overlap"] += 1

        # invariants after the run
        live = sum(1 for inst in after.values() if inst["state"]["name"] in LIVE)
        if live > MAX_NODES:
            self.violation("1_max_nodes", "%d non-terminated instances > max_nodes %d after the run" % (live, MAX_NODES))
        if live < MIN_NODES:
            self.violation("2_min_nodes", "%d non-terminated instances < min_nodes %d after the run" % (live, MIN_NODES))
        self.check_launch_once(after)
        ok = self.state_parses()
        if ok not in (True, None):
            self.violation("4_state_parses", "after the run: %s" % ok)
        if not killed:
            by_id = {n.metadata.name: n for n in nodes}
            for name in cordoned_now:
                pi = e2e.provider_instance(by_id[name].spec.provider_id)
                if pi and after.get(pi[1], {}).get("state", {}).get("name") in LIVE:
                    self.violation("5_cordon", "node %s (instance %s, live) still cordoned after a finished run"
                                   % (name, pi[1]))

    def check_launch_once(self, after):
        groups = collections.defaultdict(list)
        for iid, inst in after.items():
            if iid in self.initial_ids:
                continue
            lid = (inst.get("tags") or {}).get(LAUNCH_ID_TAG)
            if not lid:
                self.violation("3_launch_once", "instance %s launched without a %s tag" % (iid, LAUNCH_ID_TAG))
                self.initial_ids.add(iid)  # report once
                continue
            groups[lid].append(inst)
        for lid, insts in groups.items():
            tokens = {i["client_token"] for i in insts}
            if len(tokens) > 1 or len(insts) > STEP:
                key = "launch:" + lid
                if key not in self.initial_ids:
                    self.initial_ids.add(key)
                    self.violation("3_launch_once", "launch id %s: %d instances from %d RunInstances calls"
                                   % (lid, len(insts), len(tokens)))
        if self.corrupted or not os.path.exists(self.cluster.state_file):
            return
        try:
            st = load_state(self.cluster.state_file)
        except StateError:
            return
        seen = collections.Counter()
        for ev in st["events"]:
            if ev["direction"] == "scale_up":
                seen.update(ev["instance_ids"])
        dup = sorted(i for i, n in seen.items() if n > 1)
        if dup:
            key = "dup:" + ",".join(dup)
            if key not in self.initial_ids:
                self.initial_ids.add(key)
                self.violation("3_launch_once", "instances recorded in two scale_up events: %s" % dup)

    # -- the whole thing --------------------------------------------------------------------------------
    def run(self):
        t0 = time.time()
        for n in range(self.runs):
            self.run_index = n + 1
            fault, kill, runs = self.one_run()
            if not self.quiet:
                r = runs[-1]
                summ = (r.summary or "").replace("\n", " ")[:110] if r.data else "(no output: killed)"
                log("run %3d/%d %5.1fs %-20s %-20s rc=%-4s %s" % (
                    n + 1, self.runs, self.durations[-1], fault, ("armed " + kill) if kill else "", r.rc, summ))
        return self.report(time.time() - t0)

    def report(self, elapsed):
        rep = {
            "seed": self.seed, "runs": self.runs, "elapsed_seconds": round(elapsed, 1),
            "mean_run_seconds": round(sum(self.durations) / max(1, len(self.durations)), 2),
            "config": {"min_nodes": MIN_NODES, "max_nodes": MAX_NODES, "max_scale_up_step": STEP,
                       "scenario": os.path.relpath(SCENARIO, ROOT), "prometheus_timeout": PROM_TIMEOUT},
            "faults_injected": dict(sorted(self.faults.items())),
            "faults_fired": dict(sorted(self.fired.items())),
            "violations": dict(self.violations),
            "violations_total": sum(self.violations.values()),
            "behaviour_violations": dict(self.behaviour),
            "recoveries": dict(sorted(self.recoveries.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "details": self.details,
        }
        return rep


def print_table(rep):
    lines = ["", "chaos: seed %s, %d runs in %.0f s (%.1f s per run)" % (rep["seed"], rep["runs"],
                                                                         rep["elapsed_seconds"],
                                                                         rep["mean_run_seconds"])]
    lines.append("%-34s %8s %8s" % ("fault", "injected", "fired"))
    for k, v in rep["faults_injected"].items():
        lines.append("%-34s %8d %8d" % (k, v, rep["faults_fired"].get(k, 0)))
    lines.append("%-34s %8s" % ("invariant", "violations"))
    for k, v in rep["violations"].items():
        lines.append("%-34s %8d" % (k, v))
    lines.append("%-34s %8s" % ("behaviour check", "violations"))
    for k, v in rep["behaviour_violations"].items():
        lines.append("%-34s %8d" % (k, v))
    lines.append("%-34s %8s" % ("recovery", "count"))
    for k, v in rep["recoveries"].items():
        lines.append("%-34s %8d" % (k, v))
    lines.append("%-34s %8s" % ("outcome", "count"))
    for k, v in rep["outcomes"].items():
        lines.append("%-34s %8d" % (k, v))
    lines.append("TOTAL invariant violations: %d; behaviour violations: %d" % (
        rep["violations_total"], sum(rep["behaviour_violations"].values())))
    print("\n".join(lines), flush=True)


def run_chaos(seed, runs, base_dir, out_path=None, quiet=False):
    ch = Chaos(seed, runs, base_dir, out_path, quiet)
    try:
        ch.start()
        rep = ch.run()
    finally:
        ch.stop()
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as f:
            json.dump(rep, f, indent=2, sort_keys=True)
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description="fault-injection harness of the autoscale playbook (issue 6)")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "chaos.json"))
    ap.add_argument("--work-dir", default=os.path.join(ROOT, "run", "chaos"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs %d: give at least 1 run (make chaos RUNS=N; the default is 300)" % args.runs)
    # SIGTERM/SIGINT stop the local cluster (finally: in run_chaos) instead of leaving it running
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_a: sys.exit(130))
    if os.path.isdir(args.work_dir):
        shutil.rmtree(args.work_dir)
    rep = run_chaos(args.seed, args.runs, args.work_dir, args.out, args.quiet)
    print_table(rep)
    print("wrote %s" % args.out)
    bad = rep["violations_total"] + sum(rep["behaviour_violations"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
