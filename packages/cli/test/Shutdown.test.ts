import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Option } from "effect"
import { EventEmitter } from "node:events"
import * as Shutdown from "../src/Shutdown.ts"

/** SIGUSR2 stands for the real signals: the test runner's own SIGINT and SIGTERM are left alone. */
const signal = "SIGUSR2"
const send = Effect.sync(() => process.kill(process.pid, signal))

const layer = (lastResort: Shutdown.Options["lastResort"], output = new EventEmitter()) =>
  Shutdown.layer({ lastResort, bound: "200 millis", signals: [signal], output, quiet: [] })

/** A command that says when it is running, then waits forever; its teardown is `teardown`. */
const command = (started: Deferred.Deferred<void>, teardown: Effect.Effect<void>) =>
  Effect.addFinalizer(() => teardown).pipe(
    Effect.andThen(Deferred.succeed(started, undefined)),
    Effect.andThen(Effect.never),
    Effect.scoped
  )

describe("Shutdown", () => {
  it.live("the first signal interrupts the command, whose teardown runs in full", () =>
    Effect.gen(function*() {
      const shutdown = yield* Shutdown.Shutdown
      const started = yield* Deferred.make<void>()
      const tornDown: Array<string> = []
      yield* Effect.forkChild(Deferred.await(started).pipe(Effect.andThen(send)))
      const ending = yield* shutdown.supervise(command(started, Effect.sync(() => void tornDown.push("done"))))
      assert.strictEqual(ending._tag, "Ended")
      if (ending._tag === "Ended") {
        assert.isTrue(Exit.hasInterrupts(ending.exit))
        assert.deepStrictEqual(ending.stop, { _tag: "Signal", signal })
      }
      assert.deepStrictEqual(tornDown, ["done"])
    }).pipe(Effect.provide(layer(() => Effect.die("no last resort on the first signal")))))

  it.live("a second signal runs the last resort on the tracked runs and returns without waiting for the teardown", () => {
    const asked: Array<string> = []
    return Effect.gen(function*() {
      const shutdown = yield* Shutdown.Shutdown
      const started = yield* Deferred.make<void>()
      const run = Effect.gen(function*() {
        yield* shutdown.track("ns-a")
        yield* shutdown.track("ns-b")
        // A teardown that never ends: only the second signal gets out of it.
        yield* command(started, Effect.never)
      }).pipe(Effect.scoped)
      yield* Effect.forkChild(Deferred.await(started).pipe(Effect.andThen(send), Effect.andThen(send)))
      const ending = yield* shutdown.supervise(run)
      assert.deepStrictEqual(ending, {
        _tag: "Forced",
        namespaces: ["ns-a", "ns-b"],
        result: Option.some({ killed: 5, left: 1 })
      })
      assert.deepStrictEqual(asked.toSorted(), ["ns-a", "ns-b"])
    }).pipe(
      Effect.provide(layer((namespace) =>
        Effect.sync(() => {
          asked.push(namespace)
          return namespace === "ns-a" ? { killed: 3, left: 0 } : { killed: 2, left: 1 }
        })
      ))
    )
  })

  it.live("a last resort that fails, or does not end within its bound, is given up: the exit is still forced", () =>
    Effect.forEach([Effect.never, Effect.die("the engine is gone")], (lastResort) =>
      Effect.gen(function*() {
        const shutdown = yield* Shutdown.Shutdown
        const started = yield* Deferred.make<void>()
        const run = shutdown.track("ns").pipe(Effect.andThen(command(started, Effect.never)), Effect.scoped)
        yield* Effect.forkChild(Deferred.await(started).pipe(Effect.andThen(send), Effect.andThen(send)))
        const ending = yield* shutdown.supervise(run)
        assert.deepStrictEqual(ending, { _tag: "Forced", namespaces: ["ns"], result: Option.none() })
      }).pipe(Effect.provide(layer(() => lastResort)))))

  it.live("a closed output (EPIPE, EIO) stops the command like a first signal", () => {
    const output = new EventEmitter()
    return Effect.gen(function*() {
      const shutdown = yield* Shutdown.Shutdown
      const started = yield* Deferred.make<void>()
      const fail = Effect.sync(() => output.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" })))
      yield* Effect.forkChild(Deferred.await(started).pipe(Effect.andThen(fail)))
      const ending = yield* shutdown.supervise(command(started, Effect.void))
      assert.strictEqual(ending._tag, "Ended")
      if (ending._tag === "Ended") {
        assert.isTrue(Exit.hasInterrupts(ending.exit))
        assert.deepStrictEqual(ending.stop, { _tag: "OutputClosed", code: "EPIPE" })
      }
    }).pipe(Effect.provide(layer(() => Effect.die("a closed output never forces"), output)))
  })

  it("the first request interrupts, the second signal forces; a closed output never counts as a signal", () => {
    const run = (stops: ReadonlyArray<Shutdown.Stop>) => {
      let state = Shutdown.initial
      return stops.map((stop) => {
        const next = Shutdown.decide(state, stop)
        state = next.state
        return next.action
      })
    }
    const hup: Shutdown.Stop = { _tag: "Signal", signal: "SIGHUP" }
    const closed: Shutdown.Stop = { _tag: "OutputClosed", code: "EIO" }
    assert.deepStrictEqual(run([hup, hup]), ["interrupt", "force"])
    // A closed terminal: the writes fail and SIGHUP comes, in either order: one request.
    assert.deepStrictEqual(run([closed, hup]), ["interrupt", "none"])
    assert.deepStrictEqual(run([hup, closed, closed]), ["interrupt", "none", "none"])
    assert.deepStrictEqual(run([closed, hup, { _tag: "Signal", signal: "SIGINT" }]), ["interrupt", "none", "force"])
  })

  it.live("a command's own exit code is a value the supervision returns", () =>
    Effect.gen(function*() {
      const shutdown = yield* Shutdown.Shutdown
      const ending = yield* shutdown.supervise(shutdown.exitWith(4))
      assert.deepInclude(ending, { _tag: "Ended", code: 4, stop: undefined })
    }).pipe(Effect.provide(layer(() => Effect.succeed({ killed: 0, left: 0 })))))

  it.live("once the layer is released, a late signal neither reaches the command nor kills the process", () =>
    Effect.gen(function*() {
      const build = Effect.scoped(Layer.build(layer(() => Effect.succeed({ killed: 0, left: 0 }))))
      yield* build
      const after = process.listenerCount(signal)
      // Without a listener, SIGUSR2's default action would end the test runner here.
      yield* send
      yield* Effect.sleep("20 millis")
      // Released layers leave one shared listener, however many were built.
      yield* build
      assert.strictEqual(process.listenerCount(signal), after)
    }))

  it("a command that completed after a signal exits 130; otherwise with its own code, else 0", () => {
    const hup: Shutdown.Stop = { _tag: "Signal", signal: "SIGHUP" }
    assert.strictEqual(Shutdown.successCode({ code: undefined, stop: hup }), 130)
    assert.strictEqual(Shutdown.successCode({ code: 3, stop: hup }), 130)
    assert.strictEqual(Shutdown.successCode({ code: 3, stop: undefined }), 3)
    assert.strictEqual(Shutdown.successCode({ code: undefined, stop: undefined }), 0)
    assert.strictEqual(Shutdown.successCode({ code: undefined, stop: { _tag: "OutputClosed", code: "EPIPE" } }), 0)
  })
})
