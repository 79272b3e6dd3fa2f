/**
 * The emulated Compute API through the official client (`@google-cloud/compute`), with hosts not realized: what
 * the backend will see of Operations, instances, firewalls, addresses, filters, fingerprints, pagination and
 * injected faults. Requests the client cannot make (unknown fields) go through `fetch`.
 */
import { assert, describe, layer } from "@effect/vitest"
import {
  AddressesClient,
  FirewallsClient,
  GlobalOperationsClient,
  InstancesClient,
  RegionOperationsClient,
  ZoneOperationsClient
} from "@google-cloud/compute"
import { Context, Effect, Layer } from "effect"
import { clientOptions, Emulator, Faults, Hosts } from "../src/index.ts"
import { call, operation } from "./Support.ts"

const project = "proj"
const zone = "europe-west1-b"
const region = "europe-west1"

class Clients extends Context.Service<Clients, {
  readonly url: string
  readonly instances: InstancesClient
  readonly zoneOperations: ZoneOperationsClient
  readonly regionOperations: RegionOperationsClient
  readonly globalOperations: GlobalOperationsClient
  readonly firewalls: FirewallsClient
  readonly addresses: AddressesClient
}>()("test/Clients") {}

const clients = Layer.effect(
  Clients,
  Effect.gen(function*() {
    const { url } = yield* Emulator.serve({ port: 0 })
    const options = () => clientOptions(url)
    return Clients.of({
      url,
      instances: new InstancesClient(options()),
      zoneOperations: new ZoneOperationsClient(options()),
      regionOperations: new RegionOperationsClient(options()),
      globalOperations: new GlobalOperationsClient(options()),
      firewalls: new FirewallsClient(options()),
      addresses: new AddressesClient(options())
    })
  })
).pipe(Layer.provide(Layer.mergeAll(Hosts.layerNone(), Faults.Faults.layer())))

/** The gRPC code of the client's error for a call that must fail. */
const failure = (f: () => Promise<unknown>) =>
  Effect.promise(() => f().then(() => undefined, (e: { code?: number; message?: string }) => e)).pipe(
    Effect.map((e) => {
      assert.isDefined(e, "the call succeeded")
      return { code: e!.code, message: e!.message ?? "" }
    })
  )

/** Replaces the emulator's faults through its admin API. */
const setFaults = (url: string, faults: Record<string, unknown>) =>
  Effect.promise(async () => {
    const r = await fetch(`${url}/emulator/v1/faults`, { method: "PUT", body: JSON.stringify(faults) })
    assert.strictEqual(r.status, 200, await r.text())
  })

const resetFaults = Effect.gen(function*() {
  yield* setFaults((yield* Clients).url, {})
})

