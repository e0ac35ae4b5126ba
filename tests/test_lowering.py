"""The shipped train steps lower for accelerators from this CPU-only machine, free of CPU-only code.

Every train step the project ships (each config module of `elm_jax.configs`, the three ELM points
of bench/network_speed.py's SHD-Adding budget, every (arch, task) pair the models allow, LM steps
with a carried state, the data-parallel step sharded over the 8 fake CPU devices of conftest.py)
is traced once through the trainer's own `init_state` (shapes only, `jax.eval_shape`) and
`train_step` (jitted, vmapped over 2 seeds as the trainer does) with kernel="auto", then lowered
to StableHLO for "cuda" and "tpu". Neither module may call the ELM network's fused CPU kernel
(`elm_jax.network.fused`: FFI targets registered for the CPU only); the CPU lowering of an ELM
step must call it (kernel="auto" picks it per platform with `jax.lax.platform_dependent`), and
kernel="xla" never. Likewise the Pallas GPU kernel (`elm_jax.network.pallas_gpu`, a Triton
custom call): the cuda lowering of an ELM step calls it exactly where it covers the
configuration, no other platform's module ever does. Forcing either kernel onto another
platform must not pass. A multi-platform `jax.export` of one step carries each kernel in its
own platform's branch and runs here.

Nothing is compiled for an accelerator (there is none); lowering is what a CPU machine can check.
Shapes are tiny (batch 2, T 5): lowering does not depend on them beyond the program's structure.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pathlib
import pkgutil
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import elm_jax.configs
from elm_jax import parallel
from elm_jax.budget.enumeration import enumerate_points
from elm_jax.configs.merge import resolve_config
from elm_jax.models import ModelConfig
from elm_jax.network import fused, fused_build, pallas_gpu
from elm_jax.ops import elm_macs_per_neuron
from elm_jax.optim import OptimConfig
from elm_jax.train.steps import StepSpec, eval_step, eval_stream_step, init_state, train_step

ROOT = pathlib.Path(__file__).resolve().parents[1]
ACCELERATORS = ("cuda", "tpu")
CPU_ONLY_TARGETS = (fused.FORWARD_TARGET, fused.BACKWARD_TARGET)
# The decoder read from the CPU kernel's layout (a classifier's, up to DECODE_MAX_OUTPUTS wide).
DECODE_TARGETS = (fused.DECODE_TARGET, fused.DECODE_GRAD_TARGET)
CUDA_ONLY_TARGETS = (pallas_gpu.TRITON_TARGET,)
SEEDS, BATCH, STEPS = (0, 1), 2, 5
# `stablehlo.custom_call @target(...)` (pretty form) and `call_target_name = "target"` /
# `custom_call_target = "target"` (generic and HLO forms).
_TARGET_PATTERNS = (
    re.compile(r"stablehlo\.custom_call\s*@([\w.$-]+)"),
    re.compile(r"\bcall_target_name\s*=\s*\"([^\"]+)\""),
    re.compile(r"\bcustom_call_target\s*=\s*\"([^\"]+)\""),
)


def custom_call_targets(module_text: str) -> set[str]:
    """The targets of every custom call in a lowered module's text."""
    return {name for pattern in _TARGET_PATTERNS for name in pattern.findall(module_text)}


def assert_no_cpu_only_custom_calls(module_text: str, platform: str) -> None:
    found = sorted(custom_call_targets(module_text) & set(CPU_ONLY_TARGETS + DECODE_TARGETS))
    assert not found, f"the {platform} module calls the CPU-only custom call targets {found}"


def assert_no_cuda_only_custom_calls(module_text: str, platform: str) -> None:
    found = sorted(custom_call_targets(module_text) & set(CUDA_ONLY_TARGETS))
    assert not found, f"the {platform} module calls the cuda-only custom call targets {found}"


def pallas_covers(model: ModelConfig) -> bool:
    """Whether kernel="auto" takes the Pallas kernel on cuda for this model."""
    macs = elm_macs_per_neuron(
        num_memory=model.num_memory, synapses_per_neuron=0, hidden_size=model.mlp_hidden_size,
        num_branches=model.num_branches, mlp_num_layers=model.mlp_num_layers,
    )  # fmt: skip
    return pallas_gpu.coverage_problem(model.mlp_num_layers + 1, macs) is None


