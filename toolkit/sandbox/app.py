"""The sandbox's ASGI app (Starlette): Event API, datafile CDN, Results API, CSV export, admin.

Routes:

- ``POST /v1/events`` - 204 queued; 400 malformed (JSON reason); 413 over 3.5 MB; strict mode with
  ``X-Optimizely-Strict: true``; fault injection applies here only (see :mod:`.faults`).
- ``GET /datafiles/{sdk_key}.json`` - ETag / Last-Modified, 304 on ``If-None-Match`` /
  ``If-Modified-Since``, 403 for any other key.
- ``GET /v2/experiments/{id}/results`` and ``GET /v2/export/experiments/{id}/results/csv`` -
  bearer token when one is set (401 otherwise), optional ``start_time`` / ``end_time`` (ISO 8601).
  A known experiment always answers 200, with zero counts when nothing has been counted yet
  (never 204); an unknown id answers 404.
- a request whose body has not arrived ``body_timeout`` s after it started: 408, connection closed
  (:mod:`.body_timeout`).
- ``GET /admin/stats``, ``POST /admin/reset``, ``GET|POST /admin/faults``, ``PUT /admin/datafile``,
  ``POST /admin/e3`` (writes E3 Parquet under ``<data_dir>/e3``).

All blocking work (SQLite) runs on the event loop thread: one writer, and a 204 means the body's
events are committed to the store (its inbox; dedup follows in bulk, before anything is read: see
:mod:`.store`). A writer thread was measured slower: sqlite3 re-takes the GIL per row while the
loop parses. The cyclic garbage collector is paused while a body is decoded, checked and
appended (:func:`.ingest.gc_paused`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..datafile import Datafile, parse_datafile
from ..errors import DatafileError, UserInputError
from ..secrets import Secret
from .attribution import attribute
from .body_timeout import DEFAULT_BODY_TIMEOUT, BodyDeadline
from .faults import FaultInjector, FaultSpec, parse_faults
from .ingest import BodyError, Catalog, check_body, decode_body, gc_paused
from .results import experiment_event_ids, results_csv, results_json
from .store import Store, StoredDatafile

__all__ = ["SandboxState", "create_app", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3_500_000
_DRAIN_LIMIT = 64 * 1024 * 1024  # an over-limit body is read and discarded up to this, then cut off
_MAX_ADMIN_BYTES = 20 * 1024 * 1024

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class SandboxState:
    """Everything one running sandbox knows: the store, the datafile in force, keys, faults, lag."""

    def __init__(
        self,
        store: Store,
        *,
        datafile: Datafile,
        sdk_key: str,
        api_token: Secret | None = None,
        lag_seconds: float = 0.0,
        faults: FaultSpec | None = None,
    ) -> None:
        self.store = store
        self.sdk_key = sdk_key
        self.api_token = api_token
        self.lag_seconds = float(lag_seconds)
        self.faults = FaultInjector(faults or FaultSpec())
        self.datafile = datafile
        self.catalog = Catalog.from_datafile(datafile)
        self.served: StoredDatafile = self._install(datafile)

    def _install(self, df: Datafile) -> StoredDatafile:
        etag = '"' + hashlib.sha256(df.text.encode()).hexdigest()[:32] + '"'
        current = self.store.datafile()
        if current is not None and current.etag == etag:
            return current  # same datafile as before a restart: keep its Last-Modified
        return self.store.set_datafile(df.text, etag, df.revision)

    def set_datafile(self, df: Datafile) -> StoredDatafile:
        self.served = self._install(df)
        self.datafile = df
        self.catalog = Catalog.from_datafile(df)
        log.info("sandbox datafile replaced: revision %s", df.revision)
        return self.served

    def set_faults(self, spec: FaultSpec) -> None:
        self.faults = FaultInjector(spec)

    def stats(self) -> dict[str, Any]:
        return stats_from(self.store, self.faults.spec, self.served)


def stats_from(store: Store, faults: FaultSpec | None, served: StoredDatafile | None) -> dict[str, Any]:
    c = store.counters()

    def group(prefix: str) -> dict[str, int]:
        return {k[len(prefix):]: v for k, v in c.items() if k.startswith(prefix)}

    dropped = group("dropped.")
    decisions, conversions = store.query("SELECT (SELECT COUNT(*) FROM decisions), (SELECT COUNT(*) FROM conversions)")[0]
    return {
        "events_received": c.get("events.received", 0),
        "events_stored": c.get("events.stored", 0),
        "duplicates": c.get("events.duplicates", 0),
        "silently_dropped": sum(dropped.values()),
        "silently_dropped_by_reason": dropped,
        "rejected": group("rejected."),
        "rejected_events": c.get("events.rejected", 0),
        "requests": group("requests."),
        "faults_injected": group("faults."),
        "decisions": decisions,
        "conversions": conversions,
        "datafile_revision": served.revision if served else None,
        "faults": faults.to_dict() if faults else None,
    }


# ----------------------------------------------------------------------------- helpers


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None when it is over ``cap`` (the rest is read and discarded, bounded)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _DRAIN_LIMIT:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            if size > _DRAIN_LIMIT:
                return None
            chunks.clear()  # keep draining so the client can read our answer
            continue
        chunks.append(chunk)
    return None if size > cap else b"".join(chunks)


def _problem(status: int, code: str, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "code": code, "reason": reason, **extra}, status_code=status)


def _parse_time(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BodyError(f"{name}={raw!r} is not an ISO 8601 time (e.g. 2024-05-01T00:00:00Z)", code="bad_query") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _datafile_from_bytes(data: bytes) -> Datafile:
    return parse_datafile(data, source="PUT /admin/datafile")


# ----------------------------------------------------------------------------- app


def create_app(state: SandboxState, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> ASGIApp:
    """The app; a request whose body is not in ``body_timeout`` s after it started gets 408."""
    store = state.store

    async def post_events(request: Request) -> Response:
        data = await _read_capped(request, MAX_BODY_BYTES)
        if data is None:
            store.bump({"requests.413": 1, "rejected.too_large": 1})
            return _problem(413, "too_large", f"body over {MAX_BODY_BYTES} bytes (3.5 MB): split it into smaller batches")
        strict = request.headers.get("x-optimizely-strict", "").strip().lower() == "true"
        with gc_paused():  # nothing awaits inside: one request at a time
            try:
                parsed = check_body(decode_body(data, request.headers.get("content-type")), state.catalog,
                                    received_at=time.time())
            except BodyError as exc:
                store.bump({"requests.400": 1, f"rejected.{exc.code}": 1})
                return JSONResponse(exc.to_json(), status_code=400)
            if strict and parsed.dropped:
                n = sum(parsed.dropped.values())
                store.bump({"requests.400": 1, "rejected.strict": 1, "events.rejected": parsed.n_events})
                return _problem(400, "strict", f"strict mode: {n} of {parsed.n_events} event(s) cannot be used; "
                                "nothing stored", by_reason=dict(parsed.dropped), events=parsed.bad)
            counters = {"requests.204": 1, "events.received": parsed.n_events}
            counters.update({f"dropped.{k}": v for k, v in parsed.dropped.items()})
            store.append(parsed.decisions, parsed.conversions, counters)
            del parsed
        return Response(status_code=204)

    async def get_datafile(request: Request) -> Response:
        key = request.path_params["sdk_key"]
        if not hmac.compare_digest(key.encode(), state.sdk_key.encode()):
            return PlainTextResponse("Forbidden", status_code=403)
        served = state.served
        headers = {"ETag": served.etag, "Last-Modified": formatdate(served.last_modified, usegmt=True),
                   "Cache-Control": "max-age=0, must-revalidate"}
        inm = request.headers.get("if-none-match")
        ims = request.headers.get("if-modified-since")
        if inm is not None:
            if served.etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*":
                return Response(status_code=304, headers=headers)
        elif ims:
            try:
                since = parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                since = None
            if since is not None and served.last_modified <= since:
                return Response(status_code=304, headers=headers)
        return Response(served.text, media_type="application/json", headers=headers)

    def _authorized(request: Request) -> bool:
        if state.api_token is None:
            return True
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), state.api_token.reveal().encode())

    def _attribution(request: Request):
        exp_id = request.path_params["experiment_id"]
        exp = state.datafile.experiments.get(exp_id)
        if exp is None:
            return None, _problem(404, "not_found", f"experiment {exp_id!r} is not in the datafile (revision {state.datafile.revision})")
        start = _parse_time(request.query_params.get("start_time"), "start_time")
        end = _parse_time(request.query_params.get("end_time"), "end_time")
        now = time.time()
        cutoff = now - state.lag_seconds if state.lag_seconds > 0 else None
        att = attribute(store, exp.id, [eid for eid, _ in experiment_event_ids(state.datafile, exp.id)],
                        received_before=cutoff, start_ms=start, end_ms=end)
        kwargs = {"start_ms": start, "end_ms": end, "now_ms": int(now * 1000)}
        return (exp, att, kwargs), None

    async def results_endpoint(request: Request, render) -> Response:
        if not _authorized(request):
            return _problem(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)")
        try:
            found, error = _attribution(request)
        except BodyError as exc:
            return _problem(400, exc.code, exc.reason)
        if error is not None:
            return error
        exp, att, kwargs = found
        return render(exp, att, kwargs)

    async def get_results(request: Request) -> Response:
        return await results_endpoint(
            request, lambda exp, att, kw: JSONResponse(results_json(exp, state.datafile, att, **kw)))

    async def get_results_csv(request: Request) -> Response:
        return await results_endpoint(request, lambda exp, att, kw: Response(
            results_csv(exp, state.datafile, att, **kw), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="experiment_{exp.id}_results.csv"'}))

    async def admin_stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def admin_reset(request: Request) -> Response:
        store.reset()
        return JSONResponse({"reset": True})

    async def admin_faults(request: Request) -> Response:
        if request.method == "POST":
            data = await _read_capped(request, 64 * 1024)
            try:
                spec = parse_faults((data or b"").decode("utf-8", "replace") or None)
            except UserInputError as exc:
                return _problem(400, "bad_faults", str(exc))
            state.set_faults(spec)
        return JSONResponse(state.faults.spec.to_dict())

    async def admin_datafile(request: Request) -> Response:
        data = await _read_capped(request, _MAX_ADMIN_BYTES)
        if data is None:
            return _problem(413, "too_large", "datafile too large")
        try:
            df = _datafile_from_bytes(data)
        except DatafileError as exc:
            return _problem(400, "bad_datafile", str(exc))
        served = state.set_datafile(df)
        return JSONResponse({"revision": served.revision, "etag": served.etag})

    async def admin_e3(request: Request) -> Response:
        from .e3 import export_e3

        out = Path(store.data_dir) / "e3"
        summary = export_e3(store, out)
        return JSONResponse(summary)

    routes = [
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/datafiles/{sdk_key}.json", get_datafile, methods=["GET"]),
        Route("/v2/experiments/{experiment_id}/results", get_results, methods=["GET"]),
        Route("/v2/export/experiments/{experiment_id}/results/csv", get_results_csv, methods=["GET"]),
        Route("/admin/stats", admin_stats, methods=["GET"]),
        Route("/admin/reset", admin_reset, methods=["POST"]),
        Route("/admin/faults", admin_faults, methods=["GET", "POST"]),
        Route("/admin/datafile", admin_datafile, methods=["PUT"]),
        Route("/admin/e3", admin_e3, methods=["POST"]),
    ]
    return FaultMiddleware(Starlette(routes=routes), state, body_timeout=body_timeout)


# ----------------------------------------------------------------------------- faults


class FaultMiddleware:
    """Raw ASGI wrapper, outermost: a deadline on every request's body (:mod:`.body_timeout`), and
    faults injected on ``POST /v1/events`` only, before the app sees it."""

    def __init__(self, app: ASGIApp, state: SandboxState, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        if not body_timeout > 0:
            raise ValueError(f"body_timeout must be positive, got {body_timeout}")
        self.app = app
        self.state = state
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        cycle = BodyDeadline(receive, send, self.body_timeout, what=f"{scope.get('method')} {scope.get('path')}",
                             on_timeout=lambda: self.state.store.bump({"requests.408": 1, "rejected.body_timeout": 1}))
        try:
            await self._call(scope, cycle.receive, cycle.send)
        except Exception:
            if not cycle.timed_out:  # after a 408 the app only sees a disconnect: nothing to report
                raise

    async def _call(self, scope: Scope, receive, send) -> None:
        if scope.get("path") != "/v1/events" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        injector = self.state.faults
        if injector.spec.latency_ms:
            await asyncio.sleep(injector.spec.latency_ms / 1000)
        action = injector.draw()
        if action == "ok":
            await self.app(scope, receive, send)
            return
        status = {"error": "500", "throttle": "429", "drop": "dropped"}[action]
        self.state.store.bump({f"faults.{action}": 1, f"requests.{status}": 1})
        await _drain(receive)
        if action == "drop":
            await _drop_connection(send, receive)
            return
        if action == "throttle":
            retry = injector.spec.retry_after
            headers = [(b"retry-after", f"{retry:g}".encode()), (b"content-type", b"application/json")]
            body = b'{"status": 429, "code": "rate_limited", "reason": "injected fault: too many requests"}'
            await _respond(send, 429, headers, body)
        else:
            await _respond(send, 500, [(b"content-type", b"application/json")],
                           b'{"status": 500, "code": "server_error", "reason": "injected fault"}')


async def _respond(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive) -> None:
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body") or size > _DRAIN_LIMIT:
            return


class _DroppedConnection(Exception):
    pass


async def _drop_connection(send, receive) -> None:
    """Close the socket without any response (uvicorn's transport), then wait for the disconnect."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # another server: start a response and break it off
        await send({"type": "http.response.start", "status": 500, "headers": []})
        raise _DroppedConnection("injected dropped connection")
    transport.close()
    try:
        async with asyncio.timeout(5):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
