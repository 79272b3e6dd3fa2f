/**
 * Plain HTTP requests to the run's services (Prometheus, Grafana, exporters, the website), as Effects that are
 * interrupted with their fiber and fail with a `ServiceFailed` naming the service.
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"

export interface Response {
  readonly status: number
  readonly body: string
}

/** Sends one request; only a connection failure is an error, any HTTP status is a response. */
export const request = (
  service: string,
  url: string,
  init: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string } = {}
): Effect.Effect<Response, CloudError.CloudError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { ...init, signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) })
      return { status: response.status, body: await response.text() }
    },
    catch: (e) => CloudError.service(service, `${init.method ?? "GET"} ${url}: ${causeOf(e)}`, { cause: e })
  })

/** Like `request`, but a status other than 2xx is an error quoting the body's start. */
export const ok = (
  service: string,
  url: string,
  init: Parameters<typeof request>[2] = {}
): Effect.Effect<string, CloudError.CloudError> =>
  request(service, url, init).pipe(
    Effect.flatMap((response) =>
      response.status >= 200 && response.status < 300
        ? Effect.succeed(response.body)
        : Effect.fail(
          CloudError.service(
            service,
            `${init.method ?? "GET"} ${url} answered ${response.status}: ${oneLine(response.body).slice(0, 300)}`
          )
        )
    )
  )

/** `fetch` hides the reason (ECONNREFUSED, …) in `cause`. */
const causeOf = (e: unknown): string => {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined
  return oneLine(cause ?? CloudError.messageOf(e))
}

const oneLine = (text: string) => text.replaceAll(/\s+/g, " ").trim()
