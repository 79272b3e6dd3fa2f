/**
 * Teardown steps: finalizers that log their failure (and emit `teardown-failed`) instead of failing, so one
 * broken step never blocks the next. Scopes run them in reverse order of acquisition.
 */
import { Cause, Effect, Exit, Scope } from "effect"
import * as CloudError from "./CloudError.ts"
import { RunEvents } from "./RunEvents.ts"

/** Runs `release` as a named teardown step: a failure or defect is reported, never propagated. */
export const step = <E, R>(name: string, release: Effect.Effect<void, E, R>): Effect.Effect<void, never, R> =>
  release.pipe(
    Effect.withSpan("Teardown.step", { attributes: { step: name } }),
    Effect.exit,
    Effect.flatMap((exit) => {
      if (Exit.isSuccess(exit)) return Effect.void
      const error = Cause.squash(exit.cause)
      const message = error instanceof Error ? error.message : Cause.pretty(exit.cause)
      const cause = CloudError.details(error)
      return Effect.serviceOption(RunEvents).pipe(
        Effect.flatMap((events) =>
          events._tag === "Some"
            ? events.value.emit({
              type: "teardown-failed",
              step: name,
              message,
              ...(cause === undefined ? {} : { cause })
            })
            : Effect.void
        ),
        Effect.andThen(Effect.logWarning(`teardown: ${name} failed: ${message}`)),
        Effect.andThen(CloudError.logDetails(error))
      )
    })
  )

/**
 * Like `step`, but a failure is reported and then still fails: under `Ledger.scoped`, the resource's record stays
 * outstanding, so that `CLOUD clean up` retries it.
 */
export const reported = <E, R>(name: string, release: Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
  release.pipe(Effect.tapCause((cause) => step(name, Effect.failCause(cause))))

/** `acquireRelease` whose release is a teardown `step`. */
export const acquireRelease = <A, E, R, R2>(
  name: string,
  acquire: Effect.Effect<A, E, R>,
  release: (a: A) => Effect.Effect<void, unknown, R2>
): Effect.Effect<A, E, R | R2 | Scope.Scope> => Effect.acquireRelease(acquire, (a) => step(name, release(a)))

/** Adds a named teardown step to the current scope. */
export const finalizer = <R>(
  name: string,
  release: Effect.Effect<void, unknown, R>
): Effect.Effect<void, never, R | Scope.Scope> => Effect.addFinalizer(() => step(name, release))

/**
 * A pool of child scopes of the current scope, closed `concurrency` at a time (the newest first) when it closes:
 * one per agent, so that tearing down 1000 agents takes 1000 / `concurrency` rounds instead of 1000, and a slow
 * or failing agent holds only itself. `pool(n)` returns `within`, which runs an effect in a new child scope of
 * the pool.
 */
export const pool = (concurrency: number): Effect.Effect<
  <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, Scope.Scope>>,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const children: Array<Scope.Closeable> = []
    yield* Effect.addFinalizer((exit) =>
      Effect.forEach(children.toReversed(), (child) => Scope.close(child, exit), { concurrency, discard: true })
    )
    return <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => {
        const child = Scope.makeUnsafe()
        children.push(child)
        return Scope.provide(child)(effect)
      })
  })
