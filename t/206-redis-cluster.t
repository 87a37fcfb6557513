#!/usr/bin/perl

# Redis Cluster today (docs/SCALING.md, "Redis Cluster"): three masters on
# loopback (Debian's redis-server, `redis-cli --cluster create`), and the
# scripts of redis-scripts/ run against them as tunneld and nginx would.
# This file records what works and what breaks, so the document is backed
# by a test; when the scripts are made cluster-safe, the "breaks"
# assertions flip and must be updated with the document.
#
# Works: node.lua (one key), a claim whose route key lives on the node
# that holds tunnel:index, and pub/sub (a PUBLISH on one master reaches a
# subscriber on another).
# Breaks: claim.lua / release.lua / kick.lua for a name on another node
# than tunnel:index ("non local key", and the script has already written
# the route: scripts are not rolled back), refresh.lua and stats.lua with
# routes in several slots (CROSSSLOT), list.lua and node_lost.lua on a
# node without tunnel:index.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::Stack;

watchdog(120);

system('redis-server --version >/dev/null 2>&1') == 0
    or plan skip_all => 'no redis-server';

my $dir = tempdir('ngx-tunnel-cl.XXXXXX', TMPDIR => 1,
    CLEANUP => !$ENV{TEST_KEEP});
my $root = repo_root();

my (@ports, @pids);

END {
    local $?;                   # keep the test's exit status
    for my $pid (@pids) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
    }
}

# the cluster bus port is given explicitly: the default (port + 10000)
# does not exist above 55535, where free ports often are
for my $i (0 .. 2) {
    my $port = NgxTunnel::Stack::free_port();
    my $bus = NgxTunnel::Stack::free_port();
    mkdir "$dir/n$i";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        chdir "$dir/n$i" or POSIX::_exit(1);
        open STDOUT, '>', 'redis.log';
        open STDERR, '>&', \*STDOUT;
        exec { 'redis-server' } 'redis-server', '--port', $port, '--bind', '127.0.0.1',
            '--cluster-enabled', 'yes', '--cluster-port', $bus,
            '--cluster-config-file', 'nodes.conf', '--save', '',
            '--appendonly', 'no', '--daemonize', 'no'
            or POSIX::_exit(127);
    }
    push @ports, $port;
    push @pids, $pid;
}

