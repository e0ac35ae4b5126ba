// XLA FFI handlers of the single ELM neuron's memory recurrence (CPU): argument checks, the split
// of a call into tasks (every group of the leading, vmapped axes times every batch tile) and the
// instruction-set dispatch. The loops are in elm_neuron_body.h; the JAX side, with the weight
// gradients, in elm_jax/neuron/fused.py.

#include <algorithm>
#include <string>

#include "elm_kernel_runtime.h"
#include "elm_neuron_types.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace elm_network {
namespace {

struct NeuronCall {
  NeuronShapes s{};
  int64_t groups = 0;
  std::string error;
};

// u [..., tiles, t, h0, LANES] (or g_memory [..., tiles, t, m, LANES] in the backward,
// `first_is_memory`), kappa [..., m], and the attributes.
NeuronCall neuron_call(const ffi::AnyBuffer& seq, bool first_is_memory, const ffi::AnyBuffer& kappa,
                       int64_t rest, int64_t activation, ffi::Span<const int64_t> sizes) {
  NeuronCall c;
  NeuronShapes& s = c.s;
  auto dims = seq.dimensions();
  auto kdims = kappa.dimensions();
  if (dims.size() < 4 || kdims.size() < 1 || dims[dims.size() - 1] != LANES) {
    c.error = "the sequence must be [..., tiles, t, features, 8] and kappa [..., m]";
    return c;
  }
  s.t = dims[dims.size() - 3];
  s.bp = dims[dims.size() - 4] * LANES;
  s.m = kdims[kdims.size() - 1];
  s.rest = rest;
  s.activation = activation;
  s.num_maps = static_cast<int64_t>(sizes.size());
  if (s.num_maps < 1 || s.num_maps > MAX_MAPS) {
    c.error = "sizes must list 1 to 8 map sizes";
    return c;
  }
  int64_t expected_rest = 0;
  s.zall = s.hmax = 0;
  for (int64_t l = 0; l < s.num_maps; ++l) {
    s.sizes[l] = sizes.begin()[l];
    if (s.sizes[l] < 1) c.error = "every map size must be >= 1";
    s.offsets[l] = s.zall;
    s.zall += s.sizes[l];
    s.hmax = s.sizes[l] > s.hmax ? s.sizes[l] : s.hmax;
    if (l > 0) expected_rest += s.sizes[l - 1] * s.sizes[l] + s.sizes[l];
  }
  const int64_t features = dims[dims.size() - 2];
  if (!c.error.empty()) return c;
  s.rec = s.zall + s.m + s.sizes[0];
  s.sums = 2 * s.m + s.zall + s.sizes[0];
  if (s.sizes[s.num_maps - 1] != s.m) {
    c.error = "the last map's size must be the number of memory units";
  } else if (features != (first_is_memory ? s.m : s.sizes[0])) {
    c.error = "the sequence's feature axis does not match the map sizes";
  } else if (expected_rest != s.rest) {
    c.error = "rest_size does not match the map sizes";
  } else if (s.bp <= 0) {
    c.error = "at least one tile of sequences";
  } else if (s.t < 1) {
    c.error = "at least one step";
  } else if (activation != kRelu && activation != kSilu) {
    c.error = "activation must be 0 (relu) or 1 (silu)";
  }
  if (c.error.empty()) c.groups = static_cast<int64_t>(seq.element_count()) / (s.t * features * s.bp);
  return c;
}

std::string check(const char* name, const ffi::AnyBuffer& b, int64_t groups, int64_t per_group,
                  ffi::DataType dtype) {
  if (b.element_type() != dtype) return std::string(name) + " has another dtype than kappa";
  if (static_cast<int64_t>(b.element_count()) != groups * per_group)
    return std::string(name) + " has " + std::to_string(b.element_count()) +
           " elements, expected " + std::to_string(groups * per_group);
  return "";
}

std::string check_weights(const NeuronCall& c, const ffi::AnyBuffer& kmem,
                          const ffi::AnyBuffer& rest, const ffi::AnyBuffer& kappa,
                          const ffi::AnyBuffer& gain, const ffi::AnyBuffer& kappa_p,
                          const ffi::AnyBuffer& bias0, ffi::DataType dtype) {
  const NeuronShapes& s = c.s;
  std::string e;
  if (!(e = check("kappa_p", kappa_p, c.groups, s.sizes[0], dtype)).empty()) return e;
  if (!(e = check("bias0", bias0, c.groups, s.sizes[0], dtype)).empty()) return e;
  if (!(e = check("k_memory", kmem, c.groups, s.m * s.sizes[0], dtype)).empty()) return e;
  if (!(e = check("rest", rest, c.groups, s.rest > 0 ? s.rest : 1, dtype)).empty()) return e;
  if (!(e = check("kappa", kappa, c.groups, s.m, dtype)).empty()) return e;
  if (!(e = check("gain", gain, c.groups, s.m, dtype)).empty()) return e;
  return "";
}

template <class T>
const T* in(const ffi::AnyBuffer& b, int64_t g, int64_t per_group) {
  return static_cast<const T*>(b.untyped_data()) + g * per_group;
}

template <class T>
T* out(ffi::Result<ffi::AnyBuffer>& b, int64_t g, int64_t per_group) {
  return static_cast<T*>(b->untyped_data()) + g * per_group;
}

template <class T>
NeuronArgs<T> weights_of(const NeuronShapes& s, const ffi::AnyBuffer& kmem,
                         const ffi::AnyBuffer& rest, const ffi::AnyBuffer& kappa,
                         const ffi::AnyBuffer& gain, const ffi::AnyBuffer& kappa_p,
                         const ffi::AnyBuffer& bias0, int64_t g) {
  NeuronArgs<T> a{};
  a.kappa_p = in<T>(kappa_p, g, s.sizes[0]);
  a.bias0 = in<T>(bias0, g, s.sizes[0]);
  a.kmem = in<T>(kmem, g, s.m * s.sizes[0]);
  a.rest = in<T>(rest, g, s.rest > 0 ? s.rest : 1);
  a.kappa = in<T>(kappa, g, s.m);
  a.gain = in<T>(gain, g, s.m);
  return a;
}

template <class T>
void forward_typed(ffi::ThreadPool& pool, const NeuronCall& c, const ffi::AnyBuffer& kmem,
                   const ffi::AnyBuffer& rest, const ffi::AnyBuffer& kappa,
                   const ffi::AnyBuffer& gain, const ffi::AnyBuffer& kappa_p,
                   const ffi::AnyBuffer& bias0, const ffi::AnyBuffer& pre,
                   ffi::Result<ffi::AnyBuffer>& memory, ffi::Result<ffi::AnyBuffer>& acts) {
  const NeuronShapes& s = c.s;
  const int64_t tiles = s.bp / LANES;
  const bool avx2 = use_avx2();
  const int64_t bytes =
      avx2 ? isa_avx2::neuron_work_bytes<T>(s) : isa_baseline::neuron_work_bytes<T>(s);
  parallel_for(pool, c.groups * tiles, [&](int64_t task) {
    const int64_t g = task / tiles, tile = task % tiles;
    NeuronArgs<T> a = weights_of<T>(s, kmem, rest, kappa, gain, kappa_p, bias0, g);
    a.pre = in<T>(pre, g, s.t * s.sizes[0] * s.bp);
    a.memory = out<T>(memory, g, s.t * s.m * s.bp);
    a.acts = out<T>(acts, g, s.rec * s.t * s.bp);
    void* work = thread_work(bytes);
    if (avx2)
      isa_avx2::neuron_forward_tile<T>(s, a, tile, work);
    else
      isa_baseline::neuron_forward_tile<T>(s, a, tile, work);
  });
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::AnyBuffer kmem, ffi::AnyBuffer rest,
                   ffi::AnyBuffer kappa, ffi::AnyBuffer gain, ffi::AnyBuffer kappa_p,
                   ffi::AnyBuffer bias0, ffi::AnyBuffer pre,
                   ffi::Result<ffi::AnyBuffer> memory, ffi::Result<ffi::AnyBuffer> acts,
                   int64_t rest_size, int64_t activation, ffi::Span<const int64_t> sizes) {
  const NeuronCall c = neuron_call(pre, false, kappa, rest_size, activation, sizes);
  if (!c.error.empty()) return ffi::Error::InvalidArgument("elm_neuron_forward: " + c.error);
  const ffi::DataType dtype = kappa.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    return ffi::Error::InvalidArgument("elm_neuron_forward: float32 or float64 only");
  std::string err = check_weights(c, kmem, rest, kappa, gain, kappa_p, bias0, dtype);
  if (err.empty()) err = check("pre", pre, c.groups, c.s.t * c.s.sizes[0] * c.s.bp, dtype);
  if (err.empty()) err = check("memory", *memory, c.groups, c.s.t * c.s.m * c.s.bp, dtype);
  if (err.empty()) err = check("record", *acts, c.groups, c.s.rec * c.s.t * c.s.bp, dtype);
  if (!err.empty()) return ffi::Error::InvalidArgument("elm_neuron_forward: " + err);
  if (dtype == ffi::DataType::F32)
    forward_typed<float>(pool, c, kmem, rest, kappa, gain, kappa_p, bias0, pre, memory, acts);
  else
    forward_typed<double>(pool, c, kmem, rest, kappa, gain, kappa_p, bias0, pre, memory, acts);
  return ffi::Error::Success();
}

template <class T>
void backward_typed(ffi::ThreadPool& pool, const NeuronCall& c, const ffi::AnyBuffer& kmem,
                    const ffi::AnyBuffer& rest, const ffi::AnyBuffer& kappa,
                    const ffi::AnyBuffer& gain, const ffi::AnyBuffer& kappa_p,
                    const ffi::AnyBuffer& bias0, const ffi::AnyBuffer& acts,
                    const ffi::AnyBuffer& g_memory, ffi::Result<ffi::AnyBuffer>& d_acts,
                    ffi::Result<ffi::AnyBuffer>& lam, ffi::Result<ffi::AnyBuffer>& sums) {
  const NeuronShapes& s = c.s;
  const int64_t tiles = s.bp / LANES;
  const bool avx2 = use_avx2();
  const int64_t bytes =
      avx2 ? isa_avx2::neuron_work_bytes<T>(s) : isa_baseline::neuron_work_bytes<T>(s);
  parallel_for(pool, c.groups * tiles, [&](int64_t task) {
    const int64_t g = task / tiles, tile = task % tiles;
    NeuronArgs<T> a = weights_of<T>(s, kmem, rest, kappa, gain, kappa_p, bias0, g);
    a.acts = const_cast<T*>(in<T>(acts, g, s.rec * s.t * s.bp));  // read only here
    a.g_memory = in<T>(g_memory, g, s.t * s.m * s.bp);
    a.d_acts = out<T>(d_acts, g, s.zall * s.t * s.bp);
    a.lam = out<T>(lam, g, s.t * s.sizes[0] * s.bp);
    a.sums = out<T>(sums, g, tiles * s.sums) + tile * s.sums;
    void* work = thread_work(bytes);
    if (avx2)
      isa_avx2::neuron_backward_tile<T>(s, a, tile, work);
    else
      isa_baseline::neuron_backward_tile<T>(s, a, tile, work);
  });
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::AnyBuffer kmem, ffi::AnyBuffer rest,
                    ffi::AnyBuffer kappa, ffi::AnyBuffer gain, ffi::AnyBuffer kappa_p,
                    ffi::AnyBuffer bias0, ffi::AnyBuffer acts, ffi::AnyBuffer g_memory,
                    ffi::Result<ffi::AnyBuffer> d_acts, ffi::Result<ffi::AnyBuffer> lam,
                    ffi::Result<ffi::AnyBuffer> sums, int64_t rest_size, int64_t activation,
                    ffi::Span<const int64_t> sizes) {
  const NeuronCall c = neuron_call(g_memory, true, kappa, rest_size, activation, sizes);
  if (!c.error.empty()) return ffi::Error::InvalidArgument("elm_neuron_backward: " + c.error);
  const ffi::DataType dtype = kappa.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    return ffi::Error::InvalidArgument("elm_neuron_backward: float32 or float64 only");
  const int64_t per_mem = c.s.t * c.s.m * c.s.bp;
  std::string err = check_weights(c, kmem, rest, kappa, gain, kappa_p, bias0, dtype);
  if (err.empty()) err = check("record", acts, c.groups, c.s.rec * c.s.t * c.s.bp, dtype);
  if (err.empty()) err = check("g_memory", g_memory, c.groups, per_mem, dtype);
  if (err.empty()) err = check("d_acts", *d_acts, c.groups, c.s.zall * c.s.t * c.s.bp, dtype);
  if (err.empty()) err = check("sums", *sums, c.groups, c.s.bp / LANES * c.s.sums, dtype);
  if (err.empty()) err = check("lam", *lam, c.groups, c.s.t * c.s.sizes[0] * c.s.bp, dtype);
  if (!err.empty()) return ffi::Error::InvalidArgument("elm_neuron_backward: " + err);
  if (dtype == ffi::DataType::F32)
    backward_typed<float>(pool, c, kmem, rest, kappa, gain, kappa_p, bias0, acts, g_memory,
                          d_acts, lam, sums);
  else
    backward_typed<double>(pool, c, kmem, rest, kappa, gain, kappa_p, bias0, acts, g_memory,
                           d_acts, lam, sums);
  return ffi::Error::Success();
}

// The sparse input projection: x [..., rows, ni] and W [..., ni, no] (leading, vmapped axes are
// groups), out [..., rows, no]; the weight gradient dW [..., ni, no] from x and g [..., rows, no].
struct ProjectCall {
  int64_t groups = 0, rows = 0, ni = 0, no = 0;
  std::string error;
};

ProjectCall project_call(const char* name, const ffi::AnyBuffer& x, const ffi::AnyBuffer& w) {
  ProjectCall c;
  auto xd = x.dimensions();
  auto wd = w.dimensions();
  if (xd.size() < 2 || wd.size() < 2) {
    c.error = std::string(name) + ": x must be [..., rows, ni] and W [..., ni, no]";
    return c;
  }
  c.rows = xd[xd.size() - 2];
  c.ni = xd[xd.size() - 1];
  c.no = wd[wd.size() - 1];
  const ffi::DataType dtype = x.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64) {
    c.error = std::string(name) + ": float32 or float64 only";
  } else if (w.element_type() != dtype) {
    c.error = std::string(name) + ": W has another dtype than x";
  } else if (wd[wd.size() - 2] != c.ni || c.rows * c.ni <= 0 || c.no <= 0) {
    c.error = std::string(name) + ": W's rows must match x's last axis";
  } else {
    c.groups = static_cast<int64_t>(x.element_count()) / (c.rows * c.ni);
    if (static_cast<int64_t>(w.element_count()) != c.groups * c.ni * c.no)
      c.error = std::string(name) + ": x and W have different leading axes";
  }
  return c;
}

