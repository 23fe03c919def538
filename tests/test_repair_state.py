"""`make repair-state STATE=path` (scripts/repair_state.py): a corrupt file is moved aside and a fresh state is
written, with a warning that the next run may act at once; a valid file is left alone; a path with no file is an
error (exit 2), so a mistyped path never looks like a successful repair."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "repair_state.py")


def _repair(path):
    return subprocess.run([sys.executable, SCRIPT, str(path)], capture_output=True, text=True, timeout=60)


def test_missing_file_is_an_error_naming_the_path(tmp_path):
    res = _repair(tmp_path / "typo" / "state.json")
    assert res.returncode == 2
    assert "no state file at %s: nothing to repair" % (tmp_path / "typo" / "state.json") in res.stderr
    assert not (tmp_path / "typo").exists()


def test_corrupt_file_is_moved_aside_and_the_reset_is_announced(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "last_sc')
    res = _repair(path)
    assert res.returncode == 0, res.stderr
    backups = [p for p in os.listdir(tmp_path) if p.startswith("state.json.corrupt-")]
    assert len(backups) == 1 and (tmp_path / backups[0]).read_text() == '{"version": 1, "last_sc'
    assert json.loads(path.read_text())["events"] == []
    assert "repaired: moved the corrupt file to" in res.stdout and "the next run may act at once" in res.stdout


def test_valid_file_is_left_alone(tmp_path):
    path = tmp_path / "state.json"
    _repair_target = {"version": 1, "last_scale_up": 1.0, "last_scale_down": None, "events": []}
    path.write_text(json.dumps(_repair_target))
    before = path.read_bytes()
    res = _repair(path)
    assert res.returncode == 0 and "is valid: nothing to repair" in res.stdout
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["state.json"]


def test_a_directory_is_refused_and_never_moved(tmp_path):
    d = tmp_path / "run-local"
    d.mkdir()
    (d / "kubeconfig").write_text("x")
    res = _repair(d)
    assert res.returncode == 2 and "is a directory, not a state file" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["run-local"] and os.listdir(d) == ["kubeconfig"]
