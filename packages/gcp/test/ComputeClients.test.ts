/**
 * The Compute clients on pruned definitions: each client is made (its service and every type its methods reach
 * resolve, else the client throws) on the REST transport alone (no gRPC loaded), and the definitions no service of
 * the backend reaches are gone.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ComputeClients from "@tezt-cloud/gcp/ComputeClients"
import * as ComputeDefinitions from "@tezt-cloud/gcp/ComputeDefinitions"
import { Effect } from "effect"
import { PassThroughClient } from "google-auth-library"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

type Namespace = { readonly nested: Record<string, Namespace> }

describe("ComputeClients", () => {
  it.effect("makes each client on the definitions its service reaches", () =>
    Effect.gen(function*() {
      const { clients } = ComputeClients
      assert.strictEqual(Object.keys(clients).length, 6)
      for (const Client of Object.values(clients)) {
        // A closed port: nothing is sent; `initialize` builds the client's service from the definitions.
        const client = new Client({
          fallback: true,
          apiEndpoint: "127.0.0.1",
          port: 9,
          protocol: "http",
          authClient: new PassThroughClient()
        })
        yield* Effect.promise(() => client.initialize())
        yield* Effect.promise(() => client.close())
      }
      // The REST transport alone: no gRPC.
      const loaded = Object.keys(createRequire(import.meta.url).cache)
      assert.isFalse(loaded.some((file) => file.includes(`${path.sep}@grpc${path.sep}`)), "gRPC is loaded")
    }))

  it.effect("keeps of Compute only v1's definitions the services reach", () =>
    Effect.sync(() => {
      const file = createRequire(import.meta.url).resolve("@google-cloud/compute/build/protos/protos.json")
      const pruned = ComputeDefinitions.prune(JSON.parse(fs.readFileSync(file, "utf8")), ["Firewalls"]) as Namespace
      const compute = pruned.nested.google!.nested.cloud!.nested.compute!.nested
      assert.deepStrictEqual(Object.keys(compute), ["v1"])
      const kept = Object.keys(compute.v1!.nested)
      for (const name of ["Firewalls", "Firewall", "FirewallList", "InsertFirewallRequest", "Operation"]) {
        assert.include(kept, name)
      }
      assert.notInclude(kept, "Instance")
      assert.notInclude(kept, "Instances")
      assert.isAbove(Object.keys(pruned.nested.google!.nested.protobuf!.nested).length, 10)
    }))

  it.effect("keeps of the services only the methods the backend calls, and what those reach", () =>
    Effect.sync(() => {
      const compute = (ComputeDefinitions.definitions as Namespace).nested.google!.nested.cloud!.nested.compute!.nested
        .v1!.nested as unknown as Record<string, ComputeDefinitions.Definition>
      for (const [service, names] of Object.entries(ComputeDefinitions.methods)) {
        assert.deepStrictEqual(Object.keys(compute[service]!.methods ?? {}), names, service)
      }
      // What only a method left out reaches (IAM policies: `Instances.GetIamPolicy`) is gone, not what one kept does.
      assert.notProperty(compute, "Policy")
      assert.property(compute, "Instance")
      const tiny = {
        nested: {
          google: {
            nested: {
              cloud: {
                nested: {
                  compute: {
                    nested: {
                      v1: {
                        nested: {
                          Instances: { methods: {} }
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
      assert.throws(
        () => ComputeDefinitions.withMethods(tiny, { Instances: ["Reboot"] }),
        /Instances has no method Reboot/
      )
    }))
})
