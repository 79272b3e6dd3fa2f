/**
 * The contract every backend (a `Backend` value) must pass, run by the CLI's tests over every entry of its list of
 * backends: the backend takes the configuration that names it; its agents pass the Runner contract (deploy, exec,
 * spawn, copy, ports, teardown: `RunnerContract.ts`); agents deployed by another process are reached again from
 * their descriptors; and after a `kill -9` of that process, `CLOUD clean up` leaves nothing of the namespace
 * (`leftovers` is empty, the ledger has no record of the backend's kinds).
 *
 * **Details**
 *
 * The other process is a real child `node` running `registry.deployer`: it deploys two agents through the CLI's
 * list (`Backends.select`), starts a daemon on each, prints `{"descriptors": […]}` as one line, then waits to be
 * killed. Reattaching and cleaning up go through the list too (`registry`), as `tezt-cloud agents exec` and
 * `CLOUD clean up` do.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import {
  type Agent,
  type Backend,
  CloudConfig,
  type CloudError,
  Ledger,
  RunEvents,
  type Runner
} from "@tezt-cloud/core"
import { Effect, Layer, Option, type Scope, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { eventually, runnerContract } from "./RunnerContract.ts"

/** How to run one backend here: its environment, and the configuration that selects it. */
export interface Harness {
  /** Whether its real parts (an engine, sshd) are installed; when not, the suite is skipped. */
  readonly enabled: boolean
  /** Readies the environment once (starts an engine, a host); `teardown` undoes it. */
  readonly setup?: (() => Promise<void>) | undefined
  readonly teardown?: (() => Promise<void>) | undefined
  /** The configuration of a deployment in `namespace` (each call may give its own port range). */
  readonly config: (namespace: string) => { readonly input: CloudConfig.Input; readonly cliOnly?: CloudConfig.CliOnly }
  /** Per-test timeout in milliseconds. */
  readonly timeout: number
  /** Where agents' port ranges start (see `ContractOptions.portLayout`): one machine for all, or one each. */
  readonly portLayout?: "per-index" | "shared" | undefined
  /**
   * `false`: the Runner contract (a deployment per test) is skipped, for a backend whose agents are another
   * backend's, made elsewhere (Docker agents on an ssh host's engine): the cross-process test, one deployment, runs.
   */
  readonly runnerContract?: boolean | undefined
}

/** What the contract uses of the CLI's list of backends. */
export interface Registry {
  readonly reattach: (
    descriptors: ReadonlyArray<Agent.Descriptor>,
    options: Backend.ReattachOptions
  ) => Effect.Effect<
    ReadonlyArray<readonly [string, Runner.Runner]>,
    CloudError.CloudError,
    Scope.Scope | Backend.Services
  >
  readonly cleanUp: (
    stateDir: string,
    config: CloudConfig.CloudConfig
  ) => Effect.Effect<
    { readonly failed: ReadonlyArray<{ readonly backend: string; readonly error: CloudError.CloudError }> },
    never,
    Ledger.Ledger
  >
  /** A script that deploys through the list: `node deployer STATE_DIR NAMESPACE INPUT_JSON CLI_ONLY_JSON`. */
  readonly deployer: string
}

/** Whether `pid` runs on this machine (a zombie does not). */
export const running = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))
  } catch {
    return false
  }
}

/** The first line of a child process's output that is a JSON object, parsed; the test fails without one. */
export const reportOf = <A>(child: ChildProcessSpawner.ChildProcessHandle, what: string) =>
  child.stdout.pipe(
    Stream.decodeText(),
    Stream.splitLines,
    Stream.filter((line) => line.startsWith("{")),
    Stream.runHead,
    Effect.map((line) => {
      assert.isTrue(Option.isSome(line), what)
      return JSON.parse(Option.getOrThrow(line)) as A
    })
  )

const resolve = (harness: Harness, namespace: string) => {
  const { cliOnly, input } = harness.config(namespace)
  return CloudConfig.resolve({ ...input, tezt_cloud: namespace }, cliOnly ?? {}, {})
}

