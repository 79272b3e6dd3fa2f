/**
 * The life of one scenario run: validate the agents it asks for, prepare the artifacts dir, deploy, run the body,
 * (with `--keep-alive`) wait for the user with everything still up, tear everything down in reverse order,
 * whatever happened. The first Ctrl+C interrupts the fiber running this, which is a normal scope close: the full
 * teardown runs.
 */
import { Cause, Clock, Context, Effect, Exit, Metric, Option, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import type * as Agent from "./Agent.ts"
import { type AgentConfig, type AgentDefaults, complete } from "./AgentConfig.ts"
import * as AgentsControl from "./AgentsControl.ts"
import * as Artifacts from "./Artifacts.ts"
import * as AtomicFile from "./AtomicFile.ts"
import * as Chronos from "./Chronos.ts"
import * as Cloud from "./Cloud.ts"
import { authMode, authPortOffset, type CloudConfig, toJson } from "./CloudConfig.ts"
import * as CloudError from "./CloudError.ts"
import * as Criteria from "./Criteria.ts"
import { Deployment } from "./Deployment.ts"
import { Ledger } from "./Ledger.ts"
import * as LogRotation from "./LogRotation.ts"
import * as Network from "./Network.ts"
import * as NetworkFaults from "./NetworkFaults.ts"
import * as ProcessLiveness from "./ProcessLiveness.ts"
import { RunEvents } from "./RunEvents.ts"
import { RunServices } from "./RunServices.ts"
import type { Scenario } from "./Scenario.ts"
import * as ScenarioFailure from "./ScenarioFailure.ts"
import * as Telemetry from "./Telemetry.ts"
import * as Verdict from "./Verdict.ts"

/**
 * Waits for a line of standard input that `accept`s, or for its end; an input that fails (a terminal gone: EIO)
 * is an end too, never a crash.
 */
export const waitForLine = (accept: (line: string) => boolean): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const rl = readline.createInterface({ input: process.stdin })
    const done = () => {
      rl.close()
      resume(Effect.void)
    }
    rl.on("line", (line) => accept(line) && done())
    rl.once("close", done)
    rl.on("error", done)
    return Effect.sync(() => rl.close())
  })

/** How `--keep-alive` waits for the user; a test replaces it. */
export const WaitForEnter = Context.Reference<Effect.Effect<void>>("@tezt-cloud/core/Orchestrator/WaitForEnter", {
  defaultValue: () => waitForLine(() => true)
})

/** The run-wide defaults of agent configurations. */
export const agentDefaults = (config: CloudConfig): AgentDefaults => ({
  machineType: config.machineType,
  os: config.os,
  binariesPath: config.binariesPath,
  maxRunDuration: config.maxRunDuration,
  diskType: config.diskType,
  diskSizeGb: config.diskSizeGb,
  dockerfileAlias: config.dockerfileAlias
})

/**
 * The agent configurations of a scenario under `config`, validated: unique names, within `--vms-limit`, port ranges
 * that fit and clash with no listener of the run.
 */
export const agentConfigs = (
  scenario: Scenario,
  config: CloudConfig
): Effect.Effect<ReadonlyArray<AgentConfig>, CloudError.CloudError> =>
  Effect.gen(function*() {
    if (scenario.vms === undefined) return []
    const configs = complete(scenario.vms(config), agentDefaults(config))
    const seen = new Set<string>()
    for (const c of configs) {
      // Names become directory, container and host names: one safe path segment.
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(c.name)) {
        return yield* CloudError.agents(
          `agent name "${c.name}" is not valid: use letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)`
        )
      }
      if (seen.has(c.name)) {
        return yield* CloudError.agents(`two agents are named ${c.name}: agent names must be unique`)
      }
      seen.add(c.name)
    }
    if (config.vmsLimit !== undefined && config.vmsLimit < configs.length) {
      return yield* CloudError.config(
        "--vms-limit",
        `the scenario asks for ${configs.length} agents, more than --vms-limit ${config.vmsLimit} allows: ` +
          `give --vms-limit ${configs.length} or more, or leave it out`
      )
    }
    const rangeError = portRangeError(configs.length, config.vmBasePort, config.portsPerVm)
    if (rangeError !== undefined) return yield* rangeError
    const clash = portClashError(config, configs.length)
    if (clash !== undefined) return yield* clash
    return configs
  })

/**
 * Why `agents` port ranges of `portsPerVm` ports from `basePort` do not fit under 65535, naming the option to
 * change and the value that fits, or `undefined` when they fit.
 */
