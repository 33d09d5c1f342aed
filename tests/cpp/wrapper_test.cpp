// Tests of include/unet.hpp (the C++17 RAII wrapper). Usage: wrapper_test DATA_DIR (the data
// written by unet-ffi/tests/c_harness.rs). Includes unet.h and unet.hpp twice each, so it also
// checks the include guards and the C header's extern "C" block from C++.
#include "unet.h"
#include "unet.h"
#include "unet.hpp"
#include "unet.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

static_assert(!std::is_copy_constructible_v<unet::Model>, "Model is move-only");
static_assert(!std::is_copy_assignable_v<unet::Model>, "Model is move-only");
static_assert(std::is_nothrow_move_constructible_v<unet::Model>, "moves never throw");
static_assert(std::is_nothrow_move_assignable_v<unet::Model>, "moves never throw");
static_assert(std::is_base_of_v<std::runtime_error, unet::Error>, "Error is a runtime_error");

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)

static std::string dir;

template <typename T>
static std::vector<T> read_vec(const std::string &name) {
  std::ifstream f(dir + "/" + name, std::ios::binary);
  CHECK(f.good());
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(bytes.size() % sizeof(T) == 0);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

template <typename F>
static void expect_throw(unet_status status, const char *needle, F &&f) {
  try {
    f();
  } catch (const unet::Error &e) {
    if (e.status() != status || std::strstr(e.what(), needle) == nullptr) {
      std::fprintf(stderr, "unexpected error %d: %s\n", static_cast<int>(e.status()), e.what());
      std::exit(1);
    }
    return;
  }
  std::fprintf(stderr, "expected unet::Error %d\n", static_cast<int>(status));
  std::exit(1);
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  dir = argv[1];
  const std::size_t H = 28, W = 36;  // the tile of c_harness.rs
  CHECK(unet::version() == UNET_VERSION_STRING);

  unet::Model model = unet::Model::load(dir + "/model.safetensors");
  CHECK(model.get() != nullptr);
  CHECK(model.in_channels() == 1 && model.num_classes() == 3 && model.levels() == 2);
  CHECK(model.base_channels() == 4 && model.padding() == UNET_PADDING_VALID);
  CHECK(model.halo() == 8 && model.tile_step() == 2 && model.min_tile() == 18);
  CHECK(model.is_legal_tile(H) && !model.is_legal_tile(H + 1));
  CHECK(model.next_legal_tile(H + 1) == H + 2 && model.prev_legal_tile(H + 1) == H);
  CHECK(model.tile_for_output(12) == H);
  unet::Size o = model.output_size(H, W);
  CHECK(o.height == 12 && o.width == 20);
  CHECK(model.metadata("normalization") == "percentile:1:99.8");

  const std::vector<float> input = read_vec<float>("tile_input.f32");
  std::vector<float> scratch;
  CHECK(model.run_tile<float>(H, W, input, unet::OutputKind::Logits, scratch) ==
        read_vec<float>("tile_logits.f32"));
  CHECK(model.run_tile<float>(H, W, input, unet::OutputKind::Probabilities, scratch) ==
        read_vec<float>("tile_probs.f32"));
  CHECK(model.run_tile<std::uint8_t>(H, W, input, unet::OutputKind::LabelsU8, scratch) ==
        read_vec<std::uint8_t>("tile_labels8.u8"));
  CHECK(model.run_tile<std::uint16_t>(H, W, input, unet::OutputKind::LabelsU16, scratch) ==
        read_vec<std::uint16_t>("tile_labels16.u16"));
  CHECK(scratch.size() == model.tile_scratch_len(H, W));

  // Zero-copy model over caller bytes gives the same labels.
  const std::vector<std::uint8_t> bytes = read_vec<std::uint8_t>("model.safetensors");
  unet::Model borrowed = unet::Model::from_bytes(bytes.data(), bytes.size());
  CHECK(borrowed.run_tile<std::uint8_t>(H, W, input, unet::OutputKind::LabelsU8, scratch) ==
        read_vec<std::uint8_t>("tile_labels8.u8"));

  // Errors become exceptions with the status and the detail message.
  expect_throw(UNET_ERR_IO, "no-such.safetensors",
               [] { unet::Model::load(dir + "/no-such.safetensors"); });
  expect_throw(UNET_ERR_FORMAT, "safetensors",
               [&] { unet::Model::from_bytes(bytes.data(), 20); });
  expect_throw(UNET_ERR_TILE_SIZE, "not legal", [&] { model.output_size(H + 1, W); });
  expect_throw(UNET_ERR_BUFFER_TOO_SMALL, "input", [&] {
    std::vector<float> short_input(input.begin(), input.end() - 1);
    model.run_tile<float>(H, W, short_input, unet::OutputKind::Logits, scratch);
  });
  expect_throw(UNET_ERR_INVALID_ARGUMENT, "element type", [&] {
    model.run_tile<float>(H, W, input, unet::OutputKind::LabelsU8, scratch);
  });
  expect_throw(UNET_ERR_INVALID_ARGUMENT, "no_such_key", [&] { model.metadata("no_such_key"); });

  // Moves transfer ownership; a moved-from model reports UNET_ERR_NULL instead of crashing.
  unet::Model moved = std::move(borrowed);
  CHECK(borrowed.get() == nullptr && moved.get() != nullptr);
  expect_throw(UNET_ERR_NULL, "model", [&] { borrowed.levels(); });
  borrowed = std::move(moved);
  CHECK(borrowed.levels() == 2 && moved.get() == nullptr);
  unet_model *raw = borrowed.release();
  CHECK(raw != nullptr && borrowed.get() == nullptr);
  unet::Model readopted(raw);
  CHECK(readopted.num_classes() == 3);

  // A const model shared by two threads, each with its own scratch.
  const unet::Model &shared = model;
  const std::vector<std::uint16_t> want = read_vec<std::uint16_t>("tile_labels16.u16");
  bool ok[2] = {false, false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++) {
    threads.emplace_back([&, t] {
      std::vector<float> s;
      ok[t] = true;
      for (int r = 0; r < 3; r++) {
        ok[t] = ok[t] && shared.run_tile<std::uint16_t>(H, W, input, unet::OutputKind::LabelsU16, s) == want;
      }
    });
  }
  for (auto &th : threads) th.join();
  CHECK(ok[0] && ok[1]);

  std::printf("wrapper_test: all checks passed\n");
  return 0;
}
