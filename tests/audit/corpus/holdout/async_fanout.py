"""Grade many essays concurrently with AsyncOpenAI."""

import asyncio
import json

from openai import AsyncOpenAI, RateLimitError, APIError

aclient = AsyncOpenAI(max_retries=5)


async def grade(essay: str) -> dict:
    delay = 1.0
    while True:  # expect: TH301
        try:
            resp = await aclient.chat.completions.create(  # expect: TH101 TH304 TH306 TH401
                model="gpt-4o-mini",
                response_format={"type": "json_object"},
                messages=[{"role": "user", "content": "Grade this essay as JSON:\n" + essay}],
            )
            return json.loads(resp.choices[0].message.content)
        except (RateLimitError, APIError):  # expect: TH303
            await asyncio.sleep(delay)  # expect: TH302
            delay *= 2


async def grade_all(essays: list[str]) -> list[dict]:
    return await asyncio.gather(*(grade(e) for e in essays))


if __name__ == "__main__":
    results = asyncio.run(grade_all(["essay one", "essay two"]))
    print(results)
