/**
 * `tezt-cloud --localhost` with the Docker runtime, end to end with the real executable and a real engine
 * (test/fixtures/DockerEngine.ts): the README's command, runtime selection, kill -9 then `CLOUD clean up`; and
 * `--ssh-host H --agent-runtime docker` on an ssh host (test/fixtures/SshHosts.ts) whose engine is the test engine.
 */
import { afterAll, assert, beforeAll, describe } from "@effect/vitest"
import { DockerAgents, DockerClient, DockerRegistry } from "@tezt-cloud/docker"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Init from "../packages/cli/src/commands/init.ts"
import { fresh, live, outstanding, root, start } from "./fixtures/Cli.ts"
import * as DockerEngine from "./fixtures/DockerEngine.ts"
import * as Integration from "./fixtures/Integration.ts"
import * as Ports from "./fixtures/Ports.ts"
import * as SshHosts from "./fixtures/SshHosts.ts"

const enabled = Integration.available("docker CLI tests", DockerEngine.binaries)
/** The registry test needs Debian's docker-registry too: skipped without it, a failure under TEZT_CLOUD_IT=require. */
const withRegistry = enabled && Integration.available("docker registry test", ["/usr/bin/docker-registry"])

/** Runs an effect against the test engine. */
const onEngine = DockerEngine.onEngine

const leftovers = (namespace: string) => onEngine(DockerAgents.leftovers(namespace))

/**
 * The names of the namespace's containers, as `leftovers` lists them, without its listing of images (which walks
 * every image the engine has, its build cache too: the slow part on a busy engine, and a poll must be quick).
 */
const containers = (namespace: string) =>
  onEngine(
    Effect.flatMap(Effect.service(DockerClient.DockerClient), (docker) =>
      docker.containers({ [DockerClient.namespaceLabel]: namespace }))
  ).then((found) =>
    found.map((c) => c.name)
  )

const nothing = { containers: [], networks: [], images: [] }

// Other test files run agents at the default ports at the same time: each run here gets a range of its own, below
// the ephemeral range.
let nextPort = Ports.take(5000) - 500
const ports = () => ["--vm-base-port", String(nextPort += 500)]

/** `tezt-cloud ARGS --localhost --agent-runtime docker` in a fresh namespace, on ports of its own. */
const onDocker = (args: ReadonlyArray<string>) => {
  const f = freshDocker()
  const cli = start(
    [...args, "--localhost", "--agent-runtime", "docker", "--tezt-cloud", f.namespace, ...ports()],
    f.env
  )
  return { ...f, cli }
}

/** A fresh namespace on the test engine, whose leftovers (if a test fails) go after the file. */
const used: Array<string> = []
const freshDocker = () => {
  const f = fresh(DockerEngine.host)
  used.push(f.namespace)
  return f
}

