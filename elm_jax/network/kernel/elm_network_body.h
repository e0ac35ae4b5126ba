// The ELM network's recurrence over all T steps, forward and backward, for one batch tile of
// LANES sequences: the math of elm_jax/network/scan.py (`_forward`, `_bwd`), written as plain
// loops over SIMD vectors that hold one value of each sequence of the tile.
//
// Included by one translation unit per instruction set (elm_network_isa_*.cc), each defining
// ELM_ISA_NAMESPACE first, so every function here gets its own symbol per instruction set and
// no code compiled for a wider one can be picked by the linker for a narrower one. Only compiler
// builtins and libm are used here: no inline functions of the C++ library are instantiated.
//
// Axis legend as in elm_jax/network/dynamics.py: n neuron, d branch, m memory unit, s recurrent
// synapse, j presynaptic neuron, t time. Every per-sequence array has the padded batch Bp last
// (a multiple of LANES); a tile reads LANES consecutive sequences at lane offset `lane0`.

#ifndef ELM_ISA_NAMESPACE
#error "define ELM_ISA_NAMESPACE before including elm_network_body.h"
#endif

#include <math.h>
#include <stdint.h>

#include "elm_network_types.h"

namespace elm_network {
namespace ELM_ISA_NAMESPACE {

template <class T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(LANES * sizeof(float))));
  typedef int32_t itype __attribute__((vector_size(LANES * sizeof(int32_t))));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(LANES * sizeof(double))));
};

template <class T>
using V = typename VecOf<T>::type;

