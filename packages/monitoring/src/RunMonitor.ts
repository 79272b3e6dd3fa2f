/**
 * The run's monitoring stack, as core's `RunServices`: what starts, in which order, per the defaults cascade
 * (Grafana, then Prometheus, the website and the process exporters, each on by default when the one before is),
 * and how the scenario's `pushMetric`, `addService`, `addPrometheusSource` and `registerBinary` reach it.
 *
 * **Details**
 *
 * Order at start: the web front (website and `/metrics`), Prometheus (scraping the website as `tezt_metrics`,
 * and with `--open-telemetry` the orchestrator's own metrics as `tezt-cloud`), in auth mode the auth proxy in front
 * of both (they then listen at their port + 10000), the process exporters (each takes its agent's first free
 * port; it runs once a binary is registered), netdata on every agent (job `netdata`), then Grafana provisioning.
 * Everything lives in the run's scope, so the teardown
 * runs in reverse: the agents' daemons stop, Prometheus exports its snapshot and stops, and the website goes
 * last. The web front is plugged in by the caller (`@tezt-cloud/website`), which keeps this package free of HTTP
 * serving.
 */
import { type Agent, Alert, CloudConfig, CloudError, Ledger, RunEvents, RunServices, Telemetry } from "@tezt-cloud/core"
import { Effect, Layer, Option, Scope } from "effect"
import { ChildProcessSpawner } from "effect/process"
import * as path from "node:path"
import * as Alertmanager from "./Alertmanager.ts"
import * as Alerts from "./Alerts.ts"
import * as AuthProxy from "./AuthProxy.ts"
import * as Endpoints from "./Endpoints.ts"
import * as Grafana from "./Grafana.ts"
import * as Metrics from "./Metrics.ts"
import * as Netdata from "./Netdata.ts"
import * as Notifier from "./Notifier.ts"
import * as ProcessExporter from "./ProcessExporter.ts"
import * as Prometheus from "./Prometheus.ts"
import * as VerdictSource from "./VerdictSource.ts"

type Config = CloudConfig.CloudConfig

/** What the stack decides to run for a configuration. */
export interface Plan {
  readonly website: boolean
  readonly prometheus: boolean
  readonly grafana: boolean
  /** netdata on each agent. */
  readonly netdata: boolean
  /** prometheus-process-exporter on each agent. */
  readonly processExporter: boolean
}

/** The cascade is already applied by `CloudConfig.resolve`: the plan is the effective flags. */
export const plan = (config: Config): Plan => ({
  website: config.website,
  prometheus: config.prometheus,
  grafana: config.grafana,
  netdata: config.monitoring,
  processExporter: config.processMonitoring
})

/** A link of the website: where to go, or why it is off and how to turn it on. */
export type Link =
  | { readonly name: string; readonly url: string }
  | { readonly name: string; readonly disabled: string }

/** What a web front shows; every field is read when a page is rendered, so it is always current. */
export interface View {
  readonly config: Config
  readonly agents: ReadonlyArray<Agent.Agent>
  readonly metrics: Metrics.Metrics["Service"]
  /** Prometheus, Grafana, netdata per agent, … then every `addService` entry. */
  readonly links: Effect.Effect<ReadonlyArray<Link>>
  /** The binaries registered per agent name, as `group/name`. */
  readonly binaries: Effect.Effect<ReadonlyMap<string, ReadonlyArray<string>>>
  /** Receives the run's events (the recent ones first) for as long as the current scope. */
  readonly subscribe: RunEvents.RunEvents["Service"]["subscribe"]
  /** The tool's own spans, for the timeline; `undefined` without `--open-telemetry`. */
  readonly spans?: Effect.Effect<ReadonlyArray<Telemetry.SpanRecord>> | undefined
}

/** Starts the web front for `view` in the current scope (the website, from `@tezt-cloud/website`). */
export type Front = (view: View) => Effect.Effect<void, CloudError.CloudError, Scope.Scope>

export interface Options {
  readonly config: Config
  /** The run's artifacts dir: Prometheus' config and logs go under it. */
  readonly artifactsDir: string
  readonly front?: Front | undefined
  /** Slack's `chat.postMessage` URL; default `$TEZT_CLOUD_SLACK_API_URL`, else Slack's (`Alerts.slackApiUrl`). */
  readonly slackApiUrl?: string | undefined
}

