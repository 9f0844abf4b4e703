"""Decoding: batched greedy search as one compiled loop over the same layers as training.

The loop is ``keras.ops.scan`` inside a small ``keras.Model`` wrapper, so
``predict_on_batch`` compiles it once per input shape (``jax.jit`` on JAX); no
Python runs per token. The step state is the routed decoder state.
"""

from __future__ import annotations

import keras
from keras import ops

from biseq.model import Seq2Seq
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID

LEAK_MESSAGE = (
    "This model's decoder is bidirectional ({kind}) and was trained with teacher forcing: its backward "
    "half reads the target tokens after position t, so during training it can copy the answer, and "
    "when generating left to right those tokens do not exist yet. Decoding it autoregressively would "
    "give poor output. Use a unidirectional decoder (decoder='lstm' or 'gru'), or the legitimate "
    "bidirectional objectives 'twin' (left-to-right and right-to-left decoders rescoring each other) "
    "or 'masked' (non-autoregressive mask-predict)."
)


class LeakyDecodingError(RuntimeError):
    """Refusal to decode a teacher-forced bidirectional decoder step by step."""


def default_max_length(source_width: int) -> int:
    """Decoding steps for a source padded to ``source_width`` tokens."""
    return 2 * source_width + 5


class GreedySearch(keras.Model):
    """Greedy decoding of a :class:`~biseq.model.Seq2Seq`.

    Call arguments:
        source: ``[B, S]`` int source ids (0-padded).

    Returns:
        ``[B, L]`` int32 token ids, ``L = max_length or 2 S + 5``; after ``</s>`` all 0.
    """

    def __init__(self, seq2seq: Seq2Seq, *, max_length: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if seq2seq.bidirectional_decoder:
            raise LeakyDecodingError(LEAK_MESSAGE.format(kind=seq2seq.model_config.decoder))
        self.seq2seq = seq2seq
        self.max_length = max_length

    def call(self, source):
        model, decoder = self.seq2seq, self.seq2seq.decoder
        batch, width = ops.shape(source)[0], ops.shape(source)[1]
        encoded = model.encode(source)
        bundle = decoder.memory_bundle(encoded.memory, encoded.mask)
        state = decoder.initial_state(model.initial_decoder_states(encoded), batch)
        tokens = ops.full((batch,), BOS_ID, dtype="int32")
        done = ops.zeros((batch,), dtype="bool")

        def body(carry, _):
            tokens, state, done = carry
            logits, state = decoder.step(tokens, state, bundle)
            chosen = ops.cast(ops.argmax(logits, axis=-1), "int32")
            chosen = ops.where(done, PAD_ID, chosen)
            done = ops.logical_or(done, ops.equal(chosen, EOS_ID))
            return (chosen, state, done), chosen

        steps = self.max_length or default_max_length(int(width))
        _, out = ops.scan(body, (tokens, state, done), length=steps)
        return ops.transpose(out, (1, 0))
