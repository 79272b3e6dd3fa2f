/**
 * The backend contract (packages/core/test/contract/BackendContract.ts) over every entry of the CLI's list of
 * backends, each with the harness that gives it its real environment: nothing for process sandboxes, a real
 * Docker engine (test/fixtures/DockerEngine.ts), a real OpenSSH host (test/fixtures/SshHosts.ts), the GCE emulator
 * whose VMs are real hosts (packages/gcp/test/fixtures/Emulator.ts). A backend added
 * to the list without a harness fails here.
 */
import { assert, describe, it } from "@effect/vitest"
import { ProxyProtocol } from "@tezt-cloud/proxy"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DockerEngine from "../../../test/fixtures/DockerEngine.ts"
import * as Integration from "../../../test/fixtures/Integration.ts"
import * as Ports from "../../../test/fixtures/Ports.ts"
import * as SshHosts from "../../../test/fixtures/SshHosts.ts"
import { backendContract, type Harness } from "../../core/test/contract/BackendContract.ts"
import * as GceEmulator from "../../gcp/test/fixtures/Emulator.ts"
import * as Backends from "../src/Backends.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const home = fs.mkdtempSync(path.join(os.tmpdir(), "backend-contract-home-"))

/** One key for every namespace of this file, given as `--ssh-private-key`: nothing is written to `~/.ssh`. */
const key = () => Effect.runPromise(SshKeys.ensure("contract", undefined, home))

let sshHost: SshHosts.SshHost | undefined
/**
 * The key of the Docker deployments (`docker`, `ssh-docker`): the test engine's (`DockerEngine.key`), whose agents'
 * image the build cache has.
 */
let dockerKey = ""
/** The ssh host whose Docker engine is the test engine (`ssh-docker`). */
let dockerSshHost: SshHosts.SshHost | undefined
// Containers' sshd bind their agent's port on the host network: each deployment gets a range of its own, from this
// file's ports (`Ports.ts`).
let dockerPort = Ports.take(3000) - 50
/** The agent ports of the process-sandbox, ssh-host and proxy deployments. */
const ports = Ports.take(1500)
let emulator: GceEmulator.Emulator | undefined
// The emulator's VMs each have an address of their own on this loopback /24, their sshd on one port.
const gcpSubnet = `127.82.${process.pid % 250}`
const gcpPort = Ports.take(10)

const harnesses: Record<string, Harness> = {
  localhost: {
    enabled: true,
    config: () => ({
      input: { localhost: true, agent_runtime: "process", vm_base_port: ports, ports_per_vm: 10 }
    }),
    timeout: 30_000
  },
  docker: {
    enabled: Integration.available("docker backend contract", DockerEngine.binaries),
    setup: async () => {
      await DockerEngine.ready()
      process.env.TEZT_CLOUD_DOCKERFILES = path.join(root, "dockerfiles")
      dockerKey = (await Effect.runPromise(DockerEngine.key)).path
    },
    config: () => ({
      input: {
        localhost: true,
        agent_runtime: "docker",
        dockerfile_alias: "debian",
        vm_base_port: dockerPort += 50,
        ports_per_vm: 10
      },
      cliOnly: { sshPrivateKey: dockerKey }
    }),
    timeout: 90_000
  },
  "ssh-host": {
    enabled: Integration.available("ssh-host backend contract", [SshHosts.sshd, "/usr/bin/ssh-keygen"]),
    setup: async () => {
      sshHost = await SshHosts.start({ authorizedKeys: [(await key()).publicKey] })
    },
    teardown: async () => {
      await sshHost?.stop()
    },
    config: () => ({
      input: {
        localhost: false,
        ssh_host: `${SshHosts.user}@${sshHost!.host}:${sshHost!.port}`,
        vm_base_port: ports + 500,
        ports_per_vm: 10
      },
      cliOnly: { sshPrivateKey: SshKeys.defaultPath("contract", home) }
    }),
    timeout: 60_000
  },
  "ssh-docker": {
    enabled: Integration.available("ssh-docker backend contract", [...DockerEngine.binaries, SshHosts.sshd]),
    setup: async () => {
      await DockerEngine.ready()
      process.env.TEZT_CLOUD_DOCKERFILES = path.join(root, "dockerfiles")
      const engineKey = await Effect.runPromise(DockerEngine.key)
      dockerKey = engineKey.path
      dockerSshHost = await SshHosts.start({
        authorizedKeys: [engineKey.publicKey],
        extraConfig: SshHosts.dockerEngine(DockerEngine.socket)
      })
    },
    teardown: async () => {
      await dockerSshHost?.stop()
    },
    config: () => ({
      input: {
        localhost: false,
        ssh_host: `${SshHosts.user}@${dockerSshHost!.host}:${dockerSshHost!.port}`,
        agent_runtime: "docker",
        dockerfile_alias: "debian",
        vm_base_port: dockerPort += 50,
        ports_per_vm: 10
      },
      cliOnly: { sshPrivateKey: dockerKey }
    }),
    // Its agents are the Docker backend's containers and runner (that contract runs there), on another engine.
    runnerContract: false,
    timeout: 90_000
  },
  gcp: {
    enabled: Integration.available("gcp backend contract", GceEmulator.binaries),
    setup: async () => {
      emulator = await GceEmulator.start({ subnet: gcpSubnet, vmPort: gcpPort })
      process.env.TEZT_CLOUD_GCP_ENDPOINT = emulator.url
      await key()
    },
    teardown: async () => {
      delete process.env.TEZT_CLOUD_GCP_ENDPOINT
      await emulator?.stop()
    },
    config: () => ({
      input: {
        localhost: false,
        project_id: GceEmulator.project,
        vm_base_port: gcpPort,
        ports_per_vm: 10,
        destroy: true,
        grafana: false
      },
      cliOnly: { sshPrivateKey: SshKeys.defaultPath("contract", home) }
    }),
    portLayout: "shared",
    timeout: 120_000
  },
  // The proxy's side of --localhost --proxy: the orchestrator its server started, whose agents are process
  // sandboxes on the proxy (here). The variable the server sets tells it so, this process and the deploying one.
  proxy: {
    enabled: true,
    config: (namespace) => {
      process.env[ProxyProtocol.onProxyVariable] = namespace
      return {
        input: {
          localhost: true,
          proxy: true,
          agent_runtime: "process",
          vm_base_port: ports + 1000,
          ports_per_vm: 10
        }
      }
    },
    teardown: async () => {
      delete process.env[ProxyProtocol.onProxyVariable]
    },
    timeout: 30_000
  }
}

const registry = {
  reattach: Backends.reattach,
  cleanUp: Backends.cleanUp,
  deployer: path.join(import.meta.dirname, "fixtures", "deployAndWait.ts")
}

describe("the list of backends", () => {
  it("has a contract harness for every backend", () => {
    assert.sameMembers(Object.keys(harnesses), Backends.entries.map((e) => e.id))
  })
})

for (const entry of Backends.entries) {
  const harness = harnesses[entry.id]
  if (harness !== undefined) backendContract(entry.id, entry.load, harness, registry)
}
