"""The fusion maths every backend shares (vectors/fusion.py)."""

from __future__ import annotations

import pytest

from onebox.vectors.fusion import RRF_K, fuse

DENSE = [("a", 0.90), ("b", 0.60), ("c", 0.50)]
KEYWORD = [("c", 12.0), ("d", 6.0), ("a", 2.0)]


def test_minmax_is_a_convex_combination_of_normalised_scores() -> None:
    fused = dict(fuse(DENSE, KEYWORD, method="minmax", keyword_weight=0.25))
    # dense: a=1, b=0.25, c=0; keyword: c=1, d=0.4, a=0; a candidate missing from a list: 0.
    assert fused["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.0)
    assert fused["b"] == pytest.approx(0.75 * 0.25)
    assert fused["c"] == pytest.approx(0.75 * 0.0 + 0.25 * 1.0)
    assert fused["d"] == pytest.approx(0.25 * 0.4)


def test_order_is_best_first_and_limited() -> None:
    fused = fuse(DENSE, KEYWORD, method="minmax", keyword_weight=0.25, limit=2)
    assert [key for key, _ in fused] == ["a", "c"]


def test_weight_zero_keeps_the_dense_order_and_keyword_breaks_ties() -> None:
    tied = [("x", 0.5), ("y", 0.5), ("z", 0.4)]
    fused = fuse(tied, [("y", 3.0)], method="minmax", keyword_weight=0.0)
    # Equal fused scores fall back to the dense rank, whatever the keyword side says.
    assert [key for key, _ in fused][:3] == ["x", "y", "z"]
    fused = fuse(tied, [("y", 3.0)], method="minmax", keyword_weight=0.01)
    assert [key for key, _ in fused][:2] == ["y", "x"]


def test_a_clear_dense_winner_survives_a_keyword_disagreement() -> None:
    # Rank fusion puts "a" (dense 1st by far, keyword last) below others with
    # equal weights; score fusion keeps the big dense margin.
    dense = [("a", 0.95), ("b", 0.40), ("c", 0.39), ("d", 0.38)]
    keyword = [("c", 5.0), ("b", 4.9), ("d", 4.85), ("a", 4.8)]
    assert fuse(dense, keyword, method="rrf", keyword_weight=1.0)[0][0] != "a"
    assert fuse(dense, keyword, method="minmax", keyword_weight=0.3)[0][0] == "a"


def test_rrf_counts_ranks_from_zero_with_a_keyword_weight() -> None:
    fused = dict(fuse(DENSE, KEYWORD, method="rrf", keyword_weight=0.5))
    assert fused["a"] == pytest.approx(1 / RRF_K + 0.5 / (RRF_K + 2))
    assert fused["d"] == pytest.approx(0.5 / (RRF_K + 1))


def test_zscore_gives_a_missing_candidate_its_lists_lowest() -> None:
    fused = dict(fuse([("a", 1.0), ("b", 0.0)], [("c", 1.0)], method="zscore", keyword_weight=0.5))
    # dense z: a=1, b=-1; keyword z of a single score: 0; c misses dense: -1 there.
    assert fused["a"] == pytest.approx(0.5)
    assert fused["b"] == pytest.approx(-0.5)
    assert fused["c"] == pytest.approx(-0.5)


def test_one_list_empty_and_equal_scores() -> None:
    assert fuse([], [], method="minmax") == []
    only = fuse([], [("k", 2.0), ("j", 2.0)], method="minmax", keyword_weight=0.3)
    assert [key for key, _ in only] == ["k", "j"]
    assert only[0][1] == pytest.approx(0.3)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        fuse(DENSE, KEYWORD, method="minmax", keyword_weight=1.5)
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(DENSE, KEYWORD, method="borda", keyword_weight=0.3)  # type: ignore[arg-type]


def test_settings_refuse_a_share_over_one_for_normalised_fusion() -> None:
    from pydantic import ValidationError

    from onebox.core.settings import Settings

    with pytest.raises(ValidationError, match="between 0 and 1"):
        Settings(_env_file=None, hybrid_fusion="minmax", hybrid_keyword_weight=2.0)  # type: ignore[call-arg]
    assert Settings(_env_file=None, hybrid_fusion="rrf", hybrid_keyword_weight=2.0)  # type: ignore[call-arg]
