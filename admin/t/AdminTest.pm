# Test harness of the admin module (t/100-admin-*.t): a private PostgreSQL
# (initdb as the postgres account when root, Unix socket in a temp dir) and
# a private stock nginx loading build/ngx_http_tunnel_admin_module.so, both
# started here and stopped by PID; plus a tiny browser (AdminTest::UA) that
# keeps cookies the way a browser would for our host-only cookies.
#
# It does not start Redis or tunneld: tests that need the tunnel path use
# tools/lib/NgxTunnel/Stack.pm instead.  Every wait is bounded.

package AdminTest;

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our $ROOT = do {
    my $d = __FILE__;
    $d =~ s{/admin/t/AdminTest\.pm$}{};
    $d = '.' if $d eq __FILE__;
    $d;
};

sub repo_root { $ROOT }

sub module_path {
    return $ENV{TUNNEL_ADMIN_MODULE}
        // "$ROOT/build/ngx_http_tunnel_admin_module.so";
}

sub free_port {
    for (1 .. 50) {
        my $port = 20000 + int(rand(20000));
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Listen => 1,
                                      ReuseAddr => 1) or next;
        close $s;
        return $port;
    }
    croak "no free port";
}

sub pg_bindir {
    my $d = `pg_config --bindir 2>/dev/null`;
    chomp $d;
    for my $c ($d, glob('/usr/lib/postgresql/*/bin')) {
        return $c if $c && -x "$c/initdb";
    }
    croak "PostgreSQL server binaries not found";
}

sub new {
    my ($class, %o) = @_;
    my $dir = tempdir('/tmp/tnl-admin.XXXXXX', CLEANUP => !$ENV{KEEP});
    chmod 0755, $dir;
    my $self = bless {
        dir        => $dir,
        port       => $o{port} // free_port(),
        pg_port    => $o{pg_port} // free_port(),
        http_extra => $o{http_extra} // '',
        server_extra => $o{server_extra} // '',
        db         => $o{conninfo},     # someone else's database
        pids       => {},
    }, $class;
    return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub base { "http://127.0.0.1:$_[0]{port}" }

sub conninfo {
    my ($self) = @_;
    return $self->{db} if $self->{db};
    return "host=$self->{dir}/pg port=$self->{pg_port} dbname=ngx_tunnel "
         . "user=postgres connect_timeout=3";
}

# --- processes ------------------------------------------------------------

sub _account {
    my @pw = getpwnam('postgres') or croak "no postgres account";
    return ($pw[2], $pw[3]);
}

sub _as_postgres {
    return unless $> == 0;
    my ($uid, $gid) = _account();
    $( = $gid; $) = "$gid $gid";
    $< = $uid; $> = $uid;
}

sub _spawn {
    my ($self, $name, $as_pg, $log, @cmd) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        POSIX::setsid();
        _as_postgres() if $as_pg;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pids}{$name} = $pid;
    return $pid;
}

sub _run_as_pg {
    my ($self, @cmd) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/initdb.log";
        open STDERR, '>&', \*STDOUT;
        _as_postgres();
        exec @cmd or POSIX::_exit(127);
    }
    my $deadline = time + 120;
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        return $? >> 8 if $r == $pid;
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return -1;
}

