/*
 * The libunet C test harness: exercises every function of the C ABI and every documented
 * error, and compares results with the Rust API's (expected outputs written by the Rust test
 * unet-ffi/tests/c_harness.rs into DATA_DIR).
 *
 * Usage: harness DATA_DIR
 * Prints `key=value` lines (query results) on stdout for the Rust test to compare, and
 * "harness: all checks passed" last. Exits non-zero on the first failed check.
 *
 * Built with gcc -std=c99 -Wall -Wextra -Werror -pedantic, linked against libunet.a and
 * libunet.so, and run under valgrind.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "check.h"

/* The tile the Rust test computed expected outputs for (see c_harness.rs). */
#define TILE_H 28
#define TILE_W 36

static const char *data_dir;

static size_t q(unet_status (*f)(const unet_model *, size_t *), const unet_model *m) {
  size_t v = (size_t)-1;
  OK(f(m, &v));
  return v;
}

static void test_version_and_messages(void) {
  int s;
  size_t n = 0;
  char buf[64];
  CHECK(strcmp(unet_version(), UNET_VERSION_STRING) == 0);
  printf("version=%s\n", unet_version());
  printf("version_macros=%d.%d.%d\n", UNET_VERSION_MAJOR, UNET_VERSION_MINOR, UNET_VERSION_PATCH);
  for (s = UNET_OK; s <= UNET_ERR_OTHER; s++) {
    const char *msg = unet_status_message(s);
    CHECK(msg != NULL && strlen(msg) > 0);
    CHECK(strcmp(msg, "unknown status") != 0);
  }
  CHECK(strcmp(unet_status_message(UNET_ERR_OTHER + 1), "unknown status") == 0);
  CHECK(strcmp(unet_status_message(-1), "unknown status") == 0);
  CHECK(strcmp(unet_status_message(INT_MAX), "unknown status") == 0);
  CHECK(strcmp(unet_status_message(UNET_OK), "success") == 0);

  /* unet_last_error's own argument checks. */
  EXPECT(UNET_ERR_NULL, unet_last_error(NULL, 10, &n));
  EXPECT(UNET_ERR_NULL, unet_last_error(buf, sizeof buf, NULL));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, unet_last_error(buf, 0, &n));

  /* A failure leaves a detail message; truncation keeps the full length in out_len. */
  EXPECT(UNET_ERR_NULL, unet_model_load(NULL, NULL));
  OK(unet_last_error(buf, sizeof buf, &n));
  CHECK(n > 0 && strlen(buf) == (n < sizeof buf ? n : sizeof buf - 1));
  {
    char small[4];
    size_t n2 = 0;
    memset(small, 'x', sizeof small);
    OK(unet_last_error(small, sizeof small, &n2));
    CHECK(n2 == n && small[3] == '\0' && strlen(small) == 3 && strncmp(small, buf, 3) == 0);
  }
  /* A success clears it. */
  {
    size_t v;
    unet_model *m = NULL;
    size_t len;
    unsigned char *bytes = read_all(join(data_dir, "model.safetensors"), &len);
    OK(unet_model_from_bytes(bytes, len, &m));
    OK(unet_model_levels(m, &v));
    OK(unet_last_error(buf, sizeof buf, &n));
    CHECK(n == 0 && buf[0] == '\0');
    unet_model_free(m);
    free(bytes);
  }
}

/* Expects `call` to fail with `st` and leave a non-empty detail message containing `needle`. */
static void expect_detail(unet_status got, unet_status st, const char *needle, const char *what) {
  char msg[512];
  size_t n = 0;
  if (got != st) {
    fprintf(stderr, "%s: got %d (%s), expected %d\n", what, (int)got,
            unet_status_message((int)got), (int)st);
    print_last_error();
    exit(1);
  }
  OK(unet_last_error(msg, sizeof msg, &n));
  if (n == 0 || (needle != NULL && strstr(msg, needle) == NULL)) {
    fprintf(stderr, "%s: detail '%s' lacks '%s'\n", what, msg, needle ? needle : "");
    exit(1);
  }
}

