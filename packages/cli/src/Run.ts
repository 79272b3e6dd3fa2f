/**
 * A run of a scenario group: its configuration resolved (CLI over `--config-file` over environment over
 * defaults), the group's scenarios having all the tags selected, and each run in turn on the backend that takes it,
 * with the monitoring stack. Loaded by the group's command (`Cli.ts`) only when it runs: `--help` and `--list`
 * never load the backends' registry, the monitoring stack or the website.
 */
import {
  Artifacts,
  CloudConfig,
  CloudError,
  Deployment,
  Ledger,
  NamespaceLock,
  Orchestrator,
  RunEvents,
  type Scenario
} from "@tezt-cloud/core"
import { RunMonitor } from "@tezt-cloud/monitoring"
import { Website } from "@tezt-cloud/website"
import { Console, Effect, Layer } from "effect"
import * as dns from "node:dns/promises"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Backends from "./Backends.ts"
import * as ProxyCommand from "./commands/proxy.ts"
import * as LogFile from "./LogFile.ts"
import * as Options from "./Options.ts"
import * as Shutdown from "./Shutdown.ts"

const slug = (title: string) => title.toLowerCase().replaceAll(/[^a-z0-9]+/g, "-").replaceAll(/^-|-$/g, "")

const timestamp = () => new Date().toISOString().replaceAll(/[:.]/g, "-")

/** What the group's command read before loading this module. */
export interface Input {
  readonly tags: ReadonlyArray<string>
  /** The scenarios of the group having all the tags (at least one). */
  readonly selected: ReadonlyArray<Scenario.Scenario>
  readonly input: CloudConfig.Input
  readonly cliOnly: CloudConfig.CliOnly
  /** Where the run's events are shown (a `--proxy` run shows the proxy's events there as they were stamped). */
  readonly sink: RunEvents.Sink
  /** `--log-file`: the run's log also goes there (`LogFile`). */
  readonly logFile?: string | undefined
}

/** Resolves the configuration and runs the selected scenarios of `group`, tracked by `Shutdown` while they run. */
export const run = Effect.fn("Run.run")(function*(group: Scenario.Group, stateDir: string, args: Input) {
  const { cliOnly, input, selected } = args
  // A `--proxy` run's package, loaded only for those: on the proxy, it also gives the run its secrets.
  const proxy = input.proxy === true ? yield* Effect.promise(() => Backends.proxyPackage()) : undefined
  const env = proxy === undefined ? process.env : yield* proxy.Launch.withSecrets(process.env)
  const config = yield* Options.configuration(input, cliOnly, env)
  if (args.logFile !== undefined) yield* LogFile.attach(yield* RunEvents.RunEvents, args.logFile, config.logRotation)
  const maintenance = selected.every((s) => s.vms === undefined)
  if (!maintenance) {
    yield* CloudConfig.checkAvailable(config)
    // Every option acts, is refused, or (where Tezt cloud too accepts it without effect) is warned about here.
    for (const line of yield* CloudConfig.checkOptionsAct(config)) yield* Effect.logWarning(line)
    if (config.openTelemetry) yield* (yield* telemetryModule).check(env)
  }
  const root = config.artifactsDir ?? path.join(Ledger.namespaceDir(stateDir, config.namespace), "runs", timestamp())
  if (config.artifactsDir !== undefined && fs.existsSync(root)) {
    return yield* CloudError.config(
      "--artifacts-dir",
      `${root} already exists: give a directory that does not exist yet`
    )
  }
  if (proxy !== undefined && !maintenance && !proxy.Proxy.onProxy(process.env, config.namespace)) {
    // The whole run moves to the proxy: this process deploys it (or reattaches) and shows its events, as the
    // namespace's one live run here. What the proxy refuses is refused before the lock is taken, and so are
    // agents the run there would refuse.
    for (const scenario of selected) yield* Orchestrator.agentConfigs(scenario, config)
    const shutdown = yield* Shutdown.Shutdown
    const options = yield* proxy.Proxy.runOptions({
      config,
      run: { group: group.name, tags: args.tags, input },
      stateDir,
      artifactsDir: root,
      scenarios: process.env.TEZT_CLOUD_SCENARIOS,
      sink: args.sink,
      stopKind: ProxyCommand.stopKind(shutdown)
    })
    yield* options.inner.check
    yield* NamespaceLock.acquire(
      stateDir,
      config.namespace,
      ["tezt-cloud", group.name, ...args.tags].join(" "),
      ", or give another --tezt-cloud"
    )
    // From here on the namespace has a run in progress: a second Ctrl+C removes a local proxy's container (the
    // run in it goes with it; a VM's teardown goes on) and names `CLOUD clean up` for the rest.
    yield* shutdown.track(config.namespace)
    const code = yield* proxy.ProxyRun.run({ ...options, deploy: true }).pipe(
      Effect.provide(Ledger.Ledger.layer(stateDir, config.namespace))
    )
    return yield* shutdown.exitWith(code)
  }
  // Everything that can be refused is refused before anything is created.
  // The backend too: one that refuses the run (no engine, no credentials…) does so before the lock is taken.
  const plans = yield* Effect.forEach(selected, (scenario) =>
    Effect.gen(function*() {
      const configs = yield* Orchestrator.agentConfigs(scenario, config)
      const artifactsDir = selected.length === 1 ? root : path.join(root, slug(scenario.title))
      const backend = scenario.vms !== undefined
        ? yield* Backends.select(config, { stateDir, artifactsDir })
        : { description: "none (maintenance job)", layer: Deployment.layerNone }
      return { scenario, configs, artifactsDir, backend }
    }))
  // One live run per namespace (and CLOUD clean up): a second one would tear down what the first still uses.
  if (plans.some((p) => p.scenario.vms !== undefined || p.scenario.exclusive === true)) {
    const what = ["tezt-cloud", group.name, ...args.tags].join(" ")
    yield* NamespaceLock.acquire(stateDir, config.namespace, what, maintenance ? "" : ", or give another --tezt-cloud")
  }
  // From here on the namespace has a run in progress: what a second Ctrl+C force-kills.
  yield* (yield* Shutdown.Shutdown).track(config.namespace)
  if (config.dnsDomains.length > 0 && plans.some((p) => p.scenario.vms !== undefined)) yield* pointDomains(config)
  const events = yield* RunEvents.RunEvents
  for (const plan of plans) {
    const deploys = plan.scenario.vms !== undefined
    const backend = plan.backend
    if (deploys || config.artifactsDir !== undefined) {
      yield* Orchestrator.prepareArtifacts(config, plan.artifactsDir, false)
      yield* events.writeTo(plan.artifactsDir)
      // Where `tezt-cloud logs` finds it, live or finished.
      yield* Artifacts.recordLastRun(stateDir, config.namespace, plan.artifactsDir)
    }
    yield* events.emit({
      type: "run-start",
      namespace: config.namespace,
      scenario: plan.scenario.title,
      backend: backend.description,
      artifactsDir: deploys ? plan.artifactsDir : "none"
    })
    // The monitoring stack (website, Prometheus, …) per the cascade; maintenance jobs run none.
    const services = deploys
      ? RunMonitor.layer({ config, artifactsDir: plan.artifactsDir, front: Website.front })
      : Layer.empty
    // The tool's own telemetry (`--open-telemetry`), outside the rest: deployment, services and teardown are traced.
    const telemetry = deploys && config.openTelemetry
      ? (yield* telemetryModule).layer({ artifactsDir: plan.artifactsDir, namespace: config.namespace, env })
      : Layer.empty
    yield* Orchestrator.run(plan.scenario, config, plan.configs, {
      artifactsDir: deploys ? plan.artifactsDir : undefined
    }).pipe(
      Effect.provide(backend.layer),
      Effect.provide(services),
      Effect.provide(telemetry),
      Effect.onExit(() => leftBehind(stateDir, config.namespace)),
      Effect.provide(Ledger.Ledger.layer(stateDir, config.namespace)),
      Effect.provideService(CloudConfig.CurrentConfig, config)
    )
  }
}, Effect.scoped)

