"""Scrape a list of pages and summarise each one."""

import logging
import time

import openai
import requests
from openai import OpenAI

logger = logging.getLogger(__name__)
client = OpenAI(timeout=60, max_retries=0)
session = requests.Session()


def fetch(url: str) -> str:
    return session.get(url).text  # expect: TH305


def summarize(text: str, attempt: int = 0) -> str:
    try:
        r = client.chat.completions.create(  # expect: TH101
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Summarise:\n" + text[:20000]}],
        )
        return r.choices[0].message.content
    except (openai.RateLimitError, openai.BadRequestError):  # expect: TH301 TH303
        logger.warning("rate limited, retrying (attempt %d)", attempt)
        time.sleep(10)  # expect: TH302
        return summarize(text, attempt + 1)


def run(urls: list[str]) -> dict:  # expect: TH103
    out = {}
    for url in urls:
        try:
            out[url] = summarize(fetch(url))  # expect: TH102
        except Exception:  # expect: TH308
            continue
    return out
