"""Many processes, one run: what rank 0 alone does, how the others wait for it, and who failed when a step did.

Under torchrun a training step is lock-step: every rank enters the same collectives, and one that waits longer than
``dist.timeout`` seconds fails. Around the steps the work is uneven: rank 0 alone reads and writes the run dir
(checkpoints, log, sample grids, evaluations) and every rank loads its own data. There the others wait *patiently*
(:func:`from_main`, :func:`patient_barrier`): with no deadline while the awaited ranks answer, and for at most
``dist.timeout`` once one stops answering.

"Answering" is a heartbeat: a daemon thread per rank writes to the rendezvous store every second a counter, its host
and pid, the training step and where its main thread is. When a step's collective fails (a peer's socket closed, or
``dist.timeout``), :func:`diagnose` reads every heartbeat twice and names the ranks whose counter stood still
(stopped, dead, or on a host that is gone) or whose main thread is alive but not in a collective (stuck in I/O).
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import threading
import time
import uuid

import torch.distributed as dist

from .distributed import agent_store, world

PERIOD = 1.0  # seconds between heartbeats
# a main thread inside these is waiting for the other ranks (a collective, DDP's gradient hooks in backward)
WAITING_IN = (f"{os.sep}torch{os.sep}distributed{os.sep}", f"{os.sep}torch{os.sep}autograd{os.sep}",
              f"{os.sep}torch{os.sep}nn{os.sep}parallel{os.sep}", f"{os.sep}condgan{os.sep}cluster.py")


class RankFailed(RuntimeError):
    """Another rank died, stopped answering or never arrived; the message names it (``quiet``: a rank with a lower
    number reports the same failure, so this one says nothing)."""

    def __init__(self, message: str, quiet: bool = False) -> None:
        super().__init__(message)
        self.quiet = quiet


class FailedOnMain(Exception):
    """What rank 0 raised in :func:`from_main`, as the other ranks see it (rank 0 reports it; they say nothing)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Cluster:
    """This process's link to the others: the rendezvous store, its heartbeat and the run's patience."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        # torchrun's store outlives any rank, so a dead rank 0 leaves the heartbeats readable
        self.store = agent_store() or dist.distributed_c10d._get_default_store()
        box = [uuid.uuid4().hex if world().is_main else None]  # keys of this attempt only (a restart reuses the store)
        dist.broadcast_object_list(box, src=0)
        self.prefix = f"condgan/{box[0]}"
        self.seq = 0
        self.step = 0
        self.checkpoint_step: int | None = None
        self.failed = False
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beat_loop, name="condgan-heartbeat", daemon=True)
        self._beat.start()

    def key(self, *parts: object) -> str:
        return "/".join([self.prefix, *map(str, parts)])

    def _beat_loop(self) -> None:
        rank, n = world().rank, 0
        host, pid = socket.gethostname(), os.getpid()
        while not self._stop.is_set():
            where, waiting = self._main_thread_place()
            record = {"n": n, "host": host, "pid": pid, "step": self.step, "where": where, "waiting": waiting,
                      "failed": self.failed}
            try:
                self.store.set(self.key("alive", rank), json.dumps(record))
            except Exception:  # the store's host is gone: the main thread finds out in its next wait
                pass
            n += 1
            self._stop.wait(PERIOD)

    def _main_thread_place(self) -> tuple[str, bool]:
        """(innermost frame of the main thread as ``file:line in function``, whether it waits for other ranks)."""
        frame = sys._current_frames().get(self._main)
        if frame is None:
            return "?", False
        code = frame.f_code
        where = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        waiting = False
        while frame is not None:
            waiting = waiting or any(part in frame.f_code.co_filename for part in WAITING_IN)
            frame = frame.f_back
        return where, waiting

    def heartbeats(self, ranks: list[int] | None = None) -> dict[int, dict]:
        """The last heartbeat of ``ranks`` (default: every rank); ranks that never wrote one are absent."""
        out = {}
        for r in range(world().size) if ranks is None else ranks:
            k = self.key("alive", r)
            if self.store.check([k]):
                out[r] = json.loads(self.store.get(k))
        return out

    def close(self) -> None:
        self._stop.set()
        self._beat.join(timeout=2 * PERIOD)


_CLUSTER: _Cluster | None = None


def start(timeout_s: float) -> None:
    """Begin this rank's heartbeat (after the process group is up; every rank calls it)."""
    global _CLUSTER
    if world().distributed and _CLUSTER is None:
        _CLUSTER = _Cluster(timeout_s)


