/**
 * The GCP backend (the default mode: no `--localhost`, no `--ssh-host`): each agent gets a Compute Engine VM and
 * a firewall rule (`GceResources`), and is a sandbox on its VM reached over ssh (`SshSandbox`) at the VM's address
 * on `--vm-base-port`. `TEZT_CLOUD_GCP_ENDPOINT` points it at an emulator instead of Google's API.
 *
 * **Details**
 *
 * - Provisioning runs on the provisioning loop: each agent's VM is recorded in the Ledger, then created (VMs in
 *   parallel, within the loop's bound), each creation waiting on its zone Operation; an agent is ready once
 *   `echo check` answers over ssh. No fixed sleep anywhere.
 * - Destroy policy: VMs are kept by default (with Tezt cloud's reminder) and only the agents' sandboxes are
 *   wiped; a later run of the namespace reuses the VMs it kept (same name, label and make). `--destroy` deletes
 *   the run's VMs and firewall rules, then everything else labelled with the namespace (VMs of earlier runs,
 *   addresses). A deployment that fails (a quota exceeded, Ctrl+C) deletes the VMs it created itself and keeps
 *   those it reused.
 * - After a `kill -9`, `CLOUD clean up` deletes the VMs and rules the Ledger still holds, on the API the run used
 *   (the record keeps its endpoint), and checks each one's label before deleting it.
 * - Host keys are not checked: the VMs are the run's own, and GCE reuses addresses.
 */
import { Backend, CloudConfig, CloudError, Ledger, Provision, Teardown } from "@tezt-cloud/core"
import { SshClient, SshRunner, SshSandbox } from "@tezt-cloud/ssh"
import { Effect, Schedule, Schema, Scope } from "effect"
import * as GceClient from "./GceClient.ts"
import * as GceResources from "./GceResources.ts"
import * as GcpError from "./GcpError.ts"
import * as GcpJobs from "./GcpJobs.ts"
import * as GcpNamespace from "./GcpNamespace.ts"
import * as GcpTarget from "./GcpTarget.ts"

/** What this backend reads of the run's configuration (machines, disks, OS and TTL come with each agent's). */
export const Config = Schema.Struct({
  ...SshSandbox.Config.fields,
  ...CloudConfig.ownedBy("gcp"),
  ...CloudConfig.pick("destroy", "monitoring")
})
export type Config = typeof Config.Type

export interface Options {
  readonly target: GcpTarget.Target
  readonly config: Config
  /** The run's artifacts dir; each agent gets `<artifactsDir>/<agent>`. */
  readonly artifactsDir: string
  /** Where `~/.ssh/<ns>-tf` lives (the user's home by default). */
  readonly keyHome?: string | undefined
  /** How long a new VM may take to answer over ssh (default 300 s: a real VM boots). */
  readonly readySeconds?: number | undefined
  /** Agents of the namespace whose VMs `--destroy` leaves (a run on a proxy VM spares its own). */
  readonly spare?: ReadonlyArray<string> | undefined
}

/** The backend's name in the CLI's list, and in its agents' descriptors. */
export const backendId = "gcp"

const { instanceKind } = GcpNamespace

/** The ledger kinds this backend records. */
export const kinds: ReadonlyArray<string> = [instanceKind]

/** Where an agent's sandbox lives on its VM. */
export const homeIn = (namespace: string, agent: string) => `/tmp/tezt-cloud/${namespace}/${agent}`

/** How the VMs are reached: the namespace's key, any host key (see the module's details). */
export const settings = (config: Pick<Config, "namespace" | "sshMaxChannels">): SshSandbox.Settings => ({
  namespace: config.namespace,
  hostKeys: { _tag: "Insecure" },
  maxChannels: config.sshMaxChannels,
  graceSeconds: 3
})

/** A VM an agent uses, as `create` leaves it. */
interface Created {
  readonly instance: string
  readonly zone: string
  readonly address: string
  /** Kept by an earlier run of the namespace: a failed deployment keeps it too. */
  readonly reused: boolean
}

