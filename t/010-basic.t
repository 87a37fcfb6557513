#!/usr/bin/perl

# The basic flow end to end: a registered key opens `ssh -R name:80:...`,
# the route appears in Redis, and http://name.localhost:PORT/ serves the
# user's local app through nginx.  Also: random and reserved names, two
# users side by side, Host header forms, X-Forwarded-*, the access log
# variables, the 404 page, and a clean close removing the route at once.

use strict;
use IO::Socket::INET;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $s = start_stack();
my $port = $s->env->{HTTP_PORT};
my $sockdir = $s->socket_dir;

my $alice = new_user($s, 'alice');
my $bob = new_user($s, 'bob');
my $carol = new_user($s, 'carol');
my $alice_id = sql_query($s, "SELECT id FROM users WHERE name = 'alice'");

my $one = start_backend($s, 'one');
my $two = start_backend($s, 'two');
my $three = start_backend($s, 'three');

# carol has a reserved name; reserve it now so tunneld has reloaded it
# (within 2 s of the NOTIFY) long before carol connects
my ($rc, $out, $err) = $s->tunnelctl('name', 'reserve', 'carolsite', 'carol');
is($rc, 0, 'tunnelctl name reserve carolsite carol') or diag("$out$err");


# --- named tunnel with -N ---------------------------------------------------

my $t0 = time;
my $ssh_a = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "myapp:80:localhost:$one->{port}");

my $route = wait_route($s, 'myapp', 10);
ok($route, 'named tunnel: route registered in Redis')
    or diag($ssh_a->output, tail_log($s, 'tunneld'));
diag(sprintf 'ssh -R to route in %.2f s', time - $t0) if $route;
$route //= {};

is($route->{user}, 'alice', 'route: user');
is($route->{user_id}, $alice_id, 'route: user_id');
like($route->{socket} // '', qr{^\Q$sockdir\E/t-[0-9a-f]{16}\.sock$},
    'route: socket path in the socket dir, t-<16 hex>.sock');
ok(defined $route->{socket} && -S $route->{socket},
    'route: the socket exists');
like($route->{session} // '', qr{^[^/]+/\d+/\d+$},
    'route: session id node/pid/counter');
