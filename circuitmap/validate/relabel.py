"""`circuitmap labels`: every feature of a finished map gets its observational description
(top-activating snippets, or an imported label) beside its causal one (the Patchscope of its
direction), flagged where they disagree; the table goes to labels.csv and into the graph."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuitmap.files.corpus import corpus_texts
from circuitmap.files.layout import GRAPH_FILE
from circuitmap.files.storage import atomic_write_text
from circuitmap.graph.export import export, node_link_json
from circuitmap.graph.prune import prune
from circuitmap.mapping.driver import run_baseline
from circuitmap.mapping.executors import LocalExecutor
from circuitmap.mapping.folder import load_finished_map
from circuitmap.model.load import cache_root
from circuitmap.sae.store import SAEStore
from circuitmap.validate.labels import (
    LabelRow,
    causal_description,
    labels_csv,
    similarity,
    top_snippets,
)

if TYPE_CHECKING:
    from circuitmap.mapping.driver import Log
    from circuitmap.model.load import LoadedModel


def relabel(
    run_dir: Path,
    lm: LoadedModel,
    imported: dict[tuple[int, int], str] | None = None,
    min_similarity: float = 0.1,
    n_snippets: int = 3,
    log: Log = print,
) -> tuple[list[LabelRow], list[Path]]:
    """Observational and causal descriptions of every feature of a finished map, side by side;
    writes labels.csv (the corrections table), adds them to graph.json and re-exports."""
    config, graph = load_finished_map(run_dir)
    imported = imported or {}
    layers = config.all_layers()
    baseline = run_baseline(config, run_dir, LocalExecutor(config, lm))
    pool = corpus_texts(config.corpus, cache_root(config.model.cache_dir), n=config.prompt_pool)
    saes = SAEStore.for_model(lm, config.sae, config.model.cache_dir)
    rows = []
    for layer in layers:
        nodes = [
            (n, d)
            for n, d in graph.nodes(data=True)
            if d["kind"] == "feature" and d["layer"] == layer
        ]
        if not nodes:
            continue
        layer_sae = saes.layer(layer)
        log(f"layer {layer}: describing {len(nodes)} features ...")
        snippets = top_snippets(lm, layer_sae, [d["index"] for _, d in nodes], pool, n=n_snippets)
        for node, d in nodes:
            causal = causal_description(
                lm, layer_sae, d["index"], d["activation"], baseline.means[layer], config.patchscope
            )
            label = imported.get((layer, d["index"]), "")
            observed = label or " ".join(snippets[d["index"]])
            score = similarity(causal, observed)
            row = LabelRow(
                layer,
                d["index"],
                label,
                snippets[d["index"]],
                causal,
                score,
                score < min_similarity,
            )
            rows.append(row)
            graph.nodes[node].update(
                imported_label=label,
                snippets=" | ".join(row.snippets),
                causal_description=causal,
                label_similarity=score,
                label_flagged=row.flagged,
            )
    atomic_write_text(run_dir / GRAPH_FILE, node_link_json(graph))
    atomic_write_text(run_dir / "labels.csv", labels_csv(rows))
    return rows, [
        run_dir / "labels.csv",
        *export(prune(graph, config.node_threshold, config.edge_threshold), run_dir),
    ]
