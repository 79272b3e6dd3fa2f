import { assert, describe, it } from "@effect/vitest"
import { Sandbox } from "@tezt-cloud/core"

describe("Sandbox.pathIn", () => {
  it("maps agent paths into the sandbox: absolute ones under fs/, relative ones under the home", () => {
    assert.strictEqual(Sandbox.pathIn("/h", "a/b"), "/h/a/b")
    assert.strictEqual(Sandbox.pathIn("/h", "/tmp/x"), "/h/fs/tmp/x")
    assert.strictEqual(Sandbox.pathIn("/h", "."), "/h")
  })

  it("never climbs out of the sandbox with ..", () => {
    assert.strictEqual(Sandbox.pathIn("/h", "../../etc/passwd"), "/h/etc/passwd")
    assert.strictEqual(Sandbox.pathIn("/h", "/../../etc/passwd"), "/h/fs/etc/passwd")
    assert.strictEqual(Sandbox.pathIn("/h", "a/../../b"), "/h/b")
  })
})
