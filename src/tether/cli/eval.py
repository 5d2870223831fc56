"""``tether eval APP_OR_FILE``: run the ``evals.Suite`` objects an app defines; the CI gate.

Exit status: 0 when every suite reaches its thresholds and nothing regressed against
``--baseline``; 1 when a suite is below a threshold or regressed; 2 on bad input (an
unknown suite or scorer, a threshold outside 0..1, an APP that cannot be loaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tether.errors import ConfigurationError, TetherError

eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True)


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """``["0.9"]`` -> ``{"*": 0.9}``; ``["exact=0.8"]`` -> ``{"exact": 0.8}``."""
    from tether.evals.scores import check_threshold

    found: dict[str, float] = {}
    for text in values:
        name, sep, number = text.rpartition("=")
        key = name.strip() if sep else "*"
        if sep and not key:
            raise ConfigurationError(f"--threshold {text!r}: write SCORER=X, e.g. exact=0.9")
        try:
            value = float(number)
        except ValueError:
            raise ConfigurationError(
                f"--threshold {text!r} is not a number: write --threshold 0.9 or "
                "--threshold SCORER=0.9"
            ) from None
        found[key] = check_threshold(value, f"--threshold {text!r}")
    return found


def _load(ref: str, store: str | None) -> tuple[Any, ModuleType]:
    """The app's harness (or a default one when it defines none) and its module."""
    from tether.cli.loader import _import
    from tether.harness import Harness

    module_ref, _, attr = ref.partition(":")
    if ref.count(":") == 1 and len(module_ref) == 1:  # a Windows drive letter
        module_ref, attr = ref, ""
    if store:
        os.environ["TETHER_STORE"] = store
    module = _import(module_ref)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Harness):
            raise ConfigurationError(f"{module_ref}:{attr} is not a tether.Harness")
        return found, module
    harnesses = [v for v in vars(module).values() if isinstance(v, Harness)]
    if len(harnesses) > 1:
        raise ConfigurationError(
            f"{module_ref} defines {len(harnesses)} tether.Harness objects; name one: "
            f"{module_ref}:<variable>"
        )
    return (harnesses[0] if harnesses else Harness(store)), module


def _suites(module: ModuleType, wanted: str | None) -> list[Any]:
    from tether.evals import Suite

    suites = [v for v in vars(module).values() if isinstance(v, Suite)]
    if not suites:
        raise ConfigurationError(
            f"{module.__name__} defines no evals.Suite at module level: add "
            "suite = evals.Suite('name', task=..., dataset=..., scorers=[...])"
        )
    if wanted is None:
        return suites
    picked = [s for s in suites if s.name == wanted]
    if not picked:
        raise ConfigurationError(
            f"no suite named {wanted!r}; the suites are {[s.name for s in suites]}"
        )
    return picked


def _check(
    suites: list[Any], thresholds: dict[str, float], experiment: str | None, baseline: str | None
) -> None:
    from tether.evals.scores import resolve_scorers
    from tether.evals.suite import check_thresholds

    if len(suites) > 1 and (experiment or baseline):
        raise ConfigurationError(
            "--experiment and --baseline name one suite's experiments: pick the suite with "
            f"--suite (the suites are {[s.name for s in suites]})"
        )
    from tether.evals import builtin_scorers

    for suite in suites:
        names = [s.name for s in resolve_scorers(suite.scorers, builtin_scorers())]
        check_thresholds(thresholds or suite.threshold, names)


