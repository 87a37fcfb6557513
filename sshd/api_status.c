/*
 * GET /healthz and GET /metrics (Prometheus text format 0.0.4).  Both
 * answer at once from this worker's view of its connections and the
 * shared counters (metrics.h); neither touches Redis or PostgreSQL.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_handlers.h"
#include "db.h"
#include "metrics.h"
#include "routes.h"
#include "server.h"


void
tnl_api_healthz(tnl_api_conn_t *c, const tnl_api_request_t *r)
{
    int      redis, pg;
    json_t  *o;

    (void) r;

    redis = tnl_routes_available();
    pg = tnl_db_is_up();

    o = json_pack("{s:s, s:s, s:s, s:s}",
                  "status", (redis && pg) ? "ok" : "degraded",
                  "redis", redis ? "up" : "down",
                  "postgres", pg ? "up" : "down",
                  "node", tnl_conf.node);

    if (!(redis && pg)) {
        json_object_set_new(o, "message", json_string(
            !redis && !pg ? "Redis and PostgreSQL are unreachable"
            : !redis ? "Redis is unreachable: new tunnels are refused"
            : "PostgreSQL is unreachable: key changes and audit rows wait"));
    }

    tnl_api_json(c, (redis && pg) ? 200 : 503, o);
}


typedef struct {
    tnl_metric_e   m;
    const char    *name;
    const char    *type;
    const char    *help;
    const char    *labels;    /* or NULL */
} tnl_api_metric_t;


static const tnl_api_metric_t  tnl_api_metrics_table[] = {
    { TNL_M_CONNECTIONS, "tunneld_connections_total", "counter",
      "SSH connections accepted", NULL },
    { TNL_M_HANDSHAKES, "tunneld_handshakes_total", "counter",
      "SSH key exchanges completed", NULL },
    { TNL_M_AUTH_OK, "tunneld_auth_total", "counter",
      "public key authentications, by result", "result=\"ok\"" },
    { TNL_M_AUTH_UNKNOWN_KEY, "tunneld_auth_failures_total", "counter",
      "refused authentications, by reason", "reason=\"unknown_key\"" },
    { TNL_M_AUTH_NOT_READY, "tunneld_auth_failures_total", NULL, NULL,
      "reason=\"not_ready\"" },
    { TNL_M_AUTH_OTHER, "tunneld_auth_failures_total", NULL, NULL,
      "reason=\"other_method\"" },
    { TNL_M_TUNNELS_OPENED, "tunneld_tunnels_opened_total", "counter",
      "tunnels that went up", NULL },
    { TNL_M_TUNNELS_REFUSED, "tunneld_tunnels_refused_total", "counter",
      "forward requests refused", NULL },
    { TNL_M_TUNNELS_KICKED, "tunneld_tunnels_kicked_total", "counter",
      "tunnels closed by an administrator", NULL },
    { TNL_M_BYTES_IN, "tunneld_received_bytes_total", "counter",
      "bytes from ssh clients to nginx (responses)", NULL },
    { TNL_M_BYTES_OUT, "tunneld_sent_bytes_total", "counter",
      "bytes from nginx to ssh clients (requests)", NULL },
    { TNL_M_STREAMS, "tunneld_streams_total", "counter",
      "connections from nginx served", NULL },
    { TNL_M_REQUESTS, "tunneld_requests_total", "counter",
      "HTTP requests seen", NULL },
    { TNL_M_STARTUPS_FULL, "tunneld_startups_refused_total", "counter",
      "connections closed at accept, by the limit reached",
      "reason=\"max_startups\"" },
    { TNL_M_STARTUPS_SOURCE, "tunneld_startups_refused_total", NULL, NULL,
      "reason=\"per_source\"" },
    { TNL_M_LOGIN_GRACE_EXPIRED, "tunneld_login_grace_expired_total",
      "counter", "connections closed unauthenticated after --login-grace",
      NULL },
    { TNL_M_STARTUPS_EVICTED, "tunneld_startups_evicted_total", "counter",
      "unauthenticated connections closed for a newcomer from an address "
      "holding fewer (--max-startups full)", NULL },
    { TNL_M_ALIVE_PROBES, "tunneld_alive_probes_total", "counter",
      "client-alive requests (keepalive@openssh.com, want-reply) sent", NULL },
    { TNL_M_TUNNELS_UP, "tunneld_tunnels", "gauge",
      "tunnels up on this daemon", NULL },
    { TNL_M_SESSIONS, "tunneld_sessions", "gauge",
      "SSH sessions on this daemon", NULL },
    { TNL_M_UNAUTHENTICATED, "tunneld_unauthenticated", "gauge",
      "SSH connections not authenticated yet", NULL },
};


void
tnl_api_metrics(tnl_api_conn_t *c, const tnl_api_request_t *r)
{
    const tnl_api_metric_t  *m;
    char                     buf[8192];
    size_t                   len, i;
    int                      n;

    (void) r;

    len = 0;

#define TNL_API_PUT(...)                                                    \
    do {                                                                    \
        n = snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__);            \
        if (n > 0 && (size_t) n < sizeof(buf) - len) {                      \
            len += (size_t) n;                                              \
        }                                                                   \
    } while (0)

    for (i = 0; i < sizeof(tnl_api_metrics_table)
                    / sizeof(tnl_api_metrics_table[0]); i++)
    {
        m = &tnl_api_metrics_table[i];

        if (m->type != NULL) {
            TNL_API_PUT("# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
                        m->name, m->type);
        }

        TNL_API_PUT("%s%s%s%s %" PRIu64 "\n", m->name,
                    m->labels ? "{" : "", m->labels ? m->labels : "",
                    m->labels ? "}" : "", tnl_metric_total(m->m));
    }

    /* this worker's own view of its connections */

    TNL_API_PUT("# HELP tunneld_redis_up 1 if the answering worker's Redis "
                "connection is up\n# TYPE tunneld_redis_up gauge\n"
                "tunneld_redis_up %d\n", tnl_routes_available());
    TNL_API_PUT("# HELP tunneld_postgres_up 1 if the answering worker's "
                "PostgreSQL connection is up\n"
                "# TYPE tunneld_postgres_up gauge\n"
                "tunneld_postgres_up %d\n", tnl_db_is_up());
    TNL_API_PUT("# HELP tunneld_heartbeat_lag_seconds how late the last "
                "route heartbeat tick ran (the worst worker)\n"
                "# TYPE tunneld_heartbeat_lag_seconds gauge\n"
                "tunneld_heartbeat_lag_seconds %.3f\n",
                tnl_metric_max(TNL_M_HEARTBEAT_LAG_MS) / 1000.0);

#undef TNL_API_PUT

    tnl_api_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf,
                 len);
}
