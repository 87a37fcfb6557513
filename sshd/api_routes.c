/*
 * The management API's route table: which handler serves a path, which
 * methods it allows (405 with Allow otherwise; HEAD goes where GET goes),
 * 404 for anything else.  Names in /tunnels/NAME are checked as tunnel
 * names here, once, so handlers only ever see a valid, folded name.
 */

#include <string.h>

#include "api_handlers.h"
#include "tnl_name.h"


static int
tnl_api_method_is(const tnl_api_request_t *r, const char *m)
{
    if (strcmp(r->method, m) == 0) {
        return 1;
    }

    return strcmp(m, "GET") == 0 && strcmp(r->method, "HEAD") == 0;
}


void
tnl_api_route(tnl_api_conn_t *c, const tnl_api_request_t *r)
{
    const char  *name, *err;
    char         folded[TNL_NAME_MAX + 1];

    if (strcmp(r->path, "/healthz") == 0) {
        if (!tnl_api_method_is(r, "GET")) {
            goto get_only;
        }
        tnl_api_healthz(c, r);
        return;
    }

    if (strcmp(r->path, "/metrics") == 0) {
        if (!tnl_api_method_is(r, "GET")) {
            goto get_only;
        }
        tnl_api_metrics(c, r);
        return;
    }

    if (strcmp(r->path, "/tunnels") == 0 || strcmp(r->path, "/tunnels/") == 0)
    {
        if (!tnl_api_method_is(r, "GET")) {
            goto get_only;
        }
        tnl_api_tunnels_list(c, r);
        return;
    }

    if (strncmp(r->path, "/tunnels/", 9) == 0) {
        name = r->path + 9;

        if (!tnl_api_method_is(r, "GET") && !tnl_api_method_is(r, "DELETE"))
        {
            tnl_api_error(c, 405, "method_not_allowed", "use GET to read a "
                          "tunnel or DELETE to close it",
                          "Allow: GET, HEAD, DELETE\r\n");
            return;
        }

        if (strchr(name, '/') != NULL
            || tnl_name_validate(name, strlen(name), folded, &err) == -1)
        {
            tnl_api_error(c, 400, "bad_name", "not a tunnel name: use one "
                          "DNS label (a-z, 0-9 and '-', at most 63 "
                          "characters)", NULL);
            return;
        }

        if (strcmp(r->method, "DELETE") == 0) {
            tnl_api_tunnel_delete(c, r, folded);
        } else {
            tnl_api_tunnel_get(c, r, folded);
        }
        return;
    }

    tnl_api_error(c, 404, "not_found", "no such API path: see "
                  "docs/API.md (/tunnels, /tunnels/NAME, /healthz, "
                  "/metrics)", NULL);
    return;

get_only:

    tnl_api_error(c, 405, "method_not_allowed", "this path only answers GET",
                  "Allow: GET, HEAD\r\n");
}
