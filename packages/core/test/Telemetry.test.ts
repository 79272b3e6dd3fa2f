import { assert, describe, it } from "@effect/vitest"
import { Cloud, Scenario, Telemetry, TestCloud } from "@tezt-cloud/core"
import { Effect, Metric, Tracer } from "effect"

/** A tracer keeping every span it starts, in order. */
const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const attribute = (span: Tracer.Span, key: string) => span.attributes.get(key)

describe("the tool's own telemetry, where the work happens", () => {
  it.effect("a run's spans: one per command on its agent, a daemon's life, the teardown; commands counted", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      const before = (yield* Metric.value(Telemetry.commands)).count
      const scenario = Scenario.make({
        title: "telemetry",
        tags: [],
        vms: [{ name: "a" }, { name: "b" }],
        run: Effect.gen(function*() {
          const cloud = yield* Cloud.Cloud
          for (const agent of cloud.agents) yield* agent.exec("true")
          yield* cloud.agents[0]!.spawn("sleeper", "sleep", ["300"])
        })
      })
      yield* TestCloud.run(scenario).pipe(Effect.provideService(Tracer.Tracer, tracer))
      const named = (name: string) => spans.filter((s) => s.name === name)
      assert.deepStrictEqual(named("Agent.exec").map((s) => [attribute(s, "agent"), attribute(s, "command")]), [
        ["a", "true"],
        ["b", "true"]
      ])
      const [daemon] = named("Agent.daemon")
      assert.isDefined(daemon, "a span for the daemon's life")
      assert.deepStrictEqual([attribute(daemon!, "agent"), attribute(daemon!, "daemon")], ["a", "sleeper"])
      const [teardown] = named("Orchestrator.teardown")
      for (const span of [daemon!, teardown!]) assert.strictEqual(span.status._tag, "Ended")
      // The daemon lived until the teardown stopped it.
      if (daemon!.status._tag === "Ended" && teardown!.status._tag === "Ended") {
        assert.isTrue(daemon!.status.endTime >= teardown!.status.startTime)
      }
      assert.strictEqual((yield* Metric.value(Telemetry.commands)).count, before + 2)
    }))
})
