import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { RunEvents, Teardown } from "../src/index.ts"

/** A RunEvents layer recording the teardown failures it sees into `failures` (each test owns its own). */
const recording = (failures: Array<string>) =>
  RunEvents.RunEvents.layer([(e) => {
    if (e.type === "teardown-failed") failures.push(`${e.step}: ${e.message}`)
  }])

describe("Teardown.pool", () => {
  it.live(
    "closes its child scopes when its scope closes, at most `concurrency` at once, each to the end",
    () => {
      const failures: Array<string> = []
      return Effect.gen(function*() {
        const log: Array<string> = []
        let running = 0
        let peak = 0
        const scope = yield* Scope.make()
        const within = yield* Teardown.pool(3).pipe(Scope.provide(scope))
        for (let i = 0; i < 10; i++) {
          yield* within(Teardown.finalizer(
            `agent ${i}`,
            Effect.gen(function*() {
              running += 1
              peak = Math.max(peak, running)
              yield* Effect.sleep("5 millis")
              running -= 1
              log.push(`down ${i}`)
              if (i === 4) return yield* Effect.fail(new Error("stuck"))
            })
          ))
        }
        assert.deepStrictEqual(log, [])
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(log.length, 10)
        assert.strictEqual(peak, 3)
        // Newest first, as a scope would: the first three to start are the last three added.
        assert.deepStrictEqual(log.slice(0, 3).toSorted(), ["down 7", "down 8", "down 9"])
        assert.deepStrictEqual(failures, ["agent 4: stuck"])
      }).pipe(Effect.provide(recording(failures)))
    },
    { timeout: 10_000 }
  )

  it.effect("reported: a failure is reported as a step and still fails (a ledger record then stays)", () => {
    const failures: Array<string> = []
    return Effect.gen(function*() {
      const exit = yield* Teardown.reported("agent x", Effect.fail(new Error("cannot remove"))).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(failures, ["agent x: cannot remove"])
    }).pipe(Effect.provide(recording(failures)))
  })
})
