"""The driver's side of one model served by Ray: its handle, the request path, counters and records.

A request's life on the driver (all on the backend's event loop)::

    admit (shape, dtype; larger than max_batch_size → split into chunks) ──► handle.remote(rows)
      └─ Ray's router picks a replica (power of two choices) ──► @serve.batch ──► stage 0 → ... → Reply
    Reply ──► result; the replica's timings become the request's RequestRecord

A replica that dies with the request on it (``RayActorError``) costs one of ``admission.retries``: the
request is sent again and Ray's router, which now knows the replica is gone, picks another. When no
retry is left it ends with ``WorkerCrashed``. Ray's ``BackPressureError`` (``max_queued_requests``
reached) is ``Overloaded``; the request's deadline passing is ``RequestTimeout``; an exception in the
model is a ``ServingError`` naming it. Every request ends exactly once and leaves a record.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, RayServeException, RequestCancelledError

from workbench.errors import BackendUnavailable, Overloaded, RequestTimeout, ServingError, WorkerCrashed
from workbench.serving.config import ServeConfig
from workbench.serving.records import RequestRecord

from .messages import Reply, to_monotonic
from .options import ROUTING, RayOptions, deployment_names

#: Serve replica states counted as "starting" in stats (besides RUNNING and STOPPING)
_STARTING = ("STARTING", "UPDATING", "RECOVERING", "PENDING_MIGRATION")


class _Trace:
    """What happened to one request on its way through Ray."""

    __slots__ = ("dispatched_at", "replies", "retries")

    def __init__(self) -> None:
        self.dispatched_at: float | None = None
        self.retries = 0
        self.replies: list[Reply] = []


class ServedModel:
    """One model on Ray, seen from the driver. Request methods run on the backend's loop."""

    def __init__(self, name: str, app_name: str, artifact: Any, config: ServeConfig, options: RayOptions,
                 sink: Callable[[RequestRecord], None]):
        self.name = name
        self.app_name = app_name
        self.artifact = artifact
        self.config = config
        self.options = options
        self.sink = sink
        self.handle: Any = None
        self.generation = 0
        self.outcomes: Counter[str] = Counter()
        self.in_flight_requests = 0
        self.in_flight_rows = 0
        self.peak_in_flight_rows = 0
        self.retried = 0
        self.dead_actors: set[str] = set()
        self.workers: dict[str, dict[str, Any]] = {}  # replica id -> pid, actor id, batches
        self.status: dict[str, Any] = {}  # the latest Serve status of the application (see RayBackend)
        self.last_error: str | None = None
        self.closed = False

    @property
    def variant(self) -> str:
        return str(self.artifact.variant)

    @property
    def deployments(self) -> list[str]:
        return deployment_names(self.name, self.config.placement.stages)

    # ---------------------------------------------------------------- requests
    async def serve(self, request_id: int, data: Any, timeout_ms: float | None, received_at: float) -> np.ndarray:
        """One request, start to end (see the module docstring)."""
        try:
            spec = self.artifact.signature.input
            if type(data) is not np.ndarray:
                data = np.asarray(data, dtype=spec.dtype)
            if data.ndim == 0 or data.dtype != np.dtype(spec.dtype) or data.shape[1:] != spec.shape or not len(data):
                spec.check_batch(data)  # raises the clear error
            if self.closed or self.handle is None:
                raise BackendUnavailable(f"model {self.name!r} is shutting down", model=self.name,
                                         request_id=request_id)
        except Exception as exc:
            rows = len(data) if isinstance(data, np.ndarray) and data.ndim else 0
            self._end(request_id, "bad_request" if isinstance(exc, ValueError) else "error", rows, received_at, None)
            raise
        cfg = self.config
        timeout_s = (cfg.admission.timeout_ms if timeout_ms is None else timeout_ms) / 1000.0
        deadline = received_at + timeout_s
        size = cfg.batching.max_batch_size
        rows = len(data)
        chunks = [data[i:i + size] for i in range(0, rows, size)] if cfg.batching.enabled and rows > size else [data]
        trace = _Trace()
        self.in_flight_requests += 1
        self.in_flight_rows += rows
        self.peak_in_flight_rows = max(self.peak_in_flight_rows, self.in_flight_rows)
        outcome = "error"
        try:
            calls = [self._call(chunk, request_id, deadline, trace) for chunk in chunks]
            work = calls[0] if len(calls) == 1 else asyncio.gather(*calls)
            try:
                result: Any = await asyncio.wait_for(work, max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                outcome = "timeout"
                where = "waiting for a replica" if not trace.replies else "on a replica"
                raise RequestTimeout(
                    f"request {request_id} to model {self.name!r} did not complete within its deadline of "
                    f"{timeout_s * 1000:.0f} ms (last seen {where}); raise timeout_ms or lower the load",
                    model=self.name, request_id=request_id) from None
            out = result if len(calls) == 1 else np.concatenate(result)
            outcome = "ok"
            return out
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Overloaded:
            outcome = "overloaded"
            raise
        except WorkerCrashed:
            outcome = "crashed"
            raise
        finally:
            self.in_flight_requests -= 1
            self.in_flight_rows -= rows
            self._end(request_id, outcome, rows, received_at, trace)

    async def _call(self, rows: np.ndarray, request_id: int, deadline: float, trace: _Trace) -> np.ndarray:
        """Send ``rows`` to the model's ingress; retry on a replica's death (see the module docstring)."""
        attempts = 0
        while True:
            trace.dispatched_at = time.monotonic()
            response = self.handle.remote(rows)
            try:
                reply: Reply = await response
            except asyncio.CancelledError:
                response.cancel()  # the deadline passed or the caller went away: stop it in Ray too
                raise
            except Exception as exc:
                died = _died(exc)
                if died is None:
                    raise self._error(exc, request_id) from None
                self._lost(died)
                if attempts < self.config.admission.retries and time.monotonic() < deadline and not self.closed:
                    attempts += 1
                    trace.retries = max(trace.retries, attempts)
                    self.retried += 1
                    continue
                raise WorkerCrashed(
                    f"request {request_id} to model {self.name!r} was lost: its replica died ({died}) "
                    f"(tried {attempts + 1} time(s))", model=self.name, request_id=request_id) from None
            trace.replies.append(reply)
            worker = self.workers.get(reply.replica)
            if worker is None:
                worker = self.workers[reply.replica] = {"state": "ready", "pids": [reply.pid],
                                                        "actor_id": reply.actor_id, "requests": 0}
            worker["requests"] += 1
            return reply.data

    def _lost(self, actor_id: str) -> None:
        self.dead_actors.add(actor_id)
        for replica, worker in list(self.workers.items()):
            if worker["actor_id"] == actor_id:
                del self.workers[replica]
        self.last_error = f"replica actor {actor_id} died"

    def _error(self, exc: BaseException, request_id: int) -> Exception:
        """Ray's exception as ours."""
        name = self.name
        if isinstance(exc, BackPressureError):
            return Overloaded(f"model {name!r} is overloaded: Ray's queue for it is full "
                              f"(max_queue={self.config.admission.max_queue} requests); retry later",
                              retry_after_s=1.0, model=name, request_id=request_id)
        if isinstance(exc, RequestCancelledError):
            return BackendUnavailable(f"request {request_id} to model {name!r} was cancelled by Ray", model=name,
                                      request_id=request_id)
        if isinstance(exc, RayTaskError):
            cause = getattr(exc, "cause", None) or exc
            return ServingError(f"model {name!r} failed on this input: {type(cause).__name__}: {cause}", model=name,
                                request_id=request_id)
        if isinstance(exc, RayServeException):
            return BackendUnavailable(f"model {name!r} is not available in Ray Serve: {exc}", model=name,
                                      request_id=request_id)
        return ServingError(f"model {name!r}: Ray failed to serve request {request_id}: {type(exc).__name__}: {exc}",
                            model=name, request_id=request_id)

    def _end(self, request_id: int, outcome: str, rows: int, received_at: float, trace: _Trace | None) -> None:
        now = time.monotonic()
        self.outcomes[outcome] += 1
        start = end = None
        worker = None
        batch = 0
        dispatched = None
        if trace is not None:
            dispatched = trace.dispatched_at
            if trace.replies:
                start, end = to_monotonic([r.compute_start for r in trace.replies],
                                          [r.compute_end for r in trace.replies], dispatched or received_at, now)
                worker = f"{self.name}/{trace.replies[0].replica}"
                batch = max(r.batch_rows for r in trace.replies)
        self.sink(RequestRecord(
            request_id=request_id, model=self.name, outcome=outcome, rows=rows, received_at=received_at,
            completed_at=now, enqueued_at=received_at, dispatched_at=dispatched, compute_start=start,
            compute_end=end, worker=worker, batch_size=batch, retries=trace.retries if trace else 0,
            variant=self.variant))

    # ------------------------------------------------------------- observation
    def ready(self) -> bool:
        """Serve reports a running replica of every stage (assumed while no status has come yet)."""
        deployments = self.status.get("deployments")
        if deployments is None:
            return self.handle is not None
        return all(deployments.get(d, {}).get("replicas", {}).get("RUNNING", 0) > 0 for d in self.deployments)

    def replica_counts(self) -> dict[str, Any]:
        states = self.status.get("deployments", {}).get(self.deployments[0], {}).get("replicas", {})
        auto = self.options.autoscaling
        target: Any = self.config.placement.replicas if auto is None else \
            [auto.get("min_replicas", 1), auto.get("max_replicas", 1)]
        return {"ready": states.get("RUNNING", 0), "starting": sum(states.get(s, 0) for s in _STARTING),
                "draining": 0, "stopping": states.get("STOPPING", 0), "target": target}

    def stats(self) -> dict[str, Any]:
        """Like the local backend's. Ray does not expose its queues cheaply, so ``queue_requests`` /
        ``queue_rows`` count what this driver has sent and not had answered yet: waiting in Ray's
        router or a replica's queue, or being computed."""
        return {
            "model": self.name, "backend": "ray", "application": self.app_name, "variant": self.variant,
            "ready": self.ready(), "queue_rows": self.in_flight_rows, "queue_requests": self.in_flight_requests,
            "retrying": 0, "peak_queue_rows": self.peak_in_flight_rows, "in_flight": self.in_flight_rows,
            "in_flight_requests": self.in_flight_requests, "replicas": self.replica_counts(),
            "workers": {k: dict(v) for k, v in self.workers.items()}, "deployments": self.status.get("deployments", {}),
            "outcomes": dict(self.outcomes), "restarts": len(self.dead_actors), "retried": self.retried,
            "start_failures": 0, "last_error": self.status.get("message") or self.last_error, "failed": None,
            "routing": ROUTING, "config": self.config.to_dict(),
        }


def _died(exc: BaseException) -> str | None:
    """The actor id (or a description) when ``exc`` says a replica died or is unreachable, else None."""
    for candidate in (exc, getattr(exc, "cause", None)):
        if isinstance(candidate, RayActorError):
            return str(getattr(candidate, "actor_id", None) or candidate.__class__.__name__)
    return None


__all__ = ["ServedModel"]
