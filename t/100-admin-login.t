#!/usr/bin/perl
# Admin UI sign-in: login/logout, session cookie attributes, session rows
# (hashed token, idle and absolute expiry), the generic failure message, the
# rate limits (per address and name, per address, per account), CSRF on
# signed-in forms.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(sleep);
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new(
    http_extra => "    tunnel_admin_login_limit 3 1h address=6 user=5;\n"
                . "    tunnel_admin_session_idle 3s;\n"
                . "    tunnel_admin_session_lifetime 1h;\n"
                . "    set_real_ip_from 127.0.0.1;\n"
                . "    set_real_ip_from ::1;\n"
                . "    real_ip_header X-Forwarded-For;\n");
$t->start_all;

my $admin = $t->setup_admin('alice', 'alice password 1');
my $bob = $t->join_user($admin, 'bob', password => 'bob password 12');

sub login {
    my ($name, $password, $addr) = @_;
    my $ua = $t->ua;
    my %h = $addr ? (headers => { 'X-Forwarded-For' => $addr }) : ();
    my $r = $ua->get('/login', %h);
    $r = $ua->post('/login', { name => $name, password => $password,
                               csrf => csrf($r) }, %h);
    return ($ua, $r);
}

# --- login, cookie ---------------------------------------------------------------
my ($ua, $r) = login('alice', 'alice password 1', '10.9.0.1');
is($r->{status}, 303, 'login succeeds');
like($r->{headers}{location}, qr{/\?done=signed-in$}, '... to the start page');
my ($sc) = grep { /^__Host-tunnel_session=/ } @{ $r->{set_cookie} };
ok($sc, 'session cookie set');
like($sc, qr/^__Host-tunnel_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax$/,
     'cookie: __Host- prefix, 256-bit token, Path=/, Secure, HttpOnly, '
     . 'SameSite=Lax');
unlike($sc, qr/Domain/i, 'cookie is host-only');

my $token = $ua->cookie('__Host-tunnel_session');
is($t->sql("SELECT count(*) FROM sessions WHERE token_hash = "
            . "'\\x" . sha256_hex($token) . "'::bytea"), 1,
   'session row keyed by sha256 of the token');
is($t->sql("SELECT count(*) FROM sessions WHERE encode(token_hash, 'hex') "
            . "LIKE '%" . unpack('H*', $token) . "%'"), 0,
   'the token itself is not stored');
is($t->sql("SELECT extract(epoch FROM expires_at - created_at)::int "
            . "FROM sessions WHERE token_hash = '\\x" . sha256_hex($token)
            . "'::bytea"), 3600, 'absolute expiry = session_lifetime');
ok($t->sql("SELECT last_login_at IS NOT NULL FROM users "
            . "WHERE name = 'alice'") eq 't', 'last_login_at recorded');

$r = $ua->get('/');
is($r->{status}, 200, 'signed in: start page');
like($r->{content}, qr/Signed in as <strong>alice/, 'knows who');

$r = $ua->get('/login');
is($r->{status}, 303, '/login while signed in goes home');

# --- CSRF on signed-in forms ----------------------------------------------------
$r = $ua->get('/names');
my $csrf = csrf($r);
is(length $csrf, 64, 'session csrf token in forms');
$r = $ua->post('/names', { action => 'reserve', name => 'csrfname' });
is($r->{status}, 403, 'form without csrf token: 403');
$r = $ua->post('/names', { action => 'reserve', name => 'csrfname',
                           csrf => '0' x 64 });
is($r->{status}, 403, 'form with a wrong csrf token: 403');
my $bcsrf = csrf($bob->get('/names'));
$r = $ua->post('/names', { action => 'reserve', name => 'csrfname',
                           csrf => $bcsrf });
is($r->{status}, 403, "another session's csrf token: 403");
is($t->sql("SELECT count(*) FROM reserved_names"), 0, 'nothing reserved');
$r = $ua->post('/names', { action => 'reserve', name => 'csrfname',
                           csrf => $csrf });
is($r->{status}, 303, 'with the right token it works');

