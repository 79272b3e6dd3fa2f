/**
 * End-to-end monitoring with the real executable and the real Debian binaries: `BASIC monitoring health` passes
 * (Grafana checked against a fake one when on), its snapshot re-opens with `CLOUD prometheus import`, netdata
 * and the process exporters reach Prometheus, and nothing is left behind, even after a `kill -9` and
 * `CLOUD clean up`.
 */
import { afterAll, assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fakeGrafana, freePort, freeRange, liveWith, which } from "../packages/monitoring/test/utils.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import { type Cli, fresh, noProcessLeft, outstanding, root, running, start } from "./fixtures/Cli.ts"
import * as Integration from "./fixtures/Integration.ts"
import { isLoopback, listening } from "./fixtures/Listeners.ts"
import * as SshHosts from "./fixtures/SshHosts.ts"

/** Where this file's export paths go: removed after the file. */
const exportRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-e2e-"))
afterAll(() => fs.rmSync(exportRoot, { recursive: true, force: true }))

/** Free ports for the website, Prometheus and the agents, and a fresh export path. */
const monitoringArgs = async () => {
  const exportPath = path.join(fs.mkdtempSync(path.join(exportRoot, "run-")), "snapshot")
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

/** Every run here starts Prometheus (and more): each test gets the two minutes the slowest needs under load. */
const live = (name: string, body: () => Promise<void>) =>
  liveWith("prometheus")(name, () => Effect.promise(body), 120_000)

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

  live(
    "after kill -9 of a run and of an import, CLOUD clean up leaves no Prometheus storage and no Prometheus",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const { args } = await monitoringArgs()
      /** Prometheus' storage directories of the namespace, and its Prometheus processes. */
      const storage = () =>
        fs.readdirSync(os.tmpdir()).filter((entry) => entry.startsWith(`tezt-cloud-${namespace}-prometheus-`))
      const prometheusProcesses = () => running(namespace, [which("prometheus")!])
      const run = start(["TEST", "block", "--localhost", "--prometheus", "--tezt-cloud", namespace, ...args], env)
      await run.waitFor("ready for signal")
      run.proc.kill("SIGKILL")
      await run.exit
      // A snapshot to import: any TSDB directory will do, an empty one too.
      const snapshot = fs.mkdtempSync(path.join(stateDir, "snapshot-"))
      const port = await freePort()
      const importer = start(
        ["CLOUD", "prometheus", "import", "--prometheus-snapshots", `${snapshot}:${port}`, "--tezt-cloud", namespace],
        env,
        { stdin: "pipe" }
      )
      await importer.waitFor("is served at")
      importer.proc.kill("SIGKILL")
      await importer.exit
      // Both Prometheus outlive their CLI, each on its storage: the run's TSDB and the import's copy.
      assert.lengthOf(storage(), 2, storage().join(" "))
      assert.lengthOf(prometheusProcesses(), 2)
      const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
      assert.strictEqual(await cleanUp.exit, 0, cleanUp.stdout() + cleanUp.stderr())
      assert.include(cleanUp.stdout(), "removed Prometheus' storage")
      assert.deepStrictEqual(storage(), [])
      assert.deepStrictEqual(prometheusProcesses(), [])
      assert.deepStrictEqual(await noProcessLeft(namespace), [])
      assert.deepStrictEqual(outstanding(stateDir, namespace), [])
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

  describe.runIf(Integration.available("ssh integration tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
    "with agents on an ssh host",
    () => {
      liveWith("prometheus", "netdata", "prometheus-process-exporter")(
        "the website and Prometheus listen on loopback only, and Prometheus still scrapes the remote agents",
        () =>
          Effect.promise(async () => {
            const { env, namespace, stateDir } = fresh()
            const home = path.join(stateDir, "home")
            const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, home))
            // A host of its own on the network (its own namespace and address), as a remote host is.
            const host = await SshHosts.start({ authorizedKeys: [key.publicKey], netns: true })
            let cli: Cli | undefined
            try {
              const { args } = await monitoringArgs()
              cli = start(
                [
                  "MONITORING",
                  "agents",
                  "--ssh-host",
                  `${SshHosts.user}@${host.host}:${host.port}`,
                  "--website",
                  "--prometheus",
                  "--monitoring",
                  "--keep-alive",
                  "--tezt-cloud",
                  namespace,
                  ...args
                ],
                {
                  ...env,
                  HOME: home,
                  TEZT_CLOUD_SCENARIOS: path.join(root, "test/fixtures/MonitoringScenarios.ts")
                },
                { stdin: "pipe" }
              )
              await cli.waitFor("Please press <enter>")
              // What the network needs still works: Prometheus, here, scrapes the agents there.
              for (const line of ["netdata of both agents scraped", "process exporters of both agents scraped"]) {
                assert.include(cli.stdout(), line)
              }
              const websitePort = args[args.indexOf("--website-port") + 1]
              const prometheusPort = args[args.indexOf("--prometheus-port") + 1]
              const addresses = listening(cli.proc.pid!)
              assert.include(addresses, `127.0.0.1:${websitePort}`)
              assert.include(addresses, `127.0.0.1:${prometheusPort}`)
              assert.deepStrictEqual(addresses.filter((a) => !isLoopback(a)), [], "nothing listens beyond loopback")
              cli.proc.stdin!.end("\n")
              assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
              assert.deepStrictEqual(await noProcessLeft(namespace), [])
            } finally {
              // A failed check must not leave the run waiting at its prompt: its teardown reaches the host.
              if (cli !== undefined && cli.proc.exitCode === null) {
                cli.proc.kill("SIGTERM")
                await cli.exit
              }
              await host.stop()
            }
          }),
        120_000
      )
    }
  )
})
