from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class HandoffPreference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HANDOFF_PREFERENCE_UNSPECIFIED: _ClassVar[HandoffPreference]
    AUTO: _ClassVar[HandoffPreference]
    LOCAL_ONLY: _ClassVar[HandoffPreference]
    PREFER_CLOUD: _ClassVar[HandoffPreference]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    INTERACTIVE: _ClassVar[Priority]
    BACKGROUND: _ClassVar[Priority]

class Route(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_UNSPECIFIED: _ClassVar[Route]
    LOCAL: _ClassVar[Route]
    CLOUD: _ClassVar[Route]
    LOCAL_FALLBACK: _ClassVar[Route]
    DENIED: _ClassVar[Route]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    STOP: _ClassVar[FinishReason]
    LENGTH: _ClassVar[FinishReason]
    HANDOFF: _ClassVar[FinishReason]
    CANCELLED: _ClassVar[FinishReason]
    ERROR: _ClassVar[FinishReason]
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
HANDOFF_PREFERENCE_UNSPECIFIED: HandoffPreference
AUTO: HandoffPreference
LOCAL_ONLY: HandoffPreference
PREFER_CLOUD: HandoffPreference
PRIORITY_UNSPECIFIED: Priority
INTERACTIVE: Priority
BACKGROUND: Priority
ROUTE_UNSPECIFIED: Route
LOCAL: Route
CLOUD: Route
LOCAL_FALLBACK: Route
DENIED: Route
FINISH_REASON_UNSPECIFIED: FinishReason
STOP: FinishReason
LENGTH: FinishReason
HANDOFF: FinishReason
CANCELLED: FinishReason
ERROR: FinishReason

class Message(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[str] = ...) -> None: ...

class GenerationParams(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("messages", "params", "handoff", "labels", "client_request_id", "priority")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    params: GenerationParams
    handoff: HandoffPreference
    labels: _containers.RepeatedScalarFieldContainer[str]
    client_request_id: str
    priority: Priority
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., params: _Optional[_Union[GenerationParams, _Mapping]] = ..., handoff: _Optional[_Union[HandoffPreference, str]] = ..., labels: _Optional[_Iterable[str]] = ..., client_request_id: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("rule_id", "message")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    message: str
    def __init__(self, rule_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("route", "strategy", "reasons", "scores", "cloud_target", "policy_hash")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    CLOUD_TARGET_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    route: Route
    strategy: str
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    scores: _containers.ScalarMap[str, float]
    cloud_target: str
    policy_hash: str
    def __init__(self, route: _Optional[_Union[Route, str]] = ..., strategy: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., scores: _Optional[_Mapping[str, float]] = ..., cloud_target: _Optional[str] = ..., policy_hash: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_ms", "ttft_ms", "total_ms", "decode_tokens_per_s")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    ttft_ms: float
    total_ms: float
    decode_tokens_per_s: float
    def __init__(self, queue_ms: _Optional[float] = ..., ttft_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., decode_tokens_per_s: _Optional[float] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("text", "route", "decision", "usage", "cost_usd", "timing", "ledger_id", "model", "finish_reason", "client_request_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    LEDGER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    route: Route
    decision: Decision
    usage: Usage
    cost_usd: float
    timing: Timing
    ledger_id: str
    model: str
    finish_reason: FinishReason
    client_request_id: str
    def __init__(self, text: _Optional[str] = ..., route: _Optional[_Union[Route, str]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., ledger_id: _Optional[str] = ..., model: _Optional[str] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., client_request_id: _Optional[str] = ...) -> None: ...

class ChatEvent(_message.Message):
    __slots__ = ("decision", "delta", "final")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    delta: TokenDelta
    final: ChatResponse
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., delta: _Optional[_Union[TokenDelta, _Mapping]] = ..., final: _Optional[_Union[ChatResponse, _Mapping]] = ...) -> None: ...

class TokenDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("decision", "prompt_tokens", "redacted_preview", "entities")
    class EntitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DECISION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REDACTED_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    prompt_tokens: int
    redacted_preview: str
    entities: _containers.ScalarMap[str, int]
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., prompt_tokens: _Optional[int] = ..., redacted_preview: _Optional[str] = ..., entities: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("version", "ready", "model", "execution_provider", "uptime_s", "active_requests", "queued_requests", "policy_hash", "cloud_targets")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    CLOUD_TARGETS_FIELD_NUMBER: _ClassVar[int]
    version: str
    ready: bool
    model: str
    execution_provider: str
    uptime_s: float
    active_requests: int
    queued_requests: int
    policy_hash: str
    cloud_targets: _containers.RepeatedCompositeFieldContainer[CloudTargetStatus]
    def __init__(self, version: _Optional[str] = ..., ready: _Optional[bool] = ..., model: _Optional[str] = ..., execution_provider: _Optional[str] = ..., uptime_s: _Optional[float] = ..., active_requests: _Optional[int] = ..., queued_requests: _Optional[int] = ..., policy_hash: _Optional[str] = ..., cloud_targets: _Optional[_Iterable[_Union[CloudTargetStatus, _Mapping]]] = ...) -> None: ...

class CloudTargetStatus(_message.Message):
    __slots__ = ("name", "model", "breaker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    breaker: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., breaker: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "layout", "precision", "context_window", "execution_provider", "path", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    layout: str
    precision: str
    context_window: int
    execution_provider: str
    path: str
    source: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., layout: _Optional[str] = ..., precision: _Optional[str] = ..., context_window: _Optional[int] = ..., execution_provider: _Optional[str] = ..., path: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
