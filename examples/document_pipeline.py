"""A document pipeline: uploads are indexed in batches, owners notified under a rate limit.

- ``index-batch`` takes up to 5 uploaded documents per run (``Batch``): one run indexes a
  whole batch, each document a durable step, so a crash re-indexes nothing already done.
- ``notify-owner`` tells a tenant a document is searchable, at most 2 times per hour per
  tenant (``RateLimit``): the extra notifications are recorded as ``skipped`` runs with the
  reason, never dropped silently.

Run it: ``python examples/document_pipeline.py`` (a store under .tether/), or register it in
a worker with ``tether worker examples/document_pipeline.py``.
"""

from __future__ import annotations

import collections
import os
import re
import time
from collections.abc import Callable

import tether

th = tether.Harness(os.environ.get("TETHER_STORE", "sqlite:///.tether/document_pipeline.db"))
WORD = re.compile(r"[a-z]+")


def index_document(doc: dict) -> dict:
    """The indexing work of one document: its terms and a one-line summary."""
    terms = collections.Counter(WORD.findall(doc["text"].lower()))
    return {
        "id": doc["id"],
        "tenant": doc["tenant"],
        "terms": len(terms),
        "top": [t for t, _ in terms.most_common(3)],
        "summary": doc["text"].split(".")[0][:60],
    }


@th.function(
    id="index-batch",
    trigger=tether.on_event("document.uploaded"),
    batch=tether.Batch(max_size=5, timeout=0.5),
)
async def index_batch(ctx: tether.Context) -> list[str]:
    docs = [e.data for e in ctx.events]
    indexed = [await ctx.step.run(f"index-{d['id']}", index_document, d) for d in docs]
    await ctx.step.send_event(
        "indexed",
        [tether.Event("document.indexed", doc, id=f"indexed:{doc['id']}") for doc in indexed],
    )
    return [d["id"] for d in indexed]


@th.function(
    id="notify-owner",
    trigger=tether.on_event("document.indexed"),
    rate_limit=tether.RateLimit(limit=2, period="1h", key="event.data.tenant"),
)
def notify_owner(ctx: tether.SyncContext) -> str:
    doc = ctx.event.data
    return ctx.step.run("notify", lambda: f"{doc['tenant']}: {doc['id']} is searchable")


def upload(n: int) -> list[tether.Event]:
    tenants = ["acme", "globex"]
    return [
        tether.Event(
            "document.uploaded",
            {
                "id": f"doc-{i:02d}",
                "tenant": tenants[i % 2],
                "text": f"Quarterly report {i}. Revenue grew and costs fell in region {i % 3}.",
            },
            id=f"upload:doc-{i:02d}",
        )
        for i in range(n)
    ]


def wait(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    limit = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > limit:
            raise TimeoutError("the pipeline did not finish in time")
        time.sleep(0.05)


def main(documents: int = 12) -> None:
    with th.worker():
        th.send(upload(documents))
        wait(
            lambda: (
                sum(len(r.output or []) for r in th.list_runs("index-batch", status="completed"))
                >= documents
            )
        )
        wait(
            lambda: (
                len(
                    [
                        r
                        for r in th.list_runs("notify-owner", limit=100)
                        if r.status.value in ("completed", "skipped")
                    ]
                )
                >= documents
            )
        )
    batches = sorted(len(r.output) for r in th.list_runs("index-batch", limit=100))
    notes = th.list_runs("notify-owner", limit=100)
    sent = collections.Counter(r.input["tenant"] for r in notes if r.status.value == "completed")
    skipped = [r for r in notes if r.status.value == "skipped"]
    print(f"indexed {sum(batches)} documents in {len(batches)} batch runs: {batches}")
    print("notifications sent: " + ", ".join(f"{t} {n}" for t, n in sorted(sent.items())))
    print(f"notifications skipped by the rate limit: {len(skipped)} ({skipped[0].reason})")
    th.close()


if __name__ == "__main__":
    main()
