import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, type Scope } from "effect"
import {
  Agent,
  Cloud,
  CloudConfig,
  CloudError,
  Deployment,
  Orchestrator,
  RunEvents,
  Scenario,
  Teardown,
  TestCloud
} from "../src/index.ts"

/**
 * A deployment whose agents log their teardown into `log`; `failing` agents' teardown fails, so we can see that
 * a failed step never blocks the next one.
 */
const recordingDeployment = (log: Array<string>, failing: ReadonlySet<string> = new Set()) =>
  Layer.succeed(
    Deployment.Deployment,
    Deployment.Deployment.of({
      backend: "recording",
      deploy: (configs) =>
        Effect.forEach(configs, (config, index) =>
          Teardown.acquireRelease(
            `agent ${config.name}`,
            Effect.sync(() => {
              log.push(`up ${config.name}`)
              return Agent.make({
                index,
                config,
                point: undefined,
                ports: { start: 30000 + index * 50, end: 30049 + index * 50 },
                artifactsDir: "/nowhere",
                connect: "",
                runner: {
                  exec: () => Effect.succeed({ exitCode: 0, stdout: "", stderr: "", pid: 1 }),
                  spawn: (name) =>
                    Effect.acquireRelease(
                      Effect.succeed({
                        name,
                        agent: config.name,
                        pid: 1,
                        logFile: "",
                        isRunning: Effect.succeed(true),
                        stop: Effect.void
                      }),
                      () => Effect.sync(() => void log.push(`stop ${config.name}/${name}`))
                    ),
                  copy: (source) => Effect.succeed(source)
                }
              })
            }),
            (agent) =>
              failing.has(agent.name)
                ? Effect.fail(new Error(`cannot destroy ${agent.name}`))
                : Effect.sync(() => void log.push(`down ${agent.name}`))
          ))
    })
  )

const runWith = (
  scenario: Scenario.Scenario,
  log: Array<string>,
  options: { failing?: ReadonlySet<string>; input?: CloudConfig.Input } = {}
) =>
  Effect.gen(function*() {
    const config = yield* TestCloud.config(options.input)
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    const events: Array<RunEvents.Stamped> = []
    const exit = yield* Orchestrator.run(scenario, config, configs).pipe(
      Effect.provide(recordingDeployment(log, options.failing)),
      Effect.provide(RunEvents.RunEvents.layer([(e) => void events.push(e)])),
      Effect.provideService(Orchestrator.WaitForEnter, Effect.sync(() => void log.push("enter"))),
      Effect.exit
    )
    return { exit, events }
  })

const threeAgents = (run: Effect.Effect<void, unknown, Cloud.Cloud | Scope.Scope>) =>
  Scenario.make({ title: "t", tags: [], vms: [{}, {}, {}], run })

