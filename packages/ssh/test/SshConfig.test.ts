/**
 * The user's ssh config and known_hosts files as OpenSSH reads them, without a host: a Host alias's block (the
 * command line's user and port win, `%` tokens and `~` expand, OpenSSH's default identities when none is named),
 * `Include`d files and the `Match` blocks that are not applied (a warning each), and known_hosts lookups (plain,
 * `[host]:port`, hashed, patterns and negations, another key of the same type, `@revoked`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SshAuth, SshConfig } from "../src/index.ts"
import * as KnownHosts from "../src/internal/knownHosts.ts"

const home = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-sshconfig-"))
fs.mkdirSync(path.join(home, ".ssh"))
const config = path.join(home, ".ssh", "config")
fs.writeFileSync(
  config,
  [
    "Host validator-*",
    "  HostName %h.fleet.example",
    "  User baker",
    "  Port 2222",
    "  IdentityFile ~/.ssh/fleet_%r",
    "  IdentityFile %d/.ssh/second",
    "  UserKnownHostsFile ~/.ssh/fleet_known_hosts",
    "  StrictHostKeyChecking yes",
    "  IdentitiesOnly yes",
    "Host behind",
    "  ProxyJump admin@bastion.example:2200,inner",
    "Host inner",
    "  HostName 10.9.9.9",
    "  ProxyJump elsewhere",
    "Host *",
    "  User nobody-default",
    "  StrictHostKeyChecking no",
    ""
  ].join("\n")
)

/** A public key blob as a host presents it: type string, then key bytes. */
const blob = (type: string, bytes: Buffer) => {
  const name = Buffer.from(type)
  const header = Buffer.alloc(4)
  header.writeUInt32BE(name.length)
  const length = Buffer.alloc(4)
  length.writeUInt32BE(bytes.length)
  return Buffer.concat([header, name, length, bytes])
}

