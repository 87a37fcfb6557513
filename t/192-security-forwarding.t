#!/usr/bin/perl

# The forwarding tunneld refuses beyond t/040-refusals.t's -L, -W, exec and
# sftp (SECURITY.md): -D (a SOCKS connect through the session is a
# direct-tcpip open: refused, nothing reaches the target), agent forwarding
# (ssh -A sends auth-agent-req@openssh.com: ignored, tunneld never opens
# an agent channel back), X11 forwarding (ssh -X: x11-req refused, the
# client says so), and a shell request runs nothing (typed commands are
# not executed; Ctrl-C ends the session).  Also records the key exchange
# OpenSSH's defaults end up with (SECURITY.md: no post-quantum one).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use IO::Select;
use IO::Socket::INET;
use IPC::Run ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Stack;
use NgxTunnel::Test;

watchdog(240);

my $s = start_stack(tunneld_args => ['--no-activation']);
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'target');


# --- -D: dynamic (SOCKS) forwarding -------------------------------------------

{
    my $lport = NgxTunnel::Stack::free_port();
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        extra => ['-D', "127.0.0.1:$lport"]);
    my $c;
    wait_until(10, sub {
        $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $lport, Timeout => 2);
    });
    ok($c, '-D: ssh listens for SOCKS locally') or diag($ssh->output);
    SKIP: {
        skip 'no SOCKS listener', 4 unless $c;
        # SOCKS5, no authentication, CONNECT 127.0.0.1:backend
        syswrite $c, "\x05\x01\x00";
        my $hello = '';
        my $sel = IO::Select->new($c);
        sysread $c, $hello, 2 if $sel->can_read(5);
        is(unpack('H*', $hello), '0500', '-D: SOCKS5 greeting accepted');
        syswrite $c, "\x05\x01\x00\x01" . pack('C4n', 127, 0, 0, 1,
                                                 $be->{port});
        my $reply = '';
        my $deadline = time + 10;
        while (time < $deadline) {
            next unless $sel->can_read(0.5);
            my $n = sysread $c, $reply, 4096, length $reply;
            last unless $n;
        }
        ok(length $reply < 2 || substr($reply, 1, 1) ne "\x00",
           '-D: the SOCKS connect is not granted ('
           . (length $reply ? 'reply ' . unpack('H*', substr($reply, 0, 2))
                            : 'closed without a reply') . ')');
        unlike($reply, qr/hello from backend/, '-D: nothing from the target');
        ok($ssh->wait_for(qr/open failed/, 5),
            '-D: ssh reports the channel open refused')
            or diag($ssh->output);
    }
    $ssh->stop;
    # the backend numbers its connections: the first one is this
    my $r = http_request(port => $be->{port}, host => 'x', path => '/conn');
    is($r->{body}, '1', '-D: the target backend was never connected to');
}


# --- -A: agent forwarding -----------------------------------------------------

{
    my $dir = "$s->{_test_dir}/agent";
    mkdir $dir, 0700;
    my $sock = "$dir/agent.sock";
    my ($aout, $aerr) = ('', '');
    my $agent = IPC::Run::start(['ssh-agent', '-D', '-a', $sock],
        '<', \undef, '>', \$aout, '2>', \$aerr);
    wait_until(5, sub { -S $sock });
    ok(-S $sock, 'an ssh-agent to forward');

    # the harness turns agents off (IdentityAgent=none): this client uses
    # the agent, and forwards it
    my @cmd = map { $_ eq 'IdentityAgent=none' ? "IdentityAgent=$sock" : $_ }
        NgxTunnel::Test::ssh_command($s, key => $alice->{key},
            user => 'alice', session => 1,
            remote => "agentless:80:localhost:$be->{port}",
            extra => ['-v', '-A']);
    my ($in, $out, $err) = ('', '', '');
    my $h = IPC::Run::start(\@cmd, '<', \$in, '>', \$out, '2>', \$err);
    my $seen = sub {
        my ($re) = @_;
        wait_until(10, sub { eval { $h->pump_nb }; "$out$err" =~ $re });
    };
    ok(wait_route($s, 'agentless', 10), '-A: the tunnel opens')
        or diag("$out$err");
    ok($seen->(qr/Requesting authentication agent forwarding/),
       '-A: ssh asked for agent forwarding') or diag("$out$err");
    sleep 1;
    eval { $h->pump_nb };
    unlike("$out$err", qr/ctype auth-agent|server tried agent forwarding/,
       '-A: tunneld never opened an agent channel back');

    # SECURITY.md's key-exchange paragraph: what OpenSSH's defaults get
    my ($kex) = "$out$err" =~ /kex: algorithm: (\S+)/;
    my ($hk) = "$out$err" =~ /kex: host key algorithm: (\S+)/;
    diag(((`ssh -V 2>&1` =~ /^(OpenSSH_\S+)/)[0] // 'OpenSSH')
         . " with its defaults negotiates kex $kex, host key $hk");
    like($kex, qr/^curve25519-sha256(?:\@libssh\.org)?$/,
         'key exchange: curve25519 (libssh 0.10.6 has no sntrup761 or '
         . 'mlkem768)');
    $h->kill_kill(grace => 2);
    $agent->kill_kill(grace => 2);
}


# --- -X: X11 forwarding -------------------------------------------------------

{
    local $ENV{DISPLAY} = ':99';
    local $ENV{XAUTHORITY} = "$s->{_test_dir}/Xauthority";
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, remote => "nox:80:localhost:$be->{port}",
        extra => ['-X']);
    ok(wait_route($s, 'nox', 10), '-X: the tunnel opens')
        or diag($ssh->output);
    ok($ssh->wait_for(qr/X11 forwarding request failed/, 10),
       '-X: ssh reports the x11-req refused') or diag($ssh->output);
    ok($ssh->wait_for(qr/X11 forwarding is not supported here/, 5),
       '-X: tunneld says why') or diag($ssh->output);


# --- a shell runs nothing -----------------------------------------------------

    # the same session: it asked for a pty and a shell
    my $fh = $ssh->{in};
    syswrite $fh, "id\necho shell-ran-\$((6*7))\n";
    sleep 1.5;
    unlike($ssh->output, qr/uid=\d+|shell-ran-42/,
       'shell: typed commands are not run');
    my $t0 = time;
    syswrite $fh, "\x03";
    my $rc = $ssh->finish(10);
    ok($rc != -1, sprintf 'shell: Ctrl-C ends the session (%.2f s)',
       time - $t0);
    ok(wait_no_route($s, 'nox', 5), '... and its tunnel');
}

check_logs($s);
$s->stop_all;
done_testing;
