/*
 * tnl-memcpy-align: how fast this machine's glibc copies a block, for
 * every offset of source and destination within a 64-byte line (issue 13,
 * docs/INTERNALS.md "Copies on AMD Zen").  Prints one table in GB/s, rows
 * the source offset, columns the destination offset, both in steps of 4,
 * and the slowest and fastest cell.  Run it as is and under
 * GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824 (what
 * tunneld runs with on an AMD processor) to compare:
 *
 *   build/bench/bin/tnl-memcpy-align [SIZE]        (default 32768)
 *
 * Each cell copies at least 256 MB, with the same two buffers (warm in
 * the cache): it measures the copy itself, not memory.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static double
tnl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    size_t          size, total;
    unsigned char  *src, *dst;
    const char     *tunables;
    double          t, gbs, lo, hi;
    long            i, iters;
    int             so, dof, lo_s, lo_d, hi_s, hi_d;

    size = (argc > 1) ? strtoul(argv[1], NULL, 10) : 32768;
    if (size == 0 || size > (16 << 20)) {
        fprintf(stderr, "usage: tnl-memcpy-align [SIZE (1..16777216)]\n");
        return 2;
    }

    src = aligned_alloc(4096, size + 4096);
    dst = aligned_alloc(4096, size + 4096);
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "tnl-memcpy-align: out of memory\n");
        return 1;
    }

    memset(src, 0x5a, size + 4096);
    memset(dst, 0xa5, size + 4096);

    iters = (long) ((256 << 20) / size) + 1;
    total = size * (size_t) iters;

    tunables = getenv("GLIBC_TUNABLES");
    printf("memcpy of %zu bytes, GB/s; GLIBC_TUNABLES=%s\n", size,
           tunables ? tunables : "(unset)");
    printf("src\\dst");
    for (dof = 0; dof < 64; dof += 4) {
        printf(" %4d", dof);
    }
    printf("\n");

    lo = 1e30;
    hi = 0;
    lo_s = lo_d = hi_s = hi_d = 0;

    for (so = 0; so < 64; so += 4) {
        printf("%7d", so);

        for (dof = 0; dof < 64; dof += 4) {
            t = tnl_now();

            for (i = 0; i < iters; i++) {
                memcpy(dst + dof, src + so, size);
                __asm__ volatile ("" : : "r" (dst) : "memory");
            }

            gbs = total / (tnl_now() - t) / 1e9;
            printf(" %4.0f", gbs);

            if (gbs < lo) {
                lo = gbs;
                lo_s = so;
                lo_d = dof;
            }

            if (gbs > hi) {
                hi = gbs;
                hi_s = so;
                hi_d = dof;
            }
        }

        printf("\n");
        fflush(stdout);
    }

    printf("slowest %.1f GB/s (src+%d, dst+%d), fastest %.1f GB/s "
           "(src+%d, dst+%d)\n", lo, lo_s, lo_d, hi, hi_s, hi_d);

    free(src);
    free(dst);

    return 0;
}
