/*
 * The log (see log.h).  Each line is formatted into a stack buffer and
 * written with one write(2), so lines from several processes sharing a
 * log file never interleave.  Control characters coming from clients
 * (names, request lines) are replaced by '?' so a line stays one line;
 * in JSON lines bytes that are not UTF-8 are replaced too, so a strict
 * parser never rejects a line because of what a client sent.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"


#define TNL_LOG_LINE  1024


static tnl_log_level_e   tnl_log_level = TNL_LOG_INFO;
static tnl_log_format_e  tnl_log_format = TNL_LOG_TEXT;
static char              tnl_log_role[16];
static long              tnl_log_pid;

static const char  *tnl_log_names[] = { "error", "warn", "info", "debug" };


void
tnl_log_set_level(tnl_log_level_e level)
{
    tnl_log_level = level;
}


int
tnl_log_set_format(const char *name)
{
    if (strcmp(name, "text") == 0) {
        tnl_log_format = TNL_LOG_TEXT;
        return 0;
    }

    if (strcmp(name, "json") == 0) {
        tnl_log_format = TNL_LOG_JSON;
        return 0;
    }

    return -1;
}


void
tnl_log_set_process(const char *role)
{
    tnl_log_pid = (long) getpid();

    if (role == NULL) {
        tnl_log_role[0] = '\0';
        return;
    }

    snprintf(tnl_log_role, sizeof(tnl_log_role), "%s", role);
}


int
tnl_log_enabled(tnl_log_level_e level)
{
    return level <= tnl_log_level;
}


/* length of the valid UTF-8 sequence at p (at most n bytes), or 0 */
static size_t
tnl_log_utf8_len(const unsigned char *p, size_t n)
{
    size_t  len, i;

    if (p[0] < 0x80) {
        return 1;
    }

    len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3
          : (p[0] & 0xf8) == 0xf0 ? 4 : 0;

    if (len == 0 || len > n || p[0] == 0xc0 || p[0] == 0xc1 || p[0] > 0xf4) {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return len;
}


/*
 * Appends msg to out as the inside of a JSON string; stops before the
 * end of out (size includes room the caller keeps for the closing).
 */
static size_t
tnl_log_json_escape(char *out, size_t size, const char *msg, size_t n)
{
    const unsigned char  *p = (const unsigned char *) msg;
    size_t                o = 0, i = 0, len;

    while (i < n) {
        if (p[i] == '"' || p[i] == '\\') {
            if (o + 2 > size) {
                break;
            }
            out[o++] = '\\';
            out[o++] = (char) p[i++];
            continue;
        }

        len = tnl_log_utf8_len(p + i, n - i);

        if (len == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            if (o + 1 > size) {
                break;
            }
            out[o++] = '?';
            i++;
            continue;
        }

        if (o + len > size) {
            break;
        }

        memcpy(out + o, p + i, len);
        o += len;
        i += len;
    }

    return o;
}


static size_t
tnl_log_json(char *line, size_t size, tnl_log_level_e level, const char *msg,
    size_t n)
{
    struct timeval  tv;
    struct tm       tm;
    size_t          len;
    int             k;

    (void) gettimeofday(&tv, NULL);
    (void) gmtime_r(&tv.tv_sec, &tm);

    k = snprintf(line, size, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
                 "\"level\":\"%s\",", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long) tv.tv_usec / 1000, tnl_log_names[level]);
    if (k < 0 || (size_t) k >= size) {
        return 0;
    }
    len = (size_t) k;

    if (tnl_log_role[0] != '\0') {
        k = snprintf(line + len, size - len, "\"proc\":\"%s\",", tnl_log_role);
        if (k < 0 || (size_t) k >= size - len) {
            return 0;
        }
        len += (size_t) k;
    }

    k = snprintf(line + len, size - len, "\"pid\":%ld,\"msg\":\"",
                 tnl_log_pid ? tnl_log_pid : (long) getpid());
    if (k < 0 || (size_t) k >= size - len) {
        return 0;
    }
    len += (size_t) k;

    /* room for "}\n */
    len += tnl_log_json_escape(line + len, size - len - 3, msg, n);

    line[len++] = '"';
    line[len++] = '}';
    line[len++] = '\n';

    return len;
}


void
tnl_log(tnl_log_level_e level, const char *fmt, ...)
{
    char     msg[TNL_LOG_LINE], line[TNL_LOG_LINE + 256];
    size_t   len, i, start, n;
    int      k;
    va_list  ap;

    if (level > tnl_log_level) {
        return;
    }

    va_start(ap, fmt);
    k = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (k < 0) {
        return;
    }

    n = (size_t) k < sizeof(msg) ? (size_t) k : sizeof(msg) - 1;

    if (tnl_log_format == TNL_LOG_JSON) {
        len = tnl_log_json(line, sizeof(line), level, msg, n);
        if (len > 0) {
            (void) !write(STDERR_FILENO, line, len);
        }
        return;
    }

    if (tnl_log_role[0] != '\0') {
        k = snprintf(line, sizeof(line), "tunneld: %s: [%s:%ld] ",
                     tnl_log_names[level], tnl_log_role, tnl_log_pid);
    } else {
        k = snprintf(line, sizeof(line), "tunneld: %s: ",
                     tnl_log_names[level]);
    }

    if (k < 0) {
        return;
    }

    start = (size_t) k;
    len = start + n;
    if (len > TNL_LOG_LINE - 2) {
        len = TNL_LOG_LINE - 2;          /* the line as long as it was */
    }

    memcpy(line + start, msg, len - start);

    for (i = start; i < len; i++) {
        if ((unsigned char) line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = '?';
        }
    }

    line[len++] = '\n';

    (void) !write(STDERR_FILENO, line, len);
}