// Rows (or weight rows) per task: enough work per task to be worth a thread.
constexpr int64_t kProjectBlock = 256;

template <class T>
void project_typed(ffi::ThreadPool& pool, const ProjectCall& c, const ffi::AnyBuffer& x,
                   const ffi::AnyBuffer& w, ffi::Result<ffi::AnyBuffer>& o) {
  const int64_t blocks = (c.rows + kProjectBlock - 1) / kProjectBlock;
  const bool avx2 = use_avx2();
  parallel_for(pool, c.groups * blocks, [&](int64_t task) {
    const int64_t g = task / blocks, r0 = (task % blocks) * kProjectBlock;
    const int64_t r1 = std::min(c.rows, r0 + kProjectBlock);
    const T* xg = in<T>(x, g, c.rows * c.ni);
    const T* wg = in<T>(w, g, c.ni * c.no);
    T* og = out<T>(o, g, c.rows * c.no);
    if (avx2)
      isa_avx2::project_rows<T>(xg, wg, og, c.ni, c.no, r0, r1);
    else
      isa_baseline::project_rows<T>(xg, wg, og, c.ni, c.no, r0, r1);
  });
}

ffi::Error Project(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w,
                   ffi::Result<ffi::AnyBuffer> o) {
  const ProjectCall c = project_call("elm_input_project", x, w);
  if (!c.error.empty()) return ffi::Error::InvalidArgument(c.error);
  if (static_cast<int64_t>(o->element_count()) != c.groups * c.rows * c.no)
    return ffi::Error::InvalidArgument("elm_input_project: the output has the wrong size");
  if (x.element_type() == ffi::DataType::F32)
    project_typed<float>(pool, c, x, w, o);
  else
    project_typed<double>(pool, c, x, w, o);
  return ffi::Error::Success();
}

