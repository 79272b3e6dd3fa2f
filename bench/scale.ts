/**
 * Scale benchmark: one orchestrator drives N agents through the real code path, per backend:
 *
 *   - deploy: `Orchestrator.run` of a scenario whose `vms` asks for N agents, on the backend the CLI selects
 *     (`Backends.select`), with the on-disk ledger and `events.jsonl` as in a CLI run
 *   - exec (cold): the scenario runs `true` on every agent at once (`Cloud.agents`, `Agent.exec`), the first
 *     command each agent sees
 *   - exec (warm): the same fan-out again
 *   - teardown: the run's scope closes (every sandbox, process and connection)
 *
 * Backends: `localhost` (process sandboxes) and `ssh-host` (N sandboxes on one real OpenSSH sshd on a loopback
 * port, test/fixtures/SshHosts.ts, through the backend's one multiplexed connection). Each case runs in a fresh
 * orchestrator process, so that its memory is its own; it prints the phases' wall times, the orchestrator's peak
 * RSS (VmHWM) and RSS per agent ((peak − baseline before deploy) / N), the peak count of open file descriptors
 * (sampled from /proc/self/fd every 10 ms and at each phase's end), and checks that nothing is left after the
 * teardown: no sandbox directory, no process carrying the namespace's marker, an empty ledger.
 *
 * Run: `npm run bench:scale` (ssh-host needs root and Debian's openssh-server). `BENCH_BACKENDS=localhost,ssh-host`
 * picks the backends, `BENCH_SIZES=100,1000` the agent counts for localhost, `BENCH_SSH_SIZES=100` for ssh-host.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cloud, CloudConfig, Ledger, Orchestrator, RunEvents, Scenario } from "@tezt-cloud/core"
import { Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Backends from "../packages/cli/src/Backends.ts"
import { Localhost } from "../packages/localhost/src/index.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import * as SshHosts from "../test/fixtures/SshHosts.ts"

type Backend = "localhost" | "ssh-host"

interface Result {
  readonly backend: Backend
  readonly n: number
  /** Wall times, ms. */
  readonly deploy: number
  readonly execCold: number
  readonly execWarm: number
  readonly teardown: number
  /** Bytes. */
  readonly baseline: number
  readonly peakRss: number
  readonly peakFds: number
  readonly baselineFds: number
  readonly leftovers: string
}

const namespaceOf = (backend: Backend, n: number) => `benchscale-${backend}-${n}`

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)
const seconds = (ms: number) => (ms / 1000).toFixed(2)

/** Open file descriptors of this process. */
const openFds = () => fs.readdirSync("/proc/self/fd").length

/** Peak resident set size of this process since the last reset (`VmHWM`), in bytes. */
const peakRss = () => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]) * 1024

/** Pids of processes carrying `TEZT_CLOUD_NS=<namespace>` (the sshd host is this machine too). */
const marked = (namespace: string) =>
  Number(
    child.execFileSync("sh", [
      "-c",
      `grep -lzxF -- "TEZT_CLOUD_NS=${namespace}" /proc/[0-9]*/environ 2>/dev/null | wc -l`
    ]).toString().trim()
  )

/** One case, in this process: deploy N agents, exec twice on all, tear down; measures and checks leftovers. */
const runCase = async (backend: Backend, n: number, work: string): Promise<Result> => {
  const namespace = namespaceOf(backend, n)
  const stateDir = path.join(work, "state")
  const artifactsDir = path.join(work, "artifacts", namespace)
  const target = process.env.BENCH_SSH_TARGET
  const config = await Effect.runPromise(CloudConfig.resolve(
    {
      tezt_cloud: namespace,
      ...(backend === "localhost"
        ? { localhost: true, agent_runtime: "process" }
        : { ssh_host: target, insecure_host_keys: true }),
      // 1000 agents × 30 ports from 20000 end at 49999.
      vm_base_port: 20000,
      ports_per_vm: 30
    },
    backend === "ssh-host" ? { sshPrivateKey: SshKeys.defaultPath(namespace, path.join(work, "home")) } : {},
    {}
  ))

  const marks = new Map<string, number>()
  let peakFds = 0
  const sample = () => {
    peakFds = Math.max(peakFds, openFds())
  }
  const mark = (name: string) => {
    sample()
    marks.set(name, performance.now())
  }
  const scenario = Scenario.make({
    title: `scale ${n}`,
    tags: ["scale"],
    vms: Array.from({ length: n }, (_, i) => ({ name: `a${i}` })),
    run: Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      for (const phase of ["cold", "warm"]) {
        mark(`exec-${phase}-start`)
        const results = yield* Effect.forEach(cloud.agents, (agent) => agent.exec("true", []), {
          concurrency: "unbounded"
        })
        mark(`exec-${phase}-end`)
        const failed = results.filter((r) => r.exitCode !== 0).length
        if (failed > 0) return yield* Effect.fail(new Error(`${failed} of ${n} agents: true exited non-zero`))
      }
    })
  })
  const sink: RunEvents.Sink = (event) => {
    if (event.type === "deploy-start") mark("deploy-start")
    else if (event.type === "deploy-done") mark("deploy-end")
    else if (event.type === "teardown-start") mark("teardown-start")
  }

  const program = Effect.gen(function*() {
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    const selected = yield* Backends.select(config, { stateDir, artifactsDir })
    yield* Orchestrator.prepareArtifacts(config, artifactsDir, false)
    const events = yield* RunEvents.RunEvents
    yield* events.writeTo(artifactsDir)
    yield* Orchestrator.run(scenario, config, configs).pipe(
      Effect.provide(selected.layer),
      Effect.provide(Ledger.Ledger.layer(stateDir, namespace)),
      Effect.provideService(CloudConfig.CurrentConfig, config)
    )
  }).pipe(
    Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layer([sink]), NodeServices.layer))
  )

  // The baseline: everything loaded, garbage collected, the peak reset to now.
  globalThis.gc?.()
  fs.writeFileSync("/proc/self/clear_refs", "5")
  const baseline = process.memoryUsage().rss
  const baselineFds = openFds()
  const sampler = setInterval(sample, 10)
  await Effect.runPromise(program)
  mark("teardown-end")
  clearInterval(sampler)
  const peak = peakRss()

  const problems: Array<string> = []
  const sandboxes = backend === "localhost"
    ? Localhost.sandboxesDir(stateDir, namespace)
    : path.join("/tmp", `tezt-cloud-${SshHosts.ensureUser()}`, namespace)
  if (fs.existsSync(sandboxes)) problems.push(`${sandboxes} exists`)
  const processes = marked(namespace)
  if (processes > 0) problems.push(`${processes} marked processes`)
  const outstanding = await Effect.runPromise(
    Effect.gen(function*() {
      return yield* (yield* Ledger.Ledger).outstanding
    }).pipe(
      Effect.provide(Ledger.Ledger.layer(stateDir, namespace))
    )
  )
  if (outstanding.length > 0) problems.push(`${outstanding.length} ledger records`)

  const between = (a: string, b: string) => marks.get(b)! - marks.get(a)!
  return {
    backend,
    n,
    deploy: between("deploy-start", "deploy-end"),
    execCold: between("exec-cold-start", "exec-cold-end"),
    execWarm: between("exec-warm-start", "exec-warm-end"),
    teardown: between("teardown-start", "teardown-end"),
    baseline,
    peakRss: peak,
    peakFds,
    baselineFds,
    leftovers: problems.length === 0 ? "none" : problems.join(", ")
  }
}

