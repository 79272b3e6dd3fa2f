/**
 * End-to-end monitoring with the real executable and the real Debian Prometheus: `BASIC monitoring health`
 * passes, its teardown exports a snapshot and leaves no process behind.
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort, freeRange, liveWith } from "../packages/monitoring/test/utils.ts"
import { fresh, noProcessLeft, start } from "./fixtures/Cli.ts"

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

describe("tezt-cloud monitoring", () => {
  live("BASIC monitoring health passes with the real Prometheus and exports a snapshot", async () => {
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
        "--no-process-monitoring",
        "--tezt-cloud",
        namespace,
        ...args
      ],
      env
    )
    assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
    for (
      const line of ["/-/ready: 200", "tezt_monitoring_test is on /metrics", "Prometheus scraped tezt_monitoring_test"]
    ) {
      assert.include(cli.stdout(), line)
    }
    assert.include(cli.stdout(), `You can find the prometheus snapshot at ${exportPath}`)
    assert.isTrue(fs.readdirSync(exportPath).length > 0)
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
  })
})
