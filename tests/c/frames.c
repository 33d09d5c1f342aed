/*
 * Frame tests of the libunet C harness (see harness.c): unet_frame_options_default,
 * unet_model_frame_scratch_len/_bytes, unet_model_frame_tile_size, unet_model_segment_frame,
 * compared bit for bit with the Rust API's outputs (files written by c_harness.rs).
 */
#include <stdint.h>

#include "check.h"

void test_frames(const unet_model *m, const char *dir);

#define FH 50
#define FW 70
#define FN (FH * FW)

static uint8_t *segment_u16(const unet_model *m, const uint16_t *px, size_t stride, size_t len,
                            const unet_frame_options *o, int library_scratch) {
  size_t scratch_len = 0;
  float *scratch = NULL;
  uint8_t *labels = (uint8_t *)malloc(FN);
  CHECK(labels != NULL);
  if (!library_scratch) {
    OK(unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, o, &scratch_len));
    scratch = (float *)malloc(scratch_len * sizeof(float));
    CHECK(scratch != NULL);
  }
  OK(unet_model_segment_frame(m, FH, FW, stride, UNET_SAMPLE_U16, px, len, o,
                              UNET_OUTPUT_LABELS_U8, labels, FN, scratch, scratch_len));
  free(scratch);
  return labels;
}

void test_frames(const unet_model *m, const char *dir) {
  size_t n, i, y, len = 0, th = 0, tw = 0, classes = 0;
  unet_frame_options d = unet_frame_options_default();
  unet_frame_options ex = d, bad;
  uint16_t *px = (uint16_t *)read_all(join(dir, "frame_u16.raw"), &n);
  uint8_t *px8, *want8, *want8_auto, *got;
  uint16_t *want16, *got16, *padded;
  float *pxf, *want_probs, *probs;
  float *scratch;
  size_t scratch_len = 0;

  CHECK(n == FN * sizeof(uint16_t));
  CHECK(d.tile_height == 0 && d.tile_width == 0 && d.scratch_budget_bytes == 0 && d.threads == 1);
  OK(unet_model_num_classes(m, &classes));
  want8 = read_all(join(dir, "frame_labels8.u8"), &n);
  CHECK(n == FN);
  want8_auto = read_all(join(dir, "frame_labels8_auto.u8"), &n);
  CHECK(n == FN);
  want_probs = (float *)read_all(join(dir, "frame_probs.f32"), &n);
  CHECK(n == classes * FN * sizeof(float));

  /* Queries. */
  ex.tile_height = 28;
  ex.tile_width = 36;
  OK(unet_model_frame_tile_size(m, FH, FW, UNET_SAMPLE_U16, NULL, &th, &tw));
  printf("frame_tile_auto=%zux%zu\n", th, tw);
  OK(unet_model_frame_tile_size(m, FH, FW, UNET_SAMPLE_U16, &ex, &th, &tw));
  CHECK(th == 28 && tw == 36);
  OK(unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &ex, &len));
  printf("frame_scratch_len_explicit=%zu\n", len);
  OK(unet_model_frame_scratch_bytes(m, FH, FW, UNET_SAMPLE_U16, &ex, &n));
  CHECK(n == 4 * len);
  ex.threads = 2;
  OK(unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &ex, &len));
  printf("frame_scratch_len_explicit_2_threads=%zu\n", len);
  ex.threads = 1;

  /* u16 → labels: explicit tile (caller scratch, library scratch, 1-3 threads) and the
     automatic tile all equal the Rust API. */
  for (i = 1; i <= 3; i++) {
    ex.threads = i;
    got = segment_u16(m, px, 0, FN, &ex, 0);
    CHECK(memcmp(got, want8, FN) == 0);
    free(got);
    got = segment_u16(m, px, FW, FN, &ex, 1);
    CHECK(memcmp(got, want8, FN) == 0);
    free(got);
  }
  ex.threads = 1;
  got = segment_u16(m, px, 0, FN, NULL, 0);
  CHECK(memcmp(got, want8_auto, FN) == 0);
  free(got);

  /* Padded rows (row_stride > width) give the same result. */
  padded = (uint16_t *)malloc((size_t)FH * (FW + 5) * sizeof(uint16_t));
  CHECK(padded != NULL);
  for (y = 0; y < FH; y++) {
    memcpy(padded + y * (FW + 5), px + y * FW, FW * sizeof(uint16_t));
    for (i = FW; i < FW + 5; i++) padded[y * (FW + 5) + i] = 65535;
  }
  got = segment_u16(m, padded, FW + 5, (size_t)(FH - 1) * (FW + 5) + FW, &ex, 0);
  CHECK(memcmp(got, want8, FN) == 0);
  free(got);
  free(padded);

  /* Probabilities. */
  probs = (float *)malloc(classes * FN * sizeof(float));
  CHECK(probs != NULL);
  OK(unet_model_segment_frame(m, FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex,
                              UNET_OUTPUT_PROBABILITIES, probs, classes * FN, NULL, 0));
  CHECK(memcmp(probs, want_probs, classes * FN * sizeof(float)) == 0);

  /* u8 and f32 frames. */
  px8 = read_all(join(dir, "frame_u8.raw"), &n);
  CHECK(n == FN);
  want16 = (uint16_t *)read_all(join(dir, "frame_u8_labels16.u16"), &n);
  CHECK(n == FN * sizeof(uint16_t));
  got16 = (uint16_t *)malloc(FN * sizeof(uint16_t));
  CHECK(got16 != NULL);
  OK(unet_model_segment_frame(m, FH, FW, 0, UNET_SAMPLE_U8, px8, FN, &ex, UNET_OUTPUT_LABELS_U16,
                              got16, FN, NULL, 0));
  CHECK(memcmp(got16, want16, FN * sizeof(uint16_t)) == 0);
  free(want16);
  pxf = (float *)read_all(join(dir, "frame_f32.raw"), &n);
  CHECK(n == FN * sizeof(float));
  want16 = (uint16_t *)read_all(join(dir, "frame_f32_labels16.u16"), &n);
  CHECK(n == FN * sizeof(uint16_t));
  OK(unet_model_segment_frame(m, FH, FW, 0, UNET_SAMPLE_F32, pxf, FN, &ex, UNET_OUTPUT_LABELS_U16,
                              got16, FN, NULL, 0));
  CHECK(memcmp(got16, want16, FN * sizeof(uint16_t)) == 0);

  /* Errors; the output stays untouched. */
  OK(unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &ex, &scratch_len));
  scratch = (float *)malloc(scratch_len * sizeof(float));
  CHECK(scratch != NULL);
  got = (uint8_t *)malloc(FN);
  CHECK(got != NULL);
  memset(got, 0xEE, FN);
