"""The role table: default deny, app RPCs, admin RPCs, public health and reflection."""

from __future__ import annotations

import pytest
from handoffd.auth import APP_METHODS, allowed_roles, authorize, is_public
from handoffd.domain import Caller, CallerRole
from handoffd.errors import PermissionDenied

APP = Caller("kiosk", CallerRole.APP)
ADMIN = Caller("ops", CallerRole.ADMIN)


@pytest.mark.parametrize("method", sorted(APP_METHODS))
def test_apps_and_admins_may_chat(method: str) -> None:
    """Chat, ChatStream, Explain, ListModels: both roles."""
    authorize(APP, method)
    authorize(ADMIN, method)


@pytest.mark.parametrize(
    "method",
    ["/handoffd.v1.Handoffd/Status", "/handoffd.v1.Audit/List", "/handoffd.v1.Admin/ReloadPolicy"],
)
def test_other_handoffd_rpcs_are_admin_only(method: str) -> None:
    """Everything else in handoffd.v1 (status, audit, reload, future RPCs) needs admin."""
    authorize(ADMIN, method)
    with pytest.raises(PermissionDenied, match="needs role 'admin'"):
        authorize(APP, method)


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
def test_health_and_reflection_are_public(method: str) -> None:
    """Probes and grpcurl need no credentials."""
    assert is_public(method)
    authorize(APP, method)


@pytest.mark.parametrize(
    "method",
    ["/other.v1.Service/Call", "/handoffd.v2.Handoffd/Chat", "handoffd.v1.Handoffd/Chat", "", "/x"],
)
def test_unknown_services_are_denied_to_everyone(method: str) -> None:
    """Default deny: a method outside the table is refused even for admins."""
    assert allowed_roles(method) == frozenset()
    with pytest.raises(PermissionDenied):
        authorize(ADMIN, method)
