#!/usr/bin/perl
# Admin UI /activate and /admin/activations, the web side of the device
# flow (issue 10): a signed-out visitor of /activate?code=... comes back to
# it after signing in, code kept; a code is looked up case-insensitively,
# dash optional, and the page shows exactly what is being approved (key
# type and fingerprint, client address, tunnel name, made, expires) with
# the RFC 8628 5.4 warning; Approve adds the key to the approver's keys
# (comment "activated DATE from IP") and /keys shows it; Deny; expired,
# unknown, reused and meanwhile-registered codes each get their sentence;
# a POST without the CSRF token is refused; wrong codes are limited per
# address and per web session (429 "Too many attempts: wait N s", no
# lookup); administrators list pending codes and deny them, other users
# cannot.  Codes are created the way tunneld creates them, with
# tunnel_activation_create() of sql/005_activation.sql, for real keys.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(sha256_hex);
use POSIX qw(strftime);
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;
plan skip_all => 'ssh-keygen missing' unless `which ssh-keygen` =~ /\S/;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $alice = $t->setup_admin;                  # administrator
my $bob = $t->join_user($alice, 'bob');       # user
my $carol = $t->join_user($alice, 'carol');   # user
my $kd = $t->dir . '/keys';
mkdir $kd;

# a real key: { type, b64, fp, line }
my $serial = 0;
sub make_key {
    my ($name) = @_;
    $serial++;
    my $f = "$kd/$name-$serial";
    system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', "$name\@t",
           '-f', $f) == 0 or die "ssh-keygen failed";
    open my $fh, '<', "$f.pub" or die;
    chomp(my $line = <$fh>);
    my ($type, $b64) = split ' ', $line;
    my ($fp) = `ssh-keygen -lf $f.pub` =~ /(SHA256:\S+)/ or die;
    return { type => $type, b64 => $b64, fp => $fp, line => $line };
}

# a pending code for $key, as tunneld makes it; returns its row id
my $device = 0;
sub make_code {
    my ($letters, $key, %o) = @_;
    $device++;
    my $client = $o{client} // '127.0.0.1:5555';
    my $secs = $o{seconds} // 600;
    my $out = $t->sql(
        "SELECT r_status || ' ' || coalesce(r_id::text, '-') FROM "
        . "tunnel_activation_create(sha256(convert_to('$letters', 'UTF8')), "
        . "sha256(convert_to('dev-$device', 'UTF8')), '$key->{fp}', "
        . "'$key->{type}', '$key->{b64}', '$client', 'node', 'session', "
        . "$secs, 100, 1000)");
    my ($status, $id) = split ' ', $out;
    die "tunnel_activation_create: $out" unless $status eq 'ok';
    return $id;
}

# sessions.id of a signed-in UA
sub session_id {
    my ($ua) = @_;
    my $token = $ua->cookie('__Host-tunnel_session') // die 'not signed in';
    return $t->sql("SELECT id FROM sessions WHERE token_hash = '\\x"
                   . sha256_hex($token) . "'::bytea");
}

# one regex from pieces
sub re { my $s = join '', @_; return qr/$s/ }

