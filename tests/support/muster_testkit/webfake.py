"""A catch-all HTTP(S) server on 127.0.0.1 for the fakes tests stand up in place of what an agent
talks to (a JWK set, a Kubernetes API, AWS STS and IAM, an HTTP check's target).

``serve(handler)`` routes every method and path to ``handler`` and yields the port it bound
(the OS picks it); the server is gone when the block ends.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
