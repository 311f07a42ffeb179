"""``Tuner``: find the serving config (and model variant) that meets a latency objective.

::

    tuner = Tuner("mlp", Objective(p99_ms=20, rate=300), space=SearchSpace(replicas=(1, 2)), budget_s=60)
    unsubscribe = tuner.subscribe(lambda trial: print(trial.number, trial.p99_ms), on_done=print)
    result = tuner.run()          # or start() ... wait() / stop()
    result.save("best.yaml")      # workbench serve mlp --config best.yaml

How it spends the budget (seconds of measurement: applying a config and load-testing it; the first
server start is set-up and does not count):

1. Prepare: load the model and its variants, measure each variant's accuracy on the held-out split and
   exclude those under ``min_accuracy``; prune configs whose workers need more cores than this process
   may use (``replicas × stages × threads_per_worker``) or more stages than the model has layers.
2. Screen (about three quarters of the budget): optuna's TPE sampler (seeded) proposes configs; a seeded
   initial design covers every knob value first, ordered so configs sharing worker processes follow
   each other. Each is measured with a short run; a run that clearly violates the bound stops early.
   Fixed rate: one run at the rate. Highest rate: a few short steps per config, starting at the best
   rate so far (a config that cannot carry it is not searched further), growing until the bound breaks,
   then bisecting.
3. Confirm (successive halving): the best few configs are measured again with runs twice as long;
   the best is chosen on these measurements.

Best: fixed rate, the meeting config with the lowest p99 (among those within 10% of it, the fewest
cores); highest rate, the config with the highest rate that kept p99 under the bound.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.tune.space import SearchSpace
from workbench.tune.trial import Objective, Trial

log = logging.getLogger("workbench.tune")

class Tuner:
    """Search ``space`` for the config that best meets ``objective`` within ``budget_s`` seconds of
    measurement. See the module docstring for the method.

    ``model``: a zoo name, a model file or artifact folder, or a ``Model``. ``variants``: more variants of
    it by name (``{"int8": model_or_artifact_folder}``); the model itself is ``"original"``.
    ``runs_dir``: where each trial's run record goes (default: the project's runs folder). ``cores``:
    cores the workers may use (default: this process's affinity). ``screen_s`` / ``confirm_s``: length
    of a screening / confirmation run (defaults scale with the budget). ``initial_rate``: first rate a
    highest-rate search tries (req/s).

    Events (the contract for live views): ``subscribe(on_trial, on_done=None)``; ``on_trial(trial)``
    receives each :class:`Trial` as it finishes, in order of ``trial.number``; ``on_done(result)``
    receives the :class:`TuneResult` once, when the tuner ends (met, unreachable, stopped, or failed:
    then ``result.error`` holds the exception and ``result.message`` says it). Both are called from the
    tuner's own thread: marshal to a UI thread yourself; keep them quick. A callback that raises is
    logged and skipped. ``subscribe`` returns an ``unsubscribe()`` function. Subscribing after trials
    finished does not replay them: read ``tuner.trials`` first.
    """

    def __init__(self, model: Any, objective: Objective, *, space: SearchSpace | Mapping[str, Any] | None = None,
                 variants: Mapping[str, Any] | None = None, budget_s: float = 60.0,
                 runs_dir: str | Path | None = None, seed: int = 0, cores: int | None = None,
                 screen_s: float | None = None, confirm_s: float | None = None, confirm_top: int = 3,
                 initial_rate: float = 100.0, early_stop: bool = True):
        if not isinstance(objective, Objective):
            raise ConfigError(f"objective must be an Objective, e.g. Objective(p99_ms=20, rate=300), got {objective!r}")
        if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not 0 < budget_s <= 86_400:
            raise ConfigError(f"budget_s must be seconds of measurement > 0, got {budget_s!r}")
        if space is None:
            space = SearchSpace()
        elif isinstance(space, Mapping):
            space = SearchSpace.from_dict(dict(space))
        elif not isinstance(space, SearchSpace):
            raise ConfigError(f"space must be a SearchSpace or a mapping of knob -> values, got {type(space).__name__}")
        variants = dict(variants or {})
        for name in variants:
            if not isinstance(name, str) or not name or name == "original":
                raise ConfigError(f"variant names must be non-empty strings other than 'original' (the model "
                                  f"itself), got {name!r}")
        for label, value in (("screen_s", screen_s), ("confirm_s", confirm_s), ("initial_rate", initial_rate)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ConfigError(f"{label} must be a number > 0, got {value!r}")
        if cores is not None and (isinstance(cores, bool) or not isinstance(cores, int) or cores < 1):
            raise ConfigError(f"cores must be an integer >= 1, got {cores!r}")
        if isinstance(confirm_top, bool) or not isinstance(confirm_top, int) or confirm_top < 1:
            raise ConfigError(f"confirm_top must be an integer >= 1, got {confirm_top!r}")
        space.with_variants(["original", *variants])  # names a variant we lack: say so now
        self.model, self.objective, self.space, self.variants = model, objective, space, variants
        self.budget_s, self.runs_dir, self.seed = float(budget_s), runs_dir, seed
        self.cores, self.confirm_top, self.initial_rate, self.early_stop = cores, confirm_top, initial_rate, early_stop
        self.screen_s = float(screen_s) if screen_s else min(3.0, max(1.0, self.budget_s / 25))
        self.confirm_s = float(confirm_s) if confirm_s else 2 * self.screen_s
        self.error: BaseException | None = None
        self.result: Any = None  # TuneResult once done
        self.spent_s = 0.0
        self.status = "new"  # new, preparing, screening, confirming, done
        self._trials: list[Trial] = []
        self._subscribers: list[tuple[Callable[[Trial], None], Callable[[Any], None] | None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._bench: Any = None

    # ------------------------------------------------------------ events
    def subscribe(self, on_trial: Callable[[Trial], None],
                  on_done: Callable[[Any], None] | None = None) -> Callable[[], None]:
        """Call ``on_trial(trial)`` for each finished trial and ``on_done(result)`` at the end (see the class
        docstring); returns ``unsubscribe()``."""
        entry = (on_trial, on_done)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
        return unsubscribe

    def _emit(self, trial: Trial) -> None:
        with self._lock:
            self._trials.append(trial)
            subscribers = list(self._subscribers)
        for on_trial, _ in subscribers:
            try:
                on_trial(trial)
            except Exception:
                log.exception("tuner subscriber failed")

    def _emit_done(self, result: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for _, on_done in subscribers:
            if on_done is not None:
                try:
                    on_done(result)
                except Exception:
                    log.exception("tuner subscriber failed")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Tuner:
        """Start tuning in a background thread; returns at once."""
        with self._lock:
            if self._thread is not None:
                raise ConfigError("this tuner was started already; make a new one to tune again")
            self._thread = threading.Thread(target=self._main, name="workbench-tuner", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the tuner is done (True) or ``timeout_s`` passes (False)."""
        if self._thread is None:
            raise ConfigError("start() the tuner before waiting for it")
        return self._done.wait(timeout_s)

    def run(self) -> Any:
        """start(), wait until done, and return the :class:`TuneResult`; raises the error if it failed
        (a user mistake such as an accuracy floor no variant reaches is a ``ConfigError``)."""
        self.start()
        try:
            while not self._done.wait(0.5):
                pass
        except BaseException:  # KeyboardInterrupt: close everything before leaving
            self.stop()
            raise
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self, timeout_s: float = 30.0) -> bool:
        """End the current trial at once, close the servers, and finish with the trials so far.
        Returns whether the tuner ended within ``timeout_s``."""
        self._stop.set()
        bench = self._bench
        if bench is not None:
            bench.abort()
        if self._thread is None:
            return True
        if self._thread is threading.current_thread():
            return False
        return self._done.wait(timeout_s)

    # ------------------------------------------------------------ state
    @property
    def trials(self) -> list[Trial]:
        with self._lock:
            return list(self._trials)

    @property
    def best(self) -> Trial | None:
        from workbench.tune.select import select_best

        return select_best(self.objective, self.trials)

    @property
    def progress(self) -> float:
        """Share of the budget spent, 0..1 (1 when done)."""
        if self.status == "done":
            return 1.0
        return min(1.0, self.spent_s / self.budget_s)

    @property
    def done(self) -> bool:
        """True once the tuner has ended (also inside ``on_done`` callbacks)."""
        return self.status == "done"

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __repr__(self) -> str:
        return (f"Tuner({self.objective.describe()}, budget_s={self.budget_s:g}, {self.status}, "
                f"{len(self._trials)} trials)")

    # ------------------------------------------------------------ the work
    def _main(self) -> None:
        from workbench.tune.result import TuneResult

        workdir = Path(tempfile.mkdtemp(prefix="workbench-tune-"))
        context: Any = None
        try:
            from workbench.tune.session import TuneSession

            session = TuneSession(self, workdir)
            context = session
            session.run()
            self.result = session.result()
        except BaseException as exc:  # reported to run() and on_done; never lost in the thread
            self.error = exc
            if not isinstance(exc, (ConfigError, KeyboardInterrupt)):
                log.exception("the tuner failed")
            prepared = context.prepared if context is not None else None
            self.result = TuneResult.failed(self.objective, self.trials, exc, prepared=prepared)
        finally:
            bench, self._bench = self._bench, None
            if bench is not None:
                try:
                    bench.close()
                except Exception:
                    log.exception("closing the tuner's server failed")
            shutil.rmtree(workdir, ignore_errors=True)
            self.status = "done"
            try:
                self._emit_done(self.result)
            finally:
                self._done.set()


def tune(model: Any, objective: Objective, *, space: SearchSpace | Mapping[str, Any] | None = None,
         budget_s: float = 60.0, variants: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """``Tuner(model, objective, ...).run()``: tune and return the :class:`TuneResult` (blocking)."""
    return Tuner(model, objective, space=space, budget_s=budget_s, variants=variants, **options).run()


__all__ = ["Tuner", "tune"]
