"""NeuronIO (Beniaguev, Segev & London 2021): the simulation files of a detailed L5 pyramidal neuron.

Each file is a pickle of one batch of simulations (128 in the released data, 6 s each):

    {"Params": {"allSegmentsType": [639 segment names], "totalSimDurationInSec": 6, ...},
     "Results": {"listOfSingleSimulationDicts": [
         {"exInputSpikeTimes": {segment: spike times in ms}, "inhInputSpikeTimes": {...},
          "outputSpikeTimes": soma spike times in ms, "somaVoltageLowRes": soma mV at 1 ms},
         ...]}}

`read_simulations(path)` turns one file into `Simulations` (axis letters: k simulation, t 1 ms
step, i input channel), binned as the ELM paper's loader does:

* inputs [k, t, 1278] int8: channel c < 639 is the excitatory synapse on segment c, channel
  639 + c the inhibitory synapse on segment c; +1 when the excitatory synapse fired in that
  millisecond, -1 for an inhibitory one, 0 otherwise (the reference bins both into one boolean
  matrix, excitatory rows first, then multiplies by the signs [+1]·639 + [-1]·639). Integer
  times index the bin directly; non-integer times are floored. Several spikes in one bin count
  once.
* spikes [k, t] float32: 1 in bin int(t_spike - 0.5) (the reference's rounding).
* soma_mv [k, t] float32: the raw soma voltage; `preprocess_soma` gives the training target
  (min(v, -55 mV) - (-67.7 mV)) / 10.

Safety: the files are pickles, and unpickling runs whatever a file names. The reader uses a
restricted unpickler that can build only plain containers, numbers and strings and numpy
arrays, scalars and dtypes (`ALLOWED_GLOBALS`); any other object in a file raises
DataCorruptError naming it, before it is constructed.

Arrays in the same layout may also be stored as `.npz` files with the keys `inputs`, `spikes`,
`soma_mv` (`write_npz`, e.g. by a simulator); `read_simulations` reads both.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from elm_jax.data.common import DataCorruptError
from elm_jax.files import atomic_path

NUM_SEGMENTS = 639
NUM_CHANNELS = 2 * NUM_SEGMENTS  # excitatory segments first, then inhibitory
SOMA_THRESHOLD_MV = -55.0
SOMA_BIAS_MV = -67.7
SOMA_SCALE = 0.1  # the training target is in units of 10 mV

# (module, name) pairs a NeuronIO pickle may reference: numpy arrays/scalars/dtypes under their
# numpy 1 and numpy 2 module names, and the containers Python 2 and 3 pickles name explicitly.
_BUILTINS = ("list", "dict", "set", "frozenset", "tuple", "int", "float", "complex", "bytes",
             "bytearray", "str", "object", "long", "unicode")  # fmt: skip
ALLOWED_GLOBALS = frozenset(
    {(m, n) for m in ("builtins", "__builtin__") for n in _BUILTINS}
    | {
        (m, n)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    }
    | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),  # how protocol-2 pickles of Python 3 store bytes
    }
)


@dataclasses.dataclass(frozen=True)
class Simulations:
    """The simulations of one file, binned at 1 ms (see the module docstring for the layout)."""

    inputs: np.ndarray  # [k, t, 1278] int8 in {-1, 0, +1}
    spikes: np.ndarray  # [k, t] float32 in {0, 1}
    soma_mv: np.ndarray  # [k, t] float32, mV

    @property
    def num_simulations(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def duration_ms(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def soma(self) -> np.ndarray:
        """The soma training target [k, t] float32 (`preprocess_soma`)."""
        return preprocess_soma(self.soma_mv)


def synapse_signs(num_segments: int = NUM_SEGMENTS) -> np.ndarray:
    """[2·num_segments] int8: +1 for the excitatory channels (first half), -1 for the inhibitory."""
    return np.concatenate([np.ones(num_segments, np.int8), -np.ones(num_segments, np.int8)])


def preprocess_soma(soma_mv: np.ndarray) -> np.ndarray:
    """The soma target: voltage capped at -55 mV, -67.7 mV subtracted, scaled by 1/10 (float32)."""
    v = np.minimum(np.asarray(soma_mv, np.float64), SOMA_THRESHOLD_MV)
    return ((v - SOMA_BIAS_MV) * SOMA_SCALE).astype(np.float32)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a NeuronIO file holds only containers, "
                "numbers, strings and numpy arrays"
            )
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def safe_unpickle(data: bytes) -> Any:
    """Unpickles `data` allowing only `ALLOWED_GLOBALS` (Python 2 strings read as latin-1)."""
    return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _corrupt(path: str, what: str) -> DataCorruptError:
    return DataCorruptError(f"{path}: {what}; expected a NeuronIO simulation file (docs/data.md)")


def _get(path: str, mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise _corrupt(path, f"{where} is a {type(mapping).__name__}, not a dict")
    if key not in mapping:
        raise _corrupt(path, f"{where} has no key {key!r} (keys: {sorted(map(str, mapping))[:8]})")
    return mapping[key]


def _bin_inputs(path: str, times: Any, where: str, num_segments: int, duration_ms: int):
    """(segment, bin) index arrays of a {segment: spike times} dict."""
    if not isinstance(times, Mapping):
        raise _corrupt(path, f"{where} is a {type(times).__name__}, not a dict segment -> times")
    rows, cols = [], []
    for segment, values in times.items():
        try:
            seg = int(segment)
            t = np.floor(np.asarray(values, np.float64).reshape(-1)).astype(np.int64)
        except (TypeError, ValueError) as err:
            raise _corrupt(path, f"{where}[{segment!r}]: not spike times in ms ({err})") from err
        if not 0 <= seg < num_segments:
            raise _corrupt(path, f"{where}[{segment!r}]: segment outside 0..{num_segments - 1}")
        if t.size and (t.min() < 0 or t.max() >= duration_ms):
            raise _corrupt(
                path, f"{where}[{segment!r}]: spike time {t.min()}..{t.max()} ms outside the "
                f"simulation's 0..{duration_ms - 1} ms"
            )  # fmt: skip
        rows.append(np.full(t.shape, seg, np.int64))
        cols.append(t)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def _parse(path: str, experiment: Any) -> Simulations:
    params = _get(path, experiment, "Params", "the file")
    results = _get(path, experiment, "Results", "the file")
    segments = _get(path, params, "allSegmentsType", "Params")
    seconds = _get(path, params, "totalSimDurationInSec", "Params")
    sims = _get(path, results, "listOfSingleSimulationDicts", "Results")
    try:
        num_segments = len(segments)
        duration_ms = int(round(float(seconds) * 1000))
    except (TypeError, ValueError) as err:
        raise _corrupt(path, f"Params: unreadable segment list or duration ({err})") from err
    if num_segments != NUM_SEGMENTS:
        raise _corrupt(path, f"Params.allSegmentsType has {num_segments} segments, not 639")
    if duration_ms <= 0 or not isinstance(sims, (list, tuple)) or not sims:
        raise _corrupt(path, "no simulations, or a duration <= 0 s")
    k = len(sims)
    inputs = np.zeros((k, duration_ms, NUM_CHANNELS), np.int8)
    spikes = np.zeros((k, duration_ms), np.float32)
    soma = np.zeros((k, duration_ms), np.float32)
    for j, sim in enumerate(sims):
        where = f"listOfSingleSimulationDicts[{j}]"
        for key, offset, sign in (("exInputSpikeTimes", 0, 1), ("inhInputSpikeTimes", 639, -1)):
            value = _get(path, sim, key, where)
            seg, t = _bin_inputs(path, value, f"{where}.{key}", num_segments, duration_ms)
            inputs[j, t, offset + seg] = sign
        out = np.asarray(_get(path, sim, "outputSpikeTimes", where), np.float64).reshape(-1)
        bins = (out - 0.5).astype(np.int64)  # truncation toward zero, as the reference
        if bins.size and (bins.min() < 0 or bins.max() >= duration_ms):
            raise _corrupt(path, f"{where}.outputSpikeTimes: a spike outside the simulation")
        spikes[j, bins] = 1.0
        v = np.asarray(_get(path, sim, "somaVoltageLowRes", where), np.float64).reshape(-1)
        if v.shape != (duration_ms,):
            raise _corrupt(
                path, f"{where}.somaVoltageLowRes has {v.size} samples, not {duration_ms} (1 ms)"
            )
        soma[j] = v
    return Simulations(inputs, spikes, soma)


def _read_npz(path: str) -> Simulations:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("inputs", "spikes", "soma_mv") if k not in data.files]
            if missing:
                raise _corrupt(path, f"no arrays {missing} (has {data.files})")
            sims = Simulations(
                np.asarray(data["inputs"], np.int8),
                np.asarray(data["spikes"], np.float32),
                np.asarray(data["soma_mv"], np.float32),
            )
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, DataCorruptError):
            raise
        raise _corrupt(path, f"unreadable .npz ({err})") from err
    check_arrays(sims, path)
    return sims


def check_arrays(sims: Simulations, where: str = "arrays") -> None:
    """DataCorruptError unless inputs [k, t, 1278] in {-1,0,1}, spikes/soma_mv [k, t] finite."""
    k_t = sims.inputs.shape[:2]
    if sims.inputs.ndim != 3 or sims.inputs.shape[2] != NUM_CHANNELS:
        raise _corrupt(where, f"inputs shape {sims.inputs.shape}, expected [k, t, 1278]")
    for name in ("spikes", "soma_mv"):
        if getattr(sims, name).shape != k_t:
            raise _corrupt(where, f"{name} shape {getattr(sims, name).shape}, expected {k_t}")
    signs = synapse_signs()
    if np.any((sims.inputs != 0) & (sims.inputs != signs)):
        raise _corrupt(where, "inputs hold values other than +1 (exc.), -1 (inh.) and 0")
    if not np.all(np.isfinite(sims.soma_mv)) or np.any((sims.spikes != 0) & (sims.spikes != 1)):
        raise _corrupt(where, "soma_mv not finite or spikes not 0/1")


def read_simulations(path: str | os.PathLike) -> Simulations:
    """The simulations of one NeuronIO pickle (or `.npz` of the same arrays), binned at 1 ms.

    Raises DataCorruptError naming the file and the missing or malformed key for a truncated,
    unreadable or wrongly structured file, and for a pickle that names any object outside
    `ALLOWED_GLOBALS` (nothing else is ever constructed).
    """
    path = os.fspath(path)
    if path.endswith(".npz"):
        return _read_npz(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        experiment = safe_unpickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, UnicodeDecodeError) as err:  # fmt: skip
        raise _corrupt(path, f"not a readable pickle ({type(err).__name__}: {err})") from err
    return _parse(path, experiment)


def write_npz(path: str | os.PathLike, sims: Simulations) -> None:
    """Writes `sims` to `path` (.npz with inputs, spikes, soma_mv) atomically."""
    check_arrays(sims, os.fspath(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, inputs=sims.inputs, spikes=sims.spikes, soma_mv=sims.soma_mv)
