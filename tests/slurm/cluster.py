"""A real single-node SLURM cluster for tests: install, start, stop.

Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` packages
(installed with apt when missing), started by hand without systemd: munged,
then slurmctld, then slurmd, with the node's real CPU topology (``slurmd
-C``) and one fake GPU (gres ``File=/dev/null``), no accounting database.
All state lives under one folder (default ``/tmp/nestdb-slurm``); clients find
the cluster through ``SLURM_CONF`` (see :meth:`Cluster.env`). Needs root.

Command line (what CI or a developer runs by hand)::

    python tests/slurm/cluster.py start     # prints: export SLURM_CONF=...
    python tests/slurm/cluster.py status
    python tests/slurm/cluster.py stop
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("slurmctld", "slurmd", "munged")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class Unavailable(RuntimeError):
    """SLURM cannot run here (not Linux, not root, no apt); the message says why."""


def why_unavailable() -> str | None:
    """Reason this machine cannot host the test cluster, or None when it can."""
    if platform.system() != "Linux":
        return f"a test SLURM cluster needs Linux, this is {platform.system()}"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root (run the SLURM test as root, as CI does)"
    if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sinfo", "munged")) and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    return None


def install() -> None:
    """Install the Debian SLURM and munge packages when a binary is missing (idempotent)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "munged")):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The package lists may be missing on a fresh image; update only then.
    install_cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install_cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install_cmd, env=env, check=True, capture_output=True)


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM one process, SIGKILL it if it is still there after ``timeout`` s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Cluster:
    """One single-node SLURM cluster whose files are all under ``base``.

    Parameters
    ----------
    base
        Folder for slurm.conf, gres.conf, state, spool, logs and PID files.
    """

    def __init__(self, base: str | Path | None = None):
        self.base = Path(base or os.environ.get("NESTDB_SLURM_DIR", "/tmp/nestdb-slurm"))
        self.conf = self.base / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]

    # ------------------------------------------------------------------ config
    def env(self) -> dict[str, str]:
        """Environment variables that point SLURM clients (and jobs) at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _topology(self) -> tuple[str, int]:
        """The node line of ``slurmd -C`` (sockets, cores, threads) and a RealMemory below MemTotal."""
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        fields = dict(item.split("=", 1) for item in out.splitlines()[0].split())
        topology = " ".join(
            f"{k}={fields[k]}" for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        )
        # A node reporting less memory than configured is drained: leave 10 % headroom.
        return topology, int(int(fields["RealMemory"]) * 0.9)

    def write_config(self) -> None:
        """Write slurm.conf and gres.conf from the templates beside this module."""
        topology, memory_mb = self._topology()
        values = {
            "host": self.host,
            "base": str(self.base),
            "topology": topology,
            "memory_mb": memory_mb,
            "ctld_port": os.environ.get("NESTDB_SLURMCTLD_PORT", "6817"),
            "slurmd_port": os.environ.get("NESTDB_SLURMD_PORT", "6818"),
        }
        for name in ("slurm.conf", "gres.conf"):
            template = string.Template((HERE / f"{name}.in").read_text())
            (self.base / name).write_text(template.substitute(values))

    # ------------------------------------------------------------------ state
    def pids(self) -> dict[str, int]:
        """PIDs of the daemons this cluster started that are still alive."""
        found = {}
        for daemon in DAEMONS:
            pid = _read_pid(self.base / f"{daemon}.pid")
            if pid is not None:
                found[daemon] = pid
        return found

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(args), capture_output=True, text=True, check=check, timeout=timeout, env=dict(os.environ, **self.env())
        )

    def node_state(self) -> str:
        """The node's state as ``sinfo`` prints it (``idle``, ``mixed``, ``drain``...), '' when down."""
        try:
            result = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    def is_up(self) -> bool:
        return {"slurmctld", "slurmd"} <= set(self.pids()) and self.node_state() in ("idle", "mixed", "allocated")

    # ------------------------------------------------------------------ start/stop
    def _link_system_config(self) -> None:
        """Point ``/etc/slurm/slurm.conf`` at this cluster's config.

        ``SLURM_CONF`` alone is not enough: the executor plugin's job step
        drops ``SLURM_*`` variables before it runs the rule, so ``srun``
        inside a job reads the default path. A real cluster's config there is
        never replaced.
        """
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.is_symlink() or not SYSTEM_CONF.exists():
            SYSTEM_CONF.unlink(missing_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
        elif SYSTEM_CONF.resolve() != self.conf.resolve():
            raise Unavailable(
                f"{SYSTEM_CONF} belongs to another SLURM installation; not replacing it "
                "(run the SLURM tests in a container or CI machine)"
            )

    def _unlink_system_config(self) -> None:
        if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()

    def _start_munge(self) -> None:
        """Start munged unless one already answers on the default socket."""
        if (
            MUNGE_SOCKET.exists()
            and subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0
        ):
            return
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
        for folder in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        pid_file = self.base / "munged.pid"
        # munged runs as user munge; its pid file goes where root can read it.
        subprocess.run(
            ["runuser", "-u", "munge", "--", "munged", "--force", "--pid-file=/run/munge/munged.pid"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not _read_pid(Path("/run/munge/munged.pid")):
            if time.monotonic() > deadline:
                raise RuntimeError("munged did not start; see /var/log/munge/munged.log")
            time.sleep(0.1)
        shutil.copy(Path("/run/munge/munged.pid"), pid_file)

    def start(self, timeout: float = 60) -> Cluster:
        """Install if needed and start a fresh cluster; wait until the node is idle.

        Raises
        ------
        Unavailable
            Not Linux, not root, or SLURM missing without apt.
        RuntimeError
            A daemon did not come up; the message names its log file.
        """
        reason = why_unavailable()
        if reason:
            raise Unavailable(reason)
        install()
        self.stop()
        # Stale state (drain reasons, old jobs) survives restarts: start from nothing.
        for sub in ("state", "spool", "log"):
            shutil.rmtree(self.base / sub, ignore_errors=True)
        for sub in ("state", "spool", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._link_system_config()
        self._start_munge()
        conf = ["-f", str(self.conf)]
        subprocess.run(["slurmctld", *conf], check=True, capture_output=True, env=dict(os.environ, **self.env()))
        subprocess.run(
            ["slurmd", *conf, "-N", self.host], check=True, capture_output=True, env=dict(os.environ, **self.env())
        )
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if time.monotonic() > deadline:
                pids, state = self.pids(), self.node_state()
                self.stop()
                raise RuntimeError(
                    f"SLURM node not idle after {timeout:.0f} s (state {state!r}, daemons {pids}); see {self.base}/log/"
                )
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """Cancel all jobs, then stop the daemons this cluster started, by PID."""
        if "slurmctld" in self.pids():
            try:
                self.run("scancel", "--full", "--user", "root", check=False, timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for daemon in DAEMONS:
            pid = _read_pid(self.base / f"{daemon}.pid")
            if pid is not None:
                _stop_pid(pid)
            (self.base / f"{daemon}.pid").unlink(missing_ok=True)
        self._unlink_system_config()


#: What the test cluster changes in ``profiles/slurm/config.yaml``: its own
#: partition, no account (no accounting database), squeue instead of sacct,
#: fast first poll, and requests that fit one small node. Everything else
#: (executor, MPI launch of ``label``, the GPU of ``fit``, retries...) is the
#: real profile's.
TEST_OVERRIDES = {
    "slurm-no-account": True,
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 1,
    "latency-wait": 5,
    "retries": 1,
    "max-status-checks-per-second": 10,
}


def derived_profile(
    source: str | Path, dest: str | Path, cpus: int, partition: str = "debug", mem_mb_per_cpu: int = 1000
) -> Path:
    """Write a copy of a SLURM profile that runs on the single-node test cluster.

    Parameters
    ----------
    source
        Profile folder (``profiles/slurm``) holding ``config.yaml``.
    dest
        Folder to write the derived ``config.yaml`` into (created).
    cpus
        CPUs of the node: every ``tasks``, ``cpus_per_task``, ``cpus_per_gpu``
        and thread count is capped at it, or the job would pend forever.
    partition, mem_mb_per_cpu
        Partition and memory per CPU of the test node.

    Returns
    -------
    Path
        ``dest``, ready for ``snakemake --profile``.
    """
    import yaml

    profile = yaml.safe_load((Path(source) / "config.yaml").read_text())
    profile.update(TEST_OVERRIDES)
    sections = [profile.setdefault("default-resources", {}), *profile.get("set-resources", {}).values()]
    for resources in sections:
        resources.pop("slurm_account", None)
        if "slurm_partition" in resources:
            resources["slurm_partition"] = partition
        for key in ("mem_mb_per_cpu", "mem_mb"):
            if key in resources:
                resources[key] = mem_mb_per_cpu * (1 if key == "mem_mb_per_cpu" else cpus)
        for key in ("tasks", "cpus_per_task", "cpus_per_gpu"):
            if key in resources:
                resources[key] = min(int(resources[key]), cpus)
        # The plugin rejects `mpi` with a single task.
        if resources.get("mpi") and int(resources.get("tasks", 1)) < 2:
            resources["tasks"] = 2
    for rule, threads in profile.get("set-threads", {}).items():
        profile["set-threads"][rule] = min(int(threads), cpus)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(
        "# Derived from profiles/slurm by tests/slurm/cluster.py\n" + yaml.safe_dump(profile, sort_keys=False)
    )
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status", "install"))
    parser.add_argument("--base", default=None, help="folder for config, state and logs [/tmp/nestdb-slurm]")
    args = parser.parse_args(argv)
    cluster = Cluster(args.base)
    if args.action == "install":
        reason = why_unavailable()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        install()
    elif args.action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    elif args.action == "stop":
        cluster.stop()
    else:
        print(f"daemons: {cluster.pids()}; node: {cluster.node_state() or 'down'}")
        return 0 if cluster.is_up() else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