/** The job that scrapes the website's `/metrics` (the pushed metrics), labelled `app=tezt`. */
export const teztMetricsJob = (config: Config): Prometheus.Job => ({
  name: "tezt_metrics",
  metricsPath: "/metrics",
  targets: [{
    address: `${Endpoints.host(config)}:${Endpoints.servicePort(config, config.websitePort)}`,
    labels: { app: "tezt" }
  }]
})

/** The orchestrator's own metrics (`--open-telemetry`) as the job `tezt-cloud`, labelled `app=tezt-cloud`. */
export const telemetryJob = (target: string): Prometheus.Job => ({
  name: "tezt-cloud",
  metricsPath: "/metrics",
  targets: [{ address: target, labels: { app: "tezt-cloud" } }]
})

/** A scenario's source as a Prometheus job: each target is `<agent host>:<port>`, labelled `app=<appName>`. */
export const sourceJob = (source: RunServices.PrometheusSource): Prometheus.Job => ({
  name: source.name,
  metricsPath: source.metricsPath ?? "/metrics",
  targets: source.targets.map((t) => ({
    address: `${Endpoints.agentHost(t.agent)}:${t.port}`,
    labels: { app: t.appName }
  }))
})

const checkSource = (source: RunServices.PrometheusSource) => {
  const bad = source.name.trim() === ""
    ? "the job name is empty"
    : source.targets.find((t) => !Number.isInteger(t.port) || t.port < 1 || t.port > 65535) !== undefined
    ? "a target's port is not from 1 to 65535"
    : undefined
  return bad === undefined
    ? Effect.void
    : Effect.fail(CloudError.service("addPrometheusSource", `${JSON.stringify(source.name)}: ${bad}`))
}

