#!/usr/bin/perl
# The device flow's web side in a real browser (playwright-core + Debian's
# Chromium, see admin/browser-tests/activate.js): a signed-out phone opens
# /activate?code=... as ssh prints it, signs in, is back on the code, sees
# the key's fingerprint (the one ssh-keygen prints), approves, finds the
# key under /keys; an administrator denies another pending code from
# /admin/activations.  Screenshots go to t/artifacts/activate-*.png
# (git-ignored).  The codes are made as tunneld makes them
# (tunnel_activation_create() of sql/005_activation.sql) for real keys.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Path qw(make_path);
use IPC::Run qw(start pump finish timeout);
use Test::More;

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $bt = NgxTunnel::AdminTest::repo_root() . '/admin/browser-tests';
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;
plan skip_all => "no Chromium at $chromium" unless -x $chromium;
plan skip_all => 'playwright-core not installed: '
               . '(cd admin/browser-tests && npm install)'
    unless -d "$bt/node_modules/playwright-core";

watchdog(240);

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $admin = $t->setup_admin('admin', 'a good long admin password');
$t->join_user($admin, 'erin', password => 'erins long password');

# two pending codes, as tunneld makes them
sub pending {
    my ($letters, $client) = @_;
    my $key = new_key($t, 'device');
    open my $fh, '<', $key->{pub} or die;
    my (undef, $b64) = split ' ', scalar <$fh>;
    my $out = $t->sql(
        "SELECT r_status FROM tunnel_activation_create("
        . "sha256(convert_to('$letters', 'UTF8')), "
        . "sha256(convert_to('dev-$letters', 'UTF8')), '$key->{fingerprint}', "
        . "'ssh-ed25519', '$b64', '$client', 'node', 'session', 600, 3, "
        . "1000)");
    is($out, 'ok', "a pending code $letters");
    return $key;
}
my $approved = pending('WDJBMJHT', '127.0.0.1:40022');
my $denied = pending('XZVTSRQP', '192.0.2.44:51515');

my $art = NgxTunnel::AdminTest::repo_root() . '/t/artifacts';
make_path($art);
unlink glob("$art/activate-*.png");

local $ENV{ADMIN_URL} = 'http://localhost:' . $t->port;
local $ENV{CODE} = 'WDJB-MJHT';
local $ENV{DENY_FP} = $denied->{fingerprint};
local $ENV{USER_NAME} = 'erin';
local $ENV{USER_PASSWORD} = 'erins long password';
local $ENV{ADMIN_NAME} = 'admin';
local $ENV{ADMIN_PASSWORD} = 'a good long admin password';
local $ENV{ARTIFACTS} = $art;
local $ENV{CHROMIUM} = $chromium;

my ($in, $out, $err) = ('', '', '');
my $h = start(['node', "$bt/activate.js"], '<', \$in, '>', \$out,
              '2>', \$err, timeout(180));
my ($seen, $done) = (0, 0);
while (!$done) {
    eval { pump $h; 1 } or last;
    my @lines = split /\n/, $out;
    my $complete = $out =~ /\n\z/ ? @lines : @lines - 1;
    for my $i ($seen .. $complete - 1) {
        my $l = $lines[$i];
        if ($l =~ /^(not )?ok - (.*?)(?: # (.*))?$/) {
            ok(!$1, $2) or diag($3 // '');
        } elsif ($l =~ /^fingerprint (\S+)/) {
            is($1, $approved->{fingerprint}, 'the page showed the '
               . 'fingerprint ssh-keygen prints');
        } elsif ($l eq 'done' || $l eq 'failed') {
            $done = 1;
        }
    }
    $seen = $complete;
}
eval { finish $h };
is($h->result(0) // -1, 0, 'browser flow finished') or diag($err);

is($t->sql("SELECT u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id "
           . "WHERE k.fingerprint = '$approved->{fingerprint}'"), 'erin',
   'the approved key is erin\'s in the database');
is($t->sql("SELECT count(*) FROM activation_codes WHERE denied_at IS NOT "
           . "NULL AND fingerprint = '$denied->{fingerprint}'"), 1,
   'the other code is denied');

my @shots = glob("$art/activate-*.png");
cmp_ok(scalar @shots, '>=', 8, 'a screenshot of every page in t/artifacts');

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');

$t->stop_all;
done_testing;
