"""The policy engine: what may leave the device, what it may cost and how often.

What the rest of the daemon uses:

* :func:`load_policy` / :class:`PolicyHolder` (hot reload) give a :class:`LoadedPolicy`;
  ``policy.for_app(app)`` is that app's merged :class:`AppPolicy`.
* :class:`PolicyEvaluator` turns :class:`RequestFacts` into a :class:`PolicyVerdict` (pure, fast).
* :class:`BudgetLedger` reserves the worst case before a cloud call and settles after.
* :class:`RateLimiter` admits requests per app and per cloud target (GCRA, concurrency).
* :class:`CloudAdmission` wraps a cloud call in both: ``async with admission.hold(...)``.
"""

from handoffd.policy.admission import CloudAdmission, CloudHold
from handoffd.policy.app_policy import DEFAULTS, AppPolicy, LoadedPolicy
from handoffd.policy.budget import BudgetLedger, BudgetReservation
from handoffd.policy.cases import CaseResult, run_cases, summarize
from handoffd.policy.evaluator import PolicyEvaluator
from handoffd.policy.loader import load_policy, policy_from_text
from handoffd.policy.ratelimit import RateLimiter, RateTicket
from handoffd.policy.reload import PolicyHolder, ReloadOutcome, ReloadStats
from handoffd.policy.verdict import EntitySummary, Outcome, PolicyVerdict, RequestFacts

__all__ = [
    "DEFAULTS",
    "AppPolicy",
    "BudgetLedger",
    "BudgetReservation",
    "CaseResult",
    "CloudAdmission",
    "CloudHold",
    "EntitySummary",
    "LoadedPolicy",
    "Outcome",
    "PolicyEvaluator",
    "PolicyHolder",
    "PolicyVerdict",
    "RateLimiter",
    "RateTicket",
    "ReloadOutcome",
    "ReloadStats",
    "RequestFacts",
    "load_policy",
    "policy_from_text",
    "run_cases",
    "summarize",
]
