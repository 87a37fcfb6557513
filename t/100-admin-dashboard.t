#!/usr/bin/perl
# The live tunnels in the admin UI (/admin/tunnels, /tunnels, their JSON
# twins, Kick), with the whole stack and real ssh -R clients: the JSON's
# shape, sorting, filtering and paging (over fake routes in Redis), a user
# sees only their own tunnels and cannot kick another's (403, the tunnel
# stays), Kick's confirm step and its timing (route 404 through nginx and
# ssh client gone within 1 s of the POST's answer), CSRF / Origin /
# Sec-Fetch-Site refusals (logged), the start page's and the users page's
# live state, tunneld's API out of reach through nginx's public hosts, the
# `tunnel_admin_api` checks at load, and "live state unavailable" (not a
# 500) when tunneld is down.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;

watchdog(240);

my $t = NgxTunnel::AdminTest->new(tunneld => 1);
$t->start_all;
my $s = $t;
my $http = $t->port;
my $json = JSON::PP->new;

my $alice = $t->setup_admin('alice');
my $bob = $t->join_user($alice, 'bob');
my $carol = $t->join_user($alice, 'carol');
my $bob_key = new_user($s, 'bob', exists => 1);
my $carol_key = new_user($s, 'carol', exists => 1);
my $be = start_backend($s, 'dash');

my $ssh_bob = start_ssh($s, key => $bob_key->{key}, user => 'bob',
    remote => "bobapp:80:localhost:$be->{port}");
my $ssh_carol = start_ssh($s, key => $carol_key->{key}, user => 'carol',
    remote => "carolapp:80:localhost:$be->{port}");
ok(wait_route($s, $_, 10), "$_ up") for qw(bobapp carolapp);

sub get_json {
    my ($ua, $path) = @_;
    my $r = $ua->get($path);
    $r->{json} = eval { $json->decode($r->{content}) };
    return $r;
}

sub names { [ map { $_->{name} } @{ $_[0]{json}{tunnels} || [] } ] }

# --- the JSON twin ----------------------------------------------------------
my $r = get_json($alice, '/admin/tunnels.json');
is($r->{status}, 200, 'admin: /admin/tunnels.json 200');
is($r->{headers}{'content-type'}, 'application/json', '... JSON');
is($r->{headers}{'cache-control'}, 'no-store', '... never cached');
is_deeply(names($r), [qw(bobapp carolapp)], '... every live tunnel');
my $j = $r->{json} // {};
ok($j->{available} && !$j->{more}, 'available, nothing more');
is_deeply([ @$j{qw(count total page pages per_page sort dir)} ],
          [ 2, 2, 1, 1, 100, 'name', 'asc' ], 'count, paging, sort');
