/**
 * `--ssh-host` with what a user of OpenSSH already has, through the real CLI on real sshd hosts (whose account has
 * a home of its own, with its `.ssh/authorized_keys`) and real `ssh-agent`s: the agent's key alone gets in and the
 * run's key is installed for the run (then `agents exec` from another terminal needs no agent) and removed at the
 * end; a Host alias of an ssh config file (HostName, User, Port, IdentityFile, a hashed UserKnownHostsFile with
 * StrictHostKeyChecking yes); `CLOUD clean up` removing the installed key after a `kill -9`; a host key that is
 * not the one the user's known_hosts has is refused; a failure names every key source tried and the fix; a host
 * reachable only through its ProxyJump (a bastion in a network namespace, the host on that namespace's loopback).
 * In process: a key the user's known_hosts knows is recorded for the namespace, IdentitiesOnly filters the agent's
 * keys, a host hanging up after MaxAuthTries is an authentication failure.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SshAuth, SshClient, SshConfig } from "../packages/ssh/src/index.ts"
import { fresh, live, outstanding, start } from "./fixtures/Cli.ts"
import * as Integration from "./fixtures/Integration.ts"
import * as SshHosts from "./fixtures/SshHosts.ts"

const enabled = Integration.available("ssh integration tests", [
  SshHosts.sshd,
  "/usr/bin/ssh-keygen",
  "/usr/bin/ssh-agent",
  "/usr/bin/ssh-add",
  "/usr/bin/ssh-keyscan"
])

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-sshauth-"))
let host: SshHosts.SshHost | undefined
/** A jump host in a network namespace of its own, and a host reachable only through it (on that namespace's loopback). */
let bastion: SshHosts.SshHost | undefined
let hidden: SshHosts.SshHost | undefined
const agents: Array<child.ChildProcess> = []

/** A new ed25519 key pair in `dir` (with `passphrase` when given); its private key's path. */
const keygen = (name: string, passphrase = "") => {
  const file = path.join(dir, name)
  child.execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", file])
  return file
}

/** The user's key, authorized on the host; another that is not. */
const userKey = path.join(dir, "user")
const strangerKey = path.join(dir, "stranger")

/** A real `ssh-agent` on a socket of its own holding `keys`; its socket. */
const agentWith = async (keys: ReadonlyArray<string>) => {
  const socket = path.join(dir, `agent-${agents.length}.sock`)
  const agent = child.spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" })
  agents.push(agent)
  for (let i = 0; i < 400 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25))
  for (const key of keys) child.execFileSync("ssh-add", ["-q", key], { env: { SSH_AUTH_SOCK: socket }, stdio: "pipe" })
  return socket
}

/** The host account's `authorized_keys`, as sshd reads it. */
const authorized = (on: SshHosts.SshHost = host!) => {
  const file = path.join(on.home, ".ssh", "authorized_keys")
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
}

/** An ssh config file with `blocks`. */
const sshConfig = (name: string, blocks: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, blocks)
  return file
}

/**
 * `agents exec -- echo reached` from another terminal, cold (reconnecting to the agents), with no ssh-agent and
 * no ssh config: its output.
 */
const reachedFromAnotherTerminal = async (env: Record<string, string>, home: string, namespace: string) => {
  const exec = start(["agents", "exec", "--tezt-cloud", namespace, "--", "echo", "reached"], {
    ...env,
    HOME: home,
    SSH_AUTH_SOCK: "",
    TEZT_CLOUD_COLD: "1"
  })
  assert.strictEqual(await exec.exit, 0, exec.stderr())
  return exec.stdout()
}

/** A Host block of the test host named `alias`, with `lines` more. */
const hostBlock = (alias: string, lines: ReadonlyArray<string>) =>
  [`Host ${alias}`, `  HostName ${host!.host}`, `  Port ${host!.port}`, ...lines.map((l) => `  ${l}`), ""].join("\n")

/** A run on `sshHost` resolved in `config` that must fail, nothing made on the host: its error line with `marker`. */
const refusedRun = async (
  config: string,
  sshHost: string,
  namespace: string,
  env: Record<string, string>,
  marker: string
) => {
  const cli = start(
    ["BASIC", "simple", "health", "--ssh-config", config, "--ssh-host", sshHost, "--tezt-cloud", namespace],
    env
  )
  assert.notStrictEqual(await cli.exit, 0)
  assert.notInclude(cli.stderr(), "PRIVATE KEY", "no private key is ever printed")
  assert.notInclude(authorized(), `tezt-cloud ${namespace}`)
  assert.isFalse(fs.existsSync(runDir(namespace)))
  return cli.stderr().split("\n").find((l) => l.includes(marker)) ?? cli.stderr()
}

