r"""Where a training step's time goes, per XLA op: the JAX profiler on biseq's main G2P recipe.

Usage (from the repository root; about 4 minutes on a 2-core machine, 5 more for the allocator A/B):

    KERAS_BACKEND=jax python benchmarks/profile_step.py            # writes benchmarks/profile_step.json
    python benchmarks/profile_step.py --shapes 8x8 --traced-steps 5 --json /tmp/p.json --keep-trace /tmp/tr
    python benchmarks/profile_step.py --only-allocator-ab \
        --allocator-ab /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4   # glibc vs tcmalloc, into the JSON

Results and what they say: ``benchmarks/profile_step.md``. ``traced_s_incl_profiler`` in the JSON also
counts starting, stopping and writing the trace; ``traced_wall_s_per_step`` is the traced steps' own wall.

What is profiled: the model of ``benchmarks/g2p_cmudict/main.toml`` (bidirectional 2-layer LSTM encoder
256 per direction, dense bridge, LSTM decoder 512, Luong attention after the loop, dropout 0.25) with
its batch size (128), Adam with global-norm clipping and label-smoothed cross-entropy, built and compiled
exactly as ``benchmarks/speed.py`` (``biseq_main``) does, on the same data: the embedded CMU dictionary,
``--pairs`` pairs bucketed by ``biseq.batching.make_batches``. The step is Keras's own train step, the
function ``fit`` and ``train_on_batch`` run: ``jax.jit(model.train_step, donate_argnums=0)`` (what
``JAXTrainer.make_train_function`` builds), lowered and compiled per bucket shape.

For every bucket shape of that pass (or ``--shapes``): time ``--timed-steps`` steps of the compiled step
(and of ``train_on_batch``, to see Keras's host overhead), then run ``--traced-steps`` steps under
``jax.profiler.trace`` and parse its Perfetto JSON. Each XLA thunk event carries its HLO instruction
name; the compiled module's HLO text maps the name to its opcode, fused ops, metadata (forward
``jvp(...)``, backward ``transpose(jvp(...))``, ``adam``, layer names), whether it runs inside a while
loop, and its matmul FLOPs. Time is attributed per thread to the innermost HLO op (executor and
thread-pool waits inside an op count to that op; a while loop's own time is what its body's ops leave),
then shared across threads instant by instant (a thread's op gets dt / number of busy threads), so the
shares add up to the step's wall time; ``idle`` is time with no XLA work on any thread. Shapes are
weighted by how many batches of the pass have them.

Also measured: float32 and bfloat16 matmul peaks under ``jit`` (1024^3 and the step's typical GEMM
shapes), to put the achieved GEMM rate and the bf16 lever in proportion.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import speed  # noqa: E402  (same data, recipe and model set-up as the speed benchmark)

# ------------------------------------------------------------------------------------ HLO text
INSTRUCTION = re.compile(r"^\s+(?:ROOT\s+)?%([^\s=]+)\s*=\s*(.*)$")
HEADER = re.compile(r"^(?:ENTRY\s+)?%([^\s(]+)\s*\(.*\{\s*$")
SHAPE = re.compile(r"^([a-z]+[0-9]*)\[([0-9,]*)\]")
ELEMENTWISE_TRANSCENDENTAL = {"logistic", "tanh", "exponential", "log", "log-plus-one", "exponential-minus-one",
                              "rsqrt", "sqrt", "power"}
LAYOUT_OPS = {"copy", "transpose"}
SLICE_OPS = {"dynamic-update-slice", "dynamic-slice"}
PLUMBING = {"parameter", "constant", "bitcast", "reshape", "tuple", "get-tuple-element", "broadcast", "slice",
            "concatenate", "iota", "convert"}


class Instr:
    __slots__ = ("name", "shape", "opcode", "operands", "attrs", "op_name", "computation", "root")

    def __init__(self, name, shape, opcode, operands, attrs, op_name, computation, root):
        self.name, self.shape, self.opcode, self.operands = name, shape, opcode, operands
        self.attrs, self.op_name, self.computation, self.root = attrs, op_name, computation, root


def _split_shape(rest: str) -> tuple[str, str]:
    """``'f32[2,3]{1,0} dot(...)'`` -> (shape, remainder); tuple shapes are parenthesised."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[: i + 1], rest[i + 1 :].lstrip()
    shape, _, tail = rest.partition(" ")
    return shape, tail


def parse_hlo(text: str):
    """HLO text -> (instructions by name, instruction names per computation, entry computation name)."""
    instrs: dict[str, Instr] = {}
    by_comp: dict[str, list[str]] = collections.defaultdict(list)
    comp, entry = None, None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header and not line.startswith(" "):
            comp = header.group(1)
            if line.startswith("ENTRY"):
                entry = comp
            continue
        m = INSTRUCTION.match(line)
        if not m or comp is None:
            continue
        name, rest = m.groups()
        shape, tail = _split_shape(rest)
        opcode = tail.split("(", 1)[0].strip()
        args = tail[len(opcode):]
        depth, end = 0, len(args)
        for i, ch in enumerate(args):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i:
                end = i
                break
        operands = re.findall(r"%([^\s,()]+)", args[:end + 1])
        attrs = args[end + 1:]
        op_name = re.search(r'op_name="([^"]*)"', attrs)
        instrs[name] = Instr(name, shape, opcode, operands, attrs, op_name.group(1) if op_name else "", comp,
                             line.lstrip().startswith("ROOT"))
        by_comp[comp].append(name)
    return instrs, by_comp, entry


def dims(shape: str) -> list[int]:
    m = SHAPE.match(shape)
    return [int(d) for d in m.group(2).split(",") if d] if m else []


def called(instr: Instr, key: str) -> list[str]:
    m = re.search(key + r"=%([^\s,}]+)", instr.attrs)
    return [m.group(1)] if m else []


