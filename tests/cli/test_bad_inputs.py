"""A hostile new user's inputs, through the installed command's entry point (`main`): each one
is a single ``error:`` line with exit 2, no traceback, and no file written or changed."""

import json
import sys
from pathlib import Path

import pytest

from circuitmap.mapping.run import run_map
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
        "level negative": ([*explain, "--level", "-1"], "level -1.0 is not valid"),
        "sparsity nan": ([*a_map, "--sparsity", "nan"], "sparsity nan is not valid"),
        "space unknown": ([*explain, "--space", "latent"], "space"),
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
        "min-context 0": ([*a_map, "--min-context", "0"], "min_context 0 is not valid"),
        "min-context above the window": (
            [*a_map, "--min-context", "63"],
            "min_context 63 is not valid: use a finite number of at least 1 and at most 62",
        ),
        "empty sites": ([*a_map, "--sites", ""], "the circuit's sites are empty"),
        "sites not mapped": ([*a_map, "--sites", "1"], "sites [1] are not mapped layers"),
        "budget 0": ([*a_map, "--budget", "0"], "budget 0 must be at least 1"),
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
    "min-context 0",
    "min-context above the window",
    "empty sites",
    "sites not mapped",
    "budget 0",
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


def _is_float(param) -> bool:
    """A float option, as typer (its own parameter classes) or click describes it."""
    import typing

    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    click_type = getattr(getattr(param, "type", None), "name", "")
    return float in (annotation, *typing.get_args(annotation)) or "float" in click_type


def _float_options() -> list[tuple[str, ...]]:
    """(command words..., option) for every float option of every command."""
    import typer.main

    from circuitmap_cli.main import app

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*words, name])
        for param in getattr(command, "params", []):
            if _is_float(param) and param.opts[0].startswith("--"):
                yield (*words, param.opts[0])

    return sorted(walk(typer.main.get_command(app), []))


FLOAT_OPTIONS = _float_options()


def test_float_options_are_found():
    assert ("labels", "--min-similarity") in FLOAT_OPTIONS
    assert ("export", "--node-threshold") in FLOAT_OPTIONS
    assert ("sae", "train", "--l0-coefficient") in FLOAT_OPTIONS
    assert len(FLOAT_OPTIONS) >= 15


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("words", FLOAT_OPTIONS, ids=" ".join)
def test_every_float_option_is_finite_and_in_range(words, value, tmp_path, monkeypatch, capsys):
    """Every float option of every command goes through one finite-and-in-range check, before
    anything runs (here even before the missing required options are noticed)."""
    *command, option = words
    if command == ["steer"]:
        pytest.skip("steer's numbers are lists")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, *command, option, value)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option} {value} is not valid"), err
    assert "use a finite number" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_min_similarity_out_of_range(mapped, monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "labels", mapped, "--min-similarity", "1.5")
    assert code == 2
    assert err.strip() == (
        "error: --min-similarity 1.5 is not valid: use a finite number of at least 0 and at most 1"
    )


def test_exports_leave_missing_values_off(mapped, tmp_path, monkeypatch, capsys):
    """No attribute of a GraphML, GEXF or node-link JSON export is an empty string (a feature
    of an SAE without a Neuronpedia page has no ``neuronpedia`` attribute at all)."""
    import networkx as nx

    code, _, err = run_main(
        monkeypatch, capsys, "export", mapped, "--format", "graphml,gexf,json", "--out", tmp_path
    )
    assert code == 0, err
    data = json.loads((tmp_path / "circuit.json").read_text())
    graphs = {
        "graphml": nx.read_graphml(tmp_path / "circuit.graphml"),
        "gexf": nx.read_gexf(tmp_path / "circuit.gexf"),
        "json": nx.node_link_graph(data, directed=True, edges="links"),
    }
    for name, graph in graphs.items():
        features = [d for _, d in graph.nodes(data=True) if d.get("kind") == "feature"]
        assert features, name
        assert not any("neuronpedia" in d for d in features), name
        values = [
            *graph.graph.values(),
            *(v for _, d in graph.nodes(data=True) for v in d.values()),
            *(v for *_, d in graph.edges(data=True) for v in d.values()),
        ]
        assert "" not in values, name


