#!/usr/bin/perl
# Admin UI /names: name rules (refusals name the name and say what to do),
# system names from the system_names table (one added by SQL is refused at
# once), the per-user quota (also under concurrent requests), ownership,
# release; admins see and release all.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode ();
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;

my $t = NgxTunnel::AdminTest->new(
    http_extra => "    tunnel_admin_name_quota 2;\n");
$t->start_all;

my $alice = $t->setup_admin;
my $bob = $t->join_user($alice, 'bob');
my $carol = $t->join_user($alice, 'carol');

sub act {
    my ($ua, %f) = @_;
    my $p = $ua->get('/names');
    return $ua->post('/names', { %f, csrf => csrf($p) });
}

my $r = $bob->get('/names');
is($r->{status}, 200, 'GET /names');
like($r->{content}, qr/You use 0 of 2/, 'quota shown');

$r = act($bob, action => 'reserve', name => 'MyApp');
is($r->{status}, 303, 'reserve MyApp');
like($r->{headers}{location}, qr/done=name-reserved/, '... confirmed');
is($t->sql("SELECT u.name FROM reserved_names r JOIN users u "
            . "ON u.id = r.user_id WHERE r.name = 'myapp'"), 'bob',
   'stored folded to lower case, owned by bob');

$r = act($bob, action => 'reserve', name => 'myapp');
is($r->{status}, 422, 'twice: refused');
like($r->{content}, qr/already reserved this name/, '... "already yours"');

for my $bad ('-x', 'a_b', 'x' x 64, 'a.b', '') {
    $r = act($bob, action => 'reserve', name => $bad);
    is($r->{status}, 422, "invalid name '$bad' refused");
}
# the sentence names the name as typed and says what to do
my %said = (
    'Bad_Name' => "\x{201c}Bad_Name\x{201d} is not a valid name: use only "
                . "letters a-z, digits 0-9 and &#39;-&#39; (not at the start "
                . "or end), for example \x{201c}bad-name\x{201d}.",
    '-x'       => "\x{201c}-x\x{201d} is not a valid name: it may not start "
                . "or end with &#39;-&#39;.",
    ('y' x 64) => "\x{201c}" . ('y' x 37) . "...\x{201d} is too long for a "
                . "name: use at most 63 letters a-z, digits 0-9 or &#39;-&#39;.",
    '_'        => "\x{201c}_\x{201d} is not a valid name: use only letters "
                . "a-z, digits 0-9 and &#39;-&#39; (not at the start or end).",
    ''         => "Type a name: 1 to 63 letters a-z, digits 0-9 or &#39;-&#39;.",
    # punycode: browsers may show it as Cyrillic "alice" (attacker pass)
    'xn--lice-43d' => "\x{201c}xn--lice-43d\x{201d} is not allowed: names "
                . "starting with &#39;xn--&#39; may be shown by browsers as "
                . "international look-alikes of other names.  Choose another.",
);
for my $bad (sort keys %said) {
    $r = act($bob, action => 'reserve', name => $bad);
    my $html = Encode::decode('UTF-8', $r->{content});
    my ($msg) = $html =~ m{<p class="msg bad">(.*?)</p>};
    is($msg, $said{$bad}, "invalid name '$bad': the message names it");
}

$r = act($bob, action => 'reserve', name => 'www');
is($r->{status}, 422, 'system name refused');
like(Encode::decode('UTF-8', $r->{content}),
     qr/\x{201c}www\x{201d} is kept for the system/, '... says so, naming it');

