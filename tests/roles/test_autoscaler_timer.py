"""roles/autoscaler_timer: run the role (ansible-playbook, localhost) into a temporary prefix, then check the
installed units with `systemd-analyze verify`, the timer's interval from inventory, the hardening, the 0600
secrets file, the flock guard against overlapping runs, the validate: step and the preflight asserts.
systemd is not PID 1 here: the role installs the units and says it did not start the timer."""
import fcntl
import os
import pathlib
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")

PLAY = """\
- name: Install the autoscaler timer
  hosts: localhost
  gather_facts: false
  roles:
    - role: autoscaler_timer
"""


def role_vars(prefix, **extra):
    base = {
        "autoscaler_timer_unit_dir": f"{prefix}/etc/systemd/system",
        "autoscaler_timer_state_dir": f"{prefix}/var/lib/k3s-autoscaler",
        "autoscaler_timer_textfile_dir": f"{prefix}/var/lib/node_exporter/textfile_collector",
        "autoscaler_timer_env_file": f"{prefix}/etc/k3s-autoscaler/autoscaler.env",
        "autoscaler_timer_project_dir": str(ROOT),
        "autoscaler_timer_ansible_playbook": str(VENV_BIN / "ansible-playbook"),
        "autoscaler_timer_inventory": "inventories/local",
        "autoscaler_timer_user": "root",
        "autoscaler_timer_group": "root",
        "autoscaler_timer_create_user": False,
    }
    base.update(extra)
    return base


