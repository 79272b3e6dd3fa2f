/**
 * Everything a namespace has in a GCP project, found by its label (firewall rules: by their description), never
 * by a name prefix, and how to delete all of it: what `--destroy` sweeps at the end of a run and what
 * `CLOUD destroy` does.
 */
import { Effect } from "effect"
import type * as GceClient from "./GceClient.ts"
import * as GceResources from "./GceResources.ts"

/** The ledger kind of an agent's VM and firewall rule. */
export const instanceKind = "gcp-instance"

export interface Resources {
  readonly instances: ReadonlyArray<GceClient.Located<GceClient.Instance>>
  readonly rules: ReadonlyArray<GceClient.Firewall>
  readonly addresses: ReadonlyArray<GceClient.Located<GceClient.Address>>
}

/** The namespace's VMs (every zone), firewall rules and addresses (every region). */
export const resources = Effect.fn("GcpNamespace.resources")(function*(gce: GceClient.Api, namespace: string) {
  const filter = GceResources.namespaceFilter(namespace)
  const [instances, rules, addresses] = yield* Effect.all([
    gce.instances(filter),
    gce.firewalls,
    gce.addresses(filter)
  ], { concurrency: 3 })
  return {
    // The filter already matches the label exactly; checked again, as everything deleted by label is.
    instances: instances.filter((i) => GceResources.labelled(i.resource.labels, namespace)),
    rules: rules.filter((r) => GceResources.firewallOf(r, namespace)),
    addresses: addresses.filter((a) => GceResources.labelled(a.resource.labels, namespace))
  } satisfies Resources
})

/**
 * Deletes everything of the namespace (VMs first: an address in use cannot go) but the VMs (and rules) of the
 * agents `spare` names (the proxy a run on a proxy runs on); returns what, one name each.
 */
export const destroy = Effect.fn("GcpNamespace.destroy")(function*(
  gce: GceClient.Api,
  namespace: string,
  spare: ReadonlyArray<string> = []
) {
  const all = yield* resources(gce, namespace)
  const spared = new Set(spare.map((agent) => GceResources.instanceName(namespace, agent)))
  const found = {
    ...all,
    instances: all.instances.filter((i) => !spared.has(i.resource.name!)),
    rules: all.rules.filter((r) => !spared.has(r.name!))
  }
  yield* Effect.all([
    Effect.forEach(found.instances, (i) => gce.deleteInstance(i.where, i.resource.name!), {
      concurrency: 16,
      discard: true
    }),
    Effect.forEach(found.rules, (r) => gce.deleteFirewall(r.name!), { concurrency: 16, discard: true })
  ], { concurrency: 2, discard: true })
  yield* Effect.forEach(found.addresses, (a) => gce.deleteAddress(a.where, a.resource.name!), {
    concurrency: 16,
    discard: true
  })
  return [
    ...found.instances.map((i) => `VM ${i.resource.name}`),
    ...found.rules.map((r) => `firewall rule ${r.name}`),
    ...found.addresses.map((a) => `address ${a.resource.name}`)
  ]
})
