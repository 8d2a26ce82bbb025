"""--executor ray on a local Ray instance (this machine's CPUs): the same graph as a local run."""

import pytest
import torch

from circuitmap.config import Target
from circuitmap.graph.export import load_graph
from circuitmap.mapping.executors import RayExecutor
from circuitmap.mapping.run import run_map
from tiny import map_config

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")


def _edges(graph):
    return {(u, v): d for u, v, d in graph.edges(data=True)}


def test_ray_map_equals_the_local_map_and_resumes(tiny_map_setup, tmp_path):
    """Bit for bit: each Ray worker here holds one CPU, so torch runs one thread in it, and so
    does the local run (float sums over a different number of threads round differently)."""
    config = map_config(tiny_map_setup, targets=[Target(3, 5), Target(2, 7)], restarts=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_map(config, tmp_path / "local", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)

    messages = []
    executor = RayExecutor(config, workers=2, cpus_per_worker=1)
    try:
        assert len(executor.actors) == 2

        # Stop after the first results stream back, then resume on the same workers.
        def stop_early(message):
            messages.append(message)
            if "measured in" in message:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_map(config, tmp_path / "ray", executor, log=stop_early)
        run_map(config, tmp_path / "ray", executor, log=messages.append)
    finally:
        executor.close()
    assert any("resuming: " in m for m in messages)
    for name in ("graph.json", "targets/L3.N5/graph.json", "targets/L2.N7/graph.json"):
        local, remote = load_graph(tmp_path / "local" / name), load_graph(tmp_path / "ray" / name)
        assert dict(remote.nodes(data=True)) == dict(local.nodes(data=True))
        assert _edges(remote) == _edges(local)
    assert not ray.is_initialized()
