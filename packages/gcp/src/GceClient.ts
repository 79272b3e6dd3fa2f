/**
 * The Compute Engine calls the backend makes, through the official client (`@google-cloud/compute`), loaded on
 * first use: it takes over a second to load, which a run on another backend must not pay. Every change waits
 * for its Operation with the API's own `wait` (no polling sleeps) and fails with its error, classified
 * (`GcpError.classify`); a change is sent with a `requestId`, so that sending it again after a transient failure
 * cannot do it twice.
 */
import type * as Compute from "@google-cloud/compute"
import { Context, Effect, Layer, Schedule } from "effect"
import * as crypto from "node:crypto"
import * as GcpError from "./GcpError.ts"
import type { Target } from "./GcpTarget.ts"

export type Instance = Compute.protos.google.cloud.compute.v1.IInstance
export type Firewall = Compute.protos.google.cloud.compute.v1.IFirewall
export type Address = Compute.protos.google.cloud.compute.v1.IAddress
type Operation = Compute.protos.google.cloud.compute.v1.IOperation

export interface Located<A> {
  /** The zone or region (its name). */
  readonly where: string
  readonly resource: A
}

export interface Api {
  readonly target: Target
  /** The instance called `name` in `zone`, or `undefined`. */
  instance(zone: string, name: string): Effect.Effect<Instance | undefined, GcpError.GcpError>
  /** Every instance of the project matching `filter`, in every zone. */
  instances(filter: string): Effect.Effect<ReadonlyArray<Located<Instance>>, GcpError.GcpError>
  /** Creates an instance in the target's zone and waits until it runs; `image` names its boot image in errors. */
  insertInstance(resource: Instance, image: string): Effect.Effect<void, GcpError.GcpError>
  /** Deletes an instance and waits until it is gone; a missing one is gone. */
  deleteInstance(zone: string, name: string): Effect.Effect<void, GcpError.GcpError>
  /** Every firewall rule of the project. */
  readonly firewalls: Effect.Effect<ReadonlyArray<Firewall>, GcpError.GcpError>
  insertFirewall(resource: Firewall): Effect.Effect<void, GcpError.GcpError>
  /** Deletes a firewall rule; a missing one is gone. */
  deleteFirewall(name: string): Effect.Effect<void, GcpError.GcpError>
  /** Every address of the project matching `filter`, in every region. */
  addresses(filter: string): Effect.Effect<ReadonlyArray<Located<Address>>, GcpError.GcpError>
  /** Deletes an address; a missing one is gone. */
  deleteAddress(region: string, name: string): Effect.Effect<void, GcpError.GcpError>
}

/** The last segment of a resource link (`…/zones/europe-west1-b` → `europe-west1-b`). */
export const lastSegment = (link: string | null | undefined) => String(link ?? "").split("/").at(-1) ?? ""

/** Client options for `target`: an emulator's endpoint without credentials, else Google's API with ADC. */
const clientOptions = (target: Target) =>
  target.endpoint === undefined
    ? Effect.succeed({ projectId: target.project, fallback: true })
    : Effect.promise(() => import("@tezt-cloud/gce-emulator/ClientOptions")).pipe(
      Effect.map((m) => m.clientOptions(target.endpoint!))
    )

/** The module, loaded once per process (`import` caches it). */
const load = Effect.promise(() => import("@google-cloud/compute"))

