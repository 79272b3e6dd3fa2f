/**
 * Alerts a scenario adds to its run (`Cloud.addAlert`): a PromQL condition the run's Prometheus evaluates, and
 * the receiver the run's Alertmanager sends it to once it fires; and the alert handlers of `--alert-handler`, the
 * receivers every alert goes to unless it names its own.
 *
 * **Details**
 *
 * An `--alert-handler` is `slack` (Slack's `chat.postMessage` to `--slack-channel-id`, with the bot token of
 * `$TEZTCLOUD_SLACK_BOT_TOKEN`) or an `http://` / `https://` URL (Alertmanager's webhook: its JSON is POSTed
 * there). The checks here are those that need no running service: names, durations, handlers; Prometheus checks
 * the expression when the rule is loaded.
 */
import * as CloudError from "./CloudError.ts"

export type Severity = "critical" | "warning" | "info"

/** Where a firing alert goes. */
export type Receiver =
  /** Every `--alert-handler` of the run (none: the alert only shows in Prometheus and Alertmanager). */
  | { readonly _tag: "Handlers" }
  /** Slack's `chat.postMessage` with the run's bot token, to `channel` (by default `--slack-channel-id`). */
  | { readonly _tag: "Slack"; readonly channel?: string | undefined }
  /**
   * Slack's incoming webhook `url` (a secret: Alertmanager reads it from a 0600 file of its private dir), to its
   * own channel or to `channel`.
   */
  | { readonly _tag: "SlackWebhook"; readonly url: string; readonly channel?: string | undefined }
  /** Alertmanager's webhook: its JSON body POSTed to `url` (written in Alertmanager's configuration). */
  | { readonly _tag: "Webhook"; readonly url: string }
  /** Nowhere (the alert is still evaluated and listed). */
  | { readonly _tag: "None" }

/** How Alertmanager groups and repeats an alert's notifications (its route's timers). */
export interface Route {
  /** Before the first notification of a new group; Alertmanager's default is 30s. */
  readonly groupWait?: string | undefined
  /** Before notifying again about a group that got new alerts; default 5m. */
  readonly groupInterval?: string | undefined
  /** Before repeating a notification that did not change; default 4h. */
  readonly repeatInterval?: string | undefined
}

export interface Alert {
  /** The alert's name (`alertname`): letters, digits, `_` and `:`, not starting with a digit; unique in the run. */
  readonly name: string
  /** The PromQL condition: the alert fires for each series it returns. */
  readonly expr: string
  /** How long the condition must hold before the alert fires (`for`); default `0s`. */
  readonly for?: string | undefined
  /** Default `warning`. */
  readonly severity?: Severity | undefined
  readonly summary?: string | undefined
  readonly description?: string | undefined
  /** Default: the run's alert handlers. */
  readonly receiver?: Receiver | undefined
  readonly route?: Route | undefined
  /** The Prometheus rule group it belongs to (default `tezt`); a group is evaluated at the smallest interval given. */
  readonly group?: string | undefined
  /** How often its group is evaluated; default: the scrape interval. */
  readonly interval?: string | undefined
}

/** An `--alert-handler`, parsed. */
export type Handler =
  | { readonly _tag: "Slack" }
  | { readonly _tag: "Webhook"; readonly url: string }

const namePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const durationPattern = /^(?:\d+(?:ms|s|m|h|d|w|y))+$/

/** Whether `text` is a Prometheus duration (`30s`, `1h30m`, `0s`). */
export const isDuration = (text: string): boolean => durationPattern.test(text)

const isUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return url.protocol === "http:" || url.protocol === "https:"
  } catch {
    return false
  }
}

/** `--alert-handler`'s value, or `undefined` when it is neither `slack` nor an http(s) URL. */
export const parseHandler = (text: string): Handler | undefined =>
  text === "slack" ? { _tag: "Slack" } : isUrl(text) ? { _tag: "Webhook", url: text } : undefined

/** What an alert handler or receiver needs that the run has not: Slack needs both a channel and the bot token. */
export interface SlackSettings {
  readonly channel: string | undefined
  readonly hasToken: boolean
}

/** Why Slack cannot be posted to with `settings` (`channel` given by the receiver), or `undefined` when it can. */
export const slackMissing = (settings: SlackSettings, channel = settings.channel): string | undefined =>
  channel === undefined && !settings.hasToken
    ? "Slack needs --slack-channel-id and the bot token in $TEZTCLOUD_SLACK_BOT_TOKEN"
    : channel === undefined
    ? "Slack needs a channel: give --slack-channel-id"
    : !settings.hasToken
    ? "Slack needs the bot token: set $TEZTCLOUD_SLACK_BOT_TOKEN"
    : undefined

/**
 * Checks an alert before anything is written: a one-line `ConfigInvalid` (option `addAlert`) naming the field and
 * the fix. `slack` tells whether a Slack receiver can post.
 */
export const check = (alert: Alert, slack: SlackSettings): CloudError.CloudError | undefined => {
  const bad = (message: string) => CloudError.config("addAlert", `${JSON.stringify(alert.name)}: ${message}`)
  if (!namePattern.test(alert.name)) {
    return bad("the name must be letters, digits, _ and :, not starting with a digit")
  }
  if (alert.expr.trim() === "") return bad("the expression is empty")
  const durations = [
    ["for", alert.for],
    ["interval", alert.interval],
    ["route.groupWait", alert.route?.groupWait],
    ["route.groupInterval", alert.route?.groupInterval],
    ["route.repeatInterval", alert.route?.repeatInterval]
  ] as const
  for (const [field, value] of durations) {
    if (value !== undefined && !isDuration(value)) {
      return bad(`${field} ${JSON.stringify(value)} is not a duration such as 30s, 5m or 1h30m`)
    }
  }
  const receiver = alert.receiver
  if (receiver?._tag === "Webhook" && !isUrl(receiver.url)) {
    return bad(`the webhook ${JSON.stringify(receiver.url)} is not an http(s) URL`)
  }
  // Not quoted: the URL of a Slack webhook is its secret.
  if (receiver?._tag === "SlackWebhook" && !isUrl(receiver.url)) return bad("the Slack webhook is not an http(s) URL")
  if (receiver?._tag === "Slack") {
    const missing = slackMissing(slack, receiver.channel ?? slack.channel)
    if (missing !== undefined) return bad(missing)
  }
  return undefined
}