static void test_loading(const unsigned char *bytes, size_t len) {
  unet_model *m = (unet_model *)(uintptr_t)0x1; /* must stay untouched on failure */
  size_t cut;
  size_t i;
  size_t header_end = 8;
  size_t other_len;
  unsigned char *other;
  unsigned char *copy;

  /* NULL arguments. */
  EXPECT(UNET_ERR_NULL, unet_model_from_bytes(NULL, len, &m));
  EXPECT(UNET_ERR_NULL, unet_model_from_bytes(bytes, len, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_load(NULL, &m));
  EXPECT(UNET_ERR_NULL, unet_model_load(join(data_dir, "model.safetensors"), NULL));
  CHECK(m == (unet_model *)(uintptr_t)0x1);

  for (i = 0; i < 8; i++) header_end += (size_t)bytes[i] << (8 * i);
  CHECK(header_end <= len);

  /* Missing file. */
  expect_detail(unet_model_load(join(data_dir, "no-such-file.safetensors"), &m), UNET_ERR_IO,
                "no-such-file", "missing file");
  /* A directory is not a model file either. */
  CHECK(unet_model_load(data_dir, &m) != UNET_OK);
  CHECK(m == (unet_model *)(uintptr_t)0x1);

  /* Truncations are refused (never a crash, never a model): every cut inside the header
     and its first 64 data bytes, then every 61st byte to the end. */
  for (cut = 0; cut < len; cut += (cut < header_end + 64 ? 1 : 61)) {
    unet_status s = unet_model_from_bytes(bytes, cut, &m);
    if (s == UNET_OK) {
      fprintf(stderr, "truncated model (%zu of %zu bytes) was accepted\n", cut, len);
      exit(1);
    }
    CHECK(m == (unet_model *)(uintptr_t)0x1);
  }
  expect_detail(unet_model_from_bytes(bytes, 7, &m), UNET_ERR_FORMAT, NULL, "7 bytes");

  /* Corrupting each header byte (8-byte length prefix + JSON) never crashes; a corrupt
     length prefix is a format error. */
  copy = (unsigned char *)malloc(len);
  CHECK(copy != NULL);
  {
    uint64_t hlen = 0;
    for (i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    for (i = 0; i < 8 + hlen && i < len; i++) {
      unet_model *c = NULL;
      memcpy(copy, bytes, len);
      copy[i] ^= 0xA5;
      if (unet_model_from_bytes(copy, len, &c) == UNET_OK) {
        unet_model_free(c); /* e.g. a flipped byte inside a provenance string */
      } else {
        CHECK(c == NULL);
      }
    }
    memcpy(copy, bytes, len);
    copy[7] = 0x7f; /* header length ~ 2^63 */
    expect_detail(unet_model_from_bytes(copy, len, &m), UNET_ERR_FORMAT, NULL, "huge header");
  }
  free(copy);

  /* Files that parse but are not acceptable models. */
  other = read_all(join(data_dir, "bad_version.safetensors"), &other_len);
  expect_detail(unet_model_from_bytes(other, other_len, &m), UNET_ERR_UNSUPPORTED_VERSION,
                "version", "format_version 2");
  free(other);
  other = read_all(join(data_dir, "bad_metadata.safetensors"), &other_len);
  expect_detail(unet_model_from_bytes(other, other_len, &m), UNET_ERR_METADATA, "levels",
                "levels = x");
  free(other);
  other = read_all(join(data_dir, "missing_tensor.safetensors"), &other_len);
  expect_detail(unet_model_from_bytes(other, other_len, &m), UNET_ERR_TENSOR, "head.bias",
                "missing head.bias");
  free(other);
  other = read_all(join(data_dir, "wrong_shape.safetensors"), &other_len);
  expect_detail(unet_model_from_bytes(other, other_len, &m), UNET_ERR_TENSOR, "shape",
                "wrong shape");
  free(other);
  CHECK(m == (unet_model *)(uintptr_t)0x1);

  /* unet_model_free(NULL) is a no-op. */
  unet_model_free(NULL);
}

static void test_queries(const unet_model *m) {
  size_t v = 0, oh = 0, ow = 0, len = 0;
  bool legal = false;
  unet_padding pad = UNET_PADDING_SAME;
  char buf[256];

  printf("in_channels=%zu\n", q(unet_model_in_channels, m));
  printf("num_classes=%zu\n", q(unet_model_num_classes, m));
  printf("base_channels=%zu\n", q(unet_model_base_channels, m));
  printf("levels=%zu\n", q(unet_model_levels, m));
  printf("halo=%zu\n", q(unet_model_halo, m));
  printf("tile_step=%zu\n", q(unet_model_tile_step, m));
  printf("min_tile=%zu\n", q(unet_model_min_tile, m));
  OK(unet_model_padding(m, &pad));
  printf("padding=%d\n", (int)pad);
  for (v = 0; v < 48; v++) {
    OK(unet_model_is_legal_tile(m, v, &legal));
    if (legal) printf("legal=%zu\n", v);
  }
  OK(unet_model_next_legal_tile(m, 29, &v));
  printf("next_legal_29=%zu\n", v);
  OK(unet_model_prev_legal_tile(m, 29, &v));
  printf("prev_legal_29=%zu\n", v);
  OK(unet_model_tile_for_output(m, 13, &v));
  printf("tile_for_output_13=%zu\n", v);
  OK(unet_model_output_size(m, TILE_H, TILE_W, &oh, &ow));
  printf("output_size=%zux%zu\n", oh, ow);
  OK(unet_model_tile_scratch_len(m, TILE_H, TILE_W, &v));
  printf("tile_scratch_len=%zu\n", v);
  OK(unet_model_tile_scratch_bytes(m, TILE_H, TILE_W, &len));
  CHECK(len == 4 * v);

  /* NULL model / NULL out for every query. */
  EXPECT(UNET_ERR_NULL, unet_model_in_channels(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_in_channels(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_num_classes(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_num_classes(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_base_channels(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_base_channels(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_levels(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_levels(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_padding(NULL, &pad));
  EXPECT(UNET_ERR_NULL, unet_model_padding(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_halo(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_halo(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_tile_step(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_tile_step(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_min_tile(NULL, &v));
  EXPECT(UNET_ERR_NULL, unet_model_min_tile(m, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_is_legal_tile(NULL, 28, &legal));
  EXPECT(UNET_ERR_NULL, unet_model_is_legal_tile(m, 28, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_next_legal_tile(NULL, 28, &v));
  EXPECT(UNET_ERR_NULL, unet_model_next_legal_tile(m, 28, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_prev_legal_tile(NULL, 28, &v));
  EXPECT(UNET_ERR_NULL, unet_model_prev_legal_tile(m, 28, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_tile_for_output(NULL, 12, &v));
  EXPECT(UNET_ERR_NULL, unet_model_tile_for_output(m, 12, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_output_size(NULL, TILE_H, TILE_W, &oh, &ow));
  EXPECT(UNET_ERR_NULL, unet_model_output_size(m, TILE_H, TILE_W, NULL, &ow));
  EXPECT(UNET_ERR_NULL, unet_model_output_size(m, TILE_H, TILE_W, &oh, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_tile_scratch_len(NULL, TILE_H, TILE_W, &v));
  EXPECT(UNET_ERR_NULL, unet_model_tile_scratch_len(m, TILE_H, TILE_W, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_tile_scratch_bytes(NULL, TILE_H, TILE_W, &v));
  EXPECT(UNET_ERR_NULL, unet_model_tile_scratch_bytes(m, TILE_H, TILE_W, NULL));

  /* Illegal and huge sizes; outputs untouched on failure. */
  oh = ow = v = 12345;
  EXPECT(UNET_ERR_TILE_SIZE, unet_model_output_size(m, TILE_H + 1, TILE_W, &oh, &ow));
  EXPECT(UNET_ERR_TILE_SIZE, unet_model_output_size(m, TILE_H, 0, &oh, &ow));
  CHECK(oh == 12345 && ow == 12345);
  EXPECT(UNET_ERR_TILE_SIZE, unet_model_tile_scratch_len(m, 27, TILE_W, &v));
  EXPECT(UNET_ERR_TILE_SIZE, unet_model_prev_legal_tile(m, 3, &v));
  EXPECT(UNET_ERR_OVERFLOW, unet_model_next_legal_tile(m, SIZE_MAX, &v));
  EXPECT(UNET_ERR_OVERFLOW, unet_model_tile_for_output(m, SIZE_MAX - 3, &v));
  CHECK(unet_model_output_size(m, SIZE_MAX, SIZE_MAX, &oh, &ow) != UNET_OK);
  CHECK(v == 12345 && oh == 12345);
  {
    /* A legal but absurd tile: its scratch cannot be addressed. */
    size_t big = 0;
    OK(unet_model_next_legal_tile(m, (size_t)1 << (sizeof(size_t) * 4), &big));
    EXPECT(UNET_ERR_OVERFLOW, unet_model_tile_scratch_len(m, big, big, &v));
    EXPECT(UNET_ERR_OVERFLOW, unet_model_tile_scratch_bytes(m, big, big, &v));
    CHECK(v == 12345);
  }

  /* Metadata: size query, copy, absent key, NULLs. */
  len = 0;
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, unet_model_metadata(m, "normalization", NULL, 0, &len));
  CHECK(len == strlen("percentile:1:99.8"));
  OK(unet_model_metadata(m, "normalization", buf, len + 1, &len));
  printf("normalization=%s\n", buf);
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, unet_model_metadata(m, "normalization", buf, len, &len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, unet_model_metadata(m, "no_such_key", buf, sizeof buf, &len));
  EXPECT(UNET_ERR_NULL, unet_model_metadata(NULL, "format", buf, sizeof buf, &len));
  EXPECT(UNET_ERR_NULL, unet_model_metadata(m, NULL, buf, sizeof buf, &len));
  EXPECT(UNET_ERR_NULL, unet_model_metadata(m, "format", buf, sizeof buf, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_metadata(m, "format", NULL, sizeof buf, &len));
  OK(unet_model_metadata(m, "format", buf, sizeof buf, &len));
  CHECK(strcmp(buf, "unet") == 0 && len == 4);
}

/* Expected outputs of the Rust API for the tile input (written by c_harness.rs). */
struct expected {
  float *input;
  size_t input_len;
  float *logits, *probs;
  uint8_t *labels8;
  uint16_t *labels16;
  size_t out_len, label_len;
};

static void load_expected(struct expected *e, size_t classes, size_t oh, size_t ow) {
  size_t n;
  e->input = (float *)read_all(join(data_dir, "tile_input.f32"), &n);
  e->input_len = n / sizeof(float);
  CHECK(e->input_len == TILE_H * TILE_W);
  e->out_len = classes * oh * ow;
  e->label_len = oh * ow;
  e->logits = (float *)read_all(join(data_dir, "tile_logits.f32"), &n);
  CHECK(n == e->out_len * sizeof(float));
  e->probs = (float *)read_all(join(data_dir, "tile_probs.f32"), &n);
  CHECK(n == e->out_len * sizeof(float));
  e->labels8 = read_all(join(data_dir, "tile_labels8.u8"), &n);
  CHECK(n == e->label_len);
  e->labels16 = (uint16_t *)read_all(join(data_dir, "tile_labels16.u16"), &n);
  CHECK(n == e->label_len * sizeof(uint16_t));
}

static void free_expected(struct expected *e) {
  free(e->input);
  free(e->logits);
  free(e->probs);
  free(e->labels8);
  free(e->labels16);
}

/* Runs all four output kinds with `scratch` (may be NULL) and compares bit for bit. */
static void run_and_compare(const unet_model *m, const struct expected *e, float *scratch,
                            size_t scratch_len) {
  float *f = (float *)malloc(e->out_len * sizeof(float));
  uint8_t *l8 = (uint8_t *)malloc(e->label_len);
  uint16_t *l16 = (uint16_t *)malloc(e->label_len * sizeof(uint16_t));
  CHECK(f && l8 && l16);
  OK(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, UNET_OUTPUT_LOGITS, f,
                         e->out_len, scratch, scratch_len));
  CHECK(memcmp(f, e->logits, e->out_len * sizeof(float)) == 0);
  OK(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, UNET_OUTPUT_PROBABILITIES,
                         f, e->out_len, scratch, scratch_len));
  CHECK(memcmp(f, e->probs, e->out_len * sizeof(float)) == 0);
  OK(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, UNET_OUTPUT_LABELS_U8, l8,
                         e->label_len, scratch, scratch_len));
  CHECK(memcmp(l8, e->labels8, e->label_len) == 0);
  OK(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, UNET_OUTPUT_LABELS_U16, l16,
                         e->label_len, scratch, scratch_len));
  CHECK(memcmp(l16, e->labels16, e->label_len * sizeof(uint16_t)) == 0);
  free(f);
  free(l8);
  free(l16);
}

static int all_equal(const float *p, size_t n, float v) {
  size_t i;
  for (i = 0; i < n; i++)
    if (memcmp(&p[i], &v, sizeof v) != 0) return 0;
  return 1;
}

static void test_run_tile(const unet_model *m, const struct expected *e) {
  size_t scratch_len = 0;
  float *scratch;
  float *out = (float *)malloc((e->out_len + 1) * sizeof(float));
  float *big_in;
  const float sentinel = -7.25f;
  size_t i;
  CHECK(out != NULL);
  OK(unet_model_tile_scratch_len(m, TILE_H, TILE_W, &scratch_len));
  scratch = (float *)malloc((scratch_len + 1) * sizeof(float));
  CHECK(scratch != NULL);

  /* Caller scratch, library scratch, and scratch with stale contents all agree. */
  run_and_compare(m, e, scratch, scratch_len);
  for (i = 0; i <= scratch_len; i++) scratch[i] = 1e30f;
  run_and_compare(m, e, scratch, scratch_len + 1);
  run_and_compare(m, e, NULL, 0);

#define RESET() for (i = 0; i <= e->out_len; i++) out[i] = sentinel
#define UNTOUCHED() CHECK(all_equal(out, e->out_len + 1, sentinel))
  RESET();
  /* NULLs. */
  EXPECT(UNET_ERR_NULL, unet_model_run_tile(NULL, TILE_H, TILE_W, e->input, e->input_len,
                                            UNET_OUTPUT_LOGITS, out, e->out_len, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, unet_model_run_tile(m, TILE_H, TILE_W, NULL, e->input_len,
                                            UNET_OUTPUT_LOGITS, out, e->out_len, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                            UNET_OUTPUT_LOGITS, NULL, e->out_len, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                            UNET_OUTPUT_LOGITS, out, e->out_len, NULL, scratch_len));
  UNTOUCHED();
  /* Wrong tile sizes, huge sizes. */
  expect_detail(unet_model_run_tile(m, TILE_H + 1, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LOGITS, out, e->out_len, scratch, scratch_len),
                UNET_ERR_TILE_SIZE, "not legal", "tile 29x36");
  CHECK(unet_model_run_tile(m, SIZE_MAX, SIZE_MAX, e->input, e->input_len, UNET_OUTPUT_LOGITS,
                            out, e->out_len, scratch, scratch_len) != UNET_OK);
  UNTOUCHED();
  /* Short buffers by one element. */
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len - 1,
                                    UNET_OUTPUT_LOGITS, out, e->out_len, scratch, scratch_len),
                UNET_ERR_BUFFER_TOO_SMALL, "input", "short input");
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LOGITS, out, e->out_len - 1, scratch, scratch_len),
                UNET_ERR_BUFFER_TOO_SMALL, "output", "short output");
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LABELS_U8, out, e->label_len - 1, scratch, scratch_len),
                UNET_ERR_BUFFER_TOO_SMALL, "output", "short labels");
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LOGITS, out, e->out_len, scratch, scratch_len - 1),
                UNET_ERR_BUFFER_TOO_SMALL, "scratch", "short scratch");
  UNTOUCHED();
  /* Unknown output kinds. */
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, 4u, out,
                                    e->out_len, scratch, scratch_len),
                UNET_ERR_INVALID_ARGUMENT, "unet_output", "kind 4");
  EXPECT(UNET_ERR_INVALID_ARGUMENT,
         unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, 0xFFFFFFFFu, out,
                             e->out_len, scratch, scratch_len));
  /* Misaligned and overlapping buffers; impossible lengths. */
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LOGITS, (char *)out + 1, e->out_len - 1, scratch,
                                    scratch_len),
                UNET_ERR_INVALID_ARGUMENT, "aligned", "misaligned output");
  expect_detail(unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len,
                                    UNET_OUTPUT_LOGITS, out, e->out_len, out, scratch_len),
                UNET_ERR_INVALID_ARGUMENT, "overlap", "scratch overlapping output");
  EXPECT(UNET_ERR_INVALID_ARGUMENT,
         unet_model_run_tile(m, TILE_H, TILE_W, e->input, SIZE_MAX, UNET_OUTPUT_LOGITS, out,
                             e->out_len, scratch, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT,
         unet_model_run_tile(m, TILE_H, TILE_W, e->input, e->input_len, UNET_OUTPUT_LOGITS, out,
                             SIZE_MAX / 2, scratch, scratch_len));
  UNTOUCHED();
  /* Input and output may not overlap either (library scratch path). */
  big_in = (float *)malloc((e->out_len + e->input_len) * sizeof(float));
  CHECK(big_in != NULL);
  memcpy(big_in, e->input, e->input_len * sizeof(float));
  EXPECT(UNET_ERR_INVALID_ARGUMENT,
         unet_model_run_tile(m, TILE_H, TILE_W, big_in, e->input_len, UNET_OUTPUT_LOGITS,
                             big_in + e->input_len - 1, e->out_len, NULL, 0));
  /* ...but adjacent buffers are fine. */
  OK(unet_model_run_tile(m, TILE_H, TILE_W, big_in, e->input_len, UNET_OUTPUT_LOGITS,
                         big_in + e->input_len, e->out_len, NULL, 0));
  CHECK(memcmp(big_in + e->input_len, e->logits, e->out_len * sizeof(float)) == 0);
  free(big_in);
#undef RESET
#undef UNTOUCHED
  free(scratch);
  free(out);
}

static void test_wide_model(void) {
  /* 300 classes: u8 labels are refused, u16 labels work. */
  unet_model *w = NULL;
  size_t n = 0, oh = 0, ow = 0, scratch_len = 0, i;
  float in[5 * 9];
  uint8_t l8[5 * 9];
  uint16_t l16[5 * 9];
  OK(unet_model_load(join(data_dir, "wide.safetensors"), &w));
  OK(unet_model_num_classes(w, &n));
  CHECK(n == 300);
  OK(unet_model_output_size(w, 5, 9, &oh, &ow));
  CHECK(oh == 1 && ow == 5);
  OK(unet_model_tile_scratch_len(w, 5, 9, &scratch_len));
  for (i = 0; i < 45; i++) in[i] = (float)i / 45.0f;
  memset(l8, 0xEE, sizeof l8);
  expect_detail(unet_model_run_tile(w, 5, 9, in, 45, UNET_OUTPUT_LABELS_U8, l8, sizeof l8, NULL, 0),
                UNET_ERR_INVALID_ARGUMENT, "256", "u8 labels for 300 classes");
  for (i = 0; i < sizeof l8; i++) CHECK(l8[i] == 0xEE);
  OK(unet_model_run_tile(w, 5, 9, in, 45, UNET_OUTPUT_LABELS_U16, l16, 5, NULL, 0));
  for (i = 0; i < 5; i++) CHECK(l16[i] < 300);
  unet_model_free(w);
}

/* Two threads share one model, each with its own scratch and outputs. */
struct worker {
  const unet_model *m;
  const struct expected *e;
  int rounds;
  int ok;
};

static void *worker_main(void *arg) {
  struct worker *w = (struct worker *)arg;
  size_t scratch_len = 0;
  float *scratch, *out;
  uint16_t *labels;
  char msg[256];
  size_t n = 0;
  int r;
  w->ok = 0;
  if (unet_model_tile_scratch_len(w->m, TILE_H, TILE_W, &scratch_len) != UNET_OK) return NULL;
  scratch = (float *)malloc(scratch_len * sizeof(float));
  out = (float *)malloc(w->e->out_len * sizeof(float));
  labels = (uint16_t *)malloc(w->e->label_len * sizeof(uint16_t));
  if (!scratch || !out || !labels) return NULL;
  for (r = 0; r < w->rounds; r++) {
    if (unet_model_run_tile(w->m, TILE_H, TILE_W, w->e->input, w->e->input_len,
                            UNET_OUTPUT_PROBABILITIES, out, w->e->out_len, scratch,
                            scratch_len) != UNET_OK)
      goto done;
    if (memcmp(out, w->e->probs, w->e->out_len * sizeof(float)) != 0) goto done;
    if (unet_model_run_tile(w->m, TILE_H, TILE_W, w->e->input, w->e->input_len,
                            UNET_OUTPUT_LABELS_U16, labels, w->e->label_len, scratch,
                            scratch_len) != UNET_OK)
      goto done;
    if (memcmp(labels, w->e->labels16, w->e->label_len * sizeof(uint16_t)) != 0) goto done;
  }
  /* The detail message is per thread: this thread's failure, not the other's. */
  if (unet_model_run_tile(w->m, TILE_H, TILE_W, w->e->input, w->e->input_len, 9u, out,
                          w->e->out_len, scratch, scratch_len) != UNET_ERR_INVALID_ARGUMENT)
    goto done;
  if (unet_last_error(msg, sizeof msg, &n) != UNET_OK || strstr(msg, "unet_output") == NULL)
    goto done;
  w->ok = 1;
done:
  free(scratch);
  free(out);
  free(labels);
  return NULL;
}

static void test_threads(const unet_model *m, const struct expected *e) {
  pthread_t t[2];
  struct worker w[2];
  int i;
  for (i = 0; i < 2; i++) {
    w[i].m = m;
    w[i].e = e;
    w[i].rounds = 3;
    w[i].ok = 0;
    CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
  }
  for (i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK(w[0].ok && w[1].ok);
  printf("threads=ok\n");
}

void test_frames(const unet_model *m, const char *dir);

int main(int argc, char **argv) {
  unet_model *m = NULL, *owned = NULL;
  unsigned char *bytes, *shifted;
  size_t len;
  struct expected e;
  size_t classes = 0, oh = 0, ow = 0;

  if (argc != 2) {
    fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
    return 2;
  }
  data_dir = argv[1];
  bytes = read_all(join(data_dir, "model.safetensors"), &len);

  test_version_and_messages();
  test_loading(bytes, len);

  /* Zero-copy model over caller bytes, and a file-owned one. */
  OK(unet_model_from_bytes(bytes, len, &m));
  OK(unet_model_load(join(data_dir, "model.safetensors"), &owned));
  test_queries(m);
  OK(unet_model_num_classes(m, &classes));
  OK(unet_model_output_size(m, TILE_H, TILE_W, &oh, &ow));
  load_expected(&e, classes, oh, ow);
  test_run_tile(m, &e);
  run_and_compare(owned, &e, NULL, 0);

  /* Unaligned model bytes are accepted and give the same results. */
  shifted = (unsigned char *)malloc(len + 1);
  CHECK(shifted != NULL);
  memcpy(shifted + 1, bytes, len);
  {
    unet_model *u = NULL;
    OK(unet_model_from_bytes(shifted + 1, len, &u));
    run_and_compare(u, &e, NULL, 0);
    unet_model_free(u);
  }
  free(shifted);

  test_wide_model();
  test_threads(m, &e);
  test_frames(owned, data_dir);

  free_expected(&e);
  unet_model_free(owned);
  unet_model_free(m);
  free(bytes);
  printf("harness: all checks passed\n");
  return 0;
}
