/*
 * The log (see log.h).  Each line is formatted into a stack buffer and
 * written with one write(2), so lines from several processes sharing a
 * log file never interleave.  Control characters coming from clients
 * (names, request lines) are replaced by '?' so a line stays one line.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"


#define TNL_LOG_LINE  1024


static tnl_log_level_e  tnl_log_level = TNL_LOG_INFO;
static char             tnl_log_tag[48];

static const char  *tnl_log_names[] = { "error", "warn", "info", "debug" };


void
tnl_log_set_level(tnl_log_level_e level)
{
    tnl_log_level = level;
}


void
tnl_log_set_tag(const char *tag)
{
    if (tag == NULL || tag[0] == '\0') {
        tnl_log_tag[0] = '\0';
        return;
    }

    snprintf(tnl_log_tag, sizeof(tnl_log_tag), "%s ", tag);
}


int
tnl_log_enabled(tnl_log_level_e level)
{
    return level <= tnl_log_level;
}


void
tnl_log(tnl_log_level_e level, const char *fmt, ...)
{
    char     line[TNL_LOG_LINE];
    size_t   len, i, start;
    int      n;
    va_list  ap;

    if (level > tnl_log_level) {
        return;
    }

    n = snprintf(line, sizeof(line), "tunneld: %s: %s", tnl_log_names[level],
                 tnl_log_tag);
    if (n < 0) {
        return;
    }

    start = (size_t) n;

    va_start(ap, fmt);
    n = vsnprintf(line + start, sizeof(line) - start - 1, fmt, ap);
    va_end(ap);

    if (n < 0) {
        return;
    }

    len = start + (size_t) n;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }

    for (i = start; i < len; i++) {
        if ((unsigned char) line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = '?';
        }
    }

    line[len++] = '\n';

    (void) !write(STDERR_FILENO, line, len);
}