export const portRangeError = (agents: number, basePort: number, portsPerVm: number) => {
  const last = basePort + agents * portsPerVm - 1
  if (last <= 65535) return undefined
  const what = `${agents} agents × ${portsPerVm} ports from ${basePort} end at ${last} > 65535`
  const fittingPorts = Math.floor((65536 - basePort) / agents)
  if (fittingPorts >= 2) {
    return CloudError.config(
      "--ports-per-vm",
      `${what}: give --ports-per-vm ${fittingPorts} or less (or a lower --vm-base-port)`
    )
  }
  const fittingBase = 65536 - agents * 2
  return fittingBase >= 1
    ? CloudError.config(
      "--vm-base-port",
      `${what}: give --vm-base-port ${fittingBase} or less with --ports-per-vm 2`
    )
    : CloudError.config(
      "--vms-limit",
      `${what}: at most ${Math.floor(65535 / 2)} agents have port ranges (2 ports each, from port 1)`
    )
}

/** Whether the agents of `config` take their ports on this machine (sandboxes and containers here, a loopback ssh host). */
const agentsHere = (config: CloudConfig) =>
  config.backend._tag === "Localhost" ||
  (config.backend._tag === "SshHost" && /^(?:127\.|localhost$|::1$)/.test(config.backend.target.host))

/**
 * Why the run's own listeners (the website, Prometheus, Alertmanager and, in auth mode, the website's and
 * Prometheus' port + 10000 behind the auth proxy) clash with each other, go beyond 65535 or, on this machine, clash
 * with the port ranges of `agents` agents, naming the option to change; `undefined` when nothing clashes.
 */
export const portClashError = (config: CloudConfig, agents: number) => {
  if (config.website && config.prometheus && config.websitePort === config.prometheusPort) {
    return CloudError.config(
      "--prometheus-port",
      `${config.prometheusPort} is the website's port too (--website-port): give each its own port`
    )
  }
  // In auth mode each service itself takes its port + 10000 (behind the auth proxy, on its usual port).
  const auth = authMode(config)
  const inner = (port: number) => port + authPortOffset
  const services: ReadonlyArray<readonly [boolean, string, string, number]> = [
    [config.website, "the website", "--website-port", config.websitePort],
    [config.prometheus, "Prometheus", "--prometheus-port", config.prometheusPort]
  ]
  const on = services.filter(([enabled]) => enabled)
  if (auth) {
    for (const [, what, option, port] of on) {
      if (inner(port) > 65535) {
        return CloudError.config(
          option,
          `in auth mode ${what} itself listens on its port + ${authPortOffset}, ${inner(port)} > 65535: ` +
            `give ${option} ${65535 - authPortOffset} or less`
        )
      }
    }
    for (const [, what, option, port] of on) {
      const taken = on.find(([, , , other]) => other === inner(port))
      if (taken !== undefined) {
        return CloudError.config(
          option,
          `in auth mode ${what} itself listens on its port + ${authPortOffset}, ${inner(port)}, which is ` +
            `${taken[1]}'s port (${taken[2]}): give each a port that is not the other's + ${authPortOffset}`
        )
      }
    }
  }
  if (agents === 0 || !agentsHere(config)) return undefined
  const first = config.vmBasePort
  const last = first + agents * config.portsPerVm - 1
  const listeners: Array<readonly [string, number, string]> = on.flatMap(([, what, option, port]) =>
    auth
      ? [
        [option, port, ""] as const,
        [option, inner(port), ` (${what} itself, in auth mode: ${option} + ${authPortOffset})`] as const
      ]
      : [[option, port, ""] as const]
  )
  // Alertmanager starts with the run when it has alert handlers (later alerts start it where it can).
  if (config.prometheus && config.alertHandlers.length > 0) {
    listeners.push(["--prometheus-port", config.prometheusPort + 3, " (Alertmanager's, --prometheus-port + 3)"])
  }
  for (const [option, port, which] of listeners) {
    if (port >= first && port <= last) {
      return CloudError.config(
        option,
        `${port}${which} is in the agents' ports ${first}-${last} (--vm-base-port ${first}, ${agents} agents × ` +
          `--ports-per-vm ${config.portsPerVm}): give a port outside them, or another --vm-base-port`
      )
    }
  }
  return undefined
}

/**
 * Creates the artifacts dir (a user-given one must not exist yet) and writes `configuration.json`, the effective
 * configuration without secrets.
 */
export const prepareArtifacts = (config: CloudConfig, dir: string, userGiven: boolean) =>
  Effect.try({
    try: () => {
      if (userGiven && fs.existsSync(dir)) throw new Error("already exists: give a new directory to --artifacts-dir")
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "configuration.json"), JSON.stringify(toJson(config), null, 2) + "\n")
    },
    catch: (e) => CloudError.config("--artifacts-dir", `${dir}: ${CloudError.messageOf(e)}`, { cause: e })
  })

