#!/usr/bin/perl

# `make deb` builds the tunneld and libnginx-mod-http-tunnel packages with
# debhelper; `dpkg -i` installs them on this machine (root only: CI runs
# as root on Debian 12): the tunneld user exists, the config file is
# readable by it only, the unit passes systemd-analyze verify, the modules
# are enabled in /etc/nginx/modules-enabled like Debian's libnginx-mod-*
# packages, and stock nginx (`nginx -t`, with a temporary nginx.conf that
# includes those snippets and uses both modules' directives) loads them.
# Then `dpkg --purge` removes everything again: no file of the packages,
# no symlink, no user, no state is left.
#
# Machine-wide, so: skipped unless root, skipped if either package or the
# tunneld user already exists (someone else's), and serialised with other
# worktrees by a lock file.  No service is started.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;
use Time::HiRes qw(sleep time);

use NgxTunnel::Test;

watchdog(600);

my $root = repo_root();
my @PKGS = qw(tunneld libnginx-mod-http-tunnel);

sub run {
    my (@cmd) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout(400));
    return ($? >> 8, $out, $err);
}

sub installed {
    my ($p) = @_;
    my ($rc, $out) = run('dpkg-query', '-W', '-f=${Status}', $p);
    return $rc == 0 && $out =~ /\binstalled$/ && $out !~ /not-installed/;
}

# dpkg takes a lock other developers' apt runs may hold: wait for it
sub dpkg {
    my (@args) = @_;
    my ($rc, $out, $err);
    my $deadline = time + 300;
    while (1) {
        ($rc, $out, $err) = run('dpkg', @args);
        last unless $rc != 0 && "$out$err" =~ /lock/i && time < $deadline;
        sleep 2;
    }
    return ($rc, $out, $err);
}

