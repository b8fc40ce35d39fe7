"""Fixtures shared by the test modules; plain helpers are in helpers.py."""
import pytest

from helpers import TEST_CONFIG, copy_workflow, snakemake


@pytest.fixture
def workflow_copy(tmp_path):
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A copy of the workflow in which the whole grid of the tiny TEST_CONFIG has run, once per session (minutes):
    results/, logs/, benchmarks/ and Snakemake's metadata. Shared: a test may add files beside the workflow or
    delete intermediate ones (tests/test_workflow.py deletes one model.pt), never change a result."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny"))
    dry = snakemake(workdir, "-n", "--configfile", TEST_CONFIG)
    assert dry.returncode == 0, dry.stderr[-3000:]
    run = snakemake(workdir, "--configfile", TEST_CONFIG, timeout=1200)
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir
