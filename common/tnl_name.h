/*
 * Tunnel names and Host headers: pure functions shared by tunneld, tunnelctl
 * and the nginx module.  No allocation, no I/O, no library dependency, so the
 * same object file builds into an nginx module and into the daemon.
 */

#ifndef TNL_NAME_H
#define TNL_NAME_H

#include <stddef.h>


#define TNL_NAME_MAX  63

/*
 * Names nobody may open or reserve unless the operator configures another
 * list (tunneld --reserved-names, tunnel_admin_reserved_names): the host
 * names operators put beside a tunnel domain.  Deliberately short: every
 * entry is a name a user cannot have.
 */
#define TNL_NAME_DEFAULT_RESERVED                                           \
    "www,admin,api,mail,smtp,imap,pop,ftp,ssh,ns,ns1,ns2,dns,mx,root,"     \
    "static,assets,cdn,status,dashboard,login,auth,account,tunnel,"        \
    "tunnels,localhost"


/*
 * Validates a tunnel name as one DNS label (a-z 0-9 and '-', 1..63 chars, no
 * leading or trailing '-') after folding ASCII case.  On success writes the
 * folded, NUL-terminated name to out (TNL_NAME_MAX + 1 bytes) and returns 0;
 * on failure returns -1 and, if err is not NULL, points it to a static
 * sentence a person can act on.
 */
int tnl_name_validate(const char *in, size_t len, char *out, const char **err);

/*
 * Is name (already folded) on the comma-separated reserved list?  Returns 1
 * when it is, 0 when not.  An empty or NULL list reserves nothing.
 */
int tnl_name_is_reserved(const char *name, const char *list);

/*
 * Extracts the tunnel name from a Host header value for the given domain:
 * "MyApp.Example.com:8080." -> "myapp" with domain "example.com".  Handles a
 * port, upper case, a trailing dot and IPv6 literals (never a tunnel).
 * Returns 0 and writes the folded name to out (TNL_NAME_MAX + 1 bytes);
 * returns -1 when host is not exactly one valid label under domain (the bare
 * domain, a deeper subdomain, another domain, a malformed host).
 */
int tnl_host_to_name(const char *host, size_t len, const char *domain,
    size_t domain_len, char *out);

#endif /* TNL_NAME_H */
