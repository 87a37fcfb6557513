/*
 * tunnelctl tunnels / kick: the live tunnels of the cluster and closing
 * one, through tunneld's management API (api.c), the same path as the web
 * dashboard.  The API answers JSON (jansson parses it here); the table
 * shows it in human units, --json passes it through unchanged.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "tunnelctl.h"


#define TNL_CTL_TUNNEL_COLS  9


typedef struct {
    json_t  *list;
    char     cells[TNL_CTL_TUNNEL_COLS][64];
    int      row;                  /* row the cells hold, or -1 */
} tnl_ctl_tunnels_t;


static void
tnl_ctl_human_bytes(json_int_t n, char *out, size_t size)
{
    static const char  *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double              v = (double) n;
    int                 u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }

    if (u == 0) {
        snprintf(out, size, "%" JSON_INTEGER_FORMAT " B", n);
    } else {
        snprintf(out, size, "%.1f %s", v, units[u]);
    }
}


static void
tnl_ctl_human_age(json_int_t since, char *out, size_t size)
{
    long long  s;

    if (since <= 0) {
        snprintf(out, size, "-");
        return;
    }

    s = (long long) time(NULL) - (long long) since;
    if (s < 0) {
        s = 0;
    }

    if (s < 120) {
        snprintf(out, size, "%llds", s);
    } else if (s < 7200) {
        snprintf(out, size, "%lldm", s / 60);
    } else if (s < 172800) {
        snprintf(out, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    } else {
        snprintf(out, size, "%lldd", s / 86400);
    }
}


static const char *
tnl_ctl_str(json_t *o, const char *key)
{
    const char  *v = json_string_value(json_object_get(o, key));

    return v ? v : "";
}


static const char *
tnl_ctl_tunnels_cell(void *data, int row, int col)
{
    tnl_ctl_tunnels_t  *t = data;
    json_t             *o;
    char              (*c)[64] = t->cells;

    if (t->row != row) {
        o = json_array_get(t->list, (size_t) row);
        t->row = row;

        snprintf(c[0], 64, "%s", tnl_ctl_str(o, "name"));
        snprintf(c[1], 64, "%s", tnl_ctl_str(o, "user"));
        snprintf(c[2], 64, "%s", tnl_ctl_str(o, "client"));
        snprintf(c[3], 64, "%s", tnl_ctl_str(o, "node"));
        tnl_ctl_human_age(json_integer_value(
            json_object_get(o, "started_unix")), c[4], 64);
        tnl_ctl_human_bytes(json_integer_value(
            json_object_get(o, "bytes_in")), c[5], 64);
        tnl_ctl_human_bytes(json_integer_value(
            json_object_get(o, "bytes_out")), c[6], 64);
        snprintf(c[7], 64, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(o, "requests")));
        tnl_ctl_human_age(json_integer_value(
            json_object_get(o, "last_request_unix")), c[8], 64);
        if (strcmp(c[8], "-") != 0) {
            strncat(c[8], " ago", 63 - strlen(c[8]));
        }
    }

    return c[col];
}


/* "%XX" for everything but unreserved characters */
static void
tnl_ctl_urlencode(const char *in, char *out, size_t size)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             o = 0;

    for ( ; *in && o + 4 < size; in++) {
        unsigned char  ch = (unsigned char) *in;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'
            || ch == '.' || ch == '~')
        {
            out[o++] = (char) ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }

    out[o] = '\0';
}


/* the API's error message, or a fallback */
static void
tnl_ctl_api_failed(const char *body, int status, const char *what)
{
    json_t  *o;

    o = json_loads(body ? body : "", 0, NULL);

    if (o != NULL && json_is_string(json_object_get(o, "message"))) {
        tnl_ctl_error("cannot %s: %s", what, tnl_ctl_str(o, "message"));
    } else {
        tnl_ctl_error("cannot %s: tunneld answered HTTP %d", what, status);
    }

    json_decref(o);
}


