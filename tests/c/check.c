/* Helpers of the libunet C test programs (see check.h). */
#include "check.h"

/* Prints the calling thread's libunet detail message. */
void print_last_error(void) {
  char msg[512];
  size_t n = 0;
  if (unet_last_error(msg, sizeof msg, &n) == UNET_OK) {
    fprintf(stderr, "  last error: %s\n", msg);
  }
}

/* Reads a whole file into malloc'd memory; exits on failure. */
unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  CHECK(fseek(f, 0, SEEK_END) == 0);
  n = ftell(f);
  CHECK(n >= 0);
  CHECK(fseek(f, 0, SEEK_SET) == 0);
  buf = (unsigned char *)malloc((size_t)n + 1);
  CHECK(buf != NULL);
  CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* Joins a directory and a file name into a static buffer (one use at a time). */
const char *join(const char *dir, const char *name) {
  static char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s", dir, name);
  CHECK(n > 0 && (size_t)n < sizeof path);
  return path;
}

