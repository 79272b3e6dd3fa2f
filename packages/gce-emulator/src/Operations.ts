/**
 * Compute's `Operation` resources: every change (insert, delete, setLabels) answers with one at once, in status
 * `RUNNING`, and does its work in the background; the Operation goes `DONE` when the work is over, with `error`
 * (and `httpErrorStatusCode`/`httpErrorMessage`) when it failed. `get` reads one, `wait` blocks until it is
 * `DONE` or two minutes have passed (as Compute does, returning it as it is then), `list` and `delete` as the API.
 *
 * Operations live in a scope: `zones/<z>` (instances), `regions/<r>` (addresses) or `global` (firewalls).
 */
import { Deferred, Effect, FiberSet, Schema, type Scope as EffectScope } from "effect"
import * as crypto from "node:crypto"
import * as ApiError from "./ApiError.ts"
import { Faults } from "./Faults.ts"
import type { Links } from "./Links.ts"

export type Scope =
  | { readonly kind: "zones"; readonly name: string }
  | { readonly kind: "regions"; readonly name: string }
  | { readonly kind: "global" }

export const scopePath = (scope: Scope) => scope.kind === "global" ? "global" : `${scope.kind}/${scope.name}`

/** Why an Operation's work failed, as its `error.errors[0]` says. */
export class OperationFailed extends Schema.TaggedError<OperationFailed>()("OperationFailed", {
  code: Schema.String,
  message: Schema.String,
  httpStatus: Schema.Number,
  httpMessage: Schema.String,
  errorDetails: Schema.optional(Schema.Array(Schema.Unknown))
}) {}

/** The Operation error Compute gives when a quota is exceeded. */
export const quotaExceeded = (region: string) =>
  new OperationFailed({
    code: "QUOTA_EXCEEDED",
    message: `Quota 'CPUS' exceeded.  Limit: 0.0 in region ${region}.`,
    httpStatus: 403,
    httpMessage: "FORBIDDEN",
    errorDetails: [{
      quotaInfo: {
        metricName: "compute.googleapis.com/cpus",
        limitName: "CPUS-per-project-region",
        dimensions: { region },
        limit: 0
      }
    }]
  })

/** How long `wait` blocks at most, as Compute's own wait. */
export const waitLimit = "2 minutes"

/** A random unsigned 64-bit id, as a decimal string. */
export const newId = () => BigInt.asUintN(64, BigInt(`0x${crypto.randomBytes(8).toString("hex")}`)).toString()

const hex = (n: number) => crypto.randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n)

interface Entry {
  readonly project: string
  readonly scope: string
  readonly resource: Record<string, unknown>
  readonly done: Deferred.Deferred<void>
}

export interface StartOptions {
  readonly project: string
  readonly scope: Scope
  /** `insert`, `delete`, `setLabels`, … */
  readonly operationType: string
  readonly targetLink: string
  readonly targetId?: string | undefined
  /** Who started it: the API caller, or the system (a TTL). */
  readonly user?: string | undefined
}

export interface Operations {
  /** Starts `work` in the background; returns the new Operation (RUNNING). */
  start(options: StartOptions, work: Effect.Effect<void, OperationFailed>): Effect.Effect<Record<string, unknown>>
  get(project: string, scope: Scope, name: string): Effect.Effect<Record<string, unknown>, ApiError.ApiError>
  wait(project: string, scope: Scope, name: string): Effect.Effect<Record<string, unknown>, ApiError.ApiError>
  list(project: string, scope: Scope): ReadonlyArray<Record<string, unknown>>
  remove(project: string, scope: Scope, name: string): Effect.Effect<void, ApiError.ApiError>
}

/** Operations whose work runs in the current scope (interrupted when it closes). */
export const make = Effect.fn("Operations.make")(function*(links: Links) {
  const faults = yield* Faults
  const fibers = yield* FiberSet.make()
  const entries = new Map<string, Entry>()
  const key = (project: string, scope: Scope, name: string) => `${project}/${scopePath(scope)}/${name}`

  const find = (project: string, scope: Scope, name: string) => {
    const entry = entries.get(key(project, scope, name))
    return entry === undefined
      ? Effect.fail(ApiError.resourceNotFound(`projects/${project}/${scopePath(scope)}/operations/${name}`))
      : Effect.succeed(entry)
  }

  const finish = (entry: Entry, failure: OperationFailed | undefined) =>
    Effect.gen(function*() {
      const { operationDelayMillis = 0 } = yield* faults.current
      if (operationDelayMillis > 0) yield* Effect.sleep(operationDelayMillis)
      const r = entry.resource
      r.status = "DONE"
      r.progress = 100
      r.endTime = new Date().toISOString()
      if (failure !== undefined) {
        r.error = {
          errors: [{
            code: failure.code,
            message: failure.message,
            ...(failure.errorDetails === undefined ? {} : { errorDetails: failure.errorDetails })
          }]
        }
        r.httpErrorStatusCode = failure.httpStatus
        r.httpErrorMessage = failure.httpMessage
      }
      yield* Deferred.succeed(entry.done, undefined)
    })

  const operations: Operations = {
    start: (options, work) =>
      Effect.gen(function*() {
        const name = `operation-${Date.now()}-${hex(13)}-${hex(8)}-${hex(8)}`
        const scope = scopePath(options.scope)
        const now = new Date().toISOString()
        const resource: Record<string, unknown> = {
          kind: "compute#operation",
          id: newId(),
          name,
          ...(options.scope.kind === "zones" ? { zone: links.url(`projects/${options.project}/${scope}`) } : {}),
          ...(options.scope.kind === "regions" ? { region: links.url(`projects/${options.project}/${scope}`) } : {}),
          operationType: options.operationType,
          targetLink: options.targetLink,
          ...(options.targetId === undefined ? {} : { targetId: options.targetId }),
          status: "RUNNING",
          user: options.user ?? "emulator@tezt-cloud.invalid",
          progress: 0,
          insertTime: now,
          startTime: now,
          selfLink: links.url(`projects/${options.project}/${scope}/operations/${name}`)
        }
        const entry: Entry = { project: options.project, scope, resource, done: yield* Deferred.make<void>() }
        entries.set(key(options.project, options.scope, name), entry)
        const answer = { ...resource }
        yield* FiberSet.run(
          fibers,
          work.pipe(
            Effect.matchEffect({
              onFailure: (failure) => finish(entry, failure),
              onSuccess: () => finish(entry, undefined)
            })
          )
        )
        return answer
      }),
    get: (project, scope, name) => Effect.map(find(project, scope, name), (e) => ({ ...e.resource })),
    wait: (project, scope, name) =>
      Effect.gen(function*() {
        const entry = yield* find(project, scope, name)
        yield* Deferred.await(entry.done).pipe(Effect.timeoutOption(waitLimit))
        return { ...entry.resource }
      }),
    list: (project, scope) =>
      [...entries.values()].filter((e) => e.project === project && e.scope === scopePath(scope)).map((e) => ({
        ...e.resource
      })),
    remove: (project, scope, name) =>
      Effect.map(find(project, scope, name), () => void entries.delete(key(project, scope, name)))
  }
  return operations
}) satisfies (links: Links) => Effect.Effect<Operations, never, Faults | EffectScope.Scope>
