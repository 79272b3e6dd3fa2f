/**
 * The leftover check of `npm test` (scripts/leftovers.ts): a directory and an agent process that appear after the
 * snapshot are reported, and nothing is once they are gone.
 */
import { assert, it } from "@effect/vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Leftovers from "../scripts/leftovers.ts"

it("reports what appeared since the snapshot and stays, and nothing once it is gone", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-leftovers-"))
  const state = path.join(tmp, "state")
  fs.mkdirSync(state)
  const take = () => Leftovers.snapshot(tmp, state)
  const before = take()
  fs.mkdirSync(path.join(tmp, "left-dir"))
  fs.mkdirSync(path.join(state, "left-namespace"))
  const agent = child.spawn("sleep", ["600"], { env: { ...process.env, TEZT_CLOUD_NS: "left" }, stdio: "ignore" })
  try {
    const left = await Leftovers.leftovers(before, take, 0)
    assert.deepStrictEqual(left[tmp], ["left-dir"])
    assert.deepStrictEqual(left[state], ["left-namespace"])
    assert.include(left.processes, `${agent.pid} sleep 600`)
    assert.include(Leftovers.describe(left), `${tmp}: left-dir`)
  } finally {
    agent.kill("SIGKILL")
    fs.rmSync(path.join(tmp, "left-dir"), { recursive: true })
    fs.rmSync(path.join(state, "left-namespace"), { recursive: true })
  }
  // The process takes a moment to go: the check waits for it.
  const left = await Leftovers.leftovers(before, take, 30)
  assert.deepStrictEqual(left[tmp], undefined)
  assert.deepStrictEqual(left[state], undefined)
  assert.notInclude(left.processes ?? [], `${agent.pid} sleep 600`)
  fs.rmSync(tmp, { recursive: true, force: true })
})

it("a user's run directory of an ssh host on this machine counts by the namespaces inside it", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-leftovers-"))
  try {
    const take = () => Leftovers.snapshot(tmp, path.join(tmp, "state"))
    const before = take()
    fs.mkdirSync(path.join(tmp, "tezt-cloud-995"))
    // Only this directory's entries: the snapshot also covers the machine's containers, which another lane's tests
    // may start meanwhile.
    assert.deepStrictEqual(Leftovers.added(before, take())[tmp], undefined, "kept for the user's next runs")
    fs.mkdirSync(path.join(tmp, "tezt-cloud-995", "ns"))
    assert.deepStrictEqual(Leftovers.added(before, take())[tmp], ["tezt-cloud-995/ns"])
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
})
