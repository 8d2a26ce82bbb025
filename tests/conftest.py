import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import ARCHS, save_tiny, tiny_lm  # noqa: E402


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
