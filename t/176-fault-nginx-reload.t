#!/usr/bin/perl

# Fault matrix (issue 14): nginx reloaded (SIGHUP to its master) while a
# 256 MiB download and a WebSocket go through a tunnel.  The download must
# complete byte-exact (sha256), the WebSocket must stay up (echo after the
# reload), new requests must see the new configuration (an add_header
# changed before the HUP), and the old workers must exit once their last
# connection is done (the module's Redis connections do not hold them).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Digest::SHA;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(420);

my $N = 256 * 1024 * 1024;

sub gen_conf { "add_header X-Config-Gen $_[0] always;" }

my $s = start_stack(nginx_extra => gen_conf(1));
my $master = $s->pid('nginx');

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'big');

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "big:80:localhost:$be->{port}");
ok(wait_route($s, 'big', 10), 'tunnel up') or diag($ssh->output);


# nginx worker processes: pid => title ("nginx: worker process" or "...
# is shutting down")
sub workers {
    my %w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        next unless $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $master;
        my $pid = $1;
        my $cmd = read_file("/proc/$pid/cmdline");
        $cmd =~ s/\0+$//;
        $w{$pid} = $cmd;
    }
    return \%w;
}

sub gen_of {
    my $r = eval { http_get($s, 'big', '/', timeout => 10) };
    return $r ? ($r->{headers}{'x-config-gen'} // 'none') . " $r->{status}"
              : "error: $@";
}

is(gen_of(), '1 200', 'before the reload: X-Config-Gen 1');
my $old = workers();
is(scalar keys %$old, 2, 'two workers before the reload');


# --- a WebSocket, open across the reload -------------------------------------

my $ws = eval { ws_handshake($s, 'big', '/ws') };
is($ws && $ws->{status}, 101, 'WebSocket: 101') or diag($@);
my $wc = $ws ? $ws->{conn} : undef;
ws_send($wc, 0x1, 'before the reload') if $wc;
my @f = $wc ? ws_recv($wc, 5) : ();
is("@f", '1 1 before the reload', 'WebSocket: echo before the reload');


# --- the download; the reload happens 64 MiB in ------------------------------

my ($reload_at, $t_reload, $t_gen2, $gen_during) = (0, 0, 0, '');
{
    my $d = Digest::SHA->new(256);
    my $got = 0;
    my $t0 = time;
    my $r = eval {
        http_get($s, 'big', "/bytes/$N", timeout => 300, on_body => sub {
            $d->add($_[0]);
            $got += length $_[0];
            if (!$reload_at && $got >= 64 * 1024 * 1024) {
                $reload_at = $got;
                $s->{nginx_extra} = gen_conf(2);
                $t_reload = time;
                $s->reload_nginx;        # rewrites nginx.conf, HUP, 0.5 s
                # while this download waits: new requests, new config
                $gen_during = '';
                wait_until(10, sub { ($gen_during = gen_of()) eq '2 200' });
                $t_gen2 = time - $t_reload;
            }
        });
    };
    my $dt = time - $t0;
    is($r && $r->{status}, 200, '256 MiB download: 200') or diag($@);
    ok($reload_at, sprintf 'reloaded with %d MiB of %d received',
        $reload_at / 1048576, $N / 1048576);
    is($got, $N, '256 MiB download: every byte across the reload');
    is($d->hexdigest, pattern_sha256($N), '256 MiB download: sha256');
    is($gen_during, '2 200', sprintf 'during the download: new requests '
        . 'see X-Config-Gen 2 (%.2f s after the HUP)', $t_gen2);
    is($r && $r->{headers}{'x-config-gen'}, 1,
        '256 MiB download: served to its end by the old configuration');
    diag(sprintf '256 MiB download across a reload: %.2f s, %.1f MB/s',
        $dt, $N / 1048576 / $dt);
}


# --- after the reload -----------------------------------------------------------

{
    # the master started new workers; they answer every new connection
    my @gens = map { gen_of() } 1 .. 10;
    is(join(',', @gens), join(',', ('2 200') x 10),
        'after the reload: ten more requests, all on the new configuration');

    # the old WebSocket still works (its old worker stays for it)
    SKIP: {
        skip 'no WebSocket', 3 unless $wc;
        ws_send($wc, 0x1, 'after the reload');
        my @f = ws_recv($wc, 5);
        is("@f", '1 1 after the reload', 'WebSocket: echo after the reload');
        my $big = pattern_bytes(300_000);
        ws_send($wc, 0x2, $big);
        @f = ws_recv($wc, 10);
        ok(defined $f[2] && $f[2] eq $big,
            'WebSocket: 300 KB binary echo after the reload');
        my $w = workers();
        my @old_left = grep { exists $w->{$_} } keys %$old;
        ok(@old_left >= 1 && (grep { $w->{$_} =~ /shutting down/ } @old_left),
            'an old worker is still there (shutting down), holding the '
            . 'WebSocket: ' . join(', ', map { "$_ $w->{$_}" } @old_left));
    }

    # a WebSocket opened now goes to a new worker, with the new header
    my $ws2 = eval { ws_handshake($s, 'big', '/ws') };
    is($ws2 && $ws2->{status}, 101, 'new WebSocket after the reload: 101');
    is($ws2 && $ws2->{headers}{'x-config-gen'}, 2,
        'new WebSocket: handshake by the new configuration');
    if ($ws2 && $ws2->{status} == 101) {
        ws_send($ws2->{conn}, 0x1, 'new');
        my @f = ws_recv($ws2->{conn}, 5);
        is("@f", '1 1 new', 'new WebSocket: echo');
        ws_send($ws2->{conn}, 0x8, pack('n', 1000));
        ws_recv($ws2->{conn}, 5);
    }
}


# --- the old WebSocket closes: the old workers exit ---------------------------

{
    if ($wc) {
        ws_send($wc, 0x8, pack('n', 1000));
        my @f = ws_recv($wc, 5);
        is($f[1] && "$f[1] " . unpack('n', $f[2]), '8 1000',
            'WebSocket: close answered');
        close $wc->{sock};
    }
    my $t0 = time;
    my $gone = wait_until(15, sub {
        my $w = workers();
        return !grep { exists $w->{$_} } keys %$old;
    });
    ok($gone, sprintf 'old workers exit once their connections are done '
        . '(%.2f s after the WebSocket closed)', time - $t0)
        or diag(join "\n", map { "$_ $_[0]" } %{ workers() });
    my $w = workers();
    is(scalar(grep { $w->{$_} eq 'nginx: worker process' } keys %$w), 2,
        'two workers after the reload');
}

is(status_body($s, 'big'), '200 hello from backend big',
    'the tunnel still serves');
ok($ssh->alive, 'the ssh session is kept');

$ssh->stop;
check_logs($s);

$s->stop_all;
done_testing;
