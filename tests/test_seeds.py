"""Every seed derivation pinned to the values earlier versions produced: journals, data splits,
tie-breaks and local responses depend on them, so a change here changes every run."""

from __future__ import annotations

from mafine import seeds


def test_request_seed_is_pinned() -> None:
    assert seeds.request_seed(0, 0) == 2045364706
    assert seeds.request_seed(7, 3) == 736375425


def test_split_and_sft_generators_are_pinned() -> None:
    assert seeds.split_rng(0).random() == 0.7217419245142089
    assert seeds.sft_rng(0, 1, 2).random() == 0.5368801594695044


def test_vote_generators_are_pinned() -> None:
    assert seeds.vote_rng(0, "eval-0007").random() == 0.6474711434453194
    assert seeds.vote_rng(3, "eval-0007", "round1").random() == 0.6971902470236874


def test_stream_seeds_are_pinned() -> None:
    assert seeds.deepmind_seed("arithmetic__add_or_sub", "interpolate", 0) == (
        90557047410461495498657125590504723877983168740358897132117746481904116632615
    )
    assert seeds.local_row_seed("abc") == 3299484158997670390
    assert seeds.derived_seed(0, "agent-0-generator") == 7715068860599617116


def test_fake_draws_are_pinned() -> None:
    assert seeds.fake_response_rng("m", "{}").random() == 0.4427901232204513
    assert seeds.unit_interval("fault:0:k:1") == 0.3345495184253418
