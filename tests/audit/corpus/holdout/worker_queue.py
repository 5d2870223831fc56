"""An RQ-style worker: pulls jobs, calls Claude, writes results back."""

import logging
import time

import anthropic
import httpx

logger = logging.getLogger(__name__)
client = anthropic.Anthropic(timeout=anthropic.Timeout(30.0, connect=5.0), max_retries=0)
http = httpx.Client(base_url="https://jobs.internal.example", timeout=10)


def handle(job: dict) -> None:
    try:
        msg = client.messages.create(  # expect: TH101
            model="claude-haiku-4-5",
            max_tokens=512,
            messages=[{"role": "user", "content": job["prompt"]}],
        )
        http.post(f"/jobs/{job['id']}/result", json={"text": msg.content[0].text})  # expect: TH102
    except anthropic.APIStatusError as exc:
        if exc.status_code >= 500:
            logger.warning("provider error %s, requeueing", exc.status_code)
            http.post(f"/jobs/{job['id']}/requeue")  # expect: TH102
        else:
            logger.error("job %s failed: %s", job["id"], exc)


def loop() -> None:
    while True:
        job = http.get("/jobs/next").json()
        if not job:
            time.sleep(2)
            continue
        handle(job)
