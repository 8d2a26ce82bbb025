"""A hostile new user's inputs, through the installed command's entry point (`main`): each one
is a single ``error:`` line with exit 2, no traceback, and no file written or changed."""

import json
import sys
from pathlib import Path

import pytest

from circuitmap.circuit.run import run_map
from circuitmap_cli.main import main
from tiny import map_config


@pytest.fixture(scope="module")
def mapped(tiny_map_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bad-inputs-run")
    run_map(map_config(tiny_map_setup, layers=[2]), run_dir, log=lambda m: None)
    return run_dir


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The `circuitmap` command with ``args``: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["circuitmap", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cases(setup, run_dir: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    model = ["--model", str(setup["model"]), "--dataset", str(setup["corpus"])]
    explain = ["explain", "--target-layer", "3", "--neuron", "5", "--layer", "1", *model]
    a_map = ["map", "--target-layer", "3", "--neuron", "5", "--layers", "2", *model]
    a_map += ["--sae-dir", str(setup["saes"])]
    (tmp / "a-file").write_text("x")
    (tmp / "binary").write_bytes(b"\xff\xfe\x00\x81 12:5")
    (tmp / "list.json").write_text(json.dumps(["12 5 math"]))
    (tmp / "string.json").write_text(json.dumps({"labels": "x"}))
    return {
        "explain --out a file": ([*explain, "--out", tmp / "a-file"], "is a file, not a folder"),
        "explain --out /proc": ([*explain, "--out", "/proc/x/y"], "cannot create output folder"),
        "lr nan": ([*explain, "--lr", "nan"], "lr nan is not valid"),
        "lr inf": ([*explain, "--lr", "inf"], "lr inf is not valid"),
        "lr negative": ([*explain, "--lr", "-1"], "lr -1.0 is not valid"),
        "lr zero": ([*explain, "--lr", "0"], "lr 0.0 is not valid"),
        "alpha nan": ([*explain, "--alpha", "nan"], "alpha nan is not valid"),
        "decode too long": ([*explain, "--max-new-tokens", "100000"], "at most 512"),
        "inject token not in prompt": (
            [*explain, "--inject-token", " circle"],
            "injection token ' circle' does not occur in the Patchscope prompt",
        ),
        "map inject token": ([*a_map, "--inject-token", " circle"], "does not occur"),
        "binary prompt set": ([*a_map, "--prompts", tmp / "binary"], "is not a UTF-8 text file"),
        "binary label file": (["labels", run_dir, "--labels", tmp / "binary"], "not a UTF-8"),
        "target layer 0": (
            ["explain", "--target-layer", "0", "--neuron", "1", "--layer", "0", *model],
            "target layer 0 has no upstream layer",
        ),
        "map lr nan": ([*a_map, "--lr", "nan"], "lr nan is not valid"),
        "map ablation": ([*a_map, "--ablation", "foo"], "ablation 'foo' is not supported"),
        "map select": ([*a_map, "--select", "best"], "select 'best' is not supported"),
        "map executor": ([*a_map, "--executor", "foo"], "executor 'foo' is not supported"),
        "map run-dir a file": ([*a_map, "--run-dir", tmp / "a-file"], "is a file, not a folder"),
        "map binary targets": (
            [*a_map[:1], "--targets-file", tmp / "binary", *model],
            "is not a UTF-8 text file",
        ),
        "map sae template": (
            [*a_map[:-2], "--sae-path", str(tmp / "{lay}")],
            "is not a valid template: the only field is {layer}",
        ),
        "map sae path missing": (
            [*a_map[:-2], "--sae-path", str(tmp / "none-{layer}")],
            "no SAE for resid_pre of layer 2",
        ),
        "explain sae path missing": (
            [*explain, "--sae-path", str(tmp / "none-{layer}")],
            "no SAE for resid_pre of layer 1",
        ),
        "n-prompts 0 (typer range)": ([*a_map, "--n-prompts", "0"], "'--n-prompts'"),
        "unknown option": ([*a_map, "--bogus"], "No such option: --bogus"),
        "resume an explain folder": (["map", "--resume", tmp], "is not a circuitmap run folder"),
        "export nowhere": (["export", run_dir, "--out", "/proc/x/y"], "cannot create output"),
        "export to a file": (["export", run_dir, "--out", tmp / "a-file"], "is a file"),
        "export no format": (["export", run_dir, "--format", ""], "--format names no format"),
        "port too large": (["view", run_dir, "--serve", "--port", "99999"], "port 99999"),
        "port negative": (["view", run_dir, "--serve", "--port", "-1"], "port -1"),
        "labels a list of strings": (
            ["labels", run_dir, "--labels", tmp / "list.json"],
            "holds no",
        ),
        "labels a string": (["labels", run_dir, "--labels", tmp / "string.json"], "holds no list"),
    }


CASES = [
    "explain --out a file",
    "explain --out /proc",
    "lr nan",
    "lr inf",
    "lr negative",
    "lr zero",
    "alpha nan",
    "decode too long",
    "inject token not in prompt",
    "map inject token",
    "binary prompt set",
    "binary label file",
    "target layer 0",
    "map lr nan",
    "map ablation",
    "map select",
    "map executor",
    "map run-dir a file",
    "map binary targets",
    "map sae template",
    "map sae path missing",
    "explain sae path missing",
    "n-prompts 0 (typer range)",
    "unknown option",
    "resume an explain folder",
    "export nowhere",
    "export to a file",
    "export no format",
    "port too large",
    "port negative",
    "labels a list of strings",
    "labels a string",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_writes_nothing(
    case, tiny_map_setup, mapped, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args, message = _cases(tiny_map_setup, mapped, tmp_path)[case]
    before = _snapshot(tmp_path), _snapshot(mapped)
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert (_snapshot(tmp_path), _snapshot(mapped)) == before


def test_damaged_files_are_errors_naming_them(mapped, tmp_path, monkeypatch, capsys):
    """NaN in a saved graph or config, and a quality.json that is not a record."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    graph = run / "graph.json"
    graph.write_text(graph.read_text().replace('"weight": 0', '"weight": NaN', 1))
    code, _, err = run_main(monkeypatch, capsys, "export", run, "--format", "json")
    assert code == 2 and f"cannot read {graph}" in err and "NaN is not valid JSON" in err
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "node_threshold": float("nan")}))
    code, _, err = run_main(monkeypatch, capsys, "export", run, "--format", "json")
    assert code == 2 and "config.json" in err
    sae = tmp_path / "saes" / "gemma-3-270m" / "resid_pre_3"
    sae.mkdir(parents=True)
    (sae / "cfg.json").write_text("{}")
    (sae / "quality.json").write_text("[]")
    code, _, err = run_main(monkeypatch, capsys, "sae", "info", "--cache-dir", tmp_path)
    assert code == 2 and "quality.json is not an SAE quality record" in err
    # An explain run is told it is not a map, not to resume one.
    explain_run = tmp_path / "explain-run"
    explain_run.mkdir()
    (explain_run / "config.json").write_text(json.dumps({"kind": "explain"}))
    code, _, err = run_main(monkeypatch, capsys, "export", explain_run)
    assert code == 2 and "is not a map run folder" in err and "--resume" not in err


def test_list_valued_attributes_export_to_every_format(mapped, tmp_path, monkeypatch, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    graph = json.loads((run / "graph.json").read_text())
    graph["nodes"][0]["tags"] = ["math", "circle"]
    graph["graph"]["notes"] = {"by": "a user"}
    (run / "graph.json").write_text(json.dumps(graph))
    code, out, err = run_main(monkeypatch, capsys, "export", run, "--node-threshold", "1")
    assert code == 0, err
    assert '["math", "circle"]' in (run / "circuit.graphml").read_text()


def test_json_refuses_nan_when_written(tmp_path):
    from circuitmap.errors import CircuitmapError
    from circuitmap.files.storage import atomic_write_json

    with pytest.raises(CircuitmapError, match="refusing to write"):
        atomic_write_json(tmp_path / "x.json", {"lr": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_help_keeps_bracketed_text(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "map", "--help")
    text = " ".join(out.split())  # help is wrapped to the terminal's width
    assert code == 0 and "circuitmap[ray]" in text and "[default: $RAY_ADDRESS" in text


def test_view_serve_on_a_port_in_use(mapped, monkeypatch, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_main(monkeypatch, capsys, "view", mapped, "--serve", "--port", port)
    assert code == 2 and err.startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1
