/**
 * One live holder per namespace: a second one is refused naming the first's pid; the lock goes with its holder's
 * scope; a lock whose holder is gone (killed, or its pid now another process's) or that is no record is taken
 * over; of processes racing for it, one wins.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NamespaceLock, ProcessLiveness } from "../src/index.ts"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-lock-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

let next = 0
const fresh = () => ({ root: path.join(work, `state-${next++}`), namespace: "ns" })

/** A child process that takes the lock and holds it until its stdin closes; `first` is its first line. */
const holdInChild = (root: string, namespace: string) => {
  const proc = child.spawn(
    process.execPath,
    [path.join(import.meta.dirname, "fixtures/holdLock.ts"), root, namespace],
    { stdio: ["pipe", "pipe", "inherit"] }
  )
  let out = ""
  const first = new Promise<string>((resolve, reject) => {
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      if (out.includes("\n")) resolve(out.split("\n")[0]!)
    })
    proc.on("exit", (code) => reject(new Error(`exited with ${code} before a line: ${out}`)))
  })
  const exit = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code ?? -1)))
  return { proc, first, exit }
}

/** Takes the lock in a scope of its own; the scope is returned to be closed by the test. */
const take = (root: string, namespace: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* NamespaceLock.acquire(root, namespace, "test", ", or give another --tezt-cloud").pipe(
      Scope.provide(scope),
      Effect.exit
    )
    return { scope, exit }
  })

const writeLock = (root: string, namespace: string, text: string) => {
  fs.mkdirSync(path.dirname(NamespaceLock.lockFile(root, namespace)), { recursive: true })
  fs.writeFileSync(NamespaceLock.lockFile(root, namespace), text)
}

describe("NamespaceLock", () => {
  it.live(
    "a second holder is refused with one line naming the live one's pid; the lock goes with its scope",
    () =>
      Effect.gen(function*() {
        const { root, namespace } = fresh()
        const first = holdInChild(root, namespace)
        assert.strictEqual(yield* Effect.promise(() => first.first), "held")
        const { exit } = yield* take(root, namespace)
        assert.isTrue(Exit.isFailure(exit))
        const message = Exit.isFailure(exit) ? String(exit.cause) : ""
        assert.include(message, `namespace ns is in use by 'holdLock ${first.proc.pid}' (pid ${first.proc.pid}, since `)
        assert.include(message, "stop it first, or give another --tezt-cloud")
        assert.strictEqual(NamespaceLock.holder(root, namespace)?.pid, first.proc.pid)
        first.proc.stdin.end()
        assert.strictEqual(yield* Effect.promise(() => first.exit), 0)
        assert.isFalse(fs.existsSync(NamespaceLock.lockFile(root, namespace)))
        assert.isUndefined(NamespaceLock.holder(root, namespace))
        const second = yield* take(root, namespace)
        assert.isTrue(Exit.isSuccess(second.exit))
        assert.strictEqual(NamespaceLock.holder(root, namespace)?.pid, process.pid)
        assert.strictEqual((fs.statSync(NamespaceLock.lockFile(root, namespace)).mode & 0o777).toString(8), "600")
        yield* Scope.close(second.scope, Exit.void)
        assert.isFalse(fs.existsSync(NamespaceLock.lockFile(root, namespace)))
      }),
    { timeout: 30_000 }
  )

  it.live("a lock left by a killed holder is stale: the next one takes it over", () =>
    Effect.gen(function*() {
      const { root, namespace } = fresh()
      const first = holdInChild(root, namespace)
      assert.strictEqual(yield* Effect.promise(() => first.first), "held")
      first.proc.kill("SIGKILL")
      yield* Effect.promise(() => first.exit)
      assert.isTrue(fs.existsSync(NamespaceLock.lockFile(root, namespace)))
      assert.isUndefined(NamespaceLock.holder(root, namespace))
      const { exit, scope } = yield* take(root, namespace)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(NamespaceLock.holder(root, namespace)?.pid, process.pid)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(fs.readdirSync(path.join(root, namespace)), [])
    }), { timeout: 30_000 })

  it.effect("a live pid with another start time is another process (pids are reused): its lock is stale", () =>
    Effect.gen(function*() {
      const { root, namespace } = fresh()
      const start = ProcessLiveness.startTime(process.pid)!
      assert.match(start, /^\d+$/)
      const record = (at: string) =>
        JSON.stringify({ pid: process.pid, start: at, what: "an older run", since: new Date().toISOString() })
      // The same process: live.
      writeLock(root, namespace, record(start))
      assert.isTrue(Exit.isFailure((yield* take(root, namespace)).exit))
      // The same pid, started at another time: stale.
      writeLock(root, namespace, record(String(Number(start) + 1)))
      const { exit, scope } = yield* take(root, namespace)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(NamespaceLock.holder(root, namespace)?.what, "test")
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("a lock that is no holder's record (empty, garbage, null, a pid of 0) is stale", () =>
    Effect.gen(function*() {
      for (const text of ["", "garbage", "null", `{"pid":0,"start":"","what":"x","since":"y"}`]) {
        const { root, namespace } = fresh()
        writeLock(root, namespace, text)
        const { exit, scope } = yield* take(root, namespace)
        assert.isTrue(Exit.isSuccess(exit), text)
        yield* Scope.close(scope, Exit.void)
      }
    }))

  it.live("of processes taking the lock at once, exactly one holds it", () =>
    Effect.promise(async () => {
      const { root, namespace } = fresh()
      const children = Array.from({ length: 6 }, () => holdInChild(root, namespace))
      const lines = await Promise.all(children.map((c) => c.first.catch((e: Error) => e.message)))
      const holders = children.filter((_, i) => lines[i] === "held")
      assert.strictEqual(holders.length, 1, lines.join("\n"))
      for (const line of lines.filter((l) => l !== "held")) {
        assert.include(line, `is in use by 'holdLock ${holders[0]!.proc.pid}'`)
      }
      for (const c of children) c.proc.stdin.end()
      await Promise.all(children.map((c) => c.exit))
      assert.isFalse(fs.existsSync(NamespaceLock.lockFile(root, namespace)))
    }), { timeout: 60_000 })
})
