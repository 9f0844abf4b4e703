"""Where the decoder looked: the attention weights of one given output, for display.

Teacher forcing, step by step, eagerly (one pair: no compilation worth caching), through the same
``step`` the searches use; the attention layer's weights are recorded at each step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from keras import ops

from biseq.batching import decode_width
from biseq.search import start_decoding
from biseq.vocabulary import BOS_ID


class NoAttentionError(ValueError):
    """The model has no attention to show."""


def attention_weights(transducer, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Attention of ``transducer``'s left-to-right decoder while it reads ``target`` for ``source``.

    Args:
        transducer: a :class:`~biseq.transducer.Transducer` with attention (an ensemble: its first member).
        source: source tokens (e.g. letters); symbols the model never saw read as ``<unk>``.
        target: target tokens (e.g. phones).

    Returns:
        ``[len(target) + 1, len(source)]`` float32: row ``t`` is the distribution over source
        positions when the decoder emits target token ``t`` (the last row: ``</s>``). Rows sum to 1.

    Raises:
        NoAttentionError: the model was trained with ``attention = "none"``.
    """
    transducer = getattr(transducer, "members", [transducer])[0]
    seq2seq = transducer.model
    if not seq2seq.generation_directions:
        raise NoAttentionError(f"this model's decoder (objective {seq2seq.objective!r}) does not read the output "
                               "token by token: there is no attention per output token to show")
    decoder = seq2seq.step_decoder(0)
    attention = getattr(decoder, "attention", None)
    if attention is None:
        raise NoAttentionError("this model has no attention (trained with attention = 'none')")
    ids = transducer.encode_sources([tuple(source)])[0] or [0]
    targets = transducer.target_vocab.encode(list(target), warn=False)
    recorded: list = []
    original = attention.call

    def recording(*args, **kwargs):
        context, weights = original(*args, **kwargs)
        recorded.append(weights)
        return context, weights

    object.__setattr__(attention, "call", recording)  # past Keras's attribute tracking; undone below
    try:
        padded = np.zeros((1, decode_width(len(ids))), "int32")  # few shapes: eager ops compile once each
        padded[0, : len(ids)] = ids
        _, state, bundle = start_decoding(seq2seq, padded)
        rows = []
        for token in [BOS_ID, *targets]:
            recorded.clear()
            _, state = decoder.step(ops.convert_to_tensor(np.asarray([token], "int32")), state, bundle)
            rows.append(np.asarray(ops.convert_to_numpy(recorded[-1]), dtype=np.float32)[0, 0, : len(ids)])
    finally:
        object.__delattr__(attention, "call")
    return np.stack(rows)
