/**
 * Instances realized as real hosts (containers of the agents' image on the test engine,
 * test/fixtures/DockerEngine.ts): reachable by ssh at their natIP with the key of their `ssh-keys` metadata,
 * removed on delete, on expiry of `maxRunDuration`, and when the emulator (`npm run gcp-emulator`) gets SIGTERM.
 */
import { afterAll, assert, beforeAll, describe, layer } from "@effect/vitest"
import { InstancesClient, ZoneOperationsClient } from "@google-cloud/compute"
import { DockerClient } from "@tezt-cloud/docker"
import { Context, type Duration, Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import * as DockerEngine from "../../../test/fixtures/DockerEngine.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import { clientOptions, DockerHosts, Emulator, Faults } from "../src/index.ts"
import { call, operation } from "./Support.ts"

const enabled = Integration.available("gce-emulator host tests", [...DockerEngine.binaries, "/usr/bin/ssh"])
const project = "proj"
const zone = "europe-west1-b"
const id = `gcetest-${process.pid}`
// Each test process takes its own loopback /24 (sshd binds <address>:30000 on the host network).
const subnet = `127.78.${process.pid % 250}`
const engine = { socketPath: DockerEngine.socket }

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gce-emulator-"))
const key = path.join(dir, "id_ed25519")

class Clients extends Context.Service<Clients, {
  readonly url: string
  readonly instances: InstancesClient
  readonly operations: ZoneOperationsClient
}>()("test/HostClients") {}

const clients = Layer.effect(
  Clients,
  Effect.gen(function*() {
    const { url } = yield* Emulator.serve({ port: 0, addresses: { first: `${subnet}.2`, last: `${subnet}.60` } })
    return Clients.of({
      url,
      instances: new InstancesClient(clientOptions(url)),
      operations: new ZoneOperationsClient(clientOptions(url))
    })
  })
).pipe(
  Layer.provide(Layer.mergeAll(
    DockerHosts.layer({ id, port: 30000, dockerfiles: path.resolve(import.meta.dirname, "../../../dockerfiles") }),
    Faults.Faults.layer()
  )),
  Layer.provideMerge(DockerClient.layer(engine))
)

const instance = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  machineType: `zones/${zone}/machineTypes/e2-small`,
  disks: [{ boot: true, initializeParams: { sourceImage: "projects/debian-cloud/global/images/family/debian-12" } }],
  networkInterfaces: [{ accessConfigs: [{ name: "External NAT" }] }],
  metadata: { items: [{ key: "ssh-keys", value: `root:${fs.readFileSync(`${key}.pub`, "utf8").trim()}` }] },
  ...extra
})

/** `ssh -p 30000 root@address echo Hello`: its exit code and output. */
const ssh = (address: string) =>
  Effect.callback<{ readonly code: number; readonly out: string }>((resume) => {
    const p = child.execFile(
      "ssh",
      [
        "-p",
        "30000",
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=20",
        "-o",
        "LogLevel=ERROR",
        `root@${address}`,
        "echo",
        "Hello"
      ],
      { timeout: 60_000 },
      (error, stdout) => resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), out: stdout }))
    )
    return Effect.sync(() => p.kill("SIGKILL"))
  })

/** The emulator's containers (of `emulator`, default this file's). */
const containers = (emulator = id) =>
  Effect.gen(function*() {
    const docker = yield* DockerClient.DockerClient
    return (yield* docker.containers({ [DockerHosts.label]: emulator })).map((c) =>
      c.labels[`${DockerHosts.label}.instance`]
    )
  })

/** Polls `f` every 250 ms until `done` holds of its result; fails after `limit`. */
const eventually = <A, E, R>(
  f: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  limit: Duration.Input = "60 seconds"
) =>
  Effect.gen(function*() {
    for (;;) {
      const a = yield* f
      if (done(a)) return a
      yield* Effect.sleep("250 millis")
    }
  }).pipe(Effect.timeout(limit))

const gone = (c: Clients["Service"], name: string) =>
  Effect.promise(() =>
    c.instances.get({ project, zone, instance: name }).then(() => false, (e: { code?: number }) => e.code === 5)
  )

