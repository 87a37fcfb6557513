#!/usr/bin/perl

# Fault matrix, row 3 (issue 14): tunneld's supervisor SIGKILLed.
#
#   - its workers die with it (PR_SET_PDEATHSIG), every ssh client notices;
#   - nginx answers at once all along, never hangs: the offline page (502)
#     while a route outlives its process, 404 once it expired, 200 again
#     once the client is back;
#   - the routes of a client that does not come back are gone from Redis
#     within 15 s (TTL);
#   - restart: the test plays systemd's part.  dist/tunneld.service.in says
#     Restart=on-failure, RestartSec=2s, and systemd counts a SIGKILL as a
#     failure; the test checks those two lines, waits the 2 s and starts
#     tunneld again with the same options.  What it proves is what happens
#     from that restart on, not that systemd itself restarts it (no systemd
#     runs here);
#   - clients under autossh (-M 0, so autossh restarts ssh whenever it
#     exits) get their names back, and serve again;
#   - no stale "tunnels up": /admin/users and the dashboard say "unknown" /
#     "live state unavailable" while tunneld is down, and once the dead
#     routes expired they count exactly the tunnels that are live;
#   - the audit log closes each tunnel of the killed process once, as
#     "node lost".
#
# t/050-failures.t checks the single-process version (routes expire, 404
# right after, stale socket removed at restart, host key kept).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IPC::Run ();
use JSON::PP ();
use Symbol ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;
my ($autossh) = grep { -x } map { "$_/autossh" } split /:/, $ENV{PATH};
plan skip_all => 'autossh is not installed (tools/install-deps installs it)'
    unless $autossh;

watchdog(300);

# --- the unit: what a real deployment's restart rests on ---------------------

my $unit = read_file(repo_root() . '/dist/tunneld.service.in');
like($unit, qr/^Restart=on-failure$/m,
    'dist/tunneld.service.in: Restart=on-failure (a SIGKILL is a failure)');
