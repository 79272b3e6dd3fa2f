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

const slackTexts = {
  send_resolved: true,
  title: "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})",
  text: "{{ range .Alerts }}{{ .Annotations.summary }}{{ if .Annotations.description }}: " +
    "{{ .Annotations.description }}{{ end }}\n{{ end }}"
}

/** Slack's `chat.postMessage` with the bot token of `tokenFile`. */
const slackConfig = (settings: Settings, channel: string | undefined, tokenFile: string | undefined) => ({
  api_url: settings.slackApiUrl,
  channel,
  ...slackTexts,
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
    case "SlackWebhook":
    case "Webhook":
      return `alert:${alert.name}`
  }
}

/** The name of the secret holding the Slack webhook URL of alert `name` (`Alertmanager.writeSecret`). */
export const slackWebhookSecret = (name: string): string => `slack-webhook-${name.replaceAll(":", "_")}`

/** The secrets `alerts` need kept in files (Slack webhooks' URLs), by name. */
export const secretsOf = (alerts: ReadonlyArray<Alert.Alert>): Record<string, string> =>
  Object.fromEntries(
    alerts.flatMap((a) => a.receiver?._tag === "SlackWebhook" ? [[slackWebhookSecret(a.name), a.receiver.url]] : [])
  )

/**
 * Alertmanager's configuration for `alerts`: a route per alert (by `alertname`), the run's handlers as the
 * receiver `handlers`, an alert's own receiver as `alert:<name>`, and `none` for the rest. Secrets are named by
 * their files (`secretFile`): Slack's bot token (`slackTokenSecret`) and Slack webhooks' URLs
 * (`slackWebhookSecret`).
 */
export const renderAlertmanager = (
  alerts: ReadonlyArray<Alert.Alert>,
  settings: Settings,
  secretFile: (name: string) => string
): string => {
  const tokenFile = settings.slackToken === undefined ? undefined : secretFile(slackTokenSecret)
  const own = alerts.flatMap((alert): Array<Record<string, unknown>> => {
    const receiver = alert.receiver
    const name = receiverName(alert, settings)
    switch (receiver?._tag) {
      case "Slack":
        return [{ name, slack_configs: [slackConfig(settings, receiver.channel ?? settings.slackChannel, tokenFile)] }]
      case "SlackWebhook":
        return [{
          name,
          slack_configs: [{
            api_url_file: secretFile(slackWebhookSecret(alert.name)),
            ...(receiver.channel === undefined ? {} : { channel: receiver.channel }),
            ...slackTexts
          }]
        }]
      case "Webhook":
        return [{ name, webhook_configs: [webhookConfig(receiver.url)] }]
      default:
        return []
    }
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
    config: (secretFile: (name: string) => string) => string
  ) => Effect.Effect<Alertmanager.Alertmanager["Service"], CloudError.CloudError>
}): Effect.Effect<Alerts> =>
  Effect.gen(function*() {
    const { prometheus, settings } = options
    const lock = yield* Semaphore.make(1)
    let alerts: ReadonlyArray<Alert.Alert> = []
    let alertmanager: Alertmanager.Alertmanager["Service"] | undefined
    const started = Effect.gen(function*() {
      if (alertmanager !== undefined) return alertmanager
      alertmanager = yield* options.start((secretFile) => renderAlertmanager(alerts, settings, secretFile))
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
        yield* Effect.gen(function*() {
          // Started with the alerts before this one, whose secrets are written.
          const manager = yield* started
          alerts = [...alerts.filter((a) => a.name !== alert.name), alert]
          for (const [name, value] of Object.entries(secretsOf([alert]))) yield* manager.writeSecret(name, value)
          yield* manager.configure(renderAlertmanager(alerts, settings, manager.secretFile))
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
