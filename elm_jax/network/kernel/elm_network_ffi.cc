// XLA FFI handlers of the fused ELM network recurrence (CPU): argument checks, the split of a
// call into tasks (every group of the leading, vmapped axes times every batch tile), the
// instruction-set dispatch, reusable per-thread work memory and the sum of the tiles' weight
// gradients. The math is in elm_network_body.h; the JAX side in elm_jax/network/fused.py.

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "elm_kernel_runtime.h"
#include "elm_network_types.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace elm_network {
namespace {

// Shapes from the trailing dimensions (leading, vmapped axes are groups) and the attributes.
struct Call {
  Shapes s{};
  int64_t groups = 0;
  std::string error;
};

int64_t trailing(const ffi::AnyBuffer& b, int k) {
  auto dims = b.dimensions();
  return dims.size() >= static_cast<size_t>(k) ? dims[dims.size() - k] : -1;
}

// e [..., t, ext_dim, bp], b0 [..., n, d, bp], m0 [..., n, m, bp], w_syn [..., n, k].
Call make_call(const ffi::AnyBuffer& e, const ffi::AnyBuffer& b0, const ffi::AnyBuffer& m0,
               const ffi::AnyBuffer& w_syn, int64_t rest, int64_t chunk,
               ffi::Span<const int64_t> sizes) {
  Call c;
  Shapes& s = c.s;
  if (e.dimensions().size() < 3 || b0.dimensions().size() < 3 || m0.dimensions().size() < 3 ||
      w_syn.dimensions().size() < 2) {
    c.error = "e must be [..., t, ext_dim, batch], b0 and m0 [..., n, d|m, batch], w [..., n, k]";
    return c;
  }
  s.t = trailing(e, 3);
  s.ext_dim = trailing(e, 2);
  s.bp = trailing(e, 1);
  s.n = trailing(b0, 3);
  s.d = trailing(b0, 2);
  s.m = trailing(m0, 2);
  s.k = trailing(w_syn, 1);
  s.rest = rest;
  s.chunk = chunk;
  s.num_maps = static_cast<int64_t>(sizes.size());
  if (s.num_maps < 1 || s.num_maps > MAX_MAPS) {
    c.error = "sizes must list 1 to 8 map sizes";
    return c;
  }
  int64_t expected_rest = 0;
  for (int64_t l = 0; l < s.num_maps; ++l) {
    s.sizes[l] = sizes.begin()[l];
    if (s.sizes[l] < 1) c.error = "every map size must be >= 1";
    if (l > 0) expected_rest += s.sizes[l - 1] * s.sizes[l] + s.sizes[l];
  }
  if (!c.error.empty()) return c;
  if (s.sizes[s.num_maps - 1] != s.m) {
    c.error = "the last map's size must be the number of memory units";
  } else if (expected_rest != s.rest) {
    c.error = "rest_size does not match the map sizes";
  } else if (s.bp <= 0 || s.bp % LANES != 0) {
    c.error = "the batch axis must be padded to a positive multiple of 8";
  } else if (s.chunk < 1 || s.t < 1 || s.n < 1 || s.d < 1 || s.m < 1 || s.ext_dim < 0) {
    c.error = "invalid chunk or shape";
  }
  if (c.error.empty()) c.groups = static_cast<int64_t>(b0.element_count()) / (s.n * s.d * s.bp);
  return c;
}

std::string check(const char* name, const ffi::AnyBuffer& b, int64_t groups, int64_t per_group,
                  ffi::DataType dtype) {
  if (b.element_type() != dtype) return std::string(name) + " has another dtype than b0";
  if (static_cast<int64_t>(b.element_count()) != groups * per_group)
    return std::string(name) + " has " + std::to_string(b.element_count()) +
           " elements, expected " + std::to_string(groups * per_group);
  return "";
}

template <class T>
const T* at(const ffi::AnyBuffer& b, int64_t g, int64_t per_group) {
  return static_cast<const T*>(b.untyped_data()) + g * per_group;
}

template <class T>
T* at_out(ffi::Result<ffi::AnyBuffer>& b, int64_t g, int64_t per_group) {
  return static_cast<T*>(b->untyped_data()) + g * per_group;
}

struct WeightArgs {
  const ffi::AnyBuffer *kb, *km, *gain, *kbr, *kmem, *bias0, *rest, *wy, *by, *w_syn, *src,
      *branch;
};

struct PerGroup {
  int64_t kb, km, kbr, kmem, bias0, rest, wy, by, syn;
};

PerGroup per_group_sizes(const Shapes& s) {
  const int64_t h0 = s.sizes[0];
  PerGroup p;
  p.kb = s.n * s.d;
  p.km = s.n * s.m;
  p.kbr = s.n * s.d * h0;
  p.kmem = s.n * s.m * h0;
  p.bias0 = s.n * h0;
  p.rest = s.n * std::max<int64_t>(s.rest, 1);  // one unused column without further maps
  p.wy = s.n * s.m;
  p.by = s.n;
  p.syn = s.n * s.k;
  return p;
}

std::string check_weights(const WeightArgs& a, const Shapes& s, int64_t groups,
                          ffi::DataType dtype) {
  const PerGroup p = per_group_sizes(s);
  std::string e;
  if (!(e = check("kappa_b", *a.kb, groups, p.kb, dtype)).empty()) return e;
  if (!(e = check("kappa_m", *a.km, groups, p.km, dtype)).empty()) return e;
  if (!(e = check("memory_gain", *a.gain, groups, p.km, dtype)).empty()) return e;
  if (!(e = check("k_branch", *a.kbr, groups, p.kbr, dtype)).empty()) return e;
  if (!(e = check("k_memory", *a.kmem, groups, p.kmem, dtype)).empty()) return e;
  if (!(e = check("bias0", *a.bias0, groups, p.bias0, dtype)).empty()) return e;
  if (!(e = check("rest", *a.rest, groups, p.rest, dtype)).empty()) return e;
  if (!(e = check("w_y", *a.wy, groups, p.wy, dtype)).empty()) return e;
  if (!(e = check("b_y", *a.by, groups, p.by, dtype)).empty()) return e;
  if (!(e = check("w_syn", *a.w_syn, groups, p.syn, dtype)).empty()) return e;
  if (!(e = check("source", *a.src, groups, p.syn, ffi::DataType::S32)).empty()) return e;
  if (!(e = check("branch", *a.branch, groups, p.syn, ffi::DataType::S32)).empty()) return e;
  const int32_t* src = static_cast<const int32_t*>(a.src->untyped_data());
  const int32_t* branch = static_cast<const int32_t*>(a.branch->untyped_data());
  for (int64_t i = 0; i < groups * p.syn; ++i) {
    if (src[i] < 0 || src[i] >= s.ext_dim + s.n)
      return "a synapse source is outside the pool [0, ext_dim + n)";
    if (branch[i] < 0 || branch[i] >= s.d) return "a synapse branch is outside [0, d)";
  }
  return "";
}

// Each group's synapses ordered by branch (stable): weights, sources, the branch starts, and
// for every sorted position the synapse's original index.
template <class T>
struct Sorted {
  std::vector<T> w;
  std::vector<int32_t> src, start, original;
};

template <class T>
Sorted<T> sort_synapses(const WeightArgs& a, const Shapes& s, int64_t groups) {
  const int64_t n = s.n, k = s.k, d = s.d;
  Sorted<T> out;
  out.w.resize(groups * n * k);
  out.src.resize(groups * n * k);
  out.original.resize(groups * n * k);
  out.start.resize(groups * n * (d + 1));
  const T* w = static_cast<const T*>(a.w_syn->untyped_data());
  const int32_t* src = static_cast<const int32_t*>(a.src->untyped_data());
  const int32_t* branch = static_cast<const int32_t*>(a.branch->untyped_data());
  for (int64_t row = 0; row < groups * n; ++row) {
    int32_t* start = out.start.data() + row * (d + 1);
    std::fill(start, start + d + 1, 0);
    for (int64_t q = 0; q < k; ++q) ++start[branch[row * k + q] + 1];
    for (int64_t b = 0; b < d; ++b) start[b + 1] += start[b];
    std::vector<int32_t> fill(start, start + d);
    for (int64_t q = 0; q < k; ++q) {
      const int64_t p = row * k + fill[branch[row * k + q]]++;
      out.w[p] = w[row * k + q];
      out.src[p] = src[row * k + q];
      out.original[p] = static_cast<int32_t>(q);
    }
  }
  return out;
}

template <class T>
Weights<T> weights_of(const WeightArgs& a, const Shapes& s, const Sorted<T>& sorted, int64_t g) {
  const PerGroup p = per_group_sizes(s);
  Weights<T> w;
  w.kb = at<T>(*a.kb, g, p.kb);
  w.km = at<T>(*a.km, g, p.km);
  w.gain = at<T>(*a.gain, g, p.km);
  w.kbr = at<T>(*a.kbr, g, p.kbr);
  w.kmem = at<T>(*a.kmem, g, p.kmem);
  w.bias0 = at<T>(*a.bias0, g, p.bias0);
  w.rest = at<T>(*a.rest, g, p.rest);
  w.wy = at<T>(*a.wy, g, p.wy);
  w.by = at<T>(*a.by, g, p.by);
  w.w_syn = sorted.w.data() + g * p.syn;
  w.src = sorted.src.data() + g * p.syn;
  w.branch_start = sorted.start.data() + g * s.n * (s.d + 1);
  return w;
}

template <class T>
void forward_typed(ffi::ThreadPool& pool, const Call& c, const WeightArgs& a,
                   const ffi::AnyBuffer& e, const ffi::AnyBuffer& b0, const ffi::AnyBuffer& m0,
                   const ffi::AnyBuffer& y0, ffi::Result<ffi::AnyBuffer>& ys,
                   ffi::Result<ffi::AnyBuffer>& b_out, ffi::Result<ffi::AnyBuffer>& m_out,
                   ffi::Result<ffi::AnyBuffer>& y_out, ffi::Result<ffi::AnyBuffer>& ckpt_b,
                   ffi::Result<ffi::AnyBuffer>& ckpt_m) {
  const Shapes& s = c.s;
  const int64_t n = s.n, d = s.d, m = s.m, bp = s.bp, chunks = (s.t + s.chunk - 1) / s.chunk;
  const int64_t tiles = bp / LANES;
  const Sorted<T> sorted = sort_synapses<T>(a, s, c.groups);
  const bool avx2 = use_avx2();
  const int64_t bytes =
      avx2 ? isa_avx2::forward_work_bytes<T>(s) : isa_baseline::forward_work_bytes<T>(s);
  parallel_for(pool, c.groups * tiles, [&](int64_t task) {
    const int64_t g = task / tiles, lane0 = (task % tiles) * LANES;
    const Weights<T> w = weights_of<T>(a, s, sorted, g);
    ForwardIO<T> io;
    io.e = at<T>(e, g, s.t * s.ext_dim * bp);
    io.b0 = at<T>(b0, g, n * d * bp);
    io.m0 = at<T>(m0, g, n * m * bp);
    io.y0 = at<T>(y0, g, n * bp);
    io.ys = at_out<T>(ys, g, s.t * n * bp);
    io.b_out = at_out<T>(b_out, g, n * d * bp);
    io.m_out = at_out<T>(m_out, g, n * m * bp);
    io.y_out = at_out<T>(y_out, g, n * bp);
    io.ckpt_b = at_out<T>(ckpt_b, g, chunks * n * d * bp);
    io.ckpt_m = at_out<T>(ckpt_m, g, chunks * n * m * bp);
    void* work = thread_work(bytes);
    if (avx2)
      isa_avx2::forward_tile<T>(s, w, io, lane0, work);
    else
      isa_baseline::forward_tile<T>(s, w, io, lane0, work);
  });
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::AnyBuffer kb, ffi::AnyBuffer km, ffi::AnyBuffer gain,
                   ffi::AnyBuffer kbr, ffi::AnyBuffer kmem, ffi::AnyBuffer bias0,
                   ffi::AnyBuffer rest, ffi::AnyBuffer wy, ffi::AnyBuffer by, ffi::AnyBuffer w_syn,
                   ffi::AnyBuffer src, ffi::AnyBuffer branch, ffi::AnyBuffer e, ffi::AnyBuffer b0,
                   ffi::AnyBuffer m0, ffi::AnyBuffer y0, ffi::Result<ffi::AnyBuffer> ys,
                   ffi::Result<ffi::AnyBuffer> b_out, ffi::Result<ffi::AnyBuffer> m_out,
                   ffi::Result<ffi::AnyBuffer> y_out, ffi::Result<ffi::AnyBuffer> ckpt_b,
                   ffi::Result<ffi::AnyBuffer> ckpt_m, int64_t rest_size, int64_t chunk,
                   ffi::Span<const int64_t> sizes) {
  Call c = make_call(e, b0, m0, w_syn, rest_size, chunk, sizes);
  if (!c.error.empty()) return ffi::Error::InvalidArgument("elm_network_forward: " + c.error);
  const ffi::DataType dtype = b0.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    return ffi::Error::InvalidArgument("elm_network_forward: float32 or float64 only");
  const WeightArgs a{&kb, &km, &gain, &kbr, &kmem, &bias0, &rest, &wy, &by, &w_syn, &src, &branch};
  const Shapes& s = c.s;
  std::string err = check_weights(a, s, c.groups, dtype);
  if (err.empty()) err = check("e", e, c.groups, s.t * s.ext_dim * s.bp, dtype);
  if (err.empty()) err = check("m0", m0, c.groups, s.n * s.m * s.bp, dtype);
  if (err.empty()) err = check("y0", y0, c.groups, s.n * s.bp, dtype);
  if (!err.empty()) return ffi::Error::InvalidArgument("elm_network_forward: " + err);
  if (dtype == ffi::DataType::F32)
    forward_typed<float>(pool, c, a, e, b0, m0, y0, ys, b_out, m_out, y_out, ckpt_b, ckpt_m);
  else
    forward_typed<double>(pool, c, a, e, b0, m0, y0, ys, b_out, m_out, y_out, ckpt_b, ckpt_m);
  return ffi::Error::Success();
}

struct GradResults {
  ffi::Result<ffi::AnyBuffer>*kb, *km, *gain, *kbr, *kmem, *bias0, *rest, *wy, *by, *w_syn;
};

template <class T>
void backward_typed(ffi::ThreadPool& pool, const Call& c, const WeightArgs& a,
                    const ffi::AnyBuffer& e, const ffi::AnyBuffer& y0, const ffi::AnyBuffer& ys,
                    const ffi::AnyBuffer& ckpt_b, const ffi::AnyBuffer& ckpt_m,
                    const ffi::AnyBuffer& g_ys, const ffi::AnyBuffer& g_b_out,
                    const ffi::AnyBuffer& g_m_out, const ffi::AnyBuffer& g_y_out,
                    const GradResults& r, ffi::Result<ffi::AnyBuffer>& g_e,
                    ffi::Result<ffi::AnyBuffer>& g_b0, ffi::Result<ffi::AnyBuffer>& g_m0,
                    ffi::Result<ffi::AnyBuffer>& g_y0) {
  const Shapes& s = c.s;
  const int64_t n = s.n, d = s.d, m = s.m, bp = s.bp, chunks = (s.t + s.chunk - 1) / s.chunk;
  const int64_t tiles = bp / LANES, tasks = c.groups * tiles;
  const Sorted<T> sorted = sort_synapses<T>(a, s, c.groups);
  GradsOffsets off;
  grads_offsets(s, &off);
  std::vector<T> grads(static_cast<size_t>(tasks * off.total));
  const bool avx2 = use_avx2();
  const int64_t bytes =
      avx2 ? isa_avx2::backward_work_bytes<T>(s) : isa_baseline::backward_work_bytes<T>(s);
  parallel_for(pool, tasks, [&](int64_t task) {
    const int64_t g = task / tiles, lane0 = (task % tiles) * LANES;
    const Weights<T> w = weights_of<T>(a, s, sorted, g);
    BackwardIO<T> io;
    io.e = at<T>(e, g, s.t * s.ext_dim * bp);
    io.y0 = at<T>(y0, g, n * bp);
    io.ys = at<T>(ys, g, s.t * n * bp);
    io.ckpt_b = at<T>(ckpt_b, g, chunks * n * d * bp);
    io.ckpt_m = at<T>(ckpt_m, g, chunks * n * m * bp);
    io.g_ys = at<T>(g_ys, g, s.t * n * bp);
    io.g_b_out = at<T>(g_b_out, g, n * d * bp);
    io.g_m_out = at<T>(g_m_out, g, n * m * bp);
    io.g_y_out = at<T>(g_y_out, g, n * bp);
    io.g_e = at_out<T>(g_e, g, s.t * s.ext_dim * bp);
    io.g_b0 = at_out<T>(g_b0, g, n * d * bp);
    io.g_m0 = at_out<T>(g_m0, g, n * m * bp);
    io.g_y0 = at_out<T>(g_y0, g, n * bp);
    void* work = thread_work(bytes);
    T* out = grads.data() + task * off.total;
    if (avx2)
      isa_avx2::backward_tile<T>(s, w, io, lane0, work, out);
    else
      isa_baseline::backward_tile<T>(s, w, io, lane0, work, out);
  });
  // Each group's gradient: the sum over its tiles, scattered to the result buffers.
  const PerGroup p = per_group_sizes(s);
  struct Part {
    ffi::Result<ffi::AnyBuffer>* result;
    int64_t offset, count;
  };
  const int64_t rest_cols = std::max<int64_t>(s.rest, 1);
  std::vector<T> sum(static_cast<size_t>(off.total));
  for (int64_t g = 0; g < c.groups; ++g) {
    std::fill(sum.begin(), sum.end(), T(0));
    for (int64_t k = 0; k < tiles; ++k) {
      const T* part = grads.data() + (g * tiles + k) * off.total;
      for (int64_t i = 0; i < off.total; ++i) sum[i] += part[i];
    }
    const Part parts[] = {
        {r.kb, off.kb, p.kb},          {r.km, off.km, p.km},          {r.gain, off.gain, p.km},
        {r.kbr, off.kbr, p.kbr},       {r.kmem, off.kmem, p.kmem},    {r.bias0, off.bias0, p.bias0},
        {r.wy, off.wy, p.wy},          {r.by, off.by, p.by},
    };
    for (const Part& part : parts)
      std::memcpy(at_out<T>(*part.result, g, part.count), sum.data() + part.offset,
                  sizeof(T) * part.count);
    T* rest_dst = at_out<T>(*r.rest, g, p.rest);
    std::fill(rest_dst, rest_dst + p.rest, T(0));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < s.rest; ++k)
        rest_dst[i * rest_cols + k] = sum[off.rest + i * s.rest + k];
    T* syn_dst = at_out<T>(*r.w_syn, g, p.syn);
    const int32_t* original = sorted.original.data() + g * p.syn;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t q = 0; q < s.k; ++q)
        syn_dst[i * s.k + original[i * s.k + q]] = sum[off.syn + i * s.k + q];
  }
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::AnyBuffer kb, ffi::AnyBuffer km, ffi::AnyBuffer gain,
                    ffi::AnyBuffer kbr, ffi::AnyBuffer kmem, ffi::AnyBuffer bias0,
                    ffi::AnyBuffer rest, ffi::AnyBuffer wy, ffi::AnyBuffer by,
                    ffi::AnyBuffer w_syn, ffi::AnyBuffer src, ffi::AnyBuffer branch,
                    ffi::AnyBuffer e, ffi::AnyBuffer y0, ffi::AnyBuffer ys, ffi::AnyBuffer ckpt_b,
                    ffi::AnyBuffer ckpt_m, ffi::AnyBuffer g_ys, ffi::AnyBuffer g_b_out,
                    ffi::AnyBuffer g_m_out, ffi::AnyBuffer g_y_out,
                    ffi::Result<ffi::AnyBuffer> d_kb, ffi::Result<ffi::AnyBuffer> d_km,
                    ffi::Result<ffi::AnyBuffer> d_gain, ffi::Result<ffi::AnyBuffer> d_kbr,
                    ffi::Result<ffi::AnyBuffer> d_kmem, ffi::Result<ffi::AnyBuffer> d_bias0,
                    ffi::Result<ffi::AnyBuffer> d_rest, ffi::Result<ffi::AnyBuffer> d_wy,
                    ffi::Result<ffi::AnyBuffer> d_by, ffi::Result<ffi::AnyBuffer> d_w_syn,
                    ffi::Result<ffi::AnyBuffer> g_e, ffi::Result<ffi::AnyBuffer> g_b0,
                    ffi::Result<ffi::AnyBuffer> g_m0, ffi::Result<ffi::AnyBuffer> g_y0,
                    int64_t rest_size, int64_t chunk, ffi::Span<const int64_t> sizes) {
  Call c = make_call(e, g_b_out, g_m_out, w_syn, rest_size, chunk, sizes);
  if (!c.error.empty()) return ffi::Error::InvalidArgument("elm_network_backward: " + c.error);
  const ffi::DataType dtype = g_b_out.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    return ffi::Error::InvalidArgument("elm_network_backward: float32 or float64 only");
  const WeightArgs a{&kb, &km, &gain, &kbr, &kmem, &bias0, &rest, &wy, &by, &w_syn, &src, &branch};
  const Shapes& s = c.s;
  const int64_t chunks = (s.t + s.chunk - 1) / s.chunk;
  std::string err = check_weights(a, s, c.groups, dtype);
  if (err.empty()) err = check("e", e, c.groups, s.t * s.ext_dim * s.bp, dtype);
  if (err.empty()) err = check("ys", ys, c.groups, s.t * s.n * s.bp, dtype);
  if (err.empty()) err = check("g_ys", g_ys, c.groups, s.t * s.n * s.bp, dtype);
  if (err.empty()) err = check("ckpt_b", ckpt_b, c.groups, chunks * s.n * s.d * s.bp, dtype);
  if (err.empty()) err = check("ckpt_m", ckpt_m, c.groups, chunks * s.n * s.m * s.bp, dtype);
  if (err.empty()) err = check("y0", y0, c.groups, s.n * s.bp, dtype);
  if (err.empty()) err = check("g_y_out", g_y_out, c.groups, s.n * s.bp, dtype);
  if (!err.empty()) return ffi::Error::InvalidArgument("elm_network_backward: " + err);
  const GradResults r{&d_kb, &d_km, &d_gain, &d_kbr, &d_kmem, &d_bias0, &d_rest, &d_wy, &d_by,
                      &d_w_syn};
  if (dtype == ffi::DataType::F32)
    backward_typed<float>(pool, c, a, e, y0, ys, ckpt_b, ckpt_m, g_ys, g_b_out, g_m_out, g_y_out,
                          r, g_e, g_b0, g_m0, g_y0);
  else
    backward_typed<double>(pool, c, a, e, y0, ys, ckpt_b, ckpt_m, g_ys, g_b_out, g_m_out,
                           g_y_out, r, g_e, g_b0, g_m0, g_y0);
  return ffi::Error::Success();
}

