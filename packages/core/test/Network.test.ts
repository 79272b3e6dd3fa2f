/**
 * The Network module without a network: the seeded draw of `--tc-delay`/`--tc-jitter`, the checks of each fault's
 * input, and the refusal where the backend realizes none. The faults themselves are tested on real agents
 * (packages/localhost/test/Network.test.ts, packages/docker/test/Network.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { type Agent, Cloud, Network, Scenario, TestCloud } from "@tezt-cloud/core"
import { Effect, type Scope } from "effect"

const agents = [{ name: "a" }, { name: "b" }, { name: "c" }]

describe("Network", () => {
  it("draws each agent's delay and jitter from the seed, within their ranges, the same for the same seed", () => {
    const config = { tcDelay: { min: 0.1, max: 0.5 }, tcJitter: { min: 0, max: 0.02 } }
    const drawn = Network.draw(config, agents, 830100814)
    assert.deepStrictEqual(Network.draw(config, agents, 830100814), drawn)
    assert.notDeepEqual(Network.draw(config, agents, 830100815), drawn)
    assert.deepStrictEqual(drawn.map((d) => d.agent), ["a", "b", "c"])
    for (const d of drawn) {
      assert.isTrue(d.millis >= 100 && d.millis <= 500, JSON.stringify(d))
      assert.isTrue(d.jitterMillis >= 0 && d.jitterMillis <= 20, JSON.stringify(d))
    }
    // MIN = MAX is that value for every agent; no option, no delay.
    const fixed = Network.draw({ tcDelay: { min: 0.2, max: 0.2 }, tcJitter: undefined }, agents, 1)
    assert.deepStrictEqual(fixed.map((d) => [d.millis, d.jitterMillis]), [[200, 0], [200, 0], [200, 0]])
  })

  it("takes the seed from TEZT_CLOUD_NETWORK_SEED when it is an integer", () => {
    assert.strictEqual(Network.seedFrom({ TEZT_CLOUD_NETWORK_SEED: "1234" }), 1234)
    const fresh = Network.seedFrom({ TEZT_CLOUD_NETWORK_SEED: "not a seed" })
    assert.isTrue(Number.isInteger(fresh) && fresh >= 0 && fresh < 2 ** 32)
  })

  /** What `body` fails with, run as a scenario of two agents on `TestCloud` (which has no network faults). */
  const failure = (body: Effect.Effect<void, unknown, Cloud.Cloud | Scope.Scope>) =>
    Effect.flip(TestCloud.run(Scenario.make({ title: "t", tags: [], vms: [{ name: "a" }, { name: "b" }], run: body })))

  /** A scenario body calling `f` with its two agents. */
  const withAgents = (
    f: (a: Agent.Agent, b: Agent.Agent) => Effect.Effect<void, unknown, Cloud.Cloud | Scope.Scope>
  ) =>
    Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      yield* f(cloud.agents[0]!, cloud.agents[1]!)
    })

  it.effect.each([
    {
      name: "a negative delay",
      fault: withAgents((a) => Network.delay(a, { millis: -1, jitterMillis: 0 })),
      text: "≥ 0"
    },
    { name: "no loss", fault: withAgents((a) => Network.loss(a, 0)), text: "percentage" },
    { name: "a loss over 100 %", fault: withAgents((a) => Network.loss(a, 150)), text: "percentage" },
    { name: "a cap of 0 B/s", fault: withAgents((a) => Network.bandwidth(a, 0)), text: "at least 1 byte" },
    { name: "an agent in two groups", fault: withAgents((a, b) => Network.partition([a, b], [a])), text: "two groups" },
    { name: "a single group", fault: withAgents((a, b) => Network.partition([a, b], [])), text: "two non-empty" }
  ])("refuses $name in one line", ({ fault, text }) =>
    Effect.gen(function*() {
      const error = yield* failure(fault)
      assert.include(error.message, text)
    }))

  it.effect("a backend without network faults refuses them, saying so", () =>
    Effect.gen(function*() {
      const error = yield* failure(withAgents((a, b) => Network.partition([a], [b])))
      assert.include(error.message, "network partition is not available yet")
      const options = yield* Effect.flip(TestCloud.run(
        Scenario.make({ title: "t", tags: [], vms: [{}], run: Effect.void }),
        { config: { tc_delay: "0.2,0.2" } }
      ))
      assert.include(options.message, "--tc-delay")
      assert.include(options.message, "network delay is not available yet")
    }))
})
