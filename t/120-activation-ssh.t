#!/usr/bin/perl

# The device flow, ssh side (issue 10): the real OpenSSH client with a
# fresh, unregistered key is shown a code and waits; the code is approved
# with tunnel_activation_decide() (what /activate and tunnelctl call) and
# the same ssh process gets its tunnel, with -N and with a session.  Deny,
# expiry, client leaving, a disabled user's key, --no-activation, the
# per-address cap, and the idle cost of 200 waiting sessions.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IPC::Run ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(420);

# admin => 1: tunneld knows the web UI's base URL (URL/activate?code=...)
my $s = start_stack(admin => 1,
    tunneld_args => ['--activation-ttl', '60']);
my $port = $s->env->{HTTP_PORT};
my $admin_url = "http://localhost:$port";

my $alice = new_user($s, 'alice');
my $alice_id = sql_query($s, "SELECT id FROM users WHERE name = 'alice'");
my $be = start_backend($s, 'one');

my $CODE_RE = qr/\b([BCDFGHJKLMNPQRSTVWXZ]{4})-([BCDFGHJKLMNPQRSTVWXZ]{4})\b/;


# the code the ssh client printed, as "XXXXXXXX" (no dash), or undef
sub code_of {
    my ($ssh, $timeout) = @_;
    my @m = $ssh->wait_for(qr/code: $CODE_RE/, $timeout // 10);
    return @m == 2 ? "$m[0]$m[1]" : undef;
}

sub decide {
    my ($code, $user_id, $approve) = @_;
    return sql_query($s, "SELECT r_status FROM tunnel_activation_decide("
        . "sha256(convert_to('$code', 'UTF8')), "
        . ($user_id // 'NULL') . ", " . ($approve ? 'true' : 'false')
        . ", '127.0.0.1')");
}

sub row_state {
    my ($fp) = @_;
    return sql_query($s, "SELECT CASE WHEN approved_at IS NOT NULL THEN "
        . "'approved' WHEN denied_at IS NOT NULL THEN 'denied' ELSE "
        . "'pending' END FROM activation_codes WHERE fingerprint = '$fp' "
        . "ORDER BY id DESC LIMIT 1");
}


# --- approve, with -N and with a session -------------------------------------

for my $mode ('-N', 'session') {
    my $name = $mode eq '-N' ? 'devn' : 'devs';
    my $k = new_key($s, "fresh$name");

    # OpenSSH 9.2 gives up waiting for the auth answer after
    # ServerAliveInterval x ServerAliveCountMax seconds without a packet:
    # tunneld sends one every 5 s to a waiting key, so 3 x 3 s is enough
    my $ssh = start_ssh($s, key => $k->{key}, user => 'whoever',
        session => $mode eq 'session',
        remote => "$name:80:localhost:$be->{port}",
        alive => 3, extra => ['-o', 'ServerAliveCountMax=3']);

    my $code = code_of($ssh);
    ok($code, "$mode: ssh shows a code") or diag($ssh->output);
    my $out = $ssh->output;
    like($out, qr/^This key is not registered here yet\.\r?$/m,
        "$mode: the first line");
    like($out, qr/^  key:  ED25519 \Q$k->{fingerprint}\E\r?$/m,
        "$mode: key type and fingerprint as ssh-keygen -lf");
    my $shown = $code ? substr($code, 0, 4) . '-' . substr($code, 4) : '?';
    like($out, qr/^  open: \Q$admin_url\E\/activate\?code=\Q$shown\E\r?$/m,
        "$mode: the URL to open, with the code");
    like($out, qr/^  code: \Q$shown\E   \(expires in 60 seconds\)\r?$/m,
        "$mode: the code and its expiry");
    like($out, qr/^Waiting for approval\.\.\. \(Ctrl-C to cancel\)\r?$/m,
        "$mode: waiting");
    is(row_state($k->{fingerprint}), 'pending', "$mode: a pending row");
    ok(!route_of($s, $name), "$mode: no route while waiting");

    # longer than ServerAliveInterval x ServerAliveCountMax (-N only: the
    # same client code waits in both modes)
    my $wait = $mode eq '-N' ? 11 : 1;
    sleep $wait;
    ok($ssh->alive, "$mode: ssh still waits after $wait s "
        . "(ServerAliveInterval=3, ServerAliveCountMax=3)")
        or diag($ssh->output);

    my $t0 = time;
    is(decide($code, $alice_id, 1), 'approved', "$mode: approved");
    my $route = wait_route($s, $name, 10);
    my $t_route = time - $t0;
    my $r = $route ? http_get($s, $name, '/') : {};
    my $t_http = time - $t0;
    ok($route, "$mode: the same ssh process gets its tunnel")
        or diag($ssh->output, tail_log($s, 'tunneld'));
    is("$r->{status} $r->{body}", '200 hello from backend one',
        "$mode: the URL serves the backend");
    diag(sprintf "%s: approval to route %.3f s, to first response %.3f s",
        $mode, $t_route, $t_http);
    cmp_ok($t_http, '<', 2, "$mode: within 2 s of the approval");
    is($route->{user} // '', 'alice', "$mode: the approver's tunnel");
    is(sql_query($s, "SELECT u.name FROM ssh_keys k JOIN users u ON "
        . "u.id = k.user_id WHERE fingerprint = '$k->{fingerprint}'"),
        'alice', "$mode: the key is alice's now");

    $out = $ssh->output;
    like($out, qr/signed in as alice/, "$mode: the banner of a signed-in "
        . "user follows");
    if ($mode eq 'session') {
        ok($ssh->wait_for(qr/Your tunnel is up: \S*\Q$name\E/, 5),
            'session: the tunnel line') or diag($ssh->output);
        ok($ssh->wait_for(qr{GET / .*200}, 5), 'session: the request log')
            or diag($ssh->output);
    }
    $ssh->stop;
    ok(wait_no_route($s, $name, 5), "$mode: route gone after ssh left");
}


# --- approve on the web, as a person does -------------------------------------
# the code from ssh's output, /activate signed in (alice takes the
# installation through /setup, her account made with tunnelctl), Approve
# with the CSRF token, and the same ssh process gets its tunnel
{
    require NgxTunnel::AdminTest;
    my $k = new_key($s, 'freshweb');
    my $ssh = start_ssh($s, key => $k->{key}, user => 'whoever',
        remote => "devweb:80:localhost:$be->{port}");
    my $code = code_of($ssh);
    ok($code, 'web: ssh shows a code') or diag($ssh->output);
    my ($url) = $ssh->output =~ m{open: (\S+)};
    $url //= '';
    $url =~ s/\r//;

    my $ua = NgxTunnel::AdminTest::UA->new($admin_url);
    my $r = $ua->get('/setup');
    $r = $ua->post('/setup', { name => 'alice',
        password => 'correct horse battery staple',
        password2 => 'correct horse battery staple',
        csrf => NgxTunnel::AdminTest::csrf($r) });
    is($r->{status}, 303, 'web: alice signs in (setup)');

    (my $path = $url) =~ s{^\Q$admin_url\E}{};
    $r = $ua->get($path);
    is($r->{status}, 200, "web: the URL ssh printed ($path) opens");
    like($r->{content}, qr/\Q$k->{fingerprint}\E/,
        'web: the page shows the key ssh printed');
    my $t0 = time;
    $r = $ua->post('/activate', { action => 'approve',
        code => substr($code, 0, 4) . '-' . substr($code, 4),
        csrf => NgxTunnel::AdminTest::csrf($r) });
    like($r->{content}, qr/Approved/, 'web: Approve') or diag($r->{content});
    my $route = wait_route($s, 'devweb', 10);
    my $res = $route ? http_get($s, 'devweb', '/') : {};
    my $dt = time - $t0;
    is("$res->{status} $res->{body}", '200 hello from backend one',
        'web: the same ssh process serves its URL');
    diag(sprintf 'web: Approve to first response %.3f s', $dt);
    cmp_ok($dt, '<', 2, 'web: within 2 s of Approve');
    like($ua->get('/keys')->{content}, qr/\Q$k->{fingerprint}\E/,
        'web: the key is on /keys');
    $ssh->stop;
}


# --- deny ---------------------------------------------------------------------

{
    my $k = new_key($s, 'denied');
    my $ssh = start_ssh($s, key => $k->{key}, remote =>
        "denied:80:localhost:$be->{port}");
    my $code = code_of($ssh);
    ok($code, 'deny: a code') or diag($ssh->output);
    is(decide($code, $alice_id, 0), 'denied', 'deny: denied');
    my $rc = $ssh->finish(5);
    is($rc, 255, 'deny: ssh exits (255)');
    like($ssh->output, qr/^.*Activation denied: this key was not added and no tunnel was opened\.\r?$/m,
        'deny: one clear line') or diag($ssh->output);
    ok(!route_of($s, 'denied'), 'deny: no route');
    is($s->redis_cli('KEYS', 'tunnel:route:denied*'), '',
        'deny: nothing in Redis');
    is(row_state($k->{fingerprint}), 'denied', 'deny: the row says denied');
    is(sql_query($s, "SELECT count(*) FROM ssh_keys WHERE fingerprint = "
        . "'$k->{fingerprint}'"), 0, 'deny: key not added');
}


# --- client leaves while waiting ----------------------------------------------

{
    my $k = new_key($s, 'leaver');
    my $ssh = start_ssh($s, key => $k->{key}, remote =>
        "leaver:80:localhost:$be->{port}");
    ok(code_of($ssh), 'leave: a code') or diag($ssh->output);
    is(row_state($k->{fingerprint}), 'pending', 'leave: a pending row');
    my $t0 = time;
    $ssh->stop;
    ok(wait_until(5, sub { row_state($k->{fingerprint}) eq '' }),
        sprintf 'leave: the row is gone (%.2f s)', time - $t0);
}


# --- a key added a moment ago: in, not a code ------------------------------------
# README's Quick start runs `tunnelctl key add` and ssh right after it; the
# key is in PostgreSQL before tunneld's table has reloaded (NOTIFY, within
# 2 s).  tunneld finds it registered (tunnel_activation_create says so) and
# waits for the reload instead of refusing or offering a code.
for my $round (1 .. 3) {
    my $k = new_key($s, "carol$round");
    my ($rc, $o, $e) = $s->tunnelctl('user', 'add', "carol$round");
    ($rc, $o, $e) = $s->tunnelctl('key', 'add', "carol$round", $k->{pub});
    is($rc, 0, "key add carol$round") or diag("$o$e");
    my $t0 = time;
    my $ssh = start_ssh($s, key => $k->{key}, user => "carol$round",
        remote => "fresh$round:80:localhost:$be->{port}");
    ok(wait_route($s, "fresh$round", 10),
       sprintf('ssh right after key add: tunnel up in %.2f s', time - $t0))
        or diag($ssh->output);
    unlike($ssh->output, qr/not registered|code:/, '... no code, no refusal');
    $ssh->stop;
}


# --- a disabled user's key: the refusal, not a code ---------------------------

{
    my $bob = new_user($s, 'bob');
    my ($rc, $o, $e) = $s->tunnelctl('user', 'disable', 'bob');
    is($rc, 0, 'disable bob') or diag("$o$e");
    sleep 2.2;
    my ($rc2, $out, $err) = run_ssh($s, key => $bob->{key},
        remote => "bobs:80:localhost:$be->{port}", timeout => 15);
    is($rc2, 255, 'disabled user: refused');
    like($err, qr/Permission denied \(publickey\)/, 'disabled user: '
        . 'permission denied');
    unlike($err, qr/not registered here yet|code:/, 'disabled user: no code');
    is(sql_query($s, "SELECT count(*) FROM activation_codes WHERE "
        . "fingerprint = '$bob->{fingerprint}'"), 0,
        'disabled user: no row');
}


# --- per-address cap ------------------------------------------------------------

{
    # 3 waiting from 127.0.0.1 (the default cap), then a 4th
    my @wait;
    for my $i (1 .. 3) {
        my $k = new_key($s, "cap$i");
        my $ssh = start_ssh($s, key => $k->{key});
        ok(code_of($ssh), "cap: code $i") or diag($ssh->output);
        push @wait, $ssh;
    }
    my $k = new_key($s, 'cap4');
    my ($rc, $out, $err) = run_ssh($s, key => $k->{key}, timeout => 15);
    is($rc, 255, 'cap: the 4th is refused');
    like($err, qr/^Too many keys from your address are waiting for approval already \(3 at most\): approve or cancel those first\.\r?$/m,
        'cap: it says why') or diag($err);
    like($err, qr/not registered with this tunnel server/,
        'cap: then the usual refusal');
    unlike($err, qr/code:/, 'cap: no code');
    $_->stop for @wait;
    ok(wait_until(5, sub { sql_query($s, "SELECT count(*) FROM "
        . "activation_codes WHERE approved_at IS NULL AND denied_at IS "
        . "NULL") == 0 }), 'cap: rows of the clients that left are gone');
}

check_logs($s);
$s->stop_all;


# --- expiry ---------------------------------------------------------------------

{
    my $s2 = start_stack(tunneld_args => ['--activation-ttl', '3']);
    $s = $s2;
    my $k = new_key($s2, 'slow');
    my $ssh = start_ssh($s2, key => $k->{key}, remote =>
        "slow:80:localhost:$be->{port}");
    my $code = code_of($ssh);
    ok($code, 'expiry: a code') or diag($ssh->output);
    like($ssh->output, qr/^  ask:  the operator of this server to run\r?\n        tunnelctl activation approve [A-Z]{4}-[A-Z]{4} --user NAME\r?$/m,
        'no web UI: the operator approves');
    like($ssh->output, qr/\(expires in 3 seconds\)/, 'expiry: 3 seconds');
    my $t0 = time;
    my $rc = $ssh->finish(8);
    my $took = time - $t0;
    is($rc, 255, sprintf 'expiry: ssh exits (%.2f s)', $took);
    like($ssh->output, qr/The code [A-Z]{4}-[A-Z]{4} expired before anyone approved it: no tunnel was opened\. Connect again for a new code\./,
        'expiry: one clear line') or diag($ssh->output);
    ok(wait_until(3, sub { sql_query($s2, "SELECT count(*) FROM "
        . "activation_codes WHERE fingerprint = '$k->{fingerprint}'") == 0 }),
        'expiry: the row is gone');
    is($s2->redis_cli('KEYS', 'tunnel:route:*'), '', 'expiry: no route');

    # PostgreSQL down: no code can be made; the refusal says so (within
    # the 5 s tunneld gives the query)
    $s2->stop_postgres;
    my $k2 = new_key($s2, 'nodb');
    $t0 = time;
    my ($rc2, $o2, $e2) = run_ssh($s2, key => $k2->{key}, timeout => 20);
    is($rc2, 255, sprintf 'database down: refused (%.1f s)', time - $t0);
    like($e2, qr/^The tunnel server cannot issue an activation code right now \(its database does not answer\): try again in a minute\.\r?$/m,
        'database down: it says why') or diag($e2);
    like($e2, qr/not registered with this tunnel server/,
        'database down: then the usual refusal');
    $s2->start_postgres;
    check_logs($s2);
    $s2->stop_all;
}


# --- --no-activation ---------------------------------------------------------------

{
    my $s3 = start_stack(tunneld_args => ['--no-activation']);
    $s = $s3;
    my $k = new_key($s3, 'off');
    my ($rc, $out, $err) = run_ssh($s3, key => $k->{key}, timeout => 15);
    is($rc, 255, '--no-activation: refused');
    like($err, qr/not registered with this tunnel server:\r?\n    \Q$k->{fingerprint}\E/,
        '--no-activation: the refusal with the fingerprint');
    unlike($err, qr/code:/, '--no-activation: no code');
    is(sql_query($s3, "SELECT count(*) FROM activation_codes"), 0,
        '--no-activation: no row');
    check_logs($s3);
    $s3->stop_all;
}

# --- 200 waiting sessions cost no idle CPU; the global cap -----------------------

{
    my $root = repo_root();
    system('make', '-s', '-C', $root, '-f', 'bench/bench.mk',
           'build/bench/bin/tnl-loadgen') == 0
        or BAIL_OUT('cannot build tnl-loadgen');

    my $s4 = start_stack(tunneld_args => ['--activation-max-per-addr', '1000',
        '--activation-max', '200', '--max-startups', '1000',
        # 200 at once from one address, by design
        '--per-source-max-startups', '1000']);
    $s = $s4;

    # tunneld's CPU ticks (user + system, every process) over $secs
    my $ticks = sub {
        my $sum = 0;
        for my $pid ($s4->{procs}{tunneld}, $s4->tunneld_pids) {
            open my $fh, '<', "/proc/$pid/stat" or next;
            my $line = <$fh>;
            my @f = split / /, (split /\) /, $line, 2)[1];
            $sum += $f[11] + $f[12];        # utime, stime
        }
        return $sum;
    };
    my $hz = `getconf CLK_TCK` + 0 || 100;
    my $measure = sub {
        my ($secs) = @_;
        my $t0 = $ticks->();
        sleep $secs;
        return ($ticks->() - $t0) / $hz / $secs * 100;    # % of a core
    };

    # one key for all (libssh's client signs at once: no query first)
    my $k = new_key($s4, 'many');
    my $idle = $measure->(5);
    my $before = $ticks->();

    my ($in, $out, $err) = ('', '', '');
    my $lg = IPC::Run::start(["$root/build/bench/bin/tnl-loadgen",
        '--key', $k->{key}, '--host', '127.0.0.1',
        '--port', $s4->env->{SSH_PORT}, '--count', 200,
        '--concurrency', 200, '--connect-timeout', 300, '--hold', 0],
        '<', \$in, '>', \$out, '2>', \$err);
    my $pending = sub { sql_query($s4, "SELECT count(*) FROM "
        . "activation_codes WHERE approved_at IS NULL AND denied_at IS "
        . "NULL") };
    my $t0 = time;
    ok(wait_until(60, sub { $lg->pump_nb; $pending->() >= 200 }),
        sprintf '200 sessions wait with a code (%.1f s)', time - $t0)
        or diag('pending: ' . $pending->() . "\n$out$err",
                tail_log($s4, 'tunneld'));

    my $spent = ($ticks->() - $before) / $hz;
    sleep 1;   # the banners are out
    my $busy = $measure->(5);
    diag(sprintf 'tunneld CPU: %.2f %% of a core idle, %.2f %% with 200 '
        . 'sessions waiting for approval (%.2f s CPU to take them in, '
        . '%d ticks in all so far)', $idle, $busy, $spent, $ticks->());
    cmp_ok($busy, '<', 2, '200 waiting sessions: under 2 % of a core');

    # the global cap (--activation-max 200): the next unknown key
    my $k2 = new_key($s4, 'onemore');
    my ($rc, $o2, $e2) = run_ssh($s4, key => $k2->{key}, timeout => 15);
    is($rc, 255, 'global cap: refused');
    like($e2, qr/^Too many keys are waiting for approval on this server right now: try again later\.\r?$/m,
        'global cap: it says why') or diag($e2);

    $lg->kill_kill(grace => 3);
    eval { $lg->finish };
    ok(wait_until(10, sub { $pending->() == 0 }),
        'the loadgen left: every row is gone');
    check_logs($s4);
    $s4->stop_all;
}

stop_backend($be);
done_testing;