# --- logout -------------------------------------------------------------------
$r = $ua->get('/logout');
is($r->{status}, 405, 'GET /logout: 405 (sign-out is a POST)');
$r = $ua->post('/logout', {});
is($r->{status}, 403, 'logout without csrf: 403');
$r = $ua->get('/');
is($r->{status}, 200, '... and still signed in');

$r = $ua->post('/logout', { csrf => $csrf });
is($r->{status}, 303, 'logout');
like($r->{headers}{location}, qr{/login$}, '... to /login');
ok((grep { /^__Host-tunnel_session=; Path=\/; Max-Age=0;/ }
    @{ $r->{set_cookie} }), 'cookie cleared');
is($t->sql("SELECT count(*) FROM sessions WHERE token_hash = '\\x"
            . sha256_hex($token) . "'::bytea"), 0, 'session row deleted');

$ua->set_cookie('__Host-tunnel_session', $token);
$r = $ua->get('/');
is($r->{status}, 303, 'the old cookie no longer works');

# --- expiry ---------------------------------------------------------------------
($ua) = login('alice', 'alice password 1', '10.9.0.2');
$token = $ua->cookie('__Host-tunnel_session');
my $where = "token_hash = '\\x" . sha256_hex($token) . "'::bytea";
my $idle1 = $t->sql("SELECT idle_expires_at FROM sessions WHERE $where");
sleep 1.2;
is($ua->get('/')->{status}, 200, 'used within the idle time');
my $idle2 = $t->sql("SELECT idle_expires_at FROM sessions WHERE $where");
isnt($idle2, $idle1, 'use pushes the idle expiry forward');
sleep 3.5;
$r = $ua->get('/');
is($r->{status}, 303, 'idle for longer than session_idle: signed out');
ok((grep { /^__Host-tunnel_session=; .*Max-Age=0/ } @{ $r->{set_cookie} }),
   'expired cookie cleared');

($ua) = login('alice', 'alice password 1', '10.9.0.2');
$token = $ua->cookie('__Host-tunnel_session');
$where = "token_hash = '\\x" . sha256_hex($token) . "'::bytea";
is($ua->get('/')->{status}, 200, 'fresh session works');
$t->sql("UPDATE sessions SET expires_at = now() - interval '1 second' "
         . "WHERE $where");
is($ua->get('/')->{status}, 303, 'past the absolute expiry: signed out, '
   . 'though not idle');

# --- failures: one message, rate limits -------------------------------------
$t->sql('DELETE FROM login_failures');
my (undef, $r1) = login('alice', 'wrong password!', '10.1.0.1');
my (undef, $r2) = login('nosuchuser', 'wrong password!', '10.1.0.2');
is($r1->{status}, 403, 'wrong password: 403');
is($r2->{status}, 403, 'unknown user: 403');
my ($m1) = $r1->{content} =~ /<p class="msg bad">(.*?)<\/p>/;
my ($m2) = $r2->{content} =~ /<p class="msg bad">(.*?)<\/p>/;
is($m1, 'Wrong user name or password.', 'generic message');
is($m2, $m1, 'the same message for an unknown user');
like($r1->{content}, qr/name="name"[^>]*value="alice"/, 'name kept');

# --- rate limits (sql/007): per (address, name) strictly, per address
# loosely, per account only from places it never signed in from ----------
sub msg { my ($r) = @_; ($r->{content} =~ /<p class="msg bad">(.*?)<\/p>/)[0] }

$t->sql('DELETE FROM login_failures');
for my $i (1 .. 3) {
    (undef, $r) = login('alice', "wrong $i password", '10.2.0.1');
    is($r->{status}, 403, "failure $i counted");
}
(undef, $r) = login('alice', 'alice password 1', '10.2.0.1');
is($r->{status}, 429, 'pair limit reached: even the right password is '
   . 'refused from there');
is(msg($r), 'Too many failed sign-ins.  Wait 60 minutes, then try again, '
   . 'or ask an administrator to clear them.', 'and says the real wait');
(undef, $r) = login(' ALICE ', 'alice password 1', '10.2.0.1');
is($r->{status}, 429, 'the same name typed another way is the same pair');
(undef, $r) = login('bob', 'bob password 12', '10.2.0.1');
is($r->{status}, 303, 'another user from that address signs in');
(undef, $r) = login('alice', 'alice password 1', '10.2.0.9');
is($r->{status}, 303, 'alice signs in from another address');
is($t->sql("SELECT count(*) FROM login_failures"), 3,
   'refused attempts are not counted again');
