"""How fast each local model reads its prompt, measured on real turns: a moving estimate of
prompt tokens per second, so the turn can size what it asks a slow model to read."""

from __future__ import annotations

from dataclasses import dataclass, field

SMOOTHING = 0.3  # weight of the newest measurement
MIN_PROMPT_TOKENS = 32  # shorter prompts say more about overheads than about speed
MIN_SHARE = 0.25


@dataclass
class PrefillSpeeds:
    """Tokens per second by model name, starting from ``prior`` until measured."""

    prior: float
    speeds: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)

    def observe(self, model: str, prompt_tokens: int, seconds: float) -> None:
        if prompt_tokens < MIN_PROMPT_TOKENS or seconds <= 0:
            return
        speed = prompt_tokens / seconds
        known = self.speeds.get(model)
        self.speeds[model] = speed if known is None else known + SMOOTHING * (speed - known)
        self.samples[model] = self.samples.get(model, 0) + 1

    def tokens_per_second(self, model: str) -> float:
        return self.speeds.get(model, self.prior)

    def prompt_tokens_within(self, model: str, seconds: float, elapsed: float = 0.0) -> int:
        """How many prompt tokens the model reads for its first token to land ``seconds``
        after the question, ``elapsed`` of them already spent (retrieval, quoted support).
        At least ``MIN_SHARE`` of ``seconds`` is left to the model, so a slow search still
        leaves it something to read."""
        left = max(seconds - max(elapsed, 0.0), seconds * MIN_SHARE)
        return int(self.tokens_per_second(model) * left)
