"""The one I/O seam of delivery: ``Transport.send(url, data, headers, timeout)``.

``RequestsTransport`` posts with a pooled, keep-alive :class:`requests.Session`; ``MockTransport``
calls a function instead (tests, notebooks). A transport returns every HTTP response as a
:class:`TransportResponse`, whatever its status, and raises :class:`TransientDeliveryError` only
for failures where no response arrived (network error, timeout, connection reset): classifying
statuses is the retry module's job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import TransientDeliveryError
from ..secrets import mask_url

__all__ = ["Transport", "TransportRequest", "TransportResponse", "RequestsTransport", "MockTransport"]


@dataclass(frozen=True)
class TransportResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class TransportRequest:
    url: str
    data: bytes = field(repr=False)
    headers: Mapping[str, str]
    timeout: float


@runtime_checkable
class Transport(Protocol):
    def send(self, url: str, data: bytes, headers: Mapping[str, str], timeout: float) -> TransportResponse:
        """Post ``data``; return the response or raise TransientDeliveryError if none came."""
        ...

    def close(self) -> None: ...


class RequestsTransport:
    """HTTP with requests: one Session, a connection pool sized to the concurrency, keep-alive."""

    def __init__(self, pool_size: int = 8) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self._requests = requests
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size), max_retries=0, pool_block=True)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def send(self, url: str, data: bytes, headers: Mapping[str, str], timeout: float) -> TransportResponse:
        exc_types = self._requests.exceptions
        try:
            r = self._session.post(url, data=data, headers=dict(headers), timeout=timeout, allow_redirects=False)
            text = r.text  # reads the whole body so the connection goes back to the pool
        except exc_types.Timeout as exc:
            raise TransientDeliveryError(f"timeout after {timeout:g} s ({type(exc).__name__}) posting to "
                                         f"{mask_url(url)}") from None
        except exc_types.RequestException as exc:
            reason = _root_cause(exc)
            raise TransientDeliveryError(f"network error posting to {mask_url(url)}: {reason}") from None
        return TransportResponse(status=r.status_code, headers=dict(r.headers), text=text)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RequestsTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's class and message, short (URLs in it are masked)."""
    seen = exc
    while True:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
        if isinstance(seen, ConnectionError | OSError) and not isinstance(seen, TimeoutError):
            break
    text = mask_url(str(seen))
    return f"{type(seen).__name__}: {text[:200]}" if text else type(seen).__name__


class MockTransport:
    """A transport that calls ``handler(TransportRequest) -> TransportResponse`` (it may raise
    TransientDeliveryError to simulate a network failure). Keeps every request in ``.requests``."""

    def __init__(self, handler: Callable[[TransportRequest], TransportResponse]) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        self.requests: list[TransportRequest] = []

    def send(self, url: str, data: bytes, headers: Mapping[str, str], timeout: float) -> TransportResponse:
        req = TransportRequest(url=url, data=data, headers=dict(headers), timeout=timeout)
        with self._lock:
            self.requests.append(req)
        return self._handler(req)

    def close(self) -> None:
        pass
