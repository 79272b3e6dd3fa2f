/**
 * The run's alerts: what `Cloud.addAlert` adds becomes a rule of Prometheus' rule file and a route of
 * Alertmanager's configuration, both generated here and reloaded; Alertmanager itself starts with the first alert
 * (or at once when the run has `--alert-handler`s, the receivers every alert goes to unless it names its own).
 *
 * **Details**
 *
 * Both files are JSON, which is YAML too. Each alert gets a route matching its `alertname`; the fallback route
 * goes to a receiver that notifies nobody. Slack receivers post with Slack's `chat.postMessage` (overridable with
 * `$TEZT_CLOUD_SLACK_API_URL`, for tests) and the bot token from a credentials file, never from the configuration.
 * An alert added again under the same name replaces the previous one.
 */
import { Alert, CloudError } from "@tezt-cloud/core"
import { Effect, Semaphore } from "effect"
import type * as Alertmanager from "./Alertmanager.ts"
import type * as Prometheus from "./Prometheus.ts"

/** Where Slack's `chat.postMessage` is, unless `$TEZT_CLOUD_SLACK_API_URL` says otherwise. */
export const defaultSlackApiUrl = "https://slack.com/api/chat.postMessage"

/** The Slack API URL: `$TEZT_CLOUD_SLACK_API_URL` (a stand-in for Slack, in tests), else Slack's. */
export const slackApiUrl = (env: Readonly<Record<string, string | undefined>>): string =>
  env.TEZT_CLOUD_SLACK_API_URL === undefined || env.TEZT_CLOUD_SLACK_API_URL === ""
    ? defaultSlackApiUrl
    : env.TEZT_CLOUD_SLACK_API_URL

/** What the run gives its receivers: the alert handlers and Slack (the token stays out of every file but one). */
export interface Settings {
  readonly handlers: ReadonlyArray<Alert.Handler>
  readonly slackChannel: string | undefined
  readonly slackToken: string | undefined
  readonly slackApiUrl: string
}

/** The name of the credentials file holding Slack's bot token (`Alertmanager.Options.secrets`). */
export const slackTokenSecret = "slack-bot-token"

/** The Prometheus rule file for `alerts`: one group per `group` (default `tezt`), at the smallest interval given. */
export const renderRules = (alerts: ReadonlyArray<Alert.Alert>): string => {
  const groups = new Map<string, Array<Alert.Alert>>()
  for (const alert of alerts) {
    const name = alert.group ?? "tezt"
    groups.set(name, [...(groups.get(name) ?? []), alert])
  }
  return JSON.stringify(
    {
      groups: [...groups.entries()].map(([name, members]) => {
        const intervals = members.flatMap((a) => a.interval === undefined ? [] : [a.interval])
        const interval = intervals.toSorted((a, b) => seconds(a) - seconds(b))[0]
        return {
          name,
          ...(interval === undefined ? {} : { interval }),
          rules: members.map((a) => ({
            alert: a.name,
            expr: a.expr,
            for: a.for ?? "0s",
            labels: { severity: a.severity ?? "warning" },
            annotations: {
              ...(a.summary === undefined ? {} : { summary: a.summary }),
              ...(a.description === undefined ? {} : { description: a.description })
            }
          }))
        }
      })
    },
    null,
    2
  ) + "\n"
}

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }

/** A Prometheus duration in seconds (`1h30m` is 5400). */
export const seconds = (duration: string): number =>
  [...duration.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)].reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0)

const slackConfig = (settings: Settings, channel: string | undefined, tokenFile: string | undefined) => ({
  api_url: settings.slackApiUrl,
  channel,
  send_resolved: true,
  title: "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})",
  text: "{{ range .Alerts }}{{ .Annotations.summary }}{{ if .Annotations.description }}: " +
    "{{ .Annotations.description }}{{ end }}\n{{ end }}",
  http_config: { authorization: { type: "Bearer", credentials_file: tokenFile } }
})

const webhookConfig = (url: string) => ({ url, send_resolved: true })

/** A receiver's configuration entry (without its name) for `handlers`. */
const handlersReceiver = (settings: Settings, tokenFile: string | undefined) => {
  const slack = settings.handlers.filter((h) => h._tag === "Slack")
  const webhooks = settings.handlers.flatMap((h) => h._tag === "Webhook" ? [h.url] : [])
  return {
    ...(slack.length === 0 ? {} : { slack_configs: [slackConfig(settings, settings.slackChannel, tokenFile)] }),
    ...(webhooks.length === 0 ? {} : { webhook_configs: webhooks.map(webhookConfig) })
  }
}

const none = "none"
const handlers = "handlers"

/** The receiver an alert's route goes to. */
const receiverName = (alert: Alert.Alert, settings: Settings): string => {
  const receiver = alert.receiver ?? { _tag: "Handlers" }
  switch (receiver._tag) {
    case "Handlers":
      return settings.handlers.length === 0 ? none : handlers
    case "None":
      return none
    case "Slack":
    case "Webhook":
      return `alert:${alert.name}`
  }
}

