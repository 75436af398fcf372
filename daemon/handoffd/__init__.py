"""handoffd: a local-first LLM daemon with policy-governed, audited cloud handoff."""

__version__ = "0.1.0"
