// Element-wise kernels: bias (+ ReLU) forward, ReLU backward, dropout mask, per-channel sums.
// Layouts: NCHW, a batch of `b` samples of `c` channels of `plane` pixels, contiguous.
// One thread per element, grid-stride loops (any grid size is correct).

// y[s, ch, p] = y[s, ch, p] + bias[ch]; then ReLU if `relu` (t < 0 ? 0 : t, so NaN stays NaN,
// as the CPU backend's `bias_act`). `n = b·c·plane`.
extern "C" __global__ void bias_act_fwd(float* y, const float* bias, long long n, int c,
                                        long long plane, int relu) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        int ch = (int)((i / plane) % c);
        float t = y[i] + bias[ch];
        y[i] = (relu && t < 0.0f) ? 0.0f : t;
    }
}

// dy[i] = 0 wherever the ReLU output y[i] is not positive (or NaN): `threshold_backward`.
extern "C" __global__ void relu_bwd(float* dy, const float* y, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        if (!(y[i] > 0.0f)) dy[i] = 0.0f;
    }
}

// out[i] = x[i] * m[i] (inverted-dropout mask of 0 or 1/(1-p)). `out` may alias `x`.
extern "C" __global__ void mul_elem(float* out, const float* x, const float* m, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        out[i] = x[i] * m[i];
    }
}

// out[i] += x[i].
extern "C" __global__ void add_elem(float* out, const float* x, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        out[i] += x[i];
    }
}

// db[ch] += Σ_{s, p} dy[s, ch, p] (the bias gradient). One block per channel
// (gridDim.x == c), blockDim.x == 256 exactly: each thread sums a strided subset in f32, then
// a fixed-order tree reduction in shared memory (deterministic).
extern "C" __global__ void channel_sum_add(const float* dy, float* db, int b, int c,
                                           long long plane) {
    __shared__ float part[256];
    int ch = blockIdx.x;
    float acc = 0.0f;
    for (int s = 0; s < b; ++s) {
        const float* src = dy + ((long long)s * c + ch) * plane;
        for (long long p = threadIdx.x; p < plane; p += blockDim.x) acc += src[p];
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[ch] += part[0];
}
