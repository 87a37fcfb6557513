/*
 * The node record in Redis (see node.h, redis-scripts/node.lua).
 */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tnl_embedded.h"
#include "log.h"
#include "node.h"
#include "redis.h"
#include "routes.h"
#include "server.h"


#define TNL_NODE_KEY_PREFIX   "tunnel:node:"
#define TNL_NODE_RETRY_MS     250       /* until the first refresh lands */
#define TNL_NODE_CMD_TIMEOUT  2000

#define TNL_NODE_STR_(x)      #x
#define TNL_NODE_STR(x)       TNL_NODE_STR_(x)


extern const tnl_embedded_t  tnl_redis_scripts[];


static struct {
    tnl_timer_t    timer;
    const char    *script;
    char           key[sizeof(TNL_NODE_KEY_PREFIX) + 256];
    char           started[24];
    char           pid[24];
    unsigned       running:1;
    unsigned       in_flight:1;
    unsigned       advertised:1;   /* the last refresh landed */
    unsigned       failed_logged:1;
} tnl_node;


int
tnl_node_address_valid(const char *address)
{
    const char     *colon;
    char            host[64];
    char           *end;
    size_t          len;
    long            port;
    unsigned char   buf[sizeof(struct in6_addr)];

    colon = strrchr(address, ':');
    if (colon == NULL || colon == address) {
        return -1;
    }

    len = colon - address;

    if (address[0] == '[') {
        if (len < 3 || address[len - 1] != ']') {
            return -1;
        }
        address++;
        len -= 2;
    }

    if (len >= sizeof(host)) {
        return -1;
    }

    memcpy(host, address, len);
    host[len] = '\0';

    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 1 || port > 65535) {
        return -1;
    }

    if (inet_pton(AF_INET, host, buf) != 1
        && inet_pton(AF_INET6, host, buf) != 1)
    {
        return -1;
    }

    return 0;
}


static void
tnl_node_refreshed(tnl_redis_t *rc, redisReply *reply, void *data)
{
    (void) rc;
    (void) data;

    tnl_node.in_flight = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        tnl_node.advertised = 0;

        if (!tnl_node.failed_logged) {
            tnl_node.failed_logged = 1;
            tnl_log_warn("node: refreshing %s failed: %s; other nodes "
                         "cannot forward to this one meanwhile, retrying",
                         tnl_node.key,
                         reply ? reply->str : "redis unavailable or slow");
        }
        return;
    }

    if (!tnl_node.advertised) {
        tnl_log_info("node: advertised as \"%s\" at %s", tnl_conf.node,
                     tnl_conf.node_address);
    }

    tnl_node.advertised = 1;
    tnl_node.failed_logged = 0;
}


static void
tnl_node_refresh(tnl_timer_t *t)
{
    tnl_redis_t  *rc;
    const char   *argv[9];

    rc = tnl_routes_redis();

    if (!tnl_node.in_flight && rc != NULL && tnl_redis_is_up(rc)) {
        argv[0] = "EVAL";
        argv[1] = tnl_node.script;
        argv[2] = "1";
        argv[3] = tnl_node.key;
        argv[4] = tnl_conf.node_address;
        argv[5] = tnl_node.started;
        argv[6] = TNL_NODE_VERSION;
        argv[7] = tnl_node.pid;
        argv[8] = TNL_NODE_STR(TNL_ROUTE_TTL_MS);

        if (tnl_redis_command(rc, 9, argv, NULL, TNL_NODE_CMD_TIMEOUT,
                              tnl_node_refreshed, NULL)
            == 0)
        {
            tnl_node.in_flight = 1;
        }
    }

    /* the heartbeat's period once advertised; quickly until then */
    tnl_timer_add(t, tnl_node.advertised ? TNL_ROUTE_HEARTBEAT_MS
                                         : TNL_NODE_RETRY_MS);
}


int
tnl_node_start(tnl_loop_t *loop)
{
    if (tnl_conf.node_address == NULL) {
        return 0;
    }

    tnl_node.script = tnl_embedded_find(tnl_redis_scripts, "node.lua");
    if (tnl_node.script == NULL) {
        tnl_log_error("node: script node.lua is not embedded");
        return -1;
    }

    if (strlen(tnl_conf.node) > 255) {
        tnl_log_error("node: the node id \"%s\" is longer than 255 bytes",
                      tnl_conf.node);
        return -1;
    }

    snprintf(tnl_node.key, sizeof(tnl_node.key), "%s%s", TNL_NODE_KEY_PREFIX,
             tnl_conf.node);
    snprintf(tnl_node.started, sizeof(tnl_node.started), "%lld",
             (long long) time(NULL));
    snprintf(tnl_node.pid, sizeof(tnl_node.pid), "%ld", (long) getpid());

    tnl_timer_init(&tnl_node.timer, loop, tnl_node_refresh, NULL);
    tnl_timer_add(&tnl_node.timer, 0);
    tnl_node.running = 1;

    return 0;
}


void
tnl_node_stop(void)
{
    if (tnl_node.running) {
        tnl_timer_del(&tnl_node.timer);
        tnl_node.running = 0;
    }
}
