#!/usr/bin/perl

# The balancer checks a tunnel's socket path (stat) before connecting to it,
# so that a vanished tunnel is logged as "no longer exists" and answered
# with the offline page (t/050).  Issue 13: only a connect needs the check.
# Under "keepalive" (the generated config) the balancer stats only when the
# keepalive module found no cached connection: counted with strace -c on
# nginx's workers over a fixed number of requests (exact counts, not
# timing; before: one newfstatat per request).  An upstream written
# without keepalive still stats before every request, and a vanished
# socket gives the same line and page through both upstreams.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(sleep);

use NgxTunnel::Stack;
use NgxTunnel::Test;

watchdog(240);

my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tools/install-deps)'
    unless $strace;

# the same tunnels through an upstream an operator wrote without keepalive
my $plain_port = NgxTunnel::Stack::free_port();
my $s = start_stack(workers => 1, nginx_http_extra => <<"CONF");
    upstream tunnels_plain {
        tunnel_balancer;
        server 127.0.0.1:1;
    }

    server {
        listen 127.0.0.1:$plain_port;
        server_name *.localhost;

        location / {
            tunnel_lookup;
            proxy_pass http://tunnels_plain;
            proxy_set_header Host \$host;
        }

        error_page 502 /__tunnel/offline;
        location = /__tunnel/offline {
            internal;
            tunnel_page offline;
        }
    }
CONF
my $port = $s->env->{HTTP_PORT};

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "statme:80:localhost:$be->{port}");
ok(wait_route($s, 'statme', 10), 'tunnel up')
    or diag($ssh->output, tail_log($s, 'tunneld'));

# nginx's workers: the children of its master
sub nginx_workers {
    my $master = $s->pid('nginx');
    my @w;
    for my $dir (glob '/proc/[0-9]*') {
        open my $fh, '<', "$dir/stat" or next;
        my $st = <$fh> // next;
        my ($p, $pp) = $st =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @w, $p if $pp == $master;
    }
    return @w;
}

# $n GETs of / on one client connection to $p, under strace -c on every
# nginx worker; returns (requests answered 200 by the backend, %calls)
sub traced_gets {
    my ($p, $n) = @_;
    my ($ok, $conn) = (0, undef);
    my ($calls) = strace_during([ nginx_workers() ], sub {
        for my $i (1 .. $n) {
            my $r = eval {
                http_request(port => $p, host => "statme.localhost:$p",
                    path => '/', timeout => 10,
                    ($conn ? (conn => $conn) : ()));
            };
            $conn = $r && !$r->{closed} ? $r->{conn} : undef;
            $ok++ if $r && $r->{status} == 200
                     && $r->{body} eq 'hello from backend one';
        }
    }, out => $s->dir . "/strace-$p.txt");
    my %calls = %$calls;
    diag(sprintf '%d requests to :%d, nginx workers: newfstatat %d, '
         . 'connect %d, getsockopt %d, all %d (%.2f per request)',
         $n, $p, map({ $calls{$_} // 0 } qw(newfstatat connect getsockopt
         total)), ($calls{total} // 0) / $n);
    return ($ok, %calls);
}


# --- with keepalive: no stat for a cached connection ------------------------

{
    # warm-up: the route is cached and an upstream connection kept
    for (1 .. 5) {
        status_body($s, 'statme');
    }
    my $n = 200;
    my ($ok, %calls) = traced_gets($port, $n);
    is($ok, $n, "keepalive upstream: $n requests answered by the backend");
    ok(($calls{newfstatat} // 0) < $n / 10,
       "keepalive upstream: newfstatat on fewer than 1 in 10 requests "
       . '(one per new upstream connection; before: one per request)');
    ok(($calls{newfstatat} // 0) <= ($calls{connect} // 0) + 2,
       'keepalive upstream: at most one stat per connect');
}


# --- without keepalive: a stat before every request ---------------------------

{
    my $n = 50;
    my ($ok, %calls) = traced_gets($plain_port, $n);
    is($ok, $n, "upstream without keepalive: $n requests answered");
    ok(($calls{connect} // 0) >= $n,
       'upstream without keepalive: a new connection per request');
    ok(($calls{newfstatat} // 0) >= $n,
       'upstream without keepalive: the socket checked before each one');
}


# --- a vanished socket: the same line and page through both -----------------

sub gone_lines {
    return scalar grep {
        /tunnel: socket "[^"]+" of tunnel "ghost" no longer exists/
    } log_lines($s->log_path('nginx'));
}

{
    my $ghost = $s->socket_dir . '/t-00000000deadbeef.sock';
    $s->redis_cli('HSET', 'tunnel:route:ghost', socket => $ghost,
        user => 'alice', user_id => 1, session => 'elsewhere/1/1',
        node => 'elsewhere', started => time, client => '127.0.0.1:1');
    $s->redis_cli('EXPIRE', 'tunnel:route:ghost', 60);

    for my $p ($port, $plain_port, $port, $plain_port) {
        my $before = gone_lines();
        my $r = eval {
            http_request(port => $p, host => "ghost.localhost:$p",
                path => '/', timeout => 10);
        };
        is($r ? $r->{status} : "error: $@", 502, ":$p, socket gone: 502");
        like(page_text($r ? $r->{body} : ''),
             qr/tunnel "ghost" is offline/i,
             ":$p, socket gone: the offline page");
        my $after = $before;
        wait_until(5, sub { ($after = gone_lines()) > $before });
        is($after - $before, 1,
           ":$p, socket gone: one \"no longer exists\" line");
    }
    $s->redis_cli('DEL', 'tunnel:route:ghost');
    $s->redis_cli('PUBLISH', 'tunnel:invalidate', 'ghost');
}

is(status_body($s, 'statme'), '200 hello from backend one',
   'the live tunnel still serves');

$ssh->stop;
check_logs($s,
    allow_nginx => [
        qr/tunnel: socket "[^"]+" of tunnel "ghost" no longer exists/,
    ]);

$s->stop_all;
done_testing;
