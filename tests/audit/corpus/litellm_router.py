"""Content tools on LiteLLM: a router for drafts, direct completion() calls for the rest."""

import backoff
import litellm
from litellm import Router, completion

router = Router(
    model_list=[
        {"model_name": "gpt", "litellm_params": {"model": "gpt-4o-mini", "timeout": 30}},
        {"model_name": "gpt", "litellm_params": {"model": "azure/gpt-4o-mini", "timeout": 30}},
    ],
    num_retries=3,
)


@backoff.on_exception(backoff.expo, Exception, max_tries=5)  # expect: TH303
def draft(topic: str) -> str:
    resp = router.completion(model="gpt", messages=[{"role": "user", "content": topic}])  # expect: TH101 TH306 TH401
    return resp.choices[0].message.content


def translate(text: str, lang: str) -> str:
    resp = completion(  # expect: TH101 TH304 TH401
        model="anthropic/claude-haiku-4-5",
        messages=[{"role": "user", "content": f"Translate to {lang}: {text}"}],
        num_retries=2,
    )
    return resp.choices[0].message.content


@backoff.on_exception(backoff.expo, (litellm.RateLimitError, litellm.Timeout), max_time=60)
def keywords(text: str) -> list[str]:
    resp = completion(  # expect: TH101 TH401
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Five keywords, comma-separated: {text}"}],
        timeout=20,
        num_retries=0,
    )
    return resp.choices[0].message.content.split(",")
