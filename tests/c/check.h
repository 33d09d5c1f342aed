/* Tiny assertion helpers shared by the libunet C test programs (C99). */
#ifndef UNET_TEST_CHECK_H
#define UNET_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet.h"

/* Prints the calling thread's libunet detail message to stderr. */
void print_last_error(void);
/* Reads a whole file into malloc'd memory; exits on failure. */
unsigned char *read_all(const char *path, size_t *len);
/* Joins a directory and a file name into a static buffer (one use at a time). */
const char *join(const char *dir, const char *name);

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

/* Calls `call` and fails unless it returns `expected`. */
#define EXPECT(expected, call)                                                   \
  do {                                                                           \
    unet_status got_ = (call);                                                   \
    if (got_ != (expected)) {                                                    \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__, \
              __LINE__, #call, (int)got_, unet_status_message((int)got_),        \
              (int)(expected), unet_status_message((int)(expected)));            \
      print_last_error();                                                        \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

#define OK(call) EXPECT(UNET_OK, call)

#endif /* UNET_TEST_CHECK_H */
