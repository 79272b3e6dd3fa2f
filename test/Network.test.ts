/**
 * Network faults through the real `tezt-cloud` executable on process sandboxes: `--tc-delay` measured by
 * `BASIC network health`, its seed printed and in the run's events; a run killed with its relays on, cleaned up.
 */
import { assert, describe } from "@effect/vitest"
import { LoopbackNetwork } from "@tezt-cloud/core"
import * as fs from "node:fs"
import * as path from "node:path"
import { fresh, leftovers, live, nothingLeft, start } from "./fixtures/Cli.ts"

/** `BASIC network health --tc-delay 0.2,0.2` on process sandboxes whose ports start at `port`. */
const delayedHealth = (port: number, namespace: string, env: Record<string, string>) =>
  start([
    "BASIC",
    "network",
    "health",
    "--localhost",
    "--tc-delay",
    "0.2,0.2",
    "--vm-base-port",
    String(port),
    "--tezt-cloud",
    namespace
  ], env)

describe("tezt-cloud CLI: network faults", () => {
  live(
    "--tc-delay 0.2,0.2 adds 0.2 s each way to BASIC network health's round trips; the seed is printed",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const cli = delayedHealth(47600, namespace, { ...env, TEZT_CLOUD_NETWORK_SEED: "1234" })
      assert.strictEqual(await cli.exit, 0, cli.stdout() + cli.stderr())
      const out = cli.stdout()
      assert.include(out, "network faults on local process sandboxes")
      assert.include(out, "--tc-delay 0.2,0.2: seed 1234")
      const mean = /round trip \S+ -> \S+: mean ([\d.]+) ms, min ([\d.]+) ms/.exec(out)
      assert.isNotNull(mean, out)
      assert.isAtLeast(Number(mean![2]), 400, out)
      const runs = path.join(stateDir, namespace, "runs")
      const events = fs.readFileSync(path.join(runs, fs.readdirSync(runs)[0]!, "events.jsonl"), "utf8")
      assert.match(events, /"type":"network"[^\n]*"seed":1234/)
      assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
      assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [])
    }
  )

  live("a run killed with its relays on: CLOUD clean up removes its nft table and records", async () => {
    const { env, namespace, stateDir } = fresh()
    const cli = delayedHealth(47700, namespace, env)
    await cli.waitFor("--tc-delay 0.2,0.2, drawn:")
    cli.proc.kill("SIGKILL")
    await cli.exit
    assert.isNotEmpty(LoopbackNetwork.leftovers(namespace))
    const clean = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
    assert.strictEqual(await clean.exit, 0, clean.stdout() + clean.stderr())
    assert.include(clean.stdout(), `removed nft table ip ${LoopbackNetwork.tableName(namespace)}`)
    assert.deepStrictEqual(LoopbackNetwork.leftovers(namespace), [])
    assert.deepStrictEqual(await leftovers(stateDir, namespace), nothingLeft)
  })
})