/** The run's directory on the host. */
const runDir = (namespace: string) => path.join("/tmp", `tezt-cloud-${SshHosts.ensureUser()}`, namespace)

beforeAll(async () => {
  if (!enabled) return
  keygen("user")
  keygen("stranger")
  const authorizedKeys = [fs.readFileSync(`${userKey}.pub`, "utf8").trim()]
  host = await SshHosts.start({ authorizedKeys, ownHome: true })
  bastion = await SshHosts.start({ authorizedKeys, ownHome: true, netns: true })
  hidden = await SshHosts.start({ authorizedKeys, ownHome: true, behind: bastion })
})

afterAll(async () => {
  for (const agent of agents) agent.kill()
  await host?.stop()
  await hidden?.stop()
  await bastion?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe.runIf(enabled)("ssh hosts as users have them", () => {
  live(
    "the agent's key alone gets in; the run's key is installed for the run (agents exec needs no agent), then removed",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const home = path.join(stateDir, "home")
      const socket = await agentWith([userKey])
      const run = start(
        [
          "BASIC",
          "simple",
          "health",
          "--ssh-host",
          `${SshHosts.user}@${host!.host}:${host!.port}`,
          "--keep-alive",
          "--tezt-cloud",
          namespace
        ],
        { ...env, HOME: home, SSH_AUTH_SOCK: socket },
        { stdin: "pipe" }
      )
      await run.waitFor("Please press <enter>")
      assert.include(authorized(), `tezt-cloud ${namespace}`)
      assert.include(await reachedFromAnotherTerminal(env, home, namespace), "[agent-000] reached")
      run.proc.stdin!.end("\n")
      assert.strictEqual(await run.exit, 0, run.stderr())
      assert.include(run.stdout(), "Scenario ended successfully.")
      assert.notInclude(authorized(), `tezt-cloud ${namespace}`)
      assert.deepStrictEqual(outstanding(stateDir, namespace), [])
    }
  )

  live(
    "a Host alias of --ssh-config (HostName, User, Port, IdentityFile, hashed known_hosts, strict); clean up after kill -9",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const home = path.join(stateDir, "home")
      const knownHosts = path.join(dir, "known_hosts_alias")
      fs.writeFileSync(
        knownHosts,
        child.execFileSync("ssh-keyscan", ["-p", String(host!.port), host!.host], { stdio: ["ignore", "pipe", "pipe"] })
      )
      child.execFileSync("ssh-keygen", ["-q", "-H", "-f", knownHosts], { stdio: "pipe" })
      assert.notInclude(fs.readFileSync(knownHosts, "utf8"), host!.host, "the known_hosts names are hashed")
      const config = sshConfig(
        "config_alias",
        [
          "Host validator",
          `  HostName ${host!.host}`,
          `  User ${SshHosts.user}`,
          `  Port ${host!.port}`,
          `  IdentityFile ${userKey}`,
          `  UserKnownHostsFile ${knownHosts}`,
          "  StrictHostKeyChecking yes",
          ""
        ].join("\n")
      )
      const runEnv = { ...env, HOME: home, SSH_AUTH_SOCK: "" }
      const run = start(
        ["BASIC", "simple", "health", "--ssh-config", config, "--ssh-host", "validator", "--keep-alive"].concat([
          "--tezt-cloud",
          namespace
        ]),
        runEnv,
        { stdin: "pipe" }
      )
      await run.waitFor("Please press <enter>")
      assert.include(run.stdout(), "Hello world from agent 1")
      assert.include(authorized(), `tezt-cloud ${namespace}`)
      assert.isTrue(fs.existsSync(runDir(namespace)))
      run.proc.kill("SIGKILL")
      await run.exit
      const cleanUp = start(["CLOUD", "clean", "up", "--tezt-cloud", namespace], runEnv)
      assert.strictEqual(await cleanUp.exit, 0, cleanUp.stderr())
      assert.notInclude(authorized(), `tezt-cloud ${namespace}`)
      assert.isFalse(fs.existsSync(runDir(namespace)))
      assert.deepStrictEqual(outstanding(stateDir, namespace), [])
    }
  )

  live("a host key that is not the one the user's known_hosts has is refused, naming the fix", async () => {
    const { env, namespace, stateDir } = fresh()
    const other = keygen("other_host_key")
    const knownHosts = path.join(dir, "known_hosts_wrong")
    const [type, blob] = fs.readFileSync(`${other}.pub`, "utf8").split(" ")
    fs.writeFileSync(knownHosts, `[${host!.host}]:${host!.port} ${type} ${blob}\n`)
    const config = sshConfig(
      "config_wrong",
      hostBlock("moved", [`IdentityFile ${userKey}`, `UserKnownHostsFile ${knownHosts}`])
    )
    const line = await refusedRun(config, `${SshHosts.user}@moved`, namespace, {
      ...env,
      HOME: path.join(stateDir, "home"),
      SSH_AUTH_SOCK: ""
    }, "host key")
    assert.include(line, `${knownHosts}:1`)
    assert.include(line, `ssh-keygen -R '[${host!.host}]:${host!.port}' -f ${knownHosts}`)
  })

  live("a failed authentication names every key source tried, and the fix", async () => {
    const { env, namespace, stateDir } = fresh()
    const home = path.join(stateDir, "home")
    const socket = await agentWith([strangerKey])
    const locked = keygen("locked", "a passphrase")
    const config = sshConfig(
      "config_denied",
      hostBlock("denied", [`IdentityFile ${strangerKey}`, `IdentityFile ${locked}`])
    )
    const line = await refusedRun(
      config,
      `${SshHosts.user}@denied`,
      namespace,
      { ...env, HOME: home, SSH_AUTH_SOCK: socket },
      "authentication failed"
    )
    const namespaceKey = path.join(home, ".ssh", `${namespace}-tf`)
    for (
      const part of [
        `your ssh-agent at ${socket} (1 key)`,
        `${strangerKey} (IdentityFile of Host denied in ${config})`,
        `${locked} (IdentityFile of Host denied in ${config}): encrypted (add it to your agent: ssh-add ${locked})`,
        `${namespaceKey} (the namespace's key)`,
        `ssh-copy-id -i ${namespaceKey}.pub -p ${host!.port} ${SshHosts.user}@${host!.host}`
      ]
    ) assert.include(line, part)
  })

  it.live("a key the user's known_hosts knows is recorded for the namespace, replacing one recorded before", () =>
    Effect.gen(function*() {
      const known = path.join(dir, "known_hosts_right")
      fs.writeFileSync(
        known,
        child.execFileSync("ssh-keyscan", ["-p", String(host!.port), host!.host], { stdio: ["ignore", "pipe", "pipe"] })
      )
      const presented = fs.readFileSync(known, "utf8").split("\n").find((l) => l.includes(" ssh-ed25519 "))!
        .split(" ")[2]!
      const namespaceFile = path.join(dir, "namespace_known_hosts")
      const id = `[${host!.host}]:${host!.port}`
      fs.writeFileSync(namespaceFile, `[other]:22 AAAA\n${id} AAAAC3NzaC1lZDI1NTE5AAAAIBADBADBAD\n`)
      const target = { user: SshHosts.user, host: host!.host, port: host!.port }
      const connect = (userKnownHostsFiles: ReadonlyArray<string>) =>
        Effect.scoped(
          SshClient.connect(target, {
            privateKey: fs.readFileSync(userKey, "utf8"),
            hostKeys: { _tag: "TrustOnFirstUse", knownHostsFile: namespaceFile, userKnownHostsFiles },
            executor: false,
            connectAttempts: 1
          })
        )
      const refused = yield* Effect.flip(connect([]))
      assert.include(refused.message, `the host key changed`)
      yield* connect([known])
      assert.strictEqual(fs.readFileSync(namespaceFile, "utf8"), `[other]:22 AAAA\n${id} ${presented}\n`)
    }))

  live(
    "a host reachable only through its ProxyJump: the run, and agents exec from another terminal, go through it",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const home = path.join(stateDir, "home")
      const config = sshConfig(
        "config_jump",
        [
          "Host hidden",
          "  HostName 127.0.0.1",
          `  Port ${hidden!.port}`,
          "  ProxyJump bastion",
          "Host bastion",
          `  HostName ${bastion!.host}`,
          "Host *",
          `  User ${SshHosts.user}`,
          `  IdentityFile ${userKey}`,
          ""
        ].join("\n")
      )
      const run = start(
        ["BASIC", "simple", "health", "--ssh-config", config, "--ssh-host", "hidden", "--keep-alive", "--tezt-cloud"]
          .concat([namespace]),
        { ...env, HOME: home, SSH_AUTH_SOCK: "" },
        { stdin: "pipe" }
      )
      await run.waitFor("Please press <enter>")
      assert.include(authorized(hidden), `tezt-cloud ${namespace}`)
      assert.include(authorized(bastion), `tezt-cloud ${namespace}`)
      assert.include(await reachedFromAnotherTerminal(env, home, namespace), "[agent-001] reached")
      run.proc.stdin!.end("\n")
      assert.strictEqual(await run.exit, 0, run.stderr())
      assert.include(run.stdout(), "Hello world from agent 1")
      assert.notInclude(authorized(hidden), `tezt-cloud ${namespace}`)
      assert.notInclude(authorized(bastion), `tezt-cloud ${namespace}`)
      assert.deepStrictEqual(outstanding(stateDir, namespace), [])
    }
  )

  it.live("IdentitiesOnly: the agent offers only the keys of the IdentityFiles (known by their .pub)", () =>
    Effect.gen(function*() {
      const keyHome = path.join(dir, "only-home")
      const socket = yield* Effect.promise(() => agentWith([userKey]))
      /** Connects to the host as a block naming only `identity`'s public half, with IdentitiesOnly. */
      const connectNaming = (identity: string) =>
        Effect.gen(function*() {
          const named = path.join(dir, `named-${path.basename(identity)}`)
          fs.copyFileSync(`${identity}.pub`, `${named}.pub`)
          const config = sshConfig(
            `config_only_${path.basename(identity)}`,
            `Host only\n  HostName ${host!.host}\n  Port ${host!.port}\n  User ${SshHosts.user}\n` +
              `  IdentitiesOnly yes\n  IdentityFile ${named}\n`
          )
          const resolved = yield* SshConfig.resolve(
            { user: "x", host: "only", port: 22, defaults: ["user", "port"] },
            { file: config, home: keyHome }
          )
          const auth = yield* SshAuth.plan(resolved, {
            namespace: "only-ns",
            sshPrivateKey: undefined,
            keyHome,
            agentSocket: socket
          })
          return yield* Effect.scoped(
            SshClient.connect(resolved.target, {
              credentials: auth.credentials,
              hostKeys: { _tag: "Insecure" },
              executor: false,
              connectAttempts: 1
            }).pipe(Effect.map((connection) => connection.authenticatedWith()?._tag))
          )
        })
      assert.strictEqual(yield* connectNaming(userKey), "Agent")
      const refused = yield* Effect.flip(connectNaming(strangerKey))
      assert.include(refused.message, "only those of the IdentityFiles (IdentitiesOnly yes)")
    }))

  it.live("a host that hangs up after MaxAuthTries refused keys is an authentication failure naming the sources", () =>
    Effect.gen(function*() {
      const strict = yield* Effect.acquireRelease(
        Effect.promise(() =>
          SshHosts.start({
            authorizedKeys: [fs.readFileSync(`${userKey}.pub`, "utf8").trim()],
            extraConfig: ["MaxAuthTries 2"]
          })
        ),
        (h) => Effect.promise(() => h.stop())
      )
      const key = (file: string) => ({ _tag: "Key" as const, privateKey: fs.readFileSync(file, "utf8"), label: file })
      const extra = keygen("another_stranger")
      const error = yield* Effect.flip(Effect.scoped(
        SshClient.connect({ user: SshHosts.user, host: strict.host, port: strict.port }, {
          credentials: [key(strangerKey), key(extra), key(userKey)],
          hostKeys: { _tag: "Insecure" },
          executor: false
        })
      ))
      assert.strictEqual(error.reason._tag, "AuthFailed")
      assert.include(error.message, `tried ${strangerKey}, ${extra}, ${userKey}`)
      assert.include(error.message, "too many authentication failures")
    }).pipe(Effect.scoped))
})
