"""biseq: bidirectional recurrent encoder-decoder (seq2seq) models that work, in Keras 3.

The Keras backend defaults to JAX; set ``KERAS_BACKEND`` before importing to choose another.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from biseq.config import Config, DataConfig, ModelConfig, TrainConfig  # noqa: E402
from biseq.model import Seq2Seq, seed_model  # noqa: E402

__all__ = ["Config", "DataConfig", "ModelConfig", "Seq2Seq", "TrainConfig", "seed_model"]
__version__ = "0.1.0"
