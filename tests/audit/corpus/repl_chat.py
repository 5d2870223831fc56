"""Terminal chat with Claude: type, read, repeat."""

import anthropic

client = anthropic.Anthropic(timeout=60, max_retries=2)
MAX_TURNS = 20


def main() -> None:
    history = []
    while True:
        text = input("> ")
        if text in ("exit", "quit"):
            break
        history.append({"role": "user", "content": text})  # expect: TH201
        reply = client.messages.create(  # expect: TH101 TH401
            model="claude-haiku-4-5", max_tokens=1024, messages=history
        )
        history.append({"role": "assistant", "content": reply.content[0].text})
        print(reply.content[0].text)


def main_trimmed() -> None:
    history = []
    while True:
        history.append({"role": "user", "content": input("> ")})
        history = history[-MAX_TURNS:]
        reply = client.messages.create(  # expect: TH101 TH401
            model="claude-haiku-4-5", max_tokens=1024, messages=history
        )
        history.append({"role": "assistant", "content": reply.content[0].text})
        print(reply.content[0].text)


if __name__ == "__main__":
    main()
