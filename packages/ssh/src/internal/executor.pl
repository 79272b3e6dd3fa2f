# tezt-cloud's executor: one per ssh connection, started by Executor.ts over one session. It runs many commands
# at once for the orchestrator, multiplexed as frames on its stdin/stdout, so a command costs a fork and an exec
# on the host instead of an ssh session. Only perl-base (Essential on Debian and Ubuntu) is used.
#
# Frame: type (1 byte), request id (u32 BE), length (u32 BE), payload.
#   in:  x exec a shell line (flags byte: 1 = stdin wanted; then the command line for /bin/sh -c)
#        c exec an argv, no shell, in a session of its own (flags byte, 2 = kill what is left of its process
#          group when it ends; then NUL-separated: cwd, PATH prefix,
#          number of variables, NAME=VALUE..., argv...)
#        i stdin chunk (acknowledged by A once written)   e end of stdin   k kill tree (payload: grace seconds)
#        p pause output   r resume output
#   out: R ready (payload: pid)   S started (payload: the command's pid)   O stdout   E stderr   A stdin chunk written   X exit (payload: code)
#        F failed to start (payload: message)
# The orchestrator checks every frame it reads from here (internal/frames.ts: type, length bound, payload form)
# and stops an executor that sends anything else; an O/E frame carries at most 64 KiB, an F message at most 4 KiB.
# Every process a request starts carries TEZT_CLOUD_XREQ=<session>-<id>, so its whole tree is found in /proc, even
# after setsid. When the session ends (stdin closed, SIGTERM, SIGHUP), the trees of running requests are killed
# and the executor exits: nothing outlives the orchestrator's connection.
use strict;
use warnings;
use POSIX ();

my $session = $ARGV[0] // 'x';
$0 = 'tezt-cloud-executor';
$SIG{PIPE} = 'IGNORE';
my $stop = 0;
$SIG{TERM} = $SIG{HUP} = $SIG{INT} = sub { $stop = 1 };
binmode STDIN;
binmode STDOUT;
# Self-pipe: an exit wakes the select loop even when it arrives between two selects.
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
nonblocking($_) for ($wake_r, $wake_w);
$SIG{CHLD} = sub { syswrite($wake_w, 'c') };

my %req;        # id => { pid, out, err, in, inbuf, ineof, paused, status }
my %bypid;      # pid => id
my %killers;    # pids of tree killers
my $input = '';

sub out_frame {
  my ($type, $id, $data) = @_;
  $data = '' unless defined $data;
  my $buf = pack('a1NN', $type, $id, length $data) . $data;
  while (length $buf) {
    my $n = syswrite(STDOUT, $buf);
    if (!defined $n) {
      next if $!{EINTR} || $!{EAGAIN};
      quit();
    }
    substr($buf, 0, $n, '');
  }
}

sub marked {
  my %want = map { ("TEZT_CLOUD_XREQ=$_" => 1) } @_;
  my @pids;
  opendir(my $dir, '/proc') or return ();
  for my $p (readdir $dir) {
    next unless $p =~ /^\d+$/ && $p != $$;
    open(my $f, '<', "/proc/$p/environ") or next;
    local $/;
    my $env = <$f>;
    close $f;
    next unless defined $env;
    for my $v (split /\0/, $env) {
      if ($want{$v}) { push @pids, $p; last }
    }
  }
  closedir $dir;
  return @pids;
}

# SIGTERM to every marked process and its group, SIGKILL to what is left after the grace period.
sub kill_marked {
  my ($grace, @markers) = @_;
  my @p = marked(@markers);
  return unless @p;
  kill 'TERM', map { (-$_, $_) } @p;
  for (1 .. int($grace * 10)) {
    select(undef, undef, undef, 0.1);
    @p = marked(@markers);
    return unless @p;
  }
  kill 'KILL', map { (-$_, $_) } @p;
}

sub quit {
  my @running = grep { !defined $req{$_}{status} } keys %req;
  kill_marked(2, map { "$session-$_" } @running) if @running;
  POSIX::_exit(0);
}

sub nonblocking {
  my ($fh) = @_;
  my $flags = fcntl($fh, POSIX::F_GETFL(), 0);
  fcntl($fh, POSIX::F_SETFL(), $flags | POSIX::O_NONBLOCK());
}

