/**
 * The `gcp-emulator` command line: options into emulator, hosts and faults settings; a bad option is one line
 * naming it, exit code 2, nothing started.
 */
import { assert, describe, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as path from "node:path"
import { Main } from "../src/index.ts"

describe("gce-emulator: command line", () => {
  it("options map to the emulator, its hosts and its faults", () => {
    const options = Main.parse([
      "--port",
      "9000",
      "--vm-port",
      "31000",
      "--addresses",
      "127.0.1.2-127.0.1.9",
      "--quota-exceeded-on-insert",
      "2,5",
      "--operation-delay",
      "1500",
      "--instance-failure-after",
      "30"
    ], 42)
    assert(options !== "help")
    assert.deepStrictEqual(options.emulator, {
      host: undefined,
      port: 9000,
      addresses: { first: "127.0.1.2", last: "127.0.1.9" }
    })
    assert.strictEqual(options.hosts, "docker")
    assert.strictEqual(options.docker.id, "gce-42")
    assert.strictEqual(options.docker.port, 31000)
    assert.deepStrictEqual(options.faults, {
      quotaExceededOnInsert: [2, 5],
      operationDelayMillis: 1500,
      instanceFailureAfterSeconds: 30
    })
    const defaults = Main.parse(["--no-hosts"], 7)
    assert(defaults !== "help")
    assert.strictEqual(defaults.emulator.port, 8086)
    assert.strictEqual(defaults.docker.port, 30000)
    assert.strictEqual(defaults.hosts, "none")
    assert.deepStrictEqual(defaults.faults, {})
  })

  it("bad options are refused with a message naming them", () => {
    const refused = (argv: ReadonlyArray<string>) => {
      try {
        Main.parse(argv)
      } catch (e) {
        return (e as Error).message
      }
      return "accepted"
    }
    assert.match(refused(["--port", "http"]), /^--port: /)
    assert.match(refused(["--addresses", "10.0.0.1-10.0.0.9"]), /^--addresses: .*loopback/)
    assert.match(refused(["--quota-exceeded-on-insert", "0"]), /^--quota-exceeded-on-insert: /)
    assert.match(refused(["--frobnicate"]), /^--frobnicate: unknown option/)
    assert.match(refused(["--port"]), /^--port: needs a value/)
  })

  it("the executable prints one line and exits 2 on a bad option", () => {
    const r = child.spawnSync(process.execPath, [path.resolve(import.meta.dirname, "../src/bin.ts"), "--port", "x"], {
      encoding: "utf8",
      timeout: 30_000
    })
    assert.strictEqual(r.status, 2)
    assert.strictEqual(r.stdout, "")
    assert.strictEqual(r.stderr, "gcp-emulator: error: --port: 'x' is not an integer in 0..65535\n")
  })
})