describe.runIf(enabled)("tezt-cloud --localhost on Docker", () => {
  beforeAll(() => DockerEngine.ready(), 600_000)

  afterAll(() => DockerEngine.removeAll(used))

  live("BASIC simple health --agent-runtime docker passes and leaves no container, network or image tag", async () => {
    const { cli, namespace } = onDocker(["BASIC", "simple", "health"])
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), "backend Docker containers on")
    assert.include(cli.stdout(), "Hello world from agent 1")
    // The image build says what it does, step by step, and how long it took.
    assert.match(cli.stdout(), /image \S+: building debian\.Dockerfile as /)
    assert.match(cli.stdout(), /image \S+: Step 1\/\d+ : /)
    assert.match(cli.stdout(), /image \S+: built in \d+\.\ds/)
    assert.deepStrictEqual(await leftovers(namespace), nothing)
  })

  live("--localhost picks Docker when an engine answers, and says so; a dedicated network goes too", async () => {
    const { env, namespace, stateDir } = freshDocker()
    // The scenario of a repository made by `tezt-cloud init` (outside the clone), as the README runs it.
    const repo = path.join(stateDir, "my-scenarios")
    for (const [file, text] of Object.entries(Init.files(root, "my-scenarios"))) {
      fs.mkdirSync(path.dirname(path.join(repo, file)), { recursive: true })
      fs.writeFileSync(path.join(repo, file), text)
    }
    const cli = start(
      ["MINE", "hello", "--localhost", "--no-docker-host-network", "--tezt-cloud", namespace, ...ports()],
      { ...env, TEZT_CLOUD_SCENARIOS: path.join(repo, "scenarios/Example.ts") }
    )
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), "hello from second")
    assert.match(cli.stdout(), /backend Docker containers on unix:\/\/\S+ \(an engine answers/)
    assert.deepStrictEqual(await leftovers(namespace), nothing)
  })

  live("--agent-runtime process keeps process sandboxes even with an engine", async () => {
    const { env, namespace } = freshDocker()
    const cli = start(
      ["BASIC", "simple", "health", "--localhost", "--agent-runtime", "process", "--tezt-cloud", namespace],
      env
    )
    assert.strictEqual(await cli.exit, 0, cli.stderr())
    assert.include(cli.stdout(), "local process sandboxes (--agent-runtime process)")
  })

  live("--agent-runtime docker without an engine: one clear error naming the option and the fix", async () => {
    const { env, namespace } = fresh()
    const cli = start(["BASIC", "simple", "--localhost", "--agent-runtime", "docker", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cli.exit, 2)
    assert.match(cli.stderr(), /--agent-runtime docker.*no Docker engine answers.*--agent-runtime process/)
    assert.strictEqual(cli.stderr().trim().split("\n").length, 1, cli.stderr())
  })

  live("agents exec reaches a live run's containers; after kill -9, CLOUD clean up leaves none of them", async () => {
    const { cli, env, namespace } = onDocker(["TEST", "block"])
    await cli.waitFor("ready for signal")
    // The live run's containers are reached from their descriptors by another process.
    const exec = start(["agents", "exec", "--tezt-cloud", namespace, "--", "sh", "-c", "ls /run/*.sshd.pid"], env)
    assert.strictEqual(await exec.exit, 0, exec.stderr())
    for (const agent of ["agent-000", "agent-001"]) {
      assert.include(exec.stdout(), `[${agent}] /run/${DockerAgents.containerName(namespace, agent)}.sshd.pid`)
    }
    cli.proc.kill("SIGKILL")
    assert.isNull(await cli.exit)
    assert.strictEqual(cli.proc.signalCode, "SIGKILL")
    assert.lengthOf(await containers(namespace), 2, "the containers outlive the CLI")
    const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], env)
    assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
    assert.include(cleanUp.stdout(), "removed 2 containers")
    assert.deepStrictEqual(await leftovers(namespace), nothing)
  })

  describe.runIf(withRegistry)("with a local registry", () => {
    live("CLOUD docker build, registry deploy and push: the image reaches a local registry", async () => {
      const { env, namespace, stateDir } = freshDocker()
      const registry = `127.0.0.1:${Ports.one()}`
      const all = { ...env, TEZT_CLOUD_DOCKER_REGISTRY: registry }
      const tezt = async (...args: Array<string>) => {
        const cli = start(["CLOUD", "docker", ...args, "--tezt-cloud", namespace], all)
        assert.strictEqual(await cli.exit, 0, cli.stderr())
        return cli.stdout()
      }
      try {
        assert.include(await tezt("build"), `built ${namespace}:latest`)
        assert.include(await tezt("registry", "deploy"), `listens on ${registry}`)
        assert.include(await tezt("push"), `pushed ${registry}/${namespace}:latest`)
        const catalog = await (await fetch(`http://${registry}/v2/_catalog`)).json() as { repositories: Array<string> }
        assert.include(catalog.repositories, namespace)
        assert.isTrue(fs.existsSync(path.join(stateDir, namespace, "registry", "storage", "docker")))
      } finally {
        await onEngine(Effect.ignore(Effect.gen(function*() {
          const docker = yield* DockerClient.DockerClient
          yield* docker.remove(DockerRegistry.containerName(namespace))
          yield* docker.removeImage(`${registry}/${namespace}:latest`)
          yield* docker.removeImage(`${namespace}:latest`)
        })))
      }
    })
  })

  live("SIGINT during container start-up leaves no container of the namespace", async () => {
    const { cli, namespace } = onDocker(["TEST", "block"])
    await cli.waitFor("deploying 2 agents")
    // As soon as a container exists: mid start-up.
    for (let i = 0; i < 600 && (await containers(namespace)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25))
    }
    cli.proc.kill("SIGINT")
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    assert.deepStrictEqual(await containers(namespace), [])
  })
})

