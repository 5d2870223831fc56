"""The shared LLM helper: every service imports complete() and extract() from here."""

import logging

import anthropic
from anthropic import Anthropic
from tenacity import (
    Retrying,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger("llm")
claude = Anthropic()
fast = Anthropic(timeout=20, max_retries=0)
MODEL = "claude-sonnet-4-5"


@retry(  # expect: TH303
    retry=retry_if_exception_type((anthropic.RateLimitError, anthropic.APIStatusError)),
    stop=stop_after_attempt(6),
    wait=wait_random_exponential(min=1, max=60),
)
def complete(prompt: str, max_tokens: int = 1024) -> str:
    log.debug("prompt: %s", prompt[:80])
    msg = claude.messages.create(  # expect: TH101 TH304 TH306
        model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": prompt}]
    )
    return msg.content[0].text


def extract(document: str) -> str:
    for attempt in Retrying(stop=stop_after_attempt(3), reraise=True):  # expect: TH303
        with attempt:
            msg = claude.with_options(timeout=60).messages.create(  # expect: TH101 TH306 TH401
                model=MODEL,
                max_tokens=2048,
                messages=[{"role": "user", "content": "Extract the parties:\n" + document}],
            )
    return msg.content[0].text


@retry(
    retry=retry_if_exception_type(
        (anthropic.RateLimitError, anthropic.APIConnectionError, anthropic.InternalServerError)
    ),
    stop=stop_after_attempt(4),
    wait=wait_random_exponential(min=1, max=20),
)
def quick(prompt: str) -> str:
    log.info("quick call, %d chars", len(prompt))
    msg = fast.messages.create(  # expect: TH101
        model="claude-haiku-4-5", max_tokens=256, messages=[{"role": "user", "content": prompt}]
    )
    return msg.content[0].text
