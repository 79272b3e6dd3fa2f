/**
 * The fast `agents exec` client and the run agree on the control socket without the client loading `effect`: it
 * looks for the socket where the run serves it, and it takes the protocol from core's `AgentsControlProtocol`,
 * the module the server uses, loading nothing written in TypeScript, nor any ES module, on the way.
 */
import { assert, describe, it } from "@effect/vitest"
import { AgentsControl, Ledger } from "@tezt-cloud/core"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as url from "node:url"
import * as AgentsExecClient from "../src/AgentsExecClient.cjs"

const client = path.join(import.meta.dirname, "..", "src", "AgentsExecClient.cjs")
const protocol = fs.realpathSync(path.join(import.meta.dirname, "..", "..", "core", "src", "AgentsControlProtocol.cjs"))

/** Every module a fresh Node loads for `require(client)`, as resolved URLs. */
const modulesLoaded = (): ReadonlyArray<string> => {
  const program = `
    const { registerHooks } = require("node:module")
    const urls = []
    registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); urls.push(r.url); return r } })
    require(${JSON.stringify(client)})
    process.stdout.write(JSON.stringify(urls))`
  const out = child.execFileSync(process.execPath, ["-e", program], { encoding: "utf8" })
  return JSON.parse(out) as Array<string>
}

describe("AgentsExecClient", () => {
  it("loads core's protocol module, and neither effect, nor any .ts module, nor any ES module", () => {
    const urls = modulesLoaded()
    assert.include(urls, url.pathToFileURL(protocol).href)
    // Built-ins and CommonJS files only: `effect` is ES modules.
    assert.deepStrictEqual(urls.filter((u) => !u.startsWith("node:") && !u.endsWith(".cjs")), [])
  })

  it("looks for the socket where the run serves it", () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "exec-client-"))
    try {
      for (const env of [{ TEZT_CLOUD_STATE_DIR: stateDir }, {}]) {
        for (
          const invocation of [{ namespace: "ns-1", env }, {
            namespace: undefined,
            env: { ...env, TEZT_CLOUD: "ns-2" }
          }]
        ) {
          const namespace = invocation.namespace ?? invocation.env.TEZT_CLOUD!
          assert.strictEqual(
            AgentsExecClient.socketPath(
              { namespace: invocation.namespace, agents: [], argv: ["true"] },
              invocation.env
            ),
            AgentsControl.socketFile(Ledger.ledgerFile(Ledger.stateDir(invocation.env), namespace))
          )
        }
      }
      const none = (namespace: string | undefined, env: Record<string, string>) =>
        assert.isUndefined(AgentsExecClient.socketPath({ namespace, agents: [], argv: ["true"] }, env), namespace)
      none("../x", { TEZT_CLOUD_STATE_DIR: stateDir })
      none(undefined, { TEZT_CLOUD_STATE_DIR: stateDir, TEZT_CLOUD: "" })
      none("ns", { TEZT_CLOUD_STATE_DIR: path.join(stateDir, "d".repeat(100)) })
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true })
    }
  })
})
