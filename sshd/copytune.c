/*
 * Copies on AMD Zen: see copytune.h.
 */

#include <cpuid.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
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

/*
 * Set for the one re-execution: whatever glibc makes of GLIBC_TUNABLES in
 * the new image (it may drop a tunable, or all of them), it is never
 * re-executed again
 */
#define TNL_COPYTUNE_MARK   "TNL_COPYTUNE_EXECUTED"


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


/*
 * The value of glibc.cpu.x86_rep_movsb_threshold in a GLIBC_TUNABLES
 * string ("name=value:name=value"), matched as a whole name, or NULL
 */
static const char *
tnl_copytune_find(const char *tunables)
{
    static const char  name[] = TNL_COPYTUNE_NAME "=";

    const char  *p;

    for (p = tunables; p != NULL && *p != '\0'; p = strchr(p, ':')) {
        if (*p == ':') {
            p++;
        }

        if (strncmp(p, name, sizeof(name) - 1) == 0) {
            return p + sizeof(name) - 1;
        }
    }

    return NULL;
}


/*
 * The executable's path: the process keeps its name ("tunneld" in ps,
 * pgrep, top; exec names it after the file run, and /proc/self/exe would
 * make it "exe").  /proc/self/exe itself if the file was replaced since
 * (an upgrade while running: " (deleted)") or the link cannot be read.
 */
static const char *
tnl_copytune_self(char *buf, size_t size)
{
    static const char  deleted[] = " (deleted)";

    ssize_t  n;

    n = readlink("/proc/self/exe", buf, size - 1);

    if (n <= 0 || (size_t) n >= size - 1) {
        return "/proc/self/exe";
    }

    buf[n] = '\0';

    if ((size_t) n >= sizeof(deleted) - 1
        && strcmp(buf + n - (sizeof(deleted) - 1), deleted) == 0)
    {
        return "/proc/self/exe";
    }

    return buf;
}


int
tnl_copytune_exec(char **argv)
{
    const char  *old;
    char        *env, *saved;
    char         self[PATH_MAX];
    size_t       len;
    int          err;

    if (getenv(TNL_COPYTUNE_MARK) != NULL) {
        (void) unsetenv(TNL_COPYTUNE_MARK);   /* the re-executed image */
        return 0;
    }

    /*
     * A secure execution (setuid, or file capabilities as with
     * `setcap cap_net_bind_service+ep tunneld`): glibc ignores or drops
     * this tunable there, so a re-execution would change nothing
     */
    if (getauxval(AT_SECURE)) {
        return 0;
    }

    old = getenv("GLIBC_TUNABLES");

    /* set by the operator */
    if (old != NULL && tnl_copytune_find(old) != NULL) {
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

    if (setenv("GLIBC_TUNABLES", env, 1) == 0
        && setenv(TNL_COPYTUNE_MARK, "1", 1) == 0)
    {
        (void) execv(tnl_copytune_self(self, sizeof(self)), argv);
    }

    /* still here: run on as we are, with the environment as it was */

    err = errno;

    (void) unsetenv(TNL_COPYTUNE_MARK);

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
    const char  *env, *value;
    size_t       n;

    env = getenv("GLIBC_TUNABLES");
    if (env == NULL || !tnl_copytune_amd()) {
        return NULL;
    }

    value = tnl_copytune_find(env);
    n = sizeof(TNL_COPYTUNE_VALUE) - 1;

    if (value == NULL || strncmp(value, TNL_COPYTUNE_VALUE, n) != 0
        || (value[n] != '\0' && value[n] != ':'))
    {
        return NULL;
    }

    return env;
}
