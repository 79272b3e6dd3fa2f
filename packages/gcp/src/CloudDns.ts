/**
 * Cloud DNS A records of the project's managed zones (Google's API, or the GCE emulator's from
 * `TEZT_CLOUD_GCP_ENDPOINT`): pointing a domain at an address replaces its A record in one atomic change
 * (the old set's deletion and the new set's addition together, TTL 300), so that the name never resolves to
 * nothing nor to two addresses.
 *
 * **Details**
 *
 * - Domains are normalized: trimmed, lowercase, with a trailing dot.
 * - A domain belongs to the managed zone whose `dnsName` is its longest suffix (on a label boundary: `b.com.` is
 *   not a zone of `ab.com.`); a domain outside every zone is skipped with a warning, as Tezt cloud does.
 * - A change made by someone else between reading the record and replacing it makes the API refuse ours (the
 *   deletion no longer matches): it is read and tried again, a few times.
 * - `@google-cloud/compute` has no Cloud DNS client: the REST methods are called with `fetch`, with the
 *   Application Default Credentials' token (`google-auth-library`, loaded on first use), none on an emulator.
 */
import { Effect, Schedule } from "effect"
import * as GcpError from "./GcpError.ts"
import * as GcpTarget from "./GcpTarget.ts"

type Target = GcpTarget.Target

export interface Zone {
  readonly name: string
  readonly dnsName: string
  /** Where the registrar of the parent domain must delegate it (its NS records). */
  readonly nameServers?: ReadonlyArray<string> | undefined
}

/** The managed zone `CLOUD create dns zone` makes when none is named: the one a deployment's names go in. */
export const defaultZoneName = "tezt-cloud"

export interface RecordSet {
  readonly name: string
  readonly type: string
  readonly ttl?: number | undefined
  readonly rrdatas?: ReadonlyArray<string> | undefined
}

/** The TTL of the records set here (Tezt cloud's). */
export const ttl = 300

/** `Example.COM` → `example.com.` */
export const normalize = (domain: string): string => {
  const d = domain.trim().toLowerCase()
  return d.endsWith(".") ? d : `${d}.`
}

/** The zone `domain` (normalized) belongs to: the one with the longest `dnsName` that is a suffix of it. */
export const zoneOf = (zones: ReadonlyArray<Zone>, domain: string): Zone | undefined =>
  zones
    .filter((z) => domain === z.dnsName || domain.endsWith(`.${z.dnsName}`))
    .toSorted((a, b) => b.dnsName.length - a.dnsName.length)[0]

/** What `point` did. */
export type Outcome =
  | { readonly _tag: "Set"; readonly zone: string; readonly replaced: ReadonlyArray<string> }
  | { readonly _tag: "Unchanged"; readonly zone: string }
  | { readonly _tag: "Skipped"; readonly warning: string }

export interface Dns {
  readonly zones: Effect.Effect<ReadonlyArray<Zone>, GcpError.GcpError>
  /** The record sets of a zone, those of `name` only when given. */
  records(zone: string, name?: string): Effect.Effect<ReadonlyArray<RecordSet>, GcpError.GcpError>
  /** Points `domain` at `address`: its A record replaced in one change (see the module's details). */
  point(domain: string, address: string): Effect.Effect<Outcome, GcpError.GcpError>
  /** Removes the A record of `domain`, if any; `false` when there was none (or no zone has it). */
  remove(domain: string): Effect.Effect<boolean, GcpError.GcpError>
  /**
   * Creates the managed zone `name` for `domain` (normalized); a zone of that name for that domain is kept as
   * it is (`created: false`), one of that name for another domain is an error.
   */
  createZone(
    name: string,
    domain: string
  ): Effect.Effect<{ readonly zone: Zone; readonly created: boolean }, GcpError.GcpError>
}

/** A record set that Cloud DNS considers the same (what a deletion must match). */
const same = (a: RecordSet, b: RecordSet) =>
  a.name === b.name && a.type === b.type && (a.ttl ?? ttl) === (b.ttl ?? ttl) &&
  JSON.stringify([...(a.rrdatas ?? [])].toSorted()) === JSON.stringify([...(b.rrdatas ?? [])].toSorted())

