// The input projection of the single ELM neuron, out = x W, for inputs that are mostly zeros
// (spike trains): each row adds only the weight rows of its nonzero entries, so the work is
// proportional to the number of nonzeros, not to the input width. Its weight gradient,
// dW = xᵀ g, skips the zeros the same way. Plain loops over the output width (vectorised by the
// compiler for the instruction set of the including translation unit).
//
// Included by each per-instruction-set translation unit (elm_network_isa_*.cc).

#ifndef ELM_ISA_NAMESPACE
#error "define ELM_ISA_NAMESPACE before including elm_project_body.h"
#endif

#include <stdint.h>

namespace elm_network {
namespace ELM_ISA_NAMESPACE {

// out[r, :] = sum_i x[r, i] W[i, :] for rows [r0, r1); x [rows, ni], W [ni, no], out [rows, no].
template <class T>
void project_rows(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out,
                  int64_t ni, int64_t no, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    T* __restrict__ o = out + r * no;
    for (int64_t j = 0; j < no; ++j) o[j] = T(0);
    const T* xr = x + r * ni;
    for (int64_t i = 0; i < ni; ++i) {
      const T v = xr[i];
      if (v == T(0)) continue;
      const T* __restrict__ wi = w + i * no;
      for (int64_t j = 0; j < no; ++j) o[j] += v * wi[j];
    }
  }
}

// dW[i, :] = sum_r x[r, i] g[r, :] for the weight rows [i0, i1); g [rows, no], dW [ni, no].
template <class T>
void project_weight_grad(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dw,
                         int64_t rows, int64_t ni, int64_t no, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = 0; j < no; ++j) dw[i * no + j] = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * ni;
    const T* __restrict__ gr = g + r * no;
    for (int64_t i = i0; i < i1; ++i) {
      const T v = xr[i];
      if (v == T(0)) continue;
      T* __restrict__ di = dw + i * no;
      for (int64_t j = 0; j < no; ++j) di[j] += v * gr[j];
    }
  }
}

template void project_rows<float>(const float*, const float*, float*, int64_t, int64_t, int64_t,
                                  int64_t);
template void project_rows<double>(const double*, const double*, double*, int64_t, int64_t,
                                   int64_t, int64_t);
template void project_weight_grad<float>(const float*, const float*, float*, int64_t, int64_t,
                                         int64_t, int64_t, int64_t);
template void project_weight_grad<double>(const double*, const double*, double*, int64_t, int64_t,
                                          int64_t, int64_t, int64_t);

}  // namespace ELM_ISA_NAMESPACE
}  // namespace elm_network
