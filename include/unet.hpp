// unet.hpp — header-only C++17 RAII wrapper over libunet's C ABI (unet.h).
//
// - unet::Model owns a unet_model handle: move-only, freed by the destructor.
// - Every failing libunet call throws unet::Error (a std::runtime_error) carrying the
//   unet_status and the calling thread's detail message (unet_last_error()). Functions that
//   cannot fail are noexcept. After a throw, output buffers are untouched (libunet writes
//   outputs only on success).
// - A const unet::Model may be used from several threads at once, each with its own scratch
//   and outputs (the C ABI's guarantee for `const unet_model *`).
// - The zero-copy constructor Model::from_bytes() borrows the caller's bytes: keep them alive
//   and unchanged for the model's lifetime. Model::load() reads a file into memory libunet owns.
//
// Link with -lunet (pkg-config --libs unet).
#ifndef UNET_HPP
#define UNET_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "unet.h"

namespace unet {

/// A libunet failure: status() is the unet_status, what() the detail message.
class Error : public std::runtime_error {
 public:
  Error(unet_status status, const std::string &detail)
      : std::runtime_error(detail.empty() ? std::string(unet_status_message(status)) : detail),
        status_(status) {}
  /// The status the C call returned.
  unet_status status() const noexcept { return status_; }

 private:
  unet_status status_;
};

/// The calling thread's detail message of its last failed libunet call ("" after a success).
inline std::string last_error() {
  std::vector<char> buf(256);
  std::size_t n = 0;
  if (unet_last_error(buf.data(), buf.size(), &n) != UNET_OK) return std::string();
  if (n >= buf.size()) {
    buf.resize(n + 1);
    if (unet_last_error(buf.data(), buf.size(), &n) != UNET_OK) return std::string();
  }
  return std::string(buf.data(), n < buf.size() ? n : buf.size() - 1);
}

namespace detail {
/// Throws unet::Error unless `status` is UNET_OK.
inline void check(unet_status status) {
  if (status != UNET_OK) throw Error(status, last_error());
}
}  // namespace detail

/// The library version string (the header's is UNET_VERSION_STRING).
inline std::string version() { return unet_version(); }

/// What a run writes (the unet_output values).
enum class OutputKind : std::uint32_t {
  Logits = UNET_OUTPUT_LOGITS,
  Probabilities = UNET_OUTPUT_PROBABILITIES,
  LabelsU8 = UNET_OUTPUT_LABELS_U8,
  LabelsU16 = UNET_OUTPUT_LABELS_U16,
};

/// Output size of a tile or frame.
struct Size {
  std::size_t height;
  std::size_t width;
};

/// A loaded U-Net (owns a unet_model handle).
class Model {
 public:
  /// Reads and validates the model file at `path`.
  static Model load(const std::string &path) {
    unet_model *m = nullptr;
    detail::check(unet_model_load(path.c_str(), &m));
    return Model(m);
  }

  /// Validates `len` bytes of a model file in place, without copying: the bytes must outlive
  /// the model and stay unchanged.
  static Model from_bytes(const void *bytes, std::size_t len) {
    unet_model *m = nullptr;
    detail::check(unet_model_from_bytes(static_cast<const std::uint8_t *>(bytes), len, &m));
    return Model(m);
  }

