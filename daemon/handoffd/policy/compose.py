"""How policy parts combine: several files into one document, and an app section with the defaults.

The rules (also in :mod:`handoffd.schema.policy`):

* files, in order: mappings merge key by key; rule lists (``labels``, ``rate_limits``,
  ``budgets.limits``, ``tests``, an app's ``disable``) are concatenated; any other value from a
  later file replaces the earlier one;
* an app with the defaults: ``privacy``, ``routing`` and ``cloud`` merge key by key (the app wins
  where both set a value); rule lists are inherited minus ``disable`` plus the app's own;
  ``budgets.max_cost_per_request`` set in the app (even to null) replaces the defaults'.

Only keys a file actually wrote take part (``exclude_unset``), so a model default in an app
section never overrides a value the defaults set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from handoffd.schema.policy import (
    AppSection,
    BudgetLimit,
    Budgets,
    CloudAccess,
    LabelRule,
    MaxCostPerRequest,
    PolicyFile,
    RateLimitRule,
)
from handoffd.schema.privacy import PrivacyConfig
from handoffd.schema.routing import RoutingConfig

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str | int, ...]

#: keys whose lists are concatenated when files combine (anywhere in the document)
_RULE_LIST_KEYS = frozenset({"labels", "rate_limits", "limits", "tests", "disable"})


def _is_rule_list(path: Path_) -> bool:
    if not path or path[-1] not in _RULE_LIST_KEYS:
        return False
    parent = path[:-1]
    if path[-1] == "limits":
        return parent in (("budgets",),) or (
            len(parent) == 3 and parent[0] == "apps" and parent[2] == "budgets"
        )
    if path[-1] == "tests":
        return parent == ()
    if path[-1] == "disable":
        return len(parent) == 2 and parent[0] == "apps"
    return parent == () or (len(parent) == 2 and parent[0] == "apps")


def deep_merge(
    base: Mapping[str, Any],
    over: Mapping[str, Any],
    concat: Callable[[Path_], bool] = lambda _: False,
    _path: Path_ = (),
) -> dict[str, Any]:
    """``over`` merged into ``base``: mappings recursively, lists concatenated where ``concat``
    says so, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        path = (*_path, key)
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(old, value, concat, path)
        elif isinstance(old, list | tuple) and isinstance(value, list | tuple) and concat(path):
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


def merge_documents(documents: list[PolicyFile]) -> dict[str, Any]:
    """The plain data of several validated files combined in order (validate it again)."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged = deep_merge(merged, document.model_dump(exclude_unset=True), _is_rule_list)
    return merged


class SectionMergeError(Exception):
    """An app's section is invalid once merged with the defaults."""

    def __init__(self, section: str, error: ValidationError) -> None:
        super().__init__(f"{section}: {error}")
        self.section = section
        self.error = error


def _merge_model(model: type[M], base: M | None, over: M | None) -> M:
    if over is None:
        return base if base is not None else model()
    if base is None:
        return over
    data = deep_merge(base.model_dump(exclude_unset=True), over.model_dump(exclude_unset=True))
    return model.model_validate(data)


def _merge_raw(model: type[M], base: M | None, over: dict[str, Any] | None, section: str) -> M:
    """The defaults' ``section`` with an app's plain-data override merged in, validated."""
    if over is None:
        return base if base is not None else model()
    data = deep_merge(base.model_dump(exclude_unset=True) if base is not None else {}, over)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SectionMergeError(section, exc) from None


def _without(rules: tuple[Any, ...], disabled: frozenset[str]) -> tuple[Any, ...]:
    return tuple(rule for rule in rules if rule.id not in disabled)


class ResolvedSection:
    """The defaults with one app's section applied (plain values; see :class:`AppPolicy`)."""

    __slots__ = (
        "budgets",
        "cloud",
        "labels",
        "max_cost_per_request",
        "privacy",
        "rate_limits",
        "routing",
    )

    def __init__(self, defaults: PolicyFile, app: AppSection | None) -> None:
        """Raises :class:`SectionMergeError` if a merged privacy or routing section is invalid."""
        disabled = frozenset(app.disable) if app is not None else frozenset()
        own = app if app is not None else AppSection()
        base_budgets = defaults.budgets or Budgets()
        own_budgets = own.budgets or Budgets()
        self.privacy: PrivacyConfig = _merge_raw(
            PrivacyConfig, defaults.privacy, own.privacy, "privacy"
        )
        self.routing: RoutingConfig = _merge_raw(
            RoutingConfig, defaults.routing, own.routing, "routing"
        )
        self.cloud: CloudAccess = _merge_model(CloudAccess, defaults.cloud, own.cloud)
        self.labels: tuple[LabelRule, ...] = (*_without(defaults.labels, disabled), *own.labels)
        self.rate_limits: tuple[RateLimitRule, ...] = (
            *_without(defaults.rate_limits, disabled),
            *own.rate_limits,
        )
        self.budgets: tuple[BudgetLimit, ...] = (
            *_without(base_budgets.limits, disabled),
            *own_budgets.limits,
        )
        if own.budgets is not None and "max_cost_per_request" in own.budgets.model_fields_set:
            self.max_cost_per_request: MaxCostPerRequest | None = own_budgets.max_cost_per_request
        else:
            self.max_cost_per_request = base_budgets.max_cost_per_request


def default_rule_ids(defaults: PolicyFile) -> frozenset[str]:
    """Ids of the default rules an app may ``disable``."""
    budgets = defaults.budgets or Budgets()
    ids = [r.id for r in defaults.labels]
    ids += [r.id for r in defaults.rate_limits]
    ids += [r.id for r in budgets.limits]
    return frozenset(ids)
