"""Issue 6 (security): secrets, no_log, TLS, bind addresses, file modes, atomic textfile.

* Every module option whose name looks like a secret is ``no_log`` (or explicitly ``no_log=False``
  with a reason in ALLOWED_CLEAR); the role variables that carry secrets are ``no_log`` in the
  argument specs; inventories take secrets only from vault (``vault_*`` in encrypted files) or the
  environment.
* A ``-vvv`` run of the autoscale playbook that LAUNCHES a node (so the rendered user_data with
  the k3s token goes to ec2_instance) and queries Prometheus with a bearer token never prints
  either secret. The secrets reach the playbook from the environment (``lookup('env')``), and the
  test proves they were really used (the fake Prometheus saw the bearer token, the launched
  instance's user_data holds the k3s token).
* TLS verification is on by default with a CA option (k3s_metrics ``validate_certs``/``ca_path``),
  checked against a real HTTPS server with a self-signed certificate.
* Default bind addresses are 127.0.0.1 (local cluster, Prometheus and Grafana roles, compose).
* State and lock directories are created 0700, the state file 0600; the run-metrics textfile is
  written atomically (temp file in the same directory, then rename).
The RBAC ClusterRole's exact verbs/resources are asserted in tests/roles/test_k3s_manifests.py
(test_clusterrole_is_exactly_least_privilege); not duplicated here.
"""
import contextlib
import glob
import http.server
import importlib
import inspect
import json
import os
import re
import ssl
import stat
import subprocess
import threading

import pytest
import yaml

from bad_input_support import FakePrometheus, cluster_results, mock_ec2, run_playbook

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "k3s", "autoscaler")
SECRET_NAME = re.compile(r"(token|password|passwd|secret|credential|private|api_key|_key$|^key$)", re.I)
# options whose names look secret but are not, with the reason (explicit no_log=False in the spec)
ALLOWED_CLEAR = {
    "access_key": "AWS access key ID: an identifier (amazon.aws marks it no_log=False too); the secret is secret_key",
    "token": "k3s_run_lock: the lock's own random ownership token (uuid), not a credential",
}


# --------------------------------------------------------------------------------------------- no_log
class _Captured(Exception):
    pass


def module_specs():
    """{module: argument_spec} captured from each module's main() (AnsibleModule is intercepted)."""
    import ansible.module_utils.basic as basic
    specs = {}
    for path in sorted(glob.glob(os.path.join(COLLECTION, "plugins", "modules", "*.py"))):
        name = os.path.basename(path)[:-3]
        mod = importlib.import_module("ansible_collections.k3s.autoscaler.plugins.modules." + name)
        seen = {}

        def fake_init(self, argument_spec=None, **kw):
            seen["spec"] = argument_spec
            raise _Captured()
        orig = basic.AnsibleModule.__init__
        basic.AnsibleModule.__init__ = fake_init
        try:
            with contextlib.suppress(_Captured):
                mod.main()
        finally:
            basic.AnsibleModule.__init__ = orig
        assert "spec" in seen, "could not capture the argument_spec of %s" % name
        specs[name] = seen["spec"]
    return specs


def _walk(spec, prefix=""):
    for opt, o in spec.items():
        names = [opt] + list(o.get("aliases") or [])
        yield prefix + opt, names, o
        if o.get("options"):
            yield from _walk(o["options"], prefix + opt + ".")


def test_every_secret_like_module_option_is_no_log():
    specs = module_specs()
    assert {"k3s_metrics", "ec2_instance", "k3s_scale_decision", "k3s_scale_event"} <= set(specs)
    checked, problems = [], []
    for module, spec in specs.items():
        for path, names, o in _walk(spec):
            if not any(SECRET_NAME.search(n) for n in names):
                continue
            checked.append("%s.%s" % (module, path))
            if o.get("no_log") is True:
                continue
            leaf = path.rsplit(".", 1)[-1]
            if o.get("no_log") is False and leaf in ALLOWED_CLEAR:
                continue
            problems.append("%s option %s (aliases %s) carries a secret but is not no_log" % (module, path, names[1:]))
    assert not problems, "\n".join(problems)
    # the scan really saw the secret options
    assert "k3s_metrics.bearer_token" in checked and "ec2_instance.secret_key" in checked, checked