const start = (
  options: Options,
  agents: ReadonlyArray<Agent.Agent>,
  events: RunEvents.RunEvents["Service"],
  spawner: ChildProcessSpawner.ChildProcessSpawner["Service"],
  ledger: Ledger.Ledger["Service"],
  telemetry: Telemetry.Telemetry["Service"] | undefined
) =>
  Effect.gen(function*() {
    const { config } = options
    const steps = plan(config)
    const metrics = Metrics.make()
    const services: Array<RunServices.ServiceLink> = []
    const binaries = new Map<string, Array<string>>()
    let prometheus: Prometheus.Prometheus["Service"] | undefined
    let alerts: Alerts.Alerts | undefined
    let grafana: Link = off("Grafana", "--grafana")
    let netdatas: ReadonlyArray<Netdata.Netdata> | undefined
    const exporters = new Map<string, ProcessExporter.ProcessExporter>()
    const links = Effect.gen(function*(): Effect.fn.Return<ReadonlyArray<Link>> {
      // An exporter runs (and answers) only once a binary is registered on its agent: no link to it before.
      const running: Array<Link> = []
      for (const e of exporters.values()) {
        if ((yield* e.binaries).length > 0) {
          running.push({ name: `Process exporter ${e.agent}`, url: `${e.url}/metrics` })
        }
      }
      const idle = exporters.size > 0 && running.length < exporters.size
        ? [{
          name: "Process exporters",
          disabled: `Process exporters start on an agent with its first registered binary (Cloud.registerBinary); ` +
            `${exporters.size - running.length} of ${exporters.size} have none yet.`
        }]
        : []
      const alertmanager = alerts === undefined ? undefined : yield* alerts.alertmanager
      return [
        prometheus === undefined
          ? off("Prometheus", "--prometheus")
          : { name: "Prometheus", url: Endpoints.shown(config, config.prometheusPort) },
        ...(alertmanager === undefined ? [] : [{ name: "Alertmanager", url: alertmanager.url }]),
        grafana,
        ...(netdatas === undefined
          ? [off("Netdata", "--monitoring")]
          : netdatas.map((n) => ({ name: `Netdata ${n.agent}`, url: n.url }))),
        ...running,
        ...idle,
        ...telemetryLinks(telemetry),
        ...services
      ]
    })
    const view: View = {
      config,
      agents,
      metrics,
      links,
      binaries: Effect.sync(() => binaries),
      subscribe: events.subscribe,
      spans: telemetry?.spans
    }
    const front = steps.website ? options.front : undefined
    if (front !== undefined) yield* front(view)
    if (steps.prometheus) {
      prometheus = yield* Prometheus.start({
        host: Endpoints.listenHost(config),
        port: Endpoints.servicePort(config, config.prometheusPort),
        scrapeInterval: config.prometheusScrapeInterval,
        jobs: [
          ...(front === undefined ? [] : [teztMetricsJob(config)]),
          ...(telemetry?.metricsTarget === undefined ? [] : [telemetryJob(telemetry.metricsTarget)])
        ],
        dir: path.join(options.artifactsDir, "prometheus"),
        namespace: config.namespace,
        exportTo: config.prometheusExport ? config.prometheusExportPath : undefined
      }).pipe(
        Effect.provideService(ChildProcessSpawner.ChildProcessSpawner, spawner),
        Effect.provideService(Ledger.Ledger, ledger)
      )
      yield* Effect.logInfo(`prometheus: ${Endpoints.shown(config, config.prometheusPort)}`)
    }
    // Auth mode: the website and Prometheus answer from behind the proxy, which takes their usual ports.
    if (CloudConfig.authMode(config)) yield* AuthProxy.serve(authRoutes(config, front !== undefined, steps.prometheus))
    const addJob = (job: Prometheus.Job) => prometheus === undefined ? Effect.void : prometheus.addJob(job)
    const running = yield* startAlerts(options, prometheus, spawner, ledger)
    alerts = running
    if (steps.processExporter) {
      // Before netdata and the scenario: each exporter takes its agent's first free port, before the scenario takes any.
      for (const agent of agents) exporters.set(agent.name, yield* ProcessExporter.make(agent))
    }
    if (steps.netdata) {
      netdatas = yield* Effect.forEach(agents, Netdata.start, { concurrency: 8 })
      if (netdatas.length > 0) yield* addJob(Netdata.job(netdatas))
    }
    if (steps.grafana) grafana = yield* startGrafana(options, prometheus?.url)

    const registerBinary = (binary: RunServices.Binary) =>
      Effect.forEach(binary.agents ?? agents, (agent) =>
        Effect.gen(function*() {
          const group = binary.group ?? "tezt-cloud"
          const listed = binaries.get(agent.name) ?? []
          if (!listed.includes(`${group}/${binary.name}`)) {
            binaries.set(agent.name, [...listed, `${group}/${binary.name}`])
          }
          const exporter = exporters.get(agent.name)
          if (exporter !== undefined && (yield* exporter.register({ group, name: binary.name }))) {
            yield* addJob(exporter.job)
          }
        }), { discard: true })
    return {
      pushMetric: metrics.push,
      addService: (link) => Effect.sync(() => void services.push(link)),
      addPrometheusSource: (source) => checkSource(source).pipe(Effect.andThen(addJob(sourceJob(source)))),
      registerBinary,
      metrics: metrics.samples,
      services: Effect.sync(() => [...services]),
      prometheus: prometheus === undefined
        ? undefined
        : VerdictSource.make(prometheus, config.prometheusScrapeInterval),
      addAlert: running.add,
      notify: Notifier.make(slackOf(options))
    } satisfies RunServices.Hooks
  })

/** The run's Slack, when it has both a channel and the bot token. */
const slackOf = (options: Options): Notifier.Slack | undefined => {
  const { slackBotToken, slackChannelId } = options.config
  return slackBotToken === undefined || slackChannelId === undefined
    ? undefined
    : { apiUrl: slackApiUrl(options), channel: slackChannelId, token: slackBotToken }
}

const slackApiUrl = (options: Options) => options.slackApiUrl ?? Alerts.slackApiUrl(process.env)

/**
 * The run's alerts; Alertmanager starts in the run's scope with the first alert, or now with `--alert-handler`s,
 * on `--prometheus-port` + 3 (9093 by default, as Tezt cloud).
 */
