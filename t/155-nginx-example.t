#!/usr/bin/perl

# nginx.conf.example, run for real: the shipped file, rendered with as few
# substitutions as a private test needs, serves a real `ssh -R` tunnel and
# the web UI over HTTPS with a self-signed wildcard certificate, on a
# second nginx next to a private stack (PostgreSQL, Redis, tunneld; the
# stack's own nginx is not started).  Checked with curl --resolve:
#
#   * https://NAME.tunnel.example.com/ reaches the tunnel's backend (HTTP/2,
#     the test CA), plain HTTP redirects to HTTPS, the bare name to the
#     admin host; the backend sees X-Forwarded-Proto https, X-Forwarded-For
#     the real peer (not what the client claimed) and X-Forwarded-Host;
#   * the access log line carries tunnel=NAME user=USER;
#   * with the app stopped, the example's error_page 502 shows the
#     module's offline page, X-Tunnel-Error hidden;
#   * https://admin.tunnel.example.com/ serves the web UI with HSTS, and
#     its __Host- cookies carry a first-run setup and sign-in through curl's
#     cookie jar (which enforces the prefix rules) on this non-localhost
#     name; the signed-in dashboard shows the tunnel, so the admin host's
#     internal /_tunneld/ location does reach tunneld's API socket;
#   * that API is not reachable from outside: /tunnels, /healthz, /metrics
#     and /_tunneld/... on a tunnel host, an unknown tunnel, a Host outside
#     the domain, the bare name, the admin host (signed out and in) and
#     plain HTTP never answer its JSON or metrics, while the socket itself
#     does (the control);
#   * no [error], [alert], [crit] or [emerg] in nginx's error.log.
#
# The substitutions, each asserted to match exactly where expected (a
# change to the example that moves one fails here instead of being tested
# by accident), and nothing else is changed:
#
#   load_module /usr/lib/nginx/modules/X.so -> build/X.so: the modules this
#       tree built, not installed ones;
#   user www-data -> kept as root (as Stack does); dropped otherwise, where
#       nginx cannot switch users;
#   pid, error_log, access_log -> the stack's nginx dir (so check_logs and
#       tail_log read them);
#   listen 80 / 443 -> 127.0.0.1:free ports, [::]:80 / [::]:443 -> [::1]
#       on the same ports (dropped when the machine has no IPv6 loopback):
#       loopback only, beside other tests running in parallel;
#   /etc/letsencrypt/ -> a temp dir holding a self-signed certificate for
#       tunnel.example.com and *.tunnel.example.com made here with openssl;
#   tunnel_redis unix:/run/redis/redis-server.sock -> the stack's Redis;
#   host=/var/run/postgresql -> the stack's PostgreSQL socket dir (the rest
#       of the conninfo stays: dbname=ngx_tunnel user=www-data; the test
#       creates that role with DML rights on the schema, as an operator
#       would for nginx's workers);
#   http://unix:/run/tunneld/api.sock: -> the stack's SOCKET_DIR/api.sock.
#
# One addition: the *_temp_path directives inside http{}, so nginx's temp
# files go to the stack's dir and not /var/lib/nginx.  nginx runs with
# -p, -e (the log before the config is read) and -g 'daemon off;'.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Path qw(make_path);
use IO::Socket::INET;
use IPC::Run ();
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

my $root = repo_root();
my @need = map { "$root/build/$_" } qw(ngx_http_tunnel_module.so
    ngx_http_tunnel_admin_module.so tunneld tunnelctl);
