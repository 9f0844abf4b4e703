"""Training and decoding speed of biseq against the references, side by side, in one run.

Usage (from the repository root, after ``pip install -e '.[bench]'`` for the PyTorch reference):

    python benchmarks/speed.py                 # all stacks, writes benchmarks/speed.json
    python benchmarks/speed.py --quick         # fewer steps, for a smoke test

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
Each stack runs in its own process, so peak memory (RSS) is its own. Results are medians of
``--repeats`` timed passes; ratios are against biseq.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

E, H, BATCH = 64, 256, 64


# --------------------------------------------------------------------------------------- data
def load_pairs(limit: int):
    from biseq.batching import encode_pairs
    from biseq.config import Config
    from biseq.training import prepare

    data = prepare(Config())
    pairs = encode_pairs(data.train, data.source_vocab, data.target_vocab)
    rng = np.random.default_rng(0)
    index = rng.permutation(len(pairs))[:limit]
    return [pairs[i] for i in index], len(data.source_vocab), len(data.target_vocab), len(pairs)


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
    for b in {(b.source.shape, b.decoder_input.shape): b for b in batches}.values():  # compile all shapes
        model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for b in batches:
            model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
        times.append(time.perf_counter() - start)
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


STACKS = {
    "biseq_train": lambda a: run_biseq_train(a, "seed"),
    "biseq_default_train": lambda a: run_biseq_train(a, "default"),
    "kerasio_train": run_kerasio_train,
    "pytorch_train": run_torch_train,
    "biseq_decode": run_biseq_decode,
    "kerasio_decode": run_kerasio_decode,
    "pytorch_decode": run_torch_decode,
    "gemm": run_gemm,
}


def child(name: str, args) -> None:
    result = STACKS[name](args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    print("RESULT " + json.dumps({"result": result, "rss_mib": rss}))


def spawn(name: str, argv: list[str]):
    proc = subprocess.run([sys.executable, __file__, "--child", name, *argv], capture_output=True, text=True)
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
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.repeats, args.decode_words, args.batch1_words = 1280, 1, 512, 8
    if args.child:
        child(args.child, args)
        return
    argv = [f"--pairs={args.pairs}", f"--repeats={args.repeats}", f"--decode-words={args.decode_words}",
            f"--batch1-words={args.batch1_words}", f"--steps={args.steps}"]
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    results = {}
    for name in STACKS:
        if name.startswith("pytorch") and not have_torch:
            results[name] = {"error": "torch not installed (pip install -e '.[bench]')"}
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = spawn(name, argv)
    gemm = results["gemm"].get("result", {})
    peak = max(gemm.values()) if gemm else float("nan")
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}".strip(", "),
              "keras_backend": os.environ["KERAS_BACKEND"], "gemm_gflops": gemm, "train": {}, "decode": {}}
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
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
