#!/usr/bin/perl
# tunnelctl activation list / approve CODE --user U / deny CODE|ID, the
# device flow (issue 10) for operators without a browser, against a
# private PostgreSQL (tools/lib/NgxTunnel/Stack.pm, stopped by PID at the
# end): codes made as tunneld makes them (tunnel_activation_create() of
# sql/005_activation.sql) for real keys; the list shows pending codes only;
# approve adds the key to the user (comment "activated DATE from IP",
# decided from 'tunnelctl'); deny by code or by the list's ID; unknown,
# expired, reused, malformed codes, a key registered meanwhile, disabled
# and unknown users each get one line on stderr and exit 1; command line
# mistakes exit 2.

use strict;
use warnings;

use FindBin;
use File::Temp qw(tempdir);
use IPC::Run ();
use POSIX qw(strftime);
use Test::More;

my $root;
BEGIN { $root = "$FindBin::Bin/.." }
use lib "$root/tools/lib", "$root/t/lib";
use NgxTunnel::Stack;
use NgxTunnel::Test qw(watchdog);

watchdog(120);

my $bin = $ENV{TUNNELCTL} // ($ENV{NGX_TUNNEL_BUILD} // "$root/build") . "/tunnelctl";
BAIL_OUT("$bin not built: run 'make build/tunnelctl'") unless -x $bin;
plan skip_all => 'ssh-keygen missing' unless `which ssh-keygen` =~ /\S/;

my $TS = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

