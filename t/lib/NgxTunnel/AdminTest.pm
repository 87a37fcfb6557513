package NgxTunnel::AdminTest;

# Test harness of the admin module (t/100-admin-*.t).
#
# What it does: an NgxTunnel::Stack (tools/lib/NgxTunnel/Stack.pm) with the
# web control plane on the bare domain (admin => 1), in its own temp dir on
# free ports: PostgreSQL, the migrations, Redis and nginx, and tunneld too
# when asked (tunneld => 1).  Stack starts, waits for and stops every
# process, by PID.  On top of it: sql() for one-value queries, a tiny
# browser (NgxTunnel::AdminTest::UA) that keeps cookies the way a browser
# keeps our host-only cookies, and the steps most tests begin with (first
# administrator, invitation, joining).
#
# What it adds to Stack: the admin module may come from elsewhere
# (TUNNEL_ADMIN_MODULE=/path/to/ngx_http_tunnel_admin_module.so), and
# host_links => 1 drops Stack's tunnel_admin_base_url so invitation links
# are built from the request's Host (Stack has no switch for either).
#
# The object is a Stack, so NgxTunnel::Test's helpers (new_key,
# start_backend, start_ssh, wait_route, ...) take it as they take
# start_stack()'s.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp ();
use IPC::Run ();

my $ROOT;
BEGIN { $ROOT = abs_path(dirname(__FILE__) . '/../../..') }

use lib "$ROOT/tools/lib";
use parent -norequire, 'NgxTunnel::Stack';
use NgxTunnel::Stack;

our @EXPORT_OK = qw(csrf);

my $ADMIN_SO = 'ngx_http_tunnel_admin_module.so';


sub repo_root { $ROOT }

# build/, or build-asan/ under `make test SANITIZE=1`
sub build_dir { $ENV{NGX_TUNNEL_BUILD} || "$ROOT/build" }

sub module_path {
    return $ENV{TUNNEL_ADMIN_MODULE} || build_dir() . "/$ADMIN_SO";
}

# why the admin tests cannot run here (what is not built), or undef
sub missing {
    my (%o) = @_;
    my $b = build_dir();
    my @need = (module_path(), "$b/ngx_http_tunnel_module.so",
                "$b/tunnelctl");
    push @need, "$b/tunneld" if $o{tunneld};
    my @absent = grep { !-e $_ } @need;
    return @absent ? "not built (run 'make'): @absent" : undef;
}


# Options: http_extra (text inside http{}, next to the admin directives),
# tunneld (start_all starts tunneld too), host_links (see above); the rest
# go to NgxTunnel::Stack->new.
sub new {
    my ($class, %o) = @_;
    my $http_extra = delete $o{http_extra} // '';
    my $tunneld = delete $o{tunneld};
    my $host_links = delete $o{host_links};

    my $self = $class->SUPER::new(
        root        => $ROOT,
        http_port   => NgxTunnel::Stack::free_port(),
        ssh_port    => NgxTunnel::Stack::free_port(),
        domain      => 'localhost',
        admin       => 1,
        admin_extra => $http_extra,
        # tunneld's API only where tunneld runs: elsewhere every page would
        # log nginx's connect() error for its socket
        admin_api   => $tunneld ? 1 : 0,
        keep_dir    => $ENV{KEEP},
        %o,
    );
    $self->{tunneld_too} = $tunneld;
    $self->{host_links} = $host_links;
    # where NgxTunnel::Test keeps keys and backend logs
    $self->{_test_dir} = $self->dir;
    return $self;
}

sub bin {
    my ($self, $name) = @_;
    return module_path() if $name eq $ADMIN_SO;
    return $self->SUPER::bin($name);
}

sub nginx_config {
    my ($self) = @_;
    my $conf = $self->SUPER::nginx_config;
    $conf =~ s/^\s*tunnel_admin_base_url [^;]*;\n//m if $self->{host_links};
    return $conf;
}

