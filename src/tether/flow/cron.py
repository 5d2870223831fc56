"""Cron triggers: ``trigger=tether.on_cron("*/5 * * * *", tz="Europe/Paris")``.

Workers schedule each tick as a run with a deterministic id (``cron:<function>:<tick>``)
in one transaction that also advances the function's cron cursor, so any number of
workers create exactly one run per tick. Ticks missed while no worker ran are run on the
next start, unless ``skip_missed=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from tether.errors import ConfigurationError

CRON_EVENT = "tether/cron"
MAX_CATCH_UP = 1000


@dataclass(frozen=True)
class CronTrigger:
    expression: str
    tz: str = "UTC"
    skip_missed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not croniter.is_valid(self.expression):
            raise ConfigurationError(
                f"on_cron({self.expression!r}) is not a cron expression: use five fields, "
                "minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"
            )
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"on_cron(tz={self.tz!r}) is not a time zone: use an IANA name such as "
                "'UTC' or 'Europe/Paris'"
            ) from None

    def describe(self) -> dict[str, object]:
        return {"cron": self.expression, "tz": self.tz, "skip_missed": self.skip_missed}

    def ticks(self, after: float, now: float) -> list[float]:
        """Tick times after ``after`` up to ``now``, plus the first tick after ``now``."""
        start = datetime.fromtimestamp(after, ZoneInfo(self.tz))
        it = croniter(self.expression, start)
        out: list[float] = []
        while True:
            tick = float(it.get_next(float))
            out.append(tick)
            if tick > now or len(out) > MAX_CATCH_UP:
                break
        if self.skip_missed:
            out = [t for t in out if t > now] or out[-1:]
        return out


def on_cron(expression: str, tz: str = "UTC", *, skip_missed: bool = False) -> CronTrigger:
    """Run a function on a schedule (five-field cron syntax, in time zone ``tz``)."""
    return CronTrigger(expression, tz, skip_missed)
