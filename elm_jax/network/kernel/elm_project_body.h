// The input projection of the single ELM neuron, out = x W, for inputs that are mostly zeros
// (spike trains): each row adds only the weight rows of its nonzero entries, so the work is
// proportional to the number of nonzeros, not to the input width. Its weight gradient,
// dW = xᵀ g, skips the zeros the same way.
//
// Each row's nonzero positions are listed first, without a branch per entry: a compare of a
// vector of entries gives a bit mask, and a table turns the mask into the positions of its set
// bits, stored at once (float32 under AVX2 or SSE2; float64 and other targets test entry by
// entry). The sums then run over the list, eight outputs at a time in registers. An entry is
// skipped exactly when it compares equal to zero (±0); NaN and infinities are kept.
//
// Included by each per-instruction-set translation unit (elm_network_isa_*.cc).

#ifndef ELM_ISA_NAMESPACE
#error "define ELM_ISA_NAMESPACE before including elm_project_body.h"
#endif

#include <stdint.h>

#include <vector>

#if defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

namespace elm_network {
namespace ELM_ISA_NAMESPACE {
namespace {

// For each mask of `Width` bits, the positions of its set bits, in order (then zeros).
template <int Width>
struct SetBitTable {
  int32_t at[1 << Width][Width];
  SetBitTable() {
    for (int m = 0; m < (1 << Width); ++m) {
      int c = 0;
      for (int b = 0; b < Width; ++b)
        if ((m >> b) & 1) at[m][c++] = b;
      for (; c < Width; ++c) at[m][c] = 0;
    }
  }
};

// Writes the positions i in [0, n) with x[i] != 0 to idx (ascending) and returns their count.
// idx must hold n + 8 entries (whole vectors of positions are stored).
template <class T>
inline int64_t nonzero_positions(const T* __restrict__ x, int64_t n, int32_t* __restrict__ idx) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] != T(0)) idx[c++] = static_cast<int32_t>(i);
  return c;
}

#if defined(__AVX2__)
template <>
inline int64_t nonzero_positions<float>(const float* __restrict__ x, int64_t n,
                                        int32_t* __restrict__ idx) {
  static const SetBitTable<8> table;
  const __m256 zero = _mm256_setzero_ps();
  int64_t c = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
    const __m256i at = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table.at[m]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + c),
                        _mm256_add_epi32(at, _mm256_set1_epi32(static_cast<int32_t>(i))));
    c += __builtin_popcount(static_cast<unsigned>(m));
  }
  for (; i < n; ++i)
    if (x[i] != 0.0f) idx[c++] = static_cast<int32_t>(i);
  return c;
}
#elif defined(__SSE2__)
template <>
inline int64_t nonzero_positions<float>(const float* __restrict__ x, int64_t n,
                                        int32_t* __restrict__ idx) {
  static const SetBitTable<4> table;
  const __m128 zero = _mm_setzero_ps();
  int64_t c = 0, i = 0;
  for (; i + 4 <= n; i += 4) {
    const int m = _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x + i), zero));
    const __m128i at = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table.at[m]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + c),
                     _mm_add_epi32(at, _mm_set1_epi32(static_cast<int32_t>(i))));
    c += __builtin_popcount(static_cast<unsigned>(m));
  }
  for (; i < n; ++i)
    if (x[i] != 0.0f) idx[c++] = static_cast<int32_t>(i);
  return c;
}
#endif

}  // namespace

// out[r, :] = sum_i x[r, i] W[i, :] for rows [r0, r1); x [rows, ni], W [ni, no], out [rows, no].
template <class T>
void project_rows(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ out,
                  int64_t ni, int64_t no, int64_t r0, int64_t r1) {
  std::vector<int32_t> positions(static_cast<size_t>(ni) + 8);
  int32_t* __restrict__ idx = positions.data();
  const int64_t whole = no - no % 8;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ xr = x + r * ni;
    T* __restrict__ o = out + r * no;
    const int64_t count = nonzero_positions<T>(xr, ni, idx);
    for (int64_t j = 0; j < whole; j += 8) {
      T acc[8] = {};
      for (int64_t k = 0; k < count; ++k) {
        const T v = xr[idx[k]];
        const T* __restrict__ wi = w + idx[k] * no + j;
        for (int l = 0; l < 8; ++l) acc[l] += v * wi[l];
      }
      for (int l = 0; l < 8; ++l) o[j + l] = acc[l];
    }
    for (int64_t j = whole; j < no; ++j) {
      T acc = T(0);
      for (int64_t k = 0; k < count; ++k) acc += xr[idx[k]] * w[idx[k] * no + j];
      o[j] = acc;
    }
  }
}

// dW[i, :] = sum_r x[r, i] g[r, :] for the weight rows [i0, i1); g [rows, no], dW [ni, no].
template <class T>
void project_weight_grad(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dw,
                         int64_t rows, int64_t ni, int64_t no, int64_t i0, int64_t i1) {
  std::vector<int32_t> positions(static_cast<size_t>(i1 - i0) + 8);
  int32_t* __restrict__ idx = positions.data();
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = 0; j < no; ++j) dw[i * no + j] = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* __restrict__ xr = x + r * ni + i0;
    const T* __restrict__ gr = g + r * no;
    const int64_t count = nonzero_positions<T>(xr, i1 - i0, idx);
    for (int64_t k = 0; k < count; ++k) {
      const T v = xr[idx[k]];
      T* __restrict__ di = dw + (i0 + idx[k]) * no;
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
