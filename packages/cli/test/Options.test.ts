/**
 * The run options through the real effect/cli parser: every option of `CloudConfig.options` parsed from an argv,
 * mapped by `Options.toInput` and resolved by `CloudConfig.resolve`, plus aliases, negations and usage errors.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { assert, describe, it } from "@effect/vitest"
import { CloudConfig } from "@tezt-cloud/core"
import { Effect, Layer, Option } from "effect"
import { CliError, CliOutput, Command } from "effect/cli"
import * as Options from "../src/Options.ts"

type Parsed = Record<string, Option.Option<unknown>>

/** Runs a command carrying exactly `Options.flags` on `argv`; returns the parsed flags and what was presented. */
const parse = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const events: Array<CliOutput.Presenter.Event> = []
    let captured: Parsed | undefined
    const command = Command.make("t", { flags: Options.flags }, (args) =>
      Effect.sync(() => {
        captured = args.flags
      }))
    const result = yield* Command.runWith(command, { version: "x" })(argv).pipe(
      Effect.map(() => captured!),
      Effect.provide(Layer.mergeAll(
        NodeServices.layer,
        CliOutput.layerPresenter({ present: (event) => Effect.sync(() => events.push(event)) })
      )),
      Effect.result
    )
    return { result, events }
  })

const parseOk = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(
    parse(argv),
    ({ result }) => result._tag === "Success" ? Effect.succeed(result.success) : Effect.die(result.failure)
  )

/** argv → CLI input (decoded as the CLI does, over a config file's `file`) → resolved configuration. */
const resolveArgv = (
  argv: ReadonlyArray<string>,
  env: CloudConfig.Environment = { TEZT_CLOUD: "ns" },
  file: CloudConfig.Input = {}
) =>
  Effect.gen(function*() {
    const { input, cliOnly } = Options.toInput(yield* parseOk(argv))
    const decoded = CloudConfig.merge(file, yield* CloudConfig.decodeInput(input, "option"))
    const config = yield* CloudConfig.resolve(decoded, cliOnly, env)
    return { input, cliOnly, config }
  })

/** Where each option lands in the resolved configuration (or in the CLI-only values). */
const field: Record<string, (config: CloudConfig.CloudConfig, cliOnly: CloudConfig.CliOnly) => unknown> = {
  "tezt-cloud": (c) => c.namespace,
  "config-file": (_, o) => o.configFile,
  "localhost": (c) => c.localhost,
  "agent-runtime": (c) => CloudConfig.runtimeOf(c.backend),
  "ssh-host": (c) => c.backend._tag === "SshHost" ? c.backend.target : undefined,
  "ssh-config": (c) => c.sshConfig,
  "ssh-jump": (c) => c.sshJump,
  "ssh-private-key": (c, o) => [c.sshPrivateKey, o.sshPrivateKey],
  "insecure-host-keys": (c) => c.insecureHostKeys,
  "ssh-provision": (c) => c.sshProvision,
  "ssh-max-channels": (c) => c.sshMaxChannels,
  "proxy": (c) => c.proxy,
  "monitoring": (c) => c.monitoring,
  "destroy": (c) => c.destroy,
  "keep-alive": (c) => c.keepAlive,
  "project-id": (c) => c.projectId,
  "vms-limit": (c) => c.vmsLimit,
  "vm-base-port": (c) => c.vmBasePort,
  "ports-per-vm": (c) => c.portsPerVm,
  "os": (c) => c.os,
  "grafana": (c) => c.grafana,
  "grafana-legacy-source": (c) => c.grafanaLegacySource,
  "grafana-url": (c) => c.grafanaUrl,
  "alert-handler": (c) => c.alertHandlers,
  "prometheus": (c) => c.prometheus,
  "prometheus-export": (c) => c.prometheusExport,
  "prometheus-port": (c) => c.prometheusPort,
  "prometheus-export-path": (c) => c.prometheusExportPath,
  "prometheus-snapshots": (c) => c.prometheusSnapshots,
  "prometheus-scrape-interval": (c) => c.prometheusScrapeInterval,
  "process-monitoring": (c) => c.processMonitoring,
  "website": (c) => c.website,
  "website-port": (c) => c.websitePort,
  "machine-type": (c) => c.machineType,
  "disk-type": (c) => c.diskType,
  "disk-size-gb": (c) => c.diskSizeGb,
  "dockerfile-alias": (c) => c.dockerfileAlias,
  "max-run-duration": (c) => c.maxRunDuration,
  "no-max-run-duration": (c) => c.maxRunDuration === undefined,
  "dns-domain": (c) => c.dnsDomains,
  "no-dns": (c) => c.noDns,
  "open-telemetry": (c) => c.openTelemetry,
  "macosx": (c) => c.macosx,
  "check-file-consistency": (c) => c.checkFileConsistency,
  "docker-host-network": (c) => c.dockerHostNetwork,
  "docker-push": (c) => c.pushDocker,
  "auto-approve": (c) => c.autoApprove,
  "faketime": (c) => c.faketime,
  "binaries-path": (c) => c.binariesPath,
  "log-rotation": (c) => c.logRotation,
  "artifacts-dir": (c) => c.artifactsDir,
  "daily-logs-artifacts": (c) => c.dailyLogsArtifacts,
  "teztale-artifacts": (c) => c.teztaleArtifacts,
  "ppx-profiling-traces-artifacts": (c) => c.ppxProfilingTracesArtifacts,
  "tc-delay": (c) => c.tcDelay,
  "tc-jitter": (c) => c.tcJitter,
  "auth-username": (c) => c.authUsername,
  "auth-password": (c, o) => [c.authPassword, o.authPassword],
  "slack-channel-id": (c) => c.slackChannelId,
  "slack-bot-token": (c, o) => [c.slackBotToken, o.slackBotToken]
}

