"""Decoding: batched greedy search as one compiled loop over the same layers as training.

The loop is a ``keras.ops.while_loop`` (it stops when every row is done) inside a small
``keras.Model`` wrapper (:class:`SearchModel`), whose ``run`` compiles it once per input shape
(``jax.jit`` on JAX); no Python runs per token. The step state is the routed decoder state.
"""

from __future__ import annotations

import keras
from keras import ops

from biseq.batching import default_max_length as default_max_length  # re-exported: it lived here
from biseq.ctc import BLANK_ID, ctc_log_likelihood
from biseq.model import Seq2Seq
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID

LEAK_MESSAGE = (
    "This model's decoder is bidirectional ({kind}) and was trained with teacher forcing: its backward "
    "half reads the target tokens after position t, so during training it can copy the answer, and "
    "when generating left to right those tokens do not exist yet. Decoding it autoregressively would "
    "give poor output. Use a unidirectional decoder (decoder='lstm' or 'gru'), or the legitimate "
    "bidirectional objectives 'twin' (left-to-right and right-to-left decoders rescoring each other), "
    "'masked' (non-autoregressive mask-predict) or 'ctc' (non-autoregressive, over the upsampled source)."
)


class LeakyDecodingError(RuntimeError):
    """Refusal to decode a teacher-forced bidirectional decoder step by step."""


NEG = -1e9  # a "log-probability" for impossible hypotheses (finite, so no NaN in arithmetic)


def never_generated(vocab_size: int, *, pad_id: int = PAD_ID, bos_id: int = BOS_ID):
    """``[V]`` bias: ``NEG`` at ``<pad>`` and ``<s>`` (never outputs), 0 elsewhere."""
    ids = ops.arange(vocab_size)
    return ops.where(ops.logical_or(ops.equal(ids, pad_id), ops.equal(ids, bos_id)), NEG, 0.0)


def check_generates(seq2seq: Seq2Seq, direction: int) -> None:
    """Raise :class:`LeakyDecodingError` unless ``seq2seq`` can generate in ``direction``."""
    if seq2seq.objective == "seed":
        raise LeakyDecodingError(LEAK_MESSAGE.format(kind=seq2seq.model_config.decoder))
    if seq2seq.objective == "masked":
        raise LeakyDecodingError("A 'masked' decoder is non-autoregressive: decode it with mask-predict.")
    if seq2seq.objective == "ctc":
        raise LeakyDecodingError("A 'ctc' decoder is non-autoregressive: decode it with CTCSearch.")
    if direction not in seq2seq.generation_directions:
        raise ValueError(f"direction must be one of {seq2seq.generation_directions}. Received: {direction}")


def require_objective(seq2seq: Seq2Seq, objective: str, user: str) -> None:
    """Raise ``ValueError`` unless ``seq2seq`` was trained with ``objective`` (``user`` names the caller)."""
    if seq2seq.objective != objective:
        raise ValueError(f"{user} needs a {objective!r} model. Received objective={seq2seq.objective!r}")


def start_decoding(seq2seq: Seq2Seq, source, *, direction: int = 0, repeat: int = 1, rows=None):
    """Encode ``source [B, S]`` and return ``(decoder, state, bundle)`` for step-wise decoding.

    With ``repeat = K`` every row of the state and memory is repeated ``K`` times
    (adjacent), for beam search: tensors become ``[B*K, ...]``. With ``rows [N]`` (int
    indices into the ``B`` sources) they become ``[N, ...]``: each source is encoded once
    however many outputs read it.
    """
    decoder = seq2seq.step_decoder(direction)
    encoded = seq2seq.encode(source)

    def tile(x):
        if rows is not None:
            return ops.take(x, rows, axis=0)
        return x if repeat == 1 else ops.repeat(x, repeat, axis=0)

    count = ops.shape(rows)[0] if rows is not None else ops.shape(source)[0] * repeat
    bundle = decoder.memory_bundle(tile(encoded.memory), tile(encoded.mask))
    layer_states = seq2seq.direction_states(seq2seq.initial_decoder_states(encoded), direction)
    state = decoder.initial_state(keras.tree.map_structure(tile, layer_states), count)
    return decoder, state, bundle