template <class T>
void project_grad_typed(ffi::ThreadPool& pool, const ProjectCall& c, const ffi::AnyBuffer& x,
                        const ffi::AnyBuffer& g, ffi::Result<ffi::AnyBuffer>& dw) {
  // Weight rows split into blocks of at least 32, at most one per thread and group.
  const int64_t per = std::max<int64_t>(32, (c.ni + pool.num_threads() - 1) /
                                                std::max<int64_t>(pool.num_threads(), 1));
  const int64_t blocks = (c.ni + per - 1) / per;
  const bool avx2 = use_avx2();
  parallel_for(pool, c.groups * blocks, [&](int64_t task) {
    const int64_t gi = task / blocks, i0 = (task % blocks) * per;
    const int64_t i1 = std::min(c.ni, i0 + per);
    const T* xg = in<T>(x, gi, c.rows * c.ni);
    const T* gg = in<T>(g, gi, c.rows * c.no);
    T* dg = out<T>(dw, gi, c.ni * c.no);
    if (avx2)
      isa_avx2::project_weight_grad<T>(xg, gg, dg, c.rows, c.ni, c.no, i0, i1);
    else
      isa_baseline::project_weight_grad<T>(xg, gg, dg, c.rows, c.ni, c.no, i0, i1);
  });
}

