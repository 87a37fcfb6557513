#!/usr/bin/perl

# The cipher offer: OpenSSH clients are offered AES-GCM only (about twice
# chacha20-poly1305's speed with AES-NI; the client's preference would
# otherwise pick chacha20), so a client restricted to chacha20 is refused
# with OpenSSH's "no matching cipher"; `tunneld --ciphers LIST` lets the
# operator offer more, and a bad list stops tunneld at start.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;

use NgxTunnel::Test;

watchdog(180);

my $gcm = 'aes128-gcm@openssh.com';
my $chacha = 'chacha20-poly1305@openssh.com';

sub tunnel_with_cipher {
    my ($s, $u, $be, $name, $cipher) = @_;
    my $ssh = start_ssh($s, key => $u->{key}, user => $u->{name},
        remote => "$name:80:localhost:$be->{port}",
        extra => ['-c', $cipher]);
    my $route = wait_route($s, $name, 10);
    my $body = $route ? http_get($s, $name, '/')->{body} : undef;
    $ssh->stop;
    wait_no_route($s, $name, 10);
    return ($route, $body, $ssh);
}

{
    my $s = start_stack();
    my $u = new_user($s, 'alice');
    $u->{name} = 'alice';
    my $be = start_backend($s, 'one');

    my ($route, $body) = tunnel_with_cipher($s, $u, $be, 'gcm', $gcm);
    ok($route, "default offer: a client asking for $gcm gets a tunnel");
    is($body, 'hello from backend one', 'default offer: the tunnel answers');

    my ($rc, $out, $err) = run_ssh($s, key => $u->{key}, user => 'alice',
        remote => "cc:80:localhost:$be->{port}", extra => ['-c', $chacha],
        timeout => 15);
    is($rc, 255, 'default offer: a chacha20-only client is refused');
    like($err, qr/no matching cipher found.*\Q$gcm\E/,
        "default offer: OpenSSH says why and names the server's offer")
        or diag($err);

    check_logs($s, allow_tunneld => [qr/key exchange|kex|cipher|closed/i]);
    $s->stop_all;
}

{
    my $s = start_stack(tunneld_args => ['--ciphers', "$gcm,$chacha"]);
    my $u = new_user($s, 'bob');
    $u->{name} = 'bob';
    my $be = start_backend($s, 'two');

    my ($route, $body) = tunnel_with_cipher($s, $u, $be, 'cc', $chacha);
    ok($route, '--ciphers with chacha20: a chacha20-only client gets a tunnel');
    is($body, 'hello from backend two', '--ciphers: the tunnel answers');
    check_logs($s);
    $s->stop_all;
}

{
    my $build = $ENV{NGX_TUNNEL_BUILD} // "$Bin/../build";
    my $out = `$build/tunneld --ciphers nonsense 2>&1`;
    is($? >> 8, 2, 'a --ciphers list libssh does not know: exit 2');
    like($out, qr/--ciphers "nonsense" names no cipher/,
        'a --ciphers list libssh does not know: says which option and why');
}

done_testing();
