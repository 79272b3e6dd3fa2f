/**
 * Bad input, option by option: for every entry of `CloudConfig.options` (the table is iterated, never listed here)
 * and its config-file key, a value of the wrong type, one out of range where the option has a range, and one far
 * too long; then what no single option says: overlapping ports, invalid namespaces, config files that are not one,
 * private keys others can read, oversized environment variables. Each is refused with one short line naming the
 * option, through what the CLI runs before anything is created: the real parser (`Options.flags`, usage errors as
 * `Root` prints them), `Options.read` (sizes, the config file, decoding), `Options.configuration` (`resolve`, the
 * key file) and `Orchestrator.agentConfigs`. test/BadInput.test.ts runs a sample through the executable, checking
 * its exit code and that nothing is created.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { CloudConfig, CloudError, Orchestrator, Scenario } from "@tezt-cloud/core"
import { Cause, Effect, Exit, Layer, type Option } from "effect"
import { CliOutput, Command } from "effect/cli"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Options from "../src/Options.ts"
import * as Root from "../src/Root.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bad-input-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const env: CloudConfig.Environment = { TEZT_CLOUD: "ns" }

/** A value far too long for any option (no argv can carry it; a config file or a test can). */
const huge = "x".repeat(1024 * 1024)
/** Long, but a config file holding it is small enough to be read. */
const long = "y".repeat(64 * 1024)

let files = 0
/** A config file holding `content` (JSON of it, unless it is text already). */
const configFile = (content: unknown) => {
  const file = path.join(dir, `config-${files++}.json`)
  fs.writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content))
  return file
}

/** Runs the parser on `argv`; returns the parsed flags, or the usage errors as the CLI prints them. */
const parse = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const messages: Array<string> = []
    let parsed: Record<string, Option.Option<unknown>> | undefined
    const command = Command.make("t", { flags: Options.flags }, (args) => Effect.sync(() => void (parsed = args.flags)))
    const result = yield* Command.runWith(command, { version: "x" })(argv).pipe(
      Effect.provide(Layer.mergeAll(
        NodeServices.layer,
        CliOutput.layerPresenter({
          present: (event) =>
            Effect.sync(() => {
              if (event._tag === "InvalidInvocation") {
                for (const e of event.errors) messages.push(Root.shorten(e.message))
              }
            })
        })
      )),
      Effect.result
    )
    return result._tag === "Success" ? { parsed: parsed! } : { usage: messages.join("\n") }
  })

/** The refusal of `argv` by what the CLI runs before creating anything: a usage error, or a `ConfigInvalid`. */
const refusal = (argv: ReadonlyArray<string>, environment: CloudConfig.Environment = env) =>
  Effect.gen(function*() {
    const parsed = yield* parse(argv)
    if (parsed.usage !== undefined) return { option: undefined, message: parsed.usage }
    const exit = yield* Effect.exit(Effect.gen(function*() {
      const { input, cliOnly } = yield* Options.read(parsed.parsed, environment)
      const config = yield* Options.configuration(input, cliOnly, environment)
      const scenario = Scenario.make({ title: "two agents", tags: [], vms: [{}, {}], run: Effect.void })
      return yield* Orchestrator.agentConfigs(scenario, config)
    }))
    if (Exit.isSuccess(exit)) return assert.fail(`accepted: ${argv.join(" ").slice(0, 200)}`)
    const error = Cause.squash(exit.cause)
    assert.instanceOf(error, CloudError.CloudError, String(error))
    const reason = (error as CloudError.CloudError).reason
    assert.strictEqual(reason._tag, "ConfigInvalid", (error as CloudError.CloudError).message)
    // As the CLI prints it (`Main`): on one line, a long value quoted back cut short.
    const message = Root.oneLine(Root.shorten((error as Error).message))
    return { option: reason._tag === "ConfigInvalid" ? reason.option : undefined, message }
  })

/** A refusal's message: one line, short, naming `names`, quoting back neither `secret` nor a long value. */
const checkMessage = (message: string, names: string, secret?: string) => {
  assert.notInclude(message, "\n", "one line")
  assert.isAtMost(message.length, 600, message.slice(0, 200))
  assert.include(message, names)
  assert.notInclude(message, "x".repeat(100), "a long value is not quoted back")
  assert.notInclude(message, "y".repeat(100), "a long value is not quoted back")
  if (secret !== undefined) assert.notInclude(message, secret)
}

