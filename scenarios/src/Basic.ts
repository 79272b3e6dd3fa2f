/**
 * The BASIC group: self-checks of a deployment (reference §5.2). `simple health` is the README's first command.
 */
import { Cloud, Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"

/**
 * Two agents each run `echo "Hello world"`. Copes with a single agent (`--vms-limit 1`): agent 1 is then
 * agent 0 again, as in Tezt cloud.
 */
export const simpleHealth = Scenario.make({
  title: "Simple health check to check local configuration",
  tags: ["simple", "health"],
  vms: (config) => Array.from({ length: Math.max(1, Math.min(2, config.vmsLimit ?? 2)) }, () => ({})),
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const agents = cloud.agents
    for (const i of [0, 1]) {
      const agent = agents[i % agents.length]!
      const out = yield* agent.run("echo", ["Hello world"])
      yield* Effect.logInfo(`${out.trim()} from agent ${i}`)
    }
  })
})

/** A detached `sleep 10` returns at once and is still running afterwards; the run's teardown stops it. */
export const runDetach = Scenario.make({
  title: "Run a command and detach in a vm",
  tags: ["run", "detach"],
  vms: [{}],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const agent = cloud.agents[0]!
    const daemon = yield* agent.spawn("sleep", "sleep", ["10"])
    if (!(yield* daemon.isRunning)) {
      return yield* Effect.fail(new Error("the detached sleep is not running right after it was started"))
    }
    yield* Effect.logInfo(`detached "sleep 10" returned at once on ${agent.name} (pid ${daemon.pid})`)
  })
})

export const group = Scenario.group("BASIC", "Self-checks of a deployment", [simpleHealth, runDetach])