/** The suite for `backend` (loaded by `load`). Call it at the top level of a test file. */
export const backendContract = (
  id: string,
  load: () => Promise<Backend.Backend>,
  harness: Harness,
  registry: Registry
) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `backend-contract-${id}-`))
  const base = `bc${process.pid}${Math.random().toString(36).slice(2, 6)}`
  let deployments = 0
  const backend = Effect.promise(load)

  /** The backend's deployment, as it selects itself for the harness's configuration, with its services. */
  const selected = (namespace: string) =>
    Layer.unwrap(Effect.gen(function*() {
      const config = yield* resolve(harness, namespace)
      const choice = yield* (yield* backend).select(config, {
        stateDir,
        artifactsDir: path.join(stateDir, "artifacts", namespace),
        passed: []
      })
      if (choice._tag === "Pass") return assert.fail(`${id} passes on its own configuration: ${choice.why}`)
      return Layer.mergeAll(choice.layer, Layer.succeed(CloudConfig.CurrentConfig, config))
    })).pipe(Layer.provideMerge(Layer.mergeAll(
      Ledger.Ledger.layer(stateDir, namespace),
      RunEvents.RunEvents.layer([]),
      NodeServices.layer
    )))

  describe.runIf(harness.enabled)(`Backend contract: ${id}`, () => {
    beforeAll(() => harness.setup?.(), 600_000)
    afterAll(async () => {
      await harness.teardown?.()
      fs.rmSync(stateDir, { recursive: true, force: true })
    })

    if (harness.runnerContract !== false) {
      runnerContract(id, Layer.unwrap(Effect.sync(() => selected(`${base}-rc${deployments++}`))), {
        timeout: harness.timeout,
        portLayout: harness.portLayout
      })
    }

    it.live(
      "agents deployed by another process are reached from their descriptors; after its kill -9, clean up leaves nothing",
      () =>
        Effect.gen(function*() {
          const namespace = `${base}-kill`
          const config = yield* resolve(harness, namespace)
          const { cliOnly, input } = harness.config(namespace)
          const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
          const orchestrator = yield* spawner.spawn(ChildProcess.make(process.execPath, [
            "--no-warnings",
            registry.deployer,
            stateDir,
            namespace,
            JSON.stringify(input),
            JSON.stringify(cliOnly ?? {})
          ], { stdin: "ignore", stderr: "inherit" }))
          const { descriptors } = yield* reportOf<{ readonly descriptors: ReadonlyArray<Agent.Descriptor> }>(
            orchestrator,
            "the other process reported its agents"
          )
          assert.deepStrictEqual(descriptors.map((d) => d.backend), [id, id])

          // Reached through the list, from this process, by their descriptors only.
          const file = path.join(stateDir, `copied-${namespace}.txt`)
          fs.writeFileSync(file, "copied\n")
          yield* Effect.scoped(Effect.gen(function*() {
            const runners = yield* registry.reattach(descriptors, { config, stateDir, oneCommandEach: false })
            assert.deepStrictEqual(runners.map(([name]) => name), descriptors.map((d) => String(d.agent)))
            for (const [name, runner] of runners) {
              const marker = yield* runner.exec("sh", ["-c", "printf '%s' \"$TEZT_CLOUD_AGENT\""])
              assert.strictEqual(marker.stdout, `${namespace}/${name}`)
              const remote = yield* runner.copy(file, { destination: "copied.txt" })
              assert.strictEqual((yield* runner.exec("cat", [remote])).stdout, "copied\n")
            }
          })).pipe(
            Effect.provide(Ledger.Ledger.layer(stateDir, namespace)),
            Effect.provide(RunEvents.RunEvents.layerNoop)
          )

          const found = yield* (yield* backend).leftovers({ stateDir, config })
          assert.isNotEmpty(found, "the live run's agents are seen")
          process.kill(orchestrator.pid, "SIGKILL")
          yield* eventually("the other process is dead", Effect.sync(() => !running(orchestrator.pid)))

          const ledger = Ledger.Ledger.layer(stateDir, namespace)
          const cleaned = yield* registry.cleanUp(stateDir, config).pipe(Effect.provide(ledger))
          assert.deepStrictEqual(cleaned.failed.map((f) => `${f.backend}: ${f.error.message}`), [])
          assert.deepStrictEqual(yield* (yield* backend).leftovers({ stateDir, config }), [], "nothing is left")
          const kinds = (yield* backend).kinds
          const outstanding = yield* Effect.flatMap(Effect.service(Ledger.Ledger), (l) => l.outstanding).pipe(
            Effect.provide(ledger)
          )
          assert.deepStrictEqual(outstanding.filter((r) => kinds.includes(r.kind)), [], "no record is left")
        }).pipe(Effect.scoped, Effect.provide(NodeServices.layer)),
      harness.timeout * 3
    )
  })
}