def require_fused_kernel() -> None:
    """Skips (with the reason) only on a machine without a C++ compiler; with one, an unbuilt
    kernel fails (as in tests/test_fused.py)."""
    if fused_build._compiler() is None:
        fused.available()  # records why
        pytest.skip(f"the fused CPU kernel cannot be built: {fused.unavailable_reason()}")
    assert fused.available(), fused.unavailable_reason()


def expected_on_cpu() -> set[str]:
    """The fused targets a CPU lowering of an ELM train step with kernel="auto" calls: both where
    the kernel is built, none where it is not (the XLA fallback, tests/test_fused_fallback.py)."""
    return set(CPU_ONLY_TARGETS) if fused.available() else set()


# ---------------------------------------------------------------------------------------------
# The steps: (ModelConfig, OptimConfig, carry_state) per case name.


def _shipped_configs() -> dict[str, tuple[ModelConfig, OptimConfig, bool]]:
    """Every config module of elm_jax.configs with a get_config, as the trainer resolves it."""
    cases = {}
    for info in sorted(pkgutil.iter_modules(elm_jax.configs.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"elm_jax.configs.{info.name}")
        if not hasattr(module, "get_config"):
            continue
        cfg = resolve_config(module.get_config())
        model = ModelConfig.from_dict(cfg.model.to_dict())
        optim = OptimConfig.from_dict(cfg.optim.to_dict(), cfg.num_train_steps)
        cases[f"config-{info.name}"] = (model, optim, bool(cfg.data.carry_train_state))
    return cases


def _budget_points() -> dict[str, ModelConfig]:
    """bench/network_speed.py's few_complex / balanced / many_simple points (P_core 3e4, k_c 32)."""
    spec = importlib.util.spec_from_file_location(
        "_network_speed", ROOT / "bench" / "network_speed.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # standard-library imports only at module level
    points = bench.pick_points(enumerate_points(3e4, "shd_adding", k_c=[32]))
    return {f"budget-{label}": p.model_config(kernel="auto") for label, p in points}


def _arch_task_matrix() -> dict[str, tuple[ModelConfig, bool]]:
    """Every architecture with every task it allows (the single neuron has no LM), small."""
    shapes = {
        "classification": dict(input_dim=7, num_classes=3),
        "lm": dict(input_dim=11, num_classes=11, embed_dim=4),
        "neuronio": dict(input_dim=7, num_classes=2),
    }
    cases = {}
    for arch in ("elm", "lstm", "gru", "leaky", "elm_neuron"):
        for task, shape in shapes.items():
            if arch == "elm_neuron" and task == "lm":
                continue
            size = dict(num_neurons=1) if arch == "elm_neuron" else dict(num_neurons=6)
            model = ModelConfig(
                arch=arch, task=task, num_memory=3, synapses_per_neuron=8, **size, **shape
            )
            name = f"{arch}-{task}" + ("-carried" if task == "lm" else "")
            cases[name] = (model, task == "lm")  # LM steps carry the state, as enwik8 does
    return cases


def _all_cases() -> dict[str, tuple[ModelConfig, OptimConfig, bool]]:
    cases = dict(_shipped_configs())
    cases.update({k: (m, OptimConfig(), False) for k, m in _budget_points().items()})
    cases.update({k: (m, OptimConfig(), c) for k, (m, c) in _arch_task_matrix().items()})
    return cases


CASES = _all_cases()
ELM_CASES = sorted(name for name, (m, _, _) in CASES.items() if m.arch == "elm")


def _spec(name: str, **changes) -> StepSpec:
    model, optim, carry = CASES[name]
    return StepSpec.create(model.replace(**changes), optim, carry_state=carry)


def _batch(spec: StepSpec, batch: int = BATCH, sharding=None) -> dict:
    """An abstract train batch [r, b, ...] of the spec's task."""
    r, m = len(SEEDS), spec.model
    sds = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)  # noqa: E731
    if m.task == "lm":
        tokens = sds((r, batch, STEPS), jnp.int32)
        return {"inputs": tokens, "labels": tokens}
    inputs = sds((r, batch, STEPS, m.input_dim), jnp.float32)
    if m.task == "neuronio":  # spike, soma, weight at every step
        return {"inputs": inputs, "labels": sds((r, batch, STEPS, 3), jnp.float32)}
    return {"inputs": inputs, "labels": sds((r, batch), jnp.int32)}


def _abstract_state(spec: StepSpec, mesh, batch: int = BATCH):
    """The trainer's initial state of SEEDS, shapes only (nothing runs), with the sharding
    `init_state` gives every leaf (`jax.eval_shape` drops it)."""
    lrs = [1e-3] * len(SEEDS)
    state = jax.eval_shape(
        functools.partial(init_state, spec, list(SEEDS), lrs, mesh, batch_size=batch)
    )
    sharding = parallel.state_sharding(mesh)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), state)


