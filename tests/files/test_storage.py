import json

import pytest
import torch

from circuitmap.config import (
    CorpusConfig,
    ExplainConfig,
    ModelConfig,
    OptimConfig,
    from_dict,
    to_dict,
)
from circuitmap.errors import CircuitmapError
from circuitmap.files.corpus import build_default_corpus, load_corpus
from circuitmap.files.storage import atomic_write_json
from circuitmap.files.tensors import atomic_save_tensors, read_tensors
from circuitmap.method.explain import ExplainResult


def test_config_round_trips_through_json():
    config = ExplainConfig(
        target_layer=5,
        neuron=3,
        layer=2,
        model=ModelConfig(name="x"),
        optim=OptimConfig(lr=0.1, norm_constraint=True),
    )
    again = from_dict(ExplainConfig, json.loads(json.dumps(to_dict(config))))
    assert again == config


def test_unknown_config_field_is_rejected():
    with pytest.raises(ValueError, match="unknown ExplainConfig fields"):
        from_dict(ExplainConfig, {"target_layer": 1, "neuron": 1, "layer": 0, "bogus": 1})


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_save_tensors(tmp_path / "t.safetensors", {"v": torch.arange(3.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "t.safetensors"]
    torch.testing.assert_close(read_tensors(tmp_path / "t.safetensors")["v"], torch.arange(3.0))


def test_failed_write_keeps_the_old_file(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"x": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: None,
        lambda p: p.mkdir(),
        lambda p: (p.mkdir(), (p / "config.json").write_text("{")),
    ],
)
def test_unreadable_run_folder_is_a_user_error(tmp_path, make):
    run = tmp_path / "run"
    make(run)
    with pytest.raises(CircuitmapError):
        ExplainResult.load(run)


def test_default_corpus_holds_math_and_licences(tmp_path):
    path = build_default_corpus(tmp_path / "c.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    sources = {r["source"] for r in records}
    assert {"sympy", "networkx", "licence"} <= sources
    assert all(len(r["text"]) >= 80 for r in records)
    assert len(records) > 1000
    assert any(
        "Permission is hereby granted" in r["text"] for r in records if r["source"] == "licence"
    )


def test_local_text_folder_loads(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("first paragraph\n\nsecond paragraph")
    (tmp_path / "d" / "b.txt").write_text("third")
    dataset = load_corpus(CorpusConfig(dataset=str(tmp_path / "d")), tmp_path)
    assert sorted(dataset["text"]) == ["first paragraph", "second paragraph", "third"]


def test_a_run_from_before_the_precision_and_rounds_options_resumes_as_it_was_made(tmp_path):
    from circuitmap.config import MapConfig, Target
    from circuitmap.mapping.folder import load_map_config, start_map

    new, old = tmp_path / "new", tmp_path / "old"
    for folder in (new, old):
        folder.mkdir()
        start_map(MapConfig(targets=[Target(3, 5)]), folder)
    data = json.loads((old / "config.json").read_text())
    del data["precision"], data["rounds"]  # what a run made before the options saved
    (old / "config.json").write_text(json.dumps(data))
    assert load_map_config(new).precision == "bfloat16" and load_map_config(new).rounds == 2
    assert load_map_config(old).precision == "float32" and load_map_config(old).rounds == 1
