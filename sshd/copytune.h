/*
 * Copies on AMD Zen: glibc 2.36 (Debian 12) copies blocks from 2 KB up
 * with REP MOVSB, which these cores run about 15 times slower when the
 * destination lies 1-15 bytes past the source modulo 64 (measured here:
 * 3 GB/s against 50).  libssh hits that case on every packet it receives
 * (the payload lands 4 bytes into a string of its own: channel_rcv_data),
 * a quarter of tunneld's CPU in a download.  tunneld therefore re-executes
 * itself once at start with glibc's tunable
 * glibc.cpu.x86_rep_movsb_threshold raised, so that glibc copies with
 * vector loops instead.  An operator's own setting of that tunable is
 * kept.
 * See docs/INTERNALS.md, "Copies on AMD Zen".
 */

#ifndef TNL_COPYTUNE_H
#define TNL_COPYTUNE_H

/*
 * Called first in main: returns only if no re-execution was needed (not
 * an AMD processor, the tunable already set) or possible (the error is
 * then in errno, and copies stay as they were)
 */
int tnl_copytune_exec(char **argv);

/*
 * GLIBC_TUNABLES as tunneld runs with it, if it holds tunneld's value;
 * else NULL (for the log)
 */
const char *tnl_copytune_setting(void);

#endif /* TNL_COPYTUNE_H */