/** Sample CLI texts for string options whose value is checked or transformed, and the value they resolve to. */
const samples: Record<string, { readonly texts: ReadonlyArray<string>; readonly config: unknown }> = {
  "ssh-host": { texts: ["alice@10.0.0.5:2222"], config: { user: "alice", host: "10.0.0.5", port: 2222 } },
  "grafana-url": { texts: ["http://127.0.0.1:3300/"], config: "http://127.0.0.1:3300" },
  "tc-delay": { texts: ["0.1,0.5"], config: { min: 0.1, max: 0.5 } },
  "tc-jitter": { texts: ["0,2"], config: { min: 0, max: 2 } },
  "faketime": { texts: ["+2h"], config: "+2h" },
  "prometheus-snapshots": {
    texts: ["/tmp/snap-a", "/tmp/snap-b:9200"],
    config: [{ path: "/tmp/snap-a", port: 9090 }, { path: "/tmp/snap-b", port: 9200 }]
  },
  "dns-domain": { texts: ["a.example.com", "b.example.com."], config: ["a.example.com.", "b.example.com."] },
  "ssh-private-key": { texts: ["/keys/id"], config: ["/keys/id", "/keys/id"] },
  "auth-password": { texts: ["pw"], config: ["pw", "pw"] },
  "slack-bot-token": { texts: ["xoxb-1"], config: ["xoxb-1", "xoxb-1"] }
}

/** Auth needs both halves: the half not under test comes from the environment. */
const extraEnv: Record<string, CloudConfig.Environment> = {
  "auth-username": { TEZT_CLOUD_AUTH_PASSWORD: "env-pw" },
  "auth-password": { TEZT_CLOUD_AUTH_USERNAME: "env-user" }
}

/** A runtime is part of the backend choice only with `--localhost`: that half comes from a config file here. */
const extraInput: Record<string, CloudConfig.Input> = {
  "agent-runtime": { localhost: true }
}

interface Case {
  readonly name: string
  readonly spec: CloudConfig.OptionSpec
  readonly argv: ReadonlyArray<string>
  /** The value `toInput` must put under `spec.key`. */
  readonly input: unknown
  /** The value `field[spec.flag]` must read from the resolved configuration. */
  readonly config: unknown
}