def _one_device_mesh():
    return parallel.make_mesh(len(SEEDS), jax.devices()[:1])


@functools.cache
def _traced(name: str, kernel: str | None = None):
    """The traced train step of case `name` (its kernel replaced by `kernel` when given)."""
    spec = _spec(name, **({} if kernel is None else {"kernel": kernel}))
    return train_step.trace(_abstract_state(spec, _one_device_mesh()), _batch(spec), spec=spec)


@functools.cache
def _lowered_text(name: str, platform: str, kernel: str | None = None) -> str:
    return _traced(name, kernel).lower(lowering_platforms=(platform,)).as_text()


# ---------------------------------------------------------------------------------------------
# Accelerator lowering of every shipped step.


def test_the_cases_cover_every_shipped_config_budget_point_arch_and_task():
    shipped = [n for n in CASES if n.startswith("config-")]
    assert len(shipped) >= 10 and "config-enwik8" in shipped and "config-neuron_shd" in shipped
    assert {"budget-few_complex", "budget-balanced", "budget-many_simple"} <= set(CASES)
    pairs = {(m.arch, m.task, carry) for m, _, carry in CASES.values()}
    for arch in ("elm", "lstm", "gru", "leaky", "elm_neuron"):
        for task in ("classification", "neuronio"):
            assert (arch, task, False) in pairs
        if arch != "elm_neuron":
            assert (arch, "lm", True) in pairs
    assert all(m.kernel == "auto" for m, _, _ in CASES.values())
    # The three budget points differ in shape as their names say.
    n = {k: CASES[f"budget-{k}"][0].num_neurons for k in ("few_complex", "balanced", "many_simple")}
    assert n["few_complex"] < n["balanced"] < n["many_simple"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_step_lowers_for_cuda_and_tpu_without_cpu_only_custom_calls(name):
    for platform in ACCELERATORS:
        text = _lowered_text(name, platform)
        assert "func.func public @main" in text
        assert_no_cpu_only_custom_calls(text, platform)
    assert_no_cuda_only_custom_calls(_lowered_text(name, "tpu"), "tpu")


@pytest.mark.parametrize("name", ELM_CASES)
def test_elm_train_step_for_cuda_with_kernel_auto_calls_the_pallas_kernel_where_it_covers(name):
    """Its forward and its backward, one Triton call each; configurations it does not cover
    (too large an MLP) lower to the XLA path."""
    assert pallas_covers(CASES["budget-balanced"][0])
    assert not pallas_covers(CASES["budget-few_complex"][0])
    text = _lowered_text(name, "cuda")
    calls = len(_TARGET_PATTERNS[0].findall(text))
    if pallas_covers(CASES[name][0]):
        assert custom_call_targets(text) >= set(CUDA_ONLY_TARGETS)
        assert calls == 2 and '"elm_network_forward"' in text and '"elm_network_backward"' in text
    else:
        assert_no_cuda_only_custom_calls(text, "cuda")


@pytest.mark.parametrize("name", ["config-shd_adding", "elm-neuronio", "elm-lm-carried"])
def test_elm_eval_steps_lower_for_cuda_and_tpu_without_cpu_only_custom_calls(name):
    spec = _spec(name)
    state = _abstract_state(spec, _one_device_mesh())
    batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), _batch(spec))
    if spec.model.task == "lm":  # the contiguous evaluation stream, state carried across chunks
        batch["mask"] = jax.ShapeDtypeStruct((BATCH, STEPS), jnp.float32)  # 0 on padding
        traced = eval_stream_step.trace(state.params, state.extra, state.carry, batch, spec=spec)
    else:
        batch["mask"] = jax.ShapeDtypeStruct((BATCH,), jnp.float32)  # 0 on padding rows
        traced = eval_step.trace(state.params, state.extra, batch, spec=spec)
    for platform in ACCELERATORS:
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert_no_cpu_only_custom_calls(text, platform)
        if platform == "tpu":
            assert_no_cuda_only_custom_calls(text, platform)
        else:  # on cuda, the Pallas forward only
            assert '"elm_network_forward"' in text and '"elm_network_backward"' not in text
    # On a CPU the same program runs the fused forward (no backward: nothing is differentiated).
    cpu_targets = custom_call_targets(traced.lower(lowering_platforms=("cpu",)).as_text())
    assert cpu_targets & set(CPU_ONLY_TARGETS) == expected_on_cpu() - {fused.BACKWARD_TARGET}


