#!/usr/bin/perl
# `make test SANITIZE=1` (issue 14): the harness really runs sanitized
# binaries and really fails a test on a report.
#
# * the stack's tunneld and nginx workers have libasan mapped, and so does
#   the nginx module they load (Debian's nginx + LD_PRELOAD);
# * a test file whose sanitized process writes an ASan or UBSan report
#   exits non-zero with the report's first lines, though every one of its
#   own assertions passed; the same file with a clean program passes.
# Skipped in the normal run (nothing is sanitized there).

use strict;
use warnings;
use FindBin qw($Bin);
use lib "$Bin/lib";
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;

use NgxTunnel::Test;

# `make test VALGRIND=1` runs the second half only: the probe under
# valgrind, whose log the harness must read the same way
my $VG = $ENV{NGX_TUNNEL_VALGRIND} && !$ENV{NGX_TUNNEL_SANITIZE};
plan skip_all => 'not a sanitized run (make test SANITIZE=1 or VALGRIND=1)'
    unless $ENV{NGX_TUNNEL_SANITIZE} || $VG;

watchdog(180);
my $root = repo_root();

# --- the stack's processes are the sanitized ones -----------------------------

if (!$VG) {
    my $s = start_stack(workers => 2);
    my $maps = sub {
        my ($pid) = @_;
        return read_file("/proc/$pid/maps");
    };
    my @w = $s->tunneld_pids;
    is(scalar @w, 2, 'two tunneld workers');
    for my $pid ($s->pid('tunneld'), @w) {
        like($maps->($pid), qr{/libasan\.so}, "tunneld pid $pid: libasan");
    }
    my $nginx = $s->pid('nginx');
    my @nw = grep { (split ' ', read_file("/proc/$_/stat"))[3] == $nginx }
             map { m{/proc/(\d+)/} ? $1 : () } glob '/proc/[0-9]*/stat';
    ok(@nw >= 1, 'nginx has workers');
    my $m = $maps->($nw[0]);
    like($m, qr{/libasan\.so}, 'nginx worker: libasan preloaded');
    like($m, qr{\Q$ENV{NGX_TUNNEL_BUILD}\E/ngx_http_tunnel_module\.so},
        'nginx worker: the sanitized module from build-asan/ is loaded');
    check_logs($s);
    $s->stop_all;
}

# --- a report fails the test file -------------------------------------------

my $tmp = tempdir('tnl-san.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
open my $c, '>', "$tmp/bad.c" or die $!;
print $c <<'C';
#include <limits.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    char *p = malloc(8);
    int   big = INT_MAX;
    if (argc > 1 && strcmp(argv[1], "overflow") == 0) p[8] = 1;
    if (argc > 1 && strcmp(argv[1], "ub") == 0) big += argc;
    if (argc > 1 && strcmp(argv[1], "leak") == 0) p = NULL;
    free(p);
    return big == 7;
}
C
close $c;
is(system('cc', '-g', $VG ? () : ('-fsanitize=address,undefined'),
          '-o', "$tmp/bad",
          "$tmp/bad.c"), 0, 'a sanitized probe builds');

# a test file of its own: a Stack (no service), the probe with the
# stack's sanitizer environment, one passing assertion
open my $t, '>', "$tmp/probe.t" or die $!;
print $t <<"PL";
use strict;
use warnings;
use lib '$root/tools/lib';
use Test::More;
use NgxTunnel::Stack;
my \$s = NgxTunnel::Stack->new(root => '$root', dir => '$tmp/stack-' . \$ARGV[0]);
my \%e = \$s->sanitizer_env('tunnelctl');
local \@ENV{keys \%e} = values \%e;
my \@vg = ('valgrind', '--leak-check=full', '--errors-for-leak-kinds=definite',
    "--log-file=\$s->{san_dir}/tunneld-valgrind.%p");
# UBSan writes to stderr: as a service would, into its log
open my \$save, '>&', \*STDERR or die;
open STDERR, '>>', \$s->log_path('tunneld') or die if \$ARGV[0] eq 'ub';
system(\$ENV{NGX_TUNNEL_VALGRIND} ? \@vg : (), '$tmp/bad', \$ARGV[0]);
open STDERR, '>&', \$save or die;
ok(1, 'the probe ran');
done_testing;
PL
close $t;

# valgrind sees no integer overflow: that case is ASan+UBSan's only
for my $case ($VG ? qw(clean overflow leak) : qw(clean overflow ub leak)) {
    my ($out, $err) = ('', '');
    # its own report directory: the run's must stay clean
    IPC::Run::run([$^X, "$tmp/probe.t", $case],
                  init => sub {
                      $ENV{$VG ? 'NGX_TUNNEL_VALGRIND' : 'NGX_TUNNEL_SANITIZE'}
                          = "$tmp/san";
                  },
                  '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(60));
    my $rc = $? >> 8;
    if ($case eq 'clean') {
        is($rc, 0, 'clean probe: the test file passes') or diag($err);
        unlike($err, qr/sanitizer report/, 'clean probe: no report');
        next;
    }
    my %what = $VG
        ? (overflow => qr/Invalid write of size 1/,
           leak     => qr/8 bytes in 1 blocks are definitely lost/)
        : (overflow => qr/heap-buffer-overflow/,
           ub       => qr/signed integer overflow/,
           leak     => qr/detected memory leaks/);
    isnt($rc, 0, "$case: the test file fails (exit $rc)");
    like($out, qr/^ok 1 - the probe ran$/m, "$case: its own assertion passed");
    like($err, $case eq 'ub'
        ? qr/sanitizer report in \Q$tmp\E\/stack-ub\/tunneld\.log:/
        : qr/sanitizer report \Q$tmp\E\/san\/\S+\/(?:tunnelctl-asan|tunneld-valgrind)\.\d+:/,
        "$case: names the report file");
    like($err, $what{$case}, "$case: prints the report's first lines");
    my ($first) = $err =~ /(sanitizer report .*\n(?:.*\n){0,2})/;
    diag($first // $err);
}

done_testing;
