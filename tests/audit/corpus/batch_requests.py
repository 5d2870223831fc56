"""Nightly job: rewrite every product description through the model API, push it to the CMS."""

import os
import time

import requests

API = "https://api.openai.com/v1/chat/completions"
HEADERS = {"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"}
CMS = "https://cms.internal.example/api/products"


def enrich(text: str) -> str:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Rewrite: " + text}]}
    for attempt in range(5):  # expect: TH301
        try:
            r = requests.post(API, headers=HEADERS, json=body)  # expect: TH101 TH304 TH401
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]
        except requests.exceptions.RequestException:  # expect: TH303
            time.sleep(2**attempt)  # expect: TH302
    raise RuntimeError("model API unavailable")


def push(product_id: str, text: str) -> None:
    while True:  # expect: TH301
        r = requests.put(f"{CMS}/{product_id}", json={"description": text}, timeout=10)
        if r.status_code == 429:
            time.sleep(int(r.headers.get("Retry-After", "5")))  # expect: TH302
            continue
        r.raise_for_status()
        break


def main() -> None:  # expect: TH103
    products = requests.get(CMS, params={"limit": 1000}).json()  # expect: TH102 TH305
    for p in products:
        push(p["id"], enrich(p["description"]))  # expect: TH102
    print("done", len(products))


if __name__ == "__main__":
    main()