my $dir = tempdir('tunnelctl-act.XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/keys" or die;

my $s = NgxTunnel::Stack->new(root => $root, dir => "$dir/stack",
                              http_port => NgxTunnel::Stack::free_port(),
                              ssh_port => NgxTunnel::Stack::free_port());
$s->start_postgres;

sub ctl {
    my ($out, $err) = ('', '');
    my %env = (PATH => $ENV{PATH}, DATABASE_URL => $s->database_url);
    IPC::Run::run([$bin, @_], '<', \'', '>', \$out, '2>', \$err,
        init => sub { %ENV = %env }, IPC::Run::timeout(60));
    return ($? >> 8, $out, $err);
}

sub sql {
    my ($q) = @_;
    my ($rc, $out, $err) = $s->psql_db('ngx_tunnel', $q);
    die "psql failed: $err" if $rc != 0;
    $out =~ s/\s+\z//;
    return $out;
}

# ($rc, $out, $err) is a failure with exactly this one-line message
sub fails {
    my ($r, $code, $msg, $name) = @_;
    my ($rc, $out, $err) = @$r;
    subtest $name => sub {
        is($rc, $code, "exit $code");
        is($out, '', 'nothing on stdout');
        is($err, "tunnelctl: $msg\n", 'message');
    };
}

# one regex from pieces
sub re { my $s = join '', @_; return qr/$s/ }

my $serial = 0;
sub make_key {
    $serial++;
    my $f = "$dir/keys/k$serial";
    system('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', "k$serial",
           '-f', $f) == 0 or die "ssh-keygen failed";
    open my $fh, '<', "$f.pub" or die;
    chomp(my $line = <$fh>);
    my ($type, $b64) = split ' ', $line;
    my ($fp) = `ssh-keygen -lf $f.pub` =~ /(SHA256:\S+)/ or die;
    return { type => $type, b64 => $b64, fp => $fp, pub => "$f.pub" };
}

my $device = 0;
sub make_code {
    my ($letters, $key, $client) = @_;
    $device++;
    $client //= '203.0.113.7:50000';
    my $out = sql("SELECT r_status || ' ' || coalesce(r_id::text, '-') FROM "
        . "tunnel_activation_create(sha256(convert_to('$letters', 'UTF8')), "
        . "sha256(convert_to('dev-$device', 'UTF8')), '$key->{fp}', "
        . "'$key->{type}', '$key->{b64}', '$client', 'node', 'session', "
        . "600, 100, 1000)");
    my ($status, $id) = split ' ', $out;
    die "tunnel_activation_create: $out" unless $status eq 'ok';
    return $id;
}

my $today = strftime('%Y-%m-%d', gmtime);


# --- help and command line --------------------------------------------------
my ($rc, $out, $err) = ctl('--help');
like($out, qr/^  activation list  +list the pending device-flow codes/m,
     'usage lists activation list');
like($out, qr/^  activation approve CODE --user USER\n/m,
     'usage lists activation approve');
like($out, qr/^  activation deny CODE\|ID  +refuse it/m,
     'usage lists activation deny');

my $SEE = q{: see 'tunnelctl --help'};
fails([ctl('activation')], 2,
      "'activation' needs list, approve or deny$SEE", 'no subcommand');
fails([ctl('activation', 'accept')], 2,
      "unknown command 'activation accept'$SEE", 'unknown subcommand');
fails([ctl('activation', 'list', 'all')], 2,
      qq{'activation list' takes no argument, not "all"$SEE},
      'list with an argument');
fails([ctl('activation', 'approve', 'BCDF-GHJK')], 2,
      "'activation approve' takes a CODE and --user USER$SEE",
      'approve without --user');
fails([ctl('activation', 'approve', '--user', 'bob')], 2,
      "'activation approve' takes a CODE and --user USER$SEE",
      'approve without a code');
fails([ctl('activation', 'approve', 'BCDF-GHJK', '--user')], 2,
      "--user needs a value$SEE", '--user without a value');
fails([ctl('activation', 'approve', 'BCDF', 'GHJK', '--user', 'bob')], 2,
      "'activation approve' takes one CODE$SEE", 'approve with two codes');
fails([ctl('activation', 'approve', 'BCDF-GHJK', '--as', 'bob')], 2,
      qq{unknown option "--as" for 'activation approve'$SEE},
      'approve with an unknown option');
fails([ctl('activation', 'deny')], 2,
      "'activation deny' takes one CODE or ID$SEE", 'deny without a code');
fails([ctl('activation', 'deny', '1', '2')], 2,
      "'activation deny' takes one CODE or ID$SEE", 'deny with two');


# --- list -------------------------------------------------------------------
($rc, $out, $err) = ctl('migrate');
is($rc, 0, 'migrate') or diag($err);
for my $u (qw(bob carol)) {
    ($rc, $out, $err) = ctl('user', 'add', $u);
    is($rc, 0, "user add $u") or diag($err);
}

is_deeply([ctl('activation', 'list')],
          [0, '', "tunnelctl: no activation code is pending\n"],
          'list, nothing pending');

my @k = map { make_key() } 1 .. 6;
my $id1 = make_code('BCDFGHJK', $k[0]);
my $id2 = make_code('CDFGHJKL', $k[1], '[2001:db8::1]:40000');
($rc, $out, $err) = ctl('activation', 'list');
is($rc, 0, 'list exit 0');
is($err, '', 'list: no stderr');
my @lines = split /\n/, $out;
like($lines[0], qr/^ID +FINGERPRINT +TYPE +CLIENT +CREATED +EXPIRES$/,
     'list: the header');
is(scalar @lines, 3, 'list: one line per pending code');
like($lines[1], re(qr/^$id1 +\Q$k[0]{fp}\E  ssh-ed25519  /,
                   qr/203\.0\.113\.7:50000 +$TS  $TS$/),
     'list: id, fingerprint, type, client, created, expires');
like($lines[2], re(qr/^$id2 +\Q$k[1]{fp}\E  ssh-ed25519  /,
                   qr/\[2001:db8::1\]:40000 +$TS  $TS$/),
     '... for each code');
unlike($out, qr/BCDF|GHJK/, 'codes are never listed (only their hash is '
       . 'stored)');


# --- approve ----------------------------------------------------------------
fails([ctl('activation', 'approve', 'BCDF-GHJA', '--user', 'bob')], 1,
      q{"BCDF-GHJA" is not an activation code: give the 8 letters ssh }
      . q{printed, e.g. WDJB-MJHT}, 'a malformed code');
fails([ctl('activation', 'approve', 'BCDF-GHJK', '--user', 'nobody')], 1,
      q{no user named "nobody": add it with 'tunnelctl user add nobody'},
      'an unknown user');
fails([ctl('activation', 'approve', 'ZZZZ-ZZZZ', '--user', 'bob')], 1,
      q{no code ZZZZ-ZZZZ is waiting: check it against what ssh printed }
      . q{(codes expire after a few minutes); 'tunnelctl activation list' }
      . q{shows the pending ones}, 'an unknown code');

($rc, $out, $err) = ctl('activation', 'approve', 'bcdf ghjk', '--user',
                        'bob');
is($rc, 0, 'approve (lower case, a space for the dash)') or diag($err);
is($out, "approved code BCDF-GHJK: key $k[0]{fp} now belongs to bob; its "
         . "ssh session continues\n", '... says so');
is($err, '', '... nothing on stderr');
is(sql("SELECT u.name || '|' || k.key_type || '|' || k.key_base64 || '|' "
       . "|| k.comment FROM ssh_keys k JOIN users u ON u.id = k.user_id "
       . "WHERE k.fingerprint = '$k[0]{fp}'"),
   "bob|ssh-ed25519|$k[0]{b64}|activated $today from 203.0.113.7",
   'the key is bob\'s, commented with the date and the client\'s address');
is(sql("SELECT u.name || ' ' || c.approved_addr FROM activation_codes c "
       . "JOIN users u ON u.id = c.approved_by WHERE c.id = $id1"),
   'bob tunnelctl', 'the code: approved by bob, from tunnelctl');
($rc, $out) = ctl('key', 'list', 'bob');
like($out, qr/\Q$k[0]{fp}\E.*activated \Q$today\E from 203\.0\.113\.7/,
     "'key list bob' shows it");
($rc, $out) = ctl('activation', 'list');
unlike($out, qr/\Q$k[0]{fp}\E/, 'the approved code is no longer listed');

fails([ctl('activation', 'approve', 'BCDFGHJK', '--user', 'carol')], 1,
      q{code BCDF-GHJK was already approved or denied: a code works once},
      'approving it again');
fails([ctl('activation', 'deny', 'BCDFGHJK')], 1,
      q{code BCDF-GHJK was already approved or denied: a code works once},
      'denying it afterwards');


# --- deny -------------------------------------------------------------------
($rc, $out, $err) = ctl('activation', 'deny', 'CDFG-HJKL');
is($rc, 0, 'deny by code') or diag($err);
is($out, "denied code CDFG-HJKL: key $k[1]{fp} was not added; its ssh "
         . "session is closed\n", '... says so');
is(sql("SELECT coalesce(denied_by::text, '-') || ' ' || denied_addr FROM "
       . "activation_codes WHERE id = $id2"), '- tunnelctl',
   '... recorded as denied from tunnelctl, by no web user');
is(sql("SELECT count(*) FROM ssh_keys WHERE fingerprint = '$k[1]{fp}'"), 0,
   '... no key added');

my $id3 = make_code('DFGHJKLM', $k[2]);
($rc, $out, $err) = ctl('activation', 'deny', $id3);
is($rc, 0, 'deny by the ID of the list') or diag($err);
is($out, "denied activation $id3: key $k[2]{fp} was not added; its ssh "
         . "session is closed\n", '... says so');
fails([ctl('activation', 'deny', $id3)], 1,
      "activation $id3 was already approved or denied: a code works once",
      'denying that ID again');
fails([ctl('activation', 'deny', '999999')], 1,
      q{no activation 999999 is waiting: check it against what ssh printed }
      . q{(codes expire after a few minutes); 'tunnelctl activation list' }
      . q{shows the pending ones}, 'an unknown ID');
fails([ctl('activation', 'deny', 'nonsense!')], 1,
      q{"nonsense!" is not an activation code: give the 8 letters ssh }
      . q{printed, e.g. WDJB-MJHT, or the ID 'tunnelctl activation list' }
      . q{shows}, 'deny: neither a code nor an ID');
fails([ctl('activation', 'approve', $id3, '--user', 'bob')], 1,
      qq{"$id3" is not an activation code: give the 8 letters ssh printed, }
      . q{e.g. WDJB-MJHT}, 'approve takes a code, never an ID');


# --- expired, key taken, disabled user ------------------------------------
my $id4 = make_code('FGHJKLMN', $k[3]);
sql("UPDATE activation_codes SET expires_at = now() - interval '1 s' "
    . "WHERE id = $id4");
fails([ctl('activation', 'approve', 'FGHJ-KLMN', '--user', 'bob')], 1,
      q{code FGHJ-KLMN has expired: run the ssh command again for a new }
      . q{code}, 'an expired code');
($rc, $out) = ctl('activation', 'list');
unlike($out, qr/\Q$k[3]{fp}\E/, 'expired codes are not listed');

my $id5 = make_code('GHJKLMNP', $k[4]);
($rc, $out, $err) = ctl('key', 'add', 'carol', $k[4]{pub});
is($rc, 0, 'carol registers the waiting key meanwhile') or diag($err);
fails([ctl('activation', 'approve', 'GHJK-LMNP', '--user', 'bob')], 1,
      "the key $k[4]{fp} of code GHJK-LMNP is registered to another user "
      . "already: see 'tunnelctl key list'", 'the key belongs to carol now');
is(sql("SELECT u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id "
       . "WHERE k.fingerprint = '$k[4]{fp}'"), 'carol', '... and stays hers');

my $id6 = make_code('HJKLMNPQ', $k[5]);
($rc, $out, $err) = ctl('user', 'disable', 'carol');
is($rc, 0, 'carol is disabled') or diag($err);
fails([ctl('activation', 'approve', 'HJKL-MNPQ', '--user', 'carol')], 1,
      q{user "carol" is disabled: run 'tunnelctl user enable carol' first},
      'approving for a disabled user');
is(sql("SELECT approved_at IS NULL AND denied_at IS NULL FROM "
       . "activation_codes WHERE id = $id6"), 't', '... the code stays '
       . 'pending');
($rc, $out) = ctl('activation', 'list');
like($out, qr/^$id6 +\Q$k[5]{fp}\E /m, '... and listed');


# --- before migrate 005 -----------------------------------------------------
sql("CREATE DATABASE empty_db");
{
    my ($o, $e) = ('', '');
    (my $url = $s->database_url) =~ s{/ngx_tunnel\?}{/empty_db?};
    IPC::Run::run([$bin, 'activation', 'list'], '<', \'', '>', \$o,
                  '2>', \$e,
                  init => sub { %ENV = (PATH => $ENV{PATH},
                                        DATABASE_URL => $url) },
                  IPC::Run::timeout(60));
    is($? >> 8, 1, 'an empty database: exit 1');
    like($e, re(qr/^tunnelctl: cannot list activation codes: the database /,
                qr/has no ngx-tunnel schema .*run 'tunnelctl migrate' /,
                qr/first\n\z/),
         '... run migrate first');
}

$s->stop_postgres;
done_testing();
