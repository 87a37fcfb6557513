#!/usr/bin/perl
# Admin UI invitations: only admins create, list and revoke them; a link
# creates exactly one account and signs it in; used, expired, revoked and
# unknown links get clear pages; the admin flag is honoured; tokens are
# random and stored hashed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

# links from the request's Host, not from tunnel_admin_base_url
my $t = NgxTunnel::AdminTest->new(host_links => 1);
$t->start_all;

my $alice = $t->setup_admin;

# --- create ---------------------------------------------------------------------
my $page = $alice->get('/admin/invites');
is($page->{status}, 200, 'admin opens /admin/invites');
my $r = $alice->post('/admin/invites', { action => 'create', hours => 48,
                                         note => 'for <carol>',
                                         csrf => csrf($page) });
is($r->{status}, 200, 'invitation created');
my ($link) = $r->{content} =~ m{id="invite-link">([^<]+)<};
like($link, qr{^http://localhost:\d+/join/[A-Za-z0-9_-]{24}$},
     'full link with a 144-bit token shown');
my ($token) = $link =~ m{/join/(.+)$};
like($r->{content}, qr/for &lt;carol&gt;/, 'note listed, escaped');
like($r->{content}, qr/class="tag on">open</, 'status open');
is($t->sql("SELECT count(*) FROM invitations WHERE token_hash = '\\x"
            . sha256_hex($token) . "'::bytea"), 1, 'stored as sha256');
is($t->sql("SELECT round(extract(epoch FROM expires_at - created_at) "
            . "/ 3600) FROM invitations"), 48, 'expires in 48 hours');
unlike($alice->get('/admin/invites')->{content}, qr/\Q$token\E/,
       'the token is never shown again');

like($page->{content}, qr/name="hours" type="number" min="1" max="8760"/,
     'the form allows 1 to 8760 hours, as tunnelctl');
for my $h ('0', '8761', '100000', '-1', '1.5', 'abc', '') {
    $r = $alice->post('/admin/invites', { action => 'create', hours => $h,
                                          csrf => csrf($page) });
    is($r->{status}, 422, "hours '$h' refused");
    like($r->{content}, qr/from 1 to 8760 \(one year\)/, '... says the range');
}
is($t->sql('SELECT count(*) FROM invitations'), 1, 'nothing created by them');

for my $h (721, 8760) {
    $r = $alice->post('/admin/invites', { action => 'create', hours => $h,
                                          note => "valid $h hours",
                                          csrf => csrf($page) });
    is($r->{status}, 200, "hours '$h' accepted");
    is($t->sql("SELECT round(extract(epoch FROM expires_at - created_at) "
                . "/ 3600) FROM invitations WHERE note = 'valid $h hours'"),
       $h, "... expires in $h hours");
}

# the note: at most 200 characters, counted as characters (as tunnelctl)
$r = $alice->post('/admin/invites', { action => 'create', hours => 1,
                                      note => "\x{e9}" x 200,
                                      csrf => csrf($page) });
is($r->{status}, 200, 'a note of 200 two-byte characters accepted');
$r = $alice->post('/admin/invites', { action => 'create', hours => 1,
                                      note => 'n' x 201,
                                      csrf => csrf($page) });
is($r->{status}, 422, 'a note of 201 characters refused');
like($r->{content}, qr/note is too long/, '... says so');
$t->sql("DELETE FROM invitations WHERE note <> 'for <carol>'");

# --- join --------------------------------------------------------------------------
my $carol = $t->ua;
$r = $carol->get("/join/$token");
is($r->{status}, 200, 'invitee opens the link');
like($r->{content}, qr/Choose your user name/, 'join form');
my $csrf = csrf($r);

$r = $carol->post("/join/$token", { name => 'alice', password => 'carol pass 123',
                                    password2 => 'carol pass 123',
                                    csrf => $csrf });
is($r->{status}, 422, 'taken name refused');
like($r->{content}, qr/user name is taken/, '... says so');
like($r->{content}, qr/value="alice"/, '... keeps what was typed');

$r = $carol->post("/join/$token", { name => 'carol', password => 'short',
                                    password2 => 'short', csrf => $csrf });
is($r->{status}, 422, 'weak password refused');

$r = $carol->post("/join/$token", { name => 'carol', password => 'carol pass 123',
                                    password2 => 'carol pass 123' });
is($r->{status}, 403, 'join without csrf: 403');

$r = $carol->post("/join/$token", { name => 'carol', password => 'carol pass 123',
                                    password2 => 'carol pass 123',
                                    csrf => $csrf });
is($r->{status}, 303, 'joined');
ok($carol->cookie('__Host-tunnel_session'), 'and signed in');
$r = $carol->get('/');
like($r->{content}, qr/Signed in as <strong>carol/, 'as carol');
unlike($r->{content}, qr{/admin/invites}, 'no admin links for a user');
is($t->sql("SELECT is_admin FROM users WHERE name = 'carol'"), 'f',
   'carol is not an admin');

like($alice->get('/admin/invites')->{content}, qr/>used<\/span> by carol/,
     'list shows used by carol');

# --- reuse, unknown, expired, revoked -----------------------------------------
my $dave = $t->ua;
$r = $dave->get("/join/$token");
is($r->{status}, 410, 'used link: 410');
like($r->{content}, qr/already used/, '... says so');
$r = $dave->post("/join/$token", { name => 'dave', password => 'dave pass 1234',
                                   password2 => 'dave pass 1234',
                                   csrf => $dave->cookie('__Host-tunnel_csrf') });
is($r->{status}, 410, 'posting a used link: 410');
is($t->sql("SELECT count(*) FROM users WHERE name = 'dave'"), 0,
   'no account from a used link');

$r = $dave->get('/join/' . ('x' x 24));
is($r->{status}, 404, 'unknown token: 404');
like($r->{content}, qr/not valid/, '... says so');
$r = $dave->get('/join/bad%20token');
is($r->{status}, 404, 'malformed token: 404');

my $exp = $t->invite($alice);
$t->sql("UPDATE invitations SET expires_at = now() - interval '1 minute' "
         . "WHERE used_at IS NULL");
$r = $dave->get($exp);
is($r->{status}, 410, 'expired link: 410');
like($r->{content}, qr/expired/, '... says so');
like($alice->get('/admin/invites')->{content}, qr/>expired</,
     'list shows expired');

my $rev = $t->invite($alice, note => 'to revoke');
$page = $alice->get('/admin/invites');
my ($rid) = $page->{content} =~
    /to revoke.*?name="id" value="(\d+)"/s;
ok($rid, 'revoke button for the open invitation');
$r = $alice->post('/admin/invites', { action => 'revoke', id => $rid,
                                      csrf => csrf($page) });
is($r->{status}, 303, 'revoked');
$r = $dave->get($rev);
is($r->{status}, 410, 'revoked link: 410');
like($r->{content}, qr/revoked/, '... says so');
$r = $alice->post('/admin/invites', { action => 'revoke', id => $rid,
                                      csrf => csrf($page) });
is($r->{status}, 422, 'revoking twice: refused');

# --- admin invitation, concurrent use -----------------------------------------
my $adm = $t->invite($alice, admin => 1);
my @forms;
for my $i (1 .. 4) {
    my $u = $t->ua;
    my $g = $u->get($adm);
    push @forms, [ $u, { name => "racer$i", password => "racer password $i",
                         password2 => "racer password $i",
                         csrf => csrf($g) } ];
}
my @kids;
for my $f (@forms) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $res = $f->[0]->post($adm, $f->[1]);
        POSIX::_exit($res->{status} == 303 ? 3 : 4);
    }
    push @kids, $pid;
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if ($? >> 8) == 3 }
is($ok, 1, 'one link, four concurrent joins: one account');
is($t->sql("SELECT count(*) FROM users WHERE name LIKE 'racer%'"), 1,
   'exactly one racer exists');
is($t->sql("SELECT is_admin FROM users WHERE name LIKE 'racer%'"), 't',
   'the admin flag of the invitation is honoured');

# --- role checks ---------------------------------------------------------------
is($carol->get('/admin/invites')->{status}, 403, 'user: GET invites 403');
$r = $carol->post('/admin/invites', { action => 'create', hours => 1,
                     csrf => csrf($carol->get('/keys')) });
is($r->{status}, 403, 'user: create invitation 403');
my $anon = $t->ua;
$r = $anon->get('/admin/invites');
is($r->{status}, 303, 'anonymous: to /login');

# the default lifetime directive keeps to the same range
for my $h (1, 8760) {
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "host=/tmp"; tunnel_admin_invite_hours $h;});
    is($rc, 0, "tunnel_admin_invite_hours $h accepted") or diag($out);
}
for my $h (0, 8761) {
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "host=/tmp"; tunnel_admin_invite_hours $h;});
    isnt($rc, 0, "tunnel_admin_invite_hours $h refused");
    like($out, qr/tunnel_admin_invite_hours must be 1\.\.8760/, '... says so');
}

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');

$t->stop_all;
done_testing;
