"""Build the configured backend: the one place that turns a Config into a Backend."""

from __future__ import annotations

from aigc_chat.backends import registry
from aigc_chat.backends.base import Backend
from aigc_chat.chat_types import ProgressCallback
from aigc_chat.config import Config

# Backends whose model is a local file: `--model` may be a short name (aigc_chat.discovery).
LOCAL_BACKENDS = ("llama", "torch")


def resolve_model(config: Config, backend: str | None = None, model: str | None = None,
                  progress: ProgressCallback | None = None) -> str | None:
    """The model the backend should load: a path for a short name, as given otherwise.
    None means the bundled default (the backend finds it)."""
    name = registry.canonical(backend or config.backend)
    ref = model if model is not None else (config.model or None)
    if not ref or name not in LOCAL_BACKENDS:
        return ref
    from aigc_chat import discovery

    return str(discovery.resolve(ref, config, progress=progress))


def create_backend(config: Config, backend: str | None = None, model: str | None = None,
                   progress: ProgressCallback | None = None) -> Backend:
    name = registry.canonical(backend or config.backend)
    cls = registry.load_class(name)
    return cls(resolve_model(config, name, model, progress), config.backend_options(name))


def load_backend(
    config: Config, progress: ProgressCallback | None = None,
    backend: str | None = None, model: str | None = None,
) -> Backend:
    instance = create_backend(config, backend, model, progress)
    instance.load(progress)
    return instance


def model_settings_for(config: Config, backend: str | None = None, model: str | None = None) -> Config:
    """config with the generation values in effect for its model (aigc_chat.model_settings):
    the model's own and the `[models."GLOB"]` layers put under the flags. Reading the header
    is cheap; a model that cannot be found or read keeps the general values (loading it will
    say why)."""
    from aigc_chat import model_settings
    from aigc_chat.errors import AigcError

    name = registry.canonical(backend or config.backend)
    ref = model if model is not None else (config.model or None)
    info = None
    if name in LOCAL_BACKENDS and not ref:
        from aigc_chat.default_model import DEFAULT_NAME

        ref_names: str | None = DEFAULT_NAME
    else:
        ref_names = ref
    if name in LOCAL_BACKENDS:
        try:
            from aigc_chat.default_model import ensure_default_model
            from aigc_chat.gguf_info import read_gguf_info

            path = resolve_model(config, name, ref) or str(ensure_default_model())
            if path.lower().endswith(".gguf"):
                info = read_gguf_info(path, check_architecture=False)
        except (AigcError, OSError):
            info = None
    return model_settings.apply(config, ref_names, info)