int
tnl_ctl_tunnels(int argc, char **argv)
{
    tnl_ctl_tunnels_t   t;
    const char         *user = NULL;
    char                path[256], enc[160], *body;
    json_t             *o;
    int                 i, as_json = 0, status, n;

    static const char  *headers[] = { "NAME", "USER", "CLIENT", "NODE", "UP",
                                      "IN", "OUT", "REQUESTS", "LAST",
                                      NULL };

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
            user = argv[++i];
            if (!tnl_ctl_user_name_check(user)) {
                return TNL_CTL_USAGE;
            }
        } else {
            return tnl_ctl_usage_error("'tunnels' takes [--user USER] "
                                       "[--json], not \"%s\"", argv[i]);
        }
    }

    if (user != NULL) {
        tnl_ctl_urlencode(user, enc, sizeof(enc));
        snprintf(path, sizeof(path), "/tunnels?user=%s", enc);
    } else {
        snprintf(path, sizeof(path), "/tunnels");
    }

    status = tnl_ctl_api("GET", path, NULL, &body);
    if (status < 0) {
        return TNL_CTL_FAIL;
    }

    if (status != 200) {
        tnl_ctl_api_failed(body, status, "list the tunnels");
        free(body);
        return TNL_CTL_FAIL;
    }

    o = json_loads(body, 0, NULL);
    if (o == NULL || !json_is_array(json_object_get(o, "tunnels"))) {
        tnl_ctl_error("cannot list the tunnels: tunneld's answer is not the "
                      "expected JSON");
        json_decref(o);
        free(body);
        return TNL_CTL_FAIL;
    }

    if (json_object_get(o, "error") != NULL) {
        /* the stream was cut short: say so after what arrived */
        tnl_ctl_api_failed(body, status, "list every tunnel");
    }

    if (as_json) {
        fputs(body, stdout);
        json_decref(o);
        free(body);
        return TNL_CTL_OK;
    }

    t.list = json_object_get(o, "tunnels");
    t.row = -1;
    n = (int) json_array_size(t.list);

    if (n == 0) {
        if (user != NULL) {
            tnl_ctl_error("user \"%s\" has no live tunnel", user);
        } else {
            tnl_ctl_error("no tunnel is live");
        }
    } else {
        tnl_ctl_table_print_cells(TNL_CTL_TUNNEL_COLS, n, headers,
                                  tnl_ctl_tunnels_cell, &t);
    }

    json_decref(o);
    free(body);

    return TNL_CTL_OK;
}


int
tnl_ctl_kick(int argc, char **argv)
{
    const char  *name = NULL, *reason = NULL;
    char         path[128], by[64], *body, *req;
    json_t      *o, *r;
    int          i, whole = 0, status, rc;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (strcmp(argv[i], "--session") == 0) {
            whole = 1;
        } else if (argv[i][0] != '-' && name == NULL) {
            name = argv[i];
        } else {
            return tnl_ctl_usage_error("'kick' takes NAME [--reason TEXT] "
                                       "[--session], not \"%s\"", argv[i]);
        }
    }

    if (name == NULL) {
        return tnl_ctl_usage_error("'kick' takes the NAME of a live tunnel");
    }

    if (strlen(name) > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789-") != strlen(name))
    {
        tnl_ctl_error("\"%s\" is not a tunnel name (a-z, 0-9 and '-', at "
                      "most 63 characters)", name);
        return TNL_CTL_FAIL;
    }

    if (reason != NULL && strlen(reason) > 800) {
        tnl_ctl_error("the reason is too long: at most 200 characters");
        return TNL_CTL_FAIL;
    }

    snprintf(by, sizeof(by), "tunnelctl (%s)",
             getenv("USER") ? getenv("USER") : "operator");

    r = json_pack("{s:s?, s:b, s:s}", "reason", reason, "session", whole,
                  "by", by);
    req = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (req == NULL) {
        tnl_ctl_error("out of memory");
        return TNL_CTL_FAIL;
    }

    snprintf(path, sizeof(path), "/tunnels/%s", name);
    status = tnl_ctl_api("DELETE", path, req, &body);
    free(req);

    if (status < 0) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_OK;
    o = json_loads(body, 0, NULL);

    if (status == 200 && json_is_true(json_object_get(o, "found"))) {
        printf("closed %s \"%s\" of user \"%s\" (node \"%s\")\n",
               whole ? "the session of tunnel" : "tunnel", name,
               tnl_ctl_str(o, "user"), tnl_ctl_str(o, "node"));

    } else if (status == 404) {
        tnl_ctl_error("no live tunnel is named \"%s\" ('tunnelctl tunnels' "
                      "lists them)", name);
        rc = TNL_CTL_FAIL;

    } else {
        tnl_ctl_api_failed(body, status, "close the tunnel");
        rc = TNL_CTL_FAIL;
    }

    json_decref(o);
    free(body);

    return rc;
}
