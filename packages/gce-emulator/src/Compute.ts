/**
 * The emulated Compute resources and the methods that act on them: instances (each realized as a host by
 * `Hosts`), firewalls, regional addresses, and their Operations. Handlers take a request decoded by `Api` and
 * return the response's JSON (shaped by `Api.encode` afterwards), or an `ApiError`.
 *
 * **Details**
 *
 * - Names are checked and claimed when the call arrives (a second insert of a name gets 409 at once); the slow
 *   part (the host) is the Operation's work.
 * - An instance's address comes from the loopback pool: its reserved address when `accessConfigs[0].natIP` names
 *   one, else an ephemeral one; it is reported as `networkIP` and, with an access config, `natIP`.
 * - `scheduling.maxRunDuration` with `instanceTerminationAction` `DELETE` deletes the instance (a system
 *   Operation) once it has run that long; `STOP` kills its host and leaves it `TERMINATED`.
 * - `setLabels` needs the current `labelFingerprint` (412 otherwise); fingerprints are hashes of the content.
 * - A change sent again with the same `requestId` answers the first call's Operation (safe retries).
 */
import { Deferred, Effect, Fiber, FiberSet, type Scope } from "effect"
import * as crypto from "node:crypto"
import type * as AddressPool from "./AddressPool.ts"
import type * as Api from "./Api.ts"
import * as ApiError from "./ApiError.ts"
import { Faults } from "./Faults.ts"
import * as Filter from "./Filter.ts"
import { type Host, Hosts } from "./Hosts.ts"
import * as Links from "./Links.ts"
import * as Operations from "./Operations.ts"

type Json = Record<string, unknown>
export type Handler = (request: Api.Request) => Effect.Effect<unknown, ApiError.ApiError>

const namePattern = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/
const labelKey = /^[a-z][a-z0-9_-]{0,62}$/
const labelValue = /^[a-z0-9_-]{0,63}$/
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A fingerprint of some content (8 bytes, base64), as Compute's look. */
export const fingerprint = (value: unknown) =>
  crypto.createHash("sha256").update(JSON.stringify(value ?? null)).digest().subarray(0, 8).toString("base64")

const str = (request: Api.Request, field: string) => request[field] as string
const obj = (value: unknown): Json => (value ?? {}) as Json
const list = (value: unknown): ReadonlyArray<Json> => (value ?? []) as ReadonlyArray<Json>

const checkName = (field: string, name: unknown) =>
  typeof name === "string" && namePattern.test(name)
    ? Effect.void
    : Effect.fail(ApiError.invalidField(
      field,
      String(name ?? ""),
      "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
    ))

const checkLabels = (field: string, labels: unknown) => {
  const entries = Object.entries(obj(labels))
  if (entries.length > 64) return Effect.fail(ApiError.invalidField(field, "", "At most 64 labels are allowed."))
  for (const [k, v] of entries) {
    if (!labelKey.test(k) || typeof v !== "string" || !labelValue.test(v)) {
      return Effect.fail(ApiError.invalidField(
        `${field}.${k}`,
        String(v),
        "Label keys must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-'; values only lowercase letters, digits, '_' and '-' (at most 63 characters)."
      ))
    }
  }
  return Effect.void
}

const requireZone = (project: string, zone: string): Effect.Effect<void, ApiError.ApiError> =>
  Links.zonePattern.test(zone)
    ? Effect.void
    : Effect.fail(ApiError.resourceNotFound(`projects/${project}/zones/${zone}`))

const requireRegion = (project: string, region: string): Effect.Effect<void, ApiError.ApiError> =>
  Links.regionPattern.test(region)
    ? Effect.void
    : Effect.fail(ApiError.resourceNotFound(`projects/${project}/regions/${region}`))

