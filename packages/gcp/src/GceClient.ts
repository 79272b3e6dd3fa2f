/**
 * The Compute Engine calls the backend makes, through the official client (`@google-cloud/compute`), loaded on
 * first use: loading and making the clients costs a few tenths of a CPU-second (`ComputeClients`), which a run on
 * another backend must not pay. Every change waits for its Operation with the API's own `wait` (no polling
 * sleeps) and fails with its error, classified (`GcpError.classify`); a change is sent with a `requestId`, so that
 * sending it again after a transient failure cannot do it twice.
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
    ? Effect.succeed({
      projectId: target.project,
      fallback: true,
      ...(target.credentials === undefined ? {} : { credentials: target.credentials })
    })
    : Effect.promise(() => import("@tezt-cloud/gce-emulator/ClientOptions")).pipe(
      Effect.map((m) => m.clientOptions(target.endpoint!))
    )

/** The clients' classes, loaded once per process (`import` caches the module). */
const load = Effect.promise(() => import("./ComputeClients.ts").then((m) => m.clients))

/**
 * A turn of the event loop. Loading the module and making the first client (it builds the API's protos) each
 * block the process (tenths of a second, more on a busy machine): a signal that came meanwhile is handled
 * between the two, so that Ctrl+C interrupts here instead of after both.
 */
const turn = Effect.callback<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The clients of `target`, closed with the current scope. */
export const make = Effect.fn("GceClient.make")(function*(target: Target) {
  const compute = yield* load
  yield* turn
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

  /** A call; a change is sent again on a transient failure (it carries a requestId: it happens at most once). */
  const send = <A>(name: string, f: () => Promise<A>, change: boolean) =>
    Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
      Effect.retry({
        while: (e) => change && GcpError.isTransient(e),
        times: 3,
        schedule: Schedule.exponential("500 millis")
      })
    )

  const call = <A>(name: string, f: () => Promise<A>, image?: string, change = false) =>
    send(name, f, change).pipe(Effect.mapError((e) => GcpError.classify(name, e, { ...context, image })))

  /** A call that may answer NOT_FOUND: `undefined` then. */
  const maybe = <A>(name: string, f: () => Promise<A>, change = false) =>
    send(name, f, change).pipe(
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

  type Wait = (operation: string) => Promise<[Operation, ...Array<unknown>]>
  type LongRunning = readonly [{ readonly latestResponse: unknown }, ...Array<unknown>]
  const zoneWait = (zone: string): Wait => (operation) =>
    clients.zoneOperations.wait({ project, zone, operation }, waiting)
  const globalWait: Wait = (operation) => clients.globalOperations.wait({ project, operation }, waiting)
  const regionWait = (region: string): Wait => (operation) =>
    clients.regionOperations.wait({ project, region, operation }, waiting)

  /** A change (`start` with a fresh requestId), then its Operation until DONE. */
  const change = (name: string, start: (requestId: string) => Promise<LongRunning>, wait: Wait, image?: string) =>
    Effect.gen(function*() {
      const requestId = crypto.randomUUID()
      // The request completes even when interrupted (its answer is short): a caller that rolls back after an
      // interruption then finds what it asked for, never a creation that lands after its deletion.
      const answer = yield* Effect.uninterruptible(call(name, () => start(requestId), image, true))
      yield* settle(name, answer[0].latestResponse as Operation | undefined, wait, image)
    })

  /** A deletion (`start` with a fresh requestId), then its Operation until DONE; a missing resource is gone. */
  const removal = (name: string, start: (requestId: string) => Promise<LongRunning>, wait: Wait) =>
    Effect.gen(function*() {
      const requestId = crypto.randomUUID()
      const answer = yield* maybe(name, () => start(requestId), true)
      if (answer !== undefined) yield* settle(name, answer[0].latestResponse as Operation | undefined, wait)
    })

  /** Every item of an aggregated list, with the last segment of its zone or region. */
  const aggregated = <L, A>(
    name: string,
    iterate: () => AsyncIterable<[string, L]>,
    items: (list: L) => ReadonlyArray<A> | null | undefined
  ) =>
    call(name, async () => {
      const found: Array<Located<A>> = []
      for await (const [scope, list] of iterate()) {
        for (const resource of items(list) ?? []) found.push({ where: lastSegment(scope), resource })
      }
      return found
    })

  return {
    target,
    instance: (zone, name) =>
      maybe(`get instance ${name}`, () => clients.instances.get({ project, zone, instance: name }, request)).pipe(
        Effect.map((answer) => answer?.[0])
      ),
    instances: (filter) =>
      aggregated(
        "list instances",
        () => clients.instances.aggregatedListAsync({ project, filter }, pages),
        (list) => list.instances
      ),
    insertInstance: (resource, image) =>
      change(
        `create instance ${resource.name}`,
        (requestId) =>
          clients.instances.insert({ project, zone: target.zone, requestId, instanceResource: resource }, request),
        zoneWait(target.zone),
        image
      ),
    deleteInstance: (zone, instance) =>
      removal(
        `delete instance ${instance}`,
        (requestId) => clients.instances.delete({ project, zone, instance, requestId }, request),
        zoneWait(zone)
      ),
    firewalls: call("list firewall rules", async () => {
      const rules: Array<Firewall> = []
      for await (const rule of clients.firewalls.listAsync({ project }, pages)) rules.push(rule)
      return rules
    }),
    insertFirewall: (resource) =>
      change(
        `create firewall rule ${resource.name}`,
        (requestId) => clients.firewalls.insert({ project, requestId, firewallResource: resource }, request),
        globalWait
      ),
    deleteFirewall: (firewall) =>
      removal(
        `delete firewall rule ${firewall}`,
        (requestId) => clients.firewalls.delete({ project, firewall, requestId }, request),
        globalWait
      ),
    addresses: (filter) =>
      aggregated(
        "list addresses",
        () => clients.addresses.aggregatedListAsync({ project, filter }, pages),
        (list) => list.addresses
      ),
    deleteAddress: (region, address) =>
      removal(
        `delete address ${address}`,
        (requestId) => clients.addresses.delete({ project, region, address, requestId }, request),
        regionWait(region)
      )
  } satisfies Api
})

/** The Compute Engine API of a target, as a service (for the `CLOUD` jobs). */
export class GceClient extends Context.Service<GceClient, Api>()("@tezt-cloud/gcp/GceClient") {
  static readonly layer = (target: Target) => Layer.effect(GceClient, make(target))
}
