"""A tether app that calls the OpenAI SDK itself, inside steps (mostly)."""

from openai import OpenAI

import tether

th = tether.Harness()
oai = OpenAI(timeout=30)
strict = OpenAI(timeout=30, max_retries=0)


def draft(topic: str) -> str:
    r = oai.chat.completions.create(  # expect: TH306
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Draft a post on {topic}"}]
    )
    return r.choices[0].message.content


def polish(text: str) -> str:
    r = strict.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Polish:\n{text}"}]
    )
    return r.choices[0].message.content


@th.function(trigger=tether.on_event("post.requested"))
async def write_post(ctx: tether.Context) -> dict:
    text = await ctx.step.run("draft", draft, ctx.event.data["topic"])
    final = await ctx.step.run("polish", polish, text)
    title = oai.chat.completions.create(  # expect: TH101
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Title for:\n{final}"}]
    )
    return {"title": title.choices[0].message.content, "text": final}
