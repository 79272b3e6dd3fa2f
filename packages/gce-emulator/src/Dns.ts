/**
 * The Cloud DNS v1 methods a deployment uses, under `/dns/v1/`: managed zones (create, get, list), changes
 * (create, get) and resource record sets (list). A change is atomic: every deletion must match an existing set
 * exactly (name, type, ttl, rrdatas) and no addition may exist already, or nothing is applied. A new zone comes
 * with its SOA and NS sets, as Cloud DNS makes them.
 *
 * **Details**
 *
 * `@google-cloud/compute` does not ship Cloud DNS's definitions, so the messages are described here with
 * `Schema`, from the public v1 resource reference (unknown fields refused as for Compute). A change stays
 * `pending` for the Operations delay of `Faults`, then reads `done`.
 */
import { Effect, Schema } from "effect"
import * as ApiError from "./ApiError.ts"
import { Faults } from "./Faults.ts"
import { newId } from "./Operations.ts"

export const ResourceRecordSet = Schema.Struct({
  kind: Schema.optional(Schema.Literal("dns#resourceRecordSet")),
  name: Schema.String,
  type: Schema.String,
  ttl: Schema.optional(Schema.Int),
  rrdatas: Schema.optional(Schema.Array(Schema.String)),
  signatureRrdatas: Schema.optional(Schema.Array(Schema.String))
})
export type ResourceRecordSet = typeof ResourceRecordSet.Type

export const ManagedZone = Schema.Struct({
  kind: Schema.optional(Schema.Literal("dns#managedZone")),
  name: Schema.String,
  dnsName: Schema.String,
  description: Schema.optional(Schema.String),
  visibility: Schema.optional(Schema.Literals(["public", "private"])),
  labels: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  nameServerSet: Schema.optional(Schema.String)
})

export const Change = Schema.Struct({
  kind: Schema.optional(Schema.Literal("dns#change")),
  additions: Schema.optional(Schema.Array(ResourceRecordSet)),
  deletions: Schema.optional(Schema.Array(ResourceRecordSet)),
  isServing: Schema.optional(Schema.Boolean)
})

type Json = Record<string, unknown>

interface Zone {
  readonly project: string
  readonly resource: Json
  /** Sets by `name type`. */
  readonly rrsets: Map<string, Json>
  readonly changes: Array<{ readonly resource: Json; readonly doneAt: number }>
}

const zoneName = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/
const dnsNamePattern = /^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\.)+$/
const systemParameters = new Set(["alt", "$alt", "prettyPrint", "$prettyPrint", "fields", "key", "quotaUser", "userIp"])

const decode = <S extends Schema.Codec<unknown, unknown>>(schema: S, text: string, what: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (e) => ApiError.invalid(`Invalid JSON payload received. ${String(e)}`)
  })
    .pipe(
      Effect.flatMap((json) =>
        Schema.decodeUnknownEffect(schema as Schema.Codec<S["Type"], unknown>, { onExcessProperty: "error" })(json)
      ),
      Effect.mapError((e) => e instanceof ApiError.ApiError ? e : ApiError.invalid(`Invalid ${what}: ${e.message}`))
    )

const rrsetKey = (name: string, type: string) => `${name} ${type}`

const shapeRrset = (r: ResourceRecordSet): Json => ({
  kind: "dns#resourceRecordSet",
  name: r.name,
  type: r.type,
  ttl: r.ttl ?? 300,
  rrdatas: [...(r.rrdatas ?? [])],
  ...(r.signatureRrdatas === undefined ? {} : { signatureRrdatas: [...r.signatureRrdatas] })
})

const sameRrset = (a: Json, b: Json) =>
  a.name === b.name && a.type === b.type && a.ttl === b.ttl &&
  JSON.stringify(a.rrdatas) === JSON.stringify(b.rrdatas)

/** Reads `maxResults`/`pageToken` and slices `items`. */
const page = (items: ReadonlyArray<Json>, query: URLSearchParams) => {
  const max = Number(query.get("maxResults") ?? 1000)
  const offset = Number(Buffer.from(query.get("pageToken") ?? "", "base64url").toString("utf8") || 0)
  if (!Number.isInteger(max) || max < 1 || !Number.isInteger(offset) || offset < 0) {
    return Effect.fail(ApiError.invalid("Invalid value for 'maxResults' or 'pageToken'."))
  }
  const slice = items.slice(offset, offset + max)
  const next = offset + slice.length < items.length
    ? Buffer.from(String(offset + slice.length)).toString("base64url")
    : undefined
  return Effect.succeed({ slice, next })
}

