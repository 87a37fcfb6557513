#!/usr/bin/perl
# The audit log (issue 9, sql/004_audit.sql) and /admin/audit: every
# state-changing web and tunnelctl action leaves exactly one row with the
# right kind, actor, address and subject; a real ssh tunnel leaves its open
# and close ("client quit"); the page filters by user, name, kind and time,
# escapes what people typed, pages 100 rows at a time by id; a SIGKILLed
# worker and a SIGKILLed tunneld get their open tunnels closed as "node
# lost" when they start again, and nothing else.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;

watchdog(300);

my $t = NgxTunnel::AdminTest->new(tunneld => 1, workers => 2);
$t->start_all;
my $s = $t;

sub uid { $t->sql("SELECT id FROM users WHERE name = '$_[0]'") }

# the rows after id $after, web and tunnelctl kinds only (tunneld's auth,
# open and close rows are checked on their own), as "kind|actor|user|name|
# address|detail" lines
my $TUNNEL_KINDS = "('open', 'close', 'auth', 'takeover', 'kick', 'refused')";
sub rows_after {
    my ($after) = @_;
    my $out = $t->sql("SELECT concat_ws('|', event, coalesce(actor_name, '-'),"
        . " coalesce(user_name, '-'), coalesce(name, '-'),"
        . " coalesce(client_addr, '-'), coalesce(detail, '-'))"
        . " FROM tunnel_events WHERE id > $after"
        . " AND event NOT IN $TUNNEL_KINDS ORDER BY id");
    return [ grep { length } split /\n/, $out ];
}
sub last_id { $t->sql("SELECT coalesce(max(id), 0) FROM tunnel_events") }

