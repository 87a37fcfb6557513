#!/usr/bin/perl
# Admin UI /keys: pasted public keys are validated, their fingerprint is the
# one `ssh-keygen -lf` prints, each key belongs to one account, users see
# and remove only their own keys, rows land in ssh_keys for tunneld.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;
plan skip_all => 'ssh-keygen missing' unless `which ssh-keygen` =~ /\S/;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $alice = $t->setup_admin;
my $bob = $t->join_user($alice, 'bob');
my $kd = $t->dir . '/keys';
mkdir $kd;

sub keygen {
    my ($name, @args) = @_;
    system('ssh-keygen', '-q', '-N', '', '-C', "$name\@test", @args,
           '-f', "$kd/$name") == 0 or die "ssh-keygen $name failed";
    open my $fh, '<', "$kd/$name.pub" or die;
    my $line = <$fh>;
    chomp $line;
    return $line;
}

sub fingerprint {
    my ($file) = @_;
    my $out = `ssh-keygen -l -E sha256 -f $file`;
    return $out =~ /(SHA256:\S+)/ ? $1 : 'none';
}

sub add_key {
    my ($ua, $line) = @_;
    my $r = $ua->get('/keys');
    return $ua->post('/keys', { action => 'add', key => $line,
                                csrf => csrf($r) });
}

sub sstr { pack('N', length $_[0]) . $_[0] }

# --- valid keys ------------------------------------------------------------------
my %keys = (
    ed25519  => [ '-t', 'ed25519' ],
    ecdsa256 => [ '-t', 'ecdsa', '-b', '256' ],
    ecdsa384 => [ '-t', 'ecdsa', '-b', '384' ],
    ecdsa521 => [ '-t', 'ecdsa', '-b', '521' ],
    rsa3072  => [ '-t', 'rsa', '-b', '3072' ],
);

for my $name (sort keys %keys) {
    my $line = keygen($name, @{ $keys{$name} });
    my $r = add_key($alice, $line);
    is($r->{status}, 303, "$name key added");
    like($r->{headers}{location} // '', qr{/keys\?done=key-added$},
         '... back to /keys');
    my $fp = fingerprint("$kd/$name.pub");
    my $page = $alice->get('/keys')->{content};
    like($page, qr/\Q$fp\E/, "$name fingerprint shown, equal to ssh-keygen's");
    my ($type, $b64) = split ' ', $line;
    is($t->sql("SELECT key_type || ' ' || key_base64 || ' ' || comment "
                . "FROM ssh_keys WHERE fingerprint = '$fp'"),
       "$type $b64 $name\@test", "$name row: type, canonical blob, comment");
}

# an sk-ssh-ed25519 key, built by hand (no security key here)
my $sk_blob = sstr('sk-ssh-ed25519@openssh.com') . sstr('k' x 32)
            . sstr('ssh:');
my $sk_line = 'sk-ssh-ed25519@openssh.com '
            . encode_base64($sk_blob, '') . ' my security key';
open my $fh, '>', "$kd/sk.pub" or die;
print $fh "$sk_line\n";
close $fh;
my $r = add_key($alice, "  $sk_line \r\n");
is($r->{status}, 303, 'sk-ssh-ed25519 key added (whitespace trimmed)');
my $skfp = fingerprint("$kd/sk.pub");
like($alice->get('/keys')->{content}, qr/\Q$skfp\E/, 'sk fingerprint right');

is($t->sql("SELECT count(*) FROM ssh_keys k JOIN users u ON u.id = k.user_id"
            . " WHERE u.name = 'alice'"), 6, 'six keys stored for alice');

# --- invalid lines -------------------------------------------------------------
my $ed = keygen('other', '-t', 'ed25519');
my ($etype, $eb64) = split ' ', $ed;
my $rsa1024 = keygen('rsa1024', '-t', 'rsa', '-b', '1024');
my $wrongtype_blob = decode_base64($eb64);
my @bad = (
    [ '', qr/Paste your public key/, 'empty' ],
    [ 'hello world', qr/Unknown key type/, 'garbage' ],
    [ "$etype", qr/key itself is missing/, 'type only' ],
    [ "$etype " . substr($eb64, 0, 40), qr/damaged/, 'truncated base64' ],
    [ "$etype " . encode_base64(substr($wrongtype_blob, 0, 30), ''),
      qr/damaged or incomplete/, 'truncated blob' ],
    [ "ssh-rsa $eb64 x", qr/type inside does not match/, 'type mismatch' ],
    [ "$etype ${eb64}!! x", qr/not valid/, 'bad base64 characters' ],
    [ $rsa1024, qr/too short/, 'RSA 1024 bits' ],
    [ "no-pty,command=\"x\" $ed", qr/without authorized_keys options/,
      'authorized_keys options' ],
    [ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----",
      qr/private key/, 'private key' ],
    [ "$ed\n$ed", qr/one key only/, 'two lines' ],
    [ "ssh-dss AAAAB3NzaC1kc3MAAACBAP1 x", qr/Unknown key type/, 'DSA' ],
    [ "ssh-ed25519-cert-v01\@openssh.com AAAA x", qr/Certificates/,
      'certificate' ],
);

for my $b (@bad) {
    my ($line, $re, $what) = @$b;
    $r = add_key($bob, $line);
    is($r->{status}, 422, "refused: $what");
    like($r->{content}, $re, "... with a helpful message ($what)");
}

$r = add_key($bob, "hello <script>alert(1)</script> world");
unlike($r->{content}, qr/<script>/, 'pasted text is escaped when kept');
like($r->{content}, qr/&lt;script&gt;/, '... and kept in the form');
is($t->sql("SELECT count(*) FROM ssh_keys k JOIN users u ON u.id = k.user_id"
            . " WHERE u.name = 'bob'"), 0, 'nothing stored for bob');

# --- ownership -----------------------------------------------------------------
$r = add_key($alice, $ed);
is($r->{status}, 303, 'alice adds another key');
$r = add_key($alice, $ed);
is($r->{status}, 422, 'the same key twice: refused');
like($r->{content}, qr/already added this key/, '... "already yours"');
$r = add_key($bob, "$ed different comment");
is($r->{status}, 422, "bob cannot add alice's key");
like($r->{content}, qr/belongs to another account/, '... says so');

my $fp = fingerprint("$kd/other.pub");
my $id = $t->sql("SELECT id FROM ssh_keys WHERE fingerprint = '$fp'");
my $page = $bob->get('/keys');
unlike($page->{content}, qr/\Q$fp\E/, "bob does not see alice's keys");
$r = $bob->post('/keys', { action => 'delete', id => $id,
                           csrf => csrf($page) });
is($r->{status}, 422, "bob cannot remove alice's key");
is($t->sql("SELECT count(*) FROM ssh_keys WHERE id = $id"), 1,
   '... it is still there');

$page = $alice->get('/keys');
$r = $alice->post('/keys', { action => 'delete', id => $id,
                             csrf => csrf($page) });
is($r->{status}, 303, 'alice removes her key');
like($r->{headers}{location}, qr/done=key-removed/, '... confirmed');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE id = $id"), 0,
   '... row gone');
$r = add_key($bob, $ed);
is($r->{status}, 303, 'once removed, the key can be added by bob');

$r = $alice->post('/keys', { action => 'delete', id => "1 OR 1=1",
                             csrf => csrf($page) });
is($r->{status}, 422, 'odd id refused');

my $log = $t->error_log;
unlike($log, qr/\[(alert|crit|emerg|error)\]/, 'no errors in error log');

$t->stop_all;
done_testing;