plan skip_all => 'installs packages: root only' if $> != 0;
for my $tool (qw(dpkg-buildpackage dh dh_nginx)) {
    plan skip_all => "$tool is not installed (make deps)"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

open my $lock, '>', '/tmp/ngx-tunnel-deb-test.lock' or die "lock: $!";
flock($lock, LOCK_EX) or die "flock: $!";

for my $p (@PKGS) {
    plan skip_all => "$p is installed already (not by this test)"
        if installed($p);
}
plan skip_all => 'a tunneld user exists already'
    if defined getpwnam('tunneld');

my ($rc, $out, $err) = run('make', '-s', '--no-print-directory', '-C',
    $root, 'deb');
is($rc, 0, 'make deb') or diag("$out$err");
my %deb;
for my $p (@PKGS) {
    ($deb{$p}) = glob("$root/build/deb/${p}_*.deb");
    ok($deb{$p}, "$p package built") or BAIL_OUT("no $p .deb");
}

my ($drc, $deps) = run('dpkg-deb', '-f', $deb{'libnginx-mod-http-tunnel'},
    'Depends');
my ($abi) = `grep -h '^nginx:abi=' /usr/share/nginx/src/debian/libnginx-mod.abisubstvars` =~ /=(\S+)/;
like($deps, qr/\b\Q$abi\E\b/, "the module package depends on $abi")
    if $abi;

my @before = sort glob('/etc/nginx/modules-enabled/*');

# --- install ----------------------------------------------------------------

($rc, $out, $err) = dpkg('-i', @deb{@PKGS});
is($rc, 0, 'dpkg -i both packages') or diag("$out$err");

my $ok = 1;
END {
    # a failed test still purges what it installed
    if ($> == 0 && !$ok) {
        system('dpkg', '--purge', @PKGS);
    }
}
$ok = 0;

ok(installed($_), "$_ is installed") for @PKGS;

my @pw = getpwnam('tunneld');
ok(@pw, 'the tunneld user exists');
ok(@pw && $pw[2] < 1000, 'a system user') or diag("uid $pw[2]");
is($pw[7], '/var/lib/tunneld', 'home /var/lib/tunneld') if @pw;
ok(defined getgrnam('tunneld'), 'the tunneld group exists');

my @st = stat '/etc/tunneld/tunneld.conf';
is($st[2] & 07777, 0640, 'tunneld.conf is 0640');
is(scalar getgrgid($st[5]), 'tunneld', '... group tunneld');
like(`dpkg-query -W -f='\${Conffiles}' tunneld`, qr{/etc/tunneld/tunneld\.conf},
     'tunneld.conf is a conffile');

($rc, $out) = run('/usr/sbin/tunneld', '--help');
like($out, qr/--config FILE/, '/usr/sbin/tunneld runs');
($rc, $out, $err) = run('/usr/bin/tunnelctl', '--help');
like("$out$err", qr/migrate/, '/usr/bin/tunnelctl runs');

my $unit = '/lib/systemd/system/tunneld.service';
like(read_file($unit),
     qr{^ExecStart=/usr/sbin/tunneld --config /etc/tunneld/tunneld\.conf$}m,
     'the unit runs /usr/sbin/tunneld with /etc/tunneld/tunneld.conf');
SKIP: {
    skip 'no systemd-analyze', 1 unless -x '/usr/bin/systemd-analyze';
    ($rc, $out, $err) = run('systemd-analyze', 'verify', $unit);
    is("$rc $out$err", '0 ', 'systemd-analyze verify on the installed unit');
}
ok(!-e '/etc/systemd/system/multi-user.target.wants/tunneld.service',
   'not enabled before it is configured');

for my $m (qw(mod-http-tunnel mod-http-tunnel-admin)) {
    my $l = "/etc/nginx/modules-enabled/50-$m.conf";
    is(readlink($l), "/usr/share/nginx/modules-available/$m.conf",
       "$m enabled like Debian's libnginx-mod packages");
}

# stock nginx loads both modules through the snippets
my $tmp = tempdir('ngx-tunnel-deb.XXXXXX', TMPDIR => 1, CLEANUP => 1);
open my $fh, '>', "$tmp/nginx.conf" or die;
print $fh <<"CONF";
include /etc/nginx/modules-enabled/50-mod-http-tunnel*.conf;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    tunnel_redis unix:$tmp/redis.sock;
    tunnel_domain tunnel.example.com;
    tunnel_admin_database "host=$tmp dbname=ngx_tunnel";
    upstream tunnels {
        tunnel_balancer;
        keepalive 8;
        server 127.0.0.1:1;
    }
    server {
        listen 127.0.0.1:1;
        server_name *.tunnel.example.com;
        location / { tunnel_lookup; proxy_pass http://tunnels; }
    }
    server {
        listen 127.0.0.1:1;
        server_name tunnel.example.com;
        location / { tunnel_admin; }
    }
}
CONF
close $fh;
# the default prefix: the snippets say modules/NAME.so, as Debian's do
($rc, $out, $err) = run('/usr/sbin/nginx', '-t', '-c', "$tmp/nginx.conf",
    '-e', "$tmp/error.log");
is($rc, 0, 'stock nginx -t with both modules loaded') or diag("$out$err");
like("$out$err", qr/syntax is ok/, '... syntax is ok');

my @files = grep { (-f || -l) && !-d } split /\n/, `dpkg -L @PKGS`;
ok(@files > 20, scalar(@files) . ' files in the packages');

# --- purge ------------------------------------------------------------------

($rc, $out, $err) = dpkg('--purge', @PKGS);
is($rc, 0, 'dpkg --purge both packages') or diag("$out$err");
$ok = 1;

ok(!installed($_), "$_ is gone") for @PKGS;
is_deeply([grep { -e || -l } @files], [], 'no file of the packages is left');
is_deeply([sort glob('/etc/nginx/modules-enabled/*')], \@before,
          'modules-enabled as before');
ok(!-e '/etc/tunneld', '/etc/tunneld is gone');
ok(!-e '/var/lib/tunneld', '/var/lib/tunneld is gone');
ok(!defined getpwnam('tunneld'), 'the tunneld user is gone');
ok(!defined getgrnam('tunneld'), 'the tunneld group is gone');

done_testing();
