"""Typed models of the configuration and policy files (foundation layer).

Each component's section of a file is modelled here so that the loaders (settings, policy) and
the components that use a section can both import it without importing each other. Every model
is frozen and rejects unknown keys (inherit from :class:`handoffd.schema.base.Frozen`).
"""
