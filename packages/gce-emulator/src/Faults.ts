/**
 * Fault injection: what tests (and users trying failure paths) ask the emulator to get wrong on purpose. Set from
 * the command line at start-up and replaced at run time through `PUT /emulator/v1/faults`.
 *
 * - `quotaExceededOnInsert`: the ordinals (1-based, counted from when the faults were set) of the
 *   `instances.insert` calls whose Operation fails with `QUOTA_EXCEEDED`, as Compute reports a CPU quota.
 * - `operationDelayMillis`: every Operation stays `RUNNING` at least this long after its work is done.
 * - `instanceFailureAfterSeconds`: every instance that reaches `RUNNING` afterwards has its host killed this many
 *   seconds later and goes `TERMINATED`, as after a host error.
 */
import { Context, Effect, Layer, Schema } from "effect"

export const Config = Schema.Struct({
  quotaExceededOnInsert: Schema.optional(Schema.Array(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
  operationDelayMillis: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  instanceFailureAfterSeconds: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)))
})
export type Config = typeof Config.Type

export class Faults extends Context.Service<Faults, {
  readonly current: Effect.Effect<Config>
  /** Replaces the faults and restarts the insert count. */
  set(config: Config): Effect.Effect<void>
  /** Counts one `instances.insert`; whether it must fail with `QUOTA_EXCEEDED`. */
  readonly insertExceedsQuota: Effect.Effect<boolean>
}>()("@tezt-cloud/gce-emulator/Faults") {
  static readonly layer = (initial: Config = {}) =>
    Layer.sync(Faults, () => {
      let config = initial
      let inserts = 0
      return Faults.of({
        current: Effect.sync(() => config),
        set: (next) =>
          Effect.sync(() => {
            config = next
            inserts = 0
          }),
        insertExceedsQuota: Effect.sync(() => {
          inserts += 1
          return config.quotaExceededOnInsert?.includes(inserts) ?? false
        })
      })
    })
}