# a redirect's target, without nginx's scheme://host:port
sub loc {
    my ($r) = @_;
    my $l = $r->{headers}{location} // '';
    $l =~ s{^http://localhost:\d+}{};
    return $l;
}

sub failures { $t->sql('SELECT count(*) FROM activation_failures') }

sub decide {
    my ($ua, $code, $action, %o) = @_;
    my $page = $ua->get('/activate');
    my %form = (action => $action, code => $code);
    $form{csrf} = csrf($page) unless $o{nocsrf};
    return $ua->post('/activate', \%form);
}

sub text_of {
    my ($html, $id) = @_;
    return $html =~ m{id="\Q$id\E">(.*?)</(?:td|span|p)>}s ? $1 : undef;
}

my $today = strftime('%Y-%m-%d', gmtime);


# --- sign-in comes back with the code -------------------------------------
my $anon = $t->ua;
my $r = $anon->get('/activate?code=bcdf-ghjk');
is($r->{status}, 303, 'signed out: /activate?code= redirects');
is(loc($r), '/login?next=/activate%3Fcode%3Dbcdf-ghjk',
   '... to /login, the page and its code in next=');
$r = $anon->get(loc($r));
is($r->{status}, 200, 'the sign-in page');
like($r->{content},
     qr{<input type="hidden" name="next" value="/activate\?code=bcdf-ghjk">},
     '... carries next in the form');
$r = $anon->post('/login', { name => 'bob', password => 'wrong password',
                             next => '/activate?code=bcdf-ghjk',
                             csrf => csrf($r) });
is($r->{status}, 403, 'a wrong password');
like($r->{content}, qr{name="next" value="/activate\?code=bcdf-ghjk"},
     '... keeps next in the form sent back');
$r = $anon->post('/login', { name => 'bob', password => 'password of bob',
                             next => '/activate?code=bcdf-ghjk',
                             csrf => csrf($r) });
is($r->{status}, 303, 'signed in');
is(loc($r), '/activate?code=bcdf-ghjk',
   '... back to /activate with the code');
$r = $anon->get('/login?next=%2Factivate%3Fcode%3DBCDF-GHJK');
is($r->{status}, 303, 'signed in already: /login?next= goes on');
is(loc($r), '/activate?code=BCDF-GHJK', '... to the page');

for my $bad ('//evil.example/activate', 'http://evil.example/',
             '/setup', '/tunnels.json', '/activate/../keys', '/activatex',
             '/keysx', '/names/../setup',
             "/activate?code=a\"b", '/activate?code=%2F%2Fx',
             '/activate?code=x y') {
    my $ua = $t->ua;
    my $page = $ua->get('/login');
    $r = $ua->post('/login', { name => 'carol', password => 'password of carol',
                               next => $bad, csrf => csrf($page) });
    is(loc($r), '/?done=signed-in',
       "next \"$bad\" is not followed");
}
$r = $t->ua->get('/login?next=' . '%2Fsetup');
unlike($r->{content}, qr/name="next"/, 'a next that is not a return path '
       . 'is not put in the form');
$r = $t->ua->get('/keys');
is(loc($r), '/login?next=/keys', 'the other pages of the navigation come '
   . 'back too');
$r = $t->ua->get('/activate?code=%22%3E%3Cscript%3E');
is(loc($r), '/login', 'odd characters in the query: plain '
   . '/login');


# --- the form and the navigation ------------------------------------------
$r = $bob->get('/activate');
is($r->{status}, 200, '/activate without a code: the form');
like($r->{content}, qr{<form method="get" action="/activate">}, '... a GET '
     . 'form');
like($r->{content}, qr{<input id="f-code" name="code" type="text"[^>]*>},
     '... with the code field');
unlike($r->{content}, qr{/admin/activations}, '... no admin link for a user');
like($r->{content}, qr{<a href="/activate">Activate</a>},
     'the navigation links to /activate');
like($alice->get('/activate')->{content},
     qr{<a href="/admin/activations">pending codes</a>},
     'administrators get a link to the pending codes');


# --- lookup ---------------------------------------------------------------
my $k1 = make_key('laptop');
my $id1 = make_code('BCDFGHJK', $k1);
is(failures(), 0, 'no failure counted yet');

for my $q ('BCDF-GHJK', 'bcdf-ghjk', 'bcdfghjk', 'bcdf+ghjk', 'BCDF%20GHJK',
           'b-c-d-f-g-h-j-k', '%20bcdf-GHJK%20') {
    $r = $bob->get("/activate?code=$q");
    is($r->{status}, 200, "code \"$q\" is found");
    is(text_of($r->{content}, 'act-code'), 'BCDF-GHJK', '... shown as '
       . 'BCDF-GHJK');
}

my $page = $r->{content};
is(text_of($page, 'act-type'), 'ssh-ed25519', 'key type shown');
is(text_of($page, 'act-fingerprint'), $k1->{fp},
   'fingerprint shown, as ssh-keygen -lf prints it');
is(text_of($page, 'act-client'), '127.0.0.1:5555', 'client address shown');
like($page, qr{id="act-name"><span class="muted">sent after approval</span>},
     'no tunnel name yet: "sent after approval"');
like(text_of($page, 'act-created'),
     qr/^\Q$today\E \d\d:\d\d:\d\d UTC \(\d+ s ago\)$/,
     'when the code was made, in UTC, and how long ago');
like(text_of($page, 'act-expires'),
     qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 10 min\)$/,
     'when it expires, and in how long');
