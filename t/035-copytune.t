#!/usr/bin/perl

# Copies on AMD Zen (issue 13).  glibc 2.36 copies blocks from about 2 KB
# up with REP MOVSB, which AMD Zen cores run some 15 times slower when the
# destination lies 1-15 bytes past the source modulo 64; libssh's copy of
# every received payload (channel_rcv_data) is such a copy: a quarter of
# tunneld's CPU in a download.  On an AMD processor tunneld re-executes
# itself once at start with glibc.cpu.x86_rep_movsb_threshold raised
# (sshd/copytune.c), and keeps an operator's own setting of that tunable.
#
# Checked in what every tunneld process runs with (/proc/PID/environ),
# what its log says, and what glibc makes of the value (ld.so
# --list-tunables); the copy speeds are printed by bench/memcpy-align, not
# asserted here (no timing in tests).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;

use NgxTunnel::Test;

watchdog(240);

my $name = 'glibc.cpu.x86_rep_movsb_threshold';
my $ours = "$name=1073741824";

my $amd = 0;
if (open my $fh, '<', '/proc/cpuinfo') {
    while (<$fh>) {
        if (/^vendor_id\s*:\s*(\S+)/) {
            $amd = ($1 eq 'AuthenticAMD');
            last;
        }
    }
}
diag($amd ? 'AMD processor: tunneld tunes its copies'
          : 'not an AMD processor: tunneld leaves glibc as it is');

my $s = start_stack(workers => 2, nginx => 0);

# GLIBC_TUNABLES of the supervisor and of every worker ('' if unset)
sub tunables {
    my %seen;
    for my $pid ($s->pid('tunneld'), $s->tunneld_pids) {
        next if $seen{$pid}++;
        open my $fh, '<', "/proc/$pid/environ" or next;
        local $/;
        my %env = map { /^([^=]*)=(.*)$/s ? ($1, $2) : () }
                  split /\0/, <$fh> // '';
        push @{ $seen{list} }, [ $pid, $env{GLIBC_TUNABLES} // '' ];
    }
    return @{ $seen{list} || [] };
}

sub comm {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/comm" or return '';
    my $c = <$fh> // '';
    chomp $c;
    return $c;
}

sub log_since {
    my ($size) = @_;
    open my $fh, '<', $s->log_path('tunneld') or return '';
    seek $fh, $size, 0;
    local $/;
    return <$fh> // '';
}

# restart tunneld with GLIBC_TUNABLES as given (undef: unset)
sub restart {
    my ($value) = @_;
    $s->stop_tunneld;
    my $size = -s $s->log_path('tunneld') // 0;
    {
        local $ENV{GLIBC_TUNABLES} = $value;
        delete $ENV{GLIBC_TUNABLES} unless defined $value;
        $s->start_tunneld;
    }
    return $size;
}

# --- not set: tunneld sets it on AMD ------------------------------------------

my $size = restart(undef);
my @t = tunables();
is(scalar @t, 3, 'supervisor and two workers found');
for my $p (@t) {
    is($p->[1], $amd ? $ours : '',
       "pid $p->[0]: GLIBC_TUNABLES " . ($amd ? "= $ours" : 'unset'));
}

# re-executed under its own name (ps, pgrep, top): not "exe"
for my $p (@t) {
    is(comm($p->[0]), 'tunneld', "pid $p->[0]: named tunneld");
}
my $log = log_since($size);
if ($amd) {
    like($log, qr/AMD processor: glibc's copies tuned \(GLIBC_TUNABLES=\Q$ours\E,/,
         'the log says copies are tuned');
} else {
    unlike($log, qr/copies tuned/, 'nothing logged about copies');
}
unlike($log, qr/cannot re-execute/, 'no re-execution failed');

# glibc takes the value (within the tunable's bounds)
SKIP: {
    my ($ldso) = grep { -x } ('/lib64/ld-linux-x86-64.so.2',
                              '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    skip 'no x86-64 ld.so', 1 unless $ldso && $amd;
    local $ENV{GLIBC_TUNABLES} = $ours;
    my ($line) = grep { /^\Q$name\E:/ } `$ldso --list-tunables 2>&1`;
    like($line // '', qr/^\Q$name\E: 0x40000000 /,
         'ld.so --list-tunables: glibc applies 1 GiB')
        or diag($line);
}

# --- the operator's own value is kept --------------------------------------------

$size = restart("$name=2112");
@t = tunables();
is(scalar @t, 3, 'restarted: supervisor and two workers');
for my $p (@t) {
    is($p->[1], "$name=2112", "pid $p->[0]: the operator's value kept");
}
unlike(log_since($size), qr/copies tuned/,
       "the operator's value: nothing logged as tuned");

# --- other tunables: ours is added after them ----------------------------------

# (glibc 2.36 cuts /proc/PID/environ after the first tunable it parsed,
# while the process sees the whole value: tunneld logs what it sees)
$size = restart('glibc.malloc.tcache_count=7');
@t = tunables();
is(scalar @t, 3, 'restarted: supervisor and two workers');
for my $p (@t) {
    is($p->[1], 'glibc.malloc.tcache_count=7',
       "pid $p->[0]: environ starts with the operator's tunable");
}
$log = log_since($size);
if ($amd) {
    like($log, qr/copies tuned \(GLIBC_TUNABLES=glibc\.malloc\.tcache_count=7:\Q$ours\E,/,
         'the log: the operator\'s tunable kept, ours added after it');
} else {
    unlike($log, qr/copies tuned/, 'nothing logged about copies');
}

# and a tunnel opens on the re-executed daemon
my $alice = new_user($s, 'alice');
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
                    remote => 'copy:80:localhost:9');
ok(wait_route($s, 'copy', 15), 'a tunnel opens on the re-executed tunneld')
    or diag($ssh->output, tail_log($s, 'tunneld'));
$ssh->stop;

# --- the operator's value is matched whole ---------------------------------------

# a longer value that starts with ours is the operator's, not ours
$size = restart("$name=10737418240");
@t = tunables();
for my $p (@t) {
    is($p->[1], "$name=10737418240", "pid $p->[0]: 10737418240 kept");
}
unlike(log_since($size), qr/copies tuned/,
       'a value that only starts like ours is not logged as tuned');

# --- a secure execution (file capabilities) is never re-executed ----------------

# glibc ignores or drops this tunable there: re-executing would loop
SKIP: {
    my ($setcap) = grep { -x } map { "$_/setcap" }
                   split(/:/, $ENV{PATH}), '/usr/sbin', '/sbin';
    skip 'setcap is not installed (libcap2-bin: tools/install-deps)', 2
        unless $setcap && $> == 0;
    my $dir = $s->dir . '/setcap';
    mkdir $dir;
    chmod 0755, $dir;
    system('cp', $s->bin('tunneld'), "$dir/tunneld") == 0 or die "cp: $?";
    chmod 0755, "$dir/tunneld";
    my $capped = system($setcap, 'cap_net_bind_service+ep',
                        "$dir/tunneld") == 0;
    skip "setcap failed here (no file capabilities on this filesystem)", 2
        unless $capped;
    my $t0 = time;
    my $out = `timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups $dir/tunneld --help 2>&1`;
    my $rc = $? >> 8;
    is($rc, 0, 'with file capabilities, run as nobody: --help exits 0 '
               . '(no endless re-execution)')
        or diag("rc $rc after " . (time - $t0) . " s: $out");
    like($out, qr/--keepalive/, '... and prints the usage');
}

check_logs($s);
done_testing();
