/**
 * Docker runtime benchmark: deploy then tear down N agents with `--localhost`'s Docker runtime, beside raw
 * `docker run -d` / `docker rm -f` of the same image in parallel (the floor: no readiness, no ssh, no build), in
 * one run on the same engine (test/fixtures/DockerEngine.ts: a private dockerd and the debootstrap base image).
 *
 *   - tezt-cloud deploy: image build (cached by the engine after the first size) + network + N containers started
 *     in parallel + sshd ready (followed logs) + `echo check` over ssh, i.e. agents a scenario can use
 *   - tezt-cloud teardown: ssh connections closed, N containers and the run's image tag removed
 *   - raw docker run: N `docker run -d` (sshd on its port) in parallel; raw docker rm: N `docker rm -f` in parallel
 *
 * Run: `npm run bench:docker` (as root; needs docker.io and debootstrap). `BENCH_SIZES=1,8` picks the agent
 * counts (default 1,8,32).
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { AgentConfig, CloudConfig, Ledger, Orchestrator, RunEvents } from "@tezt-cloud/core"
import { Effect, Layer } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DockerAgents, DockerClient, DockerImage } from "../packages/docker/src/index.ts"
import { SshKeys } from "../packages/ssh/src/index.ts"
import * as DockerEngine from "../test/fixtures/DockerEngine.ts"
import { deployAndTearDown } from "./Deploy.ts"

const sizes = (process.env.BENCH_SIZES ?? "1,8,32").split(",").map(Number)
const root = path.resolve(import.meta.dirname, "..")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bench-docker-"))
const namespace = "benchdocker"
const client = DockerClient.layer({ socketPath: DockerEngine.socket })

const seconds = (ms: number) => (ms / 1000).toFixed(2)

/** `docker …` with the test engine, resolved when it exits 0. */
const docker = (args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) =>
    child.execFile(
      "docker",
      [...args],
      { env: { ...process.env, DOCKER_HOST: DockerEngine.host } },
      (e, _o, err) => e ? reject(new Error(`docker ${args.join(" ")}: ${err}`)) : resolve()
    )
  )

const timed = async (f: () => Promise<unknown>) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

/** Deploys `n` agents with the Docker runtime, then closes the scope: both wall times. */
const tezt = (n: number) =>
  Effect.gen(function*() {
    const config = yield* CloudConfig.resolve(
      {
        tezt_cloud: namespace,
        localhost: true,
        agent_runtime: "docker",
        dockerfile_alias: "debian",
        vm_base_port: 14000,
        ports_per_vm: 10
      },
      {},
      {}
    )
    const layer = DockerAgents.layer({
      stateDir: path.join(work, "state"),
      config,
      artifactsDir: path.join(work, "artifacts"),
      keyHome: path.join(work, "home"),
      dockerfilesDir: path.join(root, "dockerfiles")
    }).pipe(Layer.provideMerge(Layer.mergeAll(
      Ledger.Ledger.layer(path.join(work, "state"), namespace),
      RunEvents.RunEvents.layer([]),
      client,
      NodeServices.layer
    )))
    const configs = AgentConfig.complete(
      Array.from({ length: n }, (_, i) => ({ name: `a${i}` })),
      Orchestrator.agentDefaults(config)
    )
    return yield* deployAndTearDown(layer, configs)
  })

/** Raw `docker run -d` of `n` containers of `image` in parallel, then `docker rm -f` of them in parallel. */
const raw = async (n: number, image: string) => {
  const names = Array.from({ length: n }, (_, i) => `benchraw-${i}`)
  const run = await timed(() =>
    Promise.all(
      names.map((name, i) =>
        docker(["run", "-d", "--network", "host", "--name", name, image, "-D", "-p", String(16000 + i * 10), "-e"])
      )
    )
  )
  const rm = await timed(() => Promise.all(names.map((name) => docker(["rm", "-f", name]))))
  return { run, rm }
}

const main = async () => {
  await DockerEngine.ready()
  // The raw contender's image: the same Dockerfile and args, under a tag of its own.
  const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, path.join(work, "home")))
  const [agent] = AgentConfig.complete([{}], {
    machineType: "",
    os: "debian",
    binariesPath: "/tmp/tezt-runners",
    maxRunDuration: undefined,
    diskType: undefined,
    diskSizeGb: undefined,
    dockerfileAlias: "debian"
  })
  const rawImage = "benchraw:latest"
  await Effect.runPromise(
    Effect.gen(function*() {
      const d = yield* DockerClient.DockerClient
      yield* d.build({
        context: path.join(root, "dockerfiles"),
        dockerfile: "debian.Dockerfile",
        tag: rawImage,
        buildArgs: DockerImage.buildArgs(agent!, key.publicKey),
        labels: {}
      })
    }).pipe(Effect.provide(client))
  )

  const rows: Array<Array<string>> = []
  for (const n of sizes) {
    const t = await Effect.runPromise(tezt(n))
    const r = await raw(n, rawImage)
    rows.push([
      String(n),
      seconds(t.deploy),
      seconds(r.run),
      (t.deploy / r.run).toFixed(2),
      seconds(t.teardown),
      seconds(r.rm),
      (t.teardown / r.rm).toFixed(2)
    ])
  }
  await docker(["rmi", rawImage])
  fs.rmSync(work, { recursive: true, force: true })
  console.log(
    `Docker runtime, ${os.cpus().length} cores, Node ${process.version}, engine ${DockerEngine.host}\n\n` +
      "| agents | tezt-cloud deploy s | raw docker run s | × raw | tezt-cloud teardown s | raw docker rm s | × raw |\n" +
      "| --- | --- | --- | --- | --- | --- | --- |\n" +
      rows.map((r) => `| ${r.join(" | ")} |`).join("\n")
  )
}

await main()
