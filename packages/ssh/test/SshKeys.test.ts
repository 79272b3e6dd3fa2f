/**
 * The namespace's generated ssh key: private to the user, written whole (a crash never leaves a truncated key
 * that every later run would refuse).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Syscalls from "../../../test/fixtures/Syscalls.ts"
import { SshKeys } from "../src/index.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-keys-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
const child = path.join(import.meta.dirname, "fixtures/ensureKey.ts")

let next = 0
const freshHome = () => path.join(work, `home-${next++}`)

describe("SshKeys", () => {
  it.effect("a generated key is private to the user (0600 in a 0700 dir), its public half beside it", () =>
    Effect.gen(function*() {
      const home = freshHome()
      const key = yield* SshKeys.ensure("keys-test", undefined, home)
      const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8)
      assert.strictEqual(key.path, SshKeys.defaultPath("keys-test", home))
      assert.strictEqual(mode(key.path), "600")
      assert.strictEqual(mode(path.dirname(key.path)), "700")
      assert.strictEqual(fs.readFileSync(`${key.path}.pub`, "utf8").split(" ")[1], key.publicKey.split(" ")[1])
      assert.deepStrictEqual(fs.readdirSync(path.dirname(key.path)).toSorted(), ["keys-test-tf", "keys-test-tf.pub"])
      // Ensured again: the same key.
      assert.strictEqual((yield* SshKeys.ensure("keys-test", undefined, home)).publicKey, key.publicKey)
    }))

  it.live.runIf(Syscalls.available())(
    "the key is written whole: a flushed temporary file, linked into place; the key's own name is never written",
    () =>
      Effect.promise(async () => {
        const home = freshHome()
        const file = SshKeys.defaultPath("keys-test", home)
        const calls = await Syscalls.trace(child, ["keys-test", home], home)
        const text = calls.join("\n")
        assert.notMatch(text, new RegExp(`openat\\([^)]*"${file}", [^)]*O_CREAT`), text)
        const link = calls.findIndex((c) => c.startsWith("link") && c.includes(`"${file}"`))
        assert.isAtLeast(link, 0, text)
        const temporary = /"([^"]+)"/.exec(calls[link]!)![1]!
        const fsync = calls.findIndex((c) => c.startsWith("fsync(") && c.includes(`<${temporary}>`))
        assert.isTrue(fsync >= 0 && fsync < link, text)
      }),
    { timeout: 30_000 }
  )
})