/** The ledger record of an agent's VM and rule (the endpoint too: a clean-up must reach the same API). */
const record = (target: GcpTarget.Target, namespace: string, agent: string): Ledger.Resource => {
  const instance = GceResources.instanceName(namespace, agent)
  return {
    id: `${instanceKind}:${target.project}/${target.zone}/${instance}`,
    kind: instanceKind,
    data: {
      namespace,
      agent,
      instance,
      firewall: instance,
      project: target.project,
      zone: target.zone,
      endpoint: target.endpoint ?? ""
    }
  }
}

/** The target a ledger record was made on. */
const targetOf = (data: Readonly<Record<string, unknown>>): GcpTarget.Target => {
  const zone = String(data.zone)
  return {
    endpoint: data.endpoint === "" || data.endpoint === undefined ? undefined : String(data.endpoint),
    project: String(data.project),
    zone,
    region: zone.replace(/-[a-z]$/, ""),
    image: undefined
  }
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`

/** Deletes a VM and its firewall rule at once (each only if it is the namespace's). */
const removeAgent = (gce: GceClient.Api, namespace: string, zone: string, instance: string) =>
  Effect.all([
    gce.instance(zone, instance).pipe(
      Effect.flatMap((vm) =>
        vm !== undefined && GceResources.labelled(vm.labels, namespace)
          ? gce.deleteInstance(zone, instance)
          : Effect.void
      )
    ),
    gce.firewalls.pipe(
      Effect.flatMap((rules) =>
        rules.some((r) => r.name === instance && GceResources.firewallOf(r, namespace))
          ? gce.deleteFirewall(instance)
          : Effect.void
      )
    )
  ], { concurrency: 2, discard: true })

export const layer = (options: Options) =>
  Provision.layer(options, ({ events, ledger }) =>
    Effect.sync(() => {
      const { config, target } = options
      const ns = config.namespace
      const reaching = settings(config)
      const readySeconds = options.readySeconds ?? 300
      const cloud = GcpError.toCloud

      const specOf = (slot: Provision.Slot, publicKey: string): GceResources.Spec => ({
        namespace: ns,
        agent: slot.name,
        zone: target.zone,
        machineType: slot.config.machineType,
        image: target.image ?? GceResources.images[slot.config.os] ?? GceResources.images.cos!,
        diskType: slot.config.diskType ?? GceResources.defaultDiskType,
        diskSizeGb: slot.config.diskSizeGb ?? GceResources.defaultDiskSizeGb,
        maxRunDuration: slot.config.maxRunDuration,
        sshPort: config.vmBasePort,
        publicKey,
        ports: slot.ports,
        monitoring: config.monitoring,
        // The process exporter always (small, and the default mode's monitoring runs it): toggling
        // --process-monitoring does not make new VMs. netdata only with --monitoring.
        packages: ["prometheus-process-exporter", ...(config.monitoring ? ["netdata"] : [])]
      })

      return Provision.provisioner({
        backend: `gcp (${GcpTarget.label(target)})`,
        // One VM per agent: every agent's ports start at --vm-base-port, where its sshd listens.
        machinePerAgent: true,
        prepare: (configs) =>
          Effect.gen(function*() {
            const key = yield* SshSandbox.key(reaching, {
              sshPrivateKey: config.sshPrivateKey,
              keyHome: options.keyHome
            })
            const gce = yield* GceClient.make(target)
            // What the namespace already has here: its kept VMs are reused, its rules kept when they are the same.
            const [vms, rules] = yield* Effect.all([
              gce.instances(GceResources.namespaceFilter(ns)),
              gce.firewalls
            ], { concurrency: 2 }).pipe(Effect.mapError(cloud("gcp")))
            const state = {
              key,
              gce,
              existing: new Map(
                vms.filter((vm) => vm.where === target.zone).map((vm) => [vm.resource.name!, vm.resource])
              ),
              rules: new Map(rules.filter((r) => GceResources.firewallOf(r, ns)).map((r) => [r.name!, r])),
              connections: new Map<string, SshClient.Connection>(),
              total: configs.length,
              ready: 0,
              kept: [] as Array<string>,
              removed: [] as Array<string>,
              // Closed after every agent is torn down (it is made before the loop's pool): wipes use them.
              connectionScope: yield* Scope.fork(yield* Effect.scope)
            }
            // After every agent (the loop's pool and the connections close first): the run's last word on its VMs.
            yield* Effect.addFinalizer(() =>
              Effect.gen(function*() {
                const emit = (level: string, message: string) => events.emit({ type: "log", level, message })
                if (config.destroy) {
                  const swept = yield* GcpNamespace.destroy(gce, ns, options.spare)
                  const extra = swept.length === 0 ? "" : `, and ${swept.length} more of ${ns}: ${swept.join(", ")}`
                  return yield* emit("Info", `destroyed ${plural(state.removed.length, "VM")} of this run${extra}`)
                }
                if (state.removed.length > 0) {
                  yield* emit(
                    "Warning",
                    `the deployment did not complete: deleted the ${plural(state.removed.length, "VM")} it created ` +
                      `(${state.removed.join(", ")})`
                  )
                }
                if (state.kept.length > 0) {
                  yield* emit(
                    "Warning",
                    `No VM destroyed! Don't forget to destroy them when you are done with your experiments: ` +
                      `${plural(state.kept.length, "VM")} of ${ns} kept (a later run of ${ns} reuses them); ` +
                      `'tezt-cloud CLOUD destroy --tezt-cloud ${ns}' deletes them, or run with --destroy`
                  )
                }
              }).pipe((effect) => Teardown.step(`GCP resources of ${ns}`, effect))
            )
            return state
          }),
        record: (_, slot) => record(target, ns, slot.name),
        create: (shared, slot) =>
          Effect.gen(function*() {
            const { gce } = shared
            const spec = specOf(slot, shared.key.publicKey)
            const name = GceResources.instanceName(ns, slot.name)
            const wanted = GceResources.instance(spec)
            const rule = GceResources.firewall(spec)
            const existing = shared.existing.get(name)
            const reusable = existing !== undefined && String(existing.status) === "RUNNING" &&
              existing.labels?.[GceResources.agentLabel] === GceResources.labelValue(slot.name) &&
              existing.labels?.[GceResources.specLabel] === GceResources.specHash(spec)
            const made: Array<"instance" | "rule"> = []
            const vmStep = reusable ? Effect.succeed(existing) : Effect.gen(function*() {
              // A VM of ours that cannot serve (stopped, or made differently) is replaced.
              if (existing !== undefined) yield* gce.deleteInstance(target.zone, name)
              made.push("instance")
              yield* gce.insertInstance(wanted, spec.image)
              return yield* gce.instance(target.zone, name)
            })
            const existingRule = shared.rules.get(name)
            const ruleStep = existingRule !== undefined && GceResources.sameRule(existingRule, rule)
              ? Effect.void
              : Effect.gen(function*() {
                if (existingRule !== undefined) yield* gce.deleteFirewall(name)
                made.push("rule")
                yield* gce.insertFirewall(rule)
              })
            const [vm] = yield* Effect.all([vmStep, ruleStep], { concurrency: 2 }).pipe(
              // A creation is acquired uninterruptibly (its release is registered once it is made), but waiting
              // for its Operations can take minutes: Ctrl+C stops that wait at once, and the rollback below
              // deletes what was asked for (each request itself completes: see `GceClient`).
              Effect.interruptible,
              // What this creation made goes with its failure or interruption (a quota exceeded, Ctrl+C leaves
              // nothing), and so does its record: nothing of it is left to clean up.
              Effect.onError(() =>
                Effect.all([
                  // A VM that exists (an interrupted creation's does) counts among those the run deleted.
                  made.includes("instance")
                    ? gce.instance(target.zone, name).pipe(
                      Effect.andThen((found) =>
                        gce.deleteInstance(target.zone, name).pipe(
                          Effect.andThen(Effect.sync(() => found !== undefined && shared.removed.push(name)))
                        )
                      )
                    )
                    : Effect.void,
                  made.includes("rule") ? gce.deleteFirewall(name) : Effect.void
                ], { concurrency: 2, discard: true }).pipe(
                  Effect.andThen(ledger.release(record(target, ns, slot.name).id)),
                  Effect.ignore
                )
              ),
              Effect.mapError(cloud(slot.name))
            )
            const address = vm === undefined ? undefined : GceResources.addressOf(vm)
            if (address === undefined) {
              return yield* CloudError.deploy(slot.name, `VM ${name} has no address (status ${String(vm?.status)})`)
            }
            yield* Effect.logInfo(`${slot.name}: ${reusable ? "reusing kept" : "created"} VM ${name} at ${address}`)
            return { instance: name, zone: target.zone, address, reused: reusable } satisfies Created
          }),
        ready: (shared, slot, created) =>
          Effect.gen(function*() {
            const reach = { user: "root", host: created.address, port: config.vmBasePort, key: shared.key.path }
            // A new VM's sshd starts with the VM: its first seconds may refuse.
            const connection = yield* SshSandbox.connect(reach, shared.key.privateKey, reaching, slot.name).pipe(
              Effect.retry({ times: Math.ceil(readySeconds / 3), schedule: Schedule.spaced("3 seconds") }),
              Scope.provide(shared.connectionScope)
            )
            shared.connections.set(slot.name, connection)
            const home = homeIn(ns, slot.name)
            const check = yield* connection.run(`echo -n check && ${SshSandbox.makeDirs(home)}`).pipe(
              Effect.mapError((e) => CloudError.deploy(slot.name, e.message))
            )
            if (check.code !== 0 || check.stdout !== "check") {
              return yield* CloudError.deploy(
                slot.name,
                `VM ${created.instance} does not answer: ${check.stderr.trim()}`
              )
            }
            shared.ready += 1
            return SshSandbox.machine({
              backend: backendId,
              settings: reaching,
              connection,
              reach,
              sandbox: slot.sandbox(home),
              events,
              fields: { instance: created.instance, zone: created.zone, project: target.project }
            })
          }),
        destroy: (shared, slot, created) =>
          Effect.gen(function*() {
            // A deployment that did not complete takes back the VMs it made.
            const rollback = shared.ready < shared.total && !created.reused
            if (config.destroy || rollback) {
              yield* removeAgent(shared.gce, ns, created.zone, created.instance)
              shared.removed.push(created.instance)
              return
            }
            shared.kept.push(created.instance)
            const connection = shared.connections.get(slot.name)
            if (connection === undefined) return
            const home = homeIn(ns, slot.name)
            const wiped = yield* connection.run(
              `(\n${SshRunner.killScript(`TEZT_CLOUD_AGENT=${slot.sandbox(home).marker}`, 3)}\n)\n` +
                `rm -rf ${SshClient.quote(home)}`
            )
            if (wiped.code !== 0) {
              return yield* CloudError.deploy(slot.name, `cannot wipe ${home}: ${wiped.stderr.trim()}`)
            }
          })
      })
    }))