def test_a_map_records_the_counts_it_used(tiny_map_setup, tmp_path, monkeypatch, capsys):
    """Counts beyond what exists (500 effect and 500 held-out prompts of 100-text thirds of the
    pool, 100 controls for a handful of kept features, 1000 of 64 SAE features) are recorded as
    used, not as asked."""
    s = tiny_map_setup
    code, _, err = run_main(
        monkeypatch,
        capsys,
        *("map", "--target-layer", 3, "--neuron", 5, "--layers", "1,2", "--model", s["model"]),
        *("--dataset", s["corpus"], "--sae-dir", s["saes"], "--steps", 5, "--max-new-tokens", 3),
        *("--n-prompts", 4, "--effect-prompts", 500, "--n-heldout", 500, "--controls", 100),
        *("--top-k", 1000, "--run-dir", tmp_path / "run"),
    )
    assert code == 0, err
    graph = json.loads((tmp_path / "run" / "graph.json").read_text())
    about = graph["graph"]
    assert (about["n_prompts"], about["top_k"]) == (4, 64)
    split = json.loads((tmp_path / "run" / "targets" / "L3.N5" / "prompts.json").read_text())
    assert 0 < about["effect_prompts"] == len(split["effect"]["texts"]) <= 100
    assert 0 < about["n_heldout"] == about["heldout_prompts"] == len(split["heldout"]["texts"])
    assert about["n_heldout"] <= 100
    kept = max(sum(n["layer"] == layer for n in graph["nodes"]) - 1 for layer in (1, 2))
    assert 0 < about["controls"] <= kept < 100
    assert {n["controls"] for n in graph["nodes"] if "p_value" in n} <= set(range(1, kept + 1))
    settings = json.loads((tmp_path / "run" / "circuit_neuronpedia.json").read_text())
    assert settings["metadata"]["generation_settings"]["effect_prompts"] == about["effect_prompts"]


@pytest.mark.parametrize("damage", ["truncated", "wrong shape"])
def test_resume_reads_every_result_before_any_work(damage, mapped, tmp_path, monkeypatch, capsys):
    """A resumed map whose SAEs are missing (it would train them) and whose layer file is
    damaged fails on the file, naming it, before any SAE is trained or any file written."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mapped, run)
    (run / "graph.json").unlink()  # unfinished
    config = json.loads((run / "config.json").read_text())
    config["sae"]["sae_dir"] = str(tmp_path / "no-saes-yet")
    (run / "config.json").write_text(json.dumps(config))
    layer = run / "targets" / "L3.N5" / "layers" / "layer_02.json"
    text = layer.read_text()
    layer.write_text(text[: len(text) // 2] if damage == "truncated" else '{"layer": 2}')
    before = _snapshot(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "map", "--resume", run)
    assert code == 2, (out, err)
    assert err.startswith(f"error: cannot read {layer}") and len(err.strip().splitlines()) == 1
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "no-saes-yet").exists()


@pytest.fixture
def no_weights(monkeypatch):
    """Loading a model's weights fails the test: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model's weights loaded before the check")

    monkeypatch.setattr("circuitmap.model.load.load_model", refuse)
    monkeypatch.setattr("circuitmap.validate.probe.load_model", refuse)


def _before_weights_cases(setup, run_dir: Path, tmp: Path) -> dict[str, tuple[list, str]]:
    model = ["--model", setup["model"], "--sae-dir", setup["saes"]]
    damaged = tmp / "damaged-run"
    damaged.mkdir()
    for name in ("config.json", "graph.json"):
        (damaged / name).write_text((run_dir / name).read_text())
    (damaged / "graph.json").write_text('{"nodes": [}')
    return {
        "probe feature index": (
            ["probe", "--target-layer", 3, "--neuron", 5, "--feature", "2:999", *model],
            "feature 999 is out of range: valid values are 0..63",
        ),
        "probe feature layer": (
            ["probe", "--target-layer", 3, "--neuron", 5, "--feature", "9:1", *model],
            "layer 9 is out of range",
        ),
        "probe neuron": (
            ["probe", "--target-layer", 3, "--neuron", 999, *model],
            "neuron 999",
        ),
        "steer feature index": (
            ["steer", "--layer", 2, "--feature", 999, *model],
            "feature 999 is out of range: valid values are 0..63",
        ),
        "steer neuron": (["steer", "--target-layer", 3, "--neuron", 999, *model], "neuron 999"),
        "map find with a bad prompt set": (
            ["map", "--find-layer", 3, "--prompts", tmp / "none.txt", *model],
            "prompt set",
        ),
        "map find at a bad layer": (["map", "--find-layer", 9, *model], "9"),
        "labels of a damaged run": (["labels", damaged], f"cannot read {damaged / 'graph.json'}"),
    }


BEFORE_WEIGHTS = [
    "probe feature index",
    "probe feature layer",
    "probe neuron",
    "steer feature index",
    "steer neuron",
    "map find with a bad prompt set",
    "map find at a bad layer",
    "labels of a damaged run",
]