/**
 * Alertmanager's configuration for `alerts`: a route per alert (by `alertname`), the run's handlers as the
 * receiver `handlers`, an alert's own receiver as `alert:<name>`, and `none` for the rest. `tokenFile` is the
 * credentials file of Slack's bot token.
 */
export const renderAlertmanager = (
  alerts: ReadonlyArray<Alert.Alert>,
  settings: Settings,
  tokenFile: string | undefined
): string => {
  const own = alerts.flatMap((alert): Array<Record<string, unknown>> => {
    const receiver = alert.receiver
    if (receiver?._tag === "Slack") {
      return [{
        name: receiverName(alert, settings),
        slack_configs: [slackConfig(settings, receiver.channel ?? settings.slackChannel, tokenFile)]
      }]
    }
    if (receiver?._tag === "Webhook") {
      return [{ name: receiverName(alert, settings), webhook_configs: [webhookConfig(receiver.url)] }]
    }
    return []
  })
  return JSON.stringify(
    {
      route: {
        receiver: none,
        group_by: ["alertname"],
        routes: alerts.map((alert) => ({
          matchers: [`alertname="${alert.name}"`],
          receiver: receiverName(alert, settings),
          ...(alert.route?.groupWait === undefined ? {} : { group_wait: alert.route.groupWait }),
          ...(alert.route?.groupInterval === undefined ? {} : { group_interval: alert.route.groupInterval }),
          ...(alert.route?.repeatInterval === undefined ? {} : { repeat_interval: alert.route.repeatInterval })
        }))
      },
      receivers: [
        { name: none },
        ...(settings.handlers.length === 0 ? [] : [{ name: handlers, ...handlersReceiver(settings, tokenFile) }]),
        ...own
      ],
      inhibit_rules: []
    },
    null,
    2
  ) + "\n"
}

/** The run's alerts, once started (`make`). */
export interface Alerts {
  /** Checks `alert`, adds (or replaces) it, and reloads Prometheus and Alertmanager (started the first time). */
  add(alert: Alert.Alert): Effect.Effect<void, CloudError.CloudError>
  /** Starts Alertmanager now, if it is not yet (a run with alert handlers). */
  readonly start: Effect.Effect<void, CloudError.CloudError>
  /** The running Alertmanager, if any. */
  readonly alertmanager: Effect.Effect<Alertmanager.Alertmanager["Service"] | undefined>
}

/**
 * The run's alerts for `prometheus` (none: alerts are checked, then ignored, as sources are), with `start`
 * starting Alertmanager (in the run's scope) with the first configuration it is given.
 */
export const make = (options: {
  readonly settings: Settings
  readonly prometheus: Prometheus.Prometheus["Service"] | undefined
  readonly start: (
    config: (tokenFile: string | undefined) => string
  ) => Effect.Effect<Alertmanager.Alertmanager["Service"], CloudError.CloudError>
}): Effect.Effect<Alerts> =>
  Effect.gen(function*() {
    const { prometheus, settings } = options
    const lock = yield* Semaphore.make(1)
    let alerts: ReadonlyArray<Alert.Alert> = []
    let alertmanager: Alertmanager.Alertmanager["Service"] | undefined
    let tokenFile: string | undefined
    const started = Effect.gen(function*() {
      if (alertmanager !== undefined) return alertmanager
      alertmanager = yield* options.start((file) => {
        tokenFile = file
        return renderAlertmanager(alerts, settings, file)
      })
      return alertmanager
    })
    const slack: Alert.SlackSettings = { channel: settings.slackChannel, hasToken: settings.slackToken !== undefined }
    const add = Effect.fn("Alerts.add")(
      function*(alert: Alert.Alert) {
        const invalid = Alert.check(alert, slack)
        if (invalid !== undefined) return yield* invalid
        if (prometheus === undefined) {
          return yield* Effect.logDebug(`addAlert ${alert.name}: no Prometheus in this run, the alert is ignored`)
        }
        const before = alerts
        alerts = [...alerts.filter((a) => a.name !== alert.name), alert]
        yield* Effect.gen(function*() {
          const manager = yield* started
          yield* manager.configure(renderAlertmanager(alerts, settings, tokenFile))
          yield* prometheus.setAlerting(manager.address, renderRules(alerts), alerts.map((a) => a.name))
          yield* Effect.logInfo(`alert ${alert.name} added: ${alert.expr}`)
        }).pipe(Effect.tapError(() => Effect.sync(() => void (alerts = before))))
      },
      (effect) => lock.withPermit(effect)
    )
    return {
      add,
      start: lock.withPermit(started).pipe(
        Effect.andThen((manager) =>
          prometheus === undefined ? Effect.void : prometheus.setAlerting(manager.address, renderRules(alerts), [])
        )
      ),
      alertmanager: Effect.sync(() => alertmanager)
    }
  })
