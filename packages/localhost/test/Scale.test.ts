/**
 * Process sandboxes at scale, through the orchestrator: a few hundred agents deployed, one
 * command on all of them at once, every result checked, the orchestrator's open file descriptors bounded by the
 * command limit rather than by the number of agents, and nothing left after the teardown. Times are measured in
 * bench/scale.ts, never asserted here.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  AgentConfig,
  Cloud,
  Deployment,
  Ledger,
  Limits,
  Orchestrator,
  RunEvents,
  Scenario,
  TestCloud
} from "@tezt-cloud/core"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Localhost } from "../src/index.ts"
import * as ProcessTree from "../src/internal/processTree.ts"

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "localhost-scale-"))
const namespace = `ls-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

afterAll(() => {
  Localhost.forceKillSync(namespace)
  fs.rmSync(stateDir, { recursive: true, force: true })
})

const openFds = () => fs.readdirSync("/proc/self/fd").length

/** Runs `true`-like commands on `agents` agents at once with at most `commands` running; what it saw. */
const fanOut = (agents: number, commands: number) =>
  Effect.gen(function*() {
    const config = yield* TestCloud.config({ tezt_cloud: namespace, vm_base_port: 20000, ports_per_vm: 30 })
    const outputs: Array<{ readonly agent: string; readonly exitCode: number; readonly stdout: string }> = []
    const events: Array<RunEvents.Stamped> = []
    let baseline = 0
    let peak = 0
    const sample = () => {
      peak = Math.max(peak, openFds())
    }
    const scenario = Scenario.make({
      title: "scale",
      tags: [],
      vms: Array.from({ length: agents }, (_, i) => ({ name: `s${i}` })),
      run: Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        baseline = openFds()
        const results = yield* Effect.forEach(
          cloud.agents,
          (agent) =>
            agent.exec("sh", ["-c", "echo \"$TEZT_CLOUD_AGENT\""], {
              // Sampled while each command's pipes are open (its output is arriving).
              onLine: () => Effect.sync(sample)
            }).pipe(Effect.map((r) => ({ agent: agent.name, exitCode: r.exitCode, stdout: r.stdout }))),
          { concurrency: "unbounded" }
        )
        outputs.push(...results)
      })
    })
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    const layer = Localhost.layer({
      stateDir,
      config,
      artifactsDir: path.join(stateDir, "artifacts"),
      killGrace: "1 second"
    }).pipe(Layer.provideMerge(Layer.mergeAll(
      Ledger.Ledger.layer(stateDir, namespace),
      RunEvents.RunEvents.layer([(e) => void events.push(e)]),
      NodeServices.layer
    )))
    yield* Orchestrator.run(scenario, config, configs).pipe(
      Effect.provide(layer),
      Effect.provideService(Limits.Limits, { ...Limits.defaults, commands })
    )
    const outstanding = yield* Effect.gen(function*() {
      return yield* (yield* Ledger.Ledger).outstanding
    }).pipe(Effect.provide(Ledger.Ledger.layer(stateDir, namespace)))
    return { outputs, events, baseline, peak, outstanding }
  })

describe("Localhost at scale", () => {
  it.live(
    "300 agents: a command on all at once, every result right, fds bounded by the command limit, nothing left",
    () =>
      Effect.gen(function*() {
        const agents = 300
        const commands = 16
        const { outputs, events, baseline, peak, outstanding } = yield* fanOut(agents, commands)

        assert.strictEqual(outputs.length, agents)
        outputs.forEach((o, i) => {
          assert.strictEqual(o.agent, `s${i}`)
          assert.strictEqual(o.exitCode, 0, o.agent)
          assert.strictEqual(o.stdout, `${namespace}/s${i}\n`)
        })
        assert.strictEqual(events.filter((e) => e.type === "agent-ready").length, agents)
        assert.strictEqual(events.filter((e) => e.type === "agent-down").length, agents)

        // Each running command holds two pipes (stdout, stderr), plus a transient one while it is spawned; 300
        // commands unbounded would hold at least 600.
        assert.isAbove(peak, baseline, "the fds were sampled while commands ran")
        assert.isAtMost(peak - baseline, 3 * commands + 16)

        assert.isFalse(fs.existsSync(Localhost.sandboxesDir(stateDir, namespace)), "no sandbox is left")
        assert.deepStrictEqual(ProcessTree.findMarked("TEZT_CLOUD_NS", namespace), [])
        assert.deepStrictEqual(outstanding, [])
      }),
    180_000
  )

  it.live("exec keeps only the tail of a big output (maxOutputBytes); onLine still gets every line", () =>
    Effect.scoped(Effect.gen(function*() {
      const config = yield* TestCloud.config({ tezt_cloud: `${namespace}-tail`, vm_base_port: 20000 })
      const context = yield* Layer.build(
        Localhost.layer({ stateDir, config, artifactsDir: path.join(stateDir, "artifacts"), maxOutputBytes: 1000 })
          .pipe(Layer.provideMerge(Layer.mergeAll(
            Ledger.Ledger.layer(stateDir, `${namespace}-tail`),
            RunEvents.RunEvents.layerNoop,
            NodeServices.layer
          )))
      )
      const [agent] = yield* Context.get(context, Deployment.Deployment).deploy(
        AgentConfig.complete([{ name: "t" }], Orchestrator.agentDefaults(config))
      )
      let lines = 0
      // 10000 lines of "line N": about 89 kB.
      const result = yield* agent!.exec("sh", [
        "-c",
        "i=0; while [ $i -lt 10000 ]; do echo \"line $i\"; i=$((i+1)); done"
      ], {
        onLine: () => Effect.sync(() => void (lines += 1))
      })
      assert.strictEqual(lines, 10000)
      assert.strictEqual(result.stdout.length, 1000)
      assert.isTrue(result.stdout.endsWith("line 9998\nline 9999\n"))
    })))
})
