r"""Training and decoding speed of biseq against the references, side by side, in one run.

Usage (from the repository root, after ``pip install -e '.[bench]'`` for the PyTorch reference):

    python benchmarks/speed.py                 # all stacks, writes benchmarks/speed.json
    python benchmarks/speed.py --quick --json /tmp/speed-quick.json   # fewer steps, a smoke test
    python benchmarks/speed.py --only biseq_main,opennmt              # some stacks only

Stacks, all on the same architecture (the seed's: embedding 64, bidirectional LSTM encoder 256 per
direction whose four states initialise a bidirectional LSTM decoder 256 per direction, softmax) and
the same real data (the embedded CMU dictionary, stress stripped):

* ``biseq``       ``Seq2Seq`` with ``decoder='bilstm', objective='seed'``, bucketed batches;
* ``keras.io``    ``biseq.seed_model()`` trained the keras.io way: every batch padded to the
                  longest sequence of the data set, ``model.fit``, same Keras backend;
* ``pytorch``     plain PyTorch, ``nn.LSTM`` (bidirectional encoder, decoder from its ``h_n, c_n``),
                  eager, bucketed batches (optional: skipped when torch is missing).

Also biseq's default G2P model (unidirectional decoder 256 with attention) for reference.

Decoding (words/s, greedy and beam 5, batch 1 and 256) compares biseq's compiled loops, the keras.io
style loop (``predict`` once per token) and PyTorch per-step ``nn.LSTM`` calls, on the
unidirectional model (a bidirectional decoder cannot generate). The arithmetic limit is the measured
float32 GEMM rate (numpy and JAX); each stack's share is its analytic FLOP rate over that peak.
Each stack runs in its own process, so peak memory (RSS) is its own; biseq's stacks run under the
allocator ``biseq train`` picks (tcmalloc where installed, :mod:`biseq.allocator`; ``biseq_allocator`` in
the JSON), the others under the default one (``--biseq-allocator system``: all under the default). Results are medians of
``--repeats`` timed passes; ratios are against biseq.

biseq's main G2P recipe against OpenNMT-py (JSON section ``main_recipe_vs_opennmt``):

* ``biseq_main``  the model of ``benchmarks/g2p_cmudict/main.toml`` ([model]: bidirectional
                  2-layer encoder 256 per direction, dense bridge, 1-layer LSTM decoder 512, Luong
                  attention, no input feeding, dropout 0.25; [train]: batch 128, Adam 0.004, clip 5,
                  label smoothing 0.1), trained on the same pairs, then greedy and beam 5 decoding;
* ``opennmt``     OpenNMT-py 3.5.1 on PyTorch CPU with the same settings as far as it has them,
                  on the same pairs written as tokenised text, run by ``benchmarks/onmt_runner.py``
                  under its own Python (``--onmt-python``, ``$ONMT_PYTHON``, else ``../onmt-venv``
                  beside the checkout; the stack is skipped, with the reason, when it is missing).
                  Training target tokens/s is timed between logged steps (``--onmt-warmup-steps``
                  and start-up left out), in windows of one pass over the pairs; decoding words/s
                  is ``infer_list`` time only, after a warm-up batch. ``not_identical`` in the JSON
                  lists what differs; ratios have "ratio" in their names (above 1: biseq faster).

The OpenNMT-py environment (``benchmarks/onmt_setup.sh`` runs exactly this):

    python3 -m venv ../onmt-venv
    ../onmt-venv/bin/pip install torch==2.13.0            # a CPU build (never a bare CUDA torch)
    ../onmt-venv/bin/pip install --no-deps OpenNMT-py==3.5.1   # it pins torch<2.3
    ../onmt-venv/bin/pip install configargparse 'ctranslate2>=4,<5' 'tensorboard>=2.3' flask \
        waitress 'pyonmttok>=1.37,<2' pyyaml sacrebleu rapidfuzz pyahocorasick fasttext-wheel \
        spacy six numpy                                # its declared requirements, less torch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

E, H, BATCH = 64, 256, 64
DECODE_BATCH = 256  # the batched decoding measurements


def timed_training(model, batches, *, repeats: int) -> list[float]:
    """Seconds per pass over ``batches`` (``repeats`` passes), after one step per shape to compile them."""
    for b in {(b.source.shape, b.decoder_input.shape): b for b in batches}.values():
        model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
        times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------------------- data
def load_pairs(limit: int, *, vocabularies: bool = False):
    """``limit`` (source ids, target ids) training pairs, a seeded sample; with ``vocabularies`` also the two
    :class:`biseq.vocabulary.Vocabulary` objects (for writing the same pairs as text)."""
    from biseq.batching import encode_pairs
    from biseq.config import Config
    from biseq.training import prepare

    data = prepare(Config())
    pairs = encode_pairs(data.train, data.source_vocab, data.target_vocab)
    rng = np.random.default_rng(0)
    index = rng.permutation(len(pairs))[:limit]
    out = [pairs[i] for i in index], len(data.source_vocab), len(data.target_vocab), len(pairs)
    return (*out, data.source_vocab, data.target_vocab) if vocabularies else out


def bucketed(pairs):
    from biseq.batching import make_batches

    return make_batches(pairs, batch_size=BATCH, rng=np.random.default_rng(1))


def padded_to_longest(pairs):
    """keras.io style: one width for everything, the longest sequence of the data set."""
    from biseq.batching import make_batches

    batches = make_batches(pairs, batch_size=BATCH, rng=np.random.default_rng(1))
    s_max = max(b.source.shape[1] for b in batches)
    t_max = max(b.decoder_input.shape[1] for b in batches)
    out = []
    for b in batches:
        src = np.zeros((BATCH, s_max), np.int32)
        src[:, : b.source.shape[1]] = b.source
        din = np.zeros((BATCH, t_max), np.int32)
        din[:, : b.decoder_input.shape[1]] = b.decoder_input
        dout = np.zeros((BATCH, t_max), np.int32)
        dout[:, : b.decoder_target.shape[1]] = b.decoder_target
        w = np.zeros((BATCH, t_max), np.float32)
        w[:, : b.weight.shape[1]] = b.weight
        out.append((src, din, dout, w))
    return out


def train_flops(batches, *, decoder_bi: bool, attention: bool = False, vocab: int = 45) -> float:
    """Analytic training FLOPs (forward + backward = 3 x forward matmul FLOPs) of the given batches."""
    total = 0.0
    for src, din in batches:
        b, s = src.shape
        t = din.shape[1]
        enc = 2 * (2 * b * s * 4 * H * (E + H))  # two directions
        if decoder_bi:
            dec = 2 * (2 * b * t * 4 * H * (E + H)) + 2 * b * t * 2 * H * vocab
        else:
            d = 2 * H
            dec = 2 * b * t * 4 * d * (E + d + (d if attention else 0)) + 2 * b * t * d * vocab
            if attention:
                dec += 2 * b * t * (2 * s * d + 2 * d * d + d * d)
        total += 3 * (enc + dec)
    return total


# --------------------------------------------------------------------------------------- stacks
def run_biseq_train(args, objective="seed"):
    import keras

    from biseq.config import ModelConfig
    from biseq.model import Seq2Seq
    from biseq.training import MaskedCrossEntropy

    pairs, sv, tv, _ = load_pairs(args.pairs)
    batches = bucketed(pairs)
    if objective == "seed":
        config = ModelConfig(embedding_dim=E, encoder_units=H, decoder="bilstm", decoder_units=H,
                             objective="seed", attention="none", dropout=0.0)
    else:
        config = ModelConfig(embedding_dim=E, encoder_units=H, decoder_units=2 * H, dropout=0.0)
    model = Seq2Seq(config=config, source_vocab_size=sv, target_vocab_size=tv)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=MaskedCrossEntropy())
    times = timed_training(model, batches, repeats=args.repeats)
    flops = train_flops([(b.source, b.decoder_input) for b in batches], decoder_bi=objective == "seed",
                        attention=objective != "seed", vocab=tv)
    return times, sum(float(b.weight.sum()) for b in batches), flops


def run_kerasio_train(args):
    import biseq

    pairs, sv, tv, _ = load_pairs(args.pairs)
    batches = padded_to_longest(pairs)
    vocab = max(sv, tv)
    model = biseq.seed_model(total_words=vocab, emb_dimension=E, lstm_units=H)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    src = np.concatenate([b[0] for b in batches])
    din = np.concatenate([b[1] for b in batches])
    dout = np.concatenate([b[2] for b in batches])
    w = np.concatenate([b[3] for b in batches])
    model.fit([src[:BATCH], din[:BATCH]], dout[:BATCH], sample_weight=w[:BATCH], batch_size=BATCH, verbose=0)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.fit([src, din], dout, sample_weight=w, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - start)
    flops = train_flops([(b[0], b[1]) for b in batches], decoder_bi=True, vocab=vocab)
    return times, float(w.sum()), flops


def torch_models(sv, tv, *, decoder_bi):
    import torch
    from torch import nn

    class Seed(nn.Module):
        def __init__(self):
            super().__init__()
            self.src = nn.Embedding(sv, E)
            self.tgt = nn.Embedding(tv, E)
            self.enc = nn.LSTM(E, H, batch_first=True, bidirectional=True)
            if decoder_bi:
                self.dec = nn.LSTM(E, H, batch_first=True, bidirectional=True)
                self.out = nn.Linear(2 * H, tv)
            else:
                self.dec = nn.LSTM(E, 2 * H, batch_first=True)
                self.out = nn.Linear(2 * H, tv)

        def initial(self, source):
            _, (h, c) = self.enc(self.src(source))  # [2, B, H]: forward, backward
            if decoder_bi:
                return h, c
            return (torch.cat([h[0], h[1]], -1)[None], torch.cat([c[0], c[1]], -1)[None])

        def forward(self, source, decoder_input):
            y, _ = self.dec(self.tgt(decoder_input), self.initial(source))
            return self.out(y)

    torch.manual_seed(0)
    return Seed()


def run_torch_train(args):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    pairs, sv, tv, _ = load_pairs(args.pairs)
    batches = bucketed(pairs)
    model = torch_models(sv, tv, decoder_bi=True)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    tensors = [(torch.from_numpy(b.source).long(), torch.from_numpy(b.decoder_input).long(),
                torch.from_numpy(b.decoder_target).long(), torch.from_numpy(b.weight)) for b in batches]

    def step(src, din, dout, w):
        logits = model(src, din)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), dout, reduction="none")
        loss = (nll * w).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    step(*tensors[0])
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for t in tensors:
            step(*t)
        times.append(time.perf_counter() - start)
    flops = train_flops([(b.source, b.decoder_input) for b in batches], decoder_bi=True, vocab=tv)
    return times, sum(float(b.weight.sum()) for b in batches), flops


def decode_words(args):
    from biseq.batching import bucket_width, pad_ids

    pairs, sv, tv, _ = load_pairs(args.decode_words)
    sources = [s for s, _ in pairs]
    width = bucket_width(max(len(s) for s in sources))
    return pad_ids(sources, width), sv, tv


def words_per_second(decode, source, *, batch: int, words: int, convert=lambda x: x) -> float:
    """Decode ``words`` rows of ``source`` in chunks of ``batch`` (after one warm-up chunk); words per second."""
    n = min(len(source), words)
    chunks = [convert(source[i : i + batch]) for i in range(0, n - batch + 1, batch)]
    decode(chunks[0])
    start = time.perf_counter()
    for chunk in chunks:
        decode(chunk)
    return len(chunks) * batch / (time.perf_counter() - start)


def run_biseq_decode(args):
    from keras import ops

    from biseq.config import ModelConfig
    from biseq.model import Seq2Seq
    from biseq.search import BeamSearch, GreedySearch

    source, sv, tv = decode_words(args)
    config = ModelConfig(embedding_dim=E, encoder_units=H, decoder_units=2 * H, attention="none", dropout=0.0)
    model = Seq2Seq(config=config, source_vocab_size=sv, target_vocab_size=tv)
    # The same work as the references' fixed-length loops: biseq's loops stop once every row has
    # ended, so the untrained model is kept from ending (no </s>) and runs all --steps steps.
    from biseq.vocabulary import EOS_ID

    bias = model.decoder.output_projection.bias
    bias.assign(ops.convert_to_numpy(bias) - 1e9 * (np.arange(tv) == EOS_ID))
    d, s = 2 * H, source.shape[1]
    encoder = 2 * (2 * s * 4 * H * (E + H))
    step = 2 * 4 * d * (E + d) + 2 * d * tv
    results = {"flops_per_word": {"greedy": encoder + args.steps * step, "beam5": encoder + 5 * args.steps * step}}
    for name, search in (("greedy", GreedySearch(model, max_length=args.steps)),
                         ("beam5", BeamSearch(model, beam_size=5, max_length=args.steps))):
        for batch in (1, 256):
            results[f"{name}_b{batch}"] = words_per_second(
                search.predict_on_batch, source, batch=batch,
                words=args.decode_words if batch > 1 else args.batch1_words)
    return results


def run_kerasio_decode(args):
    """keras.io lstm_seq2seq style: an encoder model and a one-step decoder model, ``predict`` per token."""
    import keras

    source, sv, tv = decode_words(args)
    from keras import layers

    enc_in = keras.Input((None,))
    x = layers.Embedding(sv, E)(enc_in)
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(H, return_state=True))(x)
    encoder = keras.Model(enc_in, [layers.Concatenate()([fh, bh]), layers.Concatenate()([fc, bc])])
    dec_in, h_in, c_in = keras.Input((1,)), keras.Input((2 * H,)), keras.Input((2 * H,))
    y = layers.Embedding(tv, E)(dec_in)
    y, h, c = layers.LSTM(2 * H, return_sequences=True, return_state=True)(y, initial_state=[h_in, c_in])
    decoder = keras.Model([dec_in, h_in, c_in], [layers.Dense(tv, activation="softmax")(y), h, c])
    results = {}
    def greedy(src):
        h, c = encoder.predict(src, verbose=0)
        tok = np.ones((len(src), 1), np.int32)
        for _ in range(args.steps):
            probs, h, c = decoder.predict([tok, h, c], verbose=0)
            tok = probs[:, -1].argmax(-1)[:, None].astype(np.int32)

    for batch in (1, 256):
        results[f"greedy_b{batch}"] = words_per_second(
            greedy, source, batch=batch, words=args.decode_words if batch > 1 else args.batch1_words // 4)
    return results


def run_torch_decode(args):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    source, sv, tv = decode_words(args)
    model = torch_models(sv, tv, decoder_bi=False).eval()

    @torch.no_grad()
    def greedy(src):
        h, c = model.initial(src)
        tok = torch.ones((len(src), 1), dtype=torch.long)
        for _ in range(args.steps):
            y, (h, c) = model.dec(model.tgt(tok), (h, c))
            tok = model.out(y[:, -1]).argmax(-1, keepdim=True)

    @torch.no_grad()
    def beam(src, k=5):
        b = len(src)
        h, c = model.initial(src.repeat_interleave(k, 0))
        tok = torch.ones((b * k, 1), dtype=torch.long)
        score = torch.full((b, k), -1e9)
        score[:, 0] = 0
        for _ in range(args.steps):
            y, (h, c) = model.dec(model.tgt(tok), (h, c))
            logp = torch.log_softmax(model.out(y[:, -1]), -1).view(b, k, -1)
            cand = (score[:, :, None] + logp).view(b, -1)
            score, idx = cand.topk(k, -1)
            beam_idx = (idx // tv + torch.arange(b)[:, None] * k).view(-1)
            h, c = h[:, beam_idx], c[:, beam_idx]
            tok = (idx % tv).view(-1, 1)

    results = {}
    for name, fn in (("greedy", greedy), ("beam5", beam)):
        for batch in (1, 256):
            results[f"{name}_b{batch}"] = words_per_second(
                fn, source, batch=batch, words=args.decode_words if batch > 1 else args.batch1_words,
                convert=lambda x: torch.from_numpy(x).long())
    return results


def run_gemm(args):
    import jax
    import jax.numpy as jnp

    n = 1024
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    out = {}
    matmul, a_jax = jax.jit(lambda x: x @ x), jnp.asarray(a)
    for name, fn in (("numpy", lambda: a @ a), ("jax", lambda: matmul(a_jax).block_until_ready())):
        fn()
        times = []
        for _ in range(10):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = 2 * n**3 / min(times) / 1e9
    return out


# ------------------------------------------------- biseq's main G2P recipe against OpenNMT-py
MAIN_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "g2p_cmudict", "main.toml")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONMT_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onmt_runner.py")
ONMT_DEFAULT_PYTHON = os.path.join(os.path.dirname(ROOT), "onmt-venv", "bin", "python")

# What could not be made the same between biseq's main recipe and its OpenNMT-py configuration.
NOT_IDENTICAL = [
    "bridge: biseq 'dense' is tanh(W [fwd; bwd] + b) of the top encoder layer, per state; OpenNMT "
    "'bridge' is relu(W [fwd; bwd] + b) per encoder layer (one W shared by the layers), and the "
    "decoder then takes the top layer's result (onmt_runner.py patches init_state: stock OpenNMT "
    "needs as many decoder layers as encoder layers)",
    "attention: both Luong 'general' with the attentional vector tanh(W_c [c; h]) after the decoder "
    "loop (no input feeding); biseq projects the memory (keys = W memory, once per source), OpenNMT "
    "projects the query (W h) at every target position",
    "dropout 0.25 placement: OpenNMT drops the embeddings, between the encoder's layers and the "
    "attentional vector; biseq's placement is its own (src/biseq/layers.py)",
    "learning-rate schedule: biseq's recipe anneals (cosine over the time limit); OpenNMT runs "
    "constant 0.004 (decay_method none); no effect on speed",
    "initialisation: OpenNMT uniform +-0.1 (param_init), biseq Keras defaults; no effect on speed "
    "beyond the decoded lengths",
    "vocabulary: the same symbols; OpenNMT's specials are <unk> <blank> <s> </s>, biseq's <pad> <s> "
    "</s> <unk> (same sizes, vocab_size_multiple 1)",
    "batching: both 128 sentences a batch; biseq buckets by (source, target) width into fixed "
    "shapes, every batch padded to 128 rows; OpenNMT sorts a bucket (here one pass over the pairs, "
    "bucket_size = pairs) by length, pads each batch to its own longest and leaves a repeated "
    "source (a word's second pronunciation) out of a batch; OpenNMT reads and numericalises the "
    "data in the training process (num_workers 0), inside the timed steps, once a pass; biseq's "
    "batches are made before the timing",
    "decoding batches: biseq decodes the words padded to one width (as the other decoding stacks "
    "here); OpenNMT sorts them by length into its batches",
    "loss: both token-normalised cross-entropy with label smoothing 0.1 and global norm clipping 5",
    "decoding: both at most 2 S + 5 steps (S the padded source width); biseq keeps a batch's "
    "shape (one compiled loop) until every word has ended, OpenNMT drops finished words from the "
    "batch as it goes; each model is trained for the same steps from its own initialisation, so "
    "their output lengths differ (mean_output_tokens: compare decoding rates only when close)",
    "beam search: both rank finished hypotheses by log p / length (biseq length_penalty 1.0, "
    "OpenNMT 'avg'), both asked for one answer; biseq ends a word when no alive hypothesis can beat "
    "its best finished one (exact: the best of running every step), OpenNMT when its best hypothesis "
    "has ended (runs 2026-12-06 and before: biseq waited for its 5 best)",
    "threads: torch on os.cpu_count() threads; JAX/XLA on its own default",
]


def main_recipe():
    from biseq.config import Config

    return Config.load(MAIN_RECIPE)


def run_biseq_main(args):
    """biseq's main G2P recipe ([model] and [train] of main.toml): training tokens/s, then decoding words/s."""
    import keras

    from biseq.batching import make_batches
    from biseq.model import Seq2Seq
    from biseq.search import BeamSearch, GreedySearch, default_max_length
    from biseq.training import MaskedCrossEntropy
    from biseq.vocabulary import EOS_ID

    recipe = main_recipe()
    mc, tc = recipe.model, recipe.train
    keras.utils.set_random_seed(tc.seed)
    pairs, sv, tv, _ = load_pairs(args.pairs)
    batches = make_batches(pairs, batch_size=tc.batch_size, rng=np.random.default_rng(1))
    model = Seq2Seq(config=mc, source_vocab_size=sv, target_vocab_size=tv)
    model.compile(optimizer=keras.optimizers.Adam(tc.learning_rate, global_clipnorm=tc.clip_norm),
                  loss=MaskedCrossEntropy(label_smoothing=tc.label_smoothing))
    times = timed_training(model, batches, repeats=args.repeats)
    tokens = sum(float(b.weight.sum()) for b in batches)
    steps = len({(b.source.shape, b.decoder_input.shape) for b in batches}) + args.repeats * len(batches)
    source, _, _ = decode_words(args)
    max_length = default_max_length(source.shape[1])
    decode = {}
    # beam search asked for one answer (settle=1), as OpenNMT-py's n_best 1: a word ends once its best is final
    for name, search in (("greedy", GreedySearch(model)), ("beam5", BeamSearch(model, beam_size=5, settle=1))):
        for batch in (1, DECODE_BATCH):
            decode[f"{name}_b{batch}"] = words_per_second(
                search.predict_on_batch, source, batch=batch,
                words=args.decode_words if batch > 1 else args.batch1_words)
    # biseq's NumPy path (what biseq.load() and `biseq lexicon` run for up to 256 words a call): a beam
    # batch drops each source once settled, a greedy one each row once it ends
    from biseq.numpy_decoding import beam_ids, greedy_ids
    from biseq.numpy_model import NumpySeq2Seq

    fast = NumpySeq2Seq(config=mc, arrays=[np.asarray(w.numpy()) for w in model.weights])
    rows = [[int(t) for t in row if t] for row in source]
    for name, search in (("numpy_greedy", lambda part: greedy_ids(fast, part, steps=max_length)),
                         ("numpy_beam5", lambda part: beam_ids(fast, part, beam_size=5, length=max_length,
                                                                settle=1))):
        for batch in (1, DECODE_BATCH):
            decode[f"{name}_b{batch}"] = words_per_second(
                search, rows, batch=batch, words=args.decode_words if batch > 1 else args.batch1_words)
    out = np.asarray(GreedySearch(model).predict_on_batch(source[: DECODE_BATCH]))
    lengths = [int(np.argmax(row == EOS_ID)) if (row == EOS_ID).any() else len(row) for row in out]  # </s> not counted
    return {"times": times, "tokens": tokens, "steps_per_pass": len(batches), "steps_trained": steps,
            "decode": decode, "max_length": max_length, "mean_output_tokens_greedy": float(np.mean(lengths))}


