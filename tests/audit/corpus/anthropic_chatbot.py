"""A Discord-style support bot: one SupportBot per channel, history kept in memory."""

import anthropic


class SupportBot:
    def __init__(self, system: str) -> None:
        self.client = anthropic.AsyncAnthropic(timeout=45.0)
        self.system = system
        self.history: list[dict] = []

    async def send(self, text: str) -> str:
        self.history.append({"role": "user", "content": text})  # expect: TH202
        try:
            msg = await self.client.messages.create(  # expect: TH101 TH401
                model="claude-sonnet-4-5",
                max_tokens=1024,
                system=self.system,
                messages=self.history,
            )
        except:  # expect: TH307
            return "Sorry, something went wrong."
        reply = msg.content[0].text
        self.history.append({"role": "assistant", "content": reply})
        return reply

    def reset(self) -> None:
        self.system = self.system.strip()
