"""Where a map's units of work run: in this process, or fanned out to Ray actors.

Both executors take the same :class:`Call` objects and hand each result to the driver as soon as
it is done (the driver saves it, so an interrupted run resumes), and the driver may answer with
new calls (a finished sweep releases its layers' ablation calls).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from circuitmap.config import EXECUTORS
from circuitmap.errors import CircuitmapError, check_choice
from circuitmap.mapping.worker import Call, Follow, Worker

if TYPE_CHECKING:
    from circuitmap.config import ExecutorName, MapConfig
    from circuitmap.model.load import LoadedModel


class LocalExecutor:
    """Runs every call in this process, on one model copy, in submission order."""

    def __init__(self, config: MapConfig, lm: LoadedModel | None = None) -> None:
        self.worker = Worker(config, lm)

    def call(self, unit: Callable[..., Any], *args: Any) -> Any:
        return unit(self.worker, *args)

    def share(self, value: Any) -> Any:
        """A handle to pass ``value`` to many calls (here: the value itself)."""
        return value

    def run(self, calls: list[Call], follow: Follow) -> None:
        queue = deque(calls)
        while queue:
            call = queue.popleft()
            queue.extend(follow(call, self.call(call.unit, *call.args)))

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Runs calls on Ray actors, each holding the model once: one actor per ``gpus_per_worker``
    GPUs of the cluster (a model too big for one GPU spreads over several with
    ``--device auto``), or per ``cpus_per_worker`` CPUs when the cluster has no GPU."""

    def __init__(
        self,
        config: MapConfig,
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 1,
        cpus_per_worker: float = 1,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise CircuitmapError(
                "--executor ray needs Ray: pip install 'circuitmap[ray]'"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level="WARNING")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise CircuitmapError(f"cannot reach Ray at {address!r}: {exc}") from exc
        resources = ray.cluster_resources()
        if resources.get("GPU", 0) >= gpus_per_worker > 0:
            per = {"num_gpus": gpus_per_worker, "num_cpus": cpus_per_worker}
            slots = int(resources["GPU"] // gpus_per_worker)
        else:
            per = {"num_gpus": 0, "num_cpus": cpus_per_worker}
            slots = int(resources.get("CPU", 1) // cpus_per_worker)
        count = workers or max(slots, 1)
        remote = ray.remote(Worker).options(**per)
        self.actors = [remote.remote(config) for _ in range(count)]

    def call(self, unit: Callable[..., Any], *args: Any) -> Any:
        return self.ray.get(self.actors[0].run.remote(unit, *args))

    def share(self, value: Any) -> Any:
        """Put ``value`` in Ray's object store once; calls receive it by reference."""
        return self.ray.put(value)

    def run(self, calls: list[Call], follow: Follow) -> None:
        queue, idle = deque(calls), list(self.actors)
        running: dict[Any, tuple[Call, Any]] = {}  # object ref -> (call, actor)
        while queue or running:
            while queue and idle:
                call, actor = queue.popleft(), idle.pop()
                running[actor.run.remote(call.unit, *call.args)] = (call, actor)
            (done,), _ = self.ray.wait(list(running), num_returns=1)
            call, actor = running.pop(done)
            idle.append(actor)
            queue.extend(follow(call, self.ray.get(done)))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.shutdown()


Executor = LocalExecutor | RayExecutor


def make_executor(
    name: ExecutorName, config: MapConfig, lm: LoadedModel | None = None, **ray_options: Any
) -> Executor:
    """``local`` (``lm``: a model already loaded here) or ``ray`` (``ray_options``: address,
    workers, gpus_per_worker, cpus_per_worker)."""
    check_choice("executor", name, EXECUTORS)
    if name == "local":
        return LocalExecutor(config, lm)
    return RayExecutor(config, **ray_options)