const startAlerts = (
  options: Options,
  prometheus: Prometheus.Prometheus["Service"] | undefined,
  spawner: ChildProcessSpawner.ChildProcessSpawner["Service"],
  ledger: Ledger.Ledger["Service"]
) =>
  Effect.gen(function*() {
    const { config } = options
    const scope = yield* Scope.Scope
    const settings: Alerts.Settings = {
      handlers: config.alertHandlers.flatMap((text) => {
        const handler = Alert.parseHandler(text)
        return handler === undefined ? [] : [handler]
      }),
      slackChannel: config.slackChannelId,
      slackToken: config.slackBotToken,
      slackApiUrl: slackApiUrl(options)
    }
    const token = settings.slackToken
    const alerts = yield* Alerts.make({
      settings,
      prometheus,
      start: (render) =>
        Alertmanager.start({
          host: Endpoints.listenHost(config),
          port: config.prometheusPort + 3,
          dir: path.join(options.artifactsDir, "alertmanager"),
          namespace: config.namespace,
          secrets: token === undefined ? {} : { [Alerts.slackTokenSecret]: token },
          config: render
        }).pipe(
          Effect.tap((manager) => Effect.logInfo(`alertmanager: ${manager.url}`)),
          Effect.provideService(Scope.Scope, scope),
          Effect.provideService(ChildProcessSpawner.ChildProcessSpawner, spawner),
          Effect.provideService(Ledger.Ledger, ledger)
        )
    })
    if (settings.handlers.length > 0 && prometheus !== undefined) yield* alerts.start
    return alerts
  })

/** Grafana's provisioning files under the artifacts dir, and Grafana itself when it answers. */
const startGrafana = (options: Options, prometheusUrl: string | undefined) =>
  Grafana.setUp({
    dir: path.join(options.artifactsDir, "grafana"),
    url: Endpoints.grafana(options.config),
    credentials: credentials(options.config),
    datasources: prometheusUrl === undefined ? [] : [Grafana.runDatasource(prometheusUrl)]
  }).pipe(
    Effect.map((up): Link =>
      up
        ? { name: "Grafana", url: Endpoints.grafana(options.config) }
        : {
          name: "Grafana",
          disabled: `Grafana: nothing answers at ${Endpoints.grafana(options.config)}; give --grafana-url.`
        }
    )
  )

/** The auth proxy's routes: the UI services the run serves, on their usual ports, to themselves at port + 10000. */
export const authRoutes = (config: Config, website: boolean, prometheus: boolean): AuthProxy.Options => {
  const route = (service: string, option: string, port: number): AuthProxy.Route => ({
    service,
    option,
    host: Endpoints.listenHost(config),
    port,
    target: { host: Endpoints.host(config), port: Endpoints.servicePort(config, port) }
  })
  return {
    user: config.authUsername ?? "",
    password: config.authPassword ?? "",
    routes: [
      ...(website ? [route("the website", "--website-port", config.websitePort)] : []),
      ...(prometheus ? [route("Prometheus", "--prometheus-port", config.prometheusPort)] : [])
    ]
  }
}

/** Grafana's credentials: the token, else the basic-auth pair. */
export const credentials = (config: Config): Grafana.Credentials => ({
  token: config.grafanaToken,
  basic: config.authUsername !== undefined && config.authPassword !== undefined
    ? { user: config.authUsername, password: config.authPassword }
    : undefined
})

/** The run's services per `options.config`, as core's `RunServices`. */
export const layer = (options: Options) =>
  Layer.effect(
    RunServices.RunServices,
    Effect.gen(function*() {
      const events = yield* RunEvents.RunEvents
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      // Prometheus' storage is recorded in the run's ledger.
      const ledger = yield* Ledger.Ledger
      // The tool's own telemetry, with `--open-telemetry`: its spans on the website, its metrics in Prometheus.
      const telemetry = Option.getOrUndefined(yield* Effect.serviceOption(Telemetry.Telemetry))
      return RunServices.RunServices.of({
        start: Effect.fn("RunMonitor.start")((agents: ReadonlyArray<Agent.Agent>) =>
          start(options, agents, events, spawner, ledger, telemetry)
        )
      })
    })
  )

/** Where the tool's own spans and metrics are, or how to have them. */
const telemetryLinks = (telemetry: Telemetry.Telemetry["Service"] | undefined): ReadonlyArray<Link> =>
  telemetry === undefined
    ? [off("Timeline", "--open-telemetry")]
    : [
      { name: "Timeline", url: "#timeline" },
      ...(telemetry.metricsTarget === undefined
        ? []
        : [{ name: "Orchestrator metrics", url: `http://${telemetry.metricsTarget}/metrics` }])
    ]

const off = (name: string, flag: string): Link => ({
  name,
  disabled: `${name} disabled. Use ${flag} to activate it.`
})
