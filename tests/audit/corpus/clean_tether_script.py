"""A one-off script on tether.llm.complete: tether's policy and deadline, no harness."""

import sys
from pathlib import Path

from tether import llm


def main(folder: str) -> None:
    for path in sorted(Path(folder).glob("*.md")):
        resp = llm.complete(
            model="openai:gpt-4.1-mini",
            messages=[{"role": "user", "content": "Title for:\n" + path.read_text()[:4000]}],
            fallbacks=["local:smollm2-135m"],
            deadline=60,
        )
        print(path.name, resp.text)


if __name__ == "__main__":
    main(sys.argv[1])
