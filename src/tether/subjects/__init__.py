"""End users' control over what is kept about them (DESIGN 4b): ``th.subject(id)``.

``Subject`` gives a subject's memory, preferences, windows, an export of everything kept
about it and ``forget()``; ``AsyncSubject`` is the same inside ``async def`` durable
functions. See ``tether.subjects.subject``.
"""

from tether.subjects.preferences import AsyncPreferences, Preferences, check_preference
from tether.subjects.subject import AsyncSubject, Forgotten, Subject, summary

__all__ = [
    "AsyncPreferences",
    "AsyncSubject",
    "Forgotten",
    "Preferences",
    "Subject",
    "check_preference",
    "summary",
]
