/*
 * libFuzzer target: tunneld's request-log HTTP observer (sshd/httplog.c),
 * which sees the bytes of every public request and of every answer a
 * user's backend sends.  The input is a script: a control byte says which
 * way the next bytes go (bit 0: 0 request, 1 response), how many
 * (bits 1-7, plus one) and how much time passes; 0xff closes the stream.
 * Checked besides the sanitizers: records never count more bytes than
 * went by, nothing is reported after close, and shown paths and methods
 * are printable.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httplog.h"


typedef struct {
    uint64_t  up;
    uint64_t  down;
    unsigned  records;
    unsigned  closed:1;
} fuzz_sum_t;


static void
check_text(const char *s, size_t max)
{
    size_t  i;

    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f
            || i > max)
        {
            abort();
        }
    }
}


static void
record(void *data, const tnl_httplog_record_t *rec)
{
    fuzz_sum_t  *sum = data;

    if (sum->closed || rec->kind > TNL_HTTPLOG_RAW
        || rec->status < 0 || rec->status > 599)
    {
        abort();
    }

    check_text(rec->method, TNL_HTTPLOG_METHOD_MAX);
    check_text(rec->path, TNL_HTTPLOG_PATH_MAX + 3);

    sum->up += rec->up;
    sum->down += rec->down;
    sum->records++;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         i, n;
    uint8_t        c;
    uint64_t       now, up, down;
    fuzz_sum_t     sum;
    tnl_httplog_t  h;

    memset(&sum, 0, sizeof(sum));
    tnl_httplog_init(&h, record, &sum);

    now = 1000;
    up = 0;
    down = 0;
    i = 0;

    while (i < size) {
        c = data[i++];

        if (c == 0xff) {
            break;
        }

        n = (size_t) (c >> 1) + 1;
        if (n > size - i) {
            n = size - i;
        }

        if (c & 1) {
            tnl_httplog_response(&h, (const char *) data + i, n, now);
            down += n;

        } else {
            tnl_httplog_request(&h, (const char *) data + i, n, now);
            up += n;
        }

        i += n;
        now += c % 7;
    }

    (void) tnl_httplog_close(&h, now);
    sum.closed = 1;

    if (sum.up > up || sum.down > down) {
        abort();
    }

    /* closed: later bytes and a second close report nothing */
    tnl_httplog_request(&h, "GET / HTTP/1.1\r\n\r\n", 18, now);
    if (tnl_httplog_close(&h, now) != 0) {
        abort();
    }

    return 0;
}
