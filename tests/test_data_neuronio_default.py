"""The NeuronIO-style default: NEURON simulations, channel order and signs, rates, cache checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from elm_jax.data.common import DataCorruptError
from elm_jax.data.neuronio import default as nd
from elm_jax.data.neuronio import synthetic as ns
from elm_jax.data.neuronio.files import NUM_CHANNELS, read_simulations

SHORT = ns.SimParams(duration_ms=300)
TINY = nd.DefaultConfig(params=SHORT, seed=3, split_sizes=(("train", 2), ("validation", 1),
                                                            ("test", 1)))  # fmt: skip


@pytest.fixture(scope="module")
def mechanisms(tmp_path_factory) -> str:
    return ns.compile_mechanisms(str(tmp_path_factory.mktemp("mech") / "mechanisms"))


@pytest.fixture(scope="module")
def cell(mechanisms) -> ns.PyramidalCell:
    """The one in-process cell (the builds below simulate in spawned worker processes)."""
    nd._init_worker(mechanisms, SHORT)
    return nd._CELL


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> str:
    return nd.build_neuronio_default(str(tmp_path_factory.mktemp("cache")), TINY, workers=2)


def _soma_after(cell: ns.PyramidalCell, channels: list[int], times=(50.0, 52.0, 54.0)):
    inputs = [np.array([], float) for _ in range(NUM_CHANNELS)]
    for c in channels:
        inputs[c] = np.array(times)
    soma, _ = cell.run(inputs)
    return soma


def test_each_segment_holds_one_excitatory_and_one_inhibitory_synapse(cell):
    assert len(cell.segments) == ns.NUM_SEGMENTS == 639
    for c in (0, 100, 638):
        exc, inh = cell.excitatory[c].get_segment(), cell.inhibitory[c].get_segment()
        assert exc.sec == inh.sec and abs(exc.x - inh.x) < 1e-12
        assert cell.segments[c].sec == exc.sec and abs(cell.segments[c].x - exc.x) < 1e-12
    assert all(sec.name().startswith("dendrite") for sec in (s.sec for s in cell.segments))


def test_excitatory_channels_depolarise_and_inhibitory_channels_hyperpolarise(cell):
    rest = _soma_after(cell, [])
    segments = list(range(0, 639, 16))  # 40 synapses spread over the tree
    excited = _soma_after(cell, segments)
    inhibited = _soma_after(cell, [639 + c for c in segments])
    window = slice(50, 120)
    assert np.max(excited[window] - rest[window]) > 1.0  # mV
    assert np.min(inhibited[window] - rest[window]) < -0.2
    assert np.max(inhibited[window] - rest[window]) < 0.05
    assert np.allclose(excited[:49], rest[:49]) and np.allclose(inhibited[:49], rest[:49])


def test_nmda_adds_a_slow_component_to_each_epsp(cell):
    """Switching the NMDA part off leaves the AMPA peak but removes most of the charge."""
    rest = _soma_after(cell, [])
    branch = np.nonzero(cell.branch_of == np.bincount(cell.branch_of).argmax())[0][:4]
    with_nmda = _soma_after(cell, list(branch), times=(50.0,))[50:250] - rest[50:250]
    for synapse in cell.excitatory:
        synapse.nmda_ratio = 0.0
    try:
        ampa_only = _soma_after(cell, list(branch), times=(50.0,))[50:250] - rest[50:250]
    finally:
        for synapse in cell.excitatory:
            synapse.nmda_ratio = SHORT.nmda_ratio
    assert 0.5 < ampa_only.max() < with_nmda.max() < 1.5 * ampa_only.max()
    assert with_nmda.sum() > 1.8 * ampa_only.sum() > 0
    assert with_nmda[100:].mean() > 3 * ampa_only[100:].mean()  # 100-200 ms after the input


def test_simulation_output_has_the_neuronio_layout(cell):
    inputs, spikes, soma_mv = nd.simulate_one(seed=1, index=0)
    assert inputs.shape == (300, 1278) and inputs.dtype == np.int8
    assert set(np.unique(inputs[:, :639])) <= {0, 1} and set(np.unique(inputs[:, 639:])) <= {-1, 0}
    assert spikes.shape == soma_mv.shape == (300,) and spikes.dtype == soma_mv.dtype == np.float32
    assert -90 < soma_mv.min() and soma_mv.max() < 60
    for j in np.nonzero(spikes)[0]:  # a spike bin sits next to a soma voltage peak above 0 mV
        assert soma_mv[max(0, j - 2) : j + 3].max() > 0


def test_bin_spike_times_uses_the_neuronio_rounding():
    bins = ns.bin_spike_times(np.array([0.2, 0.5, 1.49, 2.6, 9.9, 12.0]), 10)
    assert np.array_equal(np.nonzero(bins)[0], [0, 2, 9])


def test_input_spikes_follow_their_time_varying_rates():
    rng = np.random.default_rng(0)
    params = ns.SimParams(duration_ms=20000)
    branch_of = np.repeat(np.arange(10), 64)[:639]
    rates = ns.input_rates(rng, params, branch_of)
    assert rates.shape == (20000, 1278) and np.all(rates > 0)
    bins, times = ns.draw_spikes(rng, rates)
    expected = (rates / 1000).sum()
    assert abs(bins.sum() - expected) < 5 * np.sqrt(expected)
    assert np.array_equal(
        np.stack([ns.bin_spike_times(t, 20000) for t in times[:50]], axis=1), bins[:, :50]
    )
    # the spike count of a branch follows that branch's rate over time (1 s blocks)
    for half in (slice(0, 639), slice(639, 1278)):
        in_branch = np.nonzero(branch_of == 0)[0] + half.start
        counts = bins[:, in_branch].sum(axis=1).reshape(20, 1000).sum(axis=1)
        rate = rates[:, in_branch].sum(axis=1).reshape(20, 1000).sum(axis=1) / 1000
        assert np.corrcoef(counts, rate)[0, 1] > 0.8
    assert rates[:, :639].std(axis=0).mean() > 0.3 * rates[:, :639].mean()  # rates vary in time


def test_same_seed_gives_the_same_arrays_whatever_the_worker_count(tiny_build, tmp_path):
    again = nd.build_neuronio_default(str(tmp_path / "one_worker"), TINY, workers=1)
    other = nd.build_neuronio_default(
        str(tmp_path / "other_seed"), nd.DefaultConfig(SHORT, 4, TINY.split_sizes), workers=2
    )
    manifests = [json.load(open(os.path.join(f, nd.MANIFEST))) for f in (tiny_build, again)]
    assert {n: r["arrays_sha256"] for n, r in manifests[0]["files"].items()} == {
        n: r["arrays_sha256"] for n, r in manifests[1]["files"].items()
    }
    for name in ("train_00.npz", "validation_00.npz", "test_00.npz"):
        a, b = (read_simulations(os.path.join(f, name)) for f in (tiny_build, again))
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.soma_mv, b.soma_mv)
        assert np.array_equal(a.spikes, b.spikes)
        c = read_simulations(os.path.join(other, name))
        assert not np.array_equal(a.inputs, c.inputs)
    train = read_simulations(os.path.join(tiny_build, "train_00.npz"))
    assert train.inputs.shape == (2, 300, 1278) and train.spikes.shape == (2, 300)
    assert not np.array_equal(train.inputs[0], train.inputs[1])  # one stream per simulation


def test_manifest_records_parameters_checksums_and_simulator(tiny_build):
    with open(os.path.join(tiny_build, nd.MANIFEST)) as handle:
        manifest = json.load(handle)
    assert manifest["dataset"] == "neuronio-default"
    assert manifest["simulator"].startswith("NEURON 9")
    assert manifest["config"]["seed"] == 3 and manifest["config"]["params"]["duration_ms"] == 300
    assert sorted(manifest["files"]) == ["test_00.npz", "train_00.npz", "validation_00.npz"]
    for name, record in manifest["files"].items():
        assert nd.file_record(os.path.join(tiny_build, name))["sha256"] == record["sha256"]
        sims = read_simulations(os.path.join(tiny_build, name))
        assert record["arrays_sha256"] == nd.arrays_sha256(sims)
    assert manifest["statistics"]["train"]["num_simulations"] == 2
    assert os.path.basename(tiny_build) == TINY.key()
    assert nd.verified_files(tiny_build) == {
        s: [os.path.join(tiny_build, f"{s}_00.npz")] for s in ("test", "train", "validation")
    }


def test_a_changed_cache_file_is_detected(tiny_build, tmp_path):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(tiny_build, copy)
    path = os.path.join(copy, "validation_00.npz")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(DataCorruptError, match="validation_00.npz.*delete"):
        nd.verified_files(copy)
    os.remove(path)
    with pytest.raises(DataCorruptError, match="missing"):
        nd.verified_files(copy)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("duration_ms", 5, "duration_ms=5"),
        ("dt_ms", 0.3, "dt_ms=0.3"),
        ("exc_rate_hz", (2.0, 1.0), "exc_rate_hz=\\(2.0, 1.0\\)"),
        ("gaba_ns", -1.0, "gaba_ns=-1.0"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(field, value, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        ns.check_params(dataclasses.replace(SHORT, **{field: value}))


def test_a_second_cell_in_one_process_is_refused(cell, mechanisms):
    with pytest.raises(ns.SimulatorError, match="exists"):
        ns.PyramidalCell(mechanisms, SHORT)
