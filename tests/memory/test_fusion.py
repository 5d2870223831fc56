"""The fusion rule (``tether.memory.fusion``) on hand-made rankings: what makes a candidate,
how weak matches stay weak, the score's range and the tie rule."""

from __future__ import annotations

import pytest

from tether.memory.fusion import MIN_SIMILARITY, W_RECENCY, W_TEXT, K, fuse, text_scores

CREATED = {f"m{i}": 1000.0 + i for i in range(10)}


def test_only_word_matches_and_close_vectors_are_candidates() -> None:
    similar = [("m1", MIN_SIMILARITY), ("m2", MIN_SIMILARITY - 0.01), ("m3", 0.9)]
    got = {r.id for r in fuse({"word": ["m4"]}, similar, CREATED, 10)}
    assert got == {"m1", "m3", "m4"}
    assert fuse({}, [("m2", 0.1)], CREATED, 10) == []


def test_a_rare_word_outweighs_common_ones_and_a_vector_only_first_place() -> None:
    # "order" is in every memory, "99812" in m0 only; m9 is first by meaning alone
    matches = {"order": list(CREATED), "99812": ["m0"]}
    similar = [(i, 0.5 + 0.01 * n) for n, i in enumerate(CREATED) if i != "m0"]
    ranked = fuse(matches, similar, CREATED, 3)
    assert ranked[0].id == "m0" and ranked[0].text_rank == 1 and ranked[0].vector_rank is None


def test_scores_lie_in_zero_one_and_first_everywhere_scores_one() -> None:
    ranked = fuse({"w": ["m9"]}, [("m9", 0.8), ("m1", 0.3)], CREATED, 5)
    assert ranked[0].id == "m9" and ranked[0].score == pytest.approx(1.0)
    assert all(0 < r.score <= 1 for r in ranked)
    # without an embedded query the best is text and recency's first place
    alone = fuse({"w": ["m9"]}, [], CREATED, 5, vectors=False)
    assert alone[0].score == pytest.approx(1.0)
    assert fuse({"w": ["m9"]}, [], CREATED, 5)[0].score == pytest.approx(
        (W_TEXT + W_RECENCY) / (W_TEXT + W_RECENCY + 1.0)
    )


def test_ties_go_to_the_newer_memory_and_k_bounds_the_hits() -> None:
    ranked = fuse({"w": ["m2", "m7", "m5"]}, [], CREATED, 2)
    assert [r.id for r in ranked] == ["m7", "m5"]


def test_filtered_out_ids_are_no_candidates_but_count_for_nothing_else() -> None:
    allowed = {"m1": 1.0, "m2": 2.0}
    assert {r.id for r in fuse({"w": ["m1", "m3"]}, [("m4", 0.9)], allowed, 5)} == {"m1"}


def test_idf_is_bm25s_and_sums_over_the_words_held() -> None:
    import math

    scores = text_scores({"a": ["m1", "m2"], "b": ["m1"]}, {f"m{i}": 0.0 for i in range(4)})
    idf = lambda n: math.log(1 + (4 - n + 0.5) / (n + 0.5))  # noqa: E731
    assert scores["m1"] == pytest.approx(idf(2) + idf(1)) and scores["m2"] == pytest.approx(idf(2))
    assert K == 60
