/**
 * Warm `tezt-cloud agents exec -- true` on N process-sandbox agents, against N `true` through
 * `xargs -P <cores>`, in one run. A real run (`Orchestrator.run` on the localhost backend, in this process) deploys
 * the agents and serves its control socket; its scenario then times the real CLI as a user runs it
 * (`./tezt-cloud agents exec`: the launcher finds the socket and starts the thin client) and xargs, in turns. Each
 * size runs three times: with the run's native local executor (the default when the bootstrap built it: small
 * processes `posix_spawn` the commands), with the Perl one (they fork), and without an executor
 * (`executor: false`: the orchestrator spawns each command itself).
 *
 * Run: `npm run bench:local` (`BENCH_SIZES=300,1000` by default, `RUNS=5` timed runs of each after one untimed).
 * Prints the median wall time of each, the ratio to xargs, and the same fan-out timed from inside the run
 * (`Agent.exec` on every agent at once: the orchestrator's side without the CLI's start-up).
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cloud, CloudConfig, Ledger, Orchestrator, RunEvents, Scenario } from "@tezt-cloud/core"
import { Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { LocalExecutor, Localhost } from "../packages/localhost/src/index.ts"

const root = path.resolve(import.meta.dirname, "..")
const launcher = path.join(root, "tezt-cloud")
const sizes = (process.env.BENCH_SIZES ?? "300,1000").split(",").map(Number)
const runs = Number(process.env.RUNS ?? 5)
const cores = os.availableParallelism()

/** Wall time of `argv` in ms; its exit code must be 0. */
const timed = (argv: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const proc = child.spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: "ignore" })
    proc.on("error", reject)
    proc.on("exit", (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`${argv.join(" ")} exited ${code}`)))
  })

const median = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** One run of `n` agents; its scenario times `agents exec` and xargs in turns. */
const runCase = async (n: number, executor: false | LocalExecutor.Program, work: string) => {
  const namespace = `benchlocal-${n}-${executor || "s"}`
  const stateDir = path.join(work, "state")
  const artifactsDir = path.join(work, "artifacts", namespace)
  const config = await Effect.runPromise(CloudConfig.resolve(
    { tezt_cloud: namespace, localhost: true, agent_runtime: "process", vm_base_port: 20000, ports_per_vm: 30 },
    {},
    {}
  ))
  const env = { TEZT_CLOUD_STATE_DIR: stateDir, TEZT_CLOUD_SCENARIOS: "" }
  const cli = [launcher, "agents", "exec", "--tezt-cloud", namespace, "--", "true"]
  const xargs = ["sh", "-c", `seq ${n} | xargs -P ${cores} -n 1 true`]
  const times = { cli: [] as Array<number>, xargs: [] as Array<number>, inProcess: [] as Array<number> }
  const scenario = Scenario.make({
    title: `local fan-out ${n}`,
    tags: ["bench"],
    vms: Array.from({ length: n }, (_, i) => ({ name: `a${i}` })),
    run: Effect.gen(function*() {
      const { agents } = yield* Cloud.Cloud
      // One untimed round of each: the agents have run a command before, the compile cache is warm.
      yield* Effect.promise(() => timed(cli, env))
      yield* Effect.promise(() => timed(xargs, env))
      for (let i = 0; i < runs; i++) {
        times.cli.push(yield* Effect.promise(() => timed(cli, env)))
        times.xargs.push(yield* Effect.promise(() => timed(xargs, env)))
        // The same fan-out from the run itself: what the orchestrator's side costs, without the CLI's start.
        const started = performance.now()
        yield* Effect.forEach(agents, (agent) => agent.exec("true", []), { concurrency: "unbounded" })
        times.inProcess.push(performance.now() - started)
      }
    })
  })
  const program = Effect.gen(function*() {
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    yield* Orchestrator.run(scenario, config, configs).pipe(
      Effect.provide(Localhost.layer({ stateDir, config, artifactsDir, executor })),
      Effect.provide(Ledger.Ledger.layer(stateDir, namespace)),
      Effect.provideService(CloudConfig.CurrentConfig, config)
    )
  }).pipe(Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layerNoop, NodeServices.layer)))
  await Effect.runPromise(program)
  return { cli: median(times.cli), xargs: median(times.xargs), inProcess: median(times.inProcess) }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bench-local-"))
try {
  console.log(
    `Warm agents exec -- true on process sandboxes, median of ${runs} (${cores} cores, Node ${process.version})\n`
  )
  const built = LocalExecutor.native() !== undefined
  if (!built) console.log(`The native executor is not built (${LocalExecutor.nativePath}): its columns are empty.\n`)
  console.log(
    "| agents | agents exec: native executor | Perl executor | spawned by the orchestrator | xargs -P " +
      `${cores} | native ÷ xargs | Perl ÷ xargs | spawned ÷ xargs | in the run: native / Perl / spawned |`
  )
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  for (const n of sizes) {
    const native = built ? await runCase(n, "native", work) : undefined
    const perl = await runCase(n, "perl", work)
    const spawned = await runCase(n, false, work)
    const xargs = median([perl.xargs, spawned.xargs, ...(native === undefined ? [] : [native.xargs])])
    const s = (ms: number | undefined) => ms === undefined ? "–" : `${(ms / 1000).toFixed(2)} s`
    const ratio = (c: { cli: number; xargs: number } | undefined) =>
      c === undefined ? "–" : `${(c.cli / c.xargs).toFixed(2)}×`
    console.log(
      `| ${n} | ${s(native?.cli)} | ${s(perl.cli)} | ${s(spawned.cli)} | ${s(xargs)} | ${ratio(native)} | ` +
        `${ratio(perl)} | ${ratio(spawned)} | ${s(native?.inProcess)} / ${s(perl.inProcess)} / ` +
        `${s(spawned.inProcess)} |`
    )
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
