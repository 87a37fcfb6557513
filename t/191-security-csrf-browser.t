#!/usr/bin/perl
# A page served through a tunnel cannot use the administrator's session
# (SECURITY.md): in a real browser (playwright-core + Debian's Chromium,
# admin/browser-tests/csrf.js) the administrator signs in at the admin host
# (http://localhost:PORT), then a page of mallory's tunnel
# (http://evil.localhost:PORT) reads document.cookie, fetches an admin page
# with credentials, and POSTs the kick, invite and user forms by fetch and
# by form submission; the same attacks run again from mallory's app at
# http://localhost:BACKEND_PORT, which Chromium counts as the admin host's
# own site as production counts NAME.tunnel.example.com (csrf.js says why),
# so the session cookie goes along and the admin's origin check and CSRF
# token must refuse them.  Checked here: erin's tunnel is not kicked,
# no invitation is created, mallory is not promoted, nginx logged each
# refused form, and mallory's backend (t/backend/evil.py, which records
# every request's headers) never received an admin cookie.
# Screenshots: t/artifacts/csrf-*.png.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Path qw(make_path);
use IO::Select;
use IPC::Run qw(start pump finish timeout);
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest;

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
$t->join_user($admin, 'mallory', password => 'mallory password long');
my $erin = new_user($s, 'erin', exists => 1);
my $mallory = new_user($s, 'mallory', exists => 1);
my $be = start_backend($s, 'erin');

# mallory's app: records the headers of every request it gets
my $evil_log = "$s->{_test_dir}/evil-requests.jsonl";
my $evil_port;
{
    pipe(my $rd, my $wr) or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        close $rd;
        open STDOUT, '>&', $wr or POSIX::_exit(1);
        open STDIN, '<', '/dev/null';
        exec('python3', "$Bin/backend/evil.py", $evil_log)
            or POSIX::_exit(127);
    }
    close $wr;
    push @NgxTunnel::Test::KIDS, [$pid, 'evil backend'];
    my $sel = IO::Select->new($rd);
    my $line = '';
    my $deadline = time + 10;
    while ($line !~ /\n/ && time < $deadline) {
        next unless $sel->can_read(0.2);
        sysread($rd, $line, 64, length $line) or last;
    }
    ($evil_port) = $line =~ /^(\d+)\n/ or die "evil.py did not start\n";
}

my $ssh_erin = start_ssh($s, key => $erin->{key}, user => 'erin',
    remote => "erinapp:80:localhost:$be->{port}");
my $ssh_evil = start_ssh($s, key => $mallory->{key}, user => 'mallory',
    remote => "evil:80:localhost:$evil_port");
my $erin_route = wait_route($s, 'erinapp', 10);
ok($erin_route, "erin's tunnel is up") or diag($ssh_erin->output);
ok(wait_route($s, 'evil', 10), "mallory's tunnel is up")
    or diag($ssh_evil->output);

my $invites0 = $t->sql('SELECT count(*) FROM invitations');
my $mallory_id = $t->sql("SELECT id FROM users WHERE name = 'mallory'");

my $art = NgxTunnel::AdminTest::repo_root() . '/t/artifacts';
make_path($art);
unlink glob("$art/csrf-*.png");

local $ENV{ADMIN_URL} = $t->base;
local $ENV{EVIL_URL} = 'http://evil.localhost:' . $t->port;
local $ENV{SAME_SITE_URL} = "http://localhost:$evil_port";
local $ENV{ADMIN_USER} = 'root';
local $ENV{ADMIN_PASSWORD} = 'root password long';
local $ENV{VICTIM_TUNNEL} = 'erinapp';
local $ENV{ATTACKER_ID} = $mallory_id;
local $ENV{ARTIFACTS} = $art;
local $ENV{CHROMIUM} = $chromium;

my ($in, $out, $err) = ('', '', '');
my $h = start(['node', "$bt/csrf.js"], '<', \$in, '>', \$out,
              '2>', \$err, timeout(180));

my ($seen, $done, $checked) = (0, 0, 0);
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
        } elsif ($l eq 'need check') {
            $checked = 1;
            # the no-cors fetches are answered out of the page's sight:
            # give the last one a moment to reach the server
            sleep 0.5;
            my %r = route_of($s, 'erinapp');
            is($r{session}, $erin_route->{session},
               "erin's tunnel was not kicked (same session)");
            ok($ssh_erin->alive, "erin's ssh client is still connected");
            is(status_body($s, 'erinapp'), '200 hello from backend erin',
               '... and serves');
            is($t->sql('SELECT count(*) FROM invitations'), $invites0,
               'no invitation was created');
            is($t->sql("SELECT is_admin FROM users WHERE name = 'mallory'"),
               'f', 'mallory was not promoted');
            $in .= "checked\n";
        } elsif ($l eq 'done' || $l eq 'failed') {
            $done = 1;
        }
    }
    $seen = $complete;
}
eval { finish $h };
is($h->result(0) // -1, 0, 'browser flow finished') or diag($err);
ok($checked, 'the driver checked the state after the attacks');

# the same-site page's POSTs came with the session cookie: nginx refused
# each by its origin (3 by fetch, 3 as forms)
my @refused = $t->error_log =~ m{rejected\ a\ form\ on
    \ "(/admin/(?:tunnels|invites|users))"\ posted\ from\ another\ page}xg;
is(scalar @refused, 6, 'nginx refused the six same-site POSTs by their '
   . 'origin') or diag(join ' ', @refused);

# mallory's backend never saw an admin cookie through the tunnel (the
# same-site phase reaches it directly on localhost, where the browser sends
# localhost's cookies to every port: not a tunnel's request)
my @reqs =
    grep { ($_->{headers}{host} // '') =~ /^evil\.localhost(?::\d+)?$/ }
    map { decode_json($_) } grep { /\S/ } split /\n/, read_file($evil_log);
cmp_ok(scalar @reqs, '>=', 4, sprintf 'the tunnel backend recorded %d '
       . 'requests', scalar @reqs);
my @leaks =
    grep { ($_->{headers}{cookie} // '') =~ /tunnel_(?:session|csrf)/i } @reqs;
is(scalar @leaks, 0, 'no request to the tunnel carried an admin cookie')
    or diag(join "\n", map { $_->{headers}{cookie} } @leaks);
diag(sprintf 'tunnel backend: %d requests, Cookie headers seen: %s',
     scalar @reqs, join(', ', map { $_->{headers}{cookie} // '(none)' } @reqs));

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');

$ssh_erin->stop;
$ssh_evil->stop;
$t->stop_all;
done_testing;
