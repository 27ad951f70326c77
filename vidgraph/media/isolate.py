"""Run a media job (decode, cut) in a worker process, so a crash in native code costs one video.

FFmpeg and PyAV are C code: a hostile or unusual file can segfault them, which would kill the
whole run and leave the shard half-done. Each job runs in its own process forked from a
forkserver that has the media modules imported already (a fork costs milliseconds, the imports
are paid once); a worker that dies by a signal, or outlives its deadline, becomes a
:class:`WorkerCrashed` / :class:`WorkerTimeout`, which callers quarantine like any refused input.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Any

from vidgraph.media.probe import InputRejected

PRELOAD = ["vidgraph.media.jobs"]
_lock = threading.Lock()
_ctx = None


class WorkerCrashed(InputRejected):
    """The worker died without an answer (a native crash, an abort, the OOM killer)."""


class WorkerTimeout(InputRejected):
    """The worker ran past its hard deadline and was killed."""


def _context():
    global _ctx
    with _lock:
        if _ctx is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(PRELOAD)
            else:  # pragma: no cover - not Linux
                ctx = multiprocessing.get_context("spawn")
            _ctx = ctx
        return _ctx


def _child(conn, fn: Callable, args: tuple, kwargs: dict) -> None:
    try:
        result = (True, fn(*args, **kwargs))
    except BaseException as e:  # noqa: BLE001 - handed to the parent
        result = (False, e)
    try:
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - an unpicklable exception is reported by its text
        payload = pickle.dumps((False, RuntimeError(f"{type(result[1]).__name__}: {result[1]} ({e})")))
    conn.send_bytes(payload)
    conn.close()


def _signal_name(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def run_isolated(fn: Callable, *args: Any, timeout_s: float | None = None, isolate: bool = True, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker process (inline when ``isolate`` is False).

    ``fn`` and its arguments must be picklable (a module-level function). Its exceptions are
    re-raised here; its death by a signal raises :class:`WorkerCrashed`.
    """
    if not isolate:
        return fn(*args, **kwargs)
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args, kwargs), name="vidgraph-media", daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            proc.kill()
            proc.join()
            raise WorkerTimeout(f"the media worker ran past its limit of {timeout_s:g}s and was stopped")
        try:
            payload = recv.recv_bytes()
        except EOFError:
            proc.join()
            raise WorkerCrashed(f"the decoder crashed ({_signal_name(proc.exitcode)}); only this video is affected") from None
        proc.join()
    finally:
        recv.close()
        if proc.is_alive():  # an error above: never leave a worker behind
            proc.kill()
            proc.join()
    ok, value = pickle.loads(payload)
    if ok:
        return value
    raise value
