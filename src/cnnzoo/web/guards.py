"""ASGI middleware that protects the server from its clients, before a request reaches the app.

- :class:`HostCheck`: only the names the server was bound to (127.0.0.1, localhost, [::1], ``--host``,
  ``--allow-host``) may appear in the Host header. A page on evil.example whose DNS name is rebound to
  127.0.0.1 sends ``Host: evil.example``; without the check it could read ``/api/info``.
- :class:`BodyLimit`: request bodies over the cap get a JSON 413, counted as they stream.
- :class:`BodyDeadline`: a body that has not fully arrived ``seconds`` after the request started gets a
  408 and the connection is closed: a client that sends headers and then a byte a minute (slowloris) holds
  a connection for ``seconds``, not for ever. (uvicorn's ``timeout_keep_alive`` covers idle connections
  between requests.)
- :class:`HeadAsGet`: ``HEAD`` on any ``GET`` route answers as ``GET`` would, without the body.
- :class:`SameOrigin`: a request that changes state (any method but GET/HEAD/OPTIONS) from a page of
  another origin gets a 403. The Host check cannot stop it: the browser sends the real host. Browsers say
  where a request comes from in ``Sec-Fetch-Site`` and ``Origin`` (on every POST, forms and no-cors
  fetches included, and a page cannot forge either); a request that carries neither is not a browser's
  (curl, scripts) and passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "LOOPBACK_NAMES",
    "HostCheck",
    "BodyLimit",
    "BodyDeadline",
    "HeadAsGet",
    "SameOrigin",
    "host_names",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _bare(host: str) -> str:
    """'Example.org:8000' -> 'example.org'; '[::1]:8000' and '::1' -> '[::1]'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def host_names(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values a server bound to ``bound`` answers: loopback, ``bound``, ``extra``."""
    return frozenset(_bare(h) for h in (*LOOPBACK_NAMES, bound, *extra) if h)


class HostCheck:
    """Refuse (400, one line) a request whose Host header is not one of ``allowed`` (``*`` allows any)."""

    def __init__(self, app, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(_bare(h) for h in allowed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if _bare(host) not in self.allowed:
            shown = host if len(host) <= 80 else host[:77] + "..."
            message = (
                f"Host {shown!r} is not served here (a DNS-rebinding page?); "
                "if it is yours, restart cnnzoo serve with --allow-host NAME"
            )
            response = JSONResponse({"error": message}, status_code=400, headers={"Connection": "close"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin_netloc(origin: str) -> str | None:
    """'http://LocalHost' -> 'http://localhost:80'; None for 'null' and anything that is not scheme://host."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not rest or "/" in rest:
        return None
    return f"{scheme}://{rest if _has_port(rest) else f'{rest}:{_DEFAULT_PORTS[scheme]}'}"


def _has_port(netloc: str) -> bool:
    return netloc.rsplit("]", 1)[-1].count(":") == 1 if netloc.startswith("[") else ":" in netloc


def cross_origin(method: str, headers: dict[bytes, bytes], scheme: str = "http") -> str | None:
    """Why a request is refused as coming from another origin's page, or None when it may go on."""
    if method in SAFE_METHODS:
        return None
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if site and site not in ("same-origin", "none"):
        return f"a {site} page may not {method} here"
    origin = headers.get(b"origin")
    if origin is None:
        return None
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    host = f"{scheme}://{host if _has_port(host) else f'{host}:{_DEFAULT_PORTS.get(scheme, 80)}'}"
    seen = _origin_netloc(origin.decode("latin-1"))
    if seen != host:
        shown = origin.decode("latin-1")[:80]
        return f"a page of {shown!r} may not {method} here"
    return None


class SameOrigin:
    """Refuse (403, one line) a state-changing request sent by a page of another origin (see
    :func:`cross_origin`): an auto-submitting form or a no-cors fetch on evil.example can neither start,
    stop nor switch anything."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            why = cross_origin(scope["method"], dict(scope["headers"]), scope.get("scheme", "http"))
            if why:
                message = f"{why}: only this server's own pages may change its state"
                response = JSONResponse({"error": message}, status_code=403)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a JSON 413, counting as they stream.

    (FastAPI's own ``max_body_size`` answers in plain text when Content-Length is too big; the API promises
    JSON errors.) Past the cap, ``receive`` raises an HTTPException, which FastAPI's body parsing re-raises
    to the app's handler, so the client gets the same ``{"error": ...}`` as for every other problem.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _message(self) -> str:
        return f"upload too large: the limit is {self.max_bytes / 2**20:g} MiB"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(
                {"error": self._message()}, status_code=413, headers={"Connection": "close"}
            )
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)


class BodyDeadline:
    """Give a request ``seconds`` from its start to deliver its whole body; past that, answer 408 with
    ``Connection: close`` (uvicorn then closes the socket), tell the app the client is gone, and drop
    whatever the app still tries to send."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = time.monotonic() + self.seconds
        timed_out = False

        async def timed_receive():
            nonlocal timed_out
            try:
                return await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                timed_out = True
                message = f"the request body did not arrive within {self.seconds:g} s"
                response = JSONResponse({"error": message}, status_code=408, headers={"Connection": "close"})
                await response(scope, receive, send)
                return {"type": "http.disconnect"}

        async def until_timeout(message) -> None:
            if not timed_out:
                await send(message)

        try:
            await self.app(scope, timed_receive, until_timeout)
        except Exception:
            if not timed_out:  # the app's reaction to the disconnect is no news; anything else is
                raise


class HeadAsGet:
    """Answer ``HEAD`` as ``GET`` without the body (FastAPI routes declared with ``get`` answer 405)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


# --- slow headers ---------------------------------------------------------------------------------------
# BodyDeadline starts once a request's headers are complete; before that the app never sees the request.
# uvicorn has no header timeout, and its keep-alive timer is cancelled by the first byte that arrives, so a
# client that sends its headers a byte every few seconds would hold a connection (and a file descriptor)
# forever. The protocol below closes a connection whose request line and headers are not all in within
# HEADER_SECONDS, counted from the connection or from the end of the previous response. It reads two
# attributes of uvicorn's H11Protocol (`conn`, the h11 connection, and `loop`), stable since uvicorn 0.14;
# tests/test_hardening_web.py pins the behaviour.
HEADER_SECONDS = 10.0


def header_deadline_protocol(seconds: float = HEADER_SECONDS):
    """uvicorn's h11 protocol with a deadline for the request headers (pass as ``uvicorn.Config(http=...)``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        _deadline = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # before super(): a pipelined request it parses disarms it again
            super().on_response_complete()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
