/*
 * Unit tests for Host header -> tunnel name (common/tnl_name.c), the
 * parsing the nginx module relies on.
 */

#include <string.h>

#include "tnl_name.h"
#include "tap.h"


static void
maps(const char *host, const char *domain, const char *want)
{
    char  out[TNL_NAME_MAX + 1];
    char  what[300];
    int   rc;

    snprintf(what, sizeof(what), "'%s' under '%s' -> '%s'", host, domain,
             want);
    out[0] = '\0';
    rc = tnl_host_to_name(host, strlen(host), domain, strlen(domain), out);
    tap_ok(rc == 0, what);
    tap_is_str(out, want, "  name");
}


static void
no_tunnel(const char *host, const char *domain, const char *why)
{
    char  out[TNL_NAME_MAX + 1];
    char  what[300];

    snprintf(what, sizeof(what), "'%s' under '%s' is no tunnel (%s)", host,
             domain, why);
    tap_ok(tnl_host_to_name(host, strlen(host), domain, strlen(domain), out)
           == -1, what);
}


int
main(void)
{
    maps("myapp.localhost", "localhost", "myapp");
    maps("myapp.localhost:8080", "localhost", "myapp");
    maps("MyApp.LocalHost:8080", "localhost", "myapp");
    maps("myapp.localhost.", "localhost", "myapp");
    maps("myapp.localhost.:8080", "localhost", "myapp");
    maps("myapp.tunnel.example.com", "tunnel.example.com", "myapp");
    maps("a-1.tunnel.example.com", "Tunnel.Example.COM.", "a-1");

    no_tunnel("localhost", "localhost", "bare domain");
    no_tunnel("localhost:8080", "localhost", "bare domain with port");
    no_tunnel(".localhost", "localhost", "empty label");
    no_tunnel("a.b.localhost", "localhost", "two labels");
    no_tunnel("myapp.example.com", "localhost", "other domain");
    no_tunnel("myapplocalhost", "localhost", "no dot before domain");
    no_tunnel("xmyapp.notlocalhost", "localhost", "suffix without dot");
    no_tunnel("bad_name.localhost", "localhost", "invalid label");
    no_tunnel("-x.localhost", "localhost", "leading hyphen");
    no_tunnel("myapp.localhost:80a", "localhost", "bad port");
    no_tunnel("[::1]:8080", "localhost", "IPv6 literal");
    no_tunnel("127.0.0.1:8080", "localhost", "IPv4 literal");
    no_tunnel("", "localhost", "empty Host");
    no_tunnel("myapp.localhost", "", "no domain configured");

    return tap_done();
}
