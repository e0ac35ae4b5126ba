// The single ELM neuron's memory recurrence over all T steps, forward and backward, for one
// batch tile of LANES sequences: the loops of elm_jax/neuron/dynamics.py (`_memory_forward`
// with its records, `_memory_backward`), on SIMD vectors that hold one value of each sequence.
// The input half of the first map arrives projected (u; its trace, when it has one, runs here),
// and every weight matrix's gradient is one product over (t, b) afterwards in JAX, so only the
// nonlinear, sequential part runs here, with the sums of elementwise products (the gradients of
// the decays, gains and biases).
//
// Included after elm_network_body.h by each per-instruction-set translation unit (it uses that
// file's vectors, `splat`, `relu` and `tanh_lanes`).

#ifndef ELM_ISA_NAMESPACE
#error "define ELM_ISA_NAMESPACE before including elm_neuron_body.h"
#endif

#include "elm_neuron_types.h"

namespace elm_network {
namespace ELM_ISA_NAMESPACE {

template <class T>
static inline V<T> sigmoid_lanes(V<T> x) {
  for (int l = 0; l < LANES; ++l) x[l] = T(1) / (T(1) + exp(-x[l]));
  return x;
}

template <class T>
static inline V<T> activate(int64_t activation, V<T> a) {
  if (activation == kRelu) return relu<T>(a);
  return a * sigmoid_lanes<T>(a);
}

// The derivative of the activation at a, times g (relu: g where a > 0, as jax.nn.relu).
template <class T>
static inline V<T> activate_back(int64_t activation, V<T> a, V<T> g) {
  if (activation == kRelu) {
    const V<T> zero = V<T>{};
    return a > zero ? g : zero;
  }
  const V<T> s = sigmoid_lanes<T>(a);
  return g * (s + a * s * (T(1) - s));
}

// out[o] += sum_k w[k, o] x[k] (w row-major [nin][nout]); eight outputs at a time, so each
// input vector is loaded once per eight independent products.
template <class T>
static inline void accumulate(V<T>* __restrict__ out, int64_t nout, const T* __restrict__ w,
                              const V<T>* __restrict__ x, int64_t nin) {
  int64_t o = 0;
  for (; o + 8 <= nout; o += 8) {
    V<T> a0 = out[o], a1 = out[o + 1], a2 = out[o + 2], a3 = out[o + 3];
    V<T> a4 = out[o + 4], a5 = out[o + 5], a6 = out[o + 6], a7 = out[o + 7];
    for (int64_t k = 0; k < nin; ++k) {
      const V<T> xk = x[k];
      const T* r = w + k * nout + o;
      a0 += splat(r[0]) * xk;
      a1 += splat(r[1]) * xk;
      a2 += splat(r[2]) * xk;
      a3 += splat(r[3]) * xk;
      a4 += splat(r[4]) * xk;
      a5 += splat(r[5]) * xk;
      a6 += splat(r[6]) * xk;
      a7 += splat(r[7]) * xk;
    }
    out[o] = a0;
    out[o + 1] = a1;
    out[o + 2] = a2;
    out[o + 3] = a3;
    out[o + 4] = a4;
    out[o + 5] = a5;
    out[o + 6] = a6;
    out[o + 7] = a7;
  }
  for (; o + 2 <= nout; o += 2) {
    V<T> a0 = out[o], a1 = out[o + 1];
    for (int64_t k = 0; k < nin; ++k) {
      a0 += splat(w[k * nout + o]) * x[k];
      a1 += splat(w[k * nout + o + 1]) * x[k];
    }
    out[o] = a0;
    out[o + 1] = a1;
  }
  for (; o < nout; ++o) {
    V<T> a = out[o];
    for (int64_t k = 0; k < nin; ++k) a += splat(w[k * nout + o]) * x[k];
    out[o] = a;
  }
}

// gin[k] = sum_o w[k, o] g[o]: the transposed product, eight rows at a time.
template <class T>
static inline void transposed(V<T>* __restrict__ gin, const T* __restrict__ w, int64_t nin,
                              int64_t nout, const V<T>* __restrict__ g) {
  int64_t k = 0;
  for (; k + 8 <= nin; k += 8) {
    V<T> a0 = V<T>{}, a1 = V<T>{}, a2 = V<T>{}, a3 = V<T>{};
    V<T> a4 = V<T>{}, a5 = V<T>{}, a6 = V<T>{}, a7 = V<T>{};
    const T* r = w + k * nout;
    for (int64_t o = 0; o < nout; ++o) {
      const V<T> go = g[o];
      a0 += splat(r[o]) * go;
      a1 += splat(r[nout + o]) * go;
      a2 += splat(r[2 * nout + o]) * go;
      a3 += splat(r[3 * nout + o]) * go;
      a4 += splat(r[4 * nout + o]) * go;
      a5 += splat(r[5 * nout + o]) * go;
      a6 += splat(r[6 * nout + o]) * go;
      a7 += splat(r[7 * nout + o]) * go;
    }
    gin[k] = a0;
    gin[k + 1] = a1;
    gin[k + 2] = a2;
    gin[k + 3] = a3;
    gin[k + 4] = a4;
    gin[k + 5] = a5;
    gin[k + 6] = a6;
    gin[k + 7] = a7;
  }
  for (; k < nin; ++k) {
    V<T> a0 = V<T>{}, a1 = V<T>{};
    const T* r = w + k * nout;
    int64_t o = 0;
    for (; o + 2 <= nout; o += 2) {
      a0 += splat(r[o]) * g[o];
      a1 += splat(r[o + 1]) * g[o + 1];
    }
    for (; o < nout; ++o) a0 += splat(r[o]) * g[o];
    gin[k] = a0 + a1;
  }
}

// Where map l's (kernel, bias) start in `rest` (l >= 1).
static inline void rest_offsets(const NeuronShapes& s, int64_t* off) {
  int64_t at = 0;
  for (int64_t l = 1; l < s.num_maps; ++l) {
    off[l] = at;
    at += s.sizes[l - 1] * s.sizes[l] + s.sizes[l];
  }
}

template <class T>
int64_t neuron_work_bytes(const NeuronShapes& s) {
  return (2 * s.m + 4 * s.hmax + s.sums) * static_cast<int64_t>(sizeof(V<T>));
}

// m_t = kappa m_{t-1} + gain 1.7159 tanh(2/3 a_L(t)), a_0(t) = p_t + bias0 + m_{t-1} K_m with
// p_t = kappa_p p_{t-1} + u_t, a_l = act(a_{l-1}) K_l + bias_l. Records every a_l(t), m_{t-1}
// and p_{t-1}, feature-major.
template <class T>
void neuron_forward_tile(const NeuronShapes& s, const NeuronArgs<T>& io, int64_t tile,
                         void* work) {
  const int64_t m = s.m, bp = s.bp, h0 = s.sizes[0], last = s.num_maps - 1;
  const int64_t row = s.t * bp;  // stride between the record's rows
  const int64_t step0 = tile * s.t;  // this tile's first step in the step-wise arrays
  V<T>* mprev = static_cast<V<T>*>(work);
  V<T>* a = mprev + m;
  V<T>* x = a + s.hmax;
  V<T>* p = x + s.hmax;
  int64_t off[MAX_MAPS];
  rest_offsets(s, off);
  for (int64_t k = 0; k < m; ++k) mprev[k] = V<T>{};
  for (int64_t o = 0; o < h0; ++o) p[o] = V<T>{};
  const T scale = T(TANH_SCALE), slope = T(TANH_SLOPE);
  for (int64_t t = 0; t < s.t; ++t) {
    const T* u_t = io.pre + (step0 + t) * h0 * LANES;
    T* rec_t = io.acts + (step0 + t) * LANES;
    for (int64_t k = 0; k < m; ++k) store(rec_t + (s.zall + k) * row, mprev[k]);
    for (int64_t o = 0; o < h0; ++o) {
      store(rec_t + (s.zall + m + o) * row, p[o]);
      p[o] = splat(io.kappa_p[o]) * p[o] + load(u_t + o * LANES);
      a[o] = p[o] + splat(io.bias0[o]);
    }
    accumulate(a, h0, io.kmem, mprev, m);
    for (int64_t o = 0; o < h0; ++o) store(rec_t + o * row, a[o]);
    for (int64_t l = 1; l <= last; ++l) {
      const int64_t nin = s.sizes[l - 1], nout = s.sizes[l];
      const T* w = io.rest + off[l];
      const T* bias = w + nin * nout;
      for (int64_t k = 0; k < nin; ++k) x[k] = activate<T>(s.activation, a[k]);
      for (int64_t o = 0; o < nout; ++o) a[o] = splat(bias[o]);
      accumulate(a, nout, w, x, nin);
      for (int64_t o = 0; o < nout; ++o) store(rec_t + (s.offsets[l] + o) * row, a[o]);
    }
    T* mem_t = io.memory + (step0 + t) * m * LANES;
    for (int64_t k = 0; k < m; ++k) {
      const V<T> delta = scale * tanh_lanes(slope * a[k]);
      const V<T> mk = splat(io.kappa[k]) * mprev[k] + splat(io.gain[k]) * delta;
      mprev[k] = mk;
      store(mem_t + k * LANES, mk);
    }
  }
}

template <class T>
static inline T lane_sum(V<T> v) {
  T total = T(0);
  for (int l = 0; l < LANES; ++l) total += v[l];
  return total;
}

// The reverse loop from the forward's record: the cotangent of every pre-activation
// (feature-major) and of every u_t, and this task's sums over its steps and lanes of the
// gradients that are sums of elementwise products (kappa, gain, every map's bias, kappa_p).
template <class T>
void neuron_backward_tile(const NeuronShapes& s, const NeuronArgs<T>& io, int64_t tile,
                          void* work) {
  const int64_t m = s.m, bp = s.bp, h0 = s.sizes[0], last = s.num_maps - 1;
  const int64_t row = s.t * bp;
  const int64_t step0 = tile * s.t;
  V<T>* gnext = static_cast<V<T>*>(work);
  V<T>* gz = gnext + m;
  V<T>* gin = gz + s.hmax;
  V<T>* lam = gin + s.hmax;
  V<T>* acc = lam + s.hmax;  // [sums]: kappa [m], gain [m], bias [zall], kappa_p [h0]
  V<T>* acc_kappa = acc;
  V<T>* acc_gain = acc + m;
  V<T>* acc_bias = acc + 2 * m;
  V<T>* acc_kp = acc + 2 * m + s.zall;
  int64_t off[MAX_MAPS];
  rest_offsets(s, off);
  for (int64_t k = 0; k < m; ++k) gnext[k] = V<T>{};
  for (int64_t o = 0; o < h0; ++o) lam[o] = V<T>{};
  for (int64_t j = 0; j < s.sums; ++j) acc[j] = V<T>{};
  const T scale = T(TANH_SCALE), scale_slope = T(TANH_SCALE * TANH_SLOPE);
  const T slope = T(TANH_SLOPE);
  const int64_t lo = s.offsets[last];
  for (int64_t t = s.t - 1; t >= 0; --t) {
    const T* rec_t = io.acts + (step0 + t) * LANES;
    T* d_t = io.d_acts + (step0 + t) * LANES;
    const T* gmem_t = io.g_memory + (step0 + t) * m * LANES;
    for (int64_t k = 0; k < m; ++k) {
      const V<T> gm = load(gmem_t + k * LANES) + gnext[k];
      acc_kappa[k] += gm * load(rec_t + (s.zall + k) * row);
      const V<T> th = tanh_lanes(slope * load(rec_t + (lo + k) * row));
      acc_gain[k] += gm * (scale * th);
      gz[k] = (gm * splat(io.gain[k])) * scale_slope * (T(1) - th * th);
      store(d_t + (lo + k) * row, gz[k]);
      acc_bias[lo + k] += gz[k];
      gnext[k] = gm * splat(io.kappa[k]);
    }
    for (int64_t l = last; l >= 1; --l) {
      const int64_t nin = s.sizes[l - 1], nout = s.sizes[l];
      transposed(gin, io.rest + off[l], nin, nout, gz);
      for (int64_t k = 0; k < nin; ++k) {
        const int64_t at = s.offsets[l - 1] + k;
        gz[k] = activate_back<T>(s.activation, load(rec_t + at * row), gin[k]);
        store(d_t + at * row, gz[k]);
        acc_bias[at] += gz[k];
      }
    }
    // gz holds a_0's cotangent: into u (through the trace) and into m_{t-1}.
    T* lam_t = io.lam + (step0 + t) * h0 * LANES;
    for (int64_t o = 0; o < h0; ++o) {
      lam[o] = gz[o] + splat(io.kappa_p[o]) * lam[o];
      store(lam_t + o * LANES, lam[o]);
      acc_kp[o] += lam[o] * load(rec_t + (s.zall + m + o) * row);
    }
    transposed(gin, io.kmem, m, h0, gz);
    for (int64_t k = 0; k < m; ++k) gnext[k] += gin[k];
  }
  for (int64_t j = 0; j < s.sums; ++j) io.sums[j] = lane_sum<T>(acc[j]);
}

template int64_t neuron_work_bytes<float>(const NeuronShapes&);
template int64_t neuron_work_bytes<double>(const NeuronShapes&);
template void neuron_forward_tile<float>(const NeuronShapes&, const NeuronArgs<float>&, int64_t,
                                         void*);
template void neuron_forward_tile<double>(const NeuronShapes&, const NeuronArgs<double>&,
                                          int64_t, void*);
template void neuron_backward_tile<float>(const NeuronShapes&, const NeuronArgs<float>&,
                                          int64_t, void*);
template void neuron_backward_tile<double>(const NeuronShapes&, const NeuronArgs<double>&,
                                           int64_t, void*);

}  // namespace ELM_ISA_NAMESPACE
}  // namespace elm_network