def test_the_scan_would_catch_a_secret_option_without_no_log():
    bad = {"opts": {"type": "dict", "options": {"admin_password": {"type": "str"}}}}
    hits = [p for p, names, o in _walk(bad) if any(SECRET_NAME.search(n) for n in names) and o.get("no_log") is not True]
    assert hits == ["opts.admin_password"]


def test_role_secret_variables_are_no_log_and_have_no_default_secret():
    specs = {
        "autoscale": os.path.join(COLLECTION, "roles", "autoscale", "meta", "argument_specs.yml"),
        "grafana": os.path.join(REPO, "roles", "grafana", "meta", "argument_specs.yml"),
    }
    expected = {"autoscale": ["autoscale_k3s_token", "autoscale_prometheus_bearer_token"],
                "grafana": ["grafana_admin_password"]}
    for role, path in specs.items():
        with open(path) as f:
            options = yaml.safe_load(f)["argument_specs"]["main"]["options"]
        for var in expected[role]:
            assert options[var].get("no_log") is True, "%s: %s must be no_log: true" % (path, var)
            assert options[var].get("default") in (None, ""), "%s: %s has a default secret" % (path, var)


def _is_vault_or_env_reference(value):
    return isinstance(value, str) and bool(
        re.fullmatch(r"\{\{\s*(vault_[a-z0-9_]+|lookup\(\s*['\"](ansible\.builtin\.)?env['\"].*\))\s*\}\}", value))


def test_inventories_take_secrets_only_from_vault_or_the_environment():
    seen = 0
    for path in sorted(glob.glob(os.path.join(REPO, "inventories", "*", "**", "*.yml"), recursive=True)):
        with open(path) as f:
            text = f.read()
        if text.lstrip().startswith("$ANSIBLE_VAULT;"):
            assert os.path.basename(path).startswith("vault"), path
            continue
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            if SECRET_NAME.search(str(key)) and not str(key).startswith("vault_"):
                seen += 1
                assert _is_vault_or_env_reference(value), (
                    "%s: %s must come from vault (\"{{ vault_... }}\") or the environment, got %r" % (path, key, value))
            assert not str(key).startswith("vault_"), "%s: %s is a vault_ variable in a clear-text file" % (path, key)
    assert seen >= 4  # k3s token and bearer token in every inventory, grafana password where monitored
    for path in glob.glob(os.path.join(REPO, "inventories", "*", "group_vars", "*", "vault.yml")):
        with open(path) as f:
            assert f.read().startswith("$ANSIBLE_VAULT;"), "%s is not ansible-vault encrypted" % path


# --------------------------------------------------------------------------------------------- -vvv run
K3S_TOKEN = "K10-test-join-token-5f1d3c9a7e::server:0c4b8e2f"
BEARER = "prom-bearer-test-3a9e71c0d4b2"