# --- web actions -------------------------------------------------------------
my $mark = last_id();
my $alice = $t->setup_admin('alice', 'alice password 1');
my $setup = rows_after($mark);
is(scalar @$setup, 1, 'setup: one row');
my ($addr) = ($setup->[0] // '') =~ /^setup\|alice\|alice\|-\|([^|]+)\|first administrator$/;
like($addr // '', qr/^(127\.0\.0\.1|::1)$/,
     'setup: actor alice, subject alice, from the loopback address')
    or diag($setup->[0]);
$addr //= '127.0.0.1';

$mark = last_id();
my $ua = $t->ua;
my $r = $ua->get('/login');
$r = $ua->post('/login', { name => 'alice', password => 'wrong password!',
                           csrf => csrf($r) });
is($r->{status}, 403, 'wrong password refused');
$r = $ua->post('/login', { name => '<b>mallory</b>', password => 'x' x 12,
                           csrf => csrf($ua->get('/login')) });
is($r->{status}, 403, 'unknown user refused');
$r = $ua->post('/login', { name => 'alice', password => 'alice password 1',
                           csrf => csrf($ua->get('/login')) });
is($r->{status}, 303, 'alice signs in on a second browser');
is_deeply(rows_after($mark), [
    "login_failed|alice|alice|-|$addr|wrong password",
    "login_failed|<b>mallory</b>|-|-|$addr|no such user",
    "login|alice|alice|-|$addr|-",
], 'sign-ins: two failures and a success, one row each');

$mark = last_id();
my $bob = $t->join_user($alice, 'bob', password => 'bob password 12');
my $inv = $t->sql("SELECT max(id) FROM invitations");
is_deeply(rows_after($mark), [
    "invite_created|alice|-|-|$addr|invitation $inv, valid 24 h, note: test",
    "join|bob|bob|-|$addr|invitation $inv",
], 'invitation: created by alice, used by bob (no extra sign-in row)');

$mark = last_id();
$t->invite($alice, note => 'to revoke');
my $inv2 = $t->sql("SELECT max(id) FROM invitations");
my $page = $alice->get('/admin/invites');
$r = $alice->post('/admin/invites', { action => 'revoke', id => $inv2,
                                      csrf => csrf($page) });
is($r->{status}, 303, 'invitation revoked');
is_deeply(rows_after($mark), [
    "invite_created|alice|-|-|$addr|invitation $inv2, valid 24 h, note: to revoke",
    "invite_revoked|alice|-|-|$addr|invitation $inv2",
], 'revocation: one row');

# bob's key, name; a real tunnel
my $key = new_key($s, 'bob');
open my $fh, '<', $key->{pub} or die;
my $pub = <$fh>;
close $fh;
$mark = last_id();
$page = $bob->get('/keys');
$r = $bob->post('/keys', { action => 'add', key => $pub, csrf => csrf($page) });
is($r->{status}, 303, 'bob adds a key');
$page = $bob->get('/names');
$r = $bob->post('/names', { action => 'reserve', name => 'bobsite',
                            csrf => csrf($page) });
is($r->{status}, 303, 'bob reserves bobsite');
$r = $bob->post('/names', { action => 'release', name => 'bobsite',
                            csrf => csrf($bob->get('/names')) });
is($r->{status}, 303, 'bob releases bobsite');
is_deeply(rows_after($mark), [
    "key_added|bob|bob|-|$addr|ssh-ed25519 bob\@test",
    "name_reserved|bob|bob|bobsite|$addr|-",
    "name_released|bob|bob|bobsite|$addr|-",
], 'key and name changes: one row each');
is($t->sql("SELECT fingerprint FROM tunnel_events WHERE event = 'key_added'"),
   $key->{fingerprint}, 'the key row names its fingerprint');

my $backend = start_backend($s, 'bobapp');
sleep 2.2;                      # tunneld reloads keys within 2 s
$mark = last_id();
my $ssh = start_ssh($s, key => $key->{key}, user => 'bob',
                    remote => "bobapp:80:localhost:$backend->{port}");
ok(wait_route($s, 'bobapp', 10), 'bob opens a tunnel with ssh')
    or diag($ssh->output, tail_log($s, 'tunneld'));
ok(wait_until(5, sub { $t->sql("SELECT count(*) FROM tunnel_events"
                            . " WHERE event = 'open' AND id > $mark") == 1 }),
   'its open row is written');
like($t->sql("SELECT concat_ws('|', actor_name, user_name, name, client_addr)"
             . " FROM tunnel_events WHERE event = 'open' AND id > $mark"),
     qr/^bob\|bob\|bobapp\|127\.0\.0\.1:\d+$/,
     'open: actor and subject bob, the name, the ssh client address');
$ssh->stop;
ok(wait_until(5, sub { $t->sql("SELECT count(*) FROM tunnel_events"
                            . " WHERE event = 'close' AND id > $mark") == 1 }),
   'the client quits: one close row');
is($t->sql("SELECT concat_ws('|', actor_name, user_name, name, detail)"
           . " FROM tunnel_events WHERE event = 'close' AND id > $mark"),
   'bob|bob|bobapp|client quit', 'close: reason "client quit", by bob');

$mark = last_id();
$page = $bob->get('/keys');
my ($kid) = $page->{content} =~ /name="id" value="(\d+)"/;
$r = $bob->post('/keys', { action => 'delete', id => $kid,
                           csrf => csrf($page) });
is($r->{status}, 303, 'bob removes his key');
$page = $alice->get('/admin/users');
$r = $alice->post('/admin/users', { id => uid('bob'), action => 'disable',
                                    csrf => csrf($page) });
is($r->{status}, 303, 'alice disables bob');
$r = $ua->post('/logout', { csrf => csrf($ua->get('/keys')) });
is($r->{status}, 303, 'alice signs out of her second browser');
is_deeply(rows_after($mark), [
    "key_removed|bob|bob|-|$addr|ssh-ed25519 bob\@test",
    "user_disabled|alice|bob|-|$addr|-",
    "logout|alice|alice|-|$addr|-",
], 'key removal, disabling, signing out: one row each');

# --- tunnelctl -----------------------------------------------------------------
my $me = $ENV{USER} || getpwuid($>) || 'operator';
my $ctl = "tunnelctl ($me)";
sub ctl {
    my ($rc, $out, $err) = $t->tunnelctl(@_);
    is($rc, 0, "tunnelctl @_[0..1]") or diag("$out$err");
    return $out;
}
$mark = last_id();
my $carol = new_key($s, 'carol');
ctl('user', 'add', 'carol');
ctl('key', 'add', 'carol', $carol->{pub});
ctl('name', 'reserve', 'carolsite', 'carol');
ctl('name', 'release', 'carolsite');
ctl('system-name', 'add', 'intranet');
ctl('system-name', 'remove', 'intranet');
my ($link) = ctl('invite', 'create', '--note', 'ops') =~ m{/join/(\S+)};
my $inv3 = $t->sql("SELECT max(id) FROM invitations");
ctl('invite', 'revoke', $inv3);
ctl('user', 'disable', 'carol');
ctl('user', 'enable', 'carol');
is_deeply(rows_after($mark), [
    "user_added|$ctl|carol|-|local|-",
    "password_link|$ctl|carol|-|local|valid 72 h",
    "key_added|$ctl|carol|-|local|ssh-ed25519 carol\@test",
    "name_reserved|$ctl|carol|carolsite|local|-",
    "name_released|$ctl|carol|carolsite|local|-",
    "system_name_added|$ctl|-|intranet|local|-",
    "system_name_removed|$ctl|-|intranet|local|-",
    "invite_created|$ctl|-|-|local|invitation $inv3, valid 72 h, note: ops",
    "invite_revoked|$ctl|-|-|local|invitation $inv3",
    "user_disabled|$ctl|carol|-|local|-",
    "user_enabled|$ctl|carol|-|local|-",
], 'tunnelctl: one row per change, actor "tunnelctl (OS user)", address local');

# a deleted user's history stays readable
my $bob_id = uid('bob');
my $bob_rows = $t->sql("SELECT count(*) FROM tunnel_events"
                       . " WHERE user_id = $bob_id");
cmp_ok($bob_rows, '>=', 5, "bob is the subject of $bob_rows rows");
ctl('user', 'remove', 'bob');
is($t->sql("SELECT count(*) FROM tunnel_events WHERE user_id = $bob_id"
           . " AND user_name = 'bob'"), $bob_rows + 1,
   "they keep his name after he is removed (and one row more: removed)");
is($t->sql("SELECT concat_ws('|', event, actor_name, user_name)"
           . " FROM tunnel_events ORDER BY id DESC LIMIT 1"),
   "user_removed|$ctl|bob", 'removal: one row, named before the delete');

# --- the page -----------------------------------------------------------------
my $dave = $t->join_user($alice, 'dave');
is($dave->get('/admin/audit')->{status}, 403, 'a user may not read it');
is($t->ua->get('/admin/audit')->{status}, 303, 'anonymous: to /login');

sub table_rows {
    my ($html) = @_;
    my @rows;
    while ($html =~ m{<tr id="ev-(\d+)">(.*?)</tr>}sg) {
        my ($id, $tr) = ($1, $2);
        my @td = map { my $c = $_; $c =~ s/<[^>]*>//g; $c }
                 $tr =~ m{<td[^>]*>(.*?)</td>}sg;
        push @rows, { id => $id, when => $td[0], kind => $td[1],
                      who => $td[2], user => $td[3], name => $td[4],
                      addr => $td[5], detail => $td[6] };
    }
    return @rows;
}

$r = $alice->get('/admin/audit');
is($r->{status}, 200, 'administrator: /admin/audit');
like($r->{content}, qr{<a href="/admin/audit">Audit log</a>},
     'linked from the navigation');
my @rows = table_rows($r->{content});
my $total = $t->sql("SELECT count(*) FROM tunnel_events");
is(scalar @rows, $total, "every row shown ($total, under a page)");
is_deeply([ map { $_->{id} } @rows ],
          [ sort { $b <=> $a } map { $_->{id} } @rows ], 'newest first');
is($rows[0]{kind}, 'join', 'the newest is dave joining');
like($rows[0]{when}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'time in UTC');
my ($open) = grep { $_->{kind} eq 'open' } @rows;
is(join('|', @{$open}{qw(who user name)}), 'bob|bob|bobapp',
   'the open row: who, user, name');
like($open->{addr}, qr/^127\.0\.0\.1:\d+$/, '... and the ssh address');
like($r->{content}, qr{&lt;b&gt;mallory&lt;/b&gt;}, 'typed text is escaped');
unlike($r->{content}, qr{<b>mallory}, '... never raw');
unlike($r->{content}, qr/id="audit-older"/, 'no older page yet');

@rows = table_rows($alice->get('/admin/audit?user=bob')->{content});
ok(@rows >= 10 && !grep({ $_->{who} ne 'bob' && $_->{user} ne 'bob' } @rows),
   'filter by user: only rows where bob acted or was acted on ('
   . scalar(@rows) . ')');
ok((grep { $_->{kind} eq 'user_disabled' && $_->{who} eq 'alice' } @rows),
   '... including alice disabling him');
@rows = table_rows($alice->get('/admin/audit?name=carolsite')->{content});
is(join(',', map { $_->{kind} } @rows), 'name_released,name_reserved',
   'filter by name');
@rows = table_rows($alice->get('/admin/audit?kind=key_added')->{content});
is(scalar @rows, 2, 'filter by kind: the two key_added rows');
like(join(' ', map { $_->{detail} } @rows), qr/\Q$key->{fingerprint}\E/,
     '... with the fingerprint');
@rows = table_rows($alice->get('/admin/audit?kind=close&user=bob&name=bobapp')
                   ->{content});
is(scalar @rows, 1, 'filters combine');
my $today = strftime('%Y-%m-%d', gmtime);
@rows = table_rows($alice->get("/admin/audit?from=$today")->{content});
is(scalar @rows, $total, 'from today: everything');
@rows = table_rows($alice->get("/admin/audit?to=$today")->{content});
is(scalar @rows, $total, 'to today (a date includes the day): everything');
$r = $alice->get('/admin/audit?from=2999-01-01+00%3A00');
is(scalar(table_rows($r->{content})), 0, 'from the future: nothing');
like($r->{content}, qr/id="audit-empty"/, '... said so');
like($r->{content}, qr/value="2999-01-01 00:00"/, '... the filter kept');
$r = $alice->get('/admin/audit?to=2000-01-01');
is(scalar(table_rows($r->{content})), 0, 'to the past: nothing');
$r = $alice->get('/admin/audit?from=2030-02-30');
is($r->{status}, 400, 'an impossible date: 400');
like($r->{content}, qr/Give times as YYYY-MM-DD/, '... with the form');
is($alice->get('/admin/audit?kind=drop%20table')->{status}, 400,
   'an unknown kind: 400');
for my $kind ('login_failures_cleared', 'key_activated', 'activation_denied')
{
    is($alice->get("/admin/audit?kind=$kind")->{status}, 200,
       "kind $kind (sql/006, 007) can be filtered on");
}
is($alice->get('/admin/audit?before=12x')->{status}, 400, 'a bad cursor: 400');

# paging: 250 rows of one user, keyset by id
$t->sql("INSERT INTO tunnel_events (event, user_name, name, detail)"
        . " SELECT 'auth', 'pager', 'p' || i, 'row ' || i"
        . " FROM generate_series(1, 250) AS i");
my (@seen, $url, $pages);
$url = '/admin/audit?user=pager';
while ($url && ++$pages <= 5) {
    $r = $alice->get($url);
    my @page = table_rows($r->{content});
    push @seen, [ map { $_->{id} } @page ];
    ($url) = $r->{content} =~ m{<a id="audit-older" href="([^"]+)"};
    $url =~ s/&amp;/&/g if $url;
}
is(join(',', map { scalar @$_ } @seen), '100,100,50', 'three pages: 100, 100, 50');
my @all = map { @$_ } @seen;
is_deeply(\@all, [ sort { $b <=> $a } @all ], 'ids strictly newest first');
my %dup;
is(scalar(grep { $dup{$_}++ } @all), 0, 'no row on two pages');
is($all[0], $t->sql("SELECT max(id) FROM tunnel_events"), 'page 1 starts at the newest');
is(scalar @all, 250, 'all 250 rows seen');
like($r->{content}, qr{<a id="audit-newest" href="/admin/audit\?user=pager">},
     'an older page links back to the newest, keeping the filter');
is($t->sql("SELECT count(*) FROM tunnel_events WHERE event = 'auth'"
           . " AND user_name = 'pager' AND actor_name = 'pager'"), 250,
   'an auth row without actor gets its user as actor (tunneld rule)');

# --- node lost: one worker, then the whole tunneld --------------------------------
sleep 2.2;      # carol's key (tunnelctl key add) is loaded
my $back2 = start_backend($s, 'carol1');
my @ssh;
for my $i (1 .. 4) {
    push @ssh, start_ssh($s, key => $carol->{key}, user => 'carol',
                         remote => "carol$i:80:localhost:$back2->{port}");
}
for my $i (1 .. 4) {
    ok(wait_route($s, "carol$i", 10), "carol$i is up")
        or diag($ssh[$i - 1]->output, tail_log($s, 'tunneld'));
}
ok(wait_until(5, sub { $t->sql("SELECT count(*) FROM tunnel_events WHERE event"
                            . " = 'open' AND user_name = 'carol'") == 4 }),
   'four open rows');
my %by_pid;
for my $sess (split /\n/, $t->sql("SELECT session FROM tunnel_events"
                                  . " WHERE event = 'open' AND user_name = 'carol'")) {
    my ($pid) = $sess =~ m{/(\d+)/};
    $by_pid{$pid}++;
}
my @workers = $t->tunneld_pids;
is(scalar @workers, 2, 'two workers');
my ($victim) = sort { ($by_pid{$b} // 0) <=> ($by_pid{$a} // 0) } @workers;
my $lost = $by_pid{$victim} // 0;
my $kept = 4 - $lost;
diag("worker $victim holds $lost of carol's tunnels, the other $kept");
kill 'KILL', $victim;
ok(wait_until(10, sub { scalar(grep { $_ != $victim } $t->tunneld_pids) == 2 }),
   'the supervisor restarts the killed worker');
ok(wait_until(10, sub { $t->sql("SELECT count(*) FROM tunnel_events WHERE"
                            . " event = 'close' AND detail = 'node lost'") == $lost }),
   "its $lost open tunnel(s) are closed as 'node lost'")
    or diag(tail_log($s, 'tunneld'));
is($t->sql("SELECT count(*) FROM tunnel_events WHERE event = 'close'"
           . " AND detail = 'node lost' AND session NOT LIKE '%/$victim/%'"), 0,
   "the other worker's live tunnels are not touched");
sleep 1;
is($t->sql("SELECT count(*) FROM tunnel_events c WHERE c.event = 'close'"
           . " AND c.user_name = 'carol'"), $lost,
   'nothing else closed');

my @pids = $t->tunneld_pids;
$t->stop_tunneld(signal => 'KILL');
# the workers die with the supervisor (PDEATHSIG), a moment later
sub running {     # a zombie nobody reaps holds no socket
    my ($pid) = @_;
    my $stat = read_file("/proc/$pid/stat");
    return $stat ne '' && $stat !~ /^\d+ \(.*\) Z /s;
}
ok(wait_until(10, sub { !grep { running($_) } @pids }),
   'tunneld and its workers are gone');
$t->start_tunneld;
ok(wait_until(10, sub { $t->sql("SELECT count(*) FROM tunnel_events WHERE"
                            . " event = 'close' AND detail = 'node lost'") == 4 }),
   "after SIGKILL of tunneld and a restart: the other $kept closed too")
    or diag(tail_log($s, 'tunneld'));
is($t->sql("SELECT count(*) FROM tunnel_events o WHERE o.event = 'open'"
           . " AND NOT EXISTS (SELECT 1 FROM tunnel_events c"
           . " WHERE c.event = 'close' AND c.session = o.session"
           . " AND c.name = o.name AND c.id > o.id)"), 0,
   'no open row is left without its close');
is($t->sql("SELECT count(*) FROM tunnel_events WHERE detail = 'node lost'"
           . " AND (actor_name IS NOT NULL OR user_name <> 'carol')"), 0,
   'node-lost rows: nobody did it, the subject is the tunnel owner');
@rows = table_rows($alice->get('/admin/audit?kind=close&user=carol')->{content});
is(scalar(grep { $_->{detail} eq 'node lost' } @rows), 4, 'shown on the page');
$_->stop for @ssh;

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');
unlike(read_file($t->log_path('tunneld')), qr/audit insert failed|node failed/,
       'tunneld wrote every row');

$t->stop_all;
done_testing;