is(text_of($page, 'act-warning'),
   'Only approve a code you just saw in your own terminal, printed by an '
   . 'ssh command you started yourself.  Someone who sent you this code or '
   . 'a link to it, or asked you to type it here, would get access as you: '
   . 'their key would open tunnels in your name.',
   'the RFC 8628 5.4 warning (phishing: a code or link someone sent)');
is(text_of($page, 'act-browser'), '127.0.0.1',
   "this browser's address, beside the ssh command's");
unlike($page, qr/id="act-elsewhere"/,
       '... same host as the ssh command: no note');
like($page, re(qr{<form method="post" action="/activate"><input type="hidden" },
              qr{name="code" value="BCDF-GHJK"><input type="hidden" },
              qr{name="csrf" value="[0-9a-f]{64}">}),
     'Approve/Deny form: the code and the CSRF token');
like($page, qr{<button type="submit" name="action" value="approve">},
     '... an Approve button');
like($page, re(qr{<button class="danger" type="submit" name="action" },
              qr{value="deny">Deny</button>}), '... a Deny button');

$t->sql("UPDATE activation_codes SET requested_name = 'myapp' "
        . "WHERE id = $id1");
like($bob->get('/activate?code=BCDFGHJK')->{content},
     qr{id="act-name"><span class="mono">myapp</span>},
     'a requested tunnel name is shown');
$t->sql("UPDATE activation_codes SET requested_name = NULL WHERE id = $id1");

$r = $bob->get('/activate?code=ABCD-EFGH');
is($r->{status}, 422, 'a code with vowels: 422');
like($r->{content}, qr/A code has letters only, and no vowels/,
     '... says which letters');
like($r->{content}, qr/name="code" type="text"[^>]*value="ABCD-EFGH"/,
     '... and keeps what was typed');
$r = $bob->get('/activate?code=BCDF-GHJ');
is($r->{status}, 422, '7 letters: 422');
like($r->{content}, qr/this is too short/, '... too short');
$r = $bob->get('/activate?code=%3Cb%3E');
unlike($r->{content}, qr/<b>/, 'typed text is escaped');
is(failures(), 0, 'malformed codes are not counted as guesses');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE fingerprint = "
           . "'$k1->{fp}'"), 0, 'looking up changed nothing');


# --- approve ----------------------------------------------------------------
$r = decide($bob, 'bcdf-ghjk', 'approve', nocsrf => 1);
is($r->{status}, 403, 'Approve without the CSRF token: refused');
like($r->{content}, qr/This form has expired/, '... as every form');
$r = $bob->post('/activate', { action => 'approve', code => 'BCDF-GHJK',
                               csrf => 'a' x 64 });
is($r->{status}, 403, 'with a wrong CSRF token: refused');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE fingerprint = "
           . "'$k1->{fp}'"), 0, '... no key added');
is($t->sql("SELECT approved_at IS NULL FROM activation_codes "
           . "WHERE id = $id1"), 't', '... the code still pending');

$r = decide($bob, 'bcdf-ghjk', 'approve');
is($r->{status}, 200, 'Approve');
like($r->{content}, qr{<h1>Approved</h1>}, '... the result page');
like($r->{content}, re(qr/Approved: the key \Q$k1->{fp}\E is now yours; your /,
                      qr/ssh session continues\./), '... says so');
like($r->{content}, qr{<a href="/keys">See your SSH keys</a>},
     '... with a link to /keys');
is($t->sql("SELECT u.name || '|' || k.key_type || '|' || k.key_base64 "
           . "|| '|' || k.comment FROM ssh_keys k JOIN users u "
           . "ON u.id = k.user_id WHERE k.fingerprint = '$k1->{fp}'"),
   "bob|ssh-ed25519|$k1->{b64}|activated $today from 127.0.0.1",
   'the key is bob\'s now, the comment says when and from where');
