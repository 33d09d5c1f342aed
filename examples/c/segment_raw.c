/*
 * segment_raw: segment one 16-bit camera frame with libunet.
 *
 *   segment_raw MODEL.safetensors FRAME.raw WIDTH HEIGHT OUT.raw [THREADS]
 *
 * FRAME.raw holds WIDTH × HEIGHT uint16 samples per input channel (planar, rows packed,
 * host byte order), e.g. a camera's raw dump. OUT.raw receives the label map: WIDTH × HEIGHT
 * uint8 (uint16 if the model has more than 256 classes). The model file's normalisation is
 * applied by libunet. Memory: the program asks libunet for the scratch size and allocates it
 * itself (the zero-allocation path an instrument would use for every frame).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "unet.h"

static int fail(const char *what, unet_status s) {
  char detail[512];
  size_t n = 0;
  if (unet_last_error(detail, sizeof detail, &n) != UNET_OK) detail[0] = '\0';
  fprintf(stderr, "segment_raw: %s: %s (%s)\n", what, unet_status_message(s), detail);
  return 1;
}

static int parse_size(const char *s, size_t *out) {
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v == 0 || v > SIZE_MAX) return 0;
  *out = (size_t)v;
  return 1;
}

int main(int argc, char **argv) {
  unet_model *model = NULL;
  unet_frame_options opts = unet_frame_options_default();
  size_t width, height, channels = 0, classes = 0, tile_h = 0, tile_w = 0, scratch_len = 0;
  size_t samples, label_size, got, i, *counts;
  uint16_t *pixels = NULL;
  void *labels = NULL;
  float *scratch = NULL;
  FILE *f;
  unet_status s;
  int rc = 1;

  if (argc < 6 || argc > 7 || !parse_size(argv[3], &width) || !parse_size(argv[4], &height) ||
      (argc == 7 && !parse_size(argv[6], &opts.threads))) {
    fprintf(stderr, "usage: %s MODEL.safetensors FRAME.raw WIDTH HEIGHT OUT.raw [THREADS]\n",
            argv[0]);
    return 2;
  }
  if ((s = unet_model_load(argv[1], &model)) != UNET_OK) return fail("loading the model", s);
  if ((s = unet_model_in_channels(model, &channels)) != UNET_OK ||
      (s = unet_model_num_classes(model, &classes)) != UNET_OK) {
    rc = fail("querying the model", s);
    goto out;
  }
  /* Sizes first (overflow-checked by libunet), then the caller's own allocations. */
  if ((s = unet_model_frame_scratch_len(model, height, width, UNET_SAMPLE_U16, &opts,
                                        &scratch_len)) != UNET_OK ||
      (s = unet_model_frame_tile_size(model, height, width, UNET_SAMPLE_U16, &opts, &tile_h,
                                      &tile_w)) != UNET_OK) {
    rc = fail("planning the frame", s);
    goto out;
  }
  samples = channels * height * width; /* frame_scratch_len succeeded: no overflow */
  label_size = classes > 256 ? 2 : 1;
  pixels = (uint16_t *)malloc(samples * sizeof(uint16_t));
  labels = malloc(height * width * label_size);
  scratch = (float *)malloc(scratch_len * sizeof(float));
  if (pixels == NULL || labels == NULL || scratch == NULL) {
    fprintf(stderr, "segment_raw: out of memory\n");
    goto out;
  }
  f = fopen(argv[2], "rb");
  if (f == NULL) {
    fprintf(stderr, "segment_raw: cannot open %s\n", argv[2]);
    goto out;
  }
  got = fread(pixels, sizeof(uint16_t), samples, f);
  fclose(f);
  if (got != samples) {
    fprintf(stderr, "segment_raw: %s holds %zu samples, expected %zu\n", argv[2], got, samples);
    goto out;
  }

  s = unet_model_segment_frame(model, height, width, 0, UNET_SAMPLE_U16, pixels, samples, &opts,
                               label_size == 1 ? UNET_OUTPUT_LABELS_U8 : UNET_OUTPUT_LABELS_U16,
                               labels, height * width, scratch, scratch_len);
  if (s != UNET_OK) {
    rc = fail("segmenting", s);
    goto out;
  }
  f = fopen(argv[5], "wb");
  if (f == NULL || fwrite(labels, label_size, height * width, f) != height * width) {
    fprintf(stderr, "segment_raw: cannot write %s\n", argv[5]);
    if (f != NULL) fclose(f);
    goto out;
  }
  fclose(f);

  printf("libunet %s: %zux%zu frame, %zu class(es), tile %zux%zu, %zu thread(s), scratch %.1f MiB\n",
         unet_version(), width, height, classes, tile_h, tile_w, opts.threads,
         (double)scratch_len * 4.0 / (1024.0 * 1024.0));
  counts = (size_t *)calloc(classes, sizeof(size_t));
  if (counts != NULL) {
    for (i = 0; i < height * width; i++) {
      size_t l = label_size == 1 ? ((uint8_t *)labels)[i] : ((uint16_t *)labels)[i];
      counts[l]++;
    }
    for (i = 0; i < classes; i++) printf("class %zu: %zu pixels\n", i, counts[i]);
    free(counts);
  }
  rc = 0;
out:
  free(scratch);
  free(labels);
  free(pixels);
  unet_model_free(model);
  return rc;
}