ffi::Error ProjectGrad(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer g,
                       ffi::Result<ffi::AnyBuffer> dw) {
  // g plays W's part in the shape check ([..., rows, no] against x [..., rows, ni]).
  auto xd = x.dimensions();
  auto gd = g.dimensions();
  if (xd.size() < 2 || gd.size() != xd.size() || gd[gd.size() - 2] != xd[xd.size() - 2])
    return ffi::Error::InvalidArgument("elm_input_project_grad: g must be [..., rows, no]");
  ProjectCall c;
  c.rows = xd[xd.size() - 2];
  c.ni = xd[xd.size() - 1];
  c.no = gd[gd.size() - 1];
  const ffi::DataType dtype = x.element_type();
  if ((dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64) || g.element_type() != dtype)
    return ffi::Error::InvalidArgument("elm_input_project_grad: float32 or float64, one dtype");
  if (c.rows * c.ni <= 0 || c.no <= 0)
    return ffi::Error::InvalidArgument("elm_input_project_grad: empty arrays");
  c.groups = static_cast<int64_t>(x.element_count()) / (c.rows * c.ni);
  if (static_cast<int64_t>(dw->element_count()) != c.groups * c.ni * c.no)
    return ffi::Error::InvalidArgument("elm_input_project_grad: dW has the wrong size");
  if (dtype == ffi::DataType::F32)
    project_grad_typed<float>(pool, c, x, g, dw);
  else
    project_grad_typed<double>(pool, c, x, g, dw);
  return ffi::Error::Success();
}

