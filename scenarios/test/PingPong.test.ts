/** The README's recipe, as written there: the example scenario's test on TestCloud, both ways. */
import { assert, describe, it } from "@effect/vitest"
import { TestCloud } from "@tezt-cloud/core"
import { Effect } from "effect"
import { pingPong } from "../examples/PingPong.ts"

describe("ping pong", () => {
  // As the CLI runs it (validation, deploy, body, teardown): calls, logs, events and pushed metrics come back.
  it.effect("the client gets pong", () =>
    Effect.gen(function*() {
      const result = yield* TestCloud.run(pingPong, {
        responses: [{ agent: "client", command: "node", response: "pong" }]
      })
      assert.include(result.logs, `client got "pong" from server:30001`)
      assert.deepStrictEqual(result.metrics, [{ name: "example_pings_total", value: 1, type: "counter" }])
    }))

  // Or the scenario's body under a layer that provides Cloud (swap it for another to run the same test elsewhere).
  it.effect("the server is started before the client asks", () =>
    Effect.gen(function*() {
      yield* pingPong.run
      const recording = yield* TestCloud.Recording
      assert.strictEqual(recording.calls[1]?.kind, "spawn")
    }).pipe(Effect.provide(TestCloud.layer({ scenario: pingPong, fallback: () => "pong" }))))
})
