"""The knobs of a window's pipeline, with the defaults that docs/context.md explains."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Bump when the summarizer prompt or the folding rules change: it is part of the
#: idempotency key of a compaction, so a new policy never reuses an old step's result.
POLICY_VERSION = "context-v1"


class ContextSettings(BaseModel):
    """Thresholds are shares of the budget; sizes of text are in characters."""

    model_config = ConfigDict(frozen=True)

    #: the window's full size at which it should be compacted at the next step boundary
    soft_trigger: float = Field(default=0.70, gt=0, le=1)
    #: the size at which a build compacts first (when a summarizer is set)
    hard_trigger: float = Field(default=0.85, gt=0, le=1)
    #: the full size a compaction aims for (the hysteresis gap below the soft trigger)
    target: float = Field(default=0.45, gt=0, lt=1)
    #: the most of the budget the memory slot (retrieved turns and memories) may take
    memory_share: float = Field(default=0.10, ge=0, lt=1)
    #: how many of the newest tool results are never cleared
    keep_tool_results: int = Field(default=3, ge=0)
    #: a tool result at least this long is recorded as an artifact (may be shown as a stub)
    artifact_chars: int = Field(default=2000, ge=200)
    #: how much of a stubbed text is shown: its first and last characters
    stub_head_chars: int = Field(default=500, ge=0)
    stub_tail_chars: int = Field(default=250, ge=0)
    #: retrieval: hits asked for, and the longest text shown for one hit
    retrieve_k: int = Field(default=8, ge=0)
    max_hit_chars: int = Field(default=600, ge=40)
    #: a compaction must fold at least this share of the budget, or it does not run
    min_fold_share: float = Field(default=0.10, ge=0, lt=1)
    #: a summary must be at least this much shorter than what it replaces
    min_saving: float = Field(default=0.30, ge=0, lt=1)
    #: the most tokens of transcript sent to the summarizer in one request
    summarizer_input_tokens: int = Field(default=6000, ge=200)
    #: the summary's maximum length (the summarizer's max_tokens): this many tokens, and
    #: at most this share of the budget
    summary_max_tokens: int = Field(default=800, ge=50)
    summary_share: float = Field(default=0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> ContextSettings:
        if not self.target < self.soft_trigger <= self.hard_trigger:
            raise ValueError(
                f"need target < soft_trigger <= hard_trigger, got {self.target}, "
                f"{self.soft_trigger}, {self.hard_trigger}"
            )
        return self

    def summary_cap(self, budget: int) -> int:
        """The most tokens a summary may take in a window of ``budget``."""
        return max(50, min(self.summary_max_tokens, int(self.summary_share * budget)))

    def policy(self) -> str:
        """A short fingerprint of the folding policy (part of a compaction's key)."""
        data = json.dumps([POLICY_VERSION, self.model_dump(mode="json")], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


DEFAULT_SETTINGS = ContextSettings()