@pytest.mark.parametrize("name", ["budget-balanced", "elm-lm-carried", "lstm-lm-carried"])
def test_data_parallel_step_sharded_over_8_fake_devices_lowers_for_cuda_and_tpu(name):
    """The trainer's sharding: seeds over `replica` (2), the batch over `data` (4)."""
    assert jax.device_count() == 8
    spec = _spec(name)
    mesh = parallel.make_mesh(len(SEEDS))
    assert dict(mesh.shape) == {"replica": 2, "data": 4}
    batch = 4  # divides the data axis
    state = _abstract_state(spec, mesh, batch)
    assert jax.tree.leaves(state)[0].sharding == parallel.state_sharding(mesh)
    traced = train_step.trace(
        state, _batch(spec, batch, parallel.train_batch_sharding(mesh)), spec=spec
    )
    platforms = ACCELERATORS + (("cpu",) if spec.model.arch == "elm" else ())
    for platform in platforms:
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "mhlo.num_partitions = 8" in text
        assert re.search(r'sdy\.mesh @\w+ = <\["replica"=2, "data"=4\]>', text), text[:2000]
        if platform != "cpu":
            assert_no_cpu_only_custom_calls(text, platform)
        else:
            assert custom_call_targets(text) & set(CPU_ONLY_TARGETS) == expected_on_cpu()
        if platform != "cuda":
            assert_no_cuda_only_custom_calls(text, platform)


# ---------------------------------------------------------------------------------------------
# The CPU side: kernel="auto" takes the fused kernel on a CPU, kernel="xla" never does.


@pytest.mark.parametrize("name", ELM_CASES)
def test_elm_train_step_lowered_for_cpu_with_kernel_auto_calls_the_fused_kernel(name):
    require_fused_kernel()
    assert set(CPU_ONLY_TARGETS) <= custom_call_targets(_lowered_text(name, "cpu"))


@pytest.mark.parametrize("name", ["budget-balanced", "elm-lm-carried"])
def test_elm_train_step_with_kernel_xla_calls_no_fused_kernel_on_any_platform(name):
    for platform in ("cpu", *ACCELERATORS):
        assert_no_cpu_only_custom_calls(_lowered_text(name, platform, "xla"), platform)
        assert_no_cuda_only_custom_calls(_lowered_text(name, platform, "xla"), platform)


# ---------------------------------------------------------------------------------------------
# Fails on purpose: the CPU-only kernel forced onto an accelerator does not pass.


@pytest.mark.parametrize("platform", ACCELERATORS)
def test_forced_cpu_fused_kernel_lowered_for_an_accelerator_is_rejected(platform):
    """kernel="cpu_fused" cannot reach a cuda/tpu module: lowering it raises (the kernel's
    CPU-only guard, `elm_jax.network.fused._cpu_only`), naming the guard and the platform."""
    require_fused_kernel()
    with pytest.raises(NotImplementedError) as info:
        _lowered_text("budget-balanced", platform, "cpu_fused")
    message = str(info.value)
    assert "elm_network_fused_kernel_cpu_only" in message and platform in message, message


@pytest.mark.parametrize("platform", ACCELERATORS)
def test_forced_cpu_fused_kernel_cannot_be_exported_for_an_accelerator(platform):
    require_fused_kernel()
    spec = _spec("elm-classification", kernel="cpu_fused")
    state = _abstract_state(spec, _one_device_mesh())
    with pytest.raises(NotImplementedError) as info:  # the CPU-only guard refuses to lower
        export.export(train_step, platforms=[platform])(state, _batch(spec), spec=spec)
    message = str(info.value)
    assert "elm_network_fused_kernel_cpu_only" in message and platform in message, message


def test_forced_pallas_kernel_lowers_for_cuda_without_cpu_only_custom_calls():
    text = _lowered_text("elm-classification", "cuda", "gpu_pallas")
    assert custom_call_targets(text) >= set(CUDA_ONLY_TARGETS)
    assert_no_cpu_only_custom_calls(text, "cuda")