describe("SshConfig", () => {
  it.effect("a Host alias takes its block's HostName, User, Port, IdentityFiles and host key settings", () =>
    Effect.gen(function*() {
      const resolved = yield* SshConfig.resolve(
        { user: "me", host: "validator-7", port: 22, defaults: ["user", "port"] },
        { home, localUser: "me" }
      )
      assert.deepStrictEqual(resolved.target, { user: "baker", host: "validator-7.fleet.example", port: 2222 })
      assert.deepStrictEqual(resolved.identityFiles.map((f) => f.path), [
        path.join(home, ".ssh", "fleet_baker"),
        path.join(home, ".ssh", "second")
      ])
      assert.include(resolved.identityFiles[0]!.origin, `IdentityFile of Host validator-7 in ${config}`)
      assert.deepStrictEqual(resolved.userKnownHostsFiles, [path.join(home, ".ssh", "fleet_known_hosts")])
      assert.strictEqual(resolved.strictHostKeyChecking, "yes")
      assert.isTrue(resolved.identitiesOnly)
    }))

  it.effect("the command line's user and port win over the block's; other hosts get Host * and the defaults", () =>
    Effect.gen(function*() {
      const given = yield* SshConfig.resolve({ user: "alice", host: "validator-1", port: 2200 }, { home })
      assert.deepStrictEqual(given.target, { user: "alice", host: "validator-1.fleet.example", port: 2200 })
      fs.writeFileSync(path.join(home, ".ssh", "id_ed25519"), "")
      const other = yield* SshConfig.resolve(
        { user: "me", host: "10.0.0.5", port: 22, defaults: ["user", "port"] },
        { home }
      )
      fs.rmSync(path.join(home, ".ssh", "id_ed25519"))
      assert.deepStrictEqual(other.target, { user: "nobody-default", host: "10.0.0.5", port: 22 })
      assert.deepStrictEqual(other.identityFiles, [{
        path: path.join(home, ".ssh", "id_ed25519"),
        origin: "OpenSSH's default identity"
      }])
      assert.strictEqual(other.strictHostKeyChecking, "no")
      assert.deepStrictEqual(other.userKnownHostsFiles, [
        path.join(home, ".ssh", "known_hosts"),
        path.join(home, ".ssh", "known_hosts2")
      ])
    }))

  it.effect("ProxyJump's hops are resolved in the config (theirs not followed); --ssh-jump replaces it", () =>
    Effect.gen(function*() {
      const target = { user: "me", host: "behind", port: 22, defaults: ["user", "port"] } as const
      const resolved = yield* SshConfig.resolve(target, { home, localUser: "me" })
      assert.deepStrictEqual(resolved.jumps.map((j) => j.target), [
        { user: "admin", host: "bastion.example", port: 2200 },
        { user: "nobody-default", host: "10.9.9.9", port: 22 }
      ])
      assert.deepStrictEqual(resolved.jumps.map((j) => j.jumps.length), [0, 0])
      const given = yield* SshConfig.resolve(target, { home, jump: "ops@10.1.1.1" })
      assert.deepStrictEqual(given.jumps.map((j) => j.target), [{ user: "ops", host: "10.1.1.1", port: 22 }])
      assert.deepStrictEqual((yield* SshConfig.resolve(target, { home, jump: "none" })).jumps, [])
      const refused = yield* Effect.flip(SshConfig.resolve(target, { home, jump: "a@b@c" }))
      assert.include(refused.message, "--ssh-jump")
    }))

  it.effect("the key sources in OpenSSH's order; the fix's one-line install goes through the jump hosts", () =>
    Effect.gen(function*() {
      const resolved = yield* SshConfig.resolve({ user: "me", host: "behind", port: 22, defaults: ["user", "port"] }, {
        home,
        localUser: "me"
      })
      const auth = yield* SshAuth.plan(resolved, {
        namespace: "ns",
        sshPrivateKey: undefined,
        keyHome: home,
        agentSocket: undefined
      })
      const key = path.join(home, ".ssh", "ns-tf")
      assert.deepStrictEqual(auth.sources, ["no ssh-agent ($SSH_AUTH_SOCK is not set)", `${key} (the namespace's key)`])
      assert.include(
        auth.hint,
        `ssh-copy-id -i ${key}.pub -o ProxyJump=admin@bastion.example:2200,nobody-default@10.9.9.9:22 -p 22 ` +
          "nobody-default@behind"
      )
    }))

  it.effect("a missing --ssh-config is refused naming the option; a missing ~/.ssh/config is no config", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        SshConfig.resolve({ user: "u", host: "h", port: 22 }, { file: path.join(home, "nope"), home })
      )
      assert.include(error.message, "--ssh-config")
      const none = yield* SshConfig.resolve({ user: "u", host: "h", port: 22 }, { home: path.join(home, "empty") })
      assert.deepStrictEqual(none.target, { user: "u", host: "h", port: 22 })
      assert.isUndefined(none.configFile)
    }))

  it.effect("Include is read as ssh does (~/.ssh-relative, globs, in its block); a Match it cannot apply says so", () =>
    Effect.gen(function*() {
      const split = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-sshinclude-"))
      const ssh = path.join(split, ".ssh")
      fs.mkdirSync(path.join(ssh, "config.d"), { recursive: true })
      const write = (name: string, lines: ReadonlyArray<string>) =>
        fs.writeFileSync(path.join(ssh, name), lines.join("\n") + "\n")
      write("config", [
        "Include config.d/*.conf",
        "Host fleet-*",
        "  Include ~/.ssh/fleet-keys",
        "  Port 2201",
        "Host other-*",
        "  Include other-keys",
        "Match exec \"true\"",
        "  User never",
        "Match host *.example.org user admin",
        "  IdentityFile ~/.ssh/admin",
        "Host *",
        "  User fallback",
        "Match !host elsewhere",
        "  Port 2999"
      ])
      // Sorted glob matches: 10-fleet before 20-late.
      write("config.d/20-late.conf", ["Host fleet-*", "  HostName late.%h", "  User late"])
      write("config.d/10-fleet.conf", ["Host fleet-1", "  HostName fleet-1.example.org", "Match host fleet-2"])
      write("fleet-keys", ["IdentityFile ~/.ssh/fleet"])
      // Its own blocks apply only within the including one (as in OpenSSH).
      write("other-keys", ["Host *", "  IdentityFile ~/.ssh/other"])
      const resolve = (host: string) =>
        SshConfig.resolve({ user: "me", host, port: 22, defaults: ["user", "port"] }, { home: split })
      const one = yield* resolve("fleet-1")
      assert.deepStrictEqual(one.target, { user: "late", host: "fleet-1.example.org", port: 2201 })
      assert.deepStrictEqual(one.identityFiles.map((f) => f.path), [path.join(ssh, "fleet")])
      const two = yield* resolve("fleet-2")
      assert.deepStrictEqual(two.target, { user: "late", host: "late.fleet-2", port: 2201 })
      // The other block's Include is not read for a fleet host; Match host/user is evaluated.
      const admin = yield* SshConfig.resolve({ user: "admin", host: "a.example.org", port: 22 }, { home: split })
      assert.deepStrictEqual(admin.identityFiles.map((f) => f.path), [path.join(ssh, "admin")])
      assert.deepStrictEqual((yield* resolve("x")).target.user, "fallback", "Match exec is never run")
      assert.deepStrictEqual(one.warnings, [
        `${path.join(ssh, "config")}:7: this Match block is not applied (exec is not evaluated): ` +
        "put what it sets in a Host block, or in a file given with --ssh-config",
        `${path.join(ssh, "config")}:13: this Match block is not applied (!host is not evaluated): ` +
        "put what it sets in a Host block, or in a file given with --ssh-config"
      ])
      // Includes nested too deep (a file including itself) are refused, naming the file and line.
      write("config.d/30-loop.conf", ["Include config.d/30-loop.conf"])
      const loop = yield* Effect.flip(resolve("x"))
      assert.include(loop.message, `${path.join(ssh, "config.d", "30-loop.conf")}:1: Include nested more than 16 deep`)
      fs.rmSync(split, { recursive: true, force: true })
    }))
})

