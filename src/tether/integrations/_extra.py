"""The one error an integration raises when its library is not installed."""

from __future__ import annotations

from tether.errors import ConfigurationError


def missing(library: str, extra: str, exc: ImportError) -> ConfigurationError:
    """A ``ConfigurationError`` naming the exact install command."""
    return ConfigurationError(
        f"tether's {library} integration needs {library}, which is not installed ({exc}); "
        f'install it with: pip install "tether[{extra}]"'
    )
