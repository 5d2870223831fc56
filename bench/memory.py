"""Long-term memory at 100,000 memories over 1,000 subjects, on SQLite and PostgreSQL, with
Chroma (embedded), LanceDB and bm25s measured in the same run on the same data.

    python bench/memory.py                      # 100,000 memories, 1,000 subjects
    python bench/memory.py --quick              # 10,000 memories, 100 subjects
    python bench/memory.py --json bench/results/memory.json

Peers run in a child process of the benchmark venv (``--peers-python``, default
/work/benchvenv/bin/python; ``--no-peers`` skips them), reading the same texts, vectors and
queries from a temporary folder. See bench/README.md for the method and what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import tether
from tether.memory import Memory
from tether.memory.embedder import similarities
from tether.store.memories import NewMemory
from tether.store.sql import SQLStore

ROOT = Path(__file__).resolve().parents[1]
MODEL = "local:all-minilm-l6-v2"
PG = os.environ.get("TETHER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dmitri",
    "Eva",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
]
FOODS = [
    "sushi",
    "ramen",
    "tacos",
    "risotto",
    "curry",
    "falafel",
    "paella",
    "dumplings",
    "pho",
    "lasagne",
]
CITIES = [
    "Lisbon",
    "Porto",
    "Madrid",
    "Berlin",
    "Tokyo",
    "Nairobi",
    "Lima",
    "Oslo",
    "Seoul",
    "Austin",
    "Lyon",
    "Cairo",
]
JOBS = [
    "nurse",
    "teacher",
    "pilot",
    "chef",
    "lawyer",
    "plumber",
    "architect",
    "farmer",
    "dentist",
    "editor",
]
THINGS = [
    "peanuts",
    "shellfish",
    "pollen",
    "penicillin",
    "latex",
    "gluten",
    "dairy",
    "eggs",
    "soy",
    "sesame",
]
CHANNELS = ["email", "phone", "text", "letter", "chat"]
TIMES = ["morning", "afternoon", "evening", "weekend", "lunchtime"]
STATUS = ["shipped", "delayed", "returned", "refunded", "lost", "delivered"]
PETS = ["dog", "cat", "parrot", "rabbit", "hamster", "tortoise"]
HOBBIES = ["cello", "chess", "climbing", "pottery", "sailing", "running", "painting", "baking"]
TEMPLATES = [
    "{n} prefers {f} for dinner on {t}s.",
    "Order ORD-{o} for {n} was {s} to {c}.",
    "{n} moved to {c} and works as a {j}.",
    "{n} is allergic to {a} and avoids it strictly.",
    "Contact {n} by {ch} in the {t}, never by {ch2}.",
    "{n} has a {p} and takes it to the park in the {t}.",
    "{n} is learning {h} on {t}s in {c}.",
    "Invoice INV-{o} for {n} is due; send it by {ch}.",
]


def fact(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        n=rng.choice(NAMES),
        f=rng.choice(FOODS),
        t=rng.choice(TIMES),
        o=rng.randrange(100000, 999999),
        s=rng.choice(STATUS),
        c=rng.choice(CITIES),
        j=rng.choice(JOBS),
        a=rng.choice(THINGS),
        ch=rng.choice(CHANNELS),
        ch2=rng.choice(CHANNELS),
        p=rng.choice(PETS),
        h=rng.choice(HOBBIES),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_data(memories: int, subjects: int, pool: int, queries: int, seed: int) -> dict[str, Any]:
    """Texts, subjects and vectors. The first ``pool`` memories are embedded by the real
    model (during the embedding-included ingest); every other memory reuses one of those
    vectors with noise added, since embedding 100,000 texts here takes longer than the run."""
    rng = random.Random(seed)
    per = memories // subjects
    subj = [f"user:{i:05d}" for i in range(subjects) for _ in range(per)]
    texts = [f"{fact(rng)} [{i}]" for i in range(len(subj))]
    return {"subjects": subj, "texts": texts, "per": per, "queries": queries, "seed": seed}


def embed_pool(store_url: str, data: dict[str, Any], pool: int) -> tuple[np.ndarray, float]:
    """Ingest the first ``pool`` memories through ``Memory.add_many`` with the real model:
    the embedding-included rate; their stored vectors become the pool."""
    th = tether.Harness(store_url)
    store = th.store
    assert isinstance(store, SQLStore)
    th.memory("warm-up").add("warm the model up")
    started = time.perf_counter()
    by_subject: dict[str, list[str]] = {}
    for s, t in zip(data["subjects"][:pool], data["texts"][:pool], strict=True):
        by_subject.setdefault(s, []).append(t)
    for s, texts in by_subject.items():
        th.memory(s).add_many(texts)
    rate = pool / (time.perf_counter() - started)
    rows = store.read(
        "SELECT v.vector FROM memory_vectors v JOIN memories m ON m.seq = v.memory_seq "
        "WHERE m.subject <> 'warm-up' ORDER BY m.seq"
    )
    th.close()
    vectors = np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype="<f4").reshape(len(rows), -1)
    return vectors, rate


def all_vectors(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = pool[rng.integers(0, len(pool), n)]
    base[: len(pool)] = pool
    noisy = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    noisy[: len(pool)] = pool
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def make_queries(data: dict[str, Any], vectors: np.ndarray, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed + 1)
    nrng = np.random.default_rng(seed + 1)
    out = []
    n = len(data["texts"])
    for _ in range(data["queries"]):
        i = rng.randrange(n)
        words = [w for w in data["texts"][i].replace(".", "").split() if len(w) > 3]
        text = " ".join(rng.sample(words, min(3, len(words))))
        q = vectors[i] + nrng.normal(0, 0.1, vectors.shape[1]).astype(np.float32)
        out.append({"subject": data["subjects"][i], "text": text, "vector": q / np.linalg.norm(q)})
    return out


def exact_top(vectors: np.ndarray, rows: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    scores = vectors[rows] @ q
    return {int(rows[j]) for j in np.argsort(-scores)[:k]}


def bench_store(
    name: str, url: str, data: dict[str, Any], vectors: np.ndarray, queries: list[dict[str, Any]]
) -> dict[str, Any]:
    th = tether.Harness(url)
    store = th.store
    assert isinstance(store, SQLStore)
    subjects, texts = data["subjects"], data["texts"]
    dim = vectors.shape[1]
    ids = [uuid.uuid4().hex for _ in texts]
    now = time.time()
    started = time.perf_counter()
    batch: list[NewMemory] = []
    for i, (s, t) in enumerate(zip(subjects, texts, strict=True)):
        batch.append(
            NewMemory(
                ids[i],
                s,
                t,
                None,
                (),
                now + i * 1e-6,
                None,
                vectors[i].astype("<f4").tobytes(),
                MODEL,
                dim,
            )
        )
        if len(batch) == 500 or i == len(texts) - 1:
            store.memory_add_many(batch)
            batch = []
    ingest = len(texts) / (time.perf_counter() - started)
    # text only (no vectors): a second subject space in the same store
    started = time.perf_counter()
    sample = 10_000 if len(texts) >= 10_000 else len(texts)
    for j in range(0, sample, 500):
        store.memory_add_many(
            [
                NewMemory(uuid.uuid4().hex, "text:" + subjects[i], texts[i], None, (), now, None)
                for i in range(j, min(sample, j + 500))
            ]
        )
    ingest_text = sample / (time.perf_counter() - started)

    row_of = {m: i for i, m in enumerate(ids)}
    rows_by_subject: dict[str, np.ndarray] = {}
    for i, s in enumerate(subjects):
        rows_by_subject.setdefault(s, []).append(i)  # type: ignore[attr-defined]
    rows_by_subject = {s: np.asarray(r) for s, r in rows_by_subject.items()}
    lat, lat_text, recall, leaks = [], [], [], 0
    for q in queries[:20]:  # warm-up
        warm = Memory(store, q["subject"], embedder=MODEL)
        warm._do(warm._search(q["text"], 10, None, q["vector"].astype("<f4").tobytes()))
    for q in queries:
        mem = Memory(store, q["subject"], embedder=MODEL)
        qv = q["vector"].astype("<f4").tobytes()
        t0 = time.perf_counter()
        hits = mem._do(mem._search(q["text"], 10, None, qv))
        lat.append(time.perf_counter() - t0)
        # the vector part alone: what the exact scan ranks, against numpy brute force
        _, _, _, rows = store.memory_search_sources(q["subject"], [], 1, MODEL)
        sims = sorted(similarities(qv, rows), key=lambda p: -p[1])[:10]
        exact = exact_top(vectors, rows_by_subject[q["subject"]], q["vector"], 10)
        recall.append(len({row_of[i] for i, _ in sims} & exact) / len(exact))
        plain = Memory(store, q["subject"], embedder=None)  # the words only, same subject
        t2 = time.perf_counter()
        plain._do(plain._search(q["text"], 10, None, None, embed=False))
        lat_text.append(time.perf_counter() - t2)
        leaks += sum(1 for h in hits if subjects[row_of[h.id]] != q["subject"])
        big = mem._do(mem._search(q["text"], 1000, None, qv))
        leaks += sum(1 for h in big if subjects[row_of[h.id]] != q["subject"])
    # forget at that size: ten subjects' memories go, everywhere
    gone = sorted(set(subjects))[:10]
    started = time.perf_counter()
    deleted = sum(store.delete_subject_memories(s) for s in gone)
    forget_s = (time.perf_counter() - started) / len(gone)
    left = sum(
        len(Memory(store, s, embedder=MODEL).search("order invoice dinner", k=1000)) for s in gone
    )
    (vec_left,) = store.read(
        "SELECT count(*) FROM memory_vectors WHERE subject IN ("
        + ",".join("'" + s + "'" for s in gone)
        + ")"
    )[0]
    th.close()
    return {
        "system": f"tether-{name}",
        "ingest_per_s": ingest,
        "ingest_text_only_per_s": ingest_text,
        "search_p50_ms": 1000 * statistics.median(lat),
        "search_p95_ms": 1000 * pct(lat, 0.95),
        "text_search_p50_ms": 1000 * statistics.median(lat_text),
        "text_search_p95_ms": 1000 * pct(lat_text, 0.95),
        "vector_recall_at_10": sum(recall) / len(recall),
        "isolation_leaks": leaks,
        "forget_deleted": deleted,
        "forget_ms_per_subject": 1000 * forget_s,
        "forget_left": left + int(vec_left),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--subjects", type=int, default=1_000)
    ap.add_argument("--pool", type=int, default=1_000, help="memories embedded by the model")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--peers-python", default="/work/benchvenv/bin/python")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.memories, args.subjects, args.pool, args.queries = 10_000, 100, 500, 100
    tmp = Path(tempfile.mkdtemp(prefix="tether-bench-memory-"))
    data = build_data(args.memories, args.subjects, args.pool, args.queries, seed=7)
    print(
        f"{args.memories} memories over {args.subjects} subjects; {args.pool} embedded by {MODEL}"
    )
    pool, embed_rate = embed_pool(f"sqlite:///{tmp / 'pool.db'}", data, args.pool)
    print(f"ingest with embedding (Memory.add_many, SQLite): {embed_rate:.0f} memories/s")
    vectors = all_vectors(pool, len(data["texts"]), seed=7)
    queries = make_queries(data, vectors, seed=7)
    results = []
    results.append(bench_store("sqlite", f"sqlite:///{tmp / 'bench.db'}", data, vectors, queries))
    print(json.dumps(results[-1]))
    if not args.no_postgres:
        schema = f"bench_memory_{uuid.uuid4().hex[:8]}"
        try:
            results.append(bench_store("postgres", f"{PG}?schema={schema}", data, vectors, queries))
            print(json.dumps(results[-1]))
        finally:
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if not args.no_peers:
        np.save(tmp / "vectors.npy", vectors)
        (tmp / "data.json").write_text(
            json.dumps(
                {
                    "subjects": data["subjects"],
                    "texts": data["texts"],
                    "queries": [{"subject": q["subject"], "text": q["text"]} for q in queries],
                }
            )
        )
        np.save(tmp / "queries.npy", np.stack([q["vector"] for q in queries]))
        out = subprocess.run(
            [args.peers_python, str(ROOT / "bench" / "memory_peers.py"), str(tmp)],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
        else:
            for line in out.stdout.splitlines():
                if line.startswith("{"):
                    results.append(json.loads(line))
                    print(line)
    shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} (2 cores shared with other work)")
    report(results, embed_rate)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"embed_ingest_per_s": embed_rate, "load_average": load, "results": results},
                indent=2,
            )
        )


def report(results: list[dict[str, Any]], embed_rate: float) -> None:
    print(f"\ningest with embedding: {embed_rate:.0f}/s")
    cols = [
        "ingest_per_s",
        "search_p50_ms",
        "search_p95_ms",
        "text_search_p50_ms",
        "text_search_p95_ms",
        "vector_recall_at_10",
        "isolation_leaks",
    ]
    print("system".ljust(18) + "".join(c.rjust(22) for c in cols))
    for r in results:
        print(
            r["system"].ljust(18)
            + "".join(
                (f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "-"))).rjust(22)
                for c in cols
            )
        )
    base = next((r for r in results if r["system"] == "tether-sqlite"), None)
    if base:
        for r in results:
            if r is not base and "search_p95_ms" in r:
                print(
                    f"{r['system']} search p95 / tether-sqlite: "
                    f"{r['search_p95_ms'] / base['search_p95_ms']:.2f}x"
                )


if __name__ == "__main__":
    main()
