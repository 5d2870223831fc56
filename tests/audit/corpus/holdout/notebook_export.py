# Exported from a notebook: classify reviews with Gemini and save a CSV.
import csv

from google import genai
from google.genai import types

client = genai.Client(http_options=types.HttpOptions(timeout=60_000))

rows = list(csv.DictReader(open("reviews.csv")))
labels = []
for row in rows:  # expect: TH103
    try:
        r = client.models.generate_content(  # expect: TH101 TH401
            model="gemini-2.5-flash",
            contents=f"Positive or negative? {row['text']}",
        )
        labels.append(r.text.strip())
    except:  # expect: TH307
        labels.append("unknown")

with open("labels.csv", "w") as f:
    csv.writer(f).writerows(zip([r["id"] for r in rows], labels))
