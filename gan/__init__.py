"""The GAN command: a small conditional DCGAN drawn as terminal art.

Nothing here imports torch or scikit-learn at import time: `aigc-chat gan sample` runs the
shipped generator with numpy alone so it starts in well under a second, and only training,
evaluation and the loaders for image folders pull in the heavy libraries.
"""

from __future__ import annotations

from pathlib import Path

#: The digits generator that ships inside the package, so sampling works without training.
DEFAULT_CHECKPOINT = Path(__file__).with_name("digits_generator.safetensors")
#: The reference classifier used for the quality figures of digits models.
DIGITS_CLASSIFIER = Path(__file__).with_name("digits_classifier.safetensors")

__all__ = ["DEFAULT_CHECKPOINT", "DIGITS_CLASSIFIER"]
