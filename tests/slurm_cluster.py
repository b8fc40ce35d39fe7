"""A throw-away single-node SLURM cluster on localhost, for tests (not a test module itself).

    with SlurmCluster() as cluster:                 # raises ClusterUnavailable when it cannot run here
        subprocess.run(["sinfo"], env=cluster.env)  # cluster.env: os.environ + SLURM_CONF

What it does (facts behind each choice: /work/shared/notes/slurm-on-localhost.md):
- needs root and, when ``slurmctld`` is missing, apt-get: installs ``slurmctld slurmd slurm-client munge``
  (no recommends); anything missing raises :class:`ClusterUnavailable`, whose message is the skip reason;
- writes ``slurm.conf`` + ``gres.conf`` into a fresh private directory: one node ``localhost``
  (127.0.0.1) with this machine's CPUs, its memory minus a margin and a fake ``gpu:1`` (``File=/dev/null``),
  partition ``debug``, no accounting, free loopback ports chosen at start (no clash with another SLURM);
- runs its own munged (as user munge, private key and socket in that directory: the system's munge, if
  any, is neither used nor touched), slurmctld and slurmd, each in foreground mode as a child process whose
  PID it keeps;
- puts a private ``srun`` first on ``env["PATH"]`` that sets SLURM_CONF, which the plugin's job step strips
  from the environment of its inner ``srun`` (a real cluster has /etc/slurm/slurm.conf instead);
- a TaskProlog appends ``<jobid> <CUDA_VISIBLE_DEVICES or "unset">`` to :attr:`SlurmCluster.task_env_log`
  for every task, so a test can see what GPU a job's environment was given;
- on exit (also after an exception): ``scancel`` of every job of this cluster, then SIGTERM (SIGKILL after
  a grace period) to exactly the daemons it started, by PID, in reverse order; the directory is removed.
  The daemons also get SIGTERM if the Python process that started them dies (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PARTITION = "debug"
NODE = "localhost"


class ClusterUnavailable(RuntimeError):
    """This machine cannot host the test cluster (not root, no apt-get, install failed): a skip reason."""


class ClusterError(RuntimeError):
    """The cluster was set up but did not come up; the message carries the daemons' logs."""


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _memory_mb(margin_fraction: float = 0.1, min_margin_mb: int = 1024) -> int:
    """MemTotal minus a margin, in MB: what slurmd will accept as the node's RealMemory."""
    with open("/proc/meminfo") as f:
        total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    total_mb = total_kb // 1024
    return max(256, total_mb - max(min_margin_mb, int(total_mb * margin_fraction)))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"({exc})"
    return "\n".join(lines[-n:])


