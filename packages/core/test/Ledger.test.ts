/**
 * The ledger on disk: what it writes survives a crash (flushed, a torn line does not swallow the next entry), what
 * it reads never crashes on a line that is not an entry, it is private to the user, and a recorded path is only
 * trusted inside the namespace's dirs.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Syscalls from "../../../test/fixtures/Syscalls.ts"
import { Ledger, RunEvents } from "../src/index.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-ledger-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

let next = 0
/** A fresh state dir (not created yet) and namespace. */
const fresh = () => ({ root: path.join(work, `state-${next++}`), namespace: "ns" })

const acquire = (root: string, namespace: string, id: string) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger.Ledger
    yield* ledger.acquire({ id, kind: "sandbox", data: { path: `/nowhere/${id}` } })
  }).pipe(Effect.provide(Ledger.Ledger.layer(root, namespace)))

const outstanding = (root: string, namespace: string) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const ids = yield* Effect.flatMap(Ledger.Ledger, (ledger) => ledger.outstanding).pipe(
      Effect.map((rs) => rs.map((r) => r.id)),
      Effect.provide(Ledger.Ledger.layer(root, namespace)),
      Effect.provide(Logger.layer([Logger.make(({ logLevel, message }) => void logs.push(`${logLevel}: ${message}`))]))
    )
    return { ids, logs }
  })