def onmt_python(args) -> str:
    return args.onmt_python or os.environ.get("ONMT_PYTHON") or ONMT_DEFAULT_PYTHON


def onmt_config(workdir: str, *, steps: int, pairs: int) -> str:
    """OpenNMT-py's YAML for main.toml's [model] and [train] (as far as OpenNMT has the same settings)."""
    recipe = main_recipe()
    mc, tc = recipe.model, recipe.train
    assert mc.encoder == "bilstm" and mc.decoder == "lstm" and mc.attention == "luong", mc
    assert mc.resolved_bridge == "dense", mc.resolved_bridge
    lines = {
        "data": {"corpus_1": {"path_src": f"{workdir}/train.src", "path_tgt": f"{workdir}/train.tgt"}},
        "src_vocab": f"{workdir}/src.vocab", "tgt_vocab": f"{workdir}/tgt.vocab", "vocab_size_multiple": 1,
        "save_model": f"{workdir}/model", "save_checkpoint_steps": 10**9, "train_steps": steps,
        "report_every": max(1, min(50, steps // 4)), "log_file": f"{workdir}/train.log", "seed": tc.seed,
        # one bucket = one pass over the pairs: with the default (262,144 examples) OpenNMT cycles a small
        # file hundreds of times to fill a bucket, then drops the repeats from each batch (16 s, 1.5 GB
        # and a refill every ~13 steps on 1,280 pairs)
        "bucket_size": pairs, "num_workers": 0, "world_size": 1,
        "encoder_type": "brnn", "decoder_type": "rnn", "rnn_type": "LSTM",
        "enc_layers": mc.encoder_layers, "dec_layers": mc.decoder_layers,
        "enc_hid_size": 2 * mc.encoder_units, "dec_hid_size": mc.decoder_units,  # brnn: half per direction
        "word_vec_size": mc.embedding_dim, "global_attention": "general",
        "input_feed": int(mc.input_feeding), "bridge": True, "dropout": [mc.dropout],
        "optim": "adam", "learning_rate": tc.learning_rate, "decay_method": "none",
        "max_grad_norm": tc.clip_norm, "label_smoothing": tc.label_smoothing,
        "batch_size": tc.batch_size, "batch_type": "sents", "normalization": "tokens",
    }
    path = f"{workdir}/train.yaml"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(lines, f, indent=1)  # JSON is YAML
    return path


def run_opennmt(args):
    """OpenNMT-py 3.5 on the same pairs, configured as main.toml: training tokens/s, decoding words/s.

    Training: ``steps_per_pass`` (= pairs / batch) steps per timed window after ``--onmt-warmup-steps``
    untimed ones; the rate of each window from the per-step times that onmt_runner.py records, so
    start-up (imports, vocabulary, model building) and the first steps are left out.
    Decoding: onmt_runner.py times ``infer_list`` on the decoding words, after one warm-up batch.
    """
    import math
    import tempfile

    python = onmt_python(args)
    if not os.path.exists(python):
        return {"skipped": f"no OpenNMT-py environment at {python} (run benchmarks/onmt_setup.sh, or give "
                           "--onmt-python / ONMT_PYTHON)"}
    pairs, _, _, _, src_vocab, tgt_vocab = load_pairs(args.pairs, vocabularies=True)
    source, _, _ = decode_words(args)
    from biseq.search import default_max_length
    from biseq.vocabulary import SPECIALS

    recipe = main_recipe()
    batch = recipe.train.batch_size
    per_pass = math.ceil(len(pairs) / batch)
    steps = args.onmt_warmup_steps + args.repeats * per_pass
    max_length = default_max_length(source.shape[1])
    workdir = tempfile.mkdtemp(prefix="biseq-speed-onmt-")
    with open(f"{workdir}/train.src", "w", encoding="utf-8") as fs, \
            open(f"{workdir}/train.tgt", "w", encoding="utf-8") as ft:
        for s, t in pairs:
            fs.write(" ".join(src_vocab.decode(s)) + "\n")
            ft.write(" ".join(tgt_vocab.decode(t)) + "\n")
    for name, vocab in (("src", src_vocab), ("tgt", tgt_vocab)):
        with open(f"{workdir}/{name}.vocab", "w", encoding="utf-8") as f:
            f.writelines(f"{symbol}\n" for symbol in vocab.symbols if symbol not in SPECIALS)
    decode_pairs, _, _, _ = load_pairs(args.decode_words)
    config = onmt_config(workdir, steps=steps, pairs=len(pairs))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def runner(*argv):
        proc = subprocess.run([python, ONMT_RUNNER, *map(str, argv)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError("onmt_runner " + " ".join(map(str, argv[:1])) + ": "
                               + " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:]))

    versions = subprocess.run([python, "-c", "import importlib.metadata as m; import json; print(json.dumps("
                               "{p: m.version(p) for p in ('OpenNMT-py', 'torch')}))"],
                              capture_output=True, text=True, check=True).stdout
    runner("train", config, f"{workdir}/timing.json")
    with open(f"{workdir}/timing.json", encoding="utf-8") as f:
        marks = json.load(f)
    times, tokens = [], []
    for w in range(args.repeats):
        a, b = args.onmt_warmup_steps + w * per_pass - 1, args.onmt_warmup_steps + (w + 1) * per_pass - 1
        times.append(marks[b][0] - marks[a][0])
        tokens.append(marks[b][1] - marks[a][1])
    model = f"{workdir}/model_step_{steps}.pt"
    decode, lengths = {}, {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        for size, words in ((1, args.batch1_words), (DECODE_BATCH, args.decode_words)):
            n = min(words, len(decode_pairs)) // size * size  # as words_per_second: whole batches only
            src = f"{workdir}/decode_{n}.src"
            with open(src, "w", encoding="utf-8") as f:
                f.writelines(" ".join(src_vocab.decode(s)) + "\n" for s, _ in decode_pairs[:n])
            out = f"{workdir}/decode_{name}_b{size}.json"
            runner("translate", model, src, out, size, beam, max_length, size)
            with open(out, encoding="utf-8") as f:
                result = json.load(f)
            decode[f"{name}_b{size}"] = result["words_per_s"]
            lengths[f"{name}_b{size}"] = result["mean_output_tokens"]
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest OpenNMT process
    if not os.environ.get("BISEQ_SPEED_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)
    return {"times": times, "tokens": tokens, "steps_per_pass": per_pass, "steps_trained": steps,
            "decode": decode, "max_length": max_length, "mean_output_tokens": lengths, "onmt_rss_mib": rss,
            "versions": json.loads(versions)}


STACKS = {
    "biseq_train": lambda a: run_biseq_train(a, "seed"),
    "biseq_default_train": lambda a: run_biseq_train(a, "default"),
    "kerasio_train": run_kerasio_train,
    "pytorch_train": run_torch_train,
    "biseq_decode": run_biseq_decode,
    "kerasio_decode": run_kerasio_decode,
    "pytorch_decode": run_torch_decode,
    "gemm": run_gemm,
    "biseq_main": run_biseq_main,
    "opennmt": run_opennmt,
}


def child(name: str, args) -> None:
    result = STACKS[name](args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    print("RESULT " + json.dumps({"result": result, "rss_mib": rss}))


def child_environment(name: str, allocator: str) -> dict[str, str]:
    """A biseq stack's environment: with ``allocator`` "auto", tcmalloc preloaded where ``biseq train`` would
    preload it (:mod:`biseq.allocator`); the other stacks (and "system") keep the default allocator."""
    if allocator == "auto" and name.startswith("biseq"):
        from biseq.allocator import tcmalloc_environment

        return tcmalloc_environment() or dict(os.environ)
    return dict(os.environ)


def spawn(name: str, argv: list[str], *, allocator: str = "system"):
    proc = subprocess.run([sys.executable, __file__, "--child", name, *argv], capture_output=True, text=True,
                          env=child_environment(name, allocator))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail)}


def main() -> None:
    parser = argparse.ArgumentParser(description="biseq speed benchmark")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, default=12800, help="training pairs timed per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-words", type=int, default=2048)
    parser.add_argument("--batch1-words", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12, help="decoding steps per word")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default="benchmarks/speed.json")
    parser.add_argument("--only", default="", help="comma-separated stacks to run (default: all): "
                        + ", ".join(STACKS))
    parser.add_argument("--onmt-python", default="",
                        help="the OpenNMT-py environment's python (default: $ONMT_PYTHON, else "
                             "../onmt-venv/bin/python beside the checkout); stack skipped when missing")
    parser.add_argument("--biseq-allocator", choices=("auto", "system"), default="auto",
                        help="auto (default): biseq's stacks run under tcmalloc where `biseq train` would "
                             "(biseq.allocator); system: every stack under the default allocator")
    parser.add_argument("--onmt-warmup-steps", type=int, default=20,
                        help="OpenNMT-py training steps left out of the timing")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.repeats, args.decode_words, args.batch1_words = 1280, 1, 512, 8
        args.onmt_warmup_steps = 5
    if args.onmt_warmup_steps < 1:
        parser.error("--onmt-warmup-steps must be at least 1")
    if args.child:
        child(args.child, args)
        return
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(STACKS))
    if unknown:
        parser.error(f"unknown stack(s) {unknown}; choose from {list(STACKS)}")
    argv = [f"--pairs={args.pairs}", f"--repeats={args.repeats}", f"--decode-words={args.decode_words}",
            f"--batch1-words={args.batch1_words}", f"--steps={args.steps}",
            f"--onmt-warmup-steps={args.onmt_warmup_steps}"]
    if args.onmt_python:
        argv.append(f"--onmt-python={os.path.abspath(args.onmt_python)}")
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    results = {}
    for name in STACKS:
        if only and name not in only:
            results[name] = {"error": "not run (--only)"}
            continue
        if name.startswith("pytorch") and not have_torch:
            results[name] = {"error": "torch not installed (pip install -e '.[bench]')"}
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = spawn(name, argv, allocator=args.biseq_allocator)
    gemm = results["gemm"].get("result", {})
    peak = max(gemm.values()) if gemm else float("nan")
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}".strip(", "),
              "keras_backend": os.environ["KERAS_BACKEND"], "gemm_gflops": gemm, "train": {}, "decode": {},
              "biseq_allocator": child_environment("biseq_main", args.biseq_allocator).get("LD_PRELOAD") or "system"}
    print("\nfloat32 GEMM peak (1024^3): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items()))
    print("\n| training (seed architecture) | target tokens/s | s/epoch (121k pairs) | vs biseq | GFLOP/s | share of peak | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, label in (("biseq_train", "biseq"), ("kerasio_train", "keras.io style (pad to longest, fit)"),
                        ("pytorch_train", "PyTorch nn.LSTM eager"),
                        ("biseq_default_train", "biseq default G2P model (uni decoder 512 + attention)")):
        r = results[name]
        if "error" in r:
            print(f"| {label} | error: {r['error']} | | | | | |")
            continue
        times, tokens, flops = r["result"]
        t = statistics.median(times)
        rate = tokens / t
        if name == "biseq_train":
            base = rate
        base = base or float("nan")
        epoch = 121332 / args.pairs * t
        gf = flops / t / 1e9
        report["train"][name] = {"tokens_per_s": rate, "s_per_epoch": epoch, "gflops": gf,
                                 "share_of_peak": gf / peak, "rss_mib": r["rss_mib"]}
        print(f"| {label} | {rate:,.0f} | {epoch:.0f} | {rate / base:.2f}x | {gf:.0f} | {100 * gf / peak:.0f}% | "
              f"{r['rss_mib']:.0f} |")
    print("\n| decoding, words/s (uni decoder 512, 12 steps) | greedy b1 | greedy b256 | beam5 b1 | beam5 b256 | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, label in (("biseq_decode", "biseq (compiled loop)"), ("kerasio_decode", "keras.io style (predict per token)"),
                        ("pytorch_decode", "PyTorch nn.LSTM per step")):
        r = results[name]
        if "error" in r:
            print(f"| {label} | error: {r['error']} | | | | |")
            continue
        res = r["result"]
        report["decode"][name] = {**res, "rss_mib": r["rss_mib"]}
        cells = [f"{res[k]:,.0f}" if k in res else "-" for k in ("greedy_b1", "greedy_b256", "beam5_b1", "beam5_b256")]
        print(f"| {label} | " + " | ".join(cells) + f" | {r['rss_mib']:.0f} |")
        if "flops_per_word" in res:
            ceiling = {k: peak * 1e9 / v for k, v in res["flops_per_word"].items()}
            report["decode"]["arithmetic_ceiling"] = ceiling
            print(f"| arithmetic ceiling (analytic FLOPs per word at the GEMM peak) | | {ceiling['greedy']:,.0f} | | "
                  f"{ceiling['beam5']:,.0f} | |")
    report["main_recipe_vs_opennmt"] = main_vs_opennmt(results, args)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


def main_vs_opennmt(results, args) -> dict:
    """biseq's main recipe against OpenNMT-py on the same pairs: rates, ratios (above 1: biseq faster)."""
    section = {"recipe": os.path.relpath(MAIN_RECIPE, ROOT), "pairs": args.pairs, "repeats": args.repeats,
               "decode_words": args.decode_words, "batch1_words": args.batch1_words}
    mine, theirs = results.get("biseq_main", {}), results.get("opennmt", {})
    print("\n| main G2P recipe (main.toml) | train target tokens/s | greedy b1 | greedy b256 | beam5 b1 | "
          "beam5 b256 | mean output tokens (greedy b256) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    rates = {}
    for name, r in (("biseq", mine), ("opennmt", theirs)):
        if "result" not in r:
            why = r.get("error", "not run")
            section[name] = {"error": why}
            print(f"| {name} | error: {why} | | | | | | |")
            continue
        res = r["result"]
        if "skipped" in res:
            section[name] = {"skipped": res["skipped"]}
            print(f"| {name} | skipped: {res['skipped']} | | | | | | |")
            continue
        if name == "biseq":
            rate = res["tokens"] / statistics.median(res["times"])
            length, rss = res["mean_output_tokens_greedy"], r["rss_mib"]
        else:
            rate = statistics.median(k / t for k, t in zip(res["tokens"], res["times"], strict=True))
            length, rss = res["mean_output_tokens"][f"greedy_b{DECODE_BATCH}"], res["onmt_rss_mib"]
        rates[name] = {"train_tokens_per_s": rate, **{f"{k}_words_per_s": v for k, v in res["decode"].items()}}
        section[name] = {**rates[name], "steps_per_pass": res["steps_per_pass"], "steps_trained": res["steps_trained"],
                         "max_length": res["max_length"], "mean_output_tokens_greedy": length, "rss_mib": rss,
                         **{k: res[k] for k in ("versions", "mean_output_tokens") if k in res}}
        cells = [f"{res['decode'].get(k, float('nan')):,.0f}"
                 for k in ("greedy_b1", f"greedy_b{DECODE_BATCH}", "beam5_b1", f"beam5_b{DECODE_BATCH}")]
        print(f"| {name} | {rate:,.0f} | " + " | ".join(cells) + f" | {length:.1f} | {rss:.0f} |")
        if "numpy_greedy_b1" in res["decode"]:
            cells = [f"{res['decode'][f'numpy_{k}']:,.0f}"
                     for k in ("greedy_b1", f"greedy_b{DECODE_BATCH}", "beam5_b1", f"beam5_b{DECODE_BATCH}")]
            print("| biseq, NumPy path | | " + " | ".join(cells) + " | | |")
    if len(rates) == 2:
        for key in rates["biseq"]:  # biseq's NumPy path against OpenNMT-py's same search
            theirs = rates["opennmt"].get(key.removeprefix("numpy_"))
            if theirs:
                section[f"biseq_over_opennmt_{key}_ratio"] = rates["biseq"][key] / theirs
        print("biseq / OpenNMT-py: " + ", ".join(
            f"{k.removeprefix('biseq_over_opennmt_').removesuffix('_ratio')} {v:.2f}x"
            for k, v in section.items() if k.endswith("_ratio")))
    section["not_identical"] = NOT_IDENTICAL
    return section


if __name__ == "__main__":
    main()
