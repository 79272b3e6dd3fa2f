/**
 * The test port allocator (`fixtures/Ports.ts`): files running at once never share a block, a block comes back
 * once its owner is gone, and a live owner's block is never taken over.
 */
import { assert, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const fixture = path.join(import.meta.dirname, "fixtures/Ports.ts")
const locks = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-ports-test-"))

/** A process that takes `count` ports, prints the first, then waits for stdin to close (while it owns them). */
const holder = (count: number) => {
  const proc = child.spawn(process.execPath, [
    "--input-type=module",
    "-e",
    `const Ports = await import(${JSON.stringify(fixture)}); console.log(Ports.take(${count}));` +
    `process.stdin.resume(); process.stdin.on("end", () => process.exit(0))`
  ], { env: { ...process.env, TEZT_CLOUD_TEST_PORTS: locks }, stdio: ["pipe", "pipe", "inherit"] })
  const first = new Promise<number>((resolve) => proc.stdout!.once("data", (data) => resolve(Number(String(data)))))
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
  return { proc, first, exited }
}

it("blocks are exclusive while their owners live, and free again when they are gone", async () => {
  try {
    const a = holder(250)
    const b = holder(100)
    const [fa, fb] = [await a.first, await b.first]
    // a owns three blocks (250 ports), b one: no overlap.
    assert.isTrue(fb >= fa + 300 || fb + 100 <= fa, `${fa} and ${fb} overlap`)
    // a is killed (no clean exit): its blocks stay locked on disk, yet the next taker gets them back.
    a.proc.kill("SIGKILL")
    await a.exited
    assert.isTrue(fs.existsSync(path.join(locks, String(fa))), "a killed owner leaves its lock")
    const c = holder(250)
    assert.strictEqual(await c.first, fa, "the dead owner's blocks are the first free ones again")
    // A clean exit removes the locks.
    for (const h of [b, c]) {
      h.proc.stdin!.end()
      await h.exited
    }
    assert.deepStrictEqual(fs.readdirSync(locks).filter((name) => !name.startsWith(".")), [])
  } finally {
    fs.rmSync(locks, { recursive: true, force: true })
  }
})
