// Run-time helpers shared by the FFI handlers of the fused kernels (elm_network_ffi.cc,
// elm_neuron_ffi.cc): the instruction-set check, subnormal flushing, per-thread work memory and
// a parallel loop over XLA's CPU thread pool. Internal linkage only (each handler file gets its
// own copy).

#ifndef ELM_KERNEL_RUNTIME_H_
#define ELM_KERNEL_RUNTIME_H_

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "xla/ffi/api/ffi.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace elm_network {
namespace {

namespace ffi = xla::ffi;

// Whether the AVX2 build of the kernels runs: when the CPU has AVX2 and FMA, unless
// ELM_JAX_KERNEL_ISA=baseline asks for the portable build (tests compare the two).
bool use_avx2() {
#if defined(__x86_64__) && defined(ELM_NETWORK_HAVE_AVX2)
  static const bool yes = [] {
    const char* isa = getenv("ELM_JAX_KERNEL_ISA");
    if (isa && std::string(isa) == "baseline") return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
#else
  return false;
#endif
}

// Subnormal floats flushed to zero while a kernel runs on this thread (as XLA's own CPU code
// runs): cotangents that decay through long sequences otherwise turn subnormal, and subnormal
// arithmetic is one to two orders of magnitude slower on x86.
class FlushSubnormals {
 public:
#if defined(__x86_64__)
  FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushSubnormals() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#endif
};

// Work memory of the calling thread, kept between calls (no fresh pages every step).
void* thread_work(int64_t bytes) {
  struct Block {
    void* p = nullptr;
    int64_t size = 0;
    ~Block() { free(p); }
  };
  static thread_local Block block;
  if (bytes > block.size) {
    free(block.p);
    const int64_t rounded = (bytes + 4095) / 4096 * 4096;
    block.p = aligned_alloc(64, rounded);
    block.size = block.p ? rounded : 0;
  }
  return block.p;
}

// The most threads a call may use: ELM_JAX_KERNEL_THREADS when set to a positive integer (a
// single-threaded benchmark sets it to 1, as it sets XLA's own flags), else no cap.
int64_t thread_cap() {
  static const int64_t cap = [] {
    const char* value = getenv("ELM_JAX_KERNEL_THREADS");
    const long n = value ? strtol(value, nullptr, 10) : 0;
    return static_cast<int64_t>(n > 0 ? n : 0);
  }();
  return cap;
}

// Runs f(0 .. tasks-1) on the calling thread and up to threads-1 pool threads. The caller works
// too, so a busy or absent pool only costs parallelism; helpers that start after the last task
// was taken return at once.
template <class F>
void parallel_for(ffi::ThreadPool& pool, int64_t tasks, const F& f) {
  int64_t threads = std::min<int64_t>(pool.num_threads(), tasks);
  if (thread_cap() > 0) threads = std::min(threads, thread_cap());
  FlushSubnormals flush;
  if (threads <= 1) {
    for (int64_t i = 0; i < tasks; ++i) f(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0}, done{0};
    int64_t tasks = 0;
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  state->tasks = tasks;
  const F* fp = &f;
  auto run = [state, fp]() {
    FlushSubnormals flush;
    for (;;) {
      const int64_t i = state->next.fetch_add(1);
      if (i >= state->tasks) return;
      (*fp)(i);
      if (state->done.fetch_add(1) + 1 == state->tasks) {
        std::lock_guard<std::mutex> lock(state->mu);
        state->cv.notify_all();
      }
    }
  };
  for (int64_t k = 1; k < threads; ++k) {
    auto copy = run;
    pool.Schedule(std::move(copy));
  }
  run();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done.load() == state->tasks; });
}

}  // namespace
}  // namespace elm_network

#endif  // ELM_KERNEL_RUNTIME_H_
