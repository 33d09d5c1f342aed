// Weighted soft-max cross-entropy (the CPU backend's loss.rs `sample_loss`), batched.
// logits, grad: [b, k, npix]; target (class ids), weight: [b, npix].
// Per pixel with w ≠ 0: m = max_c a_c (f32, NaN ignored as f32::max), z = Σ exp((a_c − m)) in
// f64, contrib = −w·((a_t − m) − ln z) (f64), grad_c = (f32)(scale·w·(exp(a_c − m)/z − [c = t])).
// Pixels with w = 0 get contrib 0 and grad 0 (their target may be anything). A pixel with
// w ≠ 0 and t ≥ k sets *bad to 1 + its index (the smallest such index wins), contrib 0, grad 0.

extern "C" __global__ void softmax_xent(const float* logits, const unsigned char* target,
                                        const float* weight, float* grad, double* contrib,
                                        int b, int k, long long npix, double scale,
                                        unsigned long long* bad) {
    long long n = (long long)b * npix;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long s = i / npix, px = i % npix;
        const float* a = logits + s * k * npix + px;
        float* g = grad + s * k * npix + px;
        float wt = weight[i];
        int t = target[i];
        if (wt == 0.0f || t >= k) {
            for (int c = 0; c < k; ++c) g[c * npix] = 0.0f;
            contrib[i] = 0.0;
            if (wt != 0.0f) atomicMin(bad, (unsigned long long)i + 1ULL);
            continue;
        }
        float m = __int_as_float(0xff800000);  // −∞
        for (int c = 0; c < k; ++c) m = fmaxf(m, a[c * npix]);
        double z = 0.0;
        for (int c = 0; c < k; ++c) z += exp((double)(a[c * npix] - m));
        double log_pt = (double)(a[t * npix] - m) - log(z);
        contrib[i] = -(double)wt * log_pt;
        double sw = scale * (double)wt;
        for (int c = 0; c < k; ++c) {
            double pc = exp((double)(a[c * npix] - m));
            g[c * npix] = (float)(sw * (pc / z - (c == t ? 1.0 : 0.0)));
        }
    }
}

// *out = Σ x[0..n) in f64: ONE block of exactly 256 threads (strided partial sums, then a
// fixed-order tree; deterministic).
extern "C" __global__ void sum_f64(const double* x, long long n, double* out) {
    __shared__ double part[256];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = part[0];
}
