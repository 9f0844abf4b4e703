"""Objective ``ctc``: the seed's bidirectional decoder, non-autoregressive, trained with CTC.

The decoder reads no target tokens, so nothing leaks: its input is the encoder output, each
of the ``S`` source positions split into ``U`` (``model.upsampling``) frames by a learned
projection, so an output may be longer than its source (G2P: "x" -> K S). The seed's
``Bidirectional(LSTM(return_sequences=True))`` layers, initialised from the encoder's final
states as in the question, read the ``S U`` frames and give every frame a distribution over
the target symbols plus a blank (id 0, the padding id, which no target contains).
Connectionist temporal classification (Graves et al. 2006) sums over every alignment of the
target to the frames; decoding takes the best label of every frame, merges repeats and drops
blanks (greedy), or runs a prefix beam search (:class:`biseq.search.CTCSearch`). The
bidirectional LSTM + CTC G2P of Rao et al. (2015) is the model this follows.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from biseq.layers import NEG_INF, BidirectionalDecoder
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID

BLANK_ID = PAD_ID  # CTC's blank: the padding id, which no target holds


@keras.saving.register_keras_serializable(package="biseq")
class CTCDecoder(BidirectionalDecoder):
    """The seed's bidirectional decoder over the upsampled encoder outputs.

    1. ``frames = W memory`` ``[B, S, U E]``, reshaped to ``[B, S U, E]`` (``U`` = ``upsampling``);
    2. the seed's ``Bidirectional`` layers (initial states from the bridge), then attention to
       the encoder outputs when asked, then the output projection: logits ``[B, S U, V]``;
    3. frames of padding get a certain blank, so CTC over the padded width equals CTC over
       each row's own ``S U`` frames.

    Call arguments:
        memory: ``[B, S, M]`` encoder outputs.
        memory_mask: ``[B, S]`` bool, True at real source tokens.
        layer_states: one flat Keras-ordered list per layer (``[fwd_h, fwd_c, bwd_h, bwd_c]``).

    Returns:
        logits ``[B, S U, V]``; symbol 0 is the blank.
    """

    def __init__(self, *, upsampling: int, memory_dim: int, **kwargs) -> None:
        if upsampling < 1:
            raise ValueError(f"upsampling must be at least 1. Received: {upsampling}")
        if memory_dim < 1:
            raise ValueError(f"A CTC decoder reads the encoder outputs: memory_dim must be given. "
                             f"Received: {memory_dim}")
        self.upsampling = upsampling
        super().__init__(memory_dim=memory_dim, **kwargs)

    def input_layer(self) -> keras.layers.Layer:
        return keras.layers.Dense(self.upsampling * self.embedding_dim, name="upsampler")

    def build_input(self) -> None:
        self.embedding.build((None, None, self.memory_dim))

    def frame_mask(self, memory_mask):
        """``[B, S]`` -> ``[B, S U]``: True at the frames of real source tokens."""
        return ops.repeat(memory_mask, self.upsampling, axis=1)

    def call(self, memory, memory_mask, layer_states, training=False):
        batch, width = ops.shape(memory)[0], ops.shape(memory)[1]
        frames = ops.reshape(self.embedding(memory), (batch, width * self.upsampling, self.embedding_dim))
        mask = self.frame_mask(memory_mask)
        logits = self.read(self.dropout(frames, training=training), mask, layer_states, memory, memory_mask,
                           training=training)
        blank_only = ops.where(ops.equal(ops.arange(self.vocab_size), BLANK_ID), 0.0, NEG_INF)
        never = ops.where(ops.logical_or(ops.equal(ops.arange(self.vocab_size), BOS_ID),
                                         ops.equal(ops.arange(self.vocab_size), EOS_ID)), NEG_INF, 0.0)
        return ops.where(mask[:, :, None], logits + never, blank_only)

    def get_config(self) -> dict:
        return {**super().get_config(), "upsampling": self.upsampling}


@keras.saving.register_keras_serializable(package="biseq")
class CTCLoss(keras.losses.Loss):
    """CTC negative log-likelihood per target token.

    ``y_true [B, T]`` target ids (0-padded, no ``<s>``/``</s>``), ``y_pred [B, F, V]`` logits
    whose padding frames are certain blanks (:class:`CTCDecoder`). Each row's ``-log p(y | x)``
    is divided by its target length; rows are weighted by the sample weights ``[B]`` (0 for
    padding rows and targets no alignment fits, see :func:`alignable`).
    """

    def __init__(self, *, name: str = "ctc", **kwargs) -> None:
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        log_p, lengths = ctc_log_likelihood(y_true, y_pred)
        return -log_p / ops.cast(ops.maximum(lengths, 1), log_p.dtype)


def ctc_log_likelihood(targets, logits):
    """``(log p(target | source) [B], target lengths [B])``: every alignment summed.

    Args:
        targets: ``[B, T]`` 0-padded target ids (no ``<s>``/``</s>``).
        logits: ``[B, F, V]`` frame logits whose padding frames are certain blanks
            (:class:`CTCDecoder`), so every row may use the whole padded width.
    """
    targets = ops.cast(targets, "int32")
    lengths = ops.sum(ops.cast(ops.not_equal(targets, PAD_ID), "int32"), axis=1)
    frames = ops.full((ops.shape(logits)[0],), ops.shape(logits)[1], dtype="int32")
    return -ops.ctc_loss(targets, logits, lengths, frames, mask_index=BLANK_ID), lengths


def alignable(source: np.ndarray, targets: np.ndarray, *, upsampling: int) -> np.ndarray:
    """``[B]`` bool: rows whose target fits the frames CTC has for it.

    A target of ``L`` tokens with ``R`` adjacent repeats needs ``L + R`` frames (a blank
    between repeats); a source of ``S`` tokens gives ``S U``. Empty targets are not alignable
    (nothing to learn).

    Args:
        source: ``[B, S]`` 0-padded source ids.
        targets: ``[B, T]`` 0-padded target ids.
    """
    lengths = (targets != PAD_ID).sum(axis=1)
    repeats = ((targets[:, 1:] == targets[:, :-1]) & (targets[:, 1:] != PAD_ID)).sum(axis=1)
    return (lengths > 0) & (lengths + repeats <= upsampling * (source != PAD_ID).sum(axis=1))
