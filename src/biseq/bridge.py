"""State routing: how the encoder's final states become the decoder's initial states.

Keras orders recurrent states as ``[h, c]`` (LSTM), ``[h]`` (GRU), and for a
``Bidirectional`` wrapper ``forward states + backward states``: a bidirectional
LSTM returns ``[fwd_h, fwd_c, bwd_h, bwd_c]`` and a bidirectional GRU
``[fwd_h, bwd_h]``. ``Bidirectional(...)(x, initial_state=states)`` gives the
first half to the forward layer and the second half to the backward layer.

Bridges (per decoder layer; encoder layer ``l`` feeds decoder layer ``l``):

* ``concat``  unidirectional decoder; ``h0 = [fwd_h; bwd_h]``, ``c0 = [fwd_c; bwd_c]``
  (decoder units = directions x encoder units);
* ``sum``     unidirectional decoder; ``h0 = fwd_h + bwd_h`` (decoder units = encoder units);
* ``forward`` unidirectional decoder; the forward states only;
* ``direct``  each decoder direction from the same encoder direction: the seed's
  routing for a bidirectional decoder, the identity for uni -> uni;
* ``dense``   ``tanh(W [states] + b)``, a learned projection to any size; with a
  bidirectional decoder one projection per direction from the same direction; with
  different depths every decoder layer reads the top encoder layer;
* ``zero``    zeros.

An LSTM decoder after a GRU encoder starts its cell state ``c`` at zero; a GRU
decoder after an LSTM encoder reads ``h`` only.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

DIRECTIONS = ("forward", "backward")


class BridgeError(ValueError):
    """The encoder's states cannot initialise the decoder as configured."""


def directions(kind: str) -> int:
    """1 for ``lstm``/``gru``, 2 for ``bilstm``/``bigru``."""
    return 2 if kind.startswith("bi") else 1


def state_parts(kind: str) -> tuple[str, ...]:
    """``("h", "c")`` for LSTM kinds, ``("h",)`` for GRU kinds."""
    return ("h", "c") if kind.endswith("lstm") else ("h",)


def split_states(kind: str, states: list) -> list[dict]:
    """Keras's flat state list -> one ``{part: tensor}`` dict per direction."""
    parts = state_parts(kind)
    n = len(parts)
    expected = n * directions(kind)
    if len(states) != expected:
        raise BridgeError(f"A {kind} layer has {expected} states; received {len(states)}.")
    return [dict(zip(parts, states[d * n : (d + 1) * n], strict=True)) for d in range(directions(kind))]


def join_states(kind: str, per_direction: list[dict]) -> list:
    """One ``{part: tensor}`` dict per direction -> Keras's flat state list."""
    return [d[p] for d in per_direction for p in state_parts(kind)]


@dataclasses.dataclass(frozen=True)
class Route:
    """How one decoder state is made.

    Attributes:
        layer, direction, part: the decoder state (``direction`` 0 forward, 1 backward).
        op: ``copy``, ``concat``, ``sum``, ``dense`` or ``zero``.
        sources: ``(encoder layer, direction, part)`` of each input, in order.
        size: the decoder units.
    """

    layer: int
    direction: int
    part: str
    op: str
    sources: tuple[tuple[int, int, str], ...]
    size: int

    def describe(self, *, encoder_kind: str, encoder_units: int, decoder_kind: str) -> str:
        def name(layer: int, direction: int, part: str, kind: str) -> str:
            d = f"{DIRECTIONS[direction]} " if directions(kind) == 2 else ""
            return f"{kind} layer {layer + 1} {d}{part}"

        target = name(self.layer, self.direction, self.part, decoder_kind) + f" (batch, {self.size})"
        srcs = [name(*s, encoder_kind) + f" (batch, {encoder_units})" for s in self.sources]
        if self.op == "zero":
            how = "zeros"
        elif self.op == "copy":
            how = srcs[0]
        elif self.op == "dense":
            how = f"tanh(Dense({self.size})([{'; '.join(srcs)}]))"
        elif self.op == "concat":
            how = "[" + "; ".join(srcs) + "]"
        else:
            how = " + ".join(srcs)
        return f"{target} <- {how}"


