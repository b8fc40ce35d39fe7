"""The command line: --help explains, errors name the bad input."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "deepmerge_da.cli", *args], capture_output=True, text=True)


def test_help_lists_every_step():
    out = run("--help")
    assert out.returncode == 0
    for command in ("synthesize", "prepare", "train", "lr-scan", "evaluate", "predict", "info"):
        assert command in out.stdout


def test_missing_checkpoint_is_named(tmp_path):
    out = run("info", str(tmp_path / "nope.pt"))
    assert out.returncode == 2
    assert "nope.pt" in out.stderr and "does not exist" in out.stderr