/** The telemetry's module, with the OpenTelemetry SDK behind it: loaded only for `--open-telemetry`. */
const telemetryModule = Effect.promise(() => import("@tezt-cloud/monitoring/Telemetry"))

/**
 * `--dns-domain` on an ssh-host run: each domain's A record (Cloud DNS, on the project and API of the options) is
 * pointed at the host before the deployment, as Tezt cloud does; a domain outside every zone is a warning.
 */
const pointDomains = (config: CloudConfig.CloudConfig) =>
  Effect.gen(function*() {
    if (config.backend._tag !== "SshHost") return
    // The host's address: an alias of the user's ssh config is its HostName.
    const { SshConfig } = yield* Effect.promise(() => import("@tezt-cloud/ssh"))
    const resolved = yield* SshConfig.resolve(config.backend.target, { file: config.sshConfig, jump: "none" })
    const host = resolved.target.host
    const address = yield* Effect.tryPromise({
      try: () => dns.lookup(host, { family: 4 }),
      catch: (e) =>
        CloudError.config("--ssh-host", `cannot resolve ${host} for --dns-domain: ${CloudError.messageOf(e)}`)
    })
    const { CloudDns, GcpError } = yield* Effect.promise(() => import("@tezt-cloud/gcp"))
    const lines = yield* CloudDns.register(config.projectId, config.dnsDomains, address.address).pipe(
      Effect.mapError(GcpError.toCloudJob("--dns-domain"))
    )
    for (const { line, warning } of lines) yield* warning ? Effect.logWarning(line) : Effect.logInfo(line)
  })

/**
 * Tells the user to run `CLOUD clean up` when the namespace's ledger still records resources once a run is over:
 * its teardown could not remove them (a host that went down, a failing engine), or an earlier killed run left them.
 */
const leftBehind = (stateDir: string, namespace: string) =>
  Ledger.read(Ledger.ledgerFile(stateDir, namespace)).pipe(
    Effect.map((entries) => {
      const open = new Set<string>()
      for (const e of entries) {
        if (e.op === "acquire") open.add(e.id)
        else open.delete(e.id)
      }
      return open.size
    }),
    Effect.flatMap((left) =>
      left === 0 ? Effect.void : Console.error(
        `tezt-cloud: ${left} resource(s) of ${namespace} could not be removed (see the teardown failures above); ` +
          `run 'tezt-cloud CLOUD clean up --tezt-cloud ${namespace}' to remove them`
      )
    ),
    Effect.ignore
  )