@pytest.mark.parametrize("case", BEFORE_WEIGHTS)
def test_checks_come_before_the_weights_load(
    case, no_weights, tiny_map_setup, mapped, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args, message = _before_weights_cases(tiny_map_setup, mapped, tmp_path)[case]
    before = _snapshot(tmp_path), _snapshot(mapped)
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert (_snapshot(tmp_path), _snapshot(mapped)) == before


def _big_request(setup, tmp: Path) -> list:
    """A map of a 10 000-line targets file: 192 distinct targets, 960 units of work."""
    lines = [f"{1 + i % 3}:{i % 64}" for i in range(10_000)]
    (tmp / "targets.txt").write_text("\n".join(lines) + "\n")
    return [
        *("map", "--targets-file", tmp / "targets.txt", "--model", setup["model"]),
        *("--dataset", setup["corpus"], "--sae-dir", setup["saes"], "--out", tmp / "runs"),
    ]


def test_a_big_map_needs_yes(tiny_map_setup, tmp_path, monkeypatch, capsys):
    args = _big_request(tiny_map_setup, tmp_path)
    before = _snapshot(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: this map has 960 units of work"), err
    assert "pass --yes to start it" in lines[0] and " h " in lines[0]
    assert _snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_a_big_map_asks_on_a_terminal(tiny_map_setup, tmp_path, monkeypatch, capsys):
    args = _big_request(tiny_map_setup, tmp_path)
    asked = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("typer.confirm", lambda text, **kw: asked.append(text) or False)
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and err.strip().endswith("not started")
    assert len(asked) == 1 and "960 units of work" in asked[0]
    assert not (tmp_path / "runs").exists()


def test_a_big_map_starts_with_yes_and_says_how_long(tiny_map_setup, tmp_path, monkeypatch, capsys):
    from circuitmap.errors import CircuitmapError

    def stop(config, run_dir, **kwargs):
        raise CircuitmapError(f"stopped before the work on {len(config.targets)} targets")

    monkeypatch.setattr("circuitmap.mapping.run.finish_map", stop)
    args = _big_request(tiny_map_setup, tmp_path)
    code, _, err = run_main(monkeypatch, capsys, *args, "--yes")
    assert code == 2
    assert "this map has 960 units of work left: about" in err
    assert err.strip().endswith("stopped before the work on 192 targets")
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the run folder, with its config


def _serving(mapped, monkeypatch, capsys, host: str = "127.0.0.1"):
    """`circuitmap view RUN --serve` on a free port, in a thread: (port, server, thread)."""
    import socket
    import threading
    import time

    from circuitmap_cli import view

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    servers = []

    def make(*args, **kwargs):
        servers.append(view_make(*args, **kwargs))
        return servers[-1]

    view_make = view.make_server
    monkeypatch.setattr(view, "make_server", make)
    monkeypatch.setattr(sys, "argv", ["circuitmap", "view", str(mapped), "--serve"])
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--port", str(port), "--host", host])

    def serve():
        try:
            main()
        except SystemExit:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(500):
        if servers:
            break
        time.sleep(0.01)
    return port, servers[0], thread


def _get(port: int, host_header: str) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/", headers={"Host": host_header})
    status = connection.getresponse().status
    connection.close()
    return status


def test_view_serve_ignores_clients_that_leave_early(mapped, monkeypatch, capsys):
    """Clients that reset the connection mid-request or mid-response print no traceback, and
    the server keeps serving."""
    import socket
    import struct

    port, server, thread = _serving(mapped, monkeypatch, capsys)
    requests = [b"GET / HTTP/1.1\r\nHo", f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"]
    try:
        for _ in range(3):
            for request in requests:
                client = socket.create_connection(("127.0.0.1", port))
                client.sendall(request if isinstance(request, bytes) else request.encode())
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # a reset, not a clean close
        assert _get(port, f"127.0.0.1:{port}") == 200
        assert _get(port, f"evil.example:{port}") == 403
        assert _get(port, f"{socket.gethostname()}:{port}") == 403  # loopback only
    finally:
        server.shutdown()
        thread.join(10)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def test_view_serve_on_every_interface_accepts_the_machines_names():
    import socket

    from circuitmap_cli.view import allowed_hosts

    everywhere = allowed_hosts("0.0.0.0", 8000)
    assert {f"{socket.gethostname()}:8000", "localhost:8000", "127.0.0.1:8000"} <= everywhere
    assert f"{socket.getfqdn()}:8000" in everywhere and "evil.example:8000" not in everywhere
    assert "0.0.0.0:8000" not in everywhere
    assert allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert "localhost" in allowed_hosts("127.0.0.1", 80)
