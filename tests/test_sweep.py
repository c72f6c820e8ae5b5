"""`mafine sweep`: grid parsing, naming, a 2 x 2 grid on the fake, skipping, the bash-loop route."""

from __future__ import annotations

import shlex

import pytest

from mafine import sweep
from mafine.errors import MafineError
from tests.conftest import write_config


def test_split_values_respects_brackets_and_quotes():
    assert sweep.split_values("1,2, 3") == ["1", "2", "3"]
    assert sweep.split_values('[1, 2],{a: 1},"x,y"') == ["[1, 2]", "{a: 1}", '"x,y"']


def test_parse_grid_errors():
    assert sweep.parse_grid(["a.b=1,2", "c=x"]) == [("a.b", ["1", "2"]), ("c", ["x"])]
    for bad, message in [
        ("a.b", "expects key.path=value1,value2"),
        ("a=", "expects"),
        ("a=1,,2", "empty value"),
        ("a=1,1", "repeated"),
    ]:
        with pytest.raises(MafineError, match=message):
            sweep.parse_grid([bad])
    with pytest.raises(MafineError, match="given twice"):
        sweep.parse_grid(["a=1", "a=2"])


def test_plan_names_points_and_validates_every_config(tmp_path):
    config = write_config(tmp_path, "grid", agents__critics=1)
    points = sweep.plan(config, ["debate.summarize=true,false", "agents.count=2,3"], seeds="0,1")
    assert len(points) == 8
    first = points[0]
    assert first.name == "debate.summarize=true,agents.count=2,seed=0"
    assert first.run_dir == tmp_path / "runs" / "grid" / "sweep" / first.name
    assert first.config.debate.summarize is True and first.config.agents.count == 2
    assert [p.config.seed for p in points[:2]] == [0, 1]  # seed varies fastest
    assert sweep.point_name([("data.source.path", "data/a b.jsonl")]) == (
        "data.source.path=data_a_b.jsonl"
    )
    with pytest.raises(MafineError, match=r"agents\.count: Input should be greater"):
        sweep.plan(config, ["agents.count=0,1"])
    with pytest.raises(MafineError, match="not both"):
        sweep.plan(config, ["seed=1,2"], seeds="0")


def test_sweep_of_two_by_two_on_the_fake(cli, tmp_path, traffic):
    config = write_config(
        tmp_path, "grid", data__train_size=6, data__eval_size=4, agents__critics=1
    )
    grid = ["--grid", "agents.count=2,3", "--seeds", "0,1"]
    root = tmp_path / "runs" / "grid" / "sweep"

    # One point by hand first, the way a bash loop would: the line --dry-run prints.
    dry = cli("sweep", config, *grid, "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = [line for line in dry.output.splitlines() if line.startswith("mafine run")]
    assert len(lines) == 4 and not root.exists()
    words = shlex.split(lines[0])
    assert words[2:] == [
        str(config), "--set", "agents.count=2", "--set", "seed=0",
        "--set", f"run_dir={root / 'agents.count=2,seed=0'}",
    ]  # fmt: skip
    by_hand = cli(*words[1:])
    assert by_hand.exit_code == 0, by_hand.output
    before = traffic.requests()

    result = cli("sweep", config, *grid)
    assert result.exit_code == 0, result.output
    assert result.output.count("finished earlier, skipped") == 1
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert names == [f"agents.count={c},seed={s}" for c in (2, 3) for s in (0, 1)]
    text = (root / "comparison.md").read_text()
    assert "differing config keys: `agents.count`, `seed`" in text
    assert "| agents.count=2 |" in text and "| agents.count=3 |" in text
    assert "(n=2)" in text  # two seeds per group, aggregated
    assert traffic.requests() > before

    assert "Multiagent FT, iteration 1" in text
    requests = traffic.requests()
    again = cli("sweep", config, *grid)
    assert again.exit_code == 0, again.output
    assert again.output.count("finished earlier, skipped") == 4
    assert traffic.requests() == requests  # finished points start no provider at all

    # the bash-loop route to the same comparison: mafine report runs/grid/sweep/*/
    compared = cli(
        "report", *sorted(p for p in root.iterdir() if p.is_dir()), "-o", tmp_path / "c.md"
    )
    assert compared.exit_code == 0, compared.output
    assert (tmp_path / "c.md").read_text().split("## Accuracy")[1] == text.split("## Accuracy")[1]


def test_sweep_reports_failed_points_and_continues(cli, tmp_path, monkeypatch):
    config = write_config(tmp_path, "bad", data__train_size=6, data__eval_size=4)
    original = sweep.run_one

    def flaky(point_config):
        if point_config.seed == 1:
            raise MafineError("quota exhausted (simulated)")
        return original(point_config)

    monkeypatch.setattr(sweep, "run_one", flaky)
    result = cli("sweep", config, "--seeds", "0,1")
    assert result.exit_code == 1
    assert "1 point(s) failed: seed=1" in result.output
    assert (tmp_path / "runs" / "bad" / "sweep" / "comparison.md").is_file()


def test_sweep_needs_a_grid(cli, tmp_path):
    result = cli("sweep", write_config(tmp_path))
    assert result.exit_code == 2 and "--grid" in result.output


@pytest.mark.parametrize(
    ("grid", "seeds"),
    [
        (["sampling.temperature=1,1.0"], None),
        (["agents.count=3,+3"], None),
        (["debate.summarize=true,True"], None),
        ([], "8,+8"),
    ],
)
def test_grid_values_that_resolve_to_one_config_are_refused(tmp_path, grid, seeds):
    """Points are compared by the config they resolve to, not by how a value is written: two
    spellings of one value would run (and pay for) one config twice."""
    config = write_config(tmp_path, "same")
    with pytest.raises(MafineError, match="are the same config"):
        sweep.plan(config, grid, seeds=seeds)
    assert not (tmp_path / "runs").exists()


def test_points_are_named_by_resolved_values(tmp_path):
    config = write_config(tmp_path, "named")
    (point,) = sweep.plan(config, ["sampling.temperature=1"])
    assert point.name == "sampling.temperature=1.0"
    assert point.overrides() == ["sampling.temperature=1"]  # the dry-run line as written
    (again,) = sweep.plan(config, ["sampling.temperature=1.0"])
    assert again.run_dir == point.run_dir  # one run directory for one config


def test_a_second_sweep_over_one_base_keeps_the_first_comparison(tmp_path):
    first = sweep.comparison_file(tmp_path, ["seed=0", "seed=1"])
    assert first == tmp_path / "comparison.md"
    first.write_text("first sweep")
    assert sweep.comparison_file(tmp_path, ["seed=1", "seed=0"]) == first  # the same sweep
    second = sweep.comparison_file(tmp_path, ["agents.count=2", "agents.count=3"])
    assert second == tmp_path / "comparison-2.md"
    assert first.read_text() == "first sweep"
    assert sweep.comparison_file(tmp_path, ["seed=0", "seed=1"]) == first
