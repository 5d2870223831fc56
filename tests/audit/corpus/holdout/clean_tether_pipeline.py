"""Document pipeline on tether with a raw SDK client configured for it."""

import logging

import anthropic

import tether

log = logging.getLogger(__name__)
th = tether.Harness()
claude = anthropic.Anthropic(timeout=60, max_retries=0)


def summarize(text: str) -> str:
    msg = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=400, messages=[{"role": "user", "content": text}]
    )
    return msg.content[0].text


def store(doc_id: str, summary: str) -> None:
    log.info("storing summary for %s", doc_id)


@th.function(trigger=tether.on_event("doc.uploaded"))
def pipeline(ctx: tether.SyncContext) -> str:
    text = ctx.event.data["text"]
    summary = ctx.step.run("summarize", summarize, text)
    ctx.step.run("store", store, ctx.event.data["id"], summary)
    ctx.step.sleep("settle", 5)
    return summary