// The per-step decoder on the kernel's output layout: ys [..., t, n, bp], W [..., n, no],
// b [..., no] -> logits [..., batch, t, no] (bp = batch rounded up to 8); its reverse takes
// g [..., batch, t, no] and gives d_ys [..., t, n, bp] and the sums of blocks of steps
// [..., blocks, (n + 1) no] (dW, then db). A task is a block of steps with all its sequences, so
// each row of ys (bp values) is read and written whole.
struct DecodeCall {
  int64_t groups = 0, t = 0, n = 0, bp = 0, no = 0, batch = 0;
  std::string error;
};

DecodeCall decode_call(const char* name, const ffi::AnyBuffer& ys, const ffi::AnyBuffer& w,
                       ffi::Span<const int64_t> gd, ffi::DataType g_dtype) {
  DecodeCall c;
  auto yd = ys.dimensions();
  auto wd = w.dimensions();
  const std::string who(name);
  if (yd.size() < 3 || wd.size() < 2 || gd.size() < 3) {
    c.error = who + ": ys must be [..., t, n, bp], W [..., n, no], logits [..., batch, t, no]";
    return c;
  }
  c.t = yd[yd.size() - 3];
  c.n = yd[yd.size() - 2];
  c.bp = yd[yd.size() - 1];
  c.no = wd[wd.size() - 1];
  c.batch = gd[gd.size() - 3];
  const ffi::DataType dtype = ys.element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64)
    c.error = who + ": float32 or float64 only";
  else if (w.element_type() != dtype || g_dtype != dtype)
    c.error = who + ": ys, W and the logits must have one dtype";
  else if (wd[wd.size() - 2] != c.n || c.no <= 0 || c.t * c.n <= 0)
    c.error = who + ": W's rows must match ys's neuron axis";
  else if (gd[gd.size() - 2] != c.t || gd[gd.size() - 1] != c.no)
    c.error = who + ": the logits must be [..., batch, t, no]";
  else if (c.bp % LANES != 0 || c.batch <= c.bp - LANES || c.batch > c.bp)
    c.error = who + ": bp must be the batch rounded up to a multiple of 8";
  else
    c.groups = static_cast<int64_t>(ys.element_count()) / (c.t * c.n * c.bp);
  if (c.error.empty() && static_cast<int64_t>(w.element_count()) != c.groups * c.n * c.no)
    c.error = who + ": ys and W have different leading axes";
  return c;
}

