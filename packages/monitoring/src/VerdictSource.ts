/**
 * The run's Prometheus as the source of the scenario's verdicts (core's `Verdict.Source`): a criterion's PromQL is
 * checked by Prometheus itself when it is declared, judged through the instant-query API, and before the final
 * judgment every target that is not down is scraped once more, so the scenario's last samples count.
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
 * Waits until `prometheus` has all its jobs' targets (its discovery takes a few seconds to list new ones) and every
 * one that is not down (up, or not scraped yet) was scraped after this call began, polling its targets API (fails
 * after two scrape intervals and thirty seconds); then until a window's subquery would see that last scrape.
 */
export const settle = (prometheus: Prometheus.Prometheus["Service"], scrapeInterval: number) =>
  Effect.gen(function*() {
    const since = Date.now()
    const expected = (yield* prometheus.jobs).reduce((n, job) => n + job.targets.length, 0)
    const pending = Http.ok(service, `${prometheus.url}/api/v1/targets?state=active`).pipe(
      Effect.map((body) => {
        const targets = (JSON.parse(body) as Targets).data?.activeTargets ?? []
        const scraped = targets.map((t) => Date.parse(t.lastScrape ?? ""))
        return {
          left: Math.max(0, expected - targets.length) +
            targets.filter((t, i) => t.health !== "down" && !(scraped[i]! > since)).length,
          last: Math.max(since, ...scraped.filter((at) => Number.isFinite(at)))
        }
      })
    )
    const lastScrape = yield* pending.pipe(
      Effect.flatMap(({ last, left }) =>
        left === 0
          ? Effect.succeed(last)
          : Effect.fail(CloudError.service(service, `${left} target(s) not scraped since the scenario ended`))
      ),
      Effect.retry(Schedule.spaced("200 millis")),
      Effect.timeoutOrElse({
        duration: Duration.seconds(2 * scrapeInterval + 30),
        orElse: () =>
          Effect.fail(CloudError.service(service, `no scrape of every target within ${2 * scrapeInterval + 30}s`))
      })
    )
    // A window's subquery steps fall on multiples of the scrape interval: the last sample counts from the next one.
    const step = scrapeInterval * 1000
    yield* Effect.sleep(Duration.millis(Math.max(0, Math.ceil(lastScrape / step) * step + 1 - Date.now())))
  })

/** The `error` of an answer of Prometheus' API, else the answer itself. */
const errorOf = (body: string): string => {
  const parsed = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Struct({ error: Schema.String })))(body)
  return parsed._tag === "Some" ? parsed.value.error : body
}

/** The criteria's source on `prometheus`, scraping every `scrapeInterval` seconds. */
export const make = (prometheus: Prometheus.Prometheus["Service"], scrapeInterval: number): Verdict.Source => {
  const url = prometheus.url
  return {
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
    settle: settle(prometheus, scrapeInterval),
    samples: (criterion) => Prometheus.query(url, Verdict.expression(criterion))
  }
}
