#!/usr/bin/perl

# Fault matrix (issue 14): the ssh client vanishes in the middle of a
# download through its tunnel.  The browser's request must end with an
# error (the response cut short) within the keepalive timeout, and
# descriptors, memory and Redis keys must come back to their baseline.
#
# (a) kill -9 of the ssh client, 100 times (bounded loop): the kernel
#     closes its connection, tunneld sees EOF at once.  Measured: the
#     time from the kill to the end of the browser's response and to the
#     route's removal; fds (/proc/PID/fd) and RSS of tunneld's workers and
#     nginx's workers, and the tunnel:* keys in Redis, before and after.
# (b) the client's packets dropped: the client reaches tunneld through a
#     veth pair into a network namespace of its own (10.231.0.0/30,
#     private), and that namespace's end of the link is set down mid-
#     download.  Nothing tells tunneld: it finds out by the keepalive
#     timeout, which is what applies here: tunneld's --keepalive K sets
#     the SSH keepalive period and TCP_USER_TIMEOUT (sshd/server.c), so a
#     silent peer is dropped within 2 K.  The stack runs --keepalive 5.
#     The test re-runs itself under `unshare -n` (root) so the veth, its
#     addresses and every service live in a network namespace nothing
#     else on the machine sees.  Without root, (b) is skipped: a
#     SIGSTOPped client instead would not do, its kernel still
#     acknowledges every packet; that case is tunneld's client-alive
#     check, tested in t/174-client-alive.t.

use strict;
use warnings;

BEGIN {
    if (!$ENV{NGX_TUNNEL_T_NETNS} && $> == 0
        && system('unshare -n true 2>/dev/null') == 0)
    {
        $ENV{NGX_TUNNEL_T_NETNS} = 1;
        exec 'unshare', '-n', '--', $^X, $0, @ARGV;
        die "exec unshare: $!\n";
    }
}

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use NgxTunnel::Stack ();
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(480);

my $NETNS     = $ENV{NGX_TUNNEL_T_NETNS} ? 1 : 0;
my $KEEPALIVE = 5;
my $CYCLES    = $ENV{T177_CYCLES} // 100;
my $BIG       = 1024 * 1024 * 1024;    # never sent in full
my $SRV_ADDR  = '10.231.0.1';
my $CLI_ADDR  = '10.231.0.2';

sub sh {
    my $out = `@_ 2>&1`;
    die "@_: exit " . ($? >> 8) . ": $out" if $?;
    return $out;
}

# the client's network namespace, held by a sleeping process, and a veth
# pair between it and ours
my $holder;
if ($NETNS) {
    sh('ip', 'link', 'set', 'lo', 'up');
    $holder = fork // die "fork: $!";
    if (!$holder) {
        no warnings 'exec';
        exec 'unshare', '-n', '--', 'sleep', '600';
        POSIX::_exit(127);
    }
    push @NgxTunnel::Test::KIDS, [$holder, 'client netns holder'];
    wait_until(5, sub {
        (readlink("/proc/$holder/ns/net") // '') ne readlink('/proc/self/ns/net')
    }) or die "the holder did not enter its network namespace\n";
    sh('ip', 'link', 'add', 'tnlv0', 'type', 'veth', 'peer', 'name', 'tnlv1',
       'netns', $holder);
    sh('ip', 'addr', 'add', "$SRV_ADDR/30", 'dev', 'tnlv0');
    sh('ip', 'link', 'set', 'tnlv0', 'up');
    my $in = "nsenter --net=/proc/$holder/ns/net";
    sh("$in ip addr add $CLI_ADDR/30 dev tnlv1");
    sh("$in ip link set tnlv1 up");
    sh("$in ip link set lo up");
}

my $ssh_port = NgxTunnel::Stack::free_port();
my $s = start_stack(ssh_port => $ssh_port,
    tunneld_args => ['--keepalive', $KEEPALIVE,
                     $NETNS ? ('--listen', "$SRV_ADDR:$ssh_port") : ()]);
my $port = $s->env->{HTTP_PORT};
my $master = $s->pid('nginx');

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'big');


