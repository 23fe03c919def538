"""``make validate`` (scripts/validate_inventories.py): every inventory of the repo passes; a corpus of bad
inventories (written to tmp dirs) is rejected, and each rejection names the file and the key."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "validate_inventories.py"
PY = REPO / ".venv" / "bin" / "python"

_spec = importlib.util.spec_from_file_location("validate_inventories", SCRIPT)
vi = importlib.util.module_from_spec(_spec)
sys.modules["validate_inventories"] = vi
_spec.loader.exec_module(vi)

GOOD_THRESHOLDS = """\
---
autoscale_min_nodes: 1          # nodes [1]
autoscale_max_nodes: 5          # nodes [10]
autoscale_cpu_threshold: 20     # percent 0-100 [20]
autoscale_memory_threshold: 30  # percent 0-100 [20]
autoscale_scale_up_cooldown: 60 # seconds [300]
autoscale_check_interval: 30    # seconds [60]
"""

HOSTS = """\
---
k3s_clusters:
  hosts:
    c1:
      ansible_connection: local
"""


def make_inventory(root: Path, thresholds: str = GOOD_THRESHOLDS, hosts: str = HOSTS,
                   extra: dict | None = None) -> Path:
    """inventories/<name>/ with hosts.yml, group_vars/k3s_clusters/autoscaler.yml and extra files."""
    inv = root / "inv"
    (inv / "group_vars" / "k3s_clusters").mkdir(parents=True)
    (inv / "hosts.yml").write_text(hosts)
    (inv / "group_vars" / "k3s_clusters" / "autoscaler.yml").write_text(thresholds)
    for rel, text in (extra or {}).items():
        path = inv / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return inv


def run(inv: Path, capsys, *args: str):
    rc = vi.main([str(inv), *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def run_cli(inv: Path, *args: str, env: dict | None = None):
    """The script as its own process: for vault cases, since importing Ansible's vault code switches this process's
    module_utils warnings to controller mode (in-process module tests in the same worker would lose warnings)."""
    environ = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    res = subprocess.run([str(PY), str(SCRIPT), str(inv), *args], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env=dict(environ, **(env or {})))
    return res.returncode, res.stdout, res.stderr


def rejected_lines(err: str):
    return [line for line in err.splitlines() if line.startswith("REJECTED ")]


THRESHOLD_FILE = "group_vars/k3s_clusters/autoscaler.yml"


# --------------------------------------------------------------------------------------------- the repo itself
def test_repo_inventories_pass_as_make_validate_runs_them():
    res = subprocess.run([str(PY), str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"})
    assert res.returncode == 0, res.stdout + res.stderr
    for env in ("local", "staging", "production"):
        assert f"inventories/{env}:" in res.stdout


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_each_environment_keeps_thresholds_in_one_commented_file(env):
    path = REPO / "inventories" / env / THRESHOLD_FILE
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("autoscale_")]
    keys = {ln.split(":")[0] for ln in lines}
    for knob in ("autoscale_min_nodes", "autoscale_max_nodes", "autoscale_cpu_threshold",
                 "autoscale_memory_threshold", "autoscale_pending_pods_threshold",
                 "autoscale_scale_up_cooldown", "autoscale_scale_down_cooldown", "autoscale_check_interval"):
        assert knob in keys, f"{path}: {knob} missing"
    for ln in lines:  # a comment with the unit and the [default] on each knob
        assert "#" in ln and "[" in ln.split("#", 1)[1], f"{path}: knob without unit/default comment: {ln}"
    # no threshold knob is set anywhere else in the inventory
    others = [p for p in (REPO / "inventories" / env).rglob("*.yml") if p != path]
    for other in others:
        text = other.read_text()
        if text.startswith("$ANSIBLE_VAULT"):
            continue
        for knob in keys:
            assert f"\n{knob}:" not in "\n" + text, f"{knob} set in {other} as well as {path}"


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_secrets_are_vaulted(env):
    vault = REPO / "inventories" / env / "group_vars" / "k3s_clusters" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;"), vault
    if env != "local":
        assert not (REPO / "inventories" / env / "vault-password.txt").exists()


def test_local_vault_opens_with_the_documented_demo_password_and_holds_every_secret(tmp_path):
    res = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-vault"), "view", "--vault-password-file",
                          "inventories/local/vault-password.txt", "inventories/local/group_vars/k3s_clusters/vault.yml"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for secret in ("vault_autoscale_k3s_token", "vault_autoscale_prometheus_bearer_token", "vault_aws_access_key",
                   "vault_aws_secret_key", "vault_grafana_admin_password"):
        assert secret in res.stdout


def test_good_inventory_passes(tmp_path, capsys):
    rc, out, err = run(make_inventory(tmp_path), capsys)
    assert rc == 0, err
    assert "1 host(s)" in out


# --------------------------------------------------------------------------------------------- the bad corpus
BAD = {
    "min_greater_than_max": (
        GOOD_THRESHOLDS.replace("autoscale_min_nodes: 1 ", "autoscale_min_nodes: 7 "),
        "autoscale_min_nodes", "greater than autoscale_max_nodes 5"),
    "negative_percentage": (
        GOOD_THRESHOLDS.replace("autoscale_cpu_threshold: 20", "autoscale_cpu_threshold: -5"),
        "autoscale_cpu_threshold", "0-100"),
    "over_100_percentage": (
        GOOD_THRESHOLDS.replace("autoscale_memory_threshold: 30", "autoscale_memory_threshold: 130"),
        "autoscale_memory_threshold", "0-100"),
    "misspelled_key": (
        GOOD_THRESHOLDS.replace("autoscale_cpu_threshold", "autoscale_cpu_treshold"),
        "autoscale_cpu_treshold", "did you mean autoscale_cpu_threshold?"),
    "unknown_key": (
        GOOD_THRESHOLDS + "autoscale_turbo_mode: true\n",
        "autoscale_turbo_mode", "unknown key for role k3s.autoscaler.autoscale"),
    "wrong_type": (
        GOOD_THRESHOLDS.replace("autoscale_max_nodes: 5", "autoscale_max_nodes: lots"),
        "autoscale_max_nodes", "int"),
    "negative_cooldown": (
        GOOD_THRESHOLDS.replace("autoscale_scale_up_cooldown: 60", "autoscale_scale_up_cooldown: -60"),
        "autoscale_scale_up_cooldown", "negative"),
    "bad_choice": (
        GOOD_THRESHOLDS + "autoscale_policy: aggressive\n",
        "autoscale_policy", "threshold"),
    "zero_check_interval": (
        GOOD_THRESHOLDS.replace("autoscale_check_interval: 30", "autoscale_check_interval: 0"),
        "autoscale_check_interval", ">= 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inventory_is_rejected_naming_file_and_key(case, tmp_path, capsys):
    thresholds, key, words = BAD[case]
    inv = make_inventory(tmp_path, thresholds)
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    lines = rejected_lines(err)
    assert len(lines) == 1, err
    line = lines[0]
    assert THRESHOLD_FILE in line, line
    assert f": {key}: " in line, line
    assert words in line, line
    # the line number points at the key
    lineno = int(line.split(THRESHOLD_FILE + ":", 1)[1].split(":", 1)[0])
    assert (inv / THRESHOLD_FILE).read_text().splitlines()[lineno - 1].startswith(key)


def test_min_and_max_in_different_files_names_both(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"host_vars/c1.yml": "autoscale_max_nodes: 0\n"})
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    text = "\n".join(rejected_lines(err))
    # max_nodes 0 is below its minimum (1), named in host_vars/c1.yml; min>max cannot be proven on a bad value
    assert "host_vars/c1.yml:1: autoscale_max_nodes:" in text


def test_host_override_making_min_exceed_max_is_rejected(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"host_vars/c1/limits.yml": "autoscale_max_nodes: 2\n",
                                          "group_vars/all.yml": "autoscale_min_nodes: 1\n"})
    (inv / THRESHOLD_FILE).write_text(GOOD_THRESHOLDS.replace("autoscale_min_nodes: 1 ", "autoscale_min_nodes: 3 "))
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert THRESHOLD_FILE in line and "autoscale_min_nodes" in line
    assert "host_vars/c1/limits.yml:1" in line and "host c1" in line


def test_min_equal_max_is_fine(tmp_path, capsys):
    inv = make_inventory(tmp_path, GOOD_THRESHOLDS.replace("autoscale_min_nodes: 1 ", "autoscale_min_nodes: 5 "))
    assert run(inv, capsys)[0] == 0


def test_every_rejection_is_reported_not_only_the_first(tmp_path, capsys):
    bad = (GOOD_THRESHOLDS.replace("autoscale_cpu_threshold: 20", "autoscale_cpu_threshold: 101")
           .replace("autoscale_memory_threshold", "autoscale_memory_thresold"))
    rc, _out, err = run(make_inventory(tmp_path, bad), capsys)
    assert rc == 1
    keys = sorted(line.split(": ")[1] for line in rejected_lines(err))
    assert keys == ["autoscale_cpu_threshold", "autoscale_memory_thresold"]


def test_knob_in_hosts_yml_group_vars_is_checked(tmp_path, capsys):
    hosts = HOSTS + "  vars:\n    autoscale_max_nodes: -1\n"
    rc, _out, err = run(make_inventory(tmp_path, hosts=hosts), capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "hosts.yml:7: autoscale_max_nodes:" in line


def test_templated_values_are_left_to_run_time_but_keys_still_checked(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"group_vars/k3s_clusters/connection.yml": """\
        autoscale_prometheus_url: "{{ lookup('env', 'PROM') }}"
        autoscale_prometheus_timout: "{{ 5 }}"
        """})
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "connection.yml:2: autoscale_prometheus_timout:" in line
    assert "did you mean autoscale_prometheus_timeout?" in line


def test_unrelated_variables_are_ignored(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"group_vars/all/misc.yml": "ansible_user: x\nvault_foo: 1\nmy_var: -4\n"})
    assert run(inv, capsys)[0] == 0


def test_invalid_yaml_names_the_file(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"group_vars/k3s_clusters/broken.yml": "autoscale_min_nodes: [1\n"})
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    assert "group_vars/k3s_clusters/broken.yml: (file): not valid YAML" in err


def test_vault_file_is_skipped_without_password_and_checked_with_it(tmp_path, capsys):
    inv = make_inventory(tmp_path)
    vault_pw = tmp_path / "pw"
    vault_pw.write_text("test-only-password\n")
    plain = tmp_path / "plain.yml"
    plain.write_text("vault_x: 1\nautoscale_min_nodes: -3\n")
    target = inv / "group_vars" / "k3s_clusters" / "vault.yml"
    res = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-vault"), "encrypt", "--vault-id",
                          f"test@{vault_pw}", "--output", str(target), str(plain)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")})
    assert res.returncode == 0, res.stderr
    rc, out, _err = run_cli(inv)
    assert rc == 0 and "vault.yml: ansible-vault encrypted, no password given; skipped" in out
    rc, _out, err = run_cli(inv, "--vault-password-file", str(vault_pw))
    assert rc == 1
    assert "group_vars/k3s_clusters/vault.yml:2: autoscale_min_nodes:" in err


def test_top_level_role_prefix_is_checked_against_that_roles_spec(tmp_path, capsys):
    roles = tmp_path / "roles"
    (roles / "demo_role" / "meta").mkdir(parents=True)
    (roles / "demo_role" / "meta" / "argument_specs.yml").write_text(textwrap.dedent("""\
        argument_specs:
          main:
            options:
              demo_role_port:
                type: int
                description: TCP port.
                default: 9090
        """))
    inv = make_inventory(tmp_path, extra={"group_vars/all.yml": "demo_role_prot: 1\ndemo_role_port: http\n"})
    rc, _out, err = run(inv, capsys, "--roles", str(roles))
    assert rc == 1
    text = "\n".join(rejected_lines(err))
    assert "group_vars/all.yml:1: demo_role_prot: unknown key for role demo_role; did you mean demo_role_port?" in text
    assert "group_vars/all.yml:2: demo_role_port:" in text


def test_copy_of_repo_inventory_with_a_typo_is_rejected(tmp_path, capsys):
    """The real staging file, with one misspelled knob, is caught (guards the real threshold file format)."""
    inv = tmp_path / "staging"
    shutil.copytree(REPO / "inventories" / "staging", inv)
    path = inv / THRESHOLD_FILE
    path.write_text(path.read_text().replace("autoscale_scale_down_cooldown:", "autoscale_scaledown_cooldown:"))
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "autoscale_scaledown_cooldown" in line and "did you mean autoscale_scale_down_cooldown?" in line


def test_typo_in_the_role_prefix_is_rejected(tmp_path):
    """autoscal_memory_threshold matches no role prefix, so the role would silently use its default."""
    inv = tmp_path / "local"
    shutil.copytree(REPO / "inventories" / "local", inv)
    path = inv / THRESHOLD_FILE
    path.write_text(path.read_text().replace("autoscale_memory_threshold:", "autoscal_memory_threshold:"))
    rc, _out, err = run_cli(inv)  # its vault is decrypted: own process (see run_cli)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "autoscal_memory_threshold: unknown key; did you mean autoscale_memory_threshold?" in line


def test_vault_and_connection_variables_are_not_typos(tmp_path, capsys):
    inv = make_inventory(tmp_path, extra={"group_vars/all/misc.yml":
                                          "vault_autoscale_k3s_token: x\nansible_autoscale_min_nodes: 1\n"})
    assert run(inv, capsys)[0] == 0


# --------------------------------------------------------------------------------------------- playbooks
def _ansible(tool: str, *args: str, **env):
    environ = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"), **env)
    environ.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    return subprocess.run([str(REPO / ".venv" / "bin" / tool), *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_every_inventory_loads_and_playbooks_parse(env):
    res = _ansible("ansible-inventory", "-i", f"inventories/{env}", "--graph")
    assert res.returncode == 0, res.stderr
    assert "@k3s_clusters:" in res.stdout
    if env != "local":
        assert "@monitoring:" in res.stdout
    res = _ansible("ansible-playbook", "--syntax-check", "-i", f"inventories/{env}",
                   "playbooks/site.yml", "playbooks/autoscale.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_site_yml_lists_every_role_under_its_tag():
    res = _ansible("ansible-playbook", "--list-tasks", "-i", "inventories/staging", "playbooks/site.yml")
    assert res.returncode == 0, res.stderr
    for tag in ("prometheus", "grafana", "autoscaler_timer", "k3s_manifests"):
        assert f"TAGS: [{tag}]" in res.stdout


def test_site_yml_rejects_an_unknown_runner_before_deploying_anything():
    res = _ansible("ansible-playbook", "-i", "inventories/local", "playbooks/site.yml",
                   "-e", "site_autoscaler_runner=both")
    assert res.returncode != 0
    assert "site_autoscaler_runner is both" in res.stdout
    assert "Deploy" not in res.stdout  # failed in the first play; no role ran


# --------------------------------------------------------------------------------------------- the run's own rules
# make validate runs the collection's policy.validate_config (the Decide step's validation) over each host's merged
# values, so a green validate means the run's config validation passes.
NODE_GROUPS = """\
autoscale_policy: binpacking
autoscale_node_groups:
  - name: general
    instance_type: t3.large
    min_nodes: 1
    max_nodes: 4
  - name: big
    instance_type: m5.xlarge
    min_nodes: 0
    max_nodes: 2
    labels:
      size: big