// The readout from the memory kernel's layout: m [..., tiles, t, nm, 8], W [..., nm, no],
// b [..., no] -> y [..., batch, t, no] (batch in (8 (tiles - 1), 8 tiles]); its reverse takes
// dy [..., batch, t, no] and gives dm [..., tiles, t, nm, 8] and per-tile sums
// [..., tiles, (nm + 1) no] (dW, then db).
struct ReadoutCall {
  int64_t groups = 0, tiles = 0, t = 0, nm = 0, no = 0, batch = 0;
  std::string error;
};

ReadoutCall readout_call(const char* name, const ffi::AnyBuffer& m, const ffi::AnyBuffer& w,
                         ffi::Span<const int64_t> yd, ffi::DataType y_dtype) {
  ReadoutCall c;
  auto md = m.dimensions();
  auto wd = w.dimensions();
  const std::string who(name);
  if (md.size() < 4 || md[md.size() - 1] != LANES || wd.size() < 2 || yd.size() < 3) {
    c.error = who + ": m must be [..., tiles, t, nm, 8], W [..., nm, no], y [..., batch, t, no]";
    return c;
  }
  c.tiles = md[md.size() - 4];
  c.t = md[md.size() - 3];
  c.nm = md[md.size() - 2];
  c.no = wd[wd.size() - 1];
  c.batch = yd[yd.size() - 3];
  const ffi::DataType dtype = m.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    c.error = who + ": float32 or float64 only";
  else if (w.element_type() != dtype || y_dtype != dtype)
    c.error = who + ": m, W and y must have one dtype";
  else if (wd[wd.size() - 2] != c.nm || c.no <= 0 || c.tiles * c.t * c.nm <= 0)
    c.error = who + ": W's rows must match m's memory axis";
  else if (yd[yd.size() - 2] != c.t || yd[yd.size() - 1] != c.no)
    c.error = who + ": y must be [..., batch, t, no]";
  else if (c.batch <= (c.tiles - 1) * LANES || c.batch > c.tiles * LANES)
    c.error = who + ": batch must fill the last tile of 8 sequences";
  else
    c.groups = static_cast<int64_t>(m.element_count()) / (c.tiles * c.t * c.nm * LANES);
  if (c.error.empty() && static_cast<int64_t>(w.element_count()) != c.groups * c.nm * c.no)
    c.error = who + ": m and W have different leading axes";
  return c;
}

