#!/usr/bin/perl

# What the person sees in the session channel (ssh without -N): the URL,
# how to stop, and one line per proxied request -- also for successive
# requests on one upstream connection that nginx keeps alive, which the
# line-per-connection logging used to miss.  Then a WebSocket (one line
# at close), a refused connection (502 line), and with -N the same lines
# in tunneld's debug log only.  The banner and the session text, exactly,
# in both modes, and with a user name that is not the key's owner.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(180);

my $s = start_stack(tunneld_args => ['--debug']);
my $port = $s->env->{HTTP_PORT};

my $dana = new_user($s, 'dana');
my $web = start_backend($s, 'web');


# --- the session: URL and how to stop ------------------------------------

my $ssh = start_ssh($s, key => $dana->{key}, user => 'dana', session => 1,
    remote => "logapp:80:localhost:$web->{port}");

ok($ssh->wait_for(qr{http://logapp\.localhost:$port\b}, 10),
    'session: the URL is printed')
    or diag($ssh->output, tail_log($s, 'tunneld'));
ok($ssh->wait_for(qr{Ctrl-C}, 5), 'session: says how to stop (Ctrl-C)')
    or diag($ssh->output);
ok(wait_route($s, 'logapp', 5), 'route registered');

# each thing said once, and only what applies (issue 8, point 4): the
# banner (sent before the server knows the mode) is true in both modes;
# the session text says what is up, without a second greeting
my @banner = (
    'ngx-tunnel: signed in as dana.',
    "  -R NAME:80:localhost:PORT serves your app at http://NAME.localhost:$port",
    '  -R 80:localhost:PORT gets a random name, printed when the tunnel is '
        . 'up (not with -N)',
);
sub text_lines { [grep { $_ ne '' } map { s/\r$//r } split /\n/, $_[0]] }
# stderr: the banner, without OpenSSH's own known-hosts warning
sub banner_lines { [grep { !/^Warning: Permanently added/ } @{ text_lines($_[0]) }] }
is_deeply(banner_lines($ssh->{err}), \@banner, 'session: the banner, exactly')
    or diag(explain(text_lines($ssh->{err})));
is_deeply(text_lines($ssh->{out}),
    ["Your tunnel is up: http://logapp.localhost:$port",
     'Press Ctrl-C to stop your tunnel.'],
    'session: the text, exactly: no "Welcome", no "without -N"')
    or diag(explain(text_lines($ssh->{out})));


# --- three requests on one kept-alive upstream connection -----------------

my $c = http_connect($port);
my %o = (conn => $c, port => $port, host => "logapp.localhost:$port");

my $r1 = http_request(%o, path => '/conn');
my $r2 = http_request(%o, method => 'POST', path => '/sha256',
    body => 'x' x 1000);
my $r3 = http_request(%o, path => '/bytes/5000');
close $c->{sock};

is("$r1->{status} $r2->{status} $r3->{status}", '200 200 200',
    'three requests through one client connection: 200 each');
my @conns = map { $_->{headers}{'x-conn'} // '?' } $r1, $r2, $r3;
ok($conns[0] ne '?' && $conns[0] eq $conns[1] && $conns[1] eq $conns[2],
    "the backend saw one connection for all three (X-Conn @conns): "
    . 'nginx kept the upstream connection alive');

my $n1 = length $r1->{body};
my @want = (
    qr{^GET /conn 200 $n1 B \d+ ms\r?$}m,
    qr{^POST /sha256 200 64 B \d+ ms\r?$}m,
    qr{^GET /bytes/5000 200 4\.9 KB \d+ ms\r?$}m,
);

ok($ssh->wait_for($want[2], 5), 'the third request has its line')
    or diag($ssh->output, tail_log($s, 'tunneld'));

my $out = $ssh->output;
for my $i (0 .. 2) {
    my @m = $out =~ /$want[$i]/g;
    is(scalar @m, 1, "request " . ($i + 1) . ": exactly one line $want[$i]");
}
my @req_lines = $out =~ m{^((?:GET|POST|HEAD) /\S* .*?)\r?$}mg;
is(scalar @req_lines, 3, 'three requests, three lines')
    or diag(join "\n", @req_lines);
my @order = map { (split / /)[1] } @req_lines;
is("@order", '/conn /sha256 /bytes/5000', 'lines in request order');


# --- HEAD and a 404 on a new connection ----------------------------------

my $rh = http_get($s, 'logapp', '/bytes/100', method => 'HEAD');
my $rn = http_get($s, 'logapp', '/nothing-here');
is("$rh->{status} $rn->{status}", '200 404', 'HEAD 200, GET 404');
ok($ssh->wait_for(qr{^HEAD /bytes/100 200 0 B \d+ ms\r?$}m, 5),
    'HEAD: a line with no body bytes') or diag($ssh->output);
ok($ssh->wait_for(qr{^GET /nothing-here 404 \d+ B \d+ ms\r?$}m, 5),
    '404: a line with its status') or diag($ssh->output);


# --- a WebSocket: one line when it closes --------------------------------

my $ws = ws_handshake($s, 'logapp', '/ws');
is($ws->{status}, 101, 'websocket: 101');
ws_send($ws->{conn}, 0x1, 'hello');
my @f = ws_recv($ws->{conn}, 5);
is($f[2], 'hello', 'websocket: echo');
unlike($ssh->output, qr{^GET /ws }m, 'websocket: no line while open');
ws_send($ws->{conn}, 0x8, pack('n', 1000));
@f = ws_recv($ws->{conn}, 5);
close $ws->{conn}{sock};
my $ws_line = 'GET /ws 101 websocket, \d+ B to your app, \d+ B from it, '
    . '\d+ ms';
ok($ssh->wait_for(qr{^$ws_line\r?$}m, 10), 'websocket: one line at close')
    or diag($ssh->output);


# --- the local app refuses: a 502 line that says what to do --------------

stop_backend($web);
my $r = http_get($s, 'logapp', '/down');
is($r->{status}, 502, 'local app down: 502');
ok($ssh->wait_for(qr{^GET /down -> 502: your local app refused}m, 5),
    'local app down: the line says so') or diag($ssh->output);


# --- with -N: no session channel, lines in tunneld's debug log ------------

my $web2 = start_backend($s, 'quiet');
my $quiet = start_ssh($s, key => $dana->{key}, user => 'dana',
    remote => "logquiet:80:localhost:$web2->{port}");
ok(wait_route($s, 'logquiet', 10), '-N: route registered')
    or diag($quiet->output, tail_log($s, 'tunneld'));
$c = http_connect($port);
%o = (conn => $c, port => $port, host => "logquiet.localhost:$port");
http_request(%o, path => "/?q$_") for 1 .. 3;
close $c->{sock};
my $lines = wait_until(5, sub {
    my @l = grep { m{tunnel logquiet: done GET /\?q\d 200 } }
        log_lines($s->log_path('tunneld'));
    return @l == 3 ? \@l : undef;
});
ok($lines, '-N: one debug line per request in the tunneld log')
    or diag(tail_log($s, 'tunneld'));

# -N shows only the auth banner: who signed in and where tunnels appear,
# the same lines as with a session
$quiet->wait_for(qr/random name/, 5);
is_deeply(banner_lines($quiet->{err}), \@banner, '-N: the banner, exactly')
    or diag(explain(text_lines($quiet->{err})));
is($quiet->{out}, '', '-N: nothing else');

# the key decides who signs in; a user name that is not the key's owner
# is not used, and the banner says so once (issue 8, point 10)
my $other = start_ssh($s, key => $dana->{key}, user => 'root', session => 1,
    remote => "logother:80:localhost:$web2->{port}");
ok($other->wait_for(qr/Press Ctrl-C/, 10), 'ssh root@: the tunnel is up')
    or diag($other->output);
is_deeply(banner_lines($other->{err}), [
    'ngx-tunnel: signed in as dana (by your key; the user name "root" that '
        . 'ssh sent is not used).',
    @banner[1 .. $#banner],
], 'ssh root@ with dana\'s key: signed in as dana, "root" named once')
    or diag(explain(text_lines($other->{err})));
is((wait_route($s, 'logother', 5) // {})->{user}, 'dana',
    'ssh root@: the route belongs to dana');
$other->stop;

diag("session output:\n" . $ssh->output) if $ENV{TEST_VERBOSE};
$quiet->stop;
$ssh->stop;

# the refused connection: nginx logs why it answered 502
check_logs($s, allow_nginx => [
    qr/upstream prematurely closed connection.*"GET \/down /,
    qr/recv\(\) failed \(104: Connection reset by peer\).*"GET \/down /,
]);

$s->stop_all;
done_testing;