def _table(result: Any, limits: dict[str, float], problems: list[str]) -> None:
    table = Table(title=f"{result.name}  [dim]{result.experiment}[/]")
    for column in ("scorer", "mean", "pass rate", "stdev", "unscored", "n", "threshold"):
        table.add_column(column)
    for name, s in result.summary.items():
        limit = limits.get(name, limits.get("*"))
        ok = limit is None or (s.mean is not None and s.mean >= limit)
        colour = "green" if ok else "red"
        table.add_row(
            name,
            f"[{colour}]{'-' if s.mean is None else f'{s.mean:.3f}'}[/]",
            "-" if s.pass_rate is None else f"{s.pass_rate:.3f}",
            f"{s.stdev:.3f}",
            str(s.unscored),
            str(s.n),
            "" if limit is None else str(limit),
        )
    out.print(table)
    summary = f"{result.completed}/{result.results} results, {result.errors} task errors"
    if result.cost_usd is not None:
        summary += f", ${result.cost_usd:.4f}"
    out.print(summary)
    for line in problems:
        out.print(f"[red]below threshold[/] {line}")


@eval_app.command()
def command(
    app_ref: Annotated[
        str, typer.Argument(metavar="APP_OR_FILE", help="module:harness or file.py")
    ],
    suite: Annotated[str | None, typer.Option("--suite", help="Run only this suite")] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="Continue (or start) this experiment")
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold", help="Minimum mean of every scorer (0.9) or of one (exact=0.9)"
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Exit 1 on a regression against it")
    ] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", help="Repeats per case")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start a new experiment")] = False,
    min_delta: Annotated[
        float, typer.Option("--min-delta", help="Drops up to this are not regressions")
    ] = 0.0,
    store: Annotated[str | None, typer.Option("--store", "-s", help="Store URL")] = None,
) -> None:
    """Run the evals.Suite objects defined at module level in APP_OR_FILE; exit 1 below a
    threshold or on a regression against --baseline (the CI gate), 2 on bad input."""
    from tether.evals import compare, write_junit
    from tether.evals.suite import below, check_thresholds

    try:
        if repeat is not None and repeat < 1:
            raise ConfigurationError(f"--repeat must be >= 1, got {repeat}")
        limits = parse_thresholds(threshold or [])
        th, module = _load(app_ref, store)
        suites = _suites(module, suite)
        _check(suites, limits, experiment, baseline)
        report: list[dict[str, Any]] = []
        results = []
        failed = False
        for item in suites:
            result = item.run(th, experiment=experiment, repeat=repeat, fresh=fresh)
            results.append(result)
            wanted = limits or check_thresholds(item.threshold)
            problems = below(result, wanted)
            entry: dict[str, Any] = {
                **result.to_dict(),
                "thresholds": wanted,
                "below": problems,
            }
            if baseline:
                comparison = compare(th, result.experiment, baseline=baseline, min_delta=min_delta)
                entry["comparison"] = comparison.to_dict()
                problems = problems + [
                    f"regression {c.case}/{c.scorer}: {c.baseline:.3f} -> {c.value:.3f}"
                    for c in comparison.regressions
                ]
            entry["passed"] = not problems
            failed = failed or bool(problems)
            report.append(entry)
            if not as_json:
                _table(result, wanted, [p for p in problems if not p.startswith("regression")])
                if baseline:
                    _regressions(entry["comparison"])
        if junit is not None:
            write_junit(results, junit)
        if as_json:
            print(json.dumps({"passed": not failed, "suites": report}, indent=2))
        th.close()
    except TetherError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if failed:
        raise typer.Exit(1)


def _regressions(comparison: dict[str, Any]) -> None:
    regs = comparison["regressions"]
    out.print(
        f"against {comparison['baseline']}: {len(regs)} regressions, "
        f"{len(comparison['improvements'])} improvements, {comparison['unchanged']} unchanged"
    )
    for c in regs[:20]:
        note = f"  {c['note']}" if c["note"] else ""
        out.print(
            f"[red]regression[/] case {c['case']} {c['scorer']}: {c['baseline']:.3f} -> "
            f"{c['value']:.3f}{note}"
        )
    if len(regs) > 20:
        out.print(f"... and {len(regs) - 20} more")
    if comparison.get("note"):
        out.print(f"[dim]{comparison['note']}[/]")


__all__ = ["command", "eval_app", "parse_thresholds"]