@pytest.mark.parametrize("platform", ("cpu", "tpu"))
def test_forced_pallas_kernel_lowered_for_another_platform_is_rejected(platform):
    """kernel="gpu_pallas" cannot reach a cpu/tpu module: lowering it raises (the kernel's
    cuda-only guard, `elm_jax.network.pallas_gpu._cuda_only`), naming the kernel and the
    platform."""
    with pytest.raises(NotImplementedError) as info:
        _lowered_text("elm-classification", platform, "gpu_pallas")
    message = str(info.value)
    assert pallas_gpu.KERNEL_NAME in message and platform in message, message


# ---------------------------------------------------------------------------------------------
# One exported program for every platform.


def _waivers(targets=CPU_ONLY_TARGETS + DECODE_TARGETS + CUDA_ONLY_TARGETS) -> list:
    """The kernels' custom call targets (the fused kernel's FFI targets, Triton's) have no
    cross-version compatibility guarantee, so an export that contains them must waive jax's
    check for them by name."""
    return [export.DisabledSafetyCheck.custom_call(target) for target in targets]


def test_export_for_cuda_and_tpu_with_kernel_auto_needs_the_triton_waiver_only():
    """The cuda branch calls the Pallas kernel: exporting refuses it unless waived; with the
    Triton waiver alone the export holds it and no CPU kernel."""
    spec = _spec("elm-classification")
    state = _abstract_state(spec, _one_device_mesh())
    with pytest.raises(ValueError, match="custom calls whose targets have no compatibility"):
        export.export(train_step, platforms=list(ACCELERATORS))(state, _batch(spec), spec=spec)
    exporter = export.export(
        train_step, platforms=list(ACCELERATORS), disabled_checks=_waivers(CUDA_ONLY_TARGETS)
    )
    exported = exporter(state, _batch(spec), spec=spec)
    assert exported.platforms == ACCELERATORS
    text = exported.mlir_module()
    assert_no_cpu_only_custom_calls(text, "/".join(ACCELERATORS))
    assert custom_call_targets(text) >= set(CUDA_ONLY_TARGETS)


def test_multi_platform_export_without_a_waiver_is_refused_naming_the_cpu_kernel():
    require_fused_kernel()
    spec = _spec("elm-classification")
    state = _abstract_state(spec, _one_device_mesh())
    with pytest.raises(
        ValueError, match="custom calls whose targets have no compatibility"
    ) as info:
        export.export(train_step, platforms=["cpu", *ACCELERATORS])(state, _batch(spec), spec=spec)
    assert fused.FORWARD_TARGET in str(info.value)


def test_multi_platform_export_of_an_elm_step_has_each_kernel_in_its_platforms_branch_and_runs():
    require_fused_kernel()
    spec = _spec("elm-classification")
    mesh = _one_device_mesh()
    platforms = ("cpu", *ACCELERATORS)
    exported = export.export(train_step, platforms=list(platforms), disabled_checks=_waivers())(
        _abstract_state(spec, mesh), _batch(spec), spec=spec
    )
    assert exported.platforms == platforms
    text = exported.mlir_module()
    assert set(CPU_ONLY_TARGETS + DECODE_TARGETS + CUDA_ONLY_TARGETS) <= custom_call_targets(text)
    # One module for all three: the platform is an argument, the kernel sits in a case branch.
    assert re.search(r"@main\(%arg0: tensor<i32> \{jax.global_constant = \"_platform_index\"", text)
    assert "stablehlo.case" in text
    # Called here, the exported program takes its CPU branch (the fused kernel) and trains.
    state = init_state(spec, list(SEEDS), [1e-2] * len(SEEDS), mesh, batch_size=BATCH)
    rng = np.random.default_rng(0)
    batch = {
        "inputs": rng.poisson(0.5, (len(SEEDS), BATCH, STEPS, spec.model.input_dim)).astype(
            np.float32
        ),
        "labels": rng.integers(0, spec.model.num_classes, (len(SEEDS), BATCH)).astype(np.int32),
    }
    after = exported.call(state, batch)
    np.testing.assert_array_equal(np.asarray(after.step), np.ones(len(SEEDS)))
    np.testing.assert_array_equal(np.asarray(after.diverged_step), -np.ones(len(SEEDS)))
    assert np.all(np.isfinite(np.asarray(after.metrics["loss_sum"])))
    changed = lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b)))  # noqa: E731
    assert any(jax.tree.leaves(jax.tree.map(changed, after.params, state.params)))
