"""Walking the clones of an iteration, in this process or in worker processes.

Semantics (what keeps the thermodynamics): an iteration culls the ``n_cull``
highest-enthalpy walkers, clones a random survivor into each culled slot and
walks every clone ``walk_length`` model calls below H_lim. The clones are
independent given the survivors, so they can be walked at the same time; with
``n_procs`` processes the ``n_cull`` walks are dealt round-robin. Each walk
draws from its own generator seeded by ``(seed, iteration, clone number)``,
so a run's samples are identical for any ``n_procs`` (only ``n_cull``
changes the chain). The prior volume shrinks by (K + 1 - n_cull)/(K + 1) per
iteration; the ``.energies`` header carries ``n_cull`` so that the analysis
(ours and pymatnest's ``ns_analyse``) weights the samples accordingly.

Workers are persistent forked processes: each inherits the calculator once
and then receives only walker states (a few kB) per iteration.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass

import numpy as np

from nestdb.ns.sampler import Sampler
from nestdb.ns.settings import MOVE_TYPES, NSSettings

#: Seconds between a waiting worker's checks that its parent still lives.
PARENT_CHECK_S = 1.0


def walk_seed(seed: int, iteration: int, clone: int) -> tuple[int, int, int]:
    """Entropy of the generator of one walk (independent of who walks it)."""
    return (int(seed), int(iteration), int(clone))


@dataclass
class WalkTask:
    """One clone to walk: its state, the limit and the current step sizes."""

    state: dict
    h_lim: float
    steps: dict
    seed: tuple[int, int, int]


@dataclass
class WalkResult:
    """The walked clone and the statistics of its walk."""

    state: dict
    attempts: dict
    accepts: dict
    n_calls: int
    n_failed: int
    n_committee_rejected: int
    last_error: str


class CloneWalker:
    """Walks single clones with a one-slot :class:`Sampler` (same code in every process)."""

    def __init__(self, numbers: np.ndarray, calculator, settings: NSSettings) -> None:
        self.sampler = Sampler(numbers, calculator, settings, n_slots=1)

    def __call__(self, task: WalkTask) -> WalkResult:
        sampler = self.sampler
        sampler.walkers.set_state(0, task.state)
        sampler.step.update(task.steps)
        sampler.rng = np.random.default_rng(list(task.seed))
        sampler.attempts = dict.fromkeys(MOVE_TYPES, 0)
        sampler.accepts = dict.fromkeys(MOVE_TYPES, 0)
        sampler.n_committee_rejected = 0
        evaluate = sampler.evaluate
        evaluate.n_calls = evaluate.n_failed = 0
        evaluate.last_error = ""
        sampler.walk(0, task.h_lim)
        return WalkResult(
            sampler.walkers.state(0),
            dict(sampler.attempts),
            dict(sampler.accepts),
            evaluate.n_calls,
            evaluate.n_failed,
            sampler.n_committee_rejected,
            evaluate.last_error,
        )


def _worker_main(connection, numbers: np.ndarray, calculator, settings: NSSettings, parent_pid: int) -> None:
    """Loop of a worker process: receive a list of tasks, send back the results."""
    # SIGTERM (a SLURM time limit) goes to the whole job: the parent finishes
    # the iteration, snapshots and then stops the workers itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        walker = CloneWalker(numbers, calculator, settings)
        while True:
            # forked siblings keep copies of the pipe ends, so a killed parent
            # need not give EOF: check that it is still there
            while not connection.poll(PARENT_CHECK_S):
                if os.getppid() != parent_pid:
                    return
            tasks = connection.recv()
            if tasks is None:
                return
            connection.send(("ok", [walker(task) for task in tasks]))
    except Exception:  # noqa: BLE001 - reported to and raised by the parent
        connection.send(("error", traceback.format_exc()))


class WalkerPool:
    """Walks lists of :class:`WalkTask`; ``settings.n_procs`` persistent processes.

    Use as a context manager so that the workers always end.
    """

    def __init__(self, numbers: np.ndarray, calculator, settings: NSSettings) -> None:
        self.n_procs = settings.n_procs
        self.local = None
        self.processes: list = []
        self.connections: list = []
        if self.n_procs == 1:
            self.local = CloneWalker(numbers, calculator, settings)
            return
        # fork: the workers inherit the calculator without pickling (any ASE
        # calculator works) and never re-run the parent's __main__ (Snakemake
        # scripts have no main guard). The pool starts before the parent first
        # calls the model, so no OpenMP thread pool exists yet at fork time.
        context = multiprocessing.get_context("fork")
        for _ in range(self.n_procs):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker_main, daemon=True, args=(child, numbers, calculator, settings, os.getpid())
            )
            process.start()
            child.close()
            self.processes.append(process)
            self.connections.append(parent)

    def walk(self, tasks: list[WalkTask]) -> list[WalkResult]:
        """Walk all tasks; results in task order."""
        if self.local is not None:
            return [self.local(task) for task in tasks]
        batches = [tasks[rank :: self.n_procs] for rank in range(self.n_procs)]
        for connection, batch in zip(self.connections, batches, strict=True):
            if batch:
                connection.send(batch)
        results: list[WalkResult | None] = [None] * len(tasks)
        for rank, (connection, batch) in enumerate(zip(self.connections, batches, strict=True)):
            if not batch:
                continue
            try:
                status, payload = connection.recv()
            except EOFError:
                raise RuntimeError(
                    f"NS worker process {rank} died (exit code {self.processes[rank].exitcode}); see the log"
                ) from None
            if status != "ok":
                raise RuntimeError(f"NS worker process {rank} failed:\n{payload}")
            results[rank :: self.n_procs] = payload
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker processes."""
        for connection in self.connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        self.processes, self.connections = [], []

    def __enter__(self) -> WalkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