describe("Orchestrator", () => {
  it.effect("tears down in reverse order: the scenario's daemons first, then agents last-deployed first", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const scenario = threeAgents(Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        for (const agent of cloud.agents) yield* agent.spawn("node", "octez-node", [])
      }))
      const { events, exit } = yield* runWith(scenario, log)
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(log, [
        "up agent-000",
        "up agent-001",
        "up agent-002",
        "stop agent-002/node",
        "stop agent-001/node",
        "stop agent-000/node",
        "down agent-002",
        "down agent-001",
        "down agent-000"
      ])
      const types = events.map((e) => e.type)
      assert.isBelow(types.indexOf("run-end"), types.indexOf("teardown-start"))
      assert.deepStrictEqual(events.find((e) => e.type === "run-end"), {
        type: "run-end",
        ok: true,
        message: "Scenario ended successfully.",
        at: events.find((e) => e.type === "run-end")!.at
      })
    }))

  it.effect("a failing teardown step is reported and does not block the others", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const { events, exit } = yield* runWith(threeAgents(Effect.void), log, { failing: new Set(["agent-001"]) })
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(log.filter((l) => l.startsWith("down")), ["down agent-002", "down agent-000"])
      const failed = events.filter((e) => e.type === "teardown-failed")
      assert.strictEqual(failed.length, 1)
      assert.deepInclude(failed[0], { step: "agent agent-001", message: "cannot destroy agent-001" })
    }))

  it.effect("a failing scenario is reported, still torn down, and the run fails with ScenarioFailed", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const { events, exit } = yield* runWith(threeAgents(Effect.fail(new Error("boom"))), log)
      assert.deepStrictEqual(log.filter((l) => l.startsWith("down")).length, 3)
      const end = events.find((e) => e.type === "run-end")
      // The error was made on this file's line: the scenario's own code, named in the message.
      assert.deepInclude(end, { ok: false })
      assert.match(
        end?.type === "run-end" ? end.message : "",
        /^Scenario terminated unexpectedly: boom \(at .*\/Orchestrator\.test\.ts:130:\d+\)$/
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause.reasons[0]
        assert.strictEqual(error?._tag, "Fail")
        if (error?._tag === "Fail") {
          assert.instanceOf(error.error, CloudError.CloudError)
          assert.strictEqual((error.error as CloudError.CloudError).reason._tag, "ScenarioFailed")
        }
      }
    }))

  it.effect("--keep-alive waits for Enter after the scenario and before the teardown, on success and failure", () =>
    Effect.gen(function*() {
      for (const end of [Effect.void, Effect.fail(new Error("boom"))]) {
        const log: Array<string> = []
        // The scenario's daemons still run at the prompt: inspecting them is what keep-alive is for.
        const run = Effect.gen(function*() {
          const cloud = yield* Cloud.Cloud
          yield* cloud.agents[0]!.spawn("node", "octez-node", [])
          yield* end
        })
        yield* runWith(threeAgents(run), log, { input: { keep_alive: true } })
        assert.deepStrictEqual(log.slice(3), [
          "enter",
          "stop agent-000/node",
          "down agent-002",
          "down agent-001",
          "down agent-000"
        ])
      }
    }))

  it.effect("an interruption at the --keep-alive prompt ends the wait and tears everything down", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const config = yield* TestCloud.config({ keep_alive: true })
      const scenario = threeAgents(Effect.void)
      const waiting = yield* Deferred.make<void>()
      const fiber = yield* Orchestrator.run(scenario, config, yield* Orchestrator.agentConfigs(scenario, config)).pipe(
        Effect.provide(recordingDeployment(log)),
        Effect.provide(RunEvents.RunEvents.layerNoop),
        Effect.provideService(
          Orchestrator.WaitForEnter,
          Deferred.succeed(waiting, undefined).pipe(Effect.andThen(Effect.never))
        ),
        Effect.forkChild
      )
      yield* Deferred.await(waiting)
      yield* Fiber.interrupt(fiber)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.deepStrictEqual(log.slice(3), ["down agent-002", "down agent-001", "down agent-000"])
    }))

  it.effect("more agents than --vms-limit: one line saying how many, and the value that fits", () =>
    Effect.gen(function*() {
      const config = yield* TestCloud.config({ vms_limit: 2 })
      const scenario = Scenario.make({ title: "t", tags: [], vms: [{}, {}, {}], run: Effect.void })
      const error = yield* Orchestrator.agentConfigs(scenario, config).pipe(Effect.flip)
      assert.strictEqual(
        error.message,
        "--vms-limit: the scenario asks for 3 agents, more than --vms-limit 2 allows: give --vms-limit 3 or more, or leave it out"
      )
    }))

  it.effect("without --keep-alive it does not wait", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      yield* runWith(threeAgents(Effect.void), log)
      assert.notInclude(log, "enter")
    }))

  it.effect("interrupting the run tears everything down", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const { events, exit } = yield* runWith(threeAgents(Effect.interrupt), log)
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(log.filter((l) => l.startsWith("down")).length, 3)
      assert.deepInclude(events.find((e) => e.type === "run-end"), {
        message: "Scenario terminated unexpectedly: interrupted"
      })
    }))

  describe("port ranges of many agents", () => {
    const many = (n: number) =>
      Scenario.make({ title: "many", tags: [], vms: () => Array.from({ length: n }, () => ({})), run: Effect.void })
    const refusal = (n: number, input: CloudConfig.Input) =>
      Effect.gen(function*() {
        const config = yield* TestCloud.config(input)
        return (yield* Effect.flip(Orchestrator.agentConfigs(many(n), config))).message
      })

    it.effect("1000 agents fit with a small enough --ports-per-vm", () =>
      Effect.gen(function*() {
        const config = yield* TestCloud.config({ vm_base_port: 20000, ports_per_vm: 30 })
        assert.strictEqual((yield* Orchestrator.agentConfigs(many(1000), config)).length, 1000)
      }))

    it.effect("too many ports: one line naming --ports-per-vm and the value that fits", () =>
      Effect.gen(function*() {
        assert.strictEqual(
          yield* refusal(1000, {}),
          "--ports-per-vm: 1000 agents × 50 ports from 30000 end at 79999 > 65535: give --ports-per-vm 35 or less (or a lower --vm-base-port)"
        )
      }))

    it.effect("when even 2 ports each do not fit, it names --vm-base-port and the base that fits", () =>
      Effect.gen(function*() {
        assert.strictEqual(
          yield* refusal(20000, { vm_base_port: 30000, ports_per_vm: 2 }),
          "--vm-base-port: 20000 agents × 2 ports from 30000 end at 69999 > 65535: give --vm-base-port 25536 or less with --ports-per-vm 2"
        )
      }))
  })
})
