#!/usr/bin/perl

# Fault matrix, row 2 (issue 14): PostgreSQL stopped, then started.
#
#   - a live tunnel keeps serving all through the outage;
#   - new logins with known keys work from tunneld's in-memory key table: a
#     fresh `ssh -R` during the outage gets its tunnel and serves, for a
#     user who had never logged in before the outage too;
#   - the audit rows made during the outage (auth, open, close) wait in
#     tunneld's queue and are written after the restart: counted, none
#     lost, none doubled;
#   - every kind of admin page answers the "database unavailable" page (503
#     with a human message and Retry-After) within the database timeout,
#     never a 500 or a hang: the start page, /admin/tunnels (and its JSON
#     twin), /admin/users, /admin/audit, the sign-in POST; and all of them
#     work again after the restart.
#
# t/055-audit-db-down.t checks the audit queue's batches and a refused row;
# t/100-admin-db.t the admin pool's timeout and reconnect.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use JSON::PP ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;

watchdog(240);

my $DB_TIMEOUT = 2;
my $t = NgxTunnel::AdminTest->new(tunneld => 1,
    http_extra => "    tunnel_admin_database_timeout ${DB_TIMEOUT}s;\n");
$t->start_all;
my $s = $t;

my $web = $t->setup_admin('alice', 'alice password 1');
my $alice = new_user($s, 'alice', exists => 1);
my $bob = new_user($s, 'bob');        # never logs in before the outage
my $be = start_backend($s, 'one');

my $live = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "pglive:80:localhost:$be->{port}");
ok(wait_route($s, 'pglive', 10), 'pglive up') or diag($live->output);
is(status_body($s, 'pglive'), '200 hello from backend one', 'pglive serves');

# what the audit log holds before the outage (the open row comes
# asynchronously)
ok(wait_until(10, sub {
    sql_query($s, "SELECT count(*) FROM tunnel_events"
              . " WHERE event = 'open' AND name = 'pglive'") == 1 }),
    'open row of pglive written');
my $last_id = sql_query($s, "SELECT coalesce(max(id), 0) FROM tunnel_events");

# every admin page kind, for the signed-in administrator
my @pages = ('/', '/admin/tunnels', '/admin/tunnels.json', '/admin/users',
             '/admin/audit');
for my $p (@pages) {
    is($web->get($p)->{status}, 200, "database up: $p 200");
}

$t->stop_postgres;
my $t_stop = time;


# --- the live tunnel -----------------------------------------------------------

my ($n_ok, $n_req, $max) = (0, 0, 0);
my $t_loop = time;
while (time < $t_loop + 3) {
    my $t0 = time;
    $n_req++;
    $n_ok++ if status_body($s, 'pglive') eq '200 hello from backend one';
    $max = time - $t0 if time - $t0 > $max;
    sleep 0.1;
}
is($n_ok, $n_req, sprintf 'database down: the live tunnel serves '
    . '(%d of %d requests 200, max %.3f s)', $n_ok, $n_req, $max);


# --- new logins with known keys ------------------------------------------------

my $t0 = time;
my $new_b = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "pgnewb:80:localhost:$be->{port}");
my $rb = wait_route($s, 'pgnewb', 10);
ok($rb, sprintf 'database down: bob (first login ever) gets a tunnel '
    . '(%.2f s)', time - $t0) or diag($new_b->output, tail_log($s, 'tunneld'));
is(status_body($s, 'pgnewb'), '200 hello from backend one', '... and it serves');

$t0 = time;
my $new_a = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "pgnewa:80:localhost:$be->{port}");
ok(wait_route($s, 'pgnewa', 10), sprintf 'database down: a second session '
    . 'of alice gets a tunnel (%.2f s)', time - $t0) or diag($new_a->output);
is(status_body($s, 'pgnewa'), '200 hello from backend one', '... and it serves');

# both close during the outage: their close rows are queued too
$new_b->stop;
$new_a->stop;
ok(wait_no_route($s, 'pgnewb', 10) && wait_no_route($s, 'pgnewa', 10),
    'database down: their routes released at close');

# made during the outage: auth x2, open x2, close x2
my %want = (auth => 2, open => 2, close => 2);


# --- the admin pages -----------------------------------------------------------

