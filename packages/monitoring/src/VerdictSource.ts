/**
 * The run's Prometheus as the source of the scenario's verdicts (core's `Verdict.Source`): a criterion's PromQL is
 * checked by Prometheus itself when it is declared, judged through the instant-query API, and before the final
 * judgment every target that answers is scraped once more, so the scenario's last samples count.
 */
import { CloudError, Verdict } from "@tezt-cloud/core"
import { Duration, Effect, Schedule, Schema } from "effect"
import * as Http from "./internal/http.ts"
import * as Prometheus from "./Prometheus.ts"

const service = "prometheus"

interface Targets {
  readonly data?: {
    readonly activeTargets?: ReadonlyArray<{ readonly health?: string; readonly lastScrape?: string }>
  }
}

/**
 * Waits until every target of the Prometheus at `url` that is up was scraped after this call began, polling its
 * targets API; fails after two scrape intervals and five seconds.
 */
export const settle = (url: string, scrapeInterval: number) =>
  Effect.gen(function*() {
    const since = Date.now()
    const pending = Http.ok(service, `${url}/api/v1/targets?state=active`).pipe(
      Effect.map((body) =>
        ((JSON.parse(body) as Targets).data?.activeTargets ?? [])
          .filter((t) => t.health === "up" && !(Date.parse(t.lastScrape ?? "") > since)).length
      )
    )
    yield* pending.pipe(
      Effect.flatMap((left) =>
        left === 0
          ? Effect.void
          : Effect.fail(CloudError.service(service, `${left} target(s) not scraped since the scenario ended`))
      ),
      Effect.retry(Schedule.spaced("200 millis")),
      Effect.timeoutOrElse({
        duration: Duration.seconds(2 * scrapeInterval + 5),
        orElse: () =>
          Effect.fail(CloudError.service(service, `no scrape of every target within ${2 * scrapeInterval + 5}s`))
      })
    )
  })

/** The `error` of an answer of Prometheus' API, else the answer itself. */
const errorOf = (body: string): string => {
  const parsed = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Struct({ error: Schema.String })))(body)
  return parsed._tag === "Some" ? parsed.value.error : body
}

/** The criteria's source on the Prometheus at `url`, scraping every `scrapeInterval` seconds. */
export const make = (url: string, scrapeInterval: number): Verdict.Source => ({
  check: (criterion) =>
    Http.request(service, `${url}/api/v1/query?query=${encodeURIComponent(Verdict.expression(criterion))}`).pipe(
      Effect.flatMap((response) => {
        if (response.status >= 200 && response.status < 300) return Effect.void
        const error = errorOf(response.body)
        return Effect.fail(
          response.status === 400
            ? CloudError.criterion(criterion.name, `Prometheus refuses ${Verdict.expression(criterion)}: ${error}`)
            : CloudError.service(service, `a query answered ${response.status}: ${error}`)
        )
      })
    ),
  settle: settle(url, scrapeInterval),
  samples: (criterion) => Prometheus.query(url, Verdict.expression(criterion))
})
