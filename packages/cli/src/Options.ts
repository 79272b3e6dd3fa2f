/**
 * The CLI flags of a run, generated from `CloudConfig.options` (the one option table), and their mapping back to
 * a config `Input`: only the flags the user gave are present, so the config file and defaults fill the rest. The
 * options a backend owns come last in `--help`, each description starting with the backend's tag (`[ssh] …`).
 */
import { CloudConfig } from "@tezt-cloud/core"
import { Option } from "effect"
import { Flag } from "effect/cli"

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
