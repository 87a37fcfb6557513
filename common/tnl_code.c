/*
 * Device-flow user codes: folding what a person typed into the stored
 * form (see tnl_code.h).  The alphabet check comes before any hashing, so
 * a code with a vowel, a digit or a symbol is refused with a reason and
 * never looked up (nor counted as a guess).
 */

#include <string.h>

#include "tnl_code.h"


int
tnl_code_normalize(const char *in, size_t len, char *out, const char **err)
{
    size_t          i, n;
    unsigned char   c;
    const char     *why;

    n = 0;
    why = NULL;

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];

        if (c == '-' || c == ' ' || c == '\t') {
            continue;
        }

        if (c >= 'a' && c <= 'z') {
            c = (unsigned char) (c - 'a' + 'A');
        }

        if (c < 'A' || c > 'Z' || strchr(TNL_CODE_ALPHABET, c) == NULL) {
            why = "A code has letters only, and no vowels (B C D F G H J K "
                  "L M N P Q R S T V W X Z): type it as your terminal "
                  "shows it, e.g. WDJB-MJHT.";
            goto invalid;
        }

        if (n == TNL_CODE_LEN) {
            why = "A code has 8 letters, e.g. WDJB-MJHT: this is too long.";
            goto invalid;
        }

        out[n++] = (char) c;
    }

    if (n == 0) {
        why = "Type the code your terminal shows, e.g. WDJB-MJHT.";
        goto invalid;
    }

    if (n < TNL_CODE_LEN) {
        why = "A code has 8 letters, e.g. WDJB-MJHT: this is too short.";
        goto invalid;
    }

    out[n] = '\0';

    return 0;

invalid:

    out[0] = '\0';

    if (err != NULL) {
        *err = why;
    }

    return -1;
}


void
tnl_code_show(const char *code, char *out)
{
    memcpy(out, code, 4);
    out[4] = '-';
    memcpy(out + 5, code + 4, 4);
    out[TNL_CODE_SHOWN] = '\0';
}