interface Case {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  /** What the message must name: the flag, or the config file's key. */
  readonly names: string
}

/** The bad values of one option: wrong types, out of range, too long, on the command line and in a config file. */
const casesOf = (spec: CloudConfig.OptionSpec): ReadonlyArray<Case> => {
  const flag = `--${spec.flag}`
  const key = (file: string) => `${file}: key "${spec.key}"`
  const cli = (what: string, argv: ReadonlyArray<string>): Case => ({ name: `${flag} ${what}`, argv, names: flag })
  const inFile = (what: string, value: unknown, names?: string): Case => {
    const file = configFile({ [spec.key!]: value })
    return { name: `${spec.key} ${what} in a config file`, argv: ["--config-file", file], names: names ?? key(file) }
  }
  const wrongType: Record<CloudConfig.OptionKind, unknown> = { flag: "yes", int: "12", string: 12, strings: "x" }
  return [
    // Wrong types the command line can express (any text is a string there).
    ...(spec.kind === "int" ? [cli("abc", [flag, "abc"]), cli("1.5", [flag, "1.5"])] : []),
    ...(spec.kind === "flag" ? [cli("=maybe", [`${flag}=maybe`])] : []),
    ...(spec.choices !== undefined ? [cli("bogus", [flag, "bogus"])] : []),
    // Out of range: no option takes a negative number.
    ...(spec.kind === "int" ? [cli("=-1", [`${flag}=-1`])] : []),
    // Far too long, whatever the kind (a flag takes no value).
    ...(spec.kind === "flag" ? [] : [cli("of 1 MiB", [flag, huge])]),
    ...(spec.key === undefined ? [] : [
      inFile(`of the wrong type (${JSON.stringify(wrongType[spec.kind])})`, wrongType[spec.kind]),
      ...(spec.choices !== undefined ? [inFile("bogus", "bogus")] : []),
      ...(spec.kind === "int" ? [inFile("-1", -1, flag), inFile("1.5", 1.5)] : []),
      inFile("of 64 KiB", spec.kind === "strings" ? [long] : long)
    ])
  ]
}

const cases = CloudConfig.options.map((spec) => [spec, casesOf(spec)] as const)

describe("bad input, option by option (every entry of CloudConfig.options)", () => {
  it("every option has bad values on the command line, and every config-file key in a file", () => {
    for (const [spec, own] of cases) {
      assert.isTrue(own.some((c) => c.argv[0]!.startsWith(`--${spec.flag}`)), spec.flag)
      if (spec.key !== undefined) assert.isTrue(own.some((c) => c.argv[0] === "--config-file"), spec.flag)
    }
  })

  for (const [spec, own] of cases) {
    it.effect.each(own)(`${spec.flag}: $name`, ({ argv, names }) =>
      Effect.gen(function*() {
        const { message } = yield* refusal(argv)
        checkMessage(message, names, spec.secret === true ? huge : undefined)
      }))
  }
})

