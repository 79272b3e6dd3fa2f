/**
 * The environment of the programs this package runs on this machine (`git`, `debootstrap`, `tar`, the last
 * resort's `node`): what a program needs of the orchestrator's (`InheritedEnv`) and the variables of the program's
 * own that `own` matches (`GIT_*`, proxies), never the rest, which holds the run's secrets.
 */
import { InheritedEnv } from "@tezt-cloud/core"

/** `InheritedEnv`'s part of `env`, with the variables whose names `own` matches. */
export const childEnv = (
  own?: RegExp,
  env: Readonly<Record<string, string | undefined>> = process.env
): Record<string, string> => ({
  ...InheritedEnv.inherited(env),
  ...Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] =>
      own !== undefined && entry[1] !== undefined && own.test(entry[0])
    )
  )
})
