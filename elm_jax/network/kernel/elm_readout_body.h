// Linear readouts read straight from a kernel's own layout, and their reverses:
// - the single ELM neuron's y_t = m_t W_y + b_y from the memory kernel's [tiles, t, m, 8] (tiles
//   of 8 sequences, the 8 last);
// - the network's per-step decoder, logits_t = y_t W + b, from the network kernel's outputs
//   [t, n, bp] (the padded batch last).
// Both write the outputs batch-major ([batch, t, o]), as the model returns them. A step whose
// output cotangent is zero in all 8 sequences of a tile is skipped in the reverse: its input
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

// The network decoder over the steps [t0, t1) and every sequence below `batch`:
// logits[b, t, :] = bias + sum_j ys[t, j, b] w[j, :]. ys [tn, n, bp], w [n, no], logits
// [batch, tn, no]; work: [no, 8]. The 8-sequence tiles of a step run one after another, so each
// row of ys is read from cache once per step.
template <class T>
void decode_steps(const T* __restrict__ ys, const T* __restrict__ w, const T* __restrict__ bias,
                  T* __restrict__ logits, int64_t tn, int64_t n, int64_t no, int64_t bp,
                  int64_t batch, int64_t t0, int64_t t1, T* __restrict__ work) {
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t lane0 = 0; lane0 < batch; lane0 += LANES) {
      const int64_t lanes = std::min<int64_t>(LANES, batch - lane0);
      const T* __restrict__ yt = ys + t * n * bp + lane0;
      int64_t c = 0;
      for (; c + 4 <= no; c += 4) {
        V<T> a0 = splat(bias[c]), a1 = splat(bias[c + 1]), a2 = splat(bias[c + 2]),
             a3 = splat(bias[c + 3]);
        for (int64_t j = 0; j < n; ++j) {
          const V<T> v = load(yt + j * bp);
          const T* __restrict__ wj = w + j * no + c;
          a0 += splat(wj[0]) * v;
          a1 += splat(wj[1]) * v;
          a2 += splat(wj[2]) * v;
          a3 += splat(wj[3]) * v;
        }
        store(work + c * LANES, a0);
        store(work + (c + 1) * LANES, a1);
        store(work + (c + 2) * LANES, a2);
        store(work + (c + 3) * LANES, a3);
      }
      if (c < no) {  // the last 1-3 outputs in one pass
        const int64_t r = no - c;
        V<T> a0 = splat(bias[c]), a1 = V<T>{}, a2 = V<T>{};
        for (int64_t j = 0; j < n; ++j) {
          const V<T> v = load(yt + j * bp);
          const T* __restrict__ wj = w + j * no + c;
          a0 += splat(wj[0]) * v;
          if (r > 1) a1 += splat(wj[1]) * v;
          if (r > 2) a2 += splat(wj[2]) * v;
        }
        store(work + c * LANES, a0);
        if (r > 1) store(work + (c + 1) * LANES, a1 + splat(bias[c + 1]));
        if (r > 2) store(work + (c + 2) * LANES, a2 + splat(bias[c + 2]));
      }
      for (int64_t l = 0; l < lanes; ++l) {
        T* __restrict__ row = logits + ((lane0 + l) * tn + t) * no;
        for (int64_t cc = 0; cc < no; ++cc) row[cc] = work[cc * LANES + l];
      }
    }
  }
}

// The reverse of decode_steps over the steps [t0, t1): d_ys[t, :, :] (zero in the 8-sequence
// tiles whose cotangent is zero at that step) and sums[0 : n no] = dW, sums[n no : (n + 1) no]
// = db, these steps' part. g [batch, tn, no]; work: [no, 8], then [(n + 1) no, 8].
template <class T>
void decode_grad_steps(const T* __restrict__ ys, const T* __restrict__ w,
                       const T* __restrict__ g, T* __restrict__ d_ys, T* __restrict__ sums,
                       int64_t tn, int64_t n, int64_t no, int64_t bp, int64_t batch, int64_t t0,
                       int64_t t1, T* __restrict__ work) {
  T* __restrict__ gv = work;
  T* __restrict__ acc = work + no * LANES;
  bool touched = false;
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t lane0 = 0; lane0 < bp; lane0 += LANES) {
      const int64_t lanes = std::max<int64_t>(0, std::min<int64_t>(LANES, batch - lane0));
      T* __restrict__ dt = d_ys + t * n * bp + lane0;
      std::fill(gv, gv + no * LANES, T(0));
      bool any = false;
      for (int64_t l = 0; l < lanes; ++l) {
        const T* __restrict__ row = g + ((lane0 + l) * tn + t) * no;
        for (int64_t c = 0; c < no; ++c) {
          gv[c * LANES + l] = row[c];
          any |= row[c] != T(0);
        }
      }
      if (!any) {
        for (int64_t j = 0; j < n; ++j) store(dt + j * bp, V<T>{});
        continue;
      }
      if (!touched) {  // the sums start at the first step with a cotangent
        std::fill(acc, acc + (n + 1) * no * LANES, T(0));
        touched = true;
      }
      const T* __restrict__ yt = ys + t * n * bp + lane0;
      for (int64_t j = 0; j < n; ++j) {
        const V<T> yj = load(yt + j * bp);
        const T* __restrict__ wj = w + j * no;
        V<T> d = V<T>{};
        for (int64_t c = 0; c < no; ++c) {
          const V<T> gc = load(gv + c * LANES);
          T* __restrict__ at = acc + (j * no + c) * LANES;
          d += splat(wj[c]) * gc;
          store(at, load(at) + yj * gc);
        }
        store(dt + j * bp, d);
      }
      T* __restrict__ ab = acc + n * no * LANES;
      for (int64_t c = 0; c < no; ++c)
        store(ab + c * LANES, load(ab + c * LANES) + load(gv + c * LANES));
    }
  }
  for (int64_t i = 0; i < (n + 1) * no; ++i) {
    T sum = T(0);
    if (touched)
      for (int64_t l = 0; l < LANES; ++l) sum += acc[i * LANES + l];
    sums[i] = sum;
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
template void decode_steps<float>(const float*, const float*, const float*, float*, int64_t,
                                  int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
template void decode_steps<double>(const double*, const double*, const double*, double*, int64_t,
                                   int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double*);
template void decode_grad_steps<float>(const float*, const float*, const float*, float*, float*,
                                       int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, float*);
template void decode_grad_steps<double>(const double*, const double*, const double*, double*,
                                        double*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, int64_t, double*);

}  // namespace ELM_ISA_NAMESPACE
}  // namespace elm_network
