#!/usr/bin/perl
# steps.pl - the step protocol for a Perl interpreter under mig.
#
# 40 steps (or $ARGV[0]) about 50 ms apart; each prints `step <n> <digest>`,
# then `done <digest>`. The digest is 64-bit FNV-1a over the state (an array
# and a hash) rendered deterministically (sorted keys). FNV-1a is computed
# on two 32-bit halves: plain Perl arithmetic would overflow into doubles.
use strict;
use warnings;
use Time::HiRes ();

$| = 1;    # the output is a pipe: flush every line

# 64-bit FNV-1a over a byte string, hash kept as (hi, lo) 32-bit halves.
sub fnv1a {
    my ($data, $hi, $lo) = @_;
    ($hi, $lo) = (0xcbf29ce4, 0x84222325) unless defined $hi;
    for my $b (unpack 'C*', $data) {
        $lo ^= $b;
        # (hi:lo) * 0x100000001b3 mod 2^64, prime = 0x100 << 32 | 0x1b3
        my $t = $lo * 0x1b3;
        my $carry = int($t / 4294967296);
        $hi = ($hi * 0x1b3 + $lo * 0x100 + $carry) % 4294967296;
        $lo = $t % 4294967296;
    }
    return ($hi, $lo);
}

sub hex64 { return sprintf '%08x%08x', @_ }

# Sleep $s seconds in total, continuing after an early wakeup by a signal.
sub pace {
    my $left = shift;
    while ($left > 0.0005) {
        $left -= Time::HiRes::sleep($left);
    }
}

my $steps = @ARGV ? $ARGV[0] : 40;
my @history;
my %table = (count => 0, text => 'mig');
my ($chi, $clo) = fnv1a('');

for my $step (1 .. $steps) {
    push @history, $step * $step % 97;
    $table{count} += $step;
    $table{"sq" . $step % 10} = $step * $step;
    $table{text} = substr($table{text} . chr(ord('a') + $step % 26), -32);

    my $state = join(',', @history) . ';'
      . join(',', map { "$_=$table{$_}" } sort keys %table);
    my $d = hex64(fnv1a($state));
    ($chi, $clo) = fnv1a($d, $chi, $clo);
    print "step $step $d\n";
    pace(0.05);
}
($chi, $clo) = fnv1a("$steps", $chi, $clo);
print 'done ' . hex64($chi, $clo) . "\n";
