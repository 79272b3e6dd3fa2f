/**
 * Network faults on agents, as scoped effects: a delay with jitter, packet loss, a bandwidth cap, and partitions
 * between groups of agents. Each one holds while the scope it was made in is open and is undone when it closes.
 * A scenario asks for them through the run's `Cloud` (`Network.delay(agent, { millis: 200, jitterMillis: 0 })`,
 * `Network.partition([a, b], [c])`); each backend realizes them with what its agents' kernel and placement allow
 * (its `Faults`), and refuses, naming why, what nothing realizes.
 *
 * **Details**
 *
 * - `--tc-delay MIN,MAX` and `--tc-jitter MIN,MAX` (seconds) draw one value per agent from a seeded random source
 *   (`applyOptions`) and hold for the whole run. The seed is in the run's events and printed;
 *   `TEZT_CLOUD_NETWORK_SEED=<seed>` draws the same values again.
 * - A delay of `d` with jitter `j` holds each piece of data going to or coming from the agent's ports for
 *   `d ± j` (never less than 0, never reordered): a request/response to the agent takes `2 × d` more. Delays on
 *   one agent add up; bandwidth caps on one agent: the lowest holds.
 * - A partition cuts traffic between agents of different groups, both ways; traffic of the orchestrator and
 *   within a group goes on.
 */
import { Effect } from "effect"
import type { Agent } from "./Agent.ts"
import { Cloud } from "./Cloud.ts"
import type { CloudConfig, Range } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import type { Delay, Faults } from "./NetworkFaults.ts"
import { RunEvents } from "./RunEvents.ts"

export type { Delay, Faults } from "./NetworkFaults.ts"

const invalid = (what: string, message: string) => Effect.fail(CloudError.agents(`${what}: ${message}`))

/** Delays what goes to and from `agent`'s ports (see the module's details) until the current scope closes. */
export const delay = Effect.fn("Network.delay")(function*(agent: Agent, value: Delay) {
  if (!(value.millis >= 0) || !(value.jitterMillis >= 0) || !Number.isFinite(value.millis + value.jitterMillis)) {
    return yield* invalid("Network.delay", `delay and jitter must be finite and ≥ 0 ms, not ${JSON.stringify(value)}`)
  }
  const cloud = yield* Cloud
  yield* cloud.network.delay(agent, value)
})

/** Drops `percent` % of the packets sent to `agent`'s ports until the current scope closes. */
export const loss = Effect.fn("Network.loss")(function*(agent: Agent, percent: number) {
  if (!(percent > 0 && percent <= 100)) {
    return yield* invalid("Network.loss", `the loss must be a percentage in ]0, 100], not ${percent}`)
  }
  const cloud = yield* Cloud
  yield* cloud.network.loss(agent, percent)
})

/** Caps `agent`'s traffic at `bytesPerSecond` each way until the current scope closes. */
export const bandwidth = Effect.fn("Network.bandwidth")(function*(agent: Agent, bytesPerSecond: number) {
  if (!(bytesPerSecond >= 1) || !Number.isFinite(bytesPerSecond)) {
    return yield* invalid("Network.bandwidth", `the cap must be at least 1 byte per second, not ${bytesPerSecond}`)
  }
  const cloud = yield* Cloud
  yield* cloud.network.bandwidth(agent, bytesPerSecond)
})

/**
 * Cuts traffic between agents of different `groups` (both ways) until the current scope closes:
 * `Network.partition([a, b], [c])`.
 */
export const partition = Effect.fn("Network.partition")(function*(...groups: ReadonlyArray<ReadonlyArray<Agent>>) {
  const seen = new Set<string>()
  for (const agent of groups.flat()) {
    if (seen.has(agent.name)) return yield* invalid("Network.partition", `${agent.name} is in two groups`)
    seen.add(agent.name)
  }
  if (groups.filter((g) => g.length > 0).length < 2) {
    return yield* invalid("Network.partition", "give at least two non-empty groups of agents")
  }
  const cloud = yield* Cloud
  yield* cloud.network.partition(groups)
})

/** A seeded source of numbers in [0, 1) (mulberry32): the same seed draws the same values. */
export const seeded = (seed: number): () => number => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The variable that replays a run's draw. */
export const seedVariable = "TEZT_CLOUD_NETWORK_SEED"

/** The seed of a run: `$TEZT_CLOUD_NETWORK_SEED` when it is an integer, else a fresh one. */
export const seedFrom = (env: Readonly<Record<string, string | undefined>>): number => {
  const given = env[seedVariable]
  return given !== undefined && /^\d{1,10}$/.test(given)
    ? Number(given) >>> 0
    : Math.floor(Math.random() * 4294967296) >>> 0
}

/** A value of `range` (seconds), in whole milliseconds. */
const drawMillis = (range: Range | undefined, random: () => number) =>
  range === undefined ? 0 : Math.round((range.min + (range.max - range.min) * random()) * 1000)

/** The delay and jitter of each agent, drawn in the agents' order: delay then jitter, agent by agent. */
export const draw = (
  config: Pick<CloudConfig, "tcDelay" | "tcJitter">,
  agents: ReadonlyArray<Pick<Agent, "name">>,
  seed: number
): ReadonlyArray<Delay & { readonly agent: string }> => {
  const random = seeded(seed)
  return agents.map((a) => ({
    agent: a.name,
    millis: drawMillis(config.tcDelay, random),
    jitterMillis: drawMillis(config.tcJitter, random)
  }))
}

/**
 * Applies `--tc-delay` and `--tc-jitter` to every agent with `faults` until the current scope closes, after
 * saying what realizes them and with which seed (log lines, and a `network` event with the values drawn).
 */
export const applyOptions = Effect.fn("Network.applyOptions")(function*(
  config: CloudConfig,
  agents: ReadonlyArray<Agent>,
  faults: Faults,
  seed: number
) {
  if (config.tcDelay === undefined && config.tcJitter === undefined) return
  const events = yield* RunEvents
  const options = [
    config.tcDelay === undefined ? [] : [`--tc-delay ${config.tcDelay.min},${config.tcDelay.max}`],
    config.tcJitter === undefined ? [] : [`--tc-jitter ${config.tcJitter.min},${config.tcJitter.max}`]
  ].flat().join(" ")
  const mechanisms = yield* faults.mechanisms.pipe(
    Effect.mapError((e) => CloudError.config(options.split(" ")[0]!, e.message, { cause: e }))
  )
  for (const line of mechanisms) yield* Effect.logInfo(line)
  yield* Effect.logInfo(`${options}: seed ${seed} (${seedVariable}=${seed} draws the same values again)`)
  const drawn = draw(config, agents, seed)
  for (const [i, agent] of agents.entries()) {
    yield* faults.delay(agent, drawn[i]!).pipe(
      Effect.mapError((e) => CloudError.config(options.split(" ")[0]!, e.message, { cause: e }))
    )
  }
  yield* events.emit({
    type: "network",
    agent: agents.map((a) => a.name).join(" "),
    fault: `${options}, drawn: ${drawn.map((d) => `${d.agent} ${d.millis} ± ${d.jitterMillis} ms`).join(", ")}`,
    seed
  })
})
