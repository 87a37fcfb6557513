#!/usr/bin/perl
# Admin UI, first run: every URL leads to /setup while no user exists, the
# setup form's rules and CSRF check, two setups racing create exactly one
# administrator, /setup is gone afterwards; security headers and the
# stylesheet.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $ua = $t->ua;

# --- before setup: everything goes to /setup -------------------------------
for my $path ('/', '/keys', '/names', '/login', '/admin/users',
              '/admin/invites', '/join/AAAAAAAAAAAAAAAAAAAAAAAA')
{
    my $r = $ua->get($path);
    is($r->{status}, 303, "GET $path before setup redirects");
    like($r->{headers}{location} // '', qr{/setup$}, "... to /setup");
}

my $r = $ua->post('/login', { name => 'x', password => 'y' });
is($r->{status}, 303, 'POST /login before setup redirects to /setup');

$r = $ua->get('/static/admin.css');
is($r->{status}, 200, 'stylesheet served');
like($r->{headers}{'content-type'}, qr{^text/css}, 'stylesheet type');

$r = $ua->get('/nope');
is($r->{status}, 404, 'unknown path: 404 page');
like($r->{content}, qr/Page not found/, '404 page is ours');

$r = $ua->request('PUT', '/setup', { a => 1 });
is($r->{status}, 405, 'PUT: 405');

# --- the form ------------------------------------------------------------------
$ua = $t->ua;
$r = $ua->get('/setup');
is($r->{status}, 200, 'GET /setup');
like($r->{content}, qr/At least 12 characters/, 'strength rule stated');
my $h = $r->{headers};
is($h->{'content-security-policy'},
   "default-src 'none'; style-src 'self'; img-src 'self'; "
   . "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
   'strict CSP');
is($h->{'x-frame-options'}, 'DENY', 'X-Frame-Options');
is($h->{'x-content-type-options'}, 'nosniff', 'nosniff');
is($h->{'referrer-policy'}, 'no-referrer', 'Referrer-Policy');
is($h->{'cache-control'}, 'no-store', 'no-store');
unlike($r->{content}, qr/<script|https?:\/\//i,
       'no script, no external resource');

my ($csrf_cookie) = grep { /^__Host-tunnel_csrf=/ } @{ $r->{set_cookie} };
ok($csrf_cookie, 'pre-session CSRF cookie set');
like($csrf_cookie // '', qr/; Path=\/;.*; Secure; HttpOnly; SameSite=Lax$/,
     'CSRF cookie attributes');
unlike($csrf_cookie // '', qr/Domain=/i, 'CSRF cookie host-only');

my $csrf = csrf($r);
is(length $csrf, 43, 'csrf token in the form');

my %good = (name => 'alice', password => 'correct horse battery',
            password2 => 'correct horse battery', csrf => $csrf);

$r = $ua->post('/setup', { %good, name => 'Alice!' });
is($r->{status}, 422, 'bad user name refused');
like($r->{content}, qr/user name must start with a lower-case|may only use/,
     'says what is wrong with the name');
like($r->{content}, qr/value="Alice!"/, 'typed name kept (escaped)');

$r = $ua->post('/setup', { %good, password => 'short', password2 => 'short' });
is($r->{status}, 422, 'short password refused');
like($r->{content}, qr/too short/, 'says it is too short');
like($r->{content}, qr/name="name"[^>]*value="alice"/, 'name kept');
unlike($r->{content}, qr/value="short"/, 'password not echoed');

$r = $ua->post('/setup', { %good, password2 => 'correct horse batterx' });
is($r->{status}, 422, 'mismatched passwords refused');
like($r->{content}, qr/not the same/, 'says they differ');

$r = $ua->post('/setup', { %good, name => 'alicealiceal',
                           password => 'alicealiceal',
                           password2 => 'alicealiceal' });
like($r->{content}, qr/must not be the user name/, 'password = name refused');

$r = $ua->post('/setup', { %good, name => '<b>x</b>' });
unlike($r->{content}, qr/<b>x<\/b>/, 'typed text is escaped');

# CSRF: missing field, wrong field, missing cookie
$r = $ua->post('/setup', { %good, csrf => '' });
is($r->{status}, 403, 'setup without csrf token: 403');
$r = $ua->post('/setup', { %good, csrf => 'A' x 43 });
is($r->{status}, 403, 'setup with a wrong csrf token: 403');
my $other = $t->ua;
$r = $other->post('/setup', \%good);
is($r->{status}, 403, 'setup without the csrf cookie: 403');
like($r->{content}, qr/form has expired/, 'friendly csrf page');
is($t->sql('SELECT count(*) FROM users'), 0, 'no user created yet');

# --- the race: N browsers post at the same moment ----------------------------
my $n = 8;
my @forms;
for my $i (1 .. $n) {
    my $u = $t->ua;
    my $g = $u->get('/setup');
    push @forms, [ $u, { name => "admin$i", password => "password number $i",
                         password2 => "password number $i",
                         csrf => csrf($g) } ];
}

my $at = time + 1;
my @kids;
for my $i (0 .. $#forms) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        sleep($at - time) if $at > time;
        my $res = $forms[$i][0]->post('/setup', $forms[$i][1]);
        POSIX::_exit($res->{status} == 303 ? 3 : $res->{status} == 410 ? 4
                                                                      : 5);
    }
    push @kids, $pid;
}

my %codes;
for my $pid (@kids) {
    waitpid($pid, 0);
    $codes{$? >> 8}++;
}

is($codes{3} // 0, 1, 'exactly one concurrent setup succeeded');
is($codes{4} // 0, $n - 1, 'the others got 410');
is($t->sql('SELECT count(*) FROM users'), 1, 'exactly one user');
is($t->sql('SELECT count(*) FROM users WHERE is_admin'), 1,
   'and it is an admin');

# --- after setup -----------------------------------------------------------------
$r = $ua->get('/setup');
is($r->{status}, 410, '/setup is gone after setup');
like($r->{content}, qr/Setup is done/, 'says so');

$r = $ua->post('/setup', \%good);
is($r->{status}, 410, 'POST /setup is gone too');
is($t->sql('SELECT count(*) FROM users'), 1, 'still one user');

$r = $ua->get('/');
is($r->{status}, 303, '/ without session goes to login');
like($r->{headers}{location} // '', qr{/login$}, '... /login');

$r = $ua->request('HEAD', '/login');
is($r->{status}, 200, 'HEAD /login');
is($r->{content} // '', '', 'HEAD has no body');

unlike($t->error_log, qr/\[(alert|crit|emerg)\]/, 'no alerts in error log');
unlike($t->error_log, qr/\[error\]/, 'no errors in error log');

$t->stop_all;
done_testing;
