"""The peers of bench/memory.py, run in the benchmark venv (no tether import): Chroma
(embedded, persistent), LanceDB and bm25s, on the texts, vectors and queries that
bench/memory.py wrote to the folder given as the only argument. Prints one JSON line a system.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def exact_top(vectors: np.ndarray, rows: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    return {int(rows[j]) for j in np.argsort(-(vectors[rows] @ q))[:k]}


def figures(system: str, ingest: float, lat: list[float], recall: list[float], **extra: Any) -> str:
    return json.dumps(
        {
            "system": system,
            "ingest_per_s": ingest,
            "search_p50_ms": 1000 * statistics.median(lat),
            "search_p95_ms": 1000 * pct(lat, 0.95),
            "vector_recall_at_10": sum(recall) / len(recall) if recall else None,
            **extra,
        }
    )


def main() -> None:
    folder = Path(sys.argv[1])
    data = json.loads((folder / "data.json").read_text())
    vectors = np.load(folder / "vectors.npy")
    qvecs = np.load(folder / "queries.npy")
    subjects, texts, queries = data["subjects"], data["texts"], data["queries"]
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(subjects):
        rows.setdefault(s, []).append(i)
    by_subject = {s: np.asarray(r) for s, r in rows.items()}
    exact = [
        exact_top(vectors, by_subject[q["subject"]], qvecs[j], 10) for j, q in enumerate(queries)
    ]

    # -- Chroma, embedded (PersistentClient), HNSW cosine, a where filter per subject ---------
    import chromadb

    client = chromadb.PersistentClient(path=tempfile.mkdtemp(dir=folder))
    col = client.create_collection("memories", metadata={"hnsw:space": "cosine"})
    started = time.perf_counter()
    step = 5000
    for j in range(0, len(texts), step):
        col.add(
            ids=[str(i) for i in range(j, min(len(texts), j + step))],
            embeddings=vectors[j : j + step].tolist(),
            documents=texts[j : j + step],
            metadatas=[{"subject": s} for s in subjects[j : j + step]],
        )
    ingest = len(texts) / (time.perf_counter() - started)
    lat, recall, leaks = [], [], 0
    for j, q in enumerate(queries):
        t0 = time.perf_counter()
        res = col.query(
            query_embeddings=[qvecs[j].tolist()], n_results=10, where={"subject": q["subject"]}
        )
        lat.append(time.perf_counter() - t0)
        got = [int(i) for i in res["ids"][0]]
        leaks += sum(1 for i in got if subjects[i] != q["subject"])
        recall.append(len(set(got) & exact[j]) / len(exact[j]))
    print(figures("chroma", ingest, lat, recall, isolation_leaks=leaks), flush=True)
    del col, client

    # -- LanceDB: a table with a subject column, prefiltered; flat and IVF-PQ -------------------
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(tempfile.mkdtemp(dir=folder))
    dim = vectors.shape[1]
    started = time.perf_counter()
    table = pa.table(
        {
            "id": pa.array(range(len(texts)), pa.int64()),
            "subject": pa.array(subjects),
            "text": pa.array(texts),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    )
    tbl = db.create_table("memories", table)
    ingest = len(texts) / (time.perf_counter() - started)

    def lance(label: str, extra: dict[str, Any]) -> None:
        lat, recall, leaks = [], [], 0
        for j, q in enumerate(queries):
            t0 = time.perf_counter()
            res = (
                tbl.search(qvecs[j])
                .metric("cosine")
                .where(f"subject = '{q['subject']}'", prefilter=True)
                .limit(10)
                .to_list()
            )
            lat.append(time.perf_counter() - t0)
            got = [int(r["id"]) for r in res]
            leaks += sum(1 for i in got if subjects[i] != q["subject"])
            recall.append(len(set(got) & exact[j]) / len(exact[j]))
        print(figures(label, ingest, lat, recall, isolation_leaks=leaks, **extra), flush=True)

    lance("lancedb-flat", {})
    try:
        started = time.perf_counter()
        tbl.create_scalar_index("subject")
        tbl.create_index(
            metric="cosine",
            vector_column_name="vector",
            num_partitions=max(1, len(texts) // 4000),
            num_sub_vectors=dim // 8,
        )
        lance("lancedb-ivfpq", {"index_build_s": time.perf_counter() - started})
    except Exception as exc:  # an index type this version lacks: report, keep the rest
        print(json.dumps({"system": "lancedb-ivfpq", "error": str(exc)[:200]}), flush=True)

    # -- bm25s: the text part, one index per subject (as the store's subject filter) -------------
    import bm25s

    started = time.perf_counter()
    indexes = {}
    for s, r in by_subject.items():
        corpus = [texts[i] for i in r]
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False
        )
        indexes[s] = (retriever, r)
    ingest = len(texts) / (time.perf_counter() - started)
    lat = []
    for q in queries:
        retriever, r = indexes[q["subject"]]
        t0 = time.perf_counter()
        tokens = bm25s.tokenize([q["text"]], stopwords="en", show_progress=False)
        retriever.retrieve(tokens, k=min(10, len(r)), show_progress=False)
        lat.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "system": "bm25s",
                "ingest_per_s": ingest,
                "text_search_p50_ms": 1000 * statistics.median(lat),
                "text_search_p95_ms": 1000 * pct(lat, 0.95),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
