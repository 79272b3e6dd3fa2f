import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schedule } from "effect"
import {
  type Agent,
  type AgentConfig,
  Cloud,
  CloudConfig,
  CloudError,
  Deployment,
  Faketime,
  Orchestrator,
  Scenario,
  TestCloud
} from "../src/index.ts"

/** Deploys agents called `names` on a `TestCloud` layer in the current scope; the recorder is returned too. */
const deploy = (
  names: ReadonlyArray<string>,
  options: TestCloud.Options = {},
  input: CloudConfig.Input = { vm_base_port: 40000, ports_per_vm: 10 }
) =>
  Effect.gen(function*() {
    const config = yield* TestCloud.config(input)
    const recorder: TestCloud.Recorder = { calls: [], teardown: [] }
    const context = yield* Layer.build(
      TestCloud.layerDeployment(options, recorder).pipe(Layer.provide(Layer.succeed(CloudConfig.CurrentConfig, config)))
    )
    const scenario = Scenario.make({ title: "t", tags: [], vms: names.map((name) => ({ name })), run: Effect.void })
    const configs = yield* Orchestrator.agentConfigs(scenario, config)
    const agents = yield* Context.get(context, Deployment.Deployment).deploy(configs)
    return { agents: agents as ReadonlyArray<Agent.Agent>, recorder, config }
  })

const reasonOf = <A>(exit: Exit.Exit<A, CloudError.CloudError>): CloudError.Reason | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons[0]
  return reason?._tag === "Fail" ? reason.error.reason : undefined
}

