#!/usr/bin/perl

# The management API's request parser is strict (issue 14, found by
# reading it and then fuzzing it, t/fuzz/api.c): a request two parsers
# could read two ways is refused with 400, at once, whatever waits after
# it.  Each case is sent raw over tunneld's Unix API socket with the
# connection left open, so an answer that only comes from the read
# timeout (10 s) fails the 3 s bound.  Well-formed requests of every
# shape the real clients send still get 200.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time);

use NgxTunnel::Test;

watchdog(180);

my $s = start_stack(nginx => 0);
my $sock = $s->socket_dir . '/api.sock';

# sends raw bytes, keeps the connection open; returns (status, body, secs)
sub raw {
    my ($bytes) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock)
        or die "connect to $sock: $!\n";
    my $t0 = time;
    print $c $bytes;
    my $got = '';
    my $sel = IO::Select->new($c);
    while (time - $t0 < 12 && $sel->can_read(12 - (time - $t0))) {
        last unless sysread $c, $got, 65536, length $got;
    }
    my $secs = time - $t0;
    close $c;
    my ($status) = $got =~ m{^HTTP/1\.1 (\d{3}) };
    my (undef, $body) = split /\r\n\r\n/, $got, 2;
    return ($status // 0, $body // '', $secs);
}

my @bad = (
    [ "duplicated Content-Length (same value)",
      "DELETE /tunnels/zz HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
      . "Content-Length: 2\r\n\r\n{}" ],
    [ "duplicated Content-Length (two values)",
      "DELETE /tunnels/zz HTTP/1.1\r\nContent-Length: 0\r\n"
      . "Content-Length: 2\r\n\r\n{}" ],
    [ "NUL byte in the request line",
      "GET /healthz\0x HTTP/1.1\r\nHost: a\r\n\r\n" ],
    [ "NUL byte in the method",
      "G\0ET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" ],
    [ "NUL byte in a header value",
      "GET /healthz HTTP/1.1\r\nHost: a\0b\r\n\r\n" ],
    [ "NUL byte in a header name",
      "GET /healthz HTTP/1.1\r\nHo\0st: a\r\n\r\n" ],
    [ "bare LF line endings only",
      "GET /healthz HTTP/1.1\nHost: a\n\n" ],
    [ "a bare LF among CRLF lines",
      "GET /healthz HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n" ],
    [ "a bare LF ending the head",
      "GET /healthz HTTP/1.1\r\nHost: a\r\n\n" ],
    [ "a bare CR inside a header",
      "GET /healthz HTTP/1.1\r\nHost: a\rX: b\r\n\r\n" ],
    [ "a folded header line",
      "GET /healthz HTTP/1.1\r\nHost: a\r\n b\r\n\r\n" ],
    [ "a space before the colon",
      "GET /healthz HTTP/1.1\r\nContent-Length : 0\r\n\r\n" ],
    [ "Content-Length with a sign",
      "DELETE /tunnels/zz HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}" ],
    [ "duplicated Authorization",
      "GET /healthz HTTP/1.1\r\nAuthorization: Bearer a\r\n"
      . "Authorization: Bearer b\r\n\r\n" ],
    [ "garbage after the HTTP version",
      "GET /healthz HTTP/1.1x\r\nHost: a\r\n\r\n" ],
    [ "a control character in the target",
      "GET /health\x01z HTTP/1.1\r\nHost: a\r\n\r\n" ],
);

my $slowest = 0;
for my $case (@bad) {
    my ($what, $bytes) = @$case;
    my ($status, $body, $secs) = raw($bytes);
    is($status, 400, "$what: 400");
    like($body, qr/"error":\s*"bad_request"/, "... with the bad_request code")
        or diag($body);
    cmp_ok($secs, '<', 3, sprintf('... at once (%.3f s)', $secs));
    $slowest = $secs if $secs > $slowest;
}
diag(sprintf('slowest 400 answer: %.3f s over %d cases', $slowest,
    scalar @bad));

# what tunnelctl, the admin module (through nginx: HTTP/1.0) and curl send
my @good = (
    [ 'HTTP/1.1 with Host', "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" ],
    [ 'HTTP/1.0, no headers', "GET /healthz HTTP/1.0\r\n\r\n" ],
    [ 'lower-case names, tabs around the value',
      "GET /healthz HTTP/1.1\r\nhost:\ta \t\r\ncontent-length: 0\r\n\r\n" ],
    [ 'a body with one Content-Length and a query',
      "GET /tunnels?limit=5&user=a%20b HTTP/1.1\r\nContent-Type: "
      . "application/json\r\nContent-Length: 2\r\n\r\n{}" ],
);
for my $case (@good) {
    my ($what, $bytes) = @$case;
    my ($status, $body, $secs) = raw($bytes);
    is($status, 200, "$what: 200") or diag($body);
}

# the 413, 431, 501 answers keep their status
is((raw("GET /healthz HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"))[0], 413,
   'Content-Length over 16384: 413');
is((raw("GET /healthz HTTP/1.1\r\nX: " . ('x' x 9000) . "\r\n\r\n"))[0],
   431, 'head over 8192 bytes: 431');
is((raw("GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))[0],
   501, 'Transfer-Encoding: 501');

# tunneld still serves after all of it
is((raw("GET /healthz HTTP/1.1\r\n\r\n"))[0], 200, 'tunneld still answers');
my @alarms = grep { /tunneld: (?:alert|crit|fatal)\b/i || /AddressSanitizer/ }
    log_lines($s->log_path('tunneld'));
is(scalar @alarms, 0, 'tunneld log: no alert/crit/fatal') or diag("@alarms");

done_testing();