const casesOf = (spec: CloudConfig.OptionSpec): ReadonlyArray<Case> => {
  const names = [spec.flag, ...(spec.aliases ?? [])]
  const make = (argv: ReadonlyArray<string>, input: unknown, config: unknown = input): Case => ({
    name: argv.join(" "),
    spec,
    argv,
    input,
    config
  })
  switch (spec.kind) {
    case "flag": {
      const positive = names.map((name) => make([`--${name}`], true))
      if (spec.negation === null) return positive
      return [...positive, make([`--${spec.negation ?? `no-${spec.flag}`}`], false)]
    }
    case "int":
      // A valid value for each: most ints are ports or counts where 4242 fits; channels are capped at 64.
      return names.map((name) =>
        spec.flag === "ssh-max-channels" ? make([`--${name}`, "42"], 42) : make([`--${name}`, "4242"], 4242)
      )
    case "string": {
      if (spec.choices) return spec.choices.map((choice) => make([`--${spec.flag}`, choice], choice))
      const sample = samples[spec.flag]
      const text = sample?.texts[0] ?? `value-${spec.flag}`
      return names.map((name) => make([`--${name}`, text], text, sample === undefined ? text : sample.config))
    }
    case "strings": {
      const sample = samples[spec.flag]
      const texts = sample?.texts ?? ["first", "second"]
      return names.map((name) =>
        make(texts.flatMap((t) => [`--${name}`, t]), texts, sample === undefined ? texts : sample.config)
      )
    }
  }
}

const cases = CloudConfig.options.flatMap(casesOf)

describe("Options: every option parsed from the CLI", () => {
  it("the test table covers exactly the option table", () => {
    assert.deepStrictEqual(Object.keys(field).toSorted(), CloudConfig.options.map((s) => s.flag).toSorted())
    for (const spec of CloudConfig.options) {
      assert.isTrue(cases.some((c) => c.spec === spec), spec.flag)
    }
    assert.deepStrictEqual(Object.keys(Options.flags), CloudConfig.options.map((s) => s.flag))
  })

  it.effect.each(cases)("$name", ({ spec, argv, input, config }) =>
    Effect.gen(function*() {
      const { input: cliInput, cliOnly, config: resolved } = yield* resolveArgv(argv, {
        TEZT_CLOUD: "ns",
        ...extraEnv[spec.flag]
      }, extraInput[spec.flag])
      if (spec.key === undefined) {
        assert.deepStrictEqual(cliInput, {}, "CLI-only options never reach the config input")
      } else {
        assert.deepStrictEqual(cliInput, { [spec.key]: input })
      }
      assert.deepStrictEqual(field[spec.flag]!(resolved, cliOnly), config)
    }))

  it.effect("nothing given: no input key and no CLI-only value", () =>
    Effect.gen(function*() {
      const { input, cliOnly } = Options.toInput(yield* parseOk([]))
      assert.deepStrictEqual(input, {})
      assert.deepStrictEqual(cliOnly, {
        configFile: undefined,
        sshPrivateKey: undefined,
        authPassword: undefined,
        slackBotToken: undefined
      })
    }))

  it.effect("every option at once: no two flags clash", () =>
    Effect.gen(function*() {
      const argv = CloudConfig.options.flatMap((spec) => {
        const first = casesOf(spec)[0]!
        return first.argv
      })
      const { input, cliOnly } = Options.toInput(yield* parseOk(argv))
      assert.deepStrictEqual(
        Object.keys(input).toSorted(),
        CloudConfig.options.flatMap((s) => s.key === undefined ? [] : [s.key]).toSorted()
      )
      assert.deepStrictEqual(cliOnly, {
        configFile: "value-config-file",
        sshPrivateKey: "/keys/id",
        authPassword: "pw",
        slackBotToken: "xoxb-1"
      })
    }))
})