sub _stop {
    my ($self, $name, $sig) = @_;
    my $pid = delete $self->{pids}{$name} or return;
    kill $sig, $pid;
    my $deadline = time + 15;
    while (time < $deadline) {
        return 1 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return 1;
}

sub _wait {
    my ($what, $timeout, $cond) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    croak "$what did not come up within $timeout s";
}

# --- PostgreSQL -----------------------------------------------------------

sub start_pg {
    my ($self) = @_;
    my $bin = pg_bindir();
    my $pg = "$self->{dir}/pg";
    my $data = "$pg/data";

    if (!-e "$data/PG_VERSION") {
        make_path($pg);
        chmod 0755, $pg;
        if ($> == 0) {
            my ($uid, $gid) = _account();
            chown $uid, $gid, $pg;
        }
        my $rc = $self->_run_as_pg("$bin/initdb", '-D', $data, '-A', 'trust',
                                   '-U', 'postgres', '-E', 'UTF8',
                                   '--locale=C', '--no-instructions');
        croak "initdb failed: " . _slurp("$self->{dir}/initdb.log") if $rc;
    }

    $self->_spawn('postgres', 1, "$self->{dir}/postgres.log",
        "$bin/postgres", '-D', $data, '-k', $pg, '-p', $self->{pg_port},
        '-c', 'listen_addresses=', '-c', 'unix_socket_permissions=0777',
        '-c', 'fsync=off', '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off');

    _wait('postgres', 30, sub {
        system("$bin/pg_isready -q -h $pg -p $self->{pg_port}") == 0;
    });

    if (!$self->{created}) {
        my $out = $self->psql_db('postgres',
            "SELECT 1 FROM pg_database WHERE datname = 'ngx_tunnel'");
        if ($out !~ /1/) {
            $self->psql_db('postgres', 'CREATE DATABASE ngx_tunnel');
        }
        $self->{created} = 1;
    }
    return 1;
}

sub stop_pg { $_[0]->_stop('postgres', 'INT') }

sub psql_db {
    my ($self, $db, $sql) = @_;
    my $bin = pg_bindir();
    open my $fh, '-|', "$bin/psql", '-X', '-q', '-t', '-A', '-v',
        'ON_ERROR_STOP=1', '-h', "$self->{dir}/pg", '-p', $self->{pg_port},
        '-U', 'postgres', '-d', $db, '-c', $sql
        or croak "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    croak "psql failed ($?): $sql" if $?;
    $out =~ s/\s+\z//;
    return $out;
}

sub psql { my ($self, $sql) = @_; return $self->psql_db('ngx_tunnel', $sql) }

# the migrations, each file in one transaction (as tunnelctl migrate does)
sub migrate {
    my ($self) = @_;
    my $bin = pg_bindir();
    for my $f (sort glob("$ROOT/sql/*.sql")) {
        system("$bin/psql", '-X', '-q', '-v', 'ON_ERROR_STOP=1',
               '--single-transaction', '-h', "$self->{dir}/pg",
               '-p', $self->{pg_port}, '-U', 'postgres', '-d', 'ngx_tunnel',
               '-f', $f) == 0 or croak "migration $f failed";
    }
    return 1;
}

# --- nginx ------------------------------------------------------------------

sub nginx_conf {
    my ($self) = @_;
    my $d = $self->{dir};
    my $module = module_path();
    my $user = $> == 0
        ? 'user ' . (getpwnam('www-data') ? 'www-data' : 'nobody') . ';'
        : '';
    my $ci = $self->conninfo;
    return <<"CONF";
$user
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log info;
load_module $module;
events { worker_connections 256; }
http {
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    access_log $d/access.log;
    server_tokens off;

    tunnel_admin_database "$ci";
$self->{http_extra}

    server {
        listen 127.0.0.1:$self->{port};
        server_name localhost;
        location / {
            tunnel_admin;
        }
$self->{server_extra}
    }
}
CONF
}

sub start_nginx {
    my ($self) = @_;
    my $d = $self->{dir};
    make_path("$d/tmp");
    open my $fh, '>', "$d/nginx.conf" or croak $!;
    print $fh $self->nginx_conf;
    close $fh;
    $self->_spawn('nginx', 0, "$d/nginx.stderr", '/usr/sbin/nginx',
                  '-p', "$d/", '-c', "$d/nginx.conf", '-e', "$d/error.log",
                  '-g', 'daemon off;');
    _wait('nginx', 10, sub {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port});
        return $s ? 1 : 0;
    });
    return 1;
}

sub stop_nginx { $_[0]->_stop('nginx', 'QUIT') }

sub start_all {
    my ($self) = @_;
    $self->start_pg;
    $self->migrate;
    $self->start_nginx;
}

sub stop_all {
    my ($self) = @_;
    $self->stop_nginx;
    $self->stop_pg;
}