const instance = (name: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({
  name,
  machineType: `zones/${zone}/machineTypes/e2-small`,
  labels,
  disks: [{
    boot: true,
    autoDelete: true,
    initializeParams: { sourceImage: "projects/debian-cloud/global/images/family/debian-12" }
  }],
  networkInterfaces: [{ accessConfigs: [{ name: "External NAT", type: "ONE_TO_ONE_NAT" }] }],
  ...extra
})

describe("gce-emulator: Compute API", () => {
  layer(clients, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("instances: insert answers a RUNNING zone Operation; wait makes it DONE; get shows the instance", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const [op] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance("get-1") }))
        const started = operation(op)
        assert.strictEqual(started.kind, "compute#operation")
        assert.strictEqual(started.status, "RUNNING")
        assert.match(String(started.id), /^\d+$/)
        assert.strictEqual(started.targetLink, `${c.url}/compute/v1/projects/${project}/zones/${zone}/instances/get-1`)
        const [done] = yield* call(() => c.zoneOperations.wait({ project, zone, operation: started.name! }))
        assert.strictEqual(done.status, "DONE")
        assert.isUndefined(done.error ?? undefined)
        const [got] = yield* call(() => c.instances.get({ project, zone, instance: "get-1" }))
        assert.strictEqual(got.status, "RUNNING")
        assert.strictEqual(got.kind, "compute#instance")
        assert.strictEqual(got.selfLink, started.targetLink)
        assert.strictEqual(String(got.id), (done as { targetId?: string }).targetId)
        const nic = got.networkInterfaces![0]!
        assert.match(nic.accessConfigs![0]!.natIP!, /^127\.\d+\.\d+\.\d+$/)
        assert.strictEqual(nic.networkIP, nic.accessConfigs![0]!.natIP)
        assert.strictEqual(
          got.machineType,
          `${c.url}/compute/v1/projects/${project}/zones/${zone}/machineTypes/e2-small`
        )
        const again = yield* failure(() => c.instances.insert({ project, zone, instanceResource: instance("get-1") }))
        assert.strictEqual(again.code, 6, "ALREADY_EXISTS")
        const missing = yield* failure(() => c.instances.get({ project, zone, instance: "nope" }))
        assert.strictEqual(missing.code, 5, "NOT_FOUND")
        assert.include(missing.message, `projects/${project}/zones/${zone}/instances/nope`)
      }))

    it.effect("a change sent again with the same requestId answers the first Operation and changes nothing", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const requestId = "5b0e4a52-7d5c-4a8e-9f65-0c1d2e3f4a5b"
        const [first] = yield* call(() =>
          c.instances.insert({ project, zone, requestId, instanceResource: instance("rid-1") })
        )
        const [again] = yield* call(() =>
          c.instances.insert({ project, zone, requestId, instanceResource: instance("rid-1") })
        )
        assert.strictEqual(operation(again).name, operation(first).name)
        const conflict = yield* failure(() =>
          c.instances.insert({ project, zone, instanceResource: instance("rid-1") })
        )
        assert.strictEqual(conflict.code, 6, "without the requestId it is a second insert")
        const bad = yield* failure(() =>
          c.instances.insert({ project, zone, requestId: "not-a-uuid", instanceResource: instance("rid-2") })
        )
        assert.strictEqual(bad.code, 3)
      }))

    it.effect("aggregatedList with a label filter finds exactly that label's instances (x never matches xy)", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const labelled = [["ns-x-1", "x"], ["ns-x-2", "x"], ["ns-xy-1", "xy"]] as const
        const ops = yield* Effect.forEach(
          labelled,
          ([name, ns]) =>
            call(() =>
              c.instances.insert({
                project,
                zone: name === "ns-x-2" ? "us-east1-c" : zone,
                instanceResource: {
                  ...instance(name, { ns }),
                  machineType: `zones/${name === "ns-x-2" ? "us-east1-c" : zone}/machineTypes/e2-small`
                }
              })
            ),
          { concurrency: "unbounded" }
        )
        assert.lengthOf(ops, 3)
        const found = (filter: string) =>
          call(async () => {
            const names: Array<string> = []
            for await (const [, scoped] of c.instances.aggregatedListAsync({ project, filter })) {
              for (const i of scoped.instances ?? []) names.push(i.name!)
            }
            return names.toSorted()
          })
        assert.deepStrictEqual(yield* found("labels.ns = x"), ["ns-x-1", "ns-x-2"])
        assert.deepStrictEqual(yield* found("labels.ns = xy"), ["ns-xy-1"])
        assert.deepStrictEqual(yield* found("(labels.ns = x) AND (name = ns-x-2)"), ["ns-x-2"])
        assert.deepStrictEqual(yield* found("labels.ns != x AND labels.ns:*"), ["ns-xy-1"])
        const bad = yield* failure(async () => {
          for await (const _ of c.instances.aggregatedListAsync({ project, filter: "labels.ns = (" })) void _
        })
        assert.strictEqual(bad.code, 3, "INVALID_ARGUMENT")
      }))

    it.effect("list pages with maxResults and pageToken; the client's iterator reads every page", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const z = "asia-east1-a"
        yield* Effect.forEach(
          ["p-1", "p-2", "p-3"],
          (name) =>
            call(() =>
              c.instances.insert({
                project,
                zone: z,
                instanceResource: { ...instance(name), machineType: `zones/${z}/machineTypes/e2-small` }
              })
            )
        )
        const [first, , raw] = yield* call(() =>
          c.instances.list({ project, zone: z, maxResults: 2 }, { autoPaginate: false })
        )
        assert.deepStrictEqual(first.map((i) => i.name), ["p-1", "p-2"])
        assert.isString((raw as { nextPageToken?: string }).nextPageToken)
        const all = yield* call(async () => {
          const names: Array<string> = []
          for await (const i of c.instances.listAsync({ project, zone: z, maxResults: 1 })) names.push(i.name!)
          return names
        })
        assert.deepStrictEqual(all, ["p-1", "p-2", "p-3"])
      }))

    it.effect("setLabels needs the current labelFingerprint: a stale one fails, the current one changes the labels", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const [op] = yield* call(() =>
          c.instances.insert({ project, zone, instanceResource: instance("lab-1", { a: "1" }) })
        )
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(op).name! }))
        const [before] = yield* call(() => c.instances.get({ project, zone, instance: "lab-1" }))
        const stale = yield* failure(() =>
          c.instances.setLabels({
            project,
            zone,
            instance: "lab-1",
            instancesSetLabelsRequestResource: { labelFingerprint: "AAAAAAAAAAA=", labels: { a: "2" } }
          })
        )
        assert.strictEqual(stale.code, 9, "FAILED_PRECONDITION")
        const [set] = yield* call(() =>
          c.instances.setLabels({
            project,
            zone,
            instance: "lab-1",
            instancesSetLabelsRequestResource: { labelFingerprint: before.labelFingerprint!, labels: { a: "2" } }
          })
        )
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(set).name! }))
        const [after] = yield* call(() => c.instances.get({ project, zone, instance: "lab-1" }))
        assert.deepStrictEqual(after.labels, { a: "2" })
        assert.notStrictEqual(after.labelFingerprint, before.labelFingerprint)
        const reused = yield* failure(() =>
          c.instances.setLabels({
            project,
            zone,
            instance: "lab-1",
            instancesSetLabelsRequestResource: { labelFingerprint: before.labelFingerprint!, labels: {} }
          })
        )
        assert.strictEqual(reused.code, 9, "the old fingerprint is stale now")
      }))

    it.effect("delete: the Operation ends DONE and the instance is gone", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const [op] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance("del-1") }))
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(op).name! }))
        const [deletion] = yield* call(() => c.instances.delete({ project, zone, instance: "del-1" }))
        assert.strictEqual(operation(deletion).operationType, "delete")
        const [done] = yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(deletion).name! }))
        assert.strictEqual(done.status, "DONE")
        assert.strictEqual((yield* failure(() => c.instances.get({ project, zone, instance: "del-1" }))).code, 5)
      }))

    it.effect("requests are checked against the API's definitions: unknown fields, types, required fields", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const post = (path: string, body: unknown) =>
          call(async () => {
            const r = await fetch(`${c.url}/compute/v1/projects/${project}/${path}`, {
              method: "POST",
              body: JSON.stringify(body)
            })
            return {
              status: r.status,
              body: (await r.json()) as { error: { message: string; errors: Array<{ reason: string }> } }
            }
          })
        const unknown = yield* post(`zones/${zone}/instances`, { ...instance("u-1"), bogus: 1 })
        assert.strictEqual(unknown.status, 400)
        assert.include(unknown.body.error.message, `Unknown name "bogus" at 'instance_resource'`)
        const nested = yield* post(`zones/${zone}/instances`, {
          ...instance("u-2"),
          networkInterfaces: [{ natIp: "1.2.3.4" }]
        })
        assert.include(nested.body.error.message, `Unknown name "natIp" at 'instance_resource.network_interfaces[0]'`)
        const typed = yield* post(`zones/${zone}/instances`, { ...instance("u-3"), name: 5 })
        assert.strictEqual(typed.status, 400)
        assert.include(typed.body.error.message, "instance_resource.name")
        const required = yield* post(`zones/${zone}/instances`, "")
        assert.strictEqual(required.status, 400)
        assert.include(required.body.error.message, "Required field 'resource' not specified")
        const badName = yield* failure(() =>
          c.instances.insert({ project, zone, instanceResource: instance("Bad_Name") })
        )
        assert.strictEqual(badName.code, 3)
        assert.include(badName.message, "resource.name")
        const query = yield* call(async () =>
          (await fetch(`${c.url}/compute/v1/projects/${project}/zones/${zone}/instances?bogus=1`)).status
        )
        assert.strictEqual(query, 400)
        const unserved = yield* failure(() => c.instances.stop({ project, zone, instance: "x" }))
        assert.strictEqual(unserved.code, 12, "UNIMPLEMENTED")
        assert.include(unserved.message, "Instances.Stop")
      }))

    it.effect("firewalls round-trip through global Operations", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const [op] = yield* call(() =>
          c.firewalls.insert({
            project,
            firewallResource: {
              name: "fw-1",
              allowed: [{ IPProtocol: "tcp", ports: ["22", "30000-30050"] }],
              targetTags: ["fw"]
            }
          })
        )
        const [done] = yield* call(() => c.globalOperations.wait({ project, operation: operation(op).name! }))
        assert.strictEqual(done.status, "DONE")
        const [fw] = yield* call(() => c.firewalls.get({ project, firewall: "fw-1" }))
        assert.strictEqual(fw.kind, "compute#firewall")
        assert.deepStrictEqual(fw.allowed!.map((a) => [a.IPProtocol, a.ports]), [["tcp", ["22", "30000-30050"]]])
        assert.deepStrictEqual(fw.sourceRanges, ["0.0.0.0/0"])
        assert.strictEqual(fw.direction, "INGRESS")
        assert.strictEqual(fw.priority, 1000)
        assert.strictEqual(fw.network, `${c.url}/compute/v1/projects/${project}/global/networks/default`)
        const [listed] = yield* call(() =>
          c.firewalls.list({ project, filter: "name = fw-1" }, { autoPaginate: false })
        )
        assert.deepStrictEqual(listed.map((f) => f.name), ["fw-1"])
        const badPort = yield* failure(() =>
          c.firewalls.insert({
            project,
            firewallResource: { name: "fw-2", allowed: [{ IPProtocol: "tcp", ports: ["70000"] }] }
          })
        )
        assert.strictEqual(badPort.code, 3)
        const [deletion] = yield* call(() => c.firewalls.delete({ project, firewall: "fw-1" }))
        yield* call(() => c.globalOperations.wait({ project, operation: operation(deletion).name! }))
        assert.strictEqual((yield* failure(() => c.firewalls.get({ project, firewall: "fw-1" }))).code, 5)
      }))

    it.effect("regional addresses round-trip; an instance uses a reserved one as natIP; it cannot go while in use", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const [op] = yield* call(() =>
          c.addresses.insert({ project, region, addressResource: { name: "addr-1", labels: { ns: "x" } } })
        )
        const [done] = yield* call(() => c.regionOperations.wait({ project, region, operation: operation(op).name! }))
        assert.strictEqual(done.status, "DONE")
        assert.strictEqual(done.region, `${c.url}/compute/v1/projects/${project}/regions/${region}`)
        const [address] = yield* call(() => c.addresses.get({ project, region, address: "addr-1" }))
        assert.strictEqual(address.status, "RESERVED")
        assert.match(address.address!, /^127\./)
        const [listed] = yield* call(() =>
          c.addresses.list({ project, region, filter: "labels.ns = x" }, { autoPaginate: false })
        )
        assert.deepStrictEqual(listed.map((a) => a.name), ["addr-1"])
        const [vm] = yield* call(() =>
          c.instances.insert({
            project,
            zone,
            instanceResource: {
              ...instance("static-1"),
              networkInterfaces: [{ accessConfigs: [{ natIP: address.address! }] }]
            }
          })
        )
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(vm).name! }))
        const [got] = yield* call(() => c.instances.get({ project, zone, instance: "static-1" }))
        assert.strictEqual(got.networkInterfaces![0]!.accessConfigs![0]!.natIP, address.address)
        const [inUse] = yield* call(() => c.addresses.get({ project, region, address: "addr-1" }))
        assert.strictEqual(inUse.status, "IN_USE")
        assert.deepStrictEqual(inUse.users, [got.selfLink])
        assert.strictEqual((yield* failure(() => c.addresses.delete({ project, region, address: "addr-1" }))).code, 9)
        const unknownIp = yield* failure(() =>
          c.instances.insert({
            project,
            zone,
            instanceResource: {
              ...instance("static-2"),
              networkInterfaces: [{ accessConfigs: [{ natIP: "127.0.0.200" }] }]
            }
          })
        )
        assert.strictEqual(unknownIp.code, 3)
        const [gone] = yield* call(() => c.instances.delete({ project, zone, instance: "static-1" }))
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(gone).name! }))
        const [released] = yield* call(() => c.addresses.get({ project, region, address: "addr-1" }))
        assert.strictEqual(released.status, "RESERVED")
        const [deletion] = yield* call(() => c.addresses.delete({ project, region, address: "addr-1" }))
        yield* call(() => c.regionOperations.wait({ project, region, operation: operation(deletion).name! }))
        assert.strictEqual((yield* failure(() => c.addresses.get({ project, region, address: "addr-1" }))).code, 5)
      }))
    it.effect("an injected quota error surfaces as the insert Operation's error (QUOTA_EXCEEDED, 403); nothing is created", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        yield* setFaults(c.url, { quotaExceededOnInsert: [2] })
        const results = []
        for (const name of ["q-1", "q-2", "q-3"]) {
          const [op] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance(name) }))
          const [done] = yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(op).name! }))
          results.push(done)
        }
        assert.strictEqual(results[0]!.error ?? undefined, undefined)
        assert.strictEqual(results[1]!.status, "DONE")
        assert.strictEqual(results[1]!.error?.errors?.[0]?.code, "QUOTA_EXCEEDED")
        assert.include(results[1]!.error?.errors?.[0]?.message, "Quota 'CPUS' exceeded")
        assert.strictEqual(
          results[1]!.error?.errors?.[0]?.errorDetails?.[0]?.quotaInfo?.metricName,
          "compute.googleapis.com/cpus"
        )
        assert.strictEqual(results[1]!.httpErrorStatusCode, 403)
        assert.strictEqual(results[2]!.error ?? undefined, undefined)
        assert.strictEqual((yield* failure(() => c.instances.get({ project, zone, instance: "q-2" }))).code, 5)
        const [q3] = yield* call(() => c.instances.get({ project, zone, instance: "q-3" }))
        assert.strictEqual(q3.status, "RUNNING")
      }).pipe(Effect.ensuring(resetFaults)))

    it.effect("a slow Operation stays RUNNING for the injected delay and wait returns it DONE", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        yield* setFaults(c.url, { operationDelayMillis: 3000 })
        const started = Date.now()
        const [op] = yield* call(() =>
          c.firewalls.insert({ project, firewallResource: { name: "slow-1", allowed: [{ IPProtocol: "icmp" }] } })
        )
        assert.strictEqual(operation(op).status, "RUNNING")
        const [polled] = yield* call(() => c.globalOperations.get({ project, operation: operation(op).name! }))
        assert.strictEqual(polled.status, "RUNNING")
        const [done] = yield* call(() => c.globalOperations.wait({ project, operation: operation(op).name! }))
        assert.strictEqual(done.status, "DONE")
        assert.isAtLeast(Date.now() - started, 2900, "wait blocked until the Operation was done")
        assert.strictEqual(done.progress, 100)
      }).pipe(Effect.ensuring(resetFaults)))

    it.effect("injected instance failures: after the configured time, or at once through the admin API", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        yield* setFaults(c.url, { instanceFailureAfterSeconds: 1 })
        const [op] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance("fail-1") }))
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(op).name! }))
        const terminated = yield* call(async () => {
          for (;;) {
            const [i] = await c.instances.get({ project, zone, instance: "fail-1" })
            if (i.status !== "RUNNING") return i
            await new Promise((r) => setTimeout(r, 100))
          }
        }).pipe(Effect.timeout("30 seconds"))
        assert.strictEqual(terminated.status, "TERMINATED")
        yield* setFaults(c.url, {})
        const [op2] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance("fail-2") }))
        yield* call(() => c.zoneOperations.wait({ project, zone, operation: operation(op2).name! }))
        const r = yield* call(() =>
          fetch(`${c.url}/emulator/v1/projects/${project}/zones/${zone}/instances/fail-2/fail`, { method: "POST" })
        )
        assert.strictEqual(r.status, 200)
        const [failed] = yield* call(() => c.instances.get({ project, zone, instance: "fail-2" }))
        assert.strictEqual(failed.status, "TERMINATED")
      }).pipe(Effect.ensuring(resetFaults)))

    it.effect("the faults admin API refuses what it does not know", () =>
      Effect.gen(function*() {
        const c = yield* Clients
        const put = (body: string) =>
          call(() => fetch(`${c.url}/emulator/v1/faults`, { method: "PUT", body }).then((r) => r.status))
        assert.strictEqual(yield* put(JSON.stringify({ quotaExceeded: 2 })), 400)
        assert.strictEqual(yield* put(JSON.stringify({ operationDelayMillis: -1 })), 400)
        assert.strictEqual(yield* put("{"), 400)
        assert.strictEqual(yield* put(JSON.stringify({ operationDelayMillis: 0 })), 200)
        const current = yield* call(() => fetch(`${c.url}/emulator/v1/faults`).then((r) => r.json()))
        assert.deepStrictEqual(current, { operationDelayMillis: 0 })
      }).pipe(Effect.ensuring(resetFaults)))
  })
})
