/**
 * Chronos on Effect's `TestClock` (no real wait): 5-field UTC specs parsed or refused by name, runs at exactly the
 * due times, the random delay within its bound, failures logged without stopping anything, tasks gone with their
 * scope; and the run's log rotation (`--log-rotation`) on that clock, through the orchestrator.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Logger, Random, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Chronos, Cloud, LogRotation, Scenario, TestCloud } from "../src/index.ts"

const minute = 60_000
const hour = 60 * minute
const day = 24 * hour

/** A task that records when it ran (TestClock's milliseconds). */
const recorder = (spec: string, options: { readonly randomDelay?: Duration.Input; readonly fail?: boolean } = {}) => {
  const runs: Array<number> = []
  const task: Chronos.Task = {
    name: `task ${spec}`,
    spec,
    randomDelay: options.randomDelay,
    run: Effect.gen(function*() {
      runs.push(yield* Clock.currentTimeMillis)
      if (options.fail) return yield* Effect.fail(new Error("boom"))
    })
  }
  return { task, runs }
}

/** Captures the log lines of `effect`. */
const withLogs = <A, E, R>(lines: Array<string>, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(Logger.layer([Logger.make(({ message }) => {
      lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
    })]))
  )

describe("Chronos", () => {
  it.effect.each(["* * * * *", "*/15 0-6,12 * * 1-5", "0 0 1 jan,jul *", "5,35 */2 1-15 * sun", " 0  0 * * * "])(
    "%j is a 5-field UTC spec",
    (spec) => Effect.asVoid(Chronos.parse(spec))
  )

  it.effect.each(["* * * *", "0 * * * * *", "61 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "a b c d e", ""])(
    "%j is refused, naming the task and the form",
    (spec) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Chronos.parse(spec, "task t"))
        assert.strictEqual(error.reason._tag, "ConfigInvalid")
        assert.include(error.message, "task t")
        assert.include(error.message, "5-field cron spec")
        assert.notInclude(error.message, "\n")
      })
  )

  it.effect("a task runs at each due time, and only then", () =>
    Effect.gen(function*() {
      const every10 = recorder("*/10 * * * *")
      yield* Chronos.start([every10.task])
      yield* TestClock.adjust(hour - 1)
      assert.deepStrictEqual(every10.runs, [10, 20, 30, 40, 50].map((m) => m * minute))
      yield* TestClock.adjust(1)
      assert.lengthOf(every10.runs, 6)
    }))

  it.effect("specs are read in UTC: weekdays, hours and months", () =>
    Effect.gen(function*() {
      const weekdays = recorder("30 6 * * 1-5")
      const february = recorder("0 12 1 feb *")
      yield* Chronos.start([weekdays.task, february.task])
      // From Thursday 1970-01-01 00:00 UTC: Thursday and Friday 06:30, then Monday 5 and Tuesday 6.
      yield* TestClock.adjust(6 * day)
      assert.deepStrictEqual(weekdays.runs, [0, 1, 4, 5].map((d) => d * day + 6 * hour + 30 * minute))
      yield* TestClock.adjust(40 * day)
      assert.deepStrictEqual(february.runs, [31 * day + 12 * hour], "1970-02-01 12:00 UTC")
    }))

  it.effect("each run waits a random time within the task's delay after its due time", () =>
    Effect.gen(function*() {
      const hourly = recorder("0 * * * *", { randomDelay: "5 minutes" })
      yield* Chronos.start([hourly.task])
      yield* TestClock.adjust(48 * hour + 10 * minute)
      assert.lengthOf(hourly.runs, 48)
      const offsets = hourly.runs.map((at) => at % hour)
      for (const offset of offsets) assert.isAtMost(offset, 5 * minute)
      assert.isAbove(new Set(offsets).size, 10, "the delays differ from run to run")
    }).pipe(Random.withSeed(42)))

  it.effect("a failing task is logged at each failure and never stops itself nor the others", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const failing = recorder("0 * * * *", { fail: true })
      const dying: Chronos.Task = { name: "dying", spec: "0 * * * *", run: Effect.die(new Error("defect")) }
      const healthy = recorder("30 * * * *")
      yield* withLogs(lines, Chronos.start([failing.task, dying, healthy.task]))
      yield* withLogs(lines, TestClock.adjust(3 * hour))
      assert.lengthOf(failing.runs, 3, "the failing task still runs on its schedule")
      assert.lengthOf(healthy.runs, 3, "the others too")
      assert.lengthOf(lines.filter((l) => l.includes("chronos: task 0 * * * * failed: boom")), 3)
      assert.lengthOf(lines.filter((l) => l.includes("chronos: dying failed: defect")), 3)
    }))

  it.effect("one bad spec starts no task; tasks stop when their scope closes", () =>
    Effect.gen(function*() {
      const good = recorder("* * * * *")
      const error = yield* Effect.flip(Chronos.start([good.task, { name: "bad", spec: "* * *", run: Effect.void }]))
      assert.include(error.message, "task bad")
      yield* TestClock.adjust(10 * minute)
      assert.deepStrictEqual(good.runs, [])
      const scope = yield* Scope.make()
      yield* Chronos.start([good.task]).pipe(Scope.provide(scope))
      yield* TestClock.adjust(2 * minute)
      assert.lengthOf(good.runs, 2)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust(10 * minute)
      assert.lengthOf(good.runs, 2, "nothing runs once the scope is closed")
    }))
})