/** Where a run keeps what it concludes, and whether criteria are judged during it (not on a virtual clock). */
export interface RunOptions {
  /** The run's artifacts dir: `verdicts.json` goes there. */
  readonly artifactsDir?: string | undefined
  /** Whether criteria with an `every` are judged while the scenario runs (the default). */
  readonly judgeDuringRun?: boolean | undefined
}

/**
 * Runs `scenario` on `configs` with the current `Deployment`, and the `RunServices` when provided. Ends with "Scenario ended successfully." or
 * "Scenario terminated unexpectedly: …", then judges the scenario's success criteria (the verdict table, and
 * `verdicts.json`); with `--keep-alive` it then waits for Enter (or an interruption) with everything still
 * running, the scenario's daemons included; then tears down and returns the scenario's outcome: a failure when it
 * failed (`ScenarioFailed`), else when a criterion is not met (`CriteriaFailed`).
 */
export const run = Effect.fn("Orchestrator.run")(function*(
  scenario: Scenario,
  config: CloudConfig,
  configs: ReadonlyArray<AgentConfig>,
  options: RunOptions = {}
) {
  const events = yield* RunEvents
  const deployment = yield* Deployment
  const waitForEnter = yield* WaitForEnter
  const outcome = yield* scopedWithTeardown(
    Effect.gen(function*() {
      const started = Date.now()
      yield* events.emit({ type: "deploy-start", total: configs.length })
      const agents = configs.length === 0 ? [] : yield* deployment.deploy(configs)
      const millis = Date.now() - started
      yield* Metric.update(Telemetry.deploySeconds, millis / 1000)
      yield* events.emit({ type: "deploy-done", total: agents.length, millis })
      yield* recordDeployment(config, agents, options.artifactsDir)
      // What is kept of the agents in the artifacts dir: their commands' output, and (run after the scenario's
      // daemons are stopped, before the agents go) their daily logs.
      yield* Artifacts.recordCommands(agents)
      if (config.dailyLogsArtifacts) yield* Artifacts.fetchDailyLogs(agents)
      const network = yield* networkFaults(config, deployment, agents)
      yield* AgentsControl.serveRun(agents)
      // Started in the run's scope after the agents: they stop before the agents are torn down.
      const services = yield* Effect.serviceOption(RunServices)
      const hooks = Option.isSome(services) ? yield* services.value.start(agents) : undefined
      const criteria = yield* Criteria.registry(hooks?.prometheus, {
        unavailable: hooks === undefined
          ? "criteria are judged on a run's Prometheus, and this run has none"
          : "criteria are judged on the run's Prometheus, which is off: give --prometheus",
        continuous: options.judgeDuringRun !== false
      })
      // The run's recurring tasks, in its scope: they stop first when it closes.
      if (config.logRotation > 0) {
        yield* Chronos.start(agents.map((agent) => LogRotation.task(agent, config.logRotation)))
      }
      // Added after the agents' own finalizers, so it runs first when the scope closes.
      yield* Effect.addFinalizer(() => events.emit({ type: "teardown-start", total: agents.length }))
      const exit = yield* scenario.run.pipe(
        Effect.provideService(Cloud.Cloud, Cloud.make(config, agents, hooks, network, criteria.add)),
        Effect.onInterrupt(() => report(Exit.interrupt(undefined))),
        Effect.exit
      )
      yield* report(exit)
      // Before the teardown stops Prometheus, and before `--keep-alive`'s wait, so the user sees them meanwhile.
      const verdicts = yield* criteria.conclude
      if (verdicts.length > 0 && options.artifactsDir !== undefined) {
        yield* Verdict.write(options.artifactsDir, verdicts).pipe(Effect.catch((e) => Effect.logError(e.message)))
      }
      if (config.keepAlive) {
        // Before the scope closes, so the scenario's daemons, the agents and the services still run while the user
        // looks at them; and not in a finalizer, so that Ctrl+C (or SIGTERM, SIGHUP) interrupts the wait like it
        // interrupts the scenario, straight into the teardown.
        yield* Effect.logInfo("Please press <enter> to terminate the scenario (Ctrl+C tears down too).")
        yield* waitForEnter
      }
      return { exit, verdicts }
    })
  )
  if (Exit.isFailure(outcome.exit)) {
    return yield* new CloudError.CloudError({
      reason: new CloudError.ScenarioFailed({ title: scenario.title, message: render(outcome.exit.cause) })
    })
  }
  if (outcome.verdicts.some((v) => v.status !== "met")) {
    return yield* new CloudError.CloudError({
      reason: new CloudError.CriteriaFailed({ title: scenario.title, message: Verdict.summary(outcome.verdicts) })
    })
  }
})

