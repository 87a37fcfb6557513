/*
 * Copies on AMD Zen: see copytune.h.
 */

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copytune.h"


#define TNL_COPYTUNE_NAME   "glibc.cpu.x86_rep_movsb_threshold"

/*
 * Above any copy tunneld or libssh makes (packets are at most 256 KB):
 * REP MOVSB is never chosen; copies beyond glibc's non-temporal threshold
 * still take its non-temporal path, which is checked first
 */
#define TNL_COPYTUNE_VALUE  "1073741824"


static int
tnl_copytune_amd(void)
{
    unsigned int  level, ebx, ecx, edx;

    if (!__get_cpuid(0, &level, &ebx, &ecx, &edx)) {
        return 0;
    }

    /* "AuthenticAMD" in ebx, edx, ecx */
    return ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;
}


int
tnl_copytune_exec(char **argv)
{
    const char  *old;
    char        *env, *saved;
    size_t       len;
    int          err;

    old = getenv("GLIBC_TUNABLES");

    /* set by the operator, or by this function before the exec */
    if (old != NULL && strstr(old, TNL_COPYTUNE_NAME "=") != NULL) {
        return 0;
    }

    if (!tnl_copytune_amd()) {
        return 0;
    }

    saved = (old != NULL) ? strdup(old) : NULL;
    if (old != NULL && saved == NULL) {
        return -1;
    }

    len = (old != NULL ? strlen(old) + 1 : 0)
          + sizeof(TNL_COPYTUNE_NAME "=" TNL_COPYTUNE_VALUE);

    env = malloc(len);
    if (env == NULL) {
        free(saved);
        return -1;
    }

    snprintf(env, len, "%s%s" TNL_COPYTUNE_NAME "=" TNL_COPYTUNE_VALUE,
             old != NULL ? old : "", (old != NULL && *old) ? ":" : "");

    if (setenv("GLIBC_TUNABLES", env, 1) == 0) {
        (void) execv("/proc/self/exe", argv);
    }

    /* still here: run on as we are, with the environment as it was */

    err = errno;

    if (saved != NULL) {
        (void) setenv("GLIBC_TUNABLES", saved, 1);

    } else {
        (void) unsetenv("GLIBC_TUNABLES");
    }

    free(saved);
    free(env);
    errno = err;

    return -1;
}


const char *
tnl_copytune_setting(void)
{
    const char  *env;

    env = getenv("GLIBC_TUNABLES");

    if (env == NULL || !tnl_copytune_amd()
        || strstr(env, TNL_COPYTUNE_NAME "=" TNL_COPYTUNE_VALUE) == NULL)
    {
        return NULL;
    }

    return env;
}