  /// Takes ownership of a handle (may be null).
  explicit Model(unet_model *handle) noexcept : m_(handle) {}
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;
  Model(Model &&other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
  Model &operator=(Model &&other) noexcept {
    if (this != &other) {
      unet_model_free(m_);
      m_ = std::exchange(other.m_, nullptr);
    }
    return *this;
  }
  ~Model() { unet_model_free(m_); }

  /// The C handle (null after a move); still owned by this object.
  const unet_model *get() const noexcept { return m_; }
  /// Gives up ownership of the C handle.
  unet_model *release() noexcept { return std::exchange(m_, nullptr); }

  std::size_t in_channels() const { return query(unet_model_in_channels); }
  std::size_t num_classes() const { return query(unet_model_num_classes); }
  std::size_t base_channels() const { return query(unet_model_base_channels); }
  std::size_t levels() const { return query(unet_model_levels); }
  std::size_t halo() const { return query(unet_model_halo); }
  std::size_t tile_step() const { return query(unet_model_tile_step); }
  std::size_t min_tile() const { return query(unet_model_min_tile); }

  unet_padding padding() const {
    unet_padding p = UNET_PADDING_VALID;
    detail::check(unet_model_padding(m_, &p));
    return p;
  }
  bool is_legal_tile(std::size_t n) const {
    bool legal = false;
    detail::check(unet_model_is_legal_tile(m_, n, &legal));
    return legal;
  }
  std::size_t next_legal_tile(std::size_t n) const { return query_n(unet_model_next_legal_tile, n); }
  std::size_t prev_legal_tile(std::size_t n) const { return query_n(unet_model_prev_legal_tile, n); }
  std::size_t tile_for_output(std::size_t n) const { return query_n(unet_model_tile_for_output, n); }

  /// Output size of an h × w input tile.
  Size output_size(std::size_t h, std::size_t w) const {
    Size s{0, 0};
    detail::check(unet_model_output_size(m_, h, w, &s.height, &s.width));
    return s;
  }
  /// Scratch floats unet_model_run_tile() needs for an h × w tile.
  std::size_t tile_scratch_len(std::size_t h, std::size_t w) const {
    std::size_t n = 0;
    detail::check(unet_model_tile_scratch_len(m_, h, w, &n));
    return n;
  }
  /// A `__metadata__` value of the model file (raw JSON string contents).
  std::string metadata(const std::string &key) const {
    std::size_t n = 0;
    unet_status s = unet_model_metadata(m_, key.c_str(), nullptr, 0, &n);
    if (s != UNET_ERR_BUFFER_TOO_SMALL) detail::check(s);
    std::vector<char> buf(n + 1);
    detail::check(unet_model_metadata(m_, key.c_str(), buf.data(), buf.size(), &n));
    return std::string(buf.data(), n);
  }

  /// The raw tile call: see unet_model_run_tile() (scratch may be null with length 0).
  void run_tile(std::size_t h, std::size_t w, const float *input, std::size_t input_len,
                OutputKind kind, void *output, std::size_t output_len, float *scratch,
                std::size_t scratch_len) const {
    detail::check(unet_model_run_tile(m_, h, w, input, input_len,
                                      static_cast<std::uint32_t>(kind), output, output_len,
                                      scratch, scratch_len));
  }

  /// Runs an h × w tile and returns its output as a vector: float for logits/probabilities
  /// (`T = float`), std::uint8_t or std::uint16_t for labels. `scratch` is resized as needed
  /// and may be reused across calls (one per thread).
  template <typename T>
  std::vector<T> run_tile(std::size_t h, std::size_t w, const std::vector<float> &input,
                          OutputKind kind, std::vector<float> &scratch) const {
    const Size o = output_size(h, w);
    const bool labels = kind == OutputKind::LabelsU8 || kind == OutputKind::LabelsU16;
    const std::size_t n = o.height * o.width * (labels ? 1 : num_classes());
    scratch.resize(tile_scratch_len(h, w));
    std::vector<T> out(n);
    if (sizeof(T) != element_size(kind)) {
      throw Error(UNET_ERR_INVALID_ARGUMENT, "output element type does not match the kind");
    }
    run_tile(h, w, input.data(), input.size(), kind, out.data(), out.size(), scratch.data(),
             scratch.size());
    return out;
  }

 private:
  static std::size_t element_size(OutputKind kind) noexcept {
    switch (kind) {
      case OutputKind::LabelsU8:
        return 1;
      case OutputKind::LabelsU16:
        return 2;
      default:
        return sizeof(float);
    }
  }
  std::size_t query(unet_status (*f)(const unet_model *, std::size_t *)) const {
    std::size_t v = 0;
    detail::check(f(m_, &v));
    return v;
  }
  std::size_t query_n(unet_status (*f)(const unet_model *, std::size_t, std::size_t *),
                      std::size_t n) const {
    std::size_t v = 0;
    detail::check(f(m_, n, &v));
    return v;
  }

  unet_model *m_ = nullptr;
};

}  // namespace unet

#endif  // UNET_HPP
