/**
 * The Compute Engine clients the backend uses (`GceClient`), loaded for a fraction of what `@google-cloud/compute`
 * costs: its index loads every client of three API versions and the generated classes of every message, and each
 * client builds its definitions from the definitions of the whole API (`protos.json`, 12 MB: over a CPU-second).
 *
 * **Details**
 *
 * - Each client is the package's own module (`build/src/v1/…_client.js`), run here with a `require` that answers
 *   its `require("../../protos/protos.json")` with the definitions the backend's services reach, and nothing else
 *   (`ComputeDefinitions`), and its `require("google-gax")` with the REST transport alone (`restOnly`). The
 *   modules run here are this module's own: the package's, if something else imports them, are the package's as
 *   they are.
 */
import type * as Addresses from "@google-cloud/compute/build/src/v1/addresses_client.js"
import type * as Firewalls from "@google-cloud/compute/build/src/v1/firewalls_client.js"
import type * as GlobalOperations from "@google-cloud/compute/build/src/v1/global_operations_client.js"
import type * as Instances from "@google-cloud/compute/build/src/v1/instances_client.js"
import type * as RegionOperations from "@google-cloud/compute/build/src/v1/region_operations_client.js"
import type * as ZoneOperations from "@google-cloud/compute/build/src/v1/zone_operations_client.js"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import * as vm from "node:vm"
import { type Definition, definitions } from "./ComputeDefinitions.ts"

const require = createRequire(import.meta.url)

/**
 * What a client module gets for `google-gax`: its REST transport (`google-gax/fallback`, which the clients use when
 * made with `fallback: true`, as `GceClient` makes them) and the two helpers the module calls, without the gRPC
 * transport the package's index loads (`@grpc/grpc-js`…). Decoding an error's details loads the whole package.
 */
const restOnly = (own: NodeJS.Require) => ({
  fallback: own("google-gax/fallback") as unknown,
  loggingUtils: createRequire(own.resolve("google-gax"))("google-logging-utils") as unknown,
  get decodeAnyProtosInArray(): unknown {
    return (own("google-gax") as { readonly decodeAnyProtosInArray: unknown }).decodeAnyProtosInArray
  }
})

/**
 * The exports of the package's client module `name` (`instances` for `build/src/v1/instances_client.js`), run with
 * `protos` as its definitions.
 */
const clientModule = (name: string, protos: Definition): unknown => {
  const file = require.resolve(`@google-cloud/compute/build/src/v1/${name}_client.js`)
  const own = createRequire(file)
  const module = { exports: {} }
  const run = vm.compileFunction(fs.readFileSync(file, "utf8"), [
    "exports",
    "require",
    "module",
    "__filename",
    "__dirname"
  ], {
    filename: file
  })
  const required = (id: string) =>
    id === "../../protos/protos.json" ? protos : id === "google-gax" ? restOnly(own) : own(id)
  run.call(module.exports, module.exports, Object.assign(required, own), module, file, path.dirname(file))
  return module.exports
}

/** The clients, each with the definitions of the six services (one set, shared: the client caches what it builds). */
const load = () => {
  const protos = definitions
  return {
    InstancesClient: (clientModule("instances", protos) as typeof Instances).InstancesClient,
    ZoneOperationsClient: (clientModule("zone_operations", protos) as typeof ZoneOperations).ZoneOperationsClient,
    GlobalOperationsClient: (clientModule("global_operations", protos) as typeof GlobalOperations)
      .GlobalOperationsClient,
    RegionOperationsClient: (clientModule("region_operations", protos) as typeof RegionOperations)
      .RegionOperationsClient,
    FirewallsClient: (clientModule("firewalls", protos) as typeof Firewalls).FirewallsClient,
    AddressesClient: (clientModule("addresses", protos) as typeof Addresses).AddressesClient
  }
}

/** The clients, loaded when this module is first imported (`GceClient` imports it on first use): once a process. */
export const clients = load()
