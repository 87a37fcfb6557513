#!/usr/bin/perl
# Admin UI, the first hour (issue 8): users made with tunnelctl (no
# password) do not lock the web UI.  /setup stays open while no
# administrator can sign in, says why, and gives an existing passwordless
# account the password ('name_taken' when it has one); /login, /join/ and
# /password/ stay usable meanwhile.  One-time password links
# /password/TOKEN: the form, every refusal page, single use, sign-in; an
# administrator makes one on /admin/users and sees it once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Encode ();
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

sub uid { $t->sql("SELECT id FROM users WHERE name = '$_[0]'") }

# a link as tunnelctl makes it (token text, its sha256 kept)
sub token_for {
    my ($name, $token, $hours) = @_;
    $t->sql("SELECT tunnel_admin_password_token_create('$token', "
            . uid($name) . ", " . ($hours // 24) . ", NULL)");
    return "/password/$token";
}

sub msg {
    my ($r) = @_;
    my ($m) = Encode::decode('UTF-8', $r->{content})
              =~ m{<p class="msg bad">(.*?)</p>}s;
    return $m // '';
}

# --- README's order: tunnelctl user add before the first web visit --------
$t->sql("INSERT INTO users (name) VALUES ('alice'), ('bob')");

my $ua = $t->ua;
my $r = $ua->get('/');
is($r->{status}, 303, 'users but no administrator: / redirects');
like($r->{headers}{location} // '', qr{/setup$}, '... to /setup');
$r = $ua->get('/keys');
like($r->{headers}{location} // '', qr{/setup$}, '/keys too');

$r = $ua->get('/setup');
is($r->{status}, 200, '/setup is open while no administrator can sign in');
like($r->{content}, qr{This installation has users but no administrator who can sign in yet: accounts made with <code>tunnelctl user add</code> have no password until they set one\.},
     'it says why');
like($r->{content}, qr{Enter the name of an existing account made with tunnelctl to give it a password and make it the administrator, or a new name to create the administrator\.},
     'and what to type');
unlike($r->{content}, qr/has no users yet/, 'not the fresh-install text');

$r = $ua->get('/login');
is($r->{status}, 200, '/login stays open meanwhile (users exist)');

# bob sets his password with a link tunnelctl printed, before any admin
my $bob_link = token_for('bob', 'bobtoken' . ('B' x 16));
my $bob = $t->ua;
$r = $bob->get($bob_link);
is($r->{status}, 200, 'a password link works before setup is done');
like($r->{content}, qr{<h1>Set the password for bob</h1>}, 'names the account');
$r = $bob->post($bob_link, { password => 'bobs new password',
                             password2 => 'bobs new password',
                             csrf => csrf($r) });
is($r->{status}, 303, 'bob sets his password');
like($r->{headers}{location}, qr{^http://localhost:\d+/\?done=password-set$},
     '... and is signed in');
$r = $bob->get('/?done=password-set');
is($r->{status}, 200, 'signed-in bob keeps his pages while setup is open');
like($r->{content}, qr/Your password is set and you are signed in\./,
     '... with a flash');
is($t->sql("SELECT tunnel_admin_needs_setup()"), 't',
   'a user with a password is no administrator: setup still needed');

# 'name_taken': setup must not take over an account with a password
$r = $ua->get('/setup');
my %form = (password => 'the admin password', password2 => 'the admin password',
            csrf => csrf($r));
$r = $ua->post('/setup', { %form, name => 'bob' });
is($r->{status}, 422, 'setup with the name of an account with a password');
is(msg($r), "The account \x{201c}bob\x{201d} already has a password: sign in "
            . "with it, or choose another name.", '... names it, says what to do');
like($r->{content}, qr/name="name"[^>]*value="bob"/, 'typed name kept');
is($t->sql("SELECT is_admin FROM users WHERE name = 'bob'"), 'f',
   'bob was not made administrator');

# a disabled account is not brought back through setup
$t->sql("INSERT INTO users (name, disabled) VALUES ('eve', true)");
$r = $ua->post('/setup', { %form, name => 'eve' });
is($r->{status}, 422, 'setup with the name of a disabled account');
is(msg($r), "The account \x{201c}eve\x{201d} is disabled: setup does not "
            . "enable it.  Choose another name (an operator can enable it "
            . "with tunnelctl user enable).", '... says so');
is($t->sql("SELECT disabled::text || is_admin::text || "
           . "(password_hash IS NULL)::text FROM users WHERE name = 'eve'"),
   'truefalsetrue', '... still disabled, no administrator, no password');
$t->sql("DELETE FROM users WHERE name = 'eve'");

# an existing passwordless account becomes the administrator; a link
# tunnelctl printed for it before stops working (it would set another
# password and sign the new administrator out)
my $alice_link = token_for('alice', 'alicetoken' . ('A' x 16));
$r = $ua->post('/setup', { %form, name => 'alice' });
is($r->{status}, 303, 'setup with the name of a tunnelctl account');
like($r->{headers}{location}, qr{/\?done=welcome$}, '... signs in');
is($t->sql("SELECT is_admin AND password_hash IS NOT NULL FROM users "
           . "WHERE name = 'alice'"), 't', 'alice is the administrator now');
is($t->sql("SELECT count(*) FROM users"), 2, 'no new user made');
my $alice = $ua;
is($alice->get('/admin/users')->{status}, 200, 'alice sees the admin pages');
$r = $t->ua->get($alice_link);
isnt($r->{status}, 200, 'the link printed before setup no longer works');
unlike($r->{content}, qr/Set the password for alice/, '... no form');
$r = $t->ua->get('/setup');
is($r->{status}, 410, '/setup is gone once an administrator can sign in');

# 'done': a setup form posted after that gets the 410 page
$r = $t->ua->post('/setup', { %form, name => 'carol' });
is($r->{status}, 410, 'a late setup post: 410');
like($r->{content}, qr/Setup is done/, '... says so');

# --- the link pages ------------------------------------------------------------
$r = $t->ua->get('/password/short');
is($r->{status}, 404, 'malformed link: 404');
like($r->{content}, qr{<h1>This password link is not valid</h1>}, '... says so');
like($r->{content}, qr/tunnelctl user password NAME/, '... and what to ask for');

$r = $t->ua->get('/password/' . ('U' x 24));
is($r->{status}, 404, 'unknown link: 404');

$r = $t->ua->get($bob_link);
is($r->{status}, 410, 'used link: 410');
like($r->{content}, qr{<h1>This password link was already used</h1>},
     '... says so');
like($r->{content}, qr/tunnelctl user password bob\)/,
     '... with the command for this account');

$t->sql("INSERT INTO users (name) VALUES ('carol'), ('dave')");
my $old = token_for('carol', 'caroltoken' . ('C' x 16));
my $new = token_for('carol', 'caroltoken' . ('D' x 16));
$r = $t->ua->get($old);
is($r->{status}, 410, 'a newer link retires the older one');
like($r->{content}, qr{<h1>This password link has expired</h1>}, '... expired');

my $dave_link = token_for('dave', 'davetoken' . ('E' x 16));
$t->sql("UPDATE users SET disabled = true WHERE name = 'dave'");
$r = $t->ua->get($dave_link);
is($r->{status}, 403, 'link of a disabled account: 403');
like($r->{content}, qr/The account dave is disabled.*tunnelctl user enable dave/s,
     '... says what to ask for');

# the form: CSRF, the password rules
my $carol = $t->ua;
$r = $carol->get($new);
is($r->{status}, 200, 'carol opens her link');
my $csrf = csrf($r);
$r = $carol->post($new, { password => 'carols password',
                          password2 => 'carols password' });
is($r->{status}, 403, 'no csrf token: 403');
$r = $carol->post($new, { password => 'short', password2 => 'short',
                          csrf => $csrf });
is($r->{status}, 422, 'short password refused');
is(msg($r), 'The password is too short: use at least 12 characters.',
   '... says why');
like($r->{content}, qr{<h1>Set the password for carol</h1>}, 'form shown again');
$r = $carol->post($new, { password => 'carolcarolcarol',
                          password2 => 'carolcarolcarox', csrf => $csrf });
is(msg($r), 'The two passwords are not the same.', 'mismatch refused');
$r = $carol->post($new, { password => 'CarolCarol12', password2 => 'CarolCarol12',
                          csrf => $csrf });
is($r->{status}, 303, 'a password with 12 characters');
$r = $t->ua->post($new, { password => 'x' x 12, password2 => 'x' x 12,
                          csrf => $csrf });
is($r->{status}, 403, 'another browser cannot post it (csrf)');

# sign in with the new password
my $login = $t->ua;
$r = $login->get('/login');
$r = $login->post('/login', { name => 'carol', password => 'CarolCarol12',
                              csrf => csrf($r) });
is($r->{status}, 303, 'carol signs in with the password set by link');

# --- an administrator makes a link on /admin/users -------------------------------
$r = $alice->get('/admin/users');
like($r->{content}, qr{name="action" value="password-link"><input type="hidden" name="id" value="${\ uid('bob')}">},
     'a password link action for bob');
$r = $alice->post('/admin/users', { action => 'password-link', id => uid('bob'),
                                    csrf => csrf($r) });
is($r->{status}, 200, 'made: the list with the link');
my ($link) = $r->{content} =~ m{<p class="copy mono" id="password-link">([^<]*)</p>};
like($link // '', qr{^http://localhost:\d+/password/[A-Za-z0-9_-]{24}$},
     'the link is shown once') or diag($r->{content});
like($r->{content}, qr{Password link for <strong>bob</strong> created}, '... for bob');
unlike($alice->get('/admin/users')->{content}, qr/id="password-link"/,
       'and not again');
(my $path = $link // '') =~ s{^http://[^/]+}{};
my $b2 = $t->ua;
$r = $b2->get($path);
like($r->{content}, qr{<h1>Set the password for bob</h1>}, 'the link works');
$r = $b2->post($path, { password => 'bobs newer password',
                        password2 => 'bobs newer password', csrf => csrf($r) });
is($r->{status}, 303, 'bob sets a new password');
is($bob->get('/keys')->{status}, 303, "bob's other web session ended");
$r = $alice->post('/admin/users', { action => 'password-link', id => 999999,
                                    csrf => csrf($alice->get('/admin/users')) });
is($r->{status}, 422, 'no link for an unknown user');
unlike($r->{content}, qr/id="password-link"/, '... and none shown');

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');
$t->stop_all;

# --- tunnelctl user add NAME --admin, then its link: the administrator ----------
$t = NgxTunnel::AdminTest->new;
$t->start_all;
$t->sql("INSERT INTO users (name, is_admin) VALUES ('root', true)");
my $root_link = token_for('root', 'roottoken' . ('R' x 16));
my $root = $t->ua;
$r = $root->get('/');
like($r->{headers}{location} // '', qr{/setup$}, 'before: / goes to /setup');
$r = $root->get($root_link);
is($r->{status}, 200, 'the admin link opens before setup');
$r = $root->post($root_link, { password => 'the root password',
                               password2 => 'the root password',
                               csrf => csrf($r) });
is($r->{status}, 303, 'root sets the password');
is($root->get('/admin/users')->{status}, 200, 'root is the signed-in administrator');
is($t->ua->get('/setup')->{status}, 410, 'setup is done');
unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');
$t->stop_all;

done_testing;
