/**
 * Chronos: the run's recurring tasks, each on a 5-field cron spec read in UTC (`minute hour day-of-month month
 * day-of-week`, with `*`, lists, ranges and steps: `*\/15 0-6,12 * * 1-5`), each run delayed by a random time up
 * to the task's `randomDelay` (many agents or runs on one schedule do not all start at the same second). Tasks run
 * in the scope that starts them (the run's): they stop when it closes. A failing run of a task is logged and
 * never stops it, nor the other tasks. Log rotation of the daemons is one (`LogRotation`).
 *
 * **Details**
 *
 * - Parsing and the next due time are Effect's `Cron` (UTC); a spec with seconds (6 fields) is refused.
 * - Time is Effect's `Clock` and randomness its `Random`: tests drive them with `TestClock` and a seed.
 * - A task's next run is computed after its previous run ends: a run never overlaps its own next one.
 */
import { Cause, Clock, Cron, Duration, Effect, Random, Result, type Scope } from "effect"
import * as CloudError from "./CloudError.ts"

export interface Task<R = never> {
  /** For the log: what failed. */
  readonly name: string
  /** `minute hour day-of-month month day-of-week`, in UTC. */
  readonly spec: string
  /** Each run starts at a random time from its due time to this much after (none by default). */
  readonly randomDelay?: Duration.Input | undefined
  readonly run: Effect.Effect<void, unknown, R>
}

/** The cron of a 5-field UTC spec, or a `ConfigInvalid` naming `what` (the task or option) and the form. */
export const parse = (spec: string, what = "cron spec"): Effect.Effect<Cron.Cron, CloudError.CloudError> => {
  const fields = spec.trim().split(/\s+/)
  const invalid = (why: string) =>
    CloudError.config(
      what,
      `"${spec.slice(0, 80)}" is not a 5-field cron spec (${why}): give minute hour day-of-month month ` +
        `day-of-week in UTC, each *, a list, a range or a step, e.g. "*/15 0-6,12 * * 1-5"`
    )
  if (fields.length !== 5) return Effect.fail(invalid(`${fields.length} field(s)`))
  const parsed = Cron.parse(fields.join(" "), "UTC")
  return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(invalid(parsed.failure.message))
}

/** When a cron is next due strictly after `now` (epoch milliseconds). */
export const next = (cron: Cron.Cron, now: number): number => Cron.next(cron, now).getTime()

/** One task forever: wait for its due time (plus its random delay), run it, log a failure, again. */
const loop = <R>(task: Task<R>, cron: Cron.Cron) => {
  const maxDelay = task.randomDelay === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(task.randomDelay))
  const once = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const delay = maxDelay <= 0 ? 0 : Math.floor(yield* Random.nextBetween(0, maxDelay))
    yield* Effect.sleep(Duration.millis(next(cron, now) - now + delay))
    const exit = yield* Effect.exit(task.run)
    if (exit._tag === "Failure" && !Cause.hasInterruptsOnly(exit.cause)) {
      const error = Cause.squash(exit.cause)
      yield* Effect.logWarning(
        `chronos: ${task.name} failed: ${error instanceof Error ? error.message : String(error)}; it runs again ` +
          `on its schedule (${task.spec} UTC)`
      )
    }
  })
  return Effect.forever(once)
}

/**
 * Starts `tasks` in the current scope (every spec is checked first: one bad spec starts none) and returns at once;
 * they run until the scope closes.
 */
export const start = Effect.fn("Chronos.start")(function*<R>(tasks: ReadonlyArray<Task<R>>) {
  const crons = yield* Effect.forEach(tasks, (task) => parse(task.spec, `task ${task.name}`))
  yield* Effect.forEach(tasks, (task, i) => Effect.forkScoped(loop(task, crons[i]!)), { discard: true })
}) as <R>(tasks: ReadonlyArray<Task<R>>) => Effect.Effect<void, CloudError.CloudError, R | Scope.Scope>
