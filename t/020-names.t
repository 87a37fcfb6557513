#!/usr/bin/perl

# Tunnel names: invalid and reserved names are refused, a name reserved by
# another user is refused, another user cannot take a live name, names are
# folded to lower case, and one session may hold several names.  A nameless
# -R gets the user's first reserved name in name order.

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
my $bob = new_user($s, 'bob');
my $one = start_backend($s, 'one');
my $two = start_backend($s, 'two');

my ($rc0, $out0, $err0) = $s->tunnelctl('name', 'reserve', 'bobsite', 'bob');
is($rc0, 0, 'tunnelctl name reserve bobsite bob') or diag("$out0$err0");
sleep 2.5;      # tunneld reloads reserved names within 2 s of the NOTIFY


sub no_routes {
    my $keys = $s->redis_cli('KEYS', 'tunnel:route:*');
    return $keys eq '' ? 'none' : join(',', sort split /\n/, $keys);
}


# --- refused names ------------------------------------------------------------

my @refused = (
    ['bad_name', 'underscore'],
    ['-x', 'leading dash'],
    ['x-', 'trailing dash'],
    ['a' x 64, '64 characters'],
    ['www', 'reserved www'],
    ['admin', 'reserved admin'],
    ['WWW', 'reserved www in upper case'],
    ['bobsite', "bob's reserved name"],
    ['xn--lice-43d', 'punycode look-alike of "alice"'],
);

for my $case (@refused) {
    my ($name, $why) = @$case;
    my ($rc, $out, $err) = run_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "$name:80:localhost:$one->{port}", timeout => 15);
    isnt($rc, 0, "$why: ssh -R '$name' exits non-zero");
    isnt($rc, -1, "$why: ssh -R '$name' exits by itself (no hang)");
    like($err, qr/remote port forwarding failed/,
        "$why: ssh reports the forwarding failure")
        or diag("out: $out\nerr: $err");
    is(no_routes(), 'none', "$why: nothing registered in Redis");

    # with a session channel (and without ExitOnForwardFailure) tunneld can
    # tell the user why, naming the name
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, exit_on_forward_failure => 0,
        remote => "$name:80:localhost:$one->{port}");
    ok($ssh->wait_for(qr/\Q$name\E/i, 8),
        "$why: the session explains the refusal naming '$name'")
        or diag($ssh->output);
    $ssh->stop;
}

# a valid 63-character name is accepted (the limit is exact)
my $long = 'b' x 63;
my $ssh63 = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "$long:80:localhost:$one->{port}");
my $route = wait_route($s, $long, 10) // {};
is($route->{user}, 'alice', '63-character name accepted');
my $r = http_get($s, $long, '/');
is("$r->{status} $r->{body}", '200 hello from backend one',
    '63-character name reachable');
$ssh63->stop;


# --- case folding and several names in one session ------------------------------

my $ssh_a = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => ["MixedCase:80:localhost:$one->{port}",
               "second:80:localhost:$two->{port}"]);
$route = wait_route($s, 'mixedcase', 10) // {};
is($route->{user}, 'alice', '-R MixedCase: route under the lower-case name');
my $route2 = wait_route($s, 'second', 5) // {};
is($route2->{user}, 'alice', 'second -R in the same session: route');
is($route2->{session}, $route->{session}, 'both names: same session');
isnt($route2->{socket}, $route->{socket}, 'both names: own socket each');
$r = http_get($s, 'mixedcase', '/');
is("$r->{status} $r->{body}", '200 hello from backend one',
    'first name reaches its backend');
$r = http_get($s, 'second', '/');
is("$r->{status} $r->{body}", '200 hello from backend two',
    'second name reaches its backend');


# --- another user cannot take a live name ----------------------------------------

my $before = $s->redis_cli('HGET', 'tunnel:route:mixedcase', 'session');

my $ssh_b = start_ssh($s, key => $bob->{key}, user => 'bob', session => 1,
    remote => "mixedcase:80:localhost:$two->{port}");
my $rc = $ssh_b->finish(15);
my $out = $ssh_b->{out} . $ssh_b->{err};
isnt($rc, 0, 'live name of another user: ssh exits non-zero');
isnt($rc, -1, 'live name of another user: ssh exits by itself');
like($out, qr/\bmixedcase\b/i,
    'live name of another user: the message names the name')
    or diag($out);

# without ExitOnForwardFailure the session stays and says why
$ssh_b = start_ssh($s, key => $bob->{key}, user => 'bob', session => 1,
    exit_on_forward_failure => 0,
    remote => "mixedcase:80:localhost:$two->{port}");
ok($ssh_b->wait_for(qr/mixedcase\b.*\bin use\b|\bin use\b.*mixedcase\b/is, 8),
    'live name of another user: session says the name is in use')
    or diag($ssh_b->output);
unlike($ssh_b->output, qr/\balice\b/,
    'live name of another user: the owner is not disclosed');
$ssh_b->stop;

is($s->redis_cli('HGET', 'tunnel:route:mixedcase', 'session'), $before,
    'live name of another user: route unchanged');
for (1 .. 3) {
    $r = http_get($s, 'mixedcase', '/');
    is("$r->{status} $r->{body}", '200 hello from backend one',
        "live name of another user: still reaches the owner's backend ($_)");
}
ok($ssh_a->alive, "owner's session still up");


# --- bob may use his own reserved name -----------------------------------------

my $ssh_bs = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "bobsite:80:localhost:$two->{port}");
$route = wait_route($s, 'bobsite', 10) // {};
is($route->{user}, 'bob', 'own reserved name by explicit -R bobsite');
$ssh_bs->stop;

$ssh_a->stop;
ok(wait_no_route($s, 'mixedcase', 3) && wait_no_route($s, 'second', 3),
    'both names released when the session ends');


# --- a nameless -R gets the first reserved name in name order ------------------
# (README "Tunnel names"; the start page suggests the same one, see
# t/100-admin-home.t): bob-a, reserved after bobsite, sorts before it

($rc0, $out0, $err0) = $s->tunnelctl('name', 'reserve', 'bob-a', 'bob');
is($rc0, 0, 'tunnelctl name reserve bob-a bob') or diag("$out0$err0");
sleep 2.5;
my $ssh_nl = start_ssh($s, key => $bob->{key}, user => 'bob', session => 1,
    remote => "80:localhost:$two->{port}");
my ($got) = $ssh_nl->wait_for(qr{Your tunnel is up: http://([a-z0-9-]+)\.},
                              10);
is($got, 'bob-a', '-R 80: the first of two reserved names in name order, '
   . 'not the older one') or diag($ssh_nl->output);
$route = wait_route($s, 'bob-a', 10) // {};
is($route->{user}, 'bob', '... held by bob');
$ssh_nl->stop;
ok(wait_no_route($s, 'bob-a', 3), '... released when the session ends');

check_logs($s);

$s->stop_all;
done_testing;
