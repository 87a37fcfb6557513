#!/usr/bin/perl

# The algorithm lists (issue 14): what a default OpenSSH client agrees
# with tunneld (its post-quantum hybrids are not in libssh 0.10.6, so
# curve25519-sha256), `--kex`, `--macs` and `--hostkey-algorithms`
# restricting the offer (the real OpenSSH client agreeing and refusing),
# also from --config, and a bad list refused at start naming the bad
# entry and the supported ones.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use File::Temp qw(tempdir);
use Test::More;

use NgxTunnel::Test;

watchdog(300);

my $tunneld = "$Bin/../build/tunneld";

# the "KEX algorithms:" line of the client's and of the server's KEXINIT
sub proposals {
    my ($err) = @_;
    my ($client) = $err =~ /local client KEXINIT proposal.*?KEX algorithms: (\S+)/s;
    my ($server) = $err =~ /peer server KEXINIT proposal.*?KEX algorithms: (\S+)/s;
    my ($hk) = $err =~ /peer server KEXINIT proposal.*?host key algorithms: (\S+)/s;
    my ($mac) = $err =~ /peer server KEXINIT proposal.*?MACs ctos: (\S+)/s;
    return ($client // '', $server // '', $hk // '', $mac // '');
}

my $qkex = `ssh -Q kex`;
my @qkex = split /\n/, $qkex;
my $version = `ssh -V 2>&1`;
chomp $version;

{
    my $s = start_stack();
    my $u = new_user($s, 'alice');
    my $be = start_backend($s, 'one');

    my $ssh = start_ssh($s, key => $u->{key}, user => 'alice',
        remote => "pq:80:localhost:$be->{port}", extra => ['-vv']);
    ok(wait_route($s, 'pq', 20), 'default offer: a default OpenSSH client '
        . 'gets a tunnel');
    $ssh->wait_for(qr/kex: host key algorithm/, 10);
    my $err = $ssh->output;
    $ssh->stop;
    my ($client, $server, $hk) = proposals($err);
    my ($kex) = $err =~ /kex: algorithm: (\S+)/;
    my ($hostkey) = $err =~ /kex: host key algorithm: (\S+)/;
    note("client: $version");
    note("ssh -Q kex: " . join(',', @qkex));
    note("client offers: $client");
    note("tunneld offers: $server");
    note("negotiated: $kex, host key $hostkey");
    like($client, qr/^(?:sntrup761x25519-sha512|mlkem768x25519)/,
        'the OpenSSH client offers a post-quantum hybrid first');
    unlike($server, qr/sntrup|mlkem/,
        'tunneld (libssh 0.10.6) offers no post-quantum hybrid');
    like($server, qr/^curve25519-sha256,/, 'tunneld offers curve25519 first');
    is($kex, 'curve25519-sha256', 'so a default client negotiates '
        . 'curve25519-sha256');
    is($hostkey, 'ssh-ed25519', 'host key algorithm: ssh-ed25519');
    my %offered = map { $_ => 1 } split /,/, $server;
    my @both = grep { $offered{$_} } @qkex;
    note("in both ssh -Q kex and tunneld's offer: @both");
    ok(scalar(@both) >= 4, 'several key exchanges in common');
    $s->stop_all;
}

my $dir = tempdir(CLEANUP => 1);
open my $cf, '>', "$dir/tunneld.conf" or die;
print $cf "kex = ecdh-sha2-nistp256,curve25519-sha256\@libssh.org\n";
close $cf;

{
    my $s = start_stack(tunneld_args => ['--config', "$dir/tunneld.conf",
        '--ciphers', 'aes128-ctr,aes128-gcm@openssh.com',
        '--macs', 'hmac-sha2-256', '--hostkey-algorithms', 'ssh-ed25519']);
    my $u = new_user($s, 'bob');
    my $be = start_backend($s, 'two');

    my $ssh = start_ssh($s, key => $u->{key}, user => 'bob',
        remote => "ec:80:localhost:$be->{port}",
        extra => ['-vv', '-o', 'KexAlgorithms=ecdh-sha2-nistp256']);
    ok(wait_route($s, 'ec', 20), 'kex from --config: a client asking for '
        . 'ecdh-sha2-nistp256 gets a tunnel');
    is(http_get($s, 'ec', '/')->{body}, 'hello from backend two',
        'kex from --config: the tunnel answers');
    $ssh->wait_for(qr/kex: host key algorithm/, 10);
    my ($client, $server, $hk, $mac) = proposals($ssh->output);
    $ssh->stop;
    note("tunneld offers: kex $server; host keys $hk; MACs $mac");
    like($server, qr/^ecdh-sha2-nistp256,curve25519-sha256\@libssh\.org(?:,|$)/,
        'the offer is the configured list (libssh adds only its ext-info '
        . 'and strict-kex markers)');
    unlike($server, qr/(?:^|,)curve25519-sha256(?:,|$)|diffie-hellman/,
        'nothing else is offered');
    is($hk, 'ssh-ed25519', 'host key offer: ssh-ed25519 only');
    is($mac, 'hmac-sha2-256', 'MAC offer: hmac-sha2-256 only');

    my ($rc, $out, $err) = run_ssh($s, key => $u->{key}, user => 'bob',
        remote => "no:80:localhost:$be->{port}",
        extra => ['-o', 'KexAlgorithms=curve25519-sha256,'
                  . 'sntrup761x25519-sha512@openssh.com'], timeout => 15);
    is($rc, 255, 'a client whose kex list is not offered is refused');
    like($err, qr/no matching key exchange method found.*ecdh-sha2-nistp256/,
        'OpenSSH says why and names our offer') or diag($err);

    ($rc, $out, $err) = run_ssh($s, key => $u->{key}, user => 'bob',
        remote => "no:80:localhost:$be->{port}",
        extra => ['-c', 'aes128-ctr', '-m', 'hmac-sha2-512'], timeout => 15);
    is($rc, 255, '--macs: a client wanting only hmac-sha2-512 is refused');
    like($err, qr/no matching MAC found/, '--macs: OpenSSH says why')
        or diag($err);

    $ssh = start_ssh($s, key => $u->{key}, user => 'bob',
        remote => "ctr:80:localhost:$be->{port}",
        extra => ['-c', 'aes128-ctr', '-m', 'hmac-sha2-256']);
    ok(wait_route($s, 'ctr', 20), '--macs: aes128-ctr with hmac-sha2-256 '
        . 'gets a tunnel');
    $ssh->stop;

    ($rc, $out, $err) = run_ssh($s, key => $u->{key}, user => 'bob',
        remote => "no:80:localhost:$be->{port}",
        extra => ['-o', 'HostKeyAlgorithms=rsa-sha2-256'], timeout => 15);
    is($rc, 255, '--hostkey-algorithms: a client wanting only RSA is '
        . 'refused');
    like($err, qr/no matching host key type found/,
        '--hostkey-algorithms: OpenSSH says why') or diag($err);

    check_logs($s, allow_tunneld => [qr/key exchange|kex|closed|no match/i]);
    $s->stop_all;
}

{
    my $out = `$tunneld --kex curve25519-sha256,sntrup761x25519-sha512\@openssh.com 2>&1`;
    is($? >> 8, 2, 'a post-quantum --kex: exit 2');
    like($out, qr/--kex: "sntrup761x25519-sha512\@openssh\.com" is not an algorithm this server supports \(libssh 0\.10 has no post-quantum key exchange\); supported: curve25519-sha256,/,
        'a post-quantum --kex: names the bad entry, why, and the supported '
        . 'ones') or diag($out);

    $out = `$tunneld --macs hmac-sha2-256,hmac-md5 2>&1`;
    is($? >> 8, 2, 'a bad --macs: exit 2');
    like($out, qr/--macs: "hmac-md5" is not .*supported: .*hmac-sha2-256/,
        'a bad --macs: names it and the supported ones') or diag($out);

    $out = `$tunneld --macs none 2>&1`;
    is($? >> 8, 2, '--macs none: refused');

    open my $bad, '>', "$dir/bad.conf" or die;
    print $bad "hostkey-algorithms = ssh-ed25519,ssh-dss\n";
    close $bad;
    $out = `$tunneld --config $dir/bad.conf 2>&1`;
    is($? >> 8, 2, 'a bad list in --config: exit 2');
    like($out, qr/\Q$dir\E\/bad\.conf:1: .*"ssh-dss" is not an algorithm/,
        'a bad list in --config: names the file, line and entry')
        or diag($out);

    # a list the host key (ed25519) cannot sign with
    mkdir "$dir/sock";
    my $root = $> == 0 ? '--allow-root' : '';
    $out = `$tunneld $root --hostkey-algorithms rsa-sha2-256 --host-key $dir/hk --socket-dir $dir/sock --database-url postgresql://127.0.0.1:1/none --redis-url redis://127.0.0.1:1 --listen 127.0.0.1:0 2>&1`;
    is($? >> 8, 2, '--hostkey-algorithms without the key\'s type: exit 2');
    like($out, qr/names none the host key can sign with \(it needs one of: ssh-ed25519\)/,
        '--hostkey-algorithms without the key\'s type: says what to add')
        or diag($out);
}

done_testing();
