"""Retention settings and the built-in cron function that applies them.

``Harness(retention={"runs": "30d", "events": "7d", "experiments": "90d"})`` registers the
function ``tether.retention`` on a cron trigger (hourly by default; ``"schedule": "*/10 *
* * *"`` changes it). Any worker of the harness may run it; the store schedules each tick
as one run whatever the number of workers (``flow/cron.py``), and a missed tick is skipped,
not caught up. Each run prunes the kinds named, each with its own age, in short batches
(``store/retention.py``), and returns the counts per kind.

``Harness.prune(older_than=...)`` does the same once, for every kind (or the kinds of a
mapping); ``tether prune`` is the command line's.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.durations import Duration, seconds
from tether.errors import ConfigurationError
from tether.flow.cron import CronTrigger
from tether.store import retention as store_retention

if TYPE_CHECKING:
    from tether.durable.context import SyncContext

RETENTION_FN = "tether.retention"
DEFAULT_SCHEDULE = "17 * * * *"  # hourly, off the hour that every other cron job takes
OPTIONS = ("keep_experiments", "schedule")


def kinds() -> tuple[str, ...]:
    """Every kind retention prunes, in the order it prunes them."""
    return tuple(store_retention.KINDS)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to prune (kind -> age in seconds), how often, and how many experiments of
    each evaluation to keep."""

    older_than: dict[str, float]
    schedule: str = DEFAULT_SCHEDULE
    keep_experiments: int = store_retention.KEEP_EXPERIMENTS

    def cutoffs(self, now: float) -> dict[str, float]:
        return {kind: now - age for kind, age in self.older_than.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "older_than": dict(self.older_than),
            "schedule": self.schedule,
            "keep_experiments": self.keep_experiments,
        }


def _unknown(name: object, what: str) -> ConfigurationError:
    known = [*kinds(), *OPTIONS] if what == "retention=" else list(kinds())
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigurationError(
        f"{what} names {name!r}, which is not a kind of data tether prunes{hint}. The kinds "
        f"are {list(kinds())}"
        + (
            ", and the options 'schedule' (a cron expression) and 'keep_experiments' (an integer)"
            if what == "retention="
            else ""
        )
        + "; give each kind an age such as '30d'."
    )


def _age(kind: str, value: object, what: str) -> float:
    try:
        age = seconds(value, f"{what}[{kind!r}]")  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc}. Example: {what.rstrip('=')}={{{kind!r}: '30d'}}"
        ) from None
    if age <= 0:
        raise ConfigurationError(
            f"{what}[{kind!r}] = {value!r} would prune everything, live data's history "
            "included: give an age above zero, such as '30d'"
        )
    return age


def keep_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"keep_experiments={value!r} is not a count: give the number of latest "
            "experiments to keep per evaluation (an integer >= 0, default 5)"
        )
    return value


def parse_policy(config: Mapping[str, Any]) -> RetentionPolicy:
    """``Harness(retention=...)``: validated at once, nothing registered on a bad value."""
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"retention= takes a mapping of kind to age, e.g. {{'runs': '30d'}}, got {config!r}"
        )
    ages: dict[str, float] = {}
    for name, value in config.items():
        if name in OPTIONS:
            continue
        if name not in store_retention.KINDS:
            raise _unknown(name, "retention=")
        ages[name] = _age(name, value, "retention=")
    if not ages:
        raise ConfigurationError(
            "retention= names no kind to prune: give at least one, e.g. {'runs': '30d'}; "
            f"the kinds are {list(kinds())}"
        )
    schedule = config.get("schedule", DEFAULT_SCHEDULE)
    CronTrigger(schedule)  # a bad expression raises a ConfigurationError naming it
    return RetentionPolicy(ages, schedule, keep_count(config.get("keep_experiments", 5)))


def ages(older_than: Duration | Mapping[str, Duration]) -> dict[str, float]:
    """``Harness.prune(older_than=...)``: one age for every kind, or a mapping of some."""
    if isinstance(older_than, Mapping):
        out: dict[str, float] = {}
        for name, value in older_than.items():
            if name not in store_retention.KINDS:
                raise _unknown(name, "older_than=")
            out[name] = seconds(value, f"older_than[{name!r}]")
        return out
    age = seconds(older_than, "older_than")
    return {kind: age for kind in kinds()}


def retention_function(harness: Any, policy: RetentionPolicy) -> Any:
    """The body of ``tether.retention``: prune with ``policy`` as one step."""

    def retention(ctx: SyncContext) -> dict[str, int]:
        def step() -> dict[str, int]:
            result = harness.prune(policy.older_than, keep_experiments=policy.keep_experiments)
            return dict(result)

        out: dict[str, int] = ctx.step.run("prune", step)
        return out

    return retention


__all__ = [
    "DEFAULT_SCHEDULE",
    "RETENTION_FN",
    "RetentionPolicy",
    "ages",
    "keep_count",
    "kinds",
    "parse_policy",
    "retention_function",
]
