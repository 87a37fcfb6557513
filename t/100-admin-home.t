#!/usr/bin/perl
# Admin UI start page (issue 8, points 2 and 3): titled for what it does
# (no claim to list live tunnels), the exact ssh command for this
# installation (tunnel_admin_ssh_host, tunnel_admin_ssh_port with -p left
# out for 22, the user's own reserved name, else a name they could get:
# never a system name nor someone else's reserved name) and the URL it
# gives (tunnel_admin_tunnel_url); without those directives, the request's
# host.  The copy button's script is same-origin and allowed by the page's
# CSP only.  The directives are checked at load time.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

# --- directives at load time ----------------------------------------------------
for my $ok ('tunnel_admin_ssh_host tunnel.example.com;',
            'tunnel_admin_ssh_host 192.0.2.7;',
            'tunnel_admin_ssh_host ::1;',
            'tunnel_admin_ssh_port 22;', 'tunnel_admin_ssh_port 65535;',
            'tunnel_admin_tunnel_url "https://%s.tunnel.example.com";',
            'tunnel_admin_tunnel_url "http://%s.localhost:8080/";')
{
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "host=/tmp dbname=x"; $ok});
    is($rc, 0, "accepted: $ok") or diag($out);
}
for my $bad (['tunnel_admin_ssh_host -oProxyCommand=x;', qr/invalid "tunnel_admin_ssh_host" "-oProxyCommand=x": give the host name or address users connect ssh to/],
             ['tunnel_admin_ssh_host alice@host;', qr/invalid "tunnel_admin_ssh_host"/],
             ['tunnel_admin_ssh_host "host name";', qr/invalid "tunnel_admin_ssh_host"/],
             ['tunnel_admin_ssh_port 0;', qr/value must be between 1 and 65535/],
             ['tunnel_admin_ssh_port 70000;', qr/must be between 1 and 65535/],
             ['tunnel_admin_ssh_port ssh;', qr/"tunnel_admin_ssh_port" directive invalid number/],
             ['tunnel_admin_tunnel_url "tunnel.example.com";', qr/invalid "tunnel_admin_tunnel_url" "tunnel.example.com": give the URL of a tunnel with %s for its name/],
             ['tunnel_admin_tunnel_url "https://tunnel.example.com";', qr/invalid "tunnel_admin_tunnel_url"/],
             ['tunnel_admin_tunnel_url "https://%s.%s.example.com";', qr/invalid "tunnel_admin_tunnel_url"/],
             ['tunnel_admin_tunnel_url "https://x.example.com/%s";', qr/invalid "tunnel_admin_tunnel_url"/],
             ['tunnel_admin_tunnel_url "https://%d.example.com";', qr/invalid "tunnel_admin_tunnel_url"/],
             ['tunnel_admin_tunnel_url "https://%s.example.com/<b>";', qr/invalid "tunnel_admin_tunnel_url"/],
             ['tunnel_admin_reserved_names www;', qr/unknown directive "tunnel_admin_reserved_names"/])
{
    my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
        qq{tunnel_admin_database "host=/tmp dbname=x"; $bad->[0]});
    isnt($rc, 0, "refused at load: $bad->[0]");
    like($out, $bad->[1], '... with the reason');
}

# --- the stack's configuration: ssh port and tunnel URL of the test stack -------
my $t = NgxTunnel::AdminTest->new;
$t->start_all;
my ($ssh, $http) = ($t->ssh_port, $t->http_port);

my $alice = $t->setup_admin('alice', 'alice password 1');
my $bob = $t->join_user($alice, 'bob');

sub command_of {
    my ($r) = @_;
    my ($cmd) = $r->{content} =~ m{<code class="copy mono" id="tunnel-command">([^<]*)</code>};
    my ($url) = $r->{content} =~ m{<a class="mono" id="tunnel-url" href="([^"]*)">\1</a>};
    return ($cmd // '', $url // '');
}

sub reserve {
    my ($ua, $name) = @_;
    my $p = $ua->get('/names');
    my $r = $ua->post('/names', { action => 'reserve', name => $name,
                                  csrf => csrf($p) });
    is($r->{status}, 303, "reserved $name");
}

my $r = $bob->get('/');
is($r->{status}, 200, 'start page');
like($r->{content}, qr{<title>Your tunnels - ngx-tunnel</title>}, 'titled "Your tunnels"');
like($r->{content}, qr{<h1>Your tunnels</h1>}, '... also in the heading');
like($r->{content}, qr{<h2>Live now</h2>\s*<p class="msg bad" id="live-state">Live state unavailable},
     'live tunnels first: this stack has no tunneld, and the page says so');
like($r->{content}, qr{<h2>Start a tunnel</h2>}, 'then how to start one');
like($r->{content}, qr/this page lists it under Live now while ssh runs/,
     'says where a live tunnel shows');
unlike($r->{content}, qr/this-host|<em>myapp<\/em>/, 'no placeholder command');
like($r->{content}, qr/You have no SSH key yet/, 'no key yet: says so');

my ($cmd, $url) = command_of($r);
is($cmd, "ssh -p $ssh -R bob:80:localhost:3000 bob\@localhost",
   'the command: this stack, named after the user');
is($url, "http://bob.localhost:$http/", 'the URL it gives');
like($r->{content}, qr{<span class="mono">bob</span> is free right now: <a href="/names">reserve it</a>},
     'a free name, with the way to keep it');

# the copy button: a same-origin script, allowed on this page only
like($r->{content}, qr{<button class="link" type="button" data-copy="tunnel-command" hidden>Copy</button>},
     'a copy button, hidden until the script shows it');
