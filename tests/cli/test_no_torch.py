"""`circuitmap export` and `circuitmap view` need neither the model nor torch: run in a fresh
interpreter on a committed example, they leave torch out of ``sys.modules``."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "graphs" / "gemma-3-270m-L12-N1742"

SCRIPT = """
import sys, webbrowser
webbrowser.open = lambda url: False  # no browser: view prints where the page is
from circuitmap_cli.main import main
for args in sys.argv[1].split("|"):
    sys.argv = ["circuitmap", *args.split()]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
print("torch loaded:", "torch" in sys.modules)
"""


def test_export_and_view_run_without_torch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "graph.json"):
        shutil.copy(EXAMPLE / name, run / name)
    out = tmp_path / "out"
    commands = f"export {run} --format html,neuronpedia --out {out}|view {out / 'circuit.html'}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, commands],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "torch loaded: False" in done.stdout, done.stdout
    assert json.loads((out / "circuit_neuronpedia.json").read_text())["nodes"]
