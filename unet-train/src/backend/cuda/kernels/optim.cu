// Optimiser updates with the formulas of optim.rs (PyTorch's SGD and Adam), f32, one thread per
// parameter over the flat parameter vector (all tensors in file order).
// `wd` is the weight decay λ (g ← ∇ + λθ when λ ≠ 0).

// SGD without momentum: θ ← θ − η·g.
extern "C" __global__ void sgd_plain(float* p, const float* grad, long long n, float lr, float wd) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * p[i];
        p[i] += -lr * g;
    }
}

// SGD with momentum μ, dampening τ: b ← g on the first step (first ≠ 0), else
// b ← μ·b + (1 − τ)·g; d = g + μ·b (Nesterov) or b; θ ← θ − η·d.
extern "C" __global__ void sgd_momentum(float* p, const float* grad, float* buf, long long n,
                                        float lr, float wd, float momentum, float dampening,
                                        int nesterov, int first) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * p[i];
        float b = first ? g : buf[i] * momentum + (1.0f - dampening) * g;
        buf[i] = b;
        float d = nesterov ? g + momentum * b : b;
        p[i] += -lr * d;
    }
}

// Adam (L2 penalty as torch.optim.Adam): m ← m + (1 − β1)(g − m); v ← β2·v + (1 − β2)·g²;
// θ ← θ − step_size · m / (√v / bc2_sqrt + ε), with step_size = η/(1 − β1^t) and
// bc2_sqrt = √(1 − β2^t) computed on the host in f64 as optim.rs does.
extern "C" __global__ void adam(float* p, const float* grad, float* m, float* v, long long n,
                                float step_size, float bc2_sqrt, float beta1, float beta2,
                                float eps, float wd) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * p[i];
        float mi = m[i];
        mi += (1.0f - beta1) * (g - mi);
        float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] += -step_size * (mi / denom);
    }
}