describe("Options: aliases and negations", () => {
  it.effect("--dns is --dns-domain, and mixes with it in order", () =>
    Effect.gen(function*() {
      const { input, config } = yield* resolveArgv(["--dns", "a.org", "--dns-domain", "b.org", "--dns", "c.org."])
      assert.deepStrictEqual(input, { dns_domains: ["a.org", "b.org", "c.org."] })
      assert.deepStrictEqual(config.dnsDomains, ["a.org.", "b.org.", "c.org."])
    }))

  it.effect("--otel is --open-telemetry", () =>
    Effect.gen(function*() {
      const { input, config } = yield* resolveArgv(["--otel"])
      assert.deepStrictEqual(input, { open_telemetry: true })
      assert.isTrue(config.openTelemetry)
    }))

  it.effect("--no-dns-domain is --no-dns", () =>
    Effect.gen(function*() {
      const { input, config } = yield* resolveArgv(["--no-dns-domain"])
      assert.deepStrictEqual(input, { no_dns: true })
      assert.isTrue(config.noDns)
    }))

  it.effect("--cloud is the negation of --localhost; --no-localhost is not a flag", () =>
    Effect.gen(function*() {
      const { config } = yield* resolveArgv(["--cloud"])
      assert.isFalse(config.localhost)
      assert.strictEqual(config.mode, "cloud")
      const { result } = yield* parse(["--no-localhost"])
      assert.strictEqual(result._tag, "Failure")
    }))

  it.effect("--no-docker-push turns pushing off", () =>
    Effect.gen(function*() {
      const { input, config } = yield* resolveArgv(["--no-docker-push"])
      assert.deepStrictEqual(input, { push_docker: false })
      assert.isFalse(config.pushDocker)
    }))

  it.effect("--no-max-run-duration and --no-dns have no negation of their own", () =>
    Effect.gen(function*() {
      for (const flag of ["--no-no-max-run-duration", "--no-no-dns"]) {
        const { result } = yield* parse([flag])
        assert.strictEqual(result._tag, "Failure", flag)
      }
    }))

  it.effect("a flag given with its negation is a usage error, not a silent choice", () =>
    Effect.gen(function*() {
      const { result, events } = yield* parse(["--grafana", "--no-grafana"])
      assert.strictEqual(result._tag, "Failure")
      const messages = events.flatMap((e) => e._tag === "InvalidInvocation" ? e.errors.map((x) => x.message) : [])
      assert.isTrue(messages.some((m) => m.includes("grafana")), messages.join("; "))
    }))
})

describe("Options: values checked after parsing", () => {
  it.effect("--vm-base-port 70000 is refused naming the option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveArgv(["--vm-base-port", "70000"]))
      assert.strictEqual(error.reason._tag, "ConfigInvalid")
      assert.include(error.message, "--vm-base-port")
      assert.include(error.message, "70000")
    }))

  it.effect("--ssh-host with --localhost or --proxy is refused", () =>
    Effect.gen(function*() {
      for (const other of ["--localhost", "--proxy"]) {
        const error = yield* Effect.flip(resolveArgv(["--ssh-host", "root@h", other]))
        assert.strictEqual(error.reason._tag, "ConfigInvalid")
        assert.include(error.message, "--ssh-host")
        assert.include(error.message, other)
      }
    }))

  it.effect("--tc-delay that is not MIN,MAX is refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveArgv(["--tc-delay", "5"]))
      assert.include(error.message, "--tc-delay")
    }))
})

describe("Options: usage errors", () => {
  const failure = (argv: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const { result, events } = yield* parse(argv)
      assert.strictEqual(result._tag, "Failure", "the parse must fail")
      const error = result._tag === "Failure" ? result.failure : undefined
      assert.isTrue(CliError.isCliError(error))
      const invalid = events.filter((e) => e._tag === "InvalidInvocation")
      assert.strictEqual(invalid.length, 1, "the error is presented once")
      const messages = invalid.flatMap((e) => e._tag === "InvalidInvocation" ? e.errors.map((x) => x.message) : [])
      return { error: error!, messages: messages.join("\n") }
    })

  it.effect("--vm-base-port abc", () =>
    Effect.gen(function*() {
      const { error, messages } = yield* failure(["--vm-base-port", "abc"])
      assert.strictEqual(error._tag, "ShowHelp")
      assert.include(messages, "vm-base-port")
      assert.include(messages, "abc")
    }))

  it.effect("--bogus", () =>
    Effect.gen(function*() {
      const { error, messages } = yield* failure(["--bogus"])
      assert.strictEqual(error._tag, "ShowHelp")
      assert.include(messages, "--bogus")
    }))

  it.effect("--os with a value outside the choices", () =>
    Effect.gen(function*() {
      const { messages } = yield* failure(["--os", "ubuntu"])
      assert.include(messages, "os")
      assert.include(messages, "ubuntu")
    }))

  it.effect("--agent-runtime with a value outside the choices", () =>
    Effect.gen(function*() {
      const { messages } = yield* failure(["--agent-runtime", "vm"])
      assert.include(messages, "agent-runtime")
    }))
})
