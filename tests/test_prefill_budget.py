"""The passage budget counts what the question has already spent: the first token should land
within the target from the question, not from the moment the model starts reading."""

from __future__ import annotations

from onebox.llm.prefill import MIN_SHARE, PrefillSpeeds


def test_elapsed_time_comes_off_the_budget() -> None:
    speeds = PrefillSpeeds(prior=200.0)
    assert speeds.prompt_tokens_within("m", 2.0) == 400
    assert speeds.prompt_tokens_within("m", 2.0, elapsed=0.3) == 340
    assert speeds.prompt_tokens_within("m", 2.0, elapsed=-1.0) == 400  # clock skew: ignored
    speeds.observe("m", 1000, 10.0)  # 100 tokens/s measured
    assert speeds.prompt_tokens_within("m", 2.0, elapsed=0.5) == 150


def test_a_slow_search_still_leaves_the_model_something_to_read() -> None:
    speeds = PrefillSpeeds(prior=200.0)
    floor = int(200.0 * 2.0 * MIN_SHARE)
    assert speeds.prompt_tokens_within("m", 2.0, elapsed=1.9) == floor
    assert speeds.prompt_tokens_within("m", 2.0, elapsed=30.0) == floor
