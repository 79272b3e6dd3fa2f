/**
 * Bad input through the real executable, a sample of packages/cli/test/BadInput.test.ts (which covers every
 * option): each refusal is one line on standard error naming the option and the fix, exit code 2, nothing on
 * standard output, nothing in the state dir, no process of the namespace.
 */
import { assert, describe } from "@effect/vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fresh, live, noProcessLeft, root, start } from "./fixtures/Cli.ts"

/** Arguments too long for any option, yet short enough for one argv string (Linux: 128 KiB). */
const long = "x".repeat(100_000)

interface Case {
  readonly name: string
  /** The arguments after `BASIC simple --localhost --tezt-cloud <ns>` (without `--tezt-cloud` when `env` has one). */
  readonly args: (dir: string) => ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  /** What the line must name. */
  readonly names: string
}

/** A file in `dir` with `content` and `mode`. */
const file = (dir: string, name: string, content: string | Buffer, mode = 0o600) => {
  const target = path.join(dir, name)
  fs.writeFileSync(target, content, { mode })
  fs.chmodSync(target, mode)
  return target
}

const cases: ReadonlyArray<Case> = [
  { name: "a namespace with a space", args: () => ["--tezt-cloud=bad ns"], names: "--tezt-cloud" },
  {
    name: "a namespace with a newline, from $TEZT_CLOUD",
    args: () => [],
    env: { TEZT_CLOUD: "a\nb" },
    names: "--tezt-cloud"
  },
  { name: "a string for an int", args: () => ["--vm-base-port", "abc"], names: "--vm-base-port" },
  { name: "an int out of range", args: () => ["--vm-base-port=0"], names: "--vm-base-port" },
  { name: "more ssh channels than sshd serves", args: () => ["--ssh-max-channels", "65"], names: "--ssh-max-channels" },
  { name: "maybe for a flag", args: () => ["--keep-alive=maybe"], names: "--keep-alive" },
  {
    name: "yes for a flag in a config file (the CLI takes it, JSON wants true)",
    args: (dir) => ["--config-file", file(dir, "yes.json", JSON.stringify({ keep_alive: "yes" }))],
    names: `key "keep_alive"`
  },
  {
    name: "a config file of 10 MiB",
    args: (dir) => ["--config-file", file(dir, "big.json", JSON.stringify({ binaries_path: "z".repeat(10 << 20) }))],
    names: "--config-file"
  },
  { name: "a device as config file", args: () => ["--config-file", "/dev/zero"], names: "--config-file" },
  { name: "a value of 100 KB", args: () => ["--binaries-path", long], names: "--binaries-path" },
  { name: "a password of 100 KB, never quoted", args: () => ["--auth-password", long], names: "--auth-password" },
  {
    name: "a Grafana token of 100 KB in the environment",
    args: () => [],
    env: { TEZT_CLOUD_GRAFANA_TOKEN: long },
    names: "$TEZT_CLOUD_GRAFANA_TOKEN"
  },
  {
    name: "an --artifacts-dir that exists",
    args: (dir) => ["--artifacts-dir", fs.mkdtempSync(path.join(dir, "artifacts-"))],
    names: "--artifacts-dir"
  },
  {
    name: "an --ssh-private-key others can read",
    args: (dir) => ["--ssh-private-key", file(dir, "id_shared", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o644)],
    names: "--ssh-private-key"
  },
  {
    name: "the website's port in the agents' ports",
    args: () => ["--website", "--website-port", "30010"],
    names: "--website-port"
  },
  {
    name: "an option this build cannot honour in any mode",
    args: () => ["--teztale-artifacts"],
    names: "--teztale-artifacts"
  },
  {
    name: "Prometheus on the website's port",
    args: () => ["--website", "--prometheus", "--website-port", "9400", "--prometheus-port", "9400"],
    names: "--prometheus-port"
  }
]

/** The refusal's checks: exit 2, one short line naming `names`, nothing created. */
const refused = async (
  outcome: { readonly code: number | null; readonly stdout: string; readonly stderr: string },
  names: string,
  stateDir: string,
  namespace: string
) => {
  assert.strictEqual(outcome.code, 2, outcome.stderr.slice(0, 500))
  const lines = outcome.stderr.trimEnd().split("\n")
  assert.strictEqual(lines.length, 1, outcome.stderr.slice(0, 500))
  assert.match(lines[0]!, /^tezt-cloud: error: /)
  assert.include(lines[0]!, names)
  assert.isAtMost(lines[0]!.length, 600, "no long value is quoted back")
  assert.strictEqual(outcome.stdout, "")
  assert.deepStrictEqual(fs.readdirSync(stateDir), [], "nothing in the state dir")
  assert.deepStrictEqual(await noProcessLeft(namespace), [])
}

describe("bad input to the executable", () => {
  for (const c of cases) {
    live(`${c.name}: one line naming ${c.names}, exit 2, nothing created`, async () => {
      const { env, namespace, stateDir } = fresh()
      const dir = fresh().stateDir
      const before = fs.readdirSync(dir)
      const named = c.env?.TEZT_CLOUD === undefined ? ["--tezt-cloud", namespace] : []
      const cli = start(["BASIC", "simple", "--localhost", ...named, ...c.args(dir)], {
        ...env,
        ...c.env
      })
      const code = await cli.exit
      await refused({ code, stdout: cli.stdout(), stderr: cli.stderr() }, c.names, stateDir, namespace)
      assert.notInclude(cli.stderr(), "x".repeat(100))
      // The user's files are untouched (an existing --artifacts-dir stays empty).
      for (const entry of before) assert.isTrue(fs.existsSync(path.join(dir, entry)))
      for (const entry of fs.readdirSync(dir)) {
        if (entry.startsWith("artifacts-")) assert.deepStrictEqual(fs.readdirSync(path.join(dir, entry)), [])
      }
    })
  }

  live(
    "an --ssh-private-key the user cannot read (run as another user): one line, exit 2, nothing created",
    async () => {
      const { namespace, stateDir } = fresh()
      const dir = fresh().stateDir
      // The state dir and the key's directory are open to the other user; the key is root's, mode 0600.
      fs.chmodSync(stateDir, 0o777)
      fs.chmodSync(dir, 0o755)
      const key = file(dir, "id_root", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600)
      const nobody = 65534
      const result = child.spawnSync(
        process.execPath,
        [
          path.join(root, "packages/cli/src/bin.mjs"),
          "BASIC",
          "simple",
          "--localhost",
          "--tezt-cloud",
          namespace,
          "--ssh-private-key",
          key
        ],
        {
          cwd: root,
          uid: nobody,
          gid: nobody,
          encoding: "utf8",
          env: { PATH: process.env.PATH ?? "", HOME: stateDir, TEZT_CLOUD_STATE_DIR: stateDir }
        }
      )
      await refused(
        { code: result.status, stdout: result.stdout, stderr: result.stderr },
        "--ssh-private-key",
        stateDir,
        namespace
      )
      assert.include(result.stderr, "EACCES")
    }
  )
})
