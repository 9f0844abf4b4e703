"""State routing (planning; :meth:`Route.apply` runs a route on any array library): how the encoder's final
states become the decoder's initial states.

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
from collections.abc import Callable

DIRECTIONS = ("forward", "backward")


class BridgeError(ValueError):
    """The encoder's states cannot initialise the decoder as configured."""


def directions(kind: str) -> int:
    """1 for ``lstm``/``gru``, 2 for ``bilstm``/``bigru``."""
    return 2 if kind.startswith("bi") else 1


def state_parts(kind: str) -> tuple[str, ...]:
    """``("h", "c")`` for LSTM kinds, ``("h",)`` for GRU kinds."""
    return ("h", "c") if kind.endswith("lstm") else ("h",)


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

    def apply(self, tensors: list, *, zeros: Callable, concatenate: Callable, dense: Callable):
        """This state's value from its ``sources``' tensors, in any array library.

        Args:
            tensors: the source states, each ``[B, encoder_units]``, in ``sources`` order.
            zeros: ``size -> [B, size]`` zeros; ``concatenate``: a list -> joined on the last axis;
            dense: ``(route, x) -> tanh(W x + b)`` with the route's learned projection.
        """
        if self.op == "zero":
            return zeros(self.size)
        if self.op == "copy":
            return tensors[0]
        if self.op == "sum":
            return tensors[0] + tensors[1]
        joined = tensors[0] if len(tensors) == 1 else concatenate(tensors)
        return joined if self.op == "concat" else dense(self, joined)


def default_bridge(*, encoder_kind: str, decoder_kind: str) -> str:
    """``concat`` for a unidirectional decoder after a bidirectional encoder, else ``direct``."""
    return "concat" if directions(encoder_kind) == 2 and directions(decoder_kind) == 1 else "direct"


def required_decoder_units(*, bridge: str, encoder_kind: str, encoder_units: int) -> int | None:
    """The decoder units a bridge needs (``None``: any size, for ``dense`` and ``zero``)."""
    if bridge == "concat":
        return directions(encoder_kind) * encoder_units
    if bridge in ("sum", "forward", "direct"):
        return encoder_units
    return None


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
    needed = required_decoder_units(bridge=bridge, encoder_kind=encoder_kind, encoder_units=encoder_units)
    if needed is not None and needed != decoder_units:
        shape = f"(batch, {needed})"
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
            f"{needed}, or use bridge='dense' (a learned projection) or 'zero'."
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


