/* The C header is self-contained and guarded: including it twice, alone, compiles cleanly
   under -std=c99 -Wall -Wextra -Werror -pedantic. */
#include "unet.h"
#include "unet.h"

int main(void) {
  unet_status s = UNET_OK;
  unet_output k = UNET_OUTPUT_LABELS_U16;
  unet_padding p = UNET_PADDING_SAME;
  unet_model *m = NULL;
  unet_model_free(m);
  return (int)s + (int)k + (int)p - 4 + (unet_version()[0] == '\0');
}
