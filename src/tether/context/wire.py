"""Per-provider validators: convert messages with each adapter's own conversion (what
tether would send) and check the rules that provider enforces with a 400.

- ``openai-chat``: a ``tool`` message answers a call of the assistant message right before
  it (only tool messages between); every call is answered before the next other message.
- ``openai-responses``: every ``function_call_output`` has an earlier ``function_call`` of
  the same ``call_id``, and every ``function_call`` an output.
- ``anthropic``: the system prompt apart; consecutive turns of one role are merged (as the
  API does); then the first turn is ``user``, roles alternate, every ``tool_use`` is answered
  by a ``tool_result`` in the user turn right after it, that turn's results come first and
  answer nothing else, and no text is empty (except a final assistant prefill).
- ``gemini``: system instruction apart; merged like Anthropic, then user first, user/model
  alternating, no empty part or text, and a model turn's function calls are answered by as
  many function responses, with the same names, in the user turn right after it.
- ``llamacpp``: chat templates (strict ones raise on anything else): a system message only
  first, then user and assistant alternating, tool results right after their call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from tether.context.errors import InvalidForProvider
from tether.llm.providers.anthropic import anthropic_messages
from tether.llm.providers.gemini import gemini_contents
from tether.llm.providers.openai_chat import chat_messages
from tether.llm.providers.openai_responses import response_input
from tether.llm.types import Message


def check_openai_chat(messages: Sequence[Message]) -> None:
    _check_chat_pairs(chat_messages(list(messages)), _fail("openai-chat"))


def _check_chat_pairs(wire: list[dict[str, Any]], fail: Callable[[str], NoReturn]) -> None:
    pending: set[str] = set()
    for i, d in enumerate(wire):
        if d["role"] == "tool":
            if d["tool_call_id"] not in pending:
                fail(
                    f"message {i}: a tool message must answer a call of the preceding "
                    f"assistant message ({d['tool_call_id']!r})"
                )
            pending.discard(d["tool_call_id"])
            continue
        if pending:
            fail(f"message {i}: tool_call_ids {sorted(pending)} did not have response messages")
        if d["role"] == "assistant":
            if d.get("tool_calls"):
                pending = {c["id"] for c in d["tool_calls"]}
            elif not d.get("content"):
                fail(f"message {i}: an assistant message needs content or tool_calls")
    if pending:
        fail(f"tool_call_ids {sorted(pending)} did not have response messages")


def check_openai_responses(messages: Sequence[Message]) -> None:
    fail = _fail("openai-responses")
    calls: set[str] = set()
    outputs: set[str] = set()
    for i, item in enumerate(response_input(list(messages))):
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            if item["call_id"] not in calls:
                fail(f"item {i}: no tool call found for function call output {item['call_id']!r}")
            outputs.add(item["call_id"])
        elif item.get("role") not in ("system", "developer", "user", "assistant"):
            fail(f"item {i}: unknown role {item.get('role')!r}")
    if calls - outputs:
        fail(f"no tool output found for function calls {sorted(calls - outputs)}")


def check_anthropic(messages: Sequence[Message]) -> None:
    fail = _fail("anthropic")
    _, wire = anthropic_messages(list(messages))
    turns = _merge(wire, "content", _anthropic_blocks)
    if not turns:
        fail("messages: at least one message is required")
    if turns[0]["role"] != "user":
        fail("the first message must use the user role")
    for i, turn in enumerate(turns):
        if i and turn["role"] == turns[i - 1]["role"]:
            fail(f"turn {i}: roles must alternate")
        if turn["role"] not in ("user", "assistant"):
            fail(f"turn {i}: unknown role {turn['role']!r}")
        blocks = turn["content"]
        last_assistant = i == len(turns) - 1 and turn["role"] == "assistant"
        if not blocks and not last_assistant:
            fail(f"turn {i}: all messages must have non-empty content")
        for b in blocks:
            if b["type"] == "text" and not b["text"].strip() and not last_assistant:
                fail(f"turn {i}: text content blocks must be non-empty")
        uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if results:
            prev = turns[i - 1] if i else {"content": []}
            asked = [b["id"] for b in prev["content"] if b["type"] == "tool_use"]
            if set(results) - set(asked):
                fail(
                    f"turn {i}: unexpected tool_use_id in tool_result blocks: "
                    f"{sorted(set(results) - set(asked))}"
                )
            first_other = next(
                (j for j, b in enumerate(blocks) if b["type"] != "tool_result"), len(blocks)
            )
            if any(b["type"] == "tool_result" for b in blocks[first_other:]):
                fail(f"turn {i}: tool_result blocks must come first in the user message")
        if uses:
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            answered = (
                []
                if nxt is None
                else [b["tool_use_id"] for b in nxt["content"] if b["type"] == "tool_result"]
            )
            if set(uses) - set(answered):
                fail(
                    f"turn {i}: tool_use ids were found without tool_result blocks immediately "
                    f"after: {sorted(set(uses) - set(answered))}"
                )


def check_gemini(messages: Sequence[Message]) -> None:
    fail = _fail("gemini")
    _, wire = gemini_contents(list(messages))
    turns = _merge(wire, "parts", lambda parts: list(parts))
    if not turns:
        fail("contents must not be empty")
    if turns[0]["role"] != "user":
        fail("the first content must be a user turn")
    for i, turn in enumerate(turns):
        if i and turn["role"] == turns[i - 1]["role"]:
            fail(f"content {i}: turns must alternate between user and model")
        parts = turn["parts"]
        if not parts:
            fail(f"content {i}: parts must not be empty")
        for p in parts:
            if "text" in p and not p["text"].strip():
                fail(f"content {i}: an empty text parameter")
        calls = Counter(p["function_call"]["name"] for p in parts if "function_call" in p)
        answers = Counter(p["function_response"]["name"] for p in parts if "function_response" in p)
        if answers:
            prev = turns[i - 1]["parts"] if i else []
            asked = Counter(p["function_call"]["name"] for p in prev if "function_call" in p)
            if answers != asked:
                fail(
                    f"content {i}: the number of function response parts must equal the "
                    f"function call parts of the function call turn ({dict(answers)} vs "
                    f"{dict(asked)})"
                )
        if calls:
            nxt = turns[i + 1]["parts"] if i + 1 < len(turns) else []
            got = Counter(p["function_response"]["name"] for p in nxt if "function_response" in p)
            if got != calls:
                fail(f"content {i}: function calls {dict(calls)} are not answered right after")


def check_llamacpp(messages: Sequence[Message]) -> None:
    fail = _fail("llamacpp")
    wire = chat_messages(list(messages))
    turns: list[str] = []
    prev = ""
    for i, d in enumerate(wire):
        role = d["role"]
        if role == "system":
            if i:
                fail(f"message {i}: a system message is only allowed first")
        elif role == "tool":
            if prev not in ("assistant", "tool") or not turns or turns[-1] != "assistant":
                fail(f"message {i}: a tool result must follow an assistant tool call")
        elif role == "user":
            if turns and turns[-1] == "user":
                fail(f"message {i}: conversation roles must alternate user/assistant")
            turns.append("user")
        elif turns and turns[-1] == "assistant":
            if prev != "tool":  # an assistant after tool results continues its turn
                fail(f"message {i}: conversation roles must alternate user/assistant")
        else:
            turns.append("assistant")
        prev = role
    if turns and turns[0] != "user":
        fail("the conversation must start with a user message")
    _check_chat_pairs(wire, fail)


FAMILIES: dict[str, Callable[[Sequence[Message]], None]] = {
    "openai-chat": check_openai_chat,
    "openai-responses": check_openai_responses,
    "anthropic": check_anthropic,
    "gemini": check_gemini,
    "llamacpp": check_llamacpp,
}


def check_all(messages: Sequence[Message]) -> None:
    """Raise ``InvalidForProvider`` unless every provider family accepts ``messages``."""
    for check in FAMILIES.values():
        check(messages)


def _fail(family: str) -> Callable[[str], NoReturn]:
    def fail(problem: str) -> NoReturn:
        raise InvalidForProvider(family, problem)

    return fail


def _anthropic_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _merge(
    wire: list[dict[str, Any]], field: str, blocks: Callable[[Any], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Consecutive turns of one role as one turn (what Anthropic and Gemini do)."""
    turns: list[dict[str, Any]] = []
    for d in wire:
        content = blocks(d[field])
        if turns and turns[-1]["role"] == d["role"]:
            turns[-1][field] = turns[-1][field] + content
        else:
            turns.append({"role": d["role"], field: content})
    return turns