describe("bad input across options", () => {
  const agentsAt = ["--localhost", "--vm-base-port", "20000", "--ports-per-vm", "50"]
  const auth = ["--auth-username", "u", "--auth-password", "p"]
  it.effect.each<Case>([
    {
      name: "the website's port is Prometheus' too",
      argv: ["--localhost", "--website", "--prometheus", "--website-port", "9300", "--prometheus-port", "9300"],
      names: "--prometheus-port"
    },
    {
      name: "the website's port is in the agents' ports",
      argv: [...agentsAt, "--website", "--website-port", "20099"],
      names: "--website-port"
    },
    {
      name: "Prometheus' port is in the agents' ports",
      argv: [...agentsAt, "--prometheus", "--prometheus-port", "20000", "--website-port", "8080"],
      names: "--prometheus-port"
    },
    {
      name: "Alertmanager's port (Prometheus' + 3, with an alert handler) is in the agents' ports",
      argv: [...agentsAt, "--alert-handler", "http://127.0.0.1:1/h", "--prometheus-port", "19997"],
      names: "--prometheus-port: 20000 (Alertmanager's, --prometheus-port + 3) is in the agents' ports"
    },
    { name: "a port beyond 65535", argv: ["--website-port", "65536"], names: "--website-port" },
    {
      name: "auth mode: the website itself (its port + 10000) beyond 65535",
      argv: ["--localhost", "--website", "--website-port", "60000", ...auth],
      names: "--website-port"
    },
    {
      name: "auth mode: the website itself (its port + 10000) on Prometheus' port",
      argv: [
        "--localhost",
        "--website",
        "--prometheus",
        "--website-port",
        "9100",
        "--prometheus-port",
        "19100",
        ...auth
      ],
      names: "--website-port"
    },
    {
      name: "auth mode: Prometheus itself (its port + 10000) in the agents' ports",
      argv: [...agentsAt, "--prometheus", "--prometheus-port", "10010", "--website-port", "8080", ...auth],
      names: "--prometheus-port"
    },
    { name: "more channels than sshd serves", argv: ["--ssh-max-channels", "65"], names: "--ssh-max-channels" }
  ])("overlapping ports and ranges: $name", ({ argv, names }) =>
    Effect.gen(function*() {
      checkMessage((yield* refusal(argv)).message, names)
    }))

  it.effect("ranges that fit side by side are accepted", () =>
    Effect.gen(function*() {
      const parsed = yield* parse([
        ...agentsAt,
        "--website",
        "--prometheus",
        "--website-port",
        "20100",
        "--prometheus-port",
        "19999"
      ])
      const { input, cliOnly } = yield* Options.read(parsed.parsed!, env)
      const config = yield* Options.configuration(input, cliOnly, env)
      const scenario = Scenario.make({ title: "two agents", tags: [], vms: [{}, {}], run: Effect.void })
      assert.lengthOf(yield* Orchestrator.agentConfigs(scenario, config), 2)
    }))

  it.effect.each(["bad ns", "-lead", "a/b", "..", "ü", "x".repeat(64), "a\nb"])(
    "invalid namespace %j",
    (ns) =>
      Effect.gen(function*() {
        checkMessage((yield* refusal([`--tezt-cloud=${ns}`])).message, "--tezt-cloud")
        checkMessage((yield* refusal([], { TEZT_CLOUD: ns })).message, "--tezt-cloud")
      })
  )

  it.effect("a secret of 1 MiB in the environment is refused by name, never quoted", () =>
    Effect.gen(function*() {
      const { message } = yield* refusal([], { TEZT_CLOUD: "ns", TEZT_CLOUD_AUTH_PASSWORD: huge })
      checkMessage(message, "$TEZT_CLOUD_AUTH_PASSWORD", huge)
    }))

  it.effect("config files that are not one: too big, a device, a directory, a FIFO, missing, a huge key", () =>
    Effect.gen(function*() {
      const big = configFile(JSON.stringify({ binaries_path: "z".repeat(10 * 1024 * 1024) }))
      const fifo = path.join(dir, "fifo")
      child.execFileSync("mkfifo", [fifo])
      const hugeKey = configFile({ ["k".repeat(1024)]: 1 })
      for (const file of [big, "/dev/zero", dir, fifo, path.join(dir, "missing.json")]) {
        checkMessage((yield* refusal(["--config-file", file])).message, "--config-file")
      }
      const { message } = yield* refusal(["--config-file", hugeKey])
      checkMessage(message, `${hugeKey}: a key of 1024 bytes`)
      assert.notInclude(message, "k".repeat(100))
      // Not JSON, with a long line: the parser's excerpt stays short.
      checkMessage((yield* refusal(["--config-file", configFile(`{"a": ${long}}`)])).message, "--config-file")
    }))

  it.effect("--ssh-private-key: missing, a directory, readable by others; a private file passes", () =>
    Effect.gen(function*() {
      const key = (mode: number) => {
        const file = path.join(dir, `key-${mode.toString(8)}`)
        fs.writeFileSync(file, "-----BEGIN OPENSSH PRIVATE KEY-----\n", { mode })
        fs.chmodSync(file, mode)
        return file
      }
      for (
        const [file, says] of [
          [path.join(dir, "no-key"), "ENOENT"],
          [dir, "is not a private key file"],
          [key(0o644), "(mode 0644): chmod 600"],
          [key(0o640), "(mode 0640): chmod 600"],
          [key(0o604), "(mode 0604): chmod 600"]
        ] as const
      ) {
        const { message } = yield* refusal(["--ssh-private-key", file])
        checkMessage(message, "--ssh-private-key")
        assert.include(message, says)
      }
      const parsed = yield* parse(["--ssh-private-key", key(0o600)])
      const { input, cliOnly } = yield* Options.read(parsed.parsed!, env)
      assert.strictEqual((yield* Options.configuration(input, cliOnly, env)).sshPrivateKey, key(0o600))
    }))
})