is($t->sql("SELECT u.name || ' ' || c.approved_addr FROM activation_codes c "
           . "JOIN users u ON u.id = c.approved_by WHERE c.id = $id1"),
   'bob 127.0.0.1', 'the code records who approved it, from where');
$page = $bob->get('/keys')->{content};
like($page, qr/\Q$k1->{fp}\E/, '/keys shows the key');
like($page, qr/activated \Q$today\E from 127\.0\.0\.1/, '... with its comment');
unlike($alice->get('/keys')->{content}, qr/\Q$k1->{fp}\E/,
       'not on the other users\' /keys');
is($t->sql("SELECT actor_name || '|' || user_name || '|' || client_addr "
           . "|| '|' || detail FROM tunnel_events WHERE event = "
           . "'key_activated'"),
   "bob|bob|127.0.0.1|ssh-ed25519 $k1->{fp} from 127.0.0.1:5555",
   'the audit log has the approval: who, for whom, from where, which key');


# --- reused -----------------------------------------------------------------
$r = decide($bob, 'BCDF-GHJK', 'approve');
is($r->{status}, 409, 'the same code again: 409');
like($r->{content}, re(qr/The code BCDF-GHJK was already approved or /,
                      qr/denied: a code works once\./), '... "already"');
$r = decide($carol, 'BCDF-GHJK', 'deny');
is($r->{status}, 409, 'denying a used code: 409 too');
$r = $carol->get('/activate?code=BCDF-GHJK');
is($r->{status}, 410, 'looking a used code up: 410');
like($r->{content}, qr/This code was already used/, '... "already used"');
unlike($r->{content}, qr/\Q$k1->{fp}\E/, '... without its key');
is(failures(), 0, 'used codes are not counted as guesses');


# ssh on 127.0.0.1 or ::1, the browser on the other: one machine, no note
{
    my $kl = make_key('loop');
    my $idl = make_code('LMNPQRST', $kl, client => '[::1]:40001');
    my $page = $bob->get('/activate?code=lmnp-qrst')->{content};
    is(text_of($page, 'act-client'), '[::1]:40001', 'ssh from ::1');
    unlike($page, qr/id="act-elsewhere"/,
           '... and the browser on another loopback address: no note');
    $t->sql("DELETE FROM activation_codes WHERE id = $idl");
}


# --- deny -------------------------------------------------------------------
my $k2 = make_key('pi');
my $id2 = make_code('CDFGHJKL', $k2, client => '[2001:db8::7]:40000');
$r = $bob->get('/activate?code=cdfg-hjkl');
is(text_of($r->{content}, 'act-client'), '[2001:db8::7]:40000',
   'an IPv6 client address');
like($r->{content}, re(qr{id="act-elsewhere">not where the ssh command },
                       qr{connected from: expected if you ran it on },
                       qr{another machine of yours \(a server\), a reason },
                       qr{to Deny if you did not</span>}),
     'a code requested from another host than this browser: a note says '
     . 'what that means');
$r = decide($bob, 'cdfg-hjkl', 'deny');
is($r->{status}, 200, 'Deny');
like($r->{content}, qr{<h1>Denied</h1>}, '... the result page');
like($r->{content}, re(qr/Denied: the key \Q$k2->{fp}\E was not added, /,
                      qr/and the ssh command waiting with code CDFG-HJKL /,
                      qr/stops\./),
     '... says so');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE fingerprint = "
           . "'$k2->{fp}'"), 0, 'no key added');
is($t->sql("SELECT u.name || ' ' || c.denied_addr FROM activation_codes c "
           . "JOIN users u ON u.id = c.denied_by WHERE c.id = $id2"),
   'bob 127.0.0.1', 'the code records who denied it, from where');
is($t->sql("SELECT actor_name || '|' || client_addr || '|' || detail FROM "
           . "tunnel_events WHERE event = 'activation_denied'"),
   "bob|127.0.0.1|$k2->{type} $k2->{fp} from [2001:db8::7]:40000",
   'the audit log has the denial');
is(decide($bob, 'cdfg-hjkl', 'approve')->{status}, 409,
   'a denied code cannot be approved afterwards');


