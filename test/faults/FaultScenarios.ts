/**
 * Scenarios of the fault suite (loaded with `$TEZT_CLOUD_SCENARIOS`): small runs, one or two agents, each agent
 * with one daemon listening on a port of its range, a short body, then the teardown. Each has its own tags, so a
 * fault picks its run by tags: the agents (`one`, `two`), the daemon (`plain`, or `stubborn`: it ignores SIGTERM),
 * and the special ones (`finalizer`: a finalizer of the scenario fails; `chatty`: many events, to fill a disk).
 */
import { Cloud, Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"

/** A daemon listening on $ARGV[1]:$ARGV[0] until killed (`stubborn`: SIGTERM is ignored). */
const listener = (stubborn: boolean) =>
  (stubborn ? "$SIG{TERM} = \"IGNORE\"; " : "") +
  "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => $ARGV[1], LocalPort => $ARGV[0], " +
  "Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; print \"listening\\n\"; sleep 300"

/**
 * Starts one listening daemon per agent, each on a port of its agent's range: on the loopback address, or on a
 * GCP VM on the VM's own address (the emulator's VMs share this machine's network, and every VM the same ports).
 */
const daemons = (stubborn: boolean) =>
  Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    for (const agent of cloud.agents) {
      const port = yield* agent.nextAvailablePort
      const address = agent.descriptor.backend === "gcp" ? agent.point?.host ?? "127.0.0.1" : "127.0.0.1"
      yield* agent.spawn("listener", "perl", ["-e", listener(stubborn), String(port), address])
    }
    yield* Effect.logInfo("daemons started")
  })

/** The body every fault run shares: daemons, then a short command, then the end (the teardown follows). */
const body = (stubborn: boolean) =>
  Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    yield* daemons(stubborn)
    yield* cloud.agents[0]!.run("sleep", ["0.4"])
    yield* Effect.logInfo("body done")
  })

const agents = { one: [{}], two: [{}, {}] } as const

const runs = (["one", "two"] as const).flatMap((count) =>
  (["plain", "stubborn"] as const).map((daemon) =>
    Scenario.make({
      title: `${count} agent(s), a ${daemon} daemon each, a short body`,
      tags: ["run", count, daemon],
      vms: agents[count],
      run: body(daemon === "stubborn")
    })
  )
)

export const group = Scenario.group("FAULTS", "Runs of the fault suite", [
  ...runs,
  Scenario.make({
    title: "a finalizer of the scenario fails (a command on an agent that exits 7, as a defect)",
    tags: ["finalizer"],
    vms: agents.two,
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const agent = cloud.agents[0]!
      yield* Effect.addFinalizer(() =>
        agent.run("sh", ["-c", "echo finalizer failed >&2; exit 7"]).pipe(Effect.orDie, Effect.asVoid)
      )
      yield* body(false)
    })
  }),
  Scenario.make({
    title: "many events (a log line every few milliseconds for a second), to fill the artifacts disk",
    tags: ["chatty"],
    vms: agents.one,
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      yield* daemons(false)
      for (let i = 0; i < 200; i++) {
        yield* Effect.logInfo(`line ${i} ${"x".repeat(200)}`)
        yield* Effect.sleep("5 millis")
      }
      yield* cloud.agents[0]!.run("echo", ["body done"])
    })
  })
])