my ($restart_sec) = $unit =~ /^RestartSec=(\d+)s$/m;
ok(defined $restart_sec, 'dist/tunneld.service.in: RestartSec='
    . ($restart_sec // '?') . 's');
$restart_sec //= 2;

my $t = NgxTunnel::AdminTest->new(tunneld => 1);
$t->start_all;
my $s = $t;
my $json = JSON::PP->new;

my $web = $t->setup_admin('alice', 'alice password 1');
my $alice = new_user($s, 'alice', exists => 1);
my $be = start_backend($s, 'one');

sub users_up {
    my $r = $web->get('/admin/users');
    return $r->{content} =~ m{<td>alice <span[^>]*>admin</span></td><td data-label="Keys">\d+</td><td data-label="Tunnels up">([^<]*)</td>}
        ? $1 : "(no row: $r->{status})";
}

sub dash_names {
    my $r = $web->get('/admin/tunnels.json');
    my $j = eval { $json->decode($r->{content}) } // {};
    return "$r->{status} unavailable" unless $j->{available};
    return join ',', sort map { $_->{name} } @{ $j->{tunnels} || [] };
}

sub timed {
    my ($name) = @_;
    my $t0 = time;
    my $r = eval { http_get($s, $name, '/', timeout => 10) };
    return ($r ? $r->{status} : 'error', time - $t0, $r);
}


# autossh in front of the same ssh command the other tests run
my $alog = "$s->{_test_dir}/autossh.log";
sub start_autossh {
    my (%o) = @_;
    my @ssh = NgxTunnel::Test::ssh_command($s, key => $alice->{key},
        user => 'alice', alive => 1, %o);
    shift @ssh;    # "ssh"
    my @cmd = ($autossh, '-M', '0', @ssh,
        '-o', 'ServerAliveCountMax=3');
    my $self = bless { cmd => \@cmd, out => '', err => '' },
        'NgxTunnel::Test::Ssh';
    my $in = Symbol::gensym();
    local @ENV{qw(AUTOSSH_GATETIME AUTOSSH_POLL AUTOSSH_LOGFILE
                  AUTOSSH_LOGLEVEL)} = (0, 10, $alog, 7);
    $self->{h} = IPC::Run::start(\@cmd, '<pipe', $in, '>', \$self->{out},
        '2>', \$self->{err});
    $self->{in} = $in;
    push @NgxTunnel::Test::HARNESS, $self;
    return $self;
}

my @back = qw(kback1 kback2);
my @gone = qw(kgone);
my %cl;
$cl{kback1} = start_autossh(remote => "kback1:80:localhost:$be->{port}");
$cl{kback2} = start_autossh(remote => "kback2:80:localhost:$be->{port}");
$cl{kgone} = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "kgone:80:localhost:$be->{port}");

my %route;
for my $n (@back, @gone) {
    $route{$n} = wait_route($s, $n, 15);
    ok($route{$n}, "$n up") or diag($cl{$n}->output, read_file($alog));
    is(status_body($s, $n), '200 hello from backend one', "$n serves");
}
is(users_up(), 3, '/admin/users: alice has 3 tunnels up');
is(dash_names(), 'kback1,kback2,kgone', 'dashboard: the 3 tunnels');
ok(wait_until(10, sub { sql_query($s, "SELECT count(*) FROM tunnel_events"
    . " WHERE event = 'open'") == 3 }), 'their open rows are written');


# --- SIGKILL ---------------------------------------------------------------------

my @workers = $s->tunneld_pids;
my $sup = $s->pid('tunneld');
$s->stop_tunneld(signal => 'KILL');
my $t_kill = time;
ok(wait_until(5, sub { !grep { kill 0, $_ } @workers }),
    sprintf 'supervisor %d killed: its %d workers die with it', $sup,
    scalar @workers);
is($cl{kgone}->finish(10) != -1 ? 'exited' : 'hung', 'exited',
    'the plain ssh client notices');

# while nothing runs: every request answered at once
my (%seen, @bad, $max);
$max = 0;
my $probe = sub {
    for my $n (@back, @gone) {
        my ($st, $dt, $r) = timed($n);
        $max = $dt if $dt > $max;
        $seen{"$n $st"}++;
        my $ok = $st eq '404'
            || ($st eq '200' && $n ne 'kgone')
            || ($st eq '502' && page_text($r->{body})
                =~ /tunnel "$n" is offline/i);
        push @bad, sprintf('%s %s in %.2f s', $n, $st, $dt)
            if !$ok || $dt > 3;
    }
};

my $users_down = users_up();
my $dash_down = dash_names();
while (time < $t_kill + $restart_sec) {
    $probe->();
    sleep 0.1;
}
is($users_down, '?', "tunneld down: /admin/users says tunnels up is unknown "
    . "('?'), not a stale count");
like($dash_down, qr/^503 unavailable$/,
    'tunneld down: the dashboard says live state unavailable');

# systemd's part: Restart=on-failure after RestartSec
$s->start_tunneld;
my $t_up = time;
diag(sprintf 'tunneld restarted %.2f s after the kill (RestartSec=%ds), '
    . 'ready after %.2f s', $t_up - $t_kill, $restart_sec, time - $t_kill);

# the autossh clients get their names back; kgone's route goes.  The
# admin pages are looked at all along: [seconds after the restart, users
# page count, dashboard names] (tunneld answers its API once it is ready)
my (%got_back, $gone_at, @pages);
wait_until(25, sub {
    $probe->();
    push @pages, [time - $t_up, users_up(), dash_names()];
    for my $n (@back) {
        next if $got_back{$n};
        my %h = route_of($s, $n);
        $got_back{$n} = time - $t_kill
            if %h && $h{session} ne $route{$n}{session}
               && status_body($s, $n) eq '200 hello from backend one';
    }
    $gone_at //= time - $t_kill unless route_of($s, 'kgone');
    # 5 s of looks: the dead routes' TTL would keep them until about 8 s
    # after the restart
    return keys %got_back == @back && defined $gone_at && time > $t_up + 5;
});

ok(defined $gone_at && $gone_at <= 15, sprintf 'kgone: route gone from '
    . 'Redis %.2f s after the kill (<= 15 s)', $gone_at // -1);
# the restarted tunneld removes the routes its killed predecessor left
# (node_lost.lua) instead of leaving them to their TTL (10 s)
ok(defined $gone_at && $gone_at < $t_up - $t_kill + 3, sprintf 'kgone: '
    . 'removed by the restarted tunneld, %.2f s after its restart',
    ($gone_at // 99) - ($t_up - $t_kill));
like(read_file($s->log_path('tunneld')),
    qr/live: removed 3 routes left in Redis by the killed process \([^)]+\/\)/,
    'tunneld logs the removal');
for my $n (@back) {
    ok($got_back{$n}, sprintf '%s (autossh): name back and serving %.2f s '
        . 'after the kill', $n, $got_back{$n} // -1)
        or diag($cl{$n}->output, read_file($alog));
}
is(scalar @bad, 0, sprintf 'nginx answered every request at once '
    . '(max %.3f s): offline page, 404 or 200', $max)
    or diag(join ', ', @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
diag('answers since the kill: '
    . join ', ', map { "$_ x$seen{$_}" } sort keys %seen);
my ($st) = timed('kgone');
is($st, 404, 'kgone: 404 once its route expired');

# no stale count: every answer since the restart counted what is live
# (the autossh clients may still be on their way back)
# (1 s after the restart: the removal is asynchronous, measured 0.2 s)
my @stale = grep { $_->[0] >= 1 }
            grep { $_->[1] !~ /^[012]$/
                   || $_->[2] !~ /^(?:|kback1|kback2|kback1,kback2)$/ }
            @pages;
is(scalar @stale, 0, sprintf '/admin/users and the dashboard never counted '
    . 'the dead tunnels from 1 s after the restart (%d looks in %.1f s)',
    scalar @pages, @pages ? $pages[-1][0] : 0)
    or diag(join '; ', map { sprintf '%.2f s: users %s, dashboard %s', @$_ }
                           @stale[0 .. ($#stale > 5 ? 5 : $#stale)]);
my ($users, $dash);
my $fresh = wait_until(5, sub {
    ($users, $dash) = (users_up(), dash_names());
    $users eq '2' && $dash eq 'kback1,kback2';
});
ok($fresh, sprintf '/admin/users counts 2 tunnels up, the dashboard lists '
    . 'kback1,kback2 (%.2f s after the kill)', time - $t_kill)
    or diag("users: $users; dashboard: $dash");

# the audit log: the killed tunnels closed once each, as "node lost"
my $closes = '';
wait_until(10, sub {
    $closes = sql_query($s, "SELECT string_agg(name || ':' || detail, ','"
        . " ORDER BY name) FROM tunnel_events WHERE event = 'close'");
    $closes =~ /kgone/;
});
is($closes, 'kback1:node lost,kback2:node lost,kgone:node lost',
    'audit: each tunnel of the killed process closed once, "node lost"');
# a reconnection is an open (the restarted tunneld removed the dead route
# first) or a takeover (the client was quicker)
is(sql_query($s, "SELECT string_agg(name, ',' ORDER BY name) FROM"
    . " tunnel_events WHERE event IN ('open', 'takeover') AND id >"
    . " (SELECT max(id) FROM tunnel_events WHERE name = 'kgone'"
    . " AND event = 'open')"),
    'kback1,kback2', 'audit: the two reconnections opened again');

$cl{$_}->stop for @back;
ok(wait_no_route($s, $_, 10), "$_ released when its client stops")
    for @back;

check_logs($s,
    allow_nginx => [
        qr/connect\(\) to unix:\S+ failed \((?:2: No such file or directory|111: Connection refused)\) while connecting to upstream/,
        qr/tunnel: socket "[^"]+" of tunnel "k\w+" no longer exists/,
    ]);

$t->stop_all;
done_testing;
