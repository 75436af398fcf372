"""The one exception tree of handoffd.

Every error a caller can see is a :class:`HandoffdError`. Each class maps to exactly one gRPC
status code and one HTTP status, in the class attributes below: the transports read them, so the
mapping lives here and nowhere else. Messages name the bad value and the fix; internal errors
carry a generic client message while the detail goes to the log.

    HandoffdError
    ├── InvalidRequest            INVALID_ARGUMENT     400   a field of the request is wrong
    │   └── ContextOverflow       INVALID_ARGUMENT     400   the prompt does not fit the model
    ├── Unauthenticated           UNAUTHENTICATED      401   no or unknown credentials
    ├── PermissionDenied          PERMISSION_DENIED    403   the caller's role may not do this
    ├── PolicyDenied              PERMISSION_DENIED    403   the device's policy refuses the request
    ├── NotFound                  NOT_FOUND            404   unknown model, ledger entry, ...
    ├── ResourceExhausted         RESOURCE_EXHAUSTED   429   rate limit or budget; retry_after_s
    ├── Unavailable               UNAVAILABLE          503   not ready, shutting down, cloud down
    │   └── CloudUnavailable      UNAVAILABLE          503   the cloud target cannot be reached
    ├── DeadlineExceeded          DEADLINE_EXCEEDED    504   a deadline ran out
    ├── Cancelled                 CANCELLED            499   the client went away
    ├── ConfigError               FAILED_PRECONDITION  500   a config/policy/model file is invalid
    │   └── ModelError            FAILED_PRECONDITION  500   the model folder cannot be used
    ├── CloudError                INTERNAL             502   the cloud answered with an error
    └── InternalError             INTERNAL             500   a bug: generic message to the client
"""

from __future__ import annotations


class HandoffdError(Exception):
    """Base of every error handoffd raises on purpose."""

    grpc_code: str = "INTERNAL"
    http_status: int = 500
    #: the OpenAI-style ``error.type`` the HTTP facade reports
    error_type: str = "server_error"
    #: whether the message may be shown to a client (False: a generic message is shown instead)
    public: bool = True

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def client_message(self) -> str:
        """The text a client sees."""
        if not self.public:
            return "internal error; the daemon log has the details"
        return self.message


class InvalidRequest(HandoffdError):
    grpc_code = "INVALID_ARGUMENT"
    http_status = 400
    error_type = "invalid_request_error"


class ContextOverflow(InvalidRequest):
    """The prompt plus max_tokens do not fit the local model's context window."""


class Unauthenticated(HandoffdError):
    grpc_code = "UNAUTHENTICATED"
    http_status = 401
    error_type = "authentication_error"


class PermissionDenied(HandoffdError):
    grpc_code = "PERMISSION_DENIED"
    http_status = 403
    error_type = "permission_error"


class PolicyDenied(HandoffdError):
    grpc_code = "PERMISSION_DENIED"
    http_status = 403
    error_type = "policy_denied"

    def __init__(self, message: str, *, rule_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.rule_ids = rule_ids


class NotFound(HandoffdError):
    grpc_code = "NOT_FOUND"
    http_status = 404
    error_type = "not_found_error"


class ResourceExhausted(HandoffdError):
    grpc_code = "RESOURCE_EXHAUSTED"
    http_status = 429
    error_type = "rate_limit_error"

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, rule_ids: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.rule_ids = rule_ids


class Unavailable(HandoffdError):
    grpc_code = "UNAVAILABLE"
    http_status = 503
    error_type = "service_unavailable"


class CloudUnavailable(Unavailable):
    """The cloud target could not be reached (network, breaker open, 5xx after retries)."""


class DeadlineExceeded(HandoffdError):
    grpc_code = "DEADLINE_EXCEEDED"
    http_status = 504
    error_type = "timeout"


class Cancelled(HandoffdError):
    grpc_code = "CANCELLED"
    http_status = 499
    error_type = "cancelled"


class ConfigError(HandoffdError):
    """A config, policy or model file is invalid. The message has file:line and the fix."""

    grpc_code = "FAILED_PRECONDITION"
    http_status = 500
    error_type = "configuration_error"


class ModelError(ConfigError):
    """The model folder is missing, incomplete, tampered with or of an unsupported layout."""


class CloudError(HandoffdError):
    """The cloud answered, but with an error that retrying will not fix."""

    grpc_code = "INTERNAL"
    http_status = 502
    error_type = "upstream_error"


class InternalError(HandoffdError):
    """A bug. The client sees a generic message; the detail is logged."""

    public = False
