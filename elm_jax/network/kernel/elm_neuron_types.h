// Plain data shared by the FFI handlers of the single ELM neuron's memory recurrence
// (elm_neuron_ffi.cc) and its per-instruction-set loops (elm_neuron_body.h).

#ifndef ELM_NEURON_TYPES_H_
#define ELM_NEURON_TYPES_H_

#include <stdint.h>

#include "elm_network_types.h"

namespace elm_network {

// The MLP's activation (elm_jax.neuron.config.ACTIVATIONS), as the `activation` attribute.
enum Activation : int64_t { kRelu = 0, kSilu = 1 };

// One call's shapes. The first map's pre-activation is a_0(t) = p_t + bias0 + m_{t-1} K_m with
// p_t = kappa_p p_{t-1} + u_t (kappa_p = 0: p = u, the input half precomputed); maps 1.. read
// the previous map's activation; the last map's size is m.
struct NeuronShapes {
  int64_t t, m, bp;  // steps, memory units, padded batch (tiles · LANES)
  int64_t num_maps;
  int64_t sizes[MAX_MAPS];  // output size of each map
  int64_t offsets[MAX_MAPS];  // where map l's pre-activation starts in a step's record
  int64_t zall;  // all maps' pre-activations per step
  int64_t rec;   // rows of the record: zall pre-activations, m_{t-1} [m], p_{t-1} [h0]
  int64_t sums;  // values of a task's sums: d kappa [m], d gain [m], d bias [zall], d kappa_p [h0]
  int64_t rest;  // values of the maps after the first: (kernel [i, o], bias [o]) each
  int64_t hmax;  // the widest map
  int64_t activation;
};

// One group's arrays, for a padded batch of bp = tiles · LANES sequences. The step-wise inputs
// and outputs are tile-major, each tile's steps contiguous: u [tiles, t, h0, LANES], memory and
// g_memory [tiles, t, m, LANES], lam [tiles, t, h0, LANES]. The forward's record and the
// backward's cotangents are feature-major, rec [rec, tiles, t, LANES] and d_acts [zall, tiles,
// t, LANES], so that each weight gradient is one product with a contiguous contraction over
// (tiles, t, LANES); within a row, a tile's steps are contiguous.
template <class T>
struct NeuronArgs {
  const T* kmem;   // [m, h0] first map, memory rows (kappa_m folded in by the caller)
  const T* rest;   // [rest]
  const T* kappa;  // [m] memory decay
  const T* gain;   // [m] memory gain
  const T* kappa_p;  // [h0] decay of the input trace p
  const T* bias0;  // [h0]
  const T* pre;    // forward: u
  T* memory;       // forward
  T* acts;         // forward output, backward input: the record
  const T* g_memory;  // backward
  T* d_acts;       // backward: the cotangent of every pre-activation
  T* sums;         // backward: [sums] this task's sums over its steps and lanes
  T* lam;          // backward: the cotangent of every u_t
};

#define ELM_NEURON_DECLARE_ISA(NS)                                                       \
  namespace NS {                                                                         \
  template <class T>                                                                     \
  void neuron_forward_tile(const NeuronShapes&, const NeuronArgs<T>&, int64_t, void*);  \
  template <class T>                                                                     \
  void neuron_backward_tile(const NeuronShapes&, const NeuronArgs<T>&, int64_t, void*); \
  template <class T>                                                                     \
  int64_t neuron_work_bytes(const NeuronShapes&);                                        \
  template <class T>                                                                     \
  void project_rows(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);         \
  template <class T>                                                                     \
  void project_weight_grad(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,   \
                           int64_t);                                                     \
  template <class T>                                                                     \
  void readout_tile(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t,  \
                    int64_t, T*);                                                        \
  template <class T>                                                                     \
  void readout_grad_tile(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, \
                         int64_t, int64_t, T*);                                          \
  }

ELM_NEURON_DECLARE_ISA(isa_baseline)
ELM_NEURON_DECLARE_ISA(isa_avx2)

}  // namespace elm_network

#endif  // ELM_NEURON_TYPES_H_
