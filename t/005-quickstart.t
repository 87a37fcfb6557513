#!/usr/bin/perl
# README.md's Quick start, word for word, against the real thing: the
# commands are read from the Quick start's code blocks (README and test
# cannot drift), `make run` is tools/run itself in the background, the web
# step is done in Chromium (playwright-core) at the URL tools/run printed,
# and at the end an administrator is signed in and the tunnel answers
# through curl.  Then tools/run is started again in the two other states
# of the database, and what it prints is checked against the state: an
# administrator who can sign in, and users of whom no administrator can
# sign in (whose printed fix is then done in the browser).
#
# What is substituted in README's commands, and why (nothing else):
# * `make run` -> tools/run: `make test` has built everything already;
#   make run is `make all` then tools/run.  It runs with RUN_DIR (a temp
#   dir), HTTP_PORT and SSH_PORT (free ports) and HOME (a temp dir holding
#   a new ed25519 key), as anyone may set them (README: Ports and
#   environment).
# * `.run/` -> RUN_DIR, 8080 -> HTTP_PORT, 2222 -> SSH_PORT, 3000 -> a
#   free port (the defaults may be in use on a shared machine).
# * `ssh ` -> `ssh -F HOME/.ssh/config `: OpenSSH finds ~/.ssh through
#   the passwd entry, not $HOME, so the config names the temp key and
#   known_hosts file and accepts the new host key (the "yes" a person
#   types at the first connection).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use File::Temp qw(tempdir);
use IPC::Run qw(start pump finish timeout);
use JSON::PP qw(decode_json);
use Test::More;
use Time::HiRes qw(sleep time);

use NgxTunnel::Stack;
use NgxTunnel::Test qw(watchdog);
use NgxTunnel::AdminTest;

my $root = NgxTunnel::AdminTest::repo_root();
my $bt = "$root/admin/browser-tests";
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';

my $missing = NgxTunnel::AdminTest::missing(tunneld => 1);
plan skip_all => $missing if $missing;
plan skip_all => "no Chromium at $chromium" unless -x $chromium;
plan skip_all => 'playwright-core not installed: run \'make deps\''
    unless -d "$bt/node_modules/playwright-core";

watchdog(300);

my $tmp = tempdir('quickstart-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
my $run_dir = "$tmp/run";
my $home = "$tmp/home";
my $http = NgxTunnel::Stack::free_port();
my $ssh = NgxTunnel::Stack::free_port();
my $app = NgxTunnel::Stack::free_port();

mkdir $home or die;
mkdir "$home/.ssh", 0700 or die;
system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'quickstart',
       '-f', "$home/.ssh/id_ed25519") == 0 or die 'ssh-keygen failed';
open my $cf, '>', "$home/.ssh/config" or die;
print $cf "IdentityFile $home/.ssh/id_ed25519\nIdentitiesOnly yes\n"
        . "UserKnownHostsFile $home/.ssh/known_hosts\n"
        . "StrictHostKeyChecking accept-new\n";
close $cf;

my %env = (%ENV, HOME => $home, RUN_DIR => $run_dir, HTTP_PORT => $http,
           SSH_PORT => $ssh);
delete @env{qw(SSH_AUTH_SOCK DATABASE_URL REDIS_URL TUNNEL_ADMIN_URL
               TUNNEL_DOMAIN ADMIN)};


# --- README's Quick start ---------------------------------------------------

open my $rf, '<', "$root/README.md" or die;
my $readme = do { local $/; <$rf> };
close $rf;
my ($qs) = $readme =~ /^## Quick start\n(.*?)^##? /ms;
ok($qs, 'README has a Quick start') or BAIL_OUT('no Quick start');
my @blocks = map { [ grep { /\S/ } split /\n/ ] }
             $qs =~ /^```sh\n(.*?)^```/msg;
is(scalar @blocks, 2, 'two code blocks: terminal 1 and terminal 2');
is_deeply($blocks[0], ['make run'], 'terminal 1: make run');

# the substitutions of the header comment; $app_too: 3000 as well
sub subst {
    my ($l, $app_too) = @_;
    $l =~ s{\.run/}{$run_dir/}g;
    $l =~ s/\b8080\b/$http/g;
    $l =~ s/\b2222\b/$ssh/g;
    $l =~ s/\b3000\b/$app/g if $app_too;
    return $l;
}

