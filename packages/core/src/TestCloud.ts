/**
 * An in-memory backend for scenario authors: agents whose commands answer from canned outputs and record every
 * call, daemons that "run" until their scope closes, copies that only record. A scenario's hermetic test runs on
 * it in milliseconds (`TestCloud.run`); real backends are tested against real processes, hosts and engines.
 */
import { Effect, Layer, Logger } from "effect"
import * as Agent from "./Agent.ts"
import type { AgentConfig } from "./AgentConfig.ts"
import * as CloudConfig from "./CloudConfig.ts"
import type * as CloudError from "./CloudError.ts"
import { Deployment } from "./Deployment.ts"
import * as Orchestrator from "./Orchestrator.ts"
import { logger, RunEvents, type Stamped } from "./RunEvents.ts"
import type { ExecResult, Runner } from "./Runner.ts"
import type { Scenario } from "./Scenario.ts"

/** One recorded call on an agent. */
export interface Call {
  readonly agent: string
  readonly kind: "exec" | "spawn" | "copy" | "stop"
  readonly command: string
}

/** A canned answer: stdout text, or a partial result. */
export type Response = string | { readonly exitCode?: number; readonly stdout?: string; readonly stderr?: string }

export interface Options {
  /** Answers keyed by `"<command> <args…>"` (or `"<agent>: <command> <args…>"` for one agent). */
  readonly responses?: Record<string, Response> | undefined
}

/** The recorder a `TestCloud` layer writes to. */
export interface Recorder {
  readonly calls: Array<Call>
  readonly teardown: Array<string>
}

/**
 * Answers in order of preference: the agent-specific response, the general one, `echo`'s own behaviour, and
 * otherwise exit code 127 ("not found"), like a shell.
 */
const answer = (responses: Record<string, Response>, agent: string, line: string, args: ReadonlyArray<string>) => {
  const canned = responses[`${agent}: ${line}`] ?? responses[line]
  if (canned !== undefined) {
    return typeof canned === "string"
      ? { exitCode: 0, stdout: canned, stderr: "" }
      : { exitCode: canned.exitCode ?? 0, stdout: canned.stdout ?? "", stderr: canned.stderr ?? "" }
  }
  if (line.startsWith("echo ") || line === "echo") return { exitCode: 0, stdout: `${args.join(" ")}\n`, stderr: "" }
  return { exitCode: 127, stdout: "", stderr: `TestCloud: no canned response for "${line}"\n` }
}

/** A `Deployment` of in-memory agents; `recorder` receives every call and teardown. */
export const layer = (options: Options = {}, recorder: Recorder = { calls: [], teardown: [] }) =>
  Layer.effect(
    Deployment,
    Effect.gen(function*() {
      const config = yield* CloudConfig.CurrentConfig
      const responses = options.responses ?? {}
      let nextPid = 1000
      const runnerFor = (agent: string): Runner => ({
        exec: (command, args, execOptions) =>
          Effect.gen(function*() {
            const line = [command, ...args].join(" ")
            recorder.calls.push({ agent, kind: "exec", command: line })
            const result = answer(responses, agent, line, args)
            for (const text of result.stdout.split("\n").filter((l) => l !== "")) {
              if (execOptions?.onLine) yield* execOptions.onLine({ stream: "stdout", line: text })
            }
            return { ...result, pid: nextPid++ } satisfies ExecResult
          }),
        spawn: (name, command, args) =>
          Effect.gen(function*() {
            recorder.calls.push({ agent, kind: "spawn", command: [command, ...args].join(" ") })
            let running = true
            const stop = Effect.sync(() => {
              if (running) recorder.calls.push({ agent, kind: "stop", command: name })
              running = false
            })
            yield* Effect.addFinalizer(() => stop)
            return {
              name,
              agent,
              pid: nextPid++,
              logFile: `/logs/${name}.log`,
              isRunning: Effect.sync(() => running),
              stop
            }
          }),
        copy: (source, copyOptions) =>
          Effect.sync(() => {
            recorder.calls.push({ agent, kind: "copy", command: source })
            return copyOptions?.destination ?? `/tmp/tezt-runners/${source.split("/").at(-1)}`
          })
      })
      return Deployment.of({
        backend: "test",
        deploy: (configs: ReadonlyArray<AgentConfig>) =>
          Effect.forEach(configs, (agentConfig, index) => {
            const start = config.vmBasePort + index * config.portsPerVm
            return Effect.acquireRelease(
              Effect.succeed(Agent.make({
                index,
                config: agentConfig,
                point: { host: "127.0.0.1", port: start },
                ports: { start, end: start + config.portsPerVm - 1 },
                artifactsDir: `/artifacts/${agentConfig.name}`,
                connect: `test-cloud ${agentConfig.name}`,
                runner: runnerFor(agentConfig.name)
              })),
              (agent) => Effect.sync(() => void recorder.teardown.push(agent.name))
            )
          })
      })
    })
  )

/** A resolved configuration for tests: localhost mode, namespace `test`, plus `input` (config-file keys). */
export const config = (input: CloudConfig.Input = {}): Effect.Effect<CloudConfig.CloudConfig, CloudError.CloudError> =>
  CloudConfig.resolve({ tezt_cloud: "test", localhost: true, ...input }, {}, {})

/**
 * Runs a scenario on `TestCloud` and returns what it did. Fails like the real run would (a `CloudError` whose
 * reason is `ScenarioFailed`, `AgentsInvalid`, …).
 */
export const run = (scenario: Scenario, options: Options & { readonly config?: CloudConfig.Input | undefined } = {}) =>
  Effect.gen(function*() {
    const resolved = yield* config(options.config)
    const recorder: Recorder = { calls: [], teardown: [] }
    const logs: Array<string> = []
    const sink = (event: Stamped) => {
      if (event.type === "log") logs.push(event.message)
    }
    const configs = yield* Orchestrator.agentConfigs(scenario, resolved)
    yield* Orchestrator.run(scenario, resolved, configs).pipe(
      Effect.provide(layer(options, recorder)),
      Effect.provideService(CloudConfig.CurrentConfig, resolved),
      Effect.provide(Layer.mergeAll(RunEvents.layer([sink]), Logger.layer([logger(sink)])))
    )
    return { ...recorder, logs }
  })