my ($bt) = grep { $_->{name} eq 'bobapp' } @{ $j->{tunnels} || [] };
$bt //= {};
is($bt->{user}, 'bob', 'user');
is($bt->{url}, "http://bobapp.localhost:$http", 'url');
like($bt->{client}, qr/^127\.0\.0\.1:\d+$/, 'client');
ok(length $bt->{node}, 'node');
ok(abs(($bt->{started_unix} // 0) - time) < 60, 'started_unix');
like($bt->{up}, qr/^\d+s$/, 'up for, human');
is($bt->{in}, '0 B', 'bytes in, human');
is($bt->{last}, 'never', 'no request yet');
is($bt->{requests}, 0, 'requests');

# counters rise with traffic (published within 2 s)
status_body($s, 'bobapp') for 1 .. 3;
my $t0 = time;
ok(wait_until(5, sub {
    my ($x) = grep { $_->{name} eq 'bobapp' }
        @{ get_json($alice, '/admin/tunnels.json')->{json}{tunnels} || [] };
    $bt = $x // {};
    ($bt->{requests} // 0) >= 3;
}), sprintf('requests seen on the dashboard after %.1f s', time - $t0));
like($bt->{in}, qr/^\d+(\.\d)? (B|KiB)$/, 'bytes in counted');
like($bt->{last}, qr/^\d+s ago$/, 'last request: seconds ago');

# sort, filter
is_deeply(names(get_json($alice, '/admin/tunnels.json?sort=user&dir=desc')),
          [qw(carolapp bobapp)], 'sort by user, descending');
is_deeply(names(get_json($alice, '/admin/tunnels.json?sort=requests&dir=desc')),
          [qw(bobapp carolapp)], 'sort by requests');
is_deeply(names(get_json($alice, '/admin/tunnels.json?q=CAROL')),
          ['carolapp'], 'filter: a substring of the user, any case');
is_deeply(names(get_json($alice, '/admin/tunnels.json?q=127.0.0')),
          [qw(bobapp carolapp)], 'filter: the client address');
is_deeply(names(get_json($alice, '/admin/tunnels.json?q=nosuch')), [],
          'filter: nothing matches');

# --- the page ------------------------------------------------------------------
$r = $alice->get('/admin/tunnels');
is($r->{status}, 200, 'admin: /admin/tunnels 200');
like($r->{content}, qr{<a class="mono" href="http://bobapp\.localhost:$http">bobapp</a>},
     'name links to its URL');
like($r->{content}, qr{<p id="live-count">2 live tunnels\.</p>}, 'summary');
like($r->{content}, qr{<a id="refresh" href="/admin/tunnels\?sort=name&amp;dir=asc">Refresh</a>},
     'a Refresh link (no JavaScript needed)');
like($r->{content}, qr{<script src="/static/tunnels\.js"></script>},
     'the live script');
like($r->{headers}{'content-security-policy'}, qr/script-src 'self'; connect-src 'self';/,
     'CSP: our script and its polling only');
like($r->{content}, qr{<th class="num"><a href="/admin/tunnels\?sort=requests&amp;dir=desc">Requests</a></th>},
     'sortable columns');
is(() = $r->{content} =~ /<button class="danger" type="submit">Kick<\/button>/g, 2,
   'a Kick button per row');
like($r->{content}, qr{<td class="num" data-label="Requests" data-col="requests">[3-9]</td>},
     'the request count');
$r = $alice->get('/admin/tunnels?q=%3Cb%3E');
like($r->{content}, qr{value="&lt;b&gt;"}, 'the filter is escaped');
my $js = $t->ua->get('/static/tunnels.js');
is($js->{status}, 200, '/static/tunnels.js');
like($js->{headers}{'content-type'}, qr{^text/javascript}, '... JavaScript');
like($js->{content}, qr/setTimeout\(poll, 1000\)/, '... polls every second');
unlike($js->{content}, qr/innerHTML/, '... never innerHTML');

# --- a user: only their own -------------------------------------------------------
$r = get_json($bob, '/tunnels.json');
is($r->{status}, 200, 'bob: /tunnels.json 200');
is_deeply(names($r), ['bobapp'], 'bob sees only his tunnel');
$r = $bob->get('/tunnels');
is($r->{status}, 200, 'bob: /tunnels');
like($r->{content}, qr/bobapp/, '... his tunnel');
unlike($r->{content}, qr/carolapp/, "... never carol's");
unlike(get_json($bob, '/tunnels.json?q=carol')->{content}, qr/carolapp/,
       "a filter cannot reach carol's");
is($bob->get('/admin/tunnels')->{status}, 403, 'bob: /admin/tunnels 403');
is($bob->get('/admin/tunnels.json')->{status}, 403, '... and its JSON');
is($t->ua->get('/tunnels.json')->{status}, 303, 'signed out: to /login');

# start page: own live tunnels, with URLs
$r = $carol->get('/');
like($r->{content}, qr{<strong class="mono">carolapp</strong> is up at <a class="mono" href="http://carolapp\.localhost:$http">},
     "carol's start page lists her tunnel and its URL");
unlike($r->{content}, qr/bobapp/, "... not bob's");

# users page: tunnels up from the live state
$r = $alice->get('/admin/users');
like($r->{content}, qr{<td>bob</td><td data-label="Keys">1</td><td data-label="Tunnels up">1</td>},
     'users page: bob has 1 tunnel up');

# --- kick: authorisation, CSRF ------------------------------------------------------
my $bob_csrf = csrf($bob->get('/tunnels'));
$r = $bob->post('/tunnels', { action => 'kick', name => 'carolapp',
                              confirm => 'yes', csrf => $bob_csrf });
is($r->{status}, 403, "bob cannot kick carol's tunnel");
like($r->{content}, qr/Not your tunnel/, '... says so');
ok(route_of($s, 'carolapp'), '... it stays up');
is($bob->post('/admin/tunnels', { action => 'kick', name => 'carolapp',
                                  confirm => 'yes', csrf => $bob_csrf })
       ->{status}, 403, '... nor through the admin page');

my $alice_csrf = csrf($alice->get('/admin/tunnels'));
my %kick = (action => 'kick', name => 'carolapp', confirm => 'yes');
$r = $alice->post('/admin/tunnels', { %kick });
is($r->{status}, 403, 'a kick without CSRF token: refused');
$r = $alice->post('/admin/tunnels', { %kick, csrf => 'x' x 64 });
is($r->{status}, 403, 'a kick with a wrong token: refused');
$r = $alice->post('/admin/tunnels', { %kick, csrf => $alice_csrf },
                  headers => { 'Sec-Fetch-Site' => 'same-site',
                               Origin => "http://evil.localhost:$http" });
is($r->{status}, 403, 'a kick posted from a tunnel page: refused');
$r = $alice->post('/admin/tunnels', { %kick, csrf => $alice_csrf },
                  headers => { Origin => "http://carolapp.localhost:$http" });
is($r->{status}, 403, '... also by its Origin alone');
ok(route_of($s, 'carolapp'), 'carolapp still up');

# the confirm step
$r = $alice->post('/admin/tunnels', { action => 'kick', name => 'bobapp',
                                      csrf => $alice_csrf },
                  headers => { Origin => "http://localhost:$http",
                               'Sec-Fetch-Site' => 'same-origin' });
is($r->{status}, 200, 'Kick asks first');
like($r->{content}, qr{<h1>Kick bobapp\?</h1>}, '... "Kick bobapp?"');
like($r->{content}, qr{name="confirm" value="yes"}, '... a confirm form');
like($r->{content}, qr{<input id="f-reason" name="reason"}, '... with a reason');
ok(route_of($s, 'bobapp'), '... nothing kicked yet');
$r = $alice->post('/admin/tunnels', { action => 'kick', name => 'bobapp',
                                      confirm => 'yes', reason => 'x' x 201,
                                      csrf => $alice_csrf });
is($r->{status}, 422, 'a reason over 200 characters: refused');
like($r->{content}, qr/at most 200 characters/, '... says so');

# the kick, timed
$t0 = time;
$r = $bob->post('/tunnels', { action => 'kick', name => 'bobapp',
                              confirm => 'yes', reason => 'too much traffic',
                              csrf => $bob_csrf });
my $t1 = time;
is($r->{status}, 303, 'bob kicks his own tunnel');
is($r->{headers}{location}, "http://localhost:$http/tunnels?done=kicked&name=bobapp",
   '... back to his tunnels');
my $code = http_get($s, 'bobapp', '/')->{status};
my $t404 = time;
is($code, 404, 'its URL answers 404 at once');
cmp_ok($t404 - $t1, '<', 1, sprintf('... %.3f s after the POST returned', $t404 - $t1));
ok(wait_until(2, sub { !$ssh_bob->alive }), 'the ssh client exits');
my $texit = time;
cmp_ok($texit - $t1, '<', 1, sprintf('... %.3f s after the POST returned (%.3f s after it was sent)',
                                     $texit - $t1, $texit - $t0));
$ssh_bob->finish(5);
like($ssh_bob->{err} // '', qr/Tunnel bobapp was closed by an administrator: too much traffic/,
     '... telling why');
$r = $bob->get('/tunnels?done=kicked&name=bobapp');
like($r->{content}, qr{Tunnel <strong>bobapp</strong> was kicked}, 'the page says it was kicked');
unlike($r->{content}, qr/data-name="bobapp"/, '... and it is gone from the table');
$r = $bob->post('/tunnels', { action => 'kick', name => 'bobapp',
                              confirm => 'yes', csrf => $bob_csrf });
is($r->{headers}{location}, "http://localhost:$http/tunnels?done=gone&name=bobapp",
   'kicking it again: no longer live');
like($t->error_log, qr/"bob" kicked tunnel "bobapp" of "bob"/, 'the kick is logged');
like($t->error_log, qr/refused a kick of tunnel "carolapp" by "bob"/,
     "the refused kick is logged");
like($t->error_log, qr/missing or wrong csrf token on "\/admin\/tunnels"/,
     'the refused token is logged');
like($t->error_log, qr/posted from another page than this site's/,
     'the refused origin is logged');
is_deeply(names(get_json($alice, '/admin/tunnels.json')), ['carolapp'],
          'the dashboard no longer lists it');

# --- paging, and more than 1000 (fake routes held by no node) ----------------------
my $now = int time;
$s->redis_cli('EVAL', <<'LUA', 0, $now);
for i = 1, 1005 do
    local name = string.format('ghost%04d', i)
    redis.call('HSET', 'tunnel:route:' .. name, 'socket', '/nonexistent',
               'user', 'ghost', 'user_id', '999', 'session', 'fake/1/1',
               'node', 'fake', 'started', ARGV[1], 'client', '10.0.0.1:1',
               'requests', tostring(i))
    redis.call('PEXPIRE', 'tunnel:route:' .. name, 60000)
    redis.call('ZADD', 'tunnel:index', 0, name)
end
return 1
LUA
$r = get_json($alice, '/admin/tunnels.json');
is($r->{json}{total}, 1000, 'at most 1000 tunnels per view');
ok($r->{json}{more}, '... and it says there are more');
is($r->{json}{pages}, 10, '10 pages of 100');
is(scalar @{ $r->{json}{tunnels} }, 100, '100 rows per page');
is(names(get_json($alice, '/admin/tunnels.json?page=2'))->[0], 'ghost0100',
   'page 2 starts at the 101st');
$r = $alice->get('/admin/tunnels?page=2');
like($r->{content}, qr{Showing 101-200 of 1000 live tunnels\.  More than 1000 tunnels are live},
     'the page says which rows and that there are more');
like($r->{content}, qr{<a rel="next" href="/admin/tunnels\?sort=name&amp;dir=asc&amp;page=3">Next page</a>},
     'a next page link');
is(names(get_json($alice, '/admin/tunnels.json?sort=requests&dir=desc'))->[0],
   'ghost0999', 'sort by requests over every row');
$s->redis_cli('EVAL', "for i = 1, 1005 do local n = string.format('ghost%04d', i) "
              . "redis.call('DEL', 'tunnel:route:' .. n) "
              . "redis.call('ZREM', 'tunnel:index', n) end return 1", 0);

# --- tunneld's API is out of reach from outside -------------------------------------
$r = $alice->get('/_tunneld/tunnels');
is($r->{status}, 404, 'admin host: /_tunneld/tunnels is 404');
unlike($r->{content}, qr/"tunnels"/, '... no API answer');
$r = http_get($s, 'carolapp', '/_tunneld/tunnels');
unlike($r->{body} // '', qr/"tunnels"\s*:/, 'tunnel host: goes to the tunnel, not the API');
$r = http_get($s, 'nosuch', '/_tunneld/tunnels');
is($r->{status}, 404, 'unknown tunnel host: the 404 page');
unlike($r->{body} // '', qr/"tunnels"\s*:/, '... not the API');

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the nginx error log');

# --- tunneld down: live state unavailable -------------------------------------------
$t->stop_tunneld;
$r = $alice->get('/admin/tunnels');
is($r->{status}, 503, 'tunneld down: /admin/tunnels 503, not 500');
like($r->{content}, qr/Live state unavailable/, '... says live state is unavailable');
$r = get_json($alice, '/admin/tunnels.json');
is($r->{status}, 503, '... its JSON 503');
is($r->{json}{available}, JSON::PP::false, '... available: false');
is($r->{json}{error}, 'live_state_unavailable', '... with an error code');
$r = $carol->get('/');
is($r->{status}, 200, 'the start page still works');
like($r->{content}, qr/Live state unavailable/, '... and says so');
like($alice->get('/admin/users')->{content}, qr/Tunnels up is unknown/,
     'users page: tunnels up unknown');
$r = $alice->post('/admin/tunnels', { action => 'kick', name => 'carolapp',
                                      confirm => 'yes', csrf => $alice_csrf });
is($r->{status}, 503, 'a kick: 503');
like($r->{content}, qr/nothing was kicked/, '... nothing kicked');
like($t->error_log, qr/\[warn\].*live state unavailable: tunneld's API did not answer/,
     'logged once per page as a warning');
my @errors = grep { /\[(alert|crit|emerg|error)\]/ } split /\n/, $t->error_log;
is(scalar(grep { !m{connect\(\) to unix:\S+/api\.sock failed} } @errors), 0,
   "the only errors are nginx's own connect() to the API socket")
    or diag(join "\n", @errors);

# --- the directive, at load -----------------------------------------------------------
my ($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
    'tunnel_admin_database "host=/tmp"; server { listen 127.0.0.1:2; '
    . 'location /_t/ { tunnel_admin_api; proxy_pass http://127.0.0.1:3/; } }');
isnt($rc, 0, 'tunnel_admin_api in a location that is not internal: refused');
like($out, qr/must be "internal"/, '... says why');
($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
    'tunnel_admin_database "host=/tmp"; server { listen 127.0.0.1:2; '
    . 'location = /_t { internal; tunnel_admin_api; } }');
isnt($rc, 0, '... in an exact location: refused');
like($out, qr/belongs in a plain prefix location/, '... says why');
($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
    'tunnel_admin_database "host=/tmp"; server { listen 127.0.0.1:2; '
    . 'location /_t/ { internal; tunnel_admin_api; proxy_pass http://127.0.0.1:3/; } '
    . 'location /_u/ { internal; tunnel_admin_api; } }');
isnt($rc, 0, '... twice: refused');
($rc, $out) = NgxTunnel::AdminTest::nginx_test_config(
    'tunnel_admin_database "host=/tmp"; server { listen 127.0.0.1:2; '
    . 'location /_t/ { internal; tunnel_admin_api; proxy_pass http://127.0.0.1:3/; } }');
is($rc, 0, 'an internal prefix location: accepted') or diag($out);

$t->stop_all;
done_testing;
