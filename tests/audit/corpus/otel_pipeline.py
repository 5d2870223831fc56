"""An async answer service: traced with OpenTelemetry, timeouts set, but not durable."""

import asyncio
import time

from openai import AsyncOpenAI, OpenAI
from opentelemetry import trace

tracer = trace.get_tracer(__name__)
client = AsyncOpenAI(timeout=20, max_retries=3)


async def answer(question: str) -> str:
    with tracer.start_as_current_span("answer"):
        resp = await client.chat.completions.create(  # expect: TH101
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    return resp.choices[0].message.content


def wait_for_batch(batch_id: str) -> object:
    sync = OpenAI(timeout=20)
    while True:
        batch = sync.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired"):
            return batch
        time.sleep(30)


async def main() -> None:
    print(await answer("What is a durable step?"))


if __name__ == "__main__":
    asyncio.run(main())
