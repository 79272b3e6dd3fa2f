/**
 * An in-memory backend for scenario authors: agents whose commands answer from canned outputs and record every
 * call, daemons that "run" until their scope closes, copies that only record, metrics kept in memory, and time
 * that is virtual: a `sleep` or a retry's wait returns at once and moves the clock on. A scenario's hermetic test
 * runs on it in milliseconds; real backends are tested against real processes, hosts and engines.
 *
 * **Details**
 *
 * Two ways to test a scenario. `TestCloud.run(scenario, options)` runs it as the CLI would (validation, deploy,
 * body, teardown) and returns what happened. `TestCloud.layer(options)` provides `Cloud` itself (with the agents
 * of `options.scenario` or `options.vms`), so a test runs `scenario.run` under `it.effect` and reads the
 * `Recording`; swapping that layer for a real backend's runs the same test for real.
 *
 * Canned responses, first match wins: `responses` as a list of `{ agent?, command, args?, response }` (no `agent`:
 * any agent; no `args`: any arguments), or as a record keyed by `"<command> <args…>"` or
 * `"<agent>: <command> <args…>"` (the agent's key first); then `fallback(call)`; then `echo` answers like echo;
 * anything else exits 127 with "no canned response", like a shell that does not know the command.
 *
 * Success criteria (`Cloud.addCriterion`) are judged at the end as in a real run, on what `observed` says they
 * observe (there is no Prometheus): a criterion whose query is a bare selector (`name`, `name{label="value"}`)
 * observes the last pushed values of that metric (a window changes nothing: there is no history); any other,
 * without an `observed` entry, has no samples and fails. Judgments during the run (`every`) happen only on the
 * real clock (`virtualTime: false`): on the virtual one they would pass for the scenario's own time.
 */
import { Clock, Context, Duration, Effect, Layer, Logger } from "effect"
import * as Agent from "./Agent.ts"
import type { AgentConfig, AgentRequest } from "./AgentConfig.ts"
import * as Cloud from "./Cloud.ts"
import * as CloudConfig from "./CloudConfig.ts"
import type * as CloudError from "./CloudError.ts"
import * as Criteria from "./Criteria.ts"
import { Deployment } from "./Deployment.ts"
import * as Orchestrator from "./Orchestrator.ts"
import { logger, RunEvents, type Stamped } from "./RunEvents.ts"
import type { ExecResult, Runner } from "./Runner.ts"
import { type Hooks, memory, type MetricSample, RunServices } from "./RunServices.ts"
import type { Scenario } from "./Scenario.ts"
import * as Verdict from "./Verdict.ts"

/** One recorded call on an agent. */
export interface Call {
  readonly agent: string
  readonly kind: "exec" | "spawn" | "copy" | "stop"
  readonly command: string
}

/** A command as a canned response sees it. */
export interface ExecCall {
  readonly agent: string
  readonly command: string
  readonly args: ReadonlyArray<string>
}

/** A canned answer: stdout text, or a partial result (exit code 0, empty output by default). */
export type Response = string | { readonly exitCode?: number; readonly stdout?: string; readonly stderr?: string }

/** One canned response: for `command` on `agent` (any agent when left out) with `args` (any when left out). */
export interface Canned {
  readonly agent?: string | undefined
  readonly command: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly response: Response | ((call: ExecCall) => Response)
}

export interface Options {
  /**
   * Canned responses, first match wins: a list of `Canned`, or a record keyed by `"<command> <args…>"` (or
   * `"<agent>: <command> <args…>"` for one agent, which wins over the other key).
   */
  readonly responses?: Record<string, Response> | ReadonlyArray<Canned> | undefined
  /** The answer to a command no canned response matches (else `echo` echoes and anything else exits 127). */
  readonly fallback?: ((call: ExecCall) => Response) | undefined
  /**
   * Virtual time (the default): a sleep returns at once and moves the clock on, so a scenario that retries every
   * second for a minute ends in milliseconds; `false` keeps the clock of the caller (`it.effect`'s `TestClock`).
   */
  readonly virtualTime?: boolean | undefined
  /**
   * What success criteria observe, by criterion name (or as a function of the criterion): a value (one series)
   * or samples; `undefined` falls back to the pushed metrics (see the module's details).
   */
  readonly observed?:
    | Record<string, Observation>
    | ((criterion: Verdict.Criterion) => Observation | undefined)
    | undefined
}

