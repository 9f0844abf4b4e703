"""biseq: bidirectional recurrent encoder-decoder (seq2seq) models that work, in Keras 3.

``biseq.load()`` opens the bundled English G2P system (or any system or model directory);
the modelling classes (``Seq2Seq``, ``Config``, ...) are imported on first use, so
``import biseq`` alone loads neither Keras nor JAX. The Keras backend defaults to JAX; set
``KERAS_BACKEND`` before the first use to choose another.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

_LAZY = {"Config": "biseq.config", "DataConfig": "biseq.config", "ModelConfig": "biseq.config",
         "TrainConfig": "biseq.config", "Seq2Seq": "biseq.model", "seed_model": "biseq.model",
         "load": "biseq.g2p.api", "G2P": "biseq.g2p.api"}

__all__ = sorted(_LAZY)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biseq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
