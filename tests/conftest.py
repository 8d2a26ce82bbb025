import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))  # reference.py

from typer.testing import CliRunner  # noqa: E402

from circuitmap_cli.main import app  # noqa: E402
from tiny import ARCHS, TINY_TRAIN, save_tiny, tiny_lm  # noqa: E402


@pytest.fixture(scope="session")
def run_cli():
    """The `circuitmap` command, in-process: ``run_cli(*args)`` gives click's result (exit code,
    output); paths and numbers may be passed as they are."""
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(params=ARCHS)
def lm(request):
    """A tiny random model of each supported family."""
    return tiny_lm(request.param)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture
def texts():
    return [
        "a circle is the set of all points in a plane that are equal distance from a fixed point",
        "permission is granted without warranty to any person obtaining a copy of the software",
        "let x be a real number and let the function be defined as the sum of x",
        "the graph has a node and an edge",
        "theorem : the group is a ring",
    ]


@pytest.fixture(scope="session")
def many_texts():
    """300 seeded random word sequences over the tiny vocabulary."""
    import random

    from tiny import WORDS

    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(300)]


@pytest.fixture(scope="session")
def tiny_map_setup(tmp_path_factory, tiny_model_dir, many_texts):
    """A tiny model folder, a corpus file and SAEs for layers 0-2 (target layer 3)."""
    from circuitmap.sae.train import train_layer_saes

    root = tmp_path_factory.mktemp("tiny-map")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(many_texts))
    saes = root / "saes"
    train_layer_saes(tiny_lm("gemma3"), many_texts, [0, 1, 2], TINY_TRAIN, saes, log=lambda m: None)
    return {"model": tiny_model_dir, "corpus": corpus, "saes": root / "saes"}
