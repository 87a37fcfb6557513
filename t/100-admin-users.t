#!/usr/bin/perl
# Admin UI /admin/users: role checks on every admin URL and action, the
# list, promote/demote, disable (ends web sessions) / enable, delete, and
# never zero enabled administrators; an administrator's own row offers no
# disable, demote or delete and the server refuses them; Delete's checkbox
# says what it confirms; dates do not wrap.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $alice = $t->setup_admin('alice', 'alice password 1');
my $bob = $t->join_user($alice, 'bob', password => 'bob password 12');
my $carol = $t->join_user($alice, 'carol');

sub uid { $t->sql("SELECT id FROM users WHERE name = '$_[0]'") }

sub act {
    my ($ua, $name, $action, %extra) = @_;
    my $p = $ua->get('/admin/users');
    my $csrf = csrf($p) || csrf($ua->get('/keys'));
    return $ua->post('/admin/users', { id => uid($name), action => $action,
                                       csrf => $csrf, %extra });
}

# --- role checks ---------------------------------------------------------------
for my $path ('/admin/users', '/admin/invites') {
    is($bob->get($path)->{status}, 403, "user: GET $path 403");
    is($t->ua->get($path)->{status}, 303, "anonymous: GET $path to login");
}
my $r = act($bob, 'carol', 'disable');
is($r->{status}, 403, 'user: POST action 403');
$r = act($bob, 'bob', 'promote');
is($r->{status}, 403, 'user cannot promote themselves');
is($t->sql("SELECT count(*) FROM users WHERE is_admin"), 1,
   'still one admin');

# --- list ------------------------------------------------------------------------
$t->sql("INSERT INTO ssh_keys (user_id, key_type, key_base64, fingerprint) "
         . "VALUES (" . uid('bob') . ", 'ssh-ed25519', 'AAAA', "
         . "'SHA256:" . ('A' x 43) . "')");
$t->sql("INSERT INTO tunnel_events (event, name, user_id, session) VALUES "
         . "('open', 'one', " . uid('bob') . ", 'n/1/1'), "
         . "('open', 'two', " . uid('bob') . ", 'n/1/1'), "
         . "('close', 'two', " . uid('bob') . ", 'n/1/1')");
$r = $alice->get('/admin/users');
is($r->{status}, 200, 'admin lists users');
like($r->{content}, qr/alice <span class="tag on">admin<\/span>/,
     'alice is admin');
# Tunnels up comes from tunneld's live state, not from tunnel_events (the
# rows above say bob has one open): without tunneld it is unknown, and the
# page says why (t/100-admin-dashboard.t counts real tunnels)
like($r->{content}, qr/<td>bob<\/td><td data-label="Keys">1<\/td><td data-label="Tunnels up">\?<\/td>/,
     'bob: one key, tunnels up unknown');
like($r->{content}, qr/<td>carol<\/td><td data-label="Keys">0<\/td><td data-label="Tunnels up">\?<\/td>/, 'carol: no key');
like($r->{content}, qr/Tunnels up is unknown \(\?\): live state unavailable/,
     'says why tunnels up is unknown');