my $anon = $t->ua;
my $login = $anon->get('/login');    # 503 too: no csrf cookie to be had
my @checks = (map({ [$web, 'GET', $_] } @pages),
              [$anon, 'GET', '/login'],
              [$anon, 'POST', '/login'],
              [$web, 'POST', '/admin/users']);
for my $c (@checks) {
    my ($ua, $m, $p) = @$c;
    my $t0 = time;
    my $r = $m eq 'GET' ? $ua->get($p)
        : $ua->post($p, { name => 'alice', password => 'alice password 1',
                          csrf => 'x', id => 1, action => 'disable' });
    my $dt = time - $t0;
    my $who = $ua == $web ? 'signed in' : 'anonymous';
    is($r->{status}, 503, sprintf 'database down: %s %s (%s): 503 in %.2f s',
        $m, $p, $who, $dt) or diag(substr $r->{content}, 0, 300);
    ok($dt < $DB_TIMEOUT + 1.5, "... within the database timeout "
        . "($DB_TIMEOUT s) plus slack");
    if ($p =~ /\.json$/) {
        # what tunnels.js polls: it shows the message (an HTML page would
        # make it say "you may have been signed out")
        my $j = eval { JSON::PP->new->decode($r->{content}) } // {};
        is($r->{headers}{'content-type'} // '', 'application/json',
            '... as JSON, for the page\'s poller');
        ok(defined $j->{available} && !$j->{available}
            && ($j->{error} // '') eq 'database_unavailable',
            '... {available: false, error: "database_unavailable"}');
        like($j->{message} // '',
            qr/The database is not answering\.  Tunnels keep working/,
            '... with the message the page shows');
    } else {
        like(page_text($r->{content}),
            qr/The database is not answering.*Tunnels keep working/,
            '... the "database unavailable" page, in words');
        like($r->{headers}{'content-type'} // '', qr{^text/html},
            '... as HTML');
    }
    is($r->{headers}{'retry-after'}, '30', '... with Retry-After');
}
ok($live->alive, 'database down: the live client stays connected');


# --- PostgreSQL back: the queued rows ------------------------------------------

$t->start_postgres;
my $t_start = time;

my %got;
my $q = "SELECT event, count(*) FROM tunnel_events WHERE id > $last_id"
    . " GROUP BY event ORDER BY event";
my $written = wait_until(20, sub {
    %got = map { split /\|/ } split /\n/,
        sql_query($s, $q) =~ s/\t/|/gr;
    return !grep { ($got{$_} // 0) < $want{$_} } keys %want;
});
ok($written, sprintf 'database back: the queued audit rows are written '
    . '(%.2f s after the restart)', time - $t_start)
    or diag(tail_log($s, 'tunneld'));
sleep 2;    # a doubled batch would land now
%got = map { split /\|/ } split /\n/, sql_query($s, $q) =~ s/\t/|/gr;
is_deeply(\%got, \%want, 'none lost, none doubled: '
    . join ', ', map { "$_ $got{$_}" } sort keys %got);
is(sql_query($s, "SELECT string_agg(DISTINCT name, ',' ORDER BY name)"
    . " FROM tunnel_events WHERE id > $last_id AND event <> 'auth'"),
    'pgnewa,pgnewb', 'the rows name the tunnels opened during the outage');
is(sql_query($s, "SELECT count(*) FROM ssh_keys k JOIN users u"
    . " ON u.id = k.user_id WHERE u.name = 'bob'"
    . " AND k.last_used_at IS NOT NULL"), 1,
    "bob's key last_used_at written after the outage");

my $status = 0;
wait_until(10, sub { ($status = $web->get('/')->{status}) == 200 });
is($status, 200, sprintf 'database back: the start page works '
    . '(%.2f s after the restart)', time - $t_start);
for my $p (@pages) {
    is($web->get($p)->{status}, 200, "database back: $p 200");
}
is(status_body($s, 'pglive'), '200 hello from backend one',
    'database back: pglive still serves');
ok($live->alive, 'and its client never disconnected');
is(sql_query($s, "SELECT count(*) FROM tunnel_events"
    . " WHERE name = 'pglive' AND event = 'close'"), 0,
    'no close row for pglive');
$live->stop;

check_logs($s,
    allow_nginx => [qr/tunnel: admin: (?:cannot connect to the database|database connection lost|the database did not answer in time)/],
    allow_tunneld => [qr/\bdb\b|database|postgres|audit|last_used/i]);

$t->stop_all;
done_testing;