describe("known_hosts", () => {
  const key = blob("ssh-ed25519", crypto.randomBytes(32))
  const other = blob("ssh-ed25519", crypto.randomBytes(32))
  const rsa = blob("ssh-rsa", crypto.randomBytes(64))
  const line = (host: string, k: Buffer) => `${host} ${KnownHosts.keyType(k)} ${k.toString("base64")}`
  const file = (name: string, lines: ReadonlyArray<string>) => {
    const f = path.join(home, name)
    fs.writeFileSync(f, lines.join("\n") + "\n")
    return f
  }
  const hashed = (name: string) => {
    const salt = crypto.randomBytes(20)
    return `|1|${salt.toString("base64")}|${crypto.createHmac("sha1", salt).update(name).digest("base64")}`
  }

  it("plain, [host]:port, hashed and patterned names find the key; another port does not", () => {
    assert.strictEqual(
      KnownHosts.lookup([file("a", [line("h.example,10.0.0.1", key)])], "10.0.0.1", 22, key)._tag,
      "Known"
    )
    const ported = file("b", [line("[h.example]:2222", key)])
    assert.strictEqual(KnownHosts.lookup([ported], "h.example", 2222, key)._tag, "Known")
    assert.strictEqual(KnownHosts.lookup([ported], "h.example", 22, key)._tag, "Unknown")
    assert.strictEqual(KnownHosts.lookup([file("c", [line(hashed("[h]:2200"), key)])], "h", 2200, key)._tag, "Known")
    const patterned = file("d", [line("*.fleet.example,!bad.fleet.example", key)])
    assert.strictEqual(KnownHosts.lookup([patterned], "v1.fleet.example", 22, key)._tag, "Known")
    assert.strictEqual(KnownHosts.lookup([patterned], "bad.fleet.example", 22, key)._tag, "Unknown")
    assert.strictEqual(KnownHosts.lookup([path.join(home, "missing")], "h", 22, key)._tag, "Unknown")
  })

  it("another key of the same type is a change (file and line named); of another type, unknown; @revoked refused", () => {
    const changed = file("e", ["# fleet", line("h", other)])
    assert.deepStrictEqual(KnownHosts.lookup([changed], "h", 22, key), {
      _tag: "Changed",
      where: `${changed}:2`,
      revoked: false
    })
    assert.strictEqual(KnownHosts.lookup([file("f", [line("h", rsa)])], "h", 22, key)._tag, "Unknown")
    const revoked = file("g", [`@revoked * ${KnownHosts.keyType(key)} ${key.toString("base64")}`, line("h", key)])
    assert.deepInclude(KnownHosts.lookup([revoked], "h", 22, key), { _tag: "Changed", revoked: true })
  })
})
