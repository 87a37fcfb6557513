#!/usr/bin/perl

# `make install PREFIX=/usr/local DESTDIR=...` puts exactly the expected
# files in place (binaries, both nginx modules and their load_module
# snippets, SQL and Lua files, examples, the config file, the systemd unit
# with the PREFIX's paths, the sysusers.d entry); `make uninstall` removes
# them all, but keeps a config file the operator changed.  The unit passes
# `systemd-analyze verify`, and `systemd-analyze security --offline`
# gives the exposure score docs/DEPLOY.md states.  No service is started.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Find;
use File::Temp qw(tempdir);
use IPC::Run ();
use Test::More;

use NgxTunnel::Test;

watchdog(300);

my $root = repo_root();
my $tmp = tempdir('ngx-tunnel-install.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $dest = "$tmp/root";

sub run {
    my (@cmd) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout(240));
    return ($? >> 8, $out, $err);
}

sub make {
    return run('make', '-s', '--no-print-directory', '-C', $root, @_,
        'PREFIX=/usr/local', "DESTDIR=$dest");
}

sub files {
    my @f;
    find({ wanted => sub { push @f, substr($_, length $dest) if -f || -l },
           no_chdir => 1 }, $dest);
    return sort @f;
}

my ($rc, $out, $err) = make('install');
is($rc, 0, 'make install') or diag("$out$err");

my @sql = map { m{([^/]+)$}; "/usr/local/share/ngx-tunnel/sql/$1" }
    glob("$root/sql/*.sql");
my @lua = map { m{([^/]+)$}; "/usr/local/share/ngx-tunnel/redis-scripts/$1" }
    glob("$root/redis-scripts/*.lua");
my @want = sort(
    '/usr/lib/nginx/modules/ngx_http_tunnel_module.so',
    '/usr/lib/nginx/modules/ngx_http_tunnel_admin_module.so',
    '/usr/share/nginx/modules-available/mod-http-tunnel.conf',
    '/usr/share/nginx/modules-available/mod-http-tunnel-admin.conf',
    '/usr/local/sbin/tunneld',
    '/usr/local/bin/tunnelctl',
    '/usr/local/etc/tunneld/tunneld.conf',
    '/usr/local/lib/systemd/system/tunneld.service',
    '/usr/local/lib/sysusers.d/tunneld.conf',
    '/usr/local/share/ngx-tunnel/examples/nginx.conf',
    '/usr/local/share/ngx-tunnel/examples/tunneld.conf',
    @sql, @lua,
);
is_deeply([files()], \@want, 'the installed files, and nothing else')
    or diag(explain([files()]));

ok(-x "$dest/usr/local/sbin/tunneld", 'tunneld is executable');
ok(-x "$dest/usr/local/bin/tunnelctl", 'tunnelctl is executable');
is((stat "$dest/usr/lib/nginx/modules/ngx_http_tunnel_module.so")[2] & 07777,
   0644, 'modules are 0644');
like(read_file("$dest/usr/share/nginx/modules-available/mod-http-tunnel.conf"),
     qr{^load_module /usr/lib/nginx/modules/ngx_http_tunnel_module\.so;$}m,
     'snippet loads the module by its installed path');

my $unit = read_file("$dest/usr/local/lib/systemd/system/tunneld.service");
like($unit, qr{^ExecStart=/usr/local/sbin/tunneld --config /usr/local/etc/tunneld/tunneld\.conf$}m,
     'unit: ExecStart with the PREFIX paths');
unlike($unit, qr/\@[A-Z]+\@/, 'unit: no placeholder left');
for my $line ('Type=notify', 'User=tunneld', 'Restart=on-failure',
              'NoNewPrivileges=yes', 'ProtectSystem=strict',
              'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=',
              'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
              'LimitNOFILE=65536')
{
    like($unit, qr/^\Q$line\E$/m, "unit: $line");
}
unlike($unit, qr/^ExecReload=/m, 'unit: no ExecReload (SIGHUP reloads nothing)');

my (undef, $ver) = run("$dest/usr/local/sbin/tunneld", '--help');
like($ver, qr/--config FILE/, 'the installed tunneld runs');


# --- systemd-analyze ------------------------------------------------------

SKIP: {
    my ($vrc) = run('systemd-analyze', '--version');
    skip 'systemd-analyze is not installed', 4 if $vrc != 0;

    # verify wants ExecStart to exist: point it at the staged binary
    my $copy = "$tmp/verify/tunneld.service";
    mkdir "$tmp/verify";
    (my $u = $unit) =~ s{^ExecStart=/usr/local/}{ExecStart=$dest/usr/local/}m;
    open my $fh, '>', $copy or die "$copy: $!";
    print $fh $u;
    close $fh;

    my ($r, $o, $e) = run('systemd-analyze', 'verify', $copy);
    is($r, 0, 'systemd-analyze verify: exit 0');
    is("$o$e", '', 'systemd-analyze verify: no complaint') or diag("$o$e");

    ($r, $o, $e) = run('systemd-analyze', 'security', '--offline=true',
        $copy);
    my ($score) = "$o$e" =~ /Overall exposure level for \S+: ([\d.]+)/;
    ok(defined $score && $score <= 2.0,
       'systemd-analyze security: exposure at most 2.0 ('
       . ($score // '?') . ')') or diag("$o$e");
    my $deploy = read_file("$root/docs/DEPLOY.md");
    my $want = $score // 'none';
    like($deploy, qr/exposure level \*\*\Q$want\E\*\*/,
         "docs/DEPLOY.md states the score ($want)");
}


# --- uninstall -------------------------------------------------------------

($rc, $out, $err) = make('uninstall');
is($rc, 0, 'make uninstall') or diag("$out$err");
is_deeply([files()], [], 'no file is left');

# an operator's config survives uninstall and a second install
make('install');
my $conf = "$dest/usr/local/etc/tunneld/tunneld.conf";
open my $fh, '>>', $conf or die;
print $fh "node = mine\n";
close $fh;
make('install');
like(read_file($conf), qr/^node = mine$/m, 'install keeps an existing config');
($rc, $out) = make('uninstall');
like($out, qr/kept .*tunneld\.conf \(changed\)/, 'uninstall says it kept it');
is_deeply([files()], ['/usr/local/etc/tunneld/tunneld.conf'],
          'only the changed config is left');

done_testing();
