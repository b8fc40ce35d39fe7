"""The environment stamp every results/ tree carries (deepmerge_da.report.environment, rule `environment`)."""
import json
import subprocess
from importlib import metadata

from deepmerge_da.report.environment import environment_stamp, git_commit, write_environment_stamp


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_names_the_commit_and_marks_changed_code(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout
    git(tmp_path, "init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "src")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not change results\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "-dirty"


def test_stamp_records_versions_cpu_and_threads(tmp_path):
    path = tmp_path / "results" / "environment.json"
    written = write_environment_stamp(path, train_threads=3)
    stamp = json.loads(path.read_text())
    assert stamp == written
    assert stamp["packages"]["torch"] == metadata.version("torch")
    assert stamp["packages"]["snakemake"] == metadata.version("snakemake")
    assert stamp["train_threads_per_job"] == 3
    assert stamp["cpu_model"] and stamp["logical_cpus"] >= 1 and stamp["python"].count(".") == 2
    assert set(environment_stamp()) == set(stamp)
