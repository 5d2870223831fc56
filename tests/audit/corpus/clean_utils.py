"""Plain helpers with no model calls: the audit has nothing to say about them."""

import json
import logging
import sqlite3
import time
from pathlib import Path

import requests

log = logging.getLogger(__name__)


def download(url: str, dest: Path) -> None:
    r = requests.get(url, timeout=(3.05, 60))
    r.raise_for_status()
    dest.write_bytes(r.content)


def connect(path: str) -> sqlite3.Connection:
    for attempt in range(5):
        try:
            return sqlite3.connect(path, timeout=5)
        except sqlite3.OperationalError:
            time.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"cannot open {path}")


def load_settings(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except Exception:
        return {}


def wait_for_file(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.5)
    return False