describe("options that would do nothing in the run's mode: refused, or warned about where Tezt cloud accepts them", () => {
  /** The configuration of `argv`, as the CLI resolves it. */
  const configOf = (argv: ReadonlyArray<string>, environment: CloudConfig.Environment = env) =>
    Effect.gen(function*() {
      const parsed = yield* parse(argv)
      if (parsed.usage !== undefined) return assert.fail(parsed.usage)
      const { input, cliOnly } = yield* Options.read(parsed.parsed, environment)
      return yield* Options.configuration(input, cliOnly, environment)
    })
  const backends: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["process sandboxes", ["--localhost", "--agent-runtime", "process"]],
    ["Docker agents", ["--localhost", "--agent-runtime", "docker"]],
    ["an ssh host", ["--ssh-host", "root@127.0.0.1"]],
    ["GCP", ["--project-id", "p", "--no-grafana"]]
  ]

  const refusedEverywhere = [
    "--teztale-artifacts",
    "--ppx-profiling-traces-artifacts"
  ]
  for (const [backend, flags] of backends) {
    it.effect.each(refusedEverywhere)(
      `%s on ${backend}: refused, naming it and the fix`,
      (option) =>
        Effect.gen(function*() {
          const config = yield* configOf([...flags, option])
          const error = yield* Effect.flip(CloudConfig.checkOptionsAct(config))
          const flag = option.split("=")[0]!
          assert.strictEqual(error.reason._tag, "ConfigInvalid")
          checkMessage(error.message, flag)
          assert.include(error.message, `drop ${flag}`)
        })
    )
  }

  it.effect("--daily-logs-artifacts acts (the daemons' log dirs are fetched at the end): neither refused nor warned", () =>
    Effect.gen(function*() {
      const config = yield* configOf(["--localhost", "--daily-logs-artifacts"])
      assert.isTrue(config.dailyLogsArtifacts)
      assert.deepStrictEqual(yield* CloudConfig.checkOptionsAct(config), [])
    }))

  it.effect.each([["--ssh-config", "/etc/ssh/alt_config"], ["--ssh-jump", "admin@bastion"]] as const)(
    "%s without --ssh-host is refused naming why",
    ([flag, value]) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(CloudConfig.checkOptionsAct(yield* configOf(["--localhost", flag, value])))
        checkMessage(error.message, flag)
        assert.include(error.message, "--localhost has none")
        assert.deepStrictEqual(
          yield* CloudConfig.checkOptionsAct(yield* configOf(["--ssh-host", "h", flag, value])),
          []
        )
      })
  )

  it.effect("--ssh-provision is refused unless the agents are containers of an ssh host's engine", () =>
    Effect.gen(function*() {
      for (const argv of [["--localhost", "--agent-runtime", "docker"], ["--ssh-host", "h"]]) {
        const error = yield* Effect.flip(CloudConfig.checkOptionsAct(yield* configOf([...argv, "--ssh-provision"])))
        checkMessage(error.message, "--ssh-provision")
        assert.include(error.message, "--agent-runtime docker", argv.join(" "))
      }
      assert.deepStrictEqual(
        yield* CloudConfig.checkOptionsAct(
          yield* configOf(["--ssh-host", "h", "--agent-runtime", "docker", "--ssh-provision"])
        ),
        []
      )
    }))

  it.effect("--no-auto-approve on GCP is refused (VMs are created without asking); elsewhere it is warned about", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        CloudConfig.checkOptionsAct(yield* configOf(["--project-id", "p", "--no-auto-approve"]))
      )
      checkMessage(error.message, "--no-auto-approve")
      assert.include(error.message, "without asking")
      const warnings = yield* CloudConfig.checkOptionsAct(yield* configOf(["--localhost", "--no-auto-approve"]))
      assert.deepStrictEqual(warnings, ["--no-auto-approve is ignored: --localhost has no infrastructure to approve"])
    }))

  it.effect.each(
    [
      ["--destroy", ["--localhost", "--destroy"], "--destroy is ignored: --localhost removes every agent"],
      [
        "--destroy on Docker",
        ["--localhost", "--agent-runtime", "docker", "--destroy"],
        "--destroy is ignored: Docker"
      ],
      ["--destroy on an ssh host", ["--ssh-host", "h", "--destroy"], "--destroy is ignored: --ssh-host removes"],
      [
        "--project-id",
        ["--localhost", "--project-id", "p"],
        "--project-id is ignored: --localhost uses no GCP project"
      ],
      [
        "--project-id on an ssh host without --dns-domain",
        ["--ssh-host", "h", "--project-id", "p"],
        "--project-id is ignored: --ssh-host uses no GCP project"
      ],
      ["--no-docker-push", ["--localhost", "--no-docker-push"], "--no-docker-push is ignored: this build pushes no"],
      ["--no-dns", ["--ssh-host", "h", "--no-dns"], "--no-dns is ignored: no domain is registered by default"],
      ["--slack-bot-token", ["--localhost", "--slack-bot-token", "s3cret"], "--slack-bot-token ($TEZTCLOUD_SLACK_BOT"],
      [
        "--slack-channel-id without the token",
        ["--localhost", "--slack-channel-id", "C123"],
        "--slack-channel-id is ignored: Slack needs the bot token too"
      ],
      [
        "auth mode with nothing to protect",
        ["--localhost", "--auth-username", "u", "--auth-password", "s3cret"],
        "--auth-username is ignored: the run serves no website nor Prometheus"
      ]
    ] as const
  )("%s: one warning line saying why", ([, argv, says]) =>
    Effect.gen(function*() {
      const warnings = yield* CloudConfig.checkOptionsAct(yield* configOf(argv))
      assert.lengthOf(warnings, 1)
      assert.include(warnings[0]!, says)
      assert.notInclude(warnings[0]!, "s3cret", "a secret is never quoted")
      assert.notInclude(warnings[0]!, "\n")
    }))

  it.effect("the token from $TEZTCLOUD_SLACK_BOT_TOKEN is warned about too, never quoted", () =>
    Effect.gen(function*() {
      const warnings = yield* CloudConfig.checkOptionsAct(
        yield* configOf(["--localhost"], { ...env, TEZTCLOUD_SLACK_BOT_TOKEN: "s3cret" })
      )
      assert.lengthOf(warnings, 1)
      assert.notInclude(warnings[0]!, "s3cret")
    }))

  it.effect("--alert-handler: slack needs its channel and token, a webhook an http(s) URL, both Prometheus", () =>
    Effect.gen(function*() {
      const refused = [
        [["--localhost", "--alert-handler", "pagerduty"], "\"pagerduty\" is neither slack nor an http(s) URL"],
        [["--localhost", "--alert-handler", "slack"], "slack: Slack needs --slack-channel-id and the bot token"],
        [["--localhost", "--alert-handler", "slack", "--slack-channel-id", "C1"], "$TEZTCLOUD_SLACK_BOT_TOKEN"],
        [["--localhost", "--alert-handler", "https://h.example/x", "--no-prometheus"], "drop --no-prometheus"]
      ] as const
      for (const [argv, says] of refused) {
        const error = yield* Effect.flip(CloudConfig.checkOptionsAct(yield* configOf(argv)))
        checkMessage(error.message, "--alert-handler")
        assert.include(error.message, says)
      }
      const acting = yield* configOf(
        [
          "--localhost",
          "--alert-handler",
          "slack",
          "--alert-handler",
          "http://127.0.0.1:1/h",
          "--slack-channel-id",
          "C1"
        ],
        { ...env, TEZTCLOUD_SLACK_BOT_TOKEN: "s3cret" }
      )
      assert.deepStrictEqual(yield* CloudConfig.checkOptionsAct(acting), [])
      yield* CloudConfig.checkAvailable(acting)
    }))

  it.effect("where they act, nothing is said: --destroy, --project-id (and --no-dns with --proxy) on GCP, --log-rotation, no option at all", () =>
    Effect.gen(function*() {
      for (
        const argv of [
          ["--project-id", "p", "--destroy", "--no-grafana"],
          ["--localhost", "--log-rotation", "3"],
          ["--localhost"],
          ["--ssh-host", "h"],
          ["--ssh-host", "h", "--project-id", "p", "--dns-domain", "a.example.org"],
          ["--proxy", "--project-id", "p", "--no-dns", "--dns-domain", "a.example.org"]
        ]
      ) {
        assert.deepStrictEqual(yield* CloudConfig.checkOptionsAct(yield* configOf(argv)), [], argv.join(" "))
      }
    }))
})