/** Runs one case in a fresh orchestrator process (`node bench/scale.ts --case BACKEND N WORK`). */
const spawnCase = (backend: Backend, n: number, work: string, env: Record<string, string>): Promise<Result> =>
  new Promise((resolve, reject) => {
    const proc = child.spawn(
      process.execPath,
      ["--expose-gc", import.meta.filename, "--case", backend, String(n), work],
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] }
    )
    let out = ""
    proc.stdout.on("data", (d: Buffer) => (out += d.toString()))
    proc.once("exit", (code) => {
      const last = out.trim().split("\n").at(-1) ?? ""
      if (code !== 0 || !last.startsWith("{")) return reject(new Error(`${backend} ${n}: exit ${code}: ${out}`))
      resolve(JSON.parse(last) as Result)
    })
  })

const main = async () => {
  const backends = (process.env.BENCH_BACKENDS ?? "localhost,ssh-host").split(",") as Array<Backend>
  const sizes = (process.env.BENCH_SIZES ?? "100,1000").split(",").map(Number)
  const sshSizes = (process.env.BENCH_SSH_SIZES ?? "100").split(",").map(Number)
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bench-scale-"))
  const results: Array<Result> = []
  try {
    for (const backend of backends) {
      if (backend === "localhost") {
        for (const n of sizes) results.push(await spawnCase(backend, n, work, {}))
      } else {
        const keys = await Promise.all(
          sshSizes.map((n) =>
            Effect.runPromise(SshKeys.ensure(namespaceOf(backend, n), undefined, path.join(work, "home")))
          )
        )
        // sshd frees a session slot a little after the client sees its channel close: at our 8 channels against
        // the default MaxSessions 10, a loaded host refuses channels ("open failed"). The host gets room to spare.
        const host = await SshHosts.start({ authorizedKeys: keys.map((k) => k.publicKey), maxSessions: 64 })
        try {
          for (const n of sshSizes) {
            results.push(
              await spawnCase(backend, n, work, { BENCH_SSH_TARGET: `${host.user}@${host.host}:${host.port}` })
            )
          }
        } finally {
          await host.stop()
        }
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.log(
    `Scale, ${os.cpus().length} cores, Node ${process.version}, ulimit -n ${
      child.execSync("ulimit -n", { shell: "/bin/sh" }).toString().trim()
    }\n\n` +
      "| backend | agents | deploy s | exec true (cold) s | exec true (warm) s | teardown s | peak RSS MiB | RSS/agent MiB | peak fds (baseline) | left after teardown |\n" +
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" +
      results.map((r) =>
        `| ${r.backend} | ${r.n} | ${seconds(r.deploy)} | ${seconds(r.execCold)} | ${seconds(r.execWarm)} | ${
          seconds(r.teardown)
        } | ${mib(r.peakRss)} | ${
          (Math.max(0, r.peakRss - r.baseline) / r.n / 1024 / 1024).toFixed(3)
        } | ${r.peakFds} (${r.baselineFds}) | ${r.leftovers} |`
      ).join("\n")
  )
}

if (process.argv[2] === "--case") {
  const result = await runCase(process.argv[3] as Backend, Number(process.argv[4]), process.argv[5]!)
  console.log(JSON.stringify(result))
} else {
  await main()
}