def stop() -> None:
    global _CLUSTER
    if _CLUSTER is not None:
        _CLUSTER.close()
        _CLUSTER = None


def note_progress(step: int, checkpoint: bool = False) -> None:
    """The training step this rank finished (and whether a complete checkpoint of it exists), for the heartbeat."""
    if _CLUSTER is not None:
        _CLUSTER.step = step
        if checkpoint:
            _CLUSTER.checkpoint_step = step


def from_main(fn, *args):
    """``fn(*args)`` run on rank 0 alone; every rank returns its result, or raises what it raised (rank 0 the
    exception itself, the others :class:`FailedOnMain`). The others wait patiently (see the module docstring), so
    rank 0 may take long (an evaluation, a large checkpoint). ``fn`` must not use collectives."""
    if not world().distributed:
        return fn(*args)
    c = _CLUSTER  # None: a process group made by the caller, without condgan's heartbeat (the others just block)
    if c is not None:
        c.seq += 1
    if world().is_main:
        try:
            outcome = ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - handed to every rank, raised below
            outcome = ("error", _picklable(e))
        if c is not None:
            c.store.set(c.key("main", c.seq), "1")
            if c.seq > 2:
                c.store.delete_key(c.key("main", c.seq - 2))  # every rank is past that one's wait
    else:
        outcome = None
        if c is not None:
            _patient_wait(c, {0: c.key("main", c.seq)})
    box = [outcome]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value if world().is_main else FailedOnMain(value)
    return value


def patient_barrier(name: str) -> None:
    """Wait until every rank got here, for as long as the ranks not yet here answer (loading data may be uneven)."""
    c = _CLUSTER
    if c is None:
        return
    me = world().rank
    c.store.set(c.key("arrive", name, me), "1")
    _patient_wait(c, {r: c.key("arrive", name, r) for r in range(world().size) if r != me})


def _patient_wait(c: _Cluster, awaited: dict[int, str]) -> None:
    """Until the key of every awaited rank exists; RankFailed once a rank whose key is still missing failed or has
    not answered for dist.timeout seconds.

    Polls with ``check`` (a timed-out ``wait`` logs a warning each time), every 1 ms at first and at most every
    0.2 s, so a short wait costs little and a long one little traffic. Once a second it reads the heartbeats of
    the ranks still missing only (not every rank's: at a start-up barrier every rank waits)."""
    keys = list(awaited.values())
    last: dict[int, tuple[int, float]] = {}
    delay, next_look = 0.001, time.monotonic() + PERIOD
    while True:
        try:
            if c.store.check(keys):
                return
        except Exception as e:  # noqa: BLE001 - the store is gone with its host
            raise RankFailed(f"lost the rendezvous store while waiting for rank {min(awaited)}: "
                             f"{_first_line(e)}") from None
        time.sleep(delay)
        delay = min(2 * delay, 0.2)
        if time.monotonic() < next_look:
            continue
        next_look = time.monotonic() + PERIOD
        missing = [r for r, key in awaited.items() if not c.store.check([key])]
        for r in missing:
            if c.store.check([c.key("error", r)]):
                beat = c.heartbeats([r]).get(r)
                raise RankFailed(f"{_describe(r, beat)} failed: {c.store.get(c.key('error', r)).decode()}",
                                 quiet=not world().is_main)
        beats, now = c.heartbeats(missing), time.monotonic()
        for r in missing:
            n = beats.get(r, {}).get("n", -1)
            if r not in last or last[r][0] != n:
                last[r] = (n, now)
            elif now - last[r][1] > c.timeout_s:
                raise RankFailed(f"{_describe(r, beats.get(r))} stopped answering (stopped, dead or its host "
                                 f"unreachable) while this rank waited for it{_resume_hint(c)}")


