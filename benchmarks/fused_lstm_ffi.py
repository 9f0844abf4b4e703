"""Issue 27's "fused LSTM step as a JAX FFI custom call", measured: a hand-written C++ kernel against XLA.

Compiles ``fused_lstm_ffi.cc`` (g++, the jaxlib FFI headers, NumPy's bundled OpenBLAS for the per-step
sgemm), registers it with ``jax.ffi`` and puts it behind :func:`biseq.recurrence_jax.lstm_scan`'s custom
VJP in place of its two ``lax.scan`` loops (same inputs, same saved tensors, the weight gradient still one
XLA matmul after the loop). The kernel splits each call into parts (directions x row blocks), one thread
each, with single-threaded sgemm.

Checks the gradients against ``recurrence_jax`` and times, alternating in one process:

* ``layer``: ``jit(value_and_grad)`` of the LSTM loops alone at the main recipe's shapes (encoder: 2
  directions x 256 units; decoder: 1 x 512), XLA scan vs the kernel;
* ``step``: ``train_on_batch`` of the main recipe's model (``train_step.py``'s fixed 8x8 batch of 128):
  Keras's ``Bidirectional(LSTM)`` encoder (the default), ``RecurrentEncoder(fused=True)`` on the XLA
  scan, and the same on the kernel.

Usage (about 3 minutes; needs g++ and a NumPy wheel with its bundled OpenBLAS)::

    KERAS_BACKEND=jax python benchmarks/fused_lstm_ffi.py   # -> benchmarks/fused_lstm_ffi.json
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from biseq import recurrence_jax  # noqa: E402


def build_kernel(out_dir: Path) -> Path:
    """Compile the kernel against NumPy's bundled OpenBLAS; returns the shared library's path."""
    libs = sorted(glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "libscipy_openblas64_*.so")))
    if not libs:
        sys.exit("needs NumPy's bundled OpenBLAS (a PyPI wheel of numpy >= 2)")
    blas = Path(libs[0])
    target = out_dir / "libbiseq_lstm.so"
    subprocess.run(["g++", "-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC",
                    "-w", "-pthread", f"-I{jax.ffi.include_dir()}", "-DBISEQ_SGEMM=scipy_cblas_sgemm64_",
                    "-DBISEQ_SET_THREADS=scipy_openblas_set_num_threads64_",
                    "-DBISEQ_GET_THREADS=scipy_openblas_get_num_threads64_", str(HERE / "fused_lstm_ffi.cc"),
                    "-o", str(target), f"-L{blas.parent}", f"-l:{blas.name}", f"-Wl,-rpath,{blas.parent}"],
                   check=True)
    return target


def kernel_scan(library: Path):
    """``lstm_scan`` with the same signature and custom VJP as ``recurrence_jax``'s, on the C++ kernel."""
    lib = ctypes.cdll.LoadLibrary(str(library))
    jax.ffi.register_ffi_target("biseq_lstm_forward", jax.ffi.pycapsule(lib.BiseqLstmForward), platform="cpu")
    jax.ffi.register_ffi_target("biseq_lstm_backward", jax.ffi.pycapsule(lib.BiseqLstmBackward), platform="cpu")

    def spec(*shape):
        return jax.ShapeDtypeStruct(shape, jnp.float32)

    def forward(projections, mask, h0, c0, kernel):
        steps, dirs, batch, gates = projections.shape
        units = gates // 4
        state, seq = spec(dirs, batch, units), spec(steps, dirs, batch, units)
        return jax.ffi.ffi_call("biseq_lstm_forward", (seq, state, state, seq, seq,
                                                       spec(steps, dirs, batch, gates), seq))(
            projections, mask, h0, c0, kernel)

    @jax.custom_vjp
    def scan(projections, mask, h0, c0, kernel):
        return forward(projections, mask, h0, c0, kernel)[:3]

    def fwd(projections, mask, h0, c0, kernel):
        outputs, h, c, h_prevs, c_prevs, gates, tanh_cs = forward(projections, mask, h0, c0, kernel)
        return (outputs, h, c), (h_prevs, c_prevs, gates, tanh_cs, mask, kernel)

    def bwd(residuals, cotangents):
        h_prevs, c_prevs, gates, tanh_cs, mask, kernel = residuals
        d_outputs, d_h, d_c = cotangents
        dz, dh0, dc0 = jax.ffi.ffi_call("biseq_lstm_backward", (spec(*gates.shape), spec(*d_h.shape),
                                                                spec(*d_c.shape)))(
            d_outputs, mask, c_prevs, gates, tanh_cs, d_h, d_c, kernel)
        return dz, jnp.zeros_like(mask), dh0, dc0, jnp.einsum("tdbh,tdbg->dhg", h_prevs, dz)

    scan.defvjp(fwd, bwd)
    return scan


