/**
 * GCP backend benchmark: deploy N agents until they are ready (VM and firewall rule created, `echo check` answered
 * over ssh) against the GCE emulator with injected Operation latency, beside Tezt cloud's order, in one run on the
 * same emulator:
 *
 *   - tezt-cloud: the GCP backend on the provisioning loop (every agent's VM and rule at once, each waiting on its
 *     own Operation, then ssh);
 *   - one workspace per VM spec, one after the other: Tezt cloud when the agents' VMs differ (each spec is a
 *     terraform workspace, applied in turn): VM and rule, wait, ssh check, then the next;
 *   - one workspace, `terraform apply` (parallelism 10): Tezt cloud when every agent has the same VM spec: ten
 *     VMs and rules at a time, then the ssh checks.
 *
 * Every contender makes the same calls through the same client (`GceClient`), so the difference is the order. The
 * emulator runs its hosts as containers (packages/gcp/test/fixtures/Emulator.ts, on the test Docker engine).
 *
 * Run: `npm run bench:gcp` (as root; needs docker.io and debootstrap). `BENCH_SIZES=1,8` picks the agent counts
 * (default 1,8,32); `BENCH_OPERATION_DELAY_MS` the latency of each Operation (default 1500).
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { AgentConfig, CloudConfig, Ledger, Orchestrator, RunEvents } from "@tezt-cloud/core"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { GceClient, GceResources, GcpAgents, GcpNamespace, type GcpTarget } from "../packages/gcp/src/index.ts"
import * as Emulator from "../packages/gcp/test/fixtures/Emulator.ts"
import { SshClient, SshKeys } from "../packages/ssh/src/index.ts"
import { deployAndTearDown } from "./Deploy.ts"

const sizes = (process.env.BENCH_SIZES ?? "1,8,32").split(",").map(Number)
const delay = Number(process.env.BENCH_OPERATION_DELAY_MS ?? 1500)
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bench-gcp-"))
const home = path.join(work, "home")
const vmPort = 19000
const region = Emulator.zone.replace(/-[a-z]$/, "")

const seconds = (ms: number) => (ms / 1000).toFixed(2)

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

/** tezt-cloud: deploy `n` agents (timed), then tear them down with `--destroy`. */
const tezt = (url: string, namespace: string, n: number) =>
  Effect.gen(function*() {
    const config = yield* CloudConfig.resolve(
      {
        tezt_cloud: namespace,
        project_id: Emulator.project,
        vm_base_port: vmPort,
        ports_per_vm: 10,
        destroy: true,
        grafana: false
      },
      {},
      {}
    )
    const target = { endpoint: url, project: Emulator.project, zone: Emulator.zone, region, image: undefined }
    const layer = GcpAgents.layer({ target, config, artifactsDir: path.join(work, "artifacts"), keyHome: home }).pipe(
      Layer.provideMerge(Layer.mergeAll(
        Ledger.Ledger.layer(path.join(work, "state"), namespace),
        RunEvents.RunEvents.layer([]),
        NodeServices.layer
      ))
    )
    const configs = AgentConfig.complete(
      Array.from({ length: n }, (_, i) => ({ name: `a${i}` })),
      Orchestrator.agentDefaults(config)
    )
    return (yield* deployAndTearDown(layer, configs)).deploy
  })

/** One agent as a terraform workspace of Tezt cloud makes it: VM and rule together, wait, then `echo check`. */
const workspaceStep = (gce: GceClient.Api, key: SshKeys.Key, namespace: string, i: number) =>
  Effect.gen(function*() {
    const spec: GceResources.Spec = {
      namespace,
      agent: `a${i}`,
      zone: Emulator.zone,
      machineType: "n1-standard-2",
      image: GceResources.images.cos!,
      diskType: GceResources.defaultDiskType,
      diskSizeGb: GceResources.defaultDiskSizeGb,
      maxRunDuration: undefined,
      sshPort: vmPort,
      publicKey: key.publicKey,
      ports: { start: vmPort + i * 10, end: vmPort + i * 10 + 9 },
      monitoring: false,
      packages: []
    }
    yield* Effect.all([
      gce.insertInstance(GceResources.instance(spec), spec.image),
      gce.insertFirewall(GceResources.firewall(spec))
    ], { concurrency: 2 })
    const vm = yield* gce.instance(Emulator.zone, GceResources.instanceName(namespace, spec.agent))
    return GceResources.addressOf(vm!)!
  })

