/**
 * The definitions (protobuf.js's JSON form) the backend's Compute clients are made with (`ComputeClients`): of
 * `@google-cloud/compute`'s `protos.json` (12 MB, every message of three API versions), what the methods of the
 * backend's calls reach (about 100 kB).
 *
 * **Details**
 *
 * - Run from the sources, this module reads the package's file and prunes it when it is loaded: a tenth of a
 *   CPU-second, and 12 MB of garbage, in every process that makes a client. The CLI's build
 *   (`scripts/build-cli.ts`) replaces the module by its result (`definitions` as a JSON text parsed on load, a few
 *   milliseconds), made from the package the build sees: a new version of it comes with `package-lock.json`, which
 *   makes the build stale, so the built definitions are always those of the installed package.
 * - The pruned definitions keep every definition outside `google.cloud.compute` (Google's API annotations,
 *   `google.protobuf`), which are few, and of Compute v1's those that the methods called reach through their
 *   fields (87 of 2216); the other versions' (`v1beta`, `v1small`) go. Making the first client (protobuf.js
 *   builds the definitions, and Google's library hashes them) costs about half of what it does with every
 *   method of the services.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"

/** A definition of `protos.json`: a namespace, a message, a service or an enum. */
export interface Definition {
  readonly nested?: Readonly<Record<string, Definition>>
  readonly fields?: Readonly<Record<string, { readonly type: string }>>
  readonly methods?: Readonly<Record<string, { readonly requestType: string; readonly responseType: string }>>
}

/**
 * The services whose clients the backend makes (`ComputeClients`), each with the methods `GceClient` calls: the
 * others are left out of the definitions, with every message only they reach (half of those the services reach).
 * A client calls a method left out with an error (`stub[methodName] is not a function`): a new call of `GceClient`
 * adds its method here.
 */
export const methods: Readonly<Record<string, ReadonlyArray<string>>> = {
  Instances: ["Get", "AggregatedList", "Insert", "Delete"],
  ZoneOperations: ["Wait"],
  GlobalOperations: ["Wait"],
  RegionOperations: ["Wait"],
  Firewalls: ["List", "Insert", "Delete"],
  Addresses: ["AggregatedList", "Delete"]
}

/** Where Compute's definitions are in `protos.json`. */
const computePath = ["google", "cloud", "compute", "v1"] as const

/** `definition` with the namespace at `at` (a path of names) replaced by `f` of it. */
const update = (definition: Definition, at: ReadonlyArray<string>, f: (d: Definition) => Definition): Definition => {
  if (at.length === 0) return f(definition)
  const [name, ...rest] = at as [string, ...Array<string>]
  return { ...definition, nested: { ...definition.nested, [name]: update(definition.nested![name]!, rest, f) } }
}

/** `protos` with only the definitions of Compute v1 that the methods of the services `roots` reach (no other version's). */
export const prune = (protos: Definition, roots: ReadonlyArray<string>): Definition =>
  update(protos, computePath.slice(0, -1), (versions) => {
    const compute = versions.nested![computePath.at(-1)!]!
    const all = compute.nested ?? {}
    const kept: Record<string, Definition> = {}
    const absolute = `.${computePath.join(".")}.`
    // A name is relative to Compute's namespace (or to a message holding it: its first segment is then a nested
    // definition, kept with its message); an absolute name outside Compute is kept anyway.
    const reach = (name: string): void => {
      const top = (name.startsWith(absolute) ? name.slice(absolute.length) : name).split(".")[0]!
      if (top === "" || Object.hasOwn(kept, top) || !Object.hasOwn(all, top)) return
      kept[top] = all[top]!
      walk(all[top]!)
    }
    const walk = (definition: Definition): void => {
      for (const field of Object.values(definition.fields ?? {})) reach(field.type)
      for (const method of Object.values(definition.methods ?? {})) {
        reach(method.requestType)
        reach(method.responseType)
      }
      for (const inner of Object.values(definition.nested ?? {})) walk(inner)
    }
    for (const service of roots) reach(service)
    return { ...versions, nested: { [computePath.at(-1)!]: { ...compute, nested: kept } } }
  })

/** `protos` with only the methods `kept` names of each service it names (an unknown one is an error). */
export const withMethods = (protos: Definition, kept: Readonly<Record<string, ReadonlyArray<string>>>): Definition =>
  update(protos, computePath, (compute) => {
    const nested = { ...compute.nested }
    for (const [service, names] of Object.entries(kept)) {
      const all = nested[service]?.methods ?? {}
      const missing = names.filter((name) => !Object.hasOwn(all, name))
      if (missing.length > 0) throw new Error(`Compute's ${service} has no method ${missing.join(", ")}`)
      nested[service] = { ...nested[service], methods: Object.fromEntries(names.map((name) => [name, all[name]!])) }
    }
    return { ...compute, nested }
  })

/** The package's whole `protos.json`, parsed. */
export const whole = (): Definition =>
  JSON.parse(
    fs.readFileSync(createRequire(import.meta.url).resolve("@google-cloud/compute/build/protos/protos.json"), "utf8")
  ) as Definition

/** The definitions of the services' `methods` (the whole file, read once, is not kept). */
export const definitions: Definition = prune(withMethods(whole(), methods), Object.keys(methods))
