/**
 * End-to-end monitoring with the real executable and the real Debian binaries: `BASIC monitoring health` passes
 * (Grafana checked against a fake one when on), its snapshot re-opens with `CLOUD prometheus import`, netdata
 * and the process exporters reach Prometheus, and nothing is left behind.
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fakeGrafana, freePort, freeRange, liveWith } from "../packages/monitoring/test/utils.ts"
import { fresh, noProcessLeft, root, start } from "./fixtures/Cli.ts"

/** Free ports for the website, Prometheus and the agents, and a fresh export path. */
const monitoringArgs = async () => {
  const exportPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-e2e-")), "snapshot")
  const args = [
    "--website-port",
    String(await freePort()),
    "--prometheus-port",
    String(await freePort()),
    "--vm-base-port",
    String(await freeRange(50)),
    "--prometheus-scrape-interval",
    "1",
    "--prometheus-export-path",
    exportPath
  ]
  return { args, exportPath }
}

const live = (name: string, body: () => Promise<void>) => liveWith("prometheus")(name, () => Effect.promise(body))

/** `GET` a JSON document from 127.0.0.1. */
const getJson = async (url: string) => (await (await fetch(url)).json()) as unknown

/** The value of the first series of an instant query, when there is one. */
const queryValue = async (prometheus: string, promql: string) => {
  const body = (await getJson(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`)) as {
    data?: { result?: Array<{ value: [number, string] }> }
  }
  return body.data?.result?.[0]?.value[1]
}

describe("tezt-cloud monitoring", () => {
  live(
    "BASIC monitoring health passes with the real Prometheus; its snapshot re-opens with CLOUD prometheus import",
    async () => {
      const { env, namespace } = fresh()
      const { args, exportPath } = await monitoringArgs()
      const cli = start(
        [
          "BASIC",
          "monitoring",
          "health",
          "--localhost",
          "--website",
          "--prometheus",
          "--tezt-cloud",
          namespace,
          ...args
        ],
        env
      )
      assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
      for (
        const line of [
          "/-/ready: 200",
          "tezt_monitoring_test is on /metrics",
          "Prometheus scraped tezt_monitoring_test",
          "Grafana is off (--grafana): not checked",
          "Scenario ended successfully."
        ]
      ) assert.include(cli.stdout(), line)
      assert.include(cli.stdout(), `You can find the prometheus snapshot at ${exportPath}`)
      assert.deepStrictEqual(await noProcessLeft(namespace), [])

      const port = await freePort()
      const prometheus = `http://127.0.0.1:${port}`
      const importer = start(
        ["CLOUD", "prometheus", "import", "--prometheus-snapshots", `${exportPath}:${port}`, "--tezt-cloud", namespace],
        env,
        { stdin: "pipe" }
      )
      await importer.waitFor(`is served at ${prometheus}`)
      await importer.waitFor("Type \"stop\"")
      assert.strictEqual(await queryValue(prometheus, "last_over_time(tezt_monitoring_test[1h])"), "1")
      importer.proc.stdin!.write("stop\n")
      assert.strictEqual(await importer.exit, 0, importer.stderr())
      assert.deepStrictEqual(await noProcessLeft(namespace), [])
    }
  )

  live("with --grafana, the health check asks Grafana too, and the dashboards are uploaded", () =>
    Effect.runPromise(
      Effect.gen(function*() {
        const grafana = yield* fakeGrafana()
        const { env, namespace } = fresh()
        const { args } = yield* Effect.promise(monitoringArgs)
        const cli = start(
          [
            "BASIC",
            "monitoring",
            "health",
            "--localhost",
            "--grafana",
            "--grafana-url",
            grafana.url,
            "--no-prometheus-export",
            "--tezt-cloud",
            namespace,
            ...args
          ],
          env
        )
        const code = yield* Effect.promise(() => cli.exit)
        assert.strictEqual(code, 0, cli.stdout() + cli.stderr())
        assert.include(cli.stdout(), `Grafana ${grafana.url}/api/health: 200`)
        assert.deepStrictEqual([...grafana.dashboards.keys()].toSorted(), ["tezt-cloud-agents", "tezt-cloud-metrics"])
        assert.deepInclude(grafana.datasources.get("tezt-cloud-prometheus"), { name: "Prometheus" })
      }).pipe(Effect.scoped)
    ))

  liveWith("prometheus", "netdata", "prometheus-process-exporter")(
    "netdata and the process exporters run on each agent and are scraped; nothing is left after",
    () =>
      Effect.promise(async () => {
        const { env, namespace } = fresh()
        const { args } = await monitoringArgs()
        const cli = start(
          ["MONITORING", "agents", "--localhost", "--prometheus", "--monitoring", "--tezt-cloud", namespace, ...args],
          { ...env, TEZT_CLOUD_SCENARIOS: path.join(root, "test/fixtures/MonitoringScenarios.ts") }
        )
        assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
        for (
          const line of [
            "netdata of both agents scraped",
            "process exporters of both agents scraped",
            "the website lists them"
          ]
        ) assert.include(cli.stdout(), line)
        assert.deepStrictEqual(await noProcessLeft(namespace), [])
      }),
    120_000
  )
})