/** What a criterion observes on `TestCloud`: one value, or a sample per series. */
export type Observation = number | ReadonlyArray<Verdict.Sample>

/** The recorder a `TestCloud` backend writes to. */
export interface Recorder {
  readonly calls: Array<Call>
  readonly teardown: Array<string>
}

/** What a scenario did on `TestCloud`. */
export interface Result extends Recorder {
  /** The scenario's log lines (and the run's own: "Scenario ended successfully."). */
  readonly logs: Array<string>
  /** Every event of the run, in order. */
  readonly events: Array<Stamped>
  /** The last value of every pushed metric (a push sets the value, counters too). */
  readonly metrics: ReadonlyArray<MetricSample>
  /** Virtual milliseconds the scenario slept or waited (0 with `virtualTime: false`). */
  readonly elapsedMillis: number
  /** The verdicts on the scenario's success criteria (all met: a criterion not met fails the run). */
  readonly verdicts: ReadonlyArray<Verdict.Verdict>
}

const matches = (canned: Canned, call: ExecCall) =>
  (canned.agent === undefined || canned.agent === call.agent) && canned.command === call.command &&
  (canned.args === undefined ||
    (canned.args.length === call.args.length && canned.args.every((a, i) => a === call.args[i])))

const normalize = (response: Response) =>
  typeof response === "string"
    ? { exitCode: 0, stdout: response, stderr: "" }
    : { exitCode: response.exitCode ?? 0, stdout: response.stdout ?? "", stderr: response.stderr ?? "" }

/** The answer to `call` (see the module's details). */
export const answer = (options: Options, call: ExecCall): { exitCode: number; stdout: string; stderr: string } => {
  const responses = options.responses ?? {}
  const line = [call.command, ...call.args].join(" ")
  if (Array.isArray(responses)) {
    const canned = (responses as ReadonlyArray<Canned>).find((c) => matches(c, call))
    if (canned !== undefined) {
      return normalize(typeof canned.response === "function" ? canned.response(call) : canned.response)
    }
  } else {
    const record = responses as Record<string, Response>
    const canned = record[`${call.agent}: ${line}`] ?? record[line]
    if (canned !== undefined) return normalize(canned)
  }
  if (options.fallback !== undefined) return normalize(options.fallback(call))
  if (call.command === "echo") return { exitCode: 0, stdout: `${call.args.join(" ")}\n`, stderr: "" }
  return { exitCode: 127, stdout: "", stderr: `TestCloud: no canned response for "${line}"\n` }
}

/**
 * A clock whose sleeps return at once and move its time on: the scenario's waits (retries, timeouts, sleeps) take
 * no real time. It starts at the real time of its creation.
 */
export const virtualClock = (): Clock.Clock & { readonly elapsedMillis: () => number } => {
  const start = Date.now()
  let elapsed = 0
  const millis = () => start + elapsed
  return {
    currentTimeMillisUnsafe: millis,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanosUnsafe: () => BigInt(millis()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(millis()) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => BigInt(elapsed) * 1_000_000n,
    monotonicTimeNanos: Effect.sync(() => BigInt(elapsed) * 1_000_000n),
    // Other fibers get their turn first, as they would while the sleeper waits.
    sleep: (duration) =>
      Effect.yieldNow.pipe(Effect.andThen(Effect.sync(() => void (elapsed += Duration.toMillis(duration))))),
    elapsedMillis: () => elapsed
  }
}

/** A value as Prometheus writes it. */
const promValue = (n: number) =>
  Number.isNaN(n) ? "NaN" : n === Infinity ? "+Inf" : n === -Infinity ? "-Inf" : String(n)

/** The metric name and label matchers of a bare selector (`name`, `name{a="x",b="y"}`), else `undefined`. */
export const selector = (
  query: string
): { readonly name: string; readonly labels: Record<string, string> } | undefined => {
  const match = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$/.exec(query)
  if (match === null) return undefined
  const labels: Record<string, string> = {}
  for (const matcher of (match[2] ?? "").split(",").filter((m) => m.trim() !== "")) {
    const pair = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\]*)"\s*$/.exec(matcher)
    if (pair === null) return undefined
    labels[pair[1]!] = pair[2]!
  }
  return { name: match[1]!, labels }
}

