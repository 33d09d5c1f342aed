// im2col / col2im for 3×3 convolutions with padding `p` (0 = valid, 1 = same), on a block of
// output rows `y0 .. y0 + rows` of every sample of a batch.
//
// x: [b, cin, h, w]; cols: [b, 9·cin, rows·ow] (sample stride 9·cin·rows·ow), row
// `ci·9 + i·3 + j`, column `yy·ow + xo` holds x[s, ci, y0 + yy + i − p, xo + j − p] (0 outside).
// This is the CPU backend's `im2col` (conv.rs) for every sample.

extern "C" __global__ void im2col3x3(const float* x, float* cols, int b, int cin, int h, int w,
                                     int ow, int p, int y0, int rows) {
    long long nb = (long long)rows * ow;
    long long per_sample = 9LL * cin * nb;
    long long n = per_sample * b;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        long long s = idx / per_sample;
        long long r = idx % per_sample;
        long long row = r / nb;
        long long col = r % nb;
        int ci = (int)(row / 9);
        int k = (int)(row % 9);
        int i = k / 3, j = k % 3;
        int yy = (int)(col / ow), xo = (int)(col % ow);
        int yi = y0 + yy + i - p;
        int xi = xo + j - p;
        float v = 0.0f;
        if (yi >= 0 && yi < h && xi >= 0 && xi < w)
            v = x[((s * cin + ci) * h + yi) * (long long)w + xi];
        cols[idx] = v;
    }
}

// The adjoint of im2col3x3 as a gather (no atomics): every input element dx[s, ci, yi, xi]
// adds the column entries that im2col3x3 copied it to, for output rows y0 .. y0 + rows.
// dx: [b, cin, h, w] (accumulated, +=); dcols as cols above.
extern "C" __global__ void col2im3x3_add(const float* dcols, float* dx, int b, int cin, int h,
                                         int w, int ow, int p, int y0, int rows) {
    long long nb = (long long)rows * ow;
    long long plane = (long long)h * w;
    long long n = (long long)b * cin * plane;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        long long sc = idx / plane;  // s·cin + ci
        long long s = sc / cin;
        int ci = (int)(sc % cin);
        int yi = (int)((idx % plane) / w), xi = (int)(idx % w);
        const float* base = dcols + (s * 9LL * cin + ci * 9LL) * nb;
        float acc = 0.0f;
        for (int i = 0; i < 3; ++i) {
            int yy = yi + p - i - y0;
            if (yy < 0 || yy >= rows) continue;
            for (int j = 0; j < 3; ++j) {
                int xo = xi + p - j;
                if (xo < 0 || xo >= ow) continue;
                acc += base[(i * 3 + j) * nb + (long long)yy * ow + xo];
            }
        }
        dx[idx] += acc;
    }
}
