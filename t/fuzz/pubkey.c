/*
 * libFuzzer target: tunnelctl's public key parser (tunnelctl/pubkey.c,
 * 'tunnelctl key add' reads a file an operator was handed), with libssh
 * doing the final import as in the product.  The text is given as
 * tunnelctl's callers give it: len bytes followed by a NUL (they read
 * the file into a buffer one byte larger).  An accepted key has a
 * fingerprint and a comment without control characters.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelctl.h"


/* tunnelctl's reporting function (main.c): messages are not checked */
void
tnl_ctl_error(const char *fmt, ...)
{
    (void) fmt;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char              *text;
    size_t             i;
    tnl_ctl_pubkey_t   key;

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }

    memcpy(text, data, size);
    text[size] = '\0';

    if (tnl_ctl_pubkey_parse(text, size, "fuzz", &key) == 0) {
        if (strncmp(key.fingerprint, "SHA256:", 7) != 0
            || key.base64 == NULL || key.comment == NULL)
        {
            abort();
        }

        for (i = 0; key.comment[i] != '\0'; i++) {
            if ((unsigned char) key.comment[i] < 0x20
                && key.comment[i] != '\t')
            {
                abort();
            }
        }

        tnl_ctl_pubkey_free(&key);
    }

    free(text);

    return 0;
}
