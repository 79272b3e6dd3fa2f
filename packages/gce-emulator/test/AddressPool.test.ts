/**
 * The emulator's address pool: an address is handed out once until released, and a released one comes back only
 * after every other free address of the range.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as AddressPool from "../src/AddressPool.ts"

describe("AddressPool", () => {
  it.effect("hands addresses round the range: a released one comes back after the other free ones", () =>
    Effect.gen(function*() {
      const pool = AddressPool.make({ first: "127.0.9.2", last: "127.0.9.4" }, () => Effect.succeed(true))
      assert.strictEqual(yield* pool.allocate(), "127.0.9.2")
      yield* pool.release("127.0.9.2")
      assert.strictEqual(yield* pool.allocate(), "127.0.9.3")
      assert.strictEqual(yield* pool.allocate(), "127.0.9.4")
      assert.strictEqual(yield* pool.allocate(), "127.0.9.2", "round the range, to the released one")
      assert.isUndefined(yield* pool.allocate(), "none is left")
      yield* pool.release("127.0.9.3")
      assert.strictEqual(yield* pool.allocate(), "127.0.9.3")
    }))
})
