"""Subjects on the dashboard (DESIGN 4b): the pages ``/subjects`` and ``/subjects/{id}``
(memories with delete buttons, preferences, an export link) and the API

    GET    /api/subjects                       the subjects kept about
    GET    /api/subjects/{id}                  what is kept (redacted, as the other pages)
    GET    /api/subjects/{id}/export           everything kept, as the subject is owed it
    DELETE /api/subjects/{id}                  forget(): the counts, and whether it is erased
    DELETE /api/subjects/{id}/memory/{item}    delete one memory (all its versions)
    PUT    /api/subjects/{id}/preferences      replace the preferences (a JSON object)

Nothing here creates a subject: one with nothing kept is a 404, a malformed id a 400, a
non-JSON preference a 400 with nothing written. Handlers that touch the store are plain
``def`` (starlette's threadpool); the one that reads a body hands the store work to a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tether.durable.subjects import subject_problem
from tether.errors import InvalidMemory, InvalidPreference, MemoryNotFound
from tether.observe.redact import Redactor
from tether.subjects import Subject, summary

if TYPE_CHECKING:
    from tether.harness import Harness

Page = Callable[..., HTMLResponse]
JsonBody = Callable[[Request], Any]


def routes(harness: Harness, page: Page, r: Redactor, json_body: JsonBody) -> list[Route]:
    def lookup(request: Request) -> Subject | Response:
        subject_id = request.path_params["subject"]
        problem = subject_problem(subject_id)
        if problem is not None:
            return JSONResponse({"error": f"{subject_id!r}: {problem}"}, status_code=400)
        subject = harness._subject(subject_id)
        if not subject.kept():
            return JSONResponse(
                {"error": f"nothing is kept about subject {subject_id!r}"}, status_code=404
            )
        return subject

    def api_subjects(request: Request) -> Response:
        return JSONResponse({"subjects": harness.subjects()})

    def api_subject(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        return JSONResponse(summary(found.export(), r.text, r.value))

    def api_export(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in found.id)
        return JSONResponse(
            found.export(),
            headers={"Content-Disposition": f'inline; filename="subject-{filename}.json"'},
        )

    def api_forget(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        return JSONResponse({"subject": found.id, **found.forget().to_dict()})

    def api_forget_memory(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        item = request.path_params["item"]
        try:
            found.memory.delete(item)
        except MemoryNotFound:
            return JSONResponse(
                {"error": f"subject {found.id!r} has no memory {item!r}"}, status_code=404
            )
        except InvalidMemory as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"subject": found.id, "deleted": item})

    def put_preferences(request: Request, body: Any) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        if not isinstance(body, dict):
            return JSONResponse(
                {"error": "the body must be a JSON object of preferences"}, status_code=400
            )
        try:
            found.preferences.replace(body)
        except InvalidPreference as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"subject": found.id, "preferences": found.preferences.load()})

    async def api_preferences(request: Request) -> Response:
        body = await json_body(request)
        return await run_in_threadpool(put_preferences, request, body)

    # -- pages --------------------------------------------------------------------------------
    def subjects_page(request: Request) -> Response:
        return page("subjects.html", request, subjects=harness.subjects())

    def subject_page(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            response = page("subject_missing.html", request, subject=request.path_params["subject"])
            response.status_code = found.status_code
            return response
        return page("subject.html", request, s=summary(found.export(), r.text, r.value))

    return [
        Route("/subjects", subjects_page),
        Route("/subjects/{subject}", subject_page),
        Route("/api/subjects", api_subjects),
        Route("/api/subjects/{subject}", api_subject),
        Route("/api/subjects/{subject}", api_forget, methods=["DELETE"]),
        Route("/api/subjects/{subject}/export", api_export),
        Route("/api/subjects/{subject}/memory/{item}", api_forget_memory, methods=["DELETE"]),
        Route("/api/subjects/{subject}/preferences", api_preferences, methods=["PUT"]),
    ]