is($t->sql("SELECT count(*) FROM login_failures WHERE user_name = 'alice'"),
   3, 'a sign-in clears only its own address\'s failures');

$t->sql("UPDATE login_failures SET at = at - interval '50 minutes'");
(undef, $r) = login('alice', 'alice password 1', '10.2.0.1');
like(msg($r), qr/^Too many failed sign-ins\.  Wait 10 minutes,/,
     'the wait shrinks as failures age');
$t->sql("UPDATE login_failures SET at = at - interval '9 minutes 30 seconds'");
(undef, $r) = login('alice', 'alice password 1', '10.2.0.1');
like(msg($r), qr/Wait 1 minute,/, 'one minute (singular)');
$t->sql("UPDATE login_failures SET at = at - interval '31 seconds'");
(undef, $r) = login('alice', 'alice password 1', '10.2.0.1');
is($r->{status}, 303, 'sign-in works again once the window is clear');

# make run: every browser is the same address
$t->sql('DELETE FROM login_failures');
(undef, $r) = login('alice', 'alice password 1', '10.5.0.1');
is($r->{status}, 303, 'alice signs in from the shared address');
for my $typo (['bob', 'wrong'], ['bobx', 'bob password 12'],
              [' BOB ', 'wrong again'], ['bob', 'wrong 3']) {
    login(@$typo, '10.5.0.1');
}
(undef, $r) = login('bob', 'bob password 12', '10.5.0.1');
is($r->{status}, 429, "bob's own typos stop bob there");
(undef, $r) = login('alice', 'alice password 1', '10.5.0.1');
is($r->{status}, 303, "bob's typos do not stop alice");
is($t->sql("SELECT string_agg(DISTINCT user_name, ',') FROM login_failures"),
   'bob,bobx', 'names are counted folded');

# one address trying many names: address=6
$t->sql('DELETE FROM login_failures');
(undef, $r) = login('alice', 'alice password 1', '10.6.0.1');
login("guess$_", 'password guess', '10.6.0.1') for 1 .. 6;
(undef, $r) = login('bob', 'bob password 12', '10.6.0.1');
is($r->{status}, 429, 'address limit: a user new to that address waits');
(undef, $r) = login('alice', 'alice password 1', '10.6.0.1');
is($r->{status}, 303, 'a user who signed in from there before does not');

# one account guessed from many addresses: user=5
$t->sql('DELETE FROM login_failures');
login('alice', 'wrong password', "10.7.0.$_") for 1 .. 5;
(undef, $r) = login('alice', 'alice password 1', '10.7.0.9');
is($r->{status}, 429, 'account limit: alice waits at a new address');
(undef, $r) = login('alice', 'alice password 1', '10.9.0.1');
is($r->{status}, 303, 'but not where she signed in before');
(undef, $r) = login('nosuchuser', 'wrong password', "10.7.0.$_") for 1 .. 2;
(undef, $r) = login('bob', 'bob password 12', '10.7.0.1');
is($r->{status}, 303, 'other accounts are not slowed down');

# the attack of issue 14: wrong passwords typed for the administrator's
# name (an administrator called root) from the attacker's addresses must
# not lock root out of the browser root signs in from
$t->sql('DELETE FROM login_failures');
# (alice's first session idled out: a fresh one invites root)
my ($alice_now) = login('alice', 'alice password 1', '10.9.0.1');
$t->join_user($alice_now, 'root', password => 'root password 12');
$t->sql("UPDATE users SET is_admin = true WHERE name = 'root'");
(undef, $r) = login('root', 'root password 12', '10.8.0.1');
is($r->{status}, 303, 'root signs in from their usual address');
login('root', "wrong password $_", $_ <= 3 ? '10.66.0.1' : '10.66.0.2')
    for 1 .. 5;
is($t->sql("SELECT count(*) FROM login_failures WHERE user_name = 'root'"),
   5, 'the attacker typed five wrong passwords for root');
(undef, $r) = login('root', 'root password 12', '10.8.0.1');
is($r->{status}, 303, 'during the attack root still signs in where root '
   . 'signed in before');
