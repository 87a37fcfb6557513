#!/usr/bin/perl
# WebSocket echo server for the benchmark's workload g (tools/bench).  The
# bench's backend nginx proxies /ws here, so every setup reaches it by the
# same path.  One forked child per connection; each text/binary frame is
# sent back unmasked with the same opcode; ping -> pong; close -> close.
# Not a general WebSocket server: no fragmentation, no extensions, frames
# up to 64 KiB.  Exits by itself after --max-seconds (bounded); the bench
# also stops it by PID.
#
#   ws-echo.pl --port N [--max-seconds S]

use strict;
use warnings;
use IO::Socket::INET;
use Digest::SHA qw(sha1_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Getopt::Long;

my $port = 0;
my $max_seconds = 3600;
GetOptions('port=i' => \$port, 'max-seconds=i' => \$max_seconds)
    or die "usage: ws-echo.pl --port N [--max-seconds S]\n";

my $listen = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 128,
    ReuseAddr => 1, Proto => 'tcp',
) or die "ws-echo: listen 127.0.0.1:$port: $!\n";

$SIG{CHLD} = 'IGNORE';
$SIG{ALRM} = sub { exit 0 };
alarm $max_seconds;

while (1) {
    my $c = $listen->accept or next;
    my $pid = fork;
    if (!defined $pid) {
        close $c;
        next;
    }
    if ($pid == 0) {
        close $listen;
        serve($c);
        exit 0;
    }
    close $c;
}

sub read_more {
    my ($c, $buf) = @_;
    my $n = sysread($c, $$buf, 65536, length $$buf);
    return $n;
}

sub serve {
    my ($c) = @_;
    setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);
    my $buf = '';

    while ($buf !~ /\r\n\r\n/) {
        return unless read_more($c, \$buf);
        return if length $buf > 16384;
    }
    my ($head) = $buf =~ /^(.*?\r\n)\r\n/s;
    $buf =~ s/^.*?\r\n\r\n//s;
    my ($key) = $head =~ /^Sec-WebSocket-Key:\s*(\S+)/mi;
    if (!defined $key) {
        syswrite($c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                     . "Connection: close\r\n\r\n");
        return;
    }
    my $accept = sha1_base64($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
                 . '=';
    syswrite($c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n");

    while (1) {
        while (length $buf < 2) {
            return unless read_more($c, \$buf);
        }
        my ($b0, $b1) = unpack 'CC', $buf;
        my $len = $b1 & 0x7f;
        my $masked = $b1 & 0x80;
        my $hlen = 2;
        $hlen += 2 if $len == 126;
        return if $len == 127;
        $hlen += 4 if $masked;
        while (length $buf < $hlen) {
            return unless read_more($c, \$buf);
        }
        $len = unpack 'n', substr($buf, 2, 2) if $len == 126;
        while (length $buf < $hlen + $len) {
            return unless read_more($c, \$buf);
        }
        my $payload = substr($buf, $hlen, $len);
        if ($masked) {
            my $mask = substr($buf, $hlen - 4, 4);
            $payload ^= substr($mask x (int($len / 4) + 1), 0, $len);
        }
        substr($buf, 0, $hlen + $len) = '';

        my $op = $b0 & 0x0f;
        if ($op == 8) {
            syswrite($c, pack('CC', 0x88, 0));
            return;
        }
        $op = 0xA if $op == 9;
        my $hdr = $len < 126 ? pack('CC', 0x80 | $op, $len)
                             : pack('CCn', 0x80 | $op, 126, $len);
        syswrite($c, $hdr . $payload) or return;
    }
}