# --- expired ----------------------------------------------------------------
my $k3 = make_key('ci');
my $id3 = make_code('DFGHJKLM', $k3);
$t->sql("UPDATE activation_codes SET expires_at = now() - interval '1 s' "
        . "WHERE id = $id3");
$r = $bob->get('/activate?code=DFGH-JKLM');
is($r->{status}, 410, 'an expired code: 410');
like($r->{content}, qr/The code DFGH-JKLM has expired: nothing was changed\./,
     '... says so');
$r = decide($bob, 'DFGH-JKLM', 'approve');
is($r->{status}, 410, 'approving an expired code: 410');
like($r->{content}, qr/<h1>This code has expired<\/h1>/, '... says so');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE fingerprint = "
           . "'$k3->{fp}'"), 0, '... no key added');


# --- unknown ----------------------------------------------------------------
$r = $bob->get('/activate?code=ZZZZ-ZZZZ');
is($r->{status}, 404, 'an unknown code: 404');
like($r->{content}, qr/No machine is waiting with this code\./,
     '... says so');
like($r->{content}, qr/name="code" type="text"[^>]*value="ZZZZ-ZZZZ"/,
     '... the form, with the code to correct');
is(failures(), 1, '... counted as a wrong code');
is($t->sql("SELECT client_addr || ' ' || session_id FROM "
           . "activation_failures"), '127.0.0.1 ' . session_id($bob),
   '... for the address and the web session');
for my $site (qw(same-site cross-site)) {
    $r = $bob->get('/activate?code=ZZZZ-ZZZZ',
                   headers => { 'Sec-Fetch-Site' => $site });
    is($r->{status}, 200, "a lookup a page elsewhere ($site) asked for: "
       . 'the form only');
    like($r->{content}, qr/name="code" type="text"[^>]*value="ZZZZ-ZZZZ"/,
         '... filled in, one click away');
    unlike($r->{content}, qr/No machine is waiting/, '... not looked up');
    is(failures(), 1, '... and not counted (no lock-out from a tunnel page)');
}
$r = $bob->get('/activate?code=ZZZZ-ZZZZ',
               headers => { 'Sec-Fetch-Site' => 'none' });
is($r->{status}, 404, 'opened from outside the browser: looked up');
$r = decide($bob, 'ZZZZ-ZZZZ', 'approve');
is($r->{status}, 404, 'approving an unknown code: 404');
is(failures(), 3, '... counted too');
$r = decide($bob, 'ZZZZ-ZZZZ', 'frobnicate');
is($r->{status}, 422, 'an unknown action: 422');
$r = decide($bob, 'AEIOU', 'approve');
is($r->{status}, 422, 'approving a malformed code: 422');
is(failures(), 3, '... not counted');


# --- key registered meanwhile ------------------------------------------------
my $k4 = make_key('shared');
my $id4 = make_code('FGHJKLMN', $k4);
my $kp = $alice->get('/keys');
$r = $alice->post('/keys', { action => 'add', key => $k4->{line},
                             csrf => csrf($kp) });
is($r->{status}, 303, 'alice registers the same key on /keys meanwhile');
$r = decide($bob, 'FGHJ-KLMN', 'approve');
is($r->{status}, 409, 'approving it: 409');
like($r->{content}, re(qr/The key \Q$k4->{fp}\E was registered to another /,
                      qr/account meanwhile/), '... "belongs to someone else"');
is($t->sql("SELECT u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id "
           . "WHERE k.fingerprint = '$k4->{fp}'"), 'alice',
   '... the key stays alice\'s');
is($t->sql("SELECT approved_at IS NULL AND denied_at IS NULL FROM "
           . "activation_codes WHERE id = $id4"), 't',
   '... the code is left pending');


# --- administrators: pending codes ---------------------------------------
$t->sql("DELETE FROM activation_failures");
my $k5 = make_key('rpi');
my $id5 = make_code('GHJKLMNP', $k5, client => '198.51.100.9:2222');
$r = $bob->get('/admin/activations');
is($r->{status}, 403, 'a user cannot list pending codes');
unlike($r->{content}, qr/\Q$k5->{fp}\E/, '... sees no fingerprint');
$r = $bob->post('/admin/activations', { action => 'deny', id => $id5,
                                        csrf => csrf($bob->get('/keys')) });
