"""The ``Bridge`` layer: executes the routes planned by :mod:`biseq.routing` on tensors."""

from __future__ import annotations

import keras
from keras import ops

from biseq.routing import BridgeError, directions, plan_routes, state_parts

__all__ = ["Bridge", "BridgeError", "join_states", "split_states"]


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
            out[r.layer][r.direction][r.part] = r.apply(
                tensors, zeros=lambda size: ops.zeros((batch, size), dtype=self.compute_dtype),
                concatenate=lambda ts: ops.concatenate(ts, axis=-1),
                dense=lambda route, x: self.projections[f"l{route.layer}_d{route.direction}_{route.part}"](x))
        return [join_states(s["decoder_kind"], layer) for layer in out]

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}
