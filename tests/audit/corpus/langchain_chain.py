"""Summarise and label support tickets from a CSV export with LangChain (LCEL)."""

import csv
import logging
import sys

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from tenacity import retry, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

llm = ChatOpenAI(model="gpt-4o-mini", temperature=0)
fast = ChatOpenAI(model="gpt-4o-mini", timeout=15, max_retries=0)
prompt = ChatPromptTemplate.from_messages(
    [("system", "Summarise the ticket in one line."), ("user", "{ticket}")]
)
chain = prompt | llm | StrOutputParser()


@retry(stop=stop_after_attempt(5), wait=wait_exponential(min=1, max=30))  # expect: TH303
def summarize(ticket: str) -> str:
    logger.info("summarising %d chars", len(ticket))
    return chain.invoke({"ticket": ticket})  # expect: TH101 TH304 TH306


def classify(text: str) -> str:
    answer = fast.invoke(f"One word, billing/outage/other: {text}")  # expect: TH101 TH401
    return answer.content.strip().lower()


def main(path: str) -> None:  # expect: TH103
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["summary"] = summarize(row["body"])
        row["label"] = classify(row["body"])
    with open(path.replace(".csv", ".out.csv"), "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1])