is($r->{status}, 403, '... nor deny one');
unlike($bob->get('/activate')->{content}, qr/\Q$k5->{fp}\E/,
       '/activate does not list codes for users');
is($t->ua->get('/admin/activations')->{status}, 303,
   'signed out: to /login');

$r = $alice->get('/admin/activations');
is($r->{status}, 200, 'an administrator lists pending codes');
$page = $r->{content};
like($page, re(qr{<td data-label="Id">$id5</td><td><span class="tag">},
              qr{ssh-ed25519</span> <span class="mono">\Q$k5->{fp}\E</span>},
              qr{</td><td class="date" data-label="Client">198\.51\.100\.9:},
              qr{2222</td><td class="opt date">\d\d:\d\d UTC</td>},
              qr{<td class="date" data-label="Expires" },
              qr{title="[\d: -]{19} UTC">in 10 min</td>}),
     '... id, key, client, created and expiry of each');
like($page, qr/\Q$k4->{fp}\E/, '... all of them');
unlike($page, qr/\Q$k1->{fp}\E|\Q$k2->{fp}\E|\Q$k3->{fp}\E/,
       '... but not the used, denied or expired ones');
like($page, re(qr{<form method="post" action="/admin/activations"><input },
              qr{type="hidden" name="action" value="deny"><input },
              qr{type="hidden" name="id" value="$id5"><input },
              qr{type="hidden" name="csrf" value="[0-9a-f]{64}">\n},
              qr{<button class="danger" type="submit">Deny</button>}),
     '... each with a Deny button (POST, CSRF)');

$r = $alice->post('/admin/activations', { action => 'deny', id => $id5 });
is($r->{status}, 403, 'Deny without the CSRF token: refused');
$r = $alice->post('/admin/activations', { action => 'deny', id => $id5,
                                          csrf => csrf($page) });
is($r->{status}, 303, 'the administrator denies a code');
is(loc($r), '/admin/activations?done=denied',
   '... back to the list');
is($t->sql("SELECT u.name || ' ' || c.denied_addr FROM activation_codes c "
           . "JOIN users u ON u.id = c.denied_by WHERE c.id = $id5"),
   'alice 127.0.0.1', '... denied by alice');
$r = $alice->get('/admin/activations?done=denied');
like($r->{content}, qr/The code was denied/, '... which the list says');
unlike($r->{content}, qr/\Q$k5->{fp}\E/, '... and the code is gone from it');
$r = $alice->post('/admin/activations', { action => 'deny', id => $id5,
                                          csrf => csrf($page) });
is($r->{status}, 422, 'denying it again: 422');
like($r->{content}, qr/This code is not pending any more/, '... says so');
$r = $alice->post('/admin/activations', { action => 'deny', id => '999999',
                                          csrf => csrf($page) });
is($r->{status}, 422, 'an unknown id: 422');
$r = $alice->post('/admin/activations', { action => 'deny', id => '1 OR 1=1',
                                          csrf => csrf($page) });
is($r->{status}, 422, 'an odd id: 422');
is(failures(), 0, 'the administrator list counts no guesses');

$t->sql("UPDATE activation_codes SET denied_at = now() WHERE id = $id4");
$r = $alice->get('/admin/activations');
like($r->{content}, qr{id="act-none">No code is pending\.},
     'no pending code: says so');


# --- the wrong-code limit ---------------------------------------------------
my $k6 = make_key('guessed');
my $id6 = make_code('HJKLMNPQ', $k6);
$t->sql("DELETE FROM activation_failures");
my @seen;
for my $i (1 .. 6) {
    push @seen, $carol->get(sprintf('/activate?code=ZZZZ-ZZZ%s',
                                    (qw(B C D F G H))[$i - 1]))->{status};
}
is("@seen", '404 404 404 404 404 404',
   'six wrong codes within a minute: each "unknown"');