/**
 * `Effect.scoped`, whose closing (every teardown step, in reverse order, whatever happened) is timed and runs
 * under the span `Orchestrator.teardown`.
 */
const scopedWithTeardown = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Scope.make(),
    (scope) => Scope.provide(scope)(effect),
    (scope, exit) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        yield* Scope.close(scope, exit)
        const ended = yield* Clock.currentTimeMillis
        yield* Metric.update(Telemetry.teardownSeconds, (ended - started) / 1000)
      }).pipe(Effect.withSpan("Orchestrator.teardown"))
  )

/**
 * The backend's network faults on the run's `agents` (they live in the run's scope), with `--tc-delay` and
 * `--tc-jitter` applied, drawn from the run's seed.
 */
const networkFaults = (config: CloudConfig, deployment: Deployment["Service"], agents: ReadonlyArray<Agent.Agent>) =>
  Effect.gen(function*() {
    const seed = Network.seedFrom(process.env)
    const faults = deployment.network === undefined || agents.length === 0
      ? NetworkFaults.unavailable(`the ${deployment.backend} backend has none`)
      : yield* deployment.network(agents, Network.seeded(seed ^ 0x5bd1e995))
    yield* Network.applyOptions(config, agents, faults, seed)
    return faults
  })

/** Where a live run lists its agents for `tezt-cloud agents`: `<state-dir>/<ns>/deployment.json`. */
export const deploymentFile = (ledgerFile: string) => path.join(path.dirname(ledgerFile), "deployment.json")

export interface DeploymentRecord {
  readonly namespace: string
  /** The orchestrator's pid: the record is stale when it is gone. */
  readonly pid: number
  /**
   * The orchestrator's start time (`ProcessLiveness.startTime`): the record is stale, too, when its pid now names
   * another process. Absent from records written before it was recorded.
   */
  readonly started?: string | undefined
  readonly agents: ReadonlyArray<Agent.Descriptor>
  /** The run's artifacts dir, when it said it. */
  readonly artifactsDir?: string | undefined
}

/** Writes the deployment record for the run's lifetime (removed when its scope closes). */
const recordDeployment = (config: CloudConfig, agents: ReadonlyArray<Agent.Agent>, artifactsDir?: string) =>
  Effect.gen(function*() {
    const ledger = yield* Effect.serviceOption(Ledger)
    if (ledger._tag === "None" || ledger.value.file === ":memory:" || agents.length === 0) return
    const file = deploymentFile(ledger.value.file)
    const record: DeploymentRecord = {
      namespace: config.namespace,
      pid: process.pid,
      started: ProcessLiveness.startTime(process.pid),
      agents: agents.map((a) => a.descriptor),
      ...(artifactsDir === undefined ? {} : { artifactsDir })
    }
    yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
          AtomicFile.writeAtomic(file, JSON.stringify(record, null, 2) + "\n")
        },
        catch: (e) => CloudError.state(file, `cannot record the deployment: ${CloudError.messageOf(e)}`, { cause: e })
      }),
      () => Effect.sync(() => fs.rmSync(file, { force: true }))
    )
  })

const report = (exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const events = yield* RunEvents
    if (Exit.isSuccess(exit)) {
      yield* Effect.logInfo("Scenario ended successfully.")
      yield* events.emit({ type: "run-end", ok: true, message: "Scenario ended successfully." })
    } else {
      const message = `Scenario terminated unexpectedly: ${render(exit.cause)}`
      const cause = CloudError.details(Cause.squash(exit.cause))
      const interrupted = Cause.hasInterruptsOnly(exit.cause)
      const location = ScenarioFailure.location(exit.cause)
      const trace = interrupted ? undefined : ScenarioFailure.trace(exit.cause)
      // The trace under the one line: the error's frames and the spans it crossed, the scenario's lines among them.
      yield* Effect.logError(trace === undefined ? message : `${message}\n${indent(trace)}`)
      yield* events.emit({
        type: "run-end",
        ok: false,
        message,
        ...(location === undefined ? {} : { location }),
        ...(trace === undefined ? {} : { trace }),
        ...(cause === undefined ? {} : { cause })
      })
    }
  })

/** One line for a cause: the error's message (or "interrupted"), and where in the scenario it happened. */
export const render = ScenarioFailure.render

const indent = (text: string) => text.split("\n").map((line) => line.startsWith("    ") ? line : `  ${line}`).join("\n")