// Steps [t0, t1) of block k of `blocks` (a task each, with every sequence of its steps).
inline void step_block(int64_t t, int64_t blocks, int64_t k, int64_t* t0, int64_t* t1) {
  *t0 = t * k / blocks;
  *t1 = t * (k + 1) / blocks;
}

template <class T>
void decode_typed(ffi::ThreadPool& pool, const DecodeCall& c, const ffi::AnyBuffer& ys,
                  const ffi::AnyBuffer& w, const ffi::AnyBuffer& b,
                  ffi::Result<ffi::AnyBuffer>& logits) {
  const bool avx2 = use_avx2();
  const int64_t blocks = std::min<int64_t>(c.t, 16);
  parallel_for(pool, c.groups * blocks, [&](int64_t task) {
    const int64_t g = task / blocks;
    int64_t t0, t1;
    step_block(c.t, blocks, task % blocks, &t0, &t1);
    const T* yg = at<T>(ys, g, c.t * c.n * c.bp);
    const T* wg = at<T>(w, g, c.n * c.no);
    const T* bg = at<T>(b, g, c.no);
    T* og = at_out<T>(logits, g, c.batch * c.t * c.no);
    T* work = static_cast<T*>(thread_work(c.no * LANES * static_cast<int64_t>(sizeof(T))));
    if (avx2)
      isa_avx2::decode_steps<T>(yg, wg, bg, og, c.t, c.n, c.no, c.bp, c.batch, t0, t1, work);
    else
      isa_baseline::decode_steps<T>(yg, wg, bg, og, c.t, c.n, c.no, c.bp, c.batch, t0, t1, work);
  });
}

