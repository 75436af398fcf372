"""App identity and roles (component): per-app sockets, bearer tokens, the role table.

The transports (rpc interceptor, HTTP facade) ask :class:`Authenticator` who is calling and
:func:`authorize` whether that caller may call the method; ``handoffctl apps`` edits the
:class:`TokenStore`. See :mod:`handoffd.schema.auth` for the configuration and its defaults.
"""

from handoffd.auth.app_sockets import (
    app_socket_path,
    prepare_app_socket,
    remove_app_socket,
    remove_stale_socket,
    secure_app_socket,
)
from handoffd.auth.authenticator import (
    Authenticator,
    ListenerIdentity,
    ListenerKind,
    parse_authorization,
)
from handoffd.auth.roles import APP_METHODS, allowed_roles, authorize, is_public
from handoffd.auth.tokens import (
    TokenRecord,
    TokenStore,
    TokenTable,
    default_token_file,
    generate_token,
    hash_token,
)

__all__ = [
    "APP_METHODS",
    "Authenticator",
    "ListenerIdentity",
    "ListenerKind",
    "TokenRecord",
    "TokenStore",
    "TokenTable",
    "allowed_roles",
    "app_socket_path",
    "authorize",
    "default_token_file",
    "generate_token",
    "hash_token",
    "is_public",
    "parse_authorization",
    "prepare_app_socket",
    "remove_app_socket",
    "remove_stale_socket",
    "secure_app_socket",
]
