// Host emulation of the few CUDA features the kernels in this directory use, so that the same
// .cu sources compile as C++ (g++/clang++ via the `cc` crate, feature `cuda-emu`) and run on the
// CPU in tests. Not used on the GPU path.
//
// - `__global__` → nothing; `__shared__` → `static` (one copy, shared by the threads of the block
//   being run; launches are serialised by a global mutex, blocks run one after another).
// - `threadIdx`, `blockIdx`, `blockDim`, `gridDim`: thread-local, set by `emu::launch`.
// - 1-D launches only. Without `threaded`, the launcher loops over blocks and threads in order
//   (kernels without `__syncthreads`). With `threaded`, each block runs its threads as real
//   `std::thread`s and `__syncthreads()` is a barrier over them.
// - `atomicMin` (u64) on GCC/Clang `__atomic` builtins; `__int_as_float`; math from <math.h>.
#pragma once
#include <math.h>
#include <string.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

// A reusable barrier for the threads of one block.
class Barrier {
  public:
    explicit Barrier(unsigned n) : n_(n) {}
    void wait() {
        std::unique_lock<std::mutex> lk(m_);
        unsigned gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lk, [&] { return gen != gen_; });
        }
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    unsigned n_, count_ = 0, gen_ = 0;
};

inline thread_local Barrier* current_barrier = nullptr;

inline std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}

// Runs `kernel` on a 1-D grid of `grid` blocks of `block` threads.
inline void launch(unsigned grid, unsigned block, bool threaded, const std::function<void()>& kernel) {
    std::lock_guard<std::mutex> guard(launch_mutex());
    dim3 g, b;
    g.x = grid;
    b.x = block;
    for (unsigned bx = 0; bx < grid; ++bx) {
        if (!threaded) {
            for (unsigned tx = 0; tx < block; ++tx) {
                gridDim = g;
                blockDim = b;
                blockIdx.x = bx;
                threadIdx.x = tx;
                kernel();
            }
            continue;
        }
        Barrier barrier(block);
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned tx = 0; tx < block; ++tx) {
            threads.emplace_back([&, tx] {
                gridDim = g;
                blockDim = b;
                blockIdx.x = bx;
                threadIdx.x = tx;
                current_barrier = &barrier;
                kernel();
                current_barrier = nullptr;
            });
        }
        for (auto& t : threads) t.join();
    }
}

}  // namespace emu

inline void __syncthreads() {
    if (emu::current_barrier) emu::current_barrier->wait();
}

inline unsigned long long atomicMin(unsigned long long* addr, unsigned long long v) {
    unsigned long long old = __atomic_load_n(addr, __ATOMIC_SEQ_CST);
    while (v < old &&
           !__atomic_compare_exchange_n(addr, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}

inline float __int_as_float(unsigned bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
