// The kernels of this directory compiled for the host (see host_emu.h), behind two C entry
// points used by the Rust side (src/backend/cuda/emu.rs):
//
//   const char* emu_signature(const char* name)  — parameter kinds of kernel `name`, one letter
//       each (p pointer, i int, l long long, f float, d double), derived by the compiler from
//       the kernel's own declaration; NULL if unknown.
//   int emu_launch(const char* name, unsigned grid, unsigned block, const uint64_t* args,
//                  size_t nargs)  — a 1-D launch; each argument's bits in the low bytes of a
//       u64. Returns 0, or 1 for an unknown kernel, 2 for a wrong argument count.
#include "host_emu.h"

#include <stdint.h>

#include <string>
#include <type_traits>
#include <utility>

#include "elementwise.cu"
#include "im2col.cu"
#include "loss.cu"
#include "optim.cu"
#include "pool.cu"
#include "skip.cu"

namespace {

template <typename T>
char kind() {
    if (std::is_pointer<T>::value) return 'p';
    if (std::is_same<T, int>::value) return 'i';
    if (std::is_same<T, long long>::value) return 'l';
    if (std::is_same<T, float>::value) return 'f';
    if (std::is_same<T, double>::value) return 'd';
    return '?';
}

template <typename T>
T decode(uint64_t bits) {
    if constexpr (std::is_pointer<T>::value) {
        return reinterpret_cast<T>(static_cast<uintptr_t>(bits));
    } else {
        T v;
        memcpy(&v, &bits, sizeof v);  // little-endian: the low bytes
        return v;
    }
}

template <typename... P, size_t... I>
void call(void (*f)(P...), const uint64_t* a, std::index_sequence<I...>) {
    f(decode<P>(a[I])...);
}

struct Entry {
    const char* name;
    bool threaded;
    std::string sig;
    size_t nargs;
    std::function<void(const uint64_t*)> run;
};

template <typename... P>
Entry entry(const char* name, bool threaded, void (*f)(P...)) {
    return Entry{name, threaded, std::string{kind<P>()...}, sizeof...(P),
                 [f](const uint64_t* a) { call(f, a, std::index_sequence_for<P...>{}); }};
}

const std::vector<Entry>& table() {
    static const std::vector<Entry> t = {
        entry("bias_act_fwd", false, bias_act_fwd),
        entry("relu_bwd", false, relu_bwd),
        entry("mul_elem", false, mul_elem),
        entry("add_elem", false, add_elem),
        entry("channel_sum_add", true, channel_sum_add),
        entry("im2col3x3", false, im2col3x3),
        entry("col2im3x3_add", false, col2im3x3_add),
        entry("maxpool_fwd", false, maxpool_fwd),
        entry("maxpool_bwd", false, maxpool_bwd),
        entry("crop_concat", false, crop_concat),
        entry("split_crop_concat", false, split_crop_concat),
        entry("up_scatter", false, up_scatter),
        entry("up_gather", false, up_gather),
        entry("softmax_xent", false, softmax_xent),
        entry("sum_f64", true, sum_f64),
        entry("sgd_plain", false, sgd_plain),
        entry("sgd_momentum", false, sgd_momentum),
        entry("adam", false, adam),
    };
    return t;
}

const Entry* find(const char* name) {
    for (const Entry& e : table())
        if (e.sig.size() == e.nargs && strcmp(e.name, name) == 0) return &e;
    return nullptr;
}

}  // namespace

extern "C" const char* emu_signature(const char* name) {
    const Entry* e = find(name);
    return e ? e->sig.c_str() : nullptr;
}

extern "C" int emu_launch(const char* name, unsigned grid, unsigned block, const uint64_t* args,
                          size_t nargs) {
    const Entry* e = find(name);
    if (!e) return 1;
    if (nargs != e->nargs) return 2;
    emu::launch(grid, block, e->threaded, [&] { e->run(args); });
    return 0;
}