/** `filter`, `orderBy`, `maxResults` and `pageToken` of a list call over `items`. */
const page = (items: ReadonlyArray<Json>, request: Api.Request) =>
  Effect.gen(function*() {
    const filter = request.filter as string | undefined
    const keep = yield* Effect.try({
      try: () => Filter.parse(filter ?? ""),
      catch: (e) =>
        ApiError.invalidField("filter", filter ?? "", `Invalid list filter expression: ${(e as Error).message}.`)
    })
    const orderBy = request.orderBy as string | undefined
    if (orderBy !== undefined && orderBy !== "name" && orderBy !== "creationTimestamp desc") {
      return yield* ApiError.invalidField(
        "orderBy",
        orderBy,
        "Sorting is only supported by 'name' or 'creationTimestamp desc'."
      )
    }
    const max = (request.maxResults as number | undefined) ?? 500
    if (max > 500) return yield* ApiError.invalidField("maxResults", String(max), "Must be less than or equal to 500")
    const token = request.pageToken as string | undefined
    const offset = token === undefined || token === "" ? 0 : Number(Buffer.from(token, "base64url").toString("utf8"))
    if (!Number.isInteger(offset) || offset < 0) {
      return yield* ApiError.invalidField("pageToken", token ?? "", "Invalid page token.")
    }
    const sorted = items.filter(keep).toSorted((a, b) =>
      orderBy === "creationTimestamp desc"
        ? String(b.creationTimestamp).localeCompare(String(a.creationTimestamp))
        : String(a.name).localeCompare(String(b.name))
    )
    const slice = sorted.slice(offset, offset + Math.max(max, 1))
    const next = offset + slice.length < sorted.length
      ? Buffer.from(String(offset + slice.length)).toString("base64url")
      : undefined
    return { items: slice, nextPageToken: next }
  })

interface InstanceRecord {
  readonly project: string
  readonly zone: string
  readonly name: string
  readonly resource: Json
  readonly sshKeys: ReadonlyArray<string>
  readonly address: string | undefined
  /** The reserved address this instance uses as its natIP. */
  readonly reserved: AddressRecord | undefined
  /** Done when the insert's work is over (whatever its outcome); a delete waits for it. */
  readonly provisioned: Deferred.Deferred<void>
  host: Host | undefined
  timers: Array<Fiber.Fiber<unknown, unknown>>
  deleting: boolean
}

interface AddressRecord {
  readonly project: string
  readonly region: string
  readonly resource: Json
}

/** The public keys of an instance's `ssh-keys` (or legacy `sshKeys`) metadata, `user:key` lines. */
export const sshKeysOf = (metadata: Json): ReadonlyArray<string> =>
  list(metadata.items)
    .filter((i) => i.key === "ssh-keys" || i.key === "sshKeys")
    .flatMap((i) => String(i.value ?? "").split("\n"))
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .map((line) => /^[^\s:]+:(.*)$/.exec(line)?.[1]?.trim() ?? line)

export interface Compute {
  /** Handlers by `Service.Method` (`Instances.Insert`, …). */
  readonly handlers: ReadonlyMap<string, Handler>
  /** Kills an instance's host: it goes `TERMINATED`, as after a host error. */
  fail(project: string, zone: string, name: string): Effect.Effect<Json, ApiError.ApiError>
}

