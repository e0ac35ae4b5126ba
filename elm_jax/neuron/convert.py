"""Interoperability with the published PyTorch ELM neuron (Spieler et al., ICLR 2024).

`from_reference(state_dict, config, version)` builds an `ELMNeuron` and its variables from the
reference's state_dict (key → array) and constructor keywords; `to_reference(tree, config,
version)` maps a variables-shaped tree (parameters, or their gradients) back to the reference's
names. The reference's names live only here: `neuron_config(config, version)` translates its
constructor keywords into a `NeuronConfig`. Kernels are transposed: torch.nn.Linear stores weight
[out, in], Flax kernel [in, out].

Command line (needs the optional extra `torch`):

    python -m elm_jax.neuron.convert IN.pt OUT.npz [--config model_config.json] [--version v1]

The authors' released NeuronIO Branch-ELMs are v1 and ship a `model_config.json` next to the
state file, which is the default `--config`. OUT.npz holds the flattened variables
(`params/mlp/dense_0/kernel`, ...), `config_json` and `version`; `load_npz` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from elm_jax import cli
from elm_jax.files import atomic_path
from elm_jax.neuron.config import VERSIONS, NeuronConfig
from elm_jax.neuron.layers import ELMNeuron

# NeuronConfig's names -> the reference's (its configs and model_config.json use these).
REFERENCE_NAMES = {
    "num_branches": "num_branch",
    "synapses_per_branch": "num_synapse_per_branch",
    "routing": "input_to_synapse_routing",
}
# NeuronConfig fields that are not constructor keywords of the reference.
OURS_ONLY = ("neuron_version", "wiring_seed")
# Keys the reference stores as empty float tensors when no routing is configured.
ROUTING_KEYS = ("input_to_synapse_indices", "valid_indices_mask")
TORCH_HINT = (
    "reading a PyTorch checkpoint needs torch: install it with "
    "`pip install -e '.[torch]'` (or `pip install 'torch>=2.4,<2.15'`) and rerun"
)


def neuron_config(config: Mapping[str, Any], version: str) -> NeuronConfig:
    """The `NeuronConfig` of the reference's constructor keywords (its names translated; its
    `input_to_synapse_routing=None` is `routing="none"`) and `version` ("v1" | "v2")."""
    ours = [f.name for f in dataclasses.fields(NeuronConfig) if f.name not in OURS_ONLY]
    theirs = {name: ours_ for ours_, name in REFERENCE_NAMES.items()}
    known = {REFERENCE_NAMES.get(name, name) for name in ours}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}: valid keys are {sorted(known)}")
    if version not in VERSIONS:
        raise ValueError(f"version={version!r}: valid choices are {VERSIONS}")
    kwargs = {theirs.get(key, key): value for key, value in config.items()}
    if kwargs.get("routing", "none") is None:
        kwargs["routing"] = "none"
    return NeuronConfig(**kwargs, neuron_version=version)


def _module_for(cfg: NeuronConfig, tau_s: Any = None) -> ELMNeuron:
    """The module; a v1 `tau_s` that differs inside a branch selects per-synapse traces."""
    if tau_s is not None:
        tau_s = np.asarray(tau_s, dtype=np.float64)
        if tau_s.shape == (cfg.num_synapses,):
            per_branch = tau_s.reshape(cfg.num_branches, -1)
            if np.any(per_branch != per_branch[:, :1]):
                cfg = dataclasses.replace(cfg, tau_s_value=tuple(float(t) for t in tau_s))
    return ELMNeuron(cfg)


def _mlp_keys(cfg: NeuronConfig) -> list[str]:
    # nn.Sequential numbering: Linear, activation, Linear, ... so the Linears are 0, 2, 4, ...
    return [f"mlp.network.{2 * j}" for j in range(cfg.mlp_num_layers + 1)]


def from_reference(
    state_dict: Mapping[str, Any], config: Mapping[str, Any], version: str = "v1"
) -> tuple[ELMNeuron, dict[str, Any]]:
    """(module, variables) equal to the reference model with this state_dict and config.

    Arrays keep their precision when x64 is enabled (float32 otherwise). When a v1 state has
    synaptic timescales that differ inside a branch, the module keeps per-synapse traces.
    """
    state = {k: np.asarray(v) for k, v in state_dict.items()}
    cfg = neuron_config(config, version)
    tau_key = "tau_b" if version == "v2" else "tau_s"
    needed = ["_proto_w_s", "_proto_tau_m", "w_y.weight", "w_y.bias", tau_key]
    needed += [f"{k}.{p}" for k in _mlp_keys(cfg) for p in ("weight", "bias")]
    if cfg.routing != "none":
        needed += list(ROUTING_KEYS)
    missing = [k for k in needed if k not in state]
    extra = sorted(set(state) - set(needed) - set(ROUTING_KEYS))
    if missing or extra:
        raise ValueError(
            f"state_dict does not fit a {version} neuron with this config: missing {missing}, "
            f"unexpected {extra}"
        )
    module = _module_for(cfg, state[tau_key] if version == "v1" else None)

    params: dict[str, Any] = {
        "proto_w_s": state["_proto_w_s"],
        "mlp": {
            f"dense_{j}": {"kernel": state[f"{k}.weight"].T, "bias": state[f"{k}.bias"]}
            for j, k in enumerate(_mlp_keys(cfg))
        },
        "w_y": {"kernel": state["w_y.weight"].T, "bias": state["w_y.bias"]},
    }
    constants: dict[str, Any] = {tau_key: state[tau_key]}
    if cfg.learn_memory_tau:
        params["proto_tau_m"] = state["_proto_tau_m"]
    else:
        constants["proto_tau_m"] = state["_proto_tau_m"]
    if cfg.routing != "none":
        constants["routing_indices"] = state["input_to_synapse_indices"].astype(np.int32)
        constants["routing_mask"] = state["valid_indices_mask"].astype(bool)
    variables = {"params": params, "constants": constants}

    expected = jax.eval_shape(
        module.init, jax.random.key(0), jnp.zeros((1, 1, cfg.num_input), jnp.float32)
    )
    got = jax.tree_util.tree_map(np.shape, variables)
    want = jax.tree_util.tree_map(lambda a: tuple(a.shape), expected)
    if got != want:
        raise ValueError(f"state_dict shapes {got} do not match the module's {want}")
    return module, jax.tree_util.tree_map(jnp.asarray, variables)


def to_reference(
    tree: Mapping[str, Any], config: Mapping[str, Any], version: str = "v1"
) -> dict[str, np.ndarray]:
    """The reference's key → array for a variables-shaped tree (or a bare `params` tree).

    Works for parameters and for gradients alike; only the entries present are returned.
    """
    cfg = neuron_config(config, version)
    if "params" in tree or "constants" in tree:
        flat = {**tree.get("constants", {}), **tree.get("params", {})}
    else:
        flat = dict(tree)
    out: dict[str, np.ndarray] = {}
    names = {
        "proto_w_s": "_proto_w_s",
        "proto_tau_m": "_proto_tau_m",
        "tau_b": "tau_b",
        "tau_s": "tau_s",
        "routing_indices": "input_to_synapse_indices",
        "routing_mask": "valid_indices_mask",
    }
    for ours, theirs in names.items():
        if ours in flat:
            out[theirs] = np.asarray(flat[ours])
    if "mlp" in flat:
        for j, k in enumerate(_mlp_keys(cfg)):
            out[f"{k}.weight"] = np.asarray(flat["mlp"][f"dense_{j}"]["kernel"]).T
            out[f"{k}.bias"] = np.asarray(flat["mlp"][f"dense_{j}"]["bias"])
    if "w_y" in flat:
        out["w_y.weight"] = np.asarray(flat["w_y"]["kernel"]).T
        out["w_y.bias"] = np.asarray(flat["w_y"]["bias"])
    return out


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = np.asarray(value)
    return flat


def save_npz(
    path: str, config: Mapping[str, Any], version: str, variables: Mapping[str, Any]
) -> None:
    """Writes the variables, config and version to `path` atomically."""
    arrays = _flatten(variables)
    arrays["config_json"] = np.asarray(json.dumps(dict(config), sort_keys=True))
    arrays["version"] = np.asarray(version)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: str) -> tuple[ELMNeuron, dict[str, Any]]:
    """(module, variables) from a file written by `save_npz` / the command line."""
    with np.load(path) as data:
        config = json.loads(str(data["config_json"]))
        version = str(data["version"])
        variables: dict[str, Any] = {}
        for key in data.files:
            if key in ("config_json", "version"):
                continue
            node = variables
            *parents, leaf = key.split("/")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = jnp.asarray(data[key])
    tau_s = variables.get("constants", {}).get("tau_s")
    return _module_for(neuron_config(config, version), tau_s), variables


def _read_torch_state(path: str) -> dict[str, np.ndarray]:
    try:
        import torch  # the optional extra `torch`: only this command needs it
    except ImportError as err:
        raise cli.MissingDependencyError(TORCH_HINT) from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for a bad file
        raise cli.UsageError(f"{path}: not a readable PyTorch state_dict ({err})") from err
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state_dict (a mapping of tensors), got {type(obj)}")
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def _read_config(path: str) -> dict[str, Any]:
    """The reference's constructor keywords from `path` (UsageError naming the file)."""
    if not os.path.isfile(path):
        raise cli.UsageError(f"config file {path} not found: pass --config model_config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise cli.UsageError(f"--config {path}: not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise cli.UsageError(
            f"--config {path}: expected a JSON object of constructor keywords, got "
            f"{type(config).__name__}"
        )
    return config


def _convert(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="elm_jax.neuron.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="reference state_dict (.pt)")
    parser.add_argument("output", help="where to write the .npz")
    parser.add_argument("--config", help="model_config.json (default: next to the input)")
    parser.add_argument("--version", default="v1", choices=VERSIONS)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.input):
        raise cli.UsageError(f"input {args.input}: no such file; pass the reference's .pt file")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK | os.X_OK):
        raise cli.UsageError(
            f"output {args.output}: {out_dir} is not a writable directory; choose one you can "
            "write to"
        )
    config_path = args.config or os.path.join(
        os.path.dirname(os.path.abspath(args.input)), "model_config.json"
    )
    config = _read_config(config_path)
    try:
        neuron_config(config, args.version)
    except (TypeError, ValueError) as err:
        raise cli.UsageError(f"--config {config_path}: {cli.one_line(err)}") from err
    state = _read_torch_state(args.input)
    with jax.enable_x64(True):  # keep the checkpoint's precision
        try:
            _, variables = from_reference(state, config, args.version)
        except ValueError as err:
            raise cli.UsageError(
                f"{args.input} does not fit --config {config_path} --version {args.version}: "
                f"{cli.one_line(err)}"
            ) from err
        save_npz(args.output, config, args.version, variables)
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: converts a reference checkpoint to an .npz of ELMNeuron variables.

    Returns the exit code; failures print one line on stderr (docs/cli.md).
    """
    return cli.run(_convert, argv, prog="elm_jax.neuron.convert")


if __name__ == "__main__":
    sys.exit(main())
