"""Issue 6: the bad-input corpus (``tests/corpus/<kind>/<case>.yaml``, one malformed input per file).

Every case file holds ``kind``, ``description``, ``input`` and ``expect``: ``expect.error`` is a
regular expression the error message must match (it includes the field / query / file name and
the reason), and for some kinds ``expect.key`` (inventory key) or ``expect.query_name``
(k3s_metrics query key or Kubernetes API object). Kinds and how they are driven:

* ``inventory``  - ``input.vars`` (written over a valid group_vars file) or ``input.raw`` (the whole
  file) in a tmp inventory, through ``scripts/validate_inventories.py`` (``make validate``): exit 1
  and a ``REJECTED <file>: <key>: <message>`` line.
* ``module``     - ``input.module`` + ``input.args`` (``@STORE@``, ``@STATE@``, ``@CORRUPT_STATE@``,
  ``@PROM@``, ``@CLOSED_URL@``, ``@TEXTFILE@`` are substituted). ``via: ansible`` cases run through
  REAL Ansible (all in one ``ansible-playbook -i localhost, -c local`` process, one task each);
  ``via: module`` cases run the module's ``main()`` in-process with ``patch_module_args``
  (the same AnsibleModule validation, without the process start-up). The task must fail with
  ``msg`` matching ``expect.error``.
* ``prometheus`` - ``input.faults`` served by a fake Prometheus (``bad_input_support.FakePrometheus``;
  every other query answers a healthy 3-node cluster): k3s_metrics fails, ``query_name`` is
  ``expect.query_name``, the message names the PromQL and matches ``expect.error``.
* ``state``      - the state file content (``text``, ``hex`` bytes, ``json``, ``events: N``
  generated events, or a ``directory``): ``load_state`` raises StateError, and both
  k3s_scale_decision and k3s_scale_event (without ``repair``) fail with that message and leave the
  file byte-for-byte unchanged (never a silent reset).
* ``kubeconfig`` - k3s_metrics ``source: kubernetes`` with that kubeconfig (``missing``, ``text``
  with ``@SERVER@`` = a closed port or a fake API server answering 401/403/HTML) fails naming
  ``expect.query_name`` (``kubeconfig`` or the API object) and matching ``expect.error``.

No scaling action, for every case: a sentinel mock-EC2 store (3 running instances) and a valid
state file are snapshotted before and compared after each case: no instance launched or
terminated, no state written. Module failures happen before any action (the role turns a failed
k3s_metrics/k3s_scale_decision into a ``no_action`` hold, see tests/test_public_report_cases.py).
"""
import contextlib
import glob
import importlib
import importlib.util
import io
import json
import os
import re
import sys

import pytest
import yaml

from bad_input_support import FakePrometheus, closed_port_url, mock_ec2, run_tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "tests", "corpus")
KINDS = ("inventory", "module", "prometheus", "state", "kubeconfig")

GOOD_VARS = {
    "autoscale_min_nodes": 1, "autoscale_max_nodes": 5, "autoscale_cpu_threshold": 20,
    "autoscale_memory_threshold": 20, "autoscale_scale_up_cooldown": 60, "autoscale_scale_down_cooldown": 120,
    "autoscale_prometheus_url": "http://127.0.0.1:9090", "autoscale_check_interval": 30,
}
HOSTS = "k3s_clusters:\n  hosts:\n    c1:\n      ansible_connection: local\n"
VALID_STATE = {"version": 1, "last_scale_up": 1700000000.0, "last_scale_down": None,
               "events": [{"time": 1700000000.0, "direction": "scale_up", "count": 1, "instance_ids": ["i-0abc"],
                           "node_names": [], "reason": "seed"}]}


def _load_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*", "*.yaml"))):
        with open(path) as f:
            data = yaml.safe_load(f)
        data["id"] = "%s/%s" % (os.path.basename(os.path.dirname(path)), os.path.basename(path)[:-5])
        cases.append(data)
    return cases


CASES = _load_cases()


def cases_of(kind):
    return [pytest.param(c, id=c["id"]) for c in CASES if c["kind"] == kind]


def test_corpus_has_at_least_50_cases_of_every_kind():
    assert len(CASES) >= 50, len(CASES)
    for case in CASES:
        assert case["kind"] in KINDS and case["id"].startswith(case["kind"] + "/"), case["id"]
        assert case["expect"]["error"] and case["description"], case["id"]
        re.compile(case["expect"]["error"])
    counts = dict((k, sum(1 for c in CASES if c["kind"] == k)) for k in KINDS)
    assert all(n >= 5 for n in counts.values()), counts
    assert sum(1 for c in CASES if c["kind"] == "module" and c["input"]["via"] == "ansible") >= 10