sub error_log { _slurp("$_[0]{dir}/error.log") }

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return <$fh>;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    for my $n (qw(nginx postgres)) {
        $self->_stop($n, $n eq 'nginx' ? 'TERM' : 'INT')
            if $self->{pids}{$n};
    }
}

sub ua { AdminTest::UA->new($_[0]->base) }

# a valid installation: the first admin exists, signed in on the returned UA
sub setup_admin {
    my ($self, $name, $password) = @_;
    $name //= 'alice';
    $password //= 'correct horse battery';
    my $ua = $self->ua;
    my $r = $ua->get('/setup');
    $r = $ua->post('/setup', { name => $name, password => $password,
                               password2 => $password,
                               csrf => AdminTest::csrf($r) });
    croak "setup failed: $r->{status}" unless $r->{status} == 303;
    return $ua;
}

sub csrf {
    my ($r) = @_;
    my $html = ref $r ? $r->{content} : $r;
    return $html =~ /name="csrf" value="([^"]*)"/ ? $1 : '';
}

# a random invitation link path, created by $ua (an admin)
sub invite {
    my ($self, $ua, %o) = @_;
    my $r = $ua->get('/admin/invites');
    $r = $ua->post('/admin/invites', { action => 'create',
                                       hours => $o{hours} // 24,
                                       note => $o{note} // 'test',
                                       ($o{admin} ? (admin => 1) : ()),
                                       csrf => csrf($r) });
    $r->{content} =~ m{id="invite-link">[^<]*?(/join/[A-Za-z0-9_-]+)<}
        or croak "no invitation link in: $r->{status} $r->{content}";
    return $1;
}

# a new user by invitation, signed in on the returned UA
sub join_user {
    my ($self, $admin_ua, $name, %o) = @_;
    my $path = $self->invite($admin_ua, %o);
    my $ua = $self->ua;
    my $r = $ua->get($path);
    my $pw = $o{password} // "password of $name";
    $r = $ua->post($path, { name => $name, password => $pw,
                            password2 => $pw, csrf => csrf($r) });
    croak "join failed: $r->{status}" unless $r->{status} == 303;
    return $ua;
}


package AdminTest::UA;

use strict;
use warnings;

use HTTP::Tiny;

sub new {
    my ($class, $base) = @_;
    return bless {
        base => $base,
        jar  => {},
        http => HTTP::Tiny->new(max_redirect => 0, timeout => 15,
                                agent => 'tnl-admin-test'),
    }, $class;
}

sub cookie { $_[0]{jar}{$_[1]} }
sub set_cookie { $_[0]{jar}{$_[1]} = $_[2] }
sub clear_cookies { $_[0]{jar} = {} }

sub request {
    my ($self, $method, $path, $form, $headers) = @_;
    my %h = %{ $headers // {} };
    my $cookies = join '; ',
        map { "$_=$self->{jar}{$_}" } sort keys %{ $self->{jar} };
    $h{Cookie} = $cookies if length $cookies && !exists $h{Cookie};
    my %opt = (headers => \%h);
    if ($form) {
        $h{'Content-Type'} = 'application/x-www-form-urlencoded';
        $opt{content} = $self->{http}->www_form_urlencode($form);
    }
    my $res = $self->{http}->request($method, "$self->{base}$path", \%opt);
    my $sc = $res->{headers}{'set-cookie'};
    for my $c (ref $sc ? @$sc : defined $sc ? ($sc) : ()) {
        my ($nv, @attrs) = split /;\s*/, $c;
        my ($n, $v) = split /=/, $nv, 2;
        if (grep { /^max-age=0$/i } @attrs) {
            delete $self->{jar}{$n};
        } else {
            $self->{jar}{$n} = $v;
        }
    }
    $res->{set_cookie} = [ ref $sc ? @$sc : defined $sc ? ($sc) : () ];
    return $res;
}

sub get  { my ($self, $p, %o) = @_; $self->request('GET', $p, undef, $o{headers}) }
sub post { my ($self, $p, $f, %o) = @_; $self->request('POST', $p, $f, $o{headers}) }

1;
