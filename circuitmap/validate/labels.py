"""Label correction: each feature of a map gets an observational description (its top-activating
corpus snippets, and an imported label where the user has one) and a causal one (the contrastive
Patchscope of the feature's direction added to the Mean Vector); features whose causal
description shares too little with the observational label are flagged.

Imported labels: a Neuronpedia export (JSON list of objects with ``layer`` such as
"8-gemmascope-res-16k" or 8, ``index`` and ``description``), or any JSON object/list or CSV
mapping (layer, feature) to a label (columns ``layer``, ``feature`` or ``index``, ``label`` or
``description``). Their layer numbers follow the SAEs' convention (``hook``): with resid_post
SAEs (Gemma Scope) label layer L describes the feature that reads resid_pre of layer L+1.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import read_text_file
from circuitmap.method.ablation import feature_directions
from circuitmap.method.patchscope import patchscope
from circuitmap.model.text import window_text
from circuitmap.model.tokens import batches
from circuitmap.sae.features import sae_activations

if TYPE_CHECKING:
    from circuitmap.config import PatchscopeConfig
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE

_WORD = re.compile(r"[a-z][a-z0-9]+")
_STOP = set(
    "the a an of and or to in is are be that this it for on with as by at from its it's which "
    "any all not no can may will was were has have had their there these those such than then "
    "so if we you he she they them his her our your also".split()
)


def read_labels(path: Path, hook: str = "resid_post") -> dict[tuple[int, int], str]:
    """(resid_pre layer, feature) -> label from a Neuronpedia export, JSON or CSV file."""
    text = read_text_file(path, "label file")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CircuitmapError(f"label file {str(path)!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data = data.get("explanations", data.get("labels", []))
        if not isinstance(data, list):
            raise CircuitmapError(
                f"label file {str(path)!r} holds no list of labels (a list, or one under "
                "'explanations' or 'labels')"
            )
        rows = [row for row in data if isinstance(row, dict)]
    shift = 1 if hook == "resid_post" else 0
    labels = {}
    for row in rows:
        layer = re.match(r"\s*(\d+)", str(row.get("layer", "")))
        index = row.get("feature", row.get("index"))
        label = row.get("label", row.get("description"))
        if layer is None or index is None or not label or not str(index).strip().isdigit():
            continue
        labels[(int(layer[1]) + shift, int(index))] = str(label).strip()
    if not labels:
        raise CircuitmapError(
            f"label file {str(path)!r} holds no (layer, feature/index, label/description) rows"
        )
    return labels


def words(text: str) -> set[str]:
    """Lower-case content words of a text."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def similarity(first: str, second: str) -> float:
    """Overlap of content words, |A ∩ B| / sqrt(|A| |B|) (cosine of binary bags of words)."""
    a, b = words(first), words(second)
    return len(a & b) / (len(a) * len(b)) ** 0.5 if a and b else 0.0


@torch.no_grad()
def top_snippets(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    features: list[int],
    texts: list[str],
    n: int = 3,
    window: int = 8,
) -> dict[int, list[str]]:
    """Each feature's ``n`` top-activating contexts in ``texts`` (``window`` tokens up to and
    including the token where it fires most, one per text)."""
    best: dict[int, list[tuple[float, str]]] = {f: [] for f in features}
    for batch in batches(lm, texts, 64):
        ids = batch.input_ids
        acts = sae_activations(lm, layer_sae, batch)[..., features]  # (batch, seq, k)
        values, positions = acts.masked_fill(~batch.real.cpu()[..., None], 0.0).max(1)
        for row in range(ids.shape[0]):
            for j, feature in enumerate(features):
                pos = positions[row, j].item()
                context = window_text(lm.tokenizer, ids[row], pos - window + 1, pos + 1)
                best[feature].append((values[row, j].item(), " ".join(context.split())))
    return {
        f: [text for value, text in sorted(rows, key=lambda r: -r[0])[:n] if value > 0]
        for f, rows in best.items()
    }


def causal_description(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    feature: int,
    activation: float,
    mean: torch.Tensor,
    config: PatchscopeConfig,
) -> str:
    """Contrastive Patchscope of the Mean Vector plus the feature's direction at ``activation``,
    against the Mean Vector alone."""
    direction = feature_directions(layer_sae.sae, [feature])[0]
    signal = mean + activation * direction
    return patchscope(
        lm, layer=layer_sae.layer, signal=signal, noise=mean, config=config
    ).contrastive_text


@dataclass
class LabelRow:
    layer: int
    feature: int
    imported_label: str
    snippets: list[str]
    causal: str
    similarity: float  # between the causal description and the observational label
    flagged: bool  # the causal result contradicts (shares too little with) the label


def labels_csv(rows: list[LabelRow]) -> str:
    """The corrections table: one row per feature, flagged ones first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["layer", "feature", "flagged", "similarity", "imported_label", "causal", "snippets"]
    )
    for r in sorted(rows, key=lambda r: (not r.flagged, r.layer, r.feature)):
        writer.writerow(
            [
                r.layer,
                r.feature,
                r.flagged,
                f"{r.similarity:.3f}",
                r.imported_label,
                r.causal,
                " | ".join(r.snippets),
            ]
        )
    return out.getvalue()
