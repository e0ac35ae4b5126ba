// The single ELM neuron's readout, y_t = m_t W_y + b_y, read straight from the memory kernel's
// layout ([tiles, t, m, 8]: tiles of 8 sequences, the 8 last), and its reverse. A step whose
// output cotangent is zero in all 8 sequences of a tile is skipped in the reverse: its memory
// cotangent is zero and it adds nothing to the weight gradients. A loss on the last step alone
// (classification) so pays for one step's reverse instead of T.
//
// Included after elm_network_body.h by each per-instruction-set translation unit (it uses that
// file's lane vectors: V<T>, load, store, splat).

#ifndef ELM_ISA_NAMESPACE
#error "define ELM_ISA_NAMESPACE before including elm_readout_body.h"
#endif

#include <stdint.h>

#include <algorithm>

namespace elm_network {
namespace ELM_ISA_NAMESPACE {

// y[b, t, :] = bias + sum_k m[tile, t, k, lane] w[k, :] for the sequences b = 8 tile + lane below
// `batch`. m [tiles, tn, nm, 8], w [nm, no], bias [no], y [batch, tn, no]; work: [no, 8].
template <class T>
void readout_tile(const T* __restrict__ m, const T* __restrict__ w, const T* __restrict__ bias,
                  T* __restrict__ y, int64_t tn, int64_t nm, int64_t no, int64_t batch,
                  int64_t tile, T* __restrict__ work) {
  const int64_t lanes = std::min<int64_t>(LANES, batch - tile * LANES);
  for (int64_t t = 0; t < tn; ++t) {
    const T* __restrict__ mt = m + (tile * tn + t) * nm * LANES;
    // Four outputs at a time: four independent chains of multiply-adds over k.
    int64_t j = 0;
    for (; j + 4 <= no; j += 4) {
      V<T> a0 = splat(bias[j]), a1 = splat(bias[j + 1]), a2 = splat(bias[j + 2]),
           a3 = splat(bias[j + 3]);
      for (int64_t k = 0; k < nm; ++k) {
        const V<T> mk = load(mt + k * LANES);
        const T* __restrict__ wk = w + k * no + j;
        a0 += splat(wk[0]) * mk;
        a1 += splat(wk[1]) * mk;
        a2 += splat(wk[2]) * mk;
        a3 += splat(wk[3]) * mk;
      }
      store(work + j * LANES, a0);
      store(work + (j + 1) * LANES, a1);
      store(work + (j + 2) * LANES, a2);
      store(work + (j + 3) * LANES, a3);
    }
    for (; j < no; ++j) {
      V<T> a0 = splat(bias[j]);
      for (int64_t k = 0; k < nm; ++k) a0 += splat(w[k * no + j]) * load(mt + k * LANES);
      store(work + j * LANES, a0);
    }
    for (int64_t l = 0; l < lanes; ++l) {
      T* __restrict__ yr = y + ((tile * LANES + l) * tn + t) * no;
      for (int64_t jj = 0; jj < no; ++jj) yr[jj] = work[jj * LANES + l];
    }
  }
}

// The reverse of readout_tile for one tile: dm[tile, t, :, :] (the memory's cotangent, zero at the
// steps whose cotangent is zero) and sums[0 : nm no] = dW, sums[nm no : (nm + 1) no] = db, this
// tile's part. dy [batch, tn, no] (padded sequences count as zero). work: [no, 8] one step's
// cotangents, then [(nm + 1) no, 8] the lane-wise sums of dW and db.
template <class T>
void readout_grad_tile(const T* __restrict__ m, const T* __restrict__ w, const T* __restrict__ dy,
                       T* __restrict__ dm, T* __restrict__ sums, int64_t tn, int64_t nm,
                       int64_t no, int64_t batch, int64_t tile, T* __restrict__ work) {
  const int64_t lanes = std::min<int64_t>(LANES, batch - tile * LANES);
  T* __restrict__ g = work;
  T* __restrict__ acc = work + no * LANES;
  std::fill(g, g + no * LANES, T(0));
  std::fill(acc, acc + (nm + 1) * no * LANES, T(0));
  for (int64_t t = 0; t < tn; ++t) {
    T* __restrict__ dmt = dm + (tile * tn + t) * nm * LANES;
    bool any = false;
    for (int64_t l = 0; l < lanes; ++l) {
      const T* __restrict__ row = dy + ((tile * LANES + l) * tn + t) * no;
      for (int64_t j = 0; j < no; ++j) {
        g[j * LANES + l] = row[j];
        any |= row[j] != T(0);
      }
    }
    if (!any) {
      std::fill(dmt, dmt + nm * LANES, T(0));
      continue;
    }
    const T* __restrict__ mt = m + (tile * tn + t) * nm * LANES;
    for (int64_t k = 0; k < nm; ++k) {
      const T* __restrict__ wk = w + k * no;
      const V<T> mk = load(mt + k * LANES);
      V<T> d = V<T>{};
      for (int64_t j = 0; j < no; ++j) {
        const V<T> gj = load(g + j * LANES);
        T* __restrict__ at = acc + (k * no + j) * LANES;
        d += splat(wk[j]) * gj;
        store(at, load(at) + mk * gj);
      }
      store(dmt + k * LANES, d);
    }
    T* __restrict__ ab = acc + nm * no * LANES;
    for (int64_t j = 0; j < no; ++j)
      store(ab + j * LANES, load(ab + j * LANES) + load(g + j * LANES));
  }
  for (int64_t i = 0; i < (nm + 1) * no; ++i) {
    T s = T(0);
    for (int64_t l = 0; l < LANES; ++l) s += acc[i * LANES + l];
    sums[i] = s;
  }
}

template void readout_tile<float>(const float*, const float*, const float*, float*, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, float*);
template void readout_tile<double>(const double*, const double*, const double*, double*, int64_t,
                                   int64_t, int64_t, int64_t, int64_t, double*);
template void readout_grad_tile<float>(const float*, const float*, const float*, float*, float*,
                                       int64_t, int64_t, int64_t, int64_t, int64_t, float*);
template void readout_grad_tile<double>(const double*, const double*, const double*, double*,
                                        double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                        double*);

}  // namespace ELM_ISA_NAMESPACE
}  // namespace elm_network
