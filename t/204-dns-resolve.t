#!/usr/bin/perl

# Host names in tunneld's Redis and PostgreSQL URLs are resolved off the
# event loop (sshd/resolve.c), on every (re)connect, and the libraries get
# the number (hiredis: the address; libpq: hostaddr= beside host=).
#
# 1. redis://localhost:PORT and postgresql://localhost:PORT work: keys load
#    from PostgreSQL, a tunnel claims its route in Redis and serves, and
#    both connections come from 127.0.0.1 over TCP.
# 2. The loop is not blocked while a name resolves: a tiny shared object
#    (built here, LD_PRELOAD into tunneld only) makes getaddrinfo("localhost")
#    take 2 s.  Redis and PostgreSQL connections are cut; while tunneld
#    re-resolves, its management API answers /healthz quickly (before the
#    fix, hiredis's and libpq's blocking getaddrinfo stalled the worker for
#    the whole 2 s, on every reconnect).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use lib "$Bin/../tools/lib";
use NgxTunnel::Stack;

watchdog(240);

my $rport = NgxTunnel::Stack::free_port();
my $pport = NgxTunnel::Stack::free_port();

# the admin module's database by name too: resolved once at load time
my $s = start_stack(workers => 1, redis_port => $rport, pg_port => $pport,
    pg_listen => '127.0.0.1', admin => 1,
    admin_database => "host=localhost port=$pport dbname=ngx_tunnel "
                    . 'user=postgres connect_timeout=3 '
                    . 'application_name=admin-by-name');

my $redis_url = "redis://localhost:$rport";
my $db_url = "postgresql://localhost:$pport/ngx_tunnel?user=postgres";

# tunneld again, on the names
$s->stop_tunneld;
push @{ $s->{tunneld_args} }, '--redis-url', $redis_url,
    '--database-url', $db_url;
$s->start_tunneld;      # waits for "db: loaded N keys": PostgreSQL works

my $dir = $s->{_test_dir};
my $sock = $s->socket_dir . '/api.sock';

sub tcp_clients {
    my @addrs = $s->redis_cli('CLIENT', 'LIST') =~ /addr=(127\.0\.0\.1:\d+)/g;
    return @addrs;
}

sub pg_tcp_clients {
    return sql_query($s, "SELECT count(*) FROM pg_stat_activity "
                       . "WHERE client_addr = '127.0.0.1'");
}

# --- 1: localhost URLs work -------------------------------------------------

my $alice = new_user($s, 'alice');
my $one = start_backend($s, 'one');
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "dnsapp:80:localhost:$one->{port}");
ok(wait_route($s, 'dnsapp', 15), 'route claimed through redis://localhost')
    or diag($ssh->output, tail_log($s, 'tunneld'));
is(status_body($s, 'dnsapp'), '200 hello from backend one',
   'the tunnel serves');
ok(scalar(tcp_clients()) >= 2,
   'tunneld talks to Redis over TCP from 127.0.0.1 (routes and kick)')
    or diag($s->redis_cli('CLIENT', 'LIST'));
ok(pg_tcp_clients() >= 1, 'tunneld talks to PostgreSQL over TCP');

# the admin module: tunnel_admin_database host=localhost, resolved at load
my $page = http_request(port => $s->http_port, host => 'localhost', path => '/');
like($page->{status}, qr/^(200|30[23])$/, "admin page answers ($page->{status})");
ok(wait_until(10, sub {
    sql_query($s, "SELECT count(*) FROM pg_stat_activity WHERE "
                . "application_name = 'admin-by-name' "
                . "AND client_addr = '127.0.0.1'") >= 1 }),
   'the admin module reached PostgreSQL at the address of "localhost"');
$ssh->stop;


# --- 2: a slow resolver does not block the loop -----------------------------

my $shim = "$dir/slowgai.so";
open my $fh, '>', "$dir/slowgai.c" or die "slowgai.c: $!\n";
print $fh <<'EOC';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *,
        struct addrinfo **) = dlsym(RTLD_NEXT, "getaddrinfo");

    if (node != NULL && strcmp(node, "localhost") == 0) {
        sleep(2);
    }

    return real(node, service, hints, res);
}
EOC
close $fh;
my $cc = system('cc', '-shared', '-fPIC', '-o', $shim, "$dir/slowgai.c",
    '-ldl');
