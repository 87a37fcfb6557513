/*
 * libFuzzer target: device-flow user codes as a person types them
 * (common/tnl_code.c), in the web admin and in tunnelctl.  An accepted
 * code must be exactly 8 letters of the alphabet, and showing it must
 * give XXXX-XXXX that folds back to the same code.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tnl_code.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         out[TNL_CODE_LEN + 1], shown[TNL_CODE_SHOWN + 1];
    char         again[TNL_CODE_LEN + 1];
    size_t       i;
    const char  *err;

    err = NULL;

    if (tnl_code_normalize((const char *) data, size, out, &err) != 0) {
        if (err == NULL || out[0] != '\0') {
            abort();
        }
        return 0;
    }

    if (strlen(out) != TNL_CODE_LEN) {
        abort();
    }

    for (i = 0; i < TNL_CODE_LEN; i++) {
        if (strchr(TNL_CODE_ALPHABET, out[i]) == NULL || out[i] == '\0') {
            abort();
        }
    }

    tnl_code_show(out, shown);

    if (strlen(shown) != TNL_CODE_SHOWN
        || tnl_code_normalize(shown, TNL_CODE_SHOWN, again, NULL) != 0
        || strcmp(out, again) != 0)
    {
        abort();
    }

    return 0;
}
