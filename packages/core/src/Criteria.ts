/**
 * The success criteria of one run: declared by its scenario, judged on the run's `Verdict.Source` every `every`
 * while it runs (each judgment a `verdict` event) and once it has ended (the `verdicts` event: the table).
 */
import { Clock, Duration, Effect, Fiber, Schedule, Scope } from "effect"
import * as CloudError from "./CloudError.ts"
import { RunEvents, type Stamped } from "./RunEvents.ts"
import { type Criterion, invalid, judge, millisOf, type Source, unread, type Verdict } from "./Verdict.ts"

/** The criteria a run judges: declared by its scenario, judged during it and at its end. */
export interface Registry {
  /** Declares a criterion: refused (`CriterionInvalid`) when invalid, a duplicate, or when the run cannot judge it. */
  add(criterion: Criterion): Effect.Effect<void, CloudError.CloudError>
  /** Judges every criterion now (after a last scrape), with the breaches seen during the run; emits the table. */
  readonly conclude: Effect.Effect<ReadonlyArray<Verdict>>
}

/**
 * The registry of a run judging on `source` (none: every criterion is refused, saying `unavailable`), in the
 * current scope: the judgments during the run (`continuous`, off on a virtual clock) stop with it.
 */
export const registry = (
  source: Source | undefined,
  options: { readonly unavailable: string; readonly continuous: boolean }
): Effect.Effect<Registry, never, Scope.Scope | RunEvents> =>
  Effect.gen(function*() {
    const events = yield* RunEvents
    const scope = yield* Scope.Scope
    const criteria: Array<Criterion> = []
    const breaches = new Map<string, Verdict>()
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    const judgeNow = (s: Source, criterion: Criterion, final: boolean) =>
      Effect.gen(function*() {
        const samples = yield* Effect.result(s.samples(criterion))
        const at = yield* Clock.currentTimeMillis
        return samples._tag === "Success"
          ? judge(criterion, samples.success, at, final)
          : final
          ? unread(criterion, samples.failure, at)
          : { ...judge(criterion, [], at, false), reason: `query failed: ${samples.failure.message}` }
      })
    const watch = (s: Source, criterion: Criterion, every: number) =>
      judgeNow(s, criterion, false).pipe(
        Effect.tap((verdict) =>
          Effect.gen(function*() {
            if (verdict.status === "failed" && !breaches.has(criterion.name)) breaches.set(criterion.name, verdict)
            yield* events.emit({ type: "verdict", verdict })
          })
        ),
        Effect.repeat(Schedule.spaced(Duration.millis(every)))
      )
    const add = Effect.fn("Criteria.add")(function*(criterion: Criterion) {
      const name = typeof criterion.name === "string" ? criterion.name : String(criterion.name)
      const why = invalid(criterion)
      if (why !== undefined) return yield* CloudError.criterion(name, why)
      if (criteria.some((c) => c.name === criterion.name)) {
        return yield* CloudError.criterion(name, "a criterion of that name is already declared: give each its own name")
      }
      if (source === undefined) return yield* CloudError.criterion(name, options.unavailable)
      yield* source.check(criterion)
      criteria.push(criterion)
      const every = millisOf(criterion.every)
      if (every !== undefined && options.continuous) {
        fibers.push(yield* Effect.forkIn(watch(source, criterion, every), scope))
      }
    })
    const conclude = Effect.gen(function*() {
      if (source === undefined || criteria.length === 0) return []
      yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
      yield* source.settle.pipe(
        Effect.catch((e) => Effect.logWarning(`verdicts: the last scrape was not seen (${e.message}); judging now`))
      )
      const verdicts = yield* Effect.forEach(criteria, (criterion) =>
        judgeNow(source, criterion, true).pipe(Effect.map((verdict): Verdict => {
          const breach = breaches.get(criterion.name)
          return breach === undefined || verdict.status === "failed" ? verdict : {
            ...verdict,
            status: "failed",
            reason: `${breach.observed} at ${new Date(breach.at).toISOString().slice(11, 19)} UTC, during the run`
          }
        })), { concurrency: 4 })
      yield* events.emit({ type: "verdicts", verdicts })
      return verdicts
    })
    return { add, conclude }
  })

/** The run's latest verdicts among `events`: the final table once there is one, else the last live one of each. */
export const latest = (
  events: ReadonlyArray<Stamped>
): { readonly final: boolean; readonly verdicts: ReadonlyArray<Verdict> } | undefined => {
  const final = events.findLast((e) => e.type === "verdicts")
  if (final?.type === "verdicts") return { final: true, verdicts: final.verdicts }
  const live = new Map<string, Verdict>()
  for (const e of events) if (e.type === "verdict") live.set(e.verdict.name, e.verdict)
  return live.size === 0 ? undefined : { final: false, verdicts: [...live.values()] }
}