def layer_inputs(steps: int, dirs: int, batch: int, units: int, *, seed: int = 0):
    rng = np.random.default_rng(seed)
    mask = (rng.random((steps, dirs, batch, 1)) < 0.85).astype(np.float32)
    mask[0] = 1
    return (jnp.asarray(rng.normal(size=(steps, dirs, batch, 4 * units)), jnp.float32), jnp.asarray(mask),
            jnp.asarray(0.1 * rng.normal(size=(dirs, batch, units)), jnp.float32),
            jnp.asarray(0.1 * rng.normal(size=(dirs, batch, units)), jnp.float32),
            jnp.asarray(rng.normal(size=(dirs, units, 4 * units)) / np.sqrt(units), jnp.float32))


def loss_and_grads(scan):
    def loss(projections, mask, h0, c0, kernel):
        outputs, h, c = scan(projections, mask, h0, c0, kernel)
        return jnp.sum(outputs * jnp.sin(outputs)) + jnp.sum(h * h) + jnp.sum(jnp.cos(c))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 2, 3, 4)))


def ms_per_call(fn, args, calls: int) -> float:
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the least of each is kept)")
    parser.add_argument("--json", default=str(HERE / "fused_lstm_ffi.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan = kernel_scan(build_kernel(Path(tmp)))
        result: dict = {"machine": {"cpus": os.cpu_count(), "jax": jax.__version__}, "layer": {}, "step_ms": {}}
        for name, shape in (("encoder_2x256", (10, 2, 128, 256)), ("decoder_1x512", (12, 1, 128, 512))):
            inputs = layer_inputs(*shape)
            xla, ffi = loss_and_grads(recurrence_jax.lstm_scan), loss_and_grads(scan)
            (value_x, grads_x), (value_f, grads_f) = xla(*inputs), ffi(*inputs)
            error = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a))) for a, b in zip(grads_x, grads_f, strict=True))
            if error > 1e-4 or abs(float(value_x) - float(value_f)) > 1e-4 * abs(float(value_x)):
                sys.exit(f"{name}: the kernel's gradients differ from recurrence_jax's (max relative {error:.2e})")
            times: dict = {"xla_scan": [], "kernel": []}
            for _ in range(args.rounds):
                times["xla_scan"].append(ms_per_call(xla, inputs, 20))
                times["kernel"].append(ms_per_call(ffi, inputs, 20))
            best = {k: min(v) for k, v in times.items()}
            result["layer"][name] = {"shape_T_D_B_H": list(shape), "max_relative_gradient_error": error,
                                     "fwd_bwd_ms": best, "kernel_over_xla_scan_speed_ratio":
                                     best["xla_scan"] / best["kernel"]}
            print(name, result["layer"][name], flush=True)

        import train_step

        original = recurrence_jax.lstm_scan
        steps: dict = {"keras_encoder": [], "fused_xla_scan": [], "fused_kernel": []}
        try:
            for _ in range(args.rounds):
                for name in steps:
                    recurrence_jax.lstm_scan = scan if name == "fused_kernel" else original
                    seconds = train_step.time_variant("main", batch=128, steps=15, fused=name != "keras_encoder")
                    steps[name].append(seconds * 1e3)
                    print(name, round(seconds * 1e3, 1), "ms a step", flush=True)
        finally:
            recurrence_jax.lstm_scan = original
        result["step_ms"] = {k: min(v) for k, v in steps.items()}
        result["step_ms_all"] = steps
        result["step_kernel_over_keras_speed_ratio"] = min(steps["keras_encoder"]) / min(steps["fused_kernel"])
        result["step_kernel_over_fused_xla_speed_ratio"] = min(steps["fused_xla_scan"]) / min(steps["fused_kernel"])
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if "ratio" in k}, indent=1))


if __name__ == "__main__":
    main()
