/**
 * The scenario's own reports (`Cloud.notify`): each is a line of the run's log and events, and, when the run has a
 * Slack channel and bot token, a message posted with Slack's `chat.postMessage`. The token only travels in the
 * request's `Authorization` header.
 */
import { CloudError, RunServices } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as Http from "./internal/http.ts"

export interface Slack {
  /** `chat.postMessage`'s URL (`Alerts.slackApiUrl`). */
  readonly apiUrl: string
  readonly channel: string
  readonly token: string
}

const service = "notifier"

/** Posts `text` to Slack; an answer other than `{"ok": true}` is a `ServiceFailed` quoting Slack's error. */
export const postToSlack = Effect.fn("Notifier.postToSlack")(function*(slack: Slack, text: string) {
  const response = yield* Http.request(service, slack.apiUrl, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8", authorization: `Bearer ${slack.token}` },
    body: JSON.stringify({ channel: slack.channel, text })
  })
  const answer = yield* Effect.try({
    try: () => JSON.parse(response.body) as { ok?: boolean; error?: string },
    catch: () => CloudError.service(service, `Slack answered ${response.status} with no JSON`)
  })
  if (response.status !== 200 || answer.ok !== true) {
    return yield* CloudError.service(service, `Slack answered ${response.status}: ${answer.error ?? "not ok"}`)
  }
})

/** `notify` for a run: logged always, posted to `slack` too when given (a failure to post is a warning). */
export const make = (slack: Slack | undefined) => (text: string): Effect.Effect<void> =>
  RunServices.logNotification(text).pipe(
    Effect.andThen(
      slack === undefined ? Effect.void : postToSlack(slack, text).pipe(
        Effect.catch((e) => Effect.logWarning(`notification not posted to Slack: ${e.message}`))
      )
    )
  )