# --------------------------------------------------------------------------------------------- world
class World(object):
    """Sentinel EC2 store + state files + fake Prometheus shared by the cases."""

    def __init__(self, base):
        self.base = str(base)
        self.store = os.path.join(self.base, "ec2.sqlite")
        self.state = os.path.join(self.base, "state", "state.json")
        self.corrupt = os.path.join(self.base, "state", "corrupt.json")
        self.textfile = os.path.join(self.base, "textfile", "k3s_autoscaler.prom")
        os.makedirs(os.path.dirname(self.state))
        with open(self.state, "w") as f:
            json.dump(VALID_STATE, f)
        with open(self.corrupt, "w") as f:
            f.write('{"version": 1, "last_sc')
        ec2 = mock_ec2(self.store)
        ec2.run_instances(3, {"instance_type": "t3.large", "image_id": "ami-0123456789abcdef0",
                              "tags": {"k3s-autoscaler/cluster": "local", "k3s-autoscaler/node-group": "default"}})
        self.prom = FakePrometheus()
        self.closed = closed_port_url()
        self.before = self.snapshot()

    def subst(self, value):
        if isinstance(value, dict):
            return dict((k, self.subst(v)) for k, v in value.items())
        if isinstance(value, list):
            return [self.subst(v) for v in value]
        if isinstance(value, str):
            for k, v in (("@STORE@", self.store), ("@CORRUPT_STATE@", self.corrupt), ("@STATE@", self.state),
                         ("@PROM@", self.prom.url), ("@CLOSED_URL@", self.closed), ("@TEXTFILE@", self.textfile)):
                value = value.replace(k, v)
        return value

    def snapshot(self):
        """(instances {id: active|gone}, state bytes, corrupt-state bytes, textfile exists)."""
        insts = dict((i["instance_id"], "active" if i["state"]["name"] in ("pending", "running") else "gone")
                     for i in mock_ec2(self.store).list_instances())
        with open(self.state, "rb") as f:
            st = f.read()
        with open(self.corrupt, "rb") as f:
            corrupt = f.read()
        return insts, st, corrupt, os.path.exists(self.textfile)

    def assert_no_action(self, case):
        after = self.snapshot()
        assert after[0] == self.before[0], "%s: EC2 instances changed: %r -> %r" % (case["id"], self.before[0], after[0])
        assert after[1] == self.before[1], "%s: the state file was written" % case["id"]
        assert after[2] == self.before[2], "%s: the corrupt state file was touched (silent reset?)" % case["id"]
        assert after[3] == self.before[3], "%s: the run-metrics textfile was written" % case["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("corpus"))
    assert len(w.before[0]) == 3 and set(w.before[0].values()) == {"active"}
    yield w
    w.prom.close()


def run_module_inprocess(module, args):
    """Run ``k3s.autoscaler.<module>``'s main() in-process as AnsibleModule would; return its JSON result."""
    from ansible.module_utils.testing import patch_module_args
    mod = importlib.import_module("ansible_collections.k3s.autoscaler.plugins.modules.%s" % module)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            mod.main()
        except SystemExit:
            pass
    return json.loads(out.getvalue())


def assert_failed_with(case, result):
    assert result.get("failed") is True, "%s: the module did not fail: %r" % (case["id"], result)
    msg = result.get("msg") or ""
    assert re.search(case["expect"]["error"], msg, re.S), "%s: %r does not match %r" % (
        case["id"], msg, case["expect"]["error"])
    assert "metrics" not in result and "decision" not in result, "%s: a failed module returned a result" % case["id"]


# --------------------------------------------------------------------------------------------- inventory
_spec = importlib.util.spec_from_file_location("validate_inventories_corpus",
                                               os.path.join(REPO, "scripts", "validate_inventories.py"))
vi = importlib.util.module_from_spec(_spec)
sys.modules["validate_inventories_corpus"] = vi
_spec.loader.exec_module(vi)


@pytest.mark.parametrize("case", cases_of("inventory"))
def test_inventory_vars(case, world, tmp_path, capsys):
    inv = tmp_path / "inv"
    (inv / "group_vars" / "k3s_clusters").mkdir(parents=True)
    (inv / "hosts.yml").write_text(HOSTS)
    if "raw" in case["input"]:
        text = case["input"]["raw"]
    else:
        merged = dict(GOOD_VARS)
        merged.update(case["input"]["vars"])
        text = yaml.safe_dump(merged)
    vars_file = inv / "group_vars" / "k3s_clusters" / "autoscaler.yml"
    vars_file.write_text(text)
    rc = vi.main([str(inv)])
    err = capsys.readouterr().err
    assert rc == 1, "%s: accepted\n%s" % (case["id"], err)
    lines = [ln for ln in err.splitlines() if ln.startswith("REJECTED ")]
    key = case["expect"]["key"]
    hit = [ln for ln in lines if str(vars_file) in ln and (": %s: " % key) in ln
           and re.search(case["expect"]["error"], ln)]
    assert hit, "%s: no rejection naming %s and the key %s matching %r:\n%s" % (
        case["id"], vars_file, key, case["expect"]["error"], err)
    world.assert_no_action(case)


def test_the_inventory_corpus_base_is_valid(tmp_path, capsys):
    """The base the inventory cases modify is accepted: each rejection is caused by the case alone."""
    inv = tmp_path / "inv"
    (inv / "group_vars" / "k3s_clusters").mkdir(parents=True)
    (inv / "hosts.yml").write_text(HOSTS)
    (inv / "group_vars" / "k3s_clusters" / "autoscaler.yml").write_text(yaml.safe_dump(GOOD_VARS))
    assert vi.main([str(inv)]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------------------------- module args
@pytest.fixture(scope="module")
def ansible_results(world):
    """All ``via: ansible`` module cases in ONE ansible-playbook run: {case id: task result}."""
    cases = [c for c in CASES if c["kind"] == "module" and c["input"]["via"] == "ansible"]
    results = run_tasks([(c["input"]["module"], world.subst(c["input"]["args"])) for c in cases])
    return dict((c["id"], r) for c, r in zip(cases, results))


@pytest.mark.parametrize("case", cases_of("module"))
def test_module_args(case, world, ansible_results):
    if case["input"]["via"] == "ansible":
        result = ansible_results[case["id"]]
    else:
        result = run_module_inprocess(case["input"]["module"], world.subst(case["input"]["args"]))
    assert_failed_with(case, result)
    assert not result.get("changed"), case["id"]
    world.assert_no_action(case)


# --------------------------------------------------------------------------------------------- prometheus
@pytest.mark.parametrize("case", cases_of("prometheus"))
def test_prometheus_bodies(case, world):
    with FakePrometheus(faults=case["input"]["faults"]) as prom:
        result = run_module_inprocess("k3s_metrics", {"prometheus_url": prom.url, "retries": 0, "timeout": 5})
        asked = list(prom.seen)
    assert_failed_with(case, result)
    assert result["query_name"] == case["expect"]["query_name"], (case["id"], result)
    assert re.search(case["expect"]["error"], result["reason"], re.S), (case["id"], result["reason"])
    # the message names the query key and its PromQL
    assert result["msg"].startswith("k3s_metrics: %s [" % result["query_name"]), result["msg"]
    assert result["query"] and result["query"] in result["msg"], result
    assert "?" not in asked, "k3s_metrics sent a PromQL the fake does not know: update bad_input_support"
    world.assert_no_action(case)


def test_fake_prometheus_healthy_cluster_is_accepted(world):
    """Without a fault the fake answers a valid 3-node cluster, so each case fails because of its fault."""
    result = run_module_inprocess("k3s_metrics", {"prometheus_url": world.prom.url, "retries": 0})
    assert not result.get("failed"), result
    assert result["metrics"]["nodes"] == 3 and result["metrics"]["avg_cpu"] == 50.0


# --------------------------------------------------------------------------------------------- state files
def _write_state(case, path):
    inp = case["input"]
    if inp.get("directory"):
        os.makedirs(path)
        return
    if "text" in inp:
        data = inp["text"].encode("utf-8")
    elif "hex" in inp:
        data = bytes.fromhex(inp["hex"].replace(" ", ""))
    elif "events" in inp:
        ev = {"time": 1700000000.0, "direction": "scale_up", "count": 1, "instance_ids": [], "node_names": [],
              "reason": ""}
        data = json.dumps(dict(VALID_STATE, events=[ev] * inp["events"])).encode("utf-8")
    else:
        data = json.dumps(inp["json"]).encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)


def _fingerprint(path):
    if os.path.isdir(path):
        return ("dir", sorted(os.listdir(path)))
    with open(path, "rb") as f:
        return ("file", f.read())


@pytest.mark.parametrize("case", cases_of("state"))
def test_state_files(case, world, tmp_path):
    from ansible_collections.k3s.autoscaler.plugins.module_utils.state import StateError, load_state
    path = str(tmp_path / "state.json")
    _write_state(case, path)
    before = _fingerprint(path)
    siblings = sorted(os.listdir(str(tmp_path)))
    with pytest.raises(StateError) as exc:
        load_state(path)
    assert path in str(exc.value) and re.search(case["expect"]["error"], str(exc.value)), (case["id"], str(exc.value))
    metrics = {"nodes": 3, "pending_pods": 5, "avg_cpu": 1.0, "avg_memory": 1.0}
    decision = run_module_inprocess("k3s_scale_decision", {"metrics": metrics, "min_nodes": 1, "max_nodes": 5,
                                                           "state_file": path})
    assert_failed_with(case, decision)
    event = run_module_inprocess("k3s_scale_event", {"state_file": path, "direction": "scale_up", "count": 1})
    assert_failed_with(case, event)
    assert _fingerprint(path) == before, "%s: the state file was changed (silent reset)" % case["id"]
    assert sorted(os.listdir(str(tmp_path))) == siblings, "%s: files appeared next to the state" % case["id"]
    world.assert_no_action(case)


# --------------------------------------------------------------------------------------------- kubeconfigs
@pytest.mark.parametrize("case", cases_of("kubeconfig"))
def test_kubeconfigs(case, world, tmp_path):
    inp = case["input"]
    path = str(tmp_path / "kubeconfig")
    server = None
    if inp.get("server") in ("401", "403"):
        code = int(inp["server"])
        server = FakePrometheus(faults={"*": {"status": code, "json": {
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": "Unauthorized" if code == 401 else "Forbidden",
            "message": "Unauthorized" if code == 401 else 'nodes is forbidden: User "x" cannot list resource "nodes"'}}})
    elif inp.get("server") == "html":
        server = FakePrometheus(faults={"*": {"status": 200, "body": "<html>login</html>", "content_type": "text/html"}})
    url = server.url if server else closed_port_url()
    if not inp.get("missing"):
        with open(path, "w") as f:
            f.write(inp["text"].replace("@SERVER@", url))
    args = {"source": "kubernetes", "kubeconfig": path, "timeout": 5}
    if inp.get("context"):
        args["context"] = inp["context"]
    try:
        result = run_module_inprocess("k3s_metrics", args)
    finally:
        if server:
            server.close()
    assert_failed_with(case, result)
    assert result["query_name"] == case["expect"]["query_name"], (case["id"], result)
    assert re.search(case["expect"]["error"], result["reason"], re.S), (case["id"], result["reason"])
    world.assert_no_action(case)


# --------------------------------------------------------------------------------------------- decision + kubeconfig
DECISION_KUBECONFIG = [
    ("missing", None, r"kubeconfig file .*/kubeconfig does not exist"),
    ("not_yaml", "clusters: [unclosed\n  - {x: ", r"kubeconfig file .* is not valid YAML"),
    ("unreachable", "closed", r"cannot reach the API server"),
]


@pytest.mark.parametrize("name,text,expected", DECISION_KUBECONFIG, ids=[c[0] for c in DECISION_KUBECONFIG])
def test_scale_decision_bad_kubeconfig_blocks_the_removal_with_a_clear_warning(name, text, expected, world, tmp_path):
    """k3s_scale_decision takes a kubeconfig only to list scale-down candidates' pods (binpacking): a bad one
    never fails open - nothing is removed and a warning names the kubeconfig problem."""
    import time
    now = time.time()
    path = str(tmp_path / "kubeconfig")
    if text == "closed":
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
               "clusters": [{"name": "k", "cluster": {"server": closed_port_url()}}],
               "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
               "users": [{"name": "u", "user": {"token": "x"}}]}
        text = yaml.safe_dump(cfg)
    if text is not None:
        with open(path, "w") as f:
            f.write(text)
    nodes = [{"name": "node-%d" % i, "instance_id": "i-%017x" % (i + 1), "instance_type": "t3.large", "ready": True,
              "unschedulable": False, "control_plane": False, "allocatable_cpu_cores": 2.0,
              "allocatable_memory_bytes": 8 * 1024 ** 3, "requested_cpu_cores": 0.3,
              "requested_memory_bytes": 1024 ** 3 // 4, "pods": 2, "cpu_percent": 5.0, "memory_percent": 5.0}
             for i in range(3)]
    state = str(tmp_path / "state.json")
    with open(state, "w") as f:
        json.dump({"version": 1, "last_scale_up": None, "last_scale_down": None, "events": [],
                   "unneeded": dict((n["name"], now - 5000) for n in nodes)}, f)
    r = run_module_inprocess("k3s_scale_decision", {
        "metrics": {"nodes": 3, "pending_pods": 0, "avg_cpu": 5.0, "avg_memory": 5.0}, "nodes_detail": nodes,
        "pending_pods_detail": [], "policy": "binpacking", "instance_type": "t3.large", "min_nodes": 1,
        "max_nodes": 5, "state_file": state, "kubeconfig": path, "scale_down_delay_after_add": 0})
    assert not r.get("failed"), r
    assert r["decision"] == "no_action" and r["terminate_instance_ids"] == [], r["reason"]
    warnings = json.dumps(r.get("warnings"))
    assert re.search(expected, warnings) and "no node is removed this run" in warnings, warnings
    world.assert_no_action({"id": "decision-kubeconfig/" + name})
