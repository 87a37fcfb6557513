#!/usr/bin/perl
# Smoke test of the benchmark (issue 4): `tools/bench --smoke` runs every
# setup and every workload end to end at tiny sizes and must produce a
# number for each.  No timing is asserted: CI machines differ, and the
# figures of a smoke run mean nothing.  Bounded: the bench is stopped by
# PID if it runs past the watchdog.
#
# Issue 13: the output's structure is checked exactly (not its figures):
# the per-run ratio spread (min, median, max over run i / run i pairs), the
# noise window of every run (steal, foreign CPU, load, noisy flag), the
# cipher negotiated on each side, in results.json, results.tsv, ratios.tsv
# and results.md; and a second short run with --cipher shows both sides at
# the cipher asked for.  --profile strace-small runs and counts exactly the
# requests it was asked for.

use strict;
use warnings;
use Test::More;
use FindBin qw($Bin);
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my $root = "$Bin/..";
my $out = tempdir('tnl-bench-smoke.XXXXXX', DIR => '/tmp', CLEANUP => 1);
my $log = "$out/bench.log";
my $watchdog = 150;

# runs tools/bench with @args, output to $log; its exit status, or -1
# when the watchdog stopped it
sub bench {
    my ($log, @args) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
        { exec("$root/tools/bench", @args) };
        POSIX::_exit(127);
    }
    my $t0 = time;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            diag(sprintf("tools/bench @args took %.1f s", time - $t0));
            return $? >> 8;
        }
        if (time - $t0 > $watchdog) {
            kill 'TERM', $pid;
            my $until = time + 15;
            sleep 0.1 while waitpid($pid, WNOHANG) == 0 && time < $until;
            kill 'KILL', $pid if waitpid($pid, WNOHANG) == 0;
            waitpid($pid, 0);
            return -1;
        }
        sleep 0.2;
    }
}

