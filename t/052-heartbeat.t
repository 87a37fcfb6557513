#!/usr/bin/perl

# Batched heartbeat and audit: a route whose key is deleted comes back
# within a heartbeat period with all its fields; its TTL stays refreshed; a
# key overwritten by another session closes our tunnel ("lost"); the audit
# rows and last_used_at are written; many routes across a session.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $s = start_stack();
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');

my @names = map { "hb$_" } 1 .. 5;
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => [ map { "$_:80:localhost:$be->{port}" } @names ]);
my %r;
for my $n (@names) {
    $r{$n} = wait_route($s, $n, 10);
    ok($r{$n}, "$n up") or diag($ssh->output);
}

# TTL stays refreshed over two TTLs
sleep 12;
for my $n (@names) {
    my $ttl = $s->redis_cli('PTTL', "tunnel:route:$n");
    ok($ttl > 5000 && $ttl <= 10000, "$n TTL refreshed ($ttl ms)");
}

# deleted key: re-created by the heartbeat with every field
$s->redis_cli('DEL', 'tunnel:route:hb2');
my $t0 = time;
my $back = wait_route($s, 'hb2', 6);
ok($back, sprintf('deleted key re-created in %.1f s', time - $t0));
# the live fields (fingerprint, counters: live.c) follow within a stats
# tick (1 s); $r{hb2} may have been read before or after its first one
my %want = %{ $r{hb2} || {} };
%want = (%want, fingerprint => $alice->{fingerprint}, bytes_in => 0,
    bytes_out => 0, requests => 0, streams => 0, open_streams => 0,
    last_request => 0);
$back = wait_route($s, 'hb2', 3, sub {
    join(',', map { "$_=$_[0]{$_}" } sort keys %{ $_[0] })
    eq join(',', map { "$_=$want{$_}" } sort keys %want) });
is_deeply($back, \%want, sprintf('with the same fields, the live ones too '
    . '(%.1f s)', time - $t0));

# another session's key: our tunnel is closed, the key left alone
$s->redis_cli('HSET', 'tunnel:route:hb3', 'session', 'other/1/1');
ok(wait_until(6, sub {
       grep { /tunnel "hb3" of session .* taken over by session "other\/1\/1"/ }
       log_lines($s->log_path('tunneld')) }), 'lost route noticed');
sleep 4;
my %h = route_of($s, 'hb3');
is($h{session}, 'other/1/1', 'the other session\'s key is untouched');
my $ttl = $s->redis_cli('PTTL', 'tunnel:route:hb3');
ok($ttl <= 6500, "not refreshed by us any more ($ttl ms)");
ok(route_of($s, 'hb4'), 'the session\'s other routes live on')
    or diag(tail_log($s, 'tunneld'));

$ssh->stop;
ok(wait_no_route($s, 'hb1', 10), 'routes released at exit');

# audit rows: tunneld writes them asynchronously
my $ev;
wait_until(10, sub {
    $ev = sql_query($s, "SELECT string_agg(event || ':' || coalesce(name, '-'),"
                    . " ',' ORDER BY event, name) FROM tunnel_events");
    return $ev =~ /close:hb5/;
});
like($ev, qr/auth:-/, 'auth row');
like($ev, qr/open:hb1.*open:hb5/, 'open rows');
like($ev, qr/close:hb1.*close:hb5/, 'close rows');
my $lu = sql_query($s, "SELECT count(*) FROM ssh_keys WHERE last_used_at IS NOT NULL");
is($lu, 1, 'last_used_at written');

check_logs($s, allow_tunneld => [qr/taken over/]);
$s->stop_all;
done_testing();