sub start {
  my ($id, $flags, $line, $command) = @_;
  my ($or, $ow, $er, $ew, $ir, $iw);
  unless (pipe($or, $ow) && pipe($er, $ew) && (!($flags & 1) || pipe($ir, $iw))) {
    return out_frame('F', $id, "pipe: $!");
  }
  my $pid = fork;
  if (!defined $pid) {
    out_frame('F', $id, "fork: $!");
    close $_ for grep { defined } ($or, $ow, $er, $ew, $ir, $iw);
    return;
  }
  if ($pid == 0) {
    $SIG{$_} = 'DEFAULT' for qw(PIPE TERM HUP INT CHLD);
    if ($ir) { POSIX::dup2(fileno $ir, 0) } else { open(STDIN, '<', '/dev/null') }
    POSIX::dup2(fileno $ow, 1);
    POSIX::dup2(fileno $ew, 2);
    $ENV{TEZT_CLOUD_XREQ} = "$session-$id";
    exec('/bin/sh', '-c', $line) or POSIX::_exit(127) unless $command;
    my ($cwd, $prefix, $count, @rest) = @$command;
    POSIX::setsid();
    unless (chdir $cwd) { print STDERR "cd: $cwd: $!\n"; POSIX::_exit(2) }
    $ENV{PATH} = $prefix . ':' . ($ENV{PATH} // '/usr/local/bin:/usr/bin:/bin') if $prefix ne '';
    for my $pair (splice(@rest, 0, $count)) {
      my ($k, $v) = split /=/, $pair, 2;
      $ENV{$k} = $v;
    }
    { no warnings 'exec'; exec { $rest[0] } @rest; }
    print STDERR "$rest[0]: $!\n";
    POSIX::_exit($!{ENOENT} ? 127 : 126);
  }
  close $ow;
  close $ew;
  close $ir if $ir;
  nonblocking($iw) if $iw;
  out_frame('S', $id, $pid);
  $req{$id} = {
    pid => $pid, out => $or, err => $er, in => $iw, inbuf => '', ineof => 0, paused => 0,
    group => ($command && ($flags & 2)) ? 1 : 0
  };
  $bypid{$pid} = $id;
}

sub close_stdin {
  my ($r) = @_;
  close $r->{in} if $r->{in};
  $r->{in} = undef;
  $r->{inbuf} = '';
}

sub handle {
  my ($type, $id, $data) = @_;
  my $r = $req{$id};
  if ($type eq 'x' || $type eq 'c') {
    return out_frame('F', $id, 'duplicate request id') if $r;
    my ($flags, $spec) = (ord(substr($data, 0, 1)), substr($data, 1));
    if ($type eq 'x') { return start($id, $flags, $spec) }
    my @fields = split /\0/, $spec, -1;
    # cwd, PATH prefix, count, that many NAME=VALUE, then a non-empty argv (the orchestrator refuses NUL in values).
    return out_frame('F', $id, 'malformed command frame')
      unless @fields >= 4 && $fields[2] =~ /^\d+$/ && @fields > 3 + $fields[2];
    start($id, $flags, undef, \@fields);
  } elsif ($type eq 'i') {
    if ($r && $r->{in}) { $r->{inbuf} .= $data } else { out_frame('A', $id) }
  } elsif ($type eq 'e') {
    return unless $r;
    $r->{ineof} = 1;
    close_stdin($r) if $r->{in} && $r->{inbuf} eq '';
  } elsif ($type eq 'k') {
    return unless $r && !defined $r->{status};
    my $killer = fork;
    if (defined $killer && $killer == 0) {
      open(STDIN, '<', '/dev/null');
      open(STDOUT, '>', '/dev/null');
      kill_marked($data + 0, "$session-$id");
      POSIX::_exit(0);
    }
    $killers{$killer} = 1 if defined $killer;
  } elsif ($type eq 'p') {
    $r->{paused} = 1 if $r;
  } elsif ($type eq 'r') {
    $r->{paused} = 0 if $r;
  }
}

sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $status = $?;
    if (delete $killers{$pid}) { next }
    my $id = delete $bypid{$pid};
    next unless defined $id && $req{$id};
    $req{$id}{status} = ($status & 127) ? 128 + ($status & 127) : $status >> 8;
  }
}

out_frame('R', 0, $$);
while (1) {
  quit() if $stop;
  my ($rin, $win) = ('', '');
  vec($rin, 0, 1) = 1;
  vec($rin, fileno $wake_r, 1) = 1;
  for my $r (values %req) {
    unless ($r->{paused}) {
      vec($rin, fileno $r->{out}, 1) = 1 if $r->{out};
      vec($rin, fileno $r->{err}, 1) = 1 if $r->{err};
    }
    vec($win, fileno $r->{in}, 1) = 1 if $r->{in} && $r->{inbuf} ne '';
  }
  my ($rout, $wout) = ($rin, $win);
  my $n = select($rout, $win eq '' ? undef : $wout, undef, 1);
  sysread($wake_r, my $drain, 4096) if $n > 0 && vec($rout, fileno $wake_r, 1);
  reap();
  if ($n > 0) {
    if (vec($rout, 0, 1)) {
      my $got = sysread(STDIN, $input, 1 << 20, length $input);
      quit() if defined $got && $got == 0;
      my $pos = 0;
      while (length($input) - $pos >= 9) {
        my ($type, $id, $len) = unpack('a1NN', substr($input, $pos, 9));
        last if length($input) - $pos < 9 + $len;
        handle($type, $id, substr($input, $pos + 9, $len));
        $pos += 9 + $len;
      }
      substr($input, 0, $pos, '');
    }
    for my $id (keys %req) {
      my $r = $req{$id};
      for my $stream (['out', 'O'], ['err', 'E']) {
        my ($key, $type) = @$stream;
        my $fh = $r->{$key};
        next unless $fh && vec($rout, fileno $fh, 1);
        my $got = sysread($fh, my $chunk, 65536);
        next if !defined $got && ($!{EINTR} || $!{EAGAIN});
        if ($got) { out_frame($type, $id, $chunk) }
        else { close $fh; $r->{$key} = undef }
      }
      if ($r->{in} && $r->{inbuf} ne '' && vec($wout, fileno $r->{in}, 1)) {
        my $put = syswrite($r->{in}, $r->{inbuf});
        if (defined $put) {
          substr($r->{inbuf}, 0, $put, '');
        } elsif (!($!{EINTR} || $!{EAGAIN})) {
          # The command closed its stdin: what it did not read is dropped.
          close_stdin($r);
        }
        if ($r->{inbuf} eq '') {
          out_frame('A', $id);
          close_stdin($r) if $r->{ineof};
        }
      }
    }
  }
  for my $id (keys %req) {
    my $r = $req{$id};
    next if $r->{out} || $r->{err} || !defined $r->{status};
    close_stdin($r);
    kill 'KILL', -$r->{pid} if $r->{group};
    out_frame('X', $id, $r->{status});
    delete $req{$id};
  }
}