like($r->{content}, qr{<script src="/static/copy\.js"></script>}, 'its script');
unlike($r->{content}, qr{<script>|<script [^>]*>[^<]}, 'no inline script');
is($r->{headers}{'content-security-policy'},
   "default-src 'none'; script-src 'self'; connect-src 'self'; "
   . "style-src 'self'; img-src 'self'; form-action 'self'; "
   . "frame-ancestors 'none'; base-uri 'none'",
   'CSP allows same-origin scripts (and their fetches) here');
is($bob->get('/keys')->{headers}{'content-security-policy'},
   "default-src 'none'; style-src 'self'; img-src 'self'; "
   . "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
   '... and no script on the other pages');
my $js = $t->ua->get('/static/copy.js');
is($js->{status}, 200, '/static/copy.js served without a session');
is($js->{headers}{'content-type'}, 'text/javascript; charset=utf-8', '... as JavaScript');
like($js->{content}, qr/navigator\.clipboard\.writeText/, '... it copies');

# someone else holds the user name, or the system does: another name
reserve($alice, 'bob');
($cmd, $url) = command_of($bob->get('/'));
is($cmd, "ssh -p $ssh -R bob-app:80:localhost:3000 bob\@localhost",
   "bob's user name is alice's reserved name: not offered to bob");
is($url, "http://bob-app.localhost:$http/", '... and its URL');
$t->sql("INSERT INTO system_names (name) VALUES ('bob-app')");
($cmd) = command_of($bob->get('/'));
is($cmd, "ssh -p $ssh -R bob-2:80:localhost:3000 bob\@localhost",
   'a system name is not offered either');

# myapp belongs to someone else and bob has his own reserved name
reserve($alice, 'myapp');
reserve($bob, 'bobs-site');
$r = $bob->get('/');
($cmd, $url) = command_of($r);
is($cmd, "ssh -p $ssh -R bobs-site:80:localhost:3000 bob\@localhost",
   "bob's own reserved name, not myapp");
is($url, "http://bobs-site.localhost:$http/", '... and its URL');
like($r->{content}, qr{<span class="mono">bobs-site</span> is your reserved name: nobody else can take it\.},
     '... called his');
unlike($r->{content}, qr/myapp/, 'myapp (alice\'s) is not suggested');

# several reserved names: the first in name order (byte order, as tunneld
# gives a nameless -R, t/020-names.t), not the oldest
reserve($bob, 'bob-a');
$r = $bob->get('/');
($cmd) = command_of($r);
is($cmd, "ssh -p $ssh -R bob-a:80:localhost:3000 bob\@localhost",
   'two reserved names: bob-a (newer, first in name order), as tunneld');
like($r->{content}, qr{Reserved names: bob-a, bobs-site \(}, '... both listed');
like($r->{content}, qr{you get your reserved name \(the first in name order if you have several\)},
     '... and the page says which one -R 80: gets');

# a reservation that became a system name counts for nothing (tunneld
# refuses it: t/025-system-names.t)
$t->sql("INSERT INTO system_names (name) VALUES ('bob-a')");
$r = $bob->get('/');
($cmd) = command_of($r);
is($cmd, "ssh -p $ssh -R bobs-site:80:localhost:3000 bob\@localhost",
   'bob-a became a system name: bobs-site again');
like($r->{content}, qr{Reserved names: bob-a \(kept for the system now\), bobs-site \(},
     '... bob-a listed as kept for the system now');
$t->sql("INSERT INTO system_names (name) VALUES ('bobs-site')");
$r = $bob->get('/');
($cmd) = command_of($r);
is($cmd, "ssh -p $ssh -R bob-2:80:localhost:3000 bob\@localhost",
   'both became system names: a free name is offered instead');
like($r->{content}, qr{<span class="mono">bob-2</span> is free right now},
     '... not called his');
unlike($r->{content}, qr/is your reserved name/, '... nor any reserved name');

# a user name that is not a DNS label, and one that is a system name
my $carol = $t->join_user($alice, 'carol_x');
($cmd) = command_of($carol->get('/'));
is($cmd, "ssh -p $ssh -R carol-x:80:localhost:3000 carol_x\@localhost",
   'carol_x gets carol-x');
my $www = $t->join_user($alice, 'www');
($cmd) = command_of($www->get('/'));
is($cmd, "ssh -p $ssh -R www-app:80:localhost:3000 www\@localhost",
   'user www is not offered the system name www');

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');
$t->stop_all;

# --- port 22, and the request's host when not configured ---------------------------
{
    package PlainConf;
    our @ISA = ('NgxTunnel::AdminTest');
    sub nginx_config {
        my $conf = $_[0]->SUPER::nginx_config;
        $conf =~ s/^\s*tunnel_admin_ssh_port \d+;\n/    tunnel_admin_ssh_port 22;\n/m;
        $conf =~ s/^\s*tunnel_admin_(ssh_host|tunnel_url) [^;]*;\n//mg;
        return $conf;
    }
}
$t = PlainConf->new;
$t->start_all;
like($t->nginx_config, qr/tunnel_admin_ssh_port 22;/, 'second stack: port 22');
unlike($t->nginx_config, qr/tunnel_admin_(ssh_host|tunnel_url)/, '... no host, no URL');
$alice = $t->setup_admin('alice', 'alice password 1');
($cmd, $url) = command_of($alice->get('/'));
is($cmd, 'ssh -R alice:80:localhost:3000 alice@localhost',
   'port 22: no -p; the host of the request');
is($url, 'http://alice.localhost:' . $t->http_port . '/',
   'the URL follows the request\'s Host');
unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');
$t->stop_all;

done_testing;
