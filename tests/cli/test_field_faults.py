"""Faults users of similar tools met, tried on circuitmap: each is caught where it arises as one
``error:`` line (exit 2) before any work or file, or measured and reported as undefined."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import test_bad_inputs
import torch
from test_bad_inputs import _snapshot, run_main

from circuitmap.errors import CircuitmapError
from circuitmap.files import storage, tensors

mapped = test_bad_inputs.mapped  # a fixture: a finished tiny map (layer 2 of L3.N5)


def _model(setup) -> list[str]:
    return ["--model", str(setup["model"]), "--dataset", str(setup["corpus"])]


def _explain(setup, *extra) -> list[str]:
    return ["explain", *"--target-layer 3 --neuron 5 --layer 1".split(), *_model(setup), *extra]


def _map(setup, *extra) -> list[str]:
    return ["map", "--target-layer", "3", "--neuron", "5", "--layers", "2", *_model(setup), *extra]


def _one_error(code: int, err: str, message: str) -> str:
    """The error line of a failed command: exit 2, one ``error:`` line, the last on stderr
    (progress notes may come before it), no traceback."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2 and errors == lines[-1:] and "Traceback" not in err, err
    assert message in errors[0], errors[0]
    return errors[0]


def _copy_saes(setup, tmp_path: Path) -> Path:
    saes = tmp_path / "saes"
    shutil.copytree(setup["saes"], saes)
    return saes


def _set_hook(folder: Path, hook: str) -> None:
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = hook
    (folder / "cfg.json").write_text(json.dumps(cfg))


# 1. Non-finite numbers


