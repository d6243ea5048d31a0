"""Build the configured backend: the one place that turns a Config into a Backend."""

from __future__ import annotations

from aigc_chat.backends import registry
from aigc_chat.backends.base import Backend, ProgressCallback
from aigc_chat.config import Config


def create_backend(config: Config, backend: str | None = None, model: str | None = None) -> Backend:
    name = registry.canonical(backend or config.backend)
    cls = registry.load_class(name)
    return cls(model if model is not None else (config.model or None), config.backend_options(name))


def load_backend(
    config: Config, progress: ProgressCallback | None = None,
    backend: str | None = None, model: str | None = None,
) -> Backend:
    instance = create_backend(config, backend, model)
    instance.load(progress)
    return instance
