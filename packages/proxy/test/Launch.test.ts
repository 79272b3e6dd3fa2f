/**
 * What reaches the proxy's command line and environment: the user's options written back as flags, with every
 * secret and local path left out and `--localhost --tezt-cloud <ns>` appended; the secrets go to a 0600 file only,
 * which the orchestrator there reads itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { CloudConfig } from "@tezt-cloud/core"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Launch from "../src/Launch.ts"
import * as Protocol from "../src/ProxyProtocol.ts"

const files = Protocol.layout("/root", "ns")

describe("Launch", () => {
  it.effect("the arguments: the user's options as flags, no secret, no local path, --localhost --tezt-cloud appended", () =>
    Effect.gen(function*() {
      const input: CloudConfig.Input = {
        tezt_cloud: "ns",
        localhost: true,
        proxy: true,
        vm_base_port: 31000,
        website: false,
        no_max_run_duration: true,
        dns_domains: ["a.org.", "b.org."],
        artifacts_dir: "/home/me/run",
        auth_username: "me",
        prometheus_export_path: "/tmp/snap"
      }
      const cliOnly = { authPassword: "hunter2", slackBotToken: "xoxb-1", sshPrivateKey: "/home/me/.ssh/key" }
      const config = yield* CloudConfig.resolve(input, cliOnly, { TEZT_CLOUD_GRAFANA_TOKEN: "glsa_secret" })
      const args = Launch.args({ group: "BASIC", tags: ["simple", "health"], input, namespace: "ns" }, files, undefined)
      assert.deepStrictEqual(args, [
        "BASIC",
        "simple",
        "health",
        "--proxy",
        "--vm-base-port",
        "31000",
        "--prometheus-export-path",
        "/tmp/snap",
        "--no-website",
        "--no-max-run-duration",
        "--dns-domain",
        "a.org.",
        "--dns-domain",
        "b.org.",
        "--localhost",
        "--tezt-cloud",
        "ns",
        "--artifacts-dir",
        files.artifacts,
        "--json"
      ])
      for (const secret of ["hunter2", "xoxb-1", "glsa_secret", "/home/me", "me"]) {
        assert.notInclude(args, secret)
      }
      const env = Launch.environment({ home: "/root", namespace: "ns", files, scenarios: ["test/fixtures/X.ts"] })
      for (const value of Object.values(env)) {
        for (const secret of ["hunter2", "xoxb-1", "glsa_secret"]) assert.notInclude(value, secret)
      }
      assert.deepStrictEqual(Launch.secrets(config), {
        TEZT_CLOUD_AUTH_USERNAME: "me",
        TEZT_CLOUD_AUTH_PASSWORD: "hunter2",
        TEZT_CLOUD_GRAFANA_TOKEN: "glsa_secret",
        TEZTCLOUD_SLACK_BOT_TOKEN: "xoxb-1"
      })
    }))

  it("on GCP the inner backend's mode replaces --localhost; its secrets join the run's", () => {
    const args = Launch.args({ group: "G", tags: [], input: { proxy: true }, namespace: "ns" }, files, undefined, [
      "--project-id",
      "p"
    ])
    assert.notInclude(args, "--localhost")
    assert.deepStrictEqual(args.slice(-7, -4), ["--project-id", "p", "--tezt-cloud"])
    const env = Launch.environment({ home: "/root", namespace: "ns", files, scenarios: [], extra: { A: "1" } })
    assert.strictEqual(env.A, "1")
  })

  it("Prometheus' snapshot comes back with the artifacts unless the user said where; a file-only key ships", () => {
    const args = Launch.args({ group: "G", tags: [], input: { proxy: true }, namespace: "ns" }, files, "/x.json")
    assert.includeMembers(args, ["--config-file", "/x.json", "--prometheus-export-path"])
    assert.include(args, `${files.artifacts}/prometheus-snapshot`)
    assert.deepStrictEqual(Launch.fileOnly({ proxy: true, scenario_specific: ["a", 1] }), {
      scenario_specific: ["a", 1]
    })
  })

  it.effect("on the proxy, the run reads its secrets from the 0600 file, and refuses one others can read", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-secrets-"))
      const file = path.join(dir, "secrets.json")
      fs.writeFileSync(file, JSON.stringify({ TEZT_CLOUD_GRAFANA_TOKEN: "glsa_secret" }), { mode: 0o600 })
      const env = yield* Launch.withSecrets({ [Protocol.secretsVariable]: file, TEZT_CLOUD: "ns" })
      assert.strictEqual(env.TEZT_CLOUD_GRAFANA_TOKEN, "glsa_secret")
      assert.strictEqual((yield* CloudConfig.resolve({ localhost: true }, {}, env)).grafanaToken, "glsa_secret")
      fs.chmodSync(file, 0o644)
      const refused = yield* Effect.exit(Launch.withSecrets({ [Protocol.secretsVariable]: file }))
      assert.isTrue(Exit.isFailure(refused))
      assert.deepStrictEqual(yield* Launch.withSecrets({ TEZT_CLOUD: "ns" }), { TEZT_CLOUD: "ns" })
      fs.rmSync(dir, { recursive: true })
    }))
})
