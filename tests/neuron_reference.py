"""A NumPy transcription of the published PyTorch ELM neuron's forward pass (v1 and v2).

It works on the reference's own state_dict layout (torch.nn.Linear weights [out, in]), one time
step at a time, with per-synapse traces in v1, so it shares no code with `elm_jax.neuron`.
Used by the tests as an independent oracle for configurations the stored vectors do not cover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

REFERENCE_DEFAULTS = {
    "lambda_value": 5.0,
    "mlp_num_layers": 1,
    "mlp_hidden_size": None,
    "mlp_activation": "relu",
    "memory_tau_min": 1.0,
    "memory_tau_max": 1000.0,
    "learn_memory_tau": False,
    "num_branch": None,
    "num_synapse_per_branch": 1,
    "input_to_synapse_routing": None,
    "delta_t": 1.0,
}


def random_state(
    config: Mapping[str, Any], version: str, seed: int, tau_s: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """A reference-layout state_dict with random weights (float64)."""
    c = {**REFERENCE_DEFAULTS, **config}
    rng = np.random.default_rng(seed)
    d = c["num_branch"] or c["num_input"]
    s = d * c["num_synapse_per_branch"]
    m, o = c["num_memory"], c["num_output"]
    h = c["mlp_hidden_size"] or 2 * m
    sizes = [d + m] + [h] * c["mlp_num_layers"] + [m]
    state: dict[str, np.ndarray] = {
        "_proto_w_s": rng.normal(0.3, 0.5, s),
        "_proto_tau_m": rng.normal(0.0, 2.0, m),
        "w_y.weight": rng.normal(0, 0.5, (o, m)),
        "w_y.bias": rng.normal(0, 0.1, o),
    }
    for j in range(len(sizes) - 1):
        bound = 1 / math.sqrt(sizes[j])
        state[f"mlp.network.{2 * j}.weight"] = rng.uniform(-bound, bound, (sizes[j + 1], sizes[j]))
        state[f"mlp.network.{2 * j}.bias"] = rng.uniform(-bound, bound, sizes[j + 1])
    if version == "v1":
        state["tau_s"] = np.full(s, 5.0) if tau_s is None else np.asarray(tau_s, np.float64)
    else:
        state["tau_b"] = rng.uniform(2.0, 8.0, d)
    routing = c["input_to_synapse_routing"]
    if routing == "random_routing":
        state["input_to_synapse_indices"] = rng.integers(0, c["num_input"], s)
        state["valid_indices_mask"] = np.ones(s, np.int64)
    elif routing == "neuronio_routing":
        stride = math.ceil(c["num_input"] / d)
        window = np.arange(d)[:, None] * stride + np.arange(c["num_synapse_per_branch"])[None]
        half = c["num_input"] // 2
        interleave = (np.arange(c["num_input"]) % 2) * half + np.arange(c["num_input"]) // 2
        state["valid_indices_mask"] = (window < c["num_input"]).reshape(-1)
        state["input_to_synapse_indices"] = interleave[
            np.minimum(window, c["num_input"] - 1).reshape(-1)
        ]
    return state


def forward(
    state: Mapping[str, np.ndarray], config: Mapping[str, Any], version: str, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y [b, t, o], branch input [b, t, d], memory [b, t, m]) of the reference model."""
    c = {**REFERENCE_DEFAULTS, **config}
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    d = c["num_branch"] or c["num_input"]
    lo, hi = c["memory_tau_min"], c["memory_tau_max"]
    if version == "v2":
        hi = max(lo + 3e-6, hi)
    dt, lam = c["delta_t"], c["lambda_value"]
    tau_m = (hi - lo) / (1 + np.exp(-state["_proto_tau_m"])) + lo
    kappa_m = np.exp(-dt / np.maximum(tau_m, 1e-6))
    if version == "v1":
        kappa_syn = np.exp(-dt / np.maximum(state["tau_s"], 1e-6))
        gain = lam * (1 - kappa_m)
    else:
        kappa_syn = np.exp(-dt / np.maximum(state["tau_b"], 1e-6))
        gain = 1 - np.exp(-dt * lam / np.maximum(tau_m, 1e-6))
    w_s = np.maximum(state["_proto_w_s"], 0.0)
    if c["input_to_synapse_routing"] is not None:
        x = x[:, :, state["input_to_synapse_indices"]] * state["valid_indices_mask"]
    layers = [
        (state[f"mlp.network.{2 * j}.weight"], state[f"mlp.network.{2 * j}.bias"])
        for j in range(c["mlp_num_layers"] + 1)
    ]
    act = {"relu": lambda z: np.maximum(z, 0), "silu": lambda z: z / (1 + np.exp(-z))}[
        c["mlp_activation"]
    ]
    trace = np.zeros((batch, len(kappa_syn)))
    m = np.zeros((batch, len(kappa_m)))
    ys, branches, memories = [], [], []
    for t in range(steps):
        if version == "v1":
            trace = kappa_syn * trace + w_s * x[:, t]
            branch = trace.reshape(batch, d, -1).sum(-1)
        else:
            trace = kappa_syn * trace + (w_s * x[:, t]).reshape(batch, d, -1).sum(-1)
            branch = trace
        z = np.concatenate([branch, kappa_m * m], axis=-1)
        for j, (weight, bias) in enumerate(layers):
            z = z @ weight.T + bias
            if j < len(layers) - 1:
                z = act(z)
        m = kappa_m * m + gain * 1.7159 * np.tanh(z * 2 / 3)
        ys.append(m @ state["w_y.weight"].T + state["w_y.bias"])
        branches.append(branch)
        memories.append(m)
    return tuple(np.stack(a, axis=1) for a in (ys, branches, memories))
