"""benchmarks/grid_edge.py refuses what it cannot run, before running anything."""

import pytest

from tests._repo import benchmark_script


@pytest.fixture(scope="module")
def grid_edge():
    with benchmark_script("grid_edge") as module:
        yield module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rows", "source_only"], "not tuned rows of the comparison"),
        (["--trade_offs", "0.5"], "must lie above the grid's largest value 1.0"),
    ],
)
def test_bad_arguments_are_named(grid_edge, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        grid_edge.main([*argv, "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # nothing written