is($cc, 0, 'built the slow getaddrinfo shim') or BAIL_OUT('no cc');

$s->stop_tunneld;
my $log = $s->log_path('tunneld');
$s->_spawn('tunneld', undef, $log,
    # a sanitized tunneld needs its ASan runtime first in the list
    { LD_PRELOAD => ($ENV{NGX_TUNNEL_SANITIZE}
                     ? '/usr/lib/x86_64-linux-gnu/libasan.so.8:' : '')
                    . $shim }, $s->tunneld_command);

sub healthz {
    my $t0 = time;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock)
        or return (undef, 0);
    print $c "GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    local $/;
    my $resp = <$c> // '';
    return ($resp, time - $t0);
}

# from the first answer: every connect resolves "localhost" in 2 s
ok(wait_until(20, sub { my ($r) = healthz(); defined $r && length $r }),
   'tunneld with the slow resolver answers its API');

sub probe {
    my ($secs) = @_;
    my ($max, $n, $degraded, $ok) = (0, 0, 0, 0);
    my $end = time + $secs;
    while (time < $end) {
        my ($r, $dt) = healthz();
        $n++;
        $max = $dt if $dt > $max;
        $degraded++ if ($r // '') =~ /"degraded"/;
        $ok++ if ($r // '') =~ /"status":\s*"ok"/;
        sleep 0.02;
    }
    return ($max, $n, $degraded, $ok);
}

# startup: both resolutions (2 s each) run while the API answers
my ($max, $n, $degraded, $ok) = probe(3);
diag(sprintf 'startup: /healthz max %.1f ms over %d probes '
     . '(%d degraded, %d ok)', $max * 1000, $n, $degraded, $ok);
ok($degraded > 0, 'healthz answered while the names were still resolving');
ok(wait_until(15, sub { (healthz())[0] =~ /"status":\s*"ok"/ }),
   'Redis and PostgreSQL come up on the resolved addresses');

# reconnects: cut tunneld's TCP connections; each reconnect resolves again
my @cut = tcp_clients();
$s->redis_cli('CLIENT', 'KILL', 'ADDR', $_) for @cut;
sql_query($s, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            . "WHERE client_addr = '127.0.0.1'");
($max, $n, $degraded, $ok) = probe(3);
diag(sprintf 'reconnect: /healthz max %.1f ms over %d probes '
     . '(%d degraded, %d ok), %d Redis connections cut',
     $max * 1000, $n, $degraded, $ok, scalar @cut);
ok(@cut >= 2, 'cut the Redis connections');
ok($degraded > 0, 'healthz saw the outage while re-resolving');
# the issue asks for 100 ms; the shared, loaded box gets slack, and a
# blocked loop would take 2000 ms
cmp_ok($max * 1000, '<', 500,
       '/healthz answered within 500 ms throughout (loop not blocked)');
ok(wait_until(15, sub { (healthz())[0] =~ /"status":\s*"ok"/ }),
   'both reconnect after re-resolving');
like(read_file($log), qr/redis routes: connection lost|connection lost/,
     'tunneld noticed the cut');


# --- 3: a name that does not resolve: said, retried, the loop unharmed ------

$s->stop_tunneld;
my $from = -s $log;
$s->_spawn('tunneld', undef, $log, {}, $s->tunneld_command,
    '--redis-url', 'redis://no-such-host.invalid:6379');
ok(wait_until(20, sub {
    substr(read_file($log), $from) =~ /redis routes: cannot resolve "no-such-host\.invalid": .*; check the host in the redis URL/ }),
   'an unknown Redis host is logged with what to check')
    or diag(substr(read_file($log), $from));
my ($r3, $dt3) = healthz();
like($r3 // '', qr/"redis":\s*"down"/, 'the API answers: Redis down');
cmp_ok($dt3 * 1000, '<', 500, sprintf('... in %.1f ms', $dt3 * 1000));

stop_backend($one);
check_logs($s);
$s->stop_all;
done_testing;