template <class T>
void readout_typed(ffi::ThreadPool& pool, const ReadoutCall& c, const ffi::AnyBuffer& m,
                   const ffi::AnyBuffer& w, const ffi::AnyBuffer& b,
                   ffi::Result<ffi::AnyBuffer>& y) {
  const bool avx2 = use_avx2();
  parallel_for(pool, c.groups * c.tiles, [&](int64_t task) {
    const int64_t g = task / c.tiles, tile = task % c.tiles;
    const T* mg = in<T>(m, g, c.tiles * c.t * c.nm * LANES);
    const T* wg = in<T>(w, g, c.nm * c.no);
    const T* bg = in<T>(b, g, c.no);
    T* yg = out<T>(y, g, c.batch * c.t * c.no);
    T* work = static_cast<T*>(thread_work(c.no * LANES * sizeof(T)));
    if (avx2)
      isa_avx2::readout_tile<T>(mg, wg, bg, yg, c.t, c.nm, c.no, c.batch, tile, work);
    else
      isa_baseline::readout_tile<T>(mg, wg, bg, yg, c.t, c.nm, c.no, c.batch, tile, work);
  });
}

ffi::Error Readout(ffi::ThreadPool pool, ffi::AnyBuffer m, ffi::AnyBuffer w, ffi::AnyBuffer b,
                   ffi::Result<ffi::AnyBuffer> y) {
  const ReadoutCall c = readout_call("elm_neuron_readout", m, w, y->dimensions(),
                                     y->element_type());
  if (!c.error.empty()) return ffi::Error::InvalidArgument(c.error);
  if (b.element_type() != m.element_type() ||
      static_cast<int64_t>(b.element_count()) != c.groups * c.no)
    return ffi::Error::InvalidArgument("elm_neuron_readout: b must be [..., no] of m's dtype");
  if (m.element_type() == ffi::DataType::F32)
    readout_typed<float>(pool, c, m, w, b, y);
  else
    readout_typed<double>(pool, c, m, w, b, y);
  return ffi::Error::Success();
}

template <class T>
void readout_grad_typed(ffi::ThreadPool& pool, const ReadoutCall& c, const ffi::AnyBuffer& m,
                        const ffi::AnyBuffer& w, const ffi::AnyBuffer& dy,
                        ffi::Result<ffi::AnyBuffer>& dm, ffi::Result<ffi::AnyBuffer>& sums) {
  const bool avx2 = use_avx2();
  const int64_t per_m = c.tiles * c.t * c.nm * LANES, per_sums = (c.nm + 1) * c.no;
  const int64_t bytes = (c.no + per_sums) * LANES * static_cast<int64_t>(sizeof(T));
  parallel_for(pool, c.groups * c.tiles, [&](int64_t task) {
    const int64_t g = task / c.tiles, tile = task % c.tiles;
    const T* mg = in<T>(m, g, per_m);
    const T* wg = in<T>(w, g, c.nm * c.no);
    const T* dyg = in<T>(dy, g, c.batch * c.t * c.no);
    T* dmg = out<T>(dm, g, per_m);
    T* sg = out<T>(sums, g, c.tiles * per_sums) + tile * per_sums;
    T* work = static_cast<T*>(thread_work(bytes));
    if (avx2)
      isa_avx2::readout_grad_tile<T>(mg, wg, dyg, dmg, sg, c.t, c.nm, c.no, c.batch, tile, work);
    else
      isa_baseline::readout_grad_tile<T>(mg, wg, dyg, dmg, sg, c.t, c.nm, c.no, c.batch, tile,
                                         work);
  });
}