sub slurp { my ($f) = @_; local (@ARGV, $/) = ($f); <> // '' }

my $status = bench($log, '--smoke', '--out', $out);
my $text = slurp($log);

is($status, 0, 'tools/bench --smoke exits 0 (no problem reported)')
    or diag($text);

ok(-s "$out/results.json", 'results.json written') or done_testing(), exit;
my $res = decode_json(do { local (@ARGV, $/) = ("$out/results.json"); <> });
my $R = $res->{results};

sub number {
    my ($w, $s, $m) = @_;
    my $v = $R->{$w}{$s}{$m};
    return ref $v eq 'ARRAY' && @$v && defined $v->[0]
           && $v->[0] =~ /^-?[\d.]+(e[-+]?\d+)?$/i;
}

for my $s (1 .. 4) {
    ok(number('a', $s, 'download_MBps'), "a: download measured, setup $s");
    ok(number('a', $s, 'upload_MBps'), "a: upload measured, setup $s");
    ok(number('b', $s, 'requests_per_s'), "b: requests/s measured, setup $s");
    ok(number('b', $s, 'p99_ms'), "b: p99 measured, setup $s");
    ok(number('c', $s, 'p50_ms') && number('c', $s, 'p99_ms'),
       "c: sequential latency measured, setup $s");
    ok(number('g', $s, 'p50_ms') && number('g', $s, 'p99_ms'),
       "g: WebSocket echo measured, setup $s");
}

ok(number('d', 1, 'launch_ms_default'), 'd: launch to first 200, setup 1');
ok(number('d', 2, 'launch_ms_default'), 'd: launch to first 200, setup 2');
ok(number('d', 2, 'launch_ms_curve25519'),
   'd: launch to first 200, setup 2 with curve25519');
ok(number('d', 3, 'launch_ms_default'), 'd: launch to first 200, setup 3');

ok(number('e', 1, 'rss_kib_per_tunnel'), 'e: tunneld memory per tunnel');
ok(number('e', 2, 'pss_kib_per_tunnel'), 'e: sshd memory per session');
is($R->{e}{1}{sessions}[0], $res->{size}{idle_n},
   'e: every idle tunnel came up on tunneld');
is($R->{e}{2}{sessions}[0], $res->{size}{idle_n},
   'e: every idle session came up on sshd');

my ($n) = @{ $res->{size}{scale} };
is($R->{f}{$n}{held}[0], $n, "f: $n tunnels held by the load generator");
ok(number('f', $n, 'rss_mib'), 'f: tunneld RSS measured');
ok(number('f', $n, 'idle_cpu_pct'), 'f: idle CPU measured');
ok(number('f', $n, 'handshakes_per_s'), 'f: handshake rate measured');
ok(number('f', $n, 'p99_ms'), 'f: request latency to random tunnels');
is($R->{f}{$n}{non2xx}[0], 0, 'f: every request reached its tunnel');

# h: one node hop (two nodes on this box, docs/SCALING.md)
for my $via ('a', 'b') {
    ok(number('h', $via, 'requests_per_s') && number('h', $via, 'p99_ms'),
       "h: small GETs measured through node \U$via");
    is($R->{h}{$via}{non2xx}[0], 0, "h: every GET through node \U$via "
       . 'reached the tunnel on node B');
}
like($text, qr/^A \/ B\s+[\d.]+x\s+[\d.]+x$/m, 'h: the A / B ratio is printed');
diag("h (smoke): $1") if $text =~ /^(through node A .*)$/m;

for my $f (qw(results.tsv results.md throughput.png memory.png)) {
    ok(-s "$out/$f", "$f written");
}
like($text, qr/^a  \d+ MiB download/m, 'the table is printed');

# ---- issue 13: spread, noise, ciphers ----------------------------------

my $GCM = 'aes128-gcm@openssh.com';
my $cipher_re = qr/^[a-z0-9][a-z0-9.\@-]+$/;
my ($runs, $runs_cg) = @{ $res->{size} }{qw(runs runs_cg)};
is($runs, 2, 'smoke: two runs of a and b (so there are pairs to spread)');
is($runs_cg, 1, 'smoke: one run of c and g');

# every run of a, b, c, g and of the aes128-gcm variant has a noise window
my @win = @{ $res->{windows} || [] };
is(scalar @win, 4 * (2 * $runs + 2 * $runs_cg) + 3 * $runs,
   'one noise window per run of a, b, c, g per setup, and per gcm run');
my @keys = qw(workload setup run variant seconds steal_pct foreign_pct
              bench_pct loadavg_before loadavg_after noisy judged metrics);
is_deeply([ grep { my $w = $_; grep { !exists $w->{$_} } @keys } @win ],
          [], "every window has @keys");
is_deeply([ grep { $_->{noisy} !~ /^[01]$/ || $_->{judged} !~ /^[01]$/
                   || $_->{steal_pct} !~ /^[\d.]+$/
                   || $_->{foreign_pct} !~ /^[\d.]+$/
                   || $_->{loadavg_before} !~ /^[\d.]+$/ } @win ],
          [], 'noisy/judged are flags, steal/foreign/load are numbers');
is_deeply([ grep { $_->{noisy} && !$_->{judged} } @win ], [],
          'a run too short to judge is never called noisy');
my $th = $res->{noise_thresholds};
is_deeply([ @$th{qw(steal_pct foreign_pct)} ], [5, 10],
          'default noise thresholds: steal 5 %, foreign 10 %');
like($th->{rule}, qr/steal > 5 %.*> 10 %/, 'the rule is stated');
my $w0 = $win[0];
diag(sprintf('first window: steal %s %%, foreign %s %%, bench %s %%, '
             . 'load %s -> %s, noisy %d', @$w0{qw(steal_pct foreign_pct
             bench_pct loadavg_before loadavg_after noisy)}));

# per-run values keyed by run, each with its noisy flag
my $ra = $res->{runs}{a}{1}{download_MBps} || {};
is_deeply([ sort keys %$ra ], [1 .. $runs], 'a download: one value per run');
is_deeply([ grep { !defined $_->{value} || $_->{noisy} !~ /^[01]$/ }
            values %$ra ], [], 'each run value has its noisy flag');

# the ratio spread: for each ratio of a download and b requests/s
my %ratio = map { ("$_->{workload} $_->{metric} $_->{vs}" => $_) }
            @{ $res->{ratios} || [] };
for my $k ('a download_MBps 2', 'a download_MBps 3', 'a upload_MBps 2',
           'b requests_per_s 2', 'b requests_per_s 3',
           'a download_MBps_aes128gcm 2', 'a download_MBps_aes128gcm 3',
           'c p50_ms 3', 'g p50_ms 2')
{
    my $r = $ratio{$k};
    ok($r, "ratio $k reported") or next;
    my $n = $k =~ /^[ab]/ ? $runs : $runs_cg;
    is($r->{pairs}, $n, "$k: $n run pairs");
    is(scalar @{ $r->{runs} }, $n, "$k: each pair listed");
    ok($r->{clean_pairs} >= 0 && $r->{clean_pairs} <= $r->{pairs},
       "$k: clean pairs counted");
    is($r->{basis}, $r->{clean_pairs} ? 'clean' : 'all (every pair noisy)',
       "$k: the basis says whether noisy runs were left out");
    ok(defined $r->{min} && defined $r->{median} && defined $r->{max}
       && $r->{min} <= $r->{median} && $r->{median} <= $r->{max},
       "$k: min <= median <= max");
    ok(defined $r->{of_medians}, "$k: ratio of medians kept");
    like($r->{cipher_1}, $cipher_re, "$k: setup 1 cipher recorded");
    like($r->{cipher_other}, $cipher_re, "$k: setup $r->{vs} cipher recorded");
}
is($ratio{'a download_MBps 2'}{cipher_1}, $GCM,
   'tunneld negotiates AES-GCM with a default OpenSSH client');
is_deeply([ @{ $ratio{'a download_MBps_aes128gcm 2'} }{qw(cipher_1
                                                         cipher_other)} ],
          [ $GCM, $GCM ], 'the -c aes128-gcm variant: both sides AES-GCM');
diag("a download 1/2: cipher $ratio{'a download_MBps 2'}{cipher_1} vs "
     . "$ratio{'a download_MBps 2'}{cipher_other}");

my @tsv = split /\n/, slurp("$out/results.tsv");
is($tsv[0], join("\t", qw(workload setup metric median runs noisy steal_pct
                          foreign_pct)), 'results.tsv header');
my ($row) = grep { /^a\t1\tdownload_MBps\t/ } @tsv;
like($row // '', qr/^a\t1\tdownload_MBps\t[\d.]+\t[\d.]+,[\d.]+\t[01],[01]
                    \t[\d.]+,[\d.]+\t[\d.]+,[\d.]+$/x,
     'results.tsv: per-run values with noisy, steal, foreign per run');
my @rtsv = split /\n/, slurp("$out/ratios.tsv");
is($rtsv[0], join("\t", qw(workload metric vs pairs clean_pairs basis min
                           median max of_medians cipher_1 cipher_other)),
   'ratios.tsv header');
ok((grep { /^a\tdownload_MBps_aes128gcm\t2\t2\t\d\t[^\t]+(\t[\d.]+){4}
            \t\Q$GCM\E\t\Q$GCM\E$/x } @rtsv),
   'ratios.tsv: the same-cipher download row');

my $md = slurp("$out/results.md");
my $row_re = sub { my $h = '| ' . join(' | ', @_) . ' |';
                   qr/^\Q$h\E$/m };
like($md, $row_re->('ratio', 'pairs clean/all', 'min', 'median', 'max',
                    'of medians', 'cipher 1', 'cipher 2/3'),
     'results.md: the ratio spread table');
like($md, $row_re->('run', 'workload', 'setup', 'variant', 'seconds',
                    'steal %', 'foreign %', 'bench %', 'load before',
                    'load after', 'noisy'),
     'results.md: the noise table');
like($md, qr/Noisy: steal > 5 %/, 'results.md states the noise rule');
like($text, qr/^ratios, per run/m, 'the spread table is printed');
like($text, qr/^noise per run/m, 'the noise table is printed');

# --cipher: every client asks for one cipher, both sides report it, and no
# -c aes128-gcm variant runs (the main runs already compare at one cipher)
my $out2 = "$out/cipher";
my $st2 = bench("$out/bench-cipher.log", '--smoke', '--setups', '1,2',
                '--workloads', 'a', '--cipher', 'aes256-gcm@openssh.com',
                '--out', $out2);
is($st2, 0, 'tools/bench --cipher aes256-gcm@openssh.com exits 0')
    or diag(slurp("$out/bench-cipher.log"));
my $res2 = eval { decode_json(slurp("$out2/results.json")) } || {};
my ($r2) = grep { $_->{metric} eq 'download_MBps' && $_->{vs} == 2 }
           @{ $res2->{ratios} || [] };
is_deeply([ @{ $r2 || {} }{qw(cipher_1 cipher_other)} ],
          [ ('aes256-gcm@openssh.com') x 2 ],
          '--cipher: both sides negotiated the cipher asked for');
ok(!$res2->{results}{a}{1}{download_MBps_aes128gcm},
   '--cipher: no separate aes128-gcm variant');

# --profile strace-small (tools/bench-syscalls): exactly N requests counted,
# per process group, with what tunneld, nginx and Redis saw of them
SKIP: {
    skip 'strace is not installed', 6
        unless grep { -x "$_/strace" } split /:/, $ENV{PATH};
    my $out3 = "$out/small";
    my $st3 = bench("$out/bench-small.log", '--setups', '1', '--workloads',
                    'c', '--runs', '1', '--profile', 'strace-small',
                    '--small-requests', 50, '--out', $out3);
    is($st3, 0, 'tools/bench --profile strace-small exits 0')
        or diag(slurp("$out/bench-small.log"));
    my $j = eval { decode_json(slurp("$out3/syscalls-small.json")) } || {};
    diag(slurp("$out3/syscalls-small.md") =~ s/\n.*//sr);
    is_deeply([ @$j{qw(requests tunneld_requests_total access_log_lines)} ],
              [ 50, 50, 50 ],
              'strace-small: 50 requests, seen by tunneld and nginx');
    ok(defined $j->{tunneld_streams_total}
       && $j->{tunneld_streams_total} <= 1,
       'strace-small: the upstream connection (and channel) is reused');
    ok(($j->{strace}{tunneld}{read} // 0) >= 50
       && ($j->{strace}{tunneld}{write} // 0) >= 50,
       'strace-small: tunneld read and wrote once per request at least');
    ok(($j->{strace}{nginx}{writev} // 0) >= 100,
       "strace-small: nginx's workers counted");
    ok(($j->{strace}{ssh}{read} // 0) >= 50, 'strace-small: ssh counted');
}

done_testing();
