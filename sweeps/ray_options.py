"""Per-task Ray resources: the `--ray-num-cpus`, `--ray-num-gpus`, `--ray-resources` flags.

Each trial group is one Ray task; these flags say what one task asks the scheduler for (passed to
`ray.remote(...)`), and so how many groups a cluster runs at once. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

EXAMPLE = """'{"TPU": 4}'"""


def check_amount(flag: str, amount: Any) -> float:
    """A resource amount Ray accepts: a number >= 0, whole when above 1.

    Raises:
      ValueError: naming the flag, the value and what is valid.
    """
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"{flag}={amount!r} must be a number >= 0")
    if not math.isfinite(amount) or amount < 0 or (amount > 1 and amount != int(amount)):
        raise ValueError(
            f"{flag}={amount!r} must be a finite number >= 0, a whole number when above 1 "
            "(Ray's rule for resource amounts; fractions such as 0.5 share one unit)"
        )
    return float(amount)


def parse_resources(text: str | None) -> dict[str, float]:
    """`--ray-resources` JSON: custom resource name -> amount asked by every task.

    Raises:
      ValueError: not JSON, not an object, CPU/GPU given here, or an invalid amount.
    """
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"--ray-resources={text!r} is not valid JSON ({e}); give an object of resource "
            f"name to amount per task, e.g. {EXAMPLE}"
        ) from e
    if not isinstance(value, dict):
        raise ValueError(
            f"--ray-resources={text!r} must be a JSON object of resource name to amount per "
            f"task, e.g. {EXAMPLE}"
        )
    out = {}
    for name, amount in value.items():
        if name in ("CPU", "GPU"):
            raise ValueError(
                f"--ray-resources={text!r} names {name!r}; use --ray-num-{name.lower()}s for it"
            )
        out[name] = check_amount(f"--ray-resources[{name!r}]", amount)
    return out


def task_options(
    num_cpus: float | None, num_gpus: float | None, resources: Mapping[str, float] | None
) -> dict[str, Any]:
    """The `ray.remote` options of one task (None: Ray's default of 1 CPU, no GPU)."""
    options: dict[str, Any] = {}
    if num_cpus is not None:
        options["num_cpus"] = check_amount("--ray-num-cpus", num_cpus)
    if num_gpus is not None:
        options["num_gpus"] = check_amount("--ray-num-gpus", num_gpus)
    if resources:
        options["resources"] = dict(resources)
    return options


def request(options: Mapping[str, Any]) -> dict[str, float]:
    """The positive resource amounts a task with `options` asks for (Ray's resource names)."""
    asked = {"CPU": options.get("num_cpus", 1.0), "GPU": options.get("num_gpus", 0.0)}
    asked.update(options.get("resources", {}))
    return {k: float(v) for k, v in asked.items() if v > 0}


def tasks_that_fit(asked: Mapping[str, float], nodes: Iterable[Mapping[str, float]]) -> int:
    """How many tasks asking for `asked` run at once on `nodes` (each node's resources)."""
    if not asked:
        return 0
    total = 0
    for node in nodes:
        total += min(math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in asked.items())
    return total
