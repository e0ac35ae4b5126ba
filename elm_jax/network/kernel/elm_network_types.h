// Plain data shared by the FFI handlers (elm_network_ffi.cc) and the per-instruction-set
// kernels (elm_network_body.h): shapes, weight pointers, the arrays of one call, and the layout
// of the weight gradients. Only aggregates and `static` functions (internal linkage), so no
// code is shared between translation units compiled for different instruction sets.

#ifndef ELM_NETWORK_TYPES_H_
#define ELM_NETWORK_TYPES_H_

#include <stdint.h>

namespace elm_network {

// Sequences per SIMD vector: a tile of the (padded) batch.
constexpr int LANES = 8;
constexpr int64_t MAX_MAPS = 8;

// The memory update's scaled tanh, as elm_jax.ops.scaled_tanh.
constexpr double TANH_SCALE = 1.7159;
constexpr double TANH_SLOPE = 2.0 / 3.0;

struct Shapes {
  int64_t n, d, m;  // neurons, branches, memory units
  int64_t num_maps;  // affine maps of the MLP: the first reads [branch ; memory]
  int64_t sizes[MAX_MAPS];  // output size of each map; the last is m
  int64_t rest;  // per neuron, values of the maps after the first: (kernel [i, o], bias [o]) each
  int64_t k;  // synapses per neuron
  int64_t ext_dim;  // external channels: a synapse's source j < ext_dim reads e_t[j], else y_{t-1}[j - ext_dim]
  int64_t t, chunk, bp;  // steps, steps between checkpoints, padded batch
};

// One network's (one group's) weights, neuron-major and contiguous.
template <class T>
struct Weights {
  const T* kb;     // [n, d]  branch decay
  const T* km;     // [n, m]  memory decay
  const T* gain;   // [n, m]  memory gain
  const T* kbr;    // [n, d, h0] first map, branch rows
  const T* kmem;   // [n, m, h0] first map, memory rows
  const T* bias0;  // [n, h0]
  const T* rest;   // [n, rest]
  const T* wy;     // [n, m]  readout
  const T* by;     // [n]
  // Synapses, each neuron's ordered by branch (a stable sort of the given order):
  const T* w_syn;              // [n, k] weight
  const int32_t* src;          // [n, k] source in the pool [e_t ; y_{t-1}]
  const int32_t* branch_start; // [n, d + 1] branch b holds synapses [start[b], start[b + 1])
};

template <class T>
struct ForwardIO {
  const T *e, *b0, *m0, *y0;  // [t, ext_dim, bp], [n, d, bp], [n, m, bp], [n, bp]
  T *ys, *b_out, *m_out, *y_out;  // [t, n, bp], final state
  T *ckpt_b, *ckpt_m;  // [chunks, n, d, bp], [chunks, n, m, bp]: the state before each chunk
};

template <class T>
struct BackwardIO {
  const T *e, *y0, *ys, *ckpt_b, *ckpt_m;
  const T *g_ys, *g_b_out, *g_m_out, *g_y_out;  // cotangents of the forward's outputs
  T *g_e, *g_b0, *g_m0, *g_y0;
};

// Offsets of each weight's gradient in one group's gradient vector (each [n, ...] as the weight).
struct GradsOffsets {
  int64_t kb, km, gain, kbr, kmem, bias0, rest, wy, by, syn, total;  // syn: in sorted order
};

static inline void grads_offsets(const Shapes& s, GradsOffsets* g) {
  const int64_t n = s.n, d = s.d, m = s.m, h0 = s.sizes[0];
  g->kb = 0;
  g->km = g->kb + n * d;
  g->gain = g->km + n * m;
  g->kbr = g->gain + n * m;
  g->kmem = g->kbr + n * d * h0;
  g->bias0 = g->kmem + n * m * h0;
  g->rest = g->bias0 + n * h0;
  g->wy = g->rest + n * s.rest;
  g->by = g->wy + n * m;
  g->syn = g->by + n;
  g->total = g->syn + n * s.k;
}

// The per-instruction-set entry points (one namespace per set, elm_network_isa_*.cc).
#define ELM_NETWORK_DECLARE_ISA(NS)                                                           \
  namespace NS {                                                                              \
  template <class T>                                                                          \
  void forward_tile(const Shapes&, const Weights<T>&, const ForwardIO<T>&, int64_t, void*);   \
  template <class T>                                                                          \
  void backward_tile(const Shapes&, const Weights<T>&, const BackwardIO<T>&, int64_t, void*, \
                     T*);                                                                     \
  template <class T>                                                                          \
  int64_t forward_work_bytes(const Shapes&);                                                  \
  template <class T>                                                                          \
  int64_t backward_work_bytes(const Shapes&);                                                 \
  template <class T>                                                                          \
  void decode_steps(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,       \
                    int64_t, int64_t, int64_t, T*);                                           \
  template <class T>                                                                          \
  void decode_grad_steps(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t,      \
                         int64_t, int64_t, int64_t, int64_t, T*);                             \
  }

ELM_NETWORK_DECLARE_ISA(isa_baseline)
ELM_NETWORK_DECLARE_ISA(isa_avx2)

}  // namespace elm_network

#endif  // ELM_NETWORK_TYPES_H_
