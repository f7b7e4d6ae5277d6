"""An amqtt plugin for the embedded broker: every client admitted, and none of them taken for anonymous.

amqtt's own AnonymousAuthPlugin marks each client it admits without a password as anonymous, and amqtt keeps
nothing for an anonymous client while it is away: its persistent session is dropped and the readings that
arrive meanwhile are not queued (amqtt 0.12, `Broker._run_broadcast` and `_session_monitor`). A stream worker
that lost its connection for a moment then lost those readings for good. The embedded broker listens on
127.0.0.1 only (see `broker.start_broker`), so admitting every local client is what the anonymous plugin did;
this one only leaves their sessions persistent, as MQTT 3.1.1 asks for clean_session 0.

Imported by the amqtt process alone (its config names this class), never by the rest of shopfloor.
"""

from __future__ import annotations

from amqtt.plugins.base import BaseAuthPlugin


class LocalClients(BaseAuthPlugin):
    """Admit every client of the local listener; sessions stay persistent when the client asks for it."""

    async def authenticate(self, *, session) -> bool:
        session.is_anonymous = False
        return True
