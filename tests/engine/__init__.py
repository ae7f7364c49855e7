"""Unit tests of the engine core: topics, router, registry, settings, import boundaries."""
