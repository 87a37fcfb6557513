-- node.lua: a tunneld node advertises itself (docs/SCALING.md).
-- KEYS[1] = tunnel:node:<id>
-- ARGV    = address, started, version, worker pid, ttl_ms
-- The hash says where the node's internal nginx listener is, so nginx on
-- another node can forward requests for the tunnels this node holds (their
-- route records name the node).  Every worker of the node refreshes it on
-- the route heartbeat; it expires with the node's routes when the node
-- stops refreshing.  One key per call: fine for Redis Cluster.
-- Returns 1.

local key = KEYS[1]

redis.call('HSET', key, 'address', ARGV[1], 'started', ARGV[2],
           'version', ARGV[3], 'pid', ARGV[4])
redis.call('PEXPIRE', key, ARGV[5])

return 1