const checkQuery = (query: URLSearchParams, allowed: ReadonlyArray<string>) => {
  for (const key of query.keys()) {
    if (!systemParameters.has(key) && !allowed.includes(key)) {
      return Effect.fail(
        ApiError.invalid(`Invalid JSON payload received. Unknown name "${key}": Cannot bind query parameter.`)
      )
    }
  }
  return Effect.void
}

export interface Dns {
  /** Handles a `/dns/v1/…` request: the response's JSON, or an `ApiError`. */
  handle(method: string, url: URL, body: string): Effect.Effect<Json, ApiError.ApiError>
}

export const make = Effect.fn("Dns.make")(function*() {
  const faults = yield* Faults
  const zones = new Map<string, Zone>()

  const findZone = (project: string, zone: string) => {
    const found = zones.get(`${project}/${zone}`) ??
      [...zones.values()].find((z) => z.project === project && z.resource.id === zone)
    return found === undefined
      ? Effect.fail(ApiError.notFound(`The 'parameters.managedZone' resource named '${zone}' does not exist.`))
      : Effect.succeed(found)
  }

  const changeView = (change: { readonly resource: Json; readonly doneAt: number }) => ({
    ...change.resource,
    status: Date.now() >= change.doneAt ? "done" : "pending"
  })

  const createZone = (project: string, body: string) =>
    Effect.gen(function*() {
      const input = yield* decode(ManagedZone, body, "managed zone")
      if (!zoneName.test(input.name)) {
        return yield* ApiError.invalidField("entity.managedZone.name", input.name, "Invalid value.")
      }
      if (!dnsNamePattern.test(input.dnsName)) {
        return yield* ApiError.invalidField("entity.managedZone.dnsName", input.dnsName, "A DNS name ends with a dot.")
      }
      if (zones.has(`${project}/${input.name}`)) {
        return yield* ApiError.alreadyExists(`The resource 'entity.managedZone' named '${input.name}' already exists`)
      }
      const nameServers = [1, 2, 3, 4].map((i) => `ns-emulator-${i}.googledomains.invalid.`)
      const resource: Json = {
        kind: "dns#managedZone",
        name: input.name,
        dnsName: input.dnsName,
        description: input.description ?? "",
        id: newId(),
        nameServers,
        creationTime: new Date().toISOString(),
        visibility: input.visibility ?? "public",
        labels: input.labels ?? {}
      }
      const soa = `${nameServers[0]} cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300`
      zones.set(`${project}/${input.name}`, {
        project,
        resource,
        rrsets: new Map([
          [
            rrsetKey(input.dnsName, "NS"),
            shapeRrset({ name: input.dnsName, type: "NS", ttl: 21600, rrdatas: nameServers })
          ],
          [rrsetKey(input.dnsName, "SOA"), shapeRrset({ name: input.dnsName, type: "SOA", ttl: 21600, rrdatas: [soa] })]
        ]),
        changes: []
      })
      return resource
    })

  const createChange = (zone: Zone, body: string) =>
    Effect.gen(function*() {
      const input = yield* decode(Change, body, "change")
      const additions = (input.additions ?? []).map(shapeRrset)
      const deletions = (input.deletions ?? []).map(shapeRrset)
      if (additions.length === 0 && deletions.length === 0) {
        return yield* ApiError.invalid("The 'entity.change' resource has no additions or deletions.")
      }
      const dnsName = String(zone.resource.dnsName)
      for (const [i, r] of [...additions, ...deletions].entries()) {
        const field = i < additions.length ? `additions[${i}]` : `deletions[${i - additions.length}]`
        const name = String(r.name)
        if (!dnsNamePattern.test(name) || !(name === dnsName || name.endsWith(`.${dnsName}`))) {
          return yield* ApiError.invalidField(
            `entity.change.${field}.name`,
            name,
            `It is not within the zone's DNS name ${dnsName}.`
          )
        }
      }
      // Deletions first (a change may replace a set), every one matching exactly.
      const after = new Map(zone.rrsets)
      for (const [i, r] of deletions.entries()) {
        const key = rrsetKey(String(r.name), String(r.type))
        const existing = after.get(key)
        if (existing === undefined) {
          return yield* ApiError.notFound(
            `The 'entity.change.deletions[${i}]' resource named '${r.name} (${r.type})' does not exist.`
          )
        }
        if (!sameRrset(existing, r)) {
          return yield* ApiError.conditionNotMet(
            `The resource 'entity.change.deletions[${i}]' named '${r.name} (${r.type})' does not match the existing one (ttl and rrdatas must be equal).`
          )
        }
        after.delete(key)
      }
      for (const [i, r] of additions.entries()) {
        const key = rrsetKey(String(r.name), String(r.type))
        if (after.has(key)) {
          return yield* ApiError.alreadyExists(
            `The resource 'entity.change.additions[${i}]' named '${r.name} (${r.type})' already exists`
          )
        }
        after.set(key, r)
      }
      zone.rrsets.clear()
      for (const [k, v] of after) zone.rrsets.set(k, v)
      const { operationDelayMillis = 0 } = yield* faults.current
      const change = {
        resource: {
          kind: "dns#change",
          id: String(zone.changes.length + 1),
          startTime: new Date().toISOString(),
          additions,
          deletions,
          isServing: true
        },
        doneAt: Date.now() + operationDelayMillis
      }
      zone.changes.push(change)
      return changeView(change)
    })

  const handle: Dns["handle"] = (method, url, body) =>
    Effect.gen(function*() {
      const path = url.pathname
      const zonesMatch = /^\/dns\/v1\/projects\/([^/]+)\/managedZones$/.exec(path)
      if (zonesMatch !== null) {
        const project = decodeURIComponent(zonesMatch[1]!)
        if (method === "POST") return yield* createZone(project, body)
        if (method === "GET") {
          yield* checkQuery(url.searchParams, ["dnsName", "maxResults", "pageToken"])
          const dnsName = url.searchParams.get("dnsName")
          const all = [...zones.values()].filter((z) =>
            z.project === project && (dnsName === null || z.resource.dnsName === dnsName)
          ).map((z) => z.resource)
          const { slice, next } = yield* page(all, url.searchParams)
          return {
            kind: "dns#managedZonesListResponse",
            managedZones: slice,
            ...(next === undefined ? {} : { nextPageToken: next })
          }
        }
      }
      const zoneMatch = /^\/dns\/v1\/projects\/([^/]+)\/managedZones\/([^/]+)(\/.*)?$/.exec(path)
      if (zoneMatch !== null) {
        const zone = yield* findZone(decodeURIComponent(zoneMatch[1]!), decodeURIComponent(zoneMatch[2]!))
        const rest = zoneMatch[3] ?? ""
        if (rest === "" && method === "GET") return zone.resource
        if (rest === "/changes" && method === "POST") return yield* createChange(zone, body)
        if (rest === "/changes" && method === "GET") {
          const { slice, next } = yield* page(zone.changes.map(changeView), url.searchParams)
          return {
            kind: "dns#changesListResponse",
            changes: slice,
            ...(next === undefined ? {} : { nextPageToken: next })
          }
        }
        const changeMatch = /^\/changes\/([^/]+)$/.exec(rest)
        if (changeMatch !== null && method === "GET") {
          const change = zone.changes.find((c) => c.resource.id === changeMatch[1])
          if (change === undefined) {
            return yield* ApiError.notFound(
              `The 'parameters.changeId' resource named '${changeMatch[1]}' does not exist.`
            )
          }
          return changeView(change)
        }
        if (rest === "/rrsets" && method === "GET") {
          yield* checkQuery(url.searchParams, ["name", "type", "maxResults", "pageToken"])
          const name = url.searchParams.get("name")
          const type = url.searchParams.get("type")
          if (type !== null && name === null) {
            return yield* ApiError.invalid("The 'type' parameter needs the 'name' parameter.")
          }
          const all = [...zone.rrsets.values()].filter((r) =>
            (name === null || r.name === name) && (type === null || r.type === type)
          ).toSorted((a, b) =>
            rrsetKey(String(a.name), String(a.type)).localeCompare(rrsetKey(String(b.name), String(b.type)))
          )
          const { slice, next } = yield* page(all, url.searchParams)
          return {
            kind: "dns#resourceRecordSetsListResponse",
            rrsets: slice,
            ...(next === undefined ? {} : { nextPageToken: next })
          }
        }
      }
      return yield* ApiError.notImplemented(`The emulator does not serve Cloud DNS ${method} ${path}.`)
    })

  return { handle } satisfies Dns
})
