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

watchdog(120);

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


# --- --user NAME: bind as root, then run as NAME ------------------------------

rmdir "$dir/sockets" or die "rmdir $dir/sockets: $!\n";   # --allow-root's

($rc, $err) = run_tunneld('setpriv', '--reuid=nobody', '--regid=nogroup',
                          '--clear-groups', $bin, @args, '--user', 'nobody');
is($rc, 2, '--user when not root: exit 2');
like($err, qr/^tunneld: --user nobody: only root can switch to another user.*Drop --user/s,
     '... saying why and what to do') or diag($err);

($rc, $err) = run_tunneld($bin, @args, '--user', 'tnl-no-such-user');
is($rc, 2, '--user with an unknown name: exit 2');
like($err, qr/^tunneld: --user tnl-no-such-user: no such user/,
     '... saying so') or diag($err);

($rc, $err) = run_tunneld($bin, @args, '--user', 'root');
is($rc, 2, '--user root: exit 2');
like($err, qr/^tunneld: --user root has uid 0: that drops nothing/,
     '... saying so') or diag($err);
ok(!-e "$dir/sockets", '... each before creating anything');

my @nobody = getpwnam('nobody') or die "no 'nobody' account\n";
my ($uid, $gid) = @nobody[2, 3];
my $www = getgrnam('www-data') // die "no 'www-data' group\n";

sub ids {
    my ($pid) = @_;
    my $st = eval { read_file("/proc/$pid/status") } // '';
    my ($u) = $st =~ /^Uid:\s+(.*)$/m;
    my ($g) = $st =~ /^Gid:\s+(.*)$/m;
    my ($gr) = $st =~ /^Groups:\s*(.*)$/m;
    my ($cap) = $st =~ /^CapEff:\s+(\S+)/m;
    return { uid => join(' ', split ' ', $u // ''),
             gid => join(' ', split ' ', $g // ''),
             groups => { map { $_ => 1 } split ' ', $gr // '' },
             cap => $cap // '' };
}

# the harness passes --allow-root as root; --user wins: not needed with it
my $s = start_stack(workers => 2, tunneld_args => ['--user', 'nobody']);
my $sup = $s->pid('tunneld');
my @workers = grep { $_ != $sup } $s->tunneld_pids;
is(scalar @workers, 2, '--user nobody: a supervisor and 2 workers');
for my $p ($sup, @workers) {
    my $id = ids($p);
    my $who = $p == $sup ? 'supervisor' : 'worker';
    is("$id->{uid} / $id->{gid}", "$uid $uid $uid $uid / $gid $gid $gid $gid",
       "--user nobody: $who $p runs as nobody (real, effective, saved, fs "
       . 'uid and gid)');
    ok($id->{groups}{$www}, "... $who in --socket-group www-data ($www) "
       . 'to give it the sockets');
    is($id->{cap}, '0000000000000000', "... $who has no capabilities");
}
my @st = stat $s->socket_dir;
is($st[4], $uid, '--user nobody: the socket dir is nobody\'s');
like(join("\n", log_lines($s->log_path('tunneld'))),
     qr/running as user "nobody" \(uid $uid, gid $gid\)/,
     '--user nobody: tunneld says so in its log');

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'big');
my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
                    remote => "asnobody:80:localhost:$be->{port}");
ok(wait_route($s, 'asnobody', 15), '--user nobody: a tunnel comes up')
    or diag($ssh->output, tail_log($s, 'tunneld'));
is(http_get($s, 'asnobody', '/bytes/16')->{status}, 200,
   '--user nobody: nginx reaches it through its socket');
my ($sock) = glob $s->socket_dir . '/t-*.sock';
@st = $sock ? stat $sock : ();
is(@st ? "$st[4] $st[5]" : 'none', "$uid $www",
   '--user nobody: the tunnel socket is nobody\'s, group www-data');
$ssh->stop;
ok(wait_no_route($s, 'asnobody', 10), '... and goes with its client');

# the supervisor, unprivileged too, still replaces a worker
kill 'KILL', $workers[0];
my @new;
wait_until(15, sub {
    @new = grep { $_ != $sup && $_ != $workers[0] } $s->tunneld_pids;
    return @new == 2;
});
is(scalar @new, 2, '--user nobody: a killed worker is replaced');
my ($fresh) = grep { $_ != $workers[1] } @new;
is($fresh ? ids($fresh)->{uid} : '', "$uid $uid $uid $uid",
   '... by a worker running as nobody');
$ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
                 remote => "asnobody:80:localhost:$be->{port}");
ok(wait_route($s, 'asnobody', 15), '--user nobody: tunnels still come up')
    or diag($ssh->output, tail_log($s, 'tunneld'));
$ssh->stop;
check_logs($s, allow_tunneld => [qr/worker \d+ \(pid \d+\) was killed by signal 9/]);
$s->stop_all;

done_testing;