def test_float16_is_refused_for_gemma_before_loading(tiny_map_setup, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in (
        _explain(tiny_map_setup, "--dtype", "float16", "--out", tmp_path / "runs"),
        _map(tiny_map_setup, "--dtype", "float16", "--run-dir", tmp_path / "run"),
    ):
        code, _, err = run_main(monkeypatch, capsys, *args)
        line = _one_error(code, err, "dtype float16 cannot run gemma3_text models")
        assert "--dtype float32" in line
    assert list(tmp_path.iterdir()) == []


def test_overflowing_activations_are_caught_at_the_baseline(texts):
    from circuitmap.method.baseline import compute_baseline
    from tiny import tiny_lm

    lm = tiny_lm("llama")
    lm.model.half()
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.mul_(1e6)  # past float16's 65 504
    with pytest.raises(CircuitmapError, match="layer 2 holds NaN or infinite values in float16"):
        compute_baseline(lm, texts, [2])


def test_a_nan_tensor_never_reaches_disk(tmp_path):
    tensors.atomic_save_tensors(tmp_path / "ok.safetensors", {"mean_1": torch.ones(3)})
    with pytest.raises(CircuitmapError, match="tensor 'mean_2' holds NaN"):
        tensors.atomic_save_tensors(
            tmp_path / "ok.safetensors",
            {"mean_1": torch.ones(3), "mean_2": torch.tensor([1.0, float("nan")])},
        )
    assert [p.name for p in tmp_path.iterdir()] == ["ok.safetensors"]
    assert tensors.read_tensors(tmp_path / "ok.safetensors")["mean_1"].tolist() == [1.0] * 3


# 2. An SAE applied off its recorded hook


def test_an_sae_folder_of_another_hook_is_refused_before_work(
    tiny_map_setup, tmp_path, monkeypatch, capsys
):
    """circuitmap's own folders record blocks.{l}.hook_resid_pre: read with the default
    --sae-hook resid_post, layer 1 would get the SAE of resid_pre 0."""
    monkeypatch.chdir(tmp_path)
    template = str(tiny_map_setup["saes"] / "resid_pre_{layer}")
    for args, layer in (
        (_explain(tiny_map_setup, "--sae-path", template), 1),
        (_map(tiny_map_setup, "--sae-path", template, "--run-dir", tmp_path / "run"), 2),
    ):
        code, _, err = run_main(monkeypatch, capsys, *args)
        line = _one_error(code, err, f"was trained on blocks.{layer - 1}.hook_resid_pre")
        assert f"would read resid_pre of layer {layer}" in line
        assert "pass --sae-hook resid_pre" in line
    assert list(tmp_path.iterdir()) == []


def test_own_sae_with_another_hook_is_refused(tiny_map_setup, tmp_path, monkeypatch, capsys):
    saes = _copy_saes(tiny_map_setup, tmp_path)
    _set_hook(saes / "resid_pre_2", "blocks.0.hook_resid_post")
    run = tmp_path / "run"
    args = _map(tiny_map_setup, "--sae-dir", saes, "--run-dir", run)
    code, _, err = run_main(monkeypatch, capsys, *args)
    line = _one_error(code, err, "trained on blocks.0.hook_resid_post (resid_pre of layer 1)")
    assert "circuitmap sae train --layers 2 --force" in line
    assert not run.exists()


def test_matching_hooks_pass_and_releases_are_checked_too(tiny_map_setup, tmp_path):
    from circuitmap.config import SAESource
    from circuitmap.sae.store import check_hook, check_sae_folders, load_layer_sae

    template = str(tiny_map_setup["saes"] / "resid_pre_{layer}")
    check_sae_folders(SAESource(path=template, hook="resid_pre"), [0, 1, 2], tmp_path, "m")
    check_sae_folders(SAESource(sae_dir=str(tiny_map_setup["saes"])), [0, 1, 2], tmp_path, "m")
    release = SAESource(release="some-release", sae_id="layer_{layer}")
    check_hook("blocks.4.hook_resid_post", 5, "a release", release)
    with pytest.raises(CircuitmapError, match="use the SAE trained on blocks.4.hook_resid_post"):
        check_hook("blocks.7.hook_resid_post", 5, "a release", release)
    sae = load_layer_sae(1, 32, tmp_path, "m", SAESource(path=template, hook="resid_pre"))
    assert sae.layer == 1
    with pytest.raises(CircuitmapError, match="pass --sae-hook resid_pre"):
        load_layer_sae(1, 32, tmp_path, "m", SAESource(path=template))


# 8. Written before the check


def test_no_train_saes_with_a_missing_sae_writes_nothing(
    tiny_map_setup, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    saes = _copy_saes(tiny_map_setup, tmp_path)
    shutil.rmtree(saes / "resid_pre_2")
    before = _snapshot(tmp_path)
    for where in (["--run-dir", tmp_path / "run"], ["--out", tmp_path / "runs"]):
        args = _map(tiny_map_setup, "--sae-dir", saes, "--no-train-saes", *where)
        code, _, err = run_main(monkeypatch, capsys, *args)
        _one_error(code, err, "no SAE for resid_pre layers [2]")
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()
    assert _snapshot(tmp_path) == before


# 9. The file system says no


MESSAGES = {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied"}


def _refuse(monkeypatch, code: int) -> None:
    """Every atomic write fails as a full disk (or a read-only folder) would."""

    def refused(*args, **kwargs):
        raise OSError(code, MESSAGES[code])

    monkeypatch.setattr(storage.tempfile, "mkstemp", refused)


@pytest.mark.parametrize(
    ("code", "advice"), [(errno.ENOSPC, "free space"), (errno.EACCES, "choose a folder")]
)
def test_export_on_a_full_disk_or_read_only_folder(
    code, advice, mapped, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    before = _snapshot(run)
    _refuse(monkeypatch, code)
    for args in (["export", run], ["export", run, "--format", "json", "--node-threshold", "1"]):
        status, _, err = run_main(monkeypatch, capsys, *args)
        line = _one_error(status, err, f"cannot write {run}")
        assert MESSAGES[code] in line and advice in line
    assert _snapshot(run) == before  # the earlier export is intact, no temp file left


def test_map_resume_on_a_full_disk_keeps_what_was_written(mapped, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    (run / "graph.json").unlink()
    before = _snapshot(run)

    def full(tmp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tensors, "save_file", full)  # the safetensors writer
    monkeypatch.setattr(Path, "write_text", full)  # the JSON and text writer
    code, _, err = run_main(monkeypatch, capsys, "map", "--resume", run)
    line = _one_error(code, err, f"cannot write {run}")
    assert "No space left on device" in line
    assert _snapshot(run) == before


def test_a_truncated_model_file_names_the_folder(tiny_model_dir, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a circle is the set of all points\n\nthe graph has a node")
    args = ["explain", "--target-layer", "3", "--neuron", "5", "--layer", "1"]
    args += ["--model", model, "--dataset", corpus, "--out", tmp_path / "runs"]
    code, _, err = run_main(monkeypatch, capsys, *args)
    line = _one_error(code, err, f"the weights in '{model}' are damaged")
    assert "download or save the model" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# 11. Degenerate values


def test_degenerate_values_are_refused(tiny_map_setup, mapped, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    one = tmp_path / "one.txt"
    one.write_text("a circle is the set of all points\n")
    saes = ["--sae-dir", str(tiny_map_setup["saes"])]
    steer = ["steer", *_model(tiny_map_setup), *saes]
    cases = [
        (
            _map(tiny_map_setup, *saes, "--prompts", one, "--run-dir", tmp_path / "run"),
            "has 1 prompt(s): at least 3 are needed",
        ),
        ([*steer, "--layer", "1", "--feature", "0", "--strengths", "nan,inf"], "--strengths"),
        ([*steer, "--layer", "1", "--feature", "0", "--strengths", "1,-inf"], "finite numbers"),
        ([*steer, "--target-layer", "3", "--neuron", "5", "--clamp", "nan"], "--clamp 'nan'"),
        (["export", mapped, "--node-threshold", "0"], "--node-threshold 0.0 is not valid"),
        (["export", mapped, "--edge-threshold", "0"], "--edge-threshold 0.0 is not valid"),
    ]
    before = _snapshot(tmp_path), _snapshot(mapped)
    for args, message in cases:
        code, out, err = run_main(monkeypatch, capsys, *args)
        _one_error(code, err, message)
        assert "loading" not in err and not out
    assert (_snapshot(tmp_path), _snapshot(mapped)) == before
    assert not (tmp_path / "run").exists()


# 6. Node ids that collide, 7. one type per attribute


def _export_ids(run: Path) -> dict[str, list]:
    """Each export's node ids (and the Neuronpedia file's other ids) as lists."""
    import csv
    import xml.etree.ElementTree as ET

    def xml_ids(name: str) -> list[str]:
        root = ET.parse(run / name).getroot()
        return [e.get("id") for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "node"]

    data = json.loads((run / "circuit_neuronpedia.json").read_text())
    with open(run / "circuit_nodes.csv", newline="") as rows:
        csv_ids = [row["id"] for row in csv.DictReader(rows)]
    return {
        "graphml": xml_ids("circuit.graphml"),
        "gexf": xml_ids("circuit.gexf"),
        "json": [n["id"] for n in json.loads((run / "circuit.json").read_text())["nodes"]],
        "csv": csv_ids,
        "node_id": [n["node_id"] for n in data["nodes"]],
        "jsNodeId": [n["jsNodeId"] for n in data["nodes"]],
        "feature": [
            n["feature"] for n in data["nodes"] if n["feature_type"] != "mlp reconstruction error"
        ],
        "pinnedIds": data["qParams"]["pinnedIds"],
    }


def test_every_export_of_a_multi_target_map_has_unique_ids(
    tiny_map_setup, mapped, tmp_path, monkeypatch, capsys
):
    """Target neuron 12 of layer 2 next to SAE feature 12 of layer 2 (a feature of L3.N5)."""
    graph = json.loads((mapped / "graph.json").read_text())
    feature = next(n["index"] for n in graph["nodes"] if n["kind"] == "feature" and n["layer"] == 2)
    run = tmp_path / "run"
    args = ["map", "--target", "3:5", "--target", f"2:{feature}", "--layers", "1,2"]
    args += [*_model(tiny_map_setup), "--sae-dir", tiny_map_setup["saes"], "--run-dir", run]
    args += ["--n-prompts", "4", "--steps", "5", "--max-new-tokens", "3", "--controls", "0"]
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 0, err
    code, _, err = run_main(monkeypatch, capsys, "export", run, "--node-threshold", "1")
    assert code == 0, err
    nodes = {n["id"] for n in json.loads((run / "circuit.json").read_text())["nodes"]}
    assert {f"L2.N{feature}", f"L2.F{feature}"} <= nodes  # the two that used to collide
    ids = _export_ids(run)
    for name, found in ids.items():
        assert len(found) == len(set(found)), name
    # The two targets first, then the whole circuits' nodes.
    assert len(ids["pinnedIds"]) > 2 and set(ids["pinnedIds"]) <= set(ids["node_id"])
    assert (
        len({len(found) for name, found in ids.items() if name not in ("feature", "pinnedIds")})
        == 1
    )


def test_an_attribute_of_mixed_types_exports_as_one_type(mapped, tmp_path, monkeypatch, capsys):
    import networkx as nx

    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    graph = json.loads((run / "graph.json").read_text())
    graph["nodes"][0]["note"] = 3
    graph["nodes"][1]["note"] = "a user's label"
    graph["nodes"][2]["note"] = True
    (run / "graph.json").write_text(json.dumps(graph))
    code, _, err = run_main(monkeypatch, capsys, "export", run, "--format", "gexf,graphml")
    assert code == 0, err
    for read in (nx.read_gexf, nx.read_graphml):
        loaded = read(run / f"circuit.{read.__name__.removeprefix('read_')}")
        notes = {n: d["note"] for n, d in loaded.nodes(data=True) if "note" in d}
        assert sorted(notes.values()) == ["3", "True", "a user's label"]
    keys = (run / "circuit.graphml").read_text().count('attr.name="note"')
    assert keys == 1


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).parents[2] / "graphs").glob("*/config.json"))
)
def test_committed_examples_have_unique_ids_and_whole_characters(example):
    run = example.parent
    for name, found in _export_ids(run).items():
        assert len(found) == len(set(found)), (run.name, name)
    for path in run.rglob("*"):
        if path.suffix in (".json", ".csv", ".html", ".gexf", ".graphml"):
            assert "\ufffd" not in path.read_text(encoding="utf-8"), path


# 3. A target that never fires


@pytest.fixture(scope="module")
def silent_model(tmp_path_factory):
    """The tiny model with neuron 5 of layer 3 silenced (activation 0 on every token)."""
    from tiny import tiny_lm

    lm = tiny_lm("gemma3")
    with torch.no_grad():
        lm.model.model.layers[3].mlp.up_proj.weight[5] = 0
    folder = tmp_path_factory.mktemp("silent-model")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_a_target_that_never_fires_stops_the_map_in_one_line(
    tiny_map_setup, silent_model, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    model = ["--model", silent_model, "--dataset", tiny_map_setup["corpus"]]
    args = ["map", "--target-layer", "3", "--neuron", "5", "--layers", "2", *model]
    args += ["--sae-dir", tiny_map_setup["saes"], "--run-dir", run, "--n-prompts", "4"]
    code, out, err = run_main(monkeypatch, capsys, *args)
    line = _one_error(code, err, "target L3.N5 does not fire on its prompts (corpus)")
    assert "its largest activation there is 0" in line and not out
    assert not (run / "graph.json").exists() and not list(run.rglob("sweep.json"))
    args = ["steer", *model, "--target-layer", "3", "--neuron", "5", "--clamp", "5"]
    code, _, err = run_main(monkeypatch, capsys, *args)
    _one_error(code, err, "neuron L3.N5 does not fire on the corpus (its largest activation is 0)")


def test_ratios_of_a_zero_or_wrong_sign_denominator_are_undefined():
    from circuitmap.circuit.effects import _relative
    from circuitmap.circuit.whole import ratio

    assert ratio(1.0, 2.0, 4.0) == 0.5
    assert ratio(-1.0, -2.0, 4.0) is None  # removing everything raised the target
    assert ratio(-0.3, -0.6, -0.61) is None  # a target below zero has no share to lose
    assert ratio(1.0, 0.0, 4.0) is None
    assert _relative(0.5, 2.0) == 0.25
    assert _relative(0.5, 0.0) is None and _relative(0.5, -1.0) is None


# 10. Two writers, one run folder


def test_a_second_writer_of_a_run_folder_refuses(mapped, tmp_path, monkeypatch, capsys):
    """Another process holds the folder (as a map does while it writes it): map --resume and
    validate faithfulness refuse in one line and change nothing."""
    import subprocess
    import sys

    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    (run / "graph.json").unlink()
    holder = "import sys; from pathlib import Path; from circuitmap.files.lock import run_lock\n"
    holder += "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()"
    other = subprocess.Popen(
        [sys.executable, "-c", holder, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(sys.path)},
    )
    try:
        assert other.stdout.readline().strip() == "held"
        before = _snapshot(run)
        for args in (["map", "--resume", run], ["validate", "faithfulness", run]):
            code, _, err = run_main(monkeypatch, capsys, *args)
            line = _one_error(code, err, "is being written by another circuitmap process")
            assert f"(pid {other.pid})" in line
        assert _snapshot(run) == before
    finally:
        other.communicate("")
    code, _, err = run_main(monkeypatch, capsys, "map", "--resume", run)  # released: it finishes
    assert code == 0, err
    assert (run / "graph.json").is_file()


def test_two_new_maps_of_one_folder_cannot_both_start(tiny_map_setup, tmp_path):
    from circuitmap.mapping.folder import start_map
    from tiny import map_config

    config = map_config(tiny_map_setup, layers=[2])
    start_map(config, tmp_path)
    with pytest.raises(CircuitmapError, match="already holds a map: use --resume"):
        start_map(config, tmp_path)


def test_resume_refuses_a_config_edited_after_parts_were_made(
    mapped, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    (run / "graph.json").unlink()
    config = json.loads((run / "config.json").read_text())
    config["ablation"], config["max_features"] = "zero", 3
    config["optim"]["lr"] = 0.5
    config["node_threshold"] = 0.7  # exports only: allowed
    (run / "config.json").write_text(json.dumps(config))
    before = _snapshot(run)
    # Refused while the resume is checked, before any work (SAE training included).
    monkeypatch.setattr(
        "circuitmap.mapping.run.finish_map", lambda *a, **k: pytest.fail("work started")
    )
    code, _, err = run_main(monkeypatch, capsys, "map", "--resume", run)
    line = _one_error(code, err, "was mapped with another config than its config.json holds now")
    assert "ablation 'silent' -> 'zero'" in line and "max_features 40 -> 3" in line
    assert "optim.lr 0.05 -> 0.5" in line and "node_threshold" not in line
    assert _snapshot(run) == before
