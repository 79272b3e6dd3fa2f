import { assert, describe, it } from "@effect/vitest"
import { SshDockerAgents } from "@tezt-cloud/docker"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** The host check, run by `sh` here with `DOCKER_HOST` as a host's session would have it. */
const probe = (dockerHost: string | undefined) => {
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    ...(dockerHost === undefined ? {} : { DOCKER_HOST: dockerHost })
  }
  return SshDockerAgents.parseProbe(child.execFileSync("sh", ["-c", SshDockerAgents.probeScript], { env }).toString())
}

const dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].some((f) => fs.existsSync(f))

describe("SshDockerAgents: the host's Docker, checked", () => {
  it("a socket the user may use is ready; DOCKER_HOST names it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-docker-probe-"))
    const socket = path.join(dir, "docker.sock")
    const server = net.createServer().listen(socket)
    await new Promise((resolve) => server.once("listening", resolve))
    try {
      const { state } = probe(`unix://${socket}`)
      assert.deepStrictEqual(state, { _tag: "Ready", user: os.userInfo().username, socket })
      assert.isUndefined(SshDockerAgents.explain(state))
    } finally {
      server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("no socket: Docker stopped (dockerd installed) or missing, each explained in one line with the fix", () => {
    const { state } = probe("unix:///nonexistent/docker.sock")
    assert.strictEqual(state._tag, dockerd ? "Stopped" : "Missing")
    const line = SshDockerAgents.explain(state)!
    assert.notInclude(line, "\n")
    assert.include(line, dockerd ? "sudo systemctl start docker" : "sudo apt-get install docker.io")
    assert.include(line, "--ssh-provision")
    assert.include(line, "--agent-runtime docker")
  })

  it("a socket the user may not use, Docker missing, a tcp:// DOCKER_HOST: each says its fix", () => {
    const denied = SshDockerAgents.parseProbe("denied alice /var/run/docker.sock root:docker 660\n")
    assert.include(SshDockerAgents.explain(denied.state)!, "sudo usermod -aG docker alice")
    assert.isFalse(denied.sudo)
    const rootOnly = SshDockerAgents.parseProbe("denied alice /run/docker.sock root:root 600\n")
    assert.include(SshDockerAgents.explain(rootOnly.state)!, "which only root may use")
    const missing = SshDockerAgents.parseProbe("missing alice /var/run/docker.sock\nsudo\n")
    assert.include(SshDockerAgents.explain(missing.state)!, "Docker is not installed on the host")
    assert.isTrue(missing.sudo)
    const { state } = probe("tcp://10.0.0.1:2375")
    assert.strictEqual(state._tag, "Unsupported")
    assert.include(SshDockerAgents.explain(state)!, "DOCKER_HOST is tcp://10.0.0.1:2375")
  })
})
