import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import {
  Cloud,
  CloudConfig,
  type CloudError,
  Criteria,
  Orchestrator,
  RunEvents,
  RunServices,
  Scenario,
  TestCloud,
  Verdict
} from "../src/index.ts"

const atLeast5: Verdict.Criterion = {
  name: "blocks per minute",
  query: "rate(blocks[1m]) * 60",
  comparison: ">=",
  threshold: 5
}

const sample = (value: string, labels: Record<string, string> = {}): Verdict.Sample => ({ metric: labels, value })

const failure = <A>(exit: Exit.Exit<A, CloudError.CloudError>) => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons[0]
  return reason?._tag === "Fail" ? reason.error : undefined
}

describe("Verdict", () => {
  it("compares by each comparison, NaN meeting none", () => {
    const cases: ReadonlyArray<readonly [number, Verdict.Comparison, number, boolean]> = [
      [5, ">=", 5, true],
      [4.9, ">=", 5, false],
      [5, ">", 5, false],
      [6, ">", 5, true],
      [5, "<=", 5, true],
      [5.1, "<=", 5, false],
      [4, "<", 5, true],
      [5, "<", 5, false],
      [5, "==", 5, true],
      [5, "!=", 5, false],
      [Infinity, ">=", 5, true],
      [Number.NaN, "!=", 5, false],
      [Number.NaN, "<=", 5, false]
    ]
    for (const [observed, comparison, threshold, met] of cases) {
      assert.strictEqual(
        Verdict.compare(observed, comparison, threshold),
        met,
        `${observed} ${comparison} ${threshold}`
      )
    }
  })

  it("reads values as Prometheus writes them", () => {
    assert.strictEqual(Verdict.parseValue("12.5"), 12.5)
    assert.strictEqual(Verdict.parseValue("1e+06"), 1_000_000)
    assert.strictEqual(Verdict.parseValue("+Inf"), Infinity)
    assert.strictEqual(Verdict.parseValue("-Inf"), -Infinity)
    assert.isTrue(Number.isNaN(Verdict.parseValue("NaN")))
  })

  it("judges a window through a subquery, its duration in the largest exact unit", () => {
    assert.strictEqual(Verdict.promqlDuration(600_000), "10m")
    assert.strictEqual(Verdict.promqlDuration(90_000), "90s")
    assert.strictEqual(Verdict.promqlDuration(7_200_000), "2h")
    assert.strictEqual(Verdict.promqlDuration(1500), "1500ms")
    assert.strictEqual(Verdict.expression(atLeast5), "rate(blocks[1m]) * 60")
    assert.strictEqual(
      Verdict.expression({ ...atLeast5, window: "10 minutes" }),
      "avg_over_time((rate(blocks[1m]) * 60)[10m:])"
    )
    assert.strictEqual(
      Verdict.expression({ ...atLeast5, window: "90 seconds", over: "min" }),
      "min_over_time((rate(blocks[1m]) * 60)[90s:])"
    )
  })

  it("says why a criterion cannot be judged", () => {
    const cases: ReadonlyArray<readonly [Partial<Verdict.Criterion>, string]> = [
      [{ name: " " }, "its name is empty"],
      [{ query: "" }, "its query is empty"],
      [{ comparison: "=>" as Verdict.Comparison }, "comparison \"=>\" is not one of >= > <= < == !="],
      [{ threshold: Number.NaN }, "threshold NaN is not a finite number"],
      [{ over: "min" }, "over needs a window"],
      [{ window: "soon" as never }, "window soon is not a duration"],
      [{ every: "10 millis" }, "every 10 millis is not a duration of at least a second"]
    ]
    for (const [change, why] of cases) assert.include(Verdict.invalid({ ...atLeast5, ...change }) ?? "", why)
    assert.isUndefined(Verdict.invalid({ ...atLeast5, window: "10 minutes", over: "max", every: "5 seconds" }))
  })

  it("judges every series, showing the worst; no samples or NaN fail", () => {
    const two = [sample("7", { agent: "a" }), sample("5.5", { agent: "b" })]
    const met = Verdict.judge(atLeast5, two, 1)
    assert.strictEqual(met.status, "met")
    assert.strictEqual(met.observed, "5.5")
    assert.deepStrictEqual(met.series, { agent: "b" })
    const failed = Verdict.judge(atLeast5, [...two, sample("3", { agent: "c" })], 1)
    assert.strictEqual(failed.status, "failed")
    assert.strictEqual(failed.observed, "3")
    assert.deepStrictEqual(failed.series, { agent: "c" })
    const below = Verdict.judge({ ...atLeast5, comparison: "<" }, [sample("1"), sample("4")], 1)
    assert.strictEqual(below.observed, "4", "the highest is the worst for <")
    assert.isUndefined(Verdict.judge(atLeast5, [sample("9")], 1).series, "one series: no labels shown")
    const none = Verdict.judge(atLeast5, [], 1)
    assert.deepStrictEqual([none.status, none.reason], ["failed", "no samples"])
    assert.strictEqual(Verdict.judge(atLeast5, [], 1, false).status, "pending", "no samples yet during the run")
    const nan = Verdict.judge(atLeast5, [sample("NaN")], 1)
    assert.deepStrictEqual([nan.status, nan.reason], ["failed", "NaN meets no threshold"])
  })

  it("prints an aligned table and a one-line summary", () => {
    const verdicts = [
      Verdict.judge(atLeast5, [sample("6")], 1),
      Verdict.judge({ ...atLeast5, name: "height", query: "height", comparison: "<", threshold: 2 }, [], 1)
    ]
    const lines = Verdict.table(verdicts).split("\n")
    assert.strictEqual(lines.length, 3)
    assert.match(lines[0]!, /^criterion\s+expression\s+observed\s+threshold\s+verdict$/)
    assert.match(lines[1]!, /^blocks per minute\s+rate\(blocks\[1m\]\) \* 60\s+6\s+>= 5\s+met$/)
    assert.match(lines[2]!, /^height\s+height\s+\(no samples\)\s+< 2\s+failed$/)
    assert.strictEqual(lines[1]!.indexOf("6 "), lines[2]!.indexOf("(no samples)"), "columns aligned")
    assert.strictEqual(Verdict.summary(verdicts), "1 of 2 criteria not met: height ((no samples), wanted < 2)")
  })
})

