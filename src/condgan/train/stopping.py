"""Stopping on request: SIGINT (Ctrl-C), SIGTERM (preemption, torchrun's shutdown) and SIGUSR1 (SLURM's --signal).

While training runs, a signal only asks: every rank finishes its step, they agree on the step to stop at (one
small all-reduce per step, read one step later so no step waits on the network), rank 0 writes a complete
checkpoint of it, and the process exits with 128 + the signal's number. Rerunning the same command continues
exactly. More signals while stopping change nothing (SLURM and torchrun may both deliver one); SIGKILL is the
way to stop at once. Outside training (start-up in a single process, the final report) a signal interrupts at
once, as Ctrl-C always did.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import torch
import torch.distributed as dist

from ..distributed import world

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def exit_code(signum: int) -> int:
    """What a run stopped by ``signum`` exits with: 128 + its number, as a shell reports a process it killed."""
    return 128 + signum


class Interrupted(KeyboardInterrupt):
    """A stop signal that arrived outside training's steps: the command stops at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopped(Exception):
    """Training stopped at ``step`` on every rank because of ``signum``; ``checkpoint`` holds that step (None: the
    run stopped before its first step, with nothing new to keep)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        name = signal.Signals(signum).name
        where = (f"checkpoint {checkpoint} written" if checkpoint is not None
                 else "before its first step, with nothing new to save")
        super().__init__(f"stopped by {name} at step {step} ({where}): rerun the same command to continue")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


class StopRequests:
    """The stop signals this process received. Deferred (:meth:`deferred`), a signal is only noted; otherwise
    it raises :class:`Interrupted` where the main thread is."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.defer = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers live in the main thread (a trainer driven from another thread keeps none)
        for s in STOP_SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:  # ignored on purpose (a background job's Ctrl-C): kept so
                self._previous[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if not self.defer:
            raise Interrupted(signum)

    def interrupt_if_asked(self) -> None:
        """Raise :class:`Interrupted` if a signal was noted and nothing acted on it."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def deferred(self):
        """Note signals instead of raising; one that arrived meanwhile raises on leaving (unless something else
        is already on its way out)."""
        outer, self.defer = self.defer, True
        try:
            yield self
        finally:
            self.defer = outer
        if not outer:
            self.interrupt_if_asked()


REQUESTS = StopRequests()  # signals are per process: one record of them


class StopVote:
    """Whether any rank asked to stop, decided alike on every rank (a single process: its own request)."""

    def __init__(self, requests: StopRequests, group: object = None) -> None:
        self.requests = requests
        self.group = group
        self._pending: tuple[object, torch.Tensor] | None = None

    def _cast(self) -> tuple[object, torch.Tensor]:
        ballot = torch.tensor([self.requests.signum or 0], dtype=torch.int64)
        return dist.all_reduce(ballot, op=dist.ReduceOp.MAX, group=self.group, async_op=True), ballot

    def now(self) -> int:
        """The agreed signal (0: none), voted now: every rank waits for every other."""
        self.finish()
        if not world().distributed:
            return self.requests.signum or 0
        work, ballot = self._cast()
        work.wait()
        return int(ballot.item())

    def poll(self) -> int:
        """The signal agreed at the previous call (0: none), and a new vote cast; never waits on a slow rank for
        more than one step."""
        if not world().distributed:
            return self.requests.signum or 0
        agreed = self.finish()
        self._pending = self._cast()
        return agreed

    def finish(self) -> int:
        """Wait for the vote in flight, if any (every rank has one alike); its result, or 0."""
        if self._pending is None:
            return 0
        work, ballot = self._pending
        self._pending = None
        work.wait()
        return int(ballot.item())
