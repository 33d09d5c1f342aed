// Skip connections (the CPU backend's skip.rs), batched, and the 2×2 up-convolution's scatter
// and gather (upconv.rs).

// out[s] = [crop(skip[s]), up[s]]: skip [b, cs, hs, ws], up [b, cu, h, w], out [b, cs + cu, h, w];
// the crop is the h×w window of skip at (oy, ox).
extern "C" __global__ void crop_concat(const float* skip, const float* up, float* out, int b,
                                       int cs, int hs, int ws, int cu, int h, int w, int oy,
                                       int ox) {
    long long plane = (long long)h * w;
    long long per = (long long)(cs + cu) * plane;
    long long n = per * b;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long s = i / per;
        int ch = (int)((i % per) / plane);
        int y = (int)((i % plane) / w), x = (int)(i % w);
        out[i] = ch < cs
                     ? skip[((s * cs + ch) * hs + y + oy) * (long long)ws + x + ox]
                     : up[((s * cu + (ch - cs)) * h + y) * (long long)w + x];
    }
}

// Adjoint of crop_concat: dskip (crop window) += dcat[:, :cs]; dup = dcat[:, cs:].
// One thread per element of dcat; the crop windows of different elements never collide.
extern "C" __global__ void split_crop_concat(const float* dcat, float* dskip, float* dup, int b,
                                             int cs, int hs, int ws, int cu, int h, int w, int oy,
                                             int ox) {
    long long plane = (long long)h * w;
    long long per = (long long)(cs + cu) * plane;
    long long n = per * b;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long s = i / per;
        int ch = (int)((i % per) / plane);
        int y = (int)((i % plane) / w), x = (int)(i % w);
        if (ch < cs)
            dskip[((s * cs + ch) * hs + y + oy) * (long long)ws + x + ox] += dcat[i];
        else
            dup[((s * cu + (ch - cs)) * h + y) * (long long)w + x] = dcat[i];
    }
}

// Up-convolution scatter: cols [b, 4·cout, h·w] (row co·4 + 2i + j) → y [b, cout, 2h, 2w],
// y[s, co, 2y+i, 2x+j] = cols[s, co·4 + 2i + j, y·w + x] + bias[co]. One thread per y element.
extern "C" __global__ void up_scatter(const float* cols, const float* bias, float* y, int b,
                                      int cout, int h, int w) {
    long long n = (long long)b * cout * 4 * h * w;
    long long hw = (long long)h * w;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < n;
         o += (long long)blockDim.x * gridDim.x) {
        long long sc = o / (4 * hw);  // s·cout + co
        int co = (int)(sc % cout);
        int yy = (int)((o % (4 * hw)) / (2 * w)), xx = (int)(o % (2 * w));
        int i = yy & 1, j = xx & 1;
        y[o] = cols[(sc * 4 + 2 * i + j) * hw + (long long)(yy >> 1) * w + (xx >> 1)] + bias[co];
    }
}

// Adjoint gather: dcols[s, co·4 + 2i + j, y·w + x] = dy[s, co, 2y+i, 2x+j].
extern "C" __global__ void up_gather(const float* dy, float* dcols, int b, int cout, int h,
                                     int w) {
    long long n = (long long)b * cout * 4 * h * w;
    long long hw = (long long)h * w;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < n;
         o += (long long)blockDim.x * gridDim.x) {
        long long sc = o / (4 * hw);
        int yy = (int)((o % (4 * hw)) / (2 * w)), xx = (int)(o % (2 * w));
        int i = yy & 1, j = xx & 1;
        dcols[(sc * 4 + 2 * i + j) * hw + (long long)(yy >> 1) * w + (xx >> 1)] = dy[o];
    }
}