class Module:
    """One compiled step's HLO: what each thunk (top-level or loop-body instruction) is."""

    def __init__(self, text: str):
        self.instrs, self.by_comp, self.entry = parse_hlo(text)
        self.loop_depth: dict[str, int] = {}  # computation -> number of enclosing while loops
        self.condition: set[str] = set()
        self._walk(self.entry, 0)
        self._ops_cache: dict[str, set[str]] = {}

    def _walk(self, comp: str, depth: int) -> None:
        if comp in self.loop_depth:
            return
        self.loop_depth[comp] = depth
        for name in self.by_comp.get(comp, []):
            ins = self.instrs[name]
            if ins.opcode == "while":
                for body in called(ins, "body"):
                    self._walk(body, depth + 1)
                for cond in called(ins, "condition"):
                    self.condition.add(cond)
                    self._walk(cond, depth + 1)
            elif ins.opcode in ("call", "conditional"):
                for c in called(ins, "to_apply") + re.findall(r"%([^\s,}]+)", ins.attrs.split("branch_computations=")[-1]
                                                              if "branch_computations" in ins.attrs else ""):
                    self._walk(c, depth)

    def fused_ops(self, name: str) -> set[str]:
        """Opcodes inside a fusion (recursively); the opcode itself otherwise."""
        if name in self._ops_cache:
            return self._ops_cache[name]
        ins = self.instrs[name]
        ops = {ins.opcode}
        if ins.opcode == "fusion":
            for comp in called(ins, "calls"):
                for inner in self.by_comp.get(comp, []):
                    ops |= self.fused_ops(inner)
            ops.discard("fusion")
        self._ops_cache[name] = ops
        return ops

    def fused_root(self, name: str) -> str:
        ins = self.instrs[name]
        if ins.opcode != "fusion":
            return ins.opcode
        for comp in called(ins, "calls"):
            for inner in self.by_comp.get(comp, []):
                if self.instrs[inner].root:
                    root = self.instrs[inner]
                    while root.opcode in ("bitcast", "reshape") and root.operands:
                        root = self.instrs[root.operands[0]]
                    return root.opcode if root.opcode != "fusion" else self.fused_root(root.name)
        return "fusion"

    def dot_mnk(self, name: str) -> list[tuple[int, int, int, int]]:
        """(batch, M, N, K) of every dot this thunk runs (one per dot inside a fusion)."""
        ins = self.instrs[name]
        found = []
        if ins.opcode == "dot":
            lhs = dims(self.instrs[ins.operands[0]].shape) if ins.operands and ins.operands[0] in self.instrs else []
            out = dims(ins.shape)
            contracting = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", ins.attrs)
            batch = re.search(r"lhs_batch_dims=\{([0-9,]*)\}", ins.attrs)
            c_idx = [int(i) for i in contracting.group(1).split(",") if i] if contracting else []
            b_idx = [int(i) for i in batch.group(1).split(",") if i] if batch else []
            k = math.prod(lhs[i] for i in c_idx) if lhs else 0
            b = math.prod(lhs[i] for i in b_idx) if lhs else 1
            mn = math.prod(out) // max(b, 1)
            m = math.prod(d for i, d in enumerate(lhs) if i not in c_idx and i not in b_idx) if lhs else 0
            found.append((b, m, mn // max(m, 1), k))
        elif ins.opcode == "fusion":
            for comp in called(ins, "calls"):
                for inner in self.by_comp.get(comp, []):
                    found += self.dot_mnk(inner)
        return found

    def flops(self, name: str) -> float:
        return float(sum(2 * b * m * n * k for b, m, n, k in self.dot_mnk(name)))


# ------------------------------------------------------------------------------ classification
CATEGORIES = {
    "gemm_loop": "GEMM inside the time loops (per-step matmuls: recurrent, Keras's un-hoisted input "
                 "projections, per-step weight-gradient accumulation)",
    "gemm_outside": "GEMM outside the loops (hoisted input projections, attention, output layer, "
                    "weight gradients over all steps)",
    "cell_elementwise": "LSTM cell elementwise inside the loops (gates: sigmoid/tanh, c/h update, masking; "
                        "their derivatives in the backward loops)",
    "loop_slicing": "pure data movement inside the loops: dynamic-slice / dynamic-update-slice / copies "
                    "(scan reading x_t, writing outputs and saved activations, carrying state)",
    "loop_control": "while-loop control: the while thunk's own time (body-executor dispatch, condition, "
                    "counters) and scalar loop bookkeeping",
    "layout": "transposes / copies outside the loops (batch-major <-> time-major, gradient layout)",
    "fill": "buffer initialisation outside the loops: broadcast zeros and copies of them (scan output and "
            "residual buffers, gradient accumulators; fresh memory each step)",
    "embedding": "embedding gather and its scatter-add gradient",
    "loss": "softmax / cross-entropy with label smoothing (forward and backward)",
    "attention": "attention softmax, masking and other attention elementwise (non-GEMM)",
    "dropout": "dropout: random bits (threefry) and masks",
    "optimizer": "optimizer: Adam update and global-norm clipping",
    "other": "other elementwise ops and reductions (bridge, metrics, padding masks, ...)",
    "runtime": "XLA CPU runtime outside any op (thunk-executor dispatch at the top level)",
    "idle": "gaps: no XLA op running on any thread (thunk-executor scheduling between ops, dependency "
            "waits, host dispatch between steps)",
}


def phase_of(op_name: str) -> str:
    if "transpose(jvp(" in op_name:
        return "backward"
    if "jvp(" in op_name:
        return "forward"
    if "adam" in op_name or "optimizer" in op_name:
        return "optimizer"
    return "other"


def component_of(op_name: str) -> str:
    p = op_name
    m = re.search(r"encoder\)*/(bidirectional_\d+)/(forward|backward)", p)
    if m:
        return f"encoder {m.group(1).replace('bidirectional_', 'layer ')} {m.group(2)}"
    for key, label in (("adam", "optimizer"), ("compile_loss", "loss"), ("source_embedding", "source embedding"),
                       ("target_embedding", "target embedding"), ("output_projection", "output projection"),
                       ("attention_output", "attention output layer"), ("key_projection", "attention"),
                       ("attention", "attention"), ("_bernoulli", "dropout"), ("dropout", "dropout"),
                       ("bridge", "bridge"), ("decoder)/while", "decoder loop"), ("decoder))/while", "decoder loop"),
                       ("decoder", "decoder (other)"),
                       ("encoder", "encoder (other)")):
        if key in p:
            return label
    return "other"


def is_fill(mod: Module, name: str) -> bool:
    """A broadcast of a constant (a zero-filled buffer), or a copy of one."""
    ins = mod.instrs.get(name)
    if ins is None:
        return False
    if ins.opcode == "copy" and ins.operands and ins.operands[0] in mod.instrs:
        return is_fill(mod, ins.operands[0])
    return mod.fused_ops(name) <= {"broadcast", "constant", "parameter", "bitcast", "reshape"}


def classify(mod: Module, name: str, *, batch: int, encoder_inputs: set[int]) -> tuple[str, str]:
    """(category, GEMM role) of one thunk.

    GEMM roles inside the loops: ``weight gradient (per step)`` (contracts over the batch: Keras's scan
    backward accumulates dW every step), ``input projection`` (the encoder's x_t @ W and its dx, computed
    per step by Keras's LSTMCell: a dimension is the layer's input width), ``recurrent`` (h @ U, dz @ U^T).
    """
    ins = mod.instrs.get(name)
    if ins is None:
        return "other", ""
    p = ins.op_name
    depth = mod.loop_depth.get(ins.computation, 0)
    ops = mod.fused_ops(name)
    if ins.opcode == "while" or ins.computation in mod.condition:
        return "loop_control", ""
    if depth and re.fullmatch(r"[a-z]+[0-9]*\[\](\{\})?", ins.shape):
        return "loop_control", ""  # the loop counter and other scalar bookkeeping
    if "dot" in ops or "convolution" in ops:
        if not depth:
            return "gemm_outside", ""
        mnk = mod.dot_mnk(name)
        if any(k == batch for _, _, _, k in mnk):
            return "gemm_loop", "weight gradient (per step)"
        if "encoder" in p and {d for t in mnk for d in t[1:]} & encoder_inputs:
            return "gemm_loop", "input projection"
        return "gemm_loop", "recurrent"
    if ({"xor", "shift-right-logical"} <= ops or "_bernoulli" in p or "_uniform" in p or "threefry" in p
            or "rng-bit-generator" in ops or "dropout" in p):
        return "dropout", ""
    if phase_of(p) == "optimizer":
        return "optimizer", ""
    if "gather" in ops or "scatter" in ops:
        return ("loss", "") if "compile_loss" in p else ("embedding", "")
    if "compile_loss" in p:
        return "loss", ""
    if depth:
        if ops - PLUMBING - SLICE_OPS - LAYOUT_OPS:
            return "cell_elementwise", ""
        return "loop_slicing", ""  # pure data movement: x_t reads, output / residual writes, state copies
    if is_fill(mod, name):
        return "fill", ""
    if "attention" in p and "attention_output" not in p:
        return "attention", ""
    if ins.opcode in LAYOUT_OPS or mod.fused_root(name) in LAYOUT_OPS or ops & SLICE_OPS:
        return "layout", ""
    return "other", ""


# ----------------------------------------------------------------------------------- the trace
def load_trace(directory: str) -> list[dict]:
    files = glob.glob(os.path.join(directory, "plugins", "profile", "*", "perfetto_trace.json.gz"))
    if not files:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {directory}")
    with gzip.open(sorted(files)[-1]) as f:
        return json.load(f)["traceEvents"]


def attribute(events: list[dict]) -> tuple[dict, dict, float, int]:
    """Per-op wall-attributed and CPU time (microseconds), the traced wall span and the op event counts.

    Returns ``(wall_us by owner, cpu_us by owner, span_us, count by op)``; owners are HLO op names or the
    pseudo-ops ``<runtime>`` and ``<idle>``.
    """
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    per_thread: dict[int, list[dict]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and names.get(e.get("tid"), "python") != "python" and e["dur"] > 0:
            per_thread[e["tid"]].append(e)
    segments = []  # (start, end, thread, owner)
    counts: collections.Counter = collections.Counter()
    for tid, evs in per_thread.items():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[tuple[float, str | None]] = []  # (end, owner)
        cursor = None

        def emit(upto, stack=stack, tid=tid):
            nonlocal cursor
            if stack and cursor is not None and upto > cursor:
                segments.append((cursor, upto, tid, stack[-1][1]))
            cursor = upto if cursor is None or upto > cursor else cursor

        for e in evs:
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][0] <= start + 1e-3:
                emit(stack[-1][0])
                stack.pop()
            emit(start)
            hlo = e.get("args", {}).get("hlo_op")
            if hlo:
                owner = hlo
                counts[hlo] += 1
            elif stack and stack[-1][1] is not None:
                owner = stack[-1][1]  # executor / thread-pool waits inside an op belong to it
            elif "wait for completion" in e["name"]:
                owner = None  # the client thread waiting for the step: not work
            else:
                owner = "<runtime>"
            stack.append((min(end, stack[-1][0]) if stack else end, owner))
            cursor = start
        while stack:
            emit(stack[-1][0])
            stack.pop()
    segments = [s for s in segments if s[3] is not None]
    if not segments:
        return {}, {}, 0.0, counts
    cpu: collections.Counter = collections.Counter()
    for a, b, _, owner in segments:
        cpu[owner] += b - a
    # sweep: share each instant among the threads doing XLA work then
    points = []
    for i, (a, b, _, _) in enumerate(segments):
        points.append((a, 1, i))
        points.append((b, 0, i))
    points.sort()
    active: set[int] = set()
    wall: collections.Counter = collections.Counter()
    t_prev = points[0][0]
    for t, kind, i in points:
        if t > t_prev:
            if active:
                share = (t - t_prev) / len(active)
                for j in active:
                    wall[segments[j][3]] += share
            else:
                wall["<idle>"] += t - t_prev
        if kind:
            active.add(i)
        else:
            active.discard(i)
        t_prev = t
    span = points[-1][0] - points[0][0]
    return dict(wall), dict(cpu), span, counts


# ------------------------------------------------------------------------------------- peaks
def matmul_peaks(repeats: int = 10) -> dict:
    """GFLOP/s of jitted matmuls: 1024^3 and the step's typical shapes, float32 and bfloat16."""
    import jax
    import jax.numpy as jnp

    shapes = {"1024x1024x1024": (1024, 1024, 1024),
              "decoder_recurrent_128x512x2048": (128, 2048, 512),
              "encoder_recurrent_128x256x1024": (128, 1024, 256),
              "hoisted_input_1024x64x1024": (1024, 1024, 64),
              "output_layer_1024x512x43": (1024, 43, 512)}
    out = {}
    rng = np.random.default_rng(0)
    for label, (m, n, k) in shapes.items():
        for dtype in ("float32", "bfloat16"):
            a = jnp.asarray(rng.random((m, k), dtype=np.float32), dtype=dtype)
            b = jnp.asarray(rng.random((k, n), dtype=np.float32), dtype=dtype)
            f = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
            f(a, b).block_until_ready()
            inner = max(1, int(2e8 // (2 * m * n * k)))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(inner):
                    r = f(a, b)
                r.block_until_ready()
                times.append((time.perf_counter() - start) / inner)
            out[f"{label}_{dtype}"] = 2 * m * n * k / min(times) / 1e9
    return out


# ---------------------------------------------------------------------------------------- main
def build(args):
    import keras

    from biseq.batching import make_batches
    from biseq.model import Seq2Seq
    from biseq.training import MaskedCrossEntropy

    recipe = speed.main_recipe()
    mc, tc = recipe.model, recipe.train
    keras.utils.set_random_seed(tc.seed)
    pairs, sv, tv, train_pairs = speed.load_pairs(args.pairs)
    batches = make_batches(pairs, batch_size=tc.batch_size, rng=np.random.default_rng(1))
    model = Seq2Seq(config=mc, source_vocab_size=sv, target_vocab_size=tv)
    model.compile(optimizer=keras.optimizers.Adam(tc.learning_rate, global_clipnorm=tc.clip_norm),
                  loss=MaskedCrossEntropy(label_smoothing=tc.label_smoothing))
    return model, batches, recipe, sv, tv, train_pairs


def profile_shape(model, batch, args, trace_root: str):
    """Time and trace one bucket shape; returns per-op rows and timings."""
    import jax

    data = ((batch.source, batch.decoder_input), batch.decoder_target, batch.weight)
    started = time.perf_counter()
    model.train_on_batch(*data[:2], sample_weight=data[2])  # builds Keras's train function, compiles
    keras_tob = []
    for _ in range(args.timed_steps):
        t = time.perf_counter()
        model.train_on_batch(*data[:2], sample_weight=data[2])
        keras_tob.append(time.perf_counter() - t)
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
                                 metrics_variables=True, purge_model_variables=False)
    step = jax.jit(model.train_step, donate_argnums=0)  # what JAXTrainer.make_train_function jits
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - started
    hlo = compiled.as_text()
    for _ in range(2):
        _, state = compiled(state, data)
    jax.block_until_ready(state)
    times = []
    for _ in range(args.timed_steps):
        t = time.perf_counter()
        _, state = compiled(state, data)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    directory = tempfile.mkdtemp(prefix="trace-", dir=trace_root)
    t = time.perf_counter()
    with jax.profiler.trace(directory, create_perfetto_trace=True):
        for _ in range(args.traced_steps):
            _, state = compiled(state, data)
        jax.block_until_ready(state)
    traced_s = (time.perf_counter() - t) / args.traced_steps
    events = load_trace(directory)
    with open(os.path.join(directory, "module.hlo.txt"), "w", encoding="utf-8") as f:
        f.write(hlo)  # the op names in the trace are this module's instruction names
    # write the updated variables back, so the next shape continues training from here
    model._jax_state = dict(zip(("trainable_variables", "non_trainable_variables", "optimizer_variables",
                                 "metrics_variables"), state, strict=True))
    model._jax_state_synced = False
    model.jax_state_sync()
    return hlo, events, {"step_s": statistics.median(times), "train_on_batch_s": statistics.median(keras_tob),
                         "traced_s_incl_profiler": traced_s, "compile_and_first_steps_s": compile_s,
                         "trace_dir": directory}


def summarise(hlo: str, events: list[dict], steps: int, *, batch: int, encoder_inputs: set[int]):
    mod = Module(hlo)
    wall, cpu, span, counts = attribute(events)
    rows = {}
    for owner, w in wall.items():
        if owner == "<idle>":
            cat, role, ins = "idle", "", None
        elif owner == "<runtime>":
            cat, role, ins = "runtime", "", None
        else:
            cat, role = classify(mod, owner, batch=batch, encoder_inputs=encoder_inputs)
            ins = mod.instrs.get(owner)
        n = counts.get(owner, 0)
        rows[owner] = {
            "op": owner, "category": cat, "gemm_role": role,
            "wall_us_per_step": w / steps, "cpu_us_per_step": cpu.get(owner, 0.0) / steps,
            "calls_per_step": n / steps,
            "gflop_per_step": mod.flops(owner) * n / steps / 1e9 if ins is not None else 0.0,
            "opcode": ins.opcode if ins else "", "fused": sorted(mod.fused_ops(owner) - PLUMBING) if ins else [],
            "shape": ins.shape[:80] if ins else "", "in_loop": bool(ins and mod.loop_depth.get(ins.computation, 0)),
            "phase": phase_of(ins.op_name) if ins else "", "component": component_of(ins.op_name) if ins else "",
            "hlo_path": ins.op_name.removeprefix("jit(train_step)/")[:120] if ins else "",
            "gemm_shapes": sorted({f"{m}x{k}x{n}" + (f" (batch {b})" if b > 1 else "")
                                   for b, m, n, k in mod.dot_mnk(owner)}) if ins else [],
        }
    return rows, span / steps, sum(counts.values()) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12800, help="pairs bucketed into the pass (as speed.py)")
    parser.add_argument("--shapes", default="", help="comma-separated SxT bucket shapes (default: all of the pass)")
    parser.add_argument("--timed-steps", type=int, default=5)
    parser.add_argument("--traced-steps", type=int, default=4)
    parser.add_argument("--json", default=str(HERE / "profile_step.json"))
    parser.add_argument("--keep-trace", default="", help="keep the raw traces in this directory")
    parser.add_argument("--no-peaks", action="store_true", help="skip the matmul peak measurements")
    parser.add_argument("--allocator-ab", default="", metavar="LIB",
                        help="also compare glibc malloc with LD_PRELOAD=LIB (e.g. "
                             "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4) on one shape, alternating runs")
    parser.add_argument("--allocator-ab-shape", default="8x8")
    parser.add_argument("--allocator-ab-rounds", type=int, default=3)
    parser.add_argument("--only-allocator-ab", action="store_true",
                        help="re-measure only the allocator comparison into the existing --json")
    args = parser.parse_args()
    if args.only_allocator_ab:
        report = json.loads(Path(args.json).read_text(encoding="utf-8"))
        report["allocator_ab"] = allocator_ab(args.allocator_ab, args.allocator_ab_shape, args.allocator_ab_rounds)
        report["allocator_ab"]["command"] = "KERAS_BACKEND=jax python benchmarks/profile_step.py " + " ".join(sys.argv[1:])
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(json.dumps({k: v for k, v in report["allocator_ab"].items() if k != "runs"}))
        return

    load = os.getloadavg()
    peaks_before = {} if args.no_peaks else matmul_peaks()
    model, batches, recipe, sv, tv, train_pairs = build(args)
    mc = recipe.model
    shape_count = collections.Counter((b.source.shape[1], b.decoder_input.shape[1]) for b in batches)
    tokens = collections.defaultdict(list)
    for b in batches:
        tokens[(b.source.shape[1], b.decoder_input.shape[1])].append(float(b.weight.sum()))
    wanted = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",") if s] or \
        [s for s, _ in shape_count.most_common()]
    trace_root = args.keep_trace or tempfile.mkdtemp(prefix="biseq-profile-")
    os.makedirs(trace_root, exist_ok=True)

    per_shape, all_rows = {}, collections.defaultdict(lambda: collections.defaultdict(float))
    meta: dict[str, dict] = {}
    total_weight = sum(shape_count[s] for s in wanted)
    for shape in wanted:
        batch = next(b for b in batches if (b.source.shape[1], b.decoder_input.shape[1]) == shape)
        print(f"shape {shape[0]}x{shape[1]} ({shape_count[shape]} of {len(batches)} batches) ...",
              file=sys.stderr, flush=True)
        hlo, events, timing = profile_shape(model, batch, args, trace_root)
        rows, traced_wall, thunks = summarise(hlo, events, args.traced_steps, batch=recipe.train.batch_size,
                                      encoder_inputs={mc.embedding_dim, 2 * mc.encoder_units})
        weight = shape_count[shape] / total_weight
        total_us = sum(r["wall_us_per_step"] for r in rows.values())
        cats = collections.Counter()
        for r in rows.values():
            cats[r["category"]] += r["wall_us_per_step"] / total_us
        gemm_us = sum(r["wall_us_per_step"] for r in rows.values() if r["category"].startswith("gemm"))
        gflop = sum(r["gflop_per_step"] for r in rows.values())
        per_shape[f"{shape[0]}x{shape[1]}"] = {
            "batches_in_pass": shape_count[shape], "weight": weight,
            "target_tokens_per_step": statistics.mean(tokens[shape]),
            **{k: v for k, v in timing.items() if k != "trace_dir"},
            "traced_wall_s_per_step": traced_wall / 1e6, "gemm_gflop_per_step": gflop,
            "thunks_per_step": thunks,
            "thunks_in_loops_per_step": sum(r["calls_per_step"] for r in rows.values() if r["in_loop"]),
            "gemm_gflops_achieved_in_gemm_time": gflop / (gemm_us / 1e6) if gemm_us else 0.0,
            "gemm_gflops_over_step": gflop / timing["step_s"],
            "category_share": dict(cats.most_common()),
        }
        # epoch-weighted: weight x (this shape's share x its step time), so longer steps count for more
        for op, r in rows.items():
            key = (f"{shape[0]}x{shape[1]}", op)
            scale = weight * timing["step_s"] / (total_us / 1e6)  # trace-normalised to the untraced step time
            agg = all_rows[r["category"]]
            agg["wall_s"] += r["wall_us_per_step"] / 1e6 * scale
            agg["cpu_s"] += r["cpu_us_per_step"] / 1e6 * scale
            meta[key] = {**r, "weighted_s": r["wall_us_per_step"] / 1e6 * scale}
        if not args.keep_trace:
            shutil.rmtree(timing["trace_dir"], ignore_errors=True)

    if not args.keep_trace:
        shutil.rmtree(trace_root, ignore_errors=True)
    step_s = sum(v["weight"] * v["step_s"] for v in per_shape.values())
    tob_s = sum(v["weight"] * v["train_on_batch_s"] for v in per_shape.values())
    tokens_per_step = sum(v["weight"] * v["target_tokens_per_step"] for v in per_shape.values())
    gflop_per_step = sum(v["weight"] * v["gemm_gflop_per_step"] for v in per_shape.values())
    shares = {c: all_rows[c]["wall_s"] / step_s for c in CATEGORIES if c in all_rows}
    cpu_total = sum(v["cpu_s"] for v in all_rows.values())
    cpu_shares = {c: all_rows[c]["cpu_s"] / cpu_total for c in CATEGORIES if c in all_rows}
    gemm_s = sum(all_rows[c]["wall_s"] for c in ("gemm_loop", "gemm_outside") if c in all_rows)

    # the same op name is a different op in each shape's module: group by (category, phase, component, opcode
    # family, GEMM shape class) for the top list, which is what stays comparable across shapes
    grouped: dict[tuple, dict] = {}
    for (shape, op), r in meta.items():
        family = re.sub(r"\.\d+$", "", op)
        if r["category"].startswith("gemm"):
            family = "GEMM (dot / ynn_fusion)"
        elif r["category"] not in ("idle", "runtime", "loop_control", "fill", "layout"):
            family = r["hlo_path"].split("/")[-1] or family
        key = (r["category"], r["gemm_role"], r["phase"], r["component"], family, r["in_loop"])
        g = grouped.setdefault(key, {"category": r["category"], "gemm_role": r["gemm_role"], "phase": r["phase"],
                                     "component": r["component"], "op": family, "hlo_path_example": r["hlo_path"],
                                     "in_loop": r["in_loop"], "fused": set(), "gemm_shapes": set(),
                                     "weighted_s": 0.0, "gflop": 0.0, "examples": set()})
        g["weighted_s"] += r["weighted_s"]
        g["gflop"] += r["gflop_per_step"] * per_shape[shape]["weight"]
        g["fused"].update(r["fused"])
        g["examples"].add(f"{shape}:{op}")
        if shape == max(per_shape, key=lambda s: per_shape[s]["weight"]):
            g["gemm_shapes"].update(r["gemm_shapes"])
    top = sorted(grouped.values(), key=lambda g: -g["weighted_s"])[:15]
    top_ops = [{"share": g["weighted_s"] / step_s, "category": g["category"], "gemm_role": g["gemm_role"],
                "phase": g["phase"], "component": g["component"], "in_loop": g["in_loop"], "op": g["op"],
                "hlo_path_example": g["hlo_path_example"], "fused_ops": sorted(g["fused"])[:12],
                "gemm_shapes_in_main_shape": sorted(g["gemm_shapes"]),
                "gflops_achieved": g["gflop"] / g["weighted_s"] if g["gflop"] else None,
                "examples": sorted(g["examples"])[:4]} for g in top]
    by_phase = collections.Counter()
    by_component = collections.Counter()
    gemm_roles: dict[str, dict] = {}
    for (shape, _), r in meta.items():
        by_phase[r["phase"] or r["category"]] += r["weighted_s"] / step_s
        by_component[r["component"] or r["category"]] += r["weighted_s"] / step_s
        if r["category"].startswith("gemm"):
            g = gemm_roles.setdefault(f"{r['category']}:{r['gemm_role'] or 'all'}:{r['phase']}",
                                      {"share": 0.0, "gflop_per_step": 0.0, "seconds": 0.0})
            g["share"] += r["weighted_s"] / step_s
            g["seconds"] += r["weighted_s"]
            g["gflop_per_step"] += r["gflop_per_step"] * per_shape[shape]["weight"]
    for g in gemm_roles.values():
        seconds = g.pop("seconds")
        g["gflops_achieved"] = g["gflop_per_step"] / seconds * sum(v["weight"] for v in per_shape.values()) \
            if seconds else None
    gemm_roles = dict(sorted(gemm_roles.items(), key=lambda kv: -kv[1]["share"]))

    peaks_after = {} if args.no_peaks else matmul_peaks()
    peaks = {k: max(v, peaks_after[k]) for k, v in peaks_before.items()}  # the less disturbed of two runs
    f32_peak = peaks.get("1024x1024x1024_float32")
    report = {
        "what": "per-op profile of one training step (jax.jit(model.train_step), as fit runs it) of "
                "benchmarks/g2p_cmudict/main.toml's model, batch 128, on the embedded CMU dictionary, "
                "bucket shapes weighted as in one pass over --pairs pairs",
        "command": "KERAS_BACKEND=jax python benchmarks/profile_step.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
        "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
        "versions": versions(),
        "pairs": args.pairs, "batches_in_pass": len(batches), "timed_steps": args.timed_steps,
        "traced_steps": args.traced_steps,
        "step_s": step_s, "train_on_batch_s": tob_s,
        "keras_host_overhead_share": (tob_s - step_s) / tob_s,
        "target_tokens_per_step": tokens_per_step, "target_tokens_per_s": tokens_per_step / step_s,
        "gemm_gflop_per_step": gflop_per_step,
        "gemm_gflops_over_step": gflop_per_step / step_s,
        "gemm_gflops_in_gemm_time": gflop_per_step / gemm_s if gemm_s else None,
        "matmul_peaks_gflops": peaks,
        "gemm_share_of_f32_peak_over_step": gflop_per_step / step_s / f32_peak if f32_peak else None,
        "gemm_share_of_f32_peak_in_gemm_time": gflop_per_step / gemm_s / f32_peak if f32_peak and gemm_s else None,
        "shares_of_step_wall": shares,
        "shares_of_busy_cpu_time": cpu_shares,
        "thread_utilisation": cpu_total / step_s / 2 if cpu_total else None,
        "shares_by_phase": dict(by_phase.most_common()),
        "shares_by_component": dict(by_component.most_common()),
        "gemm_by_role": gemm_roles,
        "levers_amdahl": levers(shares, gemm_roles, peaks, per_shape, step_s, train_pairs),
        "allocator_ab": allocator_ab(args.allocator_ab, args.allocator_ab_shape, args.allocator_ab_rounds)
        if args.allocator_ab else None,
        "categories": CATEGORIES,
        "top15_ops": top_ops,
        "per_shape": per_shape,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(f"step {step_s * 1000:.1f} ms (train_on_batch {tob_s * 1000:.1f} ms), {tokens_per_step:.0f} target tokens, "
          f"{gflop_per_step:.2f} GEMM GFLOP/step -> {gflop_per_step / step_s:.0f} GFLOP/s over the step, "
          f"{gflop_per_step / gemm_s:.0f} in GEMM time" + (f"; f32 peak {f32_peak:.0f}" if f32_peak else ""))
    for c, s in sorted(shares.items(), key=lambda x: -x[1]):
        print(f"{100 * s:5.1f}%  {c:18s} {CATEGORIES[c][:90]}")
    for name, lever in report["levers_amdahl"].items():
        if isinstance(lever, dict):
            print(f"lever {name}: share {100 * lever['share']:.1f}%, " + ", ".join(
                f"{k} {v:.2f}x" for k, v in lever.items() if "speedup" in k and isinstance(v, float)))
    if report["allocator_ab"]:
        ab = report["allocator_ab"]
        print(f"allocator A/B on {ab['shape']}: glibc {ab['glibc']}; LD_PRELOAD={ab['library']} {ab['preloaded']}; "
              f"step speed-up {ab['step_speedup']:.2f}x")
    print(f"wrote {args.json}")


def amdahl(share: float, factor: float = math.inf) -> float:
    """Whole-step speed-up when a part taking ``share`` of the step gets ``factor`` times faster."""
    return 1.0 / (1.0 - share + (share / factor if factor != math.inf else 0.0))


def levers(shares: dict, gemm_roles: dict, peaks: dict, per_shape: dict, step_s: float, train_pairs: int) -> dict:
    """Amdahl bounds of the levers issue 27 lists, from the measured shares (see profile_step.md).

    ``ceiling``: the part the lever acts on takes no time at all. ``estimate``: the part's GEMM FLOPs are
    redone at the matmul rate measured here for such shapes (float32 unless said), the rest of the part
    vanishes. Shares are of the step's wall time; speed-ups are of the whole step.
    """
    s = collections.defaultdict(float, shares)
    gemm = s["gemm_loop"] + s["gemm_outside"]
    loop_rest = s["cell_elementwise"] + s["loop_slicing"] + s["loop_control"]
    weight = sum(v["weight"] for v in per_shape.values())
    thunks = sum(v["weight"] * v["thunks_per_step"] for v in per_shape.values()) / weight
    loop_thunks = sum(v["weight"] * v["thunks_in_loops_per_step"] for v in per_shape.values()) / weight
    loop_gaps = (s["idle"] + s["runtime"]) * loop_thunks / thunks  # gaps in proportion to the thunks in loops

    def gflop(prefix: str) -> float:
        return sum(v["gflop_per_step"] for k, v in gemm_roles.items() if k.startswith(prefix))

    def rate(keys, dtype="float32"):
        return statistics.mean(peaks[f"{k}_{dtype}"] for k in keys) if peaks else None

    def achieved(prefix: str) -> float:
        secs = sum(v["share"] for k, v in gemm_roles.items() if k.startswith(prefix)) * step_s
        return gflop(prefix) / secs if secs else 0.0

    small = ("decoder_recurrent_128x512x2048", "encoder_recurrent_128x256x1024")
    big = ("1024x1024x1024", "hoisted_input_1024x64x1024")
    out: dict = {"notes": levers.__doc__.split("\n\n", 1)[1].strip().replace("\n    ", " ")}
    # a fused LSTM step (oneDNN / FFI): one kernel per step, GEMM + gates + slicing, no scan buffers
    fused_part = s["gemm_loop"] + loop_rest + s["fill"] + loop_gaps
    rec = max(rate(small), achieved("gemm_loop")) if peaks else None  # never slower than in the step
    out["fused_lstm_step"] = {
        "acts_on": "everything inside the time loops (GEMMs, cell elementwise, slicing, loop control), the scan "
                   "buffers' initialisation, and the executor gaps in proportion to the thunks in loops "
                   f"({loop_thunks:.0f} of {thunks:.0f} thunks a step)",
        "share": fused_part, "ceiling_speedup": amdahl(fused_part),
        "estimate_speedup": amdahl(fused_part) if rec is None else
        1.0 / (1.0 - fused_part + gflop("gemm_loop") / rec / step_s),
        "non_gemm_share_only": loop_rest + s["fill"] + loop_gaps,
        "speedup_if_only_the_non_gemm_part_vanished": amdahl(loop_rest + s["fill"] + loop_gaps),
    }
    # bf16 matmuls: only the GEMM time changes (the casts to bf16 are left out)
    ratios = {k.removesuffix("_bfloat16"): peaks[k] / peaks[k.replace("bfloat16", "float32")]
              for k in peaks if k.endswith("_bfloat16")}
    small_ratio = statistics.mean(ratios[k] for k in small) if ratios else None
    out["bf16_matmuls"] = {
        "acts_on": "all GEMM time (in and outside the loops)", "share": gemm, "ceiling_speedup": amdahl(gemm),
        "measured_bf16_over_f32_rate": ratios,
        "estimate_speedup": amdahl(gemm, small_ratio) if small_ratio else None,
        "estimate_assumes": "every GEMM of the step speeds up by the bf16/f32 ratio measured at the recurrent "
                            "shapes (128x512x2048, 128x256x1024)",
    }
    # one big input-projection GEMM over all time steps (Keras's encoder LSTMCell computes x_t @ W per step)
    keys = ("gemm_loop:input projection", "gemm_loop:weight gradient")
    hoist_share = sum(v["share"] for k, v in gemm_roles.items() if k.startswith(keys))
    hoist_gflop = sum(v["gflop_per_step"] for k, v in gemm_roles.items() if k.startswith(keys))
    big_rate = max(rate(big), achieved("gemm_outside")) if peaks else None
    out["one_big_input_projection_gemm"] = {
        "acts_on": "per-step input-projection GEMMs (x_t @ W and dz @ W^T in Keras's encoder loops) and per-step "
                   "weight-gradient accumulations (dW += x_t^T dz, dU += h^T dz in the backward loops)",
        "share": hoist_share, "ceiling_speedup": amdahl(hoist_share),
        "estimate_speedup": None if big_rate is None else
        1.0 / (1.0 - hoist_share + hoist_gflop / big_rate / step_s),
    }
    out["time_major_layout"] = {
        "acts_on": "transposes / copies outside the loops (layout)", "share": s["layout"],
        "ceiling_speedup": amdahl(s["layout"]),
        "with_loop_slicing_too": amdahl(s["layout"] + s["loop_slicing"]),
    }
    compile_s = sum(v["compile_and_first_steps_s"] for v in per_shape.values())
    out["fewer_bucket_shapes"] = {
        "acts_on": "nothing inside a step: each shape is compiled once per run; fewer shapes save compilation "
                   "and cost padding (more tokens computed per real token)",
        "share": 0.0, "ceiling_speedup": 1.0,
        "compile_and_first_steps_s_all_shapes": compile_s, "shapes": len(per_shape),
        "compile_share_of_85_min_run": compile_s / (85 * 60),
        "epoch_s_at_this_step_time": train_pairs / 128 * step_s,
    }
    out["allocator_keeping_freed_memory"] = {
        "acts_on": "buffer initialisation (fresh pages first-touched every step; see allocator_ab)",
        "share": s["fill"], "ceiling_speedup": amdahl(s["fill"])}
    out["dropout_rng"] = {"acts_on": "dropout random bits (threefry) and masks", "share": s["dropout"],
                          "ceiling_speedup": amdahl(s["dropout"])}
    out["runtime_gaps"] = {"acts_on": "gaps with no op on any thread, and top-level runtime",
                           "share": s["idle"] + s["runtime"], "ceiling_speedup": amdahl(s["idle"] + s["runtime"])}
    if peaks:
        # fused step with bf16 GEMMs (oneDNN with AMX/AVX512-BF16): every GEMM at the bf16 rate, loops fused
        rest = 1.0 - gemm - loop_rest - s["fill"] - loop_gaps
        new = rest + (gflop("gemm_loop") / rate(small, "bfloat16") + gflop("gemm_outside") / rate(big, "bfloat16")) \
            / step_s
        out["fused_lstm_step_with_bf16"] = {
            "acts_on": "both: the fused step's part, and every GEMM at the measured bf16 rate",
            "share": gemm + loop_rest + s["fill"] + loop_gaps, "ceiling_speedup": amdahl(1.0 - rest),
            "estimate_speedup": 1.0 / new,
        }
    return out


def allocator_ab(preload: str, shape: str, rounds: int) -> dict:
    """Step time and buffer-initialisation share of one shape with glibc malloc and with ``LD_PRELOAD=preload``.

    XLA's CPU runtime allocates the step's temporary buffer (~140 MB here) afresh every step; glibc returns
    allocations that large to the kernel at once (mmap), so every step first-touches fresh zeroed pages,
    which shows as slow zero-fills and copies ("fill"). An allocator that keeps freed memory avoids that.
    Runs alternate (base, preload, base, ...) in child processes so machine load hits both alike.
    """
    import subprocess

    out: dict = {"library": preload, "shape": shape, "runs": []}
    for _ in range(rounds):
        for label in ("glibc", "preloaded"):
            env = dict(os.environ)
            if label == "preloaded":
                env["LD_PRELOAD"] = preload
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                subprocess.run([sys.executable, __file__, "--shapes", shape, "--no-peaks", "--timed-steps", "8",
                                "--traced-steps", "3", "--json", f.name], env=env, check=True,
                               capture_output=True)
                r = json.loads(Path(f.name).read_text(encoding="utf-8"))
            out["runs"].append({"allocator": label, "step_s": r["step_s"], "fill_share": r["shares_of_step_wall"]["fill"],
                                "load_average": os.getloadavg()[0]})
    for label in ("glibc", "preloaded"):
        runs = [r for r in out["runs"] if r["allocator"] == label]
        out[label] = {"step_s_min": min(r["step_s"] for r in runs),
                      "step_s_median": statistics.median(r["step_s"] for r in runs),
                      "fill_share_median": statistics.median(r["fill_share"] for r in runs)}
    # the least disturbed run of each (machine load only ever adds time)
    out["step_speedup"] = out["glibc"]["step_s_min"] / out["preloaded"]["step_s_min"]
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def versions() -> dict:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("jax", "jaxlib", "keras")}


if __name__ == "__main__":
    main()