describe.runIf(enabled && Integration.available("Docker on an ssh host", [SshHosts.sshd]))(
  "tezt-cloud --ssh-host --agent-runtime docker",
  () => {
    beforeAll(() => DockerEngine.ready(), 600_000)

    afterAll(() => DockerEngine.removeAll(used))

    /** A fresh namespace, its key in a home of its own, and an ssh host with those sshd_config lines. */
    const onHost = async (extraConfig: ReadonlyArray<string>) => {
      const f = freshDocker()
      const home = path.join(f.stateDir, "home")
      const key = await Effect.runPromise(SshKeys.ensure(f.namespace, undefined, home))
      const host = await SshHosts.start({ authorizedKeys: [key.publicKey], extraConfig })
      const run = (args: ReadonlyArray<string>) =>
        start(
          [...args, "--ssh-host", `${SshHosts.user}@${host.host}:${host.port}`, "--tezt-cloud", f.namespace],
          { ...f.env, HOME: home, TEZT_CLOUD_DOCKERFILES: path.join(root, "dockerfiles") }
        )
      return { ...f, host, run }
    }

    live("BASIC simple health runs its agents as containers of the host's engine, and leaves none", async () => {
      const { host, namespace, run } = await onHost(SshHosts.dockerEngine(DockerEngine.socket))
      try {
        const cli = run(["BASIC", "simple", "health", "--agent-runtime", "docker", ...ports()])
        assert.strictEqual(await cli.exit, 0, cli.stderr())
        assert.include(cli.stdout(), `backend Docker containers on ${SshHosts.user}@${host.host}:${host.port}'s engine`)
        assert.include(cli.stdout(), "Hello world from agent 1")
        assert.deepStrictEqual(await leftovers(namespace), nothing)
      } finally {
        await host.stop()
      }
    })

    live(
      "a Docker socket the user may not use, no sudo for --ssh-provision: one line saying the fix, nothing made",
      async () => {
        // A host's engine whose group the user is not in, on a host where the user has no sudo.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-denied-"))
        const socket = path.join(dir, "docker.sock")
        const server = net.createServer().listen(socket)
        await new Promise((resolve) => server.once("listening", resolve))
        fs.chmodSync(dir, 0o755)
        fs.chownSync(socket, 0, 65534)
        fs.chmodSync(socket, 0o660)
        const group = child.execFileSync("getent", ["group", "65534"]).toString().split(":")[0]!
        const { host, run, stateDir, namespace } = await onHost([`SetEnv DOCKER_HOST=unix://${socket}`])
        try {
          const cli = run(["BASIC", "simple", "--agent-runtime", "docker", "--ssh-provision"])
          assert.notStrictEqual(await cli.exit, 0)
          assert.match(
            cli.stderr(),
            new RegExp(
              `may not use the Docker socket ${socket} .*root:${group}, mode 660.*sudo usermod -aG ${group} ` +
                `${SshHosts.user}.*--ssh-provision needs password-less sudo`
            )
          )
          assert.strictEqual(cli.stderr().trim().split("\n").length, 1, cli.stderr())
          assert.deepStrictEqual(outstanding(stateDir, namespace), [])
        } finally {
          server.close()
          fs.rmSync(dir, { recursive: true, force: true })
          await host.stop()
        }
      }
    )
  }
)