"""


def _line_of(inv: Path, rel: str, needle: str) -> int:
    return next(i for i, ln in enumerate((inv / rel).read_text().splitlines(), 1) if needle in ln)


def test_valid_node_groups_pass(tmp_path, capsys):
    rc, _out, err = run(make_inventory(tmp_path, GOOD_THRESHOLDS + NODE_GROUPS), capsys)
    assert rc == 0, err


@pytest.mark.parametrize("bad, key, message, at", [
    (("    labels:\n      size: big\n", "    labelz:\n      size: big\n"),
     "autoscale_node_groups[1].labelz",
     "unknown key 'labelz'; valid keys are labels, instance_type, max_nodes, min_nodes, name", "labelz:"),
    (("    min_nodes: 0\n    max_nodes: 2\n", "    min_nodes: 3\n    max_nodes: 1\n"),
     "autoscale_node_groups[1].min_nodes", "node group big: min_nodes (3) must be <= max_nodes (1)", "min_nodes: 3"),
    (("m5.xlarge", "m5.nonexistent"),
     "autoscale_node_groups[1].instance_type", "unknown EC2 instance type 'm5.nonexistent' for node group big",
     "m5.nonexistent"),
    (("  - name: big\n", "  - name: general\n"),
     "autoscale_node_groups", "node group names must be unique; general appears twice", "autoscale_node_groups:"),
])
def test_bad_node_group_is_rejected_with_file_line_and_key(tmp_path, capsys, bad, key, message, at):
    old, new = bad
    assert old in NODE_GROUPS
    inv = make_inventory(tmp_path, GOOD_THRESHOLDS + NODE_GROUPS.replace(old, new))
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{THRESHOLD_FILE}:{_line_of(inv, THRESHOLD_FILE, at)}: {key}: {message}" in line, line
    assert "k3s.autoscaler.k3s_scale_decision" in line


def test_every_bad_node_group_is_reported(tmp_path, capsys):
    groups = NODE_GROUPS.replace("instance_type: t3.large", "instance_type: m5.nonexistent") \
        .replace("    labels:", "    labelz:")
    rc, _out, err = run(make_inventory(tmp_path, GOOD_THRESHOLDS + groups), capsys)
    assert rc == 1
    keys = sorted(line.split(": ")[1] for line in rejected_lines(err))
    assert keys == ["autoscale_node_groups[0].instance_type", "autoscale_node_groups[1].labelz"], err


def test_unknown_instance_type_of_the_implicit_group_is_rejected(tmp_path, capsys):
    """Without autoscale_node_groups the run builds one group of autoscale_instance_type, with either policy."""
    inv = make_inventory(tmp_path, GOOD_THRESHOLDS + "autoscale_instance_type: m5.nonexistent\n")
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{THRESHOLD_FILE}:8: autoscale_instance_type: unknown EC2 instance type 'm5.nonexistent'" in line, line


def test_min_nodes_above_the_default_max_nodes_is_rejected(tmp_path, capsys):
    """autoscale_max_nodes unset (role default 10): the run's min_nodes <= max_nodes check still applies."""
    thresholds = GOOD_THRESHOLDS.replace("autoscale_max_nodes: 5          # nodes [10]\n", "") \
        .replace("autoscale_min_nodes: 1 ", "autoscale_min_nodes: 15 ")
    rc, _out, err = run(make_inventory(tmp_path, thresholds), capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{THRESHOLD_FILE}:2: autoscale_min_nodes: min_nodes (15) must be <= max_nodes (10)" in line, line


def test_node_groups_in_hosts_yml_are_located(tmp_path, capsys):
    hosts = HOSTS + "  vars:\n    autoscale_node_groups:\n      - {name: a, instance_type: t3.large, max_nodes: 2, " \
                    "labelz: {}}\n"
    rc, _out, err = run(make_inventory(tmp_path, hosts=hosts), capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "hosts.yml:8: autoscale_node_groups[0].labelz: unknown key 'labelz'" in line, line


def test_templated_values_are_not_guessed_by_the_policy_check(tmp_path, capsys):
    """A template is resolved at run time: neither it nor a value it would be compared with is rejected here."""
    thresholds = GOOD_THRESHOLDS.replace("autoscale_max_nodes: 5 ", "autoscale_max_nodes: \"{{ max_n }}\" ") \
        .replace("autoscale_min_nodes: 1 ", "autoscale_min_nodes: 15 ")
    extra = {"group_vars/k3s_clusters/groups.yml": """\
        autoscale_instance_type: "{{ itype }}"
        autoscale_node_groups: "{{ groups_from_elsewhere }}"
        """}
    rc, _out, err = run(make_inventory(tmp_path, thresholds, extra=extra), capsys)
    assert rc == 0, err


def test_a_value_rejected_per_key_is_not_reported_twice(tmp_path, capsys):
    rc, _out, err = run(make_inventory(tmp_path, GOOD_THRESHOLDS + "autoscale_scale_down_unneeded_time: -5\n"),
                        capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "autoscale_scale_down_unneeded_time: -5.0 is negative; must be >= 0" in line


def test_policy_check_runs_only_where_the_autoscale_role_runs(tmp_path, capsys):
    hosts = HOSTS + "monitoring:\n  hosts:\n    mon1:\n"
    inv = make_inventory(tmp_path, hosts=hosts, extra={"host_vars/mon1.yml": "autoscale_instance_type: x9.huge\n"})
    assert run(inv, capsys)[0] == 0
    (inv / "host_vars" / "c1.yml").write_text("autoscale_instance_type: x9.huge\n")
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert "host_vars/c1.yml:1: autoscale_instance_type: unknown EC2 instance type 'x9.huge'" in line


def test_policy_config_mapping_matches_what_the_role_passes_to_the_decide_step():
    """POLICY_CONFIG (role variable -> k3s_scale_decision option) is what roles/autoscale/tasks/cycle.yml passes."""
    cycle = REPO / "collections" / "ansible_collections" / "k3s" / "autoscaler" / "roles" / "autoscale" / "tasks" / \
        "cycle.yml"

    def tasks(items):
        for task in items or []:
            yield task
            for key in ("block", "rescue", "always"):
                yield from tasks(task.get(key))

    (args,) = [t["k3s.autoscaler.k3s_scale_decision"] for t in tasks(yaml.safe_load(cycle.read_text()))
               if "k3s.autoscaler.k3s_scale_decision" in t]
    passed = {}
    for option, value in args.items():
        match = re.fullmatch(r"\{\{ (autoscale_\w+)(?: or omit)? \}\}", str(value))
        if match:
            passed[match.group(1)] = option
    policy = vi._policy_module()
    expected = {var: opt for var, opt in passed.items() if opt in policy.CONFIG_KEYS}
    assert vi.POLICY_CONFIG == expected


# --------------------------------------------------------------------------------------------- percent vs ratio
@pytest.mark.parametrize("key, value", [("autoscale_cpu_threshold", 0.2), ("autoscale_memory_threshold", 0.5)])
def test_percent_threshold_written_as_a_ratio_is_rejected(tmp_path, capsys, key, value):
    thresholds = GOOD_THRESHOLDS.replace(f"{key}: ", f"{key}: {value}  # ")
    inv = make_inventory(tmp_path, thresholds)
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{THRESHOLD_FILE}:{_line_of(inv, THRESHOLD_FILE, key)}: {key}: {value} is a percent 0-100, " \
           f"not a ratio: 20 means 20 %; {value} would mean {value} %, write {value * 100:g} for {value * 100:g} %" \
           in line, line


@pytest.mark.parametrize("value", [0, 1, 100])
def test_percent_threshold_0_1_and_100_are_allowed(tmp_path, capsys, value):
    thresholds = GOOD_THRESHOLDS.replace("autoscale_cpu_threshold: 20", f"autoscale_cpu_threshold: {value}")
    assert run(make_inventory(tmp_path, thresholds), capsys)[0] == 0


@pytest.mark.parametrize("value, message", [
    (50, "50.0 is a ratio 0-1 (0.5 means 50 %), not a percent; must be > 0 and <= 1, e.g. 0.5 for 50 %"),
    (0, "0.0 is a ratio 0-1 (0.5 means 50 %), not a percent; must be > 0 and <= 1"),
    (-0.5, "-0.5 is a ratio 0-1 (0.5 means 50 %), not a percent; must be > 0 and <= 1"),
])
def test_ratio_written_as_a_percent_is_rejected(tmp_path, capsys, value, message):
    inv = make_inventory(tmp_path, GOOD_THRESHOLDS + f"autoscale_scale_down_utilization_threshold: {value}\n")
    rc, _out, err = run(inv, capsys)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{THRESHOLD_FILE}:8: autoscale_scale_down_utilization_threshold: {message}" in line, line


@pytest.mark.parametrize("value", [0.05, 0.5, 1])
def test_ratio_within_0_1_is_allowed(tmp_path, capsys, value):
    inv = make_inventory(tmp_path, GOOD_THRESHOLDS + f"autoscale_scale_down_utilization_threshold: {value}\n")
    assert run(inv, capsys)[0] == 0


# --------------------------------------------------------------------------------------------- vault passwords
def _vaulted_inventory(tmp_path: Path, password: str = "right-password") -> Path:
    inv = make_inventory(tmp_path)
    pw = tmp_path / "right.pw"
    pw.write_text(password + "\n")
    plain = tmp_path / "plain.yml"
    plain.write_text("vault_x: 1\n")
    res = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-vault"), "encrypt", "--vault-password-file",
                          str(pw), "--output", str(inv / "group_vars" / "k3s_clusters" / "vault.yml"), str(plain)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")})
    assert res.returncode == 0, res.stderr
    (tmp_path / "wrong.pw").write_text("wrong-password\n")
    return inv


VAULT_FILE = "group_vars/k3s_clusters/vault.yml"


def test_wrong_vault_password_flag_is_a_rejection_naming_the_file(tmp_path):
    inv = _vaulted_inventory(tmp_path)
    assert run_cli(inv, "--vault-password-file", str(tmp_path / "right.pw"))[0] == 0
    rc, out, err = run_cli(inv, "--vault-password-file", str(tmp_path / "wrong.pw"))
    assert rc == 1 and "OK" not in out
    (line,) = rejected_lines(err)
    assert f"{VAULT_FILE}: (vault): ansible-vault encrypted and the password from --vault-password-file " \
           f"{tmp_path / 'wrong.pw'} does not open it" in line, line


def test_wrong_vault_password_from_the_environment_is_a_rejection(tmp_path):
    inv = _vaulted_inventory(tmp_path)
    assert run_cli(inv, env={"ANSIBLE_VAULT_PASSWORD_FILE": str(tmp_path / "right.pw")})[0] == 0
    rc, _out, err = run_cli(inv, env={"ANSIBLE_VAULT_PASSWORD_FILE": str(tmp_path / "wrong.pw")})
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{VAULT_FILE}: (vault): ansible-vault encrypted and the password from $ANSIBLE_VAULT_PASSWORD_FILE " \
           f"({tmp_path / 'wrong.pw'}) does not open it" in line, line


def test_missing_vault_password_file_is_a_rejection(tmp_path):
    inv = _vaulted_inventory(tmp_path)
    rc, _out, err = run_cli(inv, "--vault-password-file", str(tmp_path / "nope.pw"))
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{tmp_path / 'nope.pw'}: (vault password): cannot read the vault password file given by " \
           "--vault-password-file" in line, line


def test_the_inventorys_own_password_file_must_open_its_vault_too(tmp_path):
    inv = _vaulted_inventory(tmp_path)
    (inv / "vault-password.txt").write_text("right-password\n")
    assert run_cli(inv)[0] == 0
    (inv / "vault-password.txt").write_text("stale-password\n")
    rc, _out, err = run_cli(inv)
    assert rc == 1
    (line,) = rejected_lines(err)
    assert f"{VAULT_FILE}: (vault): ansible-vault encrypted and the password from " in line \
        and "vault-password.txt (the inventory's own) does not open it" in line, line