def announce_failure(e: BaseException) -> None:
    """Tell the ranks that may be waiting for this one that it failed, and how (one line), so they stop at once."""
    c = _CLUSTER
    if c is None or isinstance(e, (RankFailed, FailedOnMain)):
        return
    try:
        c.store.set(c.key("error", world().rank), f"{type(e).__name__}: {_first_line(e)}")
    except Exception:  # noqa: BLE001 - the store is gone: the others find out from the heartbeat
        pass


def is_collective_failure(e: BaseException) -> bool:
    """Whether ``e`` is a collective or the store failing (a peer gone, a timeout), not a bug of this rank."""
    text = str(e)
    return isinstance(e, getattr(dist, "DistError", ())) or (
        isinstance(e, RuntimeError) and any(s in text for s in ("gloo", "NCCL", "Connection", "Timed out")))


def diagnose(error: BaseException) -> RankFailed:
    """The one-line failure of a collective: which ranks did not arrive and why, read from the heartbeats."""
    c = _CLUSTER
    if c is None:
        return RankFailed(_first_line(error))
    c.failed = True  # others diagnosing at the same moment see this rank as one that was waiting
    me = world().rank
    try:
        c.store.set(c.key("failed", me), "1")
        first = c.heartbeats()
        time.sleep(2.5 * PERIOD)
        second = c.heartbeats()
        failed = {r for r in range(world().size) if c.store.check([c.key("failed", r)])}
    except Exception as e:  # noqa: BLE001 - the store's host is gone too
        return RankFailed(f"a collective failed on rank {me} ({_first_line(error)}) and the rendezvous store is "
                          f"unreachable ({_first_line(e)}){_resume_hint(c)}")
    culprits = {}
    for r in range(world().size):
        a, b = first.get(r), second.get(r)
        if r == me:
            continue
        if c.store.check([c.key("error", r)]):
            culprits[r] = f"{_describe(r, b or a)} failed: {c.store.get(c.key('error', r)).decode()}"
        elif a is None or b is None or a["n"] == b["n"]:
            culprits[r] = f"{_describe(r, b or a)} stopped answering (stopped, dead or its host unreachable)"
        elif r not in failed and not b["waiting"] and not b["failed"]:
            culprits[r] = f"{_describe(r, b)} did not arrive: it is at {b['where']}"
    healthy = [r for r in range(world().size) if r not in culprits]
    if not culprits:
        what = f"a collective failed on rank {me} with every rank answering"
    else:
        what = "; ".join(culprits.values())
    return RankFailed(f"{what} ({_first_line(error)}; dist.timeout {c.timeout_s:g} s){_resume_hint(c)}",
                      quiet=bool(culprits) and me != min(healthy))


def _describe(rank: int, beat: dict | None) -> str:
    if beat is None:
        return f"rank {rank}"
    return f"rank {rank} ({beat['host']}, pid {beat['pid']}, last heard at step {beat['step']})"


def _resume_hint(c: _Cluster) -> str:
    """How the run goes on: torchrun restarts it while --max-restarts allow, else the user reruns it."""
    where = "step 0 (no checkpoint yet)" if c.checkpoint_step is None else f"the checkpoint of step {c.checkpoint_step}"
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    allowed = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS") or 0)
    if restart < allowed:
        return f"; torchrun restarts the run from {where} (restart {restart + 1} of {allowed})"
    return f"; rerun the same command to resume from {where}"


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if text.startswith("[") and "] " in text:  # gloo prefixes its source file ...
        text = text.split("] ", 1)[1]
    return text.split(". This is typically", 1)[0][:300]  # ... and appends advice on reading the other logs


def _picklable(e: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001 - an exception that cannot cross processes travels as its message
        return RuntimeError(f"{type(e).__name__}: {e}")