/**
 * Deletes the VMs and firewall rules killed runs of the namespace left (the Ledger's outstanding records), each
 * on the API its run used; returns what it deleted, one line each.
 */
export const cleanUp = Effect.fn("GcpAgents.cleanUp")(function*(namespace: string) {
  const ledger = yield* Ledger.Ledger
  const records = (yield* ledger.outstanding).filter((r) => r.kind === instanceKind)
  if (records.length === 0) return []
  const byApi = Map.groupBy(records, (r) => `${String(r.data.endpoint)} ${String(r.data.project)}`)
  const done = yield* Effect.forEach(byApi.values(), (group) =>
    Effect.scoped(Effect.gen(function*() {
      const gce = yield* GceClient.make(targetOf(group[0]!.data))
      return yield* Effect.forEach(group, (r) =>
        removeAgent(gce, namespace, String(r.data.zone), String(r.data.instance)).pipe(
          Effect.andThen(ledger.release(r.id)),
          Effect.as(`deleted VM ${String(r.data.instance)} (${String(r.data.zone)}) and its firewall rule`)
        ), { concurrency: 8 })
    })).pipe(Effect.mapError((e) =>
      e instanceof GcpError.GcpError ? GcpError.toCloud("clean up")(e) : e
    )))
  return done.flat()
})

