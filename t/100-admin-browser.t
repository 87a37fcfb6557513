#!/usr/bin/perl
# Admin UI in a real browser (playwright-core + Debian's Chromium, see
# admin/browser-tests/flow.js): setup -> invitation -> join in a second
# browser context -> add an SSH key -> that key opens a tunnel with ssh -R
# -> the start page shows the exact ssh command for this stack and its Copy
# button copies it -> the tunnel URL answers -> the users page (own row
# without actions, dates on one line) -> sign out.  Screenshots of every
# page go to t/artifacts/ (git-ignored).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Path qw(make_path);
use IPC::Run qw(start pump finish timeout);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $bt = NgxTunnel::AdminTest::repo_root() . '/admin/browser-tests';
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;
plan skip_all => "no Chromium at $chromium" unless -x $chromium;
plan skip_all => 'playwright-core not installed: '
               . '(cd admin/browser-tests && npm install)'
    unless -d "$bt/node_modules/playwright-core";

watchdog(300);

# one stack: tunnels on NAME.localhost, the admin on localhost
my $t = NgxTunnel::AdminTest->new(tunneld => 1);
$t->start_all;
my $s = $t;

my $key = new_key($s, 'dave');
open my $fh, '<', $key->{pub} or die;
chomp(my $pub = <$fh>);
close $fh;
my $backend = start_backend($s, 'daveapp');

my $art = NgxTunnel::AdminTest::repo_root() . '/t/artifacts';
make_path($art);
unlink glob("$art/admin-*.png");

my $http = $s->env->{HTTP_PORT};
local $ENV{ADMIN_URL} = 'http://localhost:' . $t->port;
local $ENV{TUNNEL_URL} = "http://daveapp.localhost:$http/";
local $ENV{PUBKEY} = $pub;
local $ENV{ARTIFACTS} = $art;
local $ENV{CHROMIUM} = $chromium;

my ($in, $out, $err) = ('', '', '');
my $h = start(['node', "$bt/flow.js"], '<', \$in, '>', \$out, '2>', \$err,
              timeout(180));

my ($ssh, $seen) = (undef, 0);
my $done = 0;
while (!$done) {
    eval { pump $h; 1 } or do { diag("node: $@"); last };

    my @lines = split /\n/, $out;
    my $complete = $out =~ /\n\z/ ? @lines : @lines - 1;
    for my $i ($seen .. $complete - 1) {
        my $l = $lines[$i];
        if ($l =~ /^(not )?ok - (.*?)(?: # (.*))?$/) {
            ok(!$1, $2) or diag($3 // '');
        } elsif ($l eq 'need tunnel') {
            $ssh = start_ssh($s, key => $key->{key}, user => 'dave',
                remote => "daveapp:80:localhost:$backend->{port}");
            my $route = wait_route($s, 'daveapp', 10);
            ok($route, 'the key added in the browser opens a tunnel')
                or diag($ssh->output, tail_log($s, 'tunneld'));
            is($route->{user} // '', 'dave', '... as dave');
            $in .= "tunnel up\n";
        } elsif ($l =~ /^command (.*)/) {
            is($1, "ssh -p " . $t->ssh_port
                   . " -R daveapp:80:localhost:3000 dave\@localhost",
               'the copied command is exact for this stack');
        } elsif ($l =~ /^fingerprint (\S+)/) {
            is($1, $key->{fingerprint}, 'the page shows the fingerprint '
               . 'ssh-keygen prints');
        } elsif ($l eq 'done' || $l =~ /^failed/) {
            $done = 1;
        }
    }
    $seen = $complete;
}
eval { finish $h };
is($h->result(0) // -1, 0, 'browser flow finished') or diag($err);

my @shots = glob("$art/admin-*.png");
cmp_ok(scalar @shots, '>=', 12, 'a screenshot of every page in t/artifacts');

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');

$t->stop_all;
done_testing;
