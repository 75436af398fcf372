"""Who is calling: from the listener the call came in on, or from a bearer token.

grpcio gives a Unix-socket server no peer credentials (``context.peer()`` is just ``unix:``), so
the server runs one listener per identity and tells the authenticator which one a call used:

====================  ======================  ==============================================
listener              without a token          with ``authorization: Bearer hfd_...``
====================  ======================  ==============================================
main Unix socket      ``default``, role        the token's app and role
                      ``default_socket_role``
app Unix socket       that app, its role       the token's app and role
TCP (loopback)        refused                  the token's app and role
====================  ======================  ==============================================

With ``require_token_on_unix`` the Unix rows behave like TCP. A token that is malformed or
unknown is always refused, never silently downgraded to the socket's identity.

:meth:`Authenticator.authenticate` is pure and in-memory. The token file is re-read off the loop
by :meth:`Authenticator.refresh` (at most every ``token_refresh_s``, and at once, rate-limited,
when an unknown token arrives), so ``handoffctl apps add/revoke`` take effect without a restart.
A token file that fails to load disables token logins (fail closed) until it is fixed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from handoffd.auth.tokens import FileSignature, TokenStore, TokenTable, looks_like_token
from handoffd.domain import Caller, CallerRole
from handoffd.errors import ConfigError, Unauthenticated
from handoffd.logsetup import get_logger
from handoffd.schema.auth import DEFAULT_APP, AuthSettings

log = get_logger(__name__)

_BEARER = "bearer"
#: an unknown token triggers a re-read of the token file at most this often
_MISS_REFRESH_S = 0.2


class ListenerKind(StrEnum):
    MAIN_SOCKET = "main_socket"
    APP_SOCKET = "app_socket"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class ListenerIdentity:
    """What a listener says about its callers before any token is looked at."""

    kind: ListenerKind
    #: the app a per-app socket belongs to
    app: str | None = None
    #: the role callers without a token get on this listener (Unix sockets only)
    role: CallerRole = CallerRole.APP

    @classmethod
    def main_socket(cls, role: CallerRole) -> ListenerIdentity:
        return cls(ListenerKind.MAIN_SOCKET, DEFAULT_APP, role)

    @classmethod
    def app_socket(cls, app: str, role: CallerRole = CallerRole.APP) -> ListenerIdentity:
        return cls(ListenerKind.APP_SOCKET, app, role)

    @classmethod
    def tcp(cls) -> ListenerIdentity:
        return cls(ListenerKind.TCP)

    @property
    def is_unix(self) -> bool:
        return self.kind is not ListenerKind.TCP

    @property
    def label(self) -> str:
        """A short name for logs and metrics, e.g. ``app_socket:myapp``."""
        return (
            f"{self.kind.value}:{self.app}" if self.kind is ListenerKind.APP_SOCKET else self.kind
        )


def parse_authorization(values: list[str]) -> str | None:
    """The token from ``authorization`` metadata values, or None when there is none.

    Raises :class:`Unauthenticated` for several values, another scheme, or a value that is not
    shaped like a handoffd token.
    """
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("send one authorization header, not several")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _BEARER or not token:
        raise Unauthenticated(
            "authorization must be 'Bearer hfd_...'; create a token with `handoffctl apps add NAME`"
        )
    if not looks_like_token(token):
        raise Unauthenticated(
            "the bearer token is not a handoffd token (hfd_ followed by 43 characters); "
            "copy it again from `handoffctl apps add NAME`"
        )
    return token


class Authenticator:
    """Resolves a :class:`Caller` from a listener and an optional bearer token."""

    def __init__(
        self,
        settings: AuthSettings,
        store: TokenStore | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._table = TokenTable.empty()
        self._loaded_at = float("-inf")
        self._miss_refresh_at = float("-inf")
        self._refresh_lock = asyncio.Lock()
        self._failed_signature: FileSignature = None

    @property
    def settings(self) -> AuthSettings:
        return self._settings

    def main_listener(self) -> ListenerIdentity:
        return ListenerIdentity.main_socket(CallerRole(self._settings.default_socket_role))

    def app_listeners(self) -> dict[str, ListenerIdentity]:
        """One identity per configured app socket."""
        return {
            name: ListenerIdentity.app_socket(name, CallerRole(app.role))
            for name, app in self._settings.apps.items()
        }

    # -- token table -------------------------------------------------------------------------

    def load_tokens(self) -> int:
        """Read the token file now (blocking; call at start-up or in a thread). Returns apps.

        Raises :class:`ConfigError` for an unreadable or invalid file.
        """
        if self._store is None:
            return 0
        self._table = self._store.load()
        self._loaded_at = self._clock()
        log.info("auth.tokens_loaded", apps=len(self._table), path=str(self._store.path))
        return len(self._table)

    def _reload_if_changed(self) -> None:
        if self._store is None:
            return
        signature = self._store.signature()
        if signature == self._table.signature:
            return
        if self._failed_signature is not None and signature == self._failed_signature:
            return  # still the same broken file: already logged
        try:
            self.load_tokens()
        except ConfigError as exc:
            self._table = TokenTable.empty()  # fail closed: no token logins until fixed
            self._failed_signature = signature
            log.error("auth.tokens_invalid", error=exc.message)
        else:
            self._failed_signature = None

    async def refresh(self, *, unknown_token: bool = False) -> None:
        """Re-read the token file if it changed, at most every ``token_refresh_s``.

        ``unknown_token``: a caller presented a token the table lacks (maybe just added), so
        look again sooner (at most every 0.2 s).
        """
        if self._store is None:
            return
        now = self._clock()
        due = now - self._loaded_at >= self._settings.token_refresh_s
        if not due and unknown_token and now - self._miss_refresh_at >= _MISS_REFRESH_S:
            self._miss_refresh_at = now
            due = True
        if not due or self._refresh_lock.locked():
            return
        async with self._refresh_lock:
            await asyncio.to_thread(self._reload_if_changed)
            self._loaded_at = self._clock()

    # -- authentication ----------------------------------------------------------------------

    def knows_token(self, token: str) -> bool:
        return self._table.lookup(token) is not None

    def authenticate(self, listener: ListenerIdentity, bearer: str | None) -> Caller:
        """The caller, or :class:`Unauthenticated` (no usable credentials).

        ``bearer`` is the token itself (see :func:`parse_authorization`), None if none was sent.
        """
        if bearer is not None:
            record = self._table.lookup(bearer)
            if record is None:
                raise Unauthenticated(
                    "unknown or revoked token; list apps with `handoffctl apps list` and create "
                    "a new token with `handoffctl apps add NAME`"
                )
            return Caller(app=record.app, role=record.role)
        if listener.kind is ListenerKind.TCP:
            raise Unauthenticated(
                "TCP callers must send 'authorization: Bearer hfd_...'; create a token with "
                "`handoffctl apps add NAME`, or connect over the Unix socket"
            )
        if self._settings.require_token_on_unix:
            raise Unauthenticated(
                "this daemon requires a token on every socket (auth.require_token_on_unix); "
                "send 'authorization: Bearer hfd_...' from `handoffctl apps add NAME`"
            )
        if listener.app is None:
            raise Unauthenticated(f"listener {listener.label} carries no identity; send a token")
        return Caller(app=listener.app, role=listener.role)

    async def resolve(self, listener: ListenerIdentity, bearer: str | None) -> Caller:
        """:meth:`refresh` as due, then :meth:`authenticate`: what the transports call."""
        await self.refresh()
        if bearer is not None and not self.knows_token(bearer):
            await self.refresh(unknown_token=True)
        return self.authenticate(listener, bearer)
