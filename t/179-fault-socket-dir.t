#!/usr/bin/perl

# Fault matrix (issue 14): the socket directory full or read-only.  tunneld
# must refuse new tunnels with a clear message to the ssh client and in its
# log, keep the existing tunnels serving, and open new ones again as soon
# as the directory is usable, without a restart.
#
# How the faults are made: the tests run as root in CI, and root ignores
# file modes (chmod 0555 would not stop it), so the socket directory is a
# tiny tmpfs mounted in a private mount namespace: "full" = every inode
# used (nr_inodes; a Unix socket takes an inode and no blocks, so a byte
# limit alone would not stop bind()), "read-only" = the tmpfs remounted ro.
# The whole test re-runs itself under `unshare -m --propagation private`
# so nginx, tunneld and the mount share one namespace that nothing else on
# the machine sees and that disappears with the test.  Without root (or
# without unshare) the test falls back to chmod 0555, which then does stop
# tunneld, and skips the "full" part.

use strict;
use warnings;

BEGIN {
    if (!$ENV{NGX_TUNNEL_T_MOUNTNS} && $> == 0
        && system('unshare -m --propagation private true 2>/dev/null') == 0)
    {
        $ENV{NGX_TUNNEL_T_MOUNTNS} = 1;
        exec 'unshare', '-m', '--propagation', 'private', '--', $^X, $0, @ARGV;
        die "exec unshare: $!\n";
    }
}

use FindBin qw($Bin);
use lib "$Bin/lib";

use Errno qw(ENOSPC);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $MOUNTNS = $ENV{NGX_TUNNEL_T_MOUNTNS} ? 1 : 0;
my $INODES  = 32;

diag($MOUNTNS
     ? "method: tmpfs (nr_inodes=$INODES) in a private mount namespace"
     : 'method: chmod 0555 (not root or no unshare: "full" skipped)');

my $s = start_stack();
my $sockdir = $s->socket_dir;

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');


sub sh {
    my (@cmd) = @_;
    my $out = `@cmd 2>&1`;
    die "@cmd: exit " . ($? >> 8) . ": $out" if $?;
    return $out;
}


if ($MOUNTNS) {
    # tunneld makes the directory its own at start (mode, group, stale
    # sockets): restart it on the tmpfs
    $s->stop_tunneld;
    sh('mount', '-t', 'tmpfs', '-o', "size=1m,nr_inodes=$INODES,mode=0750",
       'tmpfs', $sockdir);
    $s->start_tunneld;
}


# tunnel NAME through which GET / answers, or why not
sub serves {
    my ($name) = @_;
    return status_body($s, $name);
}


# An attempt to open tunnel NAME that must be refused: a -N client (what
# OpenSSH itself prints, exit code) and a client with a session channel
# (tunneld's text).  Returns nothing; emits the tests.
sub refused {
    my ($name, $what, $log_re) = @_;
    my $t0 = time;
    my ($rc, $out, $err) = run_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "$name:80:localhost:$be->{port}", timeout => 20);
    my $dt = time - $t0;
    is($rc, 255, "$what: ssh -N -R exits 255");
    like($err, qr/remote port forwarding failed/,
        "$what: ssh -N prints the forwarding failure on stderr")
        or diag("out: $out\nerr: $err");
    diag(sprintf "$what: -N client refused in %.2f s", $dt);

    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, remote => "$name:80:localhost:$be->{port}");
    my $text = qr/The server cannot create new tunnels right now \(no room (?:or no write access )?for their sockets\)\. Existing tunnels keep working; please retry later\./;
    ok($ssh->wait_for($text, 15),
        "$what: the session client is told why, and to retry")
        or diag($ssh->output);
    isnt($ssh->finish(15), -1, "$what: the session client exits by itself");
    is(scalar(route_of($s, $name)), 0, "$what: nothing registered");

    my @log = grep { /$log_re/ } log_lines($s->log_path('tunneld'));
    ok(@log >= 2, "$what: tunneld logs the cause (" . scalar(@log)
        . ' lines)') or diag(tail_log($s, 'tunneld'));
    diag("$what: log: $log[0]") if @log;
}


# --- before: an existing tunnel ---------------------------------------------

my $steady = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "steady:80:localhost:$be->{port}");
ok(wait_route($s, 'steady', 10), 'steady tunnel up')
    or diag($steady->output, tail_log($s, 'tunneld'));
is(serves('steady'), '200 hello from backend one', 'steady: serves');


# --- full -------------------------------------------------------------------

SKIP: {
    skip 'disk full needs root and a mount namespace', 17 unless $MOUNTNS;

    # use up every inode left
    my $n = 0;
    while ($n < 1000) {
        open(my $fh, '>', "$sockdir/fill-$n") or last;
        close $fh;
        $n++;
    }
    my $errno = $! + 0;
    is($errno, ENOSPC, "full: the socket directory is full ($n inodes "
        . 'taken)');

    refused('latecomer', 'full',
        qr/cannot create the socket of tunnel latecomer in "\Q$sockdir\E": No space left on device/);

    for my $i (1 .. 3) {
        is(serves('steady'), '200 hello from backend one',
            "full: the existing tunnel still serves ($i)");
    }
    ok($steady->alive, 'full: the existing session is kept');

    # room again: the next tunnel opens, no restart
    unlink "$sockdir/fill-$_" for 0 .. $n - 1;
    my $again = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "latecomer:80:localhost:$be->{port}");
    ok(wait_route($s, 'latecomer', 10),
        'full, then room again: a new tunnel opens')
        or diag($again->output, tail_log($s, 'tunneld'));
    is(serves('latecomer'), '200 hello from backend one',
        'full, then room again: the new tunnel serves');
    $again->stop;
    ok(wait_no_route($s, 'latecomer', 5), 'latecomer closed');
}


# --- read-only ------------------------------------------------------------

{
    if ($MOUNTNS) {
        sh('mount', '-o', 'remount,ro', $sockdir);
    } else {
        chmod 0555, $sockdir or die "chmod $sockdir: $!";
    }
    my $probe = "$sockdir/probe";
    ok(!open(my $fh, '>', $probe), "read-only: cannot write (as uid $>: $!)");

    refused('readonly', 'read-only',
        qr/cannot create the socket of tunnel readonly in "\Q$sockdir\E": (?:Read-only file system|Permission denied)/);

    for my $i (1 .. 3) {
        is(serves('steady'), '200 hello from backend one',
            "read-only: the existing tunnel still serves ($i)");
    }
    ok($steady->alive, 'read-only: the existing session is kept');

    if ($MOUNTNS) {
        sh('mount', '-o', 'remount,rw', $sockdir);
    } else {
        chmod 0750, $sockdir or die "chmod $sockdir: $!";
    }
    my $again = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "readonly:80:localhost:$be->{port}");
    ok(wait_route($s, 'readonly', 10),
        'read-only, then writable again: a new tunnel opens')
        or diag($again->output, tail_log($s, 'tunneld'));
    is(serves('readonly'), '200 hello from backend one',
        'read-only, then writable again: the new tunnel serves');
    $again->stop;
}

is(serves('steady'), '200 hello from backend one', 'steady: serves at the end');
$steady->stop;

check_logs($s,
    allow_tunneld => [qr/cannot create the socket of tunnel (?:latecomer|readonly)/]);

$s->stop_all;
system('umount', $sockdir) if $MOUNTNS;
done_testing;
