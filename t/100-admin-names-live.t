#!/usr/bin/perl
# Reserving a name on /names while another user's tunnel is live on it (the
# whole stack, real ssh): the reservation is made, but the live tunnel keeps
# the name until it closes (tunneld refuses the reserver meanwhile), so the
# page says "Reserved: it is yours once USER's tunnel on it closes" instead
# of "The name is yours now", and nobody is kicked.  A name on which the
# reserver's own tunnel is live, or none, is "yours now" as before.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;

watchdog(180);

my $t = NgxTunnel::AdminTest->new(tunneld => 1);
$t->start_all;
my $s = $t;

my $alice = $t->setup_admin('alice');
my $bob = $t->join_user($alice, 'bob');
my $carol = $t->join_user($alice, 'carol');
my $bob_key = new_user($s, 'bob', exists => 1);
my $carol_key = new_user($s, 'carol', exists => 1);
my $be = start_backend($s, 'live');

sub reserve {
    my ($ua, $name) = @_;
    my $p = $ua->get('/names');
    return $ua->post('/names', { action => 'reserve', name => $name,
                                 csrf => csrf($p) });
}

# carol's tunnel is live on sharedapp; bob reserves it
my $ssh_carol = start_ssh($s, key => $carol_key->{key}, user => 'carol',
    remote => "sharedapp:80:localhost:$be->{port}");
ok(wait_route($s, 'sharedapp', 10), "carol's tunnel sharedapp is up")
    or diag($ssh_carol->output, tail_log($s, 'tunneld'));

my $r = reserve($bob, 'sharedapp');
is($r->{status}, 200, 'bob reserves sharedapp: the Names page, not a redirect');
like($r->{content},
     qr{<p class="msg good">Reserved: it is yours once carol&#39;s tunnel on it closes\.</p>},
     "... saying it is his once carol's tunnel closes");
unlike($r->{content}, qr/The name is yours now/, '... not "yours now"');
like($r->{content}, qr{<td class="mono">sharedapp</td>}, '... listed as his');
is($t->sql("SELECT u.name FROM reserved_names r JOIN users u "
           . "ON u.id = r.user_id WHERE r.name = 'sharedapp'"), 'bob',
   'the reservation is made');
is({ route_of($s, 'sharedapp') }->{user}, 'carol',
   "carol's tunnel keeps the name (no kick)");
ok($ssh_carol->alive, "carol's ssh still runs");

# meanwhile ssh tells bob what the page said
sleep 2.2;      # tunneld reloads reserved names within 2 s of the NOTIFY
my $ssh_bob = start_ssh($s, key => $bob_key->{key}, user => 'bob',
    session => 1, exit_on_forward_failure => 0,
    remote => "sharedapp:80:localhost:$be->{port}");
ok($ssh_bob->wait_for(qr/in use by another user/, 10),
   'bob\'s ssh -R sharedapp: "in use by another user" while carol\'s is up')
    or diag($ssh_bob->output);
$ssh_bob->stop;

# bob's own live tunnel, or no tunnel: "yours now" as before
my $ssh_bob2 = start_ssh($s, key => $bob_key->{key}, user => 'bob',
    remote => "bobown:80:localhost:$be->{port}");
ok(wait_route($s, 'bobown', 10), "bob's tunnel bobown is up");
$r = reserve($bob, 'bobown');
is($r->{status}, 303, "reserving the name of his own live tunnel: redirect");
like($r->{headers}{location}, qr/done=name-reserved$/, '... "yours now"');
$ssh_bob2->stop;

$r = reserve($bob, 'quiet');
is($r->{status}, 303, 'reserving a name nobody uses: redirect');
like($r->{headers}{location}, qr/done=name-reserved$/, '... "yours now"');

$ssh_carol->stop;

check_logs($s);

$t->stop_all;
done_testing;
