#!/usr/bin/perl

# Audit rows wait in the queue while PostgreSQL is down and are written in
# batches when it is back; a batch with a row PostgreSQL refuses is retried
# row by row, so only that row is lost.

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
sleep 2.5;

sql_query($s, "ALTER TABLE tunnel_events ADD CONSTRAINT t_no_bad"
              . " CHECK (name IS DISTINCT FROM 'bad1')");

$s->stop_postgres;

my @names = ('ok1', 'bad1', 'ok2');
for my $round (1 .. 3) {
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => [ map { "$_:80:localhost:$be->{port}" } @names ]);
    ok(wait_route($s, $_, 10), "round $round: $_ up while the database is down")
        for @names;
    $ssh->stop;
    wait_no_route($s, 'ok2', 10);
}

$s->start_postgres;

my $n;
wait_until(20, sub {
    $n = sql_query($s, "SELECT count(*) FROM tunnel_events WHERE name = 'ok2'");
    return $n >= 6;
});
is($n, 6, 'open and close rows of ok2 written after the outage');
is(sql_query($s, "SELECT count(*) FROM tunnel_events WHERE name = 'ok1'"), 6,
   'ok1 too');
is(sql_query($s, "SELECT count(*) FROM tunnel_events WHERE event = 'auth'"), 3,
   'auth rows');
is(sql_query($s, "SELECT count(*) FROM tunnel_events WHERE name = 'bad1'"), 0,
   'the refused rows are not there');
my @l = log_lines($s->log_path('tunneld'));
ok((grep { /audit insert of \d+ rows failed, retrying them one by one/ } @l),
   'batch retried row by row');
is(scalar(grep { /audit insert failed, row dropped/ } @l), 6,
   'six rows dropped, each logged');
is(sql_query($s, "SELECT count(*) FROM ssh_keys WHERE last_used_at IS NOT NULL"),
   1, 'last_used_at written after the outage');

check_logs($s, allow_tunneld => [qr/audit insert/]);
$s->stop_all;
done_testing();