describe("TestCloud", () => {
  describe("exec", () => {
    it.effect("answers from canned responses; an agent-specific one wins over the general one", () =>
      Effect.gen(function*() {
        const { agents } = yield* deploy(["a0", "a1"], {
          responses: {
            "octez-node --version": "v21.0\n",
            "a1: octez-node --version": "v22.0\n",
            "octez-client list": { exitCode: 3, stdout: "partial\n", stderr: "no wallet\n" },
            "octez-client config": { stderr: "warning\n" }
          }
        })
        const [a0, a1] = agents as [Agent.Agent, Agent.Agent]
        assert.deepInclude(yield* a0.exec("octez-node", ["--version"]), { exitCode: 0, stdout: "v21.0\n", stderr: "" })
        assert.strictEqual(yield* a1.run("octez-node", ["--version"]), "v22.0\n")
        assert.deepInclude(yield* a0.exec("octez-client", ["list"]), {
          exitCode: 3,
          stdout: "partial\n",
          stderr: "no wallet\n"
        })
        assert.deepInclude(yield* a0.exec("octez-client", ["config"]), { exitCode: 0, stdout: "", stderr: "warning\n" })
      }))

    it.effect("arguments may be left out; anything but an array of strings is refused with the fix", () =>
      Effect.gen(function*() {
        const { agents, recorder } = yield* deploy(["a"], { responses: { "true": "" } })
        const agent = agents[0]!
        assert.strictEqual(yield* agent.run("true"), "")
        assert.strictEqual((yield* agent.exec("true")).exitCode, 0)
        // A scenario in plain JavaScript (or cast) may give one string.
        const loose = agent as unknown as {
          run(command: string, args: unknown): Effect.Effect<string, CloudError.CloudError>
        }
        const error = yield* loose.run("ls", "-l").pipe(Effect.flip)
        assert.strictEqual(error.reason._tag, "CommandFailed")
        assert.strictEqual(
          error.message,
          `agent a: ls: the arguments of exec must be an array of strings, not "-l": give ["-l"]`
        )
        assert.deepStrictEqual(recorder.calls.map((c) => c.command), ["true", "true"])
      }))

    it.effect("echo answers like echo when nothing is canned", () =>
      Effect.gen(function*() {
        const { agents } = yield* deploy(["a"], { responses: { "echo canned": "overridden\n" } })
        const agent = agents[0]!
        assert.strictEqual(yield* agent.run("echo", ["Hello", "world"]), "Hello world\n")
        assert.strictEqual(yield* agent.run("echo", []), "\n")
        assert.strictEqual(yield* agent.run("echo", ["canned"]), "overridden\n")
      }))

    it.effect("an unknown command exits 127, like a shell; run turns it into NonZeroExit", () =>
      Effect.gen(function*() {
        const { agents } = yield* deploy(["a"])
        const agent = agents[0]!
        const result = yield* agent.exec("octez-baker", ["run"])
        assert.strictEqual(result.exitCode, 127)
        assert.strictEqual(result.stdout, "")
        assert.include(result.stderr, "octez-baker run")
        const error = yield* agent.run("octez-baker", ["run"]).pipe(Effect.flip)
        assert.strictEqual(error.reason._tag, "NonZeroExit")
        if (error.reason._tag === "NonZeroExit") assert.strictEqual(error.reason.exitCode, 127)
      }))

    it.effect("hands canned stdout to onLine line by line, and gives every call its own pid", () =>
      Effect.gen(function*() {
        const { agents } = yield* deploy(["a"], { responses: { "ls": "one\ntwo\n\nthree" } })
        const lines: Array<string> = []
        const first = yield* agents[0]!.exec("ls", [], {
          onLine: ({ line, stream }) => Effect.sync(() => void lines.push(`${stream}:${line}`))
        })
        assert.deepStrictEqual(lines, ["stdout:one", "stdout:two", "stdout:three"])
        const second = yield* agents[0]!.exec("ls", [])
        assert.isAbove(first.pid, 0)
        assert.notStrictEqual(first.pid, second.pid)
      }))
  })

  it.effect("records every call with its agent, in order", () =>
    Effect.gen(function*() {
      const { agents, recorder } = yield* deploy(["a0", "a1"])
      const [a0, a1] = agents as [Agent.Agent, Agent.Agent]
      yield* a0.exec("echo", ["hi"])
      const copied = yield* a1.copy("/build/octez-node")
      const placed = yield* a1.copy("/build/config.json", { destination: "/etc/octez/config.json" })
      yield* Effect.scoped(a0.spawn("node", "octez-node", ["run", "--rpc-addr", "0.0.0.0:40001"]))
      assert.strictEqual(copied, "/tmp/tezt-runners/octez-node")
      assert.strictEqual(placed, "/etc/octez/config.json")
      assert.deepStrictEqual(recorder.calls, [
        { agent: "a0", kind: "exec", command: "echo hi" },
        { agent: "a1", kind: "copy", command: "/build/octez-node" },
        { agent: "a1", kind: "copy", command: "/build/config.json" },
        { agent: "a0", kind: "spawn", command: "octez-node run --rpc-addr 0.0.0.0:40001" },
        { agent: "a0", kind: "stop", command: "node" }
      ])
    }))

  it.effect("a daemon runs until stopped or until its scope closes, and is stopped once", () =>
    Effect.gen(function*() {
      const { agents, recorder } = yield* deploy(["a"])
      const agent = agents[0]!
      const node = yield* Effect.scoped(Effect.gen(function*() {
        const daemon = yield* agent.spawn("node", "octez-node", ["run"])
        assert.isTrue(yield* daemon.isRunning)
        assert.strictEqual(daemon.agent, "a")
        return daemon
      }))
      assert.isFalse(yield* node.isRunning)
      const dal = yield* Effect.scoped(Effect.gen(function*() {
        const daemon = yield* agent.spawn("dal", "octez-dal-node", [])
        yield* daemon.stop
        yield* daemon.stop
        assert.isFalse(yield* daemon.isRunning)
        return daemon
      }))
      assert.notStrictEqual(node.pid, dal.pid)
      assert.deepStrictEqual(recorder.calls.filter((c) => c.kind === "stop").map((c) => c.command), ["node", "dal"])
    }))

  it.effect("tears agents down in reverse order of deployment", () =>
    Effect.gen(function*() {
      const deployed = yield* Effect.scoped(
        deploy(["a0", "a1", "a2"]).pipe(
          Effect.tap((d) => Effect.sync(() => assert.deepStrictEqual(d.recorder.teardown, [])))
        )
      )
      assert.deepStrictEqual(deployed.recorder.teardown, ["a2", "a1", "a0"])
    }))

  it.effect("allocates ports like localhost: agent i from base + i * ports_per_vm", () =>
    Effect.gen(function*() {
      const { agents, config } = yield* deploy(["a0", "a1", "a2"])
      agents.forEach((agent, i) => {
        assert.strictEqual(agent.index, i)
        assert.deepStrictEqual(agent.ports, { start: 40000 + i * 10, end: 40009 + i * 10 })
        assert.deepStrictEqual(agent.point, { host: "127.0.0.1", port: 40000 + i * 10 })
      })
      assert.strictEqual(config.portsPerVm, 10)
      const ports: Array<number> = []
      for (let i = 0; i < 9; i++) ports.push(yield* agents[1]!.nextAvailablePort)
      assert.deepStrictEqual(ports, [40011, 40012, 40013, 40014, 40015, 40016, 40017, 40018, 40019])
      const error = yield* agents[1]!.nextAvailablePort.pipe(Effect.flip)
      assert.strictEqual(error.reason._tag, "AgentsInvalid")
      assert.strictEqual(yield* agents[2]!.nextAvailablePort, 40021)
    }))

  describe("run", () => {
    const pingPong = Scenario.make({
      title: "ping pong",
      tags: ["ping"],
      vms: [{ name: "ping" }, { name: "pong" }],
      run: Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        const ping = yield* cloud.agent("ping")
        const pong = yield* cloud.agent("pong")
        const binary = yield* ping.copy("./_build/octez-node")
        yield* ping.spawn("node", binary, ["run"])
        const answer = yield* pong.run("curl", [`http://ping:${ping.ports.start + 1}/version`])
        yield* Effect.logInfo(`pong got ${answer.trim()}`)
      })
    })

    it.effect("runs a scenario and returns its calls, teardown and logs", () =>
      Effect.gen(function*() {
        const result = yield* TestCloud.run(pingPong, {
          responses: { "pong: curl http://ping:30001/version": "21.0\n" }
        })
        assert.deepStrictEqual(result.calls, [
          { agent: "ping", kind: "copy", command: "./_build/octez-node" },
          { agent: "ping", kind: "spawn", command: "/tmp/tezt-runners/octez-node run" },
          { agent: "pong", kind: "exec", command: "curl http://ping:30001/version" },
          { agent: "ping", kind: "stop", command: "node" }
        ])
        assert.deepStrictEqual(result.teardown, ["pong", "ping"])
        assert.include(result.logs, "pong got 21.0")
        assert.include(result.logs, "Scenario ended successfully.")
      }))

    it.effect("fails like a real run, with ScenarioFailed, when the scenario fails", () =>
      Effect.gen(function*() {
        const exit = yield* TestCloud.run(pingPong).pipe(Effect.exit)
        const reason = reasonOf(exit)
        assert.strictEqual(reason?._tag, "ScenarioFailed")
        if (reason?._tag === "ScenarioFailed") {
          assert.strictEqual(reason.title, "ping pong")
          assert.include(reason.message, "exited with code 127")
        }
      }))

    it.effect("setFaketime where the agent has no libfaketime fails naming the package; a bad spec is refused", () =>
      Effect.gen(function*() {
        const { agents, recorder } = yield* deploy(["a"])
        const missing = yield* Effect.flip(agents[0]!.setFaketime("-1d"))
        assert.include(missing.message, "libfaketime is not installed on the agent")
        assert.include(missing.message, "install the Debian package libfaketime")
        yield* agents[0]!.run("echo", ["hi"])
        assert.deepStrictEqual(recorder.calls.at(-1), { agent: "a", kind: "exec", command: "echo hi" })
        const library = { [`/bin/sh -c ${Faketime.probe}`]: "/usr/lib/faketime/libfaketime.so.1\n" }
        const found = yield* deploy(["b"], { responses: library })
        const invalid = yield* Effect.flip(found.agents[0]!.setFaketime("yesterday"))
        assert.include(invalid.message, "not a libfaketime spec")
        yield* found.agents[0]!.setFaketime("-1d")
        assert.strictEqual(yield* found.agents[0]!.run("echo", ["skewed"]), "skewed\n")
      }))

    it.effect("a scenario without vms deploys nothing and sees no agents", () =>
      Effect.gen(function*() {
        let seen = -1
        const result = yield* TestCloud.run(Scenario.make({
          title: "maintenance",
          tags: [],
          run: Effect.gen(function*() {
            seen = (yield* Cloud.Cloud).agents.length
          })
        }))
        assert.strictEqual(seen, 0)
        assert.deepStrictEqual(result.calls, [])
        assert.deepStrictEqual(result.teardown, [])
      }))
  })

  describe("as an Effect test would have it", () => {
    // A scenario that waits for its server: it retries every second until the health check answers.
    const waits = Scenario.make({
      title: "waits for its server",
      tags: [],
      vms: [{ name: "server" }, { name: "client" }],
      run: Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        const server = yield* cloud.agent("server")
        const client = yield* cloud.agent("client")
        yield* server.spawn("http", "octez-node", ["run"])
        const version = yield* client.run("curl", ["-s", "http://server/version"]).pipe(
          Effect.retry({ schedule: Schedule.spaced("1 second"), times: 30 })
        )
        yield* Effect.sleep("1 minute")
        yield* cloud.pushMetric({ name: "pings_total", value: 1, type: "counter" })
        yield* cloud.pushMetric({ name: "pings_total", value: 2, type: "counter" })
        yield* Effect.logInfo(`version ${version.trim()}`)
      })
    })

    /** The health check answers from its 5th try on. */
    const healthy = () => {
      let tries = 0
      return [
        { agent: "client", command: "curl", response: () => (++tries < 5 ? { exitCode: 7 } : "v22\n") }
      ] satisfies ReadonlyArray<TestCloud.Canned>
    }

    it.effect("run: retries and sleeps take virtual time; metrics and events are in the result", () =>
      Effect.gen(function*() {
        const result = yield* TestCloud.run(waits, { responses: healthy() })
        assert.strictEqual(result.elapsedMillis, 4_000 + 60_000)
        assert.deepStrictEqual(result.calls.filter((c) => c.command.startsWith("curl")).length, 5)
        assert.deepStrictEqual(result.metrics, [{ name: "pings_total", value: 2, type: "counter" }])
        assert.include(result.logs, "version v22")
        assert.deepInclude(result.events.map((e) => e.type), "run-end")
      }))

    it.effect("layer: Cloud for scenario.run, with its Recording", () =>
      Effect.gen(function*() {
        yield* waits.run
        const recording = yield* TestCloud.Recording
        assert.deepStrictEqual(recording.calls[0], { agent: "server", kind: "spawn", command: "octez-node run" })
        assert.strictEqual(recording.calls.length, 6)
        assert.deepStrictEqual(yield* recording.metrics, [{ name: "pings_total", value: 2, type: "counter" }])
        assert.strictEqual(yield* recording.elapsedMillis, 64_000)
        assert.include(recording.logs, "version v22")
      }).pipe(Effect.provide(TestCloud.layer({ scenario: waits, responses: healthy() }))))

    it.effect("notify is a line of the run's logs; addAlert checks the alert, then ignores it", () =>
      Effect.gen(function*() {
        const scenario = Scenario.make({
          title: "reports",
          tags: [],
          vms: [],
          run: Effect.gen(function*() {
            const cloud = yield* Cloud.Cloud
            yield* cloud.notify("round 1 done")
            yield* cloud.addAlert({ name: "Fine", expr: "up == 0", for: "1m" })
            const error = yield* Effect.flip(cloud.addAlert({ name: "not fine", expr: "up" }))
            assert.strictEqual(error.reason._tag, "ConfigInvalid")
          })
        })
        const result = yield* TestCloud.run(scenario)
        assert.include(result.logs, "notification: round 1 done")
      }))

    it.effect("canned responses by agent and argv, first match first, then the fallback", () =>
      Effect.gen(function*() {
        const cloud = yield* Cloud.Cloud
        const [a, b] = cloud.agents as [Agent.Agent, Agent.Agent]
        assert.strictEqual(yield* a.run("octez-client", ["list", "known", "addresses"]), "bootstrap1\n")
        assert.strictEqual(yield* b.run("octez-client", ["list", "known", "addresses"]), "none\n")
        assert.strictEqual(yield* b.run("octez-client", ["--version"]), "any octez-client\n")
        assert.strictEqual(yield* a.run("uname", ["-a"]), "fallback: a uname -a\n")
      }).pipe(Effect.provide(TestCloud.layer({
        vms: [{ name: "a" }, { name: "b" }],
        responses: [
          { agent: "a", command: "octez-client", args: ["list", "known", "addresses"], response: "bootstrap1\n" },
          { command: "octez-client", args: ["list", "known", "addresses"], response: "none\n" },
          { command: "octez-client", response: "any octez-client\n" }
        ],
        fallback: (call) => `fallback: ${call.agent} ${call.command} ${call.args.join(" ")}\n`
      }))))
  })

  describe("agent validation, before anything is deployed", () => {
    /** A scenario that notes whether its body ran. */
    const probe = (vms: (config: CloudConfig.CloudConfig) => ReadonlyArray<AgentConfig.AgentRequest>) => {
      const state = { ran: false }
      const scenario = Scenario.make({
        title: "probe",
        tags: [],
        vms,
        run: Effect.sync(() => {
          state.ran = true
        })
      })
      return { scenario, state }
    }

    it.effect("two agents with the same name are AgentsInvalid", () =>
      Effect.gen(function*() {
        const { scenario, state } = probe(() => [{ name: "node" }, { name: "baker" }, { name: "node" }])
        const config = yield* TestCloud.config()
        const direct = reasonOf(yield* Orchestrator.agentConfigs(scenario, config).pipe(Effect.exit))
        assert.strictEqual(direct?._tag, "AgentsInvalid")
        assert.include(direct?._tag === "AgentsInvalid" ? direct.message : "", "node")
        const run = reasonOf(yield* TestCloud.run(scenario).pipe(Effect.exit))
        assert.strictEqual(run?._tag, "AgentsInvalid")
        assert.isFalse(state.ran)
      }))

    it.effect("an unnamed agent clashing with a default name is a duplicate too", () =>
      Effect.gen(function*() {
        const { scenario } = probe(() => [{}, { name: "agent-000" }])
        const reason = reasonOf(yield* Orchestrator.agentConfigs(scenario, yield* TestCloud.config()).pipe(Effect.exit))
        assert.strictEqual(reason?._tag, "AgentsInvalid")
      }))

    it.effect("--vms-limit lower than the agents asked for is ConfigInvalid; equal is fine", () =>
      Effect.gen(function*() {
        const { scenario, state } = probe(() => [{}, {}, {}])
        const config = yield* TestCloud.config({ vms_limit: 2 })
        const direct = reasonOf(yield* Orchestrator.agentConfigs(scenario, config).pipe(Effect.exit))
        assert.strictEqual(direct?._tag, "ConfigInvalid")
        if (direct?._tag === "ConfigInvalid") {
          assert.strictEqual(direct.option, "--vms-limit")
          assert.include(direct.message, "more than --vms-limit 2")
          assert.include(direct.message, "asks for 3 agents")
        }
        const run = reasonOf(yield* TestCloud.run(scenario, { config: { vms_limit: 2 } }).pipe(Effect.exit))
        assert.strictEqual(run?._tag, "ConfigInvalid")
        assert.isFalse(state.ran)

        const fits = yield* TestCloud.run(scenario, { config: { vms_limit: 3 } })
        assert.deepStrictEqual(fits.teardown, ["agent-002", "agent-001", "agent-000"])
        assert.isTrue(state.ran)
      }))

    it.effect("a scenario may size itself from --vms-limit", () =>
      Effect.gen(function*() {
        const { scenario } = probe((config) => Array.from({ length: config.vmsLimit ?? 4 }, () => ({})))
        assert.lengthOf(yield* Orchestrator.agentConfigs(scenario, yield* TestCloud.config({ vms_limit: 1 })), 1)
        assert.lengthOf(yield* Orchestrator.agentConfigs(scenario, yield* TestCloud.config()), 4)
      }))

    it.effect("port ranges past 65535 are ConfigInvalid", () =>
      Effect.gen(function*() {
        const { scenario, state } = probe(() => [{}, {}])
        const reason = reasonOf(
          yield* TestCloud.run(scenario, { config: { vm_base_port: 65000, ports_per_vm: 500 } }).pipe(Effect.exit)
        )
        assert.strictEqual(reason?._tag, "ConfigInvalid")
        assert.isFalse(state.ran)
      }))
  })
})
