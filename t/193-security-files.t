#!/usr/bin/perl

# Files that hold secrets (SECURITY.md): the host key tunneld generates is
# 0600 (its .pub 0644) and was never readable by others on the way (a temp
# file created 0600, then renamed); tunneld refuses to start with a key
# file readable by group or others, as sshd does, saying how to fix it;
# the packaged unit and the Docker image keep the key's directory 0700.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use File::Copy qw(copy);
use IPC::Run ();
use Test::More;

use NgxTunnel::Stack;
use NgxTunnel::Test;

watchdog(120);

my $s = start_stack(nginx => 0);
my $key = $s->host_key_path;

is(sprintf('%04o', (stat $key)[2] & 07777), '0600',
   'generated host key: mode 0600');
is(sprintf('%04o', (stat "$key.pub")[2] & 07777), '0644',
   '... its .pub: 0644');
is(scalar(() = glob("$key.tmp*")), 0, 'no temp file left beside it');

# the same key, loosened: tunneld refuses it
my $dir = "$s->{_test_dir}/loose";
mkdir $dir, 0700;
for my $mode (0640, 0604, 0644) {
    copy($key, "$dir/key") or die "copy: $!\n";
    chmod $mode, "$dir/key";
    my ($out, $err) = ('', '');
    my $ok = IPC::Run::run([ $s->bin('tunneld'), '--listen',
        '127.0.0.1:' . NgxTunnel::Stack::free_port(), '--socket-dir',
        "$dir/sockets", '--host-key', "$dir/key", '--database-url',
        $s->database_url, '--redis-url', $s->redis_url, '--workers', 1,
        ($> == 0 ? ('--allow-root') : ()) ],
        '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(20));
    my $m = sprintf '%04o', $mode;
    ok(!$ok, "host key mode $m: tunneld refuses to start");
    like($err, qr/\Qhost key "$dir\/key" is readable by group or others \E
                  \Q(mode $m): run "chmod 600 $dir\/key"\E/x,
         '... and says how to fix it') or diag($err);
    unlink "$dir/key";
}

# the packaged unit and the container keep the directory private
my $unit = read_file(repo_root() . '/dist/tunneld.service.in');
like($unit, qr/^StateDirectory=tunneld$/m, 'unit: /var/lib/tunneld');
like($unit, qr/^StateDirectoryMode=0700$/m, '... mode 0700');
like(read_file(repo_root() . '/dist/tunneld.conf'),
     qr{^host-key = /var/lib/tunneld/}m, 'tunneld.conf: the key lives there');
like(read_file(repo_root() . '/docker/tunneld-entrypoint.sh'),
     qr{^chmod 0700 /var/lib/tunneld$}m, 'docker: the same directory, 0700');

check_logs($s);
$s->stop_all;
done_testing;