ffi::Error Decode(ffi::ThreadPool pool, ffi::AnyBuffer ys, ffi::AnyBuffer w, ffi::AnyBuffer b,
                  ffi::Result<ffi::AnyBuffer> logits) {
  const DecodeCall c =
      decode_call("elm_network_decode", ys, w, logits->dimensions(), logits->element_type());
  if (!c.error.empty()) return ffi::Error::InvalidArgument(c.error);
  if (b.element_type() != ys.element_type() ||
      static_cast<int64_t>(b.element_count()) != c.groups * c.no)
    return ffi::Error::InvalidArgument("elm_network_decode: b must be [..., no] of ys's dtype");
  if (ys.element_type() == ffi::DataType::F32)
    decode_typed<float>(pool, c, ys, w, b, logits);
  else
    decode_typed<double>(pool, c, ys, w, b, logits);
  return ffi::Error::Success();
}

template <class T>
void decode_grad_typed(ffi::ThreadPool& pool, const DecodeCall& c, const ffi::AnyBuffer& ys,
                       const ffi::AnyBuffer& w, const ffi::AnyBuffer& g,
                       ffi::Result<ffi::AnyBuffer>& d_ys, ffi::Result<ffi::AnyBuffer>& sums,
                       int64_t blocks) {
  const bool avx2 = use_avx2();
  const int64_t per_sums = (c.n + 1) * c.no;
  const int64_t bytes = (c.no + per_sums) * LANES * static_cast<int64_t>(sizeof(T));
  parallel_for(pool, c.groups * blocks, [&](int64_t task) {
    const int64_t gi = task / blocks, k = task % blocks;
    int64_t t0, t1;
    step_block(c.t, blocks, k, &t0, &t1);
    const T* yg = at<T>(ys, gi, c.t * c.n * c.bp);
    const T* wg = at<T>(w, gi, c.n * c.no);
    const T* gg = at<T>(g, gi, c.batch * c.t * c.no);
    T* dg = at_out<T>(d_ys, gi, c.t * c.n * c.bp);
    T* sg = at_out<T>(sums, gi, blocks * per_sums) + k * per_sums;
    T* work = static_cast<T*>(thread_work(bytes));
    if (avx2)
      isa_avx2::decode_grad_steps<T>(yg, wg, gg, dg, sg, c.t, c.n, c.no, c.bp, c.batch, t0, t1,
                                     work);
    else
      isa_baseline::decode_grad_steps<T>(yg, wg, gg, dg, sg, c.t, c.n, c.no, c.bp, c.batch, t0,
                                         t1, work);
  });
}