# --- one's own row -----------------------------------------------------------------
my ($own) = $r->{content} =~ m{(<tr><td>alice <span.*?</tr>)}s;
my ($bobs) = $r->{content} =~ m{(<tr><td>bob</td>.*?</tr>)}s;
ok($own && $bobs, 'rows of alice and bob found');
unlike($own // '', qr/<form|<button/, 'own row: no action at all');
like($own // '', qr{<span class="muted">your account</span>},
     '... says it is your account');
for my $action ('disable', 'promote', 'delete') {
    like($bobs // '', qr/name="action" value="$action"/,
         "bob's row offers $action");
}
like($bobs // '', qr{<span class="confirm"><form method="post" action="/admin/users"><input type="hidden" name="action" value="delete">.*?<label class="inline"><input type="checkbox" name="confirm" value="yes" required id="del-\d+"> Delete bob with their keys and names</label> <button class="danger" type="submit">Delete</button></form></span>}s,
     "Delete's checkbox is in Delete's own form and says what it deletes");
unlike($r->{content}, qr/> sure</, 'no lone "sure" box');
like($r->{content}, qr/<td class="opt date">\d{4}-\d\d-\d\d<\/td>/,
     'date cells are marked');
like($alice->get('/static/admin.css')->{content},
     qr/td\.date\{white-space:nowrap\}/, '... and do not wrap');

my $self_msg = 'You cannot disable, demote or delete your own account here: '
             . 'it would lock you out of this page.  Another administrator '
             . 'can do it.';
for my $action ('demote', 'disable', 'delete') {
    $r = act($alice, 'alice', $action, confirm => 'yes');
    is($r->{status}, 422, "the server refuses to $action oneself");
    my ($msg) = $r->{content} =~ m{<p class="msg bad">(.*?)</p>};
    is($msg, $self_msg, '... and says why');
}
is($t->sql("SELECT is_admin AND NOT disabled FROM users WHERE name = 'alice'"),
   't', 'alice is still an enabled admin');

# --- promote / demote, the last admin ------------------------------------------

$r = act($alice, 'bob', 'promote');
is($r->{status}, 303, 'promote bob');
is($t->sql("SELECT is_admin FROM users WHERE name = 'bob'"), 't',
   'bob is admin');
is($bob->get('/admin/users')->{status}, 200, 'bob now sees admin pages');
$r = act($bob, 'alice', 'demote');
is($r->{status}, 303, 'bob demotes alice');
is($alice->get('/admin/users')->{status}, 403,
   'alice lost admin pages at once');
$r = act($bob, 'bob', 'demote');
is($r->{status}, 422, 'bob cannot demote himself (the last admin either)');
$r = act($bob, 'alice', 'promote');
is($r->{status}, 303, 'bob promotes alice back');

# --- disable / enable -------------------------------------------------------------
is($carol->get('/keys')->{status}, 200, 'carol is signed in');
$r = act($alice, 'carol', 'disable');
is($r->{status}, 303, 'disable carol');
like($r->{headers}{location}, qr/done=user-updated/, '... confirmed');
is($t->sql("SELECT disabled FROM users WHERE name = 'carol'"), 't',
   'carol disabled');
is($t->sql("SELECT count(*) FROM sessions WHERE user_id = " . uid('carol')),
   0, "carol's web sessions are gone");
is($carol->get('/keys')->{status}, 303, 'carol is signed out');
like($alice->get('/admin/users')->{content},
     qr/carol <span class="tag off">disabled/, 'listed as disabled');
$r = act($alice, 'carol', 'enable');
is($r->{status}, 303, 'enable carol');
is($t->sql("SELECT disabled FROM users WHERE name = 'carol'"), 'f',
   'carol enabled');

# --- delete ---------------------------------------------------------------------
$r = act($alice, 'carol', 'delete');
is($r->{status}, 422, 'delete without confirmation refused');
like($r->{content}, qr/tick the box &quot;Delete \.\.\. with their keys and names&quot; beside/,
     '... saying which box to tick');
$r = act($alice, 'carol', 'delete', confirm => 'yes');
is($r->{status}, 303, 'delete carol');
is($t->sql("SELECT count(*) FROM users WHERE name = 'carol'"), 0,
   'carol gone');

$r = $alice->post('/admin/users', { id => 999999, action => 'disable',
                   csrf => csrf($alice->get('/admin/users')) });
is($r->{status}, 422, 'unknown user');
$r = $alice->post('/admin/users', { id => uid('bob'), action => 'explode',
                   csrf => csrf($alice->get('/admin/users')) });
is($r->{status}, 422, 'unknown action');

# the function itself refuses a non-admin actor
is($t->sql("SELECT tunnel_admin_user_action(" . uid('bob') . ", "
            . uid('alice') . ", 'demote')"), 'ok', 'sql: admin acts');
is($t->sql("SELECT tunnel_admin_user_action(" . uid('alice') . ", "
            . uid('bob') . ", 'demote')"), 'forbidden',
   'sql: a non-admin actor is refused');

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');

$t->stop_all;
done_testing;
