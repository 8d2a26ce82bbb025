"""Automatic supernodes: features of one layer, or of two adjacent layers, that play one role in
a circuit, grouped so the explorer can collapse them and the Neuronpedia export can carry them.

The idea is the supernodes of attribution-graph papers (Ameisen et al., "Circuit Tracing", and
Lindsey et al., "On the Biology of a Large Language Model", Anthropic 2025), which are grouped by
hand from two kinds of evidence: what the features do (the same effect on the target, the same
parents and children in the graph) and where they fire (the same contexts). Here both are
scored and the groups come from agglomerative clustering:

- **effect** similarity: the cosine of two features' effect profiles, the vector of their edge
  weights from and to every node of the graph followed by their influence on the target; for
  features of adjacent layers, whose edges reach different nodes, the edge between them counts
  too (its weight relative to the larger of the source's outgoing weights), since a feature
  that passes itself on to the next layer plays one role in both;
- **context** similarity: the Jaccard similarity of the sets of tokens where they fire (the
  marked tokens of ``contexts`` and ``corpus_contexts``), when both have any;
- similarity = the mean of the two (effect alone when a context set is empty).

Pairs more than one layer apart, with influences of opposite sign, or one inside and one outside
the circuit (``in_circuit``) are never grouped. Complete-linkage clustering
(:func:`scipy.cluster.hierarchy.linkage`) on 1 − similarity, cut at 1 − ``min_similarity``,
makes every member of a group at least that similar to every other one; groups of one are left
out. Each group is labelled by its layers and the words that its members' labels share most.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

MIN_SIMILARITY = 0.6
_MARKED = re.compile(r"\[\[(.*?)\]\]")


@dataclass(frozen=True)
class Supernode:
    label: str
    members: tuple[str, ...]  # node ids, strongest |influence| first


def _tokens(d: dict) -> set[str]:
    """The tokens where a feature fires: marked in ``contexts``, and its corpus contexts'."""
    found = {t.strip().lower() for t in _MARKED.findall(d.get("contexts") or "")}
    found |= {str(c.get("token", "")).strip().lower() for c in d.get("corpus_contexts") or []}
    return found - {""}


def similarity(graph: nx.DiGraph, features: list[str]) -> np.ndarray:
    """(n, n) similarity in [0, 1] of ``features`` (see the module docstring); 0 for pairs that
    may not be grouped."""
    position = {node: i for i, node in enumerate(graph)}
    n_all, n = graph.number_of_nodes(), len(features)
    profile = np.zeros((n, 2 * n_all + 1))  # in-weights, out-weights, influence
    for row, node in enumerate(features):
        for u, _, w in graph.in_edges(node, data="weight"):
            profile[row, position[u]] = w
        for _, v, w in graph.out_edges(node, data="weight"):
            profile[row, n_all + position[v]] = w
        profile[row, -1] = graph.nodes[node].get("influence") or 0.0
    norm = np.linalg.norm(profile, axis=1, keepdims=True)
    unit = profile / np.where(norm > 0, norm, 1)
    effect = np.clip(unit @ unit.T, 0, 1)
    tokens = [_tokens(graph.nodes[f]) for f in features]
    layer = [graph.nodes[f]["layer"] for f in features]
    sim = np.zeros((n, n))
    for i, a in enumerate(features):
        da = graph.nodes[a]
        for j in range(i + 1, n):
            gap = layer[j] - layer[i]
            if abs(gap) > 1 and layer == sorted(layer):
                break  # features sorted by layer: no later one is within one layer
            db = graph.nodes[features[j]]
            same_sign = (da.get("influence") or 0) * (db.get("influence") or 0) >= 0
            if abs(gap) > 1 or not same_sign or da.get("in_circuit") != db.get("in_circuit"):
                continue
            score = effect[i, j]
            if gap:  # the edge from the earlier feature to the later one
                src, dst = (a, features[j]) if gap > 0 else (features[j], a)
                out = [abs(w) for *_, w in graph.out_edges(src, data="weight")]
                if graph.has_edge(src, dst) and max(out) > 0:
                    score = max(score, graph.edges[src, dst]["weight"] / max(out))
            if tokens[i] and tokens[j]:
                score = (score + len(tokens[i] & tokens[j]) / len(tokens[i] | tokens[j])) / 2
            sim[i, j] = sim[j, i] = score
    np.fill_diagonal(sim, 1.0)
    return sim


def _label(graph: nx.DiGraph, members: list[str]) -> str:
    """``L4-5 polynomial · symmetric``: the layers and the words most common in the members'
    labels (the part after ``:``), weighted by |influence|."""
    words: Counter[str] = Counter()
    for m in members:
        d = graph.nodes[m]
        text = str(d.get("label", "")).partition(":")[2]
        for word in dict.fromkeys(w.strip() for w in text.split("·") if w.strip()):
            words[word] += abs(d.get("influence") or 0.0) + 1e-9
    layers = sorted({graph.nodes[m]["layer"] for m in members})
    where = f"L{layers[0]}" + (f"-{layers[-1]}" if len(layers) > 1 else "")
    named = " · ".join(w for w, _ in words.most_common(2))
    return f"{where} {named}" if named else f"{where} {'+'.join(m.split('.')[-1] for m in members)}"


def find_supernodes(graph: nx.DiGraph, min_similarity: float = MIN_SIMILARITY) -> list[Supernode]:
    """The supernodes of ``graph``'s features, strongest summed |influence| first."""
    features = sorted(
        (n for n, d in graph.nodes(data=True) if d.get("kind") == "feature"),
        key=lambda n: graph.nodes[n]["layer"],
    )
    if len(features) < 2:
        return []
    distance = 1 - similarity(graph, features)
    tree = linkage(squareform(distance, checks=False), method="complete")
    labels = fcluster(tree, t=1 - min_similarity, criterion="distance")
    strength = {f: abs(graph.nodes[f].get("influence") or 0.0) for f in features}
    groups = []
    for cluster in np.unique(labels):
        members = sorted(
            (f for f, c in zip(features, labels, strict=True) if c == cluster),
            key=lambda f: -strength[f],
        )
        if len(members) > 1:
            groups.append(Supernode(_label(graph, members), tuple(members)))
    return sorted(groups, key=lambda g: -sum(strength[m] for m in g.members))


def add_supernodes(graph: nx.DiGraph, min_similarity: float = MIN_SIMILARITY) -> nx.DiGraph:
    """``graph`` with its supernodes in the graph attribute ``supernodes``: JSON text of
    ``[[label, node_id, ...], ...]``, the shape of Neuronpedia's ``qParams.supernodes``."""
    groups = find_supernodes(graph, min_similarity)
    graph.graph["supernodes"] = json.dumps([[g.label, *g.members] for g in groups])
    return graph
