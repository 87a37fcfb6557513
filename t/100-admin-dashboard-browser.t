#!/usr/bin/perl
# The live dashboard in a real browser (playwright-core + Debian's
# Chromium, admin/browser-tests/dashboard.js): a tunnel opened with a real
# ssh -R appears on /admin/tunnels without a reload within 3 s, its request
# count rises with curl traffic, a second user's /tunnels never shows it,
# Kick (confirmed, with a reason) closes it: the route answers 404 and the
# ssh client exits, each within 1 s of the click; a tunnel whose ssh quits
# vanishes within 3 s.  Screenshots: t/artifacts/dashboard-*.png.

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

my $t = NgxTunnel::AdminTest->new(tunneld => 1);
$t->start_all;
my $s = $t;

my $admin = $t->setup_admin('root', 'root password long');
$t->join_user($admin, 'erin', password => 'erin password long');
$t->join_user($admin, 'frank', password => 'frank password long');
my $erin = new_user($s, 'erin', exists => 1);
my $frank = new_user($s, 'frank', exists => 1);
my $be = start_backend($s, 'browser');

my $ssh_frank = start_ssh($s, key => $frank->{key}, user => 'frank',
    remote => "frankapp:80:localhost:$be->{port}");
ok(wait_route($s, 'frankapp', 10), "frank's tunnel is up");

my $art = NgxTunnel::AdminTest::repo_root() . '/t/artifacts';
make_path($art);
unlink glob("$art/dashboard-*.png");

local $ENV{ADMIN_URL} = $t->base;
local $ENV{TUNNEL_NAME} = 'erinapp';
local $ENV{ADMIN_USER} = 'root';
local $ENV{ADMIN_PASSWORD} = 'root password long';
local $ENV{USER2} = 'frank';
local $ENV{USER2_PASSWORD} = 'frank password long';
local $ENV{USER2_TUNNEL} = 'frankapp';
local $ENV{ARTIFACTS} = $art;
local $ENV{CHROMIUM} = $chromium;

my ($in, $out, $err) = ('', '', '');
my $h = start(['node', "$bt/dashboard.js"], '<', \$in, '>', \$out,
              '2>', \$err, timeout(180));

my ($ssh_erin, $seen, $done) = (undef, 0, 0);
while (!$done) {
    eval { pump $h; 1 } or do { diag("node: $@"); last };

    my @lines = split /\n/, $out;
    my $complete = $out =~ /\n\z/ ? @lines : @lines - 1;
    for my $i ($seen .. $complete - 1) {
        my $l = $lines[$i];
        if ($l =~ /^(not )?ok - (.*?)(?: # (.*))?$/) {
            ok(!$1, $2) or diag($3 // '');
        } elsif ($l =~ /^# (.*)/) {
            note($1);
        } elsif ($l eq 'need tunnel') {
            $ssh_erin = start_ssh($s, key => $erin->{key}, user => 'erin',
                remote => "erinapp:80:localhost:$be->{port}");
            my $route = wait_route($s, 'erinapp', 10);
            ok($route, "erin's tunnel is up")
                or diag($ssh_erin->output, tail_log($s, 'tunneld'));
            $in .= sprintf "tunnel %d\n", time * 1000;
        } elsif ($l eq 'need traffic') {
            is(status_body($s, 'erinapp'), '200 hello from backend browser',
               "request $_ through erinapp") for 1 .. 5;
            $in .= "sent\n";
        } elsif ($l =~ /^kicked (\d+) (\d+)$/) {
            my ($click, $answered) = ($1 / 1000, $2 / 1000);
            my $code = http_get($s, 'erinapp', '/')->{status};
            my $t404 = time;
            is($code, 404, 'after the kick its URL answers 404');
            cmp_ok($t404 - $click, '<', 1,
                   sprintf('... %.3f s after the click (%.3f s after the '
                           . 'POST answered)', $t404 - $click,
                           $t404 - $answered));
            ok(wait_until(2, sub { !$ssh_erin->alive }),
               "erin's ssh client exits");
            my $exit = time;
            cmp_ok($exit - $click, '<', 1,
                   sprintf('... %.3f s after the click', $exit - $click));
            $ssh_erin->finish(5);
            like($ssh_erin->{err}, qr/Tunnel erinapp was closed by an administrator: dashboard test/,
                 '... telling why');
            $in .= "checked\n";
        } elsif ($l eq 'need close') {
            my $quit = time;
            $ssh_frank->stop;
            $in .= sprintf "closed %d\n", $quit * 1000;
        } elsif ($l eq 'done' || $l =~ /^failed/) {
            $done = 1;
        }
    }
    $seen = $complete;
}
eval { finish $h };
is($h->result(0) // -1, 0, 'browser flow finished') or diag($err);

my @shots = glob("$art/dashboard-*.png");
cmp_ok(scalar @shots, '>=', 7, 'screenshots of the dashboard in t/artifacts');

like($t->error_log, qr/"root" kicked tunnel "erinapp" of "erin"/,
     'the kick is logged');
unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');

$t->stop_all;
done_testing;