/** The request headers of `target`: a bearer token on Google's API, nothing on an emulator. */
const headers = (target: Target): Effect.Effect<Record<string, string>, GcpError.GcpError> =>
  target.endpoint !== undefined ? Effect.succeed({}) : Effect.tryPromise({
    try: async () => {
      const { GoogleAuth } = await import("google-auth-library")
      const auth = new GoogleAuth({
        scopes: ["https://www.googleapis.com/auth/cloud-platform"],
        ...(target.credentials === undefined ? {} : { credentials: target.credentials })
      })
      const token = await auth.getAccessToken()
      return { authorization: `Bearer ${token}` }
    },
    catch: (e) => GcpError.classify("Cloud DNS credentials", e, { project: target.project })
  })

/** The API refused a change because the zone changed under it (a deletion that no longer matches). */
const conflict = (e: GcpError.GcpError) =>
  e.reason._tag === "CallFailed" && (e.reason.code === "412" || e.reason.code === "409")

export const make = (target: Target): Dns => {
  const base = `${target.endpoint ?? "https://dns.googleapis.com"}/dns/v1/projects/${target.project}`

  const call = <A>(what: string, method: string, path: string, body?: unknown) =>
    Effect.gen(function*() {
      const auth = yield* headers(target)
      const response = yield* Effect.tryPromise({
        try: async () => {
          const r = await fetch(`${base}/${path}`, {
            method,
            headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
            ...(body === undefined ? {} : { body: JSON.stringify(body) })
          })
          return { status: r.status, json: (await r.json().catch(() => ({}))) as Record<string, unknown> }
        },
        catch: (e) => GcpError.classify(what, e, { project: target.project })
      })
      if (response.status >= 200 && response.status < 300) return response.json as A
      const error = (response.json.error ?? {}) as { message?: string; errors?: unknown }
      const classified = GcpError.classify(what, { ...error, code: undefined }, { project: target.project })
      // The HTTP status, when nothing more telling was found.
      return yield* classified.reason._tag === "CallFailed"
        ? GcpError.make(
          new GcpError.CallFailed({ call: what, code: String(response.status), detail: classified.reason.detail })
        )
        : classified
    })

  /** Every page of a list. */
  const pages = <A>(what: string, path: string, field: string) =>
    Effect.gen(function*() {
      const items: Array<A> = []
      let token: string | undefined
      do {
        const separator = path.includes("?") ? "&" : "?"
        const page = yield* call<Record<string, unknown>>(
          what,
          "GET",
          token === undefined ? path : `${path}${separator}pageToken=${encodeURIComponent(token)}`
        )
        items.push(...((page[field] ?? []) as Array<A>))
        token = page.nextPageToken as string | undefined
      } while (token !== undefined)
      return items
    })

  const zones = pages<Zone>("list managed zones", "managedZones", "managedZones")

  const records = (zone: string, name?: string) =>
    pages<RecordSet>(
      `list records of ${zone}`,
      `managedZones/${zone}/rrsets${name === undefined ? "" : `?name=${encodeURIComponent(name)}`}`,
      "rrsets"
    )

  /** The A record of `domain` in `zone`, if any. */
  const current = (zone: string, domain: string) =>
    Effect.map(records(zone, domain), (sets) => sets.find((s) => s.name === domain && s.type === "A"))

  const change = (
    zone: string,
    domain: string,
    additions: ReadonlyArray<RecordSet>,
    deletions: ReadonlyArray<RecordSet>
  ) => call(`change the A record of ${domain}`, "POST", `managedZones/${zone}/changes`, { additions, deletions })

  const retryConflicts = <A, R>(effect: Effect.Effect<A, GcpError.GcpError, R>) =>
    Effect.retry(effect, { while: conflict, times: 3, schedule: Schedule.exponential("200 millis") })

  return {
    zones,
    records,
    createZone: (name, raw) =>
      Effect.gen(function*() {
        const dnsName = normalize(raw)
        const existing = (yield* zones).find((z) => z.name === name)
        if (existing !== undefined) {
          if (existing.dnsName === dnsName) return { zone: existing, created: false }
          return yield* GcpError.make(
            new GcpError.CallFailed({
              call: `create the DNS zone ${name}`,
              code: "409",
              detail: `the project's zone ${name} is for ${existing.dnsName}, not ${dnsName}: ` +
                `give another name, or remove that zone first`
            })
          )
        }
        const zone = yield* call<Zone>(`create the DNS zone ${name}`, "POST", "managedZones", {
          name,
          dnsName,
          description: "Made by tezt-cloud (CLOUD create dns zone)"
        })
        return { zone, created: true }
      }),
    point: (raw, address) =>
      Effect.gen(function*() {
        const domain = normalize(raw)
        const zone = zoneOf(yield* zones, domain)
        if (zone === undefined) {
          return {
            _tag: "Skipped",
            warning: `The domain '${domain}' is not a subdomain of an authorized GCP zone. Skipping.`
          } satisfies Outcome
        }
        const wanted: RecordSet = { name: domain, type: "A", ttl, rrdatas: [address] }
        return yield* Effect.gen(function*() {
          const old = yield* current(zone.name, domain)
          if (old !== undefined && same(old, wanted)) return { _tag: "Unchanged", zone: zone.name } satisfies Outcome
          yield* change(zone.name, domain, [wanted], old === undefined ? [] : [old])
          return { _tag: "Set", zone: zone.name, replaced: old?.rrdatas ?? [] } satisfies Outcome
        }).pipe(retryConflicts)
      }),
    remove: (raw) =>
      Effect.gen(function*() {
        const domain = normalize(raw)
        const zone = zoneOf(yield* zones, domain)
        if (zone === undefined) return false
        return yield* Effect.gen(function*() {
          const old = yield* current(zone.name, domain)
          if (old === undefined) return false
          yield* change(zone.name, domain, [], [old])
          return true
        }).pipe(retryConflicts)
      })
  }
}

