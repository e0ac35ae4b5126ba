"""Is the NeuronIO-style default hard? A Branch-ELM against a linear neuron, same steps. JSON lines.

Trains `neuronio_routing.py` (Branch-ELM, d_m = 15) and `neuronio_linear.py` (d_m = 1, linear MLP:
the LIF-like neuron) on `neuronio_default` (built first when absent) for `--steps` updates each,
then scores the final parameters on the held-out test simulations: spike AUC (the trainer's,
from logit histograms) and soma RMSE in mV, beside the input-blind figures (AUC 0.5).

    python probes/neuronio_default_hardness.py --steps 3000 [--lr 3e-3] [--data-dir DIR]

One line per model: {"model", "d_m", "params", "steps", "wall_s", "test_auc", "test_soma_rmse_mv",
"val_auc", "input_blind"}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from elm_jax.configs import neuronio_routing
from elm_jax.runtime import enable_compilation_cache
from elm_jax.train.loop import Run

MODELS = {"branch_elm": "d_m=15", "linear": "linear=1"}


class _ScoredRun(Run):
    """A run that also keeps the final parameters' full test figures (loss, auc, soma_rmse)."""

    final_test: dict | None = None

    def _seed_results(self, state, val):
        self.final_test = self._evaluate(state, "params", "test", self.cfg.data.test_max_batches)
        return super()._seed_results(state, val)


def train_one(model: str, steps: int, lr: float, data_dir: str | None, workdir: str) -> dict:
    """Trains one model on the default and returns its JSON record."""
    items = [MODELS[model], f"steps={steps}", f"lr={lr}", "data.name=neuronio_default",
             f"eval_every={steps}", f"checkpoint_every={steps}", f"log_every={max(1, steps // 10)}"]  # fmt: skip
    cfg = neuronio_routing.get_config(",".join(items))
    if data_dir is not None:
        with cfg.unlocked():
            cfg.data.data_dir = data_dir
    run = _ScoredRun.prepare(cfg, workdir)
    summary = run.execute()
    test = run.final_test or {}
    seed = summary["seeds"][0]
    return {
        "model": model,
        "d_m": summary["model"]["d_m"],
        "params": summary["cost"].get("params_total", summary["cost"]),
        "steps": summary["steps"],
        "learning_rate": lr,
        "wall_s": round(summary["wall_s"], 1),
        "test_auc": test.get("auc", [None])[0],
        "test_soma_rmse_mv": test.get("soma_rmse", [None])[0],
        "test_loss": test.get("loss", [None])[0],
        "val_auc": seed["final_val_metric"],
        "input_blind": summary["input_blind"],
        "data": summary["data"].get("source"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", default="branch_elm,linear")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    enable_compilation_cache()
    base = args.workdir or tempfile.mkdtemp(prefix="neuronio_default_hardness-")
    for model in args.models.split(","):
        record = train_one(model, args.steps, args.lr, args.data_dir, os.path.join(base, model))
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
