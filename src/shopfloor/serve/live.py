"""The estimators the service holds in memory: every model's live version, and a few others asked for by number.

Loading a model reads files and builds networks (a second or more): it runs in the inference
thread pool, never on the event loop, and two requests that need the same unloaded version wait
for one load. Which version is live is read from the registry (a `stat` of
registry.json, at most once a second), so a promotion made with the CLI, in another process, is served
within a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass

from shopfloor.errors import ShopfloorError
from shopfloor.registry import Registry, UnknownModel, check_name, settle_memory

log = logging.getLogger("shopfloor.serve")

LIVE_RECHECK_SECONDS = 1.0  # a promotion made by the CLI is served within this
KEEP_OTHER_VERSIONS = 2  # versions that are not live, kept loaded after a request named them
# what a route takes, in words, per `accepts` of the estimator contract (tasks/base.py)
INPUT_WORDS = {"rows": "table rows", "runs": "run histories", "images": "images", "settings": "process settings"}


class WrongTask(ShopfloorError):
    """A model asked to do what its task does not do (an image for a table model, ...)."""


class ModelUnavailable(ShopfloorError):
    """A version in the registry that cannot be loaded (damaged, or saved by a newer shopfloor): HTTP 503."""


@dataclass(frozen=True)
class Loaded:
    name: str
    version: int
    task: str
    estimator: object
    live: bool

    @property
    def accepts(self) -> str:
        """What one request carries to this model ("rows", "runs", "images", "settings"; "" for none)."""
        return type(self.estimator).accepts

    def expect(self, accepts: tuple[str, ...], route: str, instead: str) -> None:
        """Refuse (422, one line) a model that takes none of `accepts`, saying what the route serves and which
        models take it: the estimator classes are asked, so a new task is served here without a line changed."""
        if self.accepts in accepts:
            return
        from shopfloor.alarms import described, plural
        from shopfloor.tasks import TASKS, estimator_class

        takers = [plural(cls) for cls in map(estimator_class, TASKS) if cls.accepts in accepts]
        words = [INPUT_WORDS.get(a, a) for a in accepts]
        inputs = " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
        raise WrongTask(f"model '{self.name}' is {described(type(self.estimator))}; {route} serves models that take "
                        f"{inputs}" + (f" ({', '.join(takers)})" if takers else "") + f": {instead}")


class LoadedModels:
    def __init__(self, registry: Registry, executor: Executor, keep_others: int = KEEP_OTHER_VERSIONS):
        self.registry = registry
        self.executor = executor
        self.keep_others = keep_others
        self._loaded: OrderedDict[tuple[str, int], object] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Task] = {}
        self.failures: dict[tuple[str, int], str] = {}
        self._live: dict[str, tuple[float, int | None]] = {}  # name -> (when read, live version)
        self._background: set[asyncio.Task] = set()  # held, so that a task is not collected before it ends

    def live_version(self, name: str) -> int | None:
        """The registry's live version of `name`, read from disk at most once a second (two stats a time)."""
        now = time.monotonic()
        seen = self._live.get(name)
        if seen is not None and now - seen[0] < LIVE_RECHECK_SECONDS:
            return seen[1]
        live = self.registry.live_version(check_name(name))
        self._live[name] = (now, live)
        return live

    def forget_live(self) -> None:
        """Read the live versions afresh (after this service promoted or rolled back a model)."""
        self._live.clear()

    async def get(self, name: str, version: int | None = None) -> Loaded:
        """The model `name` at `version` (the live one when None), loading it first if needed."""
        live = self.live_version(name)
        wanted = live if version is None else version
        if wanted is None:
            raise UnknownModel(f"model '{name}' has no live version: promote one (POST /api/models/{name}/promote) "
                               "or ask for a version with ?version=N")
        key = (name, wanted)
        estimator = self._loaded.get(key)
        if estimator is None:
            if version is not None:
                self.registry.path(name, version)  # an unknown version is a 404 before any loading
            estimator = await self.load(key)
        elif wanted != live:
            self._loaded.move_to_end(key)
        return Loaded(name, wanted, estimator.task_name, estimator, wanted == live)

    async def load(self, key: tuple[str, int]) -> object:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(task)  # a client that gives up does not cancel the load for the others

    async def _load(self, key: tuple[str, int]) -> object:
        loop = asyncio.get_running_loop()
        try:
            estimator = await loop.run_in_executor(self.executor, self._read, key)
        except Exception as err:  # noqa: BLE001 - whatever broke, the model cannot be served; /ready says why
            self.failures[key] = str(err) if isinstance(err, ShopfloorError) else f"{type(err).__name__}: {err}"
            if isinstance(err, UnknownModel):
                raise
            raise ModelUnavailable(f"model '{key[0]}' version {key[1]} cannot be loaded: {self.failures[key]}") from None
        self.failures.pop(key, None)
        self._loaded[key] = estimator
        settle_memory(forgotten=self._forget_old())
        return estimator

    def _read(self, key: tuple[str, int]) -> object:
        name, version = key
        log.info("loading model %s version %s", name, version)
        if self.registry.live_version(name) == version:
            live = self.registry.live(name)  # the registry keeps it too: the dashboard's pages share this copy
            if live.version == version:
                return live.estimator
        return self.registry.load(name, version)  # only a version the registry signed

    def _forget_old(self) -> bool:
        """Keep every live version and the most recently used `keep_others` other versions; True if any went."""
        live = set()
        for name in {k[0] for k in self._loaded}:
            try:
                live.add((name, self.registry.live_version(name)))
            except ShopfloorError:
                pass  # the model folder went away: its versions go too
        others = [k for k in self._loaded if k not in live]
        forgotten = others[: max(0, len(others) - self.keep_others)]
        for key in forgotten:
            del self._loaded[key]
        return bool(forgotten)

    # -- readiness ------------------------------------------------------------------------------
    def warm_up_soon(self) -> None:
        """Load the live versions not yet loaded in the background (after a promotion, or one seen by /ready)."""
        task = asyncio.ensure_future(self.warm_up())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def warm_up(self) -> None:
        """Load every live model (at start-up, and after a promotion); failures are kept for /ready."""
        try:
            missing = self.missing()
        except OSError as err:  # the registry folder itself went away; /ready says so
            log.error("the model registry %s cannot be read: %s", self.registry.root, err)
            return
        for key in missing:
            try:
                await self.load(key)
            except ShopfloorError as err:
                log.error("model %s version %s cannot be served: %s", *key, err)

    def missing(self) -> list[tuple[str, int]]:
        """Live versions neither loaded nor known to fail."""
        keys = []
        for name in self.registry.names():
            try:
                live = self.registry.live_version(name)
            except (ShopfloorError, OSError, ValueError):
                continue
            if live is not None and (name, live) not in self._loaded and (name, live) not in self.failures:
                keys.append((name, live))
        return keys

    def readiness(self) -> tuple[dict[str, int], list[str]]:
        """(live versions loaded, reasons the service is not ready yet)."""
        serving, reasons = {}, []
        try:
            names = self.registry.names()
        except OSError as err:
            return {}, [f"the model registry {self.registry.root} cannot be read: {err}"]
        for name in names:
            try:
                live = self.registry.live_version(name)
            except (ShopfloorError, OSError, ValueError) as err:
                reasons.append(f"model '{name}': its registry.json cannot be read ({err})")
                continue
            if live is None:
                continue  # added but never promoted: nothing to serve
            if (name, live) in self._loaded:
                serving[name] = live
            elif (name, live) in self.failures:
                reasons.append(f"model '{name}' version {live} cannot be loaded: {self.failures[(name, live)]}")
            else:
                reasons.append(f"model '{name}' version {live} is still loading")
        return serving, reasons

