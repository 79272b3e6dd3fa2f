/**
 * The `CLOUD` maintenance jobs of the GCP backend, on the project and API of the command's options
 * (`--project-id`, `TEZT_CLOUD_GCP_ENDPOINT`): `CLOUD destroy` (also `CLOUD terraform destroy`, Tezt cloud's
 * name) deletes everything labelled with the namespace, `CLOUD list vms` lists its VMs, `CLOUD delete unused ips`
 * deletes its reserved addresses no VM uses, `CLOUD dns list` and `CLOUD dns remove --dns-domain D` read and remove
 * Cloud DNS A records, `CLOUD create dns zone --dns-domain D` and `CLOUD describe dns zone` make and show the
 * managed zones. `CLOUD clean up` is the backend's `cleanUp`.
 */
import { Cloud, CloudError, Ledger, Scenario } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as CloudDns from "./CloudDns.ts"
import * as GceClient from "./GceClient.ts"
import * as GceResources from "./GceResources.ts"
import * as GcpError from "./GcpError.ts"
import * as GcpNamespace from "./GcpNamespace.ts"
import * as GcpTarget from "./GcpTarget.ts"

/** Runs `f` with the target of the command's options (`--project-id`, the environment), and the namespace. */
const withTarget = <A, E, R>(
  what: string,
  f: (target: GcpTarget.Target, namespace: string) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    return yield* f(yield* GcpTarget.resolve(cloud.config.projectId), cloud.namespace)
  }).pipe(Effect.mapError((e) => e instanceof GcpError.GcpError ? GcpError.toCloudJob(what)(e) : e))

/** Runs `f` with the Compute API of the command's target, and the namespace. */
const withApi = <A, E, R>(what: string, f: (gce: GceClient.Api, namespace: string) => Effect.Effect<A, E, R>) =>
  withTarget(what, (target, namespace) => Effect.flatMap(GceClient.make(target), (gce) => f(gce, namespace))).pipe(
    Effect.scoped
  )

/** `CLOUD destroy` / `CLOUD terraform destroy`: the namespace's VMs, firewall rules and addresses. */
export const destroy = (stateDir: string) =>
  Scenario.make({
    title: "Destroy the namespace's GCP VMs, firewall rules and addresses (found by label)",
    tags: ["terraform", "destroy", "vms"],
    run: withApi("destroy", (gce, namespace) =>
      Effect.gen(function*() {
        const gone = yield* GcpNamespace.destroy(gce, namespace)
        for (const line of gone) yield* Effect.logInfo(`deleted ${line}`)
        yield* Effect.logInfo(
          gone.length === 0
            ? `nothing of ${namespace} in project ${gce.target.project}`
            : `destroyed ${gone.length} resource(s) of ${namespace} in project ${gce.target.project}`
        )
        // Records of killed runs on this API are settled: what they named is gone.
        const ledger = yield* Ledger.Ledger
        for (const r of yield* ledger.outstanding) {
          if (
            r.kind === GcpNamespace.instanceKind && r.data.project === gce.target.project &&
            r.data.endpoint === (gce.target.endpoint ?? "")
          ) yield* ledger.release(r.id)
        }
      }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace))))
  })

/** `CLOUD list vms`: the namespace's VMs, one line each. */
export const listVms = Scenario.make({
  title: "List the namespace's GCP VMs",
  tags: ["list", "vms"],
  run: withApi("list vms", (gce, namespace) =>
    Effect.gen(function*() {
      const { instances } = yield* GcpNamespace.resources(gce, namespace)
      for (const { resource: vm, where } of instances) {
        const ttl = vm.scheduling?.maxRunDuration?.seconds
        yield* Effect.logInfo(
          `${vm.name}\t${where}\t${String(vm.status)}\t${GceResources.addressOf(vm) ?? "-"}\t` +
            `created ${vm.creationTimestamp}${ttl === undefined || ttl === null ? "" : `\tTTL ${String(ttl)} s`}`
        )
      }
      yield* Effect.logInfo(`${instances.length} VM(s) of ${namespace} in project ${gce.target.project}`)
    }))
})