ffi::Error DecodeGrad(ffi::ThreadPool pool, ffi::AnyBuffer ys, ffi::AnyBuffer w, ffi::AnyBuffer g,
                      ffi::Result<ffi::AnyBuffer> d_ys, ffi::Result<ffi::AnyBuffer> sums) {
  const DecodeCall c =
      decode_call("elm_network_decode_grad", ys, w, g.dimensions(), g.element_type());
  if (!c.error.empty()) return ffi::Error::InvalidArgument(c.error);
  // sums [..., blocks, (n + 1) no]: the caller chose how many step blocks (tasks) per group.
  auto sd = sums->dimensions();
  const int64_t blocks = sd.size() >= 2 ? sd[sd.size() - 2] : 0;
  if (d_ys->element_count() != ys.element_count() || d_ys->element_type() != ys.element_type() ||
      blocks < 1 || blocks > c.t || sd[sd.size() - 1] != (c.n + 1) * c.no ||
      static_cast<int64_t>(sums->element_count()) != c.groups * blocks * (c.n + 1) * c.no ||
      sums->element_type() != ys.element_type())
    return ffi::Error::InvalidArgument("elm_network_decode_grad: the outputs have the wrong size");
  if (ys.element_type() == ffi::DataType::F32)
    decode_grad_typed<float>(pool, c, ys, w, g, d_ys, sums, blocks);
  else
    decode_grad_typed<double>(pool, c, ys, w, g, d_ys, sums, blocks);
  return ffi::Error::Success();
}

}  // namespace
}  // namespace elm_network

