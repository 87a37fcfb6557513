#!/usr/bin/perl
# `make` and `make test` on a clone where `make deps` never ran: the
# browser tests' npm package (playwright-core, admin/browser-tests/
# node_modules) is missing.  tools/install-deps --check-or-install (the
# deps-check of every make) must install it as root and, for anyone else,
# say exactly what to run; --check reports it.  Runs against a temp copy of
# tools/install-deps and admin/browser-tests/package*.json, never touching
# the real node_modules.  The root case reaches the npm registry (as
# `make deps` and CI do).

use strict;
use warnings;

use FindBin qw($Bin);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;

my $root = "$Bin/..";

my ($rc0, undef, $err0) = run_deps($root, 0, '--check');
plan skip_all => "Debian packages missing, install-deps --check: $err0"
    if $err0 =~ /missing packages/;

my $tmp = tempdir('install-deps-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
sub clone {
    my ($name) = @_;
    my $d = "$tmp/$name";
    make_path("$d/tools", "$d/admin/browser-tests");
    copy("$root/tools/install-deps", "$d/tools/install-deps") or die;
    chmod 0755, "$d/tools/install-deps";
    for my $f (qw(package.json package-lock.json)) {
        copy("$root/admin/browser-tests/$f", "$d/admin/browser-tests/$f")
            or die "$f: $!";
    }
    system('chmod', '-R', 'a+rX', $tmp) == 0 or die;
    return $d;
}

# (exit code, stdout, stderr) of DIR/tools/install-deps ARGS, as the
# unprivileged 'nobody' when $nobody
sub run_deps {
    my ($dir, $nobody, @args) = @_;
    my @cmd = ("$dir/tools/install-deps", @args);
    unshift @cmd, qw(setpriv --reuid=nobody --regid=nogroup --clear-groups
                     --reset-env) if $nobody;
    my ($out, $err) = ('', '');
    IPC::Run::run(\@cmd, '<', \'', '>', \$out, '2>', \$err,
                  IPC::Run::timeout(300));
    return ($? >> 8, $out, $err);
}

my $real = "$root/admin/browser-tests/node_modules";
my @real_before = stat $real;

my $bt = 'admin/browser-tests';
my $pkg = "$bt/node_modules/playwright-core/package.json";

# --check: reported, exit 1
my $c = clone('check');
my ($rc, $out, $err) = run_deps($c, 0, '--check');
is_deeply([$rc, $out, $err],
          [1, '', "install-deps: missing npm packages in $c/$bt (npm ci)\n"],
          '--check names the missing npm packages');

# not root: the exact command, make goes on, nothing installed
SKIP: {
    skip 'setpriv not found', 3 if system('command -v setpriv >/dev/null');
    my $n = clone('nobody');
    ($rc, $out, $err) = $> == 0 ? run_deps($n, 1, '--check-or-install')
                                : run_deps($n, 0, '--check-or-install');
    is_deeply([$rc, $out], [0, ''], 'not root: exit 0 (the build goes on)');
    is($err, "install-deps: playwright-core (npm) for the browser tests is "
           . "not installed; the browser tests are skipped until you run "
           . "'make deps'\ninstall-deps: (or: cd $n/$bt && npm ci)\n",
       'not root: says exactly what to run');
    ok(!-e "$n/$bt/node_modules", 'not root: nothing installed');
}

# root: installed by the check itself, as `make test` runs it
SKIP: {
    skip 'not root: installing as root is not testable', 3 if $> != 0;
    my $r = clone('root');
    ($rc, $out, $err) = run_deps($r, 0, '--check-or-install');
    is($rc, 0, 'root: exit 0') or diag($out, $err);
    like($out, qr/^install-deps: npm ci in admin\/browser-tests /m,
         'root: says it installs');
    ok(-f "$r/$pkg", 'root: playwright-core installed in the copy');
}

is_deeply([stat $real], \@real_before,
          'the real admin/browser-tests/node_modules was not touched');

done_testing();
