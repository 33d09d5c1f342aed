// 2×2 stride-2 max-pool with arg-max routing (the CPU backend's pool.rs), batched.
// x: [b·c, h, w] with even h, w; y, idx: [b·c, h/2, w/2]. idx = 2·di + dj of the winner in
// row-major window order; the first maximum wins ties; a NaN wins over numbers (the first NaN).

extern "C" __global__ void maxpool_fwd(const float* x, float* y, unsigned char* idx, long long bc,
                                       int h, int w) {
    int oh = h / 2, ow = w / 2;
    long long n = bc * oh * ow;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < n;
         o += (long long)blockDim.x * gridDim.x) {
        long long pl = o / ((long long)oh * ow);
        int yo = (int)((o / ow) % oh), xo = (int)(o % ow);
        const float* src = x + pl * h * (long long)w;
        float best = src[(2 * yo) * (long long)w + 2 * xo];
        unsigned char arg = 0;
        if (best == best) {
            for (int k = 1; k < 4; ++k) {
                float v = src[(2 * yo + k / 2) * (long long)w + 2 * xo + k % 2];
                if (v > best || v != v) {
                    best = v;
                    arg = (unsigned char)k;
                    if (v != v) break;
                }
            }
        }
        y[o] = best;
        idx[o] = arg;
    }
}

// dx = base + route(dy): each pooled element sends dy to its arg-max position; the other three
// positions of the window get base only. dx: [b·c, h, w], fully written; `base` may alias `dx`
// or be null (then 0).
extern "C" __global__ void maxpool_bwd(const float* dy, const unsigned char* idx,
                                       const float* base, float* dx, long long bc, int h, int w) {
    int oh = h / 2, ow = w / 2;
    long long n = bc * oh * ow;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < n;
         o += (long long)blockDim.x * gridDim.x) {
        long long pl = o / ((long long)oh * ow);
        int yo = (int)((o / ow) % oh), xo = (int)(o % ow);
        for (int k = 0; k < 4; ++k) {
            long long at = pl * h * (long long)w + (2 * yo + k / 2) * (long long)w + 2 * xo + k % 2;
            float v = base ? base[at] : 0.0f;
            if (k == idx[o]) v += dy[o];
            dx[at] = v;
        }
    }
}
