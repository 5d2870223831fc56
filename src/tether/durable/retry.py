"""Retry policy for steps: how many attempts and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from tether.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Retry:
    """``max_attempts`` counts every attempt (4 means one try and three retries).

    The delay before retry *n* (1-based) is ``initial * 2**(n-1)`` for exponential backoff,
    ``initial * n`` for linear, ``initial`` for constant, capped at ``max_delay``; with
    ``jitter`` a uniformly random share of up to half of it is taken off ("equal jitter"),
    so that retries of many runs spread out instead of arriving together.
    """

    max_attempts: int = 4
    backoff: Literal["exponential", "linear", "constant"] = "exponential"
    initial: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"Retry(max_attempts={self.max_attempts}): at least 1 attempt is needed "
                "(1 means no retries)"
            )
        if self.backoff not in ("exponential", "linear", "constant"):
            raise ConfigurationError(
                f"Retry(backoff={self.backoff!r}): use 'exponential', 'linear' or 'constant'"
            )
        if self.initial < 0 or self.max_delay < 0:
            raise ConfigurationError("Retry delays must not be negative")

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        if self.backoff == "exponential":
            base = self.initial * 2.0 ** (retry_number - 1)
        elif self.backoff == "linear":
            base = self.initial * retry_number
        else:
            base = self.initial
        base = min(base, self.max_delay)
        if self.jitter and base > 0:
            base -= float((rng or random).uniform(0, base / 2))
        return base


NO_RETRY = Retry(max_attempts=1)
