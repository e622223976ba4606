"""A deadline for reading a request body: a client that sends its headers and then stalls, or
trickles its body, gets ``408`` and a closed connection once ``timeout`` seconds have passed since
its request started, instead of holding the connection and its buffered body for ever.

The deadline counts from the request's start, not from the last byte, so a trickle cannot keep it
alive. :class:`BodyDeadline` wraps one request's ASGI ``receive`` and ``send``: the 408 goes out
through the server's ``send``; the app then sees ``http.disconnect`` and whatever it answers
after that is dropped. The sandbox's outer middleware (:class:`~.app.FaultMiddleware`) uses it
for every request, so the fault paths that read a body are bounded too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyDeadline", "DEFAULT_BODY_TIMEOUT"]

log = logging.getLogger(__name__)

DEFAULT_BODY_TIMEOUT = 30.0  # seconds; a 3.5 MB body over loopback takes milliseconds

Message = MutableMapping[str, Any]

_BODY = (b'{"status": 408, "code": "body_timeout", "reason": "the request body did not arrive in time; '
         b'send it at once after the headers"}')


class BodyDeadline:
    """One request's ``receive`` / ``send`` with a deadline on the body (see the module doc).

    ``send`` is a bound method and ``transport`` the server's (uvicorn's) transport, so code that
    closes a connection through ``send.__self__.transport`` still can."""

    def __init__(self, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]],
                 timeout: float, *, what: str = "", on_timeout: Callable[[], None] | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"body timeout must be positive, got {timeout}")
        self._receive = receive
        self._send = send
        self.transport = getattr(getattr(send, "__self__", None), "transport", None)
        self.timeout = float(timeout)
        self.deadline = asyncio.get_running_loop().time() + self.timeout
        self.what = what  # for the log line, e.g. "POST /v1/events"
        self.on_timeout = on_timeout  # e.g. count it in the stats
        self.started = self.timed_out = self.body_done = False

    async def receive(self) -> Message:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            await self._give_up()
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body"):
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self.timed_out:
            return  # the 408 went out already
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def _give_up(self) -> None:
        log.info("sandbox: %s: body not received within %g s: 408", self.what, self.timeout)
        if self.on_timeout is not None:
            self.on_timeout()
        if self.started:  # an answer is under way: all that is left is to close
            if self.transport is not None:
                self.transport.close()
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
                   (b"connection", b"close")]
        await self._send({"type": "http.response.start", "status": 408, "headers": headers})
        await self._send({"type": "http.response.body", "body": _BODY})
