"""Router evaluation (application layer): run the local model over an eval set with reference
answers, cache the evidence, and measure every routing strategy offline.

Modules: :mod:`.dataset` (format, loading), :mod:`.datagen` (the shipped set), :mod:`.grading`,
:mod:`.runner` and :mod:`.results` (local passes and their cache), :mod:`.scoring` (per-strategy
scores), :mod:`.metrics` (curves, APGR, CPT), :mod:`.fit` (the learned strategy's weights),
:mod:`.evaluate` / :mod:`.calibrate` (tune/test protocol), :mod:`.report` / :mod:`.plot`,
:mod:`.session` (model lifetime and cache location for the CLI).
"""