describe.runIf(enabled)("gce-emulator: hosts", () => {
  beforeAll(async () => {
    await DockerEngine.ready()
    child.execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
  }, 600_000)

  afterAll(async () => {
    // Whatever a failed test left.
    for (const emulator of [id, `gcetest-sig-${process.pid}`]) {
      await Effect.runPromise(
        DockerHosts.removeAll(emulator).pipe(Effect.provide(DockerClient.layer(engine)), Effect.ignore)
      )
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })

  layer(clients, { excludeTestServices: true, timeout: 180_000 })((it) => {
    it.effect(
      "two instances inserted in parallel answer ssh at their natIP; delete removes the container",
      () =>
        Effect.gen(function*() {
          const c = yield* Clients
          const names = ["host-a", "host-b"]
          const ops = yield* Effect.forEach(
            names,
            (name) => call(() => c.instances.insert({ project, zone, instanceResource: instance(name) })),
            { concurrency: "unbounded" }
          )
          const done = yield* Effect.forEach(
            ops,
            ([op]) => call(() => c.operations.wait({ project, zone, operation: operation(op).name! })),
            { concurrency: "unbounded" }
          )
          for (const [d] of done) {
            assert.strictEqual(d.status, "DONE")
            assert.isNull(d.error ?? null, JSON.stringify(d.error))
          }
          const got = yield* Effect.forEach(names, (name) =>
            call(() => c.instances.get({ project, zone, instance: name })))
          const addresses = got.map(([i]) =>
            i.networkInterfaces![0]!.accessConfigs![0]!.natIP!
          )
          assert.strictEqual(new Set(addresses).size, 2, "each instance has its own address")
          for (const address of addresses) {
            assert.match(address, new RegExp(`^${subnet.replaceAll(".", "\\.")}\\.\\d+$`))
            assert.deepStrictEqual(yield* ssh(address), { code: 0, out: "Hello\n" })
          }
          assert.sameMembers(
            [...yield* containers()],
            names.map((n) => `projects/${project}/zones/${zone}/instances/${n}`)
          )
          const [deletion] = yield* call(() => c.instances.delete({ project, zone, instance: "host-a" }))
          yield* call(() => c.operations.wait({ project, zone, operation: operation(deletion).name! }))
          assert.deepStrictEqual([...yield* containers()], [`projects/${project}/zones/${zone}/instances/host-b`])
          assert.notStrictEqual((yield* ssh(addresses[0]!)).code, 0, "the deleted host no longer answers")
          const [other] = yield* call(() => c.instances.delete({ project, zone, instance: "host-b" }))
          yield* call(() => c.operations.wait({ project, zone, operation: operation(other).name! }))
          assert.deepStrictEqual([...yield* containers()], [])
        }),
      180_000
    )

    it.effect(
      "maxRunDuration with instanceTerminationAction DELETE deletes the instance and its host by itself",
      () =>
        Effect.gen(function*() {
          const c = yield* Clients
          const [op] = yield* call(() =>
            c.instances.insert({
              project,
              zone,
              instanceResource: instance("ttl-1", {
                scheduling: { maxRunDuration: { seconds: 3 }, instanceTerminationAction: "DELETE" }
              })
            })
          )
          const [done] = yield* call(() => c.operations.wait({ project, zone, operation: operation(op).name! }))
          assert.strictEqual(done.status, "DONE")
          yield* eventually(gone(c, "ttl-1"), (g) => g)
          assert.deepStrictEqual([...yield* containers()], [])
          const [ops] = yield* call(() => c.operations.list({ project, zone }, { autoPaginate: false }))
          const deletion = ops.find((o) => o.operationType === "delete" && o.targetLink?.endsWith("/ttl-1"))
          assert.strictEqual(deletion?.user, "system", "the deletion is the system's")
        }),
      180_000
    )

    it.effect(
      "an injected instance failure kills the host: TERMINATED, ssh refused",
      () =>
        Effect.gen(function*() {
          const c = yield* Clients
          const [op] = yield* call(() => c.instances.insert({ project, zone, instanceResource: instance("crash-1") }))
          yield* call(() => c.operations.wait({ project, zone, operation: operation(op).name! }))
          const [before] = yield* call(() => c.instances.get({ project, zone, instance: "crash-1" }))
          const address = before.networkInterfaces![0]!.networkIP!
          assert.strictEqual((yield* ssh(address)).code, 0)
          const r = yield* call(() =>
            fetch(`${c.url}/emulator/v1/projects/${project}/zones/${zone}/instances/crash-1/fail`, { method: "POST" })
          )
          assert.strictEqual(r.status, 200)
          const [after] = yield* call(() => c.instances.get({ project, zone, instance: "crash-1" }))
          assert.strictEqual(after.status, "TERMINATED")
          assert.notStrictEqual((yield* ssh(address)).code, 0)
          const [deletion] = yield* call(() => c.instances.delete({ project, zone, instance: "crash-1" }))
          yield* call(() => c.operations.wait({ project, zone, operation: operation(deletion).name! }))
          assert.deepStrictEqual([...yield* containers()], [])
        }),
      180_000
    )

    it.effect(
      "npm run gcp-emulator prints its URL when ready; SIGTERM removes every host it realized",
      () =>
        Effect.gen(function*() {
          const emulator = `gcetest-sig-${process.pid}`
          const bin = path.resolve(import.meta.dirname, "../src/bin.ts")
          const p = child.spawn(process.execPath, [
            bin,
            "--port",
            "0",
            "--id",
            emulator,
            "--addresses",
            `${subnet}.100-${subnet}.120`,
            "--dockerfiles",
            path.resolve(import.meta.dirname, "../../../dockerfiles")
          ], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, DOCKER_HOST: DockerEngine.host } })
          yield* Effect.addFinalizer(() => Effect.sync(() => p.kill("SIGKILL")))
          const url = yield* Effect.promise(() =>
            new Promise<string>((resolve, reject) => {
              readline.createInterface({ input: p.stdout! }).once("line", resolve)
              p.once("exit", (code) => reject(new Error(`the emulator exited with ${code} before it was ready`)))
            })
          )
          assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
          const instances = new InstancesClient(clientOptions(url))
          const operations = new ZoneOperationsClient(clientOptions(url))
          const ops = yield* Effect.forEach(
            ["sig-1", "sig-2"],
            (name) => call(() => instances.insert({ project, zone, instanceResource: instance(name) })),
            { concurrency: "unbounded" }
          )
          for (const [op] of ops) {
            const [done] = yield* call(() => operations.wait({ project, zone, operation: operation(op).name! }))
            assert.isNull(done.error ?? null, JSON.stringify(done.error))
          }
          assert.lengthOf(yield* containers(emulator), 2)
          const exit = yield* Effect.promise(() =>
            new Promise<number | null>((resolve) => {
              p.once("exit", (code) => resolve(code))
              p.kill("SIGTERM")
            })
          )
          assert.isNotNull(exit, "it exited by itself, not killed by the signal")
          assert.deepStrictEqual([...yield* containers(emulator)], [], "no container left")
        }).pipe(Effect.scoped),
      180_000
    )
  })
})
