/**
 * The BASIC group: self-checks of a deployment, as in Tezt cloud. `simple health` is the README's first command.
 */
import { Cloud, CloudError, Scenario } from "@tezt-cloud/core"
import { Effect, Schedule } from "effect"
import * as NetworkProbe from "./NetworkProbe.ts"

/**
 * Two agents each run `echo "Hello world"`. Copes with a single agent (`--vms-limit 1`): agent 1 is then
 * agent 0 again, as in Tezt cloud.
 */
export const simpleHealth = Scenario.make({
  title: "Simple health check to check local configuration",
  tags: ["simple", "health"],
  vms: (config) => Array.from({ length: Math.max(1, Math.min(2, config.vmsLimit ?? 2)) }, () => ({})),
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const agents = cloud.agents
    for (const i of [0, 1]) {
      const agent = agents[i % agents.length]!
      const out = yield* agent.run("echo", ["Hello world"])
      yield* Effect.logInfo(`${out.trim()} from agent ${i}`)
    }
  })
})

/**
 * Between two agents: an echo server on agent 1, six request/responses from agent 0 on one connection; prints
 * their round-trip time (what `--tc-delay` adds) and its spread (what `--tc-jitter` adds), and a 64 KiB
 * transfer's time. With a single agent (`--vms-limit 1`) it measures the agent with itself.
 */
export const networkHealth = Scenario.make({
  title: "Network health between two agents",
  tags: ["network", "health"],
  vms: (config) => Array.from({ length: Math.max(1, Math.min(2, config.vmsLimit ?? 2)) }, () => ({})),
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const client = cloud.agents[0]!
    const server = yield* NetworkProbe.echoServer(cloud.agents[1 % cloud.agents.length]!)
    const times = yield* NetworkProbe.roundTrips(client, server, 6)
    const s = NetworkProbe.summary(times)
    const ms = (n: number) => `${n.toFixed(1)} ms`
    yield* Effect.logInfo(
      `round trip ${client.name} -> ${server.agent.name}:${server.port}: mean ${ms(s.mean)}, min ${ms(s.min)}, ` +
        `max ${ms(s.max)}`
    )
    yield* Effect.logInfo(`jitter (spread of round trips): ${ms(s.spread)}, standard deviation ${ms(s.deviation)}`)
    const fetched = yield* NetworkProbe.transfer(client, server, 65536)
    yield* Effect.logInfo(`transfer of ${fetched.bytes} bytes: ${ms(fetched.millis)}`)
  })
})

/** A detached `sleep 10` returns at once and is still running afterwards; the run's teardown stops it. */
export const runDetach = Scenario.make({
  title: "Run a command and detach in a vm",
  tags: ["run", "detach"],
  vms: [{}],
  run: Effect.gen(function*() {
    const cloud = yield* Cloud.Cloud
    const agent = cloud.agents[0]!
    const daemon = yield* agent.spawn("sleep", "sleep", ["10"])
    if (!(yield* daemon.isRunning)) {
      return yield* Effect.fail(new Error("the detached sleep is not running right after it was started"))
    }
    yield* Effect.logInfo(`detached "sleep 10" returned at once on ${agent.name} (pid ${daemon.pid})`)
  })
})

const failed = (message: string) => CloudError.service("monitoring health", message)

/**
 * The monitoring package, loaded when the check runs: the group's other scenarios, `--help` and `--list` do
 * without it.
 */
const monitoring = Effect.promise(() => import("@tezt-cloud/monitoring"))

/** `GET url` must answer 200. */
const expectOk = (what: string, url: string) =>
  Effect.flatMap(monitoring, ({ Endpoints }) => Endpoints.get(url)).pipe(
    Effect.flatMap((r) => r.status === 200 ? Effect.void : Effect.fail(failed(`${what} ${url} answered ${r.status}`))),
    Effect.tap(() => Effect.logInfo(`${what} ${url}: 200`))
  )

/**
 * With one agent: the website's `/`, Prometheus' `/-/ready`, Grafana's `/api/health` (only with `--grafana`) and
 * `/metrics` answer 200; a pushed `tezt_monitoring_test` is on `/metrics` right away, and Prometheus scrapes it
 * within a few scrape intervals. The website is required: it is where pushed metrics go.
 */
export const monitoringHealth = Scenario.make({
  title: "Health check for monitoring services",
  tags: ["monitoring", "health"],
  vms: [{}],
  run: Effect.gen(function*() {
    const { Endpoints, Prometheus } = yield* monitoring
    const cloud = yield* Cloud.Cloud
    const config = cloud.config
    if (!config.website) {
      return yield* failed("the website is off, so /metrics cannot be checked: run with --website (and --prometheus)")
    }
    const website = Endpoints.website(config)
    yield* expectOk("website", `${website}/`)
    if (config.prometheus) yield* expectOk("Prometheus", `${Endpoints.prometheus(config)}/-/ready`)
    else yield* Effect.logInfo("Prometheus is off (--prometheus): not checked")
    if (config.grafana) yield* expectOk("Grafana", `${Endpoints.grafana(config)}/api/health`)
    else yield* Effect.logInfo("Grafana is off (--grafana): not checked")
    yield* expectOk("metrics", `${website}/metrics`)
    yield* cloud.pushMetric({ name: "tezt_monitoring_test", value: 1, help: "BASIC monitoring health", type: "gauge" })
    const metrics = (yield* Endpoints.get(`${website}/metrics`)).body
    if (!/^tezt_monitoring_test 1$/m.test(metrics)) {
      return yield* failed(`tezt_monitoring_test is not on ${website}/metrics right after pushMetric`)
    }
    yield* Effect.logInfo("tezt_monitoring_test is on /metrics")
    if (config.prometheus) {
      // Scraped within a few intervals; bounded, so a broken scrape fails instead of hanging.
      const attempts = (config.prometheusScrapeInterval * 3 + 10) * 4
      yield* Prometheus.query(Endpoints.prometheus(config), "tezt_monitoring_test").pipe(
        Effect.flatMap((samples) =>
          samples.some((s) => s.value === "1")
            ? Effect.void
            : Effect.fail(failed(`Prometheus has not scraped tezt_monitoring_test from ${website}/metrics`))
        ),
        Effect.retry({ schedule: Schedule.spaced("250 millis"), times: attempts })
      )
      yield* Effect.logInfo("Prometheus scraped tezt_monitoring_test")
    }
  })
})

export const group = Scenario.group("BASIC", "Self-checks of a deployment", [
  simpleHealth,
  runDetach,
  monitoringHealth,
  networkHealth
])