def ensure_installed(timeout: int = 600) -> None:
    """Install SLURM and munge with apt-get when ``slurmctld`` is missing; ClusterUnavailable if impossible."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the SLURM test cluster needs root (to run slurmd and munged)")
    tools = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol", "munged", "munge")
    if all(shutil.which(t) for t in tools):
        return
    if not shutil.which("apt-get"):
        raise ClusterUnavailable("slurmctld is not installed and apt-get is not available to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=120", *PACKAGES]
    attempts = []
    for cmd in (install, ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"], install):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"{' '.join(cmd[:2])} failed: {exc}") from None
        attempts.append(f"$ {' '.join(cmd)} -> {proc.returncode}\n{proc.stderr[-800:]}")
        if cmd is install and proc.returncode == 0:
            break
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise ClusterUnavailable(f"installing {' '.join(PACKAGES)} failed (missing: {', '.join(missing)}):\n"
                                 + "\n".join(attempts))


class SlurmCluster:
    """A single-node SLURM (slurmctld + slurmd + munged) on 127.0.0.1, started and stopped by this object."""

    def __init__(self, *, gpus: int = 1, cpus: int | None = None, memory_mb: int | None = None,
                 startup_timeout: float = 60.0, keep_dir: bool = False):
        self.gpus = gpus
        # At least 2 CPUs (the rules' threads; SlurmdParameters=config_overrides lets slurmd accept more than
        # the hardware has), and the memory this machine has less a margin.
        self.cpus = cpus or max(2, os.cpu_count() or 1)
        self.memory_mb = memory_mb or _memory_mb()
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.partition = PARTITION
        self.dir: Path | None = None
        self._procs: list[tuple[str, subprocess.Popen, Path]] = []  # (name, process, its log file)

    # ----------------------------------------------------------------------------------------------- set-up
    @property
    def conf(self) -> Path:
        return self.dir / "etc/slurm.conf"

    @property
    def task_env_log(self) -> Path:
        return self.dir / "task_env.log"

    @property
    def env(self) -> dict[str, str]:
        """The environment the client tools (sbatch, squeue, ...) and Snakemake need to reach this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.dir / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("bin", "etc", "state", "spool", "log", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # Inside a job, the plugin's job step runs `srun ... snakemake ...` with every SLURM_* variable but the
        # job's identity removed, SLURM_CONF included: srun would look for /etc/slurm/slurm.conf. Rather than
        # write there, a private `srun` first on PATH (passed on by sbatch --export=ALL) puts SLURM_CONF back.
        real_srun = shutil.which("srun")
        shim = d / "bin/srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {real_srun} "$@"\n')
        shim.chmod(0o755)
        ctld_port, slurmd_port = _free_ports(2)
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        prolog = d / "etc/task_prolog.sh"
        prolog.write_text("#!/bin/sh\n"
                          f'echo "$SLURM_JOB_ID ${{CUDA_VISIBLE_DEVICES:-unset}}" >> {self.task_env_log}\n')
        prolog.chmod(0o755)
        self.conf.write_text(f"""\
# Written by tests/slurm_cluster.py: a single-node test cluster on 127.0.0.1, no accounting.
ClusterName=deepmergetest
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
CommunicationParameters=NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog={prolog}
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
SchedulerParameters=sched_interval=2
GresTypes=gpu
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb}{gres} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
""")
        # Without File= the node is invalid and GPU jobs block; /dev/null is a device everybody may open.
        (d / "etc/gres.conf").write_text(f"NodeName={NODE} Name=gpu File=/dev/null\n" if self.gpus else "")

    def _start(self, name: str, cmd: list[str], user: str | None = None) -> subprocess.Popen:
        log = self.dir / f"log/{name}.out"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env, cwd=self.dir, start_new_session=True, user=user,
                                    group=user, preexec_fn=_die_with_parent)
        self._procs.append((name, proc, log))
        return proc

    def _logs(self) -> str:
        parts = [f"--- {name} (pid {proc.pid}, exit {proc.poll()}): {log}\n{_tail(log)}"
                 for name, proc, log in self._procs]
        for extra in ("log/slurmctld.log", "log/slurmd.log", "munge/munged.log"):
            path = self.dir / extra
            if path.exists():
                parts.append(f"--- {path}\n{_tail(path)}")
        return "\n".join(parts)

    def _fail(self, what: str) -> None:
        raise ClusterError(f"{what}\n{self._logs()}")

    def _wait(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            dead = [name for name, proc, _ in self._procs if proc.poll() is not None]
            if dead:
                self._fail(f"{', '.join(dead)} exited while waiting for {what}")
            time.sleep(0.5)
        self._fail(f"timed out after {timeout:.0f} s waiting for {what}")

    def _run(self, *cmd: str, timeout: float = 15) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(cmd, 124, "", str(exc))

    def _start_munge(self) -> None:
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            raise ClusterUnavailable("user munge does not exist (is the munge package installed?)") from None
        mdir = self.dir / "munge"
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))  # a private key: the system's /etc/munge/munge.key stays as it is
        key.chmod(0o400)
        for path in (mdir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        mdir.chmod(0o755)
        sock = mdir / "munge.socket"
        self._start("munged", ["munged", "--foreground", f"--key-file={key}", f"--socket={sock}",
                               f"--pid-file={mdir}/munged.pid", f"--log-file={mdir}/munged.log",
                               f"--seed-file={mdir}/munged.seed", "--num-threads=2"], user="munge")

        def answers() -> bool:
            enc = self._run("munge", "-n", "-S", str(sock), timeout=5)
            if enc.returncode != 0:
                return False
            try:
                dec = subprocess.run(["unmunge", "-S", str(sock)], input=enc.stdout, capture_output=True,
                                     text=True, timeout=5)
            except subprocess.TimeoutExpired:
                return False
            return dec.returncode == 0

        self._wait("munged to answer", answers, 15)

    def node_state(self) -> str:
        out = self._run("sinfo", "-h", "-N", "-n", NODE, "-o", "%t", timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    def start(self) -> SlurmCluster:
        ensure_installed()
        self.dir = Path(tempfile.mkdtemp(prefix="deepmerge-slurm-"))
        self.dir.chmod(0o755)  # munged (user munge) must reach its directory; clients must reach the socket
        try:
            self._write_config()
            self._start_munge()
            self._start("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            self._wait("slurmctld to answer", lambda: self._run("scontrol", "ping", timeout=5).returncode == 0, 30)
            self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", NODE])
            deadline = time.monotonic() + self.startup_timeout

            def idle() -> bool:
                state = self.node_state()
                if state.rstrip("*~#!%$@^-") in ("drain", "drng", "inval", "fail") or state.startswith("inval"):
                    reason = self._run("sinfo", "-R", timeout=10).stdout
                    self._fail(f"node {NODE} is {state!r}:\n{reason}")
                return state == "idle"

            self._wait(f"node {NODE} to be idle", idle, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    # -------------------------------------------------------------------------------------------- tear-down
    def job_ids(self) -> list[str]:
        out = self._run("squeue", "-h", "-o", "%i", timeout=10)
        return out.stdout.split() if out.returncode == 0 else []

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job of this cluster and wait (bounded) until none is pending or running."""
        if not any(name == "slurmctld" and proc.poll() is None for name, proc, _ in self._procs):
            return
        ids = self._run("squeue", "-h", "-t", "PD,R,CG,S,CF", "-o", "%i", timeout=10).stdout.split()
        if not ids:
            return
        self._run("scancel", *ids, timeout=15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._run("squeue", "-h", "-t", "PD,R,CG,S,CF", "-o", "%i", timeout=10).stdout.split():
                return
            time.sleep(1)

    def stop(self, grace: float = 10) -> None:
        """Cancel all jobs, then stop exactly the daemons this object started (newest first), by PID."""
        try:
            self.cancel_all()
        finally:
            for _, proc, _ in reversed(self._procs):
                if proc.poll() is None:  # still our child: its PID cannot have been reused
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=grace)
            if self.dir is not None and not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- inspection
    def show_job(self, job_id: str) -> str:
        """``scontrol -d show job`` of one job (known to slurmctld until MinJobAge after it ended)."""
        return self._run("scontrol", "-d", "show", "job", str(job_id), timeout=10).stdout

    def gpu_env_by_job(self) -> dict[str, str]:
        """CUDA_VISIBLE_DEVICES ("unset" when absent) that each job's tasks saw, from the TaskProlog record."""
        seen: dict[str, str] = {}
        if self.task_env_log.exists():
            for line in self.task_env_log.read_text().splitlines():
                job, _, devices = line.partition(" ")
                if devices != "unset" or job not in seen:
                    seen[job] = devices
        return seen