export const make = Effect.fn("Compute.make")(function*(links: Links.Links, pool: AddressPool.AddressPool) {
  const hosts = yield* Hosts
  const faults = yield* Faults
  const operations = yield* Operations.make(links)
  const timers = yield* FiberSet.make()
  const instances = new Map<string, InstanceRecord>()
  const firewalls = new Map<string, Json>()
  const addresses = new Map<string, AddressRecord>()

  /** Starts an Operation acting on an existing resource (its selfLink and id). */
  const startOn = (
    project: string,
    scope: Operations.Scope,
    operationType: string,
    resource: Json,
    work: Effect.Effect<void, Operations.OperationFailed>,
    user?: string
  ) =>
    operations.start({
      project,
      scope,
      operationType,
      targetLink: String(resource.selfLink),
      targetId: String(resource.id),
      user
    }, work)

  const instancePath = (project: string, zone: string, name: string) =>
    `projects/${project}/zones/${zone}/instances/${name}`
  const firewallPath = (project: string, name: string) => `projects/${project}/global/firewalls/${name}`
  const addressPath = (project: string, region: string, name: string) =>
    `projects/${project}/regions/${region}/addresses/${name}`

  const findInstance = (project: string, zone: string, name: string) => {
    const record = instances.get(instancePath(project, zone, name))
    return record === undefined
      ? Effect.fail(ApiError.resourceNotFound(instancePath(project, zone, name)))
      : Effect.succeed(record)
  }

  const releaseAddress = (record: InstanceRecord) =>
    Effect.gen(function*() {
      if (record.reserved !== undefined) {
        record.reserved.resource.status = "RESERVED"
        delete record.reserved.resource.users
      } else if (record.address !== undefined) {
        yield* pool.release(record.address)
      }
    })

  /** Stops timers, removes the host and forgets the instance (the work of a delete). */
  const teardown = (record: InstanceRecord) =>
    Effect.gen(function*() {
      yield* Deferred.await(record.provisioned)
      record.resource.status = "STOPPING"
      yield* Effect.forEach(record.timers, Fiber.interrupt, { discard: true })
      if (record.host !== undefined) yield* hosts.remove(record.host)
      record.resource.status = "TERMINATED"
      instances.delete(instancePath(record.project, record.zone, record.name))
      yield* releaseAddress(record)
    })

  const startDelete = (record: InstanceRecord, user?: string) => {
    record.deleting = true
    return startOn(
      record.project,
      { kind: "zones", name: record.zone },
      "delete",
      record.resource,
      teardown(record),
      user
    )
  }

  const killHost = (record: InstanceRecord, message: string) =>
    Effect.gen(function*() {
      if (record.host !== undefined) yield* hosts.kill(record.host)
      record.resource.status = "TERMINATED"
      record.resource.statusMessage = message
      record.resource.lastStopTimestamp = new Date().toISOString()
    })

  /** Timers of a running instance: its TTL and an injected failure. */
  const schedule = (record: InstanceRecord) =>
    Effect.gen(function*() {
      const scheduling = obj(record.resource.scheduling)
      const duration = scheduling.maxRunDuration as { seconds?: string; nanos?: number } | undefined
      if (duration !== undefined) {
        const millis = Number(duration.seconds ?? 0) * 1000 + Math.floor((duration.nanos ?? 0) / 1e6)
        const expire = scheduling.instanceTerminationAction === "DELETE"
          ? Effect.suspend(() => record.deleting ? Effect.void : startDelete(record, "system"))
          : killHost(record, "Instance stopped: its maxRunDuration has passed.")
        record.timers.push(yield* FiberSet.run(timers, Effect.sleep(millis).pipe(Effect.andThen(expire))))
      }
      const { instanceFailureAfterSeconds } = yield* faults.current
      if (instanceFailureAfterSeconds !== undefined) {
        record.timers.push(
          yield* FiberSet.run(
            timers,
            Effect.sleep(instanceFailureAfterSeconds * 1000).pipe(
              Effect.andThen(killHost(record, "Instance terminated: its host failed (injected fault)."))
            )
          )
        )
      }
    })

  /** The insert's work: a host at the instance's address, then RUNNING. */
  const provision = (record: InstanceRecord) =>
    Effect.gen(function*() {
      if (record.address === undefined) {
        return yield* new Operations.OperationFailed({
          code: "IP_SPACE_EXHAUSTED",
          message: `No address is left in the emulator's range ${pool.range.first}-${pool.range.last}.`,
          httpStatus: 503,
          httpMessage: "SERVICE UNAVAILABLE"
        })
      }
      record.resource.status = "STAGING"
      record.host = yield* hosts.realize({
        instance: instancePath(record.project, record.zone, record.name),
        name: record.name,
        address: record.address,
        sshKeys: record.sshKeys
      }).pipe(
        Effect.mapError((e) =>
          new Operations.OperationFailed({
            code: "EMULATOR_HOST_FAILED",
            message: `The emulator could not start the instance's host: ${e.message}`,
            httpStatus: 500,
            httpMessage: "INTERNAL SERVER ERROR"
          })
        )
      )
      record.resource.status = "RUNNING"
      record.resource.lastStartTimestamp = new Date().toISOString()
      yield* schedule(record)
    }).pipe(
      Effect.tapError(() =>
        Effect.gen(function*() {
          instances.delete(instancePath(record.project, record.zone, record.name))
          yield* releaseAddress(record)
        })
      ),
      Effect.ensuring(Deferred.succeed(record.provisioned, undefined))
    )

  const insertInstance: Handler = (request) =>
    Effect.gen(function*() {
      const project = str(request, "project")
      const zone = str(request, "zone")
      yield* requireZone(project, zone)
      if (request.sourceInstanceTemplate !== undefined || request.sourceMachineImage !== undefined) {
        return yield* ApiError.notImplemented(
          "The emulator does not create instances from templates or machine images."
        )
      }
      const input = obj(request.instanceResource)
      const name = input.name as string
      yield* checkName("resource.name", name)
      const path = instancePath(project, zone, name)
      if (instances.has(path)) return yield* ApiError.resourceExists(path)
      // Machine type: a link (full, or relative to the project) to a machine type of this zone.
      const machineType = input.machineType as string | undefined
      const machinePath = machineType === undefined ? undefined : links.path(machineType, project)
      if (
        machinePath === undefined ||
        !new RegExp(`^projects/${project}/zones/${zone}/machineTypes/[a-z0-9-]+$`).test(machinePath)
      ) {
        return yield* ApiError.invalidField("resource.machineType", machineType ?? "", "Invalid machine type.")
      }
      const disks = list(input.disks)
      if (disks.length === 0) return yield* ApiError.invalidField("resource.disks", "", "No disks are specified.")
      const nics = list(input.networkInterfaces)
      if (nics.length === 0) {
        return yield* ApiError.invalidField(
          "resource.networkInterfaces",
          "",
          "At least one network interface is required."
        )
      }
      yield* checkLabels("resource.labels", input.labels)
      const scheduling = obj(input.scheduling)
      if (scheduling.maxRunDuration !== undefined || scheduling.terminationTime !== undefined) {
        if (scheduling.instanceTerminationAction !== "DELETE" && scheduling.instanceTerminationAction !== "STOP") {
          return yield* ApiError.invalidField(
            "resource.scheduling.instanceTerminationAction",
            String(scheduling.instanceTerminationAction ?? ""),
            "Instance termination action must be STOP or DELETE when maxRunDuration or terminationTime is set."
          )
        }
      }
      // Address: the reserved one natIP names (in this region, not in use), else an ephemeral one.
      const region = Links.regionOf(zone)
      const natIP = list(nics[0]!.accessConfigs)[0]?.natIP as string | undefined
      let reserved: AddressRecord | undefined
      if (natIP !== undefined) {
        reserved = [...addresses.values()].find((a) =>
          a.project === project && a.region === region && a.resource.address === natIP
        )
        if (reserved === undefined) {
          return yield* ApiError.invalidField(
            "resource.networkInterfaces[0].accessConfigs[0].natIP",
            natIP,
            `The specified external IP address '${natIP}' was not found in region '${region}'.`
          )
        }
        if (reserved.resource.status === "IN_USE") {
          return yield* ApiError.invalidField(
            "resource.networkInterfaces[0].accessConfigs[0].natIP",
            natIP,
            `The specified external IP address '${natIP}' is already in use.`
          )
        }
      }
      const selfLink = links.url(path)
      if (yield* faults.insertExceedsQuota) {
        return yield* operations.start(
          { project, scope: { kind: "zones", name: zone }, operationType: "insert", targetLink: selfLink },
          Effect.fail(Operations.quotaExceeded(region))
        )
      }
      const address = reserved !== undefined ? natIP : yield* pool.allocate()
      if (reserved !== undefined) {
        reserved.resource.status = "IN_USE"
        reserved.resource.users = [selfLink]
      }
      const metadata = obj(input.metadata)
      const id = Operations.newId()
      const now = new Date().toISOString()
      const resource: Json = {
        ...input,
        kind: "compute#instance",
        id,
        creationTimestamp: now,
        name,
        tags: { ...obj(input.tags), fingerprint: fingerprint(obj(input.tags).items) },
        machineType: links.url(machinePath),
        status: "PROVISIONING",
        zone: links.url(`projects/${project}/zones/${zone}`),
        networkInterfaces: nics.map((nic, i) => ({
          ...nic,
          kind: "compute#networkInterface",
          name: `nic${i}`,
          network: links.url(links.path(String(nic.network ?? "global/networks/default"), project)),
          ...(nic.subnetwork === undefined
            ? {}
            : { subnetwork: links.url(links.path(String(nic.subnetwork), `${project}/regions/${region}`)) }),
          ...(i === 0 && address !== undefined ? { networkIP: address } : {}),
          fingerprint: fingerprint([name, i]),
          stackType: nic.stackType ?? "IPV4_ONLY",
          ...(nic.accessConfigs === undefined ? {} : {
            accessConfigs: list(nic.accessConfigs).map((ac) => ({
              ...ac,
              kind: "compute#accessConfig",
              type: ac.type ?? "ONE_TO_ONE_NAT",
              name: ac.name ?? "External NAT",
              networkTier: ac.networkTier ?? "PREMIUM",
              ...(i === 0 && address !== undefined ? { natIP: address } : {})
            }))
          })
        })),
        disks: disks.map((disk, i) => {
          const params = obj(disk.initializeParams)
          const deviceName = String(disk.deviceName ?? (i === 0 ? name : `${name}-${i}`))
          return {
            kind: "compute#attachedDisk",
            type: disk.type ?? "PERSISTENT",
            mode: disk.mode ?? "READ_WRITE",
            source: links.url(
              disk.source === undefined
                ? `projects/${project}/zones/${zone}/disks/${String(params.diskName ?? deviceName)}`
                : links.path(String(disk.source), project)
            ),
            deviceName,
            index: i,
            boot: disk.boot ?? i === 0,
            autoDelete: disk.autoDelete ?? false,
            interface: disk.interface ?? "SCSI",
            diskSizeGb: String(params.diskSizeGb ?? "10")
          }
        }),
        metadata: { ...metadata, kind: "compute#metadata", fingerprint: fingerprint(metadata.items) },
        selfLink,
        scheduling: {
          onHostMaintenance: "MIGRATE",
          automaticRestart: true,
          preemptible: false,
          provisioningModel: "STANDARD",
          ...scheduling
        },
        cpuPlatform: "Unknown CPU Platform",
        labels: obj(input.labels),
        labelFingerprint: fingerprint(obj(input.labels)),
        startRestricted: false,
        deletionProtection: input.deletionProtection ?? false,
        fingerprint: fingerprint(id)
      }
      const record: InstanceRecord = {
        project,
        zone,
        name,
        resource,
        sshKeys: sshKeysOf(metadata),
        address,
        reserved,
        provisioned: yield* Deferred.make<void>(),
        host: undefined,
        timers: [],
        deleting: false
      }
      instances.set(path, record)
      return yield* operations.start(
        { project, scope: { kind: "zones", name: zone }, operationType: "insert", targetLink: selfLink, targetId: id },
        provision(record)
      )
    })

  const instancesOf = (project: string, zone?: string) =>
    [...instances.values()].filter((r) => r.project === project && (zone === undefined || r.zone === zone))

  /** An aggregatedList response: `items` keyed by scope, a warning for scopes with nothing on this page. */
  const aggregated = (
    kind: string,
    field: string,
    request: Api.Request,
    all: ReadonlyArray<{ readonly scope: string; readonly resource: Json }>
  ) =>
    Effect.gen(function*() {
      const project = str(request, "project")
      const scopeOf = new Map(all.map((x) => [x.resource, x.scope]))
      const { items, nextPageToken } = yield* page(all.map((x) => x.resource), request)
      const byScope: Record<string, Json> = {}
      for (const scope of new Set(all.map((x) => x.scope)).values()) {
        const inScope = items.filter((r) => scopeOf.get(r) === scope)
        byScope[scope] = inScope.length > 0 ? { [field]: inScope } : {
          warning: {
            code: "NO_RESULTS_ON_PAGE",
            message: `There are no results for scope '${scope}' on this page.`,
            data: [{ key: "scope", value: scope }]
          }
        }
      }
      return {
        kind,
        id: `projects/${project}/aggregated/${field}`,
        items: byScope,
        nextPageToken,
        selfLink: links.url(`projects/${project}/aggregated/${field}`)
      }
    })

  const listResponse = (kind: string, path: string, request: Api.Request, all: ReadonlyArray<Json>) =>
    Effect.map(page(all, request), ({ items, nextPageToken }) => ({
      kind,
      id: path,
      ...(items.length === 0 ? {} : { items }),
      nextPageToken,
      selfLink: links.url(path)
    }))

  /** The address a request names (project, region, address), or 404. */
  const findAddress = (request: Api.Request) =>
    Effect.gen(function*() {
      const project = str(request, "project")
      const region = str(request, "region")
      yield* requireRegion(project, region)
      const path = addressPath(project, region, str(request, "address"))
      const address = addresses.get(path)
      if (address === undefined) return yield* ApiError.resourceNotFound(path)
      return { project, region, path, address }
    })

  /** `list` of a zonal or regional collection. */
  const scopedList = (
    kind: string,
    scopeKind: "zones" | "regions",
    collection: string,
    items: (project: string, scope: string) => ReadonlyArray<Json>
  ): Handler =>
  (request) => {
    const project = str(request, "project")
    const scope = str(request, scopeKind === "zones" ? "zone" : "region")
    return (scopeKind === "zones" ? requireZone : requireRegion)(project, scope).pipe(Effect.andThen(
      listResponse(kind, `projects/${project}/${scopeKind}/${scope}/${collection}`, request, items(project, scope))
    ))
  }

  const operationHandlers = (service: string, scopeOf: (request: Api.Request) => Operations.Scope) => {
    const check = (request: Api.Request): Effect.Effect<void, ApiError.ApiError> => {
      const scope = scopeOf(request)
      const project = str(request, "project")
      return scope.kind === "zones"
        ? requireZone(project, scope.name)
        : scope.kind === "regions"
        ? requireRegion(project, scope.name)
        : Effect.void
    }
    const one = (
      f: (project: string, scope: Operations.Scope, name: string) => Effect.Effect<unknown, ApiError.ApiError>
    ): Handler =>
    (request) =>
      check(request).pipe(
        Effect.andThen(f(str(request, "project"), scopeOf(request), str(request, "operation")))
      )
    return [
      [`${service}.Get`, one(operations.get)],
      [`${service}.Wait`, one(operations.wait)],
      [`${service}.Delete`, one((p, s, n) => Effect.as(operations.remove(p, s, n), {}))],
      [`${service}.List`, (request: Api.Request) =>
        check(request).pipe(Effect.andThen(() => {
          const project = str(request, "project")
          const scope = scopeOf(request)
          return listResponse(
            "compute#operationList",
            `projects/${project}/${Operations.scopePath(scope)}/operations`,
            request,
            operations.list(project, scope)
          )
        }))]
    ] as const
  }

  const insertFirewall: Handler = (request) =>
    Effect.gen(function*() {
      const project = str(request, "project")
      const input = obj(request.firewallResource)
      const name = input.name as string
      yield* checkName("resource.name", name)
      const path = firewallPath(project, name)
      if (firewalls.has(path)) return yield* ApiError.resourceExists(path)
      const allowed = list(input.allowed)
      const denied = list(input.denied)
      if ((allowed.length === 0) === (denied.length === 0)) {
        return yield* ApiError.invalidField(
          "resource.allowed",
          "",
          "Exactly one of allowed or denied must be specified."
        )
      }
      for (const [i, rule] of [...allowed, ...denied].entries()) {
        const field = `resource.${i < allowed.length ? "allowed" : "denied"}[${
          i < allowed.length ? i : i - allowed.length
        }]`
        const protocol = rule.IPProtocol as string | undefined
        if (protocol === undefined || protocol === "") {
          return yield* ApiError.invalidField(`${field}.IPProtocol`, "", "The IP protocol is required.")
        }
        for (const port of (rule.ports ?? []) as ReadonlyArray<string>) {
          const m = /^(\d+)(?:-(\d+))?$/.exec(port)
          if (
            m === null || Number(m[1]) > 65535 || Number(m[2] ?? m[1]) > 65535 || Number(m[2] ?? m[1]) < Number(m[1])
          ) {
            return yield* ApiError.invalidField(`${field}.ports`, port, "Invalid port or port range.")
          }
          if (!["tcp", "udp", "sctp", "6", "17", "132"].includes(protocol)) {
            return yield* ApiError.invalidField(
              `${field}.ports`,
              port,
              "Ports may only be given for tcp, udp and sctp."
            )
          }
        }
      }
      const priority = (input.priority as number | undefined) ?? 1000
      if (priority < 0 || priority > 65535) {
        return yield* ApiError.invalidField("resource.priority", String(priority), "Must be between 0 and 65535.")
      }
      const direction = (input.direction as string | undefined) ?? "INGRESS"
      if (direction !== "INGRESS" && direction !== "EGRESS") {
        return yield* ApiError.invalidField("resource.direction", direction, "Must be INGRESS or EGRESS.")
      }
      const id = Operations.newId()
      const selfLink = links.url(path)
      const noSource = input.sourceRanges === undefined && input.sourceTags === undefined &&
        input.sourceServiceAccounts === undefined
      firewalls.set(path, {
        ...input,
        kind: "compute#firewall",
        id,
        creationTimestamp: new Date().toISOString(),
        name,
        network: links.url(links.path(String(input.network ?? "global/networks/default"), project)),
        priority,
        direction,
        ...(direction === "INGRESS" && noSource ? { sourceRanges: ["0.0.0.0/0"] } : {}),
        ...(direction === "EGRESS" && input.destinationRanges === undefined
          ? { destinationRanges: ["0.0.0.0/0"] }
          : {}),
        logConfig: input.logConfig ?? { enable: false },
        disabled: input.disabled ?? false,
        selfLink
      })
      return yield* operations.start(
        { project, scope: { kind: "global" }, operationType: "insert", targetLink: selfLink, targetId: id },
        Effect.void
      )
    })

  const insertAddress: Handler = (request) =>
    Effect.gen(function*() {
      const project = str(request, "project")
      const region = str(request, "region")
      yield* requireRegion(project, region)
      const input = obj(request.addressResource)
      const name = input.name as string
      yield* checkName("resource.name", name)
      const path = addressPath(project, region, name)
      if (addresses.has(path)) return yield* ApiError.resourceExists(path)
      yield* checkLabels("resource.labels", input.labels)
      const wanted = input.address as string | undefined
      const address = yield* pool.allocate(wanted)
      if (address === undefined) {
        return yield* wanted === undefined
          ? ApiError.invalidField(
            "resource.address",
            "",
            `No address is left in the emulator's range ${pool.range.first}-${pool.range.last}.`
          )
          : ApiError.invalidField("resource.address", wanted, "The specified IP address is not available.")
      }
      const id = Operations.newId()
      const selfLink = links.url(path)
      addresses.set(path, {
        project,
        region,
        resource: {
          ...input,
          kind: "compute#address",
          id,
          creationTimestamp: new Date().toISOString(),
          name,
          address,
          addressType: input.addressType ?? "EXTERNAL",
          networkTier: input.networkTier ?? "PREMIUM",
          ipVersion: input.ipVersion ?? "IPV4",
          status: "RESERVED",
          region: links.url(`projects/${project}/regions/${region}`),
          selfLink,
          labels: obj(input.labels),
          labelFingerprint: fingerprint(obj(input.labels))
        }
      })
      return yield* operations.start(
        {
          project,
          scope: { kind: "regions", name: region },
          operationType: "insert",
          targetLink: selfLink,
          targetId: id
        },
        Effect.void
      )
    })

  const handlers = new Map<string, Handler>([
    ["Instances.Insert", insertInstance],
    ["Instances.Get", (request) =>
      requireZone(str(request, "project"), str(request, "zone")).pipe(
        Effect.andThen(findInstance(str(request, "project"), str(request, "zone"), str(request, "instance"))),
        Effect.map((r) => r.resource)
      )],
    [
      "Instances.List",
      scopedList(
        "compute#instanceList",
        "zones",
        "instances",
        (project, zone) => instancesOf(project, zone).map((r) => r.resource)
      )
    ],
    ["Instances.AggregatedList", (request) =>
      aggregated(
        "compute#instanceAggregatedList",
        "instances",
        request,
        instancesOf(str(request, "project")).map((r) => ({ scope: `zones/${r.zone}`, resource: r.resource }))
      )],
    ["Instances.Delete", (request) =>
      Effect.gen(function*() {
        const project = str(request, "project")
        const zone = str(request, "zone")
        yield* requireZone(project, zone)
        const record = yield* findInstance(project, zone, str(request, "instance"))
        return yield* startDelete(record)
      })],
    ["Instances.SetLabels", (request) =>
      Effect.gen(function*() {
        const project = str(request, "project")
        const zone = str(request, "zone")
        yield* requireZone(project, zone)
        const record = yield* findInstance(project, zone, str(request, "instance"))
        const body = obj(request.instancesSetLabelsRequestResource)
        if (body.labelFingerprint === undefined) {
          return yield* ApiError.invalid("Required field 'label_fingerprint' not specified")
        }
        if (body.labelFingerprint !== record.resource.labelFingerprint) {
          return yield* ApiError.conditionNotMet("Labels fingerprint either invalid or resource labels have changed")
        }
        yield* checkLabels("labels", body.labels)
        const labels = obj(body.labels)
        record.resource.labels = labels
        record.resource.labelFingerprint = fingerprint(labels)
        return yield* startOn(project, { kind: "zones", name: zone }, "setLabels", record.resource, Effect.void)
      })],
    ...operationHandlers("ZoneOperations", (r) => ({ kind: "zones", name: str(r, "zone") })),
    ...operationHandlers("RegionOperations", (r) => ({ kind: "regions", name: str(r, "region") })),
    ...operationHandlers("GlobalOperations", () => ({ kind: "global" })),
    ["Firewalls.Insert", insertFirewall],
    ["Firewalls.Get", (request) => {
      const path = firewallPath(str(request, "project"), str(request, "firewall"))
      const firewall = firewalls.get(path)
      return firewall === undefined ? Effect.fail(ApiError.resourceNotFound(path)) : Effect.succeed(firewall)
    }],
    ["Firewalls.List", (request) => {
      const project = str(request, "project")
      return listResponse(
        "compute#firewallList",
        `projects/${project}/global/firewalls`,
        request,
        [...firewalls.entries()].filter(([k]) => k.startsWith(`projects/${project}/`)).map(([, v]) => v)
      )
    }],
    ["Firewalls.Delete", (request) =>
      Effect.gen(function*() {
        const project = str(request, "project")
        const path = firewallPath(project, str(request, "firewall"))
        const firewall = firewalls.get(path)
        if (firewall === undefined) return yield* ApiError.resourceNotFound(path)
        return yield* startOn(
          project,
          { kind: "global" },
          "delete",
          firewall,
          Effect.sync(() => void firewalls.delete(path))
        )
      })],
    ["Addresses.Insert", insertAddress],
    ["Addresses.Get", (request) => Effect.map(findAddress(request), ({ address }) => address.resource)],
    [
      "Addresses.List",
      scopedList(
        "compute#addressList",
        "regions",
        "addresses",
        (project, region) =>
          [...addresses.values()].filter((a) => a.project === project && a.region === region).map((a) => a.resource)
      )
    ],
    ["Addresses.AggregatedList", (request) =>
      aggregated(
        "compute#addressAggregatedList",
        "addresses",
        request,
        [...addresses.values()].filter((a) => a.project === str(request, "project")).map((a) => ({
          scope: `regions/${a.region}`,
          resource: a.resource
        }))
      )],
    ["Addresses.Delete", (request) =>
      Effect.gen(function*() {
        const { project, region, path, address } = yield* findAddress(request)
        const users = list(address.resource.users) as unknown as ReadonlyArray<string>
        if (users.length > 0) {
          return yield* ApiError.inUse(
            `The address resource '${path}' is already being used by '${links.path(users[0]!, project)}'`
          )
        }
        return yield* startOn(
          project,
          { kind: "regions", name: region },
          "delete",
          address.resource,
          Effect.gen(function*() {
            addresses.delete(path)
            yield* pool.release(String(address.resource.address))
          })
        )
      })]
  ])

  // A change sent again with the same requestId answers the first call's Operation and changes nothing, as
  // Compute does: clients retry safely.
  const byRequestId = new Map<string, { readonly scope: Operations.Scope; readonly name: string }>()
  const idempotent = (handler: Handler): Handler => (request) =>
    Effect.gen(function*() {
      const requestId = request.requestId as string | undefined
      if (requestId === undefined) return yield* handler(request)
      if (!uuid.test(requestId) || /^[0-]+$/.test(requestId)) {
        return yield* ApiError.invalidField("requestId", requestId, "Must be a valid UUID other than the zero UUID.")
      }
      const project = str(request, "project")
      const seen = byRequestId.get(`${project}/${requestId}`)
      if (seen !== undefined) return yield* operations.get(project, seen.scope, seen.name)
      const answer = (yield* handler(request)) as Json
      const scope: Operations.Scope = request.zone !== undefined
        ? { kind: "zones", name: str(request, "zone") }
        : request.region !== undefined
        ? { kind: "regions", name: str(request, "region") }
        : { kind: "global" }
      byRequestId.set(`${project}/${requestId}`, { scope, name: String(answer.name) })
      return answer
    })
  for (const [name, handler] of handlers) {
    if (/\.(Insert|Delete|SetLabels)$/.test(name) && !name.includes("Operations.")) {
      handlers.set(name, idempotent(handler))
    }
  }

  return {
    handlers,
    fail: (project, zone, name) =>
      Effect.gen(function*() {
        const record = yield* findInstance(project, zone, name)
        yield* killHost(record, "Instance terminated: its host failed (injected fault).")
        return record.resource
      })
  } satisfies Compute
}) satisfies (
  links: Links.Links,
  pool: AddressPool.AddressPool
) => Effect.Effect<Compute, never, Hosts | Faults | Scope.Scope>