describe("Chronos in a scenario", () => {
  it.effect("a scenario's task runs on its schedule, with the scenario's services, until the run ends", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const task: Chronos.Task<Cloud.Cloud> = {
        name: "count agents",
        spec: "*/5 * * * *",
        run: Effect.map(Cloud.Cloud, (cloud) => void seen.push(cloud.agents.map((a) => a.name).join()))
      }
      yield* TestCloud.run(
        Scenario.make({
          title: "chronos",
          tags: [],
          vms: [{ name: "a" }],
          run: Effect.andThen(Chronos.start([task]), TestClock.adjust(hour))
        }),
        { virtualTime: false }
      )
      assert.deepStrictEqual(seen, Array.from({ length: 12 }, () => "a"))
      yield* TestClock.adjust(hour)
      assert.lengthOf(seen, 12, "the task ended with the run")
    }))
})

describe("log rotation (--log-rotation), a Chronos task of the run", () => {
  /** A scenario with a daemon on each of two agents that lets `days` pass on the TestClock. */
  const scenario = (days: number) =>
    Scenario.make({
      title: "rotation",
      tags: [],
      vms: [{ name: "a" }, { name: "b" }],
      run: Effect.gen(function*() {
        for (const agent of (yield* Cloud.Cloud).agents) yield* agent.spawn("node", "octez-node", ["run"])
        yield* TestClock.adjust(days * day + 10 * minute)
      })
    })
  const rotations = (calls: ReadonlyArray<TestCloud.Call>) =>
    calls.filter((c) => c.kind === "exec" && c.command.startsWith(`/bin/sh -c ${LogRotation.script}`))

  it.effect("rotates each agent's daemons' logs daily, keeping --log-rotation copies", () =>
    Effect.gen(function*() {
      const { calls } = yield* TestCloud.run(scenario(3), { config: { log_rotation: 7 }, virtualTime: false })
      const done = rotations(calls)
      assert.lengthOf(done, 6, "three days, two agents")
      assert.sameMembers([...new Set(done.map((c) => c.agent))], ["a", "b"])
      for (const call of done) assert.isTrue(call.command.endsWith(" sh 7 /logs/node.log"), call.command)
    }))

  it.effect("--log-rotation 0 rotates nothing", () =>
    Effect.gen(function*() {
      const { calls } = yield* TestCloud.run(scenario(3), { config: { log_rotation: 0 }, virtualTime: false })
      assert.deepStrictEqual(rotations(calls), [])
    }))
})