/** `ssh … echo -n check` on a VM. */
const check = (key: SshKeys.Key, host: string) =>
  Effect.scoped(Effect.gen(function*() {
    const connection = yield* SshClient.connect({ user: "root", host, port: vmPort }, {
      privateKey: key.privateKey,
      hostKeys: { _tag: "Insecure" },
      executor: false
    })
    const r = yield* connection.run("echo -n check")
    if (r.stdout !== "check") throw new Error(`${host}: ${r.stderr}`)
  }))

/**
 * Tezt cloud's order for `n` agents of one spec: one workspace, `parallelism` VMs at a time, then the checks. Its
 * clients are made within its time, as tezt-cloud's are.
 */
const grouped = (target: GcpTarget.Target, key: SshKeys.Key, namespace: string, n: number, parallelism: number) =>
  timed(Effect.gen(function*() {
    const gce = yield* GceClient.make(target)
    const hosts = yield* Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      (i) => workspaceStep(gce, key, namespace, i),
      { concurrency: parallelism }
    )
    yield* Effect.forEach(hosts, (host) => check(key, host), { concurrency: "unbounded", discard: true })
  })).pipe(Effect.ensuring(removeAll(target, namespace)), Effect.scoped)

/** Tezt cloud for `n` agents of distinct specs: a workspace each, one after the other (VM, wait, check). */
const sequential = (target: GcpTarget.Target, key: SshKeys.Key, namespace: string, n: number) =>
  timed(Effect.gen(function*() {
    const gce = yield* GceClient.make(target)
    yield* Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      (i) => Effect.flatMap(workspaceStep(gce, key, namespace, i), (host) => check(key, host)),
      { discard: true }
    )
  })).pipe(Effect.ensuring(removeAll(target, namespace)), Effect.scoped)

/** Deletes what a contender made (not timed). */
const removeAll = (target: GcpTarget.Target, namespace: string) =>
  Effect.scoped(Effect.flatMap(GceClient.make(target), (gce) => GcpNamespace.destroy(gce, namespace))).pipe(
    Effect.ignore
  )

const main = async () => {
  const emulator = await Emulator.start({ subnet: "127.82.0", vmPort })
  const rows: Array<Array<string>> = []
  try {
    await emulator.setFaults({ operationDelayMillis: delay })
    const key = await Effect.runPromise(SshKeys.ensure("benchgcp", undefined, home))
    const target = { endpoint: emulator.url, project: Emulator.project, zone: Emulator.zone, region, image: undefined }
    // The client module loads once per process (over a second): not in any contender's time.
    await Effect.runPromise(Effect.scoped(GceClient.make(target)))
    for (const n of sizes) {
      const ours = await Effect.runPromise(tezt(emulator.url, `benchgcp${n}`, n))
      const apart = await Effect.runPromise(sequential(target, key, `benchseq${n}`, n))
      const together = await Effect.runPromise(grouped(target, key, `benchws${n}`, n, 10))
      rows.push([
        String(n),
        seconds(ours),
        seconds(apart),
        (apart / ours).toFixed(1),
        seconds(together),
        (together / ours).toFixed(1)
      ])
    }
  } finally {
    await emulator.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.log(
    `GCP backend on the GCE emulator, Operation latency ${delay} ms, ${os.cpus().length} cores, Node ` +
      `${process.version}\n\n` +
      "| agents | tezt-cloud s | a workspace per spec, in turn s | × tezt-cloud | one workspace (parallelism 10) s | × tezt-cloud |\n" +
      "| --- | --- | --- | --- | --- | --- |\n" +
      rows.map((r) => `| ${r.join(" | ")} |`).join("\n")
  )
}

await main()
