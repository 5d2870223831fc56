"""``tether audit``: the reliability audit from the code (``code``) and the runs (``runs``)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tether.audit import AREAS, RULES, CodeAudit
from tether.audit import code as audit_code
from tether.errors import ConfigurationError

app = typer.Typer(
    name="audit",
    help="The reliability audit: where reliability time goes, from the code and the runs.",
    no_args_is_help=True,
    add_completion=False,
)


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


_LEVEL_STYLE = {"error": "red", "warning": "yellow", "note": "cyan"}


@app.command("code")
def code_command(
    path: Annotated[Path, typer.Argument(help="A Python file or a directory to scan")],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="text, json or sarif")
    ] = Format.text,
    fail_under: Annotated[
        float | None,
        typer.Option(
            "--fail-under", help="Exit 1 when any area's score (or the overall) is below N"
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to a file")
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="Report paths relative to this folder")
    ] = None,
) -> None:
    """Scan Python code for reliability gaps: orchestration, context, retry, observability."""
    err = Console(stderr=True)
    if fail_under is not None and not 0 <= fail_under <= 100:
        err.print(f"[bold red]error:[/] --fail-under must be between 0 and 100, not {fail_under}")
        raise typer.Exit(2)
    try:
        audit = audit_code(path, root=root)
    except ConfigurationError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if fmt is Format.text:
        console = Console(
            file=output.open("w", encoding="utf-8") if output else None, soft_wrap=False
        )
        render_text(audit, console)
        if fail_under is not None:
            verdict = "passes" if audit.passes(fail_under) else "fails"
            console.print(f"--fail-under {fail_under:g}: {verdict}")
    else:
        doc = audit.to_dict() if fmt is Format.json else audit.to_sarif()
        text = json.dumps(doc, indent=2)
        if output:
            output.write_text(text + "\n", encoding="utf-8")
        else:
            typer.echo(text)
    for skipped in audit.skipped:
        err.print(
            f"[yellow]warning:[/] {escape(skipped.path)}:{skipped.line}: {escape(skipped.message)}"
        )
    if fail_under is not None and not audit.passes(fail_under):
        raise typer.Exit(1)


def render_text(audit: CodeAudit, console: Console) -> None:
    findings = Table(title="tether audit code", expand=False)
    findings.add_column("location", overflow="fold")
    findings.add_column("rule")
    findings.add_column("finding", overflow="fold")
    for f in audit.findings:
        style = _LEVEL_STYLE.get(f.level, "white")
        findings.add_row(
            escape(f"{f.path}:{f.line}:{f.col}"), f"[{style}]{f.rule}[/]", escape(f.message)
        )
    if audit.findings:
        console.print(findings)
        fixes = Table(title="what to write instead")
        fixes.add_column("rule")
        fixes.add_column("area")
        fixes.add_column("n", justify="right")
        fixes.add_column("fix", overflow="fold")
        for rule_id in sorted({f.rule for f in audit.findings}):
            rule = RULES[rule_id]
            count = sum(1 for f in audit.findings if f.rule == rule_id)
            fixes.add_row(rule_id, rule.area, str(count), escape(f"{rule.short}. {rule.fix}"))
        console.print(fixes)
    else:
        console.print("[green]no findings[/]")
    scores = Table(title="scores (0-100)")
    scores.add_column("area")
    scores.add_column("score", justify="right")
    scores.add_column("findings", justify="right")
    for area in AREAS:
        value = audit.scores[area]
        colour = "green" if value >= 90 else "yellow" if value >= 60 else "red"
        scores.add_row(area, f"[{colour}]{value}[/]", str(len(audit.by_area(area))))
    scores.add_row("overall", f"[bold]{audit.overall}[/]", str(len(audit.findings)))
    console.print(scores)
    console.print(
        f"{audit.files} files, {audit.model_calls} model calls, {audit.tool_calls} tool calls, "
        f"{audit.suppressed} findings silenced by `# tether: ignore`, {len(audit.skipped)} files skipped"
    )


@app.command("rules")
def rules_command() -> None:
    """List the code audit's rules."""
    table = Table("rule", "area", "level", "what", "fix")
    for rule in RULES.values():
        table.add_row(rule.id, rule.area, rule.level, escape(rule.short), escape(rule.fix))
    Console().print(table)


@app.command("runs")
def runs_command(
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs created in this window: 7d, 12h, 30m")
    ] = None,
    function: Annotated[
        str | None, typer.Option("--function", "-f", help="Only this function's runs")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", "-s", help="Store URL (default: TETHER_STORE or .tether/tether.db)"
        ),
    ] = None,
) -> None:
    """Where reliability time goes in the recorded runs: success, failures, retries
    absorbed, the reliability tax by cause, LLM providers, cost and latency."""
    from tether.audit import runs as audit_runs
    from tether.audit.runs_html import page
    from tether.audit.runs_text import render
    from tether.cli.output import console, fail
    from tether.cli.stores import open_existing
    from tether.errors import TetherError
    from tether.observe.redact import default_redactor

    try:
        th = open_existing(store)
        try:
            report = audit_runs(th, since=since, function=function)
        finally:
            th.close()
    except TetherError as exc:
        fail(str(exc))
        raise typer.Exit(2) from None
    doc = report.to_dict()
    if html_file is not None:
        html_file.write_text(page(doc, default_redactor().text), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        render(report, console)
        if html_file is not None:
            console.print(f"HTML report: {escape(str(html_file))}")