sub cli {
    my ($port, @args) = @_;
    open my $fh, '-|', 'redis-cli', '-c', '-p', $port, @args
        or die "redis-cli: $!\n";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

ok(wait_until(10, sub {
    !grep { cli($_, 'PING') ne 'PONG' } @ports }), 'three redis-servers up');

my $t0 = time;
my $created = system("redis-cli --cluster create "
    . join(' ', map { "127.0.0.1:$_" } @ports)
    . " --cluster-yes >$dir/create.log 2>&1") == 0;
ok($created, 'redis-cli --cluster create') or diag(read_file("$dir/create.log"));
ok(wait_until(30, sub { cli($ports[0], 'CLUSTER', 'INFO')
                        =~ /cluster_state:ok/ }), 'cluster state ok');
diag(sprintf 'cluster of 3 masters formed in %.1f s', time - $t0);

# which master serves a key: the port of the slot's owner
my @ranges;
# CLUSTER NODES: "id ip:port@bus flags master - ping pong epoch state
# slots..."
for my $line (split /\n/, cli($ports[0], 'CLUSTER', 'NODES')) {
    my @w = split ' ', $line;
    my ($port) = $w[1] =~ /:(\d+)\@/;
    for my $range (@w[8 .. $#w]) {
        push @ranges, [ $1, $2, $port ] if $range =~ /^(\d+)-(\d+)$/;
    }
}
is(scalar @ranges, 3, 'three slot ranges');

sub owner {
    my ($key) = @_;
    my $slot = cli($ports[0], 'CLUSTER', 'KEYSLOT', $key);
    for my $r (@ranges) {
        return $r->[2] if $slot >= $r->[0] && $slot <= $r->[1];
    }
    return 0;
}

my $index = owner('tunnel:index');
my ($near, $far);
for my $i (0 .. 200) {
    my $o = owner("tunnel:route:n$i");
    # near: its tombstone tunnel:kicked:NAME lives on another master
    $near //= "n$i" if $o == $index && owner("tunnel:kicked:n$i") != $index;
    $far //= "n$i" if $o != $index;
    last if $near && $far;
}
ok($near && $far, "names on and off tunnel:index's master: $near, $far");
my $other = (grep { $_ != $index } @ports)[0];

sub script { read_file("$root/redis-scripts/$_[0]") }

sub evalsh {
    my ($port, $name, @args) = @_;
    return cli($port, 'EVAL', script($name), @args);
}

my @claim = ('/s.sock', 'u', '1', 'node/1/1', 'node', '1', '127.0.0.1',
             '10000');


# --- what works -------------------------------------------------------------

is(evalsh($ports[0], 'node.lua', 1, 'tunnel:node:a', '127.0.0.1:8081', '1',
          'v', '1', '10000'), '1', 'node.lua: one key per call works');

like(evalsh($ports[0], 'claim.lua', 1, "tunnel:route:$near", @claim),
     qr/^claimed/, "claim.lua works for $near (same master as tunnel:index)");

# pub/sub: a SUBSCRIBE on one master hears a PUBLISH on another
my $sub_out = "$dir/sub.out";
my $sub = fork // die "fork: $!\n";
if ($sub == 0) {
    open STDOUT, '>', $sub_out;
    open STDERR, '>', '/dev/null';
    exec { 'timeout' } 'timeout', '5', 'redis-cli', '-p', $other, 'SUBSCRIBE',
        'tunnel:kick' or POSIX::_exit(127);
}
push @pids, $sub;
wait_until(5, sub { read_file($sub_out) =~ /subscribe/ });
cli($index, 'PUBLISH', 'tunnel:kick', 'hello-from-another-master');
ok(wait_until(5, sub { read_file($sub_out) =~ /hello-from-another-master/ }),
   'pub/sub: PUBLISH on one master reaches a subscriber on another');


# --- what breaks today --------------------------------------------------------

my $r = evalsh($ports[0], 'claim.lua', 1, "tunnel:route:$far", @claim);
like($r, qr/non local key/,
     "claim.lua for $far (route and tunnel:index on different masters) "
     . 'fails: tunnel:index is not in KEYS');
is(cli($ports[0], 'EXISTS', "tunnel:route:$far"), '1',
   '... after writing the route: a failed script is not rolled back');

like(evalsh($ports[0], 'release.lua', 1, "tunnel:route:$far", 'node/1/1'),
     qr/non local key/, 'release.lua fails the same way');

like(evalsh($ports[0], 'refresh.lua', 2, "tunnel:route:$near",
            "tunnel:route:$far", '10000', '1', 'node/1/1', 'node/1/1'),
     qr/CROSSSLOT/, 'refresh.lua with routes in two slots: CROSSSLOT');

like(evalsh($ports[0], 'stats.lua', 2, "tunnel:route:$near",
            "tunnel:route:$far", ('x') x 16),
     qr/CROSSSLOT/, 'stats.lua with routes in two slots: CROSSSLOT');

cli($ports[0], 'EVAL', script('claim.lua'), 1, "tunnel:route:$near", @claim);
$r = evalsh($ports[0], 'kick.lua', 1, "tunnel:route:$near", 'tunnel', 'r',
            'test', '1000', '');
like($r, qr/non local key/,
     'kick.lua fails: tunnel:kicked:NAME is not in KEYS');
is(cli($ports[0], 'EXISTS', "tunnel:route:$near"), '0',
   '... after deleting the route but before publishing tunnel:close');

like(cli($other, 'EVAL', script('list.lua'), 0, '', '', '', '', '10', '100'),
     qr/non local key/, 'list.lua on a master without tunnel:index fails');
like(cli($other, 'EVAL', script('node_lost.lua'), 0, 'node/', '0', '', '100'),
     qr/non local key/, 'node_lost.lua on a master without tunnel:index fails');

done_testing;