/** What pointing domains did, a line a domain; a domain outside every zone is a warning, not an error. */
export type Lines = ReadonlyArray<{ readonly line: string; readonly warning: boolean }>

/** Points each of `domains` at `address` with `dns`: what it did, a line a domain. */
const pointAll = (dns: Dns, domains: ReadonlyArray<string>, address: string): Effect.Effect<Lines, GcpError.GcpError> =>
  Effect.forEach(domains, (domain) =>
    Effect.map(dns.point(domain, address), (outcome) => {
      const name = normalize(domain)
      switch (outcome._tag) {
        case "Set":
          return {
            line: `dns: ${name} → ${address} (zone ${outcome.zone}` +
              `${outcome.replaced.length > 0 ? `, was ${outcome.replaced.join(",")}` : ""})`,
            warning: false
          }
        case "Unchanged":
          return { line: `dns: ${name} → ${address} (zone ${outcome.zone}, unchanged)`, warning: false }
        case "Skipped":
          return { line: outcome.warning, warning: true }
      }
    }))

/**
 * `--dns-domain` on a run: points each domain at `address` (the ssh host's), with the project and API of the
 * command's options; what it did, a line a domain (a domain outside every zone is a warning, not an error, as in
 * Tezt cloud). The records stay after the run: a stable name for the host, removed with `CLOUD dns remove`.
 */
export const register = (
  projectId: string | undefined,
  domains: ReadonlyArray<string>,
  address: string
): Effect.Effect<Lines, GcpError.GcpError> =>
  Effect.flatMap(GcpTarget.resolve(projectId), (target) => pointAll(make(target), domains, address))

/** The name a `--proxy` run's proxy gets in the managed zone `zone`: `<ns>.<its domain>`. */
export const proxyDomain = (namespace: string, zone: Zone) => normalize(`${namespace}.${zone.dnsName}`)

/**
 * A `--proxy` run on GCP: `<ns>.<the domain of the managed zone tezt-cloud>` (unless `noDns`; a project without
 * that zone is a warning) and each of `domains` pointed at the proxy's `address`, on `target`.
 */
export const registerProxy = (
  target: Target,
  options: { readonly namespace: string; readonly noDns: boolean; readonly domains: ReadonlyArray<string> },
  address: string
): Effect.Effect<Lines, GcpError.GcpError> =>
  Effect.gen(function*() {
    const dns = make(target)
    if (options.noDns) return yield* pointAll(dns, options.domains, address)
    const zone = (yield* dns.zones).find((z) => z.name === defaultZoneName)
    const own = zone === undefined ? [] : [proxyDomain(options.namespace, zone)]
    const missing = zone === undefined
      ? [{
        line: `dns: project ${target.project} has no managed zone ${defaultZoneName}, so the proxy gets no name of ` +
          `its own ('tezt-cloud CLOUD create dns zone --dns-domain D' makes it; --no-dns silences this)`,
        warning: true
      }]
      : []
    return [...missing, ...(yield* pointAll(dns, [...own, ...options.domains], address))]
  })
