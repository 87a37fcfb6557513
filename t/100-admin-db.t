#!/usr/bin/perl
# Admin UI without its database: PostgreSQL stopped -> a friendly 503 page
# within tunnel_admin_database_timeout, the stylesheet still served, and the
# pool reconnects by itself once PostgreSQL is back; a statement stuck on a
# lock times out the same way and the pool recovers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new(
    http_extra => "    tunnel_admin_database_timeout 2s;\n"
                . "    tunnel_admin_database_pool 2;\n");
$t->start_all;

my $ua = $t->setup_admin;
is($ua->get('/')->{status}, 200, 'signed in, database up');

sub timed_get {
    my ($u, $path) = @_;
    my $t0 = time;
    my $r = $u->get($path);
    return ($r, time - $t0);
}

# --- PostgreSQL down -------------------------------------------------------------
$t->stop_postgres;

my ($r, $took) = timed_get($ua, '/');
is($r->{status}, 503, 'database down: 503');
cmp_ok($took, '<', 3, 'within the timeout');
like($r->{content}, qr/The database is not answering/, 'friendly page');
like($r->{content}, qr/Tunnels keep working/, 'says tunnels are fine');
is($r->{headers}{'retry-after'}, '30', 'Retry-After');
like($r->{content}, qr{href="/static/admin.css"}, 'styled page');

($r, $took) = timed_get($ua, '/keys');
is($r->{status}, 503, 'again: 503');
cmp_ok($took, '<', 3, 'again within the timeout');

$r = $ua->post('/login', { name => 'alice', password => 'x' });
is($r->{status}, 503, 'POST while down: 503');

is($ua->get('/static/admin.css')->{status}, 200,
   'stylesheet needs no database');

# several at once, while reconnect attempts run
my @kids;
for (1 .. 6) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $res = $ua->get('/');
        POSIX::_exit($res->{status} == 503 ? 0 : 1);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid($_, 0); $bad++ if $? }
is($bad, 0, 'concurrent requests while down all get 503');

# --- back up -----------------------------------------------------------------------
$t->start_postgres;

my $t0 = time;
my $status = 0;
while (time - $t0 < 10) {
    $status = $ua->get('/')->{status};
    last if $status == 200;
    sleep 0.25;
}
is($status, 200, 'database back: pages work again');
cmp_ok(time - $t0, '<', 7, 'recovered within a few seconds');
for (1 .. 4) {
    is($ua->get('/names')->{status}, 200, "request $_ after recovery");
}

# --- a statement stuck on a lock ---------------------------------------------
my $locker = fork // die;
if ($locker == 0) {
    my ($rc) = $t->psql('BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; '
                        . 'SELECT pg_sleep(4); COMMIT;');
    POSIX::_exit($rc == 0 ? 0 : 1);
}
sleep 0.7;

($r, $took) = timed_get($ua, '/');
is($r->{status}, 503, 'statement stuck on a lock: 503');
cmp_ok($took, '>=', 1.8, 'after the timeout');
cmp_ok($took, '<', 3.5, 'not much later');

# a client that gives up while its query waits: the query is detached, its
# result drained, the worker unharmed
my $cookie = join '; ', map { "$_=" . $ua->cookie($_) }
    grep { defined $ua->cookie($_) }
    qw(__Host-tunnel_session __Host-tunnel_csrf);
for (1 .. 3) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port) or die;
    print $c "GET /keys HTTP/1.1\r\nHost: localhost\r\nCookie: $cookie\r\n\r\n";
    sleep 0.2;
    close $c;
}

waitpid($locker, 0);

$t0 = time;
$status = 0;
while (time - $t0 < 10) {
    $status = $ua->get('/')->{status};
    last if $status == 200;
    sleep 0.25;
}
is($status, 200, 'lock released: pages work again');

my $log = $t->error_log;
like($log, qr/tunnel: admin: the database did not answer in time/,
     'timeout logged');
like($log, qr/tunnel: admin: (cannot connect to the database|database connection lost)/,
     'lost database logged');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alerts, no crashed worker');
unlike($log, qr/exited on signal/, 'no worker died');
like($log, qr/client (prematurely )?closed connection/,
     'the clients that gave up were noticed');

$t->stop_all;

# --- a database named by a host name: resolved at load time -------------------
# (libpq would resolve it with a blocking getaddrinfo() in every worker at
# every connect; t/204-dns-resolve.t connects through such a name)
for my $ok ('host=/run/postgresql dbname=x', 'host=127.0.0.1 dbname=x',
            'host=::1 dbname=x', 'postgresql://127.0.0.1:5432/x',
            'host=db.example.invalid hostaddr=192.0.2.1 dbname=x', 'dbname=x',
            'host=localhost dbname=x', 'host=/tmp,localhost dbname=x',
            'postgresql://localhost:5432/x?sslmode=disable')
{
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "$ok";});
    is($rc, 0, "tunnel_admin_database \"$ok\" accepted") or diag($out);
}
for my $bad ('host=db.example.invalid dbname=x',
             'host=/tmp,db.example.invalid dbname=x',
             'postgresql://db.example.invalid/x')
{
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "$bad";});
    isnt($rc, 0, "tunnel_admin_database \"$bad\" refused: no such name");
    like($out, qr/cannot resolve host "db\.example\.invalid": .*; fix the /,
         '... names the host and what to do');
}
my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
    'tunnel_admin_database "host=/tmp port=notaport x";');
isnt($rc, 0, 'a malformed conninfo is refused at load time');
like($out, qr/invalid "tunnel_admin_database"/, '... and named');

done_testing;
