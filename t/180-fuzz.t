#!/usr/bin/perl

# The libFuzzer targets (t/fuzz/*.c, docs/FUZZING.md) in CI: builds each
# with clang -fsanitize=fuzzer,address,undefined, replays its committed
# seed corpus and regression inputs (every fixed finding keeps its input
# under t/fuzz/regressions/NAME/), then fuzzes it for a few seconds (36 s
# in all).  Any crash, sanitizer report or broken invariant fails.  Skips
# only when clang's fuzzer runtime cannot be linked (t/fuzz/build exit 2).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use NgxTunnel::Test;

watchdog(240);

my $root = repo_root();
my @targets = map { m{/([^/]+)\.c$} ? $1 : () } sort glob("$root/t/fuzz/*.c");

my $out = `$root/t/fuzz/build 2>&1`;
my $rc = $? >> 8;
plan skip_all => "clang's fuzzer runtime is not installed: $out"
    if $rc == 2;
is($rc, 0, 'every fuzz target builds') or diag($out);

ok(scalar @targets >= 7, 'there are fuzz targets: ' . join(' ', @targets));

for my $name (@targets) {
    ok(-d "$root/t/fuzz/corpus/$name", "$name: has a committed seed corpus");
}

# a few seconds each: 36 s of fuzzing, under 60 s with building and replays
my $secs = int(36 / @targets) || 1;

for my $name (@targets) {
    my $got = `$root/t/fuzz/run -t $secs $name 2>&1`;
    my $status = $? >> 8;
    is($status, 0, "$name: corpus and regressions replay, $secs s of "
       . 'fuzzing without a crash') or diag($got);
    my ($figures) = $got =~ /^(fuzz \Q$name\E: runs=.*)$/m;
    diag($figures // "fuzz $name: no figures");
}

done_testing();
