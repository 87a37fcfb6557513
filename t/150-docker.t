#!/usr/bin/perl

# docker/ validated offline (no registry, no Docker engine on the build
# machines): `docker-compose config` accepts compose.yaml with
# .env.example; only 80, 443 and SSH_PORT are published; the health checks
# are the ones promised; every file the Dockerfile COPYs exists and every
# command it RUNs is apt-get, a tools/ script or a Makefile target; the
# environment compose passes is what tunneld, tunnelctl and the nginx
# entrypoint read, and .env.example lists every ${VAR} compose.yaml uses;
# the nginx entrypoint's rendering of nginx.conf.example passes `nginx -t`
# with the built modules and a self-signed wildcard certificate.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IPC::Run ();
use JSON::PP ();
use Test::More;

use NgxTunnel::Test;

watchdog(120);

my $root = repo_root();
my $d = "$root/docker";
my $tmp = tempdir('ngx-tunnel-docker.XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub run {
    my ($cmd, %o) = @_;
    my ($out, $err) = ('', '');
    local @ENV{keys %o} = values %o;
    IPC::Run::run($cmd, '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout(60));
    return ($? >> 8, $out, $err);
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die;
}

my $compose = read_file("$d/compose.yaml");
my $dockerfile = read_file("$d/Dockerfile");
my $envex = read_file("$d/.env.example");
ok($compose && $dockerfile && $envex, 'compose.yaml, Dockerfile, .env.example');
ok(-s "$d/README.md", 'docker/README.md');


# --- .env.example <-> compose.yaml ---------------------------------------

my %env = $envex =~ /^([A-Z][A-Z0-9_]*)=(.*)$/mg;
my %used = map { $_ => 1 } $compose =~ /\$\{([A-Z][A-Z0-9_]*)/g;
is_deeply([sort grep { !$env{$_} && !exists $env{$_} } keys %used], [],
          '.env.example lists every ${VAR} compose.yaml uses');
is_deeply([sort grep { !$used{$_} && !/^COMPOSE_/ } keys %env], [],
          'compose.yaml uses every setting of .env.example');
for my $k (sort keys %used) {
    my ($default) = $compose =~ /\$\{\Q$k\E:-([^}]*)\}/;
    next unless defined $default;
    is($env{$k}, $default, ".env.example shows the default of $k ($default)");
}


# --- docker-compose config --------------------------------------------------

SKIP: {
    my ($vrc) = run(['docker-compose', 'version']);
    skip 'docker-compose is not installed (make deps)', 8 if $vrc != 0;

    (my $e = $envex) =~ s/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=test/m;
    write_file("$tmp/env", $e);
    my ($rc, $out, $err) = run(['docker-compose', '-f', "$d/compose.yaml",
        '--env-file', "$tmp/env", 'config']);
    is($rc, 0, 'docker-compose config accepts compose.yaml') or diag($err);

    # the password is required: no default sneaks in
    (my $nopw = $envex) =~ s/^POSTGRES_PASSWORD=.*\n//m;
    write_file("$tmp/env-nopw", $nopw);
    my ($rc2, undef, $err2) = run(['docker-compose', '-f', "$d/compose.yaml",
        '--env-file', "$tmp/env-nopw", 'config']);
    isnt($rc2, 0, 'without POSTGRES_PASSWORD compose refuses');
    like($err2, qr/set POSTGRES_PASSWORD/, '... and says so');

    my @published = $out =~ /^\s+- published: (\d+)/mg;
    push @published, $out =~ /^\s+- '?(?:[\d.]+:)?(\d+):\d+'?$/mg;
    is_deeply([sort { $a <=> $b } @published], [80, 443, 2222],
              'only 80, 443 and 2222 are published');

    my %svc;
    my $cur;
    for my $line (split /\n/, $out) {
        if ($line =~ /^  ([a-z]+):$/) { $cur = $1; next }
        last if $line =~ /^volumes:/;
        $svc{$cur} .= "$line\n" if $cur;
    }
    is_deeply([sort keys %svc], [qw(nginx postgres redis tunneld)],
              'the four services');
    unlike($svc{$_} // '', qr/published/, "$_ publishes nothing")
        for qw(postgres redis);
    like($svc{tunneld} // '', qr/api\.sock.*\n.*healthz|api\.sock[\s\S]*healthz/,
         'tunneld health check: /healthz on the API socket');
}

like($compose, qr/pg_isready/, 'postgres health check: pg_isready');
like($compose, qr/"redis-cli".*"ping"/, 'redis health check: redis-cli ping');
unlike($compose, qr/^\s+- .*9090/m, 'the TCP management API is not published');
for my $v (qw(pgdata redis-data tunneld-state tunnel-sockets)) {
    like($compose, qr/^  \Q$v\E:$/m, "named volume $v");
}
like($compose, qr{tunnel-sockets:/run/tunneld\n}, 'tunneld mounts the sockets');
like($compose, qr{tunnel-sockets:/run/tunneld:ro}, 'nginx mounts them too');


# --- Dockerfile: COPY sources, RUN commands ------------------------------

(my $df = $dockerfile) =~ s/\\\n/ /g;
my @copies = $df =~ /^COPY\s+(?!--from)(.+)$/mg;
ok(@copies >= 4, scalar(@copies) . ' COPY lines from the context');
for my $c (@copies) {
    my @w = split ' ', $c;
    pop @w;                                   # destination
    for my $src (@w) {
        my @g = grep { -e } glob("$root/$src");
        ok(scalar @g, "COPY source '$src' exists");
    }
}
for my $from ($df =~ /^COPY --from=build (\S+)/mg) {
    like($from, qr{^/src/build/deb/[a-z-]+_\*\.deb$},
         "COPY --from=build $from: a package make deb builds");
    my ($pkg) = $from =~ m{/([a-z-]+)_\*};
    like(read_file("$root/debian/control"), qr/^Package: \Q$pkg\E$/m,
         "debian/control builds $pkg");
}

my $makefile = read_file("$root/Makefile");
my %targets = map { $_ => 1 } $makefile =~ /^([a-z][a-z-]*):/mg;
my %ok_cmds = map { $_ => 1 } qw(apt-get rm);
my @runs = $df =~ /^RUN\s+(.+)$/mg;
ok(@runs >= 3, scalar(@runs) . ' RUN lines');
for my $r (@runs) {
    for my $cmd (split /\s*&&\s*/, $r) {
        my ($w, $arg) = split ' ', $cmd;
        if ($w eq 'make') {
            ok($targets{$arg}, "RUN make $arg: a Makefile target");
        } elsif ($w =~ m{^tools/}) {
            ok(-x "$root/$w", "RUN $w: a script in tools/");
        } else {
            ok($ok_cmds{$w}, "RUN $w: apt-get or rm only") or diag($cmd);
        }
    }
}
like($makefile, qr/^deb:/m, 'make deb exists');


# --- environment: compose passes what the programs read --------------------

my %reads;
for my $f (glob("$root/sshd/*.c"), glob("$root/tunnelctl/*.c")) {
    $reads{tunneld}{$_} = 1 for read_file($f) =~ /getenv\("([A-Z_]+)"\)/g;
}
my $tentry = read_file("$d/tunneld-entrypoint.sh");
my $nentry = read_file("$d/nginx-entrypoint.sh");
$reads{nginx}{$_} = 1 for $nentry =~ /\$\{([A-Z][A-Z0-9_]*)/g;

for my $svc (qw(tunneld nginx)) {
    my ($block) = $compose =~ /^  \Q$svc\E:\n(.*?)(?=^  [a-z]|\z|^volumes)/ms;
    my ($envb) = ($block // '') =~ /^    environment:\n((?:      .*\n)+)/m;
    my @keys = ($envb // '') =~ /^      ([A-Z][A-Z0-9_]*):/mg;
    ok(@keys, "$svc: compose passes " . join(', ', @keys));
    is_deeply([grep { !$reads{$svc}{$_} } @keys], [],
              "$svc reads every variable compose passes");
}
# what the entrypoints insist on, compose passes
for my $v ($tentry =~ /\$\{([A-Z_]+):\?/g) {
    like($compose, qr/^      \Q$v\E:/m, "tunneld entrypoint's $v is passed");
}
for my $v ($nentry =~ /\$\{([A-Z_]+):\?/g) {
    like($compose, qr/^      \Q$v\E:/m, "nginx entrypoint's $v is passed");
}
like($tentry, qr/tunnelctl migrate/, 'migrations run at start');
like($tentry, qr/--reuid=tunneld/, 'tunneld runs unprivileged');
unlike($dockerfile, qr/PASSWORD|TOKEN/, 'no secret in the Dockerfile');


# --- the nginx entrypoint renders a config stock nginx accepts -----------

my $domain = 'tunnel.test';
my $le = "$tmp/letsencrypt/live/$domain";
make_path($le);
my ($orc, undef, $oerr) = run(['openssl', 'req', '-x509', '-newkey',
    'rsa:2048', '-nodes', '-days', '1', '-subj', "/CN=$domain",
    '-addext', "subjectAltName=DNS:$domain,DNS:*.$domain",
    '-keyout', "$le/privkey.pem", '-out', "$le/fullchain.pem"]);
is($orc, 0, 'self-signed wildcard certificate') or diag($oerr);

(my $script = $nentry) =~ s{/etc/nginx/nginx\.conf\.example}{$root/nginx.conf.example}g;
$script =~ s{>/etc/nginx/nginx\.conf}{>$tmp/nginx.conf}g;
write_file("$tmp/entry.sh", $script);
my ($erc, $eout, $eerr) = run(['sh', "$tmp/entry.sh", 'true'],
    TUNNEL_DOMAIN => $domain, POSTGRES_PASSWORD => 'pw', SSH_PORT => 2200);
is($erc, 0, 'nginx entrypoint renders nginx.conf') or diag($eerr);

my $conf = read_file("$tmp/nginx.conf");
unlike($conf, qr/tunnel\.example\.com/, 'no example domain left');
like($conf, qr/password=pw /, 'database password from the environment');
like($conf, qr/tunnel_ssh_port 2200;/, 'SSH_PORT reaches the 404 hint');
like($conf, qr{^include /etc/nginx/modules-enabled/\*\.conf;$}m,
     'modules come from the package snippets');

# for nginx -t here: the built modules, the test certificate, temp paths
my $mods = join "\n", map { "load_module $root/build/$_;" }
    qw(ngx_http_tunnel_module.so ngx_http_tunnel_admin_module.so);
$conf =~ s{^include /etc/nginx/modules-enabled/\*\.conf;$}{$mods}m;
$conf =~ s{/etc/letsencrypt}{$tmp/letsencrypt}g;
$conf =~ s{^pid .*$}{pid $tmp/nginx.pid;}m;
my $temps = "http {\n    client_body_temp_path $tmp/body;\n"
          . "    proxy_temp_path $tmp/proxy;";
$conf =~ s/^http \{/$temps/m;
write_file("$tmp/nginx-t.conf", $conf);
my ($nrc, $nout, $nerr) = run(['/usr/sbin/nginx', '-t', '-c',
    "$tmp/nginx-t.conf", '-e', "$tmp/error.log"]);
is($nrc, 0, 'nginx -t accepts the rendered config') or diag("$nout$nerr");

done_testing();
