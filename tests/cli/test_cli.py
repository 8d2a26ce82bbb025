"""The command line on a tiny local model: a full explain run, and one-line errors for bad input."""

import pytest

from circuitmap.method.explain import ExplainResult


@pytest.fixture
def corpus_file(tmp_path, texts):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(texts))
    return path


def _explain(run_cli, model_dir, corpus, *extra):
    args = [
        "explain",
        "--model",
        str(model_dir),
        "--dataset",
        str(corpus),
        "--steps",
        "3",
        "--max-new-tokens",
        "3",
    ]
    return run_cli(*args, *extra)


def test_explain_runs_and_saves_a_reloadable_run(run_cli, tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "runs"
    result = _explain(
        run_cli,
        tiny_model_dir,
        corpus_file,
        "--target-layer",
        "3",
        "--neuron",
        "5",
        "--layer",
        "1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "Patchscope, contrastive" in result.output and "run saved to" in result.output
    (run_dir,) = out.iterdir()
    run = ExplainResult.load(run_dir)
    assert (run.config.target_layer, run.config.neuron, run.config.layer) == (3, 5, 1)
    assert len(run.trajectory) == 3 and run.vector.shape == (32,)
    assert run.config.corpus.dataset == str(corpus_file)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--target-layer", "7", "--neuron", "5", "--layer", "1"],
            "target layer 7 is out of range: valid values are 0..3",
        ),
        (
            ["--target-layer", "3", "--neuron", "64", "--layer", "1"],
            "neuron 64 is out of range: valid values are 0..63",
        ),
        (
            ["--target-layer", "3", "--neuron", "5", "--layer", "-1"],
            "layer -1 is out of range: valid values are 0..3",
        ),
        (
            ["--target-layer", "2", "--neuron", "5", "--layer", "2"],
            "upstream layer 2 must be below the target layer 2",
        ),
    ],
)
def test_bad_layers_and_neurons_are_one_line_errors(
    run_cli, tiny_model_dir, corpus_file, args, message
):
    result = _explain(run_cli, tiny_model_dir, corpus_file, *args)
    _assert_user_error(result, message)


def test_unknown_model_path_is_a_one_line_error(run_cli, corpus_file, tmp_path):
    result = _explain(
        run_cli,
        tmp_path / "no-such-model",
        corpus_file,
        "--target-layer",
        "3",
        "--neuron",
        "1",
        "--layer",
        "1",
    )
    _assert_user_error(result, "does not exist or is not a folder")


def test_empty_dataset_is_a_one_line_error(run_cli, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = _explain(
        run_cli, tiny_model_dir, empty, "--target-layer", "3", "--neuron", "1", "--layer", "1"
    )
    _assert_user_error(result, "has no non-empty texts")


def test_missing_dataset_column_is_a_one_line_error(run_cli, tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"body": "a circle"}\n')
    result = _explain(
        run_cli, tiny_model_dir, data, "--target-layer", "3", "--neuron", "1", "--layer", "1"
    )
    _assert_user_error(result, "has no column 'text': its columns are body")


def _assert_user_error(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_every_command_has_help(
    run_cli,
):
    for cmd in ([], ["explain"]):
        result = run_cli(*cmd, "--help")
        assert result.exit_code == 0 and "Usage" in result.output
