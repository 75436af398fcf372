"""Which role may call which RPC: one table, default deny.

``app`` callers may chat, stream, explain and list models (as themselves: the transports put
the caller's app name into each request). ``admin`` callers may call every RPC of the
``handoffd.v1`` package: besides the app RPCs, Status, the audit ledger and policy reload. Health
checks and server reflection are public (no credentials needed), so that load balancers,
``grpc_health_probe`` and ``grpcurl list`` work. Anything else is refused.

Method names are gRPC paths (``/package.Service/Method``), the form ``HandlerCallDetails.method``
has; the HTTP facade maps its routes onto the same names.
"""

from __future__ import annotations

from handoffd.domain import Caller, CallerRole
from handoffd.errors import PermissionDenied

PACKAGE = "handoffd.v1"
_HANDOFFD = f"/{PACKAGE}.Handoffd/"

METHOD_CHAT = _HANDOFFD + "Chat"
METHOD_CHAT_STREAM = _HANDOFFD + "ChatStream"
METHOD_EXPLAIN = _HANDOFFD + "Explain"
METHOD_LIST_MODELS = _HANDOFFD + "ListModels"
METHOD_STATUS = _HANDOFFD + "Status"
_AUDIT = f"/{PACKAGE}.Audit/"
#: an app may read its own audit entries (the Audit servicer filters by app)
METHOD_AUDIT_LIST = _AUDIT + "ListEntries"
METHOD_AUDIT_GET = _AUDIT + "GetEntry"

#: what an ``app`` may call; everything else in handoffd.v1 is admin-only
APP_METHODS = frozenset(
    {
        METHOD_CHAT,
        METHOD_CHAT_STREAM,
        METHOD_EXPLAIN,
        METHOD_LIST_MODELS,
        METHOD_AUDIT_LIST,
        METHOD_AUDIT_GET,
    }
)

#: services anyone may call, with or without credentials
PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def service_of(method: str) -> str:
    """``/pkg.Service/Method`` → ``pkg.Service`` (empty if the path is malformed)."""
    parts = method.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return ""
    return parts[1]


def is_public(method: str) -> bool:
    """Health checks and reflection: callable without credentials."""
    return service_of(method) in PUBLIC_SERVICES


def allowed_roles(method: str) -> frozenset[CallerRole]:
    """The roles that may call ``method`` (empty: nobody)."""
    if method in APP_METHODS:
        return frozenset({CallerRole.APP, CallerRole.ADMIN})
    if service_of(method).startswith(PACKAGE + "."):
        return frozenset({CallerRole.ADMIN})
    return frozenset()


def authorize(caller: Caller, method: str) -> None:
    """Raise :class:`PermissionDenied` unless ``caller``'s role may call ``method``."""
    if is_public(method):
        return
    roles = allowed_roles(method)
    if caller.role in roles:
        return
    if not roles:
        raise PermissionDenied(f"{method} is not an RPC that handoffd serves to anyone")
    raise PermissionDenied(
        f"app {caller.app!r} has role {caller.role.value!r}, and {method} needs role 'admin': "
        "call it over the main socket as the device owner, or with a token from "
        "`handoffctl apps add NAME --role admin`"
    )