my $session_pid = ($route->{session} // "") =~ m{/(\d+)/} ? $1 : -1;
ok((grep { $_ == $session_pid } $s->tunneld_pids),
    'route: session id carries the pid of a tunneld process');
like($route->{started} // '', qr/^\d+$/, 'route: started is unix seconds');
ok(abs(($route->{started} // 0) - time) < 30, 'route: started is now');
like($route->{client} // '', qr/^127\.0\.0\.1:\d+$/, 'route: client ip:port');
ok(length($route->{node} // ''), 'route: node');

my $pttl = $s->redis_cli('PTTL', 'tunnel:route:myapp');
ok($pttl > 0 && $pttl <= 10000, "route: TTL set, <= 10 s ($pttl ms)");

my $r = http_get($s, 'myapp', '/');
is($r->{status}, 200, 'GET / through the tunnel: 200');
is($r->{body}, 'hello from backend one', 'GET / through the tunnel: body');


# --- Host header forms ------------------------------------------------------

for my $host ("MyApp.LOCALHOST:$port", "myapp.localhost.:$port",
              "MYAPP.Localhost.:$port", 'myapp.localhost')
{
    my $r = eval { http_get($s, 'x', '/', host => $host) };
    is($r && "$r->{status} $r->{body}", '200 hello from backend one',
        "Host: $host reaches the tunnel");
}


# --- X-Forwarded-* ------------------------------------------------------------

$r = http_get($s, 'myapp', '/headers');
my $h = eval { decode_json($r->{body}) } || {};
is($h->{'x-forwarded-for'}, '127.0.0.1', 'X-Forwarded-For reaches backend');
is($h->{'x-forwarded-proto'}, 'http', 'X-Forwarded-Proto reaches backend');
is($h->{'x-forwarded-host'}, "myapp.localhost:$port",
    'X-Forwarded-Host reaches backend');
is($h->{host}, 'myapp.localhost', 'Host reaches backend');

# an absolute-form request line names the host nginx routes on; a Host
# header saying something else must not reach the app as X-Forwarded-Host
{
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5)
        or die "connect: $!";
    print $c "GET http://myapp.localhost:$port/headers HTTP/1.1\r\n"
        . "Host: evil.example\r\nConnection: close\r\n\r\n";
    local $/;
    my $raw = <$c> // '';
    my ($body) = $raw =~ /\r\n\r\n(.*)\z/s;
    my $j = eval { decode_json($body // '') } || {};
    is($j->{'x-forwarded-host'}, "myapp.localhost:$port",
        'absolute-form request: X-Forwarded-Host is the routed host, not '
        . 'the Host header');
}


# --- access log: $tunnel_name and $tunnel_user --------------------------------

my $probe = 'probe' . int(rand 1e9);
$r = http_get($s, 'myapp', "/?$probe");
is($r->{status}, 200, 'probe request');
my ($line) = wait_until(5, sub {
    my @l = grep { /\Q$probe\E/ } log_lines($s->log_path('access'));
    return $l[0];
});
like($line // '', qr/\btunnel=myapp user=alice\b/,
    'access log shows $tunnel_name and $tunnel_user')
    or diag($line // 'no access log line');


# --- unknown names and the bare domain ------------------------------------------

$r = http_get($s, 'nosuch', '/');
is($r->{status}, 404, 'unknown tunnel: 404');
like(page_text($r->{body}), qr/no tunnel named "nosuch"/i,
    'unknown tunnel: page says no tunnel named "nosuch"');
like($r->{headers}{'content-type'} // '', qr{^text/html},
    'unknown tunnel: html page');

$r = http_get($s, 'x', '/', host => "bad_name.localhost:$port");
is($r->{status}, 404, 'invalid label in Host: 404');

$r = http_get($s, 'x', '/', host => "a.b.localhost:$port");
is($r->{status}, 404, 'deeper subdomain: 404');


# --- random name, with a session channel --------------------------------------------

my $ssh_b = start_ssh($s, key => $bob->{key}, user => 'bob', session => 1,
    remote => "80:localhost:$two->{port}");
my ($rname) = $ssh_b->wait_for(
    qr{http://([a-z0-9-]+)\.localhost:$port\b}, 10);
ok($rname, 'random name: URL printed in the session')
    or diag($ssh_b->output, tail_log($s, 'tunneld'));
$rname //= 'no-name-printed';
unlike($rname, qr/^(?:localhost|myapp)$/, "random name '$rname'");
ok(length($rname) <= 63 && $rname !~ /^-|-$/, 'random name is a DNS label');
$route = wait_route($s, $rname, 5) // {};
is($route->{user}, 'bob', 'random name: route owned by bob');
$r = http_get($s, $rname, '/');
is("$r->{status} $r->{body}", '200 hello from backend two',
    'random name: reachable');


# --- two users side by side ------------------------------------------------------

for (1 .. 4) {      # new connections: both nginx workers
    my $ra = http_get($s, 'myapp', '/');
    my $rb = http_get($s, $rname, '/');
    is("$ra->{body} | $rb->{body}",
       'hello from backend one | hello from backend two',
       "two users' tunnels each reach their own backend ($_)");
}


# --- the user's reserved name ----------------------------------------------------------

my $ssh_c = start_ssh($s, key => $carol->{key}, user => 'carol', session => 1,
    remote => "80:localhost:$three->{port}");
ok($ssh_c->wait_for(qr{http://carolsite\.localhost:$port\b}, 10),
    'reserved name: printed in the session')
    or diag($ssh_c->output);
$route = wait_route($s, 'carolsite', 5) // {};
is($route->{user}, 'carol', 'reserved name: route owned by carol');
$r = http_get($s, 'carolsite', '/');
is("$r->{status} $r->{body}", '200 hello from backend three',
    'reserved name: reachable');
$ssh_c->stop;
ok(wait_no_route($s, 'carolsite', 3), 'reserved name: released on exit');

# the same with -N (the name is not printed, the route must appear)
$ssh_c = start_ssh($s, key => $carol->{key}, user => 'carol',
    remote => "80:localhost:$three->{port}");
$route = wait_route($s, 'carolsite', 10) // {};
is($route->{user}, 'carol', 'reserved name with -N: route owned by carol');
$r = http_get($s, 'carolsite', '/');
is("$r->{status} $r->{body}", '200 hello from backend three',
    'reserved name with -N: reachable');
$ssh_c->stop;


# --- clean close: route removed at once, then 404 -------------------------------------

my $sock = $s->redis_cli('HGET', 'tunnel:route:myapp', 'socket');
$ssh_a->stop;
ok(wait_no_route($s, 'myapp', 3), 'ssh exit: route removed within 3 s');
ok(wait_until(3, sub { !-e $sock }), 'ssh exit: tunnel socket unlinked');
$r = http_get($s, 'myapp', '/');
is($r->{status}, 404, 'after close: 404');

$ssh_b->stop;
ok(wait_no_route($s, $rname, 3), 'session exit: random route removed');

check_logs($s);

$s->stop_all;
done_testing;
