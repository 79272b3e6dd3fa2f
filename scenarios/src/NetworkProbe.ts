/**
 * Measures the network between agents with what every agent image has (perl for a server, bash for clients):
 * round-trip times on one connection, whether short requests get through, and how long a transfer takes. The
 * `BASIC network health` scenario and the network fault tests use it.
 */
import { type Agent, CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"

/** Where an agent's echo server listens. */
export interface Server {
  readonly agent: Agent.Agent
  readonly host: string
  readonly port: number
}

/** Each line in comes back out; `get N` answers N bytes. A process per connection. */
const serverScript = `
use IO::Socket::INET;
$SIG{CHLD} = "IGNORE";
my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], LocalPort => $ARGV[1], Listen => 64, ReuseAddr => 1)
  or die "cannot listen on $ARGV[0]:$ARGV[1]: $!";
while (1) {
  my $c = $s->accept or next;
  if (fork == 0) {
    $c->autoflush(1);
    while (my $l = <$c>) {
      if ($l =~ /^get (\\d+)/) {
        my $n = $1;
        while ($n > 0) { my $k = $n > 65536 ? 65536 : $n; print $c ("x" x $k); $n -= $k }
      } else { print $c $l }
    }
    exit 0;
  }
  close $c;
}
`

/**
 * Waits (about 10 s at most) until the server echoes a line back to its own agent: a connection alone says
 * nothing when a relay stands in front of the port (it accepts for the server).
 */
const readyScript = `
for i in $(seq 50); do
  (exec 3<>"/dev/tcp/$1/$2" && printf 'ready\n' >&3 && IFS= read -r -t 5 l <&3 && [ "$l" = ready ]) 2>/dev/null && exit 0
  sleep 0.1
done
exit 1
`

/** Starts an echo server on a fresh port of `agent`, in the current scope, and waits until it answers. */
export const echoServer = Effect.fn("NetworkProbe.echoServer")(function*(agent: Agent.Agent) {
  const port = yield* agent.nextAvailablePort
  const host = agent.point?.host ?? "127.0.0.1"
  yield* agent.spawn(`echo-server-${port}`, "perl", ["-e", serverScript, host, String(port)])
  yield* agent.run("bash", ["-c", readyScript, "ready", host, String(port)])
  return { agent, host, port } satisfies Server
})

/** `n` request/responses from `client` to `server` on one connection: each one's time in milliseconds. */
const roundTripsScript = `
exec 3<>"/dev/tcp/$1/$2" || exit 3
for i in $(seq "$3"); do
  t0=$EPOCHREALTIME
  printf 'ping %s\\n' "$i" >&3
  IFS= read -r -t 20 line <&3 || { echo "lost"; exit 4; }
  t1=$EPOCHREALTIME
  echo "rtt $t0 $t1"
done
`

const millisBetween = (t0: string, t1: string) => (Number(t1) - Number(t0)) * 1000

export const roundTrips = Effect.fn("NetworkProbe.roundTrips")(function*(
  client: Agent.Agent,
  server: Server,
  n: number
) {
  const out = yield* client.run("bash", ["-c", roundTripsScript, "rtt", server.host, String(server.port), String(n)])
  const times = out.split("\n").flatMap((line) => {
    const m = /^rtt (\S+) (\S+)$/.exec(line.trim())
    return m === null ? [] : [millisBetween(m[1]!, m[2]!)]
  })
  if (times.length !== n) {
    return yield* CloudError.command(client.name, "round trips", `expected ${n} times, got: ${out.trim()}`)
  }
  return times
})

/** Mean, spread (max − min) and standard deviation of `times`. */
export const summary = (times: ReadonlyArray<number>) => {
  const mean = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length)
  const spread = times.length === 0 ? 0 : Math.max(...times) - Math.min(...times)
  const deviation = Math.sqrt(times.reduce((a, t) => a + (t - mean) ** 2, 0) / Math.max(1, times.length))
  return { mean, min: Math.min(...times), max: Math.max(...times), spread, deviation }
}

/** `n` short requests, each on a new connection with `timeoutSeconds` to be answered: how many got through. */
const attemptsScript = `
for i in $(seq "$3"); do
  if timeout "$4" bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "ping\\n" >&3 && IFS= read -r l <&3 && [ "$l" = ping ]' \\
    attempt "$1" "$2" 2>/dev/null; then echo ok; else echo failed; fi
done
`

export const attempts = Effect.fn("NetworkProbe.attempts")(function*(
  client: Agent.Agent,
  server: Server,
  n: number,
  timeoutSeconds: number
) {
  const out = yield* client.run("bash", [
    "-c",
    attemptsScript,
    "attempts",
    server.host,
    String(server.port),
    String(n),
    String(timeoutSeconds)
  ])
  const lines = out.split("\n").map((l) => l.trim())
  return { ok: lines.filter((l) => l === "ok").length, failed: lines.filter((l) => l === "failed").length }
})

/** Fetches `bytes` bytes from `server` on `client`: the milliseconds it took and the bytes received. */
const transferScript = `
t0=$EPOCHREALTIME
exec 3<>"/dev/tcp/$1/$2" || exit 3
printf 'get %s\\n' "$3" >&3
n=$(head -c "$3" <&3 | wc -c)
t1=$EPOCHREALTIME
echo "transfer $n $t0 $t1"
`

export const transfer = Effect.fn("NetworkProbe.transfer")(function*(
  client: Agent.Agent,
  server: Server,
  bytes: number
) {
  const out = yield* client.run("bash", [
    "-c",
    transferScript,
    "transfer",
    server.host,
    String(server.port),
    String(bytes)
  ])
  const m = /transfer (\d+) (\S+) (\S+)/.exec(out)
  if (m === null) return yield* CloudError.command(client.name, "transfer", `no result: ${out.trim()}`)
  return { bytes: Number(m[1]), millis: millisBetween(m[2]!, m[3]!) }
})
