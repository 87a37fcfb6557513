#!/usr/bin/perl

# One list of system names (issue 8, point 7): tunneld reads the table
# system_names with the keys and reserved names (one snapshot, reloaded on
# NOTIFY), refuses those names, and never hands one out for "-R 80:...".
# A change made with SQL takes effect within about 2 s, without restart.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(180);

# --no-activation: an unknown key gets the refusal, not a code (issue 10)
my $s = start_stack(tunneld_args => ['--no-activation']);
my $port = $s->env->{HTTP_PORT};

my $fred = new_user($s, 'fred');
my $be = start_backend($s, 'one');

my $RELOAD = 2.2;       # tunneld reloads within 2 s of the NOTIFY

sub lines_of {
    my ($text) = @_;
    return [grep { $_ ne '' } map { s/\r$//r } split /\n/, $text];
}

# a session for NAME: (exit code or 'up', its lines)
sub try_name {
    my ($name) = @_;
    my $ssh = start_ssh($s, key => $fred->{key}, user => 'fred',
        session => 1, exit_on_forward_failure => 0,
        remote => "$name:80:localhost:$be->{port}");
    $ssh->wait_for(qr/Press Ctrl-C|No tunnel is open/, 10);
    my $lines = lines_of($ssh->{out});
    if (grep { /Press Ctrl-C/ } @$lines) {
        my $r = http_get($s, $name, '/');
        $ssh->stop;
        return ("up $r->{status}", $lines);
    }
    return ($ssh->finish(10), $lines);
}

my $kept = 'The name %s is kept for the system; pick another with '
    . '-R othername:80:localhost:PORT';


# --- the seeded list (migration 003) is refused -------------------------------

my ($rc, $lines) = try_name('status');
is($rc, 1, "'status' (seeded system name): refused, exit status 1");
is($lines->[0], sprintf($kept, 'status'), "'status': the refusal line")
    or diag(explain($lines));


# --- a name added with SQL: refused within ~2 s ------------------------------

($rc, $lines) = try_name('newsys');
is($rc, 'up 200', "'newsys' is a normal name at first") or diag(explain($lines));

sql_query($s, "INSERT INTO system_names (name) VALUES ('newsys')");
sleep $RELOAD;
($rc, $lines) = try_name('newsys');
is($rc, 1, "'newsys' added to system_names: refused without a restart")
    or diag(explain($lines), tail_log($s, 'tunneld'));
is($lines->[0], sprintf($kept, 'newsys'), "'newsys': the refusal line");


# --- a name removed with SQL: usable within ~2 s -----------------------------

sql_query($s, "DELETE FROM system_names WHERE name = 'www'");
sleep $RELOAD;
($rc, $lines) = try_name('www');
is($rc, 'up 200', "'www' removed from system_names: a tunnel opens and serves")
    or diag(explain($lines), tail_log($s, 'tunneld'));


# --- an older reservation of a system name is never handed out ---------------

my ($trc, $o, $e) = $s->tunnelctl('name', 'reserve', 'fredsite', 'fred');
is($trc, 0, 'tunnelctl name reserve fredsite fred') or diag("$o$e");
sql_query($s, "INSERT INTO system_names (name) VALUES ('fredsite')");
sleep $RELOAD;

my $ssh = start_ssh($s, key => $fred->{key}, user => 'fred', session => 1,
    remote => "80:localhost:$be->{port}");
my ($got) = $ssh->wait_for(qr{Your tunnel is up: http://([a-z0-9-]+)\.}, 10);
ok($got, '-R 80: a tunnel is up') or diag($ssh->output);
isnt($got // '', 'fredsite',
    "-R 80: fred's reserved name, now a system name, is not used");
like($got // '', qr/^[a-z]+-[a-z]+-\d\d$/, '-R 80: a random name instead');
like($ssh->{err}, qr/-R 80:localhost:PORT gets a random name/,
    'the banner does not offer the system name as his own either')
    or diag($ssh->{err});
$ssh->stop;


# --- (issue 8, point 6) without --admin-url (no web UI in this stack): ------
# an unknown key is told to ask the operator, never "the web interface"

{
    my $k = new_key($s, 'nobody');
    my ($krc, $kout, $kerr) = run_ssh($s, key => $k->{key}, user => 'nobody',
        remote => "nobody:80:localhost:$be->{port}", timeout => 15);
    is($krc, 255, 'unknown key: refused');
    like($kerr, qr{^To use it, ask the operator of this server to register its public key\r?\n\(the \.pub file\):  tunnelctl key add USER FILE\.pub\r?\nthen connect again\.\r?$}m,
        'unknown key, no web UI: ask the operator, with the command')
        or diag($kerr);
    unlike($kerr, qr/web interface|keys page/,
        'unknown key, no web UI: no web page promised');
}

check_logs($s);

$s->stop_all;
done_testing;
