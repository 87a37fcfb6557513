/*
 * Device-flow user codes (issue 10, after RFC 8628 section 6.1): 8 letters
 * from an alphabet without vowels or look-alikes, shown as XXXX-XXXX.
 * What people type is folded here into the 8 upper-case letters whose
 * SHA-256 sql/005_activation.sql stores, by the web admin and tunnelctl
 * alike (tunneld draws codes from the same alphabet).  Pure functions: no
 * allocation, no I/O, no library.
 */

#ifndef TNL_CODE_H
#define TNL_CODE_H

#include <stddef.h>


#define TNL_CODE_ALPHABET  "BCDFGHJKLMNPQRSTVWXZ"
#define TNL_CODE_LEN       8           /* letters, without the dash */
#define TNL_CODE_SHOWN     9           /* XXXX-XXXX */


/*
 * Folds a typed code: ASCII case ignored, '-' and spaces (' ', '\t')
 * anywhere ignored; anything else, or a count of letters other than 8,
 * refuses it.  On success writes the 8 upper-case letters and a NUL to
 * out (TNL_CODE_LEN + 1 bytes) and returns 0; else returns -1 and sets
 * *err (if err is not NULL) to a sentence for a person.
 */
int tnl_code_normalize(const char *in, size_t len, char *out,
    const char **err);

/* the 8 letters of a normalised code as XXXX-XXXX (TNL_CODE_SHOWN + 1) */
void tnl_code_show(const char *code, char *out);

#endif /* TNL_CODE_H */