def test_vvv_run_that_launches_never_prints_the_k3s_token_or_the_bearer_token(tmp_path):
    store = str(tmp_path / "ec2.sqlite")
    ec2 = mock_ec2(store)
    ec2.boot_seconds = 0
    ec2.run_instances(2, {"instance_type": "t3.large", "image_id": "ami-0123456789abcdef0",
                          "tags": {"k3s-autoscaler/cluster": "local", "k3s-autoscaler/node-group": "default"}})
    before = set(i["instance_id"] for i in ec2.list_instances())
    results = cluster_results(nodes=2, pending=3, cpu_percent=60.0, memory_percent=60.0)
    for s, iid in zip(results["nodes"], sorted(before)):
        s["metric"]["provider_id"] = "aws:///us-east-1a/%s" % iid
    ev = {"autoscale_state_file": str(tmp_path / "state" / "state.json"),
          "autoscale_textfile_path": str(tmp_path / "textfile" / "k3s_autoscaler.prom"),
          "autoscale_ec2_mock": {"store": store, "boot_seconds": 0},
          "autoscale_kubeconfig": str(tmp_path / "no-kubeconfig"),
          "autoscale_min_nodes": 1, "autoscale_max_nodes": 5, "autoscale_scale_up_cooldown": 0,
          # secrets from the environment, as production does with vault/env
          "autoscale_k3s_token": "{{ lookup('ansible.builtin.env', 'TEST_K3S_TOKEN') }}",
          "autoscale_prometheus_bearer_token": "{{ lookup('ansible.builtin.env', 'TEST_PROM_BEARER') }}"}
    with FakePrometheus(results=results, rate_window="1m") as prom:
        ev["autoscale_prometheus_url"] = prom.url
        proc = run_playbook(ev, args=["-vvv"], env={
            "LOCAL_CLUSTER_DIR": str(tmp_path), "TEST_K3S_TOKEN": K3S_TOKEN, "TEST_PROM_BEARER": BEARER,
            "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
        auth = set(prom.auth)
    output = proc.stdout + proc.stderr
    # the run really used both secrets
    assert auth == {"Bearer " + BEARER}, auth
    new = [i for i in mock_ec2(store).list_instances() if i["instance_id"] not in before]
    assert new, "the run did not launch (so user_data was never passed)\n" + output[-4000:]
    assert K3S_TOKEN in mock_ec2(store).user_data(new[0]["instance_id"])
    # ... and printed neither, in any form
    for secret in (K3S_TOKEN, BEARER):
        for form in (secret, secret.split("::")[0], json.dumps(secret)[1:-1]):
            assert form not in output, "secret %r leaked in the -vvv output:\n%s" % (
                form, "\n".join(ln for ln in output.splitlines() if form in ln)[:3000])
    assert "ESTABLISH LOCAL CONNECTION" in output  # it really was -vvv


# --------------------------------------------------------------------------------------------- TLS
def test_k3s_metrics_verifies_tls_by_default_and_has_a_ca_option():
    specs = module_specs()
    assert specs["k3s_metrics"]["validate_certs"] == {"type": "bool", "default": True}
    assert specs["k3s_metrics"]["ca_path"]["type"] == "path"
    with open(os.path.join(COLLECTION, "roles", "autoscale", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    assert defaults["autoscale_prometheus_validate_certs"] is True


@pytest.fixture(scope="module")
def https_prometheus(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    fake = FakePrometheus()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    handler = fake.server.RequestHandlerClass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield "https://127.0.0.1:%d" % server.server_address[1], cert
    server.shutdown()
    server.server_close()
    fake.close()


def test_self_signed_prometheus_is_refused_by_default_and_accepted_with_ca_path(https_prometheus):
    from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_common import MetricsError
    from ansible_collections.k3s.autoscaler.plugins.module_utils.metrics_prometheus import collect_prometheus
    url, cert = https_prometheus
    with pytest.raises(MetricsError) as exc:
        collect_prometheus(url, retries=0, timeout=5)
    assert "TLS error" in exc.value.reason and "set ca_path" in exc.value.reason, exc.value.reason
    ok = collect_prometheus(url, retries=0, timeout=5, ca_path=cert)
    assert ok["metrics"]["nodes"] == 3


# --------------------------------------------------------------------------------------------- bind
def test_default_bind_addresses_are_loopback():
    from local_cluster import exporter, kubeapi, prometheus
    assert inspect.signature(kubeapi.KubeAPI.__init__).parameters["host"].default == "127.0.0.1"
    exp_cls = [c for _n, c in inspect.getmembers(exporter, inspect.isclass)
               if "host" in inspect.signature(c.__init__).parameters and c.__module__ == exporter.__name__]
    assert exp_cls and all(inspect.signature(c.__init__).parameters["host"].default == "127.0.0.1" for c in exp_cls)
    assert inspect.signature(prometheus.PrometheusServer.__init__).parameters["host"].default == "127.0.0.1"
    with open(os.path.join(REPO, "roles", "prometheus", "defaults", "main.yml")) as f:
        assert yaml.safe_load(f)["prometheus_listen_address"].startswith("127.0.0.1:")
    with open(os.path.join(REPO, "roles", "grafana", "defaults", "main.yml")) as f:
        assert yaml.safe_load(f)["grafana_http_addr"] == "127.0.0.1"
    with open(os.path.join(REPO, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    text = json.dumps(compose)
    assert "--web.listen-address=127.0.0.1:9090" in text and '"GF_SERVER_HTTP_ADDR": "127.0.0.1"' in text
    for name, svc in compose.get("services", {}).items():
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), "compose service %s publishes %r beyond loopback" % (name, port)
    # nothing in the product binds all interfaces
    for path in glob.glob(os.path.join(REPO, "local_cluster", "*.py")) + \
            glob.glob(os.path.join(REPO, "roles", "*", "defaults", "main.yml")):
        with open(path) as f:
            for ln in f:
                if "0.0.0.0" in ln and "clientCIDR" not in ln:
                    raise AssertionError("%s binds 0.0.0.0: %s" % (path, ln.strip()))


# --------------------------------------------------------------------------------------------- modes, atomic
def test_state_and_lock_directories_are_created_0700_and_the_state_file_0600(tmp_path):
    from ansible_collections.k3s.autoscaler.plugins.module_utils import state as st
    old = os.umask(0o022)
    try:
        path = str(tmp_path / "a" / "state" / "state.json")
        st.update_state(path, lambda s: st.record_event(s, "scale_up", 1, 1700000000.0, instance_ids=["i-1"]))
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        lock = importlib.import_module("ansible_collections.k3s.autoscaler.plugins.module_utils.lock")
        lpath = str(tmp_path / "b" / "locks" / "run.lock")
        res = lock.acquire(lpath, holder_pid=os.getpid(), ttl=60)
        try:
            assert stat.S_IMODE(os.stat(os.path.dirname(lpath)).st_mode) == 0o700
        finally:
            if res.get("token"):
                lock.release(lpath, res["token"])
    finally:
        os.umask(old)


def test_run_metrics_textfile_is_written_atomically(tmp_path, monkeypatch):
    """The .prom file is never written in place: a complete temp file in the same directory (not
    matching *.prom, so node-exporter ignores it) is renamed over it."""
    from ansible_collections.k3s.autoscaler.plugins.module_utils import run_metrics
    path = str(tmp_path / "textfile" / "k3s_autoscaler.prom")
    reg = run_metrics.build_registry("c", "g", "no_action", 1700000010.0, 1700000000.0, desired_nodes=3,
                                     current_nodes=3, pending_pods=0)
    run_metrics.export(reg, path=path)
    with open(path) as f:
        old = f.read()
    renames, opened = [], []
    real_rename, real_replace, real_open = os.rename, os.replace, open

    def spy_rename(src, dst, *a, **kw):
        with real_open(src) as f:
            content = f.read()
        with real_open(dst) as f:
            at_rename = f.read()
        renames.append((str(src), str(dst), content, at_rename))
        return real_rename(src, dst, *a, **kw)

    def spy_open(file, mode="r", *a, **kw):
        opened.append((str(file), mode))
        return real_open(file, mode, *a, **kw)

    monkeypatch.setattr(os, "rename", spy_rename)
    monkeypatch.setattr(os, "replace", lambda s, d: spy_rename(s, d))
    monkeypatch.setattr("builtins.open", spy_open)
    reg2 = run_metrics.build_registry("c", "g", "scale_up", 1700000070.0, 1700000060.0, desired_nodes=4,
                                      current_nodes=3, pending_pods=2)
    run_metrics.export(reg2, path=path)
    monkeypatch.undo()
    assert len(renames) == 1, renames
    src, dst, content, at_rename = renames[0]
    assert dst == path and os.path.dirname(src) == os.path.dirname(path) and not src.endswith(".prom")
    assert at_rename == old, "the .prom file changed before the rename (written in place)"
    assert 'k3s_autoscaler_decision{cluster="c",decision="scale_up",node_group="g"} 1.0' in content
    assert not [f for f, m in opened if f == path and any(c in m for c in "wa+")], opened
    with open(path) as f:
        assert f.read() == content
    assert sorted(os.listdir(os.path.dirname(path))) == ["k3s_autoscaler.prom"]  # no temp file left behind