/**
 * Deletes everything of the namespace on the API where the VM of `agent` was made, as the Ledger's outstanding
 * record of that VM says (none: nothing to do): what a run on that VM (a proxy) deployed from there, whose own
 * records are on the VM. The VM's record stays for `cleanUp`, which then finds it gone. Returns what it deleted.
 */
export const destroyAround = Effect.fn("GcpAgents.destroyAround")(function*(namespace: string, agent: string) {
  const ledger = yield* Ledger.Ledger
  const found = (yield* ledger.outstanding).find((r) => r.kind === instanceKind && r.data.agent === agent)
  if (found === undefined) return []
  return yield* Effect.scoped(
    Effect.flatMap(GceClient.make(targetOf(found.data)), (gce) => GcpNamespace.destroy(gce, namespace))
  ).pipe(Effect.mapError(GcpError.toCloud("clean up")))
})

/** What the namespace still has on the APIs its runs used (every one its Ledger ever recorded). */
export const leftovers = Effect.fn("GcpAgents.leftovers")(function*(stateDir: string, namespace: string) {
  const entries = yield* Ledger.read(Ledger.ledgerFile(stateDir, namespace))
  const used = new Map(
    entries.filter((e) => e.op === "acquire" && e.kind === instanceKind).map((e) =>
      [`${String(e.data.endpoint)} ${String(e.data.project)}`, e.data] as const
    )
  )
  const found = yield* Effect.forEach(used.values(), (data) =>
    Effect.scoped(Effect.gen(function*() {
      const gce = yield* GceClient.make(targetOf(data))
      return yield* GcpNamespace.resources(gce, namespace)
    })).pipe(Effect.mapError(GcpError.toCloudJob("leftovers"))))
  return found.flatMap((r) => [
    ...r.instances.map((i) => `VM ${i.resource.name} (${i.where})`),
    ...r.rules.map((f) => `firewall rule ${f.name}`),
    ...r.addresses.map((a) => `address ${a.resource.name} (${a.where})`)
  ])
})