describe("criteria on TestCloud", () => {
  const pushing = (criteria: ReadonlyArray<Verdict.Criterion>) =>
    Scenario.make({
      title: "judged",
      tags: [],
      vms: [{ name: "a" }],
      run: Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        yield* cloud.pushMetric({ name: "height", value: 12, labels: { agent: "a" } })
        for (const criterion of criteria) yield* cloud.addCriterion(criterion)
      })
    })

  it.effect("judges pushed metrics and canned observations at the end; one not met fails the run", () =>
    Effect.gen(function*() {
      const met = yield* TestCloud.run(
        pushing([{ name: "height", query: "height{agent=\"a\"}", comparison: ">=", threshold: 10 }])
      )
      assert.deepStrictEqual(met.verdicts.map((v) => [v.name, v.observed, v.status]), [["height", "12", "met"]])
      const exit = yield* Effect.exit(TestCloud.run(
        pushing([
          { name: "height", query: "height", comparison: ">=", threshold: 10 },
          { ...atLeast5, window: "10 minutes" }
        ]),
        { observed: { "blocks per minute": 3 } }
      ))
      const error = failure(exit)
      assert.strictEqual(error?.reason._tag, "CriteriaFailed")
      assert.strictEqual(
        error?.message,
        "judged: 1 of 2 criteria not met: blocks per minute (3, wanted >= 5)"
      )
    }))

  it.effect("refuses an invalid or duplicate criterion when it is declared", () =>
    Effect.gen(function*() {
      const invalid = failure(yield* Effect.exit(TestCloud.run(pushing([{ ...atLeast5, threshold: Number.NaN }]))))
      assert.include(invalid?.message ?? "", "criterion \"blocks per minute\": threshold NaN is not a finite number")
      const twice = failure(yield* Effect.exit(TestCloud.run(pushing([atLeast5, atLeast5]))))
      assert.include(twice?.message ?? "", "a criterion of that name is already declared")
    }))

  it.effect("a criterion without Prometheus is refused, never ignored", () =>
    Effect.gen(function*() {
      const cloud = Cloud.make(yield* TestCloud.config(), [])
      const error = failure(yield* Effect.exit(cloud.addCriterion(atLeast5)))
      assert.strictEqual(error?.reason._tag, "CriterionInvalid")
      assert.include(error?.message ?? "", "criteria are judged on a run's Prometheus")
    }))

  it.effect("a run whose services have no Prometheus refuses a criterion, naming the option", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config()
      const scenario = pushing([atLeast5])
      const services = RunServices.RunServices.of({ start: () => Effect.succeed(RunServices.memory()) })
      const exit = yield* Effect.exit(
        Orchestrator.run(scenario, config, yield* Orchestrator.agentConfigs(scenario, config)).pipe(
          Effect.provide(TestCloud.layerDeployment()),
          Effect.provideService(RunServices.RunServices, services),
          Effect.provideService(CloudConfig.CurrentConfig, config),
          Effect.provide(RunEvents.RunEvents.layerNoop)
        )
      )
      assert.include(
        failure(exit)?.message ?? "",
        "criterion \"blocks per minute\": criteria are judged on the run's Prometheus, which is off: give --prometheus"
      )
    }))

  it.effect("TestCloud.layer judges the criteria declared so far on demand", () =>
    Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      yield* cloud.addCriterion({ name: "height", query: "height", comparison: "<", threshold: 2 })
      yield* cloud.pushMetric({ name: "height", value: 1 })
      const verdicts = yield* (yield* TestCloud.Recording).verdicts
      assert.deepStrictEqual(verdicts.map((v) => v.status), ["met"])
    }).pipe(Effect.provide(TestCloud.layer())))
})