template <class T>
static inline V<T> load(const T* p) {
  V<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
static inline void store(T* p, V<T> v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// x in every lane (a broadcast; `V<T>{} + x` would add 0 first).
template <class T>
static inline V<T> splat(T x) {
  static_assert(LANES == 8, "splat lists the lanes");
  return V<T>{x, x, x, x, x, x, x, x};
}

template <class T>
static inline V<T> relu(V<T> x) {
  const V<T> zero = V<T>{};
  return x > zero ? x : zero;
}

// tanh of every lane. float: tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)), with expm1 from a
// Cody-Waite reduction y = k ln2 + r and a degree-7 polynomial in r (|r| <= ln2 / 2), which
// keeps full relative precision near 0; |x| is clamped at 9, where tanh is 1 in float.
static inline V<float> tanh_lanes(V<float> x) {
  typedef VecOf<float>::itype VI;
  const V<float> zero = V<float>{};
  V<float> ax = x < zero ? -x : x;
  const V<float> clamp = splat(9.0f);
  ax = ax < clamp ? ax : clamp;
  const V<float> y = -2.0f * ax;
  const V<float> magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const V<float> kf = (y * 1.44269504088896341f + magic) - magic;
  const V<float> r = (y - kf * 0.693145751953125f) - kf * 1.42860682030941723212e-6f;
  V<float> p = 1.0f / 5040.0f + r * 0.0f;
  p = 1.0f / 720.0f + r * p;
  p = 1.0f / 120.0f + r * p;
  p = 1.0f / 24.0f + r * p;
  p = 1.0f / 6.0f + r * p;
  p = 0.5f + r * p;
  p = 1.0f + r * p;
  p = r * p;  // expm1(r)
  const VI ki = __builtin_convertvector(kf, VI);
  const VI bits = (ki + 127) << 23;
  V<float> two_k;
  __builtin_memcpy(&two_k, &bits, sizeof two_k);
  const V<float> em = two_k * p + (two_k - 1.0f);  // expm1(y), in (-1, 0]
  const V<float> t = -em / (2.0f + em);
  return x < zero ? -t : t;
}

static inline V<double> tanh_lanes(V<double> x) {
  for (int l = 0; l < LANES; ++l) x[l] = tanh(x[l]);
  return x;
}

struct Sizes {
  int64_t zs;         // values of the recorded pre-activations per neuron (all maps but the last)
  int64_t zall;       // values of all maps' outputs per neuron
  int64_t hmax;       // the widest map
  int64_t params;     // gradient accumulators per neuron (all weights)
  int64_t step_work;  // vectors of `step`'s work memory
  explicit Sizes(const Shapes& s) {
    zall = hmax = 0;
    for (int64_t l = 0; l < s.num_maps; ++l) {
      zall += s.sizes[l];
      hmax = s.sizes[l] > hmax ? s.sizes[l] : hmax;
    }
    zs = zall - s.sizes[s.num_maps - 1];
    const int64_t d = s.d, m = s.m, h0 = s.sizes[0];
    params = d + 3 * m + d * h0 + m * h0 + h0 + s.rest + 1 + s.k;
    step_work = s.n * (zall + m) + hmax;
  }
};

// Where each array of a task's work memory starts, in vectors: one layout both sizes the memory
// (`*_work_bytes`) and carves it (`*_tile`).
struct Carver {
  int64_t total = 0;
  int64_t take(int64_t vectors) {
    const int64_t at = total;
    total += vectors;
    return at;
  }
};

struct ForwardLayout {
  int64_t b, mem, work, pool, total;
  explicit ForwardLayout(const Shapes& s) {
    const Sizes z(s);
    Carver c;
    b = c.take(s.n * s.d);  // working state
    mem = c.take(s.n * s.m);
    work = c.take(z.step_work);      // `step`'s work
    pool = c.take(s.ext_dim + s.n);  // [e_t ; y_{t-1}]
    total = c.total;
  }
};

struct BackwardLayout {
  int64_t b, mem, rb, rm, rth, rz, work, cb, cm, cy, y_scratch, gz, gin, gb, gm, ghm, mprev, xin;
  int64_t acc, pool, gpool, total;
  explicit BackwardLayout(const Shapes& s) {
    const Sizes z(s);
    const int64_t n = s.n, d = s.d, m = s.m, K = s.chunk;
    Carver c;
    b = c.take(n * d);  // working state
    mem = c.take(n * m);
    rb = c.take(K * n * d);  // the chunk's recorded activations
    rm = c.take(K * n * m);
    rth = c.take(K * n * m);
    rz = c.take(K * n * z.zs);
    work = c.take(z.step_work);  // `step`'s work
    cb = c.take(n * d);          // carried cotangents of branch, memory and output
    cm = c.take(n * m);
    cy = c.take(n);
    y_scratch = c.take(n);  // the recomputed outputs
    gz = c.take(z.hmax);    // one neuron's cotangents and map inputs
    gin = c.take(z.hmax);
    gb = c.take(d);
    gm = c.take(m);
    ghm = c.take(m);
    mprev = c.take(m);
    xin = c.take(z.hmax + m);  // a map's inputs, or kappa_m * m_prev
    acc = c.take(n * z.params);  // gradient accumulators
    pool = c.take(s.ext_dim + n);  // [e_t ; y_{t-1}] and its cotangent
    gpool = c.take(s.ext_dim + n);
    total = c.total;
  }
};

// Offsets of each parameter's gradient accumulator inside a neuron's block.
struct Acc {
  int64_t kb, km, gain, kbr, kmem, bias0, rest, wy, by, syn;
  explicit Acc(const Shapes& s) {
    const int64_t d = s.d, m = s.m, h0 = s.sizes[0];
    kb = 0;
    km = kb + d;
    gain = km + m;
    kbr = gain + m;
    kmem = kbr + d * h0;
    bias0 = kmem + m * h0;
    rest = bias0 + h0;
    wy = rest + s.rest;
    by = wy + m;
    syn = by + 1;
  }
};

// Where one step's activations are recorded for the backward (nullptr: not recorded).
template <class T>
struct Record {
  V<T>* b;   // [n, d] branch state after the step
  V<T>* m;   // [n, m] memory after the step
  V<T>* th;  // [n, m] tanh(slope * last pre-activation)
  V<T>* z;   // [n, zs] pre-activations of every map but the last
};

// out[o] = bias[o] + sum_k w1[k, o] x1[k] + sum_k w2[k, o] x2[k] (weights row-major [k][nout]),
// four outputs at a time so that each input vector is loaded once per four products.
template <class T>
static inline void affine(const T* __restrict__ bias, int64_t nout, const T* __restrict__ w1,
                          const V<T>* __restrict__ x1, int64_t n1, const T* __restrict__ w2,
                          const V<T>* __restrict__ x2, int64_t n2, V<T>* __restrict__ out) {
  int64_t o = 0;
  for (; o + 4 <= nout; o += 4) {
    V<T> a0 = splat(bias[o]), a1 = splat(bias[o + 1]), a2 = splat(bias[o + 2]),
         a3 = splat(bias[o + 3]);
    for (int64_t k = 0; k < n1; ++k) {
      const V<T> x = x1[k];
      const T* r = w1 + k * nout + o;
      a0 += splat(r[0]) * x;
      a1 += splat(r[1]) * x;
      a2 += splat(r[2]) * x;
      a3 += splat(r[3]) * x;
    }
    for (int64_t k = 0; k < n2; ++k) {
      const V<T> x = x2[k];
      const T* r = w2 + k * nout + o;
      a0 += splat(r[0]) * x;
      a1 += splat(r[1]) * x;
      a2 += splat(r[2]) * x;
      a3 += splat(r[3]) * x;
    }
    out[o] = a0;
    out[o + 1] = a1;
    out[o + 2] = a2;
    out[o + 3] = a3;
  }
  for (; o + 2 <= nout; o += 2) {
    V<T> a0 = splat(bias[o]), a1 = splat(bias[o + 1]), c0 = V<T>{}, c1 = V<T>{};
    for (int64_t k = 0; k < n1; ++k) {
      a0 += splat(w1[k * nout + o]) * x1[k];
      a1 += splat(w1[k * nout + o + 1]) * x1[k];
    }
    for (int64_t k = 0; k < n2; ++k) {
      c0 += splat(w2[k * nout + o]) * x2[k];
      c1 += splat(w2[k * nout + o + 1]) * x2[k];
    }
    out[o] = a0 + c0;
    out[o + 1] = a1 + c1;
  }
  for (; o < nout; ++o) {
    V<T> a = splat(bias[o]), c = V<T>{};
    for (int64_t k = 0; k < n1; ++k) a += splat(w1[k * nout + o]) * x1[k];
    for (int64_t k = 0; k < n2; ++k) c += splat(w2[k * nout + o]) * x2[k];
    out[o] = a + c;
  }
}

// The backward of one map for the inputs x [nin] (the values the map read): accumulates the
// kernel's gradient aw[k, o] += x[k] gz[o] and returns gin[k] = sum_o w[k, o] gz[o].
template <class T>
static inline void affine_back(const T* __restrict__ w, int64_t nout, const V<T>* __restrict__ x,
                               int64_t nin, const V<T>* __restrict__ gz, V<T>* __restrict__ aw,
                               V<T>* __restrict__ gin) {
  for (int64_t k = 0; k < nin; ++k) {
    const V<T> xk = x[k];
    const T* r = w + k * nout;
    V<T>* ar = aw + k * nout;
    V<T> g0 = V<T>{}, g1 = V<T>{};
    int64_t o = 0;
    for (; o + 2 <= nout; o += 2) {
      const V<T> z0 = gz[o], z1 = gz[o + 1];
      g0 += splat(r[o]) * z0;
      g1 += splat(r[o + 1]) * z1;
      ar[o] += xk * z0;
      ar[o + 1] += xk * z1;
    }
    for (; o < nout; ++o) {
      g0 += splat(r[o]) * gz[o];
      ar[o] += xk * gz[o];
    }
    gin[k] = g0 + g1;
  }
}

// The pool a step's synapses read: e_t [ext_dim] then y_{t-1} [n], one vector each.
template <class T>
static inline void fill_external(const Shapes& s, const T* e_t, V<T>* __restrict__ pool) {
  for (int64_t j = 0; j < s.ext_dim; ++j) pool[j] = load(e_t + j * s.bp);
}

template <class T>
static inline void fill_outputs(const Shapes& s, const T* y, int64_t stride,
                                V<T>* __restrict__ pool) {
  for (int64_t j = 0; j < s.n; ++j) pool[s.ext_dim + j] = load(y + j * stride);
}

// One time step of every neuron, in place on the state b [n, d] and mem [n, m]. The synapses
// read `pool` (`fill_external`, `fill_outputs`); y_t goes to `y_out` (row stride `y_stride`).
// `work` holds `Sizes::step_work` vectors. Each stage runs over all neurons before the next
// (branches, first map, further maps, memory and readout): a neuron's chain of dependent
// operations is long and its loops short, so interleaving neurons keeps the core busy.
template <class T>
static void step(const Shapes& s, const Sizes& z, const Weights<T>& w,
                 const V<T>* __restrict__ pool, T* __restrict__ y_out, int64_t y_stride,
                 V<T>* __restrict__ b, V<T>* __restrict__ mem, V<T>* __restrict__ work,
                 const Record<T>* rec) {
  const int64_t n = s.n, d = s.d, m = s.m, h0 = s.sizes[0], zall = z.zall;
  V<T>* zw = work;           // [n, zall] every map's output
  V<T>* ms = zw + n * zall;  // [n, m] kappa_m * m_prev
  V<T>* act = ms + n * m;    // [hmax] one neuron's map input
  const T scale_gain = static_cast<T>(TANH_SCALE);
  const T slope = static_cast<T>(TANH_SLOPE);

  for (int64_t i = 0; i < n; ++i) {
    const T* kb = w.kb + i * d;
    V<T>* bi = b + i * d;
    const int32_t* start = w.branch_start + i * (d + 1);
    const T* ws = w.w_syn + i * s.k;
    const int32_t* src = w.src + i * s.k;
    for (int64_t k = 0; k < d; ++k) {
      // Four partial sums: a single one would chain every synapse's product on the last.
      V<T> a0 = splat(kb[k]) * bi[k], a1 = V<T>{}, a2 = V<T>{}, a3 = V<T>{};
      int64_t p = start[k];
      const int64_t end = start[k + 1];
      for (; p + 4 <= end; p += 4) {
        a0 += splat(ws[p]) * pool[src[p]];
        a1 += splat(ws[p + 1]) * pool[src[p + 1]];
        a2 += splat(ws[p + 2]) * pool[src[p + 2]];
        a3 += splat(ws[p + 3]) * pool[src[p + 3]];
      }
      for (; p < end; ++p) a0 += splat(ws[p]) * pool[src[p]];
      bi[k] = (a0 + a1) + (a2 + a3);
    }
  }
  // First map: [b ; kappa_m * m_prev] -> h0.
  for (int64_t i = 0; i < n; ++i) {
    const T* km = w.km + i * m;
    V<T>* msi = ms + i * m;
    for (int64_t q = 0; q < m; ++q) msi[q] = splat(km[q]) * mem[i * m + q];
    affine(w.bias0 + i * h0, h0, w.kbr + i * d * h0, b + i * d, d, w.kmem + i * m * h0, msi, m,
           zw + i * zall);
  }
  // Further maps read the relu of the one before.
  int64_t off_in = 0, in = h0, rest_off = 0;
  for (int64_t l = 1; l < s.num_maps; ++l) {
    const int64_t out = s.sizes[l];
    for (int64_t i = 0; i < n; ++i) {
      const V<T>* zin = zw + i * zall + off_in;
      for (int64_t k = 0; k < in; ++k) act[k] = relu<T>(zin[k]);
      const T* rp = w.rest + i * s.rest + rest_off;
      affine(rp + in * out, out, rp, act, in, rp, act, 0, zw + i * zall + off_in + in);
    }
    rest_off += in * out + out;
    off_in += in;
    in = out;
  }
  // The last pre-activation [m] (at zs): memory update and readout.
  for (int64_t i = 0; i < n; ++i) {
    const V<T>* zl = zw + i * zall + z.zs;
    const V<T>* msi = ms + i * m;
    V<T>* mi = mem + i * m;
    const T* gain = w.gain + i * m;
    const T* wy = w.wy + i * m;
    V<T> y = splat(w.by[i]);
    for (int64_t q = 0; q < m; ++q) {
      const V<T> th = tanh_lanes(splat(slope) * zl[q]);
      mi[q] = msi[q] + splat(gain[q]) * (scale_gain * th);
      y += splat(wy[q]) * mi[q];
      if (rec) rec->th[i * m + q] = th;
    }
    store(y_out + i * y_stride, y);
    if (rec) {
      for (int64_t k = 0; k < d; ++k) rec->b[i * d + k] = b[i * d + k];
      for (int64_t q = 0; q < m; ++q) rec->m[i * m + q] = mi[q];
      for (int64_t k = 0; k < z.zs; ++k) rec->z[i * z.zs + k] = zw[i * zall + k];
    }
  }
}

// Bytes of work memory one forward task needs.
template <class T>
int64_t forward_work_bytes(const Shapes& s) {
  return static_cast<int64_t>(sizeof(V<T>)) * ForwardLayout(s).total;
}

template <class T>
void forward_tile(const Shapes& s, const Weights<T>& w, const ForwardIO<T>& io, int64_t lane0,
                  void* work_memory) {
  const Sizes z(s);
  const int64_t n = s.n, d = s.d, m = s.m, bp = s.bp;
  const ForwardLayout lay(s);
  V<T>* base = static_cast<V<T>*>(work_memory);
  V<T>* b = base + lay.b;
  V<T>* mem = base + lay.mem;
  V<T>* work = base + lay.work;
  V<T>* pool = base + lay.pool;
  for (int64_t i = 0; i < n * d; ++i) b[i] = load(io.b0 + i * bp + lane0);
  for (int64_t i = 0; i < n * m; ++i) mem[i] = load(io.m0 + i * bp + lane0);
  for (int64_t t = 0; t < s.t; ++t) {
    if (t % s.chunk == 0) {
      const int64_t c = t / s.chunk;
      for (int64_t i = 0; i < n * d; ++i) store(io.ckpt_b + (c * n * d + i) * bp + lane0, b[i]);
      for (int64_t i = 0; i < n * m; ++i) store(io.ckpt_m + (c * n * m + i) * bp + lane0, mem[i]);
    }
    const T* yprev = (t == 0 ? io.y0 : io.ys + (t - 1) * n * bp) + lane0;
    fill_external(s, io.e + t * s.ext_dim * bp + lane0, pool);
    fill_outputs(s, yprev, bp, pool);
    step(s, z, w, pool, io.ys + t * n * bp + lane0, bp, b, mem, work,
         static_cast<const Record<T>*>(nullptr));
  }
  for (int64_t i = 0; i < n * d; ++i) store(io.b_out + i * bp + lane0, b[i]);
  for (int64_t i = 0; i < n * m; ++i) store(io.m_out + i * bp + lane0, mem[i]);
  const T* ylast = (s.t == 0 ? io.y0 : io.ys + (s.t - 1) * n * bp) + lane0;
  for (int64_t i = 0; i < n; ++i) store(io.y_out + i * bp + lane0, load(ylast + i * bp));
}

// Bytes of work memory one backward task needs.
template <class T>
int64_t backward_work_bytes(const Shapes& s) {
  return static_cast<int64_t>(sizeof(V<T>)) * BackwardLayout(s).total;
}

// The backward of one tile: recomputes each chunk's forward from its checkpoint, then runs the
// chunk's steps in reverse. Writes g_e and the initial state's cotangents for the tile's lanes
// and the tile's weight gradients (summed over its lanes and all steps) into `grads` (laid out
// as `grads_offsets`).
template <class T>
void backward_tile(const Shapes& s, const Weights<T>& w, const BackwardIO<T>& io, int64_t lane0,
                   void* work_memory, T* grads) {
  const Sizes z(s);
  const Acc a(s);
  const int64_t n = s.n, d = s.d, m = s.m, bp = s.bp, h0 = s.sizes[0], K = s.chunk;
  const int64_t ext_dim = s.ext_dim;
  const BackwardLayout lay(s);
  V<T>* base = static_cast<V<T>*>(work_memory);
  V<T>* b = base + lay.b;
  V<T>* mem = base + lay.mem;
  V<T>* rb = base + lay.rb;
  V<T>* rm = base + lay.rm;
  V<T>* rth = base + lay.rth;
  V<T>* rz = base + lay.rz;
  V<T>* work = base + lay.work;
  V<T>* cb = base + lay.cb;
  V<T>* cm = base + lay.cm;
  V<T>* cy = base + lay.cy;
  V<T>* y_scratch = base + lay.y_scratch;
  V<T>* gz = base + lay.gz;
  V<T>* gin = base + lay.gin;
  V<T>* gb = base + lay.gb;
  V<T>* gm = base + lay.gm;
  V<T>* ghm = base + lay.ghm;
  V<T>* mprev = base + lay.mprev;
  V<T>* xin = base + lay.xin;
  V<T>* acc = base + lay.acc;
  V<T>* pool = base + lay.pool;
  V<T>* gpool = base + lay.gpool;
  const V<T> zero = V<T>{};
  for (int64_t i = 0; i < n * z.params; ++i) acc[i] = zero;
  for (int64_t i = 0; i < n * d; ++i) cb[i] = load(io.g_b_out + i * bp + lane0);
  for (int64_t i = 0; i < n * m; ++i) cm[i] = load(io.g_m_out + i * bp + lane0);
  for (int64_t i = 0; i < n; ++i) cy[i] = load(io.g_y_out + i * bp + lane0);
  const T scale = static_cast<T>(TANH_SCALE);
  const T scale_slope = static_cast<T>(TANH_SCALE * TANH_SLOPE);
  const int64_t chunks = (s.t + K - 1) / K;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * K, t1 = (t0 + K < s.t) ? t0 + K : s.t;
    for (int64_t i = 0; i < n * d; ++i) b[i] = load(io.ckpt_b + (c * n * d + i) * bp + lane0);
    for (int64_t i = 0; i < n * m; ++i) mem[i] = load(io.ckpt_m + (c * n * m + i) * bp + lane0);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t q = t - t0;
      const Record<T> r{rb + q * n * d, rm + q * n * m, rth + q * n * m, rz + q * n * z.zs};
      const T* yprev = (t == 0 ? io.y0 : io.ys + (t - 1) * n * bp) + lane0;
      // The recomputed outputs equal the forward's (same code, same order), which the next
      // step reads from io.ys; these go to scratch.
      fill_external(s, io.e + t * ext_dim * bp + lane0, pool);
      fill_outputs(s, yprev, bp, pool);
      step(s, z, w, pool, reinterpret_cast<T*>(y_scratch), LANES, b, mem, work, &r);
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      const int64_t q = t - t0;
      const V<T>* bt = rb + q * n * d;
      const V<T>* mt = rm + q * n * m;
      const V<T>* tht = rth + q * n * m;
      const V<T>* zt = rz + q * n * z.zs;
      const bool first = (q == 0);
      const T* ck_b = io.ckpt_b + c * n * d * bp + lane0;
      const T* ck_m = io.ckpt_m + c * n * m * bp + lane0;
      const T* yprev = (t == 0 ? io.y0 : io.ys + (t - 1) * n * bp) + lane0;
      const T* gys = io.g_ys + t * n * bp + lane0;
      fill_external(s, io.e + t * ext_dim * bp + lane0, pool);
      fill_outputs(s, yprev, bp, pool);
      for (int64_t j = 0; j < ext_dim + n; ++j) gpool[j] = zero;
      for (int64_t i = 0; i < n; ++i) {
        V<T>* A = acc + i * z.params;
        const T* wy = w.wy + i * m;
        const T* gain = w.gain + i * m;
        const T* km = w.km + i * m;
        const T* kb = w.kb + i * d;
        const V<T> gy = load(gys + i * bp) + cy[i];
        A[a.by] += gy;
        for (int64_t k = 0; k < m; ++k) {
          const V<T> th = tht[i * m + k];
          const V<T> g = splat(wy[k]) * gy + cm[i * m + k];
          gm[k] = g;
          A[a.wy + k] += mt[i * m + k] * gy;
          A[a.gain + k] += g * (scale * th);
          gz[k] = g * splat(gain[k] * scale_slope) * (1 - th * th);
        }
        // Back through the maps after the first (the last map's pre-activation has size m).
        const V<T>* zi = zt + i * z.zs;
        int64_t off_out = z.zall;  // offset of map l's output in the concatenated outputs
        int64_t rest_end = s.rest;
        for (int64_t l = s.num_maps - 1; l >= 1; --l) {
          const int64_t out = s.sizes[l], in = s.sizes[l - 1];
          off_out -= out;
          const int64_t off_in = off_out - in;
          rest_end -= in * out + out;
          const T* kernel = w.rest + i * s.rest + rest_end;
          V<T>* Ak = A + a.rest + rest_end;
          V<T>* Ab = Ak + in * out;
          for (int64_t o = 0; o < out; ++o) Ab[o] += gz[o];
          for (int64_t k = 0; k < in; ++k) xin[k] = relu<T>(zi[off_in + k]);
          affine_back(kernel, out, xin, in, gz, Ak, gin);
          for (int64_t k = 0; k < in; ++k) gz[k] = zi[off_in + k] > zero ? gin[k] : zero;
        }
        // First map, read [b_t ; kappa_m * m_prev].
        for (int64_t o = 0; o < h0; ++o) A[a.bias0 + o] += gz[o];
        affine_back(w.kbr + i * d * h0, h0, bt + i * d, d, gz, A + a.kbr, gb);
        for (int64_t k = 0; k < d; ++k) gb[k] += cb[i * d + k];
        for (int64_t k = 0; k < m; ++k) {
          mprev[k] = first ? load(ck_m + (i * m + k) * bp) : (mt - n * m)[i * m + k];
          xin[k] = splat(km[k]) * mprev[k];
        }
        affine_back(w.kmem + i * m * h0, h0, xin, m, gz, A + a.kmem, ghm);
        for (int64_t k = 0; k < m; ++k) {
          const V<T> total = gm[k] + ghm[k];
          A[a.km + k] += total * mprev[k];
          cm[i * m + k] = splat(km[k]) * total;
        }
        const int32_t* start = w.branch_start + i * (d + 1);
        const T* ws = w.w_syn + i * s.k;
        const int32_t* src = w.src + i * s.k;
        V<T>* As = A + a.syn;
        for (int64_t k = 0; k < d; ++k) {
          const V<T> bprev = first ? load(ck_b + (i * d + k) * bp) : (bt - n * d)[i * d + k];
          const V<T> g = gb[k];
          A[a.kb + k] += g * bprev;
          cb[i * d + k] = splat(kb[k]) * g;
          for (int64_t p = start[k]; p < start[k + 1]; ++p) {
            const int64_t j = src[p];
            As[p] += pool[j] * g;
            gpool[j] += splat(ws[p]) * g;
          }
        }
      }
      T* ge_t = io.g_e + t * ext_dim * bp + lane0;
      for (int64_t j = 0; j < ext_dim; ++j) store(ge_t + j * bp, gpool[j]);
      for (int64_t i = 0; i < n; ++i) cy[i] = gpool[ext_dim + i];
    }
  }
  for (int64_t i = 0; i < n * d; ++i) store(io.g_b0 + i * bp + lane0, cb[i]);
  for (int64_t i = 0; i < n * m; ++i) store(io.g_m0 + i * bp + lane0, cm[i]);
  for (int64_t i = 0; i < n; ++i) store(io.g_y0 + i * bp + lane0, cy[i]);
  // The tile's weight gradients: each accumulator summed over its lanes.
  GradsOffsets g;
  grads_offsets(s, &g);
  for (int64_t i = 0; i < n; ++i) {
    const V<T>* A = acc + i * z.params;
    auto put = [&](int64_t base, int64_t count, int64_t acc_off) {
      for (int64_t k = 0; k < count; ++k) {
        const V<T> v = A[acc_off + k];
        T sum = 0;
        for (int l = 0; l < LANES; ++l) sum += v[l];
        grads[base + i * count + k] = sum;
      }
    };
    put(g.kb, d, a.kb);
    put(g.km, m, a.km);
    put(g.gain, m, a.gain);
    put(g.kbr, d * h0, a.kbr);
    put(g.kmem, m * h0, a.kmem);
    put(g.bias0, h0, a.bias0);
    put(g.rest, s.rest, a.rest);
    put(g.wy, m, a.wy);
    put(g.by, 1, a.by);
    put(g.syn, s.k, a.syn);
  }
}

template void forward_tile<float>(const Shapes&, const Weights<float>&, const ForwardIO<float>&,
                                  int64_t, void*);
template void forward_tile<double>(const Shapes&, const Weights<double>&,
                                   const ForwardIO<double>&, int64_t, void*);
template void backward_tile<float>(const Shapes&, const Weights<float>&,
                                   const BackwardIO<float>&, int64_t, void*, float*);
template void backward_tile<double>(const Shapes&, const Weights<double>&,
                                    const BackwardIO<double>&, int64_t, void*, double*);
template int64_t forward_work_bytes<float>(const Shapes&);
template int64_t forward_work_bytes<double>(const Shapes&);
template int64_t backward_work_bytes<float>(const Shapes&);
template int64_t backward_work_bytes<double>(const Shapes&);

}  // namespace ELM_ISA_NAMESPACE
}  // namespace elm_network
