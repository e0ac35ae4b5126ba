"""A NeuronIO-style neuron simulated with NEURON: a reconstructed pyramidal cell under Poisson input.

The stand-in for NeuronIO (the paper's detailed L5 pyramidal neuron benchmark) when the real
simulations are absent. It is *not* the Hay L5PC model: the morphology is the reconstructed
pyramidal cell shipped with NEURON (`share/nrn/demo/pyramid.nrn`, 78 dendritic sections, 5.3 mm of
dendrite), the soma and a short axon carry Hodgkin-Huxley channels, the dendrites are passive with
NMDA receptors as their nonlinearity.

Synapses and channel order (the same as NeuronIO's): the dendrites are cut into 639 segments of
about equal length; segment c holds one excitatory synapse (AMPA + NMDA with a Mg block, a small
compiled NEURON mechanism, see NMDA_MOD) on input channel c and one inhibitory GABA-A synapse
(NEURON's Exp2Syn, reversal -80 mV) on channel 639 + c. Input rates vary smoothly in time and over
branches: each dendritic section has its own slowly varying log-rate (Gaussian-smoothed noise), for
excitation and inhibition separately, times a per-synapse log-normal factor.

Axis legend: t time (1 ms bins), c input channel (1278), e excitatory / inhibitory synapse (639).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
from scipy.ndimage import gaussian_filter1d

from elm_jax.files import atomic_folder

os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")  # no X display warning on import

NUM_SEGMENTS = 639
NUM_CHANNELS = 2 * NUM_SEGMENTS
MORPHOLOGY = "share/nrn/demo/pyramid.nrn"

# AMPA and NMDA share one synapse (one presynaptic event drives both). NMDA: Jahr & Stevens (1990)
# Mg block, 1 mM Mg; the conductance waveforms are normalised differences of exponentials.
NMDA_MOD = """\
NEURON {
    POINT_PROCESS AmpaNmdaSyn
    RANGE tau_rise_ampa, tau_decay_ampa, tau_rise_nmda, tau_decay_nmda, nmda_ratio, e, mg
    RANGE i, g_ampa, g_nmda
    NONSPECIFIC_CURRENT i
}
UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}
PARAMETER {
    tau_rise_ampa = 0.3 (ms)
    tau_decay_ampa = 3 (ms)
    tau_rise_nmda = 2 (ms)
    tau_decay_nmda = 70 (ms)
    nmda_ratio = 1.5
    e = 0 (mV)
    mg = 1 (mM)
}
ASSIGNED {
    v (mV)
    i (nA)
    g_ampa (uS)
    g_nmda (uS)
    norm_ampa
    norm_nmda
}
STATE {
    ra (uS)
    da (uS)
    rn (uS)
    dn (uS)
}
INITIAL {
    norm_ampa = peak_norm(tau_rise_ampa, tau_decay_ampa)
    norm_nmda = peak_norm(tau_rise_nmda, tau_decay_nmda)
    ra = 0
    da = 0
    rn = 0
    dn = 0
}
BREAKPOINT {
    SOLVE kinetics METHOD cnexp
    g_ampa = da - ra
    g_nmda = (dn - rn) / (1 + exp(-0.062 * v) * mg / 3.57)
    i = (g_ampa + g_nmda) * (v - e)
}
DERIVATIVE kinetics {
    ra' = -ra / tau_rise_ampa
    da' = -da / tau_decay_ampa
    rn' = -rn / tau_rise_nmda
    dn' = -dn / tau_decay_nmda
}
FUNCTION peak_norm(rise (ms), decay (ms)) {
    LOCAL t_peak
    t_peak = rise * decay / (decay - rise) * log(decay / rise)
    peak_norm = 1 / (exp(-t_peak / decay) - exp(-t_peak / rise))
}
NET_RECEIVE(weight (uS)) {
    ra = ra + weight * norm_ampa
    da = da + weight * norm_ampa
    rn = rn + weight * nmda_ratio * norm_nmda
    dn = dn + weight * nmda_ratio * norm_nmda
}
"""


class SimulatorError(RuntimeError):
    """NEURON or its mechanism compiler is missing or failed (the message says what to install)."""


@dataclasses.dataclass(frozen=True)
class SimParams:
    """Everything that fixes one simulation besides its seed (all recorded in the manifest).

    Rates in Hz per synapse, conductances in nS, times in ms. `exc_rate_hz` and `inh_rate_hz`
    bound the per-simulation mean rates (drawn log-uniformly); `rate_log_sd` is the standard
    deviation of each branch's log-rate in time, `rate_tau_ms` bounds its smoothing time scale,
    `synapse_log_sd` the spread of the per-synapse factors.
    """

    duration_ms: int = 3000
    dt_ms: float = 0.1
    exc_rate_hz: tuple[float, float] = (0.28, 0.5)
    inh_rate_hz: tuple[float, float] = (0.5, 2.0)
    rate_log_sd: float = 1.0
    rate_tau_ms: tuple[float, float] = (30.0, 300.0)
    synapse_log_sd: float = 0.5
    ampa_ns: float = 0.8
    nmda_ratio: float = 1.5
    gaba_ns: float = 1.0
    v_init_mv: float = -67.0


def check_params(params: SimParams) -> SimParams:
    """`params` when every field is in range, else ValueError naming the field."""
    if not isinstance(params.duration_ms, int) or params.duration_ms < 10:
        raise ValueError(f"duration_ms={params.duration_ms!r}; valid: an int >= 10 (ms)")
    if not 0 < params.dt_ms <= 0.5 or abs(1 / params.dt_ms - round(1 / params.dt_ms)) > 1e-9:
        raise ValueError(f"dt_ms={params.dt_ms!r}; valid: 1/n ms with 0 < dt_ms <= 0.5")
    for name in ("exc_rate_hz", "inh_rate_hz", "rate_tau_ms"):
        low, high = getattr(params, name)
        if not 0 < low <= high:
            raise ValueError(f"{name}={(low, high)!r}; valid: (low, high) with 0 < low <= high")
    for name in ("rate_log_sd", "synapse_log_sd", "ampa_ns", "nmda_ratio", "gaba_ns"):
        if not getattr(params, name) >= 0:
            raise ValueError(f"{name}={getattr(params, name)!r}; valid: a number >= 0")
    return params


def input_rates(rng: np.random.Generator, params: SimParams, branch_of: np.ndarray) -> np.ndarray:
    """Rates [t, c] in Hz: per-simulation means, smooth per-branch log-rates, per-synapse factors.

    `branch_of` [e] names the dendritic section of each segment; synapses on one section share
    their time course (excitation and inhibition have separate ones).
    """
    steps, num_branches = params.duration_ms, int(branch_of.max()) + 1
    rates = []
    for low, high in (params.exc_rate_hz, params.inh_rate_hz):
        mean = np.exp(rng.uniform(np.log(low), np.log(high)))
        tau = np.exp(rng.uniform(*np.log(params.rate_tau_ms)))
        noise = gaussian_filter1d(rng.standard_normal((steps, num_branches)), tau, axis=0)
        # Scaled to unit s.d. in time but not centred, so a slowly varying branch can sit some
        # s.d. away from the mean rate (up to 11.6 in the default build); the clip only keeps
        # simulations much shorter than the time scale finite (the p <= 0.9 cap still applies).
        noise = np.clip(noise / (noise.std(axis=0, keepdims=True) + 1e-12), -12.0, 12.0)
        log_rate = params.rate_log_sd * noise - params.rate_log_sd**2 / 2
        factor = np.exp(params.synapse_log_sd * rng.standard_normal(len(branch_of)))
        factor /= factor.mean()
        rates.append(mean * np.exp(log_rate[:, branch_of]) * factor)
    return np.concatenate(rates, axis=1)


def draw_spikes(rng: np.random.Generator, rates_hz: np.ndarray) -> np.ndarray:
    """Presynaptic spike times: a Bernoulli draw per 1 ms bin (p = rate / 1000, at most 0.9).

    Returns (bins [t, c] bool, times) with `times` a list of c arrays of spike times in ms, each
    inside its bin so that binning with `bin_spike_times` gives `bins` back.
    """
    spikes = rng.random(rates_hz.shape) < np.minimum(rates_hz / 1000.0, 0.9)
    offsets = rng.uniform(0.5, 1.5, size=spikes.shape)
    times = [np.nonzero(column)[0] + offsets[column, c] for c, column in enumerate(spikes.T)]
    return spikes, times


def bin_spike_times(times_ms: np.ndarray, steps: int) -> np.ndarray:
    """[t] float32: 1 in bin int(time - 0.5) (NeuronIO's rule), for times inside the record."""
    bins = np.zeros(steps, np.float32)
    index = (np.asarray(times_ms, np.float64) - 0.5).astype(np.int64)
    bins[index[(index >= 0) & (index < steps)]] = 1.0
    return bins


def mechanisms_hash() -> str:
    """Short sha256 of the mechanism source (names the compiled folder in the cache)."""
    return hashlib.sha256(NMDA_MOD.encode()).hexdigest()[:16]


def compile_mechanisms(folder: str) -> str:
    """Compiles NMDA_MOD with NEURON's nrnivmodl into `folder` (once) and returns `folder`.

    The library is built in a temporary folder next to `folder` and renamed into place, so
    concurrent or interrupted builds never leave a half-built `folder`.
    """
    if os.path.isfile(os.path.join(folder, "ampa_nmda.mod")):
        return folder
    nrnivmodl = shutil.which("nrnivmodl", path=os.path.dirname(sys.executable))
    nrnivmodl = nrnivmodl or shutil.which("nrnivmodl")
    if nrnivmodl is None:
        raise SimulatorError(
            "nrnivmodl not found: install NEURON with `pip install -e '.[neuronio-sim]'`"
        )
    with atomic_folder(os.path.abspath(folder), "ampa_nmda.mod") as tmp:
        with open(os.path.join(tmp, "ampa_nmda.mod.src"), "w") as handle:
            handle.write(NMDA_MOD)
        os.rename(os.path.join(tmp, "ampa_nmda.mod.src"), os.path.join(tmp, "ampa_nmda.mod"))
        result = subprocess.run([nrnivmodl], cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0:
            raise SimulatorError(
                "nrnivmodl failed (it needs a C++ compiler and make):\n"
                + result.stdout[-2000:]
                + result.stderr[-2000:]
            )
    return folder


_LOADED: set[str] = set()


def load_neuron(mechanisms_folder: str):
    """Imports NEURON, loads the compiled mechanisms (once per process) and returns `h`."""
    try:
        # NEURON (the neuronio-sim extra) is needed only to simulate, never to read a cached build.
        import neuron
        from neuron import h
    except ImportError as error:
        raise SimulatorError(
            "the NeuronIO-style default needs NEURON: `pip install -e '.[neuronio-sim]'`"
        ) from error
    if mechanisms_folder not in _LOADED:
        if not neuron.load_mechanisms(mechanisms_folder, warn_if_already_loaded=False):
            raise SimulatorError(f"NEURON could not load the mechanisms in {mechanisms_folder}")
        _LOADED.add(mechanisms_folder)
        h.load_file("stdrun.hoc")
    return h


def morphology_path() -> str:
    """The pyramidal-cell reconstruction inside the installed NEURON package."""
    # NEURON (the neuronio-sim extra) is needed only to simulate, never to read a cached build.
    import neuron

    path = os.path.join(os.path.dirname(neuron.__file__), ".data", MORPHOLOGY)
    if not os.path.exists(path):
        raise SimulatorError(f"NEURON's morphology {MORPHOLOGY} is missing from {path}")
    return path


def split_segments(lengths: np.ndarray, total: int = NUM_SEGMENTS) -> np.ndarray:
    """nseg per section, at least 1, summing to `total`, about proportional to length."""
    share = lengths / lengths.sum() * (total - len(lengths))
    nseg = 1 + np.floor(share).astype(int)
    remainder = share - np.floor(share)
    for index in np.argsort(-remainder)[: total - nseg.sum()]:
        nseg[index] += 1
    return nseg


class PyramidalCell:
    """The NEURON cell: morphology, channels and the 2 x 639 synapses (one per process)."""

    _built = False

    def __init__(self, mechanisms_folder: str, params: SimParams):
        if PyramidalCell._built:  # NEURON's sections are global: a second cell would share them
            raise SimulatorError("a PyramidalCell exists in this process already; reuse it")
        self.h = h = load_neuron(mechanisms_folder)
        self.params = check_params(params)
        PyramidalCell._built = True
        if not hasattr(h, "soma"):
            h.load_file(morphology_path())
        self.soma = h.soma
        self.dendrites = [sec for sec in h.allsec() if sec.name().startswith("dendrite")]
        self.axon = h.Section(name="axon")
        self.axon.L, self.axon.diam, self.axon.nseg = 200.0, 1.0, 9
        self.axon.connect(self.soma(0.5))
        self._set_biophysics()
        lengths = np.array([sec.L for sec in self.dendrites])
        for sec, nseg in zip(self.dendrites, split_segments(lengths), strict=True):
            sec.nseg = int(nseg)
        self.segments = [seg for sec in self.dendrites for seg in sec]
        self.branch_of = np.repeat(np.arange(len(self.dendrites)), [s.nseg for s in self.dendrites])
        self.excitatory, self.inhibitory, self.netcons = [], [], []
        for seg in self.segments:
            exc = h.AmpaNmdaSyn(seg)
            exc.nmda_ratio = params.nmda_ratio
            inh = h.Exp2Syn(seg)
            inh.tau1, inh.tau2, inh.e = 0.5, 8.0, -80.0
            self.excitatory.append(exc)
            self.inhibitory.append(inh)
        for syn, weight in [(s, params.ampa_ns) for s in self.excitatory] + [
            (s, params.gaba_ns) for s in self.inhibitory
        ]:
            netcon = h.NetCon(None, syn)
            netcon.weight[0] = weight * 1e-3  # nS -> uS
            self.netcons.append(netcon)
        self.soma_v = h.Vector().record(self.soma(0.5)._ref_v, 1.0)
        self.spike_times = h.Vector()
        self.detector = h.NetCon(self.soma(0.5)._ref_v, None, sec=self.soma)
        self.detector.threshold = -20.0
        self.detector.record(self.spike_times)
        self._pending: list[np.ndarray] = []
        self._handler = h.FInitializeHandler(self._queue_events)

    def _set_biophysics(self) -> None:
        for sec in [self.soma, self.axon, *self.dendrites]:
            sec.Ra = 100.0
            sec.cm = 1.0 if sec in (self.soma, self.axon) else 2.0  # spines fold into dendrites
            sec.insert("pas")
            for seg in sec:
                seg.pas.g, seg.pas.e = 3e-5, -70.0
        for sec in (self.soma, self.axon):
            sec.insert("hh")
            for seg in sec:
                seg.hh.gl, seg.hh.el = 0.0, -70.0
                seg.hh.gnabar = 0.12 if sec is self.soma else 0.5

    def _queue_events(self) -> None:
        for netcon, times in zip(self.netcons, self._pending, strict=True):
            for time in times:
                netcon.event(float(time))

    def run(self, input_times: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Soma voltage [t] in mV at 1 ms and the soma spike times (ms) for these input spikes.

        `input_times` holds one array of spike times per channel, in channel order.
        """
        h = self.h
        if len(input_times) != NUM_CHANNELS:
            raise ValueError(f"input_times has {len(input_times)} channels; valid: {NUM_CHANNELS}")
        self._pending = input_times
        h.dt = self.params.dt_ms
        h.steps_per_ms = 1.0 / self.params.dt_ms
        h.tstop = float(self.params.duration_ms)
        h.cvode.cache_efficient(1)
        h.finitialize(self.params.v_init_mv)
        h.continuerun(h.tstop)
        self._pending = []
        soma = np.array(self.soma_v, np.float32)[1 : self.params.duration_ms + 1]
        return soma, np.array(self.spike_times)