describe("Criteria", () => {
  /** A source whose one series has the value `value.current`, judged on `TestClock`. */
  const judging = (value: { current: string }, continuous = true) =>
    Criteria.registry(
      {
        check: () => Effect.void,
        settle: Effect.void,
        samples: () => Effect.sync(() => [sample(value.current)])
      },
      { unavailable: "", continuous }
    )

  it.effect("a criterion judged every period must hold each time: a breach fails it at the end, saying when", () =>
    Effect.gen(function*() {
      const events: Array<RunEvents.Stamped> = []
      const value = { current: "6" }
      const verdicts = yield* Effect.gen(function*() {
        const criteria = yield* judging(value)
        yield* criteria.add({ ...atLeast5, every: "1 second" })
        yield* TestClock.adjust("1 second")
        value.current = "2"
        yield* TestClock.adjust("1 second")
        value.current = "7"
        yield* TestClock.adjust("1 second")
        return yield* criteria.conclude
      }).pipe(Effect.scoped, Effect.provide(RunEvents.RunEvents.layer([(e) => void events.push(e)])))
      const live = events.flatMap((e) => e.type === "verdict" ? [e.verdict.observed] : [])
      assert.includeMembers(live, ["6", "2", "7"])
      assert.strictEqual(verdicts[0]!.observed, "7")
      assert.strictEqual(verdicts[0]!.status, "failed")
      assert.match(verdicts[0]!.reason ?? "", /^2 at \d\d:\d\d:\d\d UTC, during the run$/)
      assert.strictEqual(events.filter((e) => e.type === "verdicts").length, 1)
    }))

  it.effect("without a source, a criterion is refused with the reason given", () =>
    Effect.gen(function*() {
      const criteria = yield* Criteria.registry(undefined, { unavailable: "give --prometheus", continuous: true })
      const error = failure(yield* Effect.exit(criteria.add(atLeast5)))
      assert.strictEqual(error?.message, "criterion \"blocks per minute\": give --prometheus")
      assert.deepStrictEqual(yield* criteria.conclude, [])
    }).pipe(Effect.scoped, Effect.provide(RunEvents.RunEvents.layerNoop)))
})