$r = $carol->get('/activate?code=ZZZZ-ZZZJ');
is($r->{status}, 429, 'the seventh: 429');
like($r->{content}, qr/Too many attempts: wait (\d+) s/, '... "wait N s"');
my ($wait) = $r->{content} =~ /wait (\d+) s/;
ok(defined $wait && $wait >= 1 && $wait <= 60, "... N is within the minute "
   . "(" . ($wait // 'none') . ")");
is($r->{headers}{'retry-after'}, $wait, '... Retry-After says the same');
is(failures(), 6, '... and is not counted again');
$r = $carol->get('/activate?code=HJKL-MNPQ');
is($r->{status}, 429, 'even a right code is not looked up meanwhile');
unlike($r->{content}, qr/\Q$k6->{fp}\E/, '... its key is not shown');
$r = decide($carol, 'HJKL-MNPQ', 'approve');
is($r->{status}, 429, 'nor approved');
is($t->sql("SELECT approved_at IS NULL FROM activation_codes "
           . "WHERE id = $id6"), 't', '... it stays pending');
is($bob->get('/activate?code=HJKL-MNPQ')->{status}, 429,
   'another session from the same address: limited too (by address)');
is($carol->get('/activate')->{status}, 200, 'the form itself still opens');

# by web session alone: the failures came from elsewhere
$t->sql("DELETE FROM activation_failures");
my $carol_session = session_id($carol);
$t->sql("INSERT INTO activation_failures (client_addr, session_id) "
        . "SELECT '192.0.2.1', $carol_session FROM generate_series(1, 6)");
is($carol->get('/activate?code=HJKL-MNPQ')->{status}, 429,
   'six wrong codes of this web session from another address: 429');
is($bob->get('/activate?code=HJKL-MNPQ')->{status}, 200,
   '... other sessions are not limited by it');
$t->sql("UPDATE activation_failures SET at = now() - interval '61 s'");
is($carol->get('/activate?code=HJKL-MNPQ')->{status}, 200,
   'a minute later the session may try again');


# the cap per address (p_max_per_addr) counts an IPv6 client by its /64:
# one host holds a whole /64, and counting full addresses let it take
# every pending slot (sql/009_activation_ipv6_bucket.sql)
{
    my $try = sub {
        my ($client) = @_;
        my $k = make_key('bucket');
        $device++;
        return $t->sql(
            "SELECT r_status FROM tunnel_activation_create("
            . "sha256(convert_to('bucket-$device', 'UTF8')), "
            . "sha256(convert_to('bucket-dev-$device', 'UTF8')), "
            . "'$k->{fp}', '$k->{type}', '$k->{b64}', '$client', 'node', "
            . "'session', 600, 2, 1000)");
    };
    is($try->('[2001:db8:7:1::a]:4000'), 'ok', 'IPv6 /64: first code');
    is($try->('[2001:db8:7:1::b]:4001'), 'ok',
       '... a second from another address of the same /64');
    is($try->('[2001:db8:7:1:ffff::c]:4002'), 'addr_limit',
       '... a third from that /64 is refused, whatever the address');
    is($try->('[2001:db8:7:2::a]:4003'), 'ok', '... the next /64 is not');
    is($try->('192.0.2.77:4004'), 'ok', 'IPv4: counted per address');
    is($try->('192.0.2.77:4005'), 'ok', '... twice');
    is($try->('192.0.2.77:4006'), 'addr_limit', '... then refused');
    is($try->('192.0.2.78:4007'), 'ok', '... its neighbour is not');
    is($t->sql("SELECT tunnel_addr_bucket('[::ffff:192.0.2.9]:1') || ' ' "
               . "|| tunnel_addr_bucket('[2001:db8::1]:1') || ' ' "
               . "|| tunnel_addr_bucket('junk')"),
       '::ffff:192.0.2.9 2001:db8::/64 junk',
       'buckets: IPv4 in IPv6 per address, IPv6 per /64, junk as itself');
    $t->sql("DELETE FROM activation_codes WHERE device_code_hash IN "
            . "(SELECT sha256(convert_to('bucket-dev-' || g, 'UTF8')) "
            . "FROM generate_series(1, $device) g)");
}

unlike($t->error_log, qr/\[(alert|crit|emerg|error)\]/,
       'no errors in the error log');

$t->stop_all;
done_testing;