# --- measuring -------------------------------------------------------------

sub nginx_workers {
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @w, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $master;
    }
    return sort { $a <=> $b } @w;
}

sub nfds {
    my ($pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return 0;
    return scalar grep { !/^\./ } readdir $d;
}

sub rss_kib {
    my ($pid) = @_;
    my ($kb) = read_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m;
    return $kb // 0;
}

sub snapshot {
    my %m = (tunneld => [$s->tunneld_pids], nginx => [nginx_workers()]);
    my %r;
    for my $g (qw(tunneld nginx)) {
        $r{"$g pids"} = join ',', @{ $m{$g} };
        $r{"$g fds"} = 0;
        $r{"$g rss"} = 0;
        for my $pid (@{ $m{$g} }) {
            $r{"$g fds"} += nfds($pid);
            $r{"$g rss"} += rss_kib($pid);
        }
    }
    $r{keys} = join ' ', sort split /\n/,
        $s->redis_cli('--scan', '--pattern', 'tunnel:*');
    return \%r;
}

sub show {
    my ($what, $m) = @_;
    diag(sprintf '%s: tunneld workers (%s) %d fds %d KiB; nginx workers '
        . '(%s) %d fds %d KiB; redis tunnel:* keys: %s', $what,
        $m->{'tunneld pids'}, $m->{'tunneld fds'}, $m->{'tunneld rss'},
        $m->{'nginx pids'}, $m->{'nginx fds'}, $m->{'nginx rss'},
        $m->{keys} eq '' ? 'none' : $m->{keys});
}


# --- one download, interrupted by $vanish ----------------------------------
#
# Starts GET /bytes/1GiB through tunnel "vanish", reads 1 MiB, calls
# $vanish->(), reads on until the connection ends.  Returns { got, want,
# t_end (seconds from the vanish to the end), error }.

sub interrupted_download {
    my ($vanish, $limit) = @_;
    my $c = http_connect($port);
    syswrite $c->{sock}, "GET /bytes/$BIG HTTP/1.1\r\n"
        . "Host: vanish.localhost:$port\r\n\r\n";
    my ($buf, $head, $got, $t0) = ('', undef, 0, 0);
    my $deadline = time + 15;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            close $c->{sock};
            return { error => $t0 ? 'no end in time' : 'no 1 MiB in time',
                     got => $got };
        }
        next unless $c->{sel}->can_read($left > 1 ? 1 : $left);
        my $n = sysread $c->{sock}, $buf, 1 << 20;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            $n = 0;
        }
        last if !$n;
        if (!defined $head) {
            $head = $buf =~ s/^(.*?\r\n\r\n)//s ? $1 : next;
            $got = length $buf;
        } else {
            $got += $n;
        }
        $buf = '';
        if (!$t0 && $got >= 1 << 20) {
            $vanish->();
            $t0 = time;
            $deadline = time + $limit;
        }
    }
    close $c->{sock};
    my ($want) = ($head // '') =~ /^Content-Length: (\d+)/mi;
    return { got => $got, want => $want // -1, t_end => time - $t0,
             status => ($head // '') =~ m{^HTTP/1\.1 (\d+)} ? $1 : 'none' };
}


# --- (a) kill -9, 100 times -----------------------------------------------------

my $last = '';

sub kill_cycle {
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "vanish:80:localhost:$be->{port}");
    my $route = wait_route($s, 'vanish', 10,
        sub { $_[0]{session} ne $last });
    return { error => 'no route: ' . $ssh->output } unless $route;
    $last = $route->{session};
    my $pid = $ssh->pid;
    my $r = interrupted_download(sub { kill 'KILL', $pid }, 20);
    my $t = time;
    $ssh->finish(5);
    $r->{t_route} = wait_no_route($s, 'vanish', 10) ? time - $t : -1;
    return $r;
}

# a few cycles first: allocators and caches reach their steady state
for (1 .. 10) {
    my $r = kill_cycle();
    die "warm-up failed: $r->{error}\n" if $r->{error};
}
sleep 1;
my $base = snapshot();
show('baseline', $base);

my (@ends, @routes, @bad, @growth);
my $t_loop = time;
for my $i (1 .. $CYCLES) {
    my $r = kill_cycle();
    if ($r->{error} || $r->{status} ne '200' || $r->{want} != $BIG
        || $r->{got} >= $r->{want} || $r->{t_end} > 5 || $r->{t_route} < 0)
    {
        push @bad, "cycle $i: " . join ', ',
            map { "$_=" . ($r->{$_} // '') } sort keys %$r;
        last if @bad > 5;
        next;
    }
    push @ends, $r->{t_end};
    push @routes, $r->{t_route};
    if ($i % 25 == 0) {
        my $m = snapshot();
        push @growth, sprintf '%d: %+d/%+d KiB', $i,
            $m->{'tunneld rss'} - $base->{'tunneld rss'},
            $m->{'nginx rss'} - $base->{'nginx rss'};
    }
}
my $loop = time - $t_loop;

sub stats {
    my @v = sort { $a <=> $b } @_;
    return 'none' unless @v;
    return sprintf 'median %.3f s, max %.3f s', $v[$#v / 2], $v[-1];
}

is(scalar @ends, $CYCLES, "kill -9: $CYCLES of $CYCLES downloads ended cut "
    . 'short, within 5 s of the kill, route released')
    or diag(join "\n", @bad);
diag(sprintf "kill -9: %d cycles in %.1f s; kill to the browser's error: %s; "
    . 'kill to the route gone: %s', $CYCLES, $loop, stats(@ends),
    stats(@routes));

diag('RSS growth (tunneld/nginx workers) after N cycles: '
    . join ', ', @growth);

# every connection nginx had to the dead sockets is gone once the
# response ended; give the workers a moment to finish their sweeps
sleep 1;
my $after;
my $fds_ok = wait_until(10, sub {
    $after = snapshot();
    return $after->{'tunneld fds'} <= $base->{'tunneld fds'}
        && $after->{'nginx fds'} <= $base->{'nginx fds'};
});
show("after $CYCLES kill -9 cycles", $after);
is($after->{'tunneld pids'}, $base->{'tunneld pids'},
    'kill -9: the same tunneld workers');
is($after->{'nginx pids'}, $base->{'nginx pids'},
    'kill -9: the same nginx workers');
is($after->{'tunneld fds'}, $base->{'tunneld fds'},
    "kill -9: tunneld's fds back to the baseline exactly");
is($after->{'nginx fds'}, $base->{'nginx fds'},
    "kill -9: nginx workers' fds back to the baseline exactly");
# tunneld's workers hold up to a few MiB of a download in flight when its
# client dies (libssh's and the pump's buffers); malloc keeps that memory
# for the next session, so their RSS plateaus (measured: +2.5 to +5.8 MiB
# for both workers over 300 cycles, no trend) rather than returning to
# the exact baseline.  A leak of one session's buffers per cycle would
# pass any such plateau within 100 cycles.
my %RSS_BOUND = (tunneld => 8192, nginx => 1024);   # KiB per group
for my $g (qw(tunneld nginx)) {
    my $d = $after->{"$g rss"} - $base->{"$g rss"};
    SKIP: {
        skip "RSS bound: ASan holds freed memory in its quarantine (SANITIZE=1: LeakSanitizer checks leaks instead)", 1 if $ENV{NGX_TUNNEL_SANITIZE};
        ok($d <= $RSS_BOUND{$g}, "kill -9: $g workers' RSS grew $d KiB in "
            . "$CYCLES cycles (bound $RSS_BOUND{$g} KiB)");
    }
}
is($after->{keys}, $base->{keys}, 'kill -9: Redis tunnel:* keys as before');
is(scalar(route_of($s, 'vanish')), 0, 'kill -9: no route left');
my @socks = glob $s->socket_dir . '/t-*.sock';
is(scalar @socks, 0, 'kill -9: no tunnel socket left');


# --- (b) the client's packets dropped ------------------------------------------

SKIP: {
    skip 'dropping packets needs root (a network namespace)', 10
        unless $NETNS;

    # ssh runs here (its -R target is the backend on our 127.0.0.1); its
    # TCP connection starts in the client's namespace, through a relay
    my $relay = "$s->{_test_dir}/relay.pl";
    open my $fh, '>', $relay or die "$relay: $!";
    print $fh <<'PL';
use strict; use IO::Socket::INET; use IO::Select;
my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1],
    Proto => 'tcp') or die "relay: connect: $!\n";
my $sel = IO::Select->new(\*STDIN, $s);
while (1) {
    for my $in ($sel->can_read) {
        my $n = sysread $in, my $buf, 65536;
        exit 0 unless $n;
        my $out = $in == $s ? \*STDOUT : $s;
        my $off = 0;
        while ($off < $n) {
            my $w = syswrite $out, $buf, $n - $off, $off;
            exit 0 unless defined $w;
            $off += $w;
        }
    }
}
PL
    close $fh;

    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "vanish:80:localhost:$be->{port}", alive => 0,
        extra => ['-o', "ProxyCommand=nsenter --net=/proc/$holder/ns/net "
                  . "$^X $relay $SRV_ADDR $ssh_port"]);
    my $route = wait_route($s, 'vanish', 15);
    ok($route, 'packets dropped: tunnel up through the client namespace')
        or diag($ssh->output, tail_log($s, 'tunneld'));
    like($route ? $route->{client} : '', qr/^\Q$CLI_ADDR\E:\d+$/,
        "packets dropped: the client comes from $CLI_ADDR");

    my $t_down;
    my $r = interrupted_download(sub {
        sh("nsenter --net=/proc/$holder/ns/net ip link set tnlv1 down");
        $t_down = time;
    }, 4 * $KEEPALIVE + 10);
    my $t_route = wait_no_route($s, 'vanish', 10) ? time - $t_down : -1;

    is($r->{error}, undef, 'packets dropped: the download ended')
        or diag(tail_log($s, 'tunneld'));
    is($r->{status}, 200, 'packets dropped: it had started (200)');
    ok($r->{got} < $BIG, "packets dropped: cut short ($r->{got} bytes)");
    ok(defined $r->{t_end} && $r->{t_end} <= 2 * $KEEPALIVE + 2,
        sprintf "packets dropped: the browser's request ended %.2f s after "
        . "the link went down (bound: 2 x --keepalive %d s + 2 s)",
        $r->{t_end} // -1, $KEEPALIVE);
    ok($t_route >= 0, sprintf 'packets dropped: route released %.2f s after '
        . 'the link went down', $t_route);
    my @why = grep { /session .*(?:timed out|connection lost|Connection timed out)/i
                     || /vanish down/ }
              log_lines($s->log_path('tunneld'));
    diag("packets dropped: tunneld: $_") for @why[-2 .. -1];
    # the kernel gave up (ETIMEDOUT), well before the client-alive check
    # (--keepalive-count 3 intervals): not the client's doing
    my $detail;
    wait_until(10, sub {
        $detail = sql_query($s, "SELECT detail FROM tunnel_events WHERE"
            . " event = 'close' AND name = 'vanish' ORDER BY id DESC LIMIT 1");
    });
    is($detail, 'connection lost',
        'packets dropped: audit close reason "connection lost", not '
        . '"client quit"');
    $ssh->stop;

    sleep 1;
    my $end;
    wait_until(10, sub {
        $end = snapshot();
        return $end->{'tunneld fds'} <= $base->{'tunneld fds'}
            && $end->{'nginx fds'} <= $base->{'nginx fds'};
    });
    show('after the dropped client', $end);
    is($end->{'tunneld fds'} . ' ' . $end->{'nginx fds'},
        $base->{'tunneld fds'} . ' ' . $base->{'nginx fds'},
        'packets dropped: tunneld and nginx fds back to the baseline');
    is($end->{keys}, $base->{keys},
        'packets dropped: Redis tunnel:* keys as before');
}

check_logs($s, allow_nginx => [
    qr/upstream prematurely closed connection while reading upstream/,
    qr/recv\(\) failed \(104: Connection reset by peer\) while reading upstream/,
]);

$s->stop_all;
done_testing;
