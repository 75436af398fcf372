from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEntry(_message.Message):
    __slots__ = ("id", "seq", "time", "kind", "intent_id", "app", "client_request_id", "route", "strategy", "scores", "rule_ids", "policy_hash", "redaction", "prompt_hmac", "redacted_prompt", "cloud_target", "cloud_model", "tokens_in", "tokens_out", "estimated_cost_usd", "settled_cost_usd", "latency_ms", "outcome", "error_class", "prev_hash", "entry_hash")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class RedactionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RULE_IDS_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    REDACTION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_HMAC_FIELD_NUMBER: _ClassVar[int]
    REDACTED_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CLOUD_TARGET_FIELD_NUMBER: _ClassVar[int]
    CLOUD_MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_IN_FIELD_NUMBER: _ClassVar[int]
    TOKENS_OUT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SETTLED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HASH_FIELD_NUMBER: _ClassVar[int]
    id: str
    seq: int
    time: str
    kind: str
    intent_id: str
    app: str
    client_request_id: str
    route: str
    strategy: str
    scores: _containers.ScalarMap[str, float]
    rule_ids: _containers.RepeatedScalarFieldContainer[str]
    policy_hash: str
    redaction: _containers.ScalarMap[str, int]
    prompt_hmac: str
    redacted_prompt: str
    cloud_target: str
    cloud_model: str
    tokens_in: int
    tokens_out: int
    estimated_cost_usd: float
    settled_cost_usd: float
    latency_ms: float
    outcome: str
    error_class: str
    prev_hash: str
    entry_hash: str
    def __init__(self, id: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[str] = ..., kind: _Optional[str] = ..., intent_id: _Optional[str] = ..., app: _Optional[str] = ..., client_request_id: _Optional[str] = ..., route: _Optional[str] = ..., strategy: _Optional[str] = ..., scores: _Optional[_Mapping[str, float]] = ..., rule_ids: _Optional[_Iterable[str]] = ..., policy_hash: _Optional[str] = ..., redaction: _Optional[_Mapping[str, int]] = ..., prompt_hmac: _Optional[str] = ..., redacted_prompt: _Optional[str] = ..., cloud_target: _Optional[str] = ..., cloud_model: _Optional[str] = ..., tokens_in: _Optional[int] = ..., tokens_out: _Optional[int] = ..., estimated_cost_usd: _Optional[float] = ..., settled_cost_usd: _Optional[float] = ..., latency_ms: _Optional[float] = ..., outcome: _Optional[str] = ..., error_class: _Optional[str] = ..., prev_hash: _Optional[str] = ..., entry_hash: _Optional[str] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("app", "since", "until", "route", "outcome", "rule_id", "kind", "page_size", "page_token")
    APP_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app: str
    since: str
    until: str
    route: str
    outcome: str
    rule_id: str
    kind: str
    page_size: int
    page_token: str
    def __init__(self, app: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., route: _Optional[str] = ..., outcome: _Optional[str] = ..., rule_id: _Optional[str] = ..., kind: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("checkpoints_json", "public_key")
    CHECKPOINTS_JSON_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    checkpoints_json: _containers.RepeatedScalarFieldContainer[str]
    public_key: bytes
    def __init__(self, checkpoints_json: _Optional[_Iterable[str]] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("ok", "entries_checked", "head_seq", "head_hash", "checkpoints_checked", "problems", "first_bad_seq", "first_bad_id", "summary")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    checkpoints_checked: int
    problems: _containers.RepeatedScalarFieldContainer[str]
    first_bad_seq: int
    first_bad_id: str
    summary: str
    def __init__(self, ok: _Optional[bool] = ..., entries_checked: _Optional[int] = ..., head_seq: _Optional[int] = ..., head_hash: _Optional[str] = ..., checkpoints_checked: _Optional[int] = ..., problems: _Optional[_Iterable[str]] = ..., first_bad_seq: _Optional[int] = ..., first_bad_id: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LedgerCheckpoint(_message.Message):
    __slots__ = ("ledger_uid", "entry_count", "head_hash", "time", "kind", "public_key", "signature", "checkpoint_json")
    LEDGER_UID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    ledger_uid: str
    entry_count: int
    head_hash: str
    time: str
    kind: str
    public_key: bytes
    signature: bytes
    checkpoint_json: str
    def __init__(self, ledger_uid: _Optional[str] = ..., entry_count: _Optional[int] = ..., head_hash: _Optional[str] = ..., time: _Optional[str] = ..., kind: _Optional[str] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., checkpoint_json: _Optional[str] = ...) -> None: ...