describe("Ledger", () => {
  it.live.runIf(Syscalls.available())(
    "every append is flushed to disk before it returns, and the directory when the file is created",
    () =>
      Effect.promise(async () => {
        const { root, namespace } = fresh()
        const file = Ledger.ledgerFile(root, namespace)
        const calls = await Syscalls.trace(path.join(import.meta.dirname, "fixtures/appendLedger.ts"), [
          root,
          namespace
        ], root)
        const onFile = calls.filter((c) => c.includes(`<${file}>`))
        const writes = onFile.flatMap((c, i) => /^(p?write|writev)/.test(c) ? [i] : [])
        assert.strictEqual(writes.length, 3, calls.join("\n"))
        for (const i of writes) {
          // The next call on the ledger after each write is its fsync.
          assert.match(onFile[i + 1] ?? "", /^f(data)?sync\(/, calls.join("\n"))
        }
        const dirSyncs = calls.filter((c) => new RegExp(`^f(data)?sync\\(\\d+<${path.dirname(file)}>\\)`).test(c))
        assert.strictEqual(dirSyncs.length, 1, calls.join("\n"))
      }),
    { timeout: 30_000 }
  )

  it.effect("a torn last line (a crash mid-write) does not swallow the next entry", () =>
    Effect.gen(function*() {
      const { root, namespace } = fresh()
      yield* acquire(root, namespace, "before")
      const file = Ledger.ledgerFile(root, namespace)
      fs.appendFileSync(file, `{"id":"torn","kind":"sandbox","da`)
      yield* acquire(root, namespace, "after")
      const { ids, logs } = yield* outstanding(root, namespace)
      assert.deepStrictEqual(ids, ["before", "after"])
      assert.deepStrictEqual(logs, [`Warn: ${file}:2: not a ledger entry, skipped`])
    }))

  it.effect("a line that is JSON but no entry (null, a number, an array, a partial object) is skipped with a warning", () =>
    Effect.gen(function*() {
      const { root, namespace } = fresh()
      yield* acquire(root, namespace, "first")
      const file = Ledger.ledgerFile(root, namespace)
      fs.appendFileSync(
        file,
        [
          "null",
          "42",
          `["acquire"]`,
          `{"op":"acquire"}`,
          `{"id":"x","kind":"k","op":"acquire","data":null}`,
          `{"id":"y","kind":"k","op":"steal","data":{}}`
        ].join("\n") + "\n"
      )
      yield* acquire(root, namespace, "last")
      const { ids, logs } = yield* outstanding(root, namespace)
      assert.deepStrictEqual(ids, ["first", "last"])
      assert.deepStrictEqual(logs, [2, 3, 4, 5, 6, 7].map((n) => `Warn: ${file}:${n}: not a ledger entry, skipped`))
    }))

  it.effect("the state dir, the namespace dir and the ledger are private to the user", () =>
    Effect.gen(function*() {
      const { root, namespace } = fresh()
      // A namespace dir an older version made readable by others is made private too.
      fs.mkdirSync(path.join(root, "old"), { recursive: true, mode: 0o755 })
      fs.chmodSync(path.join(root, "old"), 0o755)
      fs.writeFileSync(Ledger.ledgerFile(root, "old"), "", { mode: 0o644 })
      yield* acquire(root, namespace, "a")
      yield* acquire(root, "old", "a")
      const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8)
      assert.strictEqual(mode(Ledger.namespaceDir(root, namespace)), "700")
      assert.strictEqual(mode(Ledger.namespaceDir(root, "old")), "700")
      assert.strictEqual(mode(Ledger.ledgerFile(root, namespace)), "600")
      assert.strictEqual(mode(Ledger.ledgerFile(root, "old")), "600")
      // The state dir existed (the user's own): left as it was.
      assert.strictEqual(mode(root), "755")
      const { root: created } = fresh()
      yield* acquire(created, namespace, "a")
      assert.strictEqual(mode(created), "700")
    }))

  it.effect("events.jsonl is private to the user", () =>
    Effect.gen(function*() {
      const dir = path.join(work, `events-${next++}`)
      const events = yield* RunEvents.RunEvents
      yield* events.writeTo(dir)
      yield* events.emit({ type: "log", level: "Info", message: "hello" })
      assert.strictEqual((fs.statSync(path.join(dir, "events.jsonl")).mode & 0o777).toString(8), "600")
    }).pipe(Effect.provide(RunEvents.RunEvents.layer([]))))

  it("isInside: strictly inside the root, by normalized paths", () => {
    const root = "/state/ns/agents"
    assert.isTrue(Ledger.isInside(root, "/state/ns/agents/a"))
    assert.isTrue(Ledger.isInside(root, "/state/ns/agents/a/../b"))
    assert.isTrue(Ledger.isInside(`${root}/`, "/state/ns/agents/..a"))
    for (const outside of ["/state/ns/agents", "/state/ns/agents/", "/state/ns/agents/a/../..", "/etc", "/"]) {
      assert.isFalse(Ledger.isInside(root, outside), outside)
    }
    assert.isFalse(Ledger.isInside(root, "/state/ns/agents-evil/a"))
    assert.isFalse(Ledger.isInside(root, "/state/ns/agents/../../../etc/passwd"))
    assert.isFalse(Ledger.isInside(root, "agents/a"), "a relative path")
    assert.isTrue(Ledger.isInside("/tmp/tezt-cloud-1000/ns", "/tmp/tezt-cloud-1000/ns/agents/a", true))
    assert.isFalse(Ledger.isInside("/tmp/tezt-cloud-1000/ns", "/tmp/tezt-cloud-1000/ns/../other", true))
  })

  it.effect("checkInside refuses a recorded path outside the root, also through a symbolic link", () =>
    Effect.gen(function*() {
      const root = path.join(work, `agents-${next++}`)
      const outside = path.join(work, `outside-${next++}`)
      fs.mkdirSync(path.join(root, "a"), { recursive: true })
      fs.mkdirSync(path.join(outside, "victim"), { recursive: true })
      fs.symlinkSync(outside, path.join(root, "link"))
      assert.strictEqual(yield* Ledger.checkInside(root, path.join(root, "a")), path.join(root, "a"))
      assert.strictEqual(yield* Ledger.checkInside(root, path.join(root, "gone", "x")), path.join(root, "gone", "x"))
      // The link itself is inside (removing it removes the link); what is behind it is not.
      assert.strictEqual(yield* Ledger.checkInside(root, path.join(root, "link")), path.join(root, "link"))
      for (const bad of [path.join(root, "link", "victim"), path.join(root, "..", path.basename(outside)), "/etc"]) {
        const error = yield* Effect.flip(Ledger.checkInside(root, bad))
        assert.strictEqual(error.reason._tag, "StateFailed")
        assert.include(error.message, `not inside ${root}`)
      }
    }))

  it.effect("checkInside accepts a path under a root that is gone (nothing there to remove), and still refuses outside", () =>
    Effect.gen(function*() {
      const root = path.join(work, `gone-${next++}`, "agents")
      assert.strictEqual(yield* Ledger.checkInside(root, path.join(root, "a")), path.join(root, "a"))
      const error = yield* Effect.flip(Ledger.checkInside(root, path.join(root, "..", "..", "elsewhere")))
      assert.include(error.message, `not inside ${root}`)
    }))
})