/** The clients of `target`, closed with the current scope. */
export const make = Effect.fn("GceClient.make")(function*(target: Target) {
  const compute = yield* load
  const options = yield* clientOptions(target)
  const clients = {
    instances: new compute.InstancesClient(options),
    zoneOperations: new compute.ZoneOperationsClient(options),
    globalOperations: new compute.GlobalOperationsClient(options),
    regionOperations: new compute.RegionOperationsClient(options),
    firewalls: new compute.FirewallsClient(options),
    addresses: new compute.AddressesClient(options)
  }
  yield* Effect.addFinalizer(() =>
    Effect.promise(() => Promise.allSettled(Object.values(clients).map((c) => c.close())))
  )
  const { project } = target
  const context = { project, zone: target.zone }

  // Reads (get, list, wait) are retried by the client on transient errors, within their timeout: a dead endpoint
  // is an error after 30 s, not after the client's default ten minutes. A `wait` lasts up to two minutes.
  const request = { timeout: 30_000 }
  const pages = { ...request, autoPaginate: false }
  const waiting = { timeout: 150_000 }

  /** A read, or a change (sent again on a transient failure: it carries a requestId, so it happens at most once). */
  const call = <A>(name: string, f: () => Promise<A>, image?: string, change = false) =>
    Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
      Effect.retry({
        while: (e) => change && GcpError.isTransient(e),
        times: 3,
        schedule: Schedule.exponential("500 millis")
      }),
      Effect.mapError((e) => GcpError.classify(name, e, { ...context, image }))
    )

  /** A call that may answer NOT_FOUND: `undefined` then. */
  const maybe = <A>(name: string, f: () => Promise<A>, change = false) =>
    Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
      Effect.retry({
        while: (e) => change && GcpError.isTransient(e),
        times: 3,
        schedule: Schedule.exponential("500 millis")
      }),
      Effect.catchIf(GcpError.isNotFound, () => Effect.succeed(undefined)),
      Effect.mapError((e) => GcpError.classify(name, e, context))
    )

  /** Waits for an Operation until it is DONE (each `wait` returns after at most two minutes), then its error. */
  const settle = (
    name: string,
    started: Operation | undefined,
    wait: (operation: string) => Promise<[Operation, ...Array<unknown>]>,
    image?: string
  ) =>
    Effect.gen(function*() {
      let operation = started
      while (operation !== undefined && String(operation.status) !== "DONE") {
        const current: string = operation.name ?? ""
        operation = (yield* call(`${name} (waiting for ${current})`, () => wait(current)))[0]
      }
      const errors = operation?.error?.errors ?? []
      if (errors.length > 0) return yield* GcpError.classify(name, operation!.error, { ...context, image })
    })

  const zoneWait = (zone: string) => (operation: string) =>
    clients.zoneOperations.wait({ project, zone, operation }, waiting)
  const globalWait = (operation: string) => clients.globalOperations.wait({ project, operation }, waiting)
  const regionWait = (region: string) => (operation: string) =>
    clients.regionOperations.wait({ project, region, operation }, waiting)

  /** The latest Operation of a long-running call's answer. */
  const started = (answer: readonly [{ readonly latestResponse: unknown }, ...Array<unknown>]) =>
    answer[0].latestResponse as Operation | undefined

  /** Every item of a paged iterable. */
  const all = <A>(name: string, iterate: () => AsyncIterable<A>) =>
    call(name, async () => {
      const items: Array<A> = []
      for await (const item of iterate()) items.push(item)
      return items
    })

  return {
    target,
    instance: (zone, name) =>
      maybe(`get instance ${name}`, () => clients.instances.get({ project, zone, instance: name }, request)).pipe(
        Effect.map((answer) => answer?.[0])
      ),
    instances: (filter) =>
      all("list instances", () => clients.instances.aggregatedListAsync({ project, filter }, pages)).pipe(
        Effect.map((scopes) =>
          scopes.flatMap(([scope, list]) =>
            (list.instances ?? []).map((resource) => ({ where: lastSegment(scope), resource }))
          )
        )
      ),
    insertInstance: (resource, image) =>
      Effect.gen(function*() {
        const name = `create instance ${resource.name}`
        const requestId = crypto.randomUUID()
        const answer = yield* call(
          name,
          () =>
            clients.instances.insert({ project, zone: target.zone, requestId, instanceResource: resource }, request),
          image,
          true
        )
        yield* settle(name, started(answer), zoneWait(target.zone), image)
      }),
    deleteInstance: (zone, instance) =>
      Effect.gen(function*() {
        const name = `delete instance ${instance}`
        const requestId = crypto.randomUUID()
        const answer = yield* maybe(name, () =>
          clients.instances.delete({ project, zone, instance, requestId }, request), true)
        if (answer !== undefined) {
          yield* settle(name, started(answer), zoneWait(zone))
        }
      }),
    firewalls: all("list firewall rules", () => clients.firewalls.listAsync({ project }, pages)),
    insertFirewall: (resource) =>
      Effect.gen(function*() {
        const name = `create firewall rule ${resource.name}`
        const requestId = crypto.randomUUID()
        const answer = yield* call(
          name,
          () => clients.firewalls.insert({ project, requestId, firewallResource: resource }, request),
          undefined,
          true
        )
        yield* settle(name, started(answer), globalWait)
      }),
    deleteFirewall: (firewall) =>
      Effect.gen(function*() {
        const name = `delete firewall rule ${firewall}`
        const requestId = crypto.randomUUID()
        const answer = yield* maybe(
          name,
          () => clients.firewalls.delete({ project, firewall, requestId }, request),
          true
        )
        if (answer !== undefined) yield* settle(name, started(answer), globalWait)
      }),
    addresses: (filter) =>
      all("list addresses", () => clients.addresses.aggregatedListAsync({ project, filter }, pages)).pipe(
        Effect.map((scopes) =>
          scopes.flatMap(([scope, list]) =>
            (list.addresses ?? []).map((resource) => ({ where: lastSegment(scope), resource }))
          )
        )
      ),
    deleteAddress: (region, address) =>
      Effect.gen(function*() {
        const name = `delete address ${address}`
        const requestId = crypto.randomUUID()
        const answer = yield* maybe(name, () =>
          clients.addresses.delete({ project, region, address, requestId }, request), true)
        if (answer !== undefined) {
          yield* settle(name, started(answer), regionWait(region))
        }
      })
  } satisfies Api
})

/** The Compute Engine API of a target, as a service (for the `CLOUD` jobs). */
export class GceClient extends Context.Service<GceClient, Api>()("@tezt-cloud/gcp/GceClient") {
  static readonly layer = (target: Target) => Layer.effect(GceClient, make(target))
}