sub start_all {
    my ($self) = @_;
    $self->start_postgres;
    $self->migrate;
    $self->start_redis;
    $self->start_nginx;
    $self->start_tunneld if $self->{tunneld_too};
    return $self;
}

sub port { $_[0]->http_port }
sub base { 'http://localhost:' . $_[0]->http_port }

# the one value a query returns (rows joined by newlines); dies on errors
sub sql {
    my ($self, $query) = @_;
    my ($rc, $out, $err) = $self->psql($query);
    croak "psql failed (exit $rc): $err\nquery: $query" if $rc != 0;
    $out =~ s/\s+\z//;
    return $out;
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', $self->log_path('nginx') or return '';
    local $/;
    return <$fh> // '';
}

sub ua { NgxTunnel::AdminTest::UA->new($_[0]->base) }

# `nginx -t` of a configuration loading the admin module, with $http inside
# http{} and a tunnel_admin location: (exit code, what nginx printed)
sub nginx_test_config {
    my ($http) = @_;
    my $dir = File::Temp::tempdir('tnl-admin-conf.XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    my $module = module_path();
    open my $fh, '>', "$dir/nginx.conf" or croak "$dir/nginx.conf: $!";
    print $fh <<"CONF";
pid $dir/nginx.pid;
error_log $dir/error.log;
load_module $module;
events { }
http {
    $http
    server {
        listen 127.0.0.1:1;
        location / { tunnel_admin; }
    }
}
CONF
    close $fh;
    my $out = '';
    # a sanitized module loads only with libasan preloaded (Stack.pm)
    my %san = $ENV{NGX_TUNNEL_SANITIZE}
        ? (LD_PRELOAD => '/usr/lib/x86_64-linux-gnu/libasan.so.8',
           ASAN_OPTIONS => 'detect_leaks=0:detect_odr_violation=0:log_path='
                         . "$ENV{NGX_TUNNEL_SANITIZE}/other-asan") : ();
    IPC::Run::run(['/usr/sbin/nginx', '-t', '-p', "$dir/", '-c',
                   "$dir/nginx.conf", '-e', "$dir/error.log"],
                  init => sub { @ENV{keys %san} = values %san },
                  '<', \undef, '>&', \$out, IPC::Run::timeout(20));
    return ($? >> 8, $out);
}

# the csrf field of a page (a response or its HTML)
sub csrf {
    my ($r) = @_;
    my $html = ref $r ? $r->{content} : $r;
    return $html =~ /name="csrf" value="([^"]*)"/ ? $1 : '';
}

# a valid installation: the first admin exists, signed in on the returned UA
sub setup_admin {
    my ($self, $name, $password) = @_;
    $name //= 'alice';
    $password //= 'correct horse battery';
    my $ua = $self->ua;
    my $r = $ua->get('/setup');
    $r = $ua->post('/setup', { name => $name, password => $password,
                               password2 => $password, csrf => csrf($r) });
    croak "setup failed: $r->{status}" unless $r->{status} == 303;
    return $ua;
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


package NgxTunnel::AdminTest::UA;

# A browser as far as our pages care: no redirects followed, cookies kept
# per name (Max-Age=0 deletes), every request bounded by a timeout.

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
    my @sc = ref $sc ? @$sc : defined $sc ? ($sc) : ();
    for my $c (@sc) {
        my ($nv, @attrs) = split /;\s*/, $c;
        my ($n, $v) = split /=/, $nv, 2;
        if (grep { /^max-age=0$/i } @attrs) {
            delete $self->{jar}{$n};
        } else {
            $self->{jar}{$n} = $v;
        }
    }
    $res->{set_cookie} = \@sc;
    return $res;
}

sub get {
    my ($self, $path, %o) = @_;
    return $self->request('GET', $path, undef, $o{headers});
}

sub post {
    my ($self, $path, $form, %o) = @_;
    return $self->request('POST', $path, $form, $o{headers});
}

1;
