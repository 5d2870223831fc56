"""Context windows: the working memory of a conversation, workflow or agent task.

The pure core: an append-only log per window (``WindowLog``; ``MemoryWindowLog`` is the
reference), ``build`` to fit it into a token budget cheapest action first (stub large tool
results, clear old ones, show the running summary, keep the newest turns verbatim, retrieve
what left the window into a memory slot), and compaction (``plan_compaction``, a summarizer,
``apply``) that folds older turns into a validated structured summary; and the store-backed
windows of ``th.context`` / ``ctx.context`` (``ContextWindow``, ``AsyncContextWindow``).
See docs/context.md.
"""

from tether.context.budget import context_window, resolve_budget
from tether.context.build import build
from tether.context.checks import check_build, check_shape
from tether.context.compaction import (
    CompactionPlan,
    Summarizer,
    abuild,
    acompact,
    apply,
    check_summary,
    plan_compaction,
    summary_item,
    summary_text,
)
from tether.context.errors import (
    ArtifactNotFound,
    CompactionRejected,
    ContextBudgetError,
    InvalidContextItem,
    InvalidForProvider,
    StaleCompaction,
    UnknownContextWindow,
    WriteKeyConflict,
)
from tether.context.items import artifact_handle, message_item, pin_item, reply_items, to_message
from tether.context.log import LogIndex, MemoryWindowLog, WindowLog, validate_append
from tether.context.records import (
    BuiltContext,
    Compaction,
    ContextItem,
    ContextReport,
    Hit,
    StructuredSummary,
    SummaryRequest,
)
from tether.context.retrieval import BM25Index, Retriever, WindowRetriever, fuse, window_retriever
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.context.tokens import ApproxCounter, TokenCounter
from tether.context.transcript import extractive_summarizer
from tether.context.window import RECALL_TOOL, WindowCore, recall
from tether.context.windows import AsyncContextWindow, ContextWindow
from tether.context.wire import FAMILIES, check_all

__all__ = [
    "DEFAULT_SETTINGS",
    "FAMILIES",
    "RECALL_TOOL",
    "ApproxCounter",
    "AsyncContextWindow",
    "ArtifactNotFound",
    "BM25Index",
    "BuiltContext",
    "Compaction",
    "CompactionPlan",
    "CompactionRejected",
    "ContextBudgetError",
    "ContextItem",
    "ContextReport",
    "ContextSettings",
    "ContextWindow",
    "Hit",
    "InvalidContextItem",
    "InvalidForProvider",
    "LogIndex",
    "MemoryWindowLog",
    "Retriever",
    "StaleCompaction",
    "StructuredSummary",
    "Summarizer",
    "SummaryRequest",
    "TokenCounter",
    "UnknownContextWindow",
    "WindowCore",
    "WindowLog",
    "WindowRetriever",
    "WriteKeyConflict",
    "abuild",
    "acompact",
    "apply",
    "artifact_handle",
    "build",
    "check_all",
    "check_build",
    "check_shape",
    "check_summary",
    "context_window",
    "extractive_summarizer",
    "fuse",
    "message_item",
    "pin_item",
    "plan_compaction",
    "recall",
    "reply_items",
    "resolve_budget",
    "summary_item",
    "summary_text",
    "to_message",
    "validate_append",
    "window_retriever",
]
