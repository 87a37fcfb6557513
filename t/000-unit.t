#!/usr/bin/perl
# Runs the C unit tests (t/unit/*.c, built by `make unit` into build/unit/)
# as subtests, so one `prove -r t/` covers them.  A missing binary fails:
# `make test` builds them first.

use strict;
use warnings;
use Test::More;
use FindBin qw($Bin);

my $root = "$Bin/..";
my @srcs = sort glob("$root/t/unit/*.c");
ok(@srcs > 0, 'there are C unit tests');

for my $src (@srcs) {
    my ($name) = $src =~ m{/([^/]+)\.c$};
    my $bin = ($ENV{NGX_TUNNEL_BUILD} // "$root/build") . "/unit/$name";
    subtest "unit $name" => sub {
        ok(-x $bin, "$bin is built") or return;
        my @out = `$bin`;
        my $status = $? >> 8;
        my ($plan) = grep { /^1\.\.\d+$/ } @out;
        ok(defined $plan, 'prints a TAP plan');
        my @not = grep { /^not ok/ } @out;
        my @ok = grep { /^ok / } @out;
        diag(join '', @not) if @not;
        is(scalar(@not), 0, "no failing assertion (" . scalar(@ok) . " passed)");
        is($status, 0, 'exits 0');
    };
}

done_testing();
