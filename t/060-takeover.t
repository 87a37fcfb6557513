#!/usr/bin/perl

# Reconnect takes the name over: the same user's new session gets the
# name, the old session is closed, requests reach the new backend, and the
# old session's exit does not release the new route.  A clean exit then a
# reconnect gets the name back at once.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $s = start_stack();
my $port = $s->env->{HTTP_PORT};

my $alice = new_user($s, 'alice');
# a second key of the same user: a laptop and a desktop
my $alice2 = new_user($s, 'alice', exists => 1);
my $bob = new_user($s, 'bob');
my $one = start_backend($s, 'one');
my $two = start_backend($s, 'two');
my $three = start_backend($s, 'three');


sub body_of { status_body($s, $_[0]) }


my $ssh1 = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "myproj:80:localhost:$one->{port}");
my $r1 = wait_route($s, 'myproj', 10);
ok($r1, 'first session: tunnel up') or diag($ssh1->output);
$r1 //= {};
is(body_of('myproj'), '200 hello from backend one', 'first session serves');
# warm both workers' caches with the first route
body_of('myproj') for 1 .. 4;


# --- the same user reconnects (other key, session channel) ------------------------

my $t0 = time;
my $ssh2 = start_ssh($s, key => $alice2->{key}, user => 'alice', session => 1,
    remote => "myproj:80:localhost:$two->{port}");
ok($ssh2->wait_for(qr{http://myproj\.localhost:$port\b}, 10),
    'second session: gets the name (URL printed)') or diag($ssh2->output);
my $r2 = wait_route($s, 'myproj', 10,
    sub { ($_[0]{session} // '') ne ($r1->{session} // '') });
ok($r2, 'second session: route now belongs to the new session');
$r2 //= {};
isnt($r2->{socket}, $r1->{socket}, 'takeover: a new socket path');

my $rc1 = $ssh1->finish(10);
ok($rc1 != -1, sprintf 'first session closed by tunneld (%.2f s, exit %s)',
    time - $t0, $rc1);
ok(wait_until(3, sub { !-e ($r1->{socket} // '') }),
    "first session's socket removed");

for my $i (1 .. 4) {
    is(body_of('myproj'), '200 hello from backend two',
        "requests reach the new backend ($i)");
}
is($s->redis_cli('HGET', 'tunnel:route:myproj', 'session'), $r2->{session},
    "the old session's exit did not release the new route");
ok($ssh2->alive, 'second session still up');


# --- another user still cannot take it ----------------------------------------------

my ($rc) = run_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "myproj:80:localhost:$three->{port}", timeout => 15);
ok($rc != 0 && $rc != -1, "another user cannot take it over (exit $rc)");
is(body_of('myproj'), '200 hello from backend two', 'still the second backend');


# --- a takeover with the same key, -N ------------------------------------------------

my $ssh3 = start_ssh($s, key => $alice2->{key}, user => 'alice',
    remote => "myproj:80:localhost:$three->{port}");
my $r3 = wait_route($s, 'myproj', 10,
    sub { ($_[0]{session} // '') ne ($r2->{session} // '') });
ok($r3, 'same key again: takes the name over');
ok($ssh2->finish(10) != -1, 'the session-channel client is closed');
ok(wait_until(5, sub { body_of('myproj') eq '200 hello from backend three' }),
    'requests reach the third backend');
is(body_of('myproj'), '200 hello from backend three', 'and keep doing so');


# --- clean exit, reconnect at once -------------------------------------------------

$ssh3->stop;
ok(wait_no_route($s, 'myproj', 3), 'clean exit releases the name');
my $ssh4 = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "myproj:80:localhost:$one->{port}");
ok(wait_route($s, 'myproj', 10), 'reconnect after exit gets the name');
is(body_of('myproj'), '200 hello from backend one', 'and serves the first backend');
$ssh4->stop;

# the audit log recorded the takeovers
my $n = 'none';
wait_until(5, sub {
    $n = eval { sql_query($s, "SELECT count(*) FROM tunnel_events"
        . " WHERE event = 'takeover' AND name = 'myproj'") } // "error: $@";
    return $n =~ /^\d+$/ && $n >= 2;
});
ok($n =~ /^\d+$/ && $n >= 2, "tunnel_events has the takeovers ($n)");

check_logs($s);

$s->stop_all;
done_testing;
