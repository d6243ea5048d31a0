"""Our own PyTorch GPT: model, checkpoint loaders, tokenizers, sampling and the backend.

Nothing here imports torch at package import time except the modules that need it; the
backend class (`backend.TorchBackend`) imports them in `load()`.
"""
