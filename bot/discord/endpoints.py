"""Which Discord endpoints a client talks to: Discord's own, or DISCORD_API_BASE_URL /
DISCORD_GATEWAY_URL (a rate-limit-sharing REST proxy, or the fake in the tests).

discord.py builds every REST URL from the class attribute `Route.BASE` and opens the gateway at
`DiscordWebSocket.DEFAULT_GATEWAY`; `discord_endpoints` turns both into context-variable lookups,
so the URLs follow the task that runs a client (each adapter's own), not a process-wide global.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"


@dataclass(frozen=True)
class Endpoints:
    api: str  # https://discord.com/api/v10
    gateway: yarl.URL  # wss://gateway.discord.gg/


_DEFAULT_ENDPOINTS = Endpoints(DISCORD_API, yarl.URL(DISCORD_GATEWAY))
_endpoints: ContextVar[Endpoints] = ContextVar("docsbot_discord_endpoints", default=_DEFAULT_ENDPOINTS)


class _ApiBase:
    """Stands in for `Route.BASE`: the REST base of the client running in this context."""

    def __get__(self, obj: object, owner: type | None = None) -> str:
        return _endpoints.get().api


class _Gateway:
    """Stands in for `DiscordWebSocket.DEFAULT_GATEWAY`: the gateway of this context's client."""

    def __get__(self, obj: object, owner: type | None = None) -> yarl.URL:
        return _endpoints.get().gateway


@contextlib.contextmanager
def discord_endpoints(api_base: str, gateway: str = "") -> Iterator[Endpoints]:
    """Use these Discord endpoints for the discord.py clients run inside this block (and the
    tasks they start). An empty gateway means Discord's own."""
    if not isinstance(Route.__dict__.get("BASE"), _ApiBase):
        Route.BASE = _ApiBase()  # type: ignore[assignment]
    if not isinstance(DiscordWebSocket.__dict__.get("DEFAULT_GATEWAY"), _Gateway):
        DiscordWebSocket.DEFAULT_GATEWAY = _Gateway()  # type: ignore[assignment]
    endpoints = Endpoints(api_base.rstrip("/") or DISCORD_API, yarl.URL(gateway or DISCORD_GATEWAY))
    token = _endpoints.set(endpoints)
    try:
        yield endpoints
    finally:
        _endpoints.reset(token)
