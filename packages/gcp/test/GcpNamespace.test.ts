/**
 * What a namespace's sweeps delete, on the GCE emulator (in process, no hosts): `--destroy` on a proxy VM spares
 * that VM and its rule (the run on it must not delete the machine it runs on), and `CLOUD clean up` of a killed
 * `--proxy` run deletes everything of the namespace on the API its proxy VM's ledger record names.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Ledger } from "@tezt-cloud/core"
import { Emulator, Faults, Hosts } from "@tezt-cloud/gce-emulator"
import { GceClient, GceResources, GcpAgents, GcpNamespace, type GcpTarget } from "@tezt-cloud/gcp"
import { Effect, Layer } from "effect"

const emulator = Emulator.GceEmulator.layer({ port: 0 }).pipe(
  Layer.provide(Layer.mergeAll(Hosts.layerNone(), Faults.Faults.layer()))
)

const namespace = "swept"
const proxy = `${namespace}-proxy`

const spec = (agent: string): GceResources.Spec => ({
  namespace,
  agent,
  zone: "europe-west1-b",
  machineType: "n1-standard-2",
  image: GceResources.images.debian!,
  diskType: "pd-ssd",
  diskSizeGb: 10,
  maxRunDuration: undefined,
  sshPort: 30000,
  publicKey: "ssh-ed25519 AAAAC3Nza tezt-cloud swept",
  ports: { start: 30050, end: 30099 },
  monitoring: false,
  packages: []
})

/** The namespace's VMs and rules, by name. */
const names = (gce: GceClient.Api) =>
  Effect.map(GcpNamespace.resources(gce, namespace), (r) => ({
    vms: r.instances.map((i) => i.resource.name!).toSorted(),
    rules: r.rules.map((f) => f.name!).toSorted()
  }))

describe("GcpNamespace on the emulator", () => {
  layer(emulator, { excludeTestServices: true, timeout: 60_000 })((it) => {
    it.effect("--destroy on a proxy spares the proxy's VM; clean up around it deletes everything of the namespace", () =>
      Effect.gen(function*() {
        const { url } = yield* Emulator.GceEmulator
        const target: GcpTarget.Target = {
          endpoint: url,
          project: "p",
          zone: "europe-west1-b",
          region: "europe-west1",
          image: undefined
        }
        const gce = yield* GceClient.make(target)
        const agents = ["agent-000", proxy]
        for (const agent of agents) {
          yield* gce.insertInstance(GceResources.instance(spec(agent)), GceResources.images.debian!)
          yield* gce.insertFirewall(GceResources.firewall(spec(agent)))
        }
        const spared = GceResources.instanceName(namespace, proxy)
        const gone = yield* GcpNamespace.destroy(gce, namespace, [proxy])
        assert.sameMembers(gone, [
          `VM ${GceResources.instanceName(namespace, "agent-000")}`,
          `firewall rule ${GceResources.instanceName(namespace, "agent-000")}`
        ])
        assert.deepStrictEqual(yield* names(gce), { vms: [spared], rules: [spared] })

        yield* gce.insertInstance(GceResources.instance(spec("agent-001")), GceResources.images.debian!)
        const ledger = Ledger.Ledger.layerMemory(namespace)
        const deleted = yield* Effect.gen(function*() {
          const l = yield* Ledger.Ledger
          // No record of the proxy's VM: nothing is known of where it was, nothing is deleted.
          assert.deepStrictEqual(yield* GcpAgents.destroyAround(namespace, proxy), [])
          yield* l.acquire({
            id: `gcp-instance:p/europe-west1-b/${spared}`,
            kind: GcpNamespace.instanceKind,
            data: { namespace, agent: proxy, instance: spared, project: "p", zone: "europe-west1-b", endpoint: url }
          })
          return yield* GcpAgents.destroyAround(namespace, proxy)
        }).pipe(Effect.provide(ledger))
        assert.lengthOf(deleted, 3, deleted.join(", "))
        assert.deepStrictEqual(yield* names(gce), { vms: [], rules: [] })
      }).pipe(Effect.scoped))
  })
})