def plan_routes(*, bridge: str, encoder_kind: str, encoder_units: int, encoder_layers: int,
                decoder_kind: str, decoder_units: int, decoder_layers: int) -> list[Route]:
    """Every decoder initial state's route; raises :class:`BridgeError` naming the shapes."""
    enc_dirs, dec_dirs = directions(encoder_kind), directions(decoder_kind)
    enc_parts = state_parts(encoder_kind)
    if bridge not in ("zero", "dense") and encoder_layers != decoder_layers:
        raise BridgeError(
            f"bridge={bridge!r} routes encoder layer l to decoder layer l, but the encoder has "
            f"{encoder_layers} layer(s) and the decoder {decoder_layers}. Use the same depth, "
            "or bridge='dense' (every decoder layer from the top encoder layer) or bridge='zero'."
        )
    if bridge in ("concat", "sum", "forward") and dec_dirs == 2:
        raise BridgeError(
            f"bridge={bridge!r} makes one state from both encoder directions, but decoder={decoder_kind!r} "
            "has two directions. Use bridge='direct' (forward to forward, backward to backward, as "
            "Bidirectional(...)(x, initial_state=[fwd_h, fwd_c, bwd_h, bwd_c]) does), 'dense' or 'zero'."
        )
    if bridge == "direct" and enc_dirs != dec_dirs:
        raise BridgeError(
            f"bridge='direct' routes each encoder direction to the same decoder direction, but "
            f"encoder={encoder_kind!r} has {enc_dirs} direction(s) and decoder={decoder_kind!r} {dec_dirs}. "
            + ("Use bridge='concat', 'sum', 'forward', 'dense' or 'zero'." if dec_dirs == 1
               else "Use a bidirectional encoder, or bridge='dense' or 'zero'.")
        )
    widths = {"concat": enc_dirs * encoder_units, "sum": encoder_units, "forward": encoder_units,
              "direct": encoder_units}
    if bridge in widths and widths[bridge] != decoder_units:
        shape = f"(batch, {widths[bridge]})"
        detail = {
            "concat": f"[forward h (batch, {encoder_units}); backward h (batch, {encoder_units})]"
            if enc_dirs == 2 else f"h (batch, {encoder_units})",
            "sum": f"forward h + backward h, each (batch, {encoder_units})",
            "forward": f"forward h (batch, {encoder_units})",
            "direct": f"h (batch, {encoder_units}) of the same direction",
        }[bridge]
        raise BridgeError(
            f"bridge={bridge!r} gives each decoder state the shape {shape} = {detail}, but the decoder "
            f"state is (batch, {decoder_units}) (decoder_units={decoder_units}). Set decoder_units="
            f"{widths[bridge]}, or use bridge='dense' (a learned projection) or 'zero'."
        )
    routes = []
    for layer in range(decoder_layers):
        src_layer = layer if encoder_layers == decoder_layers else encoder_layers - 1
        for direction in range(dec_dirs):
            for part in state_parts(decoder_kind):
                if bridge == "zero" or part not in enc_parts:
                    routes.append(Route(layer, direction, part, "zero", (), decoder_units))
                    continue
                if bridge == "concat":
                    op, dirs = ("concat" if enc_dirs == 2 else "copy"), range(enc_dirs)
                elif bridge == "sum":
                    op, dirs = ("sum" if enc_dirs == 2 else "copy"), range(enc_dirs)
                elif bridge == "forward":
                    op, dirs = "copy", [0]
                elif bridge == "direct":
                    op, dirs = "copy", [direction]
                else:  # dense
                    op = "dense"
                    dirs = range(enc_dirs) if dec_dirs == 1 else [min(direction, enc_dirs - 1)]
                sources = tuple((src_layer, d, part) for d in dirs)
                routes.append(Route(layer, direction, part, op, sources, decoder_units))
    return routes


@keras.saving.register_keras_serializable(package="biseq")
class Bridge(keras.layers.Layer):
    """Turns encoder states into decoder initial states by the planned routes.

    Call arguments:
        encoder_states: one Keras-ordered state list per encoder layer, each
            tensor ``[B, encoder_units]``.

    Returns:
        One Keras-ordered state list per decoder layer, each tensor
        ``[B, decoder_units]``.
    """

    def __init__(self, *, bridge: str, encoder_kind: str, encoder_units: int, encoder_layers: int,
                 decoder_kind: str, decoder_units: int, decoder_layers: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = dict(bridge=bridge, encoder_kind=encoder_kind, encoder_units=encoder_units,
                             encoder_layers=encoder_layers, decoder_kind=decoder_kind,
                             decoder_units=decoder_units, decoder_layers=decoder_layers)
        self.routes = plan_routes(**self.settings)
        self.projections = {}
        for r in self.routes:
            if r.op == "dense":
                key = f"l{r.layer}_d{r.direction}_{r.part}"
                self.projections[key] = keras.layers.Dense(decoder_units, activation="tanh",
                                                           name=f"bridge_{key}")

    def build(self, input_shape=None) -> None:
        for r in self.routes:
            if r.op == "dense":
                key = f"l{r.layer}_d{r.direction}_{r.part}"
                self.projections[key].build((None, len(r.sources) * self.settings["encoder_units"]))
        self.built = True

    def describe(self) -> list[str]:
        """One line per decoder state: ``decoder state (shape) <- how it is made``."""
        s = self.settings
        return [r.describe(encoder_kind=s["encoder_kind"], encoder_units=s["encoder_units"],
                           decoder_kind=s["decoder_kind"]) for r in self.routes]

    def call(self, encoder_states: list[list]) -> list[list]:
        s = self.settings
        per_layer = [split_states(s["encoder_kind"], list(st)) for st in encoder_states]
        batch = ops.shape(per_layer[0][0]["h"])[0]
        out: list[list[dict]] = [[{} for _ in range(directions(s["decoder_kind"]))]
                                 for _ in range(s["decoder_layers"])]
        for r in self.routes:
            tensors = [per_layer[layer][d][part] for layer, d, part in r.sources]
            if r.op == "zero":
                value = ops.zeros((batch, r.size), dtype=self.compute_dtype)
            elif r.op == "copy":
                value = tensors[0]
            elif r.op == "sum":
                value = tensors[0] + tensors[1]
            elif r.op == "concat":
                value = ops.concatenate(tensors, axis=-1)
            else:
                x = tensors[0] if len(tensors) == 1 else ops.concatenate(tensors, axis=-1)
                value = self.projections[f"l{r.layer}_d{r.direction}_{r.part}"](x)
            out[r.layer][r.direction][r.part] = value
        return [join_states(s["decoder_kind"], layer) for layer in out]

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}
