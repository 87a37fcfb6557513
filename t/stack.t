#!/usr/bin/perl
# Smoke test of the dev stack library (tools/lib/NgxTunnel/Stack.pm):
# private PostgreSQL and Redis start, answer, stop by PID and restart on the
# same state directory (PostgreSQL keeps its data, Redis does not).  nginx
# and tunneld are exercised by the end-to-end tests.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use Test::More;

my $root;
BEGIN { $root = "$FindBin::Bin/.." }
use lib "$root/tools/lib";
use NgxTunnel::Stack;

my $port = NgxTunnel::Stack::free_port();
like($port, qr/^\d+$/, 'free_port returns a number');
ok($port > 0 && $port < 65536, 'free_port is a valid port');

my $dir = tempdir('stack-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($http, $ssh) = (NgxTunnel::Stack::free_port(),
                    NgxTunnel::Stack::free_port());
my $s = NgxTunnel::Stack->new(
    root => $root, dir => $dir, http_port => $http, ssh_port => $ssh,
);

is((stat $dir)[2] & 07777, 0755, 'state dir made traversable (0755)');
is_deeply($s->env, {
    DATABASE_URL  => "postgresql:///ngx_tunnel?host=$dir/pg&port=5432"
                   . "&user=postgres",
    REDIS_URL     => "unix:$dir/redis.sock",
    RUN_DIR       => $dir,
    HTTP_PORT     => $http,
    SSH_PORT      => $ssh,
    TUNNEL_DOMAIN => 'localhost',
    TUNNELD_API   => "$dir/sockets/api.sock",
}, 'env');
is($s->url('myapp'), "http://myapp.localhost:$http/", 'url');
is($s->socket_dir, "$dir/sockets", 'socket_dir');
is($s->host_key_path, "$dir/ssh_host_ed25519_key", 'host_key_path');
is($s->log_path('nginx'), "$dir/nginx/error.log", 'nginx log path');
is($s->log_path('tunneld'), "$dir/tunneld.log", 'tunneld log path');

# --- first start --------------------------------------------------------
$s->start_postgres;
my $pg_pid = $s->pid('postgres');
ok($pg_pid && kill(0, $pg_pid), 'postgres runs');
ok(-S "$dir/pg/.s.PGSQL.5432", 'postgres socket in the state dir');

my ($rc, $out, $err) = $s->psql('SELECT current_database()');
is($rc, 0, 'psql exit 0') or diag $err;
is($out, "ngx_tunnel\n", 'database ngx_tunnel exists');

($rc, $out, $err) = $s->psql(
    'CREATE TABLE smoke (v text); INSERT INTO smoke VALUES (\'kept\');'
  . ' SELECT v FROM smoke');
is($rc, 0, 'create table') or diag $err;
is($out, "kept\n", 'row inserted');

if ($> == 0) {
    is((getpwuid((stat "$dir/pg/data")[4]))[0], 'postgres',
       'as root, PostgreSQL data belongs to the postgres account');
}

$s->start_redis;
my $redis_pid = $s->pid('redis');
ok($redis_pid && kill(0, $redis_pid), 'redis runs');
is($s->redis_cli('PING'), 'PONG', 'redis answers');
is($s->redis_cli('SET', 'smoke', 'v1'), 'OK', 'redis SET');
is($s->redis_cli('GET', 'smoke'), 'v1', 'redis GET');

# --- stop ---------------------------------------------------------------
$s->stop_redis;
is($s->pid('redis'), undef, 'redis pid forgotten');
is(kill(0, $redis_pid), 0, 'redis process gone');

$s->stop_postgres;
is($s->pid('postgres'), undef, 'postgres pid forgotten');
is(kill(0, $pg_pid), 0, 'postgres process gone');
ok(!-e "$dir/pg/data/postmaster.pid", 'postgres shut down cleanly');

# --- restart on the same directory --------------------------------------
$s->start_postgres;
isnt($s->pid('postgres'), $pg_pid, 'postgres restarted with a new pid');
($rc, $out, $err) = $s->psql('SELECT v FROM smoke');
is($rc, 0, 'psql after restart') or diag $err;
is($out, "kept\n", 'PostgreSQL data survived the restart');

$s->start_redis;
is($s->redis_cli('PING'), 'PONG', 'redis answers after restart');
is($s->redis_cli('GET', 'smoke'), '', 'redis starts empty (no persistence)');

# a second object on the same directory reuses the database
$s->stop_all;
ok(!defined $s->pid('postgres') && !defined $s->pid('redis'),
   'stop_all stopped both');

my $s2 = NgxTunnel::Stack->new(root => $root, dir => $dir);
$s2->start_postgres;
($rc, $out) = $s2->psql('SELECT count(*) FROM smoke');
is($out, "1\n", 'new object, same dir: same database');
my $pid2 = $s2->pid('postgres');
undef $s2;
is(kill(0, $pid2), 0, 'DESTROY stops what the object started');

# --- a state dir nobody else can reach ----------------------------------
SKIP: {
    skip 'only root runs services as other accounts', 1 if $> != 0;
    my $closed = tempdir('stack-closed.XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0700, $closed;
    eval { NgxTunnel::Stack->new(root => $root, dir => "$closed/state") };
    like($@, qr/directory '\Q$closed\E' \(mode 0700\) is not traversable.*chmod o\+x \Q$closed\E/s,
         'unreachable parent directory: clear error naming it');
}

done_testing();
