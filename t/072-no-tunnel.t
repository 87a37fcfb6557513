#!/usr/bin/perl

# Refusals do not look like success (issue 8, point 5): with a session
# channel and no forward up, the session says why, says that no tunnel is
# open, and ends with exit status 1 -- no "Your tunnel is up" nor "Press
# Ctrl-C" without a tunnel.  With several forwards it lists which are up
# and which were refused, and the session stays.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(180);

my $s = start_stack();
my $port = $s->env->{HTTP_PORT};

my $erin = new_user($s, 'erin');
my $be = start_backend($s, 'one');

# the session's text lines (stdout of ssh -tt), without the CR
sub lines_of {
    my ($text) = @_;
    return [grep { $_ ne '' } map { s/\r$//r } split /\n/, $text];
}

my $pick = 'pick another with -R othername:80:localhost:PORT';


# --- one refused name: why, no tunnel, exit status 1 ------------------------

my @cases = (
    ['www', ["The name www is kept for the system; $pick",
             'No tunnel is open: www was refused (see above).']],
    ['Bad_Name', ['"Bad_Name" cannot be a tunnel name: the name may hold '
                  . "only letters a-z, digits 0-9 and '-'.",
                  'No tunnel is open: Bad_Name was refused (see above).']],
);

for my $case (@cases) {
    my ($name, $want) = @$case;
    my $ssh = start_ssh($s, key => $erin->{key}, user => 'erin',
        session => 1, exit_on_forward_failure => 0,
        remote => "$name:80:localhost:$be->{port}");
    my $rc = $ssh->finish(15);
    is($rc, 1, "-R $name: the session ends by itself with exit status 1")
        or diag($ssh->{out}, $ssh->{err}, tail_log($s, 'tunneld'));
    is_deeply(lines_of($ssh->{out}), $want,
        "-R $name: exactly the refusal and 'no tunnel is open'")
        or diag(explain(lines_of($ssh->{out})));
    unlike($ssh->{out}, qr/Welcome|tunnel is up|Ctrl-C/,
        "-R $name: nothing that looks like success");
    like($ssh->{err}, qr/remote port forwarding failed/,
        "-R $name: OpenSSH still gets the refusal");
}


# --- no -R at all: says so, exit 1 ------------------------------------------

{
    my $ssh = start_ssh($s, key => $erin->{key}, user => 'erin',
        session => 1);
    my $rc = $ssh->finish(15);
    is($rc, 1, 'no -R: exit status 1') or diag($ssh->output);
    is_deeply(lines_of($ssh->{out}),
        ['No tunnel is open: you asked for none. Add '
         . '-R NAME:80:localhost:PORT to your ssh command.'],
        'no -R: one line that says what to add')
        or diag(explain(lines_of($ssh->{out})));
}


# --- mixed: one up, one refused: listed, the session stays ------------------

{
    my $ssh = start_ssh($s, key => $erin->{key}, user => 'erin',
        session => 1, exit_on_forward_failure => 0,
        remote => ["okapp:80:localhost:$be->{port}",
                   "www:80:localhost:$be->{port}"]);
    ok($ssh->wait_for(qr/Press Ctrl-C/, 10), 'mixed: the summary came')
        or diag($ssh->output, tail_log($s, 'tunneld'));
    is_deeply(lines_of($ssh->{out}), [
        "The name www is kept for the system; $pick",
        "Your tunnel is up: http://okapp.localhost:$port",
        'Not opened: www (see above).',
        'Press Ctrl-C to stop your tunnel.',
    ], 'mixed: which is up, which was refused, how to stop')
        or diag(explain(lines_of($ssh->{out})));
    sleep 1.5;
    ok($ssh->alive, 'mixed: the session stays');
    my $r = http_get($s, 'okapp', '/');
    is("$r->{status} $r->{body}", '200 hello from backend one',
        'mixed: the tunnel that is up serves');
    $ssh->stop;
}


# --- all up: one line each, then how to stop ---------------------------------

{
    my $ssh = start_ssh($s, key => $erin->{key}, user => 'erin',
        session => 1,
        remote => ["first:80:localhost:$be->{port}",
                   "second:80:localhost:$be->{port}"]);
    ok($ssh->wait_for(qr/Press Ctrl-C/, 10), 'two up: the summary came')
        or diag($ssh->output);
    is_deeply(lines_of($ssh->{out}), [
        "Your tunnel is up: http://first.localhost:$port",
        "Your tunnel is up: http://second.localhost:$port",
        'Press Ctrl-C to stop your tunnels.',
    ], 'two up: in the order asked, then how to stop')
        or diag(explain(lines_of($ssh->{out})));
    $ssh->stop;
}

check_logs($s);

$s->stop_all;
done_testing;