/** `CLOUD delete unused ips`: the namespace's reserved addresses that no VM uses. */
export const deleteUnusedIps = Scenario.make({
  title: "Delete the namespace's unused static IP addresses",
  tags: ["delete", "unused", "ips"],
  run: withApi("delete unused ips", (gce, namespace) =>
    Effect.gen(function*() {
      const { addresses } = yield* GcpNamespace.resources(gce, namespace)
      const unused = addresses.filter((a) => String(a.resource.status) === "RESERVED")
      yield* Effect.forEach(unused, (a) =>
        gce.deleteAddress(a.where, a.resource.name!).pipe(
          Effect.andThen(Effect.logInfo(`deleted ${a.resource.name} (${a.resource.address}, ${a.where})`)),
          // One address that cannot go does not keep the others.
          Effect.catch((e) => Effect.logWarning(`cannot delete ${a.resource.name}: ${e.message}`))
        ), { concurrency: 8, discard: true })
      yield* Effect.logInfo(`${unused.length} unused address(es) of ${namespace} deleted`)
    }))
})

/** `CLOUD dns list` (also `CLOUD describe dns list`): the A records of every managed zone of the project. */
export const dnsList = Scenario.make({
  title: "List the DNS A records of the project's managed zones",
  tags: ["describe", "dns", "list"],
  run: withTarget("dns list", (target) =>
    Effect.gen(function*() {
      const dns = CloudDns.make(target)
      for (const zone of yield* dns.zones) {
        for (const set of (yield* dns.records(zone.name)).filter((r) => r.type === "A")) {
          yield* Effect.logInfo(
            `${zone.name}\t${set.name}\t${(set.rrdatas ?? []).join(",")}\tTTL ${set.ttl ?? CloudDns.ttl}`
          )
        }
      }
    }))
})

/** `CLOUD dns remove --dns-domain D…`: removes the A record of each domain. */
export const dnsRemove = Scenario.make({
  title: "Remove the DNS A record of each --dns-domain",
  tags: ["dns", "remove"],
  run: withTarget("dns remove", (target) =>
    Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      if (cloud.config.dnsDomains.length === 0) {
        return yield* CloudError.config("--dns-domain", "give the domain(s) whose A record to remove")
      }
      const dns = CloudDns.make(target)
      for (const domain of cloud.config.dnsDomains) {
        const removed = yield* dns.remove(domain)
        yield* Effect.logInfo(`${CloudDns.normalize(domain)}: ${removed ? "A record removed" : "no A record"}`)
      }
    }))
})

/**
 * `CLOUD create dns zone --dns-domain D`: the managed zone `tezt-cloud` (the one Tezt cloud looks for) that
 * deployments' names go in, and the name servers the registrar of D's parent must delegate it to.
 */
export const createDnsZone = Scenario.make({
  title: "Create the Cloud DNS managed zone of a --dns-domain",
  tags: ["create", "dns", "zone"],
  run: withTarget("create dns zone", (target) =>
    Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const [domain, ...more] = cloud.config.dnsDomains
      if (domain === undefined || more.length > 0) {
        return yield* CloudError.config(
          "--dns-domain",
          "give exactly one domain, the zone's (e.g. --dns-domain tezt.example.com)"
        )
      }
      const { zone, created } = yield* CloudDns.make(target).createZone(CloudDns.defaultZoneName, domain)
      yield* Effect.logInfo(
        `${created ? "created" : "already there:"} zone ${zone.name} for ${zone.dnsName} in project ${target.project}`
      )
      const servers = (zone.nameServers ?? []).join(" ")
      yield* Effect.logInfo(
        servers === ""
          ? `delegate ${zone.dnsName} at its parent's registrar to the zone's name servers (CLOUD describe dns zone)`
          : `delegate ${zone.dnsName} at its parent's registrar to the name servers ${servers}`
      )
    }))
})

/** `CLOUD describe dns zone`: every managed zone of the project, with its domain and name servers. */
export const describeDnsZone = Scenario.make({
  title: "Describe the project's Cloud DNS managed zones",
  tags: ["describe", "dns", "zone"],
  run: withTarget("describe dns zone", (target) =>
    Effect.gen(function*() {
      const zones = yield* CloudDns.make(target).zones
      for (const zone of zones) {
        yield* Effect.logInfo(`${zone.name}\t${zone.dnsName}\t${(zone.nameServers ?? []).join(",")}`)
      }
      yield* Effect.logInfo(`${zones.length} managed zone(s) in project ${target.project}`)
    }))
})

/** The jobs this backend contributes. */
export const all = (stateDir: string): ReadonlyArray<Scenario.Scenario> => [
  destroy(stateDir),
  listVms,
  deleteUnusedIps,
  dnsList,
  dnsRemove,
  createDnsZone,
  describeDnsZone
]
