/**
 * The CLI flags of a run, generated from `CloudConfig.options` (the one option table), and their mapping back to
 * a config `Input`: only the flags the user gave are present, so the config file and defaults fill the rest. The
 * options a backend owns come last in `--help`, each description starting with the backend's tag (`[ssh] …`).
 * Then the run's configuration from them, the config file and the environment, every value checked
 * (`InputChecks`).
 */
import { CloudConfig } from "@tezt-cloud/core"
import { Effect, Option } from "effect"
import { Flag } from "effect/cli"
import * as InputChecks from "./InputChecks.ts"

const flagOf = (spec: CloudConfig.OptionSpec): Flag.Flag<Option.Option<unknown>> => {
  let flag: Flag.Flag<unknown>
  switch (spec.kind) {
    case "flag": {
      let f = Flag.Boolean(spec.flag)
      if (spec.negation === null) f = Flag.withoutNegation(f)
      else if (spec.negation !== undefined) f = Flag.withNegation(f, spec.negation)
      flag = f
      break
    }
    case "int":
      flag = Flag.Int(spec.flag)
      break
    case "string":
      flag = spec.choices ? Flag.Literals(spec.flag, spec.choices) : Flag.String(spec.flag)
      break
    case "strings":
      flag = Flag.String(spec.flag).pipe(Flag.atLeast(1))
      break
  }
  for (const alias of spec.aliases ?? []) flag = Flag.withAlias(flag, alias)
  const owner = spec.backend === undefined ? "" : `[${spec.backend}] `
  return flag.pipe(Flag.withDescription(`${owner}${spec.description} (default: ${spec.default})`), Flag.optional)
}

/** One optional flag per option, keyed by the option's flag name. */
export const flags: Record<string, Flag.Flag<Option.Option<unknown>>> = Object.fromEntries(
  CloudConfig.options.map((spec) => [spec.flag, flagOf(spec)])
)

/** The parsed flags as config input (present values only) and the CLI-only values. */
export const toInput = (parsed: Record<string, Option.Option<unknown>>) => {
  const input: Record<string, unknown> = {}
  const cliOnly: Record<string, unknown> = {}
  for (const spec of CloudConfig.options) {
    const v = Option.getOrUndefined(parsed[spec.flag] ?? Option.none())
    if (spec.key === undefined) cliOnly[spec.field] = v
    else if (v !== undefined) input[spec.key] = v
  }
  return { input, cliOnly: cliOnly as CloudConfig.CliOnly }
}

/**
 * The run's input from the parsed flags, over the config file's (`--config-file`), decoded; sizes checked first,
 * so that no message quotes a megabyte (or a secret) back.
 */
export const read = Effect.fn("Options.read")(function*(
  parsed: Record<string, Option.Option<unknown>>,
  env: CloudConfig.Environment
) {
  yield* InputChecks.flags(parsed)
  yield* InputChecks.environment(env)
  const { input: cliInput, cliOnly } = toInput(parsed)
  const fileInput = cliOnly.configFile === undefined ? {} : yield* InputChecks.configFile(cliOnly.configFile)
  return { input: CloudConfig.merge(fileInput, yield* CloudConfig.decodeInput(cliInput, "option")), cliOnly }
})

/** The run's configuration (`CloudConfig.resolve`), and the files it names checked before anything is made. */
export const configuration = Effect.fn("Options.configuration")(function*(
  input: CloudConfig.Input,
  cliOnly: CloudConfig.CliOnly,
  env: CloudConfig.Environment
) {
  const config = yield* CloudConfig.resolve(input, cliOnly, env)
  if (config.sshPrivateKey !== undefined) yield* InputChecks.privateKey(config.sshPrivateKey)
  return config
})