def run_role(tmp_path, *args, **extra):
    prefix = tmp_path / "root"
    (prefix / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(role_vars(prefix, **extra)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
                           "-e", f"@{tmp_path / 'vars.yml'}", str(tmp_path / "play.yml"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return proc, prefix


def unit_lines(path):
    return path.read_text().splitlines()


def directive(path, key):
    values = [line.split("=", 1)[1] for line in unit_lines(path) if line.startswith(key + "=")]
    assert len(values) == 1, f"{key} in {path}: {values}"
    return values[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autoscaler_timer")
    # The state directory exists already with a too-open mode (as an older role left it): the role must fix it.
    (tmp / "root/var/lib/k3s-autoscaler").mkdir(parents=True)
    (tmp / "root/var/lib/k3s-autoscaler").chmod(0o750)
    proc, prefix = run_role(tmp, autoscale_check_interval=15, autoscaler_timer_extra_args=["--syntax-check"],
                            autoscaler_timer_environment={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
                                                          "AWS_SECRET_ACCESS_KEY": 'se"cr$et'})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    units = prefix / "etc/systemd/system"
    return {"proc": proc, "prefix": prefix, "service": units / "k3s-autoscaler.service",
            "timer": units / "k3s-autoscaler.timer", "env": prefix / "etc/k3s-autoscaler/autoscaler.env"}


@needs_systemd_analyze
def test_systemd_analyze_verify_is_clean(installed):
    proc = subprocess.run([SYSTEMD_ANALYZE, "verify", str(installed["service"]), str(installed["timer"])],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_timer_interval_comes_from_the_inventory_check_interval(installed):
    timer = installed["timer"]
    assert directive(timer, "OnUnitActiveSec") == "15"
    assert directive(timer, "OnActiveSec") == "15"  # the first run; OnUnitActiveSec alone never fires
    assert directive(timer, "RandomizedDelaySec") == "5"
    assert directive(timer, "Persistent") == "true"
    assert directive(timer, "AccuracySec") == "1s"  # the 1 min default would coalesce 15 s runs
    assert directive(timer, "Unit") == "k3s-autoscaler.service"
    assert directive(timer, "WantedBy") == "timers.target"


def test_service_is_a_hardened_oneshot(installed):
    prefix, service = installed["prefix"], installed["service"]
    assert directive(service, "Type") == "oneshot"
    for key, value in {"NoNewPrivileges": "true", "ProtectSystem": "strict", "PrivateTmp": "true",
                       "ProtectHome": "true"}.items():
        assert directive(service, key) == value, key
    assert directive(service, "ReadWritePaths").split() == [
        f"{prefix}/var/lib/k3s-autoscaler", f"{prefix}/var/lib/node_exporter/textfile_collector"]
    assert directive(service, "EnvironmentFile") == f"{prefix}/etc/k3s-autoscaler/autoscaler.env"
    assert directive(service, "WorkingDirectory") == str(ROOT)
    assert directive(service, "SuccessExitStatus") == "75"


def test_secrets_file_is_0600_and_quoted(installed):
    env = installed["env"]
    assert env.stat().st_mode & 0o777 == 0o600 and env.stat().st_uid == 0
    lines = [line for line in unit_lines(env) if line and not line.startswith("#")]
    assert lines == ['AWS_ACCESS_KEY_ID="AKIAEXAMPLE"', 'AWS_SECRET_ACCESS_KEY="se\\"cr$et"']
    assert "se\"cr$et" not in installed["proc"].stdout  # no_log: the secret never reaches the output


def test_state_dir_is_0700_and_textfile_dir_is_readable_by_node_exporter(installed):
    prefix = installed["prefix"]
    # state file and lock: owner only (the fixture pre-created it 0750: an existing directory is fixed too)
    assert (prefix / "var/lib/k3s-autoscaler").stat().st_mode & 0o777 == 0o700
    # node-exporter often runs as another user (Debian: prometheus); the .prom metrics are not secret
    assert (prefix / "var/lib/node_exporter/textfile_collector").stat().st_mode & 0o777 == 0o755


def exec_start(installed):
    return shlex.split(directive(installed["service"], "ExecStart"))


def test_flock_skips_a_run_while_the_previous_one_holds_the_lock(installed):
    argv = exec_start(installed)
    assert argv[:4] == ["/usr/bin/flock", "--nonblock", "--conflict-exit-code", "75"]
    lock = pathlib.Path(argv[4])
    assert lock.parent == installed["prefix"] / "var/lib/k3s-autoscaler"  # inside ReadWritePaths
    assert argv[5:] == [str(VENV_BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/autoscale.yml",
                        "--syntax-check"]
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert busy.returncode == 75 and "playbook:" not in busy.stdout  # skipped, the playbook never ran
    free = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    assert free.returncode == 0, free.stdout + free.stderr
    assert "playbook: playbooks/autoscale.yml" in free.stdout


def test_systemd_not_pid1_is_explained(installed):
    if pathlib.Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is PID 1 here")
    assert "systemd is not PID 1 on this host" in installed["proc"].stdout


def test_interval_override_and_default(tmp_path):
    proc, prefix = run_role(tmp_path, autoscaler_timer_interval=30, autoscale_check_interval=15,
                            autoscaler_timer_enable=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert directive(prefix / "etc/systemd/system/k3s-autoscaler.timer", "OnUnitActiveSec") == "30"
    proc, prefix = run_role(tmp_path, autoscaler_timer_enable=False)  # no autoscale_check_interval: 60 s
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert directive(prefix / "etc/systemd/system/k3s-autoscaler.timer", "OnUnitActiveSec") == "60"
    assert "systemd is not PID 1" not in proc.stdout  # autoscaler_timer_enable=false: nothing to explain


@needs_systemd_analyze
def test_validate_refuses_a_unit_systemd_rejects(tmp_path):
    # %Q is no systemd specifier (a literal percent sign is %%): systemd-analyze verify fails in validate:
    proc, prefix = run_role(tmp_path, autoscaler_timer_extra_args=["-e", "x=%Q"], autoscaler_timer_enable=False)
    assert proc.returncode != 0
    assert "Failed to resolve unit specifiers in x=%Q" in proc.stdout + proc.stderr
    assert not (prefix / "etc/systemd/system/k3s-autoscaler.service").exists()  # never installed


@pytest.mark.parametrize("extra, expected", [
    ({"autoscale_check_interval": 10, "autoscaler_timer_randomized_delay_sec": 10},
     "must be >= 0 and smaller than the interval"),
    ({"autoscale_state_file": "/srv/elsewhere/state.json"},
     "but autoscale_state_file is /srv/elsewhere/state.json"),
    ({"autoscaler_timer_environment": {"BAD-NAME": "x"}}, "offending: ['BAD-NAME']"),
])
def test_preflight_rejects_bad_input_with_a_clear_message(tmp_path, extra, expected):
    proc, prefix = run_role(tmp_path, **extra)
    assert proc.returncode != 0
    assert expected in " ".join((proc.stdout + proc.stderr).split())
    assert not (prefix / "etc/systemd/system/k3s-autoscaler.timer").exists()