sub strip_comment { (my $l = $_[0]) =~ s/\s+#.*//; return $l }

my ($setup_url) = $qs =~ m{<(http://localhost:8080/setup)>};
my ($tunnel_url) = $qs =~ m{<(http://myapp\.localhost:8080/)>};
ok($setup_url && $tunnel_url, 'README names the setup and tunnel URLs');
my ($readme_user) = $qs =~ /these\s+steps\s+call\s+you\s+`(\w+)`/;
is($readme_user, 'alice', 'README names the administrator alice');


# --- tools/run, its printed next steps, the database -----------------------

my ($run, $run_out);

sub run_start {
    $run_out = '';
    $run = start([ "$root/tools/run" ], '<', \undef, '>&', \$run_out,
                 init => sub { chdir $root; %ENV = %env }, timeout(90));
    pump $run until $run_out =~ /^Logs follow.*\n/m
        || $run_out =~ /^run: could not start/m;
    my ($steps) = $run_out =~ /^(ngx-tunnel is up:.*?)^Ctrl-C/ms;
    ok($steps, 'tools/run printed its next steps') or diag($run_out);
    $run->pump_nb for 1 .. 3;
    return $steps // '';
}

sub run_stop {
    $run->signal('TERM');
    eval { finish $run; 1 } or diag("tools/run: $@");
    is($run->result(0), 0, 'tools/run stopped on SIGTERM, exit 0')
        or diag($run_out);
}

my %runenv;

sub db {
    my ($sql) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(['psql', '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1',
                   $runenv{DATABASE_URL}, '-c', $sql],
                  '>', \$out, '2>', \$err, timeout(30))
        or die "psql: $err";
    chomp $out;
    return $out;
}

sub browser_setup {
    my ($url, $user) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run(['node', "$Bin/quickstart.js"], '>', \$out, '2>', \$err,
        init => sub {
            %ENV = (%env, NODE_PATH => "$bt/node_modules",
                    SETUP_URL => $url, USER_NAME => $user,
                    PASSWORD => 'correct horse battery staple',
                    CHROMIUM => $chromium);
        }, timeout(120));
    my $r = eval { decode_json((split /\n/, $out)[-1] // '') } // {};
    diag("browser: $out $err") if $r->{error} || !%$r;
    return $r;
}

# whole lines of the printed steps, exactly
sub has_lines {
    my ($steps, $text, $name) = @_;
    like($steps, qr/^\Q$text\E$/m, $name);
}

my $steps = run_start();
open my $ef, '<', "$run_dir/env" or die "no $run_dir/env";
while (<$ef>) { $runenv{$1} = $2 if /^export (\w+)='(.*)'$/ }
close $ef;

# a second `make run` on the same RUN_DIR (other ports, as the port-busy
# hint suggests) is refused before it touches anything of the first
{
    my ($out2, $http2, $ssh2) = ('', NgxTunnel::Stack::free_port(),
                                 NgxTunnel::Stack::free_port());
    my $env_before = do { local (@ARGV, $/) = "$run_dir/env"; <> };
    IPC::Run::run([ "$root/tools/run" ], '<', \undef, '>&', \$out2,
        init => sub { chdir $root; %ENV = (%env, HTTP_PORT => $http2,
                                           SSH_PORT => $ssh2) },
        timeout(60));
    is($? >> 8, 1, 'a second make run on the same RUN_DIR: exit 1');
    my $want = "run: another 'make run' (pid ";
    my $how = 'RUN_DIR=/tmp/run2 HTTP_PORT=';
    my $re = '^' . quotemeta($want) . '\d+\) is using ' . quotemeta($run_dir)
           . '\. .*' . quotemeta($how) . '\d+ SSH_PORT=\d+ make run$';
    like($out2, qr/$re/m,
         '... saying which, and how to run a second stack') or diag($out2);
    my $env_after = do { local (@ARGV, $/) = "$run_dir/env"; <> };
    is($env_after, $env_before, '... the first one\'s env untouched');
    ok(-S "$run_dir/sockets/api.sock", "... and its tunneld's API socket");
}

# state 1: a fresh database
is(db(q{SELECT tunnel_admin_needs_setup(), count(*) FROM users}), 't|0',
   'fresh database: setup open, no users');
like($steps, qr{^  1\. open \Q@{[subst($setup_url)]}\E and create the }m,
     'fresh: the first step is the setup URL README names');
for my $cmd (@{ $blocks[1] }) {
    my $c = strip_comment($cmd);
    next if $c =~ /^python3 /;       # "start your app on port 3000"
    like($steps, qr{^ +\Q@{[subst($c)]}\E$}m,
         "fresh: the printed steps have README's '$c'");
}
like($steps, qr{^  4\. open \Q@{[subst($tunnel_url)]}\E$}m,
     "fresh: the printed tunnel URL is README's");

# the web step: the URL tools/run printed, the name README uses
my ($printed) = $steps =~ m{^  1\. open (\S+/setup) }m;
my $b = browser_setup($printed // 'http://localhost:1/', $readme_user);
is($b->{setup}, "http://localhost:$http/setup", 'the browser is on /setup');
is($b->{home}, "http://localhost:$http/", 'after setup: the home page');
is($b->{who}, 'alice', 'signed in as alice');
ok($b->{admin}, '... as administrator (Users in the menu)');

# terminal 2: README's lines typed into one bash, in order, at the pace of
# a person (2.5 s apart: tunneld applies a new key within 2 s, README)
my ($t2_in, $t2_out) = ('', '');
my $t2 = start(['setsid', 'bash'], '<', \$t2_in, '>&', \$t2_out,
               init => sub { chdir $root; %ENV = %env }, timeout(90));
for (@{ $blocks[1] }) {
    my $l = subst($_, 1);
    $l =~ s/^ssh /ssh -F $home\/.ssh\/config /;
    $t2_in .= "$l\n";
    my $until = time + 2.5;
    while (time < $until) { $t2->pump_nb; sleep 0.1 }
}
my $url = subst($tunnel_url);
my ($code, $body) = ('', '');
my $t0 = time;
while (time - $t0 < 20) {
    $t2->pump_nb;
    $body = `curl -s -m 5 -w '\n%{http_code}' $url`;
    ($code) = $body =~ /(\d+)\z/;
    last if $code eq '200';
    sleep 0.3;
}
is($code, '200', "curl $url: 200 through the tunnel")
    or diag($t2_out, $run_out);
like($body, qr/README\.md/, '... the directory listing of python3\'s '
                            . 'http.server');
my $fp = `ssh-keygen -lf $home/.ssh/id_ed25519.pub`;
$fp = (split / /, $fp)[1];
like($t2_out, qr/^\Q$fp\E$/m, 'key add printed the key\'s fingerprint');
is(db(q{SELECT u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id}),
   'alice', 'database: the key is alice\'s');
like($t2_out, qr{http://myapp\.localhost:$http\b}, 'ssh showed the URL')
    or diag($t2_out);
is(db(q{SELECT name, is_admin, password_hash LIKE '$argon2id$%'
        FROM users}), 'alice|t|t',
   'database: alice, administrator with an argon2id password');

kill 'TERM', -$t2->{KIDS}[0]{PID};     # the shell's group: ssh, http.server
eval { finish $t2 };
run_stop();

# state 2: an administrator who can sign in
$steps = run_start();
is(db(q{SELECT tunnel_admin_needs_setup()}), 'f', 'state: setup closed');
has_lines($steps, "  1. sign in at http://localhost:$http/ as alice, "
          . "the administrator\n     (forgot the password?  "
          . "build/tunnelctl user password alice)",
     'admin exists: sign in as alice');
has_lines($steps, "       ssh -p $ssh -R myapp:80:localhost:3000 "
          . "alice\@localhost", '... the ssh command for alice');
has_lines($steps, "  2. alice has 1 SSH key(s) registered (build/tunnelctl "
          . "key list alice);", '... whose key is known: no key step');
unlike($steps, qr/key add/, '... no "key add" to repeat');

# state 3: users, but no administrator can sign in (bob has no password)
my $ctl = sub {
    my ($out, $err) = ('', '');
    IPC::Run::run(["$root/build/tunnelctl", @_], '>', \$out, '2>', \$err,
                  init => sub { %ENV = (%env, %runenv) }, timeout(30));
    return $out . $err;
};
like($ctl->('user', 'add', 'bob', '--admin'),
     qr{^http://localhost:$http/password/[\w-]{24}$}m,
     'user add --admin prints the password link');
like($ctl->('user', 'remove', 'alice'), qr/^removed user "alice"/,
     'alice removed: bob is the only administrator, without password');
run_stop();
$steps = run_start();
is(db(q{SELECT tunnel_admin_needs_setup(), count(*) FROM users}), 't|1',
   'state: setup open, one user');
has_lines($steps, "  1. no administrator can sign in yet (bob has no "
          . "password):\n     open http://localhost:$http/setup and "
          . "enter the user name bob\n     (or: build/tunnelctl user "
          . "password bob, then open the link it prints)",
     'no admin can sign in: the fix names bob');
($printed) = $steps =~ m{open (\S+/setup) and enter}m;
$b = browser_setup($printed // 'http://localhost:1/', 'bob');
is($b->{who}, 'bob', 'the printed fix works: signed in as bob');
ok($b->{admin}, '... as administrator');
run_stop();

done_testing();