class SearchModel(keras.Model):
    """A model around a built :class:`~biseq.model.Seq2Seq` that owns no weights: built from the start.

    Keras's ``predict_on_batch`` builds an unbuilt model by calling it once eagerly (in a
    ``StatelessScope``): a whole search run op by op, ~140 small compilations (~3 s) at the first
    call of every search. These models have nothing to build.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.built = True
        self._fast = None  # (trainable, non-trainable variables, jitted stateless call), on first run

    def run(self, inputs):
        """``predict_on_batch(inputs)`` without Keras's bookkeeping around each call.

        On JAX, ``predict_on_batch`` walks the layer tree for the variables and assigns them back
        after every call (a warm unknown word: 3.71 -> 3.43 s, whole process). Here the variable list
        is taken once and ``stateless_call`` is compiled once per input shape (``jax.jit``); the
        values are read at every call, so a model still training decodes with its current weights.
        Other backends use ``predict_on_batch``. Returns the outputs as backend arrays.
        """
        if keras.backend.backend() != "jax":
            return self.predict_on_batch(inputs)
        if self._fast is None:
            import jax

            def call(trainable, non_trainable, x):
                return self.stateless_call(trainable, non_trainable, x)[0]

            self._fast = (list(self.trainable_variables), list(self.non_trainable_variables), jax.jit(call))
        trainable, non_trainable, jitted = self._fast
        return jitted([v.value for v in trainable], [v.value for v in non_trainable], inputs)


class GreedySearch(SearchModel):
    """Greedy decoding of a :class:`~biseq.model.Seq2Seq`.

    Call arguments:
        source: ``[B, S]`` int source ids (0-padded).

    Returns:
        ``[B, L]`` int32 token ids, ``L = max_length or 2 S + 5``; after ``</s>`` all 0.
    """

    def __init__(self, seq2seq: Seq2Seq, *, max_length: int = 0, direction: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        check_generates(seq2seq, direction)
        self.seq2seq, self.max_length, self.direction = seq2seq, max_length, direction

    def call(self, source):
        batch, width = ops.shape(source)[0], ops.shape(source)[1]
        decoder, state, bundle = start_decoding(self.seq2seq, source, direction=self.direction)
        tokens = ops.full((batch,), BOS_ID, dtype="int32")
        done = ops.zeros((batch,), dtype="bool")
        never = never_generated(self.seq2seq.decoder.vocab_size)

        steps = self.max_length or default_max_length(int(width))

        def running(t, tokens, state, done, out):
            return ops.logical_not(ops.all(done))

        def body(t, tokens, state, done, out):
            logits, state = decoder.step(tokens, state, bundle)
            chosen = ops.cast(ops.argmax(logits + never, axis=-1), "int32")
            chosen = ops.where(done, PAD_ID, chosen)
            done = ops.logical_or(done, ops.equal(chosen, EOS_ID))
            return t + 1, chosen, state, done, ops.slice_update(out, (t, 0), chosen[None, :])

        # a while loop: it stops once every row has ended (a scan would run all ``steps``)
        out = ops.zeros((steps, batch), dtype="int32")
        out = ops.while_loop(running, body, (ops.convert_to_tensor(0, "int32"), tokens, state, done, out),
                             maximum_iterations=steps)[-1]
        return ops.transpose(out, (1, 0))




def _reorder(tree, index):
    """Gather every tensor of a state structure along axis 0 (the flat batch x beam axis)."""
    return keras.tree.map_structure(lambda x: ops.take(x, index, axis=0), tree)


def beam_search(step_fn, state, *, batch_size: int, beam_size: int, max_length: int, vocab_size: int,
                length_penalty: float = 1.0, bos_id: int = BOS_ID, eos_id: int = EOS_ID, settle: int = 0):
    """Batched beam search with length normalisation, as one ``keras.ops.while_loop``.

    Args:
        step_fn: ``(tokens [N], state) -> (log_probs [N, V], state)`` with ``N = batch_size * beam_size``.
        state: the initial state, every tensor ``[N, ...]`` (each batch row repeated ``beam_size`` times).
        length_penalty: ``alpha``; a finished hypothesis scores ``log p / length ** alpha``
            (length counts ``</s>``); 0 ranks by ``log p``.
        settle: how many of each row's best hypotheses must be final before the loop may stop
            (``1 <= settle <= beam_size``; 0: all ``K``). With ``n`` the ``n`` best are exactly those of
            the full search, the others may differ: a caller keeping one answer stops sooner.

    Returns:
        ``(sequences [B, K, L], scores [B, K], log_probs [B, K])``: the ``K = beam_size`` best
        hypotheses per row, best first, padded with 0 after ``</s>``; unused slots score ``<= -1e8``.

    Algorithm, per step ``t``:

    1. every alive hypothesis is extended by every token but ``<pad>`` and ``<s>``: ``[B, K * V]``
       candidate log-probabilities;
    2. the ``2K`` best candidates are taken, so ``K`` alive ones remain even if ``K`` of them end;
    3. candidates ending in ``</s>`` among the best ``K`` join the finished pool (``K`` best kept,
       never dropped for an alive one; as in fairseq, so beam size 1 is exactly greedy); the
       candidates not ending, best ``K``, stay alive;
    4. the state (and so the attention context) is reordered by the chosen beams explicitly.

    The loop stops once no alive hypothesis can enter any row's ``K`` best (with ``settle`` ``n``:
    its ``n`` best) any more (its log p only falls, so its best possible score is its current log p
    at ``max_length``), or after ``max_length`` steps: the result is that of running all steps. Then
    the alive hypotheses join the finished pool too, so a row always has output.
    """
    b, k, v, length = batch_size, beam_size, vocab_size, max_length
    settle = settle or k
    if not 1 <= settle <= k:
        raise ValueError(f"settle must be between 1 and the beam size {k}. Received: {settle}")
    positions = ops.arange(length, dtype="int32")
    offsets = (ops.arange(b, dtype="int32") * k)[:, None]  # [B, 1]
    alive_seq = ops.zeros((b, k, length), dtype="int32")
    alive_logp = ops.concatenate([ops.zeros((b, 1)), ops.full((b, k - 1), NEG)], axis=1)
    fin_seq = ops.zeros((b, k, length), dtype="int32")
    fin_score = ops.full((b, k), NEG)
    fin_logp = ops.full((b, k), NEG)
    tokens = ops.full((b * k,), bos_id, dtype="int32")
    never = never_generated(v, bos_id=bos_id)

    # An alive hypothesis can at best end at max_length with its current log p (it only falls), so a
    # row is settled once its K-th (settle-th) finished score reaches that bound: stopping then loses
    # nothing (of its settle best).
    best_denominator = max(float(length) ** length_penalty, 1.0)

    def running(t, tokens, state, alive_seq, alive_logp, fin_seq, fin_score, fin_logp):
        bound = ops.max(alive_logp, axis=1) / best_denominator
        return ops.logical_not(ops.all(fin_score[:, settle - 1] >= bound))  # fin_score: best first

    def body(t, tokens, state, alive_seq, alive_logp, fin_seq, fin_score, fin_logp):
        log_probs, state = step_fn(tokens, state)
        log_probs = ops.cast(log_probs, "float32") + never
        cand = alive_logp[:, :, None] + ops.reshape(log_probs, (b, k, v))
        top_logp, top_index = ops.top_k(ops.reshape(cand, (b, k * v)), 2 * k)  # [B, 2K]
        top_beam, top_token = top_index // v, ops.cast(top_index % v, "int32")
        top_seq = ops.take_along_axis(alive_seq, top_beam[:, :, None], axis=1)  # [B, 2K, L]
        top_seq = ops.where(positions[None, None, :] == t, top_token[:, :, None], top_seq)
        ended = ops.equal(top_token, eos_id)
        finalize = ops.logical_and(ended, ops.arange(2 * k)[None, :] < k)  # as fairseq: from the best K only
        # finished pool: old K + newly ended candidates, best K by normalised score
        norm = ops.power(ops.cast(t + 1, "float32"), length_penalty)
        new_score = ops.where(finalize, top_logp / norm, NEG)
        pool_score = ops.concatenate([fin_score, new_score], axis=1)
        pool_logp = ops.concatenate([fin_logp, ops.where(finalize, top_logp, NEG)], axis=1)
        pool_seq = ops.concatenate([fin_seq, top_seq], axis=1)
        fin_score, keep = ops.top_k(pool_score, k)
        fin_logp = ops.take_along_axis(pool_logp, keep, axis=1)
        fin_seq = ops.take_along_axis(pool_seq, keep[:, :, None], axis=1)
        # alive: best K candidates that did not end
        alive_logp, keep = ops.top_k(ops.where(ended, NEG, top_logp), k)
        alive_seq = ops.take_along_axis(top_seq, keep[:, :, None], axis=1)
        beam = ops.take_along_axis(top_beam, keep, axis=1)
        tokens = ops.reshape(ops.take_along_axis(top_token, keep, axis=1), (b * k,))
        state = _reorder(state, ops.reshape(beam + offsets, (b * k,)))
        return t + 1, tokens, state, alive_seq, alive_logp, fin_seq, fin_score, fin_logp

    carry = (ops.convert_to_tensor(0, "int32"), tokens, state, alive_seq, alive_logp, fin_seq, fin_score, fin_logp)
    carry = ops.while_loop(running, body, carry, maximum_iterations=length)
    _, _, _, alive_seq, alive_logp, fin_seq, fin_score, fin_logp = carry
    # unfinished hypotheses compete too (scored at full length), so nothing is lost
    alive_score = ops.where(alive_logp > NEG / 2, alive_logp / (float(length) ** length_penalty), NEG)
    pool_score = ops.concatenate([fin_score, alive_score], axis=1)
    scores, keep = ops.top_k(pool_score, k)
    seqs = ops.take_along_axis(ops.concatenate([fin_seq, alive_seq], axis=1), keep[:, :, None], axis=1)
    logps = ops.take_along_axis(ops.concatenate([fin_logp, alive_logp], axis=1), keep, axis=1)
    return seqs, scores, logps


class BeamSearch(SearchModel):
    """Beam search over a :class:`~biseq.model.Seq2Seq` with a unidirectional decoder.

    Call arguments:
        source: ``[B, S]`` int source ids (0-padded).

    Returns:
        ``(sequences [B, K, L], scores [B, K], log_probs [B, K])``, best first (see :func:`beam_search`).
    """

    def __init__(self, seq2seq: Seq2Seq, *, beam_size: int = 5, length_penalty: float = 1.0,
                 max_length: int = 0, direction: int = 0, settle: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        check_generates(seq2seq, direction)
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1. Received: {beam_size}")
        self.seq2seq, self.beam_size, self.direction = seq2seq, beam_size, direction
        self.length_penalty, self.max_length, self.settle = length_penalty, max_length, settle

    def call(self, source):
        k = self.beam_size
        batch, width = ops.shape(source)[0], ops.shape(source)[1]
        decoder, state, bundle = start_decoding(self.seq2seq, source, direction=self.direction, repeat=k)

        def step(tokens, state):
            logits, state = decoder.step(tokens, state, bundle)
            return ops.log_softmax(logits, axis=-1), state

        return beam_search(step, state, batch_size=batch, beam_size=k,
                           max_length=self.max_length or default_max_length(int(width)),
                           vocab_size=decoder.vocab_size, length_penalty=self.length_penalty, settle=self.settle)


def picked_log_probs(logits, target):
    """``log p`` of each ``target [B, T]`` id under ``logits [B, T, V]``: ``[B, T]``."""
    logp = ops.log_softmax(logits, axis=-1)
    return ops.take_along_axis(logp, ops.cast(target, "int32")[..., None], axis=-1)[..., 0]


class OutputScorer(SearchModel):
    """Teacher-forced log-probability of each given output token under an autoregressive model.

    A ``twin`` model is scored by its left-to-right decoder (the direction ensembles decode in).

    Call arguments:
        inputs: ``(source [U, S], source_row [B], decoder_input [B, T], decoder_target [B, T])``:
            output ``b`` is read for source ``source_row[b]``; each source is encoded once.

    Returns:
        ``log p [B, T]`` of each ``decoder_target`` token (``</s>`` included); the caller masks padding.
    """

    def __init__(self, seq2seq: Seq2Seq, **kwargs) -> None:
        super().__init__(**kwargs)
        check_generates(seq2seq, 0)
        self.seq2seq = seq2seq

    def call(self, inputs):
        source, source_row, decoder_input, decoder_target = inputs
        decoder, state, bundle = start_decoding(self.seq2seq, source, rows=source_row)
        return picked_log_probs(decoder(decoder_input, state, bundle), decoder_target)


class TwinScorer(SearchModel):
    """Teacher-forced log-probabilities of given outputs under both decoders of a ``twin`` model.

    Call arguments:
        inputs: ``(source [B, S], left_to_right_input [B, T], left_to_right_target [B, T],
            right_to_left_input [B, T], right_to_left_target [B, T], weight [B, T])``.

    Returns:
        ``(log p left to right [B], log p right to left [B])``, summed over real tokens (``</s>`` included).
    """

    def __init__(self, seq2seq: Seq2Seq, **kwargs) -> None:
        super().__init__(**kwargs)
        require_objective(seq2seq, "twin", "TwinScorer")
        self.seq2seq = seq2seq

    def call(self, inputs):
        source, fwd_in, fwd_tgt, bwd_in, bwd_tgt, weight = inputs
        fwd_logits, bwd_logits = self.seq2seq((source, fwd_in, bwd_in))

        def total(logits, target):
            return ops.sum(picked_log_probs(logits, target) * weight, axis=-1)

        return total(fwd_logits, fwd_tgt), total(bwd_logits, bwd_tgt)


class MaskPredict(SearchModel):
    """Non-autoregressive decoding of a ``masked`` model by iterative mask-predict.

    1. predict the target length from the encoder; keep the ``length_candidates`` most likely;
    2. per candidate length ``l``, start from ``l`` ``<mask>`` tokens;
    3. ``iterations`` times: predict every masked position at once (the seed's bidirectional
       decoder reads the whole sequence), then re-mask the ``l (T - 1 - i) / T`` least
       confident positions;
    4. keep the candidate with the highest mean token log-probability plus its length's log-probability.

    Call arguments:
        source: ``[B, S]`` int source ids.

    Returns:
        ``(tokens [B, W], scores [B])``: ``W = max_length or 2 S + 5``, 0-padded after the length.
    """

    def __init__(self, seq2seq: Seq2Seq, *, mask_id: int, iterations: int = 4, length_candidates: int = 3,
                 max_length: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        require_objective(seq2seq, "masked", "MaskPredict")
        if iterations < 1 or length_candidates < 1:
            raise ValueError("iterations and length_candidates must be at least 1. "
                             f"Received: {iterations}, {length_candidates}")
        self.seq2seq, self.mask_id = seq2seq, mask_id
        self.iterations, self.length_candidates, self.max_length = iterations, length_candidates, max_length

    def call(self, source):
        from biseq.model import LENGTH_CLASSES

        model, c, steps = self.seq2seq, self.length_candidates, self.iterations
        batch, width = ops.shape(source)[0], ops.shape(source)[1]
        out_width = min(self.max_length or default_max_length(int(width)), LENGTH_CLASSES - 1)
        encoded = model.encode(source)
        classes = ops.arange(LENGTH_CLASSES)
        length_logits = ops.where(((classes < 1) | (classes > out_width))[None, :], NEG,
                                  model.predict_length(encoded))
        length_logp, lengths = ops.top_k(ops.log_softmax(length_logits, axis=-1), c)  # [B, C] each
        lengths = ops.reshape(ops.cast(lengths, "int32"), (-1,))  # [B*C]
        layer_states = keras.tree.map_structure(lambda x: ops.repeat(x, c, axis=0),
                                                model.initial_decoder_states(encoded))
        memory, memory_mask = ops.repeat(encoded.memory, c, axis=0), ops.repeat(encoded.mask, c, axis=0)
        real = ops.arange(out_width, dtype="int32")[None, :] < lengths[:, None]  # [B*C, W]
        tokens = ops.where(real, self.mask_id, PAD_ID)
        log_probs = ops.zeros(ops.shape(tokens))
        vocab = model.decoder.vocab_size
        forbidden = ops.where(ops.arange(vocab) <= max(self.mask_id, EOS_ID + 1), NEG, 0.0)  # specials, <mask>

        def body(i, carry):
            tokens, log_probs = carry
            logp = ops.log_softmax(model.decoder(tokens, layer_states, memory, memory_mask), axis=-1) + forbidden
            chosen = ops.cast(ops.argmax(logp, axis=-1), "int32")
            chosen_logp = ops.max(logp, axis=-1)
            masked = ops.equal(tokens, self.mask_id)
            tokens = ops.where(masked, chosen, tokens)
            log_probs = ops.where(masked, chosen_logp, log_probs)
            remask_count = (lengths * (steps - 1 - i)) // steps  # [B*C]
            confidence = ops.where(real, log_probs, 1e9)
            rank = ops.argsort(ops.argsort(confidence, axis=-1), axis=-1)
            remask = ops.logical_and(rank < remask_count[:, None], real)
            return ops.where(remask, self.mask_id, tokens), log_probs

        tokens, log_probs = ops.fori_loop(0, steps, body, (tokens, log_probs))
        mean_logp = ops.sum(ops.where(real, log_probs, 0.0), axis=-1) / ops.cast(lengths, "float32")
        # the length's own log-probability too: a wrong length's few tokens can be as confident as the right ones
        mean_logp = ops.reshape(mean_logp, (batch, c)) + length_logp
        best = ops.argmax(mean_logp, axis=-1)
        tokens = ops.reshape(tokens, (batch, c, out_width))
        chosen = ops.take_along_axis(tokens, best[:, None, None], axis=1)[:, 0]
        return chosen, ops.max(mean_logp, axis=-1)


class CTCSearch(SearchModel):
    """Decoding of a ``ctc`` model: one pass of the seed's bidirectional decoder, then CTC search.

    ``beam_size`` 1: every frame's best label, repeats merged, blanks dropped (the best
    alignment); the score is that alignment's log-probability. Larger: CTC prefix beam search
    (``keras.ops.ctc_decode``), which sums the alignments of each output; the ``nbest`` best
    outputs with their log-probabilities.

    Call arguments:
        source: ``[B, S]`` int source ids (0-padded).

    Returns:
        ``(tokens [B, K, W], log p [B, K])`` with ``K = nbest`` and ``W = max_length or S U``,
        0-padded after each output.
    """

    def __init__(self, seq2seq: Seq2Seq, *, beam_size: int = 1, nbest: int = 1, max_length: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        require_objective(seq2seq, "ctc", "CTCSearch")
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size {beam_size}. Received: {nbest}")
        self.seq2seq, self.beam_size, self.nbest, self.max_length = seq2seq, beam_size, nbest, max_length

    def call(self, source):
        model = self.seq2seq
        encoded = model.encode(source)
        logits = model.decoder(encoded.memory, encoded.mask, model.initial_decoder_states(encoded))
        frames = ops.sum(ops.cast(model.decoder.frame_mask(encoded.mask), "int32"), axis=1)
        if self.beam_size == 1:
            log_probs = ops.log_softmax(logits, axis=-1)
            tokens, _ = ops.ctc_decode(logits, frames, strategy="greedy", mask_index=BLANK_ID)
            scores = ops.sum(ops.max(log_probs, axis=-1), axis=1)[:, None]
        else:
            tokens, scores = ops.ctc_decode(logits, frames, strategy="beam_search", beam_width=self.beam_size,
                                            top_paths=self.nbest, mask_index=BLANK_ID)
        tokens = ops.transpose(ops.where(tokens < 0, PAD_ID, tokens), (1, 0, 2))  # [B, K, S U]
        if self.max_length:
            tokens = tokens[:, :, : self.max_length]
        return ops.cast(tokens, "int32"), scores


class CTCScorer(SearchModel):
    """``log p(output | source)`` under a ``ctc`` model: minus the CTC loss, every alignment summed.

    Call arguments:
        inputs: ``(source [B, S], output [B, T])`` 0-padded ids (no ``<s>``/``</s>``).

    Returns:
        ``[B]`` log-probabilities (about ``-1e5`` per frame where no alignment fits).
    """

    def __init__(self, seq2seq: Seq2Seq, **kwargs) -> None:
        super().__init__(**kwargs)
        require_objective(seq2seq, "ctc", "CTCScorer")
        self.seq2seq = seq2seq

    def call(self, inputs):
        source, output = inputs
        return ctc_log_likelihood(output, self.seq2seq(source))[0]