using ffi::AnyBuffer;

// The handlers (these two and the single neuron's) and ElmKernelUsesAvx2 are the library's only
// exported symbols (built with -fvisibility=hidden).
extern "C" __attribute__((visibility("default"))) int ElmKernelUsesAvx2() {
  return elm_network::use_avx2() ? 1 : 0;
}
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNetworkDecode(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNetworkDecodeGrad(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNetworkDecode, elm_network::Decode,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // ys, the kernel's layout
                                  .Arg<AnyBuffer>()  // W
                                  .Arg<AnyBuffer>()  // b
                                  .Ret<AnyBuffer>());  // logits

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNetworkDecodeGrad, elm_network::DecodeGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // ys
                                  .Arg<AnyBuffer>()  // W
                                  .Arg<AnyBuffer>()  // g
                                  .Ret<AnyBuffer>()  // d_ys
                                  .Ret<AnyBuffer>());  // per-tile sums: dW, db

extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNetworkForward(
    XLA_FFI_CallFrame* call_frame);
extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* ElmNetworkBackward(
    XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNetworkForward, elm_network::Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // kappa_b
                                  .Arg<AnyBuffer>()  // kappa_m
                                  .Arg<AnyBuffer>()  // memory_gain
                                  .Arg<AnyBuffer>()  // k_branch
                                  .Arg<AnyBuffer>()  // k_memory
                                  .Arg<AnyBuffer>()  // bias0
                                  .Arg<AnyBuffer>()  // rest
                                  .Arg<AnyBuffer>()  // w_y
                                  .Arg<AnyBuffer>()  // b_y
                                  .Arg<AnyBuffer>()  // w_syn
                                  .Arg<AnyBuffer>()  // source
                                  .Arg<AnyBuffer>()  // branch
                                  .Arg<AnyBuffer>()  // e
                                  .Arg<AnyBuffer>()  // b0
                                  .Arg<AnyBuffer>()  // m0
                                  .Arg<AnyBuffer>()  // y0
                                  .Ret<AnyBuffer>()  // ys
                                  .Ret<AnyBuffer>()  // b_out
                                  .Ret<AnyBuffer>()  // m_out
                                  .Ret<AnyBuffer>()  // y_out
                                  .Ret<AnyBuffer>()  // ckpt_b
                                  .Ret<AnyBuffer>()  // ckpt_m
                                  .Attr<int64_t>("rest_size")
                                  .Attr<int64_t>("chunk")
                                  .Attr<ffi::Span<const int64_t>>("sizes"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(ElmNetworkBackward, elm_network::Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<AnyBuffer>()  // kappa_b
                                  .Arg<AnyBuffer>()  // kappa_m
                                  .Arg<AnyBuffer>()  // memory_gain
                                  .Arg<AnyBuffer>()  // k_branch
                                  .Arg<AnyBuffer>()  // k_memory
                                  .Arg<AnyBuffer>()  // bias0
                                  .Arg<AnyBuffer>()  // rest
                                  .Arg<AnyBuffer>()  // w_y
                                  .Arg<AnyBuffer>()  // b_y
                                  .Arg<AnyBuffer>()  // w_syn
                                  .Arg<AnyBuffer>()  // source
                                  .Arg<AnyBuffer>()  // branch
                                  .Arg<AnyBuffer>()  // e
                                  .Arg<AnyBuffer>()  // y0
                                  .Arg<AnyBuffer>()  // ys
                                  .Arg<AnyBuffer>()  // ckpt_b
                                  .Arg<AnyBuffer>()  // ckpt_m
                                  .Arg<AnyBuffer>()  // g_ys
                                  .Arg<AnyBuffer>()  // g_b_out
                                  .Arg<AnyBuffer>()  // g_m_out
                                  .Arg<AnyBuffer>()  // g_y_out
                                  .Ret<AnyBuffer>()  // d kappa_b
                                  .Ret<AnyBuffer>()  // d kappa_m
                                  .Ret<AnyBuffer>()  // d memory_gain
                                  .Ret<AnyBuffer>()  // d k_branch
                                  .Ret<AnyBuffer>()  // d k_memory
                                  .Ret<AnyBuffer>()  // d bias0
                                  .Ret<AnyBuffer>()  // d rest
                                  .Ret<AnyBuffer>()  // d w_y
                                  .Ret<AnyBuffer>()  // d b_y
                                  .Ret<AnyBuffer>()  // d w_syn
                                  .Ret<AnyBuffer>()  // g_e
                                  .Ret<AnyBuffer>()  // g_b0
                                  .Ret<AnyBuffer>()  // g_m0
                                  .Ret<AnyBuffer>()  // g_y0
                                  .Attr<int64_t>("rest_size")
                                  .Attr<int64_t>("chunk")
                                  .Attr<ffi::Span<const int64_t>>("sizes"));
