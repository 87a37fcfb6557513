#!/usr/bin/perl
# The admin's parsers of browser input (admin/ngx_http_tunnel_admin_parse.c,
# fuzzed by t/fuzz/admin.c) end to end: a form value that nginx's UTF-8
# decoder accepts but PostgreSQL refuses (an encoded UTF-16 surrogate, an
# overlong form) is refused as an unreadable form (400), never passed on
# to the database; a malformed %-escape likewise.  Valid UTF-8 still goes
# through, byte for byte.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use NgxTunnel::AdminTest qw(csrf);

my $missing = NgxTunnel::AdminTest::missing();
plan skip_all => $missing if $missing;
plan skip_all => 'ssh-keygen missing' unless `which ssh-keygen` =~ /\S/;

my $t = NgxTunnel::AdminTest->new;
$t->start_all;

my $alice = $t->setup_admin;
my $kd = $t->dir . '/keys';
mkdir $kd;

my $n = 0;
sub key_line {
    $n++;
    system('ssh-keygen', '-q', '-N', '', '-C', 'c', '-t', 'ed25519',
           '-f', "$kd/k$n") == 0 or die "ssh-keygen failed";
    open my $fh, '<', "$kd/k$n.pub" or die;
    my ($type, $b64) = split ' ', scalar <$fh>;
    return "$type $b64";
}

# posts /keys with a body whose comment part is given already %-encoded
sub add_raw {
    my ($comment_enc) = @_;
    my $r = $alice->get('/keys');
    my $line = key_line();
    my $esc = sub {
        (my $v = shift) =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
        $v;
    };
    my $body = 'action=add&csrf=' . $esc->(csrf($r)) . '&key='
             . $esc->("$line ") . $comment_enc;
    my $cookies = join '; ',
        map { "$_=$alice->{jar}{$_}" } sort keys %{ $alice->{jar} };
    return $alice->{http}->request('POST', "$alice->{base}/keys", {
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
                     Cookie => $cookies },
        content => $body });
}

my %bad = (
    'UTF-16 surrogate U+D800 (ED A0 80)' => '%ED%A0%80',
    'overlong "/" (C0 AF)'               => 'a%C0%AFb',
    'beyond U+10FFFF (F4 90 80 80)'      => '%F4%90%80%80',
    'malformed %-escape'                 => 'x%zzy',
);

for my $what (sort keys %bad) {
    my $before = $t->sql('SELECT count(*) FROM ssh_keys');
    my $r = add_raw($bad{$what});
    is($r->{status}, 400, "comment with $what: 400");
    like($r->{content} // '', qr/form could not be read/i,
         '... the form is refused as unreadable');
    is($t->sql('SELECT count(*) FROM ssh_keys'), $before,
       '... and no key was stored');
}

my $r = add_raw('%C3%A9t%C3%A9%20%F0%9F%94%91');
is($r->{status}, 303, 'valid UTF-8 comment (été, U+1F511): key added');
is($t->sql("SELECT count(*) FROM ssh_keys WHERE comment = "
           . "convert_from('\\xc3a974c3a920f09f9491', 'UTF8')"),
   1, '... stored byte for byte');

$t->check_logs if $t->can('check_logs');

done_testing();
