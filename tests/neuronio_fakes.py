"""Small NeuronIO simulation files in the released format, written by the tests themselves.

`fake_experiment` builds the pickled dict of a few random simulations (known spike times);
`write_fake_dataset` lays out the reference's folders (full_ergodic_train_batch_1 = validation,
_2 = training, a test folder) with such files.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

NUM_SEGMENTS = 639


def fake_experiment(
    seed: int, num_sims: int = 3, seconds: float = 1.2, rate_hz: float = 2.0
) -> dict:
    """A NeuronIO-format dict: integer input spike times in ms, float soma spike times, soma mV.

    The soma voltage is a leaky sum of the signed inputs, so a model can learn something.
    """
    rng = np.random.default_rng(seed)
    duration = int(round(seconds * 1000))
    sims = []
    for _ in range(num_sims):
        ex, inh = {}, {}
        drive = np.zeros(duration)
        for seg in range(NUM_SEGMENTS):
            for table, sign in ((ex, 1.0), (inh, -1.0)):
                n = rng.poisson(rate_hz * seconds)
                if n:
                    t = np.sort(rng.integers(0, duration, size=n)).astype(np.float64)
                    table[seg] = t
                    np.add.at(drive, t.astype(int), sign)
        kernel = np.exp(-np.arange(60) / 15.0)
        v = -70.0 + 0.3 * np.convolve(drive, kernel)[:duration]
        out = np.flatnonzero((v[1:] > -67.0) & (v[:-1] <= -67.0)) + 1.3
        v[(out - 0.3).astype(int)] = 20.0  # an action potential peak
        sims.append(
            {
                "exInputSpikeTimes": ex,
                "inhInputSpikeTimes": inh,
                "outputSpikeTimes": out.astype(np.float64),
                "somaVoltageLowRes": v.astype(np.float64),
            }
        )
    return {
        "Params": {
            "allSegmentsType": ["basal"] * 262 + ["apical"] * 377,
            "totalSimDurationInSec": seconds,
            "allSegments_DistFromSoma": list(range(NUM_SEGMENTS)),
        },
        "Results": {"listOfSingleSimulationDicts": sims},
    }


def write_pickle(path: str, experiment: dict) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(experiment, f, protocol=2)
    return path


def write_fake_dataset(root: str, num_sims: int = 3, seconds: float = 1.2) -> dict[str, str]:
    """Writes train/validation/test files in the reference's folder layout; {split: path}."""
    layout = {
        "train": "full_ergodic_train_batch_2/exp__sim__train_0.p",
        "validation": "full_ergodic_train_batch_1/exp__sim__valid_0.p",
        "test": "neuronio_test_data/exp__sim__test_0.p",
    }
    return {
        split: write_pickle(os.path.join(root, rel), fake_experiment(i, num_sims, seconds))
        for i, (split, rel) in enumerate(layout.items())
    }