/** What `criterion` observes on `TestCloud`: `options.observed`, else the pushed metrics its selector matches. */
const observe = (options: Options, criterion: Verdict.Criterion, metrics: ReadonlyArray<MetricSample>) => {
  const canned = typeof options.observed === "function"
    ? options.observed(criterion)
    : options.observed?.[criterion.name]
  if (typeof canned === "number") return [{ metric: {}, value: promValue(canned) }]
  if (canned !== undefined) return canned
  const wanted = selector(criterion.query)
  if (wanted === undefined) return []
  return metrics.filter((m) =>
    m.name === wanted.name && Object.entries(wanted.labels).every(([k, v]) => m.labels?.[k] === v)
  ).map((m): Verdict.Sample => ({ metric: { __name__: m.name, ...m.labels }, value: promValue(m.value) }))
}

/** Memory hooks whose criteria observe what `options` and the pushed metrics say. */
const judgedHooks = (options: Options): Hooks => {
  const hooks = memory()
  return {
    ...hooks,
    prometheus: {
      check: () => Effect.void,
      settle: Effect.void,
      samples: (criterion) => Effect.map(hooks.metrics, (metrics) => observe(options, criterion, metrics))
    }
  }
}

/** A `Deployment` of in-memory agents; `recorder` receives every call and teardown. */
export const layerDeployment = (options: Options = {}, recorder: Recorder = { calls: [], teardown: [] }) =>
  Layer.effect(
    Deployment,
    Effect.gen(function*() {
      const config = yield* CloudConfig.CurrentConfig
      let nextPid = 1000
      const runnerFor = (agent: string): Runner => ({
        exec: (command, args, execOptions) =>
          Effect.gen(function*() {
            const line = [command, ...args].join(" ")
            recorder.calls.push({ agent, kind: "exec", command: line })
            const result = answer(options, { agent, command, args })
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
                runner: runnerFor(agentConfig.name),
                inMemory: true
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

/** What `TestCloud.layer` recorded so far: the calls, teardown, logs, events and metrics of its `Cloud`. */
export class Recording extends Context.Service<Recording, {
  readonly calls: ReadonlyArray<Call>
  /** Agents torn down, once the layer's scope has closed. */
  readonly teardown: ReadonlyArray<string>
  readonly logs: ReadonlyArray<string>
  readonly events: ReadonlyArray<Stamped>
  readonly metrics: Effect.Effect<ReadonlyArray<MetricSample>>
  /** Virtual milliseconds slept so far. */
  readonly elapsedMillis: Effect.Effect<number>
  /** Judges the success criteria declared so far, as the run does when its scenario ends. */
  readonly verdicts: Effect.Effect<ReadonlyArray<Verdict.Verdict>>
}>()("@tezt-cloud/core/TestCloud/Recording") {}

export interface LayerOptions extends Options {
  /** The scenario whose agents (`vms`) the `Cloud` has. */
  readonly scenario?: Scenario | undefined
  /** Or the agents themselves (one `agent-000` when neither is given). */
  readonly vms?: ReadonlyArray<AgentRequest> | undefined
  /** Config-file keys of the run (`{ vms_limit: 1 }`), over `TestCloud.config`'s defaults. */
  readonly config?: CloudConfig.Input | undefined
}

/**
 * `Cloud` on in-memory agents, with its `Recording` (and, unless `virtualTime: false`, the virtual clock):
 * `scenario.run.pipe(Effect.provide(TestCloud.layer({ scenario, responses })))`.
 */
export const layer = (options: LayerOptions = {}): Layer.Layer<Cloud.Cloud | Recording, CloudError.CloudError> =>
  make(options, (recorder) => layerDeployment(options, recorder))

/**
 * `Cloud` on the agents `deployment` (a real backend's `Deployment` layer, for the run's resolved configuration)
 * deploys for `options.scenario`, with a `Recording` of its logs, events and metrics: the test written for
 * `TestCloud.layer` runs for real when this layer replaces it. Time is real unless `virtualTime: true`.
 */
export const layerOn = <E, R>(
  deployment: (config: CloudConfig.CloudConfig) => Layer.Layer<Deployment, E, R>,
  options: LayerOptions = {}
): Layer.Layer<Cloud.Cloud | Recording, CloudError.CloudError | E, Exclude<R, CloudConfig.CurrentConfig>> =>
  Layer.unwrap(
    Effect.map(
      config(options.config),
      (resolved) => make({ ...options, virtualTime: options.virtualTime === true }, () => deployment(resolved))
    )
  )

/**
 * The configuration of a run on in-memory agents: log rotation (a Chronos task waiting for midnight) is off unless
 * asked for, since on the virtual clock a background task's waits would pass for the scenario's own time.
 */
const inMemoryConfig = (
  options: { readonly config?: CloudConfig.Input | undefined; readonly virtualTime?: boolean | undefined }
) =>
  config(
    options.virtualTime === false || options.config?.log_rotation !== undefined
      ? options.config
      : { ...options.config, log_rotation: 0 }
  )

const make = <E, R>(
  options: LayerOptions,
  deployment: (recorder: Recorder) => Layer.Layer<Deployment, E, R>
): Layer.Layer<Cloud.Cloud | Recording, CloudError.CloudError | E, Exclude<R, CloudConfig.CurrentConfig>> =>
  Layer.unwrap(Effect.gen(function*() {
    const resolved = yield* inMemoryConfig(options)
    const recorder: Recorder = { calls: [], teardown: [] }
    const logs: Array<string> = []
    const events: Array<Stamped> = []
    const clock = virtualClock()
    const hooks = judgedHooks(options)
    const sink = (event: Stamped) => {
      events.push(event)
      if (event.type === "log") logs.push(event.message)
    }
    const criteria = yield* Criteria.registry(hooks.prometheus, {
      unavailable: "",
      continuous: options.virtualTime === false
    }).pipe(Effect.provide(RunEvents.layer([sink])))
    const scenario = options.scenario ??
      { title: "TestCloud.layer", tags: [], vms: () => options.vms ?? [{}], run: Effect.void }
    const configs = yield* Orchestrator.agentConfigs(scenario, resolved)
    const cloud = Layer.effect(
      Cloud.Cloud,
      Effect.gen(function*() {
        const agents = yield* (yield* Deployment).deploy(configs)
        return Cloud.make(resolved, agents, hooks, undefined, criteria.add)
      })
    ).pipe(
      Layer.provide(deployment(recorder)),
      Layer.provide(Layer.succeed(CloudConfig.CurrentConfig, resolved))
    )
    const recording = Layer.succeed(
      Recording,
      Recording.of({
        calls: recorder.calls,
        teardown: recorder.teardown,
        logs,
        events,
        metrics: hooks.metrics,
        elapsedMillis: Effect.sync(clock.elapsedMillis),
        verdicts: criteria.conclude
      })
    )
    return Layer.mergeAll(
      cloud,
      recording,
      Logger.layer([logger(sink)]),
      options.virtualTime === false ? Layer.empty : Layer.succeed(Clock.Clock, clock)
    )
  }))

/**
 * Runs a scenario on `TestCloud` as a real run would (validation, deploy, body, teardown) and returns what it did.
 * Fails like the real run would (a `CloudError` whose reason is `ScenarioFailed`, `AgentsInvalid`, …).
 */
export const run = (
  scenario: Scenario,
  options: Options & { readonly config?: CloudConfig.Input | undefined } = {}
): Effect.Effect<Result, CloudError.CloudError> =>
  Effect.gen(function*() {
    const resolved = yield* inMemoryConfig(options)
    const recorder: Recorder = { calls: [], teardown: [] }
    const logs: Array<string> = []
    const events: Array<Stamped> = []
    const sink = (event: Stamped) => {
      events.push(event)
      if (event.type === "log") logs.push(event.message)
    }
    const hooks = judgedHooks(options)
    const clock = virtualClock()
    const configs = yield* Orchestrator.agentConfigs(scenario, resolved)
    const services = Layer.succeed(RunServices, RunServices.of({ start: () => Effect.succeed(hooks) }))
    const body = Orchestrator.run(scenario, resolved, configs, { judgeDuringRun: options.virtualTime === false }).pipe(
      Effect.provide(layerDeployment(options, recorder)),
      Effect.provide(services),
      Effect.provideService(CloudConfig.CurrentConfig, resolved),
      Effect.provide(Layer.mergeAll(RunEvents.layer([sink]), Logger.layer([logger(sink)])))
    )
    yield* options.virtualTime === false ? body : Effect.provideService(body, Clock.Clock, clock)
    return {
      ...recorder,
      logs,
      events,
      metrics: yield* hooks.metrics,
      elapsedMillis: clock.elapsedMillis(),
      verdicts: Criteria.latest(events)?.verdicts ?? []
    }
  })