# the system list is the table: a name added by SQL is refused at once
$r = act($bob, action => 'reserve', name => 'opsname');
is($r->{status}, 303, 'opsname can be reserved while not a system name');
act($bob, action => 'release', name => 'opsname');
$t->sql("INSERT INTO system_names (name) VALUES ('opsname')");
$r = act($bob, action => 'reserve', name => 'OpsName');
is($r->{status}, 422, 'a name added to system_names is refused on the web');
like(Encode::decode('UTF-8', $r->{content}),
     qr/\x{201c}opsname\x{201d} is kept for the system \(the operator&#39;s list/,
     '... as a system name');
is($t->sql("SELECT count(*) FROM reserved_names WHERE name = 'opsname'"), 0,
   '... and not reserved');
$t->sql("DELETE FROM system_names WHERE name = 'www'");
$r = act($bob, action => 'reserve', name => 'www');
is($r->{status}, 303, 'a name removed from system_names can be reserved');
act($bob, action => 'release', name => 'www');

$r = act($carol, action => 'reserve', name => 'myapp');
is($r->{status}, 422, "carol cannot reserve bob's name");
like($r->{content}, qr/Someone else has reserved/, '... says so');
like($r->{content}, qr/value="myapp"/, 'typed name kept');

$r = act($bob, action => 'reserve', name => 'second');
is($r->{status}, 303, 'second name');
$r = act($bob, action => 'reserve', name => 'third');
is($r->{status}, 422, 'over the quota: refused');
like($r->{content}, qr/as many names as you may/, '... says so');
like($bob->get('/names')->{content}, qr/You use 2 of 2/, 'quota used');

# a reservation that became a system name counts for nothing, as in tunneld
# (which refuses it: t/025-system-names.t)
$t->sql("INSERT INTO system_names (name) VALUES ('second')");
$r = $bob->get('/names');
like($r->{content}, qr/You use 1 of 2/,
     'a reservation that became a system name is not counted');
like($r->{content}, qr{>second <span class="tag">kept for the system now</span></td>},
     '... and is shown as kept for the system now');
$r = act($bob, action => 'reserve', name => 'third');
is($r->{status}, 303, '... so another name may be reserved in its place');
like($bob->get('/names')->{content}, qr/You use 2 of 2/, 'quota used again');
is(act($bob, action => 'release', name => 'third')->{status}, 303,
   'third released');
$t->sql("DELETE FROM system_names WHERE name = 'second'");

# concurrent reservations by one user stay within the quota
my $page = $carol->get('/names');
my $csrf = csrf($page);
my @kids;
for my $i (1 .. 6) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $res = $carol->post('/names', { action => 'reserve',
                                           name => "race$i", csrf => $csrf });
        POSIX::_exit($res->{status} == 303 ? 3 : 4);
    }
    push @kids, $pid;
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if ($? >> 8) == 3 }
is($ok, 2, 'six concurrent reservations: two succeed');
is($t->sql("SELECT count(*) FROM reserved_names r JOIN users u "
            . "ON u.id = r.user_id WHERE u.name = 'carol'"), 2,
   'carol holds exactly her quota');

# --- visibility and release ------------------------------------------------------
$r = $carol->get('/names');
unlike($r->{content}, qr/>myapp</, "users do not see others' names");
$r = act($carol, action => 'release', name => 'myapp');
is($r->{status}, 422, "carol cannot release bob's name");
is($t->sql("SELECT count(*) FROM reserved_names WHERE name = 'myapp'"), 1,
   '... still there');

$r = $alice->get('/names');
like($r->{content}, qr/Reservations of other users/, 'admin sees all');
like($r->{content}, qr/>myapp<\/td><td>bob</, '... with their owner');

$r = act($bob, action => 'release', name => 'second');
is($r->{status}, 303, 'bob releases a name');
like($r->{headers}{location}, qr/done=name-released/, '... confirmed');
$r = act($alice, action => 'release', name => 'myapp');
is($r->{status}, 303, "admin releases bob's name");
is($t->sql("SELECT count(*) FROM reserved_names WHERE user_id = "
            . "(SELECT id FROM users WHERE name = 'bob')"), 0,
   'bob has no names left');
$r = act($carol, action => 'reserve', name => 'myapp');
is($r->{status}, 422, 'carol is still at her quota');

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');

$t->stop_all;
done_testing;