/** This backend as a value, for the CLI's list of backends. */
export const backend: Backend.Backend = {
  id: backendId,
  config: Config,
  select: (config: CloudConfig.CloudConfig, context: Backend.SelectContext) =>
    config.backend._tag !== "Gcp"
      ? Effect.succeed(Backend.Pass({ why: "not the default mode (--localhost, --ssh-host or --proxy is given)" }))
      : GcpTarget.resolve(config.projectId).pipe(
        Effect.mapError(GcpError.toCloud("gcp")),
        Effect.map((target) =>
          Backend.Take({
            description: `GCP VMs (${GcpTarget.label(target)})`,
            layer: layer({ target, config, artifactsDir: context.artifactsDir })
          })
        )
      ),
  reattach: (descriptors, options) =>
    SshSandbox.reattach(descriptors, settings(options.config), { oneCommandEach: options.oneCommandEach }),
  where: (d) => `${d.instance} ${d.host}:${d.port}`,
  kinds,
  cleanUp: ({ config }) => cleanUp(config.namespace),
  leftovers: ({ config, stateDir }) => leftovers(stateDir, config.namespace),
  // VMs cannot be deleted synchronously: they are recorded, and `CLOUD clean up` deletes them.
  forceKill: () => 0,
  jobs: ({ stateDir }) => GcpJobs.all(stateDir)
}
