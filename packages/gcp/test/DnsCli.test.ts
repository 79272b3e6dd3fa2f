/**
 * Cloud DNS through the real CLI, on the GCE emulator's Cloud DNS (in this process, no hosts): `CLOUD create dns
 * zone` makes the `tezt-cloud` zone once and says where to delegate it, `CLOUD describe dns zone` shows it, and
 * `--dns-domain` on an `--ssh-host` run points each domain at the host before the run (a domain outside every
 * zone is a warning); elsewhere `--dns-domain` is refused, naming why, before anything is created.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Emulator, Faults, Hosts } from "@tezt-cloud/gce-emulator"
import { CloudDns } from "@tezt-cloud/gcp"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fresh, start } from "../../../test/fixtures/Cli.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as SshHosts from "../../../test/fixtures/SshHosts.ts"

const project = "p"

const emulator = Emulator.GceEmulator.layer({ port: 0 }).pipe(
  Layer.provide(Layer.mergeAll(Hosts.layerNone(), Faults.Faults.layer()))
)

/** The CLI against the emulator, to its end: its exit code and output. */
const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.gen(function*() {
    const { url } = yield* Emulator.GceEmulator
    return yield* Effect.promise(async () => {
      const run = start([...args, "--project-id", project], { ...env, TEZT_CLOUD_GCP_ENDPOINT: url })
      const code = await run.exit
      return { code, out: run.stdout() + run.stderr() }
    })
  })

const records = (domain: string) =>
  Effect.gen(function*() {
    const { url } = yield* Emulator.GceEmulator
    const dns = CloudDns.make({
      endpoint: url,
      project,
      zone: "europe-west1-b",
      region: "europe-west1",
      image: undefined
    })
    return (yield* dns.records(CloudDns.defaultZoneName, domain)).filter((r) => r.type === "A").map((r) => r.rrdatas)
  })

describe.runIf(Integration.available("DNS CLI tests", [SshHosts.sshd, "/usr/bin/ssh-keygen"]))(
  "Cloud DNS jobs and --dns-domain",
  () => {
    layer(emulator, { excludeTestServices: true, timeout: 120_000 })((it) => {
      it.effect("create dns zone once, describe it, and point an ssh host's domains at it", () =>
        Effect.gen(function*() {
          const { env, namespace, stateDir } = fresh()
          const job = (args: ReadonlyArray<string>) => cli(["CLOUD", ...args, "--tezt-cloud", namespace], env)

          const created = yield* job(["create", "dns", "zone", "--dns-domain", "Tezt.Example.com"])
          assert.strictEqual(created.code, 0, created.out)
          assert.include(created.out, "created zone tezt-cloud for tezt.example.com.")
          assert.match(
            created.out,
            /delegate tezt\.example\.com\. at its parent's registrar to the name servers ns-\S+ ns-/
          )
          const again = yield* job(["create", "dns", "zone", "--dns-domain", "tezt.example.com."])
          assert.strictEqual(again.code, 0, again.out)
          assert.include(again.out, "already there: zone tezt-cloud for tezt.example.com.")
          const other = yield* job(["create", "dns", "zone", "--dns-domain", "other.org"])
          assert.notStrictEqual(other.code, 0, "the zone name is taken by another domain")
          assert.include(other.out, "is for tezt.example.com., not other.org.")
          const described = yield* job(["describe", "dns", "zone"])
          assert.strictEqual(described.code, 0, described.out)
          assert.match(described.out, /tezt-cloud\ttezt\.example\.com\.\tns-/)

          const home = path.join(stateDir, "home")
          const key = yield* SshKeys.ensure(namespace, undefined, home)
          const host = yield* Effect.promise(() => SshHosts.start({ authorizedKeys: [key.publicKey] }))
          yield* Effect.addFinalizer(() => Effect.promise(() => host.stop()))
          const run = yield* cli([
            "BASIC",
            "simple",
            "health",
            "--ssh-host",
            `${SshHosts.user}@${host.host}:${host.port}`,
            "--dns-domain",
            "node1.tezt.example.com",
            "--dns-domain",
            "x.elsewhere.org",
            "--tezt-cloud",
            namespace
          ], { ...env, HOME: home })
          assert.strictEqual(run.code, 0, run.out)
          assert.include(run.out, `dns: node1.tezt.example.com. → ${host.host} (zone tezt-cloud)`)
          assert.include(
            run.out,
            "The domain 'x.elsewhere.org.' is not a subdomain of an authorized GCP zone. Skipping."
          )
          assert.include(run.out, "Hello world from agent 1")
          assert.deepStrictEqual(yield* records("node1.tezt.example.com."), [[host.host]])
        }).pipe(Effect.scoped))

      it.effect("--dns-domain without an ssh host is refused, naming why, and creates nothing", () =>
        Effect.gen(function*() {
          const { env, namespace, stateDir } = fresh()
          const refused = yield* cli(
            [
              "BASIC",
              "simple",
              "health",
              "--localhost",
              "--dns-domain",
              "a.tezt.example.com",
              "--tezt-cloud",
              namespace
            ],
            env
          )
          assert.strictEqual(refused.code, 2, refused.out)
          assert.include(refused.out, "--dns-domain")
          assert.include(refused.out, "--ssh-host")
          assert.isFalse(fs.existsSync(path.join(stateDir, namespace)), "nothing created")
        }))
    })
  }
)