ffi::Error ReadoutGrad(ffi::ThreadPool pool, ffi::AnyBuffer m, ffi::AnyBuffer w,
                       ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dm,
                       ffi::Result<ffi::AnyBuffer> sums) {
  const ReadoutCall c = readout_call("elm_neuron_readout_grad", m, w, dy.dimensions(),
                                     dy.element_type());
  if (!c.error.empty()) return ffi::Error::InvalidArgument(c.error);
  if (dm->element_count() != m.element_count() || dm->element_type() != m.element_type() ||
      static_cast<int64_t>(sums->element_count()) != c.groups * c.tiles * (c.nm + 1) * c.no ||
      sums->element_type() != m.element_type())
    return ffi::Error::InvalidArgument("elm_neuron_readout_grad: the outputs have the wrong size");
  if (m.element_type() == ffi::DataType::F32)
    readout_grad_typed<float>(pool, c, m, w, dy, dm, sums);
  else
    readout_grad_typed<double>(pool, c, m, w, dy, dm, sums);
  return ffi::Error::Success();
}

}  // namespace
}  // namespace elm_network

using ffi::AnyBuffer;

extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNeuronForward(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNeuronBackward(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmInputProject(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmInputProjectGrad(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNeuronReadout(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNeuronReadoutGrad(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNeuronReadout, elm_network::Readout,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // m, the kernel's layout
                                  .Arg<AnyBuffer>()  // W
                                  .Arg<AnyBuffer>()  // b
                                  .Ret<AnyBuffer>());  // y

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNeuronReadoutGrad, elm_network::ReadoutGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // m
                                  .Arg<AnyBuffer>()  // W
                                  .Arg<AnyBuffer>()  // dy
                                  .Ret<AnyBuffer>()  // dm
                                  .Ret<AnyBuffer>());  // per-tile sums: dW, db

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmInputProject, elm_network::Project,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // x
                                  .Arg<AnyBuffer>()  // W
                                  .Ret<AnyBuffer>());  // x W

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmInputProjectGrad, elm_network::ProjectGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // x
                                  .Arg<AnyBuffer>()  // g
                                  .Ret<AnyBuffer>());  // xᵀ g

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNeuronForward, elm_network::Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // k_memory
                                  .Arg<AnyBuffer>()  // rest
                                  .Arg<AnyBuffer>()  // kappa
                                  .Arg<AnyBuffer>()  // gain
                                  .Arg<AnyBuffer>()  // kappa_p
                                  .Arg<AnyBuffer>()  // bias0
                                  .Arg<AnyBuffer>()  // u
                                  .Ret<AnyBuffer>()  // memory
                                  .Ret<AnyBuffer>()  // record
                                  .Attr<int64_t>("rest_size")
                                  .Attr<int64_t>("activation")
                                  .Attr<ffi::Span<const int64_t>>("sizes"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNeuronBackward, elm_network::Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // k_memory
                                  .Arg<AnyBuffer>()  // rest
                                  .Arg<AnyBuffer>()  // kappa
                                  .Arg<AnyBuffer>()  // gain
                                  .Arg<AnyBuffer>()  // kappa_p
                                  .Arg<AnyBuffer>()  // bias0
                                  .Arg<AnyBuffer>()  // record
                                  .Arg<AnyBuffer>()  // g_memory
                                  .Ret<AnyBuffer>()  // d_acts
                                  .Ret<AnyBuffer>()  // lam
                                  .Ret<AnyBuffer>()  // sums
                                  .Attr<int64_t>("rest_size")
                                  .Attr<int64_t>("activation")
                                  .Attr<ffi::Span<const int64_t>>("sizes"));