(undef, $r) = login(' Root ', 'root password 12', '10.8.0.1');
is($r->{status}, 303, '... as often as root likes');
(undef, $r) = login('root', 'root password 12', '10.66.0.1');
is($r->{status}, 429, 'the attacker\'s address is refused even the right '
   . 'password');
(undef, $r) = login('root', 'root password 12', '10.66.0.2');
is($r->{status}, 429, '... from its second address too (account limit)');
(undef, $r) = login('root', 'root password 12', '10.8.0.2');
is($r->{status}, 429, 'a place root never signed in from waits out the '
   . 'window (the account limit slows new places only)');
(undef, $r) = login('alice', 'alice password 1', '10.66.0.1');
is($r->{status}, 303, 'other accounts are not slowed down');

$t->sql('DELETE FROM login_failures');
(undef, $r) = login(' ALICE ', 'alice password 1', '10.3.0.1');
is($r->{status}, 303, 'the name is folded: " ALICE " is alice');

# --- back to the page after signing in ------------------------------------
$ua = $t->ua;
$r = $ua->get('/names');
is($r->{status}, 303, 'signed out: /names redirects');
is($r->{headers}{location} =~ s{^https?://[^/]+}{}r, '/login?next=/names',
   '... to /login with next=');
$r = $ua->get('/login?next=%2Fnames');
like($r->{content}, qr{<input type="hidden" name="next" value="/names">},
     '... which the form carries');
like($r->{content},
     qr{Forgot your password\?  Ask an administrator for a password link},
     'the page says what to do about a lost password');
$r = $ua->post('/login', { name => 'alice', password => 'alice password 1',
                           next => '/names', csrf => csrf($r) },
               headers => { 'X-Forwarded-For' => '10.9.0.1' });
is($r->{headers}{location} =~ s{^https?://[^/]+}{}r, '/names',
   'signed in: back on /names');
$r = $ua->get('/login?next=%2Fadmin%2Faudit%3Fuser%3Dbob');
is($r->{headers}{location} =~ s{^https?://[^/]+}{}r, '/admin/audit?user=bob',
   'an admin page with its query');

# --- cookie names match exactly ---------------------------------------------------
# a tunnel page (same site) can set "__host-tunnel_session" with
# Domain=DOMAIN in browsers that check the __Host- prefix case-sensitively:
# such a look-alike must not sign anyone in, and a name sent twice counts
# for neither
{
    my ($fresh, $in) = login('alice', 'alice password 1', '10.9.0.1');
    is($in->{status}, 303, 'alice signs in');
    my $tok = $fresh->cookie('__Host-tunnel_session');
    ok($tok, 'alice has a session token');
    my $c = $t->ua;
    for my $name ('__host-tunnel_session', '__HOST-TUNNEL_SESSION') {
        my $res = $c->get('/keys', headers => { Cookie => "$name=$tok" });
        is($res->{status}, 303, "a look-alike cookie ($name) does not sign in");
    }
    my $res = $c->get('/keys',
        headers => { Cookie => "__Host-tunnel_session=$tok" });
    is($res->{status}, 200, 'the exact name does');
    $res = $c->get('/keys', headers => {
        Cookie => "__Host-tunnel_session=$tok; __Host-tunnel_session=x" });
    is($res->{status}, 303, 'the name twice: neither counts');
    like($t->error_log, qr/cookie "__Host-tunnel_session" sent twice/,
         '... and it is logged');
}

# --- disabled user -------------------------------------------------------------
$t->sql("UPDATE users SET disabled = true WHERE name = 'bob'");
is($bob->get('/keys')->{status}, 303, "disabled user's session stops working");
(undef, $r) = login('bob', 'bob password 12', '10.4.0.1');
is($r->{status}, 403, 'disabled user cannot sign in');
like($r->{content}, qr/disabled/, 'and is told so (after the right password)');
(undef, $r) = login('bob', 'not bobs password', '10.4.0.2');
like($r->{content}, qr/Wrong user name or password/,
     'a wrong password does not reveal the account is disabled');

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alerts in error log');
unlike($log, qr/\[error\]/, 'no errors in error log');

$t->stop_all;
done_testing;