#define SEG(h, w, stride, sample, pix, plen, opts, kind, out, olen, scr, slen) \
  unet_model_segment_frame(m, h, w, stride, sample, pix, plen, opts, kind, out, olen, scr, slen)
  EXPECT(UNET_ERR_NULL, unet_model_segment_frame(NULL, FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex,
                                                 UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, SEG(FH, FW, 0, UNET_SAMPLE_U16, NULL, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, NULL, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_NULL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, NULL, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, 0, 3u, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, 4u, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN - 1, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN - 1, scratch, scratch_len));
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len - 1));
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN - 1, NULL, 0));
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN - 1, NULL, UNET_OUTPUT_LABELS_U8, got, FN, NULL, 0));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, FW - 1, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(0, FW, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  CHECK(SEG(SIZE_MAX, SIZE_MAX, 0, UNET_SAMPLE_U16, px, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len) != UNET_OK);
  CHECK(SEG(65536, 65536, 0, UNET_SAMPLE_U16, px, FN, NULL, UNET_OUTPUT_LABELS_U8, got, FN, NULL, 0) != UNET_OK);
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, 0, UNET_SAMPLE_U16, (const char *)px + 1, FN - 1, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, 0, UNET_SAMPLE_U8, scratch, FN, &ex, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  bad = ex;
  bad.threads = 0;
  EXPECT(UNET_ERR_INVALID_ARGUMENT, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &bad, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &bad, &len));
  bad = ex;
  bad.tile_height = 29;
  EXPECT(UNET_ERR_TILE_SIZE, unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &bad, &len));
  EXPECT(UNET_ERR_TILE_SIZE, SEG(FH, FW, 0, UNET_SAMPLE_U16, px, FN, &bad, UNET_OUTPUT_LABELS_U8, got, FN, scratch, scratch_len));
  bad = d;
  bad.scratch_budget_bytes = 1;
  EXPECT(UNET_ERR_BUFFER_TOO_SMALL, unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &bad, &len));
  EXPECT(UNET_ERR_INVALID_ARGUMENT, unet_model_frame_scratch_len(m, FH, FW, 7u, &ex, &len));
  EXPECT(UNET_ERR_NULL, unet_model_frame_scratch_len(NULL, FH, FW, UNET_SAMPLE_U16, &ex, &len));
  EXPECT(UNET_ERR_NULL, unet_model_frame_scratch_len(m, FH, FW, UNET_SAMPLE_U16, &ex, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_frame_scratch_bytes(m, FH, FW, UNET_SAMPLE_U16, &ex, NULL));
  EXPECT(UNET_ERR_NULL, unet_model_frame_tile_size(m, FH, FW, UNET_SAMPLE_U16, &ex, NULL, &tw));
  EXPECT(UNET_ERR_NULL, unet_model_frame_tile_size(m, FH, FW, UNET_SAMPLE_U16, &ex, &th, NULL));
  CHECK(unet_model_frame_scratch_len(m, SIZE_MAX, SIZE_MAX, UNET_SAMPLE_U16, NULL, &len) != UNET_OK);
  for (i = 0; i < FN; i++) CHECK(got[i] == 0xEE);
#undef SEG

  free(got);
  free(scratch);
  free(got16);
  free(want16);
  free(pxf);
  free(px8);
  free(probs);
  free(want_probs);
  free(want8_auto);
  free(want8);
  free(px);
  printf("frames=ok\n");
}
