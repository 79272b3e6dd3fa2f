/**
 * The control socket's protocol, as both sides use it: messages decode to what was encoded, one per line, across
 * chunks; the socket's place; the namespace rule agrees with the configuration's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import * as Protocol from "../src/AgentsControlProtocol.cjs"
import { CloudConfig } from "../src/index.ts"

const responses: ReadonlyArray<Protocol.Response> = [
  { agents: ["a", "b"] },
  { agents: [] },
  { error: "--agent: no agent named x" },
  { agent: "a", stream: "stdout", line: "one\ttwo \"three\" é" },
  { agent: "a", stream: "stderr", line: "" },
  { agent: "a", exitCode: 0 },
  { agent: "b", exitCode: 137 },
  { agent: "b", error: "connection lost" }
]

describe("AgentsControlProtocol", () => {
  it("every message is one line and decodes to itself", () => {
    for (const response of responses) {
      const text = Protocol.encode(response)
      assert.strictEqual(text.indexOf("\n"), text.length - 1)
      assert.deepStrictEqual(Protocol.decodeResponse(text.slice(0, -1)), response)
    }
    const withLineBreak = { agent: "a", stream: "stdout", line: "a\nb" } as const
    assert.deepStrictEqual(Protocol.decodeResponse(Protocol.encode(withLineBreak).trimEnd()), withLineBreak)
    for (const request of [{ argv: ["echo", "x y"] }, { argv: ["true"], agents: ["a", "b"] }]) {
      assert.deepStrictEqual(Protocol.decodeRequest(Protocol.encode(request).trimEnd()), {
        agents: undefined,
        ...request
      })
    }
  })

  it("what is not a message is refused", () => {
    for (const line of ["", "{", "null", "[1]", "{}", `{"agent":"a"}`, `{"agent":"a","stream":"x","line":"l"}`]) {
      assert.isUndefined(Protocol.decodeResponse(line), line)
    }
    assert.strictEqual(Protocol.decodeRequest("{"), "malformed request: not JSON")
    for (const line of ["null", "[]", `{"argv":[]}`, `{"argv":["a",1]}`]) {
      assert.strictEqual(Protocol.decodeRequest(line), "malformed request: argv must be a non-empty array of strings")
    }
    assert.strictEqual(
      Protocol.decodeRequest(`{"argv":["a"],"agents":"b"}`),
      "malformed request: agents must be strings"
    )
  })

  it("the line reader joins lines and characters cut between chunks", () => {
    const reader = Protocol.makeLineReader()
    assert.deepStrictEqual(reader.push("{\"a\""), [])
    assert.strictEqual(reader.pending(), 4)
    assert.deepStrictEqual(reader.push(":1}\n{}\n{"), ["{\"a\":1}", "{}"])
    assert.strictEqual(reader.pending(), 1)
    const bytes = Buffer.from("}\n\"é\"\n")
    const cut = bytes.indexOf(0xc3) + 1
    const binary = Protocol.makeLineReader()
    assert.deepStrictEqual(binary.push(bytes.subarray(0, cut)), ["}"])
    assert.deepStrictEqual(binary.push(bytes.subarray(cut)), ["\"é\""])
  })

  it("agents exec exits with the worst agent's code, an agent's error counting as 255", () => {
    assert.strictEqual(Protocol.worstCode([]), 0)
    assert.strictEqual(Protocol.worstCode([0, 3, 1]), 3)
    assert.strictEqual(Protocol.worstCode(new Map([["a", 0], ["b", Protocol.agentErrorCode]]).values()), 255)
  })

  it("the state dir is $TEZT_CLOUD_STATE_DIR, else ~/.local/state/tezt-cloud; the socket is in the namespace's", () => {
    assert.strictEqual(Protocol.stateDir({ TEZT_CLOUD_STATE_DIR: "/s" }), "/s")
    assert.strictEqual(Protocol.stateDir({}), path.join(os.homedir(), ".local", "state", "tezt-cloud"))
    assert.strictEqual(Protocol.socketPath("/s", "ns"), "/s/ns/control.sock")
    assert.isTrue(Protocol.fitsSocketPath("/".repeat(107)))
    assert.isFalse(Protocol.fitsSocketPath("/".repeat(106) + "é"))
  })

  it.effect("the namespace pattern accepts exactly the namespaces the configuration accepts", () =>
    Effect.gen(function*() {
      const names = ["a", "A-1.b_c", "9", "x".repeat(63), "x".repeat(64), "-x", ".x", "_x", "a/b", "a b", "é", ".."]
      for (const name of names) {
        const config = yield* Effect.result(CloudConfig.resolve({ tezt_cloud: name }, {}, {}))
        const refused = config._tag === "Failure" && config.failure.reason._tag === "ConfigInvalid" &&
          config.failure.reason.option === "--tezt-cloud"
        assert.strictEqual(Protocol.namespacePattern.test(name), !refused, name)
      }
    }))
})
