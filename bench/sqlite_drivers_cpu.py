"""CPU time per checkpoint (``store.save_step``) and per autocommitted INSERT, per SQLite driver.

Each driver runs in a child process (2,000 calls, best of 5), drivers alternating over
three rounds; CPU time, which a loaded machine disturbs least. Needs pysqlite3-binary and
sqlean.py installed (the bench venv only): ``python bench/sqlite_drivers_cpu.py``.
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import sys, time, tempfile, importlib, os
drv = sys.argv[1]
if drv != "stdlib":
    m = importlib.import_module("pysqlite3.dbapi2" if drv == "pysqlite3" else drv)
    sys.modules["sqlite3"] = m
import sqlite3
from tether.store import open_store
from tether.store.base import NewRun, StepWrite
d = tempfile.mkdtemp()
st = open_store(f"sqlite:///{d}/x.db")
_, _, claim = st.create_run(NewRun("r", "f", "e", "{}", None, 0.0, 0.0), now=1.0, owner="w", ttl=1e9)
best = 1e9
for rep in range(5):
    c = time.process_time()
    for i in range(2000):
        st.save_step("r", claim.token, StepWrite(f"s{rep}-{i}", rep*2000+i, "run", "completed", 1.0, 1.0, output="1"))
    best = min(best, (time.process_time() - c) / 2000)
conn = sqlite3.connect(f"{d}/raw.db", isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
raw = 1e9
for rep in range(5):
    c = time.process_time()
    for i in range(2000):
        conn.execute("INSERT INTO t VALUES (?, ?)", (rep*2000+i, "1"))
    raw = min(raw, (time.process_time() - c) / 2000)
print(sqlite3.sqlite_version, round(best*1e6, 1), round(raw*1e6, 1))
"""
res = {}
for _round in range(3):
    for drv in ("stdlib", "pysqlite3", "sqlean"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, drv], capture_output=True, text=True
        ).stdout.split()
        res.setdefault(drv, []).append((out[0], float(out[1]), float(out[2])))
for drv, v in res.items():
    print(
        drv,
        v[0][0],
        "checkpoint cpu us",
        sorted(x[1] for x in v),
        "raw autocommit insert cpu us",
        sorted(x[2] for x in v),
    )