my @absent = grep { !-e } @need;
plan skip_all => "not built (run 'make'): @absent" if @absent;
for my $tool (qw(curl openssl)) {
    plan skip_all => "$tool is not installed"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

watchdog(180);

my $DOMAIN = 'tunnel.example.com';
my $ADMIN  = "admin.$DOMAIN";
my $NAME   = 'exampleapp';
my $API_RE = qr/"tunnels":|tunneld_|"redis":"up"/;

sub run {
    my ($cmd, %o) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run($cmd, '<', \($o{stdin} // ''), '>', \$out, '2>', \$err,
        IPC::Run::timeout($o{timeout} // 30));
    return ($? >> 8, $out, $err);
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
}


# --- the stack without its nginx ------------------------------------------

# tunneld as production would run it next to the example: its domain, the
# public URL the example's tunnel_admin_tunnel_url names, the admin host
my $s = start_stack(nginx => 0, domain => $DOMAIN, tunneld_args => [
    '--public-url', "https://%s.$DOMAIN", '--admin-url', "https://$ADMIN"]);
my $tdir = $s->{_test_dir};
my $n = $s->nginx_dir;

# the example connects to PostgreSQL as role www-data: an operator's role
# for nginx's workers, owning nothing, allowed to read and write the data
my ($prc, undef, $perr) = $s->psql(join ' ',
    'CREATE ROLE "www-data" LOGIN;',
    'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public',
    'TO "www-data";',
    'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "www-data";');
is($prc, 0, 'PostgreSQL role www-data for nginx') or diag($perr);


# --- the certificate ----------------------------------------------------------

my $le = "$tdir/letsencrypt";
make_path("$le/live/$DOMAIN");
my $ca = "$le/live/$DOMAIN/fullchain.pem";
my ($orc, undef, $oerr) = run(['openssl', 'req', '-x509', '-newkey',
    'rsa:2048', '-nodes', '-days', '2', '-subj', "/CN=$DOMAIN",
    '-addext', "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN",
    '-keyout', "$le/live/$DOMAIN/privkey.pem", '-out', $ca]);
is($orc, 0, "self-signed certificate for $DOMAIN and *.$DOMAIN")
    or diag($oerr);


# --- rendering ----------------------------------------------------------------

my $http  = NgxTunnel::Stack::free_port();
my $https = NgxTunnel::Stack::free_port();
my $ipv6 = eval {
    require IO::Socket::IP;
    my $l = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0,
                                Proto => 'tcp', Listen => 1);
    $l ? (close($l), 1) : 0;
} || 0;

my $conf = read_file("$root/nginx.conf.example");

# replaces $re by $to (a string with $1.. expanded by the caller's sub),
# exactly $count times
sub subst {
    my ($re, $to, $count, $why) = @_;
    my $got = ($conf =~ s/$re/$to->()/ge) || 0;
    is($got, $count, "render: $why ($count)");
}

subst(qr{^load_module /usr/lib/nginx/modules/(\S+\.so);$}m,
      sub { "load_module $root/build/$1;" }, 2, 'modules from build/');
subst(qr{^user www-data;$}m, sub { '# user www-data;' }, 1,
      'user www-data: nginx is not root') if $> != 0;
subst(qr{^pid /run/nginx\.pid;$}m, sub { "pid $n/nginx.pid;" }, 1,
      "pid in the stack's nginx dir");
subst(qr{^error_log /var/log/nginx/error\.log }m,
      sub { 'error_log ' . $s->log_path('nginx') . ' ' }, 1,
      "error_log in the stack's nginx dir");
subst(qr{^(\s+access_log) /var/log/nginx/tunnel\.access\.log }m,
      sub { "$1 " . $s->access_log . ' ' }, 1,
      "access_log in the stack's nginx dir");
subst(qr{^(\s+listen) 80 }m, sub { "$1 127.0.0.1:$http " }, 1,
      "listen 80 -> 127.0.0.1:$http");
subst(qr{^(\s+listen) 443 }m, sub { "$1 127.0.0.1:$https " }, 3,
      "listen 443 -> 127.0.0.1:$https");
if ($ipv6) {
    subst(qr{^(\s+listen) \[::\]:80 }m, sub { "$1 [::1]:$http " }, 1,
          "listen [::]:80 -> [::1]:$http");
    subst(qr{^(\s+listen) \[::\]:443 }m, sub { "$1 [::1]:$https " }, 3,
          "listen [::]:443 -> [::1]:$https");
} else {
    subst(qr{^(\s+)(listen \[::\]:)}m, sub { "$1# $2" }, 4,
          'listen [::]: dropped (no IPv6 loopback)');
}
subst(qr{/etc/letsencrypt/}, sub { "$le/" }, 2, 'the test certificate');
subst(qr{unix:/run/redis/redis-server\.sock;}, sub { 'unix:'
      . $s->redis_socket . ';' }, 1, "the stack's Redis");
subst(qr{"host=/var/run/postgresql }, sub { '"host=' . $s->pg_socket_dir
      . ' ' }, 1, "the stack's PostgreSQL");
subst(qr{http://unix:/run/tunneld/api\.sock:}, sub { 'http://unix:'
      . $s->socket_dir . '/api.sock:' }, 1, "tunneld's API socket");
my $temps = join '', map { "\n    ${_}_temp_path $n/tmp/$_;" }
    qw(client_body proxy fastcgi uwsgi scgi);
subst(qr{^http \{$}m, sub { "http {$temps" }, 1, 'temp paths added');

(my $directives = $conf) =~ s/#.*$//mg;
unlike($directives, qr{ /(?:run|var|etc/letsencrypt|usr/lib)/},
       'no system path left in a directive but mime.types') or diag($conf);
my $conf_path = "$n/nginx-example.conf";
write_file($conf_path, $conf);

my @nginx = ('/usr/sbin/nginx', '-p', "$n/", '-c', $conf_path,
             '-e', $s->log_path('nginx'));
my ($trc, $tout, $terr) = run([@nginx, '-t']);
is($trc, 0, 'nginx -t accepts the rendered example') or diag("$tout$terr");


# --- nginx ----------------------------------------------------------------------

my $stderr = "$n/stderr.log";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $stderr or POSIX::_exit(1);
    open STDERR, '>&', \*STDOUT;
    exec(@nginx, '-g', 'daemon off;') or POSIX::_exit(127);
}
push @NgxTunnel::Test::KIDS, [$pid, 'nginx (nginx.conf.example)'];

my $up = wait_until(10, sub {
    return 0 if waitpid($pid, POSIX::WNOHANG()) != 0;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $https, Proto => 'tcp', Timeout => 1) or return 0;
    close $c;
    return 1;
});
ok($up, "nginx runs the example on :$http and :$https")
    or BAIL_OUT('nginx did not start: ' . read_file($stderr)
                . tail_log($s, 'nginx'));


# --- curl -----------------------------------------------------------------------

# GET (or POST with form => [k, v, ...]) URL through curl, the name resolved
# to 127.0.0.1, trusting only the test certificate.  Options: jar (cookie
# file, read and written), headers [...], insecure (a name the certificate
# does not cover).  Returns { status, version,
# headers (lower-case names, joined), set_cookie [...], body }.
my $serial = 0;
sub curl {
    my ($url, %o) = @_;
    my ($host, $port) = $url =~ m{^https?://([^:/]+):(\d+)/}
        or die "curl: no host:port in $url";
    $serial++;
    my ($hfile, $bfile) = ("$tdir/curl-$serial.h", "$tdir/curl-$serial.b");
    my @cmd = ('curl', '-sS', '--max-time', '15', '--cacert', $ca,
        '--resolve', "$host:$port:127.0.0.1", '-D', $hfile, '-o', $bfile,
        '-w', '%{http_version}');
    push @cmd, '-b', $o{jar}, '-c', $o{jar} if $o{jar};
    push @cmd, '--insecure' if $o{insecure};
    push @cmd, '-H', $_ for @{ $o{headers} || [] };
    my @f = @{ $o{form} || [] };
    while (my ($k, $v) = splice @f, 0, 2) {
        push @cmd, '--data-urlencode', "$k=$v";
    }
    push @cmd, $url;
    my ($rc, $out, $err) = run(\@cmd);
    my $r = { rc => $rc, err => $err, version => $out,
              body => read_file($bfile), headers => {}, set_cookie => [] };
    my @lines = split /\r?\n/, read_file($hfile);
    my $st = shift(@lines) // '';
    ($r->{status}) = $st =~ m{^HTTP/[\d.]+ (\d{3})};
    $r->{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        push @{ $r->{set_cookie} }, $v if $k eq 'set-cookie';
        $r->{headers}{$k} = exists $r->{headers}{$k}
            ? "$r->{headers}{$k}, $v" : $v;
    }
    diag("curl $url: exit $rc: $err") if $rc != 0;
    return $r;
}

my $A = "https://$ADMIN:$https";


# --- the admin host: HTTPS, HSTS, __Host- cookies across the first setup ---
# (before any user exists: setup is only open while none does)

my $jar = "$tdir/cookies.txt";
my %browser = (jar => $jar, headers => ["Origin: $A",
                                        'Sec-Fetch-Site: same-origin']);
my $r = curl("$A/", %browser);
is($r->{status}, 303, 'admin host: / before setup redirects');
like($r->{headers}{location} // '', qr{/setup$}, '... to /setup');
is($r->{version}, '2', '... over HTTP/2');
is($r->{headers}{'strict-transport-security'}, 'max-age=31536000',
   '... with HSTS');

$r = curl("$A/setup", %browser);
is($r->{status}, 200, 'GET /setup');
is($r->{headers}{'strict-transport-security'}, 'max-age=31536000', 'HSTS');
like($r->{headers}{'content-security-policy'} // '', qr/default-src 'none'/,
     "the module's own security headers too");
my ($csrf) = $r->{body} =~ /name="csrf" value="([^"]*)"/;
ok($csrf, 'CSRF token in the setup form');
like(join("\n", @{ $r->{set_cookie} }),
     qr/^__Host-tunnel_csrf=[^;]+; Path=\/;.*; Secure; HttpOnly; SameSite=Lax$/m,
     'pre-session __Host- CSRF cookie');
like(read_file($jar),
     qr/^#HttpOnly_\Q$ADMIN\E\tFALSE\t\/\tTRUE\t\d+\t__Host-tunnel_csrf\t/m,
     "curl's cookie jar kept it: host-only, Secure, HttpOnly, for $ADMIN");

my $pw = 'correct horse battery';
$r = curl("$A/setup", %browser, form => [name => 'alice', password => $pw,
          password2 => $pw, csrf => $csrf // '']);
is($r->{status}, 303, 'POST /setup with the CSRF token: signed in')
    or diag($r->{body});
like(join("\n", @{ $r->{set_cookie} }),
     qr/^__Host-tunnel_session=[^;]+; Path=\/;.*; Secure; HttpOnly; SameSite=Lax$/m,
     '__Host- session cookie');
like(read_file($jar), qr/\t__Host-tunnel_session\t/,
     "curl's cookie jar kept it");

$r = curl("$A/", %browser);
is($r->{status}, 200, 'GET / with the session cookie');
like($r->{body}, qr{<span class="who">alice</span>}, '... signed in as alice');
like($r->{body}, qr/Sign out/, '... with a sign-out button');
is($r->{headers}{'strict-transport-security'}, 'max-age=31536000', 'HSTS');

$r = curl("$A/");
is($r->{status}, 303, 'without the cookie: not signed in');


# --- a real tunnel ----------------------------------------------------------------

my $bob = new_user($s, 'bob');
my $be = start_backend($s, $NAME);
my $ssh = start_ssh($s, key => $bob->{key}, user => 'bob',
    remote => "$NAME:80:localhost:$be->{port}");
ok(wait_route($s, $NAME, 15), "ssh -R $NAME: route up")
    or diag($ssh->output, tail_log($s, 'tunneld'));

my $T = "https://$NAME.$DOMAIN:$https";
$r = curl("$T/");
is($r->{status}, 200, "GET $T/");
is($r->{body}, "hello from backend $NAME", '... answered by the backend');
is($r->{version}, '2', '... over HTTP/2');
is($r->{rc}, 0, '... with the wildcard certificate verified');

$r = curl("http://$NAME.$DOMAIN:$http/some/path?x=1");
is($r->{status}, 301, 'plain HTTP on a tunnel: 301');
is($r->{headers}{location}, "https://$NAME.$DOMAIN/some/path?x=1",
   '... to the same URL on https');
$r = curl("http://$ADMIN:$http/");
is($r->{status}, 301, 'plain HTTP on the admin host: 301');
is($r->{headers}{location}, "https://$ADMIN/", '... to https');
$r = curl("https://$DOMAIN:$https/keys");
is($r->{status}, 301, 'the bare name: 301');
is($r->{headers}{location}, "https://$ADMIN/keys", '... to the admin host');

$r = curl("$T/headers", headers => ['X-Forwarded-For: 203.0.113.9',
                                    'X-Forwarded-Proto: http']);
is($r->{status}, 200, 'GET /headers through the tunnel');
my $h = eval { JSON::PP::decode_json($r->{body}) } || {};
is($h->{'x-forwarded-proto'}, 'https', 'backend saw X-Forwarded-Proto: https');
is($h->{'x-forwarded-for'}, '127.0.0.1',
   'backend saw X-Forwarded-For: the real peer, not what the client sent');
is($h->{'x-forwarded-host'}, "$NAME.$DOMAIN", 'backend saw X-Forwarded-Host');
is($h->{host}, "$NAME.$DOMAIN", 'backend saw the Host');

my @acc;
wait_until(5, sub {
    @acc = grep { /"GET \/headers / } log_lines($s->access_log);
    return scalar @acc;
});
like($acc[-1] // '',
     qr{^127\.0\.0\.1\ \[[^\]]+\]\ "\Q$NAME.$DOMAIN\E"
        \ "GET\ /headers\ HTTP/2\.0"\ 200\ \d+\ [\d.]+
        \ tunnel=\Q$NAME\E\ user=bob$}x,
     'access log: tunnel=NAME user=USER') or diag(read_file($s->access_log));

# the admin module's subrequests reach tunneld through the example's
# internal location
$r = curl("$A/admin/tunnels", %browser);
is($r->{status}, 200, 'admin dashboard /admin/tunnels');
like($r->{body},
     qr{<tr\ data-name="\Q$NAME\E"><td><a\ class="mono"
        \ href="https://\Q$NAME.$DOMAIN\E">
        .*?data-col="user">bob<
        .*?data-col="client">127\.0\.0\.1:\d+<}xs,
     '... lists the live tunnel (tunneld via the internal /_tunneld/)');
unlike($r->{body}, qr/live state unavailable/i, '... live state available');


# --- the management API is not reachable through any public server --------

# the control: the API does answer these on its socket
for my $p ('/tunnels', '/healthz', '/metrics') {
    my ($rc, $out) = run(['curl', '-sS', '--max-time', '10',
        '--unix-socket', $s->socket_dir . '/api.sock', "http://tunneld$p"]);
    like($out, $API_RE, "control: api.sock answers $p");
}

my @paths = ('/tunnels', '/healthz', '/metrics', '/_tunneld/tunnels',
             '/_tunneld/healthz', '/_tunneld/metrics', "/tunnels/$NAME",
             '/_tunneld/', '/tunnels.json', '/admin/tunnels.json');
my $tunnel_404 = sub { my ($p) = @_; "not found: $p" };
my @cases = (
    # [label, base URL, options, expected status, body check]
    ['tunnel host', $T, {}, 404, sub { $_[0] eq $tunnel_404->($_[1]) }],
    ['unknown tunnel', "https://nosuch.$DOMAIN:$https", {}, 404, undef],
    ['Host outside the domain', "https://other.example.org:$https",
     { insecure => 1 }, 404, undef],
    ['bare name', "https://$DOMAIN:$https", {}, 301, undef],
    ['plain HTTP', "http://$NAME.$DOMAIN:$http", {}, 301, undef],
    ['admin host, signed out', $A, {}, undef, undef],
    ['admin host, signed in', $A, \%browser, undef, undef],
);
for my $c (@cases) {
    my ($label, $base, $o, $want, $check) = @$c;
    for my $p (@paths) {
        my $res = curl("$base$p", %$o);
        my $status = $res->{status};
        if (defined $want) {
            is($status, $want, "$label: GET $p: $want");
        } else {
            # the admin host: its own pages only (a sign-in redirect, a 404
            # page, the HTML dashboard; the .json twins answer the UI's
            # own view, checked for the API's shape below)
            ok($status =~ /^(?:200|303|404)$/, "$label: GET $p: $status");
        }
        if ($check) {
            ok($check->($res->{body}, $p), "... answered by the user's app");
        }
        if ($p =~ /\.json$/ && $label =~ /^admin/ && $status == 200) {
            unlike($res->{body}, qr/tunneld_|"redis":"up"|"session":/,
                   "... the UI's view, not the API's");
        } else {
            unlike($res->{body}, $API_RE, "... not the API's answer");
        }
    }
}

# an internal location answers 404 from outside, on the admin host itself
$r = curl("$A/_tunneld/tunnels", %browser);
is($r->{status}, 404, '/_tunneld/tunnels on the admin host: 404');


# --- the app stops: the example's offline page ------------------------------

stop_backend($be);
$r = curl("$T/");
is($r->{status}, 502, 'app gone: 502');
like(page_text($r->{body}),
     qr/Tunnel "\Q$NAME\E": nothing answers on the ssh client's machine/,
     '... the "tunnel is offline" page names the cause');
ok(!exists $r->{headers}{'x-tunnel-error'}, '... X-Tunnel-Error hidden');


# --- logs ---------------------------------------------------------------------

$ssh->stop;
kill 'TERM', $pid;
waitpid($pid, 0);
@NgxTunnel::Test::KIDS = grep { $_->[0] != $pid } @NgxTunnel::Test::KIDS;
is($? & 127, 0, 'nginx stopped cleanly');
check_logs($s);

done_testing();
