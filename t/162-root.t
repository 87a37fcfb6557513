#!/usr/bin/perl

# tunneld refuses to run as root unless told (issue 14, SECURITY): as
# root without --allow-root it exits 2 before creating anything, saying
# why and what to do; --allow-root (or allow-root = yes in --config) lets
# it start, which is what the test harness passes (tools/lib/NgxTunnel/
# Stack.pm, as root only); an unprivileged user needs no flag.  The
# packages, the systemd unit and the Docker image run it as "tunneld".

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;

use NgxTunnel::Test;
use lib repo_root() . '/tools/lib';
use NgxTunnel::Stack ();

watchdog(60);

plan skip_all => 'needs root (the refusal is for root)' if $> != 0;

my $bin = repo_root() . '/build/tunneld';
my $dir = tempdir('tnl-root.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

sub run_tunneld {
    my (@cmd) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run([@cmd], '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(20));
    return ($? >> 8, $err);
}

# a host key path that cannot be created: past the root check, tunneld
# stops there, so nothing keeps running
my @args = ('--listen', '127.0.0.1:' . NgxTunnel::Stack::free_port(),
            '--socket-dir', "$dir/sockets", '--host-key', "$dir/no/key",
            '--database-url', 'postgresql:///x?host=/nonexistent',
            '--redis-url', 'unix:/nonexistent', '--workers', 1);

my ($rc, $err) = run_tunneld($bin, @args);
is($rc, 2, 'as root without --allow-root: exit 2');
like($err, qr/^tunneld: refusing to run as root: .*Run it as an unprivileged user .*or pass --allow-root/s,
    '... saying why and what to do') or diag($err);
ok(!-e "$dir/sockets", '... before creating anything (no socket dir)');

($rc, $err) = run_tunneld($bin, @args, '--allow-root');
unlike($err, qr/refusing to run as root/, 'with --allow-root: not refused');
like($err, qr/cannot create "\Q$dir\E\/no\/key/,
    '... it goes on (stops at the host key here)');

open my $fh, '>', "$dir/conf" or die;
print $fh "allow-root = yes\n";
close $fh;
($rc, $err) = run_tunneld($bin, @args, '--config', "$dir/conf");
unlike($err, qr/refusing to run as root/, 'allow-root = yes in --config');

($rc, $err) = run_tunneld('setpriv', '--reuid=nobody', '--regid=nogroup',
                          '--clear-groups', $bin, @args);
unlike($err, qr/refusing to run as root/,
    'an unprivileged user (nobody) needs no flag');
is($rc, 1, '... and goes on (exit 1: stops at a file nobody may not '
   . 'create)') or diag($err);

done_testing;
