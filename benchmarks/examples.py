"""The committed example maps' faithfulness on their held-out prompts, as a table.

    python benchmarks/examples.py

Reads each target's ``faithfulness.json`` in the run folders under ``graphs/`` (made by
``graphs/regenerate.sh``): the whole circuit first (sites, feature and error nodes, F(C), F(C)
without error nodes, error nodes alone, F(M minus C), random features, curve area, and from
``selection.json`` its F(C) on the build prompts that chose it), then the
per-layer diagnostics (mean over layers of completeness, sufficiency and error share), and from
``prompts.json`` the share of the target's strongest texts that peak within their first
``--min-context`` tokens (a position effect). Writes
the table to ``benchmarks/results/examples.md``.
"""

from __future__ import annotations

from pathlib import Path

from record import record

from circuitmap.circuit.faithfulness import Faithfulness
from circuitmap.circuit.selection import Selection
from circuitmap.files.storage import read_json

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    lines = [
        "| example | target | sites | feature / error nodes | F(C) | F(C) no error nodes "
        "| error nodes alone | F(M∖C) | random | curve area | F(C) on the build prompts "
        "| per-layer completeness "
        "| per-layer sufficiency | error share | held-out prompts | strongest texts peaking "
        "before the context |",
        "|" + " --- |" * 16,
    ]
    for folder in sorted(GRAPHS.glob("*/targets/*")):
        f = Faithfulness.load(folder)
        w = f.whole
        if w is None:
            continue
        figures = " | ".join(
            _fmt(getattr(w, name))
            for name in ("circuit", "no_error", "errors_only", "complement", "random", "area")
        )
        circuit = Selection.load(folder).circuit
        build = None if circuit is None else circuit.build_fit
        lines.append(
            f"| {folder.parents[1].name} | {folder.name} | {','.join(map(str, w.sites))} "
            f"| {w.feature_nodes} / {w.error_nodes} | {figures} | {_fmt(build)} "
            f"| {_fmt(f.mean('completeness'))} "
            f"| {_fmt(f.mean('sufficiency'))} | {_fmt(f.mean('error_share'))} | {f.n_prompts} "
            f"| {_fmt(read_json(folder / 'prompts.json').get('early_peaks'))} |"
        )
    text = "\n".join(lines)
    print(text)
    print(f"\nwrote {record('examples', text)}")


if __name__ == "__main__":
    main()
